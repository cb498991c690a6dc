// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Frames for the packet tests, their independent verification, and the
 * BPF_PROG_TEST_RUN harness (see pktbuild.h).
 *
 * Everything here reads and writes headers byte by byte in network order,
 * and sums 16-bit big-endian words as RFC 1071 describes, on purpose unlike
 * the dataplane (which sums raw words and patches checksums incrementally):
 * two different computations agreeing is the point of the check.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>

#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "pktbuild.h"

#define ETH_P_IP     0x0800
#define ETH_P_IPV6   0x86dd
#define ETH_P_ARP    0x0806
#define ETH_P_8021Q  0x8100
#define ETH_P_8021AD 0x88a8

#define NEXTHDR_HOP	 0
#define NEXTHDR_ROUTING	 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST	 60

/* What the failure messages of the pkt_expect functions start with. */
static char pkt_ctx[128];

void pkt_context(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pkt_ctx, sizeof(pkt_ctx), fmt, ap);
	va_end(ap);
}

/* The client's MAC and the one it sends to; replies must swap them. */
static const uint8_t pkt_mac_client[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const uint8_t pkt_mac_router[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

uint16_t pkt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t pkt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void pkt_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
	pkt_put16(p, v >> 16);
	pkt_put16(p + 2, v & 0xffff);
}

/* RFC 1071 4.1: add 16-bit words, an odd last byte padded with zero on the
 * right, then fold the carries back in. */
uint16_t pkt_sum16(const uint8_t *data, size_t len, uint32_t sum)
{
	uint64_t acc = sum;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += pkt_get16(data + i);
	if (len & 1)
		acc += (uint32_t)data[len - 1] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)acc;
}

struct ks_addr pkt_addr(const char *text, uint8_t *family)
{
	struct ks_addr a;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, &a.v4) == 1) {
		*family = KS_FAMILY_V4;
		return a;
	}
	if (inet_pton(AF_INET6, text, a.bytes) == 1) {
		*family = KS_FAMILY_V6;
		return a;
	}
	fail_msg("%sbad address %s", pkt_ctx, text);
	return a;
}

struct ks_endpoint pkt_endpoint(const char *addr, uint16_t port)
{
	struct ks_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	ep.addr = pkt_addr(addr, &ep.family);
	ep.port = htons(port);
	return ep;
}

/* The pseudo header's sum (RFC 768 and 793 for IPv4, RFC 8200 8.1 for v6). */
static uint16_t pseudo_sum(uint8_t family, const uint8_t *src, const uint8_t *dst, uint8_t proto,
			   uint32_t l4_len)
{
	uint8_t ph[40];

	memset(ph, 0, sizeof(ph));
	if (family == KS_FAMILY_V4) {
		memcpy(ph, src, 4);
		memcpy(ph + 4, dst, 4);
		ph[9] = proto;
		pkt_put16(ph + 10, (uint16_t)l4_len);
		return pkt_sum16(ph, 12, 0);
	}
	memcpy(ph, src, 16);
	memcpy(ph + 16, dst, 16);
	put32(ph + 32, l4_len);
	ph[39] = proto;
	return pkt_sum16(ph, 40, 0);
}

static size_t l4_hdr_len(const struct pkt_spec *s)
{
	switch (s->proto) {
	case IPPROTO_TCP:
		return 20 + s->tcp_opts;
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 8;
	default:
		return 0;
	}
}

static size_t build_l2(const struct pkt_spec *s, uint8_t *d)
{
	uint16_t type = s->family == 4 ? ETH_P_IP : s->family == 6 ? ETH_P_IPV6 : s->ethertype;
	size_t off = 12;

	memcpy(d, pkt_mac_router, 6);
	memcpy(d + 6, pkt_mac_client, 6);
	if (s->vlan) {
		pkt_put16(d + off, s->vlan_proto ? s->vlan_proto : ETH_P_8021Q);
		pkt_put16(d + off + 2, s->vlan_tci);
		off += PKT_VLAN_HLEN;
	}
	pkt_put16(d + off, type);
	return off + 2;
}

static void build_not_ip(const struct pkt_spec *s, struct pkt *p)
{
	uint8_t *d = p->data + p->l3_off;
	size_t i;

	if (s->ethertype == ETH_P_ARP) {
		/* who-has the frontend address, from the client */
		static const uint8_t arp[28] = {
			0, 1, 8, 0, 6, 4, 0, 1,		   /* Ethernet, IPv4, request */
			2, 0, 0, 0, 0, 1, 198, 18, 1, 1,   /* client MAC and address */
			0, 0, 0, 0, 0, 0, 198, 18, 100, 1, /* target: the frontend */
		};

		memcpy(d, arp, sizeof(arp));
		p->len = p->l3_off + sizeof(arp);
		return;
	}
	for (i = 0; i < s->payload; i++)
		d[i] = (uint8_t)(i * 29 + 5);
	p->len = p->l3_off + s->payload;
}

