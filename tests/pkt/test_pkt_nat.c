// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of single frames, one table run through both ks_xdp and
 * ks_tc: DNAT of new flows (IPv4 and IPv6, TCP and UDP, IPv4 options, a
 * VLAN tag, an IPv6 extension header), traffic kshift must leave alone byte
 * for byte, and the fragment policy of bpf/lib/lb.h. Every row also checks
 * that exactly its verdict counter moved, by one.
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

enum nat_check {
	CHECK_NONE,	 /* dropped: the output does not matter */
	CHECK_UNTOUCHED, /* passed byte for byte */
	CHECK_DNAT,	 /* destination rewritten to one of eps, port ep_port */
	CHECK_SAFE,	 /* beyond what the parser reaches: DNAT done right, passed
			  * untouched or dropped as malformed; anything but a wrong
			  * rewrite (act and verdict unused) */
};

struct nat_case {
	const char *name;
	struct pkt_spec in;
	enum pkt_act act;
	enum ks_verdict verdict;
	enum nat_check check;
	const char *eps[2];
	uint16_t ep_port;
};

static struct pkt_env env;
static struct pkt_topo topo;

/* Tables read best one row per case. */
/* clang-format off */
/* A client's first segment or datagram; rows add what they test. */
#define TCP4(dst_, port_)                                                                          \
	.family = 4, .proto = IPPROTO_TCP, .src = PKT_CLIENT4, .dst = dst_, .sport = 40001,        \
	.dport = port_, .seq = 0x01020304
#define UDP4(dst_, port_)                                                                          \
	.family = 4, .proto = IPPROTO_UDP, .src = PKT_CLIENT4, .dst = dst_, .sport = 40002,        \
	.dport = port_
#define TCP6(dst_, port_)                                                                          \
	.family = 6, .proto = IPPROTO_TCP, .src = PKT_CLIENT6, .dst = dst_, .sport = 40003,        \
	.dport = port_, .seq = 0x01020304
#define UDP6(dst_, port_)                                                                          \
	.family = 6, .proto = IPPROTO_UDP, .src = PKT_CLIENT6, .dst = dst_, .sport = 40004,        \
	.dport = port_

#define DNAT4                                                                                      \
	.act = PKT_PASS, .verdict = KS_V_NAT_NEW, .check = CHECK_DNAT,                             \
	.eps = { PKT_EP_A4, PKT_EP_B4 }, .ep_port = PKT_EP_PORT
#define DNAT6                                                                                      \
	.act = PKT_PASS, .verdict = KS_V_NAT_NEW, .check = CHECK_DNAT,                             \
	.eps = { PKT_EP_A6, PKT_EP_B6 }, .ep_port = PKT_EP_PORT
#define PASS(v) .act = PKT_PASS, .verdict = (v), .check = CHECK_UNTOUCHED
#define DROP(v) .act = PKT_DROP, .verdict = (v), .check = CHECK_NONE

/* IPv4 options: ihl 6..15, TCP, all NOPs */
#define OPTS_ROW(ihl)                                                                              \
	{ "IPv4 options, ihl " #ihl ", TCP DNAT",                                                  \
	  { TCP4(PKT_VIP4, 80), .ip_opts = 4 * ((ihl) - 5), .payload = 12 }, DNAT4 }

