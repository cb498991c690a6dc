// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of one insert per new flow (issue #8), each in ks_xdp and in
 * ks_tc, IPv4 and IPv6: a new flow's first packet enters only its forward
 * entry in ks_conns, and its first reply, found through ks_eprev (the
 * frontends each endpoint serves), enters the reply entry:
 *   - a SYN or a first UDP datagram leaves one entry, the forward one;
 *   - the endpoint's SYN-ACK (first UDP reply) is translated, and then both
 *     entries are there, ESTABLISHED (UDP);
 *   - a reply with no live forward entry steered to exactly its endpoint
 *     (none, expired, another endpoint's) passes untouched and enters
 *     nothing; so do a SYN-ACK to a flow that is over and a pure SYN from
 *     the endpoint;
 *   - a first reply that finds the table full is dropped, never passed on
 *     untranslated;
 *   - an ICMP error from the endpoint's side about a half-open flow's SYN
 *     reaches the client as the frontend's;
 *   - the frontends of an endpoint that serves others, or that ks_eprev
 *     cannot list (more than KS_EPREV_MAX), enter both entries at once
 *     (KS_FE_REPLY_AT_ONCE), and every flow's reply comes from its own
 *     frontend; one client port to two of them is refused even where the
 *     first flow is still half-open;
 *   - a hairpin flow enters both entries at once;
 *   - with XDP passing up, the egress program translates a first reply
 *     that XDP did not see;
 *   - kshiftd keeps ks_eprev in step as frontends go and endpoints change,
 *     and marks a frontend whose endpoint finds ks_eprev full;
 *   - a draining endpoint's half-open flow still has its first reply
 *     translated.
 * The connection table and ks_eprev are read straight from the maps.
 */
#include <arpa/inet.h>
#include <errno.h>
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
#include "pktbuild.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* One endpoint behind NR_MANY frontends VIP:PORT_MANY + i (TCP), each its
 * own service: more than ks_eprev lists of one endpoint. */
#define NR_MANY	     (KS_EPREV_MAX + 1)
#define PORT_MANY    8201
#define EP_MANY_PORT 9090
static const char *const ep_many[2] = { "198.18.2.70", "2001:2:0:2::70" };

/*
 * solo: VIP:PORT_SOLO, TCP and UDP, one backend of two endpoints that
 * serve no other frontend, so its new flows enter one entry (the standard
 * services of pktbuild.h share EP_A and EP_C between frontends). hp:
 * VIP:PORT_HP, TCP, one endpoint of its own, for a hairpin flow.
 */
#define PORT_SOLO 8210
#define PORT_HP	  8220
static const char *const solo_a[2] = { "198.18.2.90", "2001:2:0:2::90" };
static const char *const solo_b[2] = { "198.18.2.91", "2001:2:0:2::91" };
static const char *const hp_ep[2] = { "198.18.2.92", "2001:2:0:2::92" };

static struct pkt_env env;
static struct pkt_topo topo;
static uint32_t many_svc[2][NR_MANY];

static const uint8_t families[] = { 4, 6 };
static const uint8_t protos[] = { IPPROTO_TCP, IPPROTO_UDP };

static const char *proto_name(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "TCP" : "UDP";
}

/* A client's first packet to VIP:dport: a SYN, or a UDP datagram. */
static struct pkt_spec first_spec(uint8_t family, uint8_t proto, uint16_t sport, uint16_t dport)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];

	return (struct pkt_spec){
		.family = family,
		.proto = proto,
		.src = a->client,
		.dst = a->vip,
		.sport = sport,
		.dport = dport,
		.seq = 1000,
		.tcp_flags = 0x02,
		.payload = proto == IPPROTO_UDP ? 32 : 0,
	};
}

/* The same flow, the other way: from ep:ep_port to the client (a SYN-ACK
 * by default for TCP). */
static struct pkt_spec from_ep(const struct pkt_spec *s, const char *ep, uint16_t ep_port,
			       uint8_t flags)
{
	struct pkt_spec r = *s;

	r.src = ep;
	r.dst = s->src;
	r.sport = ep_port;
	r.dport = s->sport;
	r.tcp_flags = flags;
	r.seq = 5000;
	r.ack = s->seq + 1;
	return r;
}

static struct pkt_spec syn_ack(const struct pkt_spec *s, const char *ep, uint16_t ep_port)
{
	return from_ep(s, ep, ep_port, 0x12);
}

/* Runs s in e, expecting act with verdict. */
static void run(struct pkt_env *e, enum pkt_prog prog, const struct pkt_spec *s, enum pkt_act act,
		enum ks_verdict verdict, struct pkt *in, struct pkt_result *r)
{
	pkt_build(s, in);
	pkt_run(e, prog, in->data, in->len, r, true);
	pkt_expect(r, prog, act, verdict);
}

/* Runs s, a client's packet to a frontend, expecting verdict and a DNAT;
 * the endpoint it went to, into ep. */
static void dnat(struct pkt_env *e, enum pkt_prog prog, const struct pkt_spec *s,
		 enum ks_verdict verdict, char *ep)
{
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;

	run(e, prog, s, PKT_PASS, verdict, &in, &r);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, true, ep);
	pkt_expect_nat(&r, &in, true, ep, pkt_port(r.out, &v, true));
}

static void untouched(struct pkt_env *e, enum pkt_prog prog, const struct pkt_spec *s,
		      enum ks_verdict verdict)
{
	struct pkt_result r;
	struct pkt in;

	run(e, prog, s, PKT_PASS, verdict, &in, &r);
	pkt_expect_untouched(&r, &in);
}

/* Runs s, an endpoint's reply, expecting its source rewritten to fe:port. */
static void reply(struct pkt_env *e, enum pkt_prog prog, const struct pkt_spec *s, const char *fe,
		  uint16_t port)
{
	struct pkt_result r;
	struct pkt in;

	run(e, prog, s, PKT_PASS, KS_V_NAT_REPLY, &in, &r);
	pkt_expect_nat(&r, &in, false, fe, port);
}

