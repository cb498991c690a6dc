// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* First-fit range allocator with deferred reuse; see ranges.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ranges.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int grow(struct ks_range **v, size_t *cap, size_t need)
{
	struct ks_range *n;
	size_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	n = realloc(*v, c * sizeof(*n));
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = c;
	return 0;
}

int ks_ranges_init(struct ks_ranges *r, uint32_t size, uint64_t grace_ns)
{
	memset(r, 0, sizeof(*r));
	r->size = size;
	r->grace_ns = grace_ns;
	if (grow(&r->free, &r->cap_free, 1))
		return -ENOMEM;
	r->free[0] = (struct ks_range){ .off = 0, .len = size };
	r->nr_free = 1;
	return 0;
}

void ks_ranges_destroy(struct ks_ranges *r)
{
	free(r->free);
	free(r->held);
	memset(r, 0, sizeof(*r));
}

/* Inserts into the sorted free list, merging with its neighbours. */
static int insert_free(struct ks_ranges *r, uint32_t off, uint32_t len)
{
	size_t i = 0;

	while (i < r->nr_free && r->free[i].off < off)
		i++;
	if (i > 0 && r->free[i - 1].off + r->free[i - 1].len == off) {
		r->free[i - 1].len += len;
		if (i < r->nr_free && off + len == r->free[i].off) {
			r->free[i - 1].len += r->free[i].len;
			memmove(&r->free[i], &r->free[i + 1],
				(r->nr_free - i - 1) * sizeof(*r->free));
			r->nr_free--;
		}
		return 0;
	}
	if (i < r->nr_free && off + len == r->free[i].off) {
		r->free[i].off = off;
		r->free[i].len += len;
		return 0;
	}
	if (grow(&r->free, &r->cap_free, r->nr_free + 1))
		return -ENOMEM;
	memmove(&r->free[i + 1], &r->free[i], (r->nr_free - i) * sizeof(*r->free));
	r->free[i] = (struct ks_range){ .off = off, .len = len };
	r->nr_free++;
	return 0;
}

static void reclaim(struct ks_ranges *r)
{
	uint64_t now = now_ns();
	size_t i = 0, kept = 0;

	for (i = 0; i < r->nr_held; i++) {
		if (now - r->held[i].freed_ns >= r->grace_ns &&
		    !insert_free(r, r->held[i].off, r->held[i].len))
			continue;
		r->held[kept++] = r->held[i];
	}
	r->nr_held = kept;
}

int ks_ranges_alloc(struct ks_ranges *r, uint32_t len, uint32_t *off)
{
	int pass;
	size_t i;

	*off = 0;
	if (!len)
		return 0;
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < r->nr_free; i++) {
			if (r->free[i].len < len)
				continue;
			*off = r->free[i].off;
			r->free[i].off += len;
			r->free[i].len -= len;
			if (!r->free[i].len) {
				memmove(&r->free[i], &r->free[i + 1],
					(r->nr_free - i - 1) * sizeof(*r->free));
				r->nr_free--;
			}
			return 0;
		}
		reclaim(r);
	}
	return -ENOSPC;
}

void ks_ranges_release(struct ks_ranges *r, uint32_t off, uint32_t len)
{
	if (!len)
		return;
	/* if the held list cannot grow, reuse at once rather than leak */
	if (grow(&r->held, &r->cap_held, r->nr_held + 1)) {
		insert_free(r, off, len);
		return;
	}
	r->held[r->nr_held++] = (struct ks_range){ .off = off, .len = len, .freed_ns = now_ns() };
}
