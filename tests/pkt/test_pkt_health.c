// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of passive health (bpf/lib/health.h), each in ks_xdp and
 * ks_tc, IPv4 and IPv6, on the service "main" (VIP:80, one backend, EP_A
 * and EP_B): an endpoint's reset to a SYN is held back and the client's
 * retransmitted SYN goes to the other endpoint, the reply translation with
 * it; a SYN retransmitted with no answer at all moves too, a duplicate
 * does not; new flows avoid the quarantined endpoint, one flow tries it
 * when the quarantine is over and its SYN-ACK ends it; an established flow
 * never moves; a handshake moves at most KS_HEALTH_MAX_RESTEERS times; and
 * quarantine never empties a backend. Time is moved by ageing stamps.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>

#include <kshift/abi.h>
#include "kshift.skel.h"
#include "pktbuild.h"

static struct pkt_env env;
static struct pkt_topo topo;

static const uint8_t families[] = { 4, 6 };

static struct pkt_spec syn_spec(uint8_t family, uint16_t sport)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];

	return (struct pkt_spec){
		.family = family,
		.proto = IPPROTO_TCP,
		.src = a->client,
		.dst = a->vip,
		.sport = sport,
		.dport = PKT_PORT_MAIN,
		.seq = 1000,
		.tcp_flags = 0x02,
	};
}

static bool same_addr(const char *x, const char *y)
{
	uint8_t fx, fy;
	struct ks_addr ax = pkt_addr(x, &fx), ay = pkt_addr(y, &fy);

	return fx == fy && !memcmp(&ax, &ay, sizeof(ax));
}

/* Runs a client segment; expects a DNAT with verdict; the endpoint into ep. */
static void send_syn(enum pkt_prog prog, const struct pkt_spec *s, enum ks_verdict verdict,
		     char *ep)
{
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;

	pkt_build(s, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	pkt_expect(&r, prog, PKT_PASS, verdict);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, true, ep);
	pkt_expect_nat(&r, &in, true, ep, PKT_EP_PORT);
}

/* A segment with flags from endpoint ep to the client of s: verdict, and
 * what becomes of it (dropped, rewritten as the frontend's, untouched). */
static void send_from(enum pkt_prog prog, const struct pkt_spec *s, const char *ep, uint8_t flags,
		      enum ks_verdict verdict)
{
	struct pkt_spec rs = *s;
	struct pkt_result r;
	struct pkt in;

	rs.src = ep;
	rs.dst = s->src;
	rs.sport = PKT_EP_PORT;
	rs.dport = s->sport;
	rs.tcp_flags = flags;
	rs.seq = flags & 0x04 ? 0 : 5000;
	rs.ack = s->seq + 1;
	pkt_build(&rs, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	if (verdict == KS_V_DROP_REFUSED) {
		pkt_expect(&r, prog, PKT_DROP, verdict);
		return;
	}
	pkt_expect(&r, prog, PKT_PASS, verdict);
	if (verdict == KS_V_NAT_REPLY)
		pkt_expect_nat(&r, &in, false, s->dst, s->dport);
	else
		pkt_expect_untouched(&r, &in);
}

static int health_fd(void)
{
	return bpf_map__fd(env.dp.skel->maps.ks_health);
}

static struct ks_ep_key ep_key(const char *ep)
{
	struct ks_ep_key k = {};

	k.addr = pkt_addr(ep, &k.family);
	k.port = htons(PKT_EP_PORT);
	return k;
}

/* ep's health record; zeros if it has none. */
static struct ks_ep_health health_of(const char *ep)
{
	struct ks_ep_key k = ep_key(ep);
	struct ks_ep_health h = {};

	bpf_map_lookup_elem(health_fd(), &k, &h);
	return h;
}

/* Every flow and every health record forgotten. */
static void fresh(void)
{
	struct ks_ep_key key, next;
	int fd = health_fd();

	assert_int_equal(pkt_env_flush_conns(&env), 0);
	while (!bpf_map_get_next_key(fd, NULL, &next)) {
		key = next;
		assert_int_equal(bpf_map_delete_elem(fd, &key), 0);
	}
}

/* Moves every flow's last packet ns into the past. */
static void age_flows(uint64_t ns)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_conns);
	struct ks_flow key, next;
	struct ks_conn c;
	bool first = true;

	while (!bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &c))
			continue;
		c.seen_ns -= ns;
		assert_int_equal(bpf_map_update_elem(fd, &key, &c, BPF_EXIST), 0);
	}
}

