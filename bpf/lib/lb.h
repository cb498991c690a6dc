/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The packet logic of kshift, written once for XDP and TC:
 *
 *   established flow (either direction) -> ks_conns says how to rewrite it
 *                                          (bpf/lib/conntrack.h: states, expiry)
 *   new flow to a frontend              -> weighted backend, Maglev endpoint,
 *                                          remembered in ks_conns, DNAT
 *   a flow's first reply                -> its entry made from the flow's
 *                                          (ks_eprev leads to it), reverse NAT
 *   new flow, no usable endpoint        -> TCP reset / ICMP unreachable
 *   ICMP error about a steered flow     -> translated like the flow (icmp.h)
 *   anything else                       -> untouched
 *
 * A new flow's backend: a source rule's if one matches (bpf/lib/rules.h),
 * else the split's weights.
 *
 * A steered packet too big for its next hop that may not be fragmented
 * (IPv4 with DF, IPv6) is not forwarded but answered, in either direction:
 * an ICMP fragmentation needed or packet too big to its sender, from the
 * address it was sent to, quoting it as it was sent (bpf/lib/mtu.h, from
 * ks_forward()), so path MTU discovery works through a frontend.
 *
 * Fragments (bpf/lib/frag.h): the first fragment of a datagram is steered
 * like any packet of its flow, and the later ones follow it, in both
 * directions. A later fragment to a frontend address whose first was not
 * seen cannot be steered and is dropped (KS_V_DROP_FRAGMENT); other
 * fragments pass untouched.
 *
 * Which end of a flow is rewritten where (bpf/lib/hairpin.h): TC, and XDP
 * that redirects, rewrite both here and forward past the stack; XDP that
 * passes packets up the stack rewrites destinations only, and leaves
 * sources to the egress program (bpf/lib/egress.h), so that netfilter
 * sees one consistent flow. A client steered to itself (hairpin) has its
 * source rewritten too, to the hairpin address.
 */
#ifndef KS_BPF_LB_H
#define KS_BPF_LB_H

#include <kshift/hash.h>
#include "common.h"
#include "conntrack.h"
#include "ctx.h"
#include "frag.h"
#include "fwd.h"
#include "hairpin.h"
#include "health.h"
#include "icmp.h"
#include "maps.h"
#include "mirror.h"
#include "nat.h"
#include "parse.h"
#include "reject.h"
#include "rules.h"

/* Set by the loader: a per-node secret, so clients cannot aim many flows
 * at one endpoint. Userspace tests set it to a known value. */
const volatile __u64 ks_hash_seed = 0x9e3779b97f4a7c15ULL;

static __always_inline __u64 ks_hash_addr(__u64 h, const struct ks_addr *a, __u8 family)
{
	const __u64 *w = (const __u64 *)a;

	if (family == KS_FAMILY_V4)
		return ks_hash_mix(h ^ a->v4);
	return ks_hash_mix(ks_hash_mix(h ^ w[0]) ^ w[1]);
}

/* A flow's 5-tuple hash: its backend (affinity: connection) and, always,
 * its endpoint within that backend. */
static __always_inline __u64 ks_hash_flow(const struct ks_flow *f)
{
	__u64 h = ks_hash_addr(ks_hash_seed, &f->saddr, f->family);

	h = ks_hash_addr(h, &f->daddr, f->family);
	return ks_hash_mix(h ^ ((__u64)f->sport << 32 | (__u64)f->dport << 16 | f->proto));
}

static __always_inline void ks_count(__u32 svc, __u32 backend, __u32 bytes, bool new_flow,
				     bool rejected)
{
	__u32 slot = svc * KS_STATS_PER_SVC + backend;
	struct ks_counters *c = bpf_map_lookup_elem(&ks_stats, &slot);

	if (!c)
		return;
	c->packets++;
	c->bytes += bytes;
	c->new_flows += new_flow;
	c->rejected += rejected;
}

static __always_inline void ks_count_verdict(enum ks_verdict verdict)
{
	__u32 key = verdict;
	__u64 *n = bpf_map_lookup_elem(&ks_verdicts, &key);

	if (n)
		(*n)++;
}

/* The exits of every program: count why, return what. */
static __always_inline int ks_finish(void *ctx, const bool xdp, enum ks_verdict verdict,
				     enum ks_action act)
{
	ks_count_verdict(verdict);
	return ks_retcode(ctx, xdp, act);
}

/* ... and for a rewritten packet, on to its next hop, unless it is too big
 * for it and answered instead (bpf/lib/mtu.h). */
static __always_inline int ks_finish_nat(void *ctx, const bool xdp, enum ks_verdict verdict,
					 struct ks_pkt *pkt)
{
	int ret = ks_forward(ctx, xdp, pkt, &verdict);

	ks_count_verdict(verdict);
	return ret;
}

