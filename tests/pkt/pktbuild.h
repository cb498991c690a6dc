/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Helpers of the packet tests: a frame builder, a checksum and length
 * verifier written from RFC 1071 and the RFCs of each header (it shares no
 * code with bpf/lib/csum.h, so a wrong sum there cannot hide a wrong sum in
 * the program), and a harness that loads the dataplane with a fixed hash seed
 * and runs frames through ks_xdp and ks_tc with BPF_PROG_TEST_RUN.
 */
#ifndef KS_TESTS_PKTBUILD_H
#define KS_TESTS_PKTBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <kshift/abi.h>
#include "lib/dataplane.h"

/* Large enough for every test frame, and for the frame a reply grows to. */
#define PKT_MAX 1024

/* The same seed in every run, so hash-dependent outcomes are repeatable. */
#define PKT_HASH_SEED 0x6b73686966742121ULL

#define PKT_ETH_HLEN  14
#define PKT_VLAN_HLEN 4

/* What to build. Addresses are text; ports and numbers host order. */
struct pkt_spec {
	uint8_t family;	    /* 4 or 6; 0: not IP, see ethertype */
	uint16_t ethertype; /* family 0 only, e.g. 0x0806 builds an ARP request */
	bool vlan;	    /* one VLAN tag, TCI vlan_tci */
	uint16_t vlan_tci;
	uint16_t vlan_proto; /* the tag's TPID if not 0x8100, e.g. 0x88a8 (802.1ad) */
	uint8_t proto;	     /* IPPROTO_TCP, _UDP, _ICMP, _ICMPV6 or anything (no header) */
	const char *src, *dst;
	uint16_t sport, dport;
	uint8_t tcp_flags; /* 0 defaults to SYN */
	uint32_t seq, ack;
	uint8_t tcp_opts;     /* bytes of TCP options: an MSS option, then NOPs (x4) */
	uint8_t ip_opts;      /* bytes of IPv4 options, all NOPs (x4, up to 40) */
	uint16_t frag;	      /* IPv4 frag_off: IP_MF and the offset in 8-byte units */
	uint32_t v6_flow;     /* IPv6 flow label */
	bool v6_frag;	      /* an IPv6 fragment header right before L4 */
	uint16_t v6_frag_off; /* its offset-and-M-flag field as on the wire */
	bool v6_hbh;	      /* an IPv6 hop-by-hop header (PadN) first, */
	uint8_t v6_hbh_len;   /* of 8 * (1 + v6_hbh_len) bytes */
	uint16_t payload;     /* bytes after the L4 header (a fixed pattern) */
	bool udp_no_csum;     /* UDP checksum 0: "none" (IPv4 only) */
	uint8_t pad;	      /* zero bytes after the IP datagram (Ethernet padding) */
	bool set_word;	      /* the first two payload bytes are word (big endian) */
	uint16_t word;
	bool l4_seed;	      /* TCP/UDP checksum field: only the seed, see pkt_seed() */
};

/* A frame and where its headers are. */
struct pkt {
	uint8_t data[PKT_MAX];
	size_t len;
	size_t l3_off; /* IP header */
	size_t l4_off; /* TCP/UDP/ICMP header, after any extension header */
	size_t pad;    /* bytes at the end that are not part of the IP datagram */
};

/* Builds s into p with every length and checksum right; aborts the test on
 * a spec it cannot build. */
void pkt_build(const struct pkt_spec *s, struct pkt *p);

/* The layout of a frame as the verifier reads it. */
struct pkt_view {
	uint16_t ethertype; /* after the VLAN tag, if any */
	bool vlan;
	uint8_t family; /* 0 if not IP */
	uint8_t proto;	/* the upper-layer protocol */
	bool fragment;
	size_t l3_off, l4_off;
	size_t l4_len; /* upper-layer length by the IP header */
};

/*
 * Parses frame[0..len) and checks everything a receiver would: IPv4 header
 * checksum, IPv4 total length or IPv6 payload length against the frame,
 * and the TCP, UDP, ICMP or ICMPv6 checksum with its pseudo header. A
 * frame that is not IP passes. Returns true, or false with why[] saying
 * what is wrong.
 */
bool pkt_check(const uint8_t *frame, size_t len, struct pkt_view *v, char *why, size_t why_len);

/*
 * Partial checksums: a sender that leaves its TCP/UDP checksum to offload
 * (CHECKSUM_PARTIAL) puts in the field only the seed, the folded sum of the
 * pseudo header, not complemented; the kernel or the NIC completes it on
 * the way out. These take a frame pkt_check() has read into v: it fills v
 * in whenever the IP layer is sound, even if the L4 checksum is wrong, as a
 * seed is.
 */
