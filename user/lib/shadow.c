// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The TCP stream shadow: replays mirrored flows from ks_shadow_rb on
 * connections of kshiftd's own, and compares answers. See shadow.h and
 * docs/shadow.md.
 *
 * Positions in a flow are relative to its initial sequence number (the
 * client's SYN, the primary's SYN-ACK), in 32 bits like TCP's own, so a
 * flow may carry any amount; comparisons are made on the signed difference.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h>
#include "kshift.skel.h"
#include "log.h"
#include "shadow.h"

#define NR_BUCKETS   4096
#define SWEEP_MS     250
#define MAX_PRIM_SEG 256 /* primary reply starts kept per flow, waiting to be parsed */
#define HDR_MAX	     4096

struct seg {
	struct seg *next;
	uint32_t pos;	  /* relative position of data[0] */
	uint32_t len;	  /* bytes in data */
	uint32_t seg_len; /* the segment's length (primary: more than len when cut) */
	char data[];
};

struct resp {
	int status;
	int64_t body; /* -1: not by Content-Length */
};

/* A stream of answers, as the shadow sends them (whole) or as the
 * primary's were captured (starts of segments). */
struct answers {
	struct resp *v;
	size_t n, cap;
	bool raw;	/* not HTTP: compared by length and hash */
	bool stuck;	/* HTTP, but where the next answer starts is not known */
	uint64_t total; /* bytes */
	uint64_t hash;	/* FNV-1a of the first KS_SHADOW_HASH_BYTES */
	uint32_t hashed;
};

struct flow {
	struct ks_flow key;
	uint32_t svc;
	struct flow *hnext, *prev, *next;
	int fd;
	bool connected, shut, eof, failed, client_fin, client_rst, counted;
	uint32_t events; /* as registered with epoll */
	uint32_t isn;	 /* the client's */
	uint32_t next_pos;
	uint32_t fin_pos;
	char *out;
	size_t out_len, out_off, out_cap;
	struct seg *ooo; /* out of order, by position */
	size_t ooo_bytes;
	uint64_t gap_since_ms, last_ms;
	/* the primary's answers */
	bool srv_known;
	uint32_t srv_isn;
	struct seg *prim;
	uint32_t nr_prim;
	uint32_t p_pos;
	struct answers p;
	/* the shadow's */
	char hdr[HDR_MAX];
	size_t hlen;
	int64_t skip; /* body bytes still to come; -1: the rest of the stream */
	struct answers s;
	size_t compared;
};

struct ks_shadow {
	struct ks_dp *dp;
	struct ring_buffer *rb;
	int epfd;
	int ring_tag; /* its address marks the ring in epoll */
	int test_fd;  /* ks_shadow_test_open(): every flow's connection is a dup of it */
	struct flow *buckets[NR_BUCKETS];
	struct flow *all;
	size_t nr_flows;
	size_t buffered;
	uint64_t next_sweep_ms;
	struct ks_shadow_svc_stats **svcs; /* by service, grown as they show up */
	uint32_t nr_svcs;
	uint64_t totals[KS_SHADOW_NR_RESULTS];
};

static const char *const result_names[KS_SHADOW_NR_RESULTS] = { "match", "mismatch", "dropped" };

