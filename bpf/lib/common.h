/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Includes, constants and small helpers every kshift BPF file needs. */
#ifndef KS_BPF_COMMON_H
#define KS_BPF_COMMON_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <kshift/abi.h>

/* vmlinux.h carries types and enums, not the uapi #defines */
#define ETH_P_IP	    0x0800
#define ETH_P_IPV6	    0x86DD
#define ETH_P_8021Q	    0x8100
#define ETH_P_8021AD	    0x88A8
#define ETH_ALEN	    6
#define IP_MF		    0x2000
#define IP_DF		    0x4000
#define IP_OFFSET	    0x1FFF
#define IPPROTO_HOPOPTS	    0
#define IPPROTO_ROUTING	    43
#define IPPROTO_FRAGMENT    44
#define IPPROTO_DSTOPTS	    60
#define IPPROTO_ICMPV6	    58
#define ICMP_DEST_UNREACH   3
#define ICMP_PORT_UNREACH   3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PORT_UNREACH 4
#define TC_ACT_OK	    0
#define TC_ACT_SHOT	    2
#define TC_ACT_REDIRECT	    7
#define KS_EEXIST	    17 /* errno EEXIST, as helpers return it */

#define KS_REPLY_TTL 64
/* IPv6 extension headers skipped before giving up on finding TCP/UDP */
#define KS_MAX_EXT_HDRS 4

#ifndef likely
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

/* Set by the loader when XDP runs natively on a veth. Packets from a local
 * peer there may carry a partial checksum (see bpf/lib/csum.h), and XDP_TX
 * needs NAPI on the peer. */
const volatile bool ks_xdp_veth = false;

/* What the program asks of the kernel, the same for XDP and TC. */
enum ks_action {
	KS_ACT_PASS, /* up the stack (forwarded by the kernel if not local) */
	KS_ACT_DROP,
	KS_ACT_TX, /* back out of the interface it came in on */
};

/* Two addresses, IPv4 or IPv6 (an IPv4 one is zero past its 4 bytes). */
static __always_inline bool ks_addr_eq(const struct ks_addr *a, const struct ks_addr *b)
{
	return !((a->v6[0] ^ b->v6[0]) | (a->v6[1] ^ b->v6[1]) | (a->v6[2] ^ b->v6[2]) |
		 (a->v6[3] ^ b->v6[3]));
}

#endif /* KS_BPF_COMMON_H */
