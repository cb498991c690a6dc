// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of hairpin flows and of XDP's split with the egress program
 * (bpf/lib/hairpin.h, bpf/lib/egress.h), IPv4 and IPv6, TCP and UDP:
 *   - TC rewrites both ends at ingress: a pod calling its own frontend and
 *     steered to itself sends from the hairpin address, and its reply (to
 *     the hairpin address) comes back to it from the frontend;
 *   - XDP that passes up the stack rewrites destinations only, and the
 *     egress program sources: a client's flow reaches the stack as client
 *     <-> endpoint both ways; a hairpin flow as pod <-> pod, its source made
 *     the hairpin address, and its reply's the frontend, as it leaves;
 *   - an ICMP error the node sends about a packet to an endpoint (a
 *     FORWARD REJECT's unreachable) leaves as the frontend's;
 *   - the egress program leaves other packets alone;
 *   - XDP that redirects rewrites both ends at ingress, as TC does;
 *   - the collector (user/lib/conntrack.c) pairs a hairpin flow's entries:
 *     one live direction keeps both, and an idle flow goes whole.
 * Every output is checked valid (checksums, lengths) and its addresses and
 * ports compared.
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
#include "lib/conntrack.h"
#include "pktbuild.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define PORT_HP 9090 /* a frontend whose one endpoint is EP_A:8080 */
/* the hairpin addresses this suite loads (never kshiftd's defaults) */
static const char *const hairpin[2] = { "198.18.0.254", "2001:2::fe" };

/* the egress program, run through PKT_TC's slot */
#define PROG_EGRESS PKT_NR_PROGS

static struct pkt_env env;
static uint32_t hp_svc[2];
static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };

static bool same_addr(const char *x, const char *y)
{
	uint8_t fx, fy;
	struct ks_addr ax = pkt_addr(x, &fx), ay = pkt_addr(y, &fy);

	return fx == fy && !memcmp(&ax, &ay, sizeof(ax));
}

static struct pkt_spec spec(uint8_t family, uint8_t proto, const char *src, uint16_t sport,
			    const char *dst, uint16_t dport, uint8_t flags)
{
	return (struct pkt_spec){
		.family = family,
		.proto = proto,
		.src = src,
		.dst = dst,
		.sport = sport,
		.dport = dport,
		.seq = 1000,
		.ack = flags & 0x10 ? 1 : 0,
		.tcp_flags = flags,
		.payload = proto == IPPROTO_UDP ? 32 : 0,
	};
}

/* Runs in through prog (or the egress program); expects it passed, valid,
 * from src:sport to dst:dport, its payload as it was; out: the output. */
static void run_to(int prog, const struct pkt *in, const char *src, uint16_t sport, const char *dst,
		   uint16_t dport, struct pkt *out)
{
	int saved = env.prog_fd[PKT_TC];
	char got_src[INET6_ADDRSTRLEN], got_dst[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt_view v;
	size_t hl;

	if (prog == PROG_EGRESS)
		env.prog_fd[PKT_TC] = bpf_program__fd(env.dp.skel->progs.ks_egress_tc);
	pkt_run(&env, prog == PROG_EGRESS ? PKT_TC : prog, in->data, in->len, &r, false);
	env.prog_fd[PKT_TC] = saved;
	assert_int_equal(r.err, 0);
	if (prog == PKT_XDP)
		assert_int_equal(r.retval, pkt_retval(PKT_XDP, PKT_PASS));
	else if (r.retval != pkt_retval(PKT_TC, PKT_PASS))
		assert_int_equal(r.retval, 7 /* TC_ACT_REDIRECT: forwarded */);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, false, got_src);
	pkt_ntop(r.out, &v, true, got_dst);
	if (!same_addr(got_src, src) || !same_addr(got_dst, dst) ||
	    pkt_port(r.out, &v, false) != sport || pkt_port(r.out, &v, true) != dport) {
		pkt_dump("output", r.out, r.len);
		fail_msg("%s: %s:%u -> %s:%u, expected %s:%u -> %s:%u",
			 prog == PROG_EGRESS ? "egress" : pkt_prog_name(prog), got_src,
			 pkt_port(r.out, &v, false), got_dst, pkt_port(r.out, &v, true), src, sport,
			 dst, dport);
	}
	assert_int_equal(r.len, in->len);
	/* past the L4 header, nothing moved */
	hl = v.l4_off + (v.proto == IPPROTO_TCP ? 20 : 8);
	assert_memory_equal(r.out + hl, in->data + hl, in->len - hl);
	memcpy(out->data, r.out, r.len);
	out->len = r.len;
}