const char *ks_shadow_result_name(enum ks_shadow_result r)
{
	return r < KS_SHADOW_NR_RESULTS ? result_names[r] : "unknown";
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* ---- answers: HTTP responses, or bytes ---- */

static const char *find_ci(const char *h, size_t len, const char *needle)
{
	size_t n = strlen(needle), i;

	for (i = 0; i + n <= len; i++)
		if (!strncasecmp(h + i, needle, n))
			return h + i;
	return NULL;
}

int ks_shadow_parse_response(const char *buf, size_t len, int *status, int64_t *body)
{
	static const char prefix[] = "HTTP/1.";
	const char *end, *cl;
	size_t hlen, i;

	for (i = 0; i < len && i < sizeof(prefix) - 1; i++)
		if (buf[i] != prefix[i])
			return -1;
	if (len < 12)
		return 0;
	end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		return 0;
	hlen = end + 4 - buf;
	if (buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9')
		return -1;
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	*body = -1;
	cl = find_ci(buf, hlen, "\r\ncontent-length:");
	if (cl && !find_ci(buf, hlen, "\r\ntransfer-encoding:"))
		*body = strtoll(cl + 17, NULL, 10);
	if (*body < 0)
		*body = -1;
	return (int)hlen;
}

static void hash_bytes(struct answers *a, const char *d, size_t n)
{
	if (!a->hashed)
		a->hash = 0xcbf29ce484222325ULL;
	for (; n && a->hashed < KS_SHADOW_HASH_BYTES; n--, d++, a->hashed++)
		a->hash = (a->hash ^ (uint8_t)*d) * 0x100000001b3ULL;
}

static int push_resp(struct answers *a, int status, int64_t body)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 8;
		struct resp *v = realloc(a->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = (struct resp){ .status = status, .body = body };
	return 0;
}

/* ---- results ---- */

static struct ks_shadow_svc_stats *svc_stats(struct ks_shadow *sh, uint32_t svc)
{
	if (svc >= KS_MAX_SERVICES_LIMIT)
		return NULL;
	if (svc >= sh->nr_svcs) {
		uint32_t n = sh->nr_svcs ? sh->nr_svcs : 1024;
		struct ks_shadow_svc_stats **v;

		while (n <= svc)
			n *= 2;
		v = realloc(sh->svcs, n * sizeof(*v));
		if (!v)
			return NULL;
		memset(v + sh->nr_svcs, 0, (n - sh->nr_svcs) * sizeof(*v));
		sh->svcs = v;
		sh->nr_svcs = n;
	}
	if (!sh->svcs[svc])
		sh->svcs[svc] = calloc(1, sizeof(*sh->svcs[svc]));
	return sh->svcs[svc];
}

static void flow_name(const struct flow *f, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	inet_ntop(f->key.family == KS_FAMILY_V4 ? AF_INET : AF_INET6, &f->key.saddr, a, sizeof(a));
	snprintf(buf, len, f->key.family == KS_FAMILY_V4 ? "%s:%u" : "[%s]:%u", a,
		 ntohs(f->key.sport));
}

static void result(struct ks_shadow *sh, struct flow *f, enum ks_shadow_result r, uint64_t n,
		   const char *why)
{
	struct ks_shadow_svc_stats *st = svc_stats(sh, f->svc);
	char who[INET6_ADDRSTRLEN + 8];

	if (!n)
		return;
	sh->totals[r] += n;
	if (!st)
		return;
	st->results[r] += n;
	if (r == KS_SHADOW_MISMATCH && why) {
		flow_name(f, who, sizeof(who));
		snprintf(st->mismatches[st->nr_mm % KS_SHADOW_MISMATCHES],
			 sizeof(st->mismatches[0]), "%s: %s", who, why);
		st->nr_mm++;
	}
}

static void fmt_resp(const struct resp *r, char *buf, size_t len)
{
	if (r->body >= 0)
		snprintf(buf, len, "%d, %lld bytes", r->status, (long long)r->body);
	else
		snprintf(buf, len, "%d", r->status);
}

/* Compares the answers both sides have given so far, in order. */
static void compare(struct ks_shadow *sh, struct flow *f)
{
	char why[144], a[40], b[40];

	if (f->p.raw || f->s.raw)
		return;
	for (; f->compared < f->p.n && f->compared < f->s.n; f->compared++) {
		const struct resp *p = &f->p.v[f->compared], *s = &f->s.v[f->compared];

		if (p->status == s->status && p->body == s->body) {
			result(sh, f, KS_SHADOW_MATCH, 1, NULL);
			continue;
		}
		fmt_resp(p, a, sizeof(a));
		fmt_resp(s, b, sizeof(b));
		snprintf(why, sizeof(why), "answer %zu: primary %s, shadow %s", f->compared + 1, a,
			 b);
		result(sh, f, KS_SHADOW_MISMATCH, 1, why);
	}
}

/* The flow is over: what was not compared is counted. */
static void settle(struct ks_shadow *sh, struct flow *f)
{
	char why[144];

	if (f->counted)
		return;
	f->counted = true;
	compare(sh, f);
	if (f->p.raw || f->s.raw) {
		if (f->failed || !f->s.total) {
			result(sh, f, KS_SHADOW_DROPPED, 1, NULL);
		} else if (f->p.raw && f->s.raw && f->p.total == f->s.total &&
			   f->p.hash == f->s.hash) {
			result(sh, f, KS_SHADOW_MATCH, 1, NULL);
		} else {
			snprintf(why, sizeof(why), "primary %llu bytes%s, shadow %llu bytes%s",
				 (unsigned long long)f->p.total, f->p.raw ? "" : " of HTTP",
				 (unsigned long long)f->s.total, f->s.raw ? "" : " of HTTP");
			result(sh, f, KS_SHADOW_MISMATCH, f->p.raw ? 1 : (f->p.n ? f->p.n : 1),
			       why);
		}
		return;
	}
	if (f->p.n > f->compared)
		result(sh, f, KS_SHADOW_DROPPED, f->p.n - f->compared, NULL);
	else if (f->failed && !f->p.n)
		result(sh, f, KS_SHADOW_DROPPED, 1, NULL);
}

/* ---- flows ---- */

static size_t bucket(const struct ks_flow *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < sizeof(*k); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h % NR_BUCKETS;
}

static struct flow *flow_find(struct ks_shadow *sh, const struct ks_flow *k)
{
	struct flow *f;

	for (f = sh->buckets[bucket(k)]; f; f = f->hnext)
		if (!memcmp(&f->key, k, sizeof(*k)))
			return f;
	return NULL;
}

static void free_segs(struct seg *s)
{
	struct seg *n;

	for (; s; s = n) {
		n = s->next;
		free(s);
	}
}

static void close_fd(struct ks_shadow *sh, struct flow *f)
{
	if (f->fd < 0)
		return;
	epoll_ctl(sh->epfd, EPOLL_CTL_DEL, f->fd, NULL);
	close(f->fd);
	f->fd = -1;
}

static void drop_buffers(struct ks_shadow *sh, struct flow *f)
{
	sh->buffered -= f->out_cap + f->ooo_bytes;
	free(f->out);
	f->out = NULL;
	f->out_len = f->out_off = f->out_cap = 0;
	free_segs(f->ooo);
	f->ooo = NULL;
	f->ooo_bytes = 0;
}

static void unhash(struct ks_shadow *sh, struct flow *f)
{
	struct flow **pp;

	for (pp = &sh->buckets[bucket(&f->key)]; *pp; pp = &(*pp)->hnext)
		if (*pp == f) {
			*pp = f->hnext;
			break;
		}
}

static void flow_free(struct ks_shadow *sh, struct flow *f)
{
	settle(sh, f);
	close_fd(sh, f);
	drop_buffers(sh, f);
	free_segs(f->prim);
	free(f->p.v);
	free(f->s.v);
	unhash(sh, f);
	if (f->prev)
		f->prev->next = f->next;
	else
		sh->all = f->next;
	if (f->next)
		f->next->prev = f->prev;
	sh->nr_flows--;
	free(f);
}

/* The shadow's copy of this flow is lost: its socket goes, its state
 * stays until the client ends, to count the answers it did not get. */
static void flow_fail(struct ks_shadow *sh, struct flow *f, const char *why)
{
	char who[INET6_ADDRSTRLEN + 8];

	if (f->failed)
		return;
	flow_name(f, who, sizeof(who));
	pr_debug("shadow: %s: %s\n", who, why);
	f->failed = true;
	close_fd(sh, f);
	drop_buffers(sh, f);
}

static void want(struct ks_shadow *sh, struct flow *f, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = f };

	if (f->fd < 0 || f->events == events)
		return;
	if (!epoll_ctl(sh->epfd, EPOLL_CTL_MOD, f->fd, &ev))
		f->events = events;
}

/* Sends what is in order and unsent; at the client's FIN, once all is
 * sent, closes the shadow connection's sending side too. */
static void flush(struct ks_shadow *sh, struct flow *f)
{
	struct ks_shadow_svc_stats *st;
	ssize_t n;

	if (f->fd < 0 || !f->connected || f->failed)
		return;
	while (f->out_off < f->out_len) {
		n = send(f->fd, f->out + f->out_off, f->out_len - f->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			flow_fail(sh, f, strerror(errno));
			return;
		}
		f->out_off += n;
		st = svc_stats(sh, f->svc);
		if (st)
			st->bytes += n;
	}
	if (f->out_off == f->out_len)
		f->out_off = f->out_len = 0;
	if (f->client_fin && !f->shut && !f->out_len && f->next_pos == f->fin_pos) {
		shutdown(f->fd, SHUT_WR);
		f->shut = true;
	}
	want(sh, f, EPOLLIN | (f->out_len ? EPOLLOUT : 0));
}

static int append(struct ks_shadow *sh, struct flow *f, const char *d, size_t n)
{
	if (f->out_len + n > f->out_cap) {
		size_t cap = f->out_cap ? f->out_cap : 4096;
		char *p;

		if (f->out_off) {
			memmove(f->out, f->out + f->out_off, f->out_len - f->out_off);
			f->out_len -= f->out_off;
			f->out_off = 0;
		}
		while (cap < f->out_len + n)
			cap *= 2;
		if (cap > f->out_cap) {
			if (cap + f->ooo_bytes > KS_SHADOW_FLOW_BUF ||
			    sh->buffered + cap - f->out_cap > KS_SHADOW_TOTAL_BUF)
				return -ENOBUFS;
			p = realloc(f->out, cap);
			if (!p)
				return -ENOMEM;
			sh->buffered += cap - f->out_cap;
			f->out = p;
			f->out_cap = cap;
		}
	}
	memcpy(f->out + f->out_len, d, n);
	f->out_len += n;
	return 0;
}

/* The client's bytes [pos, pos + n): in order, a duplicate, or ahead of a
 * gap. */
static void take(struct ks_shadow *sh, struct flow *f, uint32_t pos, const char *d, uint32_t n)
{
	struct seg **pp, *s;
	int32_t ahead = (int32_t)(pos - f->next_pos);

	if (!n || f->failed)
		return;
	if (ahead < 0) {
		if ((uint32_t)-ahead >= n)
			return; /* retransmitted */
		d += -ahead;
		n -= -ahead;
		pos = f->next_pos;
		ahead = 0;
	}
	if (ahead > 0) {
		for (pp = &f->ooo; *pp && (int32_t)((*pp)->pos - pos) < 0; pp = &(*pp)->next)
			;
		if (*pp && (*pp)->pos == pos && (*pp)->len >= n)
			return;
		if (f->ooo_bytes + n + f->out_cap > KS_SHADOW_FLOW_BUF ||
		    sh->buffered + n > KS_SHADOW_TOTAL_BUF) {
			flow_fail(sh, f, "out-of-order data past the bound");
			return;
		}
		s = malloc(sizeof(*s) + n);
		if (!s) {
			flow_fail(sh, f, "out of memory");
			return;
		}
		s->pos = pos;
		s->len = s->seg_len = n;
		memcpy(s->data, d, n);
		s->next = *pp;
		*pp = s;
		f->ooo_bytes += n;
		sh->buffered += n;
		if (!f->gap_since_ms)
			f->gap_since_ms = now_ms();
		return;
	}
	if (append(sh, f, d, n)) {
		flow_fail(sh, f, "unsent data past the bound (shadow slow)");
		return;
	}
	f->next_pos += n;
	/* what waited behind the gap */
	while ((s = f->ooo) && (int32_t)(s->pos - f->next_pos) <= 0) {
		f->ooo = s->next;
		f->ooo_bytes -= s->len;
		sh->buffered -= s->len;
		if ((int32_t)(s->pos + s->len - f->next_pos) > 0) {
			uint32_t skip = f->next_pos - s->pos;

			if (append(sh, f, s->data + skip, s->len - skip)) {
				free(s);
				flow_fail(sh, f, "unsent data past the bound (shadow slow)");
				return;
			}
			f->next_pos += s->len - skip;
		}
		free(s);
	}
	f->gap_since_ms = f->ooo ? now_ms() : 0;
}

static void flow_open(struct ks_shadow *sh, const struct ks_shadow_ev *ev)
{
	struct sockaddr_storage ss = {};
	struct epoll_event eev;
	struct flow *f = flow_find(sh, &ev->flow);
	socklen_t sl;
	size_t b;

	if (f) {
		/* the port was reused: that flow is over (freed by the next
		 * sweep, since events fetched with this one may name it) */
		unhash(sh, f);
		f->client_rst = true;
		close_fd(sh, f);
	}
	if (sh->nr_flows >= KS_SHADOW_FLOWS) {
		struct ks_shadow_svc_stats *st = svc_stats(sh, ev->svc);

		sh->totals[KS_SHADOW_DROPPED]++;
		if (st)
			st->results[KS_SHADOW_DROPPED]++;
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return;
	f->key = ev->flow;
	f->svc = ev->svc;
	f->isn = ev->seq;
	f->fd = -1;
	f->last_ms = now_ms();
	b = bucket(&f->key);
	f->hnext = sh->buckets[b];
	sh->buckets[b] = f;
	f->next = sh->all;
	if (sh->all)
		sh->all->prev = f;
	sh->all = f;
	sh->nr_flows++;
	if (svc_stats(sh, f->svc))
		sh->svcs[f->svc]->flows++;

	if (ev->flow.family == KS_FAMILY_V4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = ev->shadow_port;
		memcpy(&sin->sin_addr, &ev->shadow.v4, 4);
		sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = ev->shadow_port;
		memcpy(&sin6->sin6_addr, &ev->shadow, 16);
		sl = sizeof(*sin6);
	}
	if (sh->test_fd >= 0)
		f->fd = fcntl(sh->test_fd, F_DUPFD_CLOEXEC, 0);
	else
		f->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->fd < 0) {
		flow_fail(sh, f, strerror(errno));
		return;
	}
	if (sh->test_fd < 0 && connect(f->fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		flow_fail(sh, f, strerror(errno));
		return;
	}
	eev = (struct epoll_event){ .events = EPOLLOUT | EPOLLIN, .data.ptr = f };
	if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, f->fd, &eev)) {
		flow_fail(sh, f, strerror(errno));
		return;
	}
	f->events = eev.events;
}

