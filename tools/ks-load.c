// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-load: the benchmark's fixed-rate HTTP client, for latency under load.
 *
 *   ks-load --dst IP --port PORT [--src IP] [--conns C] [--seconds S]
 *           [--rate R] [--warmup S] [--timeout-ms MS]
 *
 * Opens C keep-alive connections (default 16) and makes requests on them for
 * S seconds (default 2). With --rate R the load is open-loop: request k is due
 * at start + k/R, on connection k mod C; a request whose connection is still
 * busy waits for it, and its latency runs from when it was due, not from when
 * it was sent, so a stall shows in the tail instead of quietly lowering the
 * rate (wrk2's "coordinated omission" correction; Debian has no wrk2 and
 * wrk has no fixed rate). Without --rate, every connection asks again as soon
 * as its answer is in (closed loop): the achieved rate is what the path
 * sustains. The first --warmup seconds (default 0.2) are not counted.
 *
 * Prints one JSON object: offered and achieved requests/s, requests counted,
 * errors, late (still waiting when the run ended), and p50/p90/p99/p999/max
 * latency in microseconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define QUEUE	  1024 /* due requests one connection may have waiting */
#define BUF	  1024

static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

struct conn {
	int fd;
	int busy;		 /* a request is on the wire */
	size_t len;		 /* response bytes so far */
	double due[QUEUE];	 /* when each waiting request was due (us) */
	unsigned int head, tail; /* due[head..tail) wait, head's is on the wire */
	char buf[BUF];
};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int open_conn(const struct sockaddr_in *src, const struct sockaddr_in *dst, int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, timeout_ms % 1000 * 1000 };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if ((src && bind(fd, (const struct sockaddr *)src, sizeof(*src))) ||
	    connect(fd, (const struct sockaddr *)dst, sizeof(*dst))) {
		int err = -errno;

		close(fd);
		return err;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* The length of the complete response at the start of buf, or 0. */
static size_t response_len(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4), *cl;
	size_t hdr;

	if (!end)
		return 0;
	hdr = end + 4 - buf;
	cl = memmem(buf, hdr, "Content-Length:", 15);
	if (!cl)
		return hdr;
	hdr += strtoul(cl + 15, NULL, 10);
	return hdr <= len ? hdr : 0;
}

static int waiting(const struct conn *conns, int n)
{
	for (int i = 0; i < n; i++)
		if (conns[i].tail != conns[i].head)
			return 1;
	return 0;
}

