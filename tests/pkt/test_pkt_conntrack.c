// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of the connection table (issue #8), each in ks_xdp and in
 * ks_tc: a flow that ended is forgotten (a client reusing its port to reach
 * a pod directly is not rewritten as the frontend); an idle flow expires,
 * and then is absent to the datapath; a missing direction is rebuilt from
 * the other; a refresh never moves a finished flow's state back (a new SYN
 * from its port is a new flow); one client port to two frontends that
 * share an endpoint is refused, not translated as the wrong frontend; and
 * the garbage collector and the flushes of user/lib/conntrack.c delete
 * what they should, both directions together. Time is moved by ageing the
 * entries' stamps.
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

/* a frontend of its own for the collision test: one endpoint, EP_A */
#define PORT_CLASH 8100

static struct pkt_env env;
static struct pkt_topo topo;
static uint32_t clash_svc[2];

static const uint8_t families[] = { 4, 6 };

static struct pkt_spec tcp_spec(uint8_t family, uint16_t sport, uint16_t dport, uint8_t flags)
{
	const struct pkt_addrs *a = &pkt_addrs[pkt_fi(family)];

	return (struct pkt_spec){
		.family = family,
		.proto = IPPROTO_TCP,
		.src = a->client,
		.dst = a->vip,
		.sport = sport,
		.dport = dport,
		.seq = 1000,
		.ack = flags & 0x10 ? 1 : 0,
		.tcp_flags = flags,
	};
}

static struct pkt_spec udp_spec(uint8_t family, uint16_t sport, uint16_t dport)
{
	struct pkt_spec s = tcp_spec(family, sport, dport, 0);

	s.proto = IPPROTO_UDP;
	s.payload = 32;
	return s;
}

/* The same flow, the other way: from ep:ep_port to the client. */
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

/* Runs s; expects verdict; returns the output frame's view in r/v. */
static void run(enum pkt_prog prog, const struct pkt_spec *s, enum ks_verdict verdict,
		struct pkt *in, struct pkt_result *r)
{
	pkt_build(s, in);
	pkt_run(&env, prog, in->data, in->len, r, true);
	pkt_expect(r, prog, verdict == KS_V_DROP_CT_CLASH ? PKT_DROP : PKT_PASS, verdict);
}

/* Runs s, a client's packet to a frontend, expecting verdict and a DNAT;
 * the endpoint it went to, into ep. */
static void dnat(enum pkt_prog prog, const struct pkt_spec *s, enum ks_verdict verdict, char *ep)
{
	struct pkt_result r;
	struct pkt_view v;
	struct pkt in;

	run(prog, s, verdict, &in, &r);
	pkt_expect_valid(&r, &v);
	pkt_ntop(r.out, &v, true, ep);
	pkt_expect_nat(&r, &in, true, ep, pkt_port(r.out, &v, true));
}

/* Runs s, expecting it through untouched with verdict. */
static void untouched(enum pkt_prog prog, const struct pkt_spec *s, enum ks_verdict verdict)
{
	struct pkt_result r;
	struct pkt in;

	run(prog, s, verdict, &in, &r);
	pkt_expect_untouched(&r, &in);
}

/* Runs s, an endpoint's reply, expecting its source rewritten to fe:port. */
static void reply(enum pkt_prog prog, const struct pkt_spec *s, const char *fe, uint16_t port)
{
	struct pkt_result r;
	struct pkt in;

	run(prog, s, KS_V_NAT_REPLY, &in, &r);
	pkt_expect_nat(&r, &in, false, fe, port);
}

static bool same_addr(const char *x, const char *y)
{
	uint8_t fx, fy;
	struct ks_addr ax = pkt_addr(x, &fx), ay = pkt_addr(y, &fy);

	return fx == fy && !memcmp(&ax, &ay, sizeof(ax));
}

/*
 * Issue #8, 1: a flow through the frontend from client port P ends with a
 * RST (or FIN both ways); the client then opens a connection from P
 * straight to the endpoint. Neither its SYN nor the endpoint's SYN-ACK is
 * the old flow's: both pass untouched (the SYN-ACK was rewritten to come
 * from the frontend, and the connection failed), and so does the rest of
 * that connection (the endpoint's packets after its SYN-ACK were).
 */
