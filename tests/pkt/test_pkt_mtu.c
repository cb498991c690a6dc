// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Packet tests of path MTU discovery through a frontend (bpf/lib/mtu.h), in
 * ks_xdp and ks_tc. The test runs in a network namespace of its own, where
 * 198.18.0.0/15 and 2001:2::/48 are routed out of a veth with a route MTU
 * of 600 and forwarding is on, so the programs' FIB lookups (test_run runs
 * them on that veth) find the MTU a next hop would have. A steered packet
 * too big for it:
 *   - IPv4 with DF, new flow or reply, TCP or UDP: an ICMP fragmentation
 *     needed (MTU 600) to its sender, from the address the sender sent it
 *     to, quoting its IP header and L4 header (8 bytes of UDP, 20 of TCP)
 *     byte for byte as the sender sent it, not as kshift translated it;
 *   - IPv6: an ICMPv6 packet too big, likewise;
 *   - IPv4 without DF: translated, up the stack (which fragments it);
 *   - a TC GSO skb whose segments fit: forwarded like any packet; one whose
 *     segments do not: answered.
 * Every answer goes back out of the interface (XDP_TX, TC redirect).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "pktbuild.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define TCP_SYN 0x02
#define TCP_ACK 0x10
#define IP_DF	0x4000

#define MTU	 600
#define BIG	 800 /* payload bytes: too big for MTU */
#define DEV	 "ksmtu0"

static struct pkt_env env;
static struct pkt_topo topo;
static int ifindex;

enum mtu_check {
	CHECK_ICMP, /* answered: fragmentation needed / packet too big */
	CHECK_NAT,  /* translated, up the stack (which fragments it) */
	CHECK_FWD,  /* fits: translated and forwarded */
};

struct mtu_case {
	const char *name;
	struct pkt_spec in; /* from the client; or, with reply, from the endpoint */
	bool reply;	    /* the flow is opened first by a small packet from the client */
	uint32_t gso_size;  /* TC only, when set */
	enum mtu_check check;
};

/* clang-format off */
#define TCP4(port_) .family = 4, .proto = IPPROTO_TCP, .src = PKT_CLIENT4, .dst = PKT_VIP4,       \
	.sport = 40001, .dport = port_, .seq = 1000
#define TCP6(port_) .family = 6, .proto = IPPROTO_TCP, .src = PKT_CLIENT6, .dst = PKT_VIP6,       \
	.sport = 40002, .dport = port_, .seq = 1000
#define UDP4(port_) .family = 4, .proto = IPPROTO_UDP, .src = PKT_CLIENT4, .dst = PKT_VIP4,       \
	.sport = 40003, .dport = port_
#define UDP6(port_) .family = 6, .proto = IPPROTO_UDP, .src = PKT_CLIENT6, .dst = PKT_VIP6,       \
	.sport = 40004, .dport = port_
/* the endpoint's side of the same flows (shift: EP_A:8080; single: EP_DNS:5353) */
#define RTCP4 .family = 4, .proto = IPPROTO_TCP, .src = PKT_EP_A4, .dst = PKT_CLIENT4,            \
	.sport = PKT_EP_PORT, .dport = 40001, .seq = 5000, .ack = 1001
#define RTCP6 .family = 6, .proto = IPPROTO_TCP, .src = PKT_EP_A6, .dst = PKT_CLIENT6,            \
	.sport = PKT_EP_PORT, .dport = 40002, .seq = 5000, .ack = 1001
#define RUDP4 .family = 4, .proto = IPPROTO_UDP, .src = PKT_EP_DNS4, .dst = PKT_CLIENT4,          \
	.sport = PKT_EP_DNS_PORT, .dport = 40003
#define RUDP6 .family = 6, .proto = IPPROTO_UDP, .src = PKT_EP_DNS6, .dst = PKT_CLIENT6,          \
	.sport = PKT_EP_DNS_PORT, .dport = 40004

