/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Passive health: no client fails because the endpoint its new connection
 * was steered to is going away (docs/health.md).
 *
 * kshift sees every handshake. When an endpoint answers a new flow's SYN
 * with a reset or an ICMP destination unreachable (its pod is shutting
 * down, its port is closed, a policy rejects it), the answer is held back
 * from the client: the flow is marked closed and the endpoint
 * quarantined. The client, having no answer, retransmits its SYN (about
 * 1 s later), and that SYN is steered anew, to another endpoint, the old
 * reply translation going with it (bpf/lib/conntrack.h). An endpoint that
 * does not answer at all is found out by the same retransmission: a SYN
 * that repeats the ISN of a flow still half-open.
 *
 *   endpoint's RST to a SYN_SENT flow  -> dropped, flow CLOSED, quarantine
 *   ICMP/ICMPv6 dest. unreachable
 *   quoting a SYN_SENT flow's SYN,
 *   from the endpoint or a router
 *   on its side (not frag needed;
 *   packet too big is no unreachable)  -> the same (ks_health_unreach,
 *                                          called from bpf/lib/icmp.h)
 *   client's SYN again (same ISN):
 *     flow CLOSED by such an answer    -> re-steered
 *     flow still SYN_SENT              -> quarantine, re-steered
 *   endpoint's SYN-ACK                 -> quarantine over
 *
 * Only TCP handshakes move: a flow that saw a SYN-ACK is ESTABLISHED and
 * keeps its endpoint (ks_ct_check), and an error about it is translated
 * (icmp.h); UDP has no handshake, and its unreachables are translated
 * too. A handshake moves at most KS_HEALTH_MAX_RESTEERS times; after that
 * the endpoint's answer reaches the client as it would without kshift.
 *
 * New flows avoid a quarantined endpoint (ks_health_avoid): first other
 * slots of the same backend's ring, then, for a handshake being moved, the
 * other backends by weight. A new flow whose backend has no endpoint out of
 * quarantine goes to it all the same: quarantine never empties a backend
 * (its share of new flows stays its own); if that endpoint refuses, the
 * flow moves on at its retransmission like any other. Quarantine lasts
 * KS_HEALTH_QUARANTINE_NS from the endpoint's last failure; after that one
 * new flow at a time tries it, and the first SYN-ACK it sends ends the
 * quarantine.
 *
 * Health costs nothing while no endpoint fails: ks_health_on holds when the
 * last quarantine began, and the health map is looked at only for
 * KS_HEALTH_ACTIVE_NS after that.
 *
 * The packet path's stack is nearly full (and a BPF-to-BPF call adds its
 * callee's frame to it): the keys built here live in a per-CPU scratch
 * map, and the search for another endpoint is a few unrolled tries, not a
 * loop, so that it adds few verifier states.
 */
#ifndef KS_BPF_HEALTH_H
#define KS_BPF_HEALTH_H

#include <kshift/hash.h>
#include "common.h"
#include "conntrack.h"
#include "maps.h"
#include "parse.h"
#include "ring.h"

#define KS_HEALTH_FRAG_NEEDED 4 /* code of ICMP_DEST_UNREACH: path MTU, not a refusal */

/* Per endpoint: quarantine and counters. LRU: an evicted record is an
 * endpoint long healthy, or long gone. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_MAX_HEALTH);
	__type(key, struct ks_ep_key);
	__type(value, struct ks_ep_health);
} ks_health SEC(".maps");

/* [0]: when the last quarantine began; 0: never. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ks_health_on SEC(".maps");

/* Keys under construction, off the stack. */
struct ks_health_tmp {
	struct ks_flow flow;
	struct ks_ep_key ep;
	__u32 idx;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_health_tmp);
} ks_health_tmp SEC(".maps");

/* A zeroed record, to insert from. */
static const struct ks_ep_health ks_health_zero;

static __always_inline struct ks_health_tmp *ks_health_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ks_health_tmp, &zero);
}

static __always_inline bool ks_health_active(__u64 now)
{
	__u32 zero = 0;
	__u64 *last = bpf_map_lookup_elem(&ks_health_on, &zero);

	return last && *last && now - *last < KS_HEALTH_ACTIVE_NS;
}

