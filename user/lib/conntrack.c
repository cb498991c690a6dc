// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Garbage collection, flushes and listing of the connection table. The
 * table is walked with batched lookups (one syscall for thousands of
 * entries); deletions are one syscall each, and take the two entries of a
 * flow together. The rules that pair entries and age them are those of
 * bpf/lib/conntrack.h, on the same ABI.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h>
#include "kshift.skel.h"
#include "conntrack.h"

uint64_t ks_ct_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * KS_NS_PER_SEC + ts.tv_nsec;
}

uint64_t ks_ct_timeout(const struct ks_dp *dp, uint8_t state)
{
	const struct ks_ct_timeouts *t = (const void *)&dp->skel->rodata->ks_ct_timeouts;

	switch (state) {
	case KS_CT_SYN_SENT:
		return t->syn_sent;
	case KS_CT_CLOSING:
		return t->closing;
	case KS_CT_CLOSED:
		return t->closed;
	case KS_CT_UDP:
		return t->udp;
	default:
		return t->established;
	}
}

const char *ks_ct_state_name(uint8_t state)
{
	static const char *const names[KS_CT_NR_STATES] = {
		[KS_CT_SYN_SENT] = "syn_sent", [KS_CT_ESTABLISHED] = "established",
		[KS_CT_CLOSING] = "closing",   [KS_CT_CLOSED] = "closed",
		[KS_CT_UDP] = "udp",
	};

	return state < KS_CT_NR_STATES && names[state] ? names[state] : "unknown";
}

static bool expired(const struct ks_dp *dp, const struct ks_conn *c, uint64_t now)
{
	return (int64_t)(now - c->seen_ns) > (int64_t)ks_ct_timeout(dp, c->state);
}

static bool early_syn(const struct ks_conn *c, uint64_t now)
{
	return c->state == KS_CT_SYN_SENT && (int64_t)(now - c->seen_ns) > (int64_t)KS_CT_GC_EARLY_SYN_NS;
}

/* ks_ct_peer_key() and ks_ct_is_peer() of bpf/lib/conntrack.h; a hairpin
 * flow's reply goes to the hairpin address the program was loaded with */
static void peer_key(const struct ks_dp *dp, const struct ks_flow *key, const struct ks_conn *c,
		     struct ks_flow *peer)
{
	bool fwd = c->dir == KS_DIR_FORWARD, hairpin = c->flags & KS_CONN_HAIRPIN;

	memset(peer, 0, sizeof(*peer));
	peer->saddr = fwd ? c->addr : hairpin ? key->saddr : key->daddr;
	peer->daddr = fwd ? key->saddr : c->addr;
	peer->sport = fwd ? c->port : key->dport;
	peer->dport = fwd ? key->sport : c->port;
	peer->proto = key->proto;
	peer->family = key->family;
	if (hairpin && fwd) {
		memset(&peer->daddr, 0, sizeof(peer->daddr));
		if (key->family == KS_FAMILY_V4)
			memcpy(&peer->daddr, (const void *)dp->skel->rodata->ks_hairpin_v4, 4);
		else
			memcpy(&peer->daddr, (const void *)dp->skel->rodata->ks_hairpin_v6, 16);
	}
}

static bool is_peer(const struct ks_flow *key, const struct ks_conn *c, const struct ks_conn *p)
{
	bool fwd = c->dir == KS_DIR_FORWARD;

	return p->dir != c->dir && p->port == (fwd ? key->dport : key->sport) &&
	       !memcmp(&p->addr, fwd ? &key->daddr : &key->saddr, sizeof(p->addr));
}

static int conns_fd(const struct ks_dp *dp)
{
	return bpf_map__fd(dp->skel->maps.ks_conns);
}

/* An expired entry goes with its flow, unless the other direction is live
 * (the datapath refreshes both within KS_CT_TOUCH_NS of each other). */