static bool same_addr(const char *x, const char *y)
{
	uint8_t fx, fy;
	struct ks_addr ax = pkt_addr(x, &fx), ay = pkt_addr(y, &fy);

	return fx == fy && !memcmp(&ax, &ay, sizeof(ax));
}

/* The endpoint of solo that ep is not. */
static const char *other_solo_ep(int fi, const char *ep)
{
	return same_addr(ep, solo_a[fi]) ? solo_b[fi] : solo_a[fi];
}

/* Sets solo and hp up in e, both families. */
static int add_solo(struct pkt_env *e)
{
	uint32_t svc;
	int fi;

	for (fi = 0; fi < 2; fi++) {
		const char *vip = pkt_addrs[fi].vip;
		struct pkt_backend solo = { 100,
					    2,
					    { pkt_endpoint(solo_a[fi], PKT_EP_PORT),
					      pkt_endpoint(solo_b[fi], PKT_EP_PORT) } };
		struct pkt_backend hp = { 100, 1, { pkt_endpoint(hp_ep[fi], PKT_EP_PORT) } };
		int err;

		err = pkt_env_service(e, &solo, 1, &svc);
		err = err ?: pkt_env_frontend(e, vip, PORT_SOLO, IPPROTO_TCP, svc);
		err = err ?: pkt_env_frontend(e, vip, PORT_SOLO, IPPROTO_UDP, svc);
		err = err ?: pkt_env_service(e, &hp, 1, &svc);
		err = err ?: pkt_env_frontend(e, vip, PORT_HP, IPPROTO_TCP, svc);
		if (err)
			return err;
	}
	return 0;
}

static int conns_fd(struct pkt_env *e)
{
	return bpf_map__fd(e->dp.skel->maps.ks_conns);
}

/* The entry at the key of s, as a packet s would look it up: 0 or -ENOENT. */
static int get_conn(struct pkt_env *e, const struct pkt_spec *s, struct ks_conn *c)
{
	struct ks_flow k = pkt_flow_key(s);

	return bpf_map_lookup_elem(conns_fd(e), &k, c) ? -errno : 0;
}

/* The entry at the key of s exists, goes dir, rewrites to addr:port, and
 * is in state. */
static void expect_conn(struct pkt_env *e, const struct pkt_spec *s, uint8_t dir, const char *addr,
			uint16_t port, uint8_t state)
{
	struct ks_conn c;
	uint8_t fam;
	struct ks_addr want = pkt_addr(addr, &fam);

	if (get_conn(e, s, &c))
		fail_msg("no entry at %s:%u -> %s:%u", s->src, s->sport, s->dst, s->dport);
	assert_int_equal(c.dir, dir);
	assert_memory_equal(&c.addr, &want, sizeof(want));
	assert_int_equal(ntohs(c.port), port);
	assert_int_equal(c.state, state);
}

static void set_state(struct pkt_env *e, const struct pkt_spec *s, uint8_t st)
{
	struct ks_flow k = pkt_flow_key(s);
	struct ks_conn c;

	assert_int_equal(bpf_map_lookup_elem(conns_fd(e), &k, &c), 0);
	c.state = st;
	assert_int_equal(bpf_map_update_elem(conns_fd(e), &k, &c, BPF_EXIST), 0);
}

/* What the table holds for a packet s: how many entries, and the one at
 * its key, if any (a packet that enters nothing leaves both as they were). */
struct snap {
	int entries;
	int err;
	struct ks_conn c;
};

static struct snap snap(struct pkt_env *e, const struct pkt_spec *s)
{
	struct snap n;

	memset(&n, 0, sizeof(n));
	n.entries = pkt_env_count_conns(e);
	n.err = get_conn(e, s, &n.c);
	return n;
}

static void expect_same(const struct snap *before, const struct snap *after)
{
	assert_int_equal(after->entries, before->entries);
	assert_int_equal(after->err, before->err);
	if (!before->err)
		assert_memory_equal(&after->c, &before->c, sizeof(before->c));
}

/* ks_eprev of addr:port/proto: 0, or -ENOENT when it has no entry. */
static int get_eprev(struct pkt_env *e, const char *addr, uint16_t port, uint8_t proto,
		     struct ks_eprev *v)
{
	struct ks_eprev_key k;

	memset(&k, 0, sizeof(k));
	k.addr = pkt_addr(addr, &k.family);
	k.port = htons(port);
	k.proto = proto;
	return bpf_map_lookup_elem(bpf_map__fd(e->dp.skel->maps.ks_eprev), &k, v) ? -errno : 0;
}

/* Whether v lists fe:port. */
static bool eprev_has(const struct ks_eprev *v, const char *fe, uint16_t port)
{
	uint8_t fam;
	struct ks_addr a = pkt_addr(fe, &fam);
	uint32_t i;

	for (i = 0; i < v->nr && i < KS_EPREV_MAX; i++)
		if (!memcmp(&v->fe[i].addr, &a, sizeof(a)) && ntohs(v->fe[i].port) == port)
			return true;
	return false;
}

/* ks_eprev of ep:ep_port/proto lists exactly fe:ports[0..n), in any order;
 * n 0: it has no entry at all (an endpoint that serves nothing leaves no
 * entry behind, or the map would fill with them). */
static void expect_eprev(struct pkt_env *e, const char *ep, uint16_t ep_port, uint8_t proto,
			 const char *fe, const uint16_t *ports, uint32_t n)
{
	struct ks_eprev v;
	uint32_t i;
	int err = get_eprev(e, ep, ep_port, proto, &v);

	if (!n) {
		if (err != -ENOENT)
			fail_msg("ks_eprev of %s:%u/%s: %u frontends left, none expected", ep,
				 ep_port, proto_name(proto), err ? 0 : v.nr);
		return;
	}
	if (err)
		fail_msg("ks_eprev of %s:%u/%s: no entry (%d)", ep, ep_port, proto_name(proto),
			 err);
	assert_int_equal(v.nr, n);
	for (i = 0; i < n; i++)
		if (!eprev_has(&v, fe, ports[i]))
			fail_msg("ks_eprev of %s:%u/%s does not list %s:%u", ep, ep_port,
				 proto_name(proto), fe, ports[i]);
}

