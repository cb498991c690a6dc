// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Source rules as packets see them, in ks_xdp and ks_tc, IPv4 and IPv6: a
 * client inside a rule's prefix goes to the rule's backend whatever the
 * weights (a weight-0 backend gets only rule traffic: a dark launch), one
 * outside follows the weights, the most specific prefix wins, and a rule
 * whose backend has no endpoint leaves its clients to the weights. Rules
 * are written with the split's generation: each case replaces the last
 * one's rules, and two changes without rules leave none in the trie.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>

#include <kshift/abi.h>
#include "kshift.skel.h"
#include "lib/rules.h"
#include "pktbuild.h"

#define RULES_PORT 9000
#define STABLE	   0
#define CANARY	   1
#define EMPTY	   2 /* a backend with no endpoint */
#define REJECT	   -1

static struct pkt_env env;
static uint32_t svc[2];

struct rule_text {
	const char *prefix[2]; /* IPv4, IPv6 */
	int backend;
};

struct client_case {
	const char *client[2];
	int expect; /* STABLE, CANARY or REJECT */
};

struct rule_case {
	const char *name;
	uint32_t stable, canary;
	struct rule_text rules[3];
	struct client_case clients[4];
};

/* inside the /28 (/124), inside the /24 (/64) only, outside both */
#define IN28                                                                                       \
	{                                                                                          \
		"198.18.1.20", "2001:2:0:1::14"                                                    \
	}
#define IN24                                                                                       \
	{                                                                                          \
		"198.18.1.40", "2001:2:0:1::28"                                                    \
	}
#define FAR                                                                                        \
	{                                                                                          \
		"198.18.9.1", "2001:2:0:9::1"                                                      \
	}
#define P28                                                                                        \
	{                                                                                          \
		"198.18.1.16/28", "2001:2:0:1::10/124"                                             \
	}
#define P24                                                                                        \
	{                                                                                          \
		"198.18.1.0/24", "2001:2:0:1::/64"                                                 \
	}

static const struct rule_case cases[] = {
	{ "dark launch: 100/0, /28 to the canary",
	  100,
	  0,
	  { { P28, CANARY } },
	  { { IN28, CANARY }, { IN24, STABLE }, { FAR, STABLE } } },
	{ "nested: /24 to the canary, /28 to stable",
	  100,
	  0,
	  { { P24, CANARY }, { P28, STABLE } },
	  { { IN28, STABLE }, { IN24, CANARY }, { FAR, STABLE } } },
	{ "nested, listed the other way round",
	  100,
	  0,
	  { { P28, STABLE }, { P24, CANARY } },
	  { { IN28, STABLE }, { IN24, CANARY }, { FAR, STABLE } } },
	{ "a rule's backend without endpoints: weights apply",
	  100,
	  0,
	  { { P28, EMPTY } },
	  { { IN28, STABLE }, { FAR, STABLE } } },
	{ "0/100, /28 to stable",
	  0,
	  100,
	  { { P28, STABLE } },
	  { { IN28, STABLE }, { IN24, CANARY }, { FAR, CANARY } } },
	{ "0/0: only rule traffic is served",
	  0,
	  0,
	  { { P28, CANARY } },
	  { { IN28, CANARY }, { IN24, REJECT }, { FAR, REJECT } } },
	{ "no rules any more",
	  100,
	  0,
	  {},
	  { { IN28, STABLE }, { IN24, STABLE }, { FAR, STABLE } } },
	{ "still none", 0, 100, {}, { { IN28, CANARY }, { IN24, CANARY }, { FAR, CANARY } } },
};

static struct ks_dp_rule parse_prefix(const char *text)
{
	struct ks_dp_rule r = {};
	char addr[64];
	const char *slash = strchr(text, '/');
	size_t bits, i;

	assert_non_null(slash);
	snprintf(addr, sizeof(addr), "%.*s", (int)(slash - text), text);
	r.addr = pkt_addr(addr, &r.family);
	r.len = (uint8_t)atoi(slash + 1);
	bits = r.family == KS_FAMILY_V4 ? 32 : 128;
	for (i = r.len; i < bits; i++)
		r.addr.bytes[i / 8] &= (uint8_t) ~(0x80 >> (i % 8));
	return r;
}

