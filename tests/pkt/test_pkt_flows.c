// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of flows over several frames, each run in ks_xdp and in
 * ks_tc (with the flow table emptied in between): an established flow keeps
 * its endpoint when the weights change under it while a new flow follows
 * the new weights, a SYN on a remembered 5-tuple is a new flow, replies
 * are rewritten back to the frontend, UDP's "no checksum" survives both
 * directions, checksums at the one's complement edge come out right (a UDP
 * checksum that becomes 0 is sent as 0xffff), and the verdict and
 * per-backend counters add up.
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

/* Families and protocols every flow test runs in. */
struct flow_kind {
	uint8_t family;
	uint8_t proto;
};

static const struct flow_kind kinds[] = {
	{ 4, IPPROTO_TCP },
	{ 4, IPPROTO_UDP },
	{ 6, IPPROTO_TCP },
	{ 6, IPPROTO_UDP },
};

static struct pkt_spec client_spec(const struct flow_kind *k, uint16_t sport, uint16_t dport)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(k->family)];

	return (struct pkt_spec){
		.family = k->family,
		.proto = k->proto,
		.src = a->client,
		.dst = a->vip,
		.sport = sport,
		.dport = dport,
		.seq = 1000,
		.tcp_flags = 0x02,
		.payload = k->proto == IPPROTO_UDP ? 24 : 0,
	};
}

/* The reply an endpoint sends back to the client of spec. */
static struct pkt_spec reply_spec(const struct pkt_spec *spec, const char *ep, uint16_t ep_port)
{
	struct pkt_spec r = *spec;

	r.src = ep;
	r.dst = spec->src;
	r.sport = ep_port;
	r.dport = spec->sport;
	r.tcp_flags = 0x12; /* SYN ACK */
	r.seq = 5000;
	r.ack = spec->seq + 1;
	r.payload = spec->proto == IPPROTO_UDP ? 100 : 0;
	return r;
}

/* Runs seg in prog as it is, expecting a DNAT with verdict; returns the
 * endpoint (text into ep). */
static void send_seg(enum pkt_prog prog, const struct pkt_spec *seg, enum ks_verdict verdict,
		     char *ep)
{
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;

	pkt_build(seg, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, verdict);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, true, ep);
	pkt_expect_nat(&r, &in, true, ep, pkt_port(r.out, &v, true));
}

/* ... as a new flow's first packet or, for an established flow, a TCP
 * segment that carries an ACK. */
static void send_dnat(enum pkt_prog prog, const struct pkt_spec *spec, enum ks_verdict verdict,
		      char *ep)
{
	struct pkt_spec seg = *spec;

	/* a SYN always opens a new connection (a client may reuse a 5-tuple);
	 * the segments of an established one carry an ACK */
	if (verdict == KS_V_NAT_ESTABLISHED && seg.proto == IPPROTO_TCP)
		seg.tcp_flags = 0x10;
	send_seg(prog, &seg, verdict, ep);
}

static void send_reply(enum pkt_prog prog, const struct pkt_spec *spec, const char *ep,
		       uint16_t ep_port, uint16_t fe_port)
{
	struct pkt_spec rs = reply_spec(spec, ep, ep_port);
	struct pkt_result r;
	struct pkt in;

	pkt_build(&rs, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_REPLY);
	pkt_expect_nat(&r, &in, false, spec->dst, fe_port);
}

static bool same_addr(const char *a, const char *b)
{
	uint8_t fa, fb;
	struct ks_addr x = pkt_addr(a, &fa), y = pkt_addr(b, &fb);

	return fa == fb && !memcmp(&x, &y, sizeof(x));
}

/* Weights move all new flows from stable to canary: the flow that started
 * on stable stays there, a new one goes to canary, and stable's replies
 * are still rewritten. */