/* The primary's answers from the captured starts of its segments. */
static void parse_primary(struct flow *f)
{
	struct seg *s, **pp;
	int status, r;
	int64_t body;

	while (!f->p.raw && !f->p.stuck) {
		for (s = f->prim; s; s = s->next)
			if ((int32_t)(f->p_pos - s->pos) >= 0 &&
			    (int32_t)(f->p_pos - (s->pos + s->len)) < 0)
				break;
		if (!s)
			return;
		r = ks_shadow_parse_response(s->data + (f->p_pos - s->pos),
					     s->len - (f->p_pos - s->pos), &status, &body);
		if (r < 0 && !f->p_pos && !f->p.n) {
			f->p.raw = true;
			return;
		}
		if (r <= 0) {
			/* not an answer's start, or its header is longer than
			 * what was captured: the rest cannot be followed */
			f->p.stuck = true;
			return;
		}
		if (push_resp(&f->p, status, body))
			return;
		if (body < 0) {
			f->p.stuck = true;
			return;
		}
		f->p_pos += r + body;
		/* what lies wholly before the next answer is of no more use */
		for (pp = &f->prim; (s = *pp);) {
			if ((int32_t)(s->pos + s->seg_len - f->p_pos) <= 0) {
				*pp = s->next;
				free(s);
				f->nr_prim--;
			} else {
				pp = &s->next;
			}
		}
	}
}