/* Moves ep's quarantine and trial ns into the past. */
static void age_health(const char *ep, uint64_t ns)
{
	struct ks_ep_key k = ep_key(ep);
	struct ks_ep_health h;

	assert_int_equal(bpf_map_lookup_elem(health_fd(), &k, &h), 0);
	if (h.quarantined_ns)
		h.quarantined_ns -= ns;
	h.trial_ns -= ns;
	assert_int_equal(bpf_map_update_elem(health_fd(), &k, &h, BPF_EXIST), 0);
}

static const char *other_ep(const struct pkt_addrs *a, const char *ep)
{
	return same_addr(ep, a->ep_a) ? a->ep_b : a->ep_a;
}

/* New flows from ports base.. : how many of n went to ep. */
static int new_flows_to(enum pkt_prog prog, uint8_t family, uint16_t base, int n, const char *ep)
{
	char got[INET6_ADDRSTRLEN];
	int i, hits = 0;

	for (i = 0; i < n; i++) {
		struct pkt_spec s = syn_spec(family, base + i);

		send_syn(prog, &s, KS_V_NAT_NEW, got);
		hits += same_addr(got, ep);
	}
	return hits;
}

/*
 * Refused: the endpoint's RST to the SYN is dropped, the endpoint
 * quarantined (counted), the client's SYN again goes to the other endpoint
 * and its SYN-ACK is rewritten; the first endpoint's late SYN-ACK is not.
 * While the quarantine lasts no new flow goes there; when it is over one
 * flow tries it, the others still stay off until that flow's SYN-ACK ends
 * the quarantine; then new flows go there again.
 */
static void test_refused_resteers(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN], got[INET6_ADDRSTRLEN];
	struct ks_ep_health h;
	size_t k;
	int prog, i;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(families[k])];
		struct pkt_spec syn = syn_spec(families[k], 43000), trial;

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s IPv%u: ", pkt_prog_name(prog), families[k]);
			fresh();
			send_syn(prog, &syn, KS_V_NAT_NEW, x);
			send_from(prog, &syn, x, 0x14, KS_V_DROP_REFUSED);
			h = health_of(x);
			assert_true(h.quarantined_ns != 0);
			assert_int_equal(h.quarantines, 1);
			assert_int_equal(h.refused, 1);

			send_syn(prog, &syn, KS_V_NAT_RESTEER, y);
			if (!same_addr(y, other_ep(a, x)))
				fail_msg("re-steered SYN went to %s, not %s", y, other_ep(a, x));
			send_from(prog, &syn, y, 0x12, KS_V_NAT_REPLY);
			send_from(prog, &syn, x, 0x12, KS_V_PASS_NO_MATCH);
			assert_int_equal(health_of(y).quarantines, 0);

			/* quarantined: 40 new flows, none to x */
			assert_int_equal(new_flows_to(prog, families[k], 44000, 40, x), 0);

			/* over: the first flow that hashes to x tries it, and
			 * the next ones to x stay off it until it answers */
			age_health(x, KS_HEALTH_TRIAL_NS + KS_NS_PER_SEC);
			for (i = 0; i < 200; i++) {
				trial = syn_spec(families[k], 45000 + i);
				send_syn(prog, &trial, KS_V_NAT_NEW, got);
				if (same_addr(got, x))
					break;
			}
			if (i == 200)
				fail_msg("no flow tried %s after its quarantine", x);
			h = health_of(x);
			print_message("dbg %s q=%llu t=%llu\n", pkt_prog_name(prog), (unsigned long long)h.quarantined_ns, (unsigned long long)h.trial_ns);
			assert_int_equal(new_flows_to(prog, families[k], 46000, 40, x), 0);
			send_from(prog, &trial, x, 0x12, KS_V_NAT_REPLY);
			h = health_of(x);
			assert_int_equal(h.quarantined_ns, 0);
			assert_int_equal(h.recovered, 1);
			i = new_flows_to(prog, families[k], 47000, 40, x);
			if (i < 5 || i > 35)
				fail_msg("back in service, %s took %d of 40 new flows", x, i);
		}
	}
}