static void run_spec(int prog, const struct pkt_spec *s, const char *src, uint16_t sport,
		     const char *dst, uint16_t dport, struct pkt *out)
{
	struct pkt in;

	pkt_build(s, &in);
	run_to(prog, &in, src, sport, dst, dport, out);
}

static uint8_t conn_flags(const char *src, uint16_t sport, const char *dst, uint16_t dport,
			  uint8_t proto)
{
	struct ks_flow key = { .sport = htons(sport), .dport = htons(dport), .proto = proto };
	struct ks_conn c;

	key.saddr = pkt_addr(src, &key.family);
	key.daddr = pkt_addr(dst, &key.family);
	if (bpf_map_lookup_elem(bpf_map__fd(env.dp.skel->maps.ks_conns), &key, &c))
		return 0xff;
	return c.flags;
}

/* TC: both ends at ingress, for a pod steered to itself. */
static void test_hairpin_tc(void **state)
{
	size_t fi, p;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			const struct pkt_addrs *a = &pkt_addrs[fi];
			uint8_t fam = fi ? 6 : 4, pr = protos[p],
				syn = pr == IPPROTO_TCP ? 0x02 : 0;
			struct pkt_spec s;
			struct pkt out;

			pkt_context("TC IPv%u %s", fam, pr == IPPROTO_TCP ? "TCP" : "UDP");
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			s = spec(fam, pr, a->ep_a, 40100, a->vip, PORT_HP, syn);
			run_spec(PKT_TC, &s, hairpin[fi], 40100, a->ep_a, PKT_EP_PORT, &out);
			assert_int_equal(conn_flags(a->ep_a, 40100, a->vip, PORT_HP, pr) &
						 KS_CONN_HAIRPIN,
					 KS_CONN_HAIRPIN);
			assert_int_equal(conn_flags(a->ep_a, PKT_EP_PORT, hairpin[fi], 40100, pr) &
						 KS_CONN_HAIRPIN,
					 KS_CONN_HAIRPIN);
			/* the pod answers the hairpin address */
			s = spec(fam, pr, a->ep_a, PKT_EP_PORT, hairpin[fi], 40100,
				 pr == IPPROTO_TCP ? 0x12 : 0);
			run_spec(PKT_TC, &s, a->vip, PORT_HP, a->ep_a, 40100, &out);
			/* and the flow goes on */
			s = spec(fam, pr, a->ep_a, 40100, a->vip, PORT_HP,
				 pr == IPPROTO_TCP ? 0x10 : 0);
			run_spec(PKT_TC, &s, hairpin[fi], 40100, a->ep_a, PKT_EP_PORT, &out);
		}
	}
}

/* XDP passing up: destinations at ingress, sources at egress. */
static void test_hairpin_xdp_split(void **state)
{
	size_t fi, p;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			const struct pkt_addrs *a = &pkt_addrs[fi];
			uint8_t fam = fi ? 6 : 4, pr = protos[p],
				syn = pr == IPPROTO_TCP ? 0x02 : 0;
			struct pkt_spec s;
			struct pkt mid, out;

			pkt_context("XDP split IPv%u %s", fam, pr == IPPROTO_TCP ? "TCP" : "UDP");
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			s = spec(fam, pr, a->ep_a, 40200, a->vip, PORT_HP, syn);
			/* the stack sees pod -> pod */
			run_spec(PKT_XDP, &s, a->ep_a, 40200, a->ep_a, PKT_EP_PORT, &mid);
			run_to(PROG_EGRESS, &mid, hairpin[fi], 40200, a->ep_a, PKT_EP_PORT, &out);
			/* the reply: to the pod again at ingress, from the frontend at egress */
			s = spec(fam, pr, a->ep_a, PKT_EP_PORT, hairpin[fi], 40200,
				 pr == IPPROTO_TCP ? 0x12 : 0);
			run_spec(PKT_XDP, &s, a->ep_a, PKT_EP_PORT, a->ep_a, 40200, &mid);
			run_to(PROG_EGRESS, &mid, a->vip, PORT_HP, a->ep_a, 40200, &out);
		}
	}
}

/* XDP passing up, a client that is not the endpoint: the stack sees
 * client <-> endpoint both ways; the egress program rewrites the reply. */