static __always_inline bool ks_is_frontend_addr(const struct ks_pkt *pkt)
{
	struct ks_frontend_key key = {
		.addr = pkt->flow.daddr,
		.family = pkt->flow.family,
	};

	return bpf_map_lookup_elem(&ks_frontends, &key) != NULL;
}

/* Picks the endpoint for a new flow, or NULL when none can take it.
 * resteer: the flow is a handshake moved off a failed endpoint; now: the
 * coarse clock (ks_ct_now()), for health. */
static __always_inline const struct ks_endpoint *ks_pick(__u32 svc, const struct ks_flow *flow,
							 __u32 *backend, bool resteer, __u64 now)
{
	const struct ks_endpoint *ep;
	const struct ks_split *split;
	__u32 key, i, hash;
	const __u32 *gen;
	__u64 flow_hash;

	gen = bpf_map_lookup_elem(&ks_svc_gen, &svc);
	if (!gen)
		return NULL;
	key = svc * KS_GENERATIONS + (*gen & 1);
	split = bpf_map_lookup_elem(&ks_splits, &key);
	if (!split)
		return NULL;

	/* client affinity: the client's hash picks backend and endpoint, so
	 * every flow of a client lands on one endpoint */
	if (split->flags & KS_SPLIT_CLIENT_AFFINITY)
		flow_hash = ks_hash_addr(ks_hash_seed, &flow->saddr, flow->family);
	else
		flow_hash = ks_hash_flow(flow);
	i = ks_rule_backend(split, key, flow);
	if (i >= KS_MAX_BACKENDS) {
		if (!split->nr_backends)
			return NULL;
		hash = flow_hash >> 32;
		/* the threshold walk of ks_split_pick() in user/lib/maglev.h */
#pragma unroll
		for (i = 0; i < KS_MAX_BACKENDS - 1; i++)
			if (i + 1 >= split->nr_backends || hash < split->threshold[i])
				break;
	}
	*backend = i;
	ep = ks_ring_ep(&split->ring[i & (KS_MAX_BACKENDS - 1)], flow_hash);
	/* a quarantined endpoint's new flows go elsewhere (bpf/lib/health.h) */
	return ks_health_pick(split, backend, flow_hash, ep, resteer, now);
}

/* A new flow that no endpoint can take: answered at once, with a reset or
 * an unreachable. */
static __always_inline int ks_reject(void *ctx, const bool xdp, struct ks_pkt *pkt, __u32 svc,
				     __u32 len)
{
	bool tx = ks_reply_tx(xdp), tcp = pkt->flow.proto == IPPROTO_TCP;
	enum ks_action act;

	ks_count(svc, KS_STATS_NONE, len, true, true);
	ks_check_partial(ctx, xdp, pkt);
	act = tcp ? ks_reply_reset(ctx, xdp, pkt, tx) : ks_reply_unreach(ctx, xdp, pkt, tx);
	if (act != KS_ACT_TX)
		return ks_finish(ctx, xdp, KS_V_DROP_NO_ENDPOINT, KS_ACT_DROP);
	return ks_finish(ctx, xdp, tcp ? KS_V_REJECT_RESET : KS_V_REJECT_UNREACH,
			 tx ? KS_ACT_TX : KS_ACT_PASS);
}

/* The first packet of a flow to frontend fe (found at the flow's key: stale,
 * an entry that is over; resteer: a handshake moved off a failed endpoint). */
static __always_inline int ks_new_flow(void *ctx, const bool xdp, struct ks_pkt *pkt,
				       const struct ks_frontend *fe, const struct ks_conn *stale,
				       __u8 resteer, __u64 now, __u32 len)
{
	const struct ks_endpoint *ep;
	__u32 backend = 0;
	int ret;

	ep = ks_pick(fe->svc, &pkt->flow, &backend, resteer, now);
	if (!ep)
		return ks_reject(ctx, xdp, pkt, fe->svc, len);

	ret = ks_ct_create(pkt, stale, fe, ep, backend, now);
	if (ret)
		return ks_finish(ctx, xdp, ret, KS_ACT_DROP);
	if (unlikely(resteer))
		ks_health_moved(&pkt->flow, resteer);
	if (unlikely(pkt->frag))
		ks_frag_track(pkt, true, &ep->addr, fe->svc, backend);
	ks_count(fe->svc, backend, len, true, false);
	if (unlikely(ks_mirror_on(fe->svc)))
		ks_mirror_start(ctx, xdp, pkt, fe->svc, ep, ks_hash_flow(&pkt->flow));
	if (ks_nat_new(ctx, xdp, pkt, ep))
		return ks_finish(ctx, xdp, KS_V_ABORTED, KS_ACT_DROP);
	return ks_finish_nat(ctx, xdp, resteer ? KS_V_NAT_RESTEER : KS_V_NAT_NEW, pkt);
}

