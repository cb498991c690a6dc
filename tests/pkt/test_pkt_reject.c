// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of new flows no endpoint can take (bpf/lib/reject.h), one
 * table run through both ks_xdp and ks_tc, against a service whose only
 * backend has weight 0 and one whose backend has no endpoint: a TCP segment
 * is answered with a reset (RFC 9293 3.10.7.1), a UDP datagram with an ICMP
 * or ICMPv6 port unreachable (RFC 792, RFC 4443) quoting its IP header and
 * 8 bytes, a reset is dropped without an answer. Replies go back out of the
 * interface: XDP_TX, or TC_ACT_REDIRECT from bpf_redirect().
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

#include <bpf/libbpf.h>

#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "pktbuild.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

enum reject_check {
	CHECK_NONE, /* dropped */
	CHECK_RESET,
	CHECK_UNREACH,
};

struct reject_case {
	const char *name;
	struct pkt_spec in;
	enum pkt_act act;
	enum ks_verdict verdict;
	enum reject_check check;
};

static struct pkt_env env;
static struct pkt_topo topo;

/* Tables read best one row per case. */
/* clang-format off */
#define TCP4(port_)                                                                                \
	.family = 4, .proto = IPPROTO_TCP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 50001,    \
	.dport = port_, .seq = 0xfffffff0
#define TCP6(port_)                                                                                \
	.family = 6, .proto = IPPROTO_TCP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 50002,    \
	.dport = port_, .seq = 0x7f000000
#define UDP4(port_)                                                                                \
	.family = 4, .proto = IPPROTO_UDP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 50003,    \
	.dport = port_
#define UDP6(port_)                                                                                \
	.family = 6, .proto = IPPROTO_UDP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 50004,    \
	.dport = port_

#define RESET	.act = PKT_TX, .verdict = KS_V_REJECT_RESET, .check = CHECK_RESET
#define UNREACH .act = PKT_TX, .verdict = KS_V_REJECT_UNREACH, .check = CHECK_UNREACH
#define SILENT	.act = PKT_DROP, .verdict = KS_V_DROP_NO_ENDPOINT, .check = CHECK_NONE