/*
 * The endpoint addr:port failed a handshake: refused it (reset,
 * unreachable) or left it unanswered. Its quarantine begins, or begins
 * again, now.
 */
static __always_inline void ks_health_failed(const struct ks_addr *addr, __be16 port, __u8 family,
					     bool refused, __u64 now)
{
	struct ks_health_tmp *t = ks_health_scratch();
	struct ks_ep_health *h;
	__u32 zero = 0;
	__u64 *last;

	if (!t)
		return;
	t->ep.addr = *addr;
	t->ep.port = port;
	t->ep.family = family;
	t->ep.pad = 0;
	h = bpf_map_lookup_elem(&ks_health, &t->ep);
	if (!h) {
		bpf_map_update_elem(&ks_health, &t->ep, &ks_health_zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&ks_health, &t->ep);
		if (!h)
			return;
	}
	if (!h->quarantined_ns)
		__sync_fetch_and_add(&h->quarantines, 1);
	if (refused)
		__sync_fetch_and_add(&h->refused, 1);
	else
		__sync_fetch_and_add(&h->unanswered, 1);
	h->quarantined_ns = now;
	last = bpf_map_lookup_elem(&ks_health_on, &zero);
	if (last)
		*last = now;
}

/*
 * Should a new flow stay off ep? While its quarantine lasts, yes; after
 * that, every flow but one in KS_HEALTH_TRIAL_NS, which tries it. Two CPUs
 * may both take the trial: harmless, each flow is moved if refused.
 */
static __always_inline bool ks_health_avoid(const struct ks_endpoint *ep, __u64 now)
{
	struct ks_ep_health *h;

	/* an endpoint begins with its ks_health key (include/kshift/abi.h) */
	h = bpf_map_lookup_elem(&ks_health, ep);
	if (!h || !h->quarantined_ns)
		return false;
	if (now - h->quarantined_ns < KS_HEALTH_QUARANTINE_NS ||
	    now - h->trial_ns < KS_HEALTH_TRIAL_NS)
		return true;
	h->trial_ns = now;
	return false;
}

/* A backend other than skip, picked by the weights of the rest with the
 * 32 high bits of h; KS_MAX_BACKENDS if there is none. Backend b's share is
 * [threshold[b-1], threshold[b]), the last backend's up to 2^32: skip's
 * share is cut out of the hash space and the rest walked as ks_pick does. */
static __always_inline __u32 ks_health_other_backend(const struct ks_split *split, __u32 skip,
						     __u64 h)
{
	__u64 lo = 0, hi = 1ULL << 32, x;
	__u32 n = split->nr_backends, b;

	skip &= KS_MAX_BACKENDS - 1;
	if (n < 2 || n > KS_MAX_BACKENDS)
		return KS_MAX_BACKENDS;
	if (skip > 0)
		lo = split->threshold[(skip - 1) & (KS_MAX_BACKENDS - 1)];
	if (skip + 1 < n)
		hi = split->threshold[skip];
	if (hi <= lo)
		hi = lo;
	if (hi - lo >= 1ULL << 32)
		return KS_MAX_BACKENDS;
	x = (h >> 32) % ((1ULL << 32) - (hi - lo));
	if (x >= lo)
		x += hi - lo;
#pragma unroll
	for (b = 0; b < KS_MAX_BACKENDS - 1; b++)
		if (b + 1 >= n || x < split->threshold[b])
			break;
	return b == skip ? KS_MAX_BACKENDS : b;
}

/* Endpoint try of backend b's endpoints from start (mod their number), if
 * it is there and new flows need not stay off it; else NULL. */
static __always_inline const struct ks_endpoint *ks_health_try(const struct ks_ring_slice *s,
							       struct ks_health_tmp *t, __u32 start,
							       __u32 try, __u64 now)
{
	const struct ks_endpoint *ep;
	__u32 n = s->nr_eps, idx;

	if (try >= n)
		return NULL;
	idx = start + try;
	if (idx >= n)
		idx -= n;
	t->idx = s->ep_base + idx;
	ep = bpf_map_lookup_elem(&ks_endpoints, &t->idx);
	if (!ep || ks_health_avoid(ep, now))
		return NULL;
	return ep;
}

