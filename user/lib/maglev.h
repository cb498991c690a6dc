/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Consistent hashing of flows onto a backend's endpoints (Maglev, Eisenbud
 * et al., NSDI 2016), and the weight thresholds that split new flows between
 * backends. Plain C with no BPF, so both are unit tested without root.
 */
#ifndef KSHIFT_MAGLEV_H
#define KSHIFT_MAGLEV_H

#include <stdint.h>
#include <kshift/abi.h>

/* Ring size for n endpoints: 0 for none, 1 for one, else the smallest prime
 * >= KS_RING_PER_ENDPOINT * n, capped at KS_RING_MAX_SIZE. */
uint32_t ks_ring_size(uint32_t n);

/*
 * Fills ring[0..size) with indexes into eps[0..n). The ring depends only on
 * the set of endpoints (their address, port and family), not on their order,
 * so every node builds the same ring for the same set. Returns 0, or -EINVAL
 * when n is 0 or size is not ks_ring_size(n), -ENOMEM.
 */
int ks_maglev_fill(const struct ks_endpoint *eps, uint32_t n, uint32_t *ring, uint32_t size);

/*
 * Sets split->nr_backends and split->threshold[] from weights[0..n), where
 * weight 0 means the backend takes no new flows (a backend with no usable
 * endpoint must be passed as weight 0). Backend i then takes a share
 * weights[i] / sum(weights) of the 32-bit hash space, within one part in
 * 2^32. Returns the number of backends that take flows. n <= KS_MAX_BACKENDS.
 */
uint32_t ks_split_thresholds(const uint32_t *weights, uint32_t n, struct ks_split *split);

/* The backend a hash selects: what the BPF program computes, in C. */
static inline uint32_t ks_split_pick(const struct ks_split *split, uint32_t hash)
{
	uint32_t i;

	for (i = 0; i + 1 < split->nr_backends; i++)
		if (hash < split->threshold[i])
			return i;
	return i;
}

#endif /* KSHIFT_MAGLEV_H */
