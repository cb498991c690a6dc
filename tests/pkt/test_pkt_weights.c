// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The weighted split as packets see it: 20,000 new flows (distinct source
 * ports) to a 90/10 service land within 2 points of 90/10 in both ks_xdp
 * and ks_tc, and each flow lands on the same backend in both programs (one
 * hash, one seed, one implementation). A backend of weight 0 gets nothing,
 * one of weight 100 everything; with client affinity, all flows of a client
 * go one way. The hash seed is fixed (PKT_HASH_SEED), so the counts are the
 * same on every run.
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
#include <cmocka.h>

#include "pktbuild.h"

#define NR_FLOWS   20000
#define FIRST_PORT 10000
#define TOLERANCE  0.02
/* all or nothing needs no statistics: fewer flows do */
#define NR_FLOWS_ALL 2000
/* client affinity: clients and flows (ports) per client, and its frontend */
#define AFFINITY_CLIENTS 200
#define AFFINITY_FLOWS	 20
#define AFFINITY_PORT	 8002

static struct pkt_env env;
static struct pkt_topo topo;

/* Which of the two endpoints dst (in a frame pkt_check() read into v) is:
 * 0 for first, 1 for second, -1 for neither. */
static int which(const uint8_t *out, const struct pkt_view *v, const char *first,
		 const char *second)
{
	uint8_t fam;
	struct ks_addr a = pkt_addr(first, &fam), b = pkt_addr(second, &fam);
	size_t n = v->family == KS_FAMILY_V4 ? 4 : 16;
	const uint8_t *dst = out + v->l3_off + (v->family == KS_FAMILY_V4 ? 16 : 24);

	if (!memcmp(dst, a.bytes, n))
		return 0;
	if (!memcmp(dst, b.bytes, n))
		return 1;
	return -1;
}

/* Sends n new flows from client, source ports from FIRST_PORT on, to
 * addr:port in prog, and records in choice[] which of first and second
 * each went to. */
static void spread_from(enum pkt_prog prog, uint8_t family, uint8_t proto, const char *client,
			const char *addr, uint16_t port, const char *first, const char *second,
			int n, int8_t *choice)
{
	struct pkt_spec spec = {
		.family = family,
		.proto = proto,
		.src = client,
		.dst = addr,
		.dport = port,
		.tcp_flags = 0x02,
	};
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;
	char why[128];
	int i;

	for (i = 0; i < n; i++) {
		spec.sport = FIRST_PORT + i;
		pkt_build(&spec, &in);
		pkt_run(&env, prog, in.data, in.len, &r, false);
		if (r.err || r.retval != pkt_retval(prog, PKT_PASS))
			fail_msg("%s: flow %d: err %d, returned %u", pkt_prog_name(prog), i, r.err,
				 r.retval);
		if (!pkt_check(r.out, r.len, &v, why, sizeof(why)))
			fail_msg("%s: flow %d: %s", pkt_prog_name(prog), i, why);
		choice[i] = (int8_t)which(r.out, &v, first, second);
		if (choice[i] < 0)
			fail_msg("%s: flow %d went to neither endpoint", pkt_prog_name(prog), i);
	}
}

static void spread(enum pkt_prog prog, uint8_t family, uint8_t proto, const char *addr,
		   uint16_t port, const char *first, const char *second, int n, int8_t *choice)
{
	assert_int_equal(pkt_env_flush_conns(&env), 0);
	spread_from(prog, family, proto, pkt_addrs[pkt_fi(family)].client, addr, port, first,
		    second, n, choice);
}

static void split_90_10(uint8_t family, uint8_t proto)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];
	static int8_t choice[PKT_NR_PROGS][NR_FLOWS];
	int prog, i, ninety;
	double share;

	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		spread(prog, family, proto, a->vip2, PKT_PORT_MAIN, a->ep_90, a->ep_10, NR_FLOWS,
		       choice[prog]);
		for (ninety = 0, i = 0; i < NR_FLOWS; i++)
			ninety += choice[prog][i] == 0;
		share = (double)ninety / NR_FLOWS;
		print_message("%s: %d of %d flows (%.2f%%) on the 90 backend\n",
			      pkt_prog_name(prog), ninety, NR_FLOWS, 100 * share);
		if (share < 0.90 - TOLERANCE || share > 0.90 + TOLERANCE)
			fail_msg("%s: %.2f%% of flows on the 90 backend", pkt_prog_name(prog),
				 100 * share);
	}
	for (i = 0; i < NR_FLOWS; i++)
		if (choice[PKT_XDP][i] != choice[PKT_TC][i])
			fail_msg("flow %d: ks_xdp chose backend %d, ks_tc %d", i,
				 choice[PKT_XDP][i], choice[PKT_TC][i]);
}