static bool collect(struct ks_dp *dp, const struct ks_flow *key, const struct ks_conn *c,
		    uint64_t now, bool early)
{
	struct ks_flow pk;
	struct ks_conn p;
	bool paired;

	if (!expired(dp, c, now) && !(early && early_syn(c, now)))
		return false;
	peer_key(dp, key, c, &pk);
	paired = !bpf_map_lookup_elem(conns_fd(dp), &pk, &p) && is_peer(key, c, &p);
	if (paired && !expired(dp, &p, now) && !(early && early_syn(&p, now)))
		return false;
	if (paired)
		bpf_map_delete_elem(conns_fd(dp), &pk);
	bpf_map_delete_elem(conns_fd(dp), key);
	return true;
}

struct walk {
	struct ks_flow *keys;
	struct ks_conn *vals;
	uint32_t cap;
};

static int walk_init(struct walk *w, uint32_t cap)
{
	w->cap = cap;
	w->keys = calloc(cap, sizeof(*w->keys));
	w->vals = calloc(cap, sizeof(*w->vals));
	if (!w->keys || !w->vals) {
		free(w->keys);
		free(w->vals);
		return -ENOMEM;
	}
	return 0;
}

static void walk_free(struct walk *w)
{
	free(w->keys);
	free(w->vals);
}

/* The next batch after *batch (the start if first). Returns the number of
 * entries, and sets *done at the end of the table; or -errno. */
static int walk_next(struct ks_dp *dp, struct walk *w, uint32_t *batch, bool first, bool *done)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint32_t out = 0, count = w->cap;
	int err;

	err = bpf_map_lookup_batch(conns_fd(dp), first ? NULL : batch, &out, w->keys, w->vals,
				   &count, &opts);
	if (err && errno != ENOENT)
		return -errno;
	*done = err != 0;
	*batch = out;
	return (int)count;
}

/* What a queued flush matches: a service's flows to one endpoint, or with
 * ep all zero, all of them. Built on zeroed memory: compared as bytes. */
struct ks_ct_flush_key {
	uint32_t svc;
	struct ks_endpoint ep;
};

static struct ks_ct_flush_key flush_key(uint32_t svc, const struct ks_endpoint *ep)
{
	struct ks_ct_flush_key k;

	memset(&k, 0, sizeof(k));
	k.svc = svc;
	if (ep) {
		k.ep.addr = ep->addr;
		k.ep.port = ep->port;
		k.ep.family = ep->family;
	}
	return k;
}

int ks_ct_gc_flush(struct ks_ct_gc *gc, uint32_t svc, const struct ks_endpoint *ep)
{
	struct ks_ct_flush_key k = flush_key(svc, ep);

	/* covered from the next pass that starts, so a pass under way also
	 * deletes what it still meets of these flows */
	return ks_index_put(&gc->flushes, &k, sizeof(k),
			    (void *)(uintptr_t)(gc->pass + 1 + gc->in_pass));
}

bool ks_ct_gc_urgent(const struct ks_ct_gc *gc)
{
	return gc->flushes.n > 0;
}

void ks_ct_gc_destroy(struct ks_ct_gc *gc)
{
	ks_index_destroy(&gc->flushes);
}

/* Whether a queued flush takes this entry's flow. */
static bool flushed(const struct ks_ct_gc *gc, const struct ks_flow *key, const struct ks_conn *c)
{
	bool fwd = c->dir == KS_DIR_FORWARD;
	struct ks_endpoint ep = {
		.addr = fwd ? c->addr : key->saddr,
		.port = fwd ? c->port : key->sport,
		.family = key->family,
	};
	struct ks_ct_flush_key k;

	if (!gc->flushes.n)
		return false;
	k = flush_key(c->svc, NULL);
	if (ks_index_get(&gc->flushes, &k, sizeof(k)))
		return true;
	k = flush_key(c->svc, &ep);
	return ks_index_get(&gc->flushes, &k, sizeof(k));
}