static const struct nat_case cases[] = {
	/* DNAT of a new flow */
	{ "IPv4 TCP SYN to the frontend: DNAT", { TCP4(PKT_VIP4, 80) }, DNAT4 },
	{ "IPv4 UDP to the frontend: DNAT", { UDP4(PKT_VIP4, 80), .payload = 32 }, DNAT4 },
	{ "IPv6 TCP SYN to the frontend: DNAT", { TCP6(PKT_VIP6, 80) }, DNAT6 },
	{ "IPv6 UDP to the frontend: DNAT", { UDP6(PKT_VIP6, 80), .payload = 32 }, DNAT6 },
	{ "IPv4 TCP with options and data: DNAT",
	  { TCP4(PKT_VIP4, 80), .tcp_opts = 12, .payload = 301, .tcp_flags = 0x18 },
	  DNAT4 },
	{ "IPv6 TCP with options and data: DNAT",
	  { TCP6(PKT_VIP6, 80), .tcp_opts = 20, .payload = 99, .tcp_flags = 0x18 },
	  DNAT6 },
	{ "IPv4 UDP, odd length: DNAT", { UDP4(PKT_VIP4, 80), .payload = 7 }, DNAT4 },
	{ "IPv4 UDP, empty: DNAT", { UDP4(PKT_VIP4, 80) }, DNAT4 },
	{ "IPv4 UDP with checksum 0: DNAT, stays 0",
	  { UDP4(PKT_VIP4, 80), .udp_no_csum = true },
	  DNAT4 },
	{ "IPv4 UDP with checksum 0 via VLAN: DNAT, stays 0",
	  { UDP4(PKT_VIP4, 80), .udp_no_csum = true, .vlan = true, .vlan_tci = 7 },
	  DNAT4 },
	{ "IPv4 TCP ACK with Ethernet padding: DNAT, padding kept",
	  { TCP4(PKT_VIP4, 80), .tcp_flags = 0x10, .pad = 6 },
	  DNAT4 },
	{ "VLAN IPv4 UDP with Ethernet padding: DNAT, padding kept",
	  { UDP4(PKT_VIP4, 80), .payload = 2, .vlan = true, .pad = 12 },
	  DNAT4 },
	{ "IPv6 UDP with trailing bytes: DNAT, bytes kept",
	  { UDP6(PKT_VIP6, 80), .payload = 1, .pad = 5 },
	  DNAT6 },
	{ "IPv4 with DF (not a fragment): DNAT", { TCP4(PKT_VIP4, 80), .frag = 0x4000 }, DNAT4 },
	{ "IPv4 UDP to the single-endpoint service",
	  { UDP4(PKT_VIP4, 53) },
	  .act = PKT_PASS, .verdict = KS_V_NAT_NEW, .check = CHECK_DNAT,
	  .eps = { PKT_EP_DNS4 }, .ep_port = PKT_EP_DNS_PORT },
	{ "IPv6 UDP to the single-endpoint service",
	  { UDP6(PKT_VIP6, 53) },
	  .act = PKT_PASS, .verdict = KS_V_NAT_NEW, .check = CHECK_DNAT,
	  .eps = { PKT_EP_DNS6 }, .ep_port = PKT_EP_DNS_PORT },

	/* IPv4 options */
	OPTS_ROW(6), OPTS_ROW(7), OPTS_ROW(8), OPTS_ROW(9), OPTS_ROW(10),
	OPTS_ROW(11), OPTS_ROW(12), OPTS_ROW(13), OPTS_ROW(14), OPTS_ROW(15),
	{ "IPv4 options, ihl 15, UDP DNAT", { UDP4(PKT_VIP4, 80), .ip_opts = 40 }, DNAT4 },
	{ "IPv4 options, ihl 15, VLAN, TCP DNAT",
	  { TCP4(PKT_VIP4, 80), .ip_opts = 40, .vlan = true, .vlan_tci = 100 },
	  DNAT4 },

	/* VLAN tags: the tag is in the bytes the DNAT check requires unchanged */
	{ "VLAN IPv4 TCP: DNAT, tag kept",
	  { TCP4(PKT_VIP4, 80), .vlan = true, .vlan_tci = 0x2064 },
	  DNAT4 },
	{ "VLAN IPv4 UDP: DNAT, tag kept",
	  { UDP4(PKT_VIP4, 80), .vlan = true, .vlan_tci = 0x0fff },
	  DNAT4 },
	{ "VLAN IPv6 TCP: DNAT, tag kept",
	  { TCP6(PKT_VIP6, 80), .vlan = true, .vlan_tci = 1 },
	  DNAT6 },
	{ "VLAN IPv6 UDP: DNAT, tag kept",
	  { UDP6(PKT_VIP6, 80), .vlan = true, .vlan_tci = 4000 },
	  DNAT6 },

	{ "802.1ad IPv4 TCP: DNAT, tag kept",
	  { TCP4(PKT_VIP4, 80), .vlan = true, .vlan_proto = 0x88a8, .vlan_tci = 12 },
	  DNAT4 },
	{ "802.1ad IPv6 UDP: DNAT, tag kept",
	  { UDP6(PKT_VIP6, 80), .vlan = true, .vlan_proto = 0x88a8, .vlan_tci = 13 },
	  DNAT6 },
	{ "802.1ad tag over an 802.1Q tag: not parsed, untouched",
	  { .ethertype = 0x8100, .vlan = true, .vlan_proto = 0x88a8, .payload = 60 },
	  PASS(KS_V_PASS_NOT_IP) },

	/* IPv6 extension headers are skipped, and not part of the pseudo header */
	{ "IPv6 TCP behind a hop-by-hop header: DNAT",
	  { TCP6(PKT_VIP6, 80), .v6_hbh = true },
	  DNAT6 },
	{ "IPv6 UDP behind a hop-by-hop header: DNAT",
	  { UDP6(PKT_VIP6, 80), .v6_hbh = true },
	  DNAT6 },

	/*
	 * Extension headers past what the parser reaches (l4_off masked to
	 * 9 bits in parse.h). The second frame is built so that the 9-bit
	 * wrap of its L4 offset (526 -> 14) lands on the IPv6 header, whose
	 * flow label then reads as destination port 80 and whose source
	 * address byte 4 as a data offset of 5.
	 */
	{ "IPv6 TCP behind a 472-byte hop-by-hop header: safe",
	  { TCP6(PKT_VIP6, 80), .v6_hbh = true, .v6_hbh_len = 58 },
	  .check = CHECK_SAFE, .eps = { PKT_EP_A6, PKT_EP_B6 }, .ep_port = PKT_EP_PORT },
	{ "IPv6 TCP behind a 472-byte hop-by-hop header, flow label 80: safe",
	  { .family = 6, .proto = IPPROTO_TCP, .src = "2001:2:5000:1::1", .dst = PKT_VIP6,
	    .sport = 40003, .dport = 80, .v6_hbh = true, .v6_hbh_len = 58, .v6_flow = 80 },
	  .check = CHECK_SAFE, .eps = { PKT_EP_A6, PKT_EP_B6 }, .ep_port = PKT_EP_PORT },

	/* what kshift must not touch */
	{ "IPv4 TCP to another address", { TCP4(PKT_OTHER4, 80) }, PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 TCP to the frontend address, other port",
	  { TCP4(PKT_VIP4, 443) },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 UDP to the frontend address, other port",
	  { UDP4(PKT_VIP4, 9999) },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 TCP to a UDP-only frontend port",
	  { TCP4(PKT_VIP4, 53) },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 TCP from an endpoint, no flow", /* looks like a reply, but is none */
	  { .family = 4, .proto = IPPROTO_TCP, .src = PKT_EP_A4, .dst = PKT_CLIENT4, .sport = 8080,
	    .dport = 40001, .tcp_flags = 0x12 },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv6 TCP to another address", { TCP6(PKT_OTHER6, 80) }, PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv6 UDP to the frontend address, other port",
	  { UDP6(PKT_VIP6, 1081) },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 ICMP echo to the frontend address",
	  { .family = 4, .proto = IPPROTO_ICMP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 77,
	    .payload = 56 },
	  PASS(KS_V_PASS_NOT_L4) },
	{ "IPv6 ICMPv6 echo to the frontend address",
	  { .family = 6, .proto = IPPROTO_ICMPV6, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 77,
	    .payload = 56 },
	  PASS(KS_V_PASS_NOT_L4) },
	{ "IPv4 SCTP to the frontend address",
	  { .family = 4, .proto = IPPROTO_SCTP, .src = PKT_CLIENT4, .dst = PKT_VIP4,
	    .payload = 28 },
	  PASS(KS_V_PASS_NOT_L4) },
	{ "IPv4 GRE to the frontend address",
	  { .family = 4, .proto = IPPROTO_GRE, .src = PKT_CLIENT4, .dst = PKT_VIP4, .payload = 24 },
	  PASS(KS_V_PASS_NOT_L4) },
	{ "ARP request for the frontend address", { .ethertype = 0x0806 }, PASS(KS_V_PASS_NOT_IP) },
	{ "VLAN ARP request for the frontend address",
	  { .ethertype = 0x0806, .vlan = true, .vlan_tci = 5 },
	  PASS(KS_V_PASS_NOT_IP) },
	{ "LLDP frame", { .ethertype = 0x88cc, .payload = 40 }, PASS(KS_V_PASS_NOT_IP) },
	{ "MPLS frame", { .ethertype = 0x8847, .payload = 60 }, PASS(KS_V_PASS_NOT_IP) },
	/* (ks_tc never sees it: test_run refuses an IP frame without an IP header) */
	{ "Ethernet header of IPv4, nothing else",
	  { .ethertype = 0x0800, .payload = 0 },
	  PASS(KS_V_PASS_NOT_IP) },
	{ "IPv4 EtherType, IP version 0",
	  { .ethertype = 0x0800, .payload = 60 },
	  PASS(KS_V_PASS_NOT_IP) },
	{ "IPv6 EtherType, IP version 0",
	  { .ethertype = 0x86dd, .payload = 60 },
	  PASS(KS_V_PASS_NOT_IP) },

	/* fragments: a first fragment is steered like its flow; a later one
	 * whose first was not seen (test_pkt_frag: when it was) is dropped to
	 * a frontend address and passed elsewhere */
	{ "IPv4 UDP first fragment (MF) to the frontend",
	  { UDP4(PKT_VIP4, 80), .frag = 0x2000, .payload = 200 }, DNAT4 },
	{ "IPv4 UDP later fragment (offset 185) to the frontend",
	  { UDP4(PKT_VIP4, 80), .frag = 185, .payload = 200 },
	  DROP(KS_V_DROP_FRAGMENT) },
	{ "IPv4 UDP last fragment with DF to the frontend",
	  { UDP4(PKT_VIP4, 80), .frag = 0x4000 | 100 },
	  DROP(KS_V_DROP_FRAGMENT) },
	{ "IPv4 TCP first fragment to the frontend",
	  { TCP4(PKT_VIP4, 80), .frag = 0x2000 }, DNAT4 },
	{ "IPv4 first fragment to the frontend address, other port",
	  { UDP4(PKT_VIP4, 9999), .frag = 0x2000 },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 fragment to the second frontend address",
	  { UDP4(PKT_VIP2_4, 80), .frag = 0x2000 | 3 },
	  DROP(KS_V_DROP_FRAGMENT) },
	{ "VLAN IPv4 first fragment to the frontend",
	  { UDP4(PKT_VIP4, 80), .frag = 0x2000, .vlan = true, .vlan_tci = 9 }, DNAT4 },
	{ "IPv4 first fragment to another address",
	  { UDP4(PKT_OTHER4, 80), .frag = 0x2000 },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "IPv4 later fragment to another address",
	  { UDP4(PKT_OTHER4, 80), .frag = 185 },
	  PASS(KS_V_PASS_FRAGMENT) },
	{ "IPv6 first fragment to the frontend",
	  { UDP6(PKT_VIP6, 80), .v6_frag = true, .v6_frag_off = 1, .payload = 200 }, DNAT6 },
	{ "IPv6 later fragment to the frontend",
	  { UDP6(PKT_VIP6, 80), .v6_frag = true, .v6_frag_off = 185 << 3 },
	  DROP(KS_V_DROP_FRAGMENT) },
	{ "IPv6 TCP first fragment behind a hop-by-hop header to the frontend",
	  { TCP6(PKT_VIP6, 80), .v6_hbh = true, .v6_frag = true, .v6_frag_off = 1 }, DNAT6 },
	{ "IPv6 first fragment to another address",
	  { UDP6(PKT_OTHER6, 80), .v6_frag = true, .v6_frag_off = 1 },
	  PASS(KS_V_PASS_NO_MATCH) },
	{ "VLAN IPv6 fragment to another address",
	  { UDP6(PKT_OTHER6, 80), .v6_frag = true, .v6_frag_off = 8 << 3, .vlan = true },
	  PASS(KS_V_PASS_FRAGMENT) },
};
/* clang-format on */

