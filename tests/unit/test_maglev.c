// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Maglev rings and weight thresholds (user/lib/maglev.c), as plain C.
 *
 * Rings are compared by endpoint identity, never by index, because the ring
 * holds indexes into whatever array the caller passed. Disruption is measured
 * the way the dataplane looks a flow up, ks_ring[off + h % size], so a change
 * of ring size counts against it just like a changed slot.
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
/* Flow hashes sampled when two rings differ in size and slots do not line up. */
#define SAMPLES (1U << 20)

static uint64_t rng_state;

/* splitmix64: a fixed, seedable stream so every run tests the same cases. */
static uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Endpoint number id, the same identity whichever set it is in: even ids
 * IPv4 10.a.b.1, odd ids IPv6 2001:db8::a:b, so every set mixes families. */
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
	struct ks_endpoint *eps = calloc(n, sizeof(*eps));
	uint32_t i;

	assert_non_null(eps);
	for (i = 0; i < n; i++)
		eps[i] = ep_make(i);
	return eps;
}

static int ep_same(const struct ks_endpoint *a, const struct ks_endpoint *b)
{
	return a->family == b->family && a->port == b->port &&
	       !memcmp(a->addr.bytes, b->addr.bytes, sizeof(a->addr.bytes));
}

static uint32_t *ring_make(const struct ks_endpoint *eps, uint32_t n, uint32_t *size)
{
	uint32_t *ring;
	uint32_t i;

	*size = ks_ring_size(n);
	ring = calloc(*size, sizeof(*ring));
	assert_non_null(ring);
	assert_int_equal(ks_maglev_fill(eps, n, ring, *size), 0);
	for (i = 0; i < *size; i++)
		assert_true(ring[i] < n);
	return ring;
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
	/* the first n at which KS_RING_PER_ENDPOINT * n reaches the cap */
	const uint32_t n_cap = (KS_RING_MAX_SIZE + KS_RING_PER_ENDPOINT - 1) / KS_RING_PER_ENDPOINT;
	const struct {
		uint32_t n, size;
	} known[] = {
	    {0, 0},
	    {1, 1},
	    {n_cap, KS_RING_MAX_SIZE},
	    {n_cap + 1, KS_RING_MAX_SIZE},
	    {KS_RING_MAX_SIZE, KS_RING_MAX_SIZE},
	    {1U << 22, KS_RING_MAX_SIZE}, /* KS_RING_PER_ENDPOINT * n overflows 32 bits */
	    {UINT32_MAX, KS_RING_MAX_SIZE},
	};
	uint32_t n, m, k;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(known); k++)
		assert_int_equal(ks_ring_size(known[k].n), known[k].size);
	assert_true(is_prime(KS_RING_MAX_SIZE));

	/* below the cap: the smallest prime at least KS_RING_PER_ENDPOINT * n */
	for (n = 2; (uint64_t)KS_RING_PER_ENDPOINT * n <= KS_RING_MAX_SIZE; n++) {
		uint32_t size = ks_ring_size(n);

		assert_true(is_prime(size));
		assert_true(size >= KS_RING_PER_ENDPOINT * n);
		assert_true(size > n);
		for (m = KS_RING_PER_ENDPOINT * n; m < size; m++)
			assert_false(is_prime(m));
	}
}

static void test_fill_errors(void **state)
{
	struct ks_endpoint eps[3] = {ep_make(0), ep_make(1), ep_make(2)};
	uint32_t size = ks_ring_size(3);
	uint32_t *ring = calloc(size + 1, sizeof(*ring));

	(void)state;
	assert_non_null(ring);
	assert_int_equal(ks_maglev_fill(eps, 0, ring, 0), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size - 1), -EINVAL);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size + 1), -EINVAL);
	if (ks_ring_size(2) != size)
		assert_int_equal(ks_maglev_fill(eps, 3, ring, ks_ring_size(2)), -EINVAL);

	/* duplicates are refused, even apart in the array, and the pad byte
	 * is not part of an endpoint's identity */
	eps[2] = eps[0];
	eps[2].pad = 7;
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), -EINVAL);

	/* the same bytes under another family, or another port, is another
	 * endpoint */
	eps[2] = eps[0];
	eps[2].family = KS_FAMILY_V6;
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), 0);
	eps[2] = eps[0];
	eps[2].port = htons(1);
	assert_int_equal(ks_maglev_fill(eps, 3, ring, size), 0);

	/* one endpoint: a ring of one slot */
	ring[0] = 99;
	assert_int_equal(ks_maglev_fill(eps, 1, ring, 1), 0);
	assert_int_equal(ring[0], 0);
	free(ring);
}