static void test_split_v4_tcp(void **state)
{
	(void)state;
	split_90_10(4, IPPROTO_TCP);
}

static void test_split_v6_udp(void **state)
{
	(void)state;
	split_90_10(6, IPPROTO_UDP);
}

/* 100/0 and 0/100 on the shift service: all or nothing, nothing between. */
static void test_all_or_nothing(void **state)
{
	static int8_t choice[NR_FLOWS_ALL];
	int fi, prog, i, w;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t family = fi ? 6 : 4;

		for (w = 0; w < 2; w++) {
			assert_int_equal(pkt_env_shift(&env, &topo, fi, w ? 0 : 100, w ? 100 : 0),
					 0);
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				spread(prog, family, IPPROTO_TCP, a->vip, PKT_PORT_SHIFT, a->ep_a,
				       a->ep_c, NR_FLOWS_ALL, choice);
				for (i = 0; i < NR_FLOWS_ALL; i++)
					if (choice[i] != w)
						fail_msg("%s: weights %d/%d, flow %d on backend %d",
							 pkt_prog_name(prog), w ? 0 : 100,
							 w ? 100 : 0, i, choice[i]);
			}
		}
		assert_int_equal(pkt_env_shift(&env, &topo, fi, 100, 0), 0);
	}
}

/*
 * Client affinity (KS_SPLIT_CLIENT_AFFINITY) on a 50/50 split: every flow
 * of one client lands on one backend, whatever its ports, and the clients
 * spread over both backends.
 */
static void test_client_affinity(void **state)
{
	static const char *const clients[2] = {"198.18.10.%d", "2001:2:0:10::%x"};
	int8_t choice[AFFINITY_FLOWS];
	int fi, prog, c, i, on_first;
	uint32_t svc;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t family = fi ? 6 : 4;
		struct ks_endpoint e1 = pkt_endpoint(a->ep_90, PKT_EP_PORT);
		struct ks_endpoint e2 = pkt_endpoint(a->ep_10, PKT_EP_PORT);
		struct ks_dp_backend b[2] = { { 50, &e1, 1 }, { 50, &e2, 1 } };

		assert_int_equal(ks_dp_svc_new(&env.dp, &svc), 0);
		assert_int_equal(ks_dp_svc_set(&env.dp, svc, b, 2, KS_SPLIT_CLIENT_AFFINITY), 0);
		assert_int_equal(pkt_env_frontend(&env, a->vip2, AFFINITY_PORT, IPPROTO_TCP, svc),
				 0);
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			for (on_first = 0, c = 1; c <= AFFINITY_CLIENTS; c++) {
				char client[INET6_ADDRSTRLEN];

				snprintf(client, sizeof(client), clients[fi], c);
				spread_from(prog, family, IPPROTO_TCP, client, a->vip2,
					    AFFINITY_PORT, a->ep_90, a->ep_10, AFFINITY_FLOWS,
					    choice);
				for (i = 1; i < AFFINITY_FLOWS; i++)
					if (choice[i] != choice[0])
						fail_msg("%s: client %s split over both backends",
							 pkt_prog_name(prog), client);
				on_first += choice[0] == 0;
			}
			print_message("%s: %d of %d clients on the first backend\n",
				      pkt_prog_name(prog), on_first, AFFINITY_CLIENTS);
			if (on_first < AFFINITY_CLIENTS / 4 || on_first > AFFINITY_CLIENTS * 3 / 4)
				fail_msg("%s: %d of %d clients on the first backend",
					 pkt_prog_name(prog), on_first, AFFINITY_CLIENTS);
		}
	}
}

static int setup(void **state)
{
	(void)state;
	return pkt_suite_setup(&env, &topo);
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
		cmocka_unit_test(test_split_v4_tcp),
		cmocka_unit_test(test_split_v6_udp),
		cmocka_unit_test(test_all_or_nothing),
		cmocka_unit_test(test_client_affinity),
	};

	return cmocka_run_group_tests_name("pkt_weights", tests, setup, teardown);
}
