// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of shadow traffic (bpf/lib/mirror.h), IPv4 and IPv6, in
 * ks_xdp and ks_tc, on the "shift" service (stable [EP_A], canary [EP_C])
 * mirroring to its canary:
 *   - at 100%, a TCP SYN is steered as ever, and kshiftd gets an OPEN
 *     record (the ISN, the shadow endpoint); the flow's segments with
 *     payload reach kshiftd byte for byte, the primary's answers as their
 *     first bytes; pure ACKs send nothing; the primary's packets are
 *     rewritten exactly as without a mirror
 *   - at 0%, nothing is recorded and the flow is not marked
 *   - UDP: the datagram goes on to the primary; TC copies it (ks_mirror_
 *     stats counts the copy), XDP does not; an answer from the shadow to
 *     the client is dropped at the node (KS_V_DROP_SHADOW_REPLY)
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
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */

#include "kshift.skel.h"
#include "lib/shadow.h"
#include "pktbuild.h"

static struct pkt_env env;
static struct pkt_topo topo;
static struct ring_buffer *rb;

#define MAX_RECS 8

static struct rec {
	struct ks_shadow_ev ev;
	uint8_t data[PKT_MAX];
} recs[MAX_RECS];
static int nr_recs;

static int on_rec(void *ctx, void *data, size_t size)
{
	const struct ks_shadow_ev *ev = data;

	(void)ctx;
	if (nr_recs < MAX_RECS && size >= sizeof(*ev)) {
		memcpy(&recs[nr_recs].ev, ev, sizeof(*ev));
		memcpy(recs[nr_recs].data, ev + 1,
		       ev->len < sizeof(recs[0].data) ? ev->len : sizeof(recs[0].data));
	}
	nr_recs++;
	return 0;
}

static void drain(void)
{
	nr_recs = 0;
	ring_buffer__consume(rb);
}

static struct ks_flow flow_of(uint8_t family, const char *src, uint16_t sport, const char *dst,
			      uint16_t dport, uint8_t proto)
{
	struct ks_flow f = { .sport = htons(sport), .dport = htons(dport), .proto = proto };

	f.saddr = pkt_addr(src, &f.family);
	f.daddr = pkt_addr(dst, &f.family);
	(void)family;
	return f;
}

static struct ks_mirror_counters counters(uint32_t svc)
{
	struct ks_mirror_counters c;

	assert_int_equal(ks_dp_mirror_stats(&env.dp, svc, &c), 0);
	return c;
}

static uint8_t conn_flags(const struct ks_flow *f)
{
	struct ks_conn c;

	if (bpf_map_lookup_elem(bpf_map__fd(env.dp.skel->maps.ks_conns), f, &c))
		return 0xff;
	return c.flags;
}

/* One TCP segment through prog: expects verdict and the usual rewrite. */
static void run_tcp(enum pkt_prog prog, const struct pkt_spec *s, enum ks_verdict verdict, bool dst,
		    const char *addr, uint16_t port, struct pkt *in)
{
	struct pkt_result r;

	pkt_build(s, in);
	pkt_run(&env, prog, in->data, in->len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, verdict);
	pkt_expect_nat(&r, in, dst, addr, port);
}

