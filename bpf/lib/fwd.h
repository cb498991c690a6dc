/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Forwarding past the stack. Once a packet is rewritten, its next hop is
 * looked up in the kernel's own FIB and the packet handed straight to the
 * egress interface, as the kernel's forwarding would send it (TTL or hop
 * limit decremented, MACs of the next hop), without the rest of the stack.
 * Whatever the FIB does not answer outright goes up the stack, which does it
 * right: a VLAN-tagged frame, an expiring TTL, an IPv4 packet without DF
 * that needs fragmenting, a local destination, and in XDP a next hop whose
 * MAC is not known yet.
 *
 * A packet too big for its next hop that may not be fragmented (IPv4 with
 * DF, IPv6) is answered by kshift instead (bpf/lib/mtu.h): the stack would
 * send its ICMP error to the translated source, and path MTU discovery
 * through the frontend would stall. The lookup checks the MTU of the route
 * for the IP length, in XDP too, also where XDP then passes the packet up
 * the stack rather than redirect it. TC's GSO skb is checked by the length
 * of its segments, as the kernel's forwarding does (skb_gso_validate_
 * network_len()): one whose segments fit is redirected like any packet.
 *
 * XDP that passes packets up the stack with their destinations only
 * rewritten (ks_xdp_split, bpf/lib/hairpin.h) leaves that to the stack,
 * which sees the flow as it is: its ICMP error goes to the real sender,
 * and leaves translated by the egress program if it goes to a client.
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
#include "mtu.h"
#include "parse.h"

#define KS_AF_INET  2
#define KS_AF_INET6 10

const volatile bool ks_xdp_redirect = false;
/* Set by the loader when it attaches the egress program beside every XDP
 * link (kshiftd does): see bpf/lib/hairpin.h. */
const volatile bool ks_xdp_split = false;

/* Does XDP pass steered packets up the stack, having rewritten their
 * destinations only, and leave sources to the egress program? */
static __always_inline bool ks_xdp_pass_up(const bool xdp)
{
	return xdp && ks_xdp_split && !ks_xdp_redirect;
}

/* The FIB lookup's parameters, per CPU: off ks_process()'s stack, which
 * has no 64 bytes to spare (the ICMP answer of bpf/lib/mtu.h needs it). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpf_fib_lookup);
} ks_fib_scratch SEC(".maps");

/*
 * The interfaces whose peer TC hands forwarded packets to directly
 * (bpf_redirect_peer): a packet for a pod then enters the pod's side of its
 * veth as if it had crossed it, without the veth's transmit and the backlog
 * queue behind it (a sixth more established packets per second on a veth,
 * README). kshiftd lists only those where the shortcut passes nothing by:
 * the other end in another namespace, no qdisc but noqueue, no egress
 * filter or program (ks_nl_to_peer() in user/lib/netlink.c); it would drop
 * a packet elsewhere. Key: ifindex.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_MAX_PEER_IFS);
	__type(key, __u32);
	__type(value, __u8);
} ks_peer_ifs SEC(".maps");

/* The IP length the next hop must carry: the packet's, or, for a GSO skb,
 * its segments' (TCP or UDP headers and gso_size bytes). */
static __always_inline __u32 ks_fwd_len(void *ctx, const bool xdp, const struct ks_pkt *pkt)
{
	struct tcphdr *th = ks_data(ctx, xdp) + (pkt->l4_off & 0x1ff);
	__u32 gso, seg;

	if (xdp)
		return pkt->l3_len;
	gso = ((struct __sk_buff *)ctx)->gso_size;
	if (!gso)
		return pkt->l3_len;
	seg = pkt->l4_off - pkt->l3_off + gso;
	if (pkt->flow.proto == IPPROTO_TCP) {
		if ((void *)(th + 1) > ks_data_end(ctx, xdp))
			return pkt->l3_len;
		seg += th->doff * 4;
	} else {
		seg += sizeof(struct udphdr);
	}
	return seg < pkt->l3_len ? seg : pkt->l3_len;
}

/* Returns the program's return code for a rewritten packet; if the packet
 * is answered instead (too big, see bpf/lib/mtu.h), *verdict says so. */
static __always_inline int ks_forward(void *ctx, const bool xdp, struct ks_pkt *pkt,
				      enum ks_verdict *verdict)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	/* a redirected XDP frame reaches its receiver as a fresh skb, which
	 * checks the checksum: a partial one must go the stack's way */
	bool redirect = !xdp || (ks_xdp_redirect && !pkt->partial);
	int pass = xdp ? XDP_PASS : TC_ACT_OK;
	struct bpf_fib_lookup *fib;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6;
	struct iphdr *ip;
	__u32 zero = 0;
	__u16 old, new;
	long rc;

	/* XDP passing up shows the stack the flow as it is (client <->
	 * endpoint), and the stack answers a packet too big itself */
	if (pkt->l3_off != sizeof(*eth) || (!redirect && ks_mtu_always_fits(pkt)) ||
	    ks_xdp_pass_up(xdp))
		return pass;
	fib = bpf_map_lookup_elem(&ks_fib_scratch, &zero);
	if (!fib)
		return pass;
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = xdp ? ((struct xdp_md *)ctx)->ingress_ifindex
			  : ((struct __sk_buff *)ctx)->ingress_ifindex;
	fib->l4_protocol = pkt->flow.proto;
	fib->tot_len = ks_fwd_len(ctx, xdp, pkt);

	if (pkt->flow.family == KS_FAMILY_V4) {
		ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > data_end || ip->ttl <= 1)
			return pass;
		fib->family = KS_AF_INET;
		fib->tos = ip->tos;
		fib->ipv4_src = ip->saddr;
		fib->ipv4_dst = ip->daddr;
	} else {
		ip6 = data + sizeof(*eth);
		if ((void *)(ip6 + 1) > data_end || ip6->hop_limit <= 1)
			return pass;
		fib->family = KS_AF_INET6;
		fib->flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
		__builtin_memcpy(fib->ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib->ipv6_dst, &ip6->daddr, 16);
	}

	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	if (unlikely(rc == BPF_FIB_LKUP_RET_FRAG_NEEDED))
		return ks_mtu_too_big(ctx, xdp, pkt, fib->mtu_result, verdict);
	if (!redirect || (rc != BPF_FIB_LKUP_RET_SUCCESS && (xdp || rc != BPF_FIB_LKUP_RET_NO_NEIGH)))
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
		return bpf_redirect_neigh(fib->ifindex, NULL, 0, 0);
	if ((void *)(eth + 1) > data_end)
		return pass;
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	/* TC runs at ingress only, where the peer's is the next hook */
	if (!xdp && bpf_map_lookup_elem(&ks_peer_ifs, &fib->ifindex))
		return bpf_redirect_peer(fib->ifindex, 0);
	return bpf_redirect(fib->ifindex, 0);
}

#endif /* KS_BPF_FWD_H */
