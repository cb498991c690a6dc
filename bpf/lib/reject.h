/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Answers for a new flow that no endpoint can take, so clients fail fast
 * instead of retransmitting into a black hole: a TCP reset, or an ICMP (v6)
 * port unreachable for UDP; and the ICMP builder's other answer, a
 * fragmentation needed or packet too big (bpf/lib/mtu.h). All are built in
 * place from the packet that asked. With tx, the answer goes back out of the interface the question
 * came in on (XDP_TX, or a TC redirect); without, it is handed up the
 * stack, still addressed to this host at layer 2, for the kernel to route.
 *
 * Checksums: XDP_TX (xdp && tx) makes a fresh frame, whose receiver checks
 * a full checksum. Otherwise the packet stays the skb it was, also when TC
 * redirects it back; if that skb's L4 checksum was partial (pkt->partial),
 * the kernel may still complete it on the way out, at the same place: the
 * reset's TCP header, or the quoted L4 header of an ICMP answer. So the
 * reset then carries the seed of its own pseudo header, and the ICMP
 * checksum counts the quoted L4 checksum as the kernel will complete it.
 */
#ifndef KS_BPF_REJECT_H
#define KS_BPF_REJECT_H

#include "common.h"
#include "csum.h"
#include "ctx.h"
#include "parse.h"

/* Whether an answer leaves with tx (see above): XDP_TX on a veth needs NAPI
 * on the peer, which a pod's end does not have; there, the answer goes up
 * the stack and the kernel routes it. */
static __always_inline bool ks_reply_tx(const bool xdp)
{
	return !(xdp && ks_xdp_veth);
}

static __always_inline void ks_swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/*
 * RFC 9293 3.10.7.1: a reset takes its sequence number from the segment's
 * ACK if it has one; otherwise it has sequence 0 and acknowledges the
 * segment. Options and payload are cut off. Never answers a reset.
 */
static __always_inline enum ks_action ks_reply_reset(void *ctx, const bool xdp, struct ks_pkt *pkt,
						     bool tx)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	__u32 l3 = pkt->l3_off & 0x1f, l4 = pkt->l4_off & 0x1ff;
	bool v4 = pkt->flow.family == KS_FAMILY_V4;
	struct ethhdr *eth = data;
	struct tcphdr *th = data + l4;
	__u32 seg_len, sum;
	__s64 hdr_sum;
	__be16 port;

	if ((pkt->tcp_flags & KS_TCP_RST) || pkt->ext_hdrs)
		return KS_ACT_DROP;
	if ((void *)(eth + 1) > data_end || (void *)(th + 1) > data_end)
		return KS_ACT_DROP;

	seg_len = pkt->l3_off + pkt->l3_len - pkt->l4_off - th->doff * 4;
	seg_len += !!(pkt->tcp_flags & KS_TCP_SYN) + !!(pkt->tcp_flags & KS_TCP_FIN);
	port = th->source;
	th->source = th->dest;
	th->dest = port;
	if (pkt->tcp_flags & KS_TCP_ACK) {
		th->seq = th->ack_seq;
		th->ack_seq = 0;
		((__u8 *)th)[13] = KS_TCP_RST;
	} else {
		th->ack_seq = bpf_htonl(bpf_ntohl(th->seq) + seg_len);
		th->seq = 0;
		((__u8 *)th)[13] = KS_TCP_RST | KS_TCP_ACK;
	}
	((__u8 *)th)[12] = 5 << 4; /* doff 5: no options */
	th->window = 0;
	th->check = 0;
	th->urg_ptr = 0;
	if (tx)
		ks_swap_macs(eth);

	if (v4) {
		struct iphdr *ip = data + l3;
		__u32 hlen;

		if ((void *)(ip + 1) > data_end)
			return KS_ACT_DROP;
		hlen = ip->ihl * 4;
		ip->saddr = pkt->flow.daddr.v4;
		ip->daddr = pkt->flow.saddr.v4;
		ip->tot_len = bpf_htons(hlen + sizeof(*th));
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = KS_REPLY_TTL;
		ip->check = 0;
		hdr_sum = ks_csum_packet(data, data_end, l3, hlen);
		if (hdr_sum < 0)
			return KS_ACT_DROP;
		ip->check = ks_csum_fold(hdr_sum);
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return KS_ACT_DROP;
		__builtin_memcpy(&ip6->saddr, &pkt->flow.daddr, 16);
		__builtin_memcpy(&ip6->daddr, &pkt->flow.saddr, 16);
		ip6->payload_len = bpf_htons(sizeof(*th));
		ip6->hop_limit = KS_REPLY_TTL;
	}
	sum = ks_csum_pseudo(&pkt->flow.daddr, &pkt->flow.saddr, pkt->flow.family, IPPROTO_TCP,
			     sizeof(*th));
	if (pkt->partial && !(xdp && tx)) {
		th->check = (__u16)~ks_csum_fold(sum);
	} else {
		hdr_sum = ks_csum_packet(data, data_end, l4, sizeof(*th));
		if (hdr_sum < 0)
			return KS_ACT_DROP;
		th->check = ks_csum_fold(ks_csum_add(sum, hdr_sum));
	}

	if (ks_trim(ctx, xdp, pkt->l4_off + sizeof(*th)))
		return KS_ACT_DROP;
	return KS_ACT_TX;
}

