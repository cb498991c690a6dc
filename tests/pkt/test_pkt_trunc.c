// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Truncation and inconsistent lengths. Valid TCP and UDP frames to a
 * frontend (IPv4 and IPv6, with and without a VLAN tag, with IPv4 options
 * or an IPv6 extension header) are cut to every length from 0 to whole,
 * each through ks_xdp and ks_tc; then frames whose IP, L4 and frame
 * lengths disagree are run, to a frontend and elsewhere. The
 * program must never modify a frame it does not steer, and:
 *   cut inside L2 or the IP header (options included) -> passed untouched
 *   IP header whole, L4 header or payload cut         -> dropped, malformed
 *   whole                                             -> DNAT
 * A frame test_run refuses for its size (see pkt_refused()) is skipped: the
 * program never saw it. A cut inside an IPv6 extension header may either
 * pass untouched or drop as malformed, as long as nothing is rewritten.
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

struct trunc_case {
	const char *name;
	struct pkt_spec in;
};

static struct pkt_env env;
static struct pkt_topo topo;

/* Tables read best one row per case. */
/* clang-format off */
#define TCP4                                                                                       \
	.family = 4, .proto = IPPROTO_TCP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 51001,    \
	.dport = 80, .seq = 9, .tcp_opts = 8, .payload = 10
#define UDP4                                                                                       \
	.family = 4, .proto = IPPROTO_UDP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 51002,    \
	.dport = 80, .payload = 10
#define TCP6                                                                                       \
	.family = 6, .proto = IPPROTO_TCP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 51003,    \
	.dport = 80, .seq = 9, .tcp_opts = 8, .payload = 10
#define UDP6                                                                                       \
	.family = 6, .proto = IPPROTO_UDP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 51004,    \
	.dport = 80, .payload = 10

static const struct trunc_case cases[] = {
	{ "truncated IPv4 TCP", { TCP4 } },
	{ "truncated IPv4 UDP", { UDP4 } },
	{ "truncated IPv6 TCP", { TCP6 } },
	{ "truncated IPv6 UDP", { UDP6 } },
	{ "truncated VLAN IPv4 TCP", { TCP4, .vlan = true, .vlan_tci = 10 } },
	{ "truncated VLAN IPv4 UDP", { UDP4, .vlan = true, .vlan_tci = 10 } },
	{ "truncated VLAN IPv6 TCP", { TCP6, .vlan = true, .vlan_tci = 10 } },
	{ "truncated VLAN IPv6 UDP", { UDP6, .vlan = true, .vlan_tci = 10 } },
	{ "truncated IPv4 TCP with IP options", { TCP4, .ip_opts = 16 } },
	{ "truncated VLAN IPv4 UDP with IP options", { UDP4, .ip_opts = 40, .vlan = true } },
	{ "truncated IPv6 TCP behind a hop-by-hop header", { TCP6, .v6_hbh = true } },
	{ "truncated VLAN IPv6 UDP behind a hop-by-hop header",
	  { UDP6, .v6_hbh = true, .vlan = true } },
};
/* clang-format on */

/*
 * Frames whose lengths disagree with each other, to a frontend (dropped as
 * malformed) or elsewhere (passed untouched). Each mutation leaves the
 * checksums stale: what is tested is the parser, which reads no checksum.
 */
enum mutation {
	TCP_DOFF_4,	   /* data offset below the header's own 20 bytes */
	TCP_DOFF_PAST_END, /* options past the end of the segment */
	IP_LEN_BELOW_HDR,  /* IPv4 total length smaller than the header */
	IP_LEN_PAST_FRAME, /* IP length says one more byte than the frame has */
	IP_LEN_IN_L4_HDR,  /* IP length ends inside the L4 header, frame goes on */
	L4_HDR_SHORT,	   /* frame and IP length agree, the L4 header is cut */
};

struct bad_case {
	const char *name;
	struct pkt_spec in;
	enum mutation mutation;
};

/* clang-format off */
static const struct bad_case bad_cases[] = {
	{ "IPv4 TCP data offset 4", { TCP4 }, TCP_DOFF_4 },
	{ "IPv6 TCP data offset 4", { TCP6 }, TCP_DOFF_4 },
	{ "IPv4 TCP options past the end", { TCP4 }, TCP_DOFF_PAST_END },
	{ "VLAN IPv6 TCP options past the end", { TCP6, .vlan = true }, TCP_DOFF_PAST_END },
	{ "IPv4 total length below the header", { UDP4 }, IP_LEN_BELOW_HDR },
	{ "IPv4 TCP total length past the frame", { TCP4 }, IP_LEN_PAST_FRAME },
	{ "IPv4 UDP total length past the frame", { UDP4, .vlan = true }, IP_LEN_PAST_FRAME },
	{ "IPv6 TCP payload length past the frame", { TCP6 }, IP_LEN_PAST_FRAME },
	{ "IPv6 UDP payload length past the frame", { UDP6 }, IP_LEN_PAST_FRAME },
	{ "IPv4 TCP length ends in the TCP header", { TCP4 }, IP_LEN_IN_L4_HDR },
	{ "IPv4 UDP length ends in the UDP header", { UDP4 }, IP_LEN_IN_L4_HDR },
	{ "IPv6 TCP length ends in the TCP header", { TCP6, .vlan = true }, IP_LEN_IN_L4_HDR },
	{ "IPv6 UDP length ends in the UDP header", { UDP6 }, IP_LEN_IN_L4_HDR },
	{ "IPv4 TCP header cut, lengths agree", { TCP4 }, L4_HDR_SHORT },
	{ "IPv4 UDP header cut, lengths agree", { UDP4, .ip_opts = 8 }, L4_HDR_SHORT },
	{ "IPv6 TCP header cut, lengths agree", { TCP6 }, L4_HDR_SHORT },
	{ "IPv6 UDP header cut, lengths agree", { UDP6, .vlan = true }, L4_HDR_SHORT },
};
/* clang-format on */