static void on_reply(struct ks_shadow *sh, struct flow *f, const struct ks_shadow_ev *ev,
		     const char *d)
{
	struct seg *s, **pp;
	uint32_t pos;

	if (ev->tcp_flags & 0x02) { /* SYN-ACK */
		f->srv_isn = ev->seq;
		f->srv_known = true;
		return;
	}
	if (!f->srv_known || !ev->seg_len)
		return;
	pos = ev->seq - f->srv_isn - 1;
	if ((int64_t)pos + ev->seg_len > (int64_t)f->p.total)
		f->p.total = (uint64_t)pos + ev->seg_len;
	if (pos == 0 && !f->p.hashed)
		hash_bytes(&f->p, d, ev->len);
	if (f->p.raw || f->p.stuck || !ev->len || f->nr_prim >= MAX_PRIM_SEG)
		return;
	for (pp = &f->prim; *pp && (int32_t)((*pp)->pos - pos) < 0; pp = &(*pp)->next)
		;
	if (*pp && (*pp)->pos == pos)
		return; /* retransmitted */
	s = malloc(sizeof(*s) + ev->len);
	if (!s)
		return;
	s->pos = pos;
	s->len = ev->len;
	s->seg_len = ev->seg_len;
	memcpy(s->data, d, ev->len);
	s->next = *pp;
	*pp = s;
	f->nr_prim++;
	parse_primary(f);
	compare(sh, f);
}

