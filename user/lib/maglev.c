// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Maglev rings for a backend's endpoints and the weight thresholds that split
 * new flows between backends; the contract is in maglev.h.
 *
 * Every node must build the same ring from the same inputs, so the hash below,
 * the way it feeds offset and skip, and the rules that decide contested slots
 * are part of the dataplane's behaviour: changing any of them moves flows the
 * next time rings are rebuilt.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kshift/hash.h>
#include "maglev.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Ring size classes, primes about 4x apart, so at KS_RING_PER_ENDPOINT
 * slots each they cover 2..16, 17..64, 65..256 and 257.. endpoints. */
static const uint32_t ks_ring_sizes[] = { KS_RING_SIZE_MIN, 4099, 16411, KS_RING_SIZE_MAX };

/* Ring entries are u16 endpoint indexes; this one is never an index, since
 * n <= 65535, so it marks a free slot while a ring is built. */
#define KS_MG_FREE    UINT16_MAX
#define KS_MG_MAX_EPS UINT16_MAX

/* An endpoint's identity in a fixed byte order: family, address, port (the
 * last two exactly as on the wire), so the hash is the same on every host
 * whatever its endianness, and the pad byte never matters. */
#define KS_ID_LEN (1 + 16 + 2)

struct ks_mg_entry {
	uint8_t id[KS_ID_LEN];
	uint32_t idx;	 /* into the caller's eps */
	uint32_t offset; /* first slot of this endpoint's permutation */
	uint32_t skip;	 /* 1..size-1: with size prime, one step through a permutation */
	uint32_t pos;	 /* next slot this endpoint would like */
	uint32_t inv;	 /* skip's inverse mod size: slot -> rank in the permutation */
	uint32_t have;	 /* slots it holds */
	uint32_t quota;	 /* slots it ends up with: floor or ceil of size / n */
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
	return ks_hash_mix(h);
}

static void ks_mg_id(const struct ks_endpoint *ep, uint8_t *id)
{
	id[0] = ep->family;
	memcpy(&id[1], ep->addr.bytes, 16);
	memcpy(&id[17], &ep->port, 2);
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

uint32_t ks_ring_size(uint32_t n, uint32_t current)
{
	uint64_t want = (uint64_t)KS_RING_PER_ENDPOINT * n;
	uint32_t keep = 0, i;

	if (n <= 1)
		return n;
	/* Only a size this function hands out is kept: anything else (1, or
	 * a ring built some other way) is replaced by a proper class now,
	 * rather than kept to move every flow at some later growth. */
	for (i = 0; i < ARRAY_SIZE(ks_ring_sizes); i++)
		if (current == ks_ring_sizes[i])
			keep = current;
	for (i = 0; i + 1 < ARRAY_SIZE(ks_ring_sizes); i++)
		if (ks_ring_sizes[i] >= want && ks_ring_sizes[i] >= keep)
			break;
	return ks_ring_sizes[i];
}

/*
 * Checks eps and size, and returns in *out the endpoints sorted by identity
 * with their permutations. Everything below works in identity order, so a
 * ring depends on the set alone, never on the order of the caller's array:
 * round-robin claiming decides who wins a contested slot by that order.
 */
static int ks_mg_prepare(const struct ks_endpoint *eps, uint32_t n, uint32_t size,
			 struct ks_mg_entry **out)
{
	struct ks_mg_entry *e;
	uint32_t i;

	/* size 1 is not prime but is the ring of a lone endpoint: every
	 * permutation of one slot visits it. */
	if (!eps || n == 0 || n > KS_MG_MAX_EPS || size < n || (size > 1 && !ks_is_prime(size)))
		return -EINVAL;

	e = calloc(n, sizeof(*e));
	if (!e)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		ks_mg_id(&eps[i], e[i].id);
		e[i].idx = i;
	}
	qsort(e, n, sizeof(*e), ks_mg_cmp);
	for (i = 1; i < n; i++) {
		if (!ks_mg_cmp(&e[i - 1], &e[i])) {
			free(e);
			return -EINVAL;
		}
	}
	for (i = 0; i < n; i++) {
		e[i].offset = ks_mg_hash(e[i].id, KS_ID_LEN, KS_MG_SEED_OFFSET) % size;
		e[i].skip =
			size > 1 ? ks_mg_hash(e[i].id, KS_ID_LEN, KS_MG_SEED_SKIP) % (size - 1) + 1
				 : 1;
		e[i].pos = e[i].offset;
	}
	*out = e;
	return 0;
}