static const struct reject_case cases[] = {
	/* resets */
	{ "IPv4 SYN, weight 0: RST+ACK", { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN }, RESET },
	{ "IPv4 SYN, no endpoint: RST+ACK", { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN }, RESET },
	{ "IPv6 SYN, weight 0: RST+ACK", { TCP6(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN }, RESET },
	{ "IPv6 SYN, no endpoint: RST+ACK", { TCP6(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN }, RESET },
	{ "IPv4 SYN with options: RST+ACK without them",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN, .tcp_opts = 20 },
	  RESET },
	{ "IPv6 SYN with options: RST+ACK without them",
	  { TCP6(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN, .tcp_opts = 12 },
	  RESET },
	{ "IPv4 SYN with data: ACK covers it",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN, .tcp_opts = 4, .payload = 33 },
	  RESET },
	{ "IPv4 SYN with IP options: RST+ACK",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN, .ip_opts = 12 },
	  RESET },
	{ "VLAN IPv4 SYN: RST+ACK, tag kept",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN, .vlan = true, .vlan_tci = 42 },
	  RESET },
	{ "VLAN IPv6 SYN: RST+ACK, tag kept",
	  { TCP6(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN, .vlan = true, .vlan_tci = 43 },
	  RESET },
	{ "IPv4 SYN with Ethernet padding: RST+ACK, padding gone",
	  { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN, .pad = 6 },
	  RESET },
	{ "IPv4 bare FIN: RST+ACK acking the FIN",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_FIN },
	  RESET },
	{ "IPv4 ACK with data: RST, seq from its ack",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_ACK | TCP_PSH, .ack = 0x11223344,
		.payload = 100 },
	  RESET },
	{ "IPv6 ACK with data: RST, seq from its ack",
	  { TCP6(PKT_PORT_NOEPS), .tcp_flags = TCP_ACK | TCP_PSH, .ack = 0xdeadbeef, .payload = 64,
		.tcp_opts = 12 },
	  RESET },
	{ "IPv4 FIN+ACK: RST, seq from its ack",
	  { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_FIN | TCP_ACK, .ack = 7 },
	  RESET },
	{ "IPv4 SYN+ACK: RST, seq from its ack",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN | TCP_ACK, .ack = 0x80000000 },
	  RESET },

	/* never a reset for a reset */
	{ "IPv4 RST: dropped, no answer",
	  { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_RST },
	  SILENT },
	{ "IPv4 RST+ACK: dropped, no answer",
	  { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_RST | TCP_ACK, .ack = 1 },
	  SILENT },
	{ "IPv6 RST: dropped, no answer", { TCP6(PKT_PORT_NOEPS), .tcp_flags = TCP_RST }, SILENT },
	{ "VLAN IPv6 RST: dropped, no answer",
	  { TCP6(PKT_PORT_WEIGHT0), .tcp_flags = TCP_RST, .vlan = true },
	  SILENT },

	/* port unreachables */
	{ "IPv4 UDP, weight 0: ICMP port unreachable", { UDP4(PKT_PORT_WEIGHT0) }, UNREACH },
	{ "IPv4 UDP, no endpoint: ICMP port unreachable",
	  { UDP4(PKT_PORT_NOEPS), .payload = 20 },
	  UNREACH },
	{ "IPv6 UDP, weight 0: ICMPv6 port unreachable",
	  { UDP6(PKT_PORT_WEIGHT0), .payload = 20 },
	  UNREACH },
	{ "IPv6 UDP, no endpoint: ICMPv6 port unreachable", { UDP6(PKT_PORT_NOEPS) }, UNREACH },
	{ "IPv4 UDP with a long payload: quote cut to 8 bytes",
	  { UDP4(PKT_PORT_WEIGHT0), .payload = 700 },
	  UNREACH },
	{ "IPv6 UDP with a long payload: quote cut to 8 bytes",
	  { UDP6(PKT_PORT_NOEPS), .payload = 700 },
	  UNREACH },
	{ "IPv4 UDP with IP options: quoted whole",
	  { UDP4(PKT_PORT_WEIGHT0), .ip_opts = 24, .payload = 10 },
	  UNREACH },
	{ "IPv4 UDP with IP options, ihl 15: quoted whole",
	  { UDP4(PKT_PORT_NOEPS), .ip_opts = 40, .payload = 3 },
	  UNREACH },
	{ "IPv4 UDP with checksum 0: ICMP port unreachable",
	  { UDP4(PKT_PORT_NOEPS), .udp_no_csum = true, .payload = 9 },
	  UNREACH },
	{ "IPv4 UDP with Ethernet padding: ICMP port unreachable",
	  { UDP4(PKT_PORT_NOEPS), .payload = 1, .pad = 17 },
	  UNREACH },
	{ "VLAN IPv4 UDP: ICMP port unreachable, tag kept",
	  { UDP4(PKT_PORT_WEIGHT0), .vlan = true, .vlan_tci = 300, .payload = 12 },
	  UNREACH },
	{ "VLAN IPv6 UDP: ICMPv6 port unreachable, tag kept",
	  { UDP6(PKT_PORT_WEIGHT0), .vlan = true, .vlan_tci = 301, .payload = 12 },
	  UNREACH },

	/* reject.h builds no answer over IPv6 extension headers */
	{ "IPv6 SYN behind a hop-by-hop header: dropped",
	  { TCP6(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN, .v6_hbh = true },
	  SILENT },
	{ "IPv6 UDP behind a hop-by-hop header: dropped",
	  { UDP6(PKT_PORT_NOEPS), .v6_hbh = true },
	  SILENT },
};
/* clang-format on */

/* Whether replies are expected with their MACs swapped: not when they go up
 * the stack (ks_xdp_veth), where they must stay addressed to this
 * host. */
static bool l2_swap = true;

/* The program being checked, for the failure messages. */
static enum pkt_prog cur_prog;
#define FAIL(fmt, ...) fail_msg("%s: " fmt, pkt_prog_name(cur_prog), ##__VA_ARGS__)

/* The Ethernet header, tag included, with the MACs swapped (or kept). */
static void expect_l2(const struct pkt *in, const uint8_t *out)
{
	if (!l2_swap) {
		if (memcmp(out, in->data, 12))
			FAIL("MACs changed");
	} else if (memcmp(out, in->data + 6, 6) || memcmp(out + 6, in->data, 6)) {
		FAIL("MACs not swapped");
	}
	if (memcmp(out + 12, in->data + 12, in->l3_off - 12))
		FAIL("VLAN tag or EtherType changed");
}

/* Source and destination addresses swapped between in and out. */
static void expect_addrs_swapped(const struct pkt *in, const struct pkt_view *v, const uint8_t *out)
{
	size_t l3 = in->l3_off, n = v->family == KS_FAMILY_V4 ? 4 : 16;
	size_t src = v->family == KS_FAMILY_V4 ? 12 : 8, dst = src + n;

	if (memcmp(out + v->l3_off + src, in->data + l3 + dst, n) ||
	    memcmp(out + v->l3_off + dst, in->data + l3 + src, n))
		FAIL("addresses not swapped");
}

