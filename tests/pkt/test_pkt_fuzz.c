// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * A packet fuzzer through BPF_PROG_TEST_RUN (issue #7): random frames, and
 * frames mutated from well-formed ones (truncated, bytes flipped, lengths,
 * IHL and data offsets overwritten, IP options, VLAN tags, fragments, ICMP
 * errors quoting live flows, TCP options), through ks_xdp and ks_tc with
 * the standard services (pktbuild.h) and a few flows open. What must hold
 * for every frame:
 *   - a frame that is neither for a frontend address, nor from an endpoint
 *     (a reply), nor an ICMP error (which may quote a flow) is passed, byte
 *     for byte;
 *   - a frame that comes out rewritten was for a frontend and now goes to
 *     an endpoint, or came from an endpoint and now comes from a frontend,
 *     with the other address as it was; and if the frame was valid, the
 *     output is too (IP and L4 checksums, lengths), and an IPv4 header
 *     checksum that was right stays right.
 *   test_pkt_fuzz [COUNT]   frames (default 100000; make fuzz: 1000000)
 * The seed is printed; PKT_FUZZ_SEED=N replays a run.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "pktbuild.h"

static struct pkt_env env;
static struct pkt_topo topo;
static unsigned long count = 100000;
static uint64_t seed;
static uint64_t rng;

/* The addresses a rewrite may involve, per family. */
static struct ks_addr vips[2][2], eps[2][6];

struct stats {
	unsigned long runs, refused, untouched, rewritten, dropped, tx, invalid_in;
};

