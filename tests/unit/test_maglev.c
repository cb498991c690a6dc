// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Maglev rings and weight thresholds (user/lib/maglev.c), as plain C.
 *
 * Rings are compared by endpoint identity, never by index, because a ring
 * holds indexes into whatever array the caller passed. Disruption is counted
 * slot by slot between rings of one size, which is exactly the share of flows
 * that move: the dataplane looks a flow up at ring[hash % size].
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/maglev.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ks_split_pick is checked on 2^20 evenly spaced hashes plus both extremes. */
#define SWEEP_SHIFT 20
#define SWEEP_STEP  (1U << (32 - SWEEP_SHIFT))

#define RING_SIZE_SMALL 4099 /* the size classes between min and max, see ks_ring_size */
#define RING_SIZE_MID	16411

/* What a change of the set by one endpoint may move beyond the 1/n that
 * must move (the share of the endpoint that leaves or arrives). */
#define MOVE_SLACK 0.01

static uint64_t rng_state;

/* splitmix64: a fixed, seedable stream so every run tests the same cases. */
static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Endpoint number id (below 2^16), the same identity whichever set it is in:
 * even ids IPv4 10.a.b.1, odd ids IPv6 2001:db8::id, so every set mixes
 * families. */
static struct ks_endpoint ep_make(uint32_t id)
{
	struct ks_endpoint ep;

	memset(&ep, 0, sizeof(ep));
	if (id % 2 == 0) {
		ep.family = KS_FAMILY_V4;
		ep.addr.v4 = htonl(0x0a000001 | (id & 0xffff) << 8);
		ep.port = htons(8080 + id % 3);
	} else {
		ep.family = KS_FAMILY_V6;
		ep.addr.v6[0] = htonl(0x20010db8);
		ep.addr.v6[3] = htonl(id);
		ep.port = htons(443);
	}
	return ep;
}

static struct ks_endpoint *eps_make(uint32_t n)
{
	struct ks_endpoint *eps = calloc(n ? n : 1, sizeof(*eps));
	uint32_t i;

	assert_non_null(eps);
	for (i = 0; i < n; i++)
		eps[i] = ep_make(i);
	return eps;
}

static struct ks_endpoint *eps_copy(const struct ks_endpoint *eps, uint32_t n)
{
	struct ks_endpoint *c = malloc((n ? n : 1) * sizeof(*c));

	assert_non_null(c);
	memcpy(c, eps, n * sizeof(*c));
	return c;
}

static void eps_shuffle(struct ks_endpoint *eps, uint32_t n)
{
	uint32_t i;

	for (i = n - 1; i > 0 && n; i--) {
		uint32_t j = rng_next() % (i + 1);
		struct ks_endpoint t = eps[i];

		eps[i] = eps[j];
		eps[j] = t;
	}
}

static int ep_same(const struct ks_endpoint *a, const struct ks_endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr.bytes));
}

static uint16_t *ring_alloc(uint32_t size)
{
	uint16_t *ring = calloc(size ? size : 1, sizeof(*ring));

	assert_non_null(ring);
	return ring;
}

static uint16_t *ring_fill(const struct ks_endpoint *eps, uint32_t n, uint32_t size)
{
	uint16_t *ring = ring_alloc(size);
	uint32_t i;

	assert_int_equal(ks_maglev_fill(eps, n, ring, size), 0);
	for (i = 0; i < size; i++)
		assert_true(ring[i] < n);
	return ring;
}

/* Every endpoint holds floor(size / n) or ceil(size / n) slots. Returns the
 * largest distance of a share from 1/n. */
static double assert_balanced(const uint16_t *ring, uint32_t size, uint32_t n)
{
	uint32_t *count = calloc(n, sizeof(*count));
	double worst = 0;
	uint32_t i;

	assert_non_null(count);
	for (i = 0; i < size; i++) {
		assert_true(ring[i] < n);
		count[ring[i]]++;
	}
	for (i = 0; i < n; i++) {
		double err = (double)count[i] / size - 1.0 / n;

		assert_true(count[i] == size / n || count[i] == (size + n - 1) / n);
		if (err < 0)
			err = -err;
		if (err > worst)
			worst = err;
	}
	free(count);
	return worst;
}