static void check_reset(const struct reject_case *c, const struct pkt *in,
			const struct pkt_result *r)
{
	const uint8_t *ti = in->data + in->l4_off, *to;
	uint8_t flags = ti[13];
	struct pkt_view v;
	uint32_t seg;

	pkt_expect_valid(r, &v);
	if (r->len != in->l4_off + 20 || v.l4_off != in->l4_off || v.proto != IPPROTO_TCP ||
	    v.fragment)
		FAIL("reset of %u bytes, TCP at %zu: expected %zu, TCP at %zu", r->len,
			 v.l4_off, in->l4_off + 20, in->l4_off);
	expect_l2(in, r->out);
	expect_addrs_swapped(in, &v, r->out);
	to = r->out + v.l4_off;
	if (pkt_get16(to) != c->in.dport || pkt_get16(to + 2) != c->in.sport)
		FAIL("ports %u -> %u not swapped", pkt_get16(to), pkt_get16(to + 2));
	if (to[12] >> 4 != 5)
		FAIL("data offset %u: options kept", to[12] >> 4);
	if (flags & TCP_ACK) {
		if (to[13] != TCP_RST || pkt_get32(to + 4) != c->in.ack)
			FAIL("flags %02x seq %08x, expected RST with seq %08x", to[13],
				 pkt_get32(to + 4), c->in.ack);
	} else {
		/* SYN and FIN take a sequence number each, data one a byte */
		seg = c->in.payload + !!(flags & TCP_SYN) + !!(flags & TCP_FIN);
		if (to[13] != (TCP_RST | TCP_ACK) || pkt_get32(to + 4) != 0 ||
		    pkt_get32(to + 8) != c->in.seq + seg)
			FAIL("flags %02x seq %08x ack %08x, expected RST+ACK seq 0 ack %08x",
				 to[13], pkt_get32(to + 4), pkt_get32(to + 8), c->in.seq + seg);
	}
}

static void check_unreach(const struct reject_case *c, const struct pkt *in,
			  const struct pkt_result *r)
{
	bool v4 = c->in.family == 4;
	size_t ip_hlen = v4 ? 20 : 40;
	size_t quote = in->l4_off - in->l3_off + 8;
	size_t want_len = in->l3_off + ip_hlen + 8 + quote;
	const uint8_t *icmp;
	struct pkt_view v;

	pkt_expect_valid(r, &v);
	if (r->len != want_len)
		FAIL("unreachable of %u bytes, expected %zu", r->len, want_len);
	if (v.proto != (v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) || v.fragment ||
	    v.l4_off != in->l3_off + ip_hlen)
		FAIL("not an ICMP%s message right after a plain IP header", v4 ? "" : "v6");
	expect_l2(in, r->out);
	expect_addrs_swapped(in, &v, r->out);
	icmp = r->out + v.l4_off;
	if (icmp[0] != (v4 ? 3 : 1) || icmp[1] != (v4 ? 3 : 4))
		FAIL("ICMP type %u code %u", icmp[0], icmp[1]);
	if (pkt_get32(icmp + 4))
		FAIL("ICMP unused field %08x", pkt_get32(icmp + 4));
	if (memcmp(icmp + 8, in->data + in->l3_off, quote)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("quote is not the original IP header and 8 bytes");
	}
	if (v4 && r->out[in->l3_off + 8] == 0)
		FAIL("TTL 0");
	if (!v4 && r->out[in->l3_off + 7] == 0)
		FAIL("hop limit 0");
}

static void run_case(void **state)
{
	const struct reject_case *c = *state;
	struct pkt_result r;
	struct pkt in;
	int prog;

	pkt_build(&c->in, &in);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		cur_prog = prog;
		pkt_run(&env, prog, in.data, in.len, &r, true);
		pkt_expect(&r, prog, c->act, c->verdict);
		if (c->check == CHECK_RESET)
			check_reset(c, &in, &r);
		else if (c->check == CHECK_UNREACH)
			check_unreach(c, &in, &r);
	}
}

/* Rejected flows count in the service's "no backend" slot, and are not
 * remembered: the next packet of the flow is rejected again. */
