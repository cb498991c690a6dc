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

/*
 * Ring size for a backend going to n endpoints whose ring now has `current`
 * slots (0 if it has none). A ring keeps its size while n fits it, because
 * a flow's slot is hash % size: a new size would move almost every flow.
 * Sizes: 0 for no endpoint, 1 for one, else the smallest of the primes
 * KS_RING_SIZE_MIN, 16411, KS_RING_SIZE_MAX that gives every endpoint at
 * least KS_RING_PER_ENDPOINT slots (KS_RING_SIZE_MAX past that). A ring
 * grows when n outgrows it and is never shrunk while n >= 2.
 */
uint32_t ks_ring_size(uint32_t n, uint32_t current);

/*
 * Fills ring[0..size) from scratch with indexes into eps[0..n): Maglev's
 * permutation fill. The ring depends only on the set of endpoints (address,
 * port, family), not on their order. Every endpoint gets floor(size/n) or
 * ceil(size/n) slots. Returns 0, or -EINVAL (n is 0 or above 65535, size is
 * below n or not prime, eps has a duplicate), -ENOMEM.
 */
int ks_maglev_fill(const struct ks_endpoint *eps, uint32_t n, uint16_t *ring, uint32_t size);

/*
 * Builds the ring for a new set of endpoints from the ring of the old set,
 * of the same size, moving as few slots as balance allows: slots of
 * endpoints that stay keep them, except that endpoints over their new quota
 * (floor or ceil of size/n) give up the excess; freed slots go to endpoints
 * under quota in Maglev preference order. So removing one of n endpoints
 * moves about 1/n of the slots and adding one about 1/(n+1), where a fresh
 * fill would move several percent more. Same errors as ks_maglev_fill, and
 * -EINVAL when old_ring holds an index >= old_n.
 */
int ks_maglev_update(const struct ks_endpoint *old_eps, uint32_t old_n, const uint16_t *old_ring,
		     const struct ks_endpoint *eps, uint32_t n, uint16_t *ring, uint32_t size);

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