static void test_split_client(void **state)
{
	size_t fi, p;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			const struct pkt_addrs *a = &pkt_addrs[fi];
			uint8_t fam = fi ? 6 : 4, pr = protos[p],
				syn = pr == IPPROTO_TCP ? 0x02 : 0;
			struct pkt_spec s;
			struct pkt mid, out;

			pkt_context("XDP split client IPv%u %s", fam,
				    pr == IPPROTO_TCP ? "TCP" : "UDP");
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			s = spec(fam, pr, a->client, 40300, a->vip, PORT_HP, syn);
			run_spec(PKT_XDP, &s, a->client, 40300, a->ep_a, PKT_EP_PORT, &mid);
			/* a forward packet leaves as it is */
			run_to(PROG_EGRESS, &mid, a->client, 40300, a->ep_a, PKT_EP_PORT, &out);
			s = spec(fam, pr, a->ep_a, PKT_EP_PORT, a->client, 40300,
				 pr == IPPROTO_TCP ? 0x12 : 0);
			run_spec(PKT_XDP, &s, a->ep_a, PKT_EP_PORT, a->client, 40300, &mid);
			run_to(PROG_EGRESS, &mid, a->vip, PORT_HP, a->client, 40300, &out);
			/* TC, the same flow: both ends at ingress */
			run_spec(PKT_TC, &s, a->vip, PORT_HP, a->client, 40300, &out);
		}
	}
}

/* The node's ICMP port unreachable about a client's packet to the endpoint
 * (what a FORWARD REJECT sends) leaves as about the frontend. */
static void test_egress_icmp(void **state)
{
	size_t fi;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t fam = fi ? 6 : 4, *icmp, *q;
		struct pkt_spec s = spec(fam, IPPROTO_TCP, a->client, 40400, a->vip, PORT_HP, 0x18);
		struct pkt fwd, err, out;
		char quoted[INET6_ADDRSTRLEN];
		struct pkt_view v;
		struct pkt_result r;
		int saved = env.prog_fd[PKT_TC];
		size_t hl = fam == 4 ? 20 : 40, qlen;
		uint16_t sum;

		pkt_context("egress ICMP IPv%u", fam);
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		s.payload = 16;
		run_spec(PKT_XDP, &s, a->client, 40400, a->ep_a, PKT_EP_PORT, &fwd);
		/* an unreachable from the node (OTHER) to the client quoting fwd */
		s = spec(fam, fam == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6, a->other, 0, a->client, 0,
			 0);
		qlen = fwd.len - 14;
		s.payload = 8 + qlen - 8;
		pkt_build(&s, &err);
		icmp = err.data + err.l4_off;
		icmp[0] = fam == 4 ? 3 : 1;
		icmp[1] = fam == 4 ? 3 : 4;
		memset(icmp + 4, 0, 4);
		memcpy(icmp + 8, fwd.data + 14, qlen);
		icmp[2] = icmp[3] = 0;
		sum = 0;
		if (fam == 6) {
			uint8_t pseudo[40] = {};

			memcpy(pseudo, err.data + 14 + 8, 32);
			pseudo[34] = (8 + qlen) >> 8;
			pseudo[35] = (8 + qlen) & 0xff;
			pseudo[39] = IPPROTO_ICMPV6;
			sum = pkt_sum16(pseudo, sizeof(pseudo), 0);
		}
		pkt_put16(icmp + 2, (uint16_t)~pkt_sum16(icmp, 8 + qlen, sum));
		assert_int_equal(err.len, err.l4_off + 8 + qlen);

		env.prog_fd[PKT_TC] = bpf_program__fd(env.dp.skel->progs.ks_egress_tc);
		pkt_run(&env, PKT_TC, err.data, err.len, &r, false);
		env.prog_fd[PKT_TC] = saved;
		assert_int_equal(r.err, 0);
		assert_int_equal(r.retval, pkt_retval(PKT_TC, PKT_PASS));
		pkt_expect_valid(&r, &v);
		/* the quoted packet: client -> frontend */
		q = r.out + err.l4_off + 8;
		memset(&out, 0, sizeof(out));
		assert_true(inet_ntop(fam == 4 ? AF_INET : AF_INET6, q + (fam == 4 ? 16 : 24),
				      quoted, sizeof(quoted)));
		assert_true(same_addr(quoted, a->vip));
		assert_int_equal(pkt_get16(q + hl + 2), PORT_HP);
		assert_true(inet_ntop(fam == 4 ? AF_INET : AF_INET6, q + (fam == 4 ? 12 : 8),
				      quoted, sizeof(quoted)));
		assert_true(same_addr(quoted, a->client));
	}
}