static void test_established_keeps_endpoint(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		int fi = pkt_fi(kinds[k].family);
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_spec first = client_spec(&kinds[k], 41000, PKT_PORT_SHIFT);
		struct pkt_spec other = client_spec(&kinds[k], 41001, PKT_PORT_SHIFT);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			assert_int_equal(pkt_env_shift(&env, &topo, fi, 100, 0), 0);
			send_dnat(prog, &first, KS_V_NAT_NEW, ep);
			if (!same_addr(ep, a->ep_a))
				fail_msg("%s: first flow went to %s, not stable",
					 pkt_prog_name(prog), ep);

			assert_int_equal(pkt_env_shift(&env, &topo, fi, 0, 100), 0);
			first.seq += 1;
			first.tcp_flags = 0x10; /* ACK */
			send_dnat(prog, &first, KS_V_NAT_ESTABLISHED, ep);
			if (!same_addr(ep, a->ep_a))
				fail_msg("%s: established flow moved to %s", pkt_prog_name(prog),
					 ep);
			send_dnat(prog, &other, KS_V_NAT_NEW, ep);
			if (!same_addr(ep, a->ep_c))
				fail_msg("%s: new flow went to %s, not canary", pkt_prog_name(prog),
					 ep);
			send_reply(prog, &first, a->ep_a, PKT_EP_PORT, PKT_PORT_SHIFT);
			first.seq -= 1;
			first.tcp_flags = 0x02;
		}
	}
	assert_int_equal(pkt_env_shift(&env, &topo, 0, 100, 0), 0);
	assert_int_equal(pkt_env_shift(&env, &topo, 1, 100, 0), 0);
}

static void expect_ep(enum pkt_prog prog, const char *what, const char *ep, const char *want)
{
	if (!same_addr(ep, want))
		fail_msg("%s: %s went to %s, not %s", pkt_prog_name(prog), what, ep, want);
}

/* A segment from the endpoint of spec's flow, with flags, run as it is. */
static void send_from_ep(enum pkt_prog prog, const struct pkt_spec *spec, const char *ep,
			 uint8_t flags, enum ks_verdict verdict)
{
	struct pkt_spec rs = reply_spec(spec, ep, PKT_EP_PORT);
	struct pkt_result r;
	struct pkt in;

	rs.tcp_flags = flags;
	pkt_build(&rs, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, verdict);
	if (verdict == KS_V_NAT_REPLY)
		pkt_expect_nat(&r, &in, false, spec->dst, spec->dport);
	else
		pkt_expect_untouched(&r, &in);
}

/*
 * A SYN moves a remembered 5-tuple to the weights of now only when the
 * flow is over (issue #8, 3): a retransmitted SYN (same initial sequence
 * number) keeps its endpoint while unanswered, and any SYN keeps it once
 * the endpoint has answered (an off-path SYN cannot move a flow); after a
 * RST, a new SYN is a new connection, which takes the reply translation
 * with it. Anything else on a remembered 5-tuple follows ks_conns: a
 * segment with an ACK (a SYN+ACK too: no client opens with one), and any
 * UDP datagram.
 */