static void check_dnat(const struct nat_case *c, const struct pkt *in, const struct pkt_result *r,
		       enum pkt_prog prog)
{
	char addr[INET6_ADDRSTRLEN], why[128];
	struct pkt_view v;
	size_t i;

	/* which endpoint; pkt_expect_nat() checks the rest */
	if (r->len < in->pad || !pkt_check(r->out, r->len - in->pad, &v, why, sizeof(why))) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		fail_msg("%s: invalid output: %s", pkt_prog_name(prog),
			 r->len < in->pad ? "too short" : why);
	}
	pkt_ntop(r->out, &v, true, addr);
	for (i = 0; i < ARRAY_SIZE(c->eps) && c->eps[i]; i++) {
		uint8_t fam;
		struct ks_addr want = pkt_addr(c->eps[i], &fam), got = pkt_addr(addr, &fam);

		if (!memcmp(&want, &got, sizeof(want)))
			break;
	}
	if (i == ARRAY_SIZE(c->eps) || !c->eps[i])
		fail_msg("%s: DNAT to %s, not an endpoint of the service", pkt_prog_name(prog),
			 addr);
	pkt_expect_nat(r, in, true, c->eps[i], c->ep_port);
}

static void check_safe(const struct nat_case *c, const struct pkt *in, const struct pkt_result *r,
		       enum pkt_prog prog)
{
	if (r->verdicts[KS_V_NAT_NEW]) {
		pkt_expect(r, prog, PKT_PASS, KS_V_NAT_NEW);
		check_dnat(c, in, r, prog);
	} else if (r->verdicts[KS_V_DROP_MALFORMED]) {
		pkt_expect(r, prog, PKT_DROP, KS_V_DROP_MALFORMED);
	} else {
		assert_int_equal(r->err, 0);
		if (r->retval != pkt_retval(prog, PKT_PASS))
			fail_msg("%s: returned %u", pkt_prog_name(prog), r->retval);
		pkt_expect_untouched(r, in);
	}
}

static void run_case(void **state)
{
	const struct nat_case *c = *state;
	struct pkt_result r;
	struct pkt in;
	int prog;

	pkt_build(&c->in, &in);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		/* every row is a new flow in both programs */
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		pkt_run(&env, prog, in.data, in.len, &r, true);
		if (pkt_refused(&r, prog, in.data, in.len))
			continue;
		if (c->check == CHECK_SAFE) {
			check_safe(c, &in, &r, prog);
			continue;
		}
		pkt_expect(&r, prog, c->act, c->verdict);
		if (c->check == CHECK_UNTOUCHED)
			pkt_expect_untouched(&r, &in);
		else if (c->check == CHECK_DNAT)
			check_dnat(c, &in, &r, prog);
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
	struct CMUnitTest tests[ARRAY_SIZE(cases)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
						.test_func = run_case,
						.initial_state = (void *)&cases[i] };
	return _cmocka_run_group_tests("pkt_nat", tests, ARRAY_SIZE(tests), setup, teardown);
}
