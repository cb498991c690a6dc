// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of partial checksums (bpf/lib/csum.h): a sender that leaves
 * its TCP/UDP checksum to offload (every local veth peer) puts only the
 * pseudo-header seed in the field, and kshift tells such a packet by that
 * value.
 *
 *   rewrites   ks_xdp loaded with xdp_veth keeps a seed a seed: the field
 *              becomes the seed of the rewritten pseudo header, which the
 *              kernel then completes; a full checksum is updated as full.
 *              Without xdp_veth, and in ks_tc (whose test_run skbs are not
 *              CHECKSUM_PARTIAL, and whose csum helpers go by the skb),
 *              every checksum is updated as a full one.
 *   rejects    a reset or unreachable that stays the skb it was (ks_xdp's
 *              pass up the stack with xdp_veth) is still completed by the
 *              kernel at the same place: the reset carries the seed of its
 *              own pseudo header, and the unreachable's checksum counts the
 *              quoted UDP checksum as the kernel will complete it. An
 *              XDP_TX reply is a fresh frame: full sums. ks_tc asks the skb
 *              (ip_summed), not the value: test_run's skbs are not
 *              CHECKSUM_PARTIAL, so a seed there is a full checksum that
 *              happens to equal it (issue #8, 7), and the answer carries
 *              full sums.
 *
 * Every expected value comes from pktbuild.c's RFC 1071 verifier, which
 * shares no code with bpf/lib.
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

#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* One dataplane loaded as on a veth (ks_xdp_veth), one as anywhere else. */
static struct pkt_env veth_env, plain_env;
static struct pkt_topo veth_topo, plain_topo;

/* What the L4 checksum field of an output must be. */
enum csum_kind {
	CSUM_SEED, /* the seed of the output's pseudo header */
	CSUM_FULL, /* the input's, updated or computed as a full checksum */
};

/* Where a case runs, and what that program should make of a seed. */
struct site {
	const char *name;
	struct pkt_env *env;
	enum pkt_prog prog;
	enum csum_kind seed_nat;   /* a rewritten packet's */
	enum csum_kind seed_reply; /* a reset's or unreachable's */
	enum pkt_act reply_act;
};

static const struct site xdp_veth = { "ks_xdp, xdp_veth", &veth_env, PKT_XDP, CSUM_SEED,
				      CSUM_SEED, PKT_PASS };
static const struct site xdp_plain = { "ks_xdp", &plain_env, PKT_XDP, CSUM_FULL, CSUM_FULL,
				       PKT_TX };
static const struct site tc_plain = { "ks_tc", &plain_env, PKT_TC, CSUM_FULL, CSUM_FULL,
				      PKT_TX };
/* ks_xdp_veth is read by ks_xdp only: ks_tc of the veth dataplane must not
 * differ */
static const struct site tc_veth = { "ks_tc, xdp_veth", &veth_env, PKT_TC, CSUM_FULL, CSUM_FULL,
				     PKT_TX };

static char where[192];
#define FAIL(fmt, ...) fail_msg("%s" fmt, where, ##__VA_ARGS__)

static void set_ctx(const struct site *s, const char *row, bool seed)
{
	snprintf(where, sizeof(where), "%s, %s, %s checksum: ", s->name, row,
		 seed ? "seed" : "full");
	pkt_context("%s", where);
}

/* Reads frame[0..len) into v; only its L4 checksum may be wrong. */
static void view(const uint8_t *frame, size_t len, struct pkt_view *v)
{
	uint8_t copy[PKT_MAX];
	char why[128];

	assert_true(len <= PKT_MAX);
	memcpy(copy, frame, len);
	pkt_check(copy, len, v, why, sizeof(why));
	if (v->proto == IPPROTO_TCP || v->proto == IPPROTO_UDP)
		pkt_fix_l4(copy, v);
	if (!v->family || !pkt_check(copy, len, v, why, sizeof(why))) {
		pkt_dump("frame", frame, len);
		FAIL("invalid apart from its L4 checksum: %s", why);
	}
}

static size_t check_off(const struct pkt_view *v)
{
	return v->l4_off + (v->proto == IPPROTO_TCP ? 16 : 6);
}

/* Builds spec with a seed or a full checksum, and makes sure it is one and
 * not the other, so the case tests what it says. */
static void build(struct pkt_spec spec, bool seed, struct pkt *p)
{
	struct pkt_view v;
	uint16_t field;

	spec.l4_seed = seed;
	pkt_build(&spec, p);
	view(p->data, p->len - p->pad, &v);
	field = pkt_get16(p->data + check_off(&v));
	if ((field == pkt_seed(p->data, &v)) != seed || (pkt_l4_sum(p->data, &v) == 0xffff) == seed)
		FAIL("input checksum %04x is not a %s one", field, seed ? "seed" : "full");
}

/*
 * Runs in through s, expecting a rewrite with verdict of its destination
 * (dst) or source to addr:port, with a seed or full L4 checksum as want
 * says; the rest of the frame is compared with every checksum made right.
 */
static void expect_nat(const struct site *s, const struct pkt *in, enum ks_verdict verdict,
		       bool dst, const char *addr, uint16_t port, enum csum_kind want)
{
	struct pkt_result r, fixed;
	struct pkt fixed_in = *in;
	struct pkt_view vi, vo;
	uint16_t field;

	pkt_run(s->env, s->prog, in->data, in->len, &r, true);
	pkt_expect(&r, s->prog, PKT_PASS, verdict);
	if (r.len != in->len)
		FAIL("output of %u bytes, input of %zu", r.len, in->len);
	view(in->data, in->len - in->pad, &vi);
	view(r.out, r.len - in->pad, &vo);
	field = pkt_get16(r.out + check_off(&vo));
	if (want == CSUM_SEED && field != pkt_seed(r.out, &vo)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r.out, r.len);
		FAIL("L4 checksum %04x, expected the seed %04x", field, pkt_seed(r.out, &vo));
	}
	/* a full update keeps the sum over pseudo header and segment, be
	 * it 0xffff (a right checksum) or a seed's */
	if (want == CSUM_FULL && pkt_l4_sum(r.out, &vo) != pkt_l4_sum(in->data, &vi)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r.out, r.len);
		FAIL("L4 checksum %04x not updated as a full one: sum %04x, input's %04x", field,
		     pkt_l4_sum(r.out, &vo), pkt_l4_sum(in->data, &vi));
	}
	fixed = r;
	pkt_fix_l4(fixed.out, &vo);
	pkt_fix_l4(fixed_in.data, &vi);
	pkt_expect_nat(&fixed, &fixed_in, dst, addr, port);
}