static __always_inline int ks_process(void *ctx, const bool xdp)
{
	struct ks_pkt pkt = {};
	const struct ks_frontend *fe;
	struct ks_frontend_key key;
	enum ks_ct_use use;
	struct ks_conn *conn;
	bool fwd;
	__u8 resteer;
	__u64 now;
	__u32 len;
	int ret;

	ks_pull(ctx, xdp, KS_L2_MAX + KS_L3_MAX + sizeof(struct tcphdr));
	len = ks_frame_len(ctx, xdp);
	ret = ks_parse(ks_data(ctx, xdp), ks_data_end(ctx, xdp), len, &pkt);
	switch (ret) {
	case KS_PARSE_OK:
		break;
	case KS_PARSE_NOT_IP:
		return ks_finish(ctx, xdp, KS_V_PASS_NOT_IP, KS_ACT_PASS);
	case KS_PARSE_NOT_L4:
		ret = ks_icmp(ctx, xdp, &pkt);
		return ks_finish(ctx, xdp, ret < 0 ? KS_V_PASS_NOT_L4 : ret,
				 ret == KS_V_DROP_UNREACH_HELD || ret == KS_V_DROP_CT_FULL
					 ? KS_ACT_DROP
					 : KS_ACT_PASS);
	case KS_PARSE_FRAGMENT:
		ret = ks_frag_follow(ctx, xdp, &pkt);
		if (ret == KS_V_NAT_FRAGMENT)
			return ks_finish_nat(ctx, xdp, ret, &pkt);
		if (ret >= 0)
			return ks_finish(ctx, xdp, ret, KS_ACT_DROP);
		if (ks_is_frontend_addr(&pkt))
			return ks_finish(ctx, xdp, KS_V_DROP_FRAGMENT, KS_ACT_DROP);
		return ks_finish(ctx, xdp, KS_V_PASS_FRAGMENT, KS_ACT_PASS);
	default:
		if (ks_is_frontend_addr(&pkt))
			return ks_finish(ctx, xdp, KS_V_DROP_MALFORMED, KS_ACT_DROP);
		return ks_finish(ctx, xdp, KS_V_PASS_NO_MATCH, KS_ACT_PASS);
	}

	now = ks_ct_now();
	conn = bpf_map_lookup_elem(&ks_conns, &pkt.flow);
	use = ks_ct_check(&pkt, conn, now);
	/* a handshake its endpoint refused or ignored moves (health.h) */
	resteer = ks_health_resteer(&pkt, conn, use, now);
	if (use == KS_CT_MISS || resteer) {
		key = (struct ks_frontend_key){
			.addr = pkt.flow.daddr,
			.port = pkt.flow.dport,
			.proto = pkt.flow.proto,
			.family = pkt.flow.family,
		};
		fe = bpf_map_lookup_elem(&ks_frontends, &key);
		if (fe)
			return ks_new_flow(ctx, xdp, &pkt, fe, conn, resteer, now, len);
		/* no frontend's: the first reply of a flow (conntrack.h)? */
		ret = ks_ct_first_reply_like(&pkt)
			      ? ks_ct_reply_entry(&pkt.flow, pkt.tcp_flags, now, &conn)
			      : KS_CT_REPLY_NONE;
		switch (ret) {
		case KS_CT_REPLY_ENTERED:
			use = KS_CT_HIT;
			break;
		case KS_CT_REPLY_FULL:
			return ks_finish(ctx, xdp, KS_V_DROP_CT_FULL, KS_ACT_DROP);
		default:
			if (unlikely(ks_mirror_shadow_reply(&pkt)))
				return ks_finish(ctx, xdp, KS_V_DROP_SHADOW_REPLY, KS_ACT_DROP);
			ks_ct_forget_reused(&pkt, conn);
			return ks_finish(ctx, xdp, KS_V_PASS_NO_MATCH, KS_ACT_PASS);
		}
	}

	fwd = conn->dir == KS_DIR_FORWARD;
	if (unlikely(!fwd && ks_health_reply(&pkt, conn)))
		return ks_finish(ctx, xdp, KS_V_DROP_REFUSED, KS_ACT_DROP);
	if (use == KS_CT_HIT)
		ks_ct_update(&pkt, conn, now);
	/* XDP passing up: a reply's later fragments are the egress's */
	if (unlikely(pkt.frag) && (fwd || !ks_xdp_pass_up(xdp)))
		ks_frag_track(&pkt, fwd, &conn->addr, conn->svc, conn->backend);
	ks_count(conn->svc, conn->backend, len, false, false);
	if (unlikely(conn->flags & KS_CONN_MIRRORED))
		ks_mirror(ctx, xdp, &pkt, conn, fwd);
	if (ks_nat_flow(ctx, xdp, &pkt, conn, fwd))
		return ks_finish(ctx, xdp, KS_V_ABORTED, KS_ACT_DROP);
	return ks_finish_nat(ctx, xdp, fwd ? KS_V_NAT_ESTABLISHED : KS_V_NAT_REPLY, &pkt);
}

#endif /* KS_BPF_LB_H */
