/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Hairpin, and which hook rewrites which end of a flow.
 *
 * Hairpin: a pod that is an endpoint of a frontend calls that frontend and
 * is itself chosen. Rewriting only the destination would hand it a packet
 * from its own address to its own address, and its answer would never come
 * back through the node. So such a flow's source is rewritten too, to the
 * hairpin address (kshiftd --hairpin-addr; by default 169.254.42.1 and
 * fd00:a9fe:2a01::1, after Cilium's service loopback address), keeping the
 * client's port, as kube-proxy masquerades hairpin traffic. The flow's
 * entries carry KS_CONN_HAIRPIN, and its reply key is (pod:port ->
 * hairpin:client port) (ks_ct_peer_key() in bpf/lib/conntrack.h). The
 * reply's destination goes back to the pod, its own source, and its source
 * to the frontend. The hairpin address is never routed by the node: the
 * pod sends its replies to its default gateway, the node, and kshift's
 * ingress program rewrites them before routing.
 *
 * Which hook rewrites what. TC, and XDP where it redirects (ks_xdp_redirect:
 * a NIC whose driver takes XDP_REDIRECT), rewrite both ends at ingress and
 * forward past the stack (bpf/lib/fwd.h): netfilter (conntrack, the
 * FORWARD chain, rp_filter) never sees a steered packet, whichever packet
 * of the flow it is. XDP that passes packets up the stack (a veth, where
 * XDP cannot redirect) would otherwise show the stack a flow whose two
 * directions do not match (client -> endpoint, then frontend -> client):
 * conntrack calls the reply INVALID, and rp_filter drops it unless a route
 * covers the frontend. There, XDP ingress rewrites destinations only (the
 * forward packet's to the endpoint, a hairpin reply's to the pod), and a
 * TC egress program on the same interfaces (bpf/lib/egress.h) rewrites
 * sources as packets leave (the reply's to the frontend, a hairpin forward
 * packet's to the hairpin address). The stack then sees one consistent
 * flow, client <-> endpoint, in both directions, and every packet of it
 * meets the FORWARD chain: a REJECT for an endpoint refuses flows through a
 * frontend too. A packet too big for its next hop is answered by the stack
 * there, not by kshift (bpf/lib/fwd.h). The loader says whether it
 * attaches the egress program (ks_xdp_split, in fwd.h); without it, XDP
 * rewrites both ends as TC does.
 */
#ifndef KS_BPF_HAIRPIN_H
#define KS_BPF_HAIRPIN_H

#include "common.h"
#include "ctx.h"
#include "fwd.h"
#include "nat.h"
#include "parse.h"

/* Set by the loader (kshiftd --hairpin-addr), in network order. */
const volatile __u8 ks_hairpin_v4[4] = { 169, 254, 42, 1 };
const volatile __u8 ks_hairpin_v6[16] = { 0xfd, 0x00, 0xa9, 0xfe, 0x2a, 0x01, 0, 0,
					  0,	0,    0,    0,	  0,	0,    0, 1 };

/* The hairpin address for ks_nat(), per CPU: off ks_process()'s stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_addr);
} ks_hp_scratch SEC(".maps");

static __always_inline void ks_hairpin_addr(__u8 family, struct ks_addr *a)
{
	int i;

	*a = (struct ks_addr){};
	if (family == KS_FAMILY_V4) {
#pragma unroll
		for (i = 0; i < 4; i++)
			a->bytes[i] = ks_hairpin_v4[i];
		return;
	}
#pragma unroll
	for (i = 0; i < 16; i++)
		a->bytes[i] = ks_hairpin_v6[i];
}

/* Rewrites the source of pkt to the hairpin address, the port kept. */
static __always_inline int ks_hairpin_snat(void *ctx, const bool xdp, struct ks_pkt *pkt)
{
	struct ks_addr *h;
	__u32 zero = 0;

	h = bpf_map_lookup_elem(&ks_hp_scratch, &zero);
	if (!h)
		return -1;
	ks_hairpin_addr(pkt->flow.family, h);
	return ks_nat(ctx, xdp, pkt, false, h, pkt->flow.sport);
}

/*
 * Rewrites a packet of an established flow (entry c) as this hook must.
 * Where both ends are rewritten here, in XDP only off a veth (see
 * ks_check_partial()): the second rewrite's checksum state is the first's.
 */
static __always_inline int ks_nat_flow(void *ctx, const bool xdp, struct ks_pkt *pkt,
				       const struct ks_conn *c, bool fwd)
{
	bool hairpin = c->flags & KS_CONN_HAIRPIN, up = ks_xdp_pass_up(xdp);

	if (fwd) {
		if (ks_nat(ctx, xdp, pkt, true, &c->addr, c->port))
			return -1;
		return hairpin && !up ? ks_hairpin_snat(ctx, xdp, pkt) : 0;
	}
	/* a hairpin reply goes back to the pod, which is its source */
	if (hairpin && ks_nat(ctx, xdp, pkt, true, &pkt->flow.saddr, pkt->flow.dport))
		return -1;
	return up ? 0 : ks_nat(ctx, xdp, pkt, false, &c->addr, c->port);
}

/* ... and the first packet of a new flow, steered to ep. */
static __always_inline int ks_nat_new(void *ctx, const bool xdp, struct ks_pkt *pkt,
				      const struct ks_endpoint *ep)
{
	if (ks_nat(ctx, xdp, pkt, true, &ep->addr, ep->port))
		return -1;
	if (ks_xdp_pass_up(xdp) || !ks_addr_eq(&ep->addr, &pkt->flow.saddr))
		return 0;
	return ks_hairpin_snat(ctx, xdp, pkt);
}

#endif /* KS_BPF_HAIRPIN_H */