static void test_syn_resteers(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		int fi = pkt_fi(kinds[k].family);
		const struct pkt_addrs *a = &pkt_addrs[fi];
		bool tcp = kinds[k].proto == IPPROTO_TCP;
		struct pkt_spec syn = client_spec(&kinds[k], 41200, PKT_PORT_SHIFT), seg;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			assert_int_equal(pkt_env_shift(&env, &topo, fi, 100, 0), 0);
			send_seg(prog, &syn, KS_V_NAT_NEW, ep);
			expect_ep(prog, "first SYN", ep, a->ep_a);
			assert_int_equal(pkt_env_shift(&env, &topo, fi, 0, 100), 0);

			if (!tcp) {
				/* the same datagram again: a flow of its own */
				send_seg(prog, &syn, KS_V_NAT_ESTABLISHED, ep);
				expect_ep(prog, "remembered datagram", ep, a->ep_a);
				continue;
			}
			/* retransmitted, unanswered: the same endpoint */
			send_seg(prog, &syn, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "retransmitted SYN", ep, a->ep_a);
			send_from_ep(prog, &syn, a->ep_a, 0x12, KS_V_NAT_REPLY);
			/* an ACK and a SYN+ACK are of the remembered connection */
			seg = syn;
			seg.tcp_flags = 0x10;
			seg.seq += 1;
			send_seg(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "ACK", ep, a->ep_a);
			seg.tcp_flags = 0x12;
			send_seg(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "SYN+ACK", ep, a->ep_a);

			/* the SYN again, or an off-path one with another ISN:
			 * the flow is established and stays */
			send_seg(prog, &syn, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "SYN on an established flow", ep, a->ep_a);
			seg = syn;
			seg.seq = 0x7fff0000;
			send_seg(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "off-path SYN", ep, a->ep_a);

			/* the client resets it; its next SYN is a new
			 * connection: canary now */
			seg = syn;
			seg.tcp_flags = 0x14; /* RST ACK */
			seg.seq += 1;
			send_seg(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
			seg = syn;
			seg.seq = 90000;
			send_seg(prog, &seg, KS_V_NAT_NEW, ep);
			expect_ep(prog, "SYN after RST", ep, a->ep_c);
			/* ... and the 5-tuple's later segments and replies
			 * follow it there; stable's are no longer its */
			seg.tcp_flags = 0x10;
			seg.seq += 1;
			send_seg(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
			expect_ep(prog, "ACK after it", ep, a->ep_c);
			send_reply(prog, &syn, a->ep_c, PKT_EP_PORT, PKT_PORT_SHIFT);
			send_from_ep(prog, &syn, a->ep_a, 0x10, KS_V_PASS_NO_MATCH);
		}
	}
	assert_int_equal(pkt_env_shift(&env, &topo, 0, 100, 0), 0);
	assert_int_equal(pkt_env_shift(&env, &topo, 1, 100, 0), 0);
}

/* A SYN that was never answered, then one with another ISN from the same
 * port (the client gave up and connected again): steered anew, and the
 * first endpoint's late SYN-ACK is no longer translated. */
static void test_unanswered_syn_resteers(void **state)
{
	static const struct flow_kind kind4 = { 4, IPPROTO_TCP }, kind6 = { 6, IPPROTO_TCP };
	const struct flow_kind *kk[] = { &kind4, &kind6 };
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kk); k++) {
		int fi = pkt_fi(kk[k]->family);
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_spec syn = client_spec(kk[k], 41300, PKT_PORT_SHIFT), again;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			assert_int_equal(pkt_env_shift(&env, &topo, fi, 100, 0), 0);
			send_seg(prog, &syn, KS_V_NAT_NEW, ep);
			expect_ep(prog, "first SYN", ep, a->ep_a);
			assert_int_equal(pkt_env_shift(&env, &topo, fi, 0, 100), 0);
			again = syn;
			again.seq = 777777;
			send_seg(prog, &again, KS_V_NAT_NEW, ep);
			expect_ep(prog, "SYN with a new ISN", ep, a->ep_c);
			send_from_ep(prog, &syn, a->ep_a, 0x12, KS_V_PASS_NO_MATCH);
			send_from_ep(prog, &syn, a->ep_c, 0x12, KS_V_NAT_REPLY);
		}
	}
	assert_int_equal(pkt_env_shift(&env, &topo, 0, 100, 0), 0);
	assert_int_equal(pkt_env_shift(&env, &topo, 1, 100, 0), 0);
}

/* A reply from the chosen endpoint gets the frontend as its source; later
 * packets of the flow, both ways, keep being rewritten. */
