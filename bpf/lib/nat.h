/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rewriting one end of a flow (destination for a steered flow, source for
 * its replies) with incremental checksum updates.
 *
 * XDP sees a frame, not an skb: it updates the checksums arithmetically,
 * telling a partial checksum (left to offload, as from a local veth peer;
 * see bpf/lib/csum.h) from a full one by its value. TC uses the kernel's
 * csum helpers, which know the skb's checksum state, and reads that state
 * itself where it needs it (ks_check_partial()).
 */
#ifndef KS_BPF_NAT_H
#define KS_BPF_NAT_H

#include <bpf/bpf_core_read.h>
#include "common.h"
#include "csum.h"
#include "ctx.h"
#include "parse.h"

#define KS_CHECKSUM_PARTIAL 3 /* skb->ip_summed */

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/*
 * Sets pkt->partial: does the L4 checksum hold only the pseudo-header seed
 * (see bpf/lib/csum.h)? TC asks the skb (ip_summed is CHECKSUM_PARTIAL).
 * XDP cannot know: an XDP frame keeps no checksum state, so it goes by the
 * value, and takes the one full checksum in 65,536 that equals the seed
 * for a partial one (issue #8, 7); it asks only on a veth (ks_xdp_veth),
 * where partial checksums come at all.
 */
static __always_inline void ks_check_partial(void *ctx, const bool xdp, struct ks_pkt *pkt)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	__u32 l4 = pkt->l4_off & 0x1ff;
	__u16 *check = data + l4 + (pkt->flow.proto == IPPROTO_TCP ? 16 : 6);

	if (!xdp) {
		struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

		pkt->partial = BPF_CORE_READ_BITFIELD(skb, ip_summed) == KS_CHECKSUM_PARTIAL;
		return;
	}
	pkt->partial =
		(void *)(check + 1) <= data_end &&
		*check == ks_csum_seed(&pkt->flow.saddr, &pkt->flow.daddr, pkt->flow.family,
				       pkt->flow.proto, pkt->l3_off + pkt->l3_len - pkt->l4_off);
}

/* Rewrites the destination (dst) or source address and port to addr:port.
 * Returns 0, or -1 if the headers are no longer where the parser saw them. */
static __always_inline int ks_nat(void *ctx, const bool xdp, struct ks_pkt *pkt, bool dst,
				  const struct ks_addr *addr, __be16 port)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	bool v4 = pkt->flow.family == KS_FAMILY_V4;
	bool tcp = pkt->flow.proto == IPPROTO_TCP;
	__u32 l3 = pkt->l3_off & 0x1f, l4 = pkt->l4_off & 0x1ff;
	__u32 addr_off = l3 + (v4 ? (dst ? 16 : 12) : (dst ? 24 : 8));
	__u32 port_off = l4 + (dst ? 2 : 0);
	__u32 check_off = l4 + (tcp ? 16 : 6);
	__be32 *field = data + addr_off;
	__be16 *port_field = data + port_off;
	__sum16 *l4_check = data + check_off;
	__u32 addr_diff, port_diff;
	__be16 old_port;
	bool zero_udp;

	if ((void *)(l4_check + 1) > data_end || (void *)(port_field + 1) > data_end)
		return -1;
	/* only a local veth peer leaves checksums to offload (see csum.h) */
	if (xdp && ks_xdp_veth)
		ks_check_partial(ctx, xdp, pkt);
	if (v4) {
		if ((void *)(field + 1) > data_end)
			return -1;
		addr_diff = ks_csum_diff_words(field, &addr->v4, 1);
	} else {
		if ((void *)(field + 4) > data_end)
			return -1;
		addr_diff = ks_csum_diff_words(field, addr->v6, 4);
	}
	old_port = *port_field;
	port_diff = ks_csum_diff16(old_port, port);
	/* UDP over IPv4 may carry no checksum at all; it must stay 0 */
	zero_udp = !tcp && v4 && *l4_check == 0;

	if (v4)
		*field = addr->v4;
	else
		__builtin_memcpy(field, addr->v6, 16);
	*port_field = port;

	if (xdp) {
		if (v4) {
			struct iphdr *ip = data + l3;

			if ((void *)(ip + 1) > data_end)
				return -1;
			ip->check = ks_csum_update(ip->check, addr_diff);
		}
		if (pkt->partial) {
			/* a seed covers the pseudo header, so the addresses,
			 * and is not complemented */
			*l4_check = ~ks_csum_update(~*l4_check, addr_diff);
		} else if (!zero_udp) {
			__u16 check = ks_csum_update(*l4_check, ks_csum_add(addr_diff, port_diff));

			/* for UDP, 0 means "no checksum": send its twin 0xffff */
			*l4_check = (!tcp && check == 0) ? 0xffff : check;
		}
		return 0;
	}

	if (v4 && bpf_l3_csum_replace(ctx, l3 + offsetof(struct iphdr, check), 0, addr_diff, 0))
		return -1;
	if (!zero_udp) {
		__u64 flags = tcp ? 0 : BPF_F_MARK_MANGLED_0;

		if (bpf_l4_csum_replace(ctx, check_off, 0, addr_diff, flags | BPF_F_PSEUDO_HDR) ||
		    bpf_l4_csum_replace(ctx, check_off, old_port, port, flags | sizeof(port)))
			return -1;
	}
	return 0;
}

#endif /* KS_BPF_NAT_H */