/* Each endpoint's share of slots is 1/n within a percentage point; in fact
 * the round-robin fill keeps slot counts within one of each other. */
static void test_balance(void **state)
{
	static const uint32_t ns[] = {2, 3, 5, 7, 10, 16, 32, 64, 100};
	double worst = 0;
	uint32_t k, i;

	(void)state;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], size, lo = UINT32_MAX, hi = 0;
		struct ks_endpoint *eps = eps_make(n);
		uint32_t *ring = ring_make(eps, n, &size);
		uint32_t *count = calloc(n, sizeof(*count));

		assert_non_null(count);
		for (i = 0; i < size; i++)
			count[ring[i]]++;
		for (i = 0; i < n; i++) {
			double err = (double)count[i] / size - 1.0 / n;

			if (err < 0)
				err = -err;
			if (err > worst)
				worst = err;
			assert_true(err <= 0.01);
			lo = count[i] < lo ? count[i] : lo;
			hi = count[i] > hi ? count[i] : hi;
		}
		assert_true(hi - lo <= 1);
		free(count);
		free(ring);
		free(eps);
	}
	print_message("balance: worst share error %.5f percentage points\n", worst * 100);
}

/*
 * The fraction of flow hashes whose endpoint (by identity) differs between
 * the ring for set a and the ring for set b, with the lookup the dataplane
 * does: ring[h % size]. Rings of one size are compared slot by slot, exactly;
 * otherwise slots do not line up and the answer is sampled over hashes.
 */
static double moved_fraction(const struct ks_endpoint *a, uint32_t na, const struct ks_endpoint *b,
			     uint32_t nb)
{
	uint32_t sa, sb, i, j, moved = 0;
	uint32_t *ra = ring_make(a, na, &sa);
	uint32_t *rb = ring_make(b, nb, &sb);
	uint32_t *a2b = malloc(na * sizeof(*a2b));
	double frac;

	/* a's index -> b's index of the same endpoint, or UINT32_MAX */
	assert_non_null(a2b);
	for (i = 0; i < na; i++) {
		a2b[i] = UINT32_MAX;
		for (j = 0; j < nb; j++)
			if (ep_same(&a[i], &b[j]))
				a2b[i] = j;
	}
	if (sa == sb) {
		for (i = 0; i < sa; i++)
			moved += a2b[ra[i]] != rb[i];
		frac = (double)moved / sa;
	} else {
		rng_state = 42;
		for (i = 0; i < SAMPLES; i++) {
			uint32_t h = rng_next() >> 32;

			moved += a2b[ra[h % sa]] != rb[h % sb];
		}
		frac = (double)moved / SAMPLES;
	}
	free(a2b);
	free(rb);
	free(ra);
	return frac;
}

enum change { REMOVE_FIRST, REMOVE_MIDDLE, REMOVE_LAST, ADD_ONE };

static const char *const change_name[] = {"remove first", "remove middle", "remove last",
					  "add one"};

/* Changing the set by one endpoint moves at most 1/n + 1% of flows, where n
 * is the larger of the two sets (1/n is what must move: the departing or
 * arriving endpoint's share). Every n is measured and printed before any
 * assertion, so a failure reports the whole table. */
