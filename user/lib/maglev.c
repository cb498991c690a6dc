// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Maglev rings for a backend's endpoints and the weight thresholds that split
 * new flows between backends; the contract is in maglev.h.
 *
 * Every node must build the same ring for the same set of endpoints, so the
 * hash below and the way it feeds offset and skip are part of the dataplane's
 * behaviour: changing either moves flows the next time rings are rebuilt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "maglev.h"

/* An endpoint's identity in a fixed byte order: family, address, port (the
 * last two exactly as on the wire), so the hash is the same on every host
 * whatever its endianness, and the pad byte never matters. */
#define KS_ID_LEN (1 + 16 + 2)

struct ks_mg_entry {
	uint8_t id[KS_ID_LEN];
	uint32_t idx;  /* into the caller's eps */
	uint32_t skip; /* 1..size-1: with size prime, one step through a permutation */
	uint32_t pos;  /* next slot this endpoint would like */
};

/* Seeds for the two independent hashes Maglev wants (offset and skip). */
#define KS_MG_SEED_OFFSET 0x6b73686966742d31ULL /* "kshift-1" */
#define KS_MG_SEED_SKIP	  0x6b73686966742d32ULL /* "kshift-2" */

#define FNV64_BASIS 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x00000100000001b3ULL

/* FNV-1a over the bytes, then MurmurHash3's fmix64: FNV alone mixes the last
 * bytes (the port) poorly into the high bits, the finalizer fixes that. */
static uint64_t ks_mg_hash(const uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t h = FNV64_BASIS ^ seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV64_PRIME;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static int ks_mg_cmp(const void *a, const void *b)
{
	const struct ks_mg_entry *x = a, *y = b;

	return memcmp(x->id, y->id, KS_ID_LEN);
}

static int ks_is_prime(uint32_t m)
{
	uint32_t d;

	if (m < 2)
		return 0;
	if (m % 2 == 0)
		return m == 2;
	for (d = 3; d <= m / d; d += 2)
		if (m % d == 0)
			return 0;
	return 1;
}

uint32_t ks_ring_size(uint32_t n)
{
	uint64_t want = (uint64_t)KS_RING_PER_ENDPOINT * n;
	uint32_t m;

	if (n <= 1)
		return n;
	/* KS_RING_MAX_SIZE is prime, so capping keeps the ring size prime. */
	if (want >= KS_RING_MAX_SIZE)
		return KS_RING_MAX_SIZE;
	for (m = want; !ks_is_prime(m); m++)
		;
	return m;
}

int ks_maglev_fill(const struct ks_endpoint *eps, uint32_t n, uint32_t *ring, uint32_t size)
{
	struct ks_mg_entry *e;
	uint32_t i, filled;

	if (!eps || !ring || n == 0 || size != ks_ring_size(n))
		return -EINVAL;

	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		e[i].id[0] = eps[i].family;
		memcpy(&e[i].id[1], eps[i].addr.bytes, 16);
		memcpy(&e[i].id[17], &eps[i].port, 2);
		e[i].idx = i;
	}
	/* Work in identity order, so the ring depends on the set alone: the
	 * fill below hands out slots round-robin, and the order of that round
	 * decides who wins a contested slot. */
	qsort(e, n, sizeof(*e), ks_mg_cmp);
	for (i = 1; i < n; i++) {
		if (!ks_mg_cmp(&e[i - 1], &e[i])) {
			free(e);
			return -EINVAL;
		}
	}

	if (n == 1) {
		/* size 1: skip would be taken modulo 0 below */
		ring[0] = e[0].idx;
		free(e);
		return 0;
	}

	for (i = 0; i < n; i++) {
		e[i].pos = ks_mg_hash(e[i].id, KS_ID_LEN, KS_MG_SEED_OFFSET) % size;
		e[i].skip = ks_mg_hash(e[i].id, KS_ID_LEN, KS_MG_SEED_SKIP) % (size - 1) + 1;
	}
	for (i = 0; i < size; i++)
		ring[i] = UINT32_MAX;

	/* Each endpoint in turn takes the next free slot of its permutation
	 * (offset, offset + skip, ... mod size). size is prime and skip is in
	 * 1..size-1, so every permutation visits every slot and each probe loop
	 * ends while a slot is still free; the rounds also keep the endpoints'
	 * slot counts within one of each other. */
	filled = 0;
	for (;;) {
		for (i = 0; i < n; i++) {
			struct ks_mg_entry *p = &e[i];

			while (ring[p->pos] != UINT32_MAX) {
				p->pos += p->skip;
				if (p->pos >= size)
					p->pos -= size;
			}
			ring[p->pos] = p->idx;
			p->pos += p->skip;
			if (p->pos >= size)
				p->pos -= size;
			if (++filled == size)
				goto out;
		}
	}
out:
	free(e);
	return 0;
}

uint32_t ks_split_thresholds(const uint32_t *weights, uint32_t n, struct ks_split *split)
{
	uint64_t total = 0, cum = 0;
	uint32_t i, nr = 0, taking = 0;

	memset(split->threshold, 0, sizeof(split->threshold));
	split->nr_backends = 0;
	/* More backends than the map holds is a caller bug; taking no new
	 * flows is louder than silently dropping the extra backends. */
	if (n > KS_MAX_BACKENDS)
		return 0;

	for (i = 0; i < n; i++) {
		total += weights[i];
		if (weights[i])
			nr = i + 1;
	}
	if (!total)
		return 0;

	/* threshold[i] = floor(cum_i * 2^32 / total): each backend's range is
	 * then within one hash of its exact share. cum_i * 2^32 needs up to
	 * 67 bits. Only the cumulative sums through the last backend reach
	 * 2^32, and they saturate: ks_split_pick gives the last backend
	 * everything at or above the one before it anyway. */
	for (i = 0; i < n; i++) {
		unsigned __int128 t;

		cum += weights[i];
		t = ((unsigned __int128)cum << 32) / total;
		split->threshold[i] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
	}
	split->nr_backends = nr;

	/* A zero weight gives an empty range; so can a weight below one part in
	 * 2^32 of the total, which is why this counts ranges, not weights. */
	for (i = 0; i < nr; i++) {
		uint64_t lo = i ? split->threshold[i - 1] : 0;
		uint64_t hi = i + 1 < nr ? split->threshold[i] : 1ULL << 32;

		if (hi > lo)
			taking++;
	}
	return taking;
}