/* The seed of the frame's pseudo header (TCP, UDP or ICMPv6). */
uint16_t pkt_seed(const uint8_t *frame, const struct pkt_view *v);
/* The folded sum of the pseudo header and the whole L4 segment, checksum
 * included: 0xffff if the checksum is right, and kept by any correct
 * incremental update of a full checksum, right or not. */
uint16_t pkt_l4_sum(const uint8_t *frame, const struct pkt_view *v);
/* Writes the right full checksum into the TCP/UDP field, whatever it held
 * (a computed 0 as 0xffff): for comparing the rest of a frame whose
 * checksum field is checked on its own. */
void pkt_fix_l4(uint8_t *frame, const struct pkt_view *v);

/* The RFC 1071 sum of data[0..len), added to sum, folded to 16 bits but
 * not complemented. */
uint16_t pkt_sum16(const uint8_t *data, size_t len, uint32_t sum);

/* Parses "198.18.2.2" or "2001:2::1" into a ks_addr; aborts on bad text. */
struct ks_addr pkt_addr(const char *text, uint8_t *family);
struct ks_endpoint pkt_endpoint(const char *addr, uint16_t port);

uint16_t pkt_get16(const uint8_t *p);
uint32_t pkt_get32(const uint8_t *p);
void pkt_put16(uint8_t *p, uint16_t v);

/* An ICMP or ICMPv6 error from src to dst quoting q's IP datagram, cut to
 * quote bytes (0: whole), with every length and checksum right; a
 * fragmentation needed or packet too big names a next-hop MTU of 1400. */
void pkt_build_icmp_error(uint8_t family, uint8_t type, uint8_t code, const char *src,
			  const char *dst, const struct pkt *q, size_t quote, struct pkt *out);

/* Hexdump of a frame in the test log, for failures. */
void pkt_dump(const char *title, const uint8_t *frame, size_t len);

/* Harness. */

enum pkt_prog { PKT_XDP, PKT_TC, PKT_NR_PROGS };
enum pkt_act { PKT_PASS, PKT_DROP, PKT_TX };

struct pkt_env {
	struct ks_dp dp;
	int prog_fd[PKT_NR_PROGS];
};

/* The dataplane, unpinned, with PKT_HASH_SEED. */
int pkt_env_open(struct pkt_env *env);
/* ... loaded with opts otherwise (e.g. xdp_veth). */
int pkt_env_open_opts(struct pkt_env *env, const struct ks_dp_opts *opts);
void pkt_env_close(struct pkt_env *env);
/* Forgets every tracked flow, so that cases do not see each other's. */
int pkt_env_flush_conns(struct pkt_env *env);
/* Moves every ks_conns entry's last packet ns into the past. */
void pkt_env_age_conns(struct pkt_env *env, uint64_t ns);
/* The entries in ks_conns. */
int pkt_env_count_conns(struct pkt_env *env);
/* The ks_conns key a packet s would look up. */
struct ks_flow pkt_flow_key(const struct pkt_spec *s);

/* One backend of a service: weight and up to 4 endpoints. */
struct pkt_backend {
	uint32_t weight;
	uint32_t nr_eps;
	struct ks_endpoint eps[4];
	uint32_t nr_draining; /* after the nr_eps: keep their flows, take no new ones */
};

/* A new service with backends b[0..n). */
int pkt_env_service(struct pkt_env *env, const struct pkt_backend *b, uint32_t n, uint32_t *svc);
int pkt_env_service_set(struct pkt_env *env, uint32_t svc, const struct pkt_backend *b, uint32_t n);
/* addr:port/proto -> svc; port 0 and proto 0 add the address-only key. */
int pkt_env_frontend(struct pkt_env *env, const char *addr, uint16_t port, uint8_t proto,
		     uint32_t svc);

struct pkt_result {
	int err; /* of bpf_prog_test_run_opts */
	uint32_t retval;
	uint8_t out[PKT_MAX];
	uint32_t len;
	uint64_t verdicts[KS_V_MAX]; /* how much each counter moved in the run */
};

/* Runs in[0..len) through prog once. With counters false the verdicts are
 * not read, for loops that run many thousands of frames. */
int pkt_run(struct pkt_env *env, enum pkt_prog prog, const uint8_t *in, size_t len,
	    struct pkt_result *r, bool counters);

/*
 * Whether test_run refused frame[0..len) for its size, as the kernel does
 * (EINVAL) below ETH_HLEN and, for TC only, below a whole IPv4 or IPv6
 * header when the EtherType (untagged) says IP: the program did not run,
 * and then no counter may have moved. Any other failure is the caller's.
 */
bool pkt_refused(const struct pkt_result *r, enum pkt_prog prog, const uint8_t *frame, size_t len);

const char *pkt_prog_name(enum pkt_prog prog);
/* The return code act takes in prog: XDP_PASS/XDP_DROP/XDP_TX or
 * TC_ACT_OK/TC_ACT_SHOT/TC_ACT_REDIRECT. */