void pkt_build(const struct pkt_spec *s, struct pkt *p)
{
	size_t l4_len = l4_hdr_len(s) + s->payload, ext = 0, i;
	uint8_t fam = 0, *d = p->data, *l3, *l4, *src, *dst;
	struct ks_addr sa, da;
	uint16_t check;

	memset(p, 0, sizeof(*p));
	p->l3_off = build_l2(s, d);
	if (!s->family) {
		build_not_ip(s, p);
		return;
	}
	sa = pkt_addr(s->src, &fam);
	assert_int_equal(fam, s->family);
	da = pkt_addr(s->dst, &fam);
	assert_int_equal(fam, s->family);
	assert_true(s->ip_opts % 4 == 0 && s->ip_opts <= 40 && s->tcp_opts % 4 == 0);
	l3 = d + p->l3_off;

	if (s->family == 4) {
		size_t hlen = 20 + s->ip_opts;

		l3[0] = 0x40 | (uint8_t)(hlen / 4);
		pkt_put16(l3 + 2, (uint16_t)(hlen + l4_len));
		pkt_put16(l3 + 4, 0x1234);
		pkt_put16(l3 + 6, s->frag);
		l3[8] = 64;
		l3[9] = s->proto;
		memcpy(l3 + 12, &sa.v4, 4);
		memcpy(l3 + 16, &da.v4, 4);
		memset(l3 + 20, 1, s->ip_opts); /* NOP */
		pkt_put16(l3 + 10, (uint16_t)~pkt_sum16(l3, hlen, 0));
		src = l3 + 12;
		dst = l3 + 16;
		p->l4_off = p->l3_off + hlen;
	} else {
		uint8_t *next = l3 + 6;

		put32(l3, 0x60000000 | (s->v6_flow & 0xfffff));
		l3[7] = 64;
		memcpy(l3 + 8, sa.bytes, 16);
		memcpy(l3 + 24, da.bytes, 16);
		if (s->v6_hbh) {
			uint8_t *h = l3 + 40 + ext;
			size_t len = 8 * ((size_t)s->v6_hbh_len + 1), o;

			assert_true(p->l3_off + 40 + len + 128 <= PKT_MAX);
			*next = NEXTHDR_HOP;
			next = h;
			h[1] = s->v6_hbh_len;
			/* PadN options (RFC 8200 4.2) of at most 257 bytes, and
			 * a Pad1 for a single byte left over */
			for (o = 2; o < len; o += h[o] ? 2 + h[o + 1] : 1) {
				if (len - o == 1)
					continue; /* h[o] is 0 already: Pad1 */
				h[o] = 1;
				h[o + 1] = (uint8_t)(len - o - 2 > 255 ? 255 : len - o - 2);
			}
			ext += len;
		}
		if (s->v6_frag) {
			uint8_t *h = l3 + 40 + ext;

			*next = NEXTHDR_FRAGMENT;
			next = h;
			pkt_put16(h + 2, s->v6_frag_off);
			put32(h + 4, 0xabcd1234);
			ext += 8;
		}
		*next = s->proto;
		pkt_put16(l3 + 4, (uint16_t)(ext + l4_len));
		src = l3 + 8;
		dst = l3 + 24;
		p->l4_off = p->l3_off + 40 + ext;
	}
	p->pad = s->pad;
	p->len = p->l4_off + l4_len + p->pad;
	assert_true(p->len <= PKT_MAX);
	l4 = d + p->l4_off;

	for (i = 0; i < s->payload; i++)
		l4[l4_hdr_len(s) + i] = (uint8_t)(i * 31 + 7);
	if (s->set_word) {
		assert_true(s->payload >= 2);
		pkt_put16(l4 + l4_hdr_len(s), s->word);
	}

	switch (s->proto) {
	case IPPROTO_TCP:
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		put32(l4 + 4, s->seq);
		put32(l4 + 8, s->ack);
		l4[12] = (uint8_t)((20 + s->tcp_opts) / 4) << 4;
		l4[13] = s->tcp_flags ? s->tcp_flags : 0x02;
		pkt_put16(l4 + 14, 65535);
		if (s->tcp_opts) {
			memset(l4 + 20, 1, s->tcp_opts); /* NOP */
			l4[20] = 2;			 /* MSS 1460 */
			l4[21] = 4;
			pkt_put16(l4 + 22, 1460);
		}
		check = ~pkt_sum16(l4, l4_len, pseudo_sum(s->family, src, dst, s->proto, l4_len));
		pkt_put16(l4 + 16, s->l4_seed ? pseudo_sum(s->family, src, dst, s->proto, l4_len)
					       : check);
		break;
	case IPPROTO_UDP:
		pkt_put16(l4, s->sport);
		pkt_put16(l4 + 2, s->dport);
		pkt_put16(l4 + 4, (uint16_t)l4_len);
		check = ~pkt_sum16(l4, l4_len, pseudo_sum(s->family, src, dst, s->proto, l4_len));
		/* RFC 768: a computed 0 is sent as all ones */
		pkt_put16(l4 + 6, s->udp_no_csum ? 0 : check ? check : 0xffff);
		if (s->l4_seed)
			pkt_put16(l4 + 6, pseudo_sum(s->family, src, dst, s->proto, l4_len));
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		l4[0] = s->proto == IPPROTO_ICMP ? 8 : 128; /* echo request */
		pkt_put16(l4 + 4, s->sport);
		pkt_put16(l4 + 6, 1);
		if (s->proto == IPPROTO_ICMP)
			check = ~pkt_sum16(l4, l4_len, 0);
		else
			check = ~pkt_sum16(l4, l4_len,
					   pseudo_sum(s->family, src, dst, s->proto, l4_len));
		pkt_put16(l4 + 2, check);
		break;
	}
}

