/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path MTU discovery through a frontend. A steered packet too big for its
 * next hop (bpf/lib/fwd.h asks the FIB) that may not be fragmented (IPv4
 * with DF; IPv6 always) is answered by kshift itself, as Cilium does for
 * its NAT: an ICMP fragmentation needed (RFC 1191) or ICMPv6 packet too big
 * (RFC 8201) with the next hop's MTU, to the packet's sender, from the
 * address the sender sent it to, quoting the packet as the sender sent it;
 * the packet is dropped. The stack cannot do it: it would answer the
 * translated packet, to its translated source (a frontend, which has no
 * route; or an endpoint the client never addressed), and the errors it
 * makes itself never pass kshift's ingress programs to be translated.
 *
 * The packet has been translated by then, so the translation is undone
 * first, from pkt->flow (the tuple as parsed): addresses and ports put
 * back, with the checksums updated the inverse way ks_nat() updated them
 * (a partial L4 checksum by the addresses only), which gives back the
 * sender's bytes. The answer leaves by the interface the packet came in on
 * (a TC redirect, XDP_TX), or in native XDP on a veth goes up the stack,
 * which routes it to the sender (see ks_reject()).
 *
 * Left to the stack as before: IPv4 without DF (it fragments the packet,
 * translated), later fragments (no L4 header to quote; the first, as large,
 * is answered), IPv6 with extension headers.
 */
#ifndef KS_BPF_MTU_H
#define KS_BPF_MTU_H

#include "common.h"
#include "csum.h"
#include "ctx.h"
#include "nat.h"
#include "parse.h"
#include "reject.h"

/* The smallest MTU a link may have (RFC 791; RFC 8200): a packet no longer
 * than this fits any next hop, and is not looked up for it alone. */
#define KS_MTU_MIN_V4 68
#define KS_MTU_MIN_V6 1280

static __always_inline bool ks_mtu_always_fits(const struct ks_pkt *pkt)
{
	return pkt->l3_len <= (pkt->flow.family == KS_FAMILY_V4 ? KS_MTU_MIN_V4 : KS_MTU_MIN_V6);
}

/* Puts one end (dst: destination, else source) of a translated packet
 * back to pkt->flow's address and port. Returns 0, or -1 if the headers
 * are not where the parser saw them. */
static __always_inline int ks_mtu_unnat(void *ctx, const bool xdp, const struct ks_pkt *pkt,
					bool dst)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	bool v4 = pkt->flow.family == KS_FAMILY_V4;
	bool tcp = pkt->flow.proto == IPPROTO_TCP;
	__u32 l3 = pkt->l3_off & 0x1f, l4 = pkt->l4_off & 0x1ff;
	const struct ks_addr *addr = dst ? &pkt->flow.daddr : &pkt->flow.saddr;
	__be16 port = dst ? pkt->flow.dport : pkt->flow.sport;
	__be32 *field = data + l3 + (v4 ? (dst ? 16 : 12) : (dst ? 24 : 8));
	__be16 *port_field = data + l4 + (dst ? 2 : 0);
	__sum16 *l4_check = data + l4 + (tcp ? 16 : 6);
	__u32 addr_diff, port_diff;
	__u16 check;

	if ((void *)(l4_check + 1) > data_end || (void *)(port_field + 1) > data_end)
		return -1;
	if (v4) {
		if ((void *)(field + 1) > data_end)
			return -1;
		if (*field == addr->v4 && *port_field == port)
			return 0;
		addr_diff = ks_csum_diff_words(field, &addr->v4, 1);
		*field = addr->v4;
	} else {
		if ((void *)(field + 4) > data_end)
			return -1;
		if (!((field[0] ^ addr->v6[0]) | (field[1] ^ addr->v6[1]) |
		      (field[2] ^ addr->v6[2]) | (field[3] ^ addr->v6[3])) &&
		    *port_field == port)
			return 0;
		addr_diff = ks_csum_diff_words(field, addr->v6, 4);
		__builtin_memcpy(field, addr->v6, 16);
	}
	port_diff = ks_csum_diff16(*port_field, port);
	*port_field = port;

	if (v4) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > data_end)
			return -1;
		ip->check = ks_csum_update(ip->check, addr_diff);
	}
	if (pkt->partial) {
		/* a seed: the pseudo header's addresses only (see nat.h) */
		*l4_check = ~ks_csum_update(~*l4_check, addr_diff);
	} else if (tcp || !v4 || *l4_check) {
		/* UDP's "none" stays none; a computed 0 is sent as 0xffff */
		check = ks_csum_update(*l4_check, ks_csum_add(addr_diff, port_diff));
		*l4_check = (!tcp && check == 0) ? 0xffff : check;
	}
	return 0;
}

