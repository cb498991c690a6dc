/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One backend's Maglev ring slice (struct ks_ring_slice in
 * include/kshift/abi.h) asked for the endpoint of a hash: ks_pick's last
 * step, and the one passive health repeats with other hashes when the
 * first answer is quarantined (bpf/lib/health.h).
 */
#ifndef KS_BPF_RING_H
#define KS_BPF_RING_H

#include "common.h"
#include "maps.h"

/* The endpoint at the slot h falls on, or NULL (no usable endpoint). */
static __always_inline const struct ks_endpoint *ks_ring_ep(const struct ks_ring_slice *s, __u64 h)
{
	const struct ks_ring_chunk *chunk;
	__u32 slot, key, ep;

	if (!s->size)
		return NULL;
	slot = s->off + (__u32)h % s->size;
	key = slot / KS_RING_CHUNK;
	chunk = bpf_map_lookup_elem(&ks_ring, &key);
	if (!chunk)
		return NULL;
	ep = s->ep_base + chunk->ep[slot % KS_RING_CHUNK];
	return bpf_map_lookup_elem(&ks_endpoints, &ep);
}

#endif /* KS_BPF_RING_H */