static bool why_fmt(char *why, size_t why_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, why_len, fmt, ap);
	va_end(ap);
	return false;
}

static bool check_l4(const uint8_t *frame, const struct pkt_view *v, char *why, size_t why_len)
{
	const uint8_t *l3 = frame + v->l3_off, *l4 = frame + v->l4_off;
	const uint8_t *src = v->family == KS_FAMILY_V4 ? l3 + 12 : l3 + 8;
	const uint8_t *dst = v->family == KS_FAMILY_V4 ? l3 + 16 : l3 + 24;
	uint16_t sum;

	switch (v->proto) {
	case IPPROTO_TCP:
		if (v->l4_len < 20 || (size_t)(l4[12] >> 4) * 4 < 20 ||
		    (size_t)(l4[12] >> 4) * 4 > v->l4_len)
			return why_fmt(why, why_len, "TCP header length %u of %zu", l4[12] >> 4,
				       v->l4_len);
		break;
	case IPPROTO_UDP:
		if (v->l4_len < 8 || pkt_get16(l4 + 4) != v->l4_len)
			return why_fmt(why, why_len, "UDP length %u, IP says %zu",
				       v->l4_len < 8 ? 0 : pkt_get16(l4 + 4), v->l4_len);
		if (pkt_get16(l4 + 6) == 0) {
			if (v->family == KS_FAMILY_V4)
				return true; /* no checksum */
			return why_fmt(why, why_len, "UDP over IPv6 with checksum 0");
		}
		break;
	case IPPROTO_ICMP:
		if (v->l4_len < 8)
			return why_fmt(why, why_len, "ICMP of %zu bytes", v->l4_len);
		sum = pkt_sum16(l4, v->l4_len, 0);
		if (sum != 0xffff)
			return why_fmt(why, why_len, "ICMP checksum %04x wrong (sum %04x)",
				       pkt_get16(l4 + 2), sum);
		return true;
	case IPPROTO_ICMPV6:
		if (v->l4_len < 8)
			return why_fmt(why, why_len, "ICMPv6 of %zu bytes", v->l4_len);
		break;
	default:
		return true;
	}
	sum = pkt_sum16(l4, v->l4_len, pseudo_sum(v->family, src, dst, v->proto, v->l4_len));
	if (sum != 0xffff)
		return why_fmt(why, why_len, "L4 (proto %u) checksum %04x wrong (sum %04x)",
			       v->proto, pkt_get16(l4 + (v->proto == IPPROTO_TCP ? 16 : 6)), sum);
	return true;
}