static void on_data(struct ks_shadow *sh, struct flow *f, const struct ks_shadow_ev *ev,
		    const char *d)
{
	uint32_t pos = ev->seq - f->isn - 1;

	if (ev->len < ev->seg_len)
		flow_fail(sh, f, "segment larger than the capture bound");
	else
		take(sh, f, pos, d, ev->len);
	if (ev->tcp_flags & 0x04) { /* RST */
		f->client_rst = true;
		close_fd(sh, f);
		return;
	}
	if (ev->tcp_flags & 0x01) { /* FIN */
		f->client_fin = true;
		f->fin_pos = pos + ev->seg_len;
	}
	flush(sh, f);
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct ks_shadow *sh = ctx;
	const struct ks_shadow_ev *ev = data;
	const char *payload = (const char *)(ev + 1);
	struct flow *f;

	if (size < sizeof(*ev) || size < sizeof(*ev) + ev->len)
		return 0;
	if (ev->kind == KS_SHADOW_OPEN) {
		flow_open(sh, ev);
		return 0;
	}
	f = flow_find(sh, &ev->flow);
	if (!f)
		return 0; /* its start was lost, or came before kshiftd */
	f->last_ms = now_ms();
	if (ev->kind == KS_SHADOW_REPLY)
		on_reply(sh, f, ev, payload);
	else if (ev->kind == KS_SHADOW_DATA)
		on_data(sh, f, ev, payload);
	return 0;
}