static void test_ended_flow_forgotten(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog, how;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (how = 0; how < 2; how++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec syn = tcp_spec(families[f], 41003, PKT_PORT_MAIN,
							       0x02),
						seg, direct, back;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    how ? "FIN" : "RST");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(prog, &syn, KS_V_NAT_NEW, ep);
				back = from_ep(&syn, ep, PKT_EP_PORT, 0x12);
				reply(prog, &back, syn.dst, PKT_PORT_MAIN);
				seg = syn;
				seg.seq++;
				seg.tcp_flags = how ? 0x11 : 0x14; /* FIN ACK, RST ACK */
				dnat(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
				if (how) {
					back = from_ep(&syn, ep, PKT_EP_PORT, 0x11);
					reply(prog, &back, syn.dst, PKT_PORT_MAIN);
				}

				direct = syn;
				direct.dst = ep;
				direct.dport = PKT_EP_PORT;
				direct.seq = 123456;
				untouched(prog, &direct, KS_V_PASS_NO_MATCH);
				back = from_ep(&direct, ep, PKT_EP_PORT, 0x12);
				untouched(prog, &back, KS_V_PASS_NO_MATCH);
				/* ... nor the rest of it, both ways, its reset too
				 * (the endpoint's ACK came from the frontend) */
				direct.tcp_flags = 0x10;
				direct.seq++;
				untouched(prog, &direct, KS_V_PASS_NO_MATCH);
				back = from_ep(&direct, ep, PKT_EP_PORT, 0x18);
				untouched(prog, &back, KS_V_PASS_NO_MATCH);
				back = from_ep(&direct, ep, PKT_EP_PORT, 0x14);
				untouched(prog, &back, KS_V_PASS_NO_MATCH);
			}
		}
	}
}

/* Sets the state of the entry at the key of s. */
static void set_state(const struct pkt_spec *s, uint8_t st)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_conns);
	struct ks_flow k = pkt_flow_key(s);
	struct ks_conn c;

	assert_int_equal(bpf_map_lookup_elem(fd, &k, &c), 0);
	c.state = st;
	assert_int_equal(bpf_map_update_elem(fd, &k, &c, BPF_EXIST), 0);
}

static uint8_t get_state(const struct pkt_spec *s)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_conns);
	struct ks_flow k = pkt_flow_key(s);
	struct ks_conn c;

	assert_int_equal(bpf_map_lookup_elem(fd, &k, &c), 0);
	return c.state;
}

/*
 * A flow's state never goes back. A flow is closed with FINs both ways,
 * while on another CPU an ACK of the flow, read as ESTABLISHED before the
 * endpoint's FIN, writes ESTABLISHED onto the reply entry after it (here:
 * the test puts the reply entry back as that late write did before the
 * fix). The endpoint's next packet, a refresh a second later (how 0) or on
 * a CPU whose clock is a tick behind the entry's stamp (how 1), must not
 * copy that onto the forward entry: the client's next SYN from the same
 * port, a new connect(), is a new flow (steered again), not a HIT on an
 * established one that keeps the old endpoint.
 */
static void test_state_never_back(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	int prog, how;
	size_t f;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (how = 0; how < 2; how++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec syn = tcp_spec(families[f], 41040, PKT_PORT_MAIN,
							       0x02),
						seg, back;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    how ? "clock a tick behind" : "refresh");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(prog, &syn, KS_V_NAT_NEW, ep);
				back = from_ep(&syn, ep, PKT_EP_PORT, 0x12);
				reply(prog, &back, syn.dst, PKT_PORT_MAIN);
				seg = syn;
				seg.seq++;
				seg.tcp_flags = 0x10; /* ACK */
				dnat(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
				back.tcp_flags = 0x11; /* the endpoint's FIN */
				reply(prog, &back, syn.dst, PKT_PORT_MAIN);
				seg.tcp_flags = 0x11; /* the client's FIN */
				dnat(prog, &seg, KS_V_NAT_ESTABLISHED, ep);
				assert_int_equal(get_state(&seg), KS_CT_CLOSING);
				assert_int_equal(get_state(&back), KS_CT_CLOSING);

				/* the racing ACK's late write to the reply entry */
				set_state(&back, KS_CT_ESTABLISHED);
				/* a second on, or the stamps a tick (4 ms) ahead */
				pkt_env_age_conns(&env, how ? (uint64_t)-4000000 : 2 * KS_CT_TOUCH_NS);
				/* the endpoint's last ACK */
				back.tcp_flags = 0x10;
				reply(prog, &back, syn.dst, PKT_PORT_MAIN);
				assert_int_equal(get_state(&seg), KS_CT_CLOSING);

				/* a new connect() from the port: a new flow */
				syn.seq = 777777;
				dnat(prog, &syn, KS_V_NAT_NEW, ep);
			}
		}
	}
}