static uint64_t rnd(void)
{
	/* xorshift64*: fast, and the same run from the same seed */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint32_t below(uint32_t n)
{
	return n ? (uint32_t)(rnd() % n) : 0;
}

static bool chance(unsigned int percent)
{
	return below(100) < percent;
}

static const char *pick_addr(int fi)
{
	const struct pkt_addrs *a = &pkt_addrs[fi];
	const char *const all[] = { a->client, a->vip,	a->vip2,   a->other, a->ep_a,
				    a->ep_b,   a->ep_c, a->ep_dns, a->ep_90, a->ep_10 };

	return all[below(sizeof(all) / sizeof(all[0]))];
}

static uint16_t pick_port(void)
{
	static const uint16_t ports[] = { PKT_PORT_MAIN,    PKT_PORT_SINGLE, PKT_PORT_SHIFT,
					  PKT_PORT_WEIGHT0, PKT_PORT_NOEPS,  PKT_EP_PORT,
					  PKT_EP_DNS_PORT,  40001,	     40002 };

	return chance(80) ? ports[below(sizeof(ports) / sizeof(ports[0]))] : (uint16_t)rnd();
}

/* A well-formed frame of random shape. */
static void random_spec(struct pkt *p)
{
	static const uint8_t protos[] = {
		IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_SCTP, 0
	};
	struct pkt_spec s = {};
	int fi = below(2);

	s.family = fi ? 6 : 4;
	s.proto = protos[below(sizeof(protos))];
	if (s.proto == IPPROTO_ICMP && fi)
		s.proto = IPPROTO_ICMPV6;
	if (!s.proto)
		s.proto = (uint8_t)rnd();
	s.src = pick_addr(fi);
	s.dst = pick_addr(fi);
	s.sport = pick_port();
	s.dport = pick_port();
	s.tcp_flags = chance(50) ? 0x02 : (uint8_t)rnd();
	s.seq = (uint32_t)rnd();
	s.ack = (uint32_t)rnd();
	s.tcp_opts = chance(30) ? 4 * below(11) : 0;
	s.ip_opts = !fi && chance(20) ? 4 * below(11) : 0;
	if (chance(10)) {
		s.vlan = true;
		s.vlan_tci = (uint16_t)rnd();
		s.vlan_proto = chance(30) ? 0x88a8 : 0;
	}
	if (chance(8)) {
		if (fi) {
			s.v6_frag = true;
			s.v6_frag_off = (uint16_t)rnd() & 0xfff9;
		} else {
			s.frag = (uint16_t)rnd() & 0x3fff;
		}
	}
	if (fi && chance(10)) {
		s.v6_hbh = true;
		s.v6_hbh_len = below(4);
	}
	s.v6_flow = chance(10) ? (uint32_t)rnd() : 0;
	s.payload = chance(50) ? below(64) : below(600);
	s.udp_no_csum = !fi && s.proto == IPPROTO_UDP && chance(10);
	s.pad = chance(10) ? below(16) : 0;
	pkt_build(&s, p);
}

/* An ICMP or ICMPv6 error quoting q's datagram, whole or cut, between
 * random addresses. */
static void icmp_error(const struct pkt *q, struct pkt *out)
{
	int fi = q->data[q->l3_off] >> 4 == 6;
	size_t qlen = q->len - q->pad - q->l3_off, hlen = fi ? 40 : 20, quote = qlen;
	uint8_t type = fi ? 1 + below(4) : chance(80) ? 3 : 11, code = below(5);
	const char *src = pick_addr(fi), *dst = pick_addr(fi);

	if (chance(50) && qlen > hlen + 8)
		quote = hlen + 8 + below(qlen - hlen - 8);
	if (q->l3_off + hlen + 8 + quote > PKT_MAX)
		quote = PKT_MAX - q->l3_off - hlen - 8;
	pkt_build_icmp_error(fi ? 6 : 4, type, code, src, dst, q, quote, out);
}

/* Damage of the kinds a parser trips on. */
static void mutate(struct pkt *p)
{
	size_t l3 = p->l3_off, l4 = p->l4_off, i, n = 1 + below(3);

	for (i = 0; i < n; i++) {
		switch (below(9)) {
		case 0: /* truncated, anywhere */
			p->len = below(p->len + 1);
			break;
		case 1: /* a byte flipped */
			if (p->len)
				p->data[below(p->len)] ^= 1 << below(8);
			break;
		case 2: /* a random byte in the headers */
			if (l4 + 20 < PKT_MAX)
				p->data[below(l4 + 20)] = (uint8_t)rnd();
			break;
		case 3: /* IPv4 total length or IPv6 payload length */
			pkt_put16(p->data + l3 + (p->data[l3] >> 4 == 6 ? 4 : 2),
				  chance(50) ? (uint16_t)rnd()
					     : (uint16_t)(p->len - l3 + below(9) - 4));
			break;
		case 4: /* IHL, or IPv6 next header */
			if (p->data[l3] >> 4 == 6)
				p->data[l3 + 6] = (uint8_t)rnd();
			else
				p->data[l3] = 0x40 | below(16);
			break;
		case 5: /* TCP data offset, or UDP length */
			if (l4 + 14 < PKT_MAX) {
				p->data[l4 + 12] = (uint8_t)(below(16) << 4);
				pkt_put16(p->data + l4 + 4, (uint16_t)below(p->len + 8));
			}
			break;
		case 6: /* frame grown with junk */
			while (p->len < PKT_MAX - 64 && chance(60))
				p->data[p->len++] = (uint8_t)rnd();
			break;
		case 7: /* fragment bits */
			if (p->data[l3] >> 4 == 4)
				pkt_put16(p->data + l3 + 6, (uint16_t)rnd());
			break;
		default: /* EtherType */
			pkt_put16(p->data + 12, chance(50) ? 0x8100 : (uint16_t)rnd());
			break;
		}
	}
}

/* What a frame says of itself, read as leniently as a glance can: its IP
 * family (0: none), addresses and first next header. */
struct glance {
	int family;
	const uint8_t *src, *dst;
	uint8_t proto;
	size_t l3;
};

static void glance(const uint8_t *d, size_t len, struct glance *g)
{
	uint16_t type;

	memset(g, 0, sizeof(*g));
	if (len < 14)
		return;
	g->l3 = 14;
	type = pkt_get16(d + 12);
	if ((type == 0x8100 || type == 0x88a8) && len >= 18) {
		type = pkt_get16(d + 16);
		g->l3 = 18;
	}
	if (type == ETH_P_IP && len >= g->l3 + 20) {
		g->family = 4;
		g->src = d + g->l3 + 12;
		g->dst = d + g->l3 + 16;
		g->proto = d[g->l3 + 9];
	} else if (type == ETH_P_IPV6 && len >= g->l3 + 40) {
		g->family = 6;
		g->src = d + g->l3 + 8;
		g->dst = d + g->l3 + 24;
		g->proto = d[g->l3 + 6];
	}
}

static bool one_of(const struct glance *g, const uint8_t *a, const struct ks_addr *set, size_t n)
{
	size_t i, len = g->family == 4 ? 4 : 16;

	for (i = 0; i < n; i++)
		if (!memcmp(a, set[i].bytes, len))
			return true;
	return false;
}

static bool is_vip(const struct glance *g, const uint8_t *a)
{
	return one_of(g, a, vips[g->family == 6], 2);
}

static bool is_ep(const struct glance *g, const uint8_t *a)
{
	return one_of(g, a, eps[g->family == 6], 6);
}

/* A frame kshift may rewrite: for a frontend address, from an endpoint, or
 * an ICMP error (which may quote a flow; IPv6 extension headers may hide
 * one too). */
static bool concerned(const struct glance *g)
{
	if (!g->family)
		return false;
	if (is_vip(g, g->dst) || is_ep(g, g->src))
		return true;
	if (g->family == 4)
		return g->proto == IPPROTO_ICMP;
	return g->proto != IPPROTO_TCP && g->proto != IPPROTO_UDP;
}

static bool ipv4_header_ok(const uint8_t *d, size_t len, const struct glance *g)
{
	size_t hlen = (size_t)(d[g->l3] & 0xf) * 4;

	return g->family == 4 && hlen >= 20 && g->l3 + hlen <= len &&
	       pkt_sum16(d + g->l3, hlen, 0) == 0xffff;
}

static void fail_frame(const char *what, const struct pkt *in, const struct pkt_result *r,
		       enum pkt_prog prog, unsigned long n)
{
	pkt_dump("input", in->data, in->len);
	pkt_dump("output", r->out, r->len);
	fail_msg("frame %lu (seed %llu) through %s, returned %u: %s", n, (unsigned long long)seed,
		 pkt_prog_name(prog), r->retval, what);
}

/* The promises above, for one frame and its result. */
static void judge(const struct pkt *in, const struct pkt_result *r, enum pkt_prog prog,
		  unsigned long n, struct stats *st)
{
	struct glance gi, go;
	struct pkt_view vi, vo;
	char why[128];
	bool changed, valid_in;

	if (pkt_refused(r, prog, in->data, in->len)) {
		st->refused++;
		return;
	}
	if (r->err)
		fail_frame("test run failed", in, r, prog, n);
	glance(in->data, in->len, &gi);
	if (r->retval == pkt_retval(prog, PKT_DROP)) {
		st->dropped++;
		if (!concerned(&gi))
			fail_frame("a frame for no frontend was dropped", in, r, prog, n);
		return;
	}
	changed = r->len != in->len || memcmp(r->out, in->data, in->len);
	if (r->retval == pkt_retval(prog, PKT_TX)) {
		st->tx++;
		if (!concerned(&gi))
			fail_frame("a frame for no frontend was answered", in, r, prog, n);
		return;
	}
	if (r->retval != pkt_retval(prog, PKT_PASS))
		fail_frame("unexpected return code", in, r, prog, n);
	if (!changed) {
		st->untouched++;
		return;
	}
	st->rewritten++;
	if (!concerned(&gi))
		fail_frame("a frame for no frontend was changed", in, r, prog, n);
	glance(r->out, r->len, &go);
	if (go.family != gi.family || r->len != in->len)
		fail_frame("rewritten into another shape", in, r, prog, n);
	/* an ICMP error's own addresses are not the flow's: checksums only */
	if (!(gi.family == 4 ? gi.proto == IPPROTO_ICMP : gi.proto == IPPROTO_ICMPV6)) {
		size_t alen = gi.family == 4 ? 4 : 16;
		bool dnat = memcmp(gi.dst, go.dst, alen), snat = memcmp(gi.src, go.src, alen);
		/* hairpin (bpf/lib/hairpin.h): an endpoint steered to itself
		 * sends from the hairpin address (the default, here) */
		static const uint8_t hp4[4] = { 169, 254, 42, 1 },
				     hp6[16] = { 0xfd, 0, 0xa9, 0xfe, 0x2a, 0x01, [15] = 1 };
		bool hairpin = dnat && snat && !memcmp(go.dst, gi.src, alen) &&
			       !memcmp(go.src, gi.family == 4 ? hp4 : hp6, alen);

		if (dnat && (!is_vip(&gi, gi.dst) || !is_ep(&go, go.dst)))
			fail_frame("destination rewritten, not from a frontend to an endpoint", in,
				   r, prog, n);
		if (snat && !hairpin && (!is_ep(&gi, gi.src) || !is_vip(&go, go.src)))
			fail_frame("source rewritten, not from an endpoint to a frontend", in, r,
				   prog, n);
		if (dnat && snat && !hairpin)
			fail_frame("both addresses rewritten", in, r, prog, n);
	}
	if (ipv4_header_ok(in->data, in->len, &gi) && !ipv4_header_ok(r->out, r->len, &go))
		fail_frame("the IPv4 header checksum was right, and is wrong", in, r, prog, n);
	valid_in = pkt_check(in->data, in->len, &vi, why, sizeof(why));
	if (!valid_in) {
		st->invalid_in++;
		return;
	}
	if (!pkt_check(r->out, r->len, &vo, why, sizeof(why))) {
		/* a checksum left to offload by the sender stays so: its seed */
		if ((vo.proto == IPPROTO_TCP || vo.proto == IPPROTO_UDP) &&
		    pkt_get16(r->out + vo.l4_off + (vo.proto == IPPROTO_TCP ? 16 : 6)) ==
			    pkt_seed(r->out, &vo))
			return;
		fail_frame(why, in, r, prog, n);
	}
}

/* A few flows open, both programs, so replies and ICMP errors about them
 * exist; their packets become the frames to mutate. */
static struct pkt flows[16], replies[16];
static size_t nr_flows;

static void open_flows(void)
{
	struct pkt_result r;
	struct pkt_view v;
	size_t i;

	for (i = 0; i < 16; i++) {
		int fi = i % 2;
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_spec s = {
			.family = fi ? 6 : 4,
			.proto = i % 4 < 2 ? IPPROTO_TCP : IPPROTO_UDP,
			.src = a->client,
			.dst = i % 8 < 4 ? a->vip : a->vip2,
			.sport = 41000 + i,
			.dport = PKT_PORT_MAIN,
			.payload = 16,
		};
		char ep[64];

		pkt_build(&s, &flows[i]);
		pkt_run(&env, i % 3 ? PKT_TC : PKT_XDP, flows[i].data, flows[i].len, &r, false);
		assert_int_equal(r.err, 0);
		assert_true(pkt_check(r.out, r.len, &v, ep, sizeof(ep)));
		/* the reply: from the endpoint the flow went to */
		s.src = pkt_ntop(r.out, &v, true, ep);
		s.dst = a->client;
		s.sport = pkt_port(r.out, &v, true);
		s.dport = 41000 + i;
		s.tcp_flags = 0x12;
		pkt_build(&s, &replies[i]);
	}
	nr_flows = 16;
}

static void next_frame(struct pkt *p)
{
	struct pkt q;

	switch (below(10)) {
	case 0:
	case 1:
	case 2:
	case 3:
		random_spec(p);
		break;
	case 4:
	case 5:
		*p = flows[below(nr_flows)];
		break;
	case 6:
	case 7:
		*p = replies[below(nr_flows)];
		break;
	case 8:
		q = chance(50) ? flows[below(nr_flows)] : replies[below(nr_flows)];
		icmp_error(&q, p);
		break;
	default: /* noise */
		memset(p, 0, sizeof(*p));
		p->len = below(200);
		for (size_t i = 0; i < p->len; i++)
			p->data[i] = (uint8_t)rnd();
		if (p->len >= 14 && chance(70))
			pkt_put16(p->data + 12, chance(50) ? ETH_P_IP : ETH_P_IPV6);
		p->l3_off = 14;
		p->l4_off = 34;
		return;
	}
	if (chance(60))
		mutate(p);
}

static void test_fuzz(void **state)
{
	struct stats st = {};
	struct pkt_result *r = malloc(sizeof(*r));
	struct pkt in;
	struct timespec t0, t1;
	unsigned long n;

	(void)state;
	assert_non_null(r);
	open_flows();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (n = 0; n < count; n++) {
		enum pkt_prog prog = n % 2 ? PKT_TC : PKT_XDP;

		next_frame(&in);
		pkt_run(&env, prog, in.data, in.len, r, false);
		st.runs++;
		judge(&in, r, prog, n, &st);
		/* forget the flows now and then, or new ones fill the table */
		if (n % 50000 == 49999) {
			assert_int_equal(pkt_env_flush_conns(&env), 0);
			open_flows();
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# %lu frames (seed %llu) in %.1f s: %lu untouched, %lu rewritten (%lu of them "
	       "from invalid frames), %lu dropped, %lu answered, %lu refused by test_run\n",
	       st.runs, (unsigned long long)seed,
	       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, st.untouched,
	       st.rewritten, st.invalid_in, st.dropped, st.tx, st.refused);
	free(r);
}

static int setup(void **state)
{
	size_t fi, i;
	uint8_t fam;

	(void)state;
	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		const char *e[] = { a->ep_a, a->ep_b, a->ep_c, a->ep_dns, a->ep_90, a->ep_10 };

		vips[fi][0] = pkt_addr(a->vip, &fam);
		vips[fi][1] = pkt_addr(a->vip2, &fam);
		for (i = 0; i < 6; i++)
			eps[fi][i] = pkt_addr(e[i], &fam);
	}
	return pkt_suite_setup(&env, &topo);
}

static int teardown(void **state)
{
	(void)state;
	pkt_env_close(&env);
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fuzz),
	};
	const char *s = getenv("PKT_FUZZ_SEED");

	if (argc > 1)
		count = strtoul(argv[1], NULL, 10);
	seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
	rng = seed * 0x9e3779b97f4a7c15ull + 1;
	printf("# seed %llu (PKT_FUZZ_SEED=%llu replays this run), %lu frames\n",
	       (unsigned long long)seed, (unsigned long long)seed, count);
	fflush(stdout);
	return cmocka_run_group_tests(tests, setup, teardown);
}
