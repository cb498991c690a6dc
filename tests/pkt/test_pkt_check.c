// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The packet tests' own helpers (pktbuild.c), without BPF: the checksum
 * verifier must agree with known answers computed by hand and from RFC
 * 1071, and must reject a frame with any single covered byte changed, so
 * that "valid" in the other packet tests means something.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "pktbuild.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2. */
static void test_rfc1071_example(void **state)
{
	static const uint8_t words[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };

	(void)state;
	assert_int_equal(pkt_sum16(words, sizeof(words), 0), 0xddf2);
	/* an odd byte counts as the high half of a word */
	assert_int_equal(pkt_sum16(words, 1, 0), 0x0000);
	assert_int_equal(pkt_sum16(words + 2, 1, 0), 0xf200);
}

/* An IPv4 header with its widely published checksum b861. */
static void test_ipv4_header_known(void **state)
{
	static const uint8_t hdr[] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
				       0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	uint8_t zeroed[sizeof(hdr)];

	(void)state;
	assert_int_equal(pkt_sum16(hdr, sizeof(hdr), 0), 0xffff);
	memcpy(zeroed, hdr, sizeof(hdr));
	zeroed[10] = zeroed[11] = 0;
	assert_int_equal((uint16_t)~pkt_sum16(zeroed, sizeof(zeroed), 0), 0xb861);
}

/*
 * UDP 198.18.1.1:1 -> 198.18.100.1:2, no payload, summed by hand:
 * pseudo header c612 0101 c612 6401 0011 0008, header 0001 0002 0008
 * add up to 1f14a, folded f14b, complemented 0eb4.
 */
static void test_udp_known(void **state)
{
	struct pkt_spec s = { .family = 4, .proto = IPPROTO_UDP, .src = "198.18.1.1",
			      .dst = "198.18.100.1", .sport = 1, .dport = 2 };
	struct pkt p;

	(void)state;
	pkt_build(&s, &p);
	assert_int_equal(p.len, 14 + 20 + 8);
	assert_int_equal(pkt_get16(p.data + p.l4_off + 6), 0x0eb4);
}

/* clang-format off */
static const struct pkt_spec frames[] = {
	{ .family = 4, .proto = IPPROTO_TCP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 1000,
	  .dport = 80, .seq = 0x12345678, .tcp_opts = 8, .ip_opts = 8, .payload = 13 },
	{ .family = 4, .proto = IPPROTO_UDP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 1001,
	  .dport = 53, .payload = 21, .vlan = true, .vlan_tci = 3 },
	{ .family = 4, .proto = IPPROTO_ICMP, .src = PKT_CLIENT4, .dst = PKT_VIP4, .sport = 9,
	  .payload = 17 },
	{ .family = 6, .proto = IPPROTO_TCP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 1002,
	  .dport = 80, .tcp_opts = 4, .payload = 7, .v6_hbh = true, .v6_hbh_len = 2 },
	{ .family = 6, .proto = IPPROTO_UDP, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 1003,
	  .dport = 80, .payload = 30 },
	{ .family = 6, .proto = IPPROTO_ICMPV6, .src = PKT_CLIENT6, .dst = PKT_VIP6, .sport = 9,
	  .payload = 11 },
};
/* clang-format on */

/* Bytes of a built frame a checksum or length check covers: the IPv4
 * header, IPv6 addresses and payload length, and the whole L4 message. */
static bool covered(const struct pkt_spec *s, const struct pkt *p, size_t off)
{
	if (off >= p->l4_off)
		return true;
	if (off < p->l3_off)
		return false;
	if (s->family == 4)
		return true;
	off -= p->l3_off;
	return off == 4 || off == 5 || (off >= 8 && off < 40);
}

static void test_every_byte_matters(void **state)
{
	char why[128];
	size_t f, off;
	struct pkt p;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(frames); f++) {
		pkt_build(&frames[f], &p);
		if (!pkt_check(p.data, p.len, NULL, why, sizeof(why)))
			fail_msg("frame %zu as built: %s", f, why);
		for (off = 0; off < p.len; off++) {
			if (!covered(&frames[f], &p, off))
				continue;
			p.data[off] ^= 0x01;
			if (pkt_check(p.data, p.len, NULL, why, sizeof(why)))
				fail_msg("frame %zu: byte %zu changed, still valid", f, off);
			p.data[off] ^= 0x01;
		}
	}
}

static void test_udp_zero_checksum(void **state)
{
	struct pkt_spec s4 = { .family = 4,
			      .proto = IPPROTO_UDP,
			      .src = PKT_CLIENT4,
			      .dst = PKT_VIP4,
			      .sport = 5,
			      .dport = 6,
			      .payload = 4,
			      .udp_no_csum = true };
	struct pkt_spec s6 = { .family = 6,
			      .proto = IPPROTO_UDP,
			      .src = PKT_CLIENT6,
			      .dst = PKT_VIP6,
			      .sport = 5,
			      .dport = 6,
			      .payload = 4,
			      .udp_no_csum = true };
	char why[128];
	struct pkt p;

	(void)state;
	pkt_build(&s4, &p);
	assert_int_equal(pkt_get16(p.data + p.l4_off + 6), 0);
	assert_true(pkt_check(p.data, p.len, NULL, why, sizeof(why)));
	/* no checksum over IPv6 is an error (RFC 8200 8.1) */
	pkt_build(&s6, &p);
	assert_false(pkt_check(p.data, p.len, NULL, why, sizeof(why)));
}

/* Lengths that disagree with the frame are caught. */
static void test_lengths(void **state)
{
	char why[128];
	struct pkt p;
	size_t f;

	(void)state;
	for (f = 0; f < ARRAY_SIZE(frames); f++) {
		pkt_build(&frames[f], &p);
		assert_false(pkt_check(p.data, p.len - 1, NULL, why, sizeof(why)));
		assert_false(pkt_check(p.data, p.len + 1, NULL, why, sizeof(why)));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc1071_example),
		cmocka_unit_test(test_ipv4_header_known),
		cmocka_unit_test(test_udp_known),
		cmocka_unit_test(test_every_byte_matters),
		cmocka_unit_test(test_udp_zero_checksum),
		cmocka_unit_test(test_lengths),
	};

	return cmocka_run_group_tests_name("pkt_check", tests, NULL, NULL);
}
