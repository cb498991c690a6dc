// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the pure parts of kshiftctl's Kubernetes mode
 * (user/lib/kube_ctl.c): the weights set, switch, promote and rollback give
 * (the same as kshiftd's for a local shift), their refusals, the --wait
 * predicate, durations, and YAML documents to JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/kube_ctl.h"
#include "lib/shift.h"

static struct json_object *parse(const char *s)
{
	struct json_object *o = json_tokener_parse(s);

	assert_non_null(o);
	return o;
}

/* weights(BACKENDS_JSON, CMD, ...) as "a=1 b=2", or the error */
static const char *weights(const char *backends, const char *cmd, const char *const *names,
			   const uint32_t *w, size_t n, const char *target)
{
	static char out[KS_ERR_LEN + 16];
	struct json_object *b = parse(backends);
	uint32_t res[KS_MAX_BACKENDS];
	char err[KS_ERR_LEN];
	size_t i, len = 0;
	int ret;

	ret = ks_kctl_weights(b, cmd, names, w, n, target, res, err, sizeof(err));
	if (ret)
		snprintf(out, sizeof(out), "%d %s", ret, err);
	else
		for (i = 0; i < json_object_array_length(b); i++)
			len += snprintf(out + len, sizeof(out) - len, "%s%u", i ? " " : "", res[i]);
	json_object_put(b);
	return out;
}

static const char two[] =
	"[{\"name\":\"stable\",\"weight\":90},{\"name\":\"canary\",\"weight\":10}]";
static const char three[] = "[{\"name\":\"a\",\"weight\":5},{\"name\":\"b\"},"
			    "{\"name\":\"c\",\"weight\":0}]";

static void test_weights_set(void **state)
{
	const char *n1[] = { "canary" }, *n2[] = { "stable", "canary" }, *bad[] = { "nosuch" };
	uint32_t w1[] = { 25 }, w2[] = { 0, 0 }, big[] = { KS_WEIGHT_MAX + 1 };

	(void)state;
	assert_string_equal(weights(two, "set", n1, w1, 1, NULL), "90 25");
	assert_string_equal(weights(two, "set", n2, w2, 2, NULL), "0 0");
	assert_string_equal(weights(two, "set", bad, w1, 1, NULL), "-2 nosuch: no such backend");
	assert_string_equal(weights(two, "set", n1, big, 1, NULL),
			    "-22 canary: weight 1000001: must be 0..1000000");
}

/* As kshiftd's do_weights: all the weight now in the shift to one backend. */
static void test_weights_all_to_one(void **state)
{
	(void)state;
	assert_string_equal(weights(two, "switch", NULL, NULL, 0, "canary"), "0 100");
	assert_string_equal(weights(two, "promote", NULL, NULL, 0, NULL), "0 100");
	assert_string_equal(weights(two, "promote", NULL, NULL, 0, "stable"), "100 0");
	assert_string_equal(weights(two, "rollback", NULL, NULL, 0, "canary"), "100 0");
	/* an absent weight is 1, as in a manifest */
	assert_string_equal(weights(three, "switch", NULL, NULL, 0, "c"), "0 0 6");
	/* all zero: the one backend gets 1, so it takes the traffic */
	assert_string_equal(weights("[{\"name\":\"x\",\"weight\":0},{\"name\":\"y\",\"weight\":0}]",
				    "switch", NULL, NULL, 0, "y"),
			    "0 1");
	/* capped at the largest weight */
	assert_string_equal(weights("[{\"name\":\"x\",\"weight\":1000000},"
				    "{\"name\":\"y\",\"weight\":1000000}]",
				    "promote", NULL, NULL, 0, NULL),
			    "0 1000000");
	assert_string_equal(weights(two, "switch", NULL, NULL, 0, "nosuch"),
			    "-2 nosuch: no such backend");
}

static void test_weights_bad_objects(void **state)
{
	(void)state;
	assert_string_equal(weights("[]", "promote", NULL, NULL, 0, NULL),
			    "-22 spec.backends: none");
	assert_string_equal(
		weights("[{\"name\":\"x\",\"weight\":\"9\"}]", "promote", NULL, NULL, 0, NULL),
		"-22 spec.backends[0]: weight: not an integer 0..1000000");
	assert_string_equal(weights("[{\"weight\":9}]", "promote", NULL, NULL, 0, NULL),
			    "-22 spec.backends[0]: name: missing");
}

static void test_programmed(void **state)
{
	static const struct {
		const char *ts;
		int64_t gen;
		bool want;
	} cases[] = {
		{ "{}", 1, false },
		{ "{\"status\":{\"observedGeneration\":3,\"nodes\":{\"programmed\":2,\"total\":2},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"True\","
		  "\"observedGeneration\":3}]}}",
		  3, true },
		/* an older generation */
		{ "{\"status\":{\"observedGeneration\":2,\"nodes\":{\"programmed\":2,\"total\":2},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"True\"}]}}",
		  3, false },
		/* a node behind */
		{ "{\"status\":{\"observedGeneration\":3,\"nodes\":{\"programmed\":1,\"total\":2},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"True\"}]}}",
		  3, false },
		/* no node at all */
		{ "{\"status\":{\"observedGeneration\":3,\"nodes\":{\"programmed\":0,\"total\":0},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"True\"}]}}",
		  3, false },
		/* Programmed False, or True for an older generation */
		{ "{\"status\":{\"observedGeneration\":3,\"nodes\":{\"programmed\":2,\"total\":2},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"False\"}]}}",
		  3, false },
		{ "{\"status\":{\"observedGeneration\":3,\"nodes\":{\"programmed\":2,\"total\":2},"
		  "\"conditions\":[{\"type\":\"Programmed\",\"status\":\"True\","
		  "\"observedGeneration\":2}]}}",
		  3, false },
		/* a later generation programmed counts */
		{ "{\"status\":{\"observedGeneration\":4,\"nodes\":{\"programmed\":1,\"total\":1},"
		  "\"conditions\":[{\"type\":\"Accepted\",\"status\":\"True\"},"
		  "{\"type\":\"Programmed\",\"status\":\"True\"}]}}",
		  3, true },
	};
	struct json_object *o;
	int64_t p, t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		o = parse(cases[i].ts);
		if (ks_kctl_programmed(o, cases[i].gen, &p, &t) != cases[i].want)
			fail_msg("case %zu: want %d", i, cases[i].want);
		json_object_put(o);
	}
	o = parse("{}");
	assert_false(ks_kctl_programmed(o, 1, &p, &t));
	json_object_put(o);
	assert_int_equal(p, -1);
	assert_int_equal(t, -1);
}

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		long ms; /* 0: refused */
	} cases[] = {
		{ "500ms", 500 },   { "10s", 10000 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "1m30s", 90000 }, { "1.5s", 1500 }, { "3", 3000 },	{ "0.25", 250 },
		{ "", 0 },	    { "0s", 0 },      { "-1s", 0 },	{ "10", 10000 },
		{ "s", 0 },	    { "10x", 0 },     { "1e3s", 0 },	{ "inf", 0 },
		{ "nan", 0 },	    { "10 s", 0 },    { "+5s", 0 },
	};
	size_t i;
	long ms;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = 0;
		if (cases[i].ms) {
			if (ks_duration_parse(cases[i].s, &ms) || ms != cases[i].ms)
				fail_msg("%s: want %ld ms, got %ld", cases[i].s, cases[i].ms, ms);
		} else if (!ks_duration_parse(cases[i].s, &ms)) {
			fail_msg("%s: accepted as %ld ms", cases[i].s, ms);
		}
	}
}