/* At the end of pass gc->pass: the flushes it covered whole are done. */
static int flush_done(const void *key, size_t len, void *value, void *arg)
{
	struct ks_ct_gc *gc = arg;

	if ((uintptr_t)value <= gc->pass)
		ks_index_del(&gc->flushes, key, len);
	return 0;
}

int ks_ct_gc_step(struct ks_dp *dp, struct ks_ct_gc *gc, uint64_t now_ns, uint32_t budget,
		  struct ks_ct_gc_stats *st)
{
	struct ks_index flushes;
	bool done, pressure;
	struct walk w;
	uint64_t pass;
	int n, i, err;

	if (!budget)
		budget = KS_CT_GC_BUDGET;
	if (gc->pressure)
		budget *= KS_CT_GC_PRESSURE_MUL;
	/* a hash bucket must fit in one batch: a few entries at most */
	err = walk_init(&w, budget < 64 ? 64 : budget);
	if (err)
		return err;
	n = walk_next(dp, &w, &gc->batch, !gc->in_pass, &done);
	if (n < 0) {
		walk_free(&w);
		gc->in_pass = false;
		return n;
	}
	gc->in_pass = true;
	for (i = 0; i < n; i++) {
		bool fwd = w.vals[i].dir == KS_DIR_FORWARD;

		st->scanned++;
		if (flushed(gc, &w.keys[i], &w.vals[i])) {
			/* its other entry matches the same flush */
			bpf_map_delete_elem(conns_fd(dp), &w.keys[i]);
			st->flushed += fwd;
		} else if (collect(dp, &w.keys[i], &w.vals[i], now_ns, gc->pressure)) {
			st->expired += fwd;
			st->early += fwd && !expired(dp, &w.vals[i], now_ns);
		} else {
			gc->live += fwd;
			gc->entries++;
		}
	}
	walk_free(&w);
	if (!done)
		return 0;
	st->live = gc->live;
	st->passes++;
	pressure = gc->entries * 100 >
		   (uint64_t)bpf_map__max_entries(dp->skel->maps.ks_conns) * KS_CT_GC_PRESSURE_PCT;
	flushes = gc->flushes;
	pass = gc->pass + 1;
	memset(gc, 0, sizeof(*gc));
	gc->pressure = pressure;
	gc->pass = pass;
	gc->flushes = flushes;
	ks_index_foreach(&gc->flushes, flush_done, gc);
	return 1;
}

int ks_ct_gc(struct ks_dp *dp, struct ks_ct_gc *gc, uint64_t now_ns, struct ks_ct_gc_stats *st)
{
	int err;

	while (!(err = ks_ct_gc_step(dp, gc, now_ns, 0, st)))
		;
	return err < 0 ? err : 0;
}

/* Calls fn on every entry of the table. */
static int walk_all(struct ks_dp *dp,
		    int (*fn)(struct ks_dp *dp, const struct ks_flow *key, const struct ks_conn *c,
			      void *arg),
		    void *arg)
{
	uint32_t batch = 0;
	bool done = false, first = true;
	struct walk w;
	int n, i, ret = 0;

	if ((ret = walk_init(&w, KS_CT_GC_BUDGET)))
		return ret;
	while (!done && !ret) {
		n = walk_next(dp, &w, &batch, first, &done);
		first = false;
		if (n < 0) {
			ret = n;
			break;
		}
		for (i = 0; i < n && !ret; i++)
			ret = fn(dp, &w.keys[i], &w.vals[i], arg);
	}
	walk_free(&w);
	return ret;
}

struct flush {
	uint32_t svc; /* UINT32_MAX: any */
	const struct ks_index *svcs; /* and in this set (NULL: any) */
	const struct ks_endpoint *ep;
	int flows;
	struct ks_flow *keys; /* to delete: both entries of a flow match */
	size_t n, cap;
};