/* The shadow's answers: parsed as they stream, then forgotten. */
static void shadow_bytes(struct ks_shadow *sh, struct flow *f, const char *d, size_t n)
{
	int status, r;
	int64_t body;
	size_t k, extra;

	f->s.total += n;
	hash_bytes(&f->s, d, n);
	while (n && !f->s.raw) {
		if (f->skip < 0)
			return;
		if (f->skip > 0) {
			k = (size_t)f->skip < n ? (size_t)f->skip : n;
			f->skip -= k;
			d += k;
			n -= k;
			continue;
		}
		k = sizeof(f->hdr) - f->hlen < n ? sizeof(f->hdr) - f->hlen : n;
		memcpy(f->hdr + f->hlen, d, k);
		f->hlen += k;
		r = ks_shadow_parse_response(f->hdr, f->hlen, &status, &body);
		if (r < 0 || (r == 0 && f->hlen == sizeof(f->hdr))) {
			if (!f->s.n)
				f->s.raw = true;
			else
				f->skip = -1;
			return;
		}
		if (r == 0) {
			d += k;
			n -= k;
			continue;
		}
		push_resp(&f->s, status, body);
		extra = f->hlen - r;
		f->skip = body;
		f->hlen = 0;
		d += k - extra;
		n -= k - extra;
	}
	compare(sh, f);
}

static void on_socket(struct ks_shadow *sh, struct flow *f, uint32_t events)
{
	char buf[65536];
	socklen_t sl = sizeof(int);
	int err = 0;
	ssize_t n;

	if (f->fd < 0)
		return; /* closed by an event handled just before */
	if (!f->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &err, &sl) || err) {
			flow_fail(sh, f, strerror(err ? err : errno));
			return;
		}
		f->connected = true;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			n = recv(f->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n > 0) {
				shadow_bytes(sh, f, buf, n);
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			/* closed, or reset: whatever was unsent is lost */
			f->eof = true;
			if (n < 0 || f->out_len)
				flow_fail(sh, f, n < 0 ? strerror(errno) : "closed by the shadow");
			else
				close_fd(sh, f);
			return;
		}
	}
	flush(sh, f);
}

