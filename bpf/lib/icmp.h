/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP and ICMPv6 errors about steered flows (issue #8, 4): destination
 * unreachable (fragmentation needed among them), packet too big and time
 * exceeded. An error quotes the packet that caused it, as that packet was
 * when it met trouble, so it names the flow in the translated form of one
 * direction: path MTU discovery through a frontend works only if the error
 * is translated like the flow.
 *
 *   about a packet to an endpoint (client -> endpoint), from the endpoint
 *   or a router on its side, to the client: the quoted destination becomes
 *   the frontend again, and the outer source too if it is the endpoint;
 *
 *   about a reply (frontend -> client), from a router on the client's
 *   side, addressed to the frontend: it goes on to the endpoint, with the
 *   quoted source made the endpoint's.
 *
 * The quoted packet reversed is the key of the flow's entry for the
 * direction the error travels in: a reply entry in the first case (made
 * from the forward entry if the flow has had no reply yet: conntrack.h), a
 * forward entry in the second, each naming the address and port to put
 * back. Checksums are updated incrementally: the outer IPv4 header's, the
 * quoted IPv4 header's, the quoted TCP or UDP checksum when the quote
 * reaches it (a quote may stop after 8 bytes of L4), and the ICMP checksum
 * (for ICMPv6 with its pseudo header). Every field the ICMP checksum covers
 * then sums as before, and so does the packet as a whole, so an skb's
 * CHECKSUM_COMPLETE sum stays right in TC too: both hooks write directly.
 * A quoted L4 checksum is updated as a full one; a quoted partial one (a
 * local sender's, quoted before offload completed it) would not be
 * checked by anyone anyway.
 *
 * Translated errors go up the stack, which forwards them: they are rare.
 *
 * One error is not translated but dropped: a destination unreachable about
 * the SYN of a TCP handshake still half-open, which passive health holds
 * back like a reset so that the client's retransmitted SYN goes to another
 * endpoint (ks_health_unreach(), bpf/lib/health.h).
 */
#ifndef KS_BPF_ICMP_H
#define KS_BPF_ICMP_H

#include "common.h"
#include "conntrack.h"
#include "csum.h"
#include "ctx.h"
#include "hairpin.h"
#include "health.h"
#include "maps.h"
#include "parse.h"

#define ICMP_TIME_EXCEEDED  11
#define ICMPV6_PKT_TOOBIG   2
#define ICMPV6_TIME_EXCEED  3
#define KS_ICMP_PULL	    256 /* eth, IP, ICMP, quoted IP with options, quoted L4 */

static __always_inline bool ks_icmp_is_error(bool v4, __u8 type)
{
	if (v4)
		return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED;
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
	       type == ICMPV6_TIME_EXCEED;
}

/* Translates an ICMP error about a steered flow. Returns its verdict, or
 * -1 if the packet is no such error (it then passes untouched). */
static __always_inline int ks_icmp(void *ctx, const bool xdp, const struct ks_pkt *pkt)
{
	bool v4 = pkt->flow.family == KS_FAMILY_V4, to_ep, tcp, rewrite_outer;
	__u32 frame = ks_frame_len(ctx, xdp), l3 = pkt->l3_off & 0x1f;
	__u32 icmp_off = pkt->l4_off & 0x1ff, in_off = icmp_off + 8, in_l4, end;
	__u32 addr_diff, port_diff, icmp_diff, q_addr_off, o_addr_off;
	void *data, *data_end;
	struct ks_flow key = {};
	struct ks_conn *c;
	__be16 *port, *check, old16;
	__u64 now;
	__u8 *icmp;

	if (pkt->flow.proto != (v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6))
		return -1;
	ks_pull(ctx, xdp, frame < KS_ICMP_PULL ? frame : KS_ICMP_PULL);
	data = ks_data(ctx, xdp);
	data_end = ks_data_end(ctx, xdp);
	icmp = data + icmp_off;
	if ((void *)(icmp + 8) > data_end || !ks_icmp_is_error(v4, icmp[0]))
		return -1;
	/* the end of the quote, by the outer IP header */
	end = pkt->l3_off + pkt->l3_len;

	key.family = pkt->flow.family;
	if (v4) {
		struct iphdr *ip = data + in_off;

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5 ||
		    (ip->frag_off & bpf_htons(IP_OFFSET)))
			return -1;
		key.proto = ip->protocol;
		key.saddr.v4 = ip->daddr;
		key.daddr.v4 = ip->saddr;
		in_l4 = (in_off + ip->ihl * 4) & 0x1ff;
	} else {
		struct ipv6hdr *ip6 = data + in_off;

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			return -1;
		key.proto = ip6->nexthdr;
		__builtin_memcpy(&key.saddr, &ip6->daddr, 16);
		__builtin_memcpy(&key.daddr, &ip6->saddr, 16);
		in_l4 = (in_off + sizeof(*ip6)) & 0x1ff;
	}
	tcp = key.proto == IPPROTO_TCP;
	if (!tcp && key.proto != IPPROTO_UDP)
		return -1;
	port = data + in_l4;
	if ((void *)(port + 2) > data_end || in_l4 + 4 > end)
		return -1;
	key.sport = port[1];
	key.dport = port[0];
	now = ks_ct_now();
	c = bpf_map_lookup_elem(&ks_conns, &key);
	if (!c || !ks_ct_live(c, now)) {
		/* about a flow whose first reply has not come yet */
		switch (ks_ct_reply_entry(&key, 0, now, &c)) {
		case KS_CT_REPLY_ENTERED:
			break;
		case KS_CT_REPLY_FULL:
			return KS_V_DROP_CT_FULL;
		default:
			return -1;
		}
	}
	/* an unreachable answering a handshake's SYN: held back like a reset */
	if (tcp &&
	    unlikely(ks_health_unreach(&key, c, v4, icmp, (__u8 *)port, data_end, end - in_l4)))
		return KS_V_DROP_UNREACH_HELD;
	/* XDP passing up leaves sources, so errors to clients, to the egress
	 * program (bpf/lib/hairpin.h) */
	if (c->dir == KS_DIR_REPLY && ks_xdp_pass_up(xdp))
		return -1;

	/* to an endpoint: the quoted source (the frontend) and the outer
	 * destination; to a client: the quoted destination (the endpoint)
	 * and the outer source, if the endpoint sent the error */
	to_ep = c->dir == KS_DIR_FORWARD;
	q_addr_off = (in_off + (v4 ? (to_ep ? 12 : 16) : (to_ep ? 8 : 24))) & 0x1ff;
	o_addr_off = l3 + (v4 ? (to_ep ? 16 : 12) : (to_ep ? 24 : 8));
	port += !to_ep;
	if (v4) {
		__be32 *q = data + q_addr_off, *o = data + o_addr_off;

		if ((void *)(q + 1) > data_end || (void *)(o + 1) > data_end)
			return -1;
		addr_diff = ks_csum_diff_words(q, &c->addr.v4, 1);
		rewrite_outer = *o == *q;
		*q = c->addr.v4;
		if (rewrite_outer)
			*o = c->addr.v4;
	} else {
		__be32 *q = data + q_addr_off, *o = data + o_addr_off;

		if ((void *)(q + 4) > data_end || (void *)(o + 4) > data_end)
			return -1;
		addr_diff = ks_csum_diff_words(q, c->addr.v6, 4);
		rewrite_outer = !((o[0] ^ q[0]) | (o[1] ^ q[1]) | (o[2] ^ q[2]) | (o[3] ^ q[3]));
		__builtin_memcpy(q, c->addr.v6, 16);
		if (rewrite_outer)
			__builtin_memcpy(o, c->addr.v6, 16);
	}
	port_diff = ks_csum_diff16(*port, c->port);
	*port = c->port;
	icmp_diff = ks_csum_add(addr_diff, port_diff);

	if (v4) {
		struct iphdr *ip = data + in_off, *outer = data + l3;

		if ((void *)(ip + 1) > data_end || (void *)(outer + 1) > data_end)
			return -1;
		old16 = ip->check;
		ip->check = ks_csum_update(old16, addr_diff);
		icmp_diff = ks_csum_add(icmp_diff, ks_csum_diff16(old16, ip->check));
		if (rewrite_outer)
			outer->check = ks_csum_update(outer->check, addr_diff);
	} else if (rewrite_outer) {
		/* the pseudo header's address */
		icmp_diff = ks_csum_add(icmp_diff, addr_diff);
	}

	/* the quoted TCP or UDP checksum, if the quote reaches it; UDP's
	 * "none" stays none */
	check = data + ((in_l4 + (tcp ? 16 : 6)) & 0x1ff);
	if ((void *)(check + 1) <= data_end && in_l4 + (tcp ? 18 : 8) <= end &&
	    (tcp || *check)) {
		old16 = *check;
		*check = ks_csum_update(old16, ks_csum_add(addr_diff, port_diff));
		if (!tcp && !*check)
			*check = 0xffff;
		icmp_diff = ks_csum_add(icmp_diff, ks_csum_diff16(old16, *check));
	}

	check = (__be16 *)(icmp + 2);
	*check = ks_csum_update(*check, icmp_diff);
	return to_ep ? KS_V_NAT_ICMP_TO_ENDPOINT : KS_V_NAT_ICMP_TO_CLIENT;
}

#endif /* KS_BPF_ICMP_H */