static int flush_one(struct ks_dp *dp, const struct ks_flow *key, const struct ks_conn *c,
		     void *arg)
{
	struct flush *f = arg;
	bool fwd = c->dir == KS_DIR_FORWARD;

	if ((f->svc != UINT32_MAX && c->svc != f->svc) ||
	    (f->svcs && !ks_index_get(f->svcs, &c->svc, sizeof(c->svc))))
		return 0;
	if (f->ep) {
		const struct ks_addr *addr = fwd ? &c->addr : &key->saddr;
		uint16_t port = fwd ? c->port : key->sport;

		if (key->family != f->ep->family || port != f->ep->port ||
		    memcmp(addr, &f->ep->addr, sizeof(*addr)))
			return 0;
	}
	(void)dp;
	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 4096;
		struct ks_flow *k = realloc(f->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		f->keys = k;
		f->cap = cap;
	}
	f->keys[f->n++] = *key;
	f->flows += fwd;
	return 0;
}

/* Deletes keys[0..n) in batches; a key gone meanwhile (the datapath
 * re-steered its flow) is skipped. */
static void delete_keys(struct ks_dp *dp, const struct ks_flow *keys, size_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	size_t done = 0;
	uint32_t count;

	while (done < n) {
		count = n - done > KS_CT_GC_BUDGET ? KS_CT_GC_BUDGET : n - done;
		if (bpf_map_delete_batch(conns_fd(dp), keys + done, &count, &opts) && !count)
			count = 1; /* the first is gone: skip it */
		done += count;
	}
}

static int flush(struct ks_dp *dp, struct flush *f)
{
	int err = walk_all(dp, flush_one, f);

	if (!err)
		delete_keys(dp, f->keys, f->n);
	free(f->keys);
	return err < 0 ? err : f->flows;
}

int ks_ct_flush_endpoint(struct ks_dp *dp, uint32_t svc, const struct ks_endpoint *ep)
{
	return flush(dp, &(struct flush){ .svc = svc, .ep = ep });
}

int ks_ct_flush_svc(struct ks_dp *dp, uint32_t svc)
{
	return flush(dp, &(struct flush){ .svc = svc });
}

int ks_ct_flush_svcs(struct ks_dp *dp, const struct ks_index *svcs)
{
	return flush(dp, &(struct flush){ .svc = UINT32_MAX, .svcs = svcs });
}

int ks_ct_flush_all(struct ks_dp *dp)
{
	return flush(dp, &(struct flush){ .svc = UINT32_MAX });
}

struct list {
	uint32_t svc;
	uint64_t now;
	int (*cb)(const struct ks_ct_flow *flow, void *arg);
	void *arg;
};

static int list_one(struct ks_dp *dp, const struct ks_flow *key, const struct ks_conn *c,
		    void *arg)
{
	struct list *l = arg;
	struct ks_ct_flow f = {
		.family = key->family,
		.proto = key->proto,
		.state = c->state,
		.backend = c->backend,
		.svc = c->svc,
		.client = key->saddr,
		.frontend = key->daddr,
		.endpoint = c->addr,
		.client_port = ntohs(key->sport),
		.frontend_port = ntohs(key->dport),
		.endpoint_port = ntohs(c->port),
		.idle_ns = (int64_t)(l->now - c->seen_ns) > 0 ? l->now - c->seen_ns : 0,
		.expired = expired(dp, c, l->now),
	};

	if (c->dir != KS_DIR_FORWARD || (l->svc != UINT32_MAX && c->svc != l->svc))
		return 0;
	return l->cb(&f, l->arg);
}

int ks_ct_list(struct ks_dp *dp, uint32_t svc, uint64_t now_ns,
	       int (*cb)(const struct ks_ct_flow *flow, void *arg), void *arg)
{
	struct list l = { .svc = svc, .now = now_ns, .cb = cb, .arg = arg };

	return walk_all(dp, list_one, &l);
}
