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
 *
 * All of it twice: on "main", whose endpoints other frontends share (a new
 * flow enters both its entries at once), and on a frontend of its own
 * (VIP:8300, two endpoints nothing else has), where the refusal is the
 * flow's first reply and makes its reply entry (bpf/lib/conntrack.h).
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

/* the frontend under test, on the VIP, and its two endpoints by family */
#define PORT_OWN 8300
static uint16_t port;
static const char *ep_a[2], *ep_b[2];
static const char *const own_a[2] = { "198.18.2.70", "2001:2:0:2::70" };
static const char *const own_b[2] = { "198.18.2.71", "2001:2:0:2::71" };

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
		.dport = port,
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
	int fi = a - pkt_addrs;

	return same_addr(ep, ep_a[fi]) ? ep_b[fi] : ep_a[fi];
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
			assert_true(health_of(ep_a[a - pkt_addrs]).quarantined_ns != 0);
			assert_true(health_of(ep_b[a - pkt_addrs]).quarantined_ns != 0);
			/* the client gave up; a new connection is not refused */
			syn.sport++;
			send_syn(prog, &syn, KS_V_NAT_NEW, z);
			syn.sport--;
		}
	}
}

/* ICMP errors by what they say. */
struct icmp_kind {
	const char *name;
	uint8_t type4, code4, type6, code6;
	bool from_ep; /* sent by the endpoint, else by a router on its side */
	bool refusal; /* held back while the handshake is half-open */
};

static const struct icmp_kind icmp_kinds[] = {
	{ "port unreachable", 3, 3, 1, 4, true, true },
	{ "admin prohibited", 3, 13, 1, 1, true, true },
	{ "host unreachable from a router", 3, 1, 1, 3, false, true },
	{ "fragmentation needed / packet too big", 3, 4, 2, 0, false, false },
	{ "time exceeded", 11, 0, 3, 0, false, false },
};

static const char *const ep_router[2] = { "198.18.2.254", "2001:2:0:2::fe" };

/*
 * Runs kind's error about s's packet as it left for endpoint ep (seq: the
 * quoted sequence number) through prog: held back (verdict
 * KS_V_DROP_UNREACH_HELD, dropped), or passed on to the client as the
 * frontend's, byte for byte as if the frontend had been quoted.
 */
static void send_error(enum pkt_prog prog, const struct pkt_spec *s, const char *ep,
		       const struct icmp_kind *kind, uint32_t seq, bool held)
{
	uint8_t family = s->family, fi = pkt_fi(family);
	uint8_t type = family == 4 ? kind->type4 : kind->type6;
	uint8_t code = family == 4 ? kind->code4 : kind->code6;
	const char *src = kind->from_ep ? ep : ep_router[fi];
	struct pkt_spec sent = *s;
	struct pkt q, orig, in, want;
	struct pkt_result r;
	char why[128];

	sent.seq = seq;
	pkt_build(&sent, &orig);
	sent.dst = ep;
	sent.dport = PKT_EP_PORT;
	pkt_build(&sent, &q);
	pkt_build_icmp_error(family, type, code, src, s->src, &q, 0, &in);
	pkt_run(&env, prog, in.data, in.len, &r, true);
	if (held) {
		pkt_expect(&r, prog, PKT_DROP, KS_V_DROP_UNREACH_HELD);
		return;
	}
	pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_ICMP_TO_CLIENT);
	pkt_build_icmp_error(family, type, code, kind->from_ep ? s->dst : src, s->src, &orig, 0,
			     &want);
	if (!pkt_check(r.out, r.len, NULL, why, sizeof(why)))
		fail_msg("%s: output invalid: %s", kind->name, why);
	if (r.len != want.len || memcmp(r.out, want.data, want.len)) {
		pkt_dump("output", r.out, r.len);
		pkt_dump("expected", want.data, want.len);
		fail_msg("%s: not translated as the frontend's", kind->name);
	}
}

/*
 * An unreachable about a handshake's SYN, from the endpoint (port closed,
 * a REJECT rule) or from a router on its side, is held back like a reset:
 * the endpoint is quarantined (counted as refused), the flow closed, and
 * the client's retransmitted SYN goes to the other endpoint, whose SYN-ACK
 * is translated. Fragmentation needed, packet too big and time exceeded
 * about the same SYN are no refusal: they pass, translated, and the flow
 * stays where it is. So does an unreachable quoting a sequence number
 * other than the ISN or the next (the client's TCP would ignore it too).
 */