/* A mirrored TCP flow: its start, data both ways, a pure ACK, a FIN. */
static void tcp_case(enum pkt_prog prog, uint8_t family)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];
	uint32_t svc = topo.shift[pkt_fi(family)];
	struct ks_flow fwd = flow_of(family, a->client, 40001, a->vip, PKT_PORT_SHIFT, IPPROTO_TCP);
	struct ks_flow rep = flow_of(family, a->ep_a, PKT_EP_PORT, a->client, 40001, IPPROTO_TCP);
	struct pkt_spec s = {
		.family = family,
		.proto = IPPROTO_TCP,
		.src = a->client,
		.dst = a->vip,
		.sport = 40001,
		.dport = PKT_PORT_SHIFT,
		.tcp_flags = 0x02,
		.seq = 1000,
	};
	struct ks_mirror_counters c0 = counters(svc), c1;
	uint8_t fam;
	struct ks_addr shadow = pkt_addr(a->ep_c, &fam);
	struct pkt in;

	pkt_context("%s IPv%u TCP", pkt_prog_name(prog), family);
	pkt_env_flush_conns(&env);
	assert_int_equal(ks_dp_mirror_set(&env.dp, svc, 100, 1), 0);
	drain();

	run_tcp(prog, &s, KS_V_NAT_NEW, true, a->ep_a, PKT_EP_PORT, &in);
	drain();
	assert_int_equal(nr_recs, 1);
	assert_int_equal(recs[0].ev.kind, KS_SHADOW_OPEN);
	assert_int_equal(recs[0].ev.seq, 1000);
	assert_int_equal(recs[0].ev.svc, svc);
	assert_memory_equal(&recs[0].ev.flow, &fwd, sizeof(fwd));
	assert_memory_equal(&recs[0].ev.shadow, &shadow, sizeof(shadow));
	assert_int_equal(recs[0].ev.shadow_port, htons(PKT_EP_PORT));
	assert_int_equal(conn_flags(&fwd) & KS_CONN_MIRRORED, KS_CONN_MIRRORED);
	assert_int_equal(conn_flags(&rep) & KS_CONN_MIRRORED, KS_CONN_MIRRORED);

	/* the SYN-ACK: the primary's ISN */
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_TCP,
			       .src = a->ep_a,
			       .dst = a->client,
			       .sport = PKT_EP_PORT,
			       .dport = 40001,
			       .tcp_flags = 0x12,
			       .seq = 7000,
			       .ack = 1001 };
	run_tcp(prog, &s, KS_V_NAT_REPLY, false, a->vip, PKT_PORT_SHIFT, &in);
	drain();
	assert_int_equal(nr_recs, 1);
	assert_int_equal(recs[0].ev.kind, KS_SHADOW_REPLY);
	assert_int_equal(recs[0].ev.seq, 7000);
	assert_int_equal(recs[0].ev.len, 0);

	/* the client's pure ACK: nothing; its request: every byte */
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_TCP,
			       .src = a->client,
			       .dst = a->vip,
			       .sport = 40001,
			       .dport = PKT_PORT_SHIFT,
			       .tcp_flags = 0x10,
			       .seq = 1001,
			       .ack = 7001 };
	run_tcp(prog, &s, KS_V_NAT_ESTABLISHED, true, a->ep_a, PKT_EP_PORT, &in);
	drain();
	assert_int_equal(nr_recs, 0);
	s.tcp_flags = 0x18;
	s.payload = 600;
	run_tcp(prog, &s, KS_V_NAT_ESTABLISHED, true, a->ep_a, PKT_EP_PORT, &in);
	drain();
	assert_int_equal(nr_recs, 1);
	assert_int_equal(recs[0].ev.kind, KS_SHADOW_DATA);
	assert_int_equal(recs[0].ev.seq, 1001);
	assert_int_equal(recs[0].ev.len, 600);
	assert_int_equal(recs[0].ev.seg_len, 600);
	assert_memory_equal(recs[0].data, in.data + in.len - 600, 600);

	/* the primary's answer: its first KS_SHADOW_REPLY_MAX bytes */
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_TCP,
			       .src = a->ep_a,
			       .dst = a->client,
			       .sport = PKT_EP_PORT,
			       .dport = 40001,
			       .tcp_flags = 0x18,
			       .seq = 7001,
			       .ack = 1601,
			       .payload = 700 };
	run_tcp(prog, &s, KS_V_NAT_REPLY, false, a->vip, PKT_PORT_SHIFT, &in);
	drain();
	assert_int_equal(nr_recs, 1);
	assert_int_equal(recs[0].ev.kind, KS_SHADOW_REPLY);
	assert_int_equal(recs[0].ev.len, KS_SHADOW_REPLY_MAX);
	assert_int_equal(recs[0].ev.seg_len, 700);
	assert_memory_equal(recs[0].data, in.data + in.len - 700, KS_SHADOW_REPLY_MAX);

	/* the client's FIN, without payload: recorded, for the replay to end */
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_TCP,
			       .src = a->client,
			       .dst = a->vip,
			       .sport = 40001,
			       .dport = PKT_PORT_SHIFT,
			       .tcp_flags = 0x11,
			       .seq = 1601,
			       .ack = 7701 };
	run_tcp(prog, &s, KS_V_NAT_ESTABLISHED, true, a->ep_a, PKT_EP_PORT, &in);
	drain();
	assert_int_equal(nr_recs, 1);
	assert_int_equal(recs[0].ev.kind, KS_SHADOW_DATA);
	assert_int_equal(recs[0].ev.tcp_flags & 0x01, 0x01);
	assert_int_equal(recs[0].ev.len, 0);

	c1 = counters(svc);
	assert_int_equal(c1.flows - c0.flows, 1);
	assert_int_equal(c1.segments - c0.segments, 2);
	assert_int_equal(c1.lost - c0.lost, 0);

	/* at 0%: nothing */
	assert_int_equal(ks_dp_mirror_set(&env.dp, svc, 0, 1), 0);
	pkt_env_flush_conns(&env);
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_TCP,
			       .src = a->client,
			       .dst = a->vip,
			       .sport = 40002,
			       .dport = PKT_PORT_SHIFT,
			       .tcp_flags = 0x02,
			       .seq = 5 };
	run_tcp(prog, &s, KS_V_NAT_NEW, true, a->ep_a, PKT_EP_PORT, &in);
	fwd = flow_of(family, a->client, 40002, a->vip, PKT_PORT_SHIFT, IPPROTO_TCP);
	drain();
	assert_int_equal(nr_recs, 0);
	assert_int_equal(conn_flags(&fwd) & KS_CONN_MIRRORED, 0);
	assert_int_equal(counters(svc).flows, c1.flows);
}