/* What ks_mtu_too_big() hands its global functions, per CPU: the packet as
 * parsed, and the next hop's MTU. */
struct ks_mtu_tmp {
	struct ks_pkt pkt;
	__u32 mtu;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_mtu_tmp);
} ks_mtu_tmp SEC(".maps");

/* The packet put back as its sender sent it: 0, or -1 if it cannot be. */
static __always_inline int ks_mtu_unnat_both(void *ctx, const bool xdp, struct ks_mtu_tmp *t)
{
	if (!t)
		return -1;
	/* XDP knows since ks_nat(); TC asks the skb */
	if (!xdp)
		ks_check_partial(ctx, xdp, &t->pkt);
	if (ks_mtu_unnat(ctx, xdp, &t->pkt, true) || ks_mtu_unnat(ctx, xdp, &t->pkt, false))
		return -1;
	return 0;
}

/* ... and answered, quoted: KS_ACT_TX, or KS_ACT_DROP if it cannot be. */
static __always_inline int ks_mtu_reply(void *ctx, const bool xdp, struct ks_mtu_tmp *t)
{
	if (!t)
		return KS_ACT_DROP;
	return ks_reply_icmp(ctx, xdp, &t->pkt, ks_reply_tx(xdp), KS_ICMP_REPLY_TOO_BIG, t->mtu);
}

/*
 * The answer in global functions of each hook, verified once on their own.
 * Inlined, it was verified again at every way out of ks_process() that
 * forwards a packet, with every state each way had: ks_tc took 923,465 of
 * the verifier's million instructions with an own hairpin address, and
 * takes 306,243 now (test_pkt_hairpin). Their state is in t, since a called
 * function's stack adds to ks_process()'s; and they are two, one called
 * after the other, since neither alone fits in what is left.
 */
__noinline int ks_mtu_unnat_xdp(struct xdp_md *ctx, struct ks_mtu_tmp *t)
{
	return ks_mtu_unnat_both(ctx, true, t);
}

__noinline int ks_mtu_unnat_tc(struct __sk_buff *ctx, struct ks_mtu_tmp *t)
{
	return ks_mtu_unnat_both(ctx, false, t);
}

__noinline int ks_mtu_reply_xdp(struct xdp_md *ctx, struct ks_mtu_tmp *t)
{
	return ks_mtu_reply(ctx, true, t);
}

__noinline int ks_mtu_reply_tc(struct __sk_buff *ctx, struct ks_mtu_tmp *t)
{
	return ks_mtu_reply(ctx, false, t);
}

/*
 * A translated packet too big for a next hop of mtu bytes. Returns the
 * program's return code, and the verdict in *verdict if it is no longer
 * the packet's way out of ks_process(): the answer sent, or the packet
 * dropped because it could not be.
 */
static __always_inline int ks_mtu_too_big(void *ctx, const bool xdp, const struct ks_pkt *pkt,
					  __u32 mtu, enum ks_verdict *verdict)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	enum ks_action act = KS_ACT_DROP;
	struct ks_mtu_tmp *t;
	__u32 zero = 0;

	if (pkt->frag == KS_FRAG_LATER || pkt->ext_hdrs)
		return xdp ? XDP_PASS : TC_ACT_OK;
	if (pkt->flow.family == KS_FAMILY_V4) {
		struct iphdr *ip = data + (pkt->l3_off & 0x1f);

		if ((void *)(ip + 1) > data_end || !(ip->frag_off & bpf_htons(IP_DF)))
			return xdp ? XDP_PASS : TC_ACT_OK;
	}
	t = bpf_map_lookup_elem(&ks_mtu_tmp, &zero);
	if (t) {
		__builtin_memcpy(&t->pkt, pkt, sizeof(*pkt));
		t->mtu = mtu;
		if (!(xdp ? ks_mtu_unnat_xdp(ctx, t) : ks_mtu_unnat_tc(ctx, t)))
			act = xdp ? ks_mtu_reply_xdp(ctx, t) : ks_mtu_reply_tc(ctx, t);
	}
	if (act != KS_ACT_TX) {
		*verdict = KS_V_ABORTED;
		return ks_retcode(ctx, xdp, KS_ACT_DROP);
	}
	*verdict = KS_V_REPLY_TOO_BIG;
	return ks_retcode(ctx, xdp, ks_reply_tx(xdp) ? KS_ACT_TX : KS_ACT_PASS);
}

#endif /* KS_BPF_MTU_H */