/* The flags of frontend addr:port/proto. */
static uint32_t fe_flags(struct pkt_env *e, const char *addr, uint16_t port, uint8_t proto)
{
	struct ks_frontend_key k;
	struct ks_frontend v;

	memset(&k, 0, sizeof(k));
	k.addr = pkt_addr(addr, &k.family);
	k.port = htons(port);
	k.proto = proto;
	assert_int_equal(bpf_map_lookup_elem(bpf_map__fd(e->dp.skel->maps.ks_frontends), &k, &v),
			 0);
	return v.flags;
}

/* 1. A new flow's first packet enters its forward entry, and only it. */
static void test_first_packet_one_entry(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f, p;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			pkt_context("IPv%u %s flags", families[f], proto_name(protos[p]));
			/* solo's endpoints serve solo alone (its TCP and UDP
			 * frontends are listed apart) */
			assert_int_equal(fe_flags(&env, pkt_addrs[pkt_fi(families[f])].vip,
						  PORT_SOLO, protos[p]),
					 0);
			expect_eprev(&env, solo_a[pkt_fi(families[f])], PKT_EP_PORT, protos[p],
				     pkt_addrs[pkt_fi(families[f])].vip, (uint16_t[]){ PORT_SOLO },
				     1);
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s =
					first_spec(families[f], protos[p], 43000, PORT_SOLO);
				bool tcp = protos[p] == IPPROTO_TCP;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    proto_name(protos[p]));
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				assert_int_equal(pkt_env_count_conns(&env), 1);
				expect_conn(&env, &s, KS_DIR_FORWARD, ep, PKT_EP_PORT,
					    tcp ? KS_CT_SYN_SENT : KS_CT_UDP);
			}
		}
	}
}

/* A TCP flow picked up mid-stream (its first packet an ACK) enters both
 * entries at once: any of its replies may be the first, and only a SYN-ACK
 * or a reset from an endpoint looks for its flow. Its data reply is
 * translated, and a direct connection's data from the same endpoint port
 * passes untouched. */
static void test_mid_stream_both_at_once(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43800, PORT_SOLO);
			struct pkt_spec back, direct;

			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			s.tcp_flags = 0x10;
			s.ack = 1;
			dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
			assert_int_equal(pkt_env_count_conns(&env), 2);
			back = from_ep(&s, ep, PKT_EP_PORT, 0x10);
			reply(&env, prog, &back, s.dst, PORT_SOLO);

			direct = back;
			direct.dport = 43801;
			untouched(&env, prog, &direct, KS_V_PASS_NO_MATCH);
			assert_int_equal(pkt_env_count_conns(&env), 2);
		}
	}
}

/* 2. The first reply is translated and enters the reply entry; the flow
 * then goes on both ways as any. */
static void test_first_reply_translated(void **state)
{
	char ep[INET6_ADDRSTRLEN], ep2[INET6_ADDRSTRLEN];
	size_t f, p;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s = first_spec(families[f], protos[p], 43010,
							       PORT_SOLO),
						back, ack;
				bool tcp = protos[p] == IPPROTO_TCP;
				uint8_t st = tcp ? KS_CT_ESTABLISHED : KS_CT_UDP;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    proto_name(protos[p]));
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				assert_int_equal(pkt_env_count_conns(&env), 1);
				back = syn_ack(&s, ep, PKT_EP_PORT);
				reply(&env, prog, &back, s.dst, PORT_SOLO);
				assert_int_equal(pkt_env_count_conns(&env), 2);
				expect_conn(&env, &s, KS_DIR_FORWARD, ep, PKT_EP_PORT, st);
				expect_conn(&env, &back, KS_DIR_REPLY, s.dst, PORT_SOLO, st);

				/* the client's ACK, and the endpoint's data */
				ack = s;
				ack.seq++;
				ack.tcp_flags = 0x10;
				dnat(&env, prog, &ack, KS_V_NAT_ESTABLISHED, ep2);
				assert_string_equal(ep, ep2);
				back.tcp_flags = 0x18;
				reply(&env, prog, &back, s.dst, PORT_SOLO);
				assert_int_equal(pkt_env_count_conns(&env), 2);
			}
		}
	}
}

/* 3. Replies that belong to no live flow steered to their endpoint pass
 * untouched and enter nothing: no forward entry at all, an expired one, one
 * steered to the other endpoint of the service. */
enum no_flow { NO_FORWARD, EXPIRED, OTHER_ENDPOINT, NR_NO_FLOW };
static const char *const no_flow_name[] = { "no forward entry", "expired", "other endpoint" };

static void test_reply_without_flow(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f, p;
	int prog, how;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);

		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			for (how = 0; how < NR_NO_FLOW; how++) {
				for (prog = 0; prog < PKT_NR_PROGS; prog++) {
					struct pkt_spec s = first_spec(families[f], protos[p],
								       43020, PORT_SOLO),
							back;
					bool tcp = protos[p] == IPPROTO_TCP;
					struct snap before, after;

					pkt_context("%s IPv%u %s %s", pkt_prog_name(prog),
						    families[f], proto_name(protos[p]),
						    no_flow_name[how]);
					assert_int_equal(pkt_env_flush_conns(&env), 0);
					if (how == NO_FORWARD) {
						strcpy(ep, solo_a[fi]);
					} else {
						dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
					}
					if (how == EXPIRED)
						pkt_env_age_conns(&env, (tcp ? KS_CT_TIMEOUT_SYN_SENT
							       : KS_CT_TIMEOUT_UDP) +
								  2 * KS_NS_PER_SEC);
					back = syn_ack(&s,
						       how == OTHER_ENDPOINT ? other_solo_ep(fi, ep)
									     : ep,
						       PKT_EP_PORT);
					before = snap(&env, &back);
					untouched(&env, prog, &back, KS_V_PASS_NO_MATCH);
					after = snap(&env, &back);
					expect_same(&before, &after);
				}
			}
		}
	}
}