/* a's index -> b's index of the same endpoint, or UINT32_MAX. */
static uint32_t *eps_match(const struct ks_endpoint *a, uint32_t na, const struct ks_endpoint *b,
			   uint32_t nb)
{
	uint32_t *a2b = malloc((na ? na : 1) * sizeof(*a2b));
	uint32_t i, j;

	assert_non_null(a2b);
	for (i = 0; i < na; i++) {
		a2b[i] = UINT32_MAX;
		for (j = 0; j < nb; j++)
			if (ep_same(&a[i], &b[j]))
				a2b[i] = j;
	}
	return a2b;
}

/* Slots whose endpoint, by identity, differs between two rings of a size. */
static uint32_t moved_slots(const struct ks_endpoint *a, uint32_t na, const uint16_t *ra,
			    const struct ks_endpoint *b, uint32_t nb, const uint16_t *rb,
			    uint32_t size)
{
	uint32_t *a2b = eps_match(a, na, b, nb);
	uint32_t i, moved = 0;

	for (i = 0; i < size; i++)
		moved += a2b[ra[i]] != rb[i];
	free(a2b);
	return moved;
}

/*
 * The fewest slots any balanced ring for b can move from ring ra of set a:
 * the slots of endpoints that left, plus what stayers hold above their
 * quota, where the size % nb extra slots go to stayers above the floor.
 */
static uint32_t min_moves(const struct ks_endpoint *a, uint32_t na, const uint16_t *ra,
			  const struct ks_endpoint *b, uint32_t nb, uint32_t size)
{
	uint32_t *a2b = eps_match(a, na, b, nb), *held = calloc(nb, sizeof(*held));
	uint32_t q = size / nb, r = size % nb, over = 0, moves = 0, i;

	assert_non_null(held);
	for (i = 0; i < size; i++) {
		if (a2b[ra[i]] == UINT32_MAX)
			moves++;
		else
			held[a2b[ra[i]]]++;
	}
	for (i = 0; i < nb; i++) {
		if (held[i] > q) {
			moves += held[i] - q;
			over++;
		}
	}
	free(held);
	free(a2b);
	return moves - (over < r ? over : r);
}

/*
 * Updates ring ra of set a to set b (and when in_place, again with the old
 * ring as the output buffer, for the same result), and checks what every
 * update must do: a balanced ring that moves no more slots than
 * balance demands. Returns the new ring and the slots moved.
 */
static uint16_t *update_checked(const struct ks_endpoint *a, uint32_t na, const uint16_t *ra,
				const struct ks_endpoint *b, uint32_t nb, uint32_t size,
				int in_place, uint32_t *moved)
{
	uint16_t *rb = ring_alloc(size);
	uint32_t least = min_moves(a, na, ra, b, nb, size);

	assert_int_equal(ks_maglev_update(a, na, ra, b, nb, rb, size), 0);
	if (in_place) {
		uint16_t *same = ring_alloc(size);

		memcpy(same, ra, size * sizeof(*ra));
		assert_int_equal(ks_maglev_update(a, na, same, b, nb, same, size), 0);
		assert_memory_equal(same, rb, size * sizeof(*rb));
		free(same);
	}
	assert_balanced(rb, size, nb);
	*moved = moved_slots(a, na, ra, b, nb, rb, size);
	assert_int_equal(*moved, least);
	return rb;
}

static int is_prime(uint32_t m)
{
	uint32_t d;

	if (m < 2)
		return 0;
	for (d = 2; (uint64_t)d * d <= m; d++)
		if (m % d == 0)
			return 0;
	return 1;
}

