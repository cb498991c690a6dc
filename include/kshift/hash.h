/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The 64-bit mixing step shared by the BPF flow hash and the Maglev ring
 * builder: the finalizer of MurmurHash3's 64-bit variant. Every input bit
 * flips about half the output bits, at the cost of two multiplies.
 */
#ifndef KSHIFT_HASH_H
#define KSHIFT_HASH_H

#ifdef __bpf__
#include "vmlinux.h"
#else
#include <linux/types.h>
#endif

static inline __u64 ks_hash_mix(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

#endif /* KSHIFT_HASH_H */
