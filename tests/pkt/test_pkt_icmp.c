// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of ICMP errors about steered flows (issue #8, 4), IPv4 and
 * IPv6, TCP and UDP, in ks_xdp and ks_tc, with whole quotes and with the
 * shortest ones (8 bytes of L4, no L4 checksum):
 *   - an error about a packet to an endpoint (time exceeded from a router,
 *     port unreachable from the endpoint itself) reaches the client as the
 *     frontend's: quoted destination, and the outer source if it was the
 *     endpoint;
 *   - an error about a reply (fragmentation needed, packet too big), sent
 *     by a router on the client's side to the frontend, goes on to the
 *     endpoint with the quoted source made the endpoint's: path MTU
 *     discovery through a frontend;
 *   - errors about no known flow, and ICMP that is no error, pass untouched.
 * Each output is compared byte for byte with the error as it should have
 * been sent, built from scratch with every checksum computed anew.
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

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static struct pkt_env env;
static struct pkt_topo topo;

static const char *const router[2] = { "198.18.1.254", "2001:2:0:1::fe" };
static const char *const ep_router[2] = { "198.18.2.254", "2001:2:0:2::fe" };

struct kind {
	uint8_t family, proto;
	size_t quote; /* 0: whole */
};

static const struct kind kinds[] = {
	{ 4, IPPROTO_TCP, 0 }, { 4, IPPROTO_UDP, 0 }, { 6, IPPROTO_TCP, 0 },
	{ 6, IPPROTO_UDP, 0 }, { 4, IPPROTO_TCP, 28 }, { 6, IPPROTO_TCP, 48 },
};

static struct pkt_spec client_spec(const struct kind *k, uint16_t sport)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(k->family)];

	return (struct pkt_spec){
		.family = k->family,
		.proto = k->proto,
		.src = a->client,
		.dst = a->vip,
		.sport = sport,
		.dport = PKT_PORT_MAIN,
		.seq = 1000,
		/* a data segment: the flow is established, so an unreachable
		 * about it is translated; one about a handshake's SYN is held
		 * back (passive health, test_pkt_health.c) */
		.tcp_flags = 0x18,
		.payload = 64,
	};
}

/* Opens spec's flow; its endpoint into ep. */
static void open_flow(enum pkt_prog prog, const struct pkt_spec *spec, char *ep)
{
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;

	pkt_build(spec, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, true, ep);
}

static void expect_frame(const struct pkt_result *r, const struct pkt *want)
{
	char why[128];

	if (!pkt_check(r->out, r->len, NULL, why, sizeof(why))) {
		pkt_dump("output", r->out, r->len);
		fail_msg("output invalid: %s", why);
	}
	if (r->len != want->len || memcmp(r->out, want->data, want->len)) {
		pkt_dump("output", r->out, r->len);
		pkt_dump("expected", want->data, want->len);
		fail_msg("output is not the translated error");
	}
}

static void run_error(enum pkt_prog prog, const struct pkt *in, enum ks_verdict verdict,
		      const struct pkt *want)
{
	struct pkt_result r;

	pkt_run(&env, prog, in->data, in->len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, verdict);
	expect_frame(&r, want ? want : in);
}

/* Errors about the packets a client sent through the frontend, on their
 * way back to the client: from a router past the node (time exceeded) and
 * from the endpoint itself (port unreachable). */