/* Up to KS_HEALTH_PROBES (3) endpoints of backend b, consecutive from one
 * that h picks: with no more than that, none found means every one is
 * quarantined. Unrolled by hand: three tries. */
static __always_inline const struct ks_endpoint *
ks_health_probe(const struct ks_split *split, __u32 b, struct ks_health_tmp *t, __u64 h, __u64 now)
{
	const struct ks_ring_slice *s = &split->ring[b & (KS_MAX_BACKENDS - 1)];
	const struct ks_endpoint *ep;
	__u32 start;

	if (!s->nr_eps || s->nr_eps > KS_MAX_ENDPOINTS)
		return NULL;
	start = (__u32)h % s->nr_eps;
	ep = ks_health_try(s, t, start, 0, now);
	if (!ep)
		ep = ks_health_try(s, t, start, 1, now);
	if (!ep)
		ep = ks_health_try(s, t, start, 2, now);
	return ep;
}

/*
 * ks_pick's last step: ep, or, if new flows should stay off it, another of
 * its backend, else, for a handshake being moved (resteer), one of another
 * backend by weight. *backend follows the choice; with none found, ep
 * stays after all: quarantine never empties a backend.
 */
static __always_inline const struct ks_endpoint *ks_health_pick(const struct ks_split *split,
								__u32 *backend, __u64 flow_hash,
								const struct ks_endpoint *ep,
								bool resteer, __u64 now)
{
	__u64 h = ks_hash_mix(flow_hash + 1);
	const struct ks_endpoint *other;
	struct ks_health_tmp *t;
	__u32 b;

	if (!ep || !ks_health_active(now) || !ks_health_avoid(ep, now))
		return ep;
	t = ks_health_scratch();
	if (!t)
		return ep;
	other = ks_health_probe(split, *backend, t, h, now);
	if (other || !resteer)
		return other ? other : ep;
	b = ks_health_other_backend(split, *backend, h);
	if (b >= KS_MAX_BACKENDS)
		return ep;
	other = ks_health_probe(split, b, t, ks_hash_mix(h), now);
	if (!other)
		return ep;
	*backend = b;
	return other;
}

/*
 * A client's SYN on a flow it already has: is it a handshake to move?
 * Returns 0 if not, else the times the handshake will have moved (1..).
 * use is what ks_ct_check said. The same ISN again means the client had no
 * answer: the endpoint refused (the reset held back, the flow CLOSED) or
 * was silent (the flow still SYN_SENT: quarantined here). A copy sooner
 * than any retransmission timer fires is a duplicate, and stays.
 */
static __always_inline __u8 ks_health_resteer(const struct ks_pkt *pkt, const struct ks_conn *c,
					      enum ks_ct_use use, __u64 now)
{
	if (!c || !ks_ct_pure_syn(pkt) || c->dir != KS_DIR_FORWARD || c->isn != pkt->tcp_seq ||
	    c->resteers >= KS_HEALTH_MAX_RESTEERS || !ks_ct_live(c, now))
		return 0;
	if (use == KS_CT_MISS) {
		if (c->state != KS_CT_CLOSED)
			return 0;
	} else if (c->state == KS_CT_SYN_SENT && now - c->seen_ns >= KS_HEALTH_SYN_RETRY_NS) {
		ks_health_failed(&c->addr, c->port, pkt->flow.family, false, now);
	} else {
		return 0;
	}
	return c->resteers + 1;
}

/* A handshake just moved: its forward entry remembers how often. */
static __always_inline void ks_health_moved(const struct ks_flow *flow, __u8 resteers)
{
	struct ks_conn *c = bpf_map_lookup_elem(&ks_conns, flow);

	if (c)
		c->resteers = resteers;
}

/*
 * The endpoint of a half-open flow refused its handshake: key and c are the
 * flow's reply entry (the endpoint's side). If the handshake may still move
 * (and, with check_seq, seq is one the client's TCP accepts an error about
 * while its SYN is unanswered: the ISN or the next), the flow is closed
 * both ways, as a reset closes it, and the endpoint quarantined: returns
 * true, hold the answer back from the client.
 */