static void test_yaml_to_json(void **state)
{
	static const char text[] = "---\n"
				   "# an empty document first\n"
				   "---\n"
				   "a: 1\n"
				   "b: \"1\"\n"
				   "c: true\n"
				   "d: ~\n"
				   "e: [x, 'y', -2, 1.5]\n"
				   "f: {g: null, h: \"a: b\"}\n"
				   "i: 0x10\n"
				   "j: yes\n"
				   "---\n"
				   "{\"name\": \"web\", \"n\": 12345678901}\n";
	struct json_object **docs;
	char err[256];
	size_t nr, i;

	(void)state;
	assert_int_equal(ks_yaml_to_json(text, strlen(text), &docs, &nr, err, sizeof(err)), 0);
	assert_int_equal(nr, 2);
	assert_string_equal(json_object_to_json_string_ext(docs[0], JSON_C_TO_STRING_PLAIN),
			    "{\"a\":1,\"b\":\"1\",\"c\":true,\"d\":null,\"e\":[\"x\",\"y\",-2,1.5],"
			    "\"f\":{\"g\":null,\"h\":\"a: b\"},\"i\":\"0x10\",\"j\":\"yes\"}");
	assert_string_equal(json_object_to_json_string_ext(docs[1], JSON_C_TO_STRING_PLAIN),
			    "{\"name\":\"web\",\"n\":12345678901}");
	for (i = 0; i < nr; i++)
		json_object_put(docs[i]);
	free(docs);

	assert_int_equal(ks_yaml_to_json("a: [1\n", 6, &docs, &nr, err, sizeof(err)), -EINVAL);
	assert_null(docs);
	assert_non_null(strstr(err, "line "));
	assert_int_equal(ks_yaml_to_json("? [a]\n: b\n", 10, &docs, &nr, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "not a string"));
}

/* An alias bomb is cut off, not expanded into gigabytes. */
static void test_yaml_alias_bomb(void **state)
{
	char text[2048];
	struct json_object **docs;
	char err[256];
	size_t nr, len;
	int i;

	(void)state;
	len = snprintf(text, sizeof(text), "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 10; i++)
		len += snprintf(text + len, sizeof(text) - len,
				"a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
				"*a%d]\n",
				i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
				i - 1);
	assert_int_equal(ks_yaml_to_json(text, len, &docs, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too large"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_weights_set),
		cmocka_unit_test(test_weights_all_to_one),
		cmocka_unit_test(test_weights_bad_objects),
		cmocka_unit_test(test_programmed),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_yaml_to_json),
		cmocka_unit_test(test_yaml_alias_bomb),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