static void test_reverse_nat(void **state)
{
	char ep[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN];
	size_t k;
	int prog, i;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		struct pkt_spec spec = client_spec(&kinds[k], 42000, PKT_PORT_MAIN);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
			for (i = 0; i < 3; i++) {
				send_reply(prog, &spec, ep, PKT_EP_PORT, PKT_PORT_MAIN);
				send_dnat(prog, &spec, KS_V_NAT_ESTABLISHED, again);
				if (strcmp(ep, again))
					fail_msg("%s: flow moved from %s to %s",
						 pkt_prog_name(prog), ep, again);
			}
		}
	}
}

/* A reply with the frontend's port but from the other endpoint of the
 * service is no reply of this flow: untouched. */
static void test_reply_from_other_endpoint(void **state)
{
	static const struct flow_kind kind = { 4, IPPROTO_TCP };
	struct pkt_spec spec = client_spec(&kind, 42100, PKT_PORT_MAIN), rs;
	char ep[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt in;
	int prog;

	(void)state;
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
		rs = reply_spec(&spec, same_addr(ep, PKT_EP_A4) ? PKT_EP_B4 : PKT_EP_A4,
				PKT_EP_PORT);
		pkt_build(&rs, &in);
		pkt_run(&env, prog, in.data, in.len, &r, true);
		pkt_expect(&r, prog, PKT_PASS, KS_V_PASS_NO_MATCH);
		pkt_expect_untouched(&r, &in);
	}
}

/* UDP over IPv4 without a checksum: 0 going out and 0 coming back. */
static void test_udp_no_checksum_both_ways(void **state)
{
	static const struct flow_kind kind = { 4, IPPROTO_UDP };
	struct pkt_spec spec = client_spec(&kind, 43000, PKT_PORT_MAIN), rs;
	char ep[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt in;
	int prog;

	(void)state;
	spec.udp_no_csum = true;
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
		send_dnat(prog, &spec, KS_V_NAT_ESTABLISHED, ep);
		rs = reply_spec(&spec, ep, PKT_EP_PORT);
		pkt_build(&rs, &in);
		pkt_run(&env, prog, in.data, in.len, &r, true);
		pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_REPLY);
		pkt_expect_nat(&r, &in, false, PKT_VIP4, PKT_PORT_MAIN);
		assert_int_equal(pkt_get16(r.out + in.l4_off + 6), 0);
	}
}

/* The first payload word that makes target's checksum come out as 0 (its
 * sum 0xffff): the builder's field is ~sum, and adding w to the sum makes
 * it sum + w. */
static uint16_t zero_word(struct pkt_spec target)
{
	struct pkt p;
	uint16_t sum;

	target.set_word = true;
	target.word = 0;
	pkt_build(&target, &p);
	sum = (uint16_t)~pkt_get16(p.data + p.l4_off + (target.proto == IPPROTO_UDP ? 6 : 16));
	return (uint16_t)(0xffff - sum);
}

enum edge {
	EDGE_AFTER_DNAT,  /* the checksum computes to 0 after DNAT */
	EDGE_BEFORE_DNAT, /* it computes to 0 before: UDP carries 0xffff, TCP 0 */
	EDGE_AFTER_REPLY, /* it computes to 0 after the reply's rewrite */
};

/*
 * UDP checksums at the one's complement edge, IPv4 and IPv6, to the
 * single-endpoint service (whose endpoint is known in advance): a computed
 * 0 must go out as 0xffff (RFC 768: 0 is "no checksum"), and a 0xffff that
 * came in (a computed 0) must still give a valid, nonzero sum.
 */