static void check_disruption(enum change change)
{
	static const uint32_t ns[] = {2, 3, 4, 5, 8, 10, 16, 20, 32};
	double worst = -1;
	int failed = 0;
	uint32_t k, i;

	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], nb, gone;
		struct ks_endpoint *a = eps_make(n + 1), *b = eps_make(n + 1);
		double moved, ideal, excess;

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
		moved = moved_fraction(a, n, b, nb);
		excess = moved - ideal;
		if (excess > worst)
			worst = excess;
		if (excess > 0.01) {
			print_message("%s, n=%u: ring %u -> %u, moved %.3f%%, ideal %.3f%%, "
				      "excess %.3f points\n",
				      change_name[change], n, ks_ring_size(n), ks_ring_size(nb),
				      moved * 100, ideal * 100, excess * 100);
			failed = 1;
		}
		free(b);
		free(a);
	}
	print_message("%s: worst excess over 1/n %.3f percentage points\n", change_name[change],
		      worst * 100);
	assert_false(failed);
}

static void test_disruption_remove_first(void **state)
{
	(void)state;
	check_disruption(REMOVE_FIRST);
}

static void test_disruption_remove_middle(void **state)
{
	(void)state;
	check_disruption(REMOVE_MIDDLE);
}

static void test_disruption_remove_last(void **state)
{
	(void)state;
	check_disruption(REMOVE_LAST);
}

static void test_disruption_add(void **state)
{
	(void)state;
	check_disruption(ADD_ONE);
}

/* Every node must build the same ring whatever order its endpoint list came
 * in, and across calls. */
static void test_order_independence(void **state)
{
	static const uint32_t ns[] = {2, 3, 7, 33, 100};
	uint32_t k, round, i;

	(void)state;
	rng_state = 7;
	for (k = 0; k < ARRAY_SIZE(ns); k++) {
		uint32_t n = ns[k], size, size2;
		struct ks_endpoint *eps = eps_make(n), *shuf = eps_make(n);
		uint32_t *ring = ring_make(eps, n, &size);

		for (round = 0; round < 4; round++) {
			uint32_t *ring2;

			for (i = n - 1; i > 0; i--) {
				uint32_t j = rng_next() % (i + 1);
				struct ks_endpoint t = shuf[i];

				shuf[i] = shuf[j];
				shuf[j] = t;
			}
			ring2 = ring_make(shuf, n, &size2);
			assert_int_equal(size, size2);
			for (i = 0; i < size; i++)
				assert_true(ep_same(&eps[ring[i]], &shuf[ring2[i]]));
			free(ring2);
		}
		free(ring);
		free(shuf);
		free(eps);
	}
}

/* FNV-1a over the identities slot by slot, to pin the ring below. */
static uint64_t ring_digest(const struct ks_endpoint *eps, const uint32_t *ring, uint32_t size)
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

/*
 * The same set gives the same ring on every call, and the same ring as the
 * build that recorded RING_DIGEST: nodes running different builds during an
 * upgrade must agree, so a change to the hash or the fill that alters this
 * digest moves flows, and needs to be deliberate.
 */
#define RING_DIGEST 0x1844bed9d89561e6ULL

static void test_determinism(void **state)
{
	struct ks_endpoint *eps = eps_make(10);
	uint32_t size, size2, round;
	uint32_t *ring = ring_make(eps, 10, &size);
	uint64_t digest = ring_digest(eps, ring, size);

	(void)state;
	for (round = 0; round < 3; round++) {
		uint32_t *ring2 = ring_make(eps, 10, &size2);

		assert_int_equal(size, size2);
		assert_memory_equal(ring, ring2, size * sizeof(*ring));
		free(ring2);
	}
	if (digest != RING_DIGEST)
		print_message("ring digest 0x%016llx, recorded 0x%016llx\n",
			      (unsigned long long)digest, (unsigned long long)RING_DIGEST);
	assert_true(digest == RING_DIGEST);
	free(ring);
	free(eps);
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
	    cmocka_unit_test(test_balance),
	    cmocka_unit_test(test_disruption_remove_first),
	    cmocka_unit_test(test_disruption_remove_middle),
	    cmocka_unit_test(test_disruption_remove_last),
	    cmocka_unit_test(test_disruption_add),
	    cmocka_unit_test(test_order_independence),
	    cmocka_unit_test(test_determinism),
	    cmocka_unit_test(test_split_shares),
	    cmocka_unit_test(test_split_raise_last),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
