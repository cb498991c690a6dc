// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Source rules in the dataplane's LPM trie, one generation at a time. The
 * trie is not indexed by service, so clearing a generation walks it; rules
 * are few (an A/B test names a handful of prefixes), and a service without
 * rules never walks it unless the generation it replaces had some.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "log.h"
#include "rules.h"

static int rules_fd(struct ks_dp *dp)
{
	return bpf_map__fd(dp->skel->maps.ks_rules);
}

static struct ks_rule_key rule_key(uint32_t svc_gen, const struct ks_dp_rule *r)
{
	struct ks_rule_key key;

	memset(&key, 0, sizeof(key));
	key.prefixlen = KS_RULE_KEY_BITS + r->len;
	key.svc_gen = svc_gen;
	key.family = r->family;
	key.addr = r->addr;
	return key;
}

/* Deletes every key whose svc_gen is one of want[0..n). */
static void clear_keys(struct ks_dp *dp, const uint32_t *want, int n)
{
	struct ks_rule_key key, *prev = NULL, *doomed = NULL;
	size_t nr = 0, cap = 0;
	int fd = rules_fd(dp), i;

	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		for (i = 0; i < n && key.svc_gen != want[i]; i++)
			;
		if (i == n)
			continue;
		if (nr == cap) {
			struct ks_rule_key *v = realloc(doomed, (cap ? 2 * cap : 16) * sizeof(*v));

			if (!v)
				break; /* the rest stays, unseen by the generation's flags */
			doomed = v;
			cap = cap ? 2 * cap : 16;
		}
		doomed[nr++] = key;
	}
	/* deleted after the walk: a deletion would lose the walk's place */
	while (nr--)
		bpf_map_delete_elem(fd, &doomed[nr]);
	free(doomed);
}

void ks_rules_clear(struct ks_dp *dp, uint32_t svc, int gen)
{
	uint32_t want[KS_GENERATIONS];
	int n = 0, g;

	for (g = 0; g < KS_GENERATIONS; g++)
		if (gen < 0 || g == gen)
			want[n++] = svc * KS_GENERATIONS + g;
	clear_keys(dp, want, n);
}

/* Whether generation gen of svc was written with rules. */
static bool had_rules(struct ks_dp *dp, uint32_t svc, uint32_t gen)
{
	uint32_t key = svc * KS_GENERATIONS + gen;
	struct ks_split split;

	return bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &split) ||
	       (split.flags & KS_SPLIT_RULES);
}

int ks_rules_stage(struct ks_dp *dp, uint32_t svc, const struct ks_dp_rule *r, size_t n)
{
	uint32_t gen, svc_gen;
	struct ks_rule_key key;
	struct ks_rule val;
	size_t i;
	int err = 0;

	if (svc >= dp->max_svcs || !dp->svcs[svc].used)
		return -EINVAL;
	gen = dp->svcs[svc].gen ^ 1;
	svc_gen = svc * KS_GENERATIONS + gen;
	/* a generation with rules starts from none: the trie may still hold
	 * those of a service that had this id before */
	if (n || had_rules(dp, svc, gen))
		clear_keys(dp, &svc_gen, 1);
	for (i = 0; i < n; i++) {
		if (r[i].backend >= KS_MAX_BACKENDS)
			return (ks_rules_clear(dp, svc, gen), -EINVAL);
		key = rule_key(svc_gen, &r[i]);
		val = (struct ks_rule){ .backend = r[i].backend };
		if (!bpf_map_update_elem(rules_fd(dp), &key, &val, BPF_NOEXIST))
			continue;
		if (errno == EEXIST)
			continue; /* the first rule naming a prefix wins */
		err = -errno;
		pr_warn("service %u: writing source rule %zu of %zu: %s\n", svc, i + 1, n,
			strerror(-err));
		ks_rules_clear(dp, svc, gen);
		return err;
	}
	return n ? KS_SPLIT_RULES : 0;
}

/* Whether backend b of s has an endpoint a client of family can be sent
 * to (ready or terminating: the dataplane takes either). */
static bool backend_serves(const struct ks_shift *s, int b, uint8_t family)
{
	size_t i;

	for (i = 0; i < s->backends[b].nr_endpoints; i++)
		if (s->backends[b].endpoints[i].ip.family == family)
			return true;
	return false;
}

struct json_object *ks_rules_status(const struct ks_shift *s)
{
	struct json_object *arr = json_object_new_array(), *o;
	char addr[INET6_ADDRSTRLEN], prefix[INET6_ADDRSTRLEN + 8];
	size_t i, j;

	for (i = 0; arr && i < s->nr_rules; i++) {
		const struct ks_rule_spec *r = &s->rules[i];

		for (j = 0; j < r->nr_sources; j++) {
			const struct ks_prefix *p = &r->sources[j];
			struct ks_ip ip = { .addr = p->addr, .family = p->family };
			bool live = backend_serves(s, r->backend, p->family);

			snprintf(prefix, sizeof(prefix), "%s/%u",
				 ks_ip_str(&ip, addr, sizeof(addr)), p->len);
			o = json_object_new_object();
			json_object_object_add(o, "source", json_object_new_string(prefix));
			json_object_object_add(
				o, "backend", json_object_new_string(s->backends[r->backend].name));
			json_object_object_add(o, "active", json_object_new_boolean(live));
			if (!live)
				json_object_object_add(
					o, "reason",
					json_object_new_string("no endpoints, weights apply"));
			json_object_array_add(arr, o);
		}
	}
	return arr;
}

static const char *family_name(uint8_t family)
{
	return family == KS_FAMILY_V6 ? "IPv6" : "IPv4";
}

int ks_shift_check_families(const struct ks_shift *s, char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN];
	bool has[KS_FAMILY_V6 + 1] = {};
	size_t i, j;

	/* a Service's addresses are known only once it resolves */
	if (s->frontend_service[0] || !s->nr_addresses)
		return 0;
	for (i = 0; i < s->nr_addresses; i++)
		has[s->addresses[i].family == KS_FAMILY_V6 ? KS_FAMILY_V6 : KS_FAMILY_V4] = true;
	for (i = 0; i < s->nr_backends; i++) {
		for (j = 0; j < s->backends[i].nr_endpoints; j++) {
			const struct ks_endpoint_spec *e = &s->backends[i].endpoints[j];

			if (e->frontend_port || has[e->ip.family])
				continue;
			snprintf(err, errlen,
				 "spec.backends[%zu].endpoints[%zu]: %s: %s, but no frontend "
				 "address is "
				 "%s: it could never take a connection",
				 i, j, ks_ip_str(&e->ip, addr, sizeof(addr)),
				 family_name(e->ip.family), family_name(e->ip.family));
			return -EINVAL;
		}
	}
	for (i = 0; i < s->nr_rules; i++) {
		for (j = 0; j < s->rules[i].nr_sources; j++) {
			const struct ks_prefix *p = &s->rules[i].sources[j];
			struct ks_ip ip = { .addr = p->addr, .family = p->family };

			if (has[p->family])
				continue;
			snprintf(err, errlen,
				 "spec.rules[%zu].sources[%zu]: %s/%u: %s, but no frontend address "
				 "is "
				 "%s: the rule could never match",
				 i, j, ks_ip_str(&ip, addr, sizeof(addr)), p->len,
				 family_name(p->family), family_name(p->family));
			return -EINVAL;
		}
	}
	return 0;
}
