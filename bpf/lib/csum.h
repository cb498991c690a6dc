/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Internet checksum arithmetic (RFC 1071, incremental updates per RFC 1624).
 * Sums are kept as 32-bit one's complement accumulators over the raw,
 * network-order words; byte order does not matter to the sum as long as the
 * result is written back the way it was read.
 */
#ifndef KS_BPF_CSUM_H
#define KS_BPF_CSUM_H

#include "common.h"

static __always_inline __u32 ks_csum_add(__u32 sum, __u32 x)
{
	sum += x;
	return sum + (sum < x);
}

/* Folds to 16 bits and complements: the value a checksum field holds. */
static __always_inline __u16 ks_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The sum change from replacing 32-bit words old[0..n) with new[0..n). */
static __always_inline __u32 ks_csum_diff_words(const __be32 *old, const __be32 *new, int n)
{
	__u32 diff = 0;
	int i;

#pragma unroll
	for (i = 0; i < n; i++) {
		diff = ks_csum_add(diff, ~old[i]);
		diff = ks_csum_add(diff, new[i]);
	}
	return diff;
}

static __always_inline __u32 ks_csum_diff16(__be16 old, __be16 new)
{
	return ks_csum_add((__u16)~old, new);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), with diff = ~m + m'. */
static __always_inline __u16 ks_csum_update(__u16 check, __u32 diff)
{
	return ks_csum_fold(ks_csum_add((__u16)~check, diff));
}

/* Sum of len bytes (even, at most 2 * KS_CSUM_MAX_WORDS) of the packet at
 * data + off. Returns -1 if they are not all inside the packet. */
#define KS_CSUM_MAX_WORDS 64
static __always_inline __s64 ks_csum_packet(void *data, void *data_end, __u32 off, __u32 len)
{
	__u16 *word = data + (off & 0x3ff);
	__u32 i, sum = 0;

	for (i = 0; i < KS_CSUM_MAX_WORDS; i++) {
		if (i * 2 >= len)
			break;
		if ((void *)(word + 1) > data_end)
			return -1;
		sum = ks_csum_add(sum, *word);
		word++;
		/* keep LLVM from turning the bounds checks into pointer
		 * arithmetic the verifier refuses, and from checking every
		 * word of an unrolled loop first and keeping each pointer (on
		 * the stack) for the loads after */
		asm volatile("" : "+r"(word), "+r"(sum));
	}
	return sum;
}

/* The TCP/UDP/ICMPv6 pseudo header of an IPv4 or IPv6 packet. */
static __always_inline __u32 ks_csum_pseudo(const struct ks_addr *saddr,
					    const struct ks_addr *daddr, __u8 family, __u8 proto,
					    __u32 len)
{
	__u32 sum = 0;
	int i;

	if (family == KS_FAMILY_V4) {
		sum = ks_csum_add(sum, saddr->v4);
		sum = ks_csum_add(sum, daddr->v4);
	} else {
#pragma unroll
		for (i = 0; i < 4; i++) {
			sum = ks_csum_add(sum, saddr->v6[i]);
			sum = ks_csum_add(sum, daddr->v6[i]);
		}
	}
	sum = ks_csum_add(sum, bpf_htonl(len));
	return ks_csum_add(sum, bpf_htonl(proto));
}

/*
 * Partial checksums. A sender that leaves its TCP/UDP checksum to offload
 * (CHECKSUM_PARTIAL: every local veth peer does) puts in the field only the
 * folded sum of the pseudo header, for the device, or the kernel on the way
 * out of an interface without offload, to complete over the L4 header and
 * payload. The skb says so; a BPF program cannot read it, and an XDP frame
 * has lost it. kshift recognises a partial checksum by its value: exactly
 * the pseudo-header seed. A full checksum has that value once in 65536
 * packets, so this is asked only where partial ones can come at all.
 */
static __always_inline __u16 ks_csum_seed(const struct ks_addr *saddr, const struct ks_addr *daddr,
					  __u8 family, __u8 proto, __u32 l4_len)
{
	return (__u16)~ks_csum_fold(ks_csum_pseudo(saddr, daddr, family, proto, l4_len));
}

#endif /* KS_BPF_CSUM_H */