/*
 * Silent: a SYN retransmitted after a retransmission timer's worth of time
 * with no answer moves and quarantines the endpoint; a copy of the SYN
 * sooner than that is a duplicate and stays.
 */
static void test_unanswered_resteers(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
	struct ks_ep_health h;
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(families[k])];
		struct pkt_spec syn = syn_spec(families[k], 43100);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s IPv%u: ", pkt_prog_name(prog), families[k]);
			fresh();
			send_syn(prog, &syn, KS_V_NAT_NEW, x);
			send_syn(prog, &syn, KS_V_NAT_ESTABLISHED, y);
			if (!same_addr(x, y))
				fail_msg("a duplicate SYN moved from %s to %s", x, y);
			assert_int_equal(health_of(x).quarantines, 0);

			age_flows(KS_NS_PER_SEC);
			send_syn(prog, &syn, KS_V_NAT_RESTEER, y);
			if (!same_addr(y, other_ep(a, x)))
				fail_msg("retransmitted SYN went to %s, not %s", y, other_ep(a, x));
			h = health_of(x);
			assert_true(h.quarantined_ns != 0);
			assert_int_equal(h.unanswered, 1);
			assert_int_equal(h.refused, 0);
			send_from(prog, &syn, y, 0x12, KS_V_NAT_REPLY);
			send_from(prog, &syn, x, 0x12, KS_V_PASS_NO_MATCH);
		}
	}
}

/* Answered once, a flow never moves: the endpoint's later RST reaches the
 * client (rewritten) and quarantines nothing; a SYN with its ISN again,
 * however late, stays. */
static void test_established_stays(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
	struct pkt_spec seg;
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		struct pkt_spec syn = syn_spec(families[k], 43200);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s IPv%u: ", pkt_prog_name(prog), families[k]);
			fresh();
			send_syn(prog, &syn, KS_V_NAT_NEW, x);
			send_from(prog, &syn, x, 0x12, KS_V_NAT_REPLY);
			age_flows(2 * KS_NS_PER_SEC);
			send_syn(prog, &syn, KS_V_NAT_ESTABLISHED, y);
			if (!same_addr(x, y))
				fail_msg("an answered SYN moved from %s to %s", x, y);
			seg = syn;
			seg.tcp_flags = 0x10;
			seg.seq += 1;
			send_syn(prog, &seg, KS_V_NAT_ESTABLISHED, y);
			send_from(prog, &syn, x, 0x14, KS_V_NAT_REPLY);
			assert_int_equal(health_of(x).quarantines, 0);
		}
	}
}

/*
 * Both endpoints refuse: the handshake moves KS_HEALTH_MAX_RESTEERS times
 * (the second time back to a quarantined endpoint, none being left), and
 * then the reset reaches the client. With both quarantined a new flow
 * still goes to the backend: quarantine never empties it.
 */
static void test_resteer_limit(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN], z[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(families[k])];
		struct pkt_spec syn = syn_spec(families[k], 43300);

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s IPv%u: ", pkt_prog_name(prog), families[k]);
			fresh();
			send_syn(prog, &syn, KS_V_NAT_NEW, x);
			send_from(prog, &syn, x, 0x14, KS_V_DROP_REFUSED);
			send_syn(prog, &syn, KS_V_NAT_RESTEER, y);
			if (!same_addr(y, other_ep(a, x)))
				fail_msg("first move went to %s, not %s", y, other_ep(a, x));
			send_from(prog, &syn, y, 0x14, KS_V_DROP_REFUSED);
			send_syn(prog, &syn, KS_V_NAT_RESTEER, z);
			send_from(prog, &syn, z, 0x14, KS_V_NAT_REPLY);
			assert_true(health_of(a->ep_a).quarantined_ns != 0);
			assert_true(health_of(a->ep_b).quarantined_ns != 0);
			/* the client gave up; a new connection is not refused */
			syn.sport++;
			send_syn(prog, &syn, KS_V_NAT_NEW, z);
			syn.sport--;
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
		cmocka_unit_test(test_refused_resteers),
		cmocka_unit_test(test_unanswered_resteers),
		cmocka_unit_test(test_established_stays),
		cmocka_unit_test(test_resteer_limit),
	};

	return cmocka_run_group_tests_name("pkt_health", tests, setup, teardown);
}