/* An idle flow past its timeout is absent: its reply passes untouched and
 * its next packet to the frontend is a new flow. */
static void test_idle_flow_expires(void **state)
{
	char ep[INET6_ADDRSTRLEN], ep2[INET6_ADDRSTRLEN];
	size_t f;
	int prog, tcp;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (tcp = 0; tcp < 2; tcp++) {
			for (prog = 0; prog < PKT_NR_PROGS; prog++) {
				struct pkt_spec s = tcp ? tcp_spec(families[f], 41010,
								   PKT_PORT_MAIN, 0x10)
							: udp_spec(families[f], 41010,
								   PKT_PORT_MAIN),
						back;
				uint64_t timeout = tcp ? KS_CT_TIMEOUT_ESTABLISHED
						       : KS_CT_TIMEOUT_UDP;

				pkt_context("%s IPv%u %s", pkt_prog_name(prog), families[f],
					    tcp ? "TCP" : "UDP");
				assert_int_equal(pkt_env_flush_conns(&env), 0);
				dnat(prog, &s, KS_V_NAT_NEW, ep);
				pkt_env_age_conns(&env, timeout - 2 * KS_NS_PER_SEC);
				dnat(prog, &s, KS_V_NAT_ESTABLISHED, ep2);
				assert_string_equal(ep, ep2);
				back = from_ep(&s, ep, PKT_EP_PORT, 0x10);
				reply(prog, &back, s.dst, PKT_PORT_MAIN);
				/* the packets refreshed the flow: it lives on */
				pkt_env_age_conns(&env, timeout - 2 * KS_NS_PER_SEC);
				reply(prog, &back, s.dst, PKT_PORT_MAIN);

				pkt_env_age_conns(&env, timeout + 2 * KS_NS_PER_SEC);
				untouched(prog, &back, KS_V_PASS_NO_MATCH);
				dnat(prog, &s, KS_V_NAT_NEW, ep2);
				assert_string_equal(ep, ep2);
				reply(prog, &back, s.dst, PKT_PORT_MAIN);
			}
		}
	}
}

/* A half-open flow expires sooner than an established one. */
static void test_half_open_expires(void **state)
{
	struct pkt_spec syn = tcp_spec(4, 41020, PKT_PORT_MAIN, 0x02), back;
	char ep[INET6_ADDRSTRLEN];
	int prog;

	(void)state;
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		dnat(prog, &syn, KS_V_NAT_NEW, ep);
		pkt_env_age_conns(&env, KS_CT_TIMEOUT_SYN_SENT + 2 * KS_NS_PER_SEC);
		back = from_ep(&syn, ep, PKT_EP_PORT, 0x12);
		untouched(prog, &back, KS_V_PASS_NO_MATCH);
	}
}

/* Issue #8, 2: the reply entry of a flow is lost; the next reply makes it
 * again from the forward entry (ks_eprev leads there), and so does the
 * flow's next packet (after KS_CT_TOUCH_NS). The reverse too: a reply
 * rebuilds the forward entry. */
static void test_lost_direction_rebuilt(void **state)
{
	int fd = bpf_map__fd(env.dp.skel->maps.ks_conns);
	char ep[INET6_ADDRSTRLEN], ep2[INET6_ADDRSTRLEN];
	size_t f;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec s = udp_spec(families[f], 41030, PKT_PORT_MAIN), back;
			struct ks_flow k;

			assert_int_equal(pkt_env_flush_conns(&env), 0);
			dnat(prog, &s, KS_V_NAT_NEW, ep);
			back = from_ep(&s, ep, PKT_EP_PORT, 0);
			reply(prog, &back, s.dst, PKT_PORT_MAIN);
			k = pkt_flow_key(&back);
			assert_int_equal(bpf_map_delete_elem(fd, &k), 0);
			reply(prog, &back, s.dst, PKT_PORT_MAIN);
			assert_int_equal(bpf_map_delete_elem(fd, &k), 0);
			pkt_env_age_conns(&env, 2 * KS_CT_TOUCH_NS);
			dnat(prog, &s, KS_V_NAT_ESTABLISHED, ep2);
			assert_string_equal(ep, ep2);
			reply(prog, &back, s.dst, PKT_PORT_MAIN);

			k = pkt_flow_key(&s);
			assert_int_equal(bpf_map_delete_elem(fd, &k), 0);
			pkt_env_age_conns(&env, 2 * KS_CT_TOUCH_NS);
			reply(prog, &back, s.dst, PKT_PORT_MAIN);
			dnat(prog, &s, KS_V_NAT_ESTABLISHED, ep2);
			assert_string_equal(ep, ep2);
			assert_int_equal(pkt_env_count_conns(&env), 2);
		}
	}
}