/* 4. A SYN-ACK to a half-open flow that is over (the client reset it, or
 * it is closing) is another connection's, and a pure SYN from the endpoint
 * to the client's port opens none of ours: both pass untouched, and the
 * flow that is over goes. */
static void test_not_a_reply(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog, how;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (how = 0; how < 3; how++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43030,
							       PORT_SOLO),
						rst, back;
				struct snap before, after;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    how == 0   ? "client RST"
					    : how == 1 ? "flow closing"
						       : "SYN from the endpoint");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				back = syn_ack(&s, ep, PKT_EP_PORT);
				if (how == 0) {
					rst = s;
					rst.seq++;
					rst.tcp_flags = 0x04;
					dnat(&env, prog, &rst, KS_V_NAT_ESTABLISHED, ep);
					expect_conn(&env, &s, KS_DIR_FORWARD, ep, PKT_EP_PORT,
						    KS_CT_CLOSED);
				} else if (how == 1) {
					/* both entries, where the reply entry is in */
					set_state(&env, &s, KS_CT_CLOSING);
					if (!get_conn(&env, &back, &(struct ks_conn){}))
						set_state(&env, &back, KS_CT_CLOSING);
				} else {
					back.tcp_flags = 0x02;
					back.ack = 0;
				}
				before = snap(&env, &back);
				untouched(&env, prog, &back, KS_V_PASS_NO_MATCH);
				after = snap(&env, &back);
				/* a SYN-ACK on the reply entry of a flow that is over
				 * is another connection's, made from the same port
				 * straight to the endpoint: the flow goes, both
				 * entries (test_pkt_conntrack) */
				if (how < 2 && !before.err)
					assert_int_equal(after.entries, before.entries - 2);
				else
					expect_same(&before, &after);
			}
		}
	}
}

static void build_too_big(uint8_t family, const char *src, const struct pkt_spec *client_pkt,
			  const struct pkt *q, size_t quote, struct pkt *out)
{
	pkt_build_icmp_error(family, family == 4 ? 3 : 2, family == 4 ? 4 : 0, src, client_pkt->src, q,
		    quote, out);
}

static const char *const ep_router[2] = { "198.18.2.254", "2001:2:0:2::fe" };

struct icmp_kind {
	uint8_t family, proto;
	size_t quote; /* 0: whole */
};

static const struct icmp_kind icmp_kinds[] = {
	{ 4, IPPROTO_TCP, 0 }, { 4, IPPROTO_UDP, 0 },  { 6, IPPROTO_TCP, 0 },
	{ 6, IPPROTO_UDP, 0 }, { 4, IPPROTO_TCP, 28 }, { 6, IPPROTO_TCP, 48 },
};

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

/* 6. Path MTU discovery during a handshake: an error from the endpoint, or
 * a router on its side, about the client's SYN (first datagram) of a flow
 * that has had no reply reaches the client as the frontend's; the flow's
 * SYN-ACK is translated after it. */
static void test_icmp_half_open(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t k;
	int prog, by_ep;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(icmp_kinds); k++) {
		const struct icmp_kind *kd = &icmp_kinds[k];
		int fi = pkt_fi(kd->family);

		for (by_ep = 0; by_ep < 2; by_ep++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s = first_spec(kd->family, kd->proto, 43040,
							       PORT_SOLO),
						sent, back;
				struct pkt orig, fwd, in, want;
				struct pkt_result r;

				pkt_context("%s IPv%u %s quote %zu from %s", pkt_prog_name(prog),
					    kd->family, proto_name(kd->proto), kd->quote,
					    by_ep ? "the endpoint" : "a router");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				sent = s;
				sent.dst = ep;
				sent.dport = PKT_EP_PORT;
				pkt_build(&sent, &fwd);
				pkt_build(&s, &orig);
				build_too_big(kd->family, by_ep ? ep : ep_router[fi], &s, &fwd,
					      kd->quote, &in);
				build_too_big(kd->family, by_ep ? s.dst : ep_router[fi], &s, &orig,
					      kd->quote, &want);
				pkt_run(&env, prog, in.data, in.len, &r, true);
				pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_ICMP_TO_CLIENT);
				expect_frame(&r, &want);

				back = syn_ack(&s, ep, PKT_EP_PORT);
				reply(&env, prog, &back, s.dst, PORT_SOLO);
				assert_int_equal(pkt_env_count_conns(&env), 2);
			}
		}
	}
}

/*
 * 5. A table of 16 entries full of 16 half-open flows: the endpoint's
 * SYN-ACK to one finds no room for the reply entry, and is dropped, not
 * passed to the client untranslated (from the endpoint's address, which
 * the client would answer with a reset). So is an ICMP error about one.
 * Nothing in the table is evicted for either.
 */
static void test_table_full(void **state)
{
	struct ks_dp_opts opts = { .max_flows = 8 };
	struct pkt_env small;
	size_t f;
	int prog, i;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&small, &opts), 0);
	assert_int_equal(add_solo(&small), 0);
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			char ep[INET6_ADDRSTRLEN], first_ep[INET6_ADDRSTRLEN];
			struct pkt_spec first = first_spec(families[f], IPPROTO_TCP, 48000,
							   PORT_SOLO),
					back, sent;
			struct pkt_result r;
			struct pkt in, q;

			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&small), 0);
			for (i = 0; i < 16; i++) {
				struct pkt_spec s =
					first_spec(families[f], IPPROTO_TCP, 48000 + i, PORT_SOLO);

				pkt_context("%s IPv%u SYN %d of 16", pkt_prog_name(prog),
					    families[f], i + 1);
				dnat(&small, prog, &s, KS_V_NAT_NEW, i ? ep : first_ep);
			}
			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_count_conns(&small), 16);

			back = syn_ack(&first, first_ep, PKT_EP_PORT);
			run(&small, prog, &back, PKT_DROP, KS_V_DROP_CT_FULL, &in, &r);
			assert_int_equal(pkt_env_count_conns(&small), 16);
			expect_conn(&small, &first, KS_DIR_FORWARD, first_ep, PKT_EP_PORT,
				    KS_CT_SYN_SENT);

			pkt_context("%s IPv%u ICMP error", pkt_prog_name(prog), families[f]);
			sent = first;
			sent.dst = first_ep;
			sent.dport = PKT_EP_PORT;
			pkt_build(&sent, &q);
			build_too_big(families[f], first_ep, &first, &q, 0, &in);
			pkt_run(&small, prog, in.data, in.len, &r, true);
			pkt_expect(&r, prog, PKT_DROP, KS_V_DROP_CT_FULL);
			assert_int_equal(pkt_env_count_conns(&small), 16);
		}
	}
	pkt_env_close(&small);
}

