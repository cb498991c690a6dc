/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Fragments of steered flows (issue #8, 5), as Katran and Cilium do it:
 * the first fragment of a datagram carries the ports, and is steered (or
 * reverse translated) like any packet of its flow; where it went is kept in
 * ks_frags, keyed by what every fragment of the datagram shares (addresses,
 * protocol, IP id), and the later fragments follow it, in both directions.
 * They need only their address rewritten (and, for IPv4, the header
 * checksum): the L4 checksum, over the whole datagram, is in the first
 * fragment, which ks_nat() has already updated.
 *
 * A later fragment that arrives before its first has nowhere to follow:
 * sent to a frontend address it is dropped (KS_V_DROP_FRAGMENT), elsewhere
 * it passes untouched. Reassembly would take the node's memory and time for
 * what a sender retransmits anyway.
 */
#ifndef KS_BPF_FRAG_H
#define KS_BPF_FRAG_H

#include "common.h"
#include "csum.h"
#include "ctx.h"
#include "maps.h"
#include "parse.h"

static __always_inline void ks_frag_key(const struct ks_pkt *pkt, struct ks_frag_key *key)
{
	*key = (struct ks_frag_key){
		.saddr = pkt->flow.saddr,
		.daddr = pkt->flow.daddr,
		.id = pkt->frag_id,
		.proto = pkt->flow.proto,
		.family = pkt->flow.family,
	};
}

/* A first fragment was rewritten (destination if dst, else source) to
 * addr: its datagram's later fragments will be too. */
static __always_inline void ks_frag_track(const struct ks_pkt *pkt, bool dst,
					  const struct ks_addr *addr, __u32 svc, __u32 backend)
{
	struct ks_frag_key key;
	struct ks_frag val = {
		.addr = *addr,
		.dir = dst ? KS_DIR_FORWARD : KS_DIR_REPLY,
		.backend = backend,
		.svc = svc,
	};

	ks_frag_key(pkt, &key);
	bpf_map_update_elem(&ks_frags, &key, &val, BPF_ANY);
}

/* A later fragment: rewritten like its first, if that was seen. Returns
 * the verdict, or -1 if its datagram is not known. */
static __always_inline int ks_frag_follow(void *ctx, const bool xdp, const struct ks_pkt *pkt)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	__u32 l3 = pkt->l3_off & 0x1f, diff;
	const struct ks_frag *f;
	struct ks_frag_key key;
	bool dst;

	ks_frag_key(pkt, &key);
	f = bpf_map_lookup_elem(&ks_frags, &key);
	if (!f)
		return -1;
	dst = f->dir == KS_DIR_FORWARD;
	if (pkt->flow.family == KS_FAMILY_V4) {
		struct iphdr *ip = data + l3;
		__be32 *a;

		if ((void *)(ip + 1) > data_end)
			return KS_V_ABORTED;
		a = dst ? &ip->daddr : &ip->saddr;
		diff = ks_csum_diff_words(a, &f->addr.v4, 1);
		*a = f->addr.v4;
		ip->check = ks_csum_update(ip->check, diff);
	} else {
		__be32 *a = data + l3 + (dst ? 24 : 8);

		if ((void *)(a + 4) > data_end)
			return KS_V_ABORTED;
		diff = ks_csum_diff_words(a, f->addr.v6, 4);
		__builtin_memcpy(a, f->addr.v6, 16);
		/* nothing in the fragment makes up for the change: an skb's
		 * CHECKSUM_COMPLETE sum must take it */
		if (!xdp)
			bpf_csum_update(ctx, diff);
	}
	return KS_V_NAT_FRAGMENT;
}

#endif /* KS_BPF_FRAG_H */