/* Rows of the rewrite tests: clients of the shift service, whose stable
 * backend (EP_A:8080) takes every new flow. */
struct nat_row {
	const char *name;
	struct pkt_spec spec;
};

/* clang-format off */
#define NAT4(proto_) .family = 4, .proto = proto_, .src = PKT_CLIENT4, .dst = PKT_VIP4,           \
	.sport = 47001, .dport = PKT_PORT_SHIFT, .seq = 100, .tcp_flags = TCP_SYN
#define NAT6(proto_) .family = 6, .proto = proto_, .src = PKT_CLIENT6, .dst = PKT_VIP6,           \
	.sport = 47002, .dport = PKT_PORT_SHIFT, .seq = 200, .tcp_flags = TCP_SYN

static const struct nat_row nat_rows[] = {
	{ "IPv4 TCP", { NAT4(IPPROTO_TCP) } },
	{ "IPv4 UDP", { NAT4(IPPROTO_UDP), .payload = 24 } },
	{ "IPv6 TCP with options and data", { NAT6(IPPROTO_TCP), .tcp_opts = 12, .payload = 33 } },
	{ "IPv6 UDP", { NAT6(IPPROTO_UDP), .payload = 17 } },
	/* the seed's length is the IP header's, not the frame's */
	{ "VLAN IPv4 TCP with IP options", { NAT4(IPPROTO_TCP), .vlan = true, .vlan_tci = 7,
	  .ip_opts = 8 } },
	{ "IPv4 UDP with Ethernet padding", { NAT4(IPPROTO_UDP), .payload = 3, .pad = 11 } },
	/* ... and the upper layer's, without extension headers */
	{ "IPv6 UDP behind a hop-by-hop header", { NAT6(IPPROTO_UDP), .v6_hbh = true,
	  .payload = 40 } },
};
/* clang-format on */

/*
 * A new flow, a later packet of it and a reply, all with a seed or all
 * with a full checksum; a seed (seed true) comes out as s->seed_nat says,
 * a full checksum always full.
 */
static void nat_flows(const struct site *s, bool seed)
{
	enum csum_kind want = seed ? s->seed_nat : CSUM_FULL;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(nat_rows); i++) {
		const struct pkt_spec *spec = &nat_rows[i].spec;
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(spec->family)];
		struct pkt_spec later = *spec, reply = *spec;
		struct pkt in;

		set_ctx(s, nat_rows[i].name, seed);
		assert_int_equal(pkt_env_flush_conns(s->env), 0);
		build(*spec, seed, &in);
		expect_nat(s, &in, KS_V_NAT_NEW, true, a->ep_a, PKT_EP_PORT, want);

		later.tcp_flags = TCP_ACK | TCP_PSH;
		later.seq += 1;
		later.ack = 9000;
		build(later, seed, &in);
		expect_nat(s, &in, KS_V_NAT_ESTABLISHED, true, a->ep_a, PKT_EP_PORT, want);

		/* the endpoint's end offloads as well: a local pod */
		reply.src = a->ep_a;
		reply.dst = spec->src;
		reply.sport = PKT_EP_PORT;
		reply.dport = spec->sport;
		reply.tcp_flags = TCP_SYN | TCP_ACK;
		reply.seq = 9000;
		reply.ack = spec->seq + 1;
		build(reply, seed, &in);
		expect_nat(s, &in, KS_V_NAT_REPLY, false, a->vip, PKT_PORT_SHIFT, want);
	}
	pkt_context("%s", "");
}