/* Which of the NR_MANY frontends of fi's ep_many ks_eprev leaves out:
 * checks that it lists KS_EPREV_MAX of them, each once. */
static int left_out(int fi);

/* ... or, where ks_eprev has no entry for it (a dataplane that enters both
 * entries of every flow at once), the last one. */
static int left_out_or_last(int fi)
{
	struct ks_eprev v;

	if (get_eprev(&env, ep_many[fi], EP_MANY_PORT, IPPROTO_TCP, &v) == -ENOENT)
		return NR_MANY - 1;
	return left_out(fi);
}

static int left_out(int fi)
{
	const char *vip = pkt_addrs[fi].vip;
	bool listed[NR_MANY] = {};
	struct ks_eprev v;
	int i, out = -1;

	assert_int_equal(get_eprev(&env, ep_many[fi], EP_MANY_PORT, IPPROTO_TCP, &v), 0);
	assert_int_equal(v.nr, KS_EPREV_MAX);
	for (i = 0; i < NR_MANY; i++) {
		listed[i] = eprev_has(&v, vip, PORT_MANY + i);
		if (!listed[i]) {
			if (out >= 0)
				fail_msg("ks_eprev leaves out both :%d and :%d", PORT_MANY + out,
					 PORT_MANY + i);
			out = i;
		}
	}
	assert_true(out >= 0);
	return out;
}

/*
 * 7. An endpoint of NR_MANY frontends: ks_eprev lists KS_EPREV_MAX of
 * them, each once; every one is marked KS_FE_REPLY_AT_ONCE (the endpoint
 * is shared, and one is left out), so a SYN through any enters both
 * entries; with a flow open through each, every SYN-ACK comes from its own
 * frontend.
 */
static void test_endpoint_of_many(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog, i;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]), out;
		const char *vip = pkt_addrs[fi].vip;

		pkt_context("IPv%u ks_eprev", families[f]);
		out = left_out(fi);
		for (i = 0; i < NR_MANY; i++) {
			uint32_t fl = fe_flags(&env, vip, PORT_MANY + i, IPPROTO_TCP);

			pkt_context("IPv%u frontend :%d flags %#x", families[f], PORT_MANY + i, fl);
			/* the endpoint is shared: only the reply entry's insert
			 * finds two half-open flows of one reply tuple (and the
			 * one left out could not be found by its first reply) */
			assert_true(fl & KS_FE_REPLY_AT_ONCE);
		}

		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			int n = 0;

			assert_int_equal(pkt_env_flush_conns(&env), 0);
			for (i = 0; i < NR_MANY; i++) {
				struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43100 + i,
							       PORT_MANY + i);

				pkt_context("%s IPv%u SYN to :%d%s", pkt_prog_name(prog),
					    families[f], PORT_MANY + i,
					    i == out ? " (left out)" : "");
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				assert_true(same_addr(ep, ep_many[fi]));
				n += 2;
				assert_int_equal(pkt_env_count_conns(&env), n);
			}
			for (i = 0; i < NR_MANY; i++) {
				struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43100 + i,
							       PORT_MANY + i),
						back = syn_ack(&s, ep_many[fi], EP_MANY_PORT);

				pkt_context("%s IPv%u SYN-ACK of :%d%s", pkt_prog_name(prog),
					    families[f], PORT_MANY + i,
					    i == out ? " (left out)" : "");
				reply(&env, prog, &back, vip, PORT_MANY + i);
			}
			assert_int_equal(pkt_env_count_conns(&env), 2 * NR_MANY);
		}
	}
}

/*
 * One client port to two frontends that share an endpoint would make two
 * flows of one reply tuple (the endpoint sees one connection): the second
 * SYN is refused, also while the first flow is half-open (no reply has
 * come to make its reply entry: why such frontends enter it at once); the
 * first flow's SYN-ACK still comes from its own frontend. Pairs of listed
 * frontends, and with the one left out of ks_eprev.
 */
static void test_shared_half_open_clash(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog, pair;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]), out = left_out_or_last(fi);
		int l1 = (out + 1) % NR_MANY, l2 = (out + 2) % NR_MANY;
		const int pairs[3][2] = { { l1, l2 }, { l1, out }, { out, l1 } };
		const char *vip = pkt_addrs[fi].vip;

		for (pair = 0; pair < 3; pair++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				int a = pairs[pair][0], b = pairs[pair][1];
				struct pkt_spec one = first_spec(families[f], IPPROTO_TCP, 43200,
								 PORT_MANY + a),
						two = first_spec(families[f], IPPROTO_TCP, 43200,
								 PORT_MANY + b),
						back = syn_ack(&one, ep_many[fi], EP_MANY_PORT);
				struct pkt_result r;
				struct pkt in;

				pkt_context("%s IPv%u :%d%s then :%d%s", pkt_prog_name(prog),
					    families[f], PORT_MANY + a,
					    a == out ? " (left out)" : "", PORT_MANY + b,
					    b == out ? " (left out)" : "");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(&env, prog, &one, KS_V_NAT_NEW, ep);
				two.seq = 99999;
				run(&env, prog, &two, PKT_DROP, KS_V_DROP_CT_CLASH, &in, &r);
				reply(&env, prog, &back, vip, PORT_MANY + a);
			}
		}
	}
}