bool pkt_check(const uint8_t *frame, size_t len, struct pkt_view *v, char *why, size_t why_len)
{
	struct pkt_view local;
	const uint8_t *l3;
	size_t off = 12;

	if (!v)
		v = &local;
	memset(v, 0, sizeof(*v));
	if (len < PKT_ETH_HLEN)
		return why_fmt(why, why_len, "frame of %zu bytes", len);
	v->ethertype = pkt_get16(frame + off);
	if (v->ethertype == ETH_P_8021Q || v->ethertype == ETH_P_8021AD) {
		if (len < PKT_ETH_HLEN + PKT_VLAN_HLEN)
			return why_fmt(why, why_len, "VLAN frame of %zu bytes", len);
		v->vlan = true;
		off += PKT_VLAN_HLEN;
		v->ethertype = pkt_get16(frame + off);
	}
	v->l3_off = off + 2;
	l3 = frame + v->l3_off;

	if (v->ethertype == ETH_P_IP) {
		size_t hlen, tot;
		uint16_t sum;

		if (len < v->l3_off + 20 || l3[0] >> 4 != 4 || (l3[0] & 0xf) < 5)
			return why_fmt(why, why_len, "bad IPv4 header");
		hlen = (size_t)(l3[0] & 0xf) * 4;
		tot = pkt_get16(l3 + 2);
		if (len < v->l3_off + hlen)
			return why_fmt(why, why_len, "IPv4 header cut short");
		sum = pkt_sum16(l3, hlen, 0);
		if (sum != 0xffff)
			return why_fmt(why, why_len, "IPv4 header checksum %04x wrong (sum %04x)",
				       pkt_get16(l3 + 10), sum);
		if (tot != len - v->l3_off || tot < hlen)
			return why_fmt(why, why_len, "IPv4 total length %zu, frame has %zu", tot,
				       len - v->l3_off);
		v->family = KS_FAMILY_V4;
		v->proto = l3[9];
		v->l4_off = v->l3_off + hlen;
		v->l4_len = tot - hlen;
		v->fragment = (pkt_get16(l3 + 6) & 0x3fff) != 0;
	} else if (v->ethertype == ETH_P_IPV6) {
		size_t pl, ext = 0;
		uint8_t next;

		if (len < v->l3_off + 40 || l3[0] >> 4 != 6)
			return why_fmt(why, why_len, "bad IPv6 header");
		pl = pkt_get16(l3 + 4);
		if (pl != len - v->l3_off - 40)
			return why_fmt(why, why_len, "IPv6 payload length %zu, frame has %zu", pl,
				       len - v->l3_off - 40);
		next = l3[6];
		while (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST ||
		       next == NEXTHDR_FRAGMENT) {
			const uint8_t *h = l3 + 40 + ext;

			if (ext + 8 > pl)
				return why_fmt(why, why_len, "IPv6 extension header cut short");
			if (next == NEXTHDR_FRAGMENT)
				v->fragment = true;
			ext += next == NEXTHDR_FRAGMENT ? 8 : ((size_t)h[1] + 1) * 8;
			next = h[0];
		}
		if (ext > pl)
			return why_fmt(why, why_len, "IPv6 extension headers past the payload");
		v->family = KS_FAMILY_V6;
		v->proto = next;
		v->l4_off = v->l3_off + 40 + ext;
		v->l4_len = pl - ext;
	} else {
		return true;
	}
	if (v->fragment)
		return true;
	return check_l4(frame, v, why, why_len);
}

static uint16_t view_pseudo_sum(const uint8_t *frame, const struct pkt_view *v)
{
	const uint8_t *l3 = frame + v->l3_off;

	if (v->family == KS_FAMILY_V4)
		return pseudo_sum(v->family, l3 + 12, l3 + 16, v->proto, (uint32_t)v->l4_len);
	return pseudo_sum(v->family, l3 + 8, l3 + 24, v->proto, (uint32_t)v->l4_len);
}

uint16_t pkt_seed(const uint8_t *frame, const struct pkt_view *v)
{
	return view_pseudo_sum(frame, v);
}

uint16_t pkt_l4_sum(const uint8_t *frame, const struct pkt_view *v)
{
	return pkt_sum16(frame + v->l4_off, v->l4_len, view_pseudo_sum(frame, v));
}

void pkt_fix_l4(uint8_t *frame, const struct pkt_view *v)
{
	uint8_t *l4 = frame + v->l4_off, *check;
	uint16_t sum;

	assert_true(v->proto == IPPROTO_TCP || v->proto == IPPROTO_UDP);
	check = l4 + (v->proto == IPPROTO_TCP ? 16 : 6);
	pkt_put16(check, 0);
	sum = (uint16_t)~pkt_sum16(l4, v->l4_len, view_pseudo_sum(frame, v));
	pkt_put16(check, sum ? sum : 0xffff);
}

void pkt_dump(const char *title, const uint8_t *frame, size_t len)
{
	char line[3 * 16 + 1];
	size_t i;

	print_message("%s (%zu bytes):\n", title, len);
	for (i = 0; i < len; i++) {
		snprintf(line + 3 * (i % 16), 4, "%02x ", frame[i]);
		if (i % 16 == 15 || i + 1 == len)
			print_message("  %04zx  %s\n", i - i % 16, line);
	}
}