/*
 * Maglev's fill, restricted to free slots: in rounds, in identity order, each
 * endpoint still under its quota takes the next free slot of its permutation
 * (offset, offset + skip, ... mod size). size is prime and skip is in
 * 1..size-1, so a permutation visits every slot; the quotas sum to size, so
 * a free slot remains while anyone is under quota and every probe ends.
 * own[] holds positions in e[], KS_MG_FREE for a free slot; active[] is
 * scratch for n entries.
 */
static void ks_mg_claim(struct ks_mg_entry *e, uint32_t n, uint16_t *own, uint32_t size,
			uint32_t *active)
{
	uint32_t na = 0, i, k;

	for (i = 0; i < n; i++)
		if (e[i].have < e[i].quota)
			active[na++] = i;
	while (na) {
		for (i = k = 0; i < na; i++) {
			struct ks_mg_entry *p = &e[active[i]];

			while (own[p->pos] != KS_MG_FREE) {
				p->pos += p->skip;
				if (p->pos >= size)
					p->pos -= size;
			}
			own[p->pos] = active[i];
			p->pos += p->skip;
			if (p->pos >= size)
				p->pos -= size;
			if (++p->have < p->quota)
				active[k++] = active[i];
		}
		na = k;
	}
}

/* From positions in e[] to the caller's indexes, in place. */
static void ks_mg_emit(const struct ks_mg_entry *e, uint16_t *ring, uint32_t size)
{
	uint32_t i;

	for (i = 0; i < size; i++)
		ring[i] = e[ring[i]].idx;
}

int ks_maglev_fill(const struct ks_endpoint *eps, uint32_t n, uint16_t *ring, uint32_t size)
{
	struct ks_mg_entry *e;
	uint32_t *active;
	uint32_t i;
	int err;

	if (!ring)
		return -EINVAL;
	err = ks_mg_prepare(eps, n, size, &e);
	if (err)
		return err;
	active = malloc(n * sizeof(*active));
	if (!active) {
		free(e);
		return -ENOMEM;
	}

	/* The first size % n endpoints in identity order get the extra slot:
	 * with every endpoint under quota from the start, this is exactly the
	 * paper's fill, which stops when the ring is full partway through a
	 * round. */
	for (i = 0; i < n; i++)
		e[i].quota = size / n + (i < size % n);
	for (i = 0; i < size; i++)
		ring[i] = KS_MG_FREE;
	ks_mg_claim(e, n, ring, size, active);
	ks_mg_emit(e, ring, size);
	free(active);
	free(e);
	return 0;
}

/* Inverse of a modulo the prime m (0 < a < m), by extended Euclid. */
static uint32_t ks_mg_inverse(uint32_t a, uint32_t m)
{
	int64_t t = 0, t1 = 1, r = m, r1 = a;

	while (r1) {
		int64_t q = r / r1, x;

		x = t - q * t1;
		t = t1;
		t1 = x;
		x = r - q * r1;
		r = r1;
		r1 = x;
	}
	return t < 0 ? t + m : t;
}

struct ks_mg_held {
	uint32_t owner; /* position in e[] */
	uint32_t rank;	/* where the slot comes in its owner's permutation */
	uint32_t slot;
};

static int ks_mg_held_cmp(const void *a, const void *b)
{
	const struct ks_mg_held *x = a, *y = b;

	if (x->owner != y->owner)
		return x->owner < y->owner ? -1 : 1;
	return x->rank < y->rank ? 1 : x->rank > y->rank ? -1 : 0;
}

/*
 * Frees the slots of endpoints holding more than their quota. An endpoint
 * gives up the slots that come last in its own permutation, the ones a fresh
 * fill would have given it last. That depends on identities alone, like the
 * rest, and keeps an endpoint's slots scattered the way Maglev scatters them:
 * giving up, say, the highest slot numbers would, over many updates, gather
 * each endpoint's slots into bands of the ring, and make its load depend on
 * the flow hash being even over every range of hash % size.
 * held[] is scratch for size entries.
 */