/* A hairpin flow (the client is the endpoint) enters both entries at once:
 * its replies go to the hairpin address, which ks_eprev cannot lead back
 * from. Another client's flow through the same frontend enters one. */
static void test_hairpin_both_at_once(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog, hairpin;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);

		for (hairpin = 0; hairpin < 2; hairpin++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s =
					first_spec(families[f], IPPROTO_TCP, 43300, PORT_HP);
				struct pkt_result r;
				struct pkt in;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    hairpin ? "hairpin" : "another client");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				if (hairpin) {
					s.src = hp_ep[fi];
					run(&env, prog, &s, PKT_PASS, KS_V_NAT_NEW, &in, &r);
				} else {
					dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
					assert_true(same_addr(ep, hp_ep[fi]));
				}
				assert_int_equal(pkt_env_count_conns(&env), hairpin ? 2 : 1);
			}
		}
	}
}

/*
 * 8. ks_eprev follows frontends and endpoints (user/lib/dataplane.c): a
 * deleted frontend leaves its endpoints' lists, and an endpoint that serves
 * nothing leaves no entry; when a service's endpoints change, a removed
 * endpoint's entry goes unless another frontend still has it, and a new
 * endpoint's comes; TCP and UDP frontends are listed apart. In a dataplane
 * of its own, after which the new endpoint's first reply is translated.
 */
static void test_eprev_upkeep(void **state)
{
	static const char *const e1[2] = { "198.18.2.81", "2001:2:0:2::81" },
				 *const e2[2] = { "198.18.2.82", "2001:2:0:2::82" },
				 *const e3[2] = { "198.18.2.83", "2001:2:0:2::83" },
				 *const e4[2] = { "198.18.2.84", "2001:2:0:2::84" },
				 *const e5[2] = { "198.18.2.85", "2001:2:0:2::85" };
	struct ks_dp_opts opts = { .pin_path = NULL };
	struct pkt_env own;
	size_t f;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&own, &opts), 0);
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);
		const char *vip = pkt_addrs[fi].vip;
		struct pkt_backend b1 = { 100, 1, { pkt_endpoint(e1[fi], 8080) } },
				   b2 = { 100, 1, { pkt_endpoint(e2[fi], 8080) } },
				   b3 = { 100, 1, { pkt_endpoint(e3[fi], 8080) } },
				   b4 = { 100, 1, { pkt_endpoint(e4[fi], 8080) } },
				   b5 = { 100, 1, { pkt_endpoint(e5[fi], 8080) } };
		struct ks_endpoint both[2] = { pkt_endpoint(e4[fi], 8080),
					       pkt_endpoint(e5[fi], 8080) };
		struct ks_dp_backend dpb = { 100, both, 2 }, none = { 100, both, 0 };
		struct ks_frontend_key key;
		uint32_t s1, s2, s3, s4;
		int prog;

		pkt_context("IPv%u frontends go", families[f]);
		assert_int_equal(pkt_env_service(&own, &b1, 1, &s1), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8301, IPPROTO_TCP, s1), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8302, IPPROTO_TCP, s1), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8301, IPPROTO_UDP, s1), 0);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8301, 8302 }, 2);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_UDP, vip, (uint16_t[]){ 8301 }, 1);

		memset(&key, 0, sizeof(key));
		key.addr = pkt_addr(vip, &key.family);
		key.port = htons(8302);
		key.proto = IPPROTO_TCP;
		ks_dp_frontend_del(&own.dp, &key);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8301 }, 1);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_UDP, vip, (uint16_t[]){ 8301 }, 1);
		key.port = htons(8301);
		ks_dp_frontend_del(&own.dp, &key);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_TCP, vip, NULL, 0);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_UDP, vip, (uint16_t[]){ 8301 }, 1);
		key.proto = IPPROTO_UDP;
		ks_dp_frontend_del(&own.dp, &key);
		expect_eprev(&own, e1[fi], 8080, IPPROTO_UDP, vip, NULL, 0);

		pkt_context("IPv%u endpoints change", families[f]);
		assert_int_equal(pkt_env_service(&own, &b2, 1, &s2), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8303, IPPROTO_TCP, s2), 0);
		expect_eprev(&own, e2[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8303 }, 1);
		assert_int_equal(pkt_env_service_set(&own, s2, &b3, 1), 0);
		expect_eprev(&own, e2[fi], 8080, IPPROTO_TCP, vip, NULL, 0);
		expect_eprev(&own, e3[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8303 }, 1);

		/* e4 behind two frontends; one service lets it go */
		pkt_context("IPv%u a shared endpoint", families[f]);
		assert_int_equal(pkt_env_service(&own, &b4, 1, &s3), 0);
		assert_int_equal(pkt_env_service(&own, &b4, 1, &s4), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8304, IPPROTO_TCP, s3), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8305, IPPROTO_TCP, s4), 0);
		expect_eprev(&own, e4[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8304, 8305 }, 2);
		assert_true(fe_flags(&own, vip, 8304, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);
		assert_true(fe_flags(&own, vip, 8305, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);
		assert_int_equal(pkt_env_service_set(&own, s3, &b5, 1), 0);
		expect_eprev(&own, e4[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8305 }, 1);
		expect_eprev(&own, e5[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8304 }, 1);
		/* ks_dp_svc_set itself: s4 takes e5 too, then nothing */
		assert_int_equal(ks_dp_svc_set(&own.dp, s4, &dpb, 1, 0), 0);
		expect_eprev(&own, e4[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8305 }, 1);
		expect_eprev(&own, e5[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8304, 8305 }, 2);
		assert_true(fe_flags(&own, vip, 8304, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);
		assert_true(fe_flags(&own, vip, 8305, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);
		assert_int_equal(ks_dp_svc_set(&own.dp, s4, &none, 1, 0), 0);
		expect_eprev(&own, e4[fi], 8080, IPPROTO_TCP, vip, NULL, 0);
		expect_eprev(&own, e5[fi], 8080, IPPROTO_TCP, vip, (uint16_t[]){ 8304 }, 1);

		/* e3 serves 8303 alone: the flag is not set where nothing is
		 * shared */
		assert_int_equal(fe_flags(&own, vip, 8303, IPPROTO_TCP), 0);

		/* the new endpoints' first replies come from their frontends;
		 * 8304, once shared, may keep entering both at once */
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			int both = !!(fe_flags(&own, vip, 8304, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);

			struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43400, 8303),
					t = first_spec(families[f], IPPROTO_TCP, 43401, 8304), back;
			char ep[INET6_ADDRSTRLEN];

			pkt_context("%s IPv%u first replies", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&own), 0);
			dnat(&own, prog, &s, KS_V_NAT_NEW, ep);
			assert_true(same_addr(ep, e3[fi]));
			assert_int_equal(pkt_env_count_conns(&own), 1);
			dnat(&own, prog, &t, KS_V_NAT_NEW, ep);
			assert_true(same_addr(ep, e5[fi]));
			assert_int_equal(pkt_env_count_conns(&own), 2 + both);
			back = syn_ack(&s, e3[fi], 8080);
			reply(&own, prog, &back, vip, 8303);
			back = syn_ack(&t, e5[fi], 8080);
			reply(&own, prog, &back, vip, 8304);
			assert_int_equal(pkt_env_count_conns(&own), 4);
		}
	}
	pkt_env_close(&own);
}