uint32_t pkt_retval(enum pkt_prog prog, enum pkt_act act);

/* Text every failure message below starts with, e.g. which length of a
 * frame was being run. */
void pkt_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cmocka checks: the run succeeded, returned act's code and moved exactly
 * the counter of verdict, by one. */
void pkt_expect(const struct pkt_result *r, enum pkt_prog prog, enum pkt_act act,
		enum ks_verdict verdict);
/* ... and the output is the input, byte for byte. */
void pkt_expect_untouched(const struct pkt_result *r, const struct pkt *in);
/* ... and pkt_check() finds the output valid. */
void pkt_expect_valid(const struct pkt_result *r, struct pkt_view *v);

/* ... and the output is the input with its destination (dst) or source
 * rewritten to addr:port, checksums aside; pkt_check() finds it valid (its
 * padding aside); a UDP checksum stays 0 if it was 0, nonzero if not. */
void pkt_expect_nat(const struct pkt_result *r, const struct pkt *in, bool dst, const char *addr,
		    uint16_t port);

/* The destination or source address (text, into buf of INET6_ADDRSTRLEN)
 * and port of a frame pkt_check() has read into v. */
const char *pkt_ntop(const uint8_t *frame, const struct pkt_view *v, bool dst, char *buf);
uint16_t pkt_port(const uint8_t *frame, const struct pkt_view *v, bool dst);

/*
 * The services every packet test sees (pkt_env_topo), the same in both
 * families; ports are what clients address:
 *   VIP:80    TCP, UDP  main:    one backend, endpoints EP_A and EP_B on 8080
 *   VIP:53    UDP       single:  one endpoint, EP_DNS:5353
 *   VIP:8001  TCP, UDP  shift:   stable [EP_A:8080], canary [EP_C:8080]
 *   VIP:81    TCP, UDP  weight0: one backend with an endpoint and weight 0
 *   VIP:82    TCP, UDP  noeps:   one backend, weight 100, no endpoint
 *   VIP2:80   TCP, UDP  split:   90 to [EP_90:8080], 10 to [EP_10:8080]
 * VIP and VIP2 also carry the address-only key of the fragment policy.
 * OTHER is an address nothing is configured for.
 */
#define PKT_CLIENT4 "198.18.1.1"
#define PKT_VIP4    "198.18.100.1"
#define PKT_VIP2_4  "198.18.100.2"
#define PKT_OTHER4  "198.18.100.9"
#define PKT_EP_A4   "198.18.2.2"
#define PKT_EP_B4   "198.18.2.3"
#define PKT_EP_C4   "198.18.3.3"
#define PKT_EP_DNS4 "198.18.2.53"
#define PKT_EP_90_4 "198.18.4.1"
#define PKT_EP_10_4 "198.18.5.1"
#define PKT_CLIENT6 "2001:2:0:1::1"
#define PKT_VIP6    "2001:2:0:100::1"
#define PKT_VIP2_6  "2001:2:0:100::2"
#define PKT_OTHER6  "2001:2:0:100::9"
#define PKT_EP_A6   "2001:2:0:2::2"
#define PKT_EP_B6   "2001:2:0:2::3"
#define PKT_EP_C6   "2001:2:0:3::3"
#define PKT_EP_DNS6 "2001:2:0:2::53"
#define PKT_EP_90_6 "2001:2:0:4::1"
#define PKT_EP_10_6 "2001:2:0:5::1"

#define PKT_PORT_MAIN	 80
#define PKT_PORT_SINGLE	 53
#define PKT_PORT_SHIFT	 8001
#define PKT_PORT_WEIGHT0 81
#define PKT_PORT_NOEPS	 82
#define PKT_EP_PORT	 8080
#define PKT_EP_DNS_PORT	 5353

/* Per family: [0] IPv4, [1] IPv6. */
struct pkt_addrs {
	const char *client, *vip, *vip2, *other, *ep_a, *ep_b, *ep_c, *ep_dns, *ep_90, *ep_10;
};
extern const struct pkt_addrs pkt_addrs[2];

static inline int pkt_fi(uint8_t family)
{
	return family == KS_FAMILY_V4 ? 0 : 1;
}

struct pkt_topo {
	uint32_t main[2], single[2], shift[2], weight0[2], noeps[2], split[2];
};

/* Sets the services up; shift starts with stable 100, canary 0. */
int pkt_env_topo(struct pkt_env *env, struct pkt_topo *t);

/* A test file's group setup: the dataplane with the standard services.
 * 0, or -1 with the reason printed (cmocka then skips the group). */
int pkt_suite_setup(struct pkt_env *env, struct pkt_topo *t);
int pkt_env_shift(struct pkt_env *env, const struct pkt_topo *t, int fi, uint32_t stable,
		  uint32_t canary);

#endif /* KS_TESTS_PKTBUILD_H */