/* Programs case c into the family's service: rules, then the split. */
static void program(const struct rule_case *c, int fi)
{
	const struct pkt_addrs *a = &pkt_addrs[fi];
	struct ks_endpoint ea = pkt_endpoint(a->ep_a, PKT_EP_PORT);
	struct ks_endpoint ec = pkt_endpoint(a->ep_c, PKT_EP_PORT);
	struct ks_dp_backend b[3] = { { c->stable, &ea, 1 },
				      { c->canary, &ec, 1 },
				      { 50, NULL, 0 } };
	struct ks_dp_rule r[3];
	int n, flags;

	for (n = 0; n < 3 && c->rules[n].prefix[0]; n++) {
		r[n] = parse_prefix(c->rules[n].prefix[fi]);
		r[n].backend = (uint8_t)c->rules[n].backend;
	}
	flags = ks_rules_stage(&env.dp, svc[fi], r, (size_t)n);
	assert_true(flags >= 0);
	assert_int_equal(!!(flags & KS_SPLIT_RULES), n > 0);
	assert_int_equal(ks_dp_svc_set(&env.dp, svc[fi], b, 3, (uint32_t)flags), 0);
}

/* Where a SYN from client goes: STABLE, CANARY, or REJECT for a reset. */
static int steer(enum pkt_prog prog, int fi, const char *client)
{
	const struct pkt_addrs *a = &pkt_addrs[fi];
	struct pkt_spec spec = {
		.family = fi ? 6 : 4,
		.proto = IPPROTO_TCP,
		.src = client,
		.dst = a->vip2,
		.sport = 40000,
		.dport = RULES_PORT,
		.tcp_flags = 0x02,
	};
	char why[128], dst[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;
	uint8_t fam;
	struct ks_addr got, ea, ec;

	assert_int_equal(pkt_env_flush_conns(&env), 0);
	pkt_build(&spec, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	if (r.err)
		fail_msg("%s: %s: test run failed: %s", pkt_prog_name(prog), client,
			 strerror(-r.err));
	if (r.verdicts[KS_V_REJECT_RESET])
		return REJECT;
	if (!r.verdicts[KS_V_NAT_NEW])
		fail_msg("%s: %s: neither steered nor rejected", pkt_prog_name(prog), client);
	if (!pkt_check(r.out, r.len, &v, why, sizeof(why)))
		fail_msg("%s: %s: %s", pkt_prog_name(prog), client, why);
	got = pkt_addr(pkt_ntop(r.out, &v, true, dst), &fam);
	ea = pkt_addr(a->ep_a, &fam);
	ec = pkt_addr(a->ep_c, &fam);
	if (!memcmp(&got, &ea, sizeof(got)))
		return STABLE;
	if (!memcmp(&got, &ec, sizeof(got)))
		return CANARY;
	fail_msg("%s: %s: steered to %s, neither stable nor canary", pkt_prog_name(prog), client,
		 dst);
	return REJECT;
}

static const char *backend_name(int b)
{
	return b == STABLE ? "stable" : b == CANARY ? "canary" : "a reset";
}

static void test_cases(void **state)
{
	size_t i, k;
	int fi, prog, got;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rule_case *c = &cases[i];

		for (fi = 0; fi < 2; fi++) {
			program(c, fi);
			for (k = 0; k < 4 && c->clients[k].client[0]; k++) {
				for (prog = 0; prog < PKT_NR_PROGS; prog++) {
					got = steer(prog, fi, c->clients[k].client[fi]);
					if (got != c->clients[k].expect)
						fail_msg("%s (%s): %s: client %s went to %s, "
							 "expected %s",
							 c->name, fi ? "IPv6" : "IPv4",
							 pkt_prog_name(prog),
							 c->clients[k].client[fi],
							 backend_name(got),
							 backend_name(c->clients[k].expect));
				}
			}
		}
	}
}

/* After the last two cases, which have no rules, neither generation of
 * either service has any left. */
static void test_no_stale_rules(void **state)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_rules);
	struct ks_rule_key key, *prev = NULL;
	int n = 0;

	(void)state;
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		prev = &key;
		n++;
	}
	assert_int_equal(n, 0);
}

static int setup(void **state)
{
	struct pkt_topo topo;
	int fi;

	(void)state;
	if (pkt_suite_setup(&env, &topo))
		return -1;
	for (fi = 0; fi < 2; fi++)
		if (ks_dp_svc_new(&env.dp, &svc[fi]) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip2, RULES_PORT, IPPROTO_TCP, svc[fi]))
			return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pkt_env_close(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_no_stale_rules),
	};

	return cmocka_run_group_tests_name("pkt_rules", tests, setup, teardown);
}