/* Flows that are over, idle, or stuck behind a gap. */
static void sweep(struct ks_shadow *sh)
{
	uint64_t now = now_ms();
	struct flow *f, *next;

	for (f = sh->all; f; f = next) {
		next = f->next;
		if (f->gap_since_ms && now - f->gap_since_ms > KS_SHADOW_GAP_MS)
			flow_fail(sh, f, "a gap in the client's data was never filled");
		if (f->client_fin && f->next_pos != f->fin_pos && !f->failed &&
		    now - f->last_ms > KS_SHADOW_GAP_MS)
			flow_fail(sh, f, "data before the client's FIN was lost");
		if (((f->client_fin || f->client_rst) && (f->eof || f->failed || f->fd < 0)) ||
		    now - f->last_ms > (f->fd >= 0 ? KS_SHADOW_IDLE_MS : KS_SHADOW_ENDED_MS))
			flow_free(sh, f);
	}
	sh->next_sweep_ms = now + SWEEP_MS;
}

void ks_shadow_process(struct ks_shadow *sh)
{
	struct epoll_event evs[64];
	int n, i, rounds;

	for (rounds = 0; rounds < 16; rounds++) {
		n = epoll_wait(sh->epfd, evs, 64, 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &sh->ring_tag)
				ring_buffer__consume(sh->rb);
			else
				on_socket(sh, evs[i].data.ptr, evs[i].events);
		}
	}
	if (now_ms() >= sh->next_sweep_ms)
		sweep(sh);
}

int ks_shadow_timeout(const struct ks_shadow *sh)
{
	uint64_t now = now_ms();

	if (!sh || !sh->all)
		return -1;
	return sh->next_sweep_ms > now ? (int)(sh->next_sweep_ms - now) : 0;
}

int ks_shadow_fd(const struct ks_shadow *sh)
{
	return sh->epfd;
}

int ks_shadow_open(struct ks_shadow **out, struct ks_dp *dp)
{
	struct ks_shadow *sh = calloc(1, sizeof(*sh));
	struct epoll_event ev;
	int err;

	if (!sh)
		return -ENOMEM;
	sh->dp = dp;
	sh->test_fd = -1;
	sh->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sh->epfd < 0) {
		err = -errno;
		goto fail;
	}
	sh->rb = ring_buffer__new(bpf_map__fd(dp->skel->maps.ks_shadow_rb), on_event, sh, NULL);
	if (!sh->rb) {
		err = -errno;
		pr_warn("shadow: ring buffer %s: %s\n", KS_MAP_SHADOW_RB, strerror(-err));
		goto fail;
	}
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &sh->ring_tag };
	if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(sh->rb), &ev)) {
		err = -errno;
		goto fail;
	}
	*out = sh;
	return 0;
fail:
	ring_buffer__free(sh->rb);
	if (sh->epfd >= 0)
		close(sh->epfd);
	free(sh);
	return err;
}

int ks_shadow_test_open(struct ks_shadow **out, int fd)
{
	struct ks_shadow *sh = calloc(1, sizeof(*sh));

	if (!sh)
		return -ENOMEM;
	sh->test_fd = fd;
	sh->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sh->epfd < 0) {
		free(sh);
		return -errno;
	}
	*out = sh;
	return 0;
}

void ks_shadow_test_feed(struct ks_shadow *sh, const void *rec, size_t size)
{
	on_event(sh, (void *)rec, size);
}

void ks_shadow_test_sweep(struct ks_shadow *sh)
{
	sweep(sh);
}

void ks_shadow_close(struct ks_shadow *sh)
{
	size_t i;

	if (!sh)
		return;
	while (sh->all)
		flow_free(sh, sh->all);
	ring_buffer__free(sh->rb);
	close(sh->epfd);
	for (i = 0; i < sh->nr_svcs; i++)
		free(sh->svcs[i]);
	free(sh->svcs);
	free(sh);
}

