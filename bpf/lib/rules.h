/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source rules: a client whose address falls in a rule's prefix goes to the
 * rule's backend before weights apply (A/B tests; a backend of weight 0
 * that only rules reach is a dark launch). The most specific prefix wins.
 *
 * One LPM trie serves every service: its keys start with the service and
 * the generation of the split they belong to, so rules are written into
 * the idle generation with the split and go live with the same flip of
 * ks_svc_gen. A split with no rules says so (no KS_SPLIT_RULES), and its
 * new flows skip the lookup.
 */
#ifndef KS_BPF_RULES_H
#define KS_BPF_RULES_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, KS_MAX_RULES);
	__type(key, struct ks_rule_key);
	__type(value, struct ks_rule);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required of an LPM trie */
} ks_rules SEC(".maps");

/* The backend a rule of split (generation svc_gen) sends the flow's client
 * to, or KS_MAX_BACKENDS when no rule matches or the rule's backend has no
 * usable endpoint: then the weights decide. */
static __always_inline __u32 ks_rule_backend(const struct ks_split *split, __u32 svc_gen,
					     const struct ks_flow *flow)
{
	struct ks_rule_key key = {
		.prefixlen = KS_RULE_KEY_BITS + 128,
		.svc_gen = svc_gen,
		.family = flow->family,
		.addr = flow->saddr,
	};
	const struct ks_rule *r;
	__u32 b;

	if (!(split->flags & KS_SPLIT_RULES))
		return KS_MAX_BACKENDS;
	r = bpf_map_lookup_elem(&ks_rules, &key);
	if (!r || r->backend >= KS_MAX_BACKENDS)
		return KS_MAX_BACKENDS;
	b = r->backend & (KS_MAX_BACKENDS - 1);
	return split->ring[b].size ? b : KS_MAX_BACKENDS;
}

#endif /* KS_BPF_RULES_H */