static void test_ring_size(void **state)
{
	static const uint32_t classes[] = {KS_RING_SIZE_MIN, RING_SIZE_SMALL, RING_SIZE_MID,
					   KS_RING_SIZE_MAX};
	/* sizes a ring may have now, class or not */
	static const uint32_t currents[] = {
	    0,	   1,	      2, KS_RING_SIZE_MIN, RING_SIZE_SMALL, 4100, 5003, RING_SIZE_MID,
	    KS_RING_SIZE_MAX,
	    65521, UINT32_MAX};
	static const struct {
		uint32_t n, current, size;
	} known[] = {
	    {0, 0, 0},
	    {0, KS_RING_SIZE_MIN, 0},
	    {1, 0, 1},
	    {1, KS_RING_SIZE_MIN, 1}, /* one endpoint needs no ring to speak of */
	    {1, KS_RING_SIZE_MAX, 1},
	    {2, 0, KS_RING_SIZE_MIN},
	    {2, 1, KS_RING_SIZE_MIN},
	    {16, 0, KS_RING_SIZE_MIN},
	    {17, 0, RING_SIZE_SMALL},
	    {17, KS_RING_SIZE_MIN, RING_SIZE_SMALL}, /* outgrown */
	    {64, 0, RING_SIZE_SMALL},
	    {65, 0, RING_SIZE_MID},
	    {70, KS_RING_SIZE_MIN, RING_SIZE_MID}, /* outgrown */
	    {3, RING_SIZE_MID, RING_SIZE_MID},	   /* never shrunk */
	    {2, KS_RING_SIZE_MAX, KS_RING_SIZE_MAX},
	    {256, 0, RING_SIZE_MID},
	    {257, RING_SIZE_MID, KS_RING_SIZE_MAX},
	    {65535, 0, KS_RING_SIZE_MAX},
	    {3, 5003, KS_RING_SIZE_MIN},     /* not a size class: not kept */
	    {1U << 26, 0, KS_RING_SIZE_MAX}, /* KS_RING_PER_ENDPOINT * n overflows 32 bits */
	    {UINT32_MAX, KS_RING_SIZE_MIN, KS_RING_SIZE_MAX},
	};
	uint32_t n, c, k;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(classes); k++)
		assert_true(is_prime(classes[k]));
	for (k = 0; k < ARRAY_SIZE(known); k++)
		assert_int_equal(ks_ring_size(known[k].n, known[k].current), known[k].size);

	/* n >= 2: the smallest class that gives KS_RING_PER_ENDPOINT slots
	 * each and is no smaller than a current class */
	for (n = 2; n <= 70000; n++) {
		for (c = 0; c < ARRAY_SIZE(currents); c++) {
			uint32_t cur = currents[c], size = ks_ring_size(n, cur), keep = 0;

			for (k = 0; k < ARRAY_SIZE(classes); k++)
				if (cur == classes[k])
					keep = cur;
			for (k = 0; k + 1 < ARRAY_SIZE(classes); k++)
				if (classes[k] >= (uint64_t)KS_RING_PER_ENDPOINT * n &&
				    classes[k] >= keep)
					break;
			assert_int_equal(size, classes[k]);
		}
	}
}

static void test_fill_errors(void **state)
{
	struct ks_endpoint eps[3] = {ep_make(0), ep_make(1), ep_make(2)};
	struct ks_endpoint *many = eps_make(65536);
	uint32_t size = ks_ring_size(3, 0), i;
	uint16_t *ring = ring_alloc(KS_RING_SIZE_MAX);

	(void)state;
	for (i = 0; i < KS_RING_SIZE_MAX; i++)
		ring[i] = 0x5a5a;
	assert_int_equal(ks_maglev_fill(eps, 0, ring, 0), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 0, ring, size), -EINVAL);
	assert_int_equal(ks_maglev_fill(NULL, 3, ring, size), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 3, NULL, size), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, 2), -EINVAL);	   /* below n */
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size + 1), -EINVAL); /* not prime */
	assert_int_equal(ks_maglev_fill(eps, 3, ring, 9), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 2, ring, 1), -EINVAL);
	/* a u16 index and its free marker cannot tell 65536 endpoints apart */
	assert_int_equal(ks_maglev_fill(many, 65536, ring, KS_RING_SIZE_MAX), -EINVAL);

	/* duplicates are refused, even apart in the array, and the pad byte
	 * is not part of an endpoint's identity */
	eps[2] = eps[0];
	memset(&eps[2].pad, 7, sizeof(eps[2].pad));
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), -EINVAL);
	/* a refused call leaves the ring alone */
	for (i = 0; i < KS_RING_SIZE_MAX; i++)
		assert_int_equal(ring[i], 0x5a5a);

	/* the same bytes under another family, or another port, is another
	 * endpoint */
	eps[2] = eps[0];
	eps[2].family = KS_FAMILY_V6;
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), 0);
	eps[2] = eps[0];
	eps[2].port = htons(1);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), 0);

	/* one endpoint: a ring of one slot; any prime at least n will do */
	ring[0] = 99;
	assert_int_equal(ks_maglev_fill(eps, 1, ring, 1), 0);
	assert_int_equal(ring[0], 0);
	assert_int_equal(ks_maglev_fill(eps, 1, ring, 5), 0);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, 3), 0);
	assert_balanced(ring, 3, 3);
	assert_int_equal(ks_maglev_fill(eps, 2, ring, 2), 0);
	assert_balanced(ring, 2, 2);

	/* the most endpoints a ring can index */
	assert_int_equal(ks_maglev_fill(many, 65535, ring, KS_RING_SIZE_MAX), 0);
	assert_balanced(ring, KS_RING_SIZE_MAX, 65535);
	free(ring);
	free(many);
}