static void checksum_edge(enum edge edge)
{
	size_t k;
	int prog;

	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(kinds[k].family)];
		struct pkt_spec spec = client_spec(&kinds[k], 44000, PKT_PORT_SINGLE), target, rs;
		bool udp = kinds[k].proto == IPPROTO_UDP;
		struct pkt in, rin;

		if (!udp)
			continue; /* TCP: test_tcp_checksum_edges() */
		spec.payload = 16;
		rs = reply_spec(&spec, a->ep_dns, PKT_EP_DNS_PORT);
		rs.set_word = true;
		target = edge == EDGE_AFTER_REPLY ? rs : spec;
		if (edge == EDGE_AFTER_DNAT) {
			target.dst = a->ep_dns;
			target.dport = PKT_EP_DNS_PORT;
		} else if (edge == EDGE_AFTER_REPLY) {
			target.src = a->vip;
			target.sport = PKT_PORT_SINGLE;
		}
		if (edge == EDGE_AFTER_REPLY) {
			rs.word = zero_word(target);
		} else {
			spec.set_word = true;
			spec.word = zero_word(target);
		}
		pkt_build(&spec, &in);
		pkt_build(&rs, &rin);
		if (edge == EDGE_BEFORE_DNAT)
			assert_int_equal(pkt_get16(in.data + in.l4_off + 6), 0xffff);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			const struct pkt *out_of = edge == EDGE_AFTER_REPLY ? &rin : &in;
			struct pkt_result r;
			char ep[INET6_ADDRSTRLEN];

			assert_int_equal(pkt_env_flush_conns(&env), 0);
			if (edge == EDGE_AFTER_REPLY) {
				send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
				pkt_run(&env, prog, rin.data, rin.len, &r, true);
				pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_REPLY);
				pkt_expect_nat(&r, &rin, false, a->vip, PKT_PORT_SINGLE);
			} else {
				pkt_run(&env, prog, in.data, in.len, &r, true);
				pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
				pkt_expect_nat(&r, &in, true, a->ep_dns, PKT_EP_DNS_PORT);
			}
			if (edge != EDGE_BEFORE_DNAT &&
			    pkt_get16(r.out + out_of->l4_off + 6) != 0xffff)
				fail_msg("%s: UDP checksum %04x, expected 0xffff",
					 pkt_prog_name(prog),
					 pkt_get16(r.out + out_of->l4_off + 6));
		}
	}
}

static void test_udp_checksum_zero_after_dnat(void **state)
{
	(void)state;
	checksum_edge(EDGE_AFTER_DNAT);
}

static void test_udp_checksum_ffff_before_dnat(void **state)
{
	(void)state;
	checksum_edge(EDGE_BEFORE_DNAT);
}

static void test_udp_checksum_zero_after_reply(void **state)
{
	(void)state;
	checksum_edge(EDGE_AFTER_REPLY);
}

/* TCP at the edge, to the main service: the segment's checksum computes to
 * 0 before DNAT (field 0x0000), or after DNAT to the endpoint it goes to. */
static void test_tcp_checksum_edges(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog, after;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(kinds); k++) {
		struct pkt_spec spec = client_spec(&kinds[k], 44100, PKT_PORT_MAIN), target;
		struct pkt_result r;
		struct pkt in;

		if (kinds[k].proto != IPPROTO_TCP)
			continue;
		spec.payload = 16;
		for (after = 0; after < 2; after++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				target = spec;
				if (after) {
					/* where the flow goes does not depend on its payload */
					assert_int_equal(pkt_env_flush_conns(&env), 0);
					send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
					target.dst = ep;
					target.dport = PKT_EP_PORT;
				}
				spec.set_word = true;
				spec.word = zero_word(target);
				pkt_build(&spec, &in);
				if (!after)
					assert_int_equal(pkt_get16(in.data + in.l4_off + 16), 0);
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				pkt_run(&env, prog, in.data, in.len, &r, true);
				pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
				pkt_expect_valid(&r, NULL);
				spec.set_word = false;
			}
		}
	}
}