/*
 * Issue #8, 6: one client port to two frontends that share an endpoint
 * (shift on VIP:8001, stable 100, and clash on VIP:8100, both EP_A:8080):
 * the two flows would have one reply tuple. The second is refused
 * (counted), and the first's replies still come from its own frontend.
 * Once the first has ended, the second may go.
 */
static void test_reply_tuple_clash(void **state)
{
	char ep[INET6_ADDRSTRLEN];
	size_t f;
	int prog;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);
		const struct pkt_addrs *a = &pkt_addrs[fi];

		assert_int_equal(pkt_env_shift(&env, &topo, fi, 100, 0), 0);
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			struct pkt_spec one = tcp_spec(families[f], 41040, PKT_PORT_SHIFT, 0x02);
			struct pkt_spec two = tcp_spec(families[f], 41040, PORT_CLASH, 0x02);
			struct pkt_spec back = from_ep(&one, a->ep_a, PKT_EP_PORT, 0x12), rst;
			struct pkt_result r;
			struct pkt in;

			pkt_context("%s IPv%u", pkt_prog_name(prog), families[f]);
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			dnat(prog, &one, KS_V_NAT_NEW, ep);
			assert_true(same_addr(ep, a->ep_a));
			reply(prog, &back, a->vip, PKT_PORT_SHIFT);
			run(prog, &two, KS_V_DROP_CT_CLASH, &in, &r);
			back.tcp_flags = 0x10;
			reply(prog, &back, a->vip, PKT_PORT_SHIFT);

			rst = one;
			rst.tcp_flags = 0x14;
			rst.seq++;
			dnat(prog, &rst, KS_V_NAT_ESTABLISHED, ep);
			dnat(prog, &two, KS_V_NAT_NEW, ep);
			back.tcp_flags = 0x12;
			reply(prog, &back, a->vip, PORT_CLASH);
		}
	}
}

struct lister {
	int flows;
	struct ks_ct_flow last;
};

static int list_cb(const struct ks_ct_flow *flow, void *arg)
{
	struct lister *l = arg;

	l->flows++;
	l->last = *flow;
	return 0;
}

/* The collector deletes expired flows, both entries, and nothing else; the
 * listing shows what is there. */
static void test_gc(void **state)
{
	/* the DNS service: its endpoint serves no other frontend */
	struct pkt_spec live = udp_spec(4, 41050, PKT_PORT_SINGLE),
			old = udp_spec(6, 41051, PKT_PORT_SINGLE);
	struct ks_ct_gc_stats st = {};
	char ep[INET6_ADDRSTRLEN];
	struct ks_ct_gc gc = {};
	struct lister l = {};
	uint64_t now;

	(void)state;
	assert_int_equal(pkt_env_flush_conns(&env), 0);
	dnat(PKT_XDP, &old, KS_V_NAT_NEW, ep);
	pkt_env_age_conns(&env, KS_CT_TIMEOUT_UDP + 5 * KS_NS_PER_SEC);
	dnat(PKT_XDP, &live, KS_V_NAT_NEW, ep);
	/* a flow's first packet enters its forward entry only */
	assert_int_equal(pkt_env_count_conns(&env), 2);

	now = ks_ct_now();
	assert_int_equal(ks_ct_list(&env.dp, UINT32_MAX, now, list_cb, &l), 0);
	assert_int_equal(l.flows, 2);
	assert_int_equal(ks_ct_gc(&env.dp, &gc, now, &st), 0);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.live, 1);
	assert_int_equal(st.passes, 1);
	assert_int_equal(pkt_env_count_conns(&env), 1);

	memset(&l, 0, sizeof(l));
	assert_int_equal(ks_ct_list(&env.dp, topo.single[0], now, list_cb, &l), 0);
	assert_int_equal(l.flows, 1);
	assert_int_equal(l.last.client_port, 41050);
	assert_int_equal(l.last.frontend_port, PKT_PORT_SINGLE);
	assert_int_equal(l.last.endpoint_port, PKT_EP_DNS_PORT);
	assert_int_equal(l.last.state, KS_CT_UDP);
	assert_false(l.last.expired);
	assert_string_equal(ks_ct_state_name(l.last.state), "udp");

	/* far enough ahead, everything is gone, in small steps too */
	{
		struct ks_ct_gc gc = {};
		int ret, steps = 0;

		memset(&st, 0, sizeof(st));
		while (!(ret = ks_ct_gc_step(&env.dp, &gc, now + KS_CT_TIMEOUT_ESTABLISHED * 2, 1,
					     &st)))
			steps++;
		assert_int_equal(ret, 1);
		assert_int_equal(st.expired, 1);
	}
	assert_int_equal(pkt_env_count_conns(&env), 0);
}