/* Each endpoint's share of slots is 1/n within a percentage point; in fact
 * the round-robin fill keeps slot counts within one of each other. */
static void test_fill_balance(void **state)
{
	static const uint32_t ns[] = {2, 3, 5, 10, 16, 32, 64, 100, 256, 1000};
	double worst = 0;
	uint32_t k;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], size = ks_ring_size(n, 0);
		struct ks_endpoint *eps = eps_make(n);
		uint16_t *ring = ring_fill(eps, n, size);
		double err = assert_balanced(ring, size, n);

		assert_true(err <= 0.01);
		if (err > worst)
			worst = err;
		free(ring);
		free(eps);
	}
	print_message("fill: worst share error %.5f percentage points\n", worst * 100);
}

/* Every node must build the same ring whatever order its endpoint list came
 * in. */
static void test_fill_order_independence(void **state)
{
	static const uint32_t ns[] = {2, 3, 7, 33, 64, 100};
	uint32_t k, round, i;

	(void)state;
	rng_state = 7;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], size = ks_ring_size(n, 0);
		struct ks_endpoint *eps = eps_make(n), *shuf = eps_make(n);
		uint16_t *ring = ring_fill(eps, n, size);

		for (round = 0; round < 4; round++) {
			uint16_t *ring2;

			eps_shuffle(shuf, n);
			ring2 = ring_fill(shuf, n, size);
			for (i = 0; i < size; i++)
				assert_true(ep_same(&eps[ring[i]], &shuf[ring2[i]]));
			free(ring2);
		}
		free(ring);
		free(shuf);
		free(eps);
	}
}

/* FNV-1a over the identities slot by slot, to pin rings below. */
static uint64_t ring_digest(const struct ks_endpoint *eps, const uint16_t *ring, uint32_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	uint32_t i, j;

	for (i = 0; i < size; i++) {
		const struct ks_endpoint *ep = &eps[ring[i]];
		uint8_t id[19];

		id[0] = ep->family;
		memcpy(&id[1], ep->addr.bytes, 16);
		memcpy(&id[17], &ep->port, 2);
		for (j = 0; j < sizeof(id); j++) {
			h ^= id[j];
			h *= 0x100000001b3ULL;
		}
	}
	return h;
}

static void assert_digest(const char *what, uint64_t digest, uint64_t recorded)
{
	if (digest != recorded)
		print_message("%s digest 0x%016llx, recorded 0x%016llx\n", what,
			      (unsigned long long)digest, (unsigned long long)recorded);
	assert_true(digest == recorded);
}

/*
 * The same inputs give the same ring on every call, and the same ring as the
 * build that recorded these digests: nodes running different builds during
 * an upgrade must agree, so a change to the hash, the fill or the update
 * rules that alters a digest moves flows, and needs to be deliberate.
 */
/* fill of endpoints 0..9; then that ring updated to lose 3, gain 10 and 11 */
#define FILL_DIGEST   0x4d60f9b9e6dcb1fdULL
#define UPDATE_DIGEST 0x0040afdbc94ef01aULL

static void test_fill_determinism(void **state)
{
	struct ks_endpoint *eps = eps_make(10);
	uint32_t size = ks_ring_size(10, 0), round;
	uint16_t *ring = ring_fill(eps, 10, size);

	(void)state;
	for (round = 0; round < 3; round++) {
		uint16_t *ring2 = ring_fill(eps, 10, size);

		assert_memory_equal(ring, ring2, size * sizeof(*ring));
		free(ring2);
	}
	assert_digest("fill", ring_digest(eps, ring, size), FILL_DIGEST);
	free(ring);
	free(eps);
}