static const struct mtu_case cases[] = {
	{ "IPv4 TCP SYN with DF, too big: frag needed to the client",
	  { TCP4(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .frag = IP_DF, .payload = BIG }, .check = CHECK_ICMP },
	{ "IPv4 TCP SYN with DF and IP options, too big: frag needed",
	  { TCP4(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .frag = IP_DF, .ip_opts = 8, .tcp_opts = 4,
	    .payload = BIG }, .check = CHECK_ICMP },
	{ "IPv4 UDP with DF, too big: frag needed to the client",
	  { UDP4(PKT_PORT_SINGLE), .frag = IP_DF, .payload = BIG }, .check = CHECK_ICMP },
	{ "IPv4 UDP with DF, no checksum, too big: frag needed",
	  { UDP4(PKT_PORT_SINGLE), .frag = IP_DF, .udp_no_csum = true, .payload = BIG },
	  .check = CHECK_ICMP },
	{ "IPv4 TCP reply with DF, too big: frag needed to the endpoint",
	  { RTCP4, .tcp_flags = TCP_ACK, .frag = IP_DF, .payload = BIG }, .reply = true,
	  .check = CHECK_ICMP },
	{ "IPv4 UDP reply with DF, too big: frag needed to the endpoint",
	  { RUDP4, .frag = IP_DF, .payload = BIG }, .reply = true, .check = CHECK_ICMP },
	{ "IPv6 TCP SYN, too big: packet too big to the client",
	  { TCP6(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .payload = BIG }, .check = CHECK_ICMP },
	{ "IPv6 UDP, too big: packet too big to the client",
	  { UDP6(PKT_PORT_SINGLE), .payload = BIG }, .check = CHECK_ICMP },
	{ "IPv6 TCP reply, too big: packet too big to the endpoint",
	  { RTCP6, .tcp_flags = TCP_ACK, .payload = BIG }, .reply = true, .check = CHECK_ICMP },
	{ "IPv6 UDP reply, too big: packet too big to the endpoint",
	  { RUDP6, .payload = BIG }, .reply = true, .check = CHECK_ICMP },
	{ "IPv4 TCP without DF, too big: translated, to the stack",
	  { TCP4(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .payload = BIG }, .check = CHECK_NAT },
	{ "IPv4 UDP reply without DF, too big: translated, to the stack",
	  { RUDP4, .payload = BIG }, .reply = true, .check = CHECK_NAT },
	{ "IPv4 TCP with DF that fits: translated",
	  { TCP4(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .frag = IP_DF, .payload = 100 },
	  .check = CHECK_FWD },
	{ "IPv6 UDP that fits: translated",
	  { UDP6(PKT_PORT_SINGLE), .payload = 100 }, .check = CHECK_FWD },
	{ "TC GSO IPv4 TCP reply, segments fit: translated",
	  { RTCP4, .tcp_flags = TCP_ACK, .frag = IP_DF, .payload = BIG }, .reply = true,
	  .gso_size = 400, .check = CHECK_FWD },
	{ "TC GSO IPv4 TCP reply, segments too big: frag needed",
	  { RTCP4, .tcp_flags = TCP_ACK, .frag = IP_DF, .payload = BIG }, .reply = true,
	  .gso_size = 700, .check = CHECK_ICMP },
	{ "TC GSO IPv6 TCP, segments fit: translated",
	  { TCP6(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .payload = BIG }, .gso_size = 500,
	  .check = CHECK_FWD },
	{ "TC GSO IPv6 TCP, segments too big: packet too big",
	  { TCP6(PKT_PORT_SHIFT), .tcp_flags = TCP_SYN, .payload = BIG }, .gso_size = 750,
	  .check = CHECK_ICMP },
};
/* clang-format on */

static enum pkt_prog cur_prog;
#define FAIL(fmt, ...) fail_msg("%s: " fmt, pkt_prog_name(cur_prog), ##__VA_ARGS__)

/* Runs in through prog as if it arrived on DEV (TC: a GSO skb of gso_size
 * when set); r->verdicts as pkt_run() gives them. */
static void run(enum pkt_prog prog, const struct pkt *in, uint32_t gso_size,
		struct pkt_result *r)
{
	struct __sk_buff skb = { .ifindex = ifindex, .ingress_ifindex = ifindex,
				 .gso_size = gso_size, .gso_segs = gso_size ? 2 : 0 };
	struct xdp_md xdp = { .data_end = in->len, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in->data, .data_size_in = in->len,
		    .data_out = r->out, .data_size_out = sizeof(r->out), .repeat = 1);
	uint64_t before[KS_V_MAX], after[KS_V_MAX];
	int i;

	if (prog == PKT_TC) {
		opts.ctx_in = &skb;
		opts.ctx_size_in = sizeof(skb);
	} else {
		opts.ctx_in = &xdp;
		opts.ctx_size_in = sizeof(xdp);
	}
	memset(r, 0, sizeof(*r));
	assert_int_equal(ks_dp_verdicts(&env.dp, before), 0);
	r->err = bpf_prog_test_run_opts(env.prog_fd[prog], &opts) ? -errno : 0;
	r->retval = opts.retval;
	r->len = opts.data_size_out;
	assert_int_equal(ks_dp_verdicts(&env.dp, after), 0);
	for (i = 0; i < KS_V_MAX; i++)
		r->verdicts[i] = after[i] - before[i];
}

/* The one verdict that moved. */
static void expect_verdict(const struct pkt_result *r, enum ks_verdict want)
{
	int i;

	if (r->err)
		FAIL("test_run: %s", strerror(-r->err));
	for (i = 0; i < KS_V_MAX; i++)
		if (r->verdicts[i] != (i == (int)want))
			FAIL("verdict %s moved by %llu (expected %s by 1)", ks_verdict_name(i),
			     (unsigned long long)r->verdicts[i], ks_verdict_name(want));
}

/* A small packet of the flow from the client, then the handshake's other
 * two, so that the endpoint's big packet is an established flow's. */
static void open_flow(const struct mtu_case *c, enum pkt_prog prog)
{
	bool v4 = c->in.family == 4, tcp = c->in.proto == IPPROTO_TCP;
	struct pkt_spec syn = { .family = c->in.family, .proto = c->in.proto,
				.src = v4 ? PKT_CLIENT4 : PKT_CLIENT6,
				.dst = v4 ? PKT_VIP4 : PKT_VIP6, .sport = c->in.dport,
				.dport = tcp ? PKT_PORT_SHIFT : PKT_PORT_SINGLE,
				.tcp_flags = TCP_SYN, .seq = 1000 };
	struct pkt_spec synack = c->in, ack = syn;
	struct pkt_result r;
	struct pkt p;

	pkt_build(&syn, &p);
	run(prog, &p, 0, &r);
	expect_verdict(&r, KS_V_NAT_NEW);
	if (!tcp)
		return;
	synack.tcp_flags = TCP_SYN | TCP_ACK;
	synack.payload = 0;
	synack.seq = 4999;
	synack.frag = 0;
	pkt_build(&synack, &p);
	run(prog, &p, 0, &r);
	expect_verdict(&r, KS_V_NAT_REPLY);
	ack.tcp_flags = TCP_ACK;
	ack.seq = 1001;
	ack.ack = 5000;
	pkt_build(&ack, &p);
	run(prog, &p, 0, &r);
	expect_verdict(&r, KS_V_NAT_ESTABLISHED);
}

static void check_icmp(const struct mtu_case *c, const struct pkt *in, const struct pkt_result *r)
{
	bool v4 = c->in.family == 4, tcp = c->in.proto == IPPROTO_TCP;
	size_t ip_hlen = v4 ? 20 : 40, n = v4 ? 4 : 16, src = v4 ? 12 : 8;
	size_t quote = in->l4_off - in->l3_off + (tcp ? 20 : 8);
	const uint8_t *icmp, *ip = r->out + in->l3_off, *qip = in->data + in->l3_off;
	struct pkt_view v;
	char why[200];

	if (r->retval != pkt_retval(cur_prog, PKT_TX))
		FAIL("returned %u, expected the answer sent back (%u)", r->retval,
		     pkt_retval(cur_prog, PKT_TX));
	if (!pkt_check(r->out, r->len, &v, why, sizeof(why))) {
		pkt_dump("output", r->out, r->len);
		FAIL("invalid answer: %s", why);
	}
	if (r->len != in->l3_off + ip_hlen + 8 + quote)
		FAIL("answer of %u bytes, expected %zu", r->len, in->l3_off + ip_hlen + 8 + quote);
	if (v.proto != (v4 ? IPPROTO_ICMP : IPPROTO_ICMPV6) || v.l4_off != in->l3_off + ip_hlen)
		FAIL("not an ICMP%s message right after a plain IP header", v4 ? "" : "v6");
	if (memcmp(r->out, in->data + 6, 6) || memcmp(r->out + 6, in->data, 6))
		FAIL("MACs not swapped");
	/* from the address the sender sent to, to the sender */
	if (memcmp(ip + src, qip + src + n, n) || memcmp(ip + src + n, qip + src, n))
		FAIL("not from the packet's destination to its source");
	icmp = r->out + v.l4_off;
	if (v4 ? icmp[0] != 3 || icmp[1] != 4 || pkt_get32(icmp + 4) != MTU
	       : icmp[0] != 2 || icmp[1] != 0 || pkt_get32(icmp + 4) != MTU)
		FAIL("ICMP type %u code %u, MTU field %u", icmp[0], icmp[1], pkt_get32(icmp + 4));
	if (memcmp(icmp + 8, qip, quote)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		FAIL("the quote is not the packet as its sender sent it");
	}
}

static void run_case(void **state)
{
	const struct mtu_case *c = *state;
	enum ks_verdict nat;
	struct pkt_result r;
	struct pkt in;
	int prog;

	pkt_build(&c->in, &in);
	for (prog = 0; prog < PKT_NR_PROGS; prog++) {
		/* no IPv6 link carries less than 1280 bytes, so XDP, which
		 * passes a packet to the stack anyway, does not ask for an
		 * IPv6 packet that long: the 600 bytes here are TC's to test */
		if ((c->gso_size || c->in.family == 6) && prog != PKT_TC)
			continue;
		cur_prog = prog;
		assert_int_equal(pkt_env_flush_conns(&env), 0);
		if (c->reply)
			open_flow(c, prog);
		run(prog, &in, c->gso_size, &r);
		if (c->check == CHECK_ICMP) {
			expect_verdict(&r, KS_V_REPLY_TOO_BIG);
			check_icmp(c, &in, &r);
			continue;
		}
		nat = c->reply ? KS_V_NAT_REPLY : KS_V_NAT_NEW;
		expect_verdict(&r, nat);
		if (c->check == CHECK_FWD) {
			/* XDP passes it up (no ks_xdp_redirect), TC redirects */
			if (r.retval != pkt_retval(prog, prog == PKT_TC ? PKT_TX : PKT_PASS))
				FAIL("returned %u", r.retval);
			continue;
		}
		if (r.retval != pkt_retval(prog, PKT_PASS))
			FAIL("returned %u, expected it passed to the stack", r.retval);
		if (c->reply)
			pkt_expect_nat(&r, &in, false, c->in.family == 4 ? PKT_VIP4 : PKT_VIP6,
				       c->in.proto == IPPROTO_TCP ? PKT_PORT_SHIFT : PKT_PORT_SINGLE);
		else
			pkt_expect_nat(&r, &in, true,
				       c->in.proto == IPPROTO_TCP
					       ? (c->in.family == 4 ? PKT_EP_A4 : PKT_EP_A6)
					       : (c->in.family == 4 ? PKT_EP_DNS4 : PKT_EP_DNS6),
				       c->in.proto == IPPROTO_TCP ? PKT_EP_PORT : PKT_EP_DNS_PORT);
	}
}

/* The namespace: a veth whose routes carry MTU bytes, forwarding on. */
static int netns_setup(void)
{
	static const char *const cmds[] = {
		"ip link set lo up",
		"ip link add " DEV " type veth peer name " DEV "p",
		"ip link set " DEV "p up",
		"ip link set " DEV " up",
		"ip route add 198.18.0.0/15 dev " DEV " mtu lock 600",
		"ip -6 route add 2001:2::/48 dev " DEV " mtu lock 600",
		"sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv6.conf.all.forwarding=1",
	};
	size_t i;

	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		if (system(cmds[i])) {
			fprintf(stderr, "failed: %s\n", cmds[i]);
			return -1;
		}
	}
	ifindex = (int)if_nametoindex(DEV);
	return ifindex ? 0 : -1;
}

static int setup(void **state)
{
	(void)state;
	if (netns_setup())
		return -1;
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
	struct CMUnitTest tests[ARRAY_SIZE(cases)];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		tests[i] = (struct CMUnitTest){ .name = cases[i].name,
						.test_func = run_case,
						.initial_state = (void *)&cases[i] };
	return _cmocka_run_group_tests("pkt_mtu", tests, ARRAY_SIZE(tests), setup, teardown);
}