/*
 * An ICMP or ICMPv6 error to the packet's sender, from the address it was
 * sent to, quoting the original IP header and the start of its L4 header:
 * enough for the sender's stack to find the socket. kind: a port
 * unreachable (RFC 792; RFC 4443), or a fragmentation needed / packet too
 * big with the next hop's mtu (RFC 1191; RFC 8201). A UDP quote is its
 * 8-byte header; a TCP quote takes the 20 bytes up to and past the
 * checksum, which a partial checksum needs (the kernel completes it in the
 * quote). The frame is cut to eth + ip + quote, then grows in front by the
 * new IP and ICMP headers. Everything after those two helper calls is
 * derived anew from pkt, so that few values live across them: each would
 * take a stack slot, and ks_process() has few to spare.
 */
enum ks_icmp_reply {
	KS_ICMP_REPLY_UNREACH,
	KS_ICMP_REPLY_TOO_BIG,
};

#define KS_ICMP_FRAG_NEEDED  4 /* code of ICMP_DEST_UNREACH */
#define KS_ICMPV6_PKT_TOOBIG 2

static __always_inline enum ks_action ks_reply_icmp(void *ctx, const bool xdp, struct ks_pkt *pkt,
						    bool tx, const enum ks_icmp_reply kind, __u32 mtu)
{
	bool v4, tcp;
	__u32 l3, grow, l4_quote, quote, icmp_off;
	void *data, *data_end;
	__s64 body_sum;
	__u8 *icmp;

	if (pkt->ext_hdrs)
		return KS_ACT_DROP;
	tcp = pkt->flow.proto == IPPROTO_TCP;
	v4 = pkt->flow.family == KS_FAMILY_V4;
	if (ks_trim(ctx, xdp, pkt->l4_off + (tcp ? sizeof(struct tcphdr) : sizeof(struct udphdr))) ||
	    ks_push_head(ctx, xdp, v4 ? sizeof(struct iphdr) + 8 : sizeof(struct ipv6hdr) + 8))
		return KS_ACT_DROP;
	v4 = pkt->flow.family == KS_FAMILY_V4;
	tcp = pkt->flow.proto == IPPROTO_TCP;
	l3 = pkt->l3_off & 0x1f;
	grow = v4 ? sizeof(struct iphdr) + 8 : sizeof(struct ipv6hdr) + 8;
	l4_quote = tcp ? sizeof(struct tcphdr) : sizeof(struct udphdr);
	quote = pkt->l4_off - pkt->l3_off + l4_quote;
	icmp_off = l3 + (v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr));
	data = ks_data(ctx, xdp);
	data_end = ks_data_end(ctx, xdp);
	if (data + grow + KS_L2_MAX > data_end)
		return KS_ACT_DROP;
	/* the L2 header (with its VLAN tag, if any), now grow bytes in, moves
	 * to the front whole, through registers rather than the stack; the
	 * bytes past it are overwritten by the new IP header just below */
	__builtin_memcpy(data, data + grow, KS_L2_MAX);
	if (tx)
		ks_swap_macs(data);

	if (v4) {
		struct iphdr *ip = data + l3;

		if ((void *)(ip + 1) > data_end)
			return KS_ACT_DROP;
		*(__u16 *)ip = bpf_htons(0x4500); /* version 4, ihl 5, tos 0 */
		ip->tot_len = bpf_htons(grow + quote);
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = KS_REPLY_TTL;
		ip->protocol = IPPROTO_ICMP;
		ip->check = 0;
		ip->saddr = pkt->flow.daddr.v4;
		ip->daddr = pkt->flow.saddr.v4;
		ip->check = ks_csum_fold(ks_csum_packet(data, data_end, l3, sizeof(*ip)));
	} else {
		struct ipv6hdr *ip6 = data + l3;

		if ((void *)(ip6 + 1) > data_end)
			return KS_ACT_DROP;
		*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no class, no label */
		ip6->payload_len = bpf_htons(8 + quote);
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = KS_REPLY_TTL;
		__builtin_memcpy(&ip6->saddr, &pkt->flow.daddr, 16);
		__builtin_memcpy(&ip6->daddr, &pkt->flow.saddr, 16);
	}

	icmp = data + icmp_off;
	if ((void *)(icmp + 8) > data_end)
		return KS_ACT_DROP;
	if (kind == KS_ICMP_REPLY_UNREACH) {
		icmp[0] = v4 ? ICMP_DEST_UNREACH : ICMPV6_DEST_UNREACH;
		icmp[1] = v4 ? ICMP_PORT_UNREACH : ICMPV6_PORT_UNREACH;
		*(__u32 *)(icmp + 4) = 0;
	} else {
		icmp[0] = v4 ? ICMP_DEST_UNREACH : KS_ICMPV6_PKT_TOOBIG;
		icmp[1] = v4 ? KS_ICMP_FRAG_NEEDED : 0;
		/* ICMP's MTU is the low 16 bits, ICMPv6's all 32 */
		*(__be32 *)(icmp + 4) = bpf_htonl(v4 ? mtu & 0xffff : mtu);
	}
	*(__u16 *)(icmp + 2) = 0;
	if (pkt->partial && !(xdp && tx)) {
		/* the kernel will complete the quoted checksum over the quoted
		 * L4 bytes (seed in place), which then sum to the seed's
		 * complement: R + ~(R + seed) == ~seed */
		__u16 *l4_check = data + ((icmp_off + 8 + pkt->l4_off - pkt->l3_off) & 0x1ff) +
				  (tcp ? 16 : 6);

		if ((void *)(l4_check + 1) > data_end)
			return KS_ACT_DROP;
		body_sum = ks_csum_packet(data, data_end, icmp_off, 8 + quote - l4_quote);
		if (body_sum < 0)
			return KS_ACT_DROP;
		body_sum = ks_csum_add(body_sum, (__u16)~*l4_check);
	} else {
		body_sum = ks_csum_packet(data, data_end, icmp_off, 8 + quote);
		if (body_sum < 0)
			return KS_ACT_DROP;
	}
	if (!v4)
		body_sum = ks_csum_add(body_sum,
				       ks_csum_pseudo(&pkt->flow.daddr, &pkt->flow.saddr,
						      KS_FAMILY_V6, IPPROTO_ICMPV6, 8 + quote));
	*(__u16 *)(icmp + 2) = ks_csum_fold(body_sum);
	return KS_ACT_TX;
}

/* Port unreachable, for UDP to a frontend no endpoint can take. */
static __always_inline enum ks_action ks_reply_unreach(void *ctx, const bool xdp,
						       struct ks_pkt *pkt, bool tx)
{
	return ks_reply_icmp(ctx, xdp, pkt, tx, KS_ICMP_REPLY_UNREACH, 0);
}

#endif /* KS_BPF_REJECT_H */