static void test_update_errors(void **state)
{
	struct ks_endpoint a[3] = {ep_make(0), ep_make(1), ep_make(2)};
	struct ks_endpoint b[3] = {ep_make(1), ep_make(2), ep_make(3)};
	const uint32_t size = 7;
	uint16_t ra[7], rb[7], before[7];

	(void)state;
	assert_int_equal(ks_maglev_fill(a, 3, ra, size), 0);
	memset(rb, 0x5a, sizeof(rb));
	memcpy(before, rb, sizeof(rb));

	assert_int_equal(ks_maglev_update(NULL, 3, ra, b, 3, rb, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, NULL, b, 3, rb, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, ra, NULL, 3, rb, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 3, NULL, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 0, ra, b, 3, rb, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 0, rb, size), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 3, rb, 2), -EINVAL);
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 3, rb, 4), -EINVAL);
	/* an old ring that does not index the old endpoints */
	ra[5] = 3;
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 3, rb, size), -EINVAL);
	ra[5] = 0;
	/* duplicates in the new set, whatever the pad byte says */
	b[2] = b[0];
	memset(&b[2].pad, 1, sizeof(b[2].pad));
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 3, rb, size), -EINVAL);
	assert_memory_equal(rb, before, sizeof(rb));

	/* shrinking to one endpoint in the old ring's size is allowed */
	assert_int_equal(ks_maglev_update(a, 3, ra, b, 1, rb, size), 0);
	assert_balanced(rb, size, 1);
}

/* An unchanged set keeps its ring exactly, in whatever order it comes, and
 * so does a ring that came out of earlier updates. */
static void test_update_identical(void **state)
{
	static const uint32_t ns[] = {1, 2, 3, 10, 64, 100};
	uint32_t k, moved;

	(void)state;
	rng_state = 11;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], size = ks_ring_size(n, 0);
		struct ks_endpoint *a = eps_make(n + 1), *b = eps_copy(a, n);
		uint16_t *ra = ring_fill(a, n, size), *rb, *rc, *rd;

		eps_shuffle(b, n);
		rb = update_checked(a, n, ra, b, n, size, 0, &moved);
		assert_int_equal(moved, 0);
		rc = update_checked(a, n, ra, a, n, size, 1, &moved);
		assert_int_equal(moved, 0);
		assert_memory_equal(ra, rc, size * sizeof(*ra));

		/* after a removal and a re-add, the set is the same but the
		 * ring has a history: it still stays put */
		if (n >= 2) {
			free(rc);
			rc = update_checked(a, n, ra, a + 1, n - 1, size, 0, &moved);
			free(rb);
			rb = update_checked(a + 1, n - 1, rc, a, n + 1, size, 0, &moved);
			rd = update_checked(a, n + 1, rb, b, n, size, 0, &moved);
			free(rc);
			rc = update_checked(b, n, rd, b, n, size, 1, &moved);
			assert_int_equal(moved, 0);
			free(rd);
		}
		free(rc);
		free(rb);
		free(ra);
		free(b);
		free(a);
	}
}

enum change { REMOVE_FIRST, REMOVE_MIDDLE, REMOVE_LAST, ADD_ONE };

static const char *const change_name[] = {"remove first", "remove middle", "remove last",
					  "add one"};

/*
 * Changing the set by one endpoint moves at most 1/n + 1% of slots, where n
 * is the larger of the two sets (1/n is what must move: the share of the
 * endpoint that leaves or arrives), and no endpoint that stays gains slots
 * on an add. The ring keeps its size, as ks_ring_size keeps it (for the last
 * step to 1 endpoint and the first to 65 it would not, and everything moves
 * or stays anyway). A fresh fill of the new set is measured too, to show what
 * the update saves. Every n is printed before any assertion on the bound, so
 * a failure shows the whole table.
 */
static void check_disruption(enum change change)
{
	static const uint32_t ns[] = {2, 3, 4, 5, 8, 10, 16, 20, 32, 64, 100, 256, 1000};
	double worst = -1, worst_fill = -1;
	int failed = 0;
	uint32_t k, i;

	rng_state = 100 + change;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], nb, gone = 0, size = ks_ring_size(n, 0), moved;
		struct ks_endpoint *a = eps_make(n + 1), *b = eps_make(n + 1);
		uint16_t *ra, *rb, *rf;
		double frac, ideal, excess, fill_excess;

		eps_shuffle(a, n);
		ra = ring_fill(a, n, size);
		memcpy(b, a, (n + 1) * sizeof(*b));
		if (change == ADD_ONE) {
			nb = n + 1;
			ideal = 1.0 / (n + 1);
		} else {
			gone = change == REMOVE_FIRST ? 0 : change == REMOVE_LAST ? n - 1 : n / 2;
			for (i = gone; i + 1 < n; i++)
				b[i] = b[i + 1];
			nb = n - 1;
			ideal = 1.0 / n;
		}
		eps_shuffle(b, nb);
		rb = update_checked(a, n, ra, b, nb, size, 0, &moved);
		frac = (double)moved / size;
		excess = frac - ideal;
		rf = ring_fill(b, nb, size);
		fill_excess = (double)moved_slots(a, n, ra, b, nb, rf, size) / size - ideal;
		if (excess > worst)
			worst = excess;
		if (fill_excess > worst_fill)
			worst_fill = fill_excess;
		if (excess > MOVE_SLACK) {
			print_message("%s, n=%u: ring %u, moved %.3f%%, ideal %.3f%%, "
				      "excess %.3f points\n",
				      change_name[change], n, size, frac * 100, ideal * 100,
				      excess * 100);
			failed = 1;
		}

		/* on an add, stayers only give slots up */
		if (change == ADD_ONE) {
			uint32_t *a2b = eps_match(a, n, b, nb);

			for (i = 0; i < size; i++)
				if (rb[i] != a2b[ra[i]])
					assert_true(ep_same(&b[rb[i]], &a[n]));
			free(a2b);
		}
		free(rf);
		free(rb);
		free(ra);
		free(b);
		free(a);
	}
	print_message("%s: worst excess over 1/n %.3f percentage points (fresh fill %.3f)\n",
		      change_name[change], worst * 100, worst_fill * 100);
	assert_false(failed);
}

