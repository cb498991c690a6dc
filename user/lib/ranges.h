/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * First-fit allocation of [off, off + len) ranges inside a fixed space: the
 * slots of ks_ring and ks_endpoints. A freed range is held back for a grace
 * period before reuse, because a BPF program on another CPU may have read
 * the old split just before the flip and still be reading its ring.
 */
#ifndef KSHIFT_RANGES_H
#define KSHIFT_RANGES_H

#include <stddef.h>
#include <stdint.h>

struct ks_range {
	uint32_t off;
	uint32_t len;
	uint64_t freed_ns; /* held ranges: when they were freed */
};

struct ks_ranges {
	uint32_t size;
	struct ks_range *free; /* sorted by off, coalesced */
	size_t nr_free, cap_free;
	struct ks_range *held;
	size_t nr_held, cap_held;
	uint64_t grace_ns;
};

int ks_ranges_init(struct ks_ranges *r, uint32_t size, uint64_t grace_ns);
void ks_ranges_destroy(struct ks_ranges *r);
/* 0 and *off, or -ENOSPC (after reclaiming held ranges past their grace),
 * -ENOMEM. len 0 gives off 0 and takes nothing. */
int ks_ranges_alloc(struct ks_ranges *r, uint32_t len, uint32_t *off);
/* Gives a range back; reusable once the grace period has passed. */
void ks_ranges_release(struct ks_ranges *r, uint32_t off, uint32_t len);

#endif /* KSHIFT_RANGES_H */
