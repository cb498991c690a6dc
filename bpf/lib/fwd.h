/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding past the stack. Once a packet is rewritten, its next hop is
 * looked up in the kernel's own FIB and the packet handed straight to the
 * egress interface, as the kernel's forwarding would send it (TTL or hop
 * limit decremented, MACs of the next hop), without the rest of the stack.
 * Whatever the FIB does not answer outright goes up the stack, which does it
 * right: a VLAN-tagged frame, an expiring TTL, a packet that needs
 * fragmenting, a local destination, and in XDP a next hop whose MAC is not
 * known yet.
 *
 * TC redirects always: an skb can go out of any interface. XDP redirects
 * only when the loader says so (ks_xdp_redirect), because XDP_REDIRECT into
 * a veth needs NAPI on its peer, which a pod's end of a veth does not have;
 * a refused redirect would drop the packet.
 */
#ifndef KS_BPF_FWD_H
#define KS_BPF_FWD_H

#include "common.h"
#include "csum.h"
#include "ctx.h"
#include "parse.h"

#define KS_AF_INET  2
#define KS_AF_INET6 10

const volatile bool ks_xdp_redirect = false;

/* Returns the program's return code for a rewritten packet. */
static __always_inline int ks_forward(void *ctx, const bool xdp, const struct ks_pkt *pkt)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	struct bpf_fib_lookup fib = {};
	int pass = xdp ? XDP_PASS : TC_ACT_OK;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	struct iphdr *ip;
	__u16 old, new;
	long rc;

	/* a redirected XDP frame reaches its receiver as a fresh skb, which
	 * checks the checksum: a partial one must go the stack's way */
	if ((xdp && (!ks_xdp_redirect || pkt->partial)) || pkt->l3_off != sizeof(*eth))
		return pass;
	fib.ifindex = xdp ? ((struct xdp_md *)ctx)->ingress_ifindex
			  : ((struct __sk_buff *)ctx)->ingress_ifindex;
	fib.l4_protocol = pkt->flow.proto;
	fib.tot_len = pkt->l3_len;

	if (pkt->flow.family == KS_FAMILY_V4) {
		ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return pass;
		fib.family = KS_AF_INET;
		fib.tos = ip->tos;
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
	} else {
		ip6 = data + sizeof(*eth);
		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return pass;
		fib.family = KS_AF_INET6;
		fib.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
	}

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && (xdp || rc != BPF_FIB_LKUP_RET_NO_NEIGH))
		return pass;

	/* the lookup may have moved nothing, but the verifier wants fresh
	 * pointers after a helper call on the context */
	data = ks_data(ctx, xdp);
	data_end = ks_data_end(ctx, xdp);
	eth = data;
	if (pkt->flow.family == KS_FAMILY_V4) {
		ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > data_end)
			return pass;
		/* TTL shares a 16-bit word with the protocol */
		old = *(__u16 *)&ip->ttl;
		ip->ttl--;
		new = *(__u16 *)&ip->ttl;
		ip->check = ks_csum_update(ip->check, ks_csum_diff16(old, new));
	} else {
		ip6 = data + sizeof(*eth);
		if ((void *)(ip6 + 1) > data_end)
			return pass;
		ip6->hop_limit--;
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	if ((void *)(eth + 1) > data_end)
		return pass;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* KS_BPF_FWD_H */