static void test_update_remove_first(void **state)
{
	(void)state;
	check_disruption(REMOVE_FIRST);
}

static void test_update_remove_middle(void **state)
{
	(void)state;
	check_disruption(REMOVE_MIDDLE);
}

static void test_update_remove_last(void **state)
{
	(void)state;
	check_disruption(REMOVE_LAST);
}

static void test_update_add(void **state)
{
	(void)state;
	check_disruption(ADD_ONE);
}

/*
 * Chains of random steps, each adding, removing or replacing (a rolling
 * restart) one endpoint, within the span of endpoint counts one ring size
 * serves: every ring stays balanced, and every step moves at most 1/n + 1%.
 */
static void test_update_chains(void **state)
{
	static const struct {
		uint32_t lo, hi; /* endpoint counts */
		uint32_t chains;
	} spans[] = {
	    {2, 64, 12},
	    {2, 8, 12},
	    {65, 256, 4},
	    {257, 1024, 2},
	};
	const uint32_t steps = 20;
	double worst = -1;
	uint32_t s, c, t, moved;

	(void)state;
	rng_state = 2024;
	for (s = 0; s < ARRAY_SIZE(spans); s++) {
		uint32_t lo = spans[s].lo, hi = spans[s].hi, size = ks_ring_size(hi, 0);

		assert_int_equal(ks_ring_size(lo, size), size);
		for (c = 0; c < spans[s].chains; c++) {
			uint32_t n = lo + rng_next() % (hi - lo + 1), next_id = n;
			struct ks_endpoint *a = eps_make(n);
			uint16_t *ra = ring_fill(a, n, size);

			for (t = 0; t < steps; t++) {
				uint32_t op = rng_next() % 3, nb = n, i;
				struct ks_endpoint *b;
				uint16_t *rb;
				double excess;

				/* 0 adds, 1 removes, 2 replaces */
				if (n == lo && op == 1)
					op = 0;
				if (n == hi && op == 0)
					op = 1;
				b = calloc(n + 1, sizeof(*b));
				assert_non_null(b);
				memcpy(b, a, n * sizeof(*b));
				if (op != 0) {
					i = rng_next() % n;
					b[i] = b[--nb];
				}
				if (op != 1)
					b[nb++] = ep_make(next_id++);
				eps_shuffle(b, nb);
				rb = update_checked(a, n, ra, b, nb, size, t % 2, &moved);
				excess = (double)moved / size - 1.0 / (n > nb ? n : nb);
				if (excess > worst)
					worst = excess;
				assert_true(excess <= MOVE_SLACK);
				free(ra);
				free(a);
				ra = rb;
				a = b;
				n = nb;
			}
			free(ra);
			free(a);
		}
	}
	print_message("chains: worst step excess over 1/n %.3f percentage points\n", worst * 100);
}

/*
 * An update depends only on which endpoint held which old slot and on the
 * new set: not on the order of either array, nor on the call. And it is
 * pinned like the fill, for the same reason.
 */