const struct ks_shadow_svc_stats *ks_shadow_svc(const struct ks_shadow *sh, uint32_t svc)
{
	return sh && svc < sh->nr_svcs ? sh->svcs[svc] : NULL;
}

void ks_shadow_totals(const struct ks_shadow *sh, uint64_t out[KS_SHADOW_NR_RESULTS])
{
	int i;

	for (i = 0; i < KS_SHADOW_NR_RESULTS; i++)
		out[i] = sh ? sh->totals[i] : 0;
}

/* ---- the dataplane's side ---- */

int ks_dp_mirror_set(struct ks_dp *dp, uint32_t svc, uint32_t percent, uint32_t backend)
{
	struct ks_mirror m = { .percent = percent > 100 ? 100 : percent, .backend = backend };

	if (!dp->skel)
		return -EINVAL;
	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_mirrors), &svc, &m, BPF_ANY))
		return -errno;
	return 0;
}

int ks_dp_mirror_stats(struct ks_dp *dp, uint32_t svc, struct ks_mirror_counters *out)
{
	struct ks_mirror_counters *v;
	int i, n = libbpf_num_possible_cpus();

	memset(out, 0, sizeof(*out));
	if (!dp->skel || n <= 0)
		return -EINVAL;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_mirror_stats), &svc, v)) {
		free(v);
		return -errno;
	}
	for (i = 0; i < n; i++) {
		out->flows += v[i].flows;
		out->copies += v[i].copies;
		out->segments += v[i].segments;
		out->lost += v[i].lost;
		out->shadow_replies += v[i].shadow_replies;
	}
	free(v);
	return 0;
}

struct json_object *ks_shadow_status(const struct ks_shadow *sh, struct ks_dp *dp,
				     const uint32_t *svcs, size_t n)
{
	struct json_object *o = json_object_new_object(), *mm = json_object_new_array();
	uint64_t res[KS_SHADOW_NR_RESULTS] = {}, flows = 0, bytes = 0;
	struct ks_mirror_counters c, sum = {};
	const struct ks_shadow_svc_stats *st;
	size_t i, k;
	int r;

	for (i = 0; i < n; i++) {
		if (!ks_dp_mirror_stats(dp, svcs[i], &c)) {
			sum.flows += c.flows;
			sum.copies += c.copies;
			sum.segments += c.segments;
			sum.lost += c.lost;
			sum.shadow_replies += c.shadow_replies;
		}
		st = ks_shadow_svc(sh, svcs[i]);
		if (!st)
			continue;
		for (r = 0; r < KS_SHADOW_NR_RESULTS; r++)
			res[r] += st->results[r];
		flows += st->flows;
		bytes += st->bytes;
		/* oldest first */
		for (k = st->nr_mm > KS_SHADOW_MISMATCHES ? st->nr_mm - KS_SHADOW_MISMATCHES : 0;
		     k < st->nr_mm; k++)
			json_object_array_add(
				mm,
				json_object_new_string(st->mismatches[k % KS_SHADOW_MISMATCHES]));
	}
	json_object_object_add(o, "match", json_object_new_int64(res[KS_SHADOW_MATCH]));
	json_object_object_add(o, "mismatch", json_object_new_int64(res[KS_SHADOW_MISMATCH]));
	json_object_object_add(o, "dropped", json_object_new_int64(res[KS_SHADOW_DROPPED]));
	json_object_object_add(o, "mirroredFlows", json_object_new_int64(sum.flows));
	json_object_object_add(o, "replayedFlows", json_object_new_int64(flows));
	json_object_object_add(o, "replayedBytes", json_object_new_int64(bytes));
	json_object_object_add(o, "udpCopies", json_object_new_int64(sum.copies));
	json_object_object_add(o, "capturedSegments", json_object_new_int64(sum.segments));
	json_object_object_add(o, "lostEvents", json_object_new_int64(sum.lost));
	json_object_object_add(o, "shadowRepliesDropped",
			       json_object_new_int64(sum.shadow_replies));
	json_object_object_add(o, "lastMismatches", mm);
	return o;
}