static void test_nat_seed_xdp_veth(void **state)
{
	(void)state;
	nat_flows(&xdp_veth, true);
}

static void test_nat_full_xdp_veth(void **state)
{
	(void)state;
	nat_flows(&xdp_veth, false);
}

static void test_nat_seed_xdp(void **state)
{
	(void)state;
	nat_flows(&xdp_plain, true);
}

static void test_nat_seed_tc(void **state)
{
	(void)state;
	nat_flows(&tc_plain, true);
	nat_flows(&tc_veth, true);
}

static void test_nat_full_tc(void **state)
{
	(void)state;
	nat_flows(&tc_plain, false);
	nat_flows(&tc_veth, false);
}

/* Rows of the reject tests: new flows to the services no endpoint takes
 * (TCP flags 0: a SYN). */
struct reject_row {
	const char *name;
	struct pkt_spec spec;
};

/* clang-format off */
#define REJ4(proto_, port_) .family = 4, .proto = proto_, .src = PKT_CLIENT4, .dst = PKT_VIP4,    \
	.sport = 48001, .dport = port_, .seq = 0x10203040
#define REJ6(proto_, port_) .family = 6, .proto = proto_, .src = PKT_CLIENT6, .dst = PKT_VIP6,    \
	.sport = 48002, .dport = port_, .seq = 0xfffffffe

static const struct reject_row reject_rows[] = {
	{ "IPv4 SYN, weight 0", { REJ4(IPPROTO_TCP, PKT_PORT_WEIGHT0) } },
	{ "IPv6 SYN, no endpoint", { REJ6(IPPROTO_TCP, PKT_PORT_NOEPS) } },
	/* a reset's seed is over its own 20 bytes, not the segment's */
	{ "IPv4 ACK with options and data", { REJ4(IPPROTO_TCP, PKT_PORT_NOEPS),
	  .tcp_flags = TCP_ACK | TCP_PSH, .ack = 0x55667788, .tcp_opts = 8, .payload = 50 } },
	{ "VLAN IPv6 ACK with data", { REJ6(IPPROTO_TCP, PKT_PORT_WEIGHT0), .vlan = true,
	  .tcp_flags = TCP_ACK, .ack = 3, .payload = 9 } },
	{ "IPv4 UDP, weight 0", { REJ4(IPPROTO_UDP, PKT_PORT_WEIGHT0), .payload = 20 } },
	{ "IPv6 UDP, no endpoint", { REJ6(IPPROTO_UDP, PKT_PORT_NOEPS), .payload = 7 } },
	/* the quoted UDP header sits after the quoted IP options */
	{ "IPv4 UDP with IP options", { REJ4(IPPROTO_UDP, PKT_PORT_NOEPS), .ip_opts = 12,
	  .payload = 30 } },
	{ "VLAN IPv6 UDP with Ethernet padding", { REJ6(IPPROTO_UDP, PKT_PORT_WEIGHT0),
	  .vlan = true, .payload = 1, .pad = 5 } },
};
/* clang-format on */

/* A reset to in, its TCP checksum field a seed or a full checksum. */
static void expect_reset(const struct pkt *in, const struct pkt_result *r, enum csum_kind want)
{
	const uint8_t *th;
	struct pkt_view v;
	uint16_t field;
	char why[128];

	view(r->out, r->len, &v);
	if (v.proto != IPPROTO_TCP || r->len != in->l4_off + 20 || v.l4_off != in->l4_off)
		FAIL("reset of %u bytes, proto %u at %zu: expected TCP at %zu, %zu bytes", r->len,
		     v.proto, v.l4_off, in->l4_off, in->l4_off + 20);
	th = r->out + v.l4_off;
	if (!(th[13] & TCP_RST))
		FAIL("flags %02x: no RST", th[13]);
	field = pkt_get16(th + 16);
	if (want == CSUM_SEED && field != pkt_seed(r->out, &v)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("reset checksum %04x, expected the seed %04x of its pseudo header", field,
		     pkt_seed(r->out, &v));
	}
	if (want == CSUM_FULL && !pkt_check(r->out, r->len, &v, why, sizeof(why))) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("reset checksum %04x not a full one: %s", field, why);
	}
}