static void test_error_to_client(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog, from_ep;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		const struct kind *kd = &kinds[k];
		int fi = pkt_fi(kd->family);
		bool v4 = kd->family == 4;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			for (from_ep = 0; from_ep < 2; from_ep++) {
				struct pkt_spec spec = client_spec(kd, 46000), sent;
				struct pkt orig, fwd, in, want;
				uint8_t type = from_ep ? (v4 ? 3 : 1) : (v4 ? 11 : 3);
				uint8_t code = from_ep ? (v4 ? 3 : 4) : 0;

				pkt_context("%s IPv%u %s quote %zu %s", pkt_prog_name(prog),
					    kd->family, kd->proto == IPPROTO_TCP ? "TCP" : "UDP",
					    kd->quote, from_ep ? "from the endpoint" : "from a router");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				open_flow(prog, &spec, ep);
				sent = spec;
				sent.dst = ep;
				sent.dport = PKT_EP_PORT;
				pkt_build(&sent, &fwd);
				pkt_build(&spec, &orig);
				pkt_build_icmp_error(kd->family, type, code,
					    from_ep ? ep : ep_router[fi], spec.src, &fwd, kd->quote,
					    &in);
				pkt_build_icmp_error(kd->family, type, code,
					    from_ep ? spec.dst : ep_router[fi], spec.src, &orig,
					    kd->quote, &want);
				run_error(prog, &in, KS_V_NAT_ICMP_TO_CLIENT, &want);
			}
		}
	}
}

/* Path MTU discovery through a frontend: a router on the client's side
 * cannot pass a reply on and tells its source, the frontend; the endpoint
 * that sent it must hear. */
static void test_error_to_endpoint(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		const struct kind *kd = &kinds[k];
		int fi = pkt_fi(kd->family);
		bool v4 = kd->family == 4;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec spec = client_spec(kd, 46100), rep, sent;
			struct pkt as_sent, as_ep, in, want;
			uint8_t type = v4 ? 3 : 2, code = v4 ? 4 : 0;

			pkt_context("%s IPv%u %s quote %zu", pkt_prog_name(prog), kd->family,
				    kd->proto == IPPROTO_TCP ? "TCP" : "UDP", kd->quote);
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			open_flow(prog, &spec, ep);
			/* the endpoint's reply, as it left the node */
			sent = spec;
			sent.src = spec.dst;
			sent.sport = spec.dport;
			sent.dst = spec.src;
			sent.dport = spec.sport;
			sent.tcp_flags = 0x10;
			sent.seq = 5000;
			sent.payload = 400;
			rep = sent;
			rep.src = ep;
			rep.sport = PKT_EP_PORT;
			pkt_build(&sent, &as_sent);
			pkt_build(&rep, &as_ep);
			pkt_build_icmp_error(kd->family, type, code, router[fi], spec.dst, &as_sent, kd->quote,
				    &in);
			pkt_build_icmp_error(kd->family, type, code, router[fi], ep, &as_ep, kd->quote, &want);
			run_error(prog, &in, KS_V_NAT_ICMP_TO_ENDPOINT, &want);
		}
	}
}

/* An error about a flow nobody steered, and an echo request to the
 * frontend: untouched. */
static void test_unrelated_icmp(void **state)
{
	int fi, prog;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t family = fi ? 6 : 4;
		struct kind kd = { family, IPPROTO_UDP, 0 };
		struct pkt_spec spec = client_spec(&kd, 46200), echo = spec;
		struct pkt q, in;

		spec.dst = a->ep_a;
		spec.dport = PKT_EP_PORT;
		pkt_build(&spec, &q);
		pkt_build_icmp_error(family, fi ? 1 : 3, fi ? 4 : 3, a->ep_a, a->client, &q, 0, &in);
		echo.proto = fi ? IPPROTO_ICMPV6 : IPPROTO_ICMP;
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt e;

			assert_int_equal(pkt_env_flush_conns(&env), 0);
			run_error(prog, &in, KS_V_PASS_NOT_L4, NULL);
			pkt_build(&echo, &e);
			run_error(prog, &e, KS_V_PASS_NOT_L4, NULL);
		}
	}
	(void)topo;
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
		cmocka_unit_test(test_error_to_client),
		cmocka_unit_test(test_error_to_endpoint),
		cmocka_unit_test(test_unrelated_icmp),
	};

	return cmocka_run_group_tests_name("pkt_icmp", tests, setup, teardown);
}