/*
 * An endpoint left out of its service's ring while it keeps its flows, as
 * a draining (terminating) one is (program_svc() in user/lib/shifts.c
 * passes it as one of a backend's nr_draining: no new flows, and its flows
 * stay in the connection table, unflushed): a
 * flow steered to it just before, whose first reply had not come yet (a
 * SYN-ACK on its way, a UDP answer), is still its flow, and that reply
 * comes from the frontend, as it did when the first packet entered both
 * entries.
 */
#define PORT_DRAIN 8230
static const char *const drain_a[2] = { "198.18.2.95", "2001:2:0:2::95" };
static const char *const drain_b[2] = { "198.18.2.96", "2001:2:0:2::96" };

static void test_left_endpoint_first_reply(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f, p;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);
		const char *vip = pkt_addrs[fi].vip;
		struct pkt_backend both = { 100,
					    2,
					    { pkt_endpoint(drain_a[fi], PKT_EP_PORT),
					      pkt_endpoint(drain_b[fi], PKT_EP_PORT) } };
		uint32_t svc;

		assert_int_equal(pkt_env_service(&env, &both, 1, &svc), 0);
		assert_int_equal(pkt_env_frontend(&env, vip, PORT_DRAIN, IPPROTO_TCP, svc), 0);
		assert_int_equal(pkt_env_frontend(&env, vip, PORT_DRAIN, IPPROTO_UDP, svc), 0);
		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s = first_spec(families[f], protos[p], 43600,
							       PORT_DRAIN),
						back;
				struct pkt_backend left = { 100, 1, {}, 1 };

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    proto_name(protos[p]));
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				assert_int_equal(pkt_env_service_set(&env, svc, &both, 1), 0);
				dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
				left.eps[0] = pkt_endpoint(same_addr(ep, drain_a[fi]) ? drain_b[fi]
										      : drain_a[fi],
							   PKT_EP_PORT);
				left.eps[1] = pkt_endpoint(ep, PKT_EP_PORT); /* draining */
				assert_int_equal(pkt_env_service_set(&env, svc, &left, 1), 0);
				back = syn_ack(&s, ep, PKT_EP_PORT);
				reply(&env, prog, &back, vip, PORT_DRAIN);
				assert_int_equal(pkt_env_count_conns(&env), 2);
			}
		}
		assert_int_equal(pkt_env_service_set(&env, svc, &both, 1), 0);
	}
}

/*
 * ks_eprev full (it holds KS_MAX_ENDPOINTS endpoints, each protocol apart):
 * a frontend whose endpoint finds no room is marked KS_FE_REPLY_AT_ONCE,
 * and its flows enter both entries at once, their replies translated as
 * ever. The map is filled with made-up endpoints (port 1, UDP) straight.
 */
static void test_eprev_full(void **state)
{
	static const char *const ep_full[2] = { "198.18.2.97", "2001:2:0:2::97" };
	struct ks_dp_opts opts = { .pin_path = NULL };
	struct ks_eprev_key k;
	struct ks_eprev v;
	struct pkt_env own;
	uint32_t i, filled = 0;
	size_t f;
	int fd, prog;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&own, &opts), 0);
	fd = bpf_map__fd(own.dp.skel->maps.ks_eprev);
	memset(&v, 0, sizeof(v));
	for (i = 0; i < bpf_map__max_entries(own.dp.skel->maps.ks_eprev) + 1; i++) {
		memset(&k, 0, sizeof(k));
		k.addr.v4 = htonl(0xc6120000 | i); /* 198.18.0.0/15 */
		k.port = htons(1);
		k.family = KS_FAMILY_V4;
		k.proto = IPPROTO_UDP;
		if (bpf_map_update_elem(fd, &k, &v, BPF_NOEXIST))
			break;
		filled++;
	}
	assert_int_equal(filled, bpf_map__max_entries(own.dp.skel->maps.ks_eprev));

	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);
		const char *vip = pkt_addrs[fi].vip;
		struct pkt_backend b = { 100, 1, { pkt_endpoint(ep_full[fi], PKT_EP_PORT) } };
		uint32_t svc;

		pkt_context("IPv%u", families[f]);
		assert_int_equal(pkt_env_service(&own, &b, 1, &svc), 0);
		assert_int_equal(pkt_env_frontend(&own, vip, 8240, IPPROTO_TCP, svc), 0);
		assert_int_equal(get_eprev(&own, ep_full[fi], PKT_EP_PORT, IPPROTO_TCP, &v),
				 -ENOENT);
		assert_true(fe_flags(&own, vip, 8240, IPPROTO_TCP) & KS_FE_REPLY_AT_ONCE);
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43700, 8240), back;
			char ep[INET6_ADDRSTRLEN];

			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&own), 0);
			dnat(&own, prog, &s, KS_V_NAT_NEW, ep);
			assert_int_equal(pkt_env_count_conns(&own), 2);
			back = syn_ack(&s, ep, PKT_EP_PORT);
			reply(&own, prog, &back, vip, 8240);
		}
	}
	pkt_env_close(&own);
}