/* Sets the IPv4 total length or IPv6 payload length to len bytes of IP
 * datagram. */
static void set_ip_len(struct pkt *p, uint8_t family, size_t len)
{
	uint8_t *l3 = p->data + p->l3_off;

	if (family == 4)
		pkt_put16(l3 + 2, (uint16_t)len);
	else
		pkt_put16(l3 + 4, (uint16_t)(len - 40));
}

static void mutate(const struct bad_case *c, struct pkt *p)
{
	uint8_t *l4 = p->data + p->l4_off;
	size_t l3_len = p->len - p->l3_off;
	size_t l4_hlen = c->in.proto == IPPROTO_TCP ? 20 : 8;

	switch (c->mutation) {
	case TCP_DOFF_4:
		l4[12] = 4 << 4;
		break;
	case TCP_DOFF_PAST_END:
		/* 60 bytes of header claimed, 38 there */
		l4[12] = 15 << 4;
		break;
	case IP_LEN_BELOW_HDR:
		set_ip_len(p, c->in.family, 16);
		break;
	case IP_LEN_PAST_FRAME:
		set_ip_len(p, c->in.family, l3_len + 1);
		break;
	case IP_LEN_IN_L4_HDR:
		set_ip_len(p, c->in.family, p->l4_off - p->l3_off + l4_hlen - 1);
		break;
	case L4_HDR_SHORT:
		p->len = p->l4_off + l4_hlen - 2;
		set_ip_len(p, c->in.family, p->len - p->l3_off);
		break;
	}
}

static void run_bad_case(void **state)
{
	const struct bad_case *c = *state;
	struct pkt_spec spec = c->in;
	struct pkt_result r;
	struct pkt in;
	int prog, other;

	for (other = 0; other < 2; other++) {
		spec.dst = other ? pkt_addrs[pkt_fi(spec.family)].other : c->in.dst;
		pkt_build(&spec, &in);
		mutate(c, &in);
		for (prog = 0; prog < PKT_NR_PROGS; prog++) {
			pkt_context("to %s: ", spec.dst);
			pkt_run(&env, prog, in.data, in.len, &r, true);
			if (other) {
				pkt_expect(&r, prog, PKT_PASS, KS_V_PASS_NO_MATCH);
				pkt_expect_untouched(&r, &in);
			} else {
				pkt_expect(&r, prog, PKT_DROP, KS_V_DROP_MALFORMED);
			}
		}
	}
	pkt_context("%s", "");
}

/* Where the IP header ends in a frame: IPv4 options, yes; IPv6 extension
 * headers, no. */
static size_t ip_end(const struct pkt_spec *s, const struct pkt *p)
{
	if (s->family == 4)
		return p->l4_off;
	return p->l3_off + 40;
}

static void run_len(const struct pkt *full, size_t len, size_t l3_end, enum pkt_prog prog)
{
	struct pkt in = *full;
	struct pkt_result r;

	in.len = len;
	if (len == full->len)
		assert_int_equal(pkt_env_flush_conns(&env), 0);
	pkt_run(&env, prog, in.data, len, &r, true);
	if (pkt_refused(&r, prog, in.data, len))
		return;
	if (len < l3_end) {
		pkt_expect(&r, prog, PKT_PASS, KS_V_PASS_NOT_IP);
		pkt_expect_untouched(&r, &in);
	} else if (len < full->len) {
		pkt_expect(&r, prog, PKT_DROP, KS_V_DROP_MALFORMED);
	} else {
		pkt_expect(&r, prog, PKT_PASS, KS_V_NAT_NEW);
		pkt_expect_valid(&r, NULL);
	}
}

static void run_case(void **state)
{
	const struct trunc_case *c = *state;
	struct pkt full;
	size_t len;
	int prog;

	pkt_build(&c->in, &full);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		for (len = 0; len <= full.len; len++) {
			pkt_context("cut to %zu of %zu bytes: ", len, full.len);
			run_len(&full, len, ip_end(&c->in, &full), prog);
		}
	}
	pkt_context("%s", "");
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
	struct CMUnitTest tests[ARRAY_SIZE(cases) + ARRAY_SIZE(bad_cases)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
						.test_func = run_case,
						.initial_state = (void *)&cases[i] };
	for (i = 0; i < ARRAY_SIZE(bad_cases); i++)
		tests[ARRAY_SIZE(cases) + i] =
			(struct CMUnitTest){ .name = bad_cases[i].name,
					     .test_func = run_bad_case,
					     .initial_state = (void *)&bad_cases[i] };
	return _cmocka_run_group_tests("pkt_trunc", tests, ARRAY_SIZE(tests), setup, teardown);
}
