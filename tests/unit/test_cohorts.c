// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Client cohorts (affinity: client) as plain C: each client hashes to a
 * fixed point of [0, 2^32), and each backend takes a contiguous range of it
 * in order (ks_split_thresholds, ks_split_pick: what the BPF program
 * walks). With a stable and a canary, raising the canary's weight lowers
 * the one threshold between them, so the canary's range only grows: a
 * client moves onto the canary and never off it, at every step of a ramp,
 * and back again only when the weight goes down. Checked on every weight
 * pair of a 0..100 ramp, on 2^16 evenly spaced points and the extremes;
 * and the same with a weight-0 backend (a shadow) after the canary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "lib/maglev.h"

#define POINTS 65536

static uint32_t point(uint32_t i)
{
	return i == POINTS - 1 ? UINT32_MAX : i * (uint32_t)(4294967296ULL / POINTS);
}

/* Ramps the canary (backend 1) through 0..100 with stable at 100 - w; n
 * backends, those after the canary at weight 0. */
static void ramp(uint32_t n)
{
	static uint8_t on[POINTS];
	uint32_t weights[KS_MAX_BACKENDS] = {}, w, i, canary, b;
	struct ks_split split;

	for (i = 0; i < POINTS; i++)
		on[i] = 0;
	for (w = 0; w <= 100; w++) {
		weights[0] = 100 - w;
		weights[1] = w;
		ks_split_thresholds(weights, n, &split);
		for (canary = 0, i = 0; i < POINTS; i++) {
			b = ks_split_pick(&split, point(i));
			if (b > 1)
				fail_msg("weight %u: point %u on backend %u of weight 0", w, i, b);
			if (on[i] && b != 1)
				fail_msg("weight %u: point %u moved off the canary", w, i);
			on[i] = b == 1;
			canary += on[i];
		}
		/* the range is the share, within one point of the sweep */
		if (canary + 1 < (uint64_t)POINTS * w / 100 ||
		    canary > (uint64_t)POINTS * w / 100 + 1)
			fail_msg("weight %u: %u of %u points on the canary", w, canary, POINTS);
	}
	for (i = 0; i < POINTS; i++)
		assert_int_equal(on[i], 1);
}

static void test_ramp_moves_clients_onto_canary_only(void **state)
{
	(void)state;
	ramp(2);
}

static void test_ramp_with_a_shadow_after(void **state)
{
	(void)state;
	ramp(3);
}

/* Going down is the mirror image: clients only leave the canary. */
static void test_ramp_down_moves_clients_off_only(void **state)
{
	static uint8_t on[POINTS];
	uint32_t weights[2], w, i, b;
	struct ks_split split;

	(void)state;
	for (i = 0; i < POINTS; i++)
		on[i] = 1;
	for (w = 101; w-- > 0;) {
		weights[0] = 100 - w;
		weights[1] = w;
		ks_split_thresholds(weights, 2, &split);
		for (i = 0; i < POINTS; i++) {
			b = ks_split_pick(&split, point(i));
			if (!on[i] && b == 1)
				fail_msg("weight %u: point %u came back to the canary", w, i);
			on[i] = b == 1;
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ramp_moves_clients_onto_canary_only),
		cmocka_unit_test(test_ramp_with_a_shadow_after),
		cmocka_unit_test(test_ramp_down_moves_clients_off_only),
	};

	return cmocka_run_group_tests_name("cohorts", tests, NULL, NULL);
}