/* Not a reply of a steered flow: the egress program leaves it alone. */
static void test_egress_other(void **state)
{
	size_t fi, p;

	(void)state;
	assert_int_equal(pkt_env_flush_conns(&env), 0);
	for (fi = 0; fi < 2; fi++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			const struct pkt_addrs *a = &pkt_addrs[fi];
			uint8_t fam = fi ? 6 : 4, pr = protos[p];
			struct pkt_spec s;
			struct pkt out;

			pkt_context("egress untouched IPv%u %s", fam,
				    pr == IPPROTO_TCP ? "TCP" : "UDP");
			s = spec(fam, pr, a->ep_a, PKT_EP_PORT, a->client, 40500, 0x12);
			run_spec(PROG_EGRESS, &s, a->ep_a, PKT_EP_PORT, a->client, 40500, &out);
			/* an address to itself with no hairpin flow */
			s = spec(fam, pr, a->ep_a, 40501, a->ep_a, PKT_EP_PORT, 0x02);
			run_spec(PROG_EGRESS, &s, a->ep_a, 40501, a->ep_a, PKT_EP_PORT, &out);
		}
	}
}

/* Moves an entry's stamp back by ns. */
static void age_entry(const char *src, uint16_t sport, const char *dst, uint16_t dport,
		      uint8_t proto, uint64_t ns)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_conns);
	struct ks_flow key = { .sport = htons(sport), .dport = htons(dport), .proto = proto };
	struct ks_conn c;

	key.saddr = pkt_addr(src, &key.family);
	key.daddr = pkt_addr(dst, &key.family);
	assert_int_equal(bpf_map_lookup_elem(fd, &key, &c), 0);
	c.seen_ns -= ns;
	assert_int_equal(bpf_map_update_elem(fd, &key, &c, BPF_EXIST), 0);
}

static void test_hairpin_gc(void **state)
{
	const uint64_t old = KS_CT_TIMEOUT_UDP + 5 * KS_NS_PER_SEC;
	size_t fi;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		uint8_t fam = fi ? 6 : 4;
		struct pkt_spec s = spec(fam, IPPROTO_UDP, a->ep_a, 40600, a->vip, PORT_HP, 0);
		struct ks_ct_gc_stats st = {};
		struct ks_ct_gc gc = {};
		struct pkt out;

		pkt_context("collector, hairpin IPv%u", fam);
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		run_spec(PKT_TC, &s, hairpin[fi], 40600, a->ep_a, PKT_EP_PORT, &out);
		/* the forward entry idle, the reply live: the flow stays */
		age_entry(a->ep_a, 40600, a->vip, PORT_HP, IPPROTO_UDP, old);
		assert_int_equal(ks_ct_gc(&env.dp, &gc, ks_ct_now(), &st), 0);
		assert_int_equal(st.expired, 0);
		assert_int_equal(conn_flags(a->ep_a, 40600, a->vip, PORT_HP, IPPROTO_UDP) &
					 KS_CONN_HAIRPIN,
				 KS_CONN_HAIRPIN);
		/* both idle: both go, as one flow */
		age_entry(a->ep_a, PKT_EP_PORT, hairpin[fi], 40600, IPPROTO_UDP, old);
		memset(&st, 0, sizeof(st));
		assert_int_equal(ks_ct_gc(&env.dp, &gc, ks_ct_now(), &st), 0);
		assert_int_equal(st.expired, 1);
		assert_int_equal(conn_flags(a->ep_a, 40600, a->vip, PORT_HP, IPPROTO_UDP), 0xff);
		assert_int_equal(conn_flags(a->ep_a, PKT_EP_PORT, hairpin[fi], 40600, IPPROTO_UDP),
				 0xff);
		ks_ct_gc_destroy(&gc);
	}
}

/* XDP that redirects (a NIC's driver) rewrites both ends, as TC does,
 * whatever the loader says of the egress program. */