static int send_req(struct conn *c)
{
	if (write(c->fd, req, sizeof(req) - 1) != sizeof(req) - 1)
		return -1;
	c->busy = 1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dst", 1, 0, 'd' },	  { "port", 1, 0, 'p' },   { "src", 1, 0, 's' },
		{ "conns", 1, 0, 'c' },	  { "seconds", 1, 0, 'S' }, { "rate", 1, 0, 'r' },
		{ "warmup", 1, 0, 'w' }, { "timeout-ms", 1, 0, 't' }, { 0 },
	};
	struct sockaddr_in dst = { .sin_family = AF_INET }, src = { .sin_family = AF_INET };
	int c, nconns = 16, timeout_ms = 1000, have_src = 0, bad = 0, ep;
	double seconds = 2, rate = 0, warmup = 0.2, t0, t_end, t_count, next_due, *lat;
	long nlat = 0, cap, errors = 0, late = 0, k = 0;
	struct epoll_event ev, evs[64];
	struct conn *conns;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			bad |= !inet_aton(optarg, &dst.sin_addr);
			break;
		case 'p':
			dst.sin_port = htons(atoi(optarg));
			break;
		case 's':
			have_src = inet_aton(optarg, &src.sin_addr);
			break;
		case 'c':
			nconns = atoi(optarg);
			break;
		case 'S':
			seconds = atof(optarg);
			break;
		case 'r':
			rate = atof(optarg);
			break;
		case 'w':
			warmup = atof(optarg);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			bad = 1;
		}
	}
	if (bad || !dst.sin_addr.s_addr || !dst.sin_port || nconns < 1 || nconns > MAX_CONNS ||
	    seconds <= 0 || rate < 0 || warmup < 0) {
		fprintf(stderr, "usage: ks-load --dst IP --port PORT [--src IP] [--conns C] "
				"[--seconds S] [--rate R] [--warmup S] [--timeout-ms MS]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* at most one answer per connection per 5 us: more than any path here */
	cap = (long)((rate ? rate : nconns * 2e5) * (seconds + 1)) + 1024;
	lat = malloc(cap * sizeof(*lat));
	conns = calloc(nconns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!lat || !conns || ep < 0)
		return 1;
	for (int i = 0; i < nconns; i++) {
		conns[i].fd = open_conn(have_src ? &src : NULL, &dst, timeout_ms);
		if (conns[i].fd < 0) {
			fprintf(stderr, "ks-load: connecting: %s\n", strerror(-conns[i].fd));
			return 1;
		}
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &conns[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
	}

	t0 = now_us();
	t_count = t0 + warmup * 1e6;
	t_end = t_count + seconds * 1e6;
	next_due = t0;
	if (!rate) {
		for (int i = 0; i < nconns; i++) {
			conns[i].due[conns[i].tail++ % QUEUE] = t0;
			if (send_req(&conns[i]))
				errors++;
		}
	}
	for (;;) {
		double now = now_us();
		struct timespec to;
		int n;

		/* open loop: hand out every request that is due by now */
		while (rate && next_due <= now && next_due < t_end) {
			struct conn *q = &conns[k++ % nconns];

			if (q->tail - q->head == QUEUE) {
				late++; /* that connection is hopelessly behind */
			} else {
				q->due[q->tail++ % QUEUE] = next_due;
				if (!q->busy && send_req(q))
					errors++;
			}
			next_due = t0 + k * 1e6 / rate;
		}
		/* then the answers to what was asked before the end, for a
		 * while: those still missing count as late */
		if (now >= t_end && (!rate || !waiting(conns, nconns) ||
				     now >= t_end + timeout_ms * 1e3))
			break;
		if (rate && next_due < t_end) {
			double wait = next_due - now;

			to = (struct timespec){ (time_t)(wait / 1e6), (long)(wait * 1e3) % 1000000000 };
		} else {
			double wait = (now < t_end ? t_end : t_end + timeout_ms * 1e3) - now;

			to = (struct timespec){ (time_t)(wait / 1e6), (long)(wait * 1e3) % 1000000000 };
		}
		n = epoll_pwait2(ep, evs, 64, &to, NULL);
		if (n < 0 && errno != EINTR) {
			perror("ks-load: epoll_pwait2");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *q = evs[i].data.ptr;
			ssize_t got = read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
			size_t rl;

			if (got <= 0) {
				if (got < 0 && errno == EAGAIN)
					continue;
				fprintf(stderr, "ks-load: the server closed a connection\n");
				return 1;
			}
			q->len += got;
			while ((rl = response_len(q->buf, q->len))) {
				double done = now_us(), due = q->due[q->head++ % QUEUE];

				if (strncmp(q->buf, "HTTP/1.1 200 ", 13))
					errors++;
				else if (due >= t_count && nlat < cap)
					lat[nlat++] = done - due;
				memmove(q->buf, q->buf + rl, q->len - rl);
				q->len -= rl;
				q->busy = 0;
				if (!rate)
					q->due[q->tail++ % QUEUE] = done;
				if (q->tail != q->head && send_req(q))
					errors++;
			}
			if (q->len == sizeof(q->buf)) {
				fprintf(stderr, "ks-load: a response too long\n");
				return 1;
			}
		}
	}
	for (int i = 0; i < nconns; i++) {
		late += conns[i].tail - conns[i].head;
		close(conns[i].fd);
	}
	if (!rate)
		late = 0; /* the one request in flight per connection is not late */
	qsort(lat, nlat, sizeof(*lat), cmp);
#define PCT(p) (nlat ? lat[(long)((nlat - 1) * (p))] : 0)
	printf("{\"offered\": %.0f, \"achieved\": %.0f, \"count\": %ld, \"errors\": %ld, "
	       "\"late\": %ld, \"conns\": %d, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, "
	       "\"p999\": %.1f, \"max\": %.1f}\n",
	       rate, nlat / seconds, nlat, errors, late, nconns, PCT(0.5), PCT(0.9), PCT(0.99),
	       PCT(0.999), PCT(1.0));
	free(lat);
	free(conns);
	return nlat ? 0 : 1;
}