static void test_reject_counted_not_tracked(void **state)
{
	static const struct pkt_spec syn = { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN };
	struct ks_counters before, after;
	struct pkt_result r;
	struct pkt in;
	int prog, i;

	(void)state;
	pkt_build(&syn, &in);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		assert_int_equal(ks_dp_stats(&env.dp, topo.weight0[0], KS_STATS_NONE, &before), 0);
		for (i = 0; i < 2; i++) {
			pkt_run(&env, prog, in.data, in.len, &r, true);
			pkt_expect(&r, prog, PKT_TX, KS_V_REJECT_RESET);
		}
		assert_int_equal(ks_dp_stats(&env.dp, topo.weight0[0], KS_STATS_NONE, &after), 0);
		assert_int_equal(after.rejected - before.rejected, 2);
		assert_int_equal(after.new_flows - before.new_flows, 2);
		assert_int_equal(after.packets - before.packets, 2);
		assert_int_equal(after.bytes - before.bytes, 2 * in.len);
	}
}

/* Giving the service a usable backend ends the rejects. */
static void test_reject_until_endpoint(void **state)
{
	struct pkt_spec syn = { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_SYN };
	struct pkt_backend none = { 100, 0, {} };
	struct pkt_backend one = { 100, 1, { pkt_endpoint(PKT_EP_C4, 9090) } };
	struct pkt_result r;
	struct pkt in;
	int prog;

	(void)state;
	pkt_build(&syn, &in);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		pkt_run(&env, prog, in.data, in.len, &r, true);
		pkt_expect(&r, prog, PKT_TX, KS_V_REJECT_RESET);
		assert_int_equal(pkt_env_service_set(&env, topo.noeps[0], &one, 1), 0);
		pkt_run(&env, prog, in.data, in.len, &r, true);
		pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
		pkt_expect_nat(&r, &in, true, PKT_EP_C4, 9090);
		assert_int_equal(pkt_env_service_set(&env, topo.noeps[0], &none, 1), 0);
	}
}

/*
 * With ks_xdp_veth (native XDP on a veth), ks_xdp hands resets and
 * unreachables up the stack, still addressed to this host; ks_tc sends
 * them out as ever. A dataplane of its own, loaded with that setting.
 */
static void test_reply_via_stack(void **state)
{
	static const struct reject_case rows[] = {
		{ "IPv4 SYN", { TCP4(PKT_PORT_WEIGHT0), .tcp_flags = TCP_SYN }, RESET },
		{ "VLAN IPv6 SYN", { TCP6(PKT_PORT_NOEPS), .vlan = true }, RESET },
		{ "IPv4 ACK", { TCP4(PKT_PORT_NOEPS), .tcp_flags = TCP_ACK, .ack = 99 }, RESET },
		{ "IPv4 UDP", { UDP4(PKT_PORT_WEIGHT0), .payload = 5 }, UNREACH },
		{ "VLAN IPv6 UDP", { UDP6(PKT_PORT_NOEPS), .vlan = true }, UNREACH },
	};
	struct ks_dp_opts opts = { .hash_seed = PKT_HASH_SEED, .xdp_veth = true };
	struct pkt_env stack_env;
	struct pkt_topo stack_topo;
	struct pkt_result r;
	struct pkt in;
	size_t i;
	int prog;

	(void)state;
	assert_int_equal(ks_dp_open(&stack_env.dp, &opts), 0);
	stack_env.prog_fd[PKT_XDP] = bpf_program__fd(stack_env.dp.skel->progs.ks_xdp);
	stack_env.prog_fd[PKT_TC] = bpf_program__fd(stack_env.dp.skel->progs.ks_tc);
	if (pkt_env_topo(&stack_env, &stack_topo)) {
		pkt_env_close(&stack_env);
		fail_msg("cannot set up the services");
	}
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct reject_case *c = &rows[i];

		pkt_build(&c->in, &in);
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s: ", c->name);
			cur_prog = prog;
			pkt_run(&stack_env, prog, in.data, in.len, &r, true);
			l2_swap = prog == PKT_TC;
			pkt_expect(&r, prog, prog == PKT_XDP ? PKT_PASS : PKT_TX, c->verdict);
			if (c->check == CHECK_RESET)
				check_reset(c, &in, &r);
			else
				check_unreach(c, &in, &r);
			l2_swap = true;
		}
	}
	pkt_context("%s", "");
	pkt_env_close(&stack_env);
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
	static const struct CMUnitTest extra[] = {
		cmocka_unit_test(test_reject_counted_not_tracked),
		cmocka_unit_test(test_reject_until_endpoint),
		cmocka_unit_test(test_reply_via_stack),
	};
	struct CMUnitTest tests[ARRAY_SIZE(cases) + ARRAY_SIZE(extra)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
						.test_func = run_case,
						.initial_state = (void *)&cases[i] };
	for (i = 0; i < ARRAY_SIZE(extra); i++)
		tests[ARRAY_SIZE(cases) + i] = extra[i];
	return _cmocka_run_group_tests("pkt_reject", tests, ARRAY_SIZE(tests), setup, teardown);
}