static void test_xdp_redirect_full(void **state)
{
	struct ks_dp_opts o = {
		.xdp_split = true,
		.xdp_redirect = true,
		.hairpin_addr = hairpin[0],
		.hairpin_addr6 = hairpin[1],
	};
	struct pkt_env saved = env;
	uint32_t svc;
	size_t fi;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&env, &o), 0);
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_backend b = { 100, 1, { pkt_endpoint(a->ep_a, PKT_EP_PORT) } };
		uint8_t fam = fi ? 6 : 4;
		struct pkt_spec s;
		struct pkt out;

		pkt_context("XDP redirect IPv%u", fam);
		assert_int_equal(pkt_env_service(&env, &b, 1, &svc), 0);
		assert_int_equal(pkt_env_frontend(&env, a->vip, PORT_HP, IPPROTO_TCP, svc), 0);
		s = spec(fam, IPPROTO_TCP, a->ep_a, 40700, a->vip, PORT_HP, 0x02);
		run_spec(PKT_XDP, &s, hairpin[fi], 40700, a->ep_a, PKT_EP_PORT, &out);
		s = spec(fam, IPPROTO_TCP, a->ep_a, PKT_EP_PORT, hairpin[fi], 40700, 0x12);
		run_spec(PKT_XDP, &s, a->vip, PORT_HP, a->ep_a, 40700, &out);
		s = spec(fam, IPPROTO_TCP, a->client, 40701, a->vip, PORT_HP, 0x02);
		run_spec(PKT_XDP, &s, a->client, 40701, a->ep_a, PKT_EP_PORT, &out);
		s = spec(fam, IPPROTO_TCP, a->ep_a, PKT_EP_PORT, a->client, 40701, 0x12);
		run_spec(PKT_XDP, &s, a->vip, PORT_HP, a->client, 40701, &out);
	}
	pkt_env_close(&env);
	env = saved;
}

/*
 * The verifier walks every path of a program, and refuses one that takes it
 * past a million instructions. Each program must stay well under that in
 * the costliest configurations there are (an address of the hairpin's own
 * makes its comparisons live; XDP on a veth checks partial checksums), with
 * room for the next feature and for kernels whose verifier prunes less: the
 * MTU's answer, built inline at every way out, once took ks_tc to 923,465.
 */
static void test_verifier_headroom(void **state)
{
	static const char *const progs[] = { "ks_xdp", "ks_tc", "ks_egress_tc" };
	struct ks_dp_opts o[] = {
		{ .xdp_split = true, .hairpin_addr = hairpin[0], .hairpin_addr6 = hairpin[1] },
		{ .xdp_veth = true, .xdp_split = true, .hairpin_addr = hairpin[0],
		  .hairpin_addr6 = hairpin[1] },
		{ .xdp_veth = true, .xdp_redirect = true, .hairpin_addr = hairpin[0],
		  .hairpin_addr6 = hairpin[1] },
	};
	struct pkt_env saved = env;
	uint32_t n;
	size_t i, p;

	(void)state;
	for (i = 0; i < sizeof(o) / sizeof(o[0]); i++) {
		o[i].verifier_stats = true;
		assert_int_equal(pkt_env_open_opts(&env, &o[i]), 0);
		for (p = 0; p < sizeof(progs) / sizeof(progs[0]); p++) {
			n = ks_dp_verified_insns(&env.dp, progs[p]);
			print_message("configuration %zu: %s verified in %u instructions\n", i,
				      progs[p], n);
			assert_true(n > 0);
			assert_true(n < 700000);
		}
		pkt_env_close(&env);
	}
	env = saved;
}

static int setup(void **state)
{
	struct ks_dp_opts o = {
		.xdp_split = true,
		.hairpin_addr = hairpin[0],
		.hairpin_addr6 = hairpin[1],
	};
	int fi;

	(void)state;
	if (pkt_env_open_opts(&env, &o)) {
		print_error("cannot load the dataplane (root needed)\n");
		return -1;
	}
	for (fi = 0; fi < 2; fi++) {
		struct pkt_backend b = { 100,
					 1,
					 { pkt_endpoint(pkt_addrs[fi].ep_a, PKT_EP_PORT) } };

		if (pkt_env_service(&env, &b, 1, &hp_svc[fi]) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_HP, IPPROTO_TCP, hp_svc[fi]) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_HP, IPPROTO_UDP, hp_svc[fi]))
			return -1;
	}
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
		cmocka_unit_test(test_hairpin_tc),	  cmocka_unit_test(test_hairpin_xdp_split),
		cmocka_unit_test(test_split_client),	  cmocka_unit_test(test_egress_icmp),
		cmocka_unit_test(test_egress_other),	  cmocka_unit_test(test_hairpin_gc),
		cmocka_unit_test(test_xdp_redirect_full), cmocka_unit_test(test_verifier_headroom),
	};

	return cmocka_run_group_tests_name("pkt_hairpin", tests, setup, teardown);
}