int pkt_env_open(struct pkt_env *env)
{
	struct ks_dp_opts opts = { .pin_path = NULL };

	return pkt_env_open_opts(env, &opts);
}

int pkt_env_open_opts(struct pkt_env *env, const struct ks_dp_opts *opts)
{
	struct ks_dp_opts o = *opts;
	int err;

	o.pin_path = NULL;
	o.hash_seed = PKT_HASH_SEED;
	err = ks_dp_open(&env->dp, &o);
	if (err)
		return err;
	env->prog_fd[PKT_XDP] = bpf_program__fd(env->dp.skel->progs.ks_xdp);
	env->prog_fd[PKT_TC] = bpf_program__fd(env->dp.skel->progs.ks_tc);
	return 0;
}

void pkt_env_close(struct pkt_env *env)
{
	ks_dp_close(&env->dp);
}

/* ... and the datagrams whose first fragment was seen */
static int flush_frags(struct pkt_env *env)
{
	int fd = bpf_map__fd(env->dp.skel->maps.ks_frags);
	struct ks_frag_key key;

	while (!bpf_map_get_next_key(fd, NULL, &key))
		if (bpf_map_delete_elem(fd, &key))
			return -errno;
	return 0;
}

int pkt_env_flush_conns(struct pkt_env *env)
{
	int fd = bpf_map__fd(env->dp.skel->maps.ks_conns);
	struct ks_flow *keys = NULL, key;
	size_t n = 0, cap = 0, i;
	int err = 0;

	/* collect first: deleting while walking would restart the walk at
	 * the first bucket every time */
	while (!bpf_map_get_next_key(fd, n ? &keys[n - 1] : NULL, &key)) {
		if (n == cap) {
			struct ks_flow *k;

			cap = cap ? 2 * cap : 256;
			k = realloc(keys, cap * sizeof(*k));
			if (!k) {
				free(keys);
				return -ENOMEM;
			}
			keys = k;
		}
		keys[n++] = key;
	}
	for (i = 0; i < n; i++)
		if (bpf_map_delete_elem(fd, &keys[i]) && errno != ENOENT)
			err = -errno;
	free(keys);
	return err ?: flush_frags(env);
}

void pkt_env_age_conns(struct pkt_env *env, uint64_t ns)
{
	int fd = bpf_map__fd(env->dp.skel->maps.ks_conns);
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

int pkt_env_count_conns(struct pkt_env *env)
{
	int fd = bpf_map__fd(env->dp.skel->maps.ks_conns), n = 0;
	struct ks_flow key, next;
	bool first = true;

	while (!bpf_map_get_next_key(fd, first ? NULL : &key, &next)) {
		first = false;
		key = next;
		n++;
	}
	return n;
}

struct ks_flow pkt_flow_key(const struct pkt_spec *s)
{
	struct ks_flow k;

	memset(&k, 0, sizeof(k));
	k.saddr = pkt_addr(s->src, &k.family);
	k.daddr = pkt_addr(s->dst, &k.family);
	k.sport = htons(s->sport);
	k.dport = htons(s->dport);
	k.proto = s->proto;
	return k;
}


int pkt_env_service_set(struct pkt_env *env, uint32_t svc, const struct pkt_backend *b, uint32_t n)
{
	struct ks_dp_backend dpb[KS_MAX_BACKENDS] = {};
	uint32_t i;

	if (n > KS_MAX_BACKENDS)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		dpb[i].weight = b[i].weight;
		dpb[i].eps = b[i].eps;
		dpb[i].nr_eps = b[i].nr_eps;
		dpb[i].nr_draining = b[i].nr_draining;
	}
	return ks_dp_svc_set(&env->dp, svc, dpb, n, 0);
}

int pkt_env_service(struct pkt_env *env, const struct pkt_backend *b, uint32_t n, uint32_t *svc)
{
	int err = ks_dp_svc_new(&env->dp, svc);

	return err ? err : pkt_env_service_set(env, *svc, b, n);
}

int pkt_env_frontend(struct pkt_env *env, const char *addr, uint16_t port, uint8_t proto,
		     uint32_t svc)
{
	struct ks_frontend_key key;

	memset(&key, 0, sizeof(key));
	key.addr = pkt_addr(addr, &key.family);
	key.port = htons(port);
	key.proto = proto;
	return ks_dp_frontend_add(&env->dp, &key, svc);
}

