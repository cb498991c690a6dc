// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the runtime state (user/lib/state.c) without root: "api"
 * shifts and weight overrides written and read back, overrides bound to
 * the spec they were made on, a damaged file refused and left alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/state.h"

static const char web[] = "apiVersion: kshift.dev/v1alpha1\n"
			  "kind: TrafficShift\n"
			  "metadata: {name: web}\n"
			  "spec:\n"
			  "  frontend: {addresses: [198.18.100.1], ports: [{port: 80, protocol: TCP}]}\n"
			  "  backends:\n"
			  "  - {name: stable, endpoints: [\"198.18.2.2:8080\"], weight: 90}\n"
			  "  - {name: canary, endpoints: [\"198.18.3.2:8080\"], weight: 10}\n";

/* A running set of two shifts, without a dataplane: what ks_state_save
 * reads of it. */
struct running {
	struct ks_shifts t;
	struct ks_shift_state st[2], *v[2];
	struct ks_shift *parsed;
	size_t nr;
};

static void running_init(struct running *r)
{
	char err[KS_ERR_LEN];

	memset(r, 0, sizeof(*r));
	assert_int_equal(ks_manifest_parse(web, strlen(web), &r->parsed, &r->nr, err, sizeof(err)),
			 0);
	r->st[0].spec = r->parsed[0];
	r->st[0].source = "api";
	r->st[1].spec = r->parsed[0];
	snprintf(r->st[1].spec.name, sizeof(r->st[1].spec.name), "filed");
	r->st[1].source = "/etc/kshift/filed.yaml";
	r->v[0] = &r->st[0];
	r->v[1] = &r->st[1];
	r->t.v = r->v;
	r->t.n = 2;
}

static void test_round_trip(void **state)
{
	char dir[] = "/tmp/ks-state-test-XXXXXX", path[64], err[KS_ERR_LEN];
	struct ks_state s, back;
	const struct ks_override *o;
	struct ks_shift *api;
	struct running r;
	size_t nr;

	(void)state;
	assert_non_null(mkdtemp(dir));
	running_init(&r);
	assert_int_equal(ks_state_open(&s, dir), 0);
	/* kshiftctl set on both: the api shift carries its weights, the
	 * file's gets an override */
	r.st[0].spec.backends[0].weight = 50;
	r.st[0].spec.backends[1].weight = 50;
	r.st[1].spec.backends[0].weight = 30;
	r.st[1].spec.backends[1].weight = 70;
	assert_int_equal(ks_state_set_override(&s, &r.st[1].spec, 1234), 0);
	s.generation = 7;
	assert_int_equal(ks_state_save(&s, &r.t), 0);

	assert_int_equal(ks_state_open(&back, dir), 0);
	assert_int_equal(ks_state_load(&back, &api, &nr, err, sizeof(err)), 0);
	assert_int_equal(nr, 1);
	assert_string_equal(api[0].name, "web");
	assert_int_equal(api[0].backends[0].weight, 50);
	assert_int_equal(api[0].backends[1].weight, 50);
	assert_int_equal(back.generation, 7);
	o = ks_state_override(&back, "default", "filed");
	assert_non_null(o);
	assert_int_equal(o->base_fp, 1234);
	assert_int_equal(ks_override_fp(o), ks_override_fp(ks_state_override(&s, "default",
									     "filed")));
	assert_int_not_equal(ks_override_fp(o), o->base_fp);
	{
		struct ks_shift copy;

		assert_int_equal(ks_shift_copy(&copy, &r.parsed[0]), 0);
		ks_override_apply(o, &copy);
		assert_int_equal(copy.backends[0].weight, 30);
		assert_int_equal(copy.backends[1].weight, 70);
		ks_shift_free(&copy);
	}
	assert_null(ks_state_override(&back, "default", "web"));
	ks_state_drop_override(&back, "default", "filed");
	assert_null(ks_state_override(&back, "default", "filed"));

	ks_shifts_free(api, nr);
	ks_state_close(&back);
	ks_state_close(&s);
	ks_shifts_free(r.parsed, r.nr);
	snprintf(path, sizeof(path), "%s/%s", dir, KS_STATE_FILE);
	unlink(path);
	rmdir(dir);
}

static void test_damaged_file(void **state)
{
	char dir[] = "/tmp/ks-state-test-XXXXXX", path[64], err[KS_ERR_LEN], buf[64];
	struct ks_shift *api;
	struct ks_state s;
	size_t nr;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(ks_state_open(&s, dir), 0);
	/* none yet: an empty state */
	assert_int_equal(ks_state_load(&s, &api, &nr, err, sizeof(err)), 0);
	assert_int_equal(nr, 0);
	snprintf(path, sizeof(path), "%s/%s", dir, KS_STATE_FILE);
	f = fopen(path, "w");
	fputs("{\"shifts\": [", f);
	fclose(f);
	assert_int_equal(ks_state_load(&s, &api, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "state.json"));
	/* left alone */
	f = fopen(path, "r");
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "{\"shifts\": [");
	ks_state_close(&s);
	unlink(path);
	rmdir(dir);
}

static void test_fingerprint(void **state)
{
	struct ks_shift *a, *b;
	char err[KS_ERR_LEN];
	size_t na, nb;

	(void)state;
	assert_int_equal(ks_manifest_parse(web, strlen(web), &a, &na, err, sizeof(err)), 0);
	assert_int_equal(ks_manifest_parse(web, strlen(web), &b, &nb, err, sizeof(err)), 0);
	assert_int_equal(ks_shift_fingerprint(a), ks_shift_fingerprint(b));
	b[0].backends[1].weight = 11;
	assert_int_not_equal(ks_shift_fingerprint(a), ks_shift_fingerprint(b));
	ks_shifts_free(a, na);
	ks_shifts_free(b, nb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_damaged_file),
		cmocka_unit_test(test_fingerprint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