static void test_update_determinism(void **state)
{
	struct ks_endpoint *a = eps_make(12), *b = eps_make(12), *a2, *b2;
	uint32_t size = ks_ring_size(10, 0), round, i, j;
	uint16_t *ra = ring_fill(a, 10, size), *rb = ring_alloc(size), *ra2, *rb2;

	(void)state;
	rng_state = 5;
	/* endpoints 0..10 without 3, with 11: slots are freed by the one that
	 * leaves and given up by every stayer, so both rules are pinned */
	b[3] = b[11];
	assert_int_equal(ks_maglev_update(a, 10, ra, b, 11, rb, size), 0);
	assert_digest("update", ring_digest(b, rb, size), UPDATE_DIGEST);

	a2 = eps_copy(a, 10);
	b2 = eps_copy(b, 11);
	ra2 = ring_alloc(size);
	rb2 = ring_alloc(size);
	for (round = 0; round < 4; round++) {
		eps_shuffle(a2, 10);
		eps_shuffle(b2, 11);
		/* the same old ring, indexing the shuffled old array */
		for (i = 0; i < size; i++)
			for (j = 0; j < 10; j++)
				if (ep_same(&a2[j], &a[ra[i]]))
					ra2[i] = j;
		assert_int_equal(ks_maglev_update(a2, 10, ra2, b2, 11, rb2, size), 0);
		for (i = 0; i < size; i++)
			assert_true(ep_same(&b[rb[i]], &b2[rb2[i]]));
	}
	free(rb2);
	free(ra2);
	free(b2);
	free(a2);
	free(rb);
	free(ra);
	free(b);
	free(a);
}

/* An old ring need not be balanced (a hand-written one, or one from another
 * implementation): the update balances it, moving only what it must. */
static void test_update_unbalanced(void **state)
{
	static const uint32_t sizes[] = {7, 101, KS_RING_SIZE_MIN};
	struct ks_endpoint *a = eps_make(5);
	uint32_t k, i, moved;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(sizes); k++) {
		uint32_t size = sizes[k];
		uint16_t *ra = ring_alloc(size), *rb;

		/* endpoint 0 holds almost all, 1 holds a few, 2 holds one */
		for (i = 0; i < size; i++)
			ra[i] = i < 3 ? 1 : 0;
		ra[size - 1] = 2;
		rb = update_checked(a, 5, ra, a, 5, size, 0, &moved);
		free(rb);
		rb = update_checked(a, 5, ra, a + 1, 4, size, 1, &moved);
		free(rb);
		free(ra);
	}
	free(a);
}

/* Counts, per backend, the hashes of the sweep that ks_split_pick gives it. */
static uint64_t sweep(const struct ks_split *split, uint64_t *count)
{
	uint64_t k;

	memset(count, 0, KS_MAX_BACKENDS * sizeof(*count));
	for (k = 0; k < 1ULL << SWEEP_SHIFT; k++)
		count[ks_split_pick(split, k * SWEEP_STEP)]++;
	count[ks_split_pick(split, UINT32_MAX)]++;
	return (1ULL << SWEEP_SHIFT) + 1;
}

/* The backends some hash picks, exactly: ks_split_pick is constant between
 * thresholds, so trying 0 and every threshold visits every range. */
static uint32_t pickable(const struct ks_split *split)
{
	uint32_t mask = 1U << ks_split_pick(split, 0), i;

	for (i = 0; i < KS_MAX_BACKENDS; i++)
		mask |= 1U << ks_split_pick(split, split->threshold[i]);
	return mask;
}