static void ks_mg_release(struct ks_mg_entry *e, uint32_t n, uint16_t *own, uint32_t size,
			  struct ks_mg_held *held)
{
	uint32_t nh = 0, i;

	/* size > 1 here: with one slot nobody can hold more than its quota. */
	for (i = 0; i < n; i++)
		if (e[i].have > e[i].quota)
			e[i].inv = ks_mg_inverse(e[i].skip, size);
	for (i = 0; i < size; i++) {
		const struct ks_mg_entry *p;

		if (own[i] == KS_MG_FREE)
			continue;
		p = &e[own[i]];
		if (p->have <= p->quota)
			continue;
		/* slot = offset + rank * skip (mod size), solved for rank */
		held[nh].owner = own[i];
		held[nh].rank = (uint64_t)((i + size - p->offset) % size) * p->inv % size;
		held[nh].slot = i;
		nh++;
	}
	qsort(held, nh, sizeof(*held), ks_mg_held_cmp);
	for (i = 0; i < nh; i++) {
		struct ks_mg_entry *p = &e[held[i].owner];

		if (p->have > p->quota) {
			own[held[i].slot] = KS_MG_FREE;
			p->have--;
		}
	}
}

int ks_maglev_update(const struct ks_endpoint *old_eps, uint32_t old_n, const uint16_t *old_ring,
		     const struct ks_endpoint *eps, uint32_t n, uint16_t *ring, uint32_t size)
{
	struct ks_mg_entry *e, key;
	struct ks_mg_held *held = NULL;
	uint32_t *old2new = NULL, *active = NULL, q, r, i;
	int err;

	if (!ring || !old_ring || !old_eps || old_n == 0 || old_n > KS_MG_MAX_EPS)
		return -EINVAL;
	err = ks_mg_prepare(eps, n, size, &e);
	if (err)
		return err;
	/* Everything is checked and allocated before ring is written, so a
	 * failed call leaves it as it was, and ring may be old_ring itself. */
	for (i = 0; i < size; i++) {
		if (old_ring[i] >= old_n) {
			err = -EINVAL;
			goto out;
		}
	}
	old2new = malloc(old_n * sizeof(*old2new));
	active = malloc(n * sizeof(*active));
	held = malloc(size * sizeof(*held));
	if (!old2new || !active || !held) {
		err = -ENOMEM;
		goto out;
	}

	/* Old endpoints are matched to new ones by identity, since the two
	 * arrays may order (and index) them differently. */
	for (i = 0; i < old_n; i++) {
		struct ks_mg_entry *hit;

		ks_mg_id(&old_eps[i], key.id);
		hit = bsearch(&key, e, n, sizeof(*e), ks_mg_cmp);
		old2new[i] = hit ? (uint32_t)(hit - e) : KS_MG_FREE;
	}
	for (i = 0; i < size; i++) {
		uint32_t owner = old2new[old_ring[i]];

		ring[i] = owner;
		if (owner != KS_MG_FREE)
			e[owner].have++;
	}

	/*
	 * size = q * n + r: r endpoints get q + 1 slots. An endpoint that
	 * holds more than q keeps one more slot if it gets the extra one, any
	 * other gains nothing from it, so the extras go first to endpoints
	 * above q, then to the rest, each time in identity order. That moves
	 * the fewest slots balance allows, and an unchanged, balanced set
	 * keeps its ring exactly.
	 */
	q = size / n;
	r = size % n;
	for (i = 0; i < n; i++) {
		e[i].quota = q;
		if (r && e[i].have > q) {
			e[i].quota++;
			r--;
		}
	}
	for (i = 0; i < n && r; i++) {
		if (e[i].quota == q) {
			e[i].quota++;
			r--;
		}
	}

	ks_mg_release(e, n, ring, size, held);
	ks_mg_claim(e, n, ring, size, active);
	ks_mg_emit(e, ring, size);
out:
	free(held);
	free(active);
	free(old2new);
	free(e);
	return err;
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