static void test_tcp(void **state)
{
	(void)state;
	for (int p = 0; p < PKT_NR_PROGS; p++) {
		tcp_case(p, KS_FAMILY_V4);
		tcp_case(p, KS_FAMILY_V6);
	}
}

static void udp_case(enum pkt_prog prog, uint8_t family)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];
	uint32_t svc = topo.shift[pkt_fi(family)];
	struct pkt_spec s = {
		.family = family,
		.proto = IPPROTO_UDP,
		.src = a->client,
		.dst = a->vip,
		.sport = 40003,
		.dport = PKT_PORT_SHIFT,
		.payload = 100,
	};
	struct ks_mirror_counters c0 = counters(svc), c1;
	struct pkt_result r;
	struct pkt in;

	pkt_context("%s IPv%u UDP", pkt_prog_name(prog), family);
	pkt_env_flush_conns(&env);
	assert_int_equal(ks_dp_mirror_set(&env.dp, svc, 100, 1), 0);
	pkt_build(&s, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
	/* the original goes to the primary, rewritten as ever (from the
	 * shadow's address, in TC, where the copy was made first) */
	pkt_expect_nat(&r, &in, true, a->ep_a, PKT_EP_PORT);
	c1 = counters(svc);
	assert_int_equal(c1.flows - c0.flows, 1);
	/* XDP cannot clone; TC's clone goes to the interface test_run gives
	 * the skb, which may refuse it: at most one copy */
	if (prog == PKT_XDP)
		assert_int_equal(c1.copies - c0.copies, 0);
	else
		assert_true(c1.copies - c0.copies <= 1);

	/* the shadow's answer never reaches the client */
	s = (struct pkt_spec){ .family = family,
			       .proto = IPPROTO_UDP,
			       .src = a->ep_c,
			       .dst = a->client,
			       .sport = PKT_EP_PORT,
			       .dport = 40003,
			       .payload = 20 };
	pkt_build(&s, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_DROP, KS_V_DROP_SHADOW_REPLY);
	assert_int_equal(counters(svc).shadow_replies - c1.shadow_replies, 1);
	/* the primary's answer does, as the frontend's */
	s.src = a->ep_a;
	pkt_build(&s, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_REPLY);
	pkt_expect_nat(&r, &in, false, a->vip, PKT_PORT_SHIFT);
	assert_int_equal(ks_dp_mirror_set(&env.dp, svc, 0, 1), 0);
}

static void test_udp(void **state)
{
	(void)state;
	for (int p = 0; p < PKT_NR_PROGS; p++) {
		udp_case(p, KS_FAMILY_V4);
		udp_case(p, KS_FAMILY_V6);
	}
}

static int setup(void **state)
{
	(void)state;
	if (pkt_suite_setup(&env, &topo))
		return -1;
	rb = ring_buffer__new(bpf_map__fd(env.dp.skel->maps.ks_shadow_rb), on_rec, NULL, NULL);
	return rb ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	ring_buffer__free(rb);
	pkt_env_close(&env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp),
		cmocka_unit_test(test_udp),
	};

	return cmocka_run_group_tests_name("pkt_mirror", tests, setup, teardown);
}