/* Runs in through e's egress program (XDP passing up: bpf/lib/egress.h). */
static void egress_run(struct pkt_env *e, const struct pkt *in, struct pkt_result *r)
{
	int saved = e->prog_fd[PKT_TC];

	e->prog_fd[PKT_TC] = bpf_program__fd(e->dp.skel->progs.ks_egress_tc);
	pkt_run(e, PKT_TC, in->data, in->len, r, false);
	e->prog_fd[PKT_TC] = saved;
	assert_int_equal(r->err, 0);
}

/*
 * XDP passing up (xdp_split): XDP rewrites a new flow's destination and
 * enters its forward entry only; the endpoint's first reply leaves through
 * the egress program with its source made the frontend's, whether XDP saw
 * it at ingress (and left its source alone) or not (an endpoint on this
 * node: its replies never cross XDP). A reply of no flow leaves untouched
 * and enters nothing.
 */
static void test_xdp_split_egress(void **state)
{
	struct ks_dp_opts opts = { .xdp_split = true };
	struct pkt_env split;
	size_t f, p;
	int seen;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&split, &opts), 0);
	assert_int_equal(add_solo(&split), 0);
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);

		for (p = 0; p < ARRAY_SIZE(protos); p++) {
			for (seen = 0; seen < 2; seen++) {
				struct pkt_spec s = first_spec(families[f], protos[p], 43500,
							       PORT_SOLO),
						back, stray;
				char ep[INET6_ADDRSTRLEN];
				struct snap before, after;
				struct pkt_result r;
				struct pkt in;

				pkt_context("XDP split IPv%u %s, reply %s", families[f],
					    proto_name(protos[p]),
					    seen ? "through XDP first" : "at egress only");
				assert_int_equal(pkt_env_flush_conns(&split), 0);
				dnat(&split, PKT_XDP, &s, KS_V_NAT_NEW, ep);
				assert_int_equal(pkt_env_count_conns(&split), 1);
				back = syn_ack(&s, ep, PKT_EP_PORT);
				if (seen) {
					run(&split, PKT_XDP, &back, PKT_PASS, KS_V_NAT_REPLY, &in,
					    &r);
					pkt_expect_untouched(&r, &in);
				} else {
					pkt_build(&back, &in);
				}
				egress_run(&split, &in, &r);
				assert_int_equal(r.retval, pkt_retval(PKT_TC, PKT_PASS));
				pkt_expect_nat(&r, &in, false, s.dst, PORT_SOLO);
				assert_int_equal(pkt_env_count_conns(&split), 2);

				/* the other endpoint, to the same client port */
				stray = syn_ack(&s, other_solo_ep(fi, ep), PKT_EP_PORT);
				pkt_build(&stray, &in);
				before = snap(&split, &stray);
				egress_run(&split, &in, &r);
				assert_int_equal(r.retval, pkt_retval(PKT_TC, PKT_PASS));
				pkt_expect_untouched(&r, &in);
				after = snap(&split, &stray);
				expect_same(&before, &after);
			}
		}
	}
	pkt_env_close(&split);
}

/*
 * A client's new connection from the port of one the endpoint refused, to
 * the same endpoint (hp has only one): the old flow's reply entry, closed
 * by the refusal, goes when the flow is steered again, so the new
 * handshake's refusal is held back (passive health) as the first one was,
 * not passed to the client as the old, closed flow's.
 */
static void test_reused_port_same_endpoint(void **state)
{
	char ep[INET6_ADDRSTRLEN], ep2[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt in;
	size_t f;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec s = first_spec(families[f], IPPROTO_TCP, 43700, PORT_HP), rst;

			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			dnat(&env, prog, &s, KS_V_NAT_NEW, ep);
			rst = from_ep(&s, ep, PKT_EP_PORT, 0x14);
			run(&env, prog, &rst, PKT_DROP, KS_V_DROP_REFUSED, &in, &r);
			s.seq = 7000; /* a new connect() */
			dnat(&env, prog, &s, KS_V_NAT_NEW, ep2);
			assert_string_equal(ep, ep2);
			rst = from_ep(&s, ep, PKT_EP_PORT, 0x14);
			run(&env, prog, &rst, PKT_DROP, KS_V_DROP_REFUSED, &in, &r);
		}
	}
}

static int setup(void **state)
{
	int fi, i;

	(void)state;
	if (pkt_suite_setup(&env, &topo) || add_solo(&env))
		return -1;
	for (fi = 0; fi < 2; fi++) {
		struct pkt_backend b = { 100, 1, { pkt_endpoint(ep_many[fi], EP_MANY_PORT) } };

		for (i = 0; i < NR_MANY; i++)
			if (pkt_env_service(&env, &b, 1, &many_svc[fi][i]) ||
			    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_MANY + i, IPPROTO_TCP,
					     many_svc[fi][i]))
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
		cmocka_unit_test(test_first_packet_one_entry),
		cmocka_unit_test(test_first_reply_translated),
		cmocka_unit_test(test_mid_stream_both_at_once),
		cmocka_unit_test(test_reply_without_flow),
		cmocka_unit_test(test_not_a_reply),
		cmocka_unit_test(test_table_full),
		cmocka_unit_test(test_icmp_half_open),
		cmocka_unit_test(test_endpoint_of_many),
		cmocka_unit_test(test_shared_half_open_clash),
		cmocka_unit_test(test_hairpin_both_at_once),
		cmocka_unit_test(test_eprev_upkeep),
		cmocka_unit_test(test_eprev_full),
		cmocka_unit_test(test_xdp_split_egress),
		cmocka_unit_test(test_left_endpoint_first_reply),
		cmocka_unit_test(test_reused_port_same_endpoint),
	};

	return cmocka_run_group_tests_name("pkt_firstreply", tests, setup, teardown);
}
