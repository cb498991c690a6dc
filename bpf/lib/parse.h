/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing: Ethernet with at most one 802.1Q/802.1ad tag, IPv4 with
 * options, IPv6 with a few extension headers, TCP and UDP. Every access is
 * bounds-checked against data_end before it is made; the parser records
 * offsets, not pointers, so that callers can re-derive pointers after a
 * helper (in TC) has invalidated them.
 */
#ifndef KS_BPF_PARSE_H
#define KS_BPF_PARSE_H

#include "common.h"

enum ks_parse {
	KS_PARSE_OK,
	KS_PARSE_NOT_IP,    /* not IPv4/IPv6, or its IP header is cut short */
	KS_PARSE_NOT_L4,    /* neither TCP nor UDP */
	KS_PARSE_FRAGMENT,  /* a later IPv4 or IPv6 fragment: no L4 header (see frag) */
	KS_PARSE_MALFORMED, /* the L4 header is cut short or inconsistent */
};

struct ks_pkt {
	struct ks_flow flow; /* addresses and ports as on the wire */
	__u16 l3_off;	     /* IP header, from the start of the frame */
	__u16 l4_off;	     /* TCP/UDP header */
	__u16 l3_len;	     /* IPv4 total length, or IPv6 header + payload length */
	__u8 tcp_flags;	     /* TCP byte 13: FIN 0x01 SYN 0x02 RST 0x04 ACK 0x10 */
	__u32 tcp_seq;	     /* TCP sequence number, host order */
	__u8 ext_hdrs;	     /* IPv6 extension headers skipped */
	__u8 frag;	     /* enum ks_frag_kind */
	__be32 frag_id;	     /* of a fragment: IPv4 id (first two bytes), IPv6 fragment id */
	bool partial;	     /* L4 checksum left to offload: set by ks_check_partial() */
};

/* A fragment's place: the first carries the L4 header and is parsed as a
 * whole packet would be; the later ones are KS_PARSE_FRAGMENT. */
enum ks_frag_kind {
	KS_FRAG_NONE,
	KS_FRAG_FIRST,
	KS_FRAG_LATER,
};

struct ks_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset in 8-byte units << 3, M flag in bit 0 */
	__be32 id;
};

#define KS_TCP_FIN 0x01
#define KS_TCP_SYN 0x02
#define KS_TCP_RST 0x04
#define KS_TCP_ACK 0x10

/* Offsets are masked to these bounds so the verifier can follow them. */
#define KS_L2_MAX 18  /* Ethernet + one VLAN tag */
#define KS_L3_MAX 120 /* IPv6 and 80 bytes of extension headers: L4 beyond is not steered */

struct ks_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

static __always_inline int ks_parse_l4(void *data, void *data_end, struct ks_pkt *pkt)
{
	__u16 off = pkt->l4_off;
	/* what the IP header says is left for L4; the frame may be longer
	 * (Ethernet padding), never shorter (checked by the caller) */
	__u32 l4_len = pkt->l3_off + pkt->l3_len - off;

	if (pkt->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = data + off;

		if ((void *)(th + 1) > data_end || th->doff < 5 || th->doff * 4 > l4_len)
			return KS_PARSE_MALFORMED;
		pkt->flow.sport = th->source;
		pkt->flow.dport = th->dest;
		pkt->tcp_flags = ((__u8 *)th)[13];
		pkt->tcp_seq = bpf_ntohl(th->seq);
		return KS_PARSE_OK;
	}
	if (pkt->flow.proto == IPPROTO_UDP) {
		struct udphdr *uh = data + off;

		if ((void *)(uh + 1) > data_end || sizeof(*uh) > l4_len)
			return KS_PARSE_MALFORMED;
		pkt->flow.sport = uh->source;
		pkt->flow.dport = uh->dest;
		return KS_PARSE_OK;
	}
	return KS_PARSE_NOT_L4;
}