/* The verdict counters and the per-backend counters over a sequence. */
static void test_counters(void **state)
{
	static const struct flow_kind kind = { 4, IPPROTO_TCP };
	static const uint64_t want[KS_V_MAX] = {
		[KS_V_NAT_NEW] = 3,	   [KS_V_NAT_ESTABLISHED] = 1, [KS_V_NAT_REPLY] = 1,
		[KS_V_PASS_NO_MATCH] = 1, [KS_V_REJECT_RESET] = 1,
	};
	uint64_t before[KS_V_MAX], after[KS_V_MAX];
	struct ks_counters st0, st1, none0, none1;
	uint64_t bytes = 0;
	char ep[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt in;
	int prog, i;

	(void)state;
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		struct pkt_spec spec = client_spec(&kind, 45000, PKT_PORT_MAIN), other, rs;

		assert_int_equal(pkt_env_flush_conns(&env), 0);
		assert_int_equal(ks_dp_verdicts(&env.dp, before), 0);
		assert_int_equal(ks_dp_stats(&env.dp, topo.main[0], 0, &st0), 0);
		assert_int_equal(ks_dp_stats(&env.dp, topo.weight0[0], KS_STATS_NONE, &none0), 0);

		/* three new flows, one more packet of the first, one reply */
		for (i = 0; i < 3; i++) {
			spec.sport = 45000 + i;
			pkt_build(&spec, &in);
			bytes += in.len;
			send_dnat(prog, &spec, KS_V_NAT_NEW, ep);
		}
		pkt_build(&spec, &in);
		bytes += in.len;
		send_dnat(prog, &spec, KS_V_NAT_ESTABLISHED, ep);
		send_reply(prog, &spec, ep, PKT_EP_PORT, PKT_PORT_MAIN);
		rs = reply_spec(&spec, ep, PKT_EP_PORT);
		pkt_build(&rs, &in);
		bytes += in.len;
		/* one for nobody, one rejected */
		other = spec;
		other.dst = PKT_OTHER4;
		pkt_build(&other, &in);
		pkt_run(&env, prog, in.data, in.len, &r, false);
		other.dst = PKT_VIP4;
		other.dport = PKT_PORT_WEIGHT0;
		pkt_build(&other, &in);
		pkt_run(&env, prog, in.data, in.len, &r, false);

		assert_int_equal(ks_dp_verdicts(&env.dp, after), 0);
		for (i = 0; i < KS_V_MAX; i++)
			if (after[i] - before[i] != want[i])
				fail_msg("%s: %s moved by %llu, expected %llu", pkt_prog_name(prog),
					 ks_verdict_name(i),
					 (unsigned long long)(after[i] - before[i]),
					 (unsigned long long)want[i]);
		assert_int_equal(ks_dp_stats(&env.dp, topo.main[0], 0, &st1), 0);
		assert_int_equal(st1.new_flows - st0.new_flows, 3);
		assert_int_equal(st1.packets - st0.packets, 5);
		assert_int_equal(st1.bytes - st0.bytes, bytes);
		assert_int_equal(st1.rejected - st0.rejected, 0);
		assert_int_equal(ks_dp_stats(&env.dp, topo.weight0[0], KS_STATS_NONE, &none1), 0);
		assert_int_equal(none1.rejected - none0.rejected, 1);
		assert_int_equal(none1.new_flows - none0.new_flows, 1);
		bytes = 0;
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
		cmocka_unit_test(test_established_keeps_endpoint),
		cmocka_unit_test(test_syn_resteers),
		cmocka_unit_test(test_unanswered_syn_resteers),
		cmocka_unit_test(test_reverse_nat),
		cmocka_unit_test(test_reply_from_other_endpoint),
		cmocka_unit_test(test_udp_no_checksum_both_ways),
		cmocka_unit_test(test_udp_checksum_zero_after_dnat),
		cmocka_unit_test(test_udp_checksum_ffff_before_dnat),
		cmocka_unit_test(test_udp_checksum_zero_after_reply),
		cmocka_unit_test(test_tcp_checksum_edges),
		cmocka_unit_test(test_counters),
	};

	return cmocka_run_group_tests_name("pkt_flows", tests, setup, teardown);
}
