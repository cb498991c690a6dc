// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of fragments of steered flows (issue #8, 5), IPv4 and IPv6,
 * in ks_xdp and ks_tc: the first fragment of a datagram to a frontend is
 * steered like its flow and the later ones follow it to the same endpoint;
 * a fragmented reply is translated back, first and later fragments alike;
 * a later fragment of a datagram whose first was not seen is dropped if
 * sent to a frontend and passes untouched otherwise.
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

static struct pkt_env env;
static struct pkt_topo topo;

/* A fragment of a UDP datagram from src:sport to dst:dport: the first (with
 * the UDP header) if offset is 0, else a later one at offset (8-byte
 * units); id sets the datagram's IP id (IPv4) or fragment id (IPv6). */
static void build_frag(uint8_t family, const char *src, uint16_t sport, const char *dst,
		       uint16_t dport, uint16_t offset, uint32_t id, struct pkt *p)
{
	struct pkt_spec s = {
		.family = family,
		.proto = IPPROTO_UDP,
		.src = src,
		.dst = dst,
		.sport = sport,
		.dport = dport,
		.payload = 64,
	};
	uint8_t *l3;

	if (family == 4) {
		s.frag = offset ? offset : 0x2000;
	} else {
		s.v6_frag = true;
		s.v6_frag_off = offset ? offset << 3 : 1;
	}
	pkt_build(&s, p);
	l3 = p->data + p->l3_off;
	if (family == 4) {
		pkt_put16(l3 + 4, (uint16_t)id);
		pkt_put16(l3 + 10, 0);
		pkt_put16(l3 + 10, (uint16_t)~pkt_sum16(l3, 20, 0));
	} else {
		l3[40 + 4] = id >> 24;
		l3[40 + 5] = id >> 16;
		l3[40 + 6] = id >> 8;
		l3[40 + 7] = id;
	}
}

/* A later fragment: expects verdict and, for a rewrite, the input with its
 * destination (dst) or source address made addr, and nothing else. */
static void run_later(enum pkt_prog prog, const struct pkt *in, enum ks_verdict verdict,
		      enum pkt_act act, bool dst, const char *addr)
{
	uint8_t want[PKT_MAX], fam;
	struct ks_addr a;
	struct pkt_result r;
	struct pkt_view v;
	uint8_t *l3 = want + in->l3_off;

	pkt_run(&env, prog, in->data, in->len, &r, true);
	pkt_expect(&r, prog, act, verdict);
	if (act == PKT_DROP)
		return;
	if (verdict != KS_V_NAT_FRAGMENT) {
		pkt_expect_untouched(&r, in);
		return;
	}
	pkt_expect_valid(&r, &v);
	memcpy(want, in->data, in->len);
	a = pkt_addr(addr, &fam);
	if (fam == KS_FAMILY_V4) {
		memcpy(l3 + (dst ? 16 : 12), &a.v4, 4);
		pkt_put16(l3 + 10, 0);
		pkt_put16(l3 + 10, (uint16_t)~pkt_sum16(l3, 20, 0));
	} else {
		memcpy(l3 + (dst ? 24 : 8), &a, 16);
	}
	if (r.len != in->len || memcmp(r.out, want, in->len)) {
		pkt_dump("output", r.out, r.len);
		pkt_dump("expected", want, in->len);
		fail_msg("later fragment not rewritten to %s", addr);
	}
}

static void test_fragments_follow(void **state)
{
	int fi, prog;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t family = fi ? 6 : 4;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			char ep[INET6_ADDRSTRLEN];
			struct pkt first, later, other, rfirst, rlater;
			struct pkt_result r;
			struct pkt_view v;

			pkt_context("%s IPv%u: ", pkt_prog_name(prog), family);
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			build_frag(family, a->client, 47000, a->vip, PKT_PORT_MAIN, 0, 0x4242, &first);
			build_frag(family, a->client, 47000, a->vip, PKT_PORT_MAIN, 9, 0x4242, &later);
			build_frag(family, a->client, 47000, a->vip, PKT_PORT_MAIN, 9, 0x4343, &other);

			/* a later fragment before its first: nowhere to go */
			run_later(prog, &later, KS_V_DROP_FRAGMENT, PKT_DROP, true, NULL);

			pkt_run(&env, prog, first.data, first.len, &r, true);
			pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
			pkt_expect_valid(&r, &v);
			pkt_ntop(r.out, &v, true, ep);
			pkt_expect_nat(&r, &first, true, ep, PKT_EP_PORT);
			run_later(prog, &later, KS_V_NAT_FRAGMENT, PKT_PASS, true, ep);
			run_later(prog, &other, KS_V_DROP_FRAGMENT, PKT_DROP, true, NULL);

			/* the endpoint's fragmented reply */
			build_frag(family, ep, PKT_EP_PORT, a->client, 47000, 0, 0x5151, &rfirst);
			build_frag(family, ep, PKT_EP_PORT, a->client, 47000, 9, 0x5151, &rlater);
			pkt_run(&env, prog, rfirst.data, rfirst.len, &r, true);
			pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_REPLY);
			pkt_expect_nat(&r, &rfirst, false, a->vip, PKT_PORT_MAIN);
			run_later(prog, &rlater, KS_V_NAT_FRAGMENT, PKT_PASS, false, a->vip);
			/* another reply datagram's later fragment, its first
			 * unseen: not for a frontend, untouched */
			build_frag(family, ep, PKT_EP_PORT, a->client, 47000, 9, 0x5252, &rlater);
			run_later(prog, &rlater, KS_V_PASS_FRAGMENT, PKT_PASS, false, NULL);
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
		cmocka_unit_test(test_fragments_follow),
	};

	return cmocka_run_group_tests_name("pkt_frag", tests, setup, teardown);
}