int pkt_run(struct pkt_env *env, enum pkt_prog prog, const uint8_t *in, size_t len,
	    struct pkt_result *r, bool counters)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = (uint32_t)len,
		    .data_out = r->out, .data_size_out = sizeof(r->out), .repeat = 1);
	uint64_t before[KS_V_MAX], after[KS_V_MAX];
	int i;

	memset(r, 0, sizeof(*r));
	if (counters && ks_dp_verdicts(&env->dp, before))
		return r->err = -EIO;
	r->err = bpf_prog_test_run_opts(env->prog_fd[prog], &opts) ? -errno : 0;
	r->retval = opts.retval;
	r->len = opts.data_size_out;
	if (counters) {
		if (ks_dp_verdicts(&env->dp, after))
			return r->err = -EIO;
		for (i = 0; i < KS_V_MAX; i++)
			r->verdicts[i] = after[i] - before[i];
	}
	return r->err;
}

bool pkt_refused(const struct pkt_result *r, enum pkt_prog prog, const uint8_t *frame, size_t len)
{
	size_t min = PKT_ETH_HLEN;
	int i;

	if (prog == PKT_TC && len >= PKT_ETH_HLEN) {
		uint16_t type = pkt_get16(frame + 12);

		if (type == ETH_P_IP)
			min += 20;
		else if (type == ETH_P_IPV6)
			min += 40;
	}
	if (r->err != -EINVAL || len >= min)
		return false;
	for (i = 0; i < KS_V_MAX; i++)
		if (r->verdicts[i])
			fail_msg("%s%s refused a frame of %zu bytes, yet verdict %s moved", pkt_ctx,
				 pkt_prog_name(prog), len, ks_verdict_name(i));
	return true;
}

const char *pkt_prog_name(enum pkt_prog prog)
{
	return prog == PKT_XDP ? "ks_xdp" : "ks_tc";
}

uint32_t pkt_retval(enum pkt_prog prog, enum pkt_act act)
{
	/* XDP_DROP 1, XDP_PASS 2, XDP_TX 3; TC_ACT_OK 0, TC_ACT_SHOT 2,
	 * TC_ACT_REDIRECT 7 (what bpf_redirect() returns) */
	static const uint32_t codes[PKT_NR_PROGS][3] = {
		[PKT_XDP] = { [PKT_PASS] = 2, [PKT_DROP] = 1, [PKT_TX] = 3 },
		[PKT_TC] = { [PKT_PASS] = 0, [PKT_DROP] = 2, [PKT_TX] = 7 },
	};

	return codes[prog][act];
}

void pkt_expect(const struct pkt_result *r, enum pkt_prog prog, enum pkt_act act,
		enum ks_verdict verdict)
{
	int i;

	if (r->err)
		fail_msg("%s%s: test run failed: %s", pkt_ctx, pkt_prog_name(prog),
			 strerror(-r->err));
	if (r->retval != pkt_retval(prog, act))
		fail_msg("%s%s: returned %u, expected %u (verdict %s expected)", pkt_ctx,
			 pkt_prog_name(prog), r->retval, pkt_retval(prog, act),
			 ks_verdict_name(verdict));
	for (i = 0; i < KS_V_MAX; i++)
		if (r->verdicts[i] != (i == (int)verdict))
			fail_msg("%s%s: verdict %s moved by %llu, expected only %s", pkt_ctx,
				 pkt_prog_name(prog), ks_verdict_name(i),
				 (unsigned long long)r->verdicts[i], ks_verdict_name(verdict));
}

void pkt_expect_untouched(const struct pkt_result *r, const struct pkt *in)
{
	if (r->len != in->len || memcmp(r->out, in->data, in->len)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("output", r->out, r->len);
		fail_msg("%soutput differs from the input", pkt_ctx);
	}
}

static void expect_valid_len(const struct pkt_result *r, size_t len, struct pkt_view *v)
{
	char why[128];

	if (len > r->len || !pkt_check(r->out, len, v, why, sizeof(why))) {
		pkt_dump("output", r->out, r->len);
		fail_msg("%sinvalid output: %s", pkt_ctx, len > r->len ? "too short" : why);
	}
}

void pkt_expect_valid(const struct pkt_result *r, struct pkt_view *v)
{
	expect_valid_len(r, r->len, v);
}

const struct pkt_addrs pkt_addrs[2] = {
	{ PKT_CLIENT4, PKT_VIP4, PKT_VIP2_4, PKT_OTHER4, PKT_EP_A4, PKT_EP_B4, PKT_EP_C4,
	  PKT_EP_DNS4, PKT_EP_90_4, PKT_EP_10_4 },
	{ PKT_CLIENT6, PKT_VIP6, PKT_VIP2_6, PKT_OTHER6, PKT_EP_A6, PKT_EP_B6, PKT_EP_C6,
	  PKT_EP_DNS6, PKT_EP_90_6, PKT_EP_10_6 },
};

