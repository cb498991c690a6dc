/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The egress half of XDP mode where XDP passes steered packets up the stack
 * (bpf/lib/hairpin.h says why): a TC egress program on the interfaces XDP
 * serves rewrites the sources the stack has forwarded untranslated.
 *
 *   a reply (endpoint -> client)            -> source: the frontend
 *   a hairpin reply (pod -> pod, its
 *     destination put back at ingress)      -> source: the frontend
 *   a hairpin forward packet (pod -> pod)   -> source: the hairpin address
 *   an ICMP error about a packet to an
 *     endpoint (the stack's own too: a
 *     FORWARD REJECT's unreachable)         -> as the frontend's (icmp.h)
 *   a later fragment of a rewritten reply   -> like its first (frag.h)
 *   anything else                           -> untouched
 *
 * The connection table's states are kept at ingress, which sees every
 * packet first; here an entry is only read, and a dead one is not used.
 * A packet from an address to itself is a hairpin flow's: its reply key
 * has the hairpin address for destination. Hairpin flows' fragments and
 * ICMP errors are not translated here.
 */
#ifndef KS_BPF_EGRESS_H
#define KS_BPF_EGRESS_H

#include "common.h"
#include "conntrack.h"
#include "ctx.h"
#include "frag.h"
#include "hairpin.h"
#include "icmp.h"
#include "maps.h"
#include "nat.h"
#include "parse.h"

/* The live reply entry at key, or NULL; with tcp_flags (not a hairpin
 * key), one made for a flow's first reply if ingress did not see it
 * (conntrack.h): -1 when it found no room. */
static __always_inline int ks_egress_reply(const struct ks_flow *key, __u8 tcp_flags, bool first,
					   __u64 now, struct ks_conn **c)
{
	*c = bpf_map_lookup_elem(&ks_conns, key);
	if (*c && !ks_ct_live(*c, now))
		*c = NULL;
	if (!*c && first && ks_ct_reply_entry(key, tcp_flags, now, c) == KS_CT_REPLY_FULL)
		return -1;
	if (*c && (*c)->dir != KS_DIR_REPLY)
		*c = NULL;
	return 0;
}

static __always_inline int ks_egress(struct __sk_buff *skb)
{
	struct ks_pkt pkt = {};
	struct ks_flow key;
	struct ks_conn *c;
	bool hairpin;
	__u64 now;
	int ret;

	ks_pull(skb, false, KS_L2_MAX + KS_L3_MAX + sizeof(struct tcphdr));
	ret = ks_parse(ks_data(skb, false), ks_data_end(skb, false), skb->len, &pkt);
	if (ret == KS_PARSE_NOT_L4) {
		ks_icmp(skb, false, &pkt);
		return TC_ACT_OK;
	}
	if (ret == KS_PARSE_FRAGMENT) {
		ks_frag_follow(skb, false, &pkt);
		return TC_ACT_OK;
	}
	if (ret != KS_PARSE_OK)
		return TC_ACT_OK;

	now = ks_ct_now();
	key = pkt.flow;
	hairpin = ks_addr_eq(&key.saddr, &key.daddr);
	if (hairpin)
		ks_hairpin_addr(key.family, &key.daddr);
	if (ks_egress_reply(&key, pkt.tcp_flags, !hairpin && ks_ct_first_reply_like(&pkt), now, &c))
		return TC_ACT_SHOT;
	if (c) {
		if (ks_nat(skb, false, &pkt, false, &c->addr, c->port))
			return TC_ACT_SHOT;
		if (unlikely(pkt.frag))
			ks_frag_track(&pkt, false, &c->addr, c->svc, c->backend);
		return TC_ACT_OK;
	}
	if (!hairpin)
		return TC_ACT_OK;
	/* pod:c -> pod:p, whose reply key is pod:p -> hairpin:c */
	key.sport = pkt.flow.dport;
	key.dport = pkt.flow.sport;
	ks_egress_reply(&key, 0, false, now, &c);
	if (c && (c->flags & KS_CONN_HAIRPIN) && ks_hairpin_snat(skb, false, &pkt))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

#endif /* KS_BPF_EGRESS_H */