static void test_split_shares(void **state)
{
	static const struct {
		uint32_t n, w[KS_MAX_BACKENDS];
		uint32_t nr, taking;
	} cases[] = {
	    {2, {90, 10}, 2, 2},
	    {3, {1, 1, 1}, 3, 3},
	    {2, {0, 100}, 2, 1},
	    {2, {100, 0}, 1, 1},
	    {4, {0, 0, 5, 0}, 3, 1},
	    {2, {1000000, 1}, 2, 2},
	    {2, {1, 1000000}, 2, 2},
	    {2, {0, 0}, 0, 0},
	    {1, {7}, 1, 1},
	    {0, {0}, 0, 0},
	    {5, {10, 0, 20, 0, 70}, 5, 3},
	    {8, {1000000, 1000000, 1000000, 1000000, 1000000, 1000000, 1000000, 1000000}, 8, 8},
	    /* the sum overflows 32 bits and cum * 2^32 overflows 64 */
	    {8,
	     {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
	      UINT32_MAX},
	     8,
	     8},
	    {3, {UINT32_MAX, 1, UINT32_MAX}, 3, 3},
	};
	double worst = 0;
	uint32_t c, i;

	(void)state;
	for (c = 0; c < ARRAY_SIZE(cases); c++) {
		const uint32_t *w = cases[c].w;
		uint32_t n = cases[c].n, mask;
		uint64_t count[KS_MAX_BACKENDS], total = 0, hashes, lo = 0;
		struct ks_split split;

		/* flags and ring slices are the caller's; stale thresholds
		 * must not survive */
		memset(&split, 0xa5, sizeof(split));
		assert_int_equal(ks_split_thresholds(w, n, &split), cases[c].taking);
		assert_int_equal(split.nr_backends, cases[c].nr);
		assert_int_equal(split.flags, 0xa5a5a5a5);
		for (i = 0; i < KS_MAX_BACKENDS; i++) {
			assert_int_equal(split.ring[i].off, 0xa5a5a5a5);
			assert_int_equal(split.ring[i].size, 0xa5a5a5a5);
			if (i >= n || !cases[c].nr)
				assert_int_equal(split.threshold[i], 0);
		}
		for (i = 0; i < n; i++)
			total += w[i];
		if (!total)
			continue;

		/* exact: every range is within one hash of its share of 2^32 */
		for (i = 0; i < split.nr_backends; i++) {
			uint64_t hi = i + 1 < split.nr_backends ? split.threshold[i] : 1ULL << 32;
			double want = (double)w[i] * 4294967296.0 / total;

			assert_true(hi >= lo);
			assert_true((double)(hi - lo) - want < 1.0 &&
				    want - (double)(hi - lo) < 1.0);
			lo = hi;
		}

		/* zero weights are never picked, by any hash */
		mask = pickable(&split);
		for (i = 0; i < KS_MAX_BACKENDS; i++)
			if (i >= n || !w[i])
				assert_false(mask & 1U << i);

		/* measured over the sweep */
		hashes = sweep(&split, count);
		for (i = 0; i < KS_MAX_BACKENDS; i++) {
			double want = i < n ? (double)w[i] / total : 0;
			double err = (double)count[i] / hashes - want;

			if (err < 0)
				err = -err;
			if (err > worst)
				worst = err;
			assert_true(err <= 0.0001);
			if (i >= n || !w[i])
				assert_int_equal(count[i], 0);
		}
	}
	print_message("split: worst share error %.6f percentage points\n", worst * 100);
}

/* Raising the last backend's weight only moves hashes onto the last backend:
 * with client affinity, a client already on the last backend stays there. */
static void test_split_raise_last(void **state)
{
	static const struct {
		uint32_t n, w[3][KS_MAX_BACKENDS];
	} cases[] = {
	    {2, {{90, 10}, {80, 20}, {0, 100}}},
	    {4, {{50, 0, 0, 50}, {10, 0, 0, 90}, {0, 0, 0, 1}}},
	    {3, {{1, 0, 0}, {1, 0, 1}, {1, 0, 1000000}}},
	};
	uint32_t c, s, t;

	(void)state;
	for (c = 0; c < ARRAY_SIZE(cases); c++) {
		uint32_t n = cases[c].n, last = n - 1;
		struct ks_split split[3];

		for (s = 0; s < 3; s++)
			ks_split_thresholds(cases[c].w[s], n, &split[s]);
		for (s = 0; s < 3; s++) {
			for (t = s + 1; t < 3; t++) {
				uint64_t k;

				for (k = 0; k <= 1ULL << SWEEP_SHIFT; k++) {
					uint32_t h =
					    k == 1ULL << SWEEP_SHIFT ? UINT32_MAX : k * SWEEP_STEP;
					uint32_t before = ks_split_pick(&split[s], h);
					uint32_t after = ks_split_pick(&split[t], h);

					if (before != after)
						assert_int_equal(after, last);
				}
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ring_size),
	    cmocka_unit_test(test_fill_errors),
	    cmocka_unit_test(test_fill_balance),
	    cmocka_unit_test(test_fill_order_independence),
	    cmocka_unit_test(test_fill_determinism),
	    cmocka_unit_test(test_update_errors),
	    cmocka_unit_test(test_update_identical),
	    cmocka_unit_test(test_update_remove_first),
	    cmocka_unit_test(test_update_remove_middle),
	    cmocka_unit_test(test_update_remove_last),
	    cmocka_unit_test(test_update_add),
	    cmocka_unit_test(test_update_chains),
	    cmocka_unit_test(test_update_determinism),
	    cmocka_unit_test(test_update_unbalanced),
	    cmocka_unit_test(test_split_shares),
	    cmocka_unit_test(test_split_raise_last),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