int pkt_env_shift(struct pkt_env *env, const struct pkt_topo *t, int fi, uint32_t stable,
		  uint32_t canary)
{
	const struct pkt_addrs *a = &pkt_addrs[fi];
	struct pkt_backend b[2] = {
		{ stable, 1, { pkt_endpoint(a->ep_a, PKT_EP_PORT) } },
		{ canary, 1, { pkt_endpoint(a->ep_c, PKT_EP_PORT) } },
	};

	return pkt_env_service_set(env, t->shift[fi], b, 2);
}

/* Frontends port/TCP and port/UDP (or only UDP) of addr to svc. */
static int frontends(struct pkt_env *env, const char *addr, uint16_t port, bool tcp, uint32_t svc)
{
	int err = tcp ? pkt_env_frontend(env, addr, port, IPPROTO_TCP, svc) : 0;

	return err ? err : pkt_env_frontend(env, addr, port, IPPROTO_UDP, svc);
}

int pkt_env_topo(struct pkt_env *env, struct pkt_topo *t)
{
	int fi, err;

	for (fi = 0; fi < 2; fi++) {
		const struct pkt_addrs *a = &pkt_addrs[fi];
		struct pkt_backend main = { 100, 2,
					    { pkt_endpoint(a->ep_a, PKT_EP_PORT),
					      pkt_endpoint(a->ep_b, PKT_EP_PORT) } };
		struct pkt_backend single = { 100, 1,
					      { pkt_endpoint(a->ep_dns, PKT_EP_DNS_PORT) } };
		struct pkt_backend weight0 = { 0, 1, { pkt_endpoint(a->ep_c, PKT_EP_PORT) } };
		struct pkt_backend noeps = { 100, 0, {} };
		struct pkt_backend split[2] = {
			{ 90, 1, { pkt_endpoint(a->ep_90, PKT_EP_PORT) } },
			{ 10, 1, { pkt_endpoint(a->ep_10, PKT_EP_PORT) } },
		};

		err = pkt_env_service(env, &main, 1, &t->main[fi]);
		err = err ?: pkt_env_service(env, &single, 1, &t->single[fi]);
		err = err ?: ks_dp_svc_new(&env->dp, &t->shift[fi]);
		err = err ?: pkt_env_shift(env, t, fi, 100, 0);
		err = err ?: pkt_env_service(env, &weight0, 1, &t->weight0[fi]);
		err = err ?: pkt_env_service(env, &noeps, 1, &t->noeps[fi]);
		err = err ?: pkt_env_service(env, split, 2, &t->split[fi]);
		err = err ?: frontends(env, a->vip, PKT_PORT_MAIN, true, t->main[fi]);
		err = err ?: frontends(env, a->vip, PKT_PORT_SINGLE, false, t->single[fi]);
		err = err ?: frontends(env, a->vip, PKT_PORT_SHIFT, true, t->shift[fi]);
		err = err ?: frontends(env, a->vip, PKT_PORT_WEIGHT0, true, t->weight0[fi]);
		err = err ?: frontends(env, a->vip, PKT_PORT_NOEPS, true, t->noeps[fi]);
		err = err ?: frontends(env, a->vip2, PKT_PORT_MAIN, true, t->split[fi]);
		/* address-only keys, as kshiftd adds them: svc KS_SVC_NONE */
		err = err ?: pkt_env_frontend(env, a->vip, 0, 0, KS_SVC_NONE);
		err = err ?: pkt_env_frontend(env, a->vip2, 0, 0, KS_SVC_NONE);
		if (err)
			return err;
	}
	return 0;
}

const char *pkt_ntop(const uint8_t *frame, const struct pkt_view *v, bool dst, char *buf)
{
	const uint8_t *l3 = frame + v->l3_off;

	if (v->family == KS_FAMILY_V4)
		return inet_ntop(AF_INET, l3 + (dst ? 16 : 12), buf, INET6_ADDRSTRLEN);
	return inet_ntop(AF_INET6, l3 + (dst ? 24 : 8), buf, INET6_ADDRSTRLEN);
}

uint16_t pkt_port(const uint8_t *frame, const struct pkt_view *v, bool dst)
{
	return pkt_get16(frame + v->l4_off + (dst ? 2 : 0));
}