static __always_inline bool ks_health_refused(const struct ks_flow *key, struct ks_conn *c,
					      struct ks_health_tmp *t, __u32 seq, bool check_seq,
					      __u64 now)
{
	struct ks_conn *f;

	ks_ct_peer_key(key, c, &t->flow);
	f = bpf_map_lookup_elem(&ks_conns, &t->flow);
	if (!f || !ks_ct_is_peer(key, c, f) || f->state != KS_CT_SYN_SENT ||
	    f->resteers >= KS_HEALTH_MAX_RESTEERS || (check_seq && seq - f->isn > 1))
		return false;
	c->state = KS_CT_CLOSED;
	c->seen_ns = now;
	f->state = KS_CT_CLOSED;
	f->seen_ns = now;
	ks_health_failed(&key->saddr, key->sport, key->family, true, now);
	return true;
}

/*
 * An endpoint's packet on a half-open flow (reply entry c, before
 * ks_ct_update): a SYN-ACK ends the endpoint's quarantine; a reset is held
 * back (returns true: drop it) if the handshake may still move, the flow
 * closed both ways and the endpoint quarantined.
 */
static __always_inline bool ks_health_reply(const struct ks_pkt *pkt, struct ks_conn *c)
{
	struct ks_health_tmp *t;
	struct ks_ep_health *h;
	__u64 now;

	if (c->state != KS_CT_SYN_SENT || c->dir != KS_DIR_REPLY ||
	    !(pkt->tcp_flags & (KS_TCP_SYN | KS_TCP_RST)))
		return false;
	now = bpf_ktime_get_coarse_ns();
	t = ks_health_scratch();
	if (!t)
		return false;
	if (!(pkt->tcp_flags & KS_TCP_RST)) {
		if (!ks_health_active(now))
			return false;
		t->ep.addr = pkt->flow.saddr;
		t->ep.port = pkt->flow.sport;
		t->ep.family = pkt->flow.family;
		t->ep.pad = 0;
		h = bpf_map_lookup_elem(&ks_health, &t->ep);
		if (h && h->quarantined_ns) {
			h->quarantined_ns = 0;
			__sync_fetch_and_add(&h->recovered, 1);
		}
		return false;
	}
	return ks_health_refused(&pkt->flow, c, t, 0, false, now);
}

/*
 * An ICMP or ICMPv6 error on its way to a client, about the client's TCP
 * packet to an endpoint: key and c are the flow's reply entry (the quote
 * reversed), l4 the quoted TCP header, of which the quote holds l4_len
 * bytes. A destination unreachable about the SYN of a handshake still
 * half-open is a refusal: held back like a reset (returns true: drop it),
 * the flow closed, the endpoint quarantined. Whether the endpoint sent it
 * (port closed, a REJECT rule) or a router on its side did (host or net
 * unreachable, prohibited): the client's SYN cannot reach it either way,
 * and another endpoint may be reachable. Fragmentation needed (packet too
 * big in ICMPv6, another type) is path MTU discovery, not a refusal. An
 * error whose quoted sequence number the client's TCP would ignore (Linux:
 * outside [ISN, ISN + 1] in SYN_SENT) is no answer to the SYN, and passes.
 */
static __always_inline bool ks_health_unreach(const struct ks_flow *key, struct ks_conn *c, bool v4,
					      const __u8 *icmp, const __u8 *l4,
					      const void *data_end, __u32 l4_len)
{
	struct ks_health_tmp *t;
	const __be32 *seq;

	if (key->proto != IPPROTO_TCP || c->state != KS_CT_SYN_SENT || c->dir != KS_DIR_REPLY)
		return false;
	if (v4 ? icmp[0] != ICMP_DEST_UNREACH || icmp[1] == KS_HEALTH_FRAG_NEEDED
	       : icmp[0] != ICMPV6_DEST_UNREACH)
		return false;
	seq = (const __be32 *)(l4 + 4);
	if ((void *)(seq + 1) > data_end || l4_len < 8)
		return false;
	t = ks_health_scratch();
	if (!t)
		return false;
	return ks_health_refused(key, c, t, bpf_ntohl(*seq), true, bpf_ktime_get_coarse_ns());
}

#endif /* KS_BPF_HEALTH_H */