/*
 * Issue #8, 1, UDP: a client with a fixed source port keeps its endpoint;
 * when that endpoint is removed (flushed by the daemon), its next datagram
 * goes to the endpoint that is left at once; when the service is deleted,
 * its flows are gone too; a flush of a set of services takes only theirs.
 */
static void test_flush_endpoint_and_svc(void **state)
{
	char ep[INET6_ADDRSTRLEN], ep2[INET6_ADDRSTRLEN];
	size_t f;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(families); f++) {
		int fi = pkt_fi(families[f]);
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_spec s = udp_spec(families[f], 41060, PKT_PORT_MAIN);
		struct pkt_backend both = { 100, 2,
					    { pkt_endpoint(a->ep_a, PKT_EP_PORT),
					      pkt_endpoint(a->ep_b, PKT_EP_PORT) } };
		struct pkt_backend left = { 100, 1, {} };
		struct ks_index svcs = {};
		struct ks_endpoint gone;

		assert_int_equal(pkt_env_flush_conns(&env), 0);
		dnat(PKT_TC, &s, KS_V_NAT_NEW, ep);
		gone = pkt_endpoint(ep, PKT_EP_PORT);
		left.eps[0] = pkt_endpoint(strcmp(ep, a->ep_a) ? a->ep_a : a->ep_b, PKT_EP_PORT);
		assert_int_equal(pkt_env_service_set(&env, topo.main[fi], &left, 1), 0);
		/* removed but not flushed: the flow stays (as for draining) */
		dnat(PKT_TC, &s, KS_V_NAT_ESTABLISHED, ep2);
		assert_string_equal(ep, ep2);
		/* another service's flush of that endpoint changes nothing */
		assert_int_equal(ks_ct_flush_endpoint(&env.dp, topo.shift[fi], &gone), 0);
		assert_int_equal(ks_ct_flush_endpoint(&env.dp, topo.main[fi], &gone), 1);
		assert_int_equal(pkt_env_count_conns(&env), 0);
		dnat(PKT_TC, &s, KS_V_NAT_NEW, ep2);
		assert_string_not_equal(ep, ep2);

		assert_int_equal(ks_ct_flush_svc(&env.dp, topo.main[fi]), 1);
		assert_int_equal(pkt_env_count_conns(&env), 0);
		assert_int_equal(pkt_env_service_set(&env, topo.main[fi], &both, 1), 0);

		/* a set of services (kshiftctl conns NAME --flush): only theirs */
		dnat(PKT_TC, &s, KS_V_NAT_NEW, ep);
		assert_int_equal(ks_index_put(&svcs, &topo.shift[fi], sizeof(uint32_t), &svcs), 0);
		assert_int_equal(ks_ct_flush_svcs(&env.dp, &svcs), 0);
		assert_int_not_equal(pkt_env_count_conns(&env), 0);
		assert_int_equal(ks_index_put(&svcs, &topo.main[fi], sizeof(uint32_t), &svcs), 0);
		assert_int_equal(ks_ct_flush_svcs(&env.dp, &svcs), 1);
		assert_int_equal(pkt_env_count_conns(&env), 0);
		ks_index_destroy(&svcs);
	}
}