void pkt_expect_nat(const struct pkt_result *r, const struct pkt *in, bool dst, const char *addr,
		    uint16_t port)
{
	uint8_t want[PKT_MAX], fam;
	struct ks_addr a = pkt_addr(addr, &fam);
	struct pkt_view v;
	size_t l3 = in->l3_off, l4 = in->l4_off, l4_check;
	bool udp;

	expect_valid_len(r, r->len - in->pad, &v);
	if (r->len != in->len)
		fail_msg("%soutput of %u bytes, input of %zu", pkt_ctx, r->len, in->len);
	udp = v.proto == IPPROTO_UDP;
	l4_check = l4 + (udp ? 6 : 16);
	memcpy(want, in->data, in->len);
	if (fam == KS_FAMILY_V4) {
		memcpy(want + l3 + (dst ? 16 : 12), &a.v4, 4);
		memcpy(want + l3 + 10, r->out + l3 + 10, 2);
	} else {
		memcpy(want + l3 + (dst ? 24 : 8), a.bytes, 16);
	}
	pkt_put16(want + l4 + (dst ? 2 : 0), port);
	memcpy(want + l4_check, r->out + l4_check, 2);
	if (memcmp(want, r->out, in->len)) {
		pkt_dump("input", in->data, in->len);
		pkt_dump("expected, checksums aside", want, in->len);
		pkt_dump("output", r->out, r->len);
		fail_msg("%snot the input with its %s rewritten to %s:%u", pkt_ctx,
			 dst ? "destination" : "source", addr, port);
	}
	/* 0 is "no checksum" for UDP over IPv4: it must not appear or vanish */
	if (udp && !pkt_get16(in->data + l4_check) != !pkt_get16(r->out + l4_check))
		fail_msg("%sUDP checksum %04x became %04x", pkt_ctx, pkt_get16(in->data + l4_check),
			 pkt_get16(r->out + l4_check));
}

int pkt_suite_setup(struct pkt_env *env, struct pkt_topo *t)
{
	if (pkt_env_open(env)) {
		print_error("cannot load the dataplane (root needed)\n");
		return -1;
	}
	if (pkt_env_topo(env, t)) {
		print_error("cannot set up the services\n");
		pkt_env_close(env);
		return -1;
	}
	return 0;
}

void pkt_build_icmp_error(uint8_t family, uint8_t type, uint8_t code, const char *src,
			  const char *dst, const struct pkt *q, size_t quote, struct pkt *out)
{
	size_t qlen = q->len - q->pad - q->l3_off, hlen = family == 4 ? 20 : 40;
	struct ks_addr sa, da;
	uint8_t *d = out->data, *ip, *icmp, fam, pseudo[40] = {};
	uint16_t sum;

	if (quote && quote < qlen)
		qlen = quote;
	memset(out, 0, sizeof(*out));
	sa = pkt_addr(src, &fam);
	da = pkt_addr(dst, &fam);
	memcpy(d, q->data, 12);
	pkt_put16(d + 12, family == 4 ? 0x0800 : 0x86dd);
	out->l3_off = 14;
	out->l4_off = 14 + hlen;
	ip = d + out->l3_off;
	icmp = d + out->l4_off;
	if (family == 4) {
		ip[0] = 0x45;
		pkt_put16(ip + 2, hlen + 8 + qlen);
		ip[8] = 64;
		ip[9] = IPPROTO_ICMP;
		memcpy(ip + 12, &sa.v4, 4);
		memcpy(ip + 16, &da.v4, 4);
		pkt_put16(ip + 10, (uint16_t)~pkt_sum16(ip, hlen, 0));
	} else {
		ip[0] = 0x60;
		pkt_put16(ip + 4, 8 + qlen);
		ip[6] = IPPROTO_ICMPV6;
		ip[7] = 64;
		memcpy(ip + 8, &sa, 16);
		memcpy(ip + 24, &da, 16);
	}
	icmp[0] = type;
	icmp[1] = code;
	/* fragmentation needed, packet too big: the next hop's MTU */
	if (family == 4 && type == 3 && code == 4)
		pkt_put16(icmp + 6, 1400);
	if (family == 6 && type == 2)
		pkt_put16(icmp + 6, 1400);
	memcpy(icmp + 8, q->data + q->l3_off, qlen);
	out->len = out->l4_off + 8 + qlen;
	if (family == 4) {
		sum = 0;
	} else {
		memcpy(pseudo, &sa, 16);
		memcpy(pseudo + 16, &da, 16);
		pseudo[34] = (8 + qlen) >> 8;
		pseudo[35] = (8 + qlen) & 0xff;
		pseudo[39] = IPPROTO_ICMPV6;
		sum = pkt_sum16(pseudo, sizeof(pseudo), 0);
	}
	pkt_put16(icmp + 2, (uint16_t)~pkt_sum16(icmp, 8 + qlen, sum));
}