static void test_unreach_resteers(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
	struct ks_ep_health h;
	size_t k, i;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		const struct pkt_addrs *a = &pkt_addrs[pkt_fi(families[k])];

		for (i = 0; i < sizeof(icmp_kinds) / sizeof(icmp_kinds[0]); i++) {
			const struct icmp_kind *kind = &icmp_kinds[i];
			struct pkt_spec syn = syn_spec(families[k], 43400 + i);

			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				pkt_context("%s IPv%u %s: ", pkt_prog_name(prog), families[k],
					    kind->name);
				fresh();
				send_syn(prog, &syn, KS_V_NAT_NEW, x);
				/* a sequence number the client's TCP would
				 * not take an error about: no refusal */
				send_error(prog, &syn, x, kind, syn.seq + 2, false);
				send_error(prog, &syn, x, kind, syn.seq - 1, false);
				assert_int_equal(health_of(x).quarantines, 0);
				/* the ISN, or the next (Linux takes both) */
				send_error(prog, &syn, x, kind, syn.seq + (i & 1), kind->refusal);
				h = health_of(x);
				if (!kind->refusal) {
					assert_int_equal(h.quarantines, 0);
					send_syn(prog, &syn, KS_V_NAT_ESTABLISHED, y);
					if (!same_addr(x, y))
						fail_msg("the SYN moved from %s to %s", x, y);
					send_from(prog, &syn, x, 0x12, KS_V_NAT_REPLY);
					continue;
				}
				assert_true(h.quarantined_ns != 0);
				assert_int_equal(h.quarantines, 1);
				assert_int_equal(h.refused, 1);
				assert_int_equal(h.unanswered, 0);

				send_syn(prog, &syn, KS_V_NAT_RESTEER, y);
				if (!same_addr(y, other_ep(a, x)))
					fail_msg("re-steered SYN went to %s, not %s", y,
						 other_ep(a, x));
				send_from(prog, &syn, y, 0x12, KS_V_NAT_REPLY);
				send_from(prog, &syn, x, 0x12, KS_V_PASS_NO_MATCH);
				assert_int_equal(health_of(y).quarantines, 0);
			}
		}
	}
}

/* Answered once, a flow never moves: an unreachable about it afterwards
 * reaches the client, translated, and quarantines nothing. */
static void test_unreach_established_passes(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
	size_t k, i;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		for (i = 0; i < sizeof(icmp_kinds) / sizeof(icmp_kinds[0]); i++) {
			const struct icmp_kind *kind = &icmp_kinds[i];
			struct pkt_spec syn = syn_spec(families[k], 43500 + i), seg;

			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				pkt_context("%s IPv%u %s: ", pkt_prog_name(prog), families[k],
					    kind->name);
				fresh();
				send_syn(prog, &syn, KS_V_NAT_NEW, x);
				send_from(prog, &syn, x, 0x12, KS_V_NAT_REPLY);
				seg = syn;
				seg.tcp_flags = 0x18;
				seg.seq += 1;
				seg.ack = 5001;
				send_syn(prog, &seg, KS_V_NAT_ESTABLISHED, y);
				send_error(prog, &seg, x, kind, seg.seq, false);
				assert_int_equal(health_of(x).quarantines, 0);
				/* the flow stays, translated */
				send_syn(prog, &seg, KS_V_NAT_ESTABLISHED, y);
				if (!same_addr(x, y))
					fail_msg("an established flow moved from %s to %s", x, y);
			}
		}
	}
}

/* UDP has no handshake: an unreachable about a datagram passes translated,
 * quarantines nothing, and the flow keeps its endpoint. */
static void test_unreach_udp_passes(void **state)
{
	char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
	size_t k;
	int prog;

	(void)state;
	for (k = 0; k < sizeof(families); k++) {
		struct pkt_spec dgram = syn_spec(families[k], 43600);

		dgram.proto = IPPROTO_UDP;
		dgram.payload = 32;
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("%s IPv%u UDP: ", pkt_prog_name(prog), families[k]);
			fresh();
			send_syn(prog, &dgram, KS_V_NAT_NEW, x);
			send_error(prog, &dgram, x, &icmp_kinds[0], 0, false);
			assert_int_equal(health_of(x).quarantines, 0);
			send_syn(prog, &dgram, KS_V_NAT_ESTABLISHED, y);
			if (!same_addr(x, y))
				fail_msg("a UDP flow moved from %s to %s", x, y);
		}
	}
}

static int setup_main(void **state)
{
	int fi;

	(void)state;
	port = PKT_PORT_MAIN;
	for (fi = 0; fi < 2; fi++) {
		ep_a[fi] = pkt_addrs[fi].ep_a;
		ep_b[fi] = pkt_addrs[fi].ep_b;
	}
	return pkt_suite_setup(&env, &topo);
}

static int setup_own(void **state)
{
	uint32_t svc;
	int fi;

	(void)state;
	if (pkt_suite_setup(&env, &topo))
		return -1;
	port = PORT_OWN;
	for (fi = 0; fi < 2; fi++) {
		struct pkt_backend b = { 100,
					 2,
					 { pkt_endpoint(own_a[fi], PKT_EP_PORT),
					   pkt_endpoint(own_b[fi], PKT_EP_PORT) } };

		ep_a[fi] = own_a[fi];
		ep_b[fi] = own_b[fi];
		if (pkt_env_service(&env, &b, 1, &svc) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_OWN, IPPROTO_TCP, svc) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_OWN, IPPROTO_UDP, svc))
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
		cmocka_unit_test(test_refused_resteers),
		cmocka_unit_test(test_unanswered_resteers),
		cmocka_unit_test(test_established_stays),
		cmocka_unit_test(test_resteer_limit),
		cmocka_unit_test(test_unreach_resteers),
		cmocka_unit_test(test_unreach_established_passes),
		cmocka_unit_test(test_unreach_udp_passes),
	};

	return cmocka_run_group_tests_name("pkt_health", tests, setup_main, teardown) |
	       cmocka_run_group_tests_name("pkt_health, reply entry at the first reply", tests,
					   setup_own, teardown);
}