/*
 * A table of 16 flows, 32 entries: a half-open flow takes one, so the 33rd
 * SYN is dropped (counted), and no flow in it is evicted for it. A SYN
 * flood fills it with half-open flows; the collector, seeing the table
 * nearly full, collects those idle for 5 s without waiting for their 60 s
 * timeout, and new flows go again.
 */
static void test_table_full(void **state)
{
	struct ks_dp_opts opts = { .max_flows = 16 };
	struct ks_ct_gc_stats st = {};
	struct ks_ct_gc gc = {};
	struct pkt_env small;
	struct pkt_topo t;
	char ep[INET6_ADDRSTRLEN];
	struct pkt_result r;
	struct pkt in;
	int i;

	(void)state;
	assert_int_equal(pkt_env_open_opts(&small, &opts), 0);
	assert_int_equal(pkt_env_topo(&small, &t), 0);
	for (i = 0; i <= 32; i++) {
		struct pkt_spec s = tcp_spec(4, 48000 + i, PKT_PORT_MAIN, 0x02);

		s.dst = pkt_addrs[0].vip2; /* its endpoints serve no other frontend */
		pkt_build(&s, &in);
		pkt_run(&small, PKT_XDP, in.data, in.len, &r, true);
		if (i < 32)
			pkt_expect(&r, PKT_XDP, PKT_PASS, KS_V_NAT_NEW);
		else
			pkt_expect(&r, PKT_XDP, PKT_DROP, KS_V_DROP_CT_FULL);
	}
	/* the first flow completes its handshake, and is still there */
	{
		struct pkt_spec s = tcp_spec(4, 48000, PKT_PORT_MAIN, 0x10);

		s.dst = pkt_addrs[0].vip2;
		pkt_build(&s, &in);
		pkt_run(&small, PKT_XDP, in.data, in.len, &r, true);
		pkt_expect(&r, PKT_XDP, PKT_PASS, KS_V_NAT_ESTABLISHED);
	}

	/* a pass finds nothing expired, and the table full */
	assert_int_equal(ks_ct_gc(&small.dp, &gc, ks_ct_now(), &st), 0);
	assert_int_equal(st.expired, 0);
	assert_true(gc.pressure);
	/* 10 s on: the half-open flows go, the established one stays */
	assert_int_equal(ks_ct_gc(&small.dp, &gc, ks_ct_now() + 10 * KS_NS_PER_SEC, &st), 0);
	assert_int_equal(st.expired, 31);
	assert_int_equal(st.early, 31);
	assert_int_equal(st.live, 1);
	assert_false(gc.pressure);
	{
		struct pkt_spec s = tcp_spec(4, 48032, PKT_PORT_MAIN, 0x02);

		s.dst = pkt_addrs[0].vip2;
		pkt_build(&s, &in);
		pkt_run(&small, PKT_XDP, in.data, in.len, &r, true);
		pkt_expect(&r, PKT_XDP, PKT_PASS, KS_V_NAT_NEW);
	}
	(void)ep;
	pkt_env_close(&small);
}

static int setup(void **state)
{
	int fi;

	(void)state;
	if (pkt_suite_setup(&env, &topo))
		return -1;
	for (fi = 0; fi < 2; fi++) {
		struct pkt_backend b = { 100, 1, { pkt_endpoint(pkt_addrs[fi].ep_a, PKT_EP_PORT) } };

		if (pkt_env_service(&env, &b, 1, &clash_svc[fi]) ||
		    pkt_env_frontend(&env, pkt_addrs[fi].vip, PORT_CLASH, IPPROTO_TCP,
				     clash_svc[fi]))
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
		cmocka_unit_test(test_ended_flow_forgotten),
		cmocka_unit_test(test_idle_flow_expires),
		cmocka_unit_test(test_half_open_expires),
		cmocka_unit_test(test_lost_direction_rebuilt),
		cmocka_unit_test(test_state_never_back),
		cmocka_unit_test(test_reply_tuple_clash),
		cmocka_unit_test(test_gc),
		cmocka_unit_test(test_flush_endpoint_and_svc),
		cmocka_unit_test(test_table_full),
	};

	return cmocka_run_group_tests_name("pkt_conntrack", tests, setup, teardown);
}