/*
 * An unreachable quoting in's IP header and UDP header as they were. With
 * want CSUM_SEED its checksum must hold for the message as the kernel will
 * have made it, the quoted UDP checksum completed over the 8 quoted bytes
 * (all that is left of the datagram); with CSUM_FULL as it is.
 */
static void expect_unreach(const struct pkt *in, const struct pkt_result *r, enum csum_kind want)
{
	size_t quote = in->l4_off - in->l3_off + 8, udp;
	uint8_t completed[PKT_MAX];
	const uint8_t *frame = r->out;
	uint16_t field;
	struct pkt_view v;
	char why[128];

	if (!pkt_check(r->out, r->len, &v, why, sizeof(why)) && !v.family) {
		pkt_dump("output", r->out, r->len);
		FAIL("invalid output: %s", why);
	}
	if (v.proto != (v.family == KS_FAMILY_V4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) ||
	    r->len != v.l4_off + 8 + quote)
		FAIL("unreachable of %u bytes, proto %u: expected ICMP, %zu bytes", r->len, v.proto,
		     v.l4_off + 8 + quote);
	if (memcmp(r->out + v.l4_off + 8, in->data + in->l3_off, quote)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("quote is not the original IP header and UDP header");
	}
	/* the quoted UDP header ends the message */
	udp = r->len - 8;
	if (want == CSUM_SEED) {
		memcpy(completed, r->out, r->len);
		field = (uint16_t)~pkt_sum16(completed + udp, 8, 0);
		pkt_put16(completed + udp + 6, field);
		frame = completed;
	}
	if (!pkt_check(frame, r->len, &v, why, sizeof(why))) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("%s%s", want == CSUM_SEED ? "once the quoted UDP checksum is completed: " : "",
		     why);
	}
}

/* Every row through s, with a seed or a full checksum. */
static void rejects(const struct site *s, bool seed)
{
	enum csum_kind want = seed ? s->seed_reply : CSUM_FULL;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(reject_rows); i++) {
		const struct reject_row *row = &reject_rows[i];
		bool tcp = row->spec.proto == IPPROTO_TCP;
		struct pkt_result r;
		struct pkt in;

		set_ctx(s, row->name, seed);
		assert_int_equal(pkt_env_flush_conns(s->env), 0);
		build(row->spec, seed, &in);
		pkt_run(s->env, s->prog, in.data, in.len, &r, true);
		pkt_expect(&r, s->prog, s->reply_act,
			   tcp ? KS_V_REJECT_RESET : KS_V_REJECT_UNREACH);
		if (tcp)
			expect_reset(&in, &r, want);
		else
			expect_unreach(&in, &r, want);
	}
	pkt_context("%s", "");
}

/* Up the stack, the reply stays the skb the seed came in. */
static void test_reject_seed_xdp_veth(void **state)
{
	(void)state;
	rejects(&xdp_veth, true);
}

/* XDP_TX: a fresh frame, checked in full by its receiver. */
static void test_reject_seed_xdp_tx(void **state)
{
	(void)state;
	rejects(&xdp_plain, true);
}

/* A seed-valued checksum in an skb that is not CHECKSUM_PARTIAL is a full
 * one: the answer is computed in full. */
static void test_reject_seed_tc(void **state)
{
	(void)state;
	rejects(&tc_plain, true);
	rejects(&tc_veth, true);
}

static void test_reject_full(void **state)
{
	(void)state;
	rejects(&xdp_veth, false);
	rejects(&xdp_plain, false);
	rejects(&tc_plain, false);
}

static int setup(void **state)
{
	struct ks_dp_opts veth = { .xdp_veth = true };

	*state = NULL;
	if (pkt_env_open(&plain_env)) {
		print_error("cannot load the dataplane (root needed)\n");
		return -1;
	}
	if (pkt_env_open_opts(&veth_env, &veth)) {
		print_error("cannot load the dataplane with xdp_veth\n");
		pkt_env_close(&plain_env);
		return -1;
	}
	if (pkt_env_topo(&plain_env, &plain_topo) || pkt_env_topo(&veth_env, &veth_topo)) {
		print_error("cannot set up the services\n");
		pkt_env_close(&veth_env);
		pkt_env_close(&plain_env);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pkt_env_close(&veth_env);
	pkt_env_close(&plain_env);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nat_seed_xdp_veth),
		cmocka_unit_test(test_nat_full_xdp_veth),
		cmocka_unit_test(test_nat_seed_xdp),
		cmocka_unit_test(test_nat_seed_tc),
		cmocka_unit_test(test_nat_full_tc),
		cmocka_unit_test(test_reject_seed_xdp_veth),
		cmocka_unit_test(test_reject_seed_xdp_tx),
		cmocka_unit_test(test_reject_seed_tc),
		cmocka_unit_test(test_reject_full),
	};

	return cmocka_run_group_tests_name("pkt_partial", tests, setup, teardown);
}