static __always_inline int ks_parse_ipv4(void *data, void *data_end, __u32 frame_len,
					 struct ks_pkt *pkt)
{
	struct iphdr *ip = data + pkt->l3_off;
	__u16 hlen, tot;

	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5)
		return KS_PARSE_NOT_IP;
	hlen = ip->ihl * 4;
	if ((void *)ip + hlen > data_end)
		return KS_PARSE_NOT_IP;
	pkt->flow.family = KS_FAMILY_V4;
	pkt->flow.proto = ip->protocol;
	pkt->flow.saddr.v4 = ip->saddr;
	pkt->flow.daddr.v4 = ip->daddr;
	pkt->l4_off = pkt->l3_off + hlen;
	tot = bpf_ntohs(ip->tot_len);
	pkt->l3_len = tot;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
		pkt->frag_id = ip->id;
		pkt->frag = (ip->frag_off & bpf_htons(IP_OFFSET)) ? KS_FRAG_LATER : KS_FRAG_FIRST;
		if (pkt->frag == KS_FRAG_LATER)
			return KS_PARSE_FRAGMENT;
	}
	if (tot < hlen || pkt->l3_off + tot > frame_len)
		return KS_PARSE_MALFORMED;
	return ks_parse_l4(data, data_end, pkt);
}

static __always_inline int ks_parse_ipv6(void *data, void *data_end, __u32 frame_len,
					 struct ks_pkt *pkt)
{
	struct ipv6hdr *ip6 = data + pkt->l3_off;
	__u8 next;
	__u16 off;
	int i;

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
		return KS_PARSE_NOT_IP;
	pkt->flow.family = KS_FAMILY_V6;
	__builtin_memcpy(&pkt->flow.saddr, &ip6->saddr, 16);
	__builtin_memcpy(&pkt->flow.daddr, &ip6->daddr, 16);
	pkt->l3_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	next = ip6->nexthdr;
	off = pkt->l3_off + sizeof(*ip6);

#pragma unroll
	for (i = 0; i < KS_MAX_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *opt = data + off;

		if (next == IPPROTO_FRAGMENT) {
			struct ks_ipv6_frag_hdr *fh = data + off;

			pkt->flow.proto = next;
			if ((void *)(fh + 1) > data_end)
				return KS_PARSE_FRAGMENT;
			pkt->frag_id = fh->id;
			pkt->flow.proto = fh->nexthdr;
			if (fh->frag_off & bpf_htons(0xfff8)) {
				pkt->frag = KS_FRAG_LATER;
				return KS_PARSE_FRAGMENT;
			}
			pkt->frag = KS_FRAG_FIRST;
			next = fh->nexthdr;
			off += sizeof(*fh);
			pkt->ext_hdrs++;
			continue;
		}
		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
			break;
		if ((void *)(opt + 1) > data_end)
			return KS_PARSE_MALFORMED;
		next = opt->nexthdr;
		off += (opt->hdrlen + 1) * 8;
		pkt->ext_hdrs++;
	}
	pkt->flow.proto = next;
	/* headers past the bound are not followed (and TC pulls no further);
	 * checked before the mask, which only serves the verifier */
	if (off > KS_L2_MAX + KS_L3_MAX)
		return KS_PARSE_MALFORMED;
	pkt->l4_off = off & 0x1ff;
	if (pkt->l3_off + pkt->l3_len > frame_len || pkt->l4_off > pkt->l3_off + pkt->l3_len)
		return KS_PARSE_MALFORMED;
	return ks_parse_l4(data, data_end, pkt);
}

/* Fills pkt from the frame at [data, data_end); frame_len is the whole
 * frame's length, which in TC may be more than the linear part. */
static __always_inline int ks_parse(void *data, void *data_end, __u32 frame_len, struct ks_pkt *pkt)
{
	struct ethhdr *eth = data;
	__be16 proto;

	if ((void *)(eth + 1) > data_end)
		return KS_PARSE_NOT_IP;
	proto = eth->h_proto;
	pkt->l3_off = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct ks_vlan_hdr *vh = data + sizeof(*eth);

		if ((void *)(vh + 1) > data_end)
			return KS_PARSE_NOT_IP;
		proto = vh->encapsulated_proto;
		pkt->l3_off += sizeof(*vh);
	}
	if (proto == bpf_htons(ETH_P_IP))
		return ks_parse_ipv4(data, data_end, frame_len, pkt);
	if (proto == bpf_htons(ETH_P_IPV6))
		return ks_parse_ipv6(data, data_end, frame_len, pkt);
	return KS_PARSE_NOT_IP;
}

#endif /* KS_BPF_PARSE_H */
