// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The manifest parser in linear time (issue #7): 100,000 endpoints, 100,000
 * metadata keys and labels, and 50,000 shifts in one stream each parse, and
 * their duplicates are still found at the far end. Each case prints its time
 * as a "# ..." line, a figure to watch rather than an assertion, since CI
 * machines differ; a quadratic parser took tens of seconds here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "lib/shift.h"

#define NR_ENDPOINTS 100000
#define NR_KEYS	     100000
#define NR_SHIFTS    50000

/* A growing text buffer; the tests only append. */
struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if (b->len + n < b->cap)
			break;
		b->cap = 2 * (b->cap + n) + 4096;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	b->len += n;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parses b, prints the time as what, and returns ks_manifest_parse's result. */
static int parse_timed(const struct buf *b, const char *what, struct ks_shift **s, size_t *nr,
		       char *err)
{
	double t = now();
	int ret = ks_manifest_parse(b->p, b->len, s, nr, err, KS_ERR_LEN);

	printf("# %s parsed in %.2f s (%zu KB)\n", what, now() - t, b->len / 1024);
	fflush(stdout);
	return ret;
}

static void head(struct buf *b, const char *name)
{
	put(b, "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata:\n  name: %s\n",
	    name);
}

static const char spec[] = "spec:\n"
			   "  frontend:\n"
			   "    addresses: [198.18.100.1]\n"
			   "    ports: [{port: 80}]\n"
			   "  backends:\n"
			   "  - name: a\n";

/* Endpoint i as an IPv4 address and port, all distinct. */
static void endpoint(struct buf *b, size_t i)
{
	put(b, "    - 10.%zu.%zu.%zu:%zu\n", i >> 16 & 0xff, i >> 8 & 0xff, i & 0xff, 8000 + i % 2);
}

static void test_endpoints(void **state)
{
	struct buf b = {};
	struct ks_shift *s;
	char err[KS_ERR_LEN];
	size_t i, nr;

	(void)state;
	head(&b, "many");
	put(&b, "%s    endpoints:\n", spec);
	for (i = 0; i < NR_ENDPOINTS; i++)
		endpoint(&b, i * 2);
	assert_int_equal(parse_timed(&b, "100000 endpoints", &s, &nr, err), 0);
	assert_int_equal(nr, 1);
	assert_int_equal(s->backends[0].nr_endpoints, NR_ENDPOINTS);
	assert_int_equal(s->backends[0].endpoints[NR_ENDPOINTS - 1].port, 8000);
	ks_shifts_free(s, nr);

	/* the last one repeats the first, whatever its form: found */
	put(&b, "    - {address: \"10.0.0.0:8000\", draining: true}\n");
	assert_int_equal(parse_timed(&b, "100001 endpoints, one twice", &s, &nr, err), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(err, "spec.backends[0].endpoints[100000]"));
	assert_non_null(strstr(err, "as endpoints[0] and endpoints[100000], draining in only one"));
	free(b.p);
}

/* Keys right in metadata (its unknown fields are Kubernetes' business, but
 * still checked for duplicates) and under labels. */
static void test_keys(void **state)
{
	struct buf b = {};
	struct ks_shift *s;
	char err[KS_ERR_LEN];
	size_t i, nr;

	(void)state;
	head(&b, "keys");
	for (i = 0; i < NR_KEYS; i++)
		put(&b, "  x-%zu: v\n", i);
	put(&b, "  labels:\n");
	for (i = 0; i < NR_KEYS; i++)
		put(&b, "    app.kubernetes.io/k%zu: v%zu\n", i, i);
	put(&b, "%s    endpoints: [198.18.2.2]\n", spec);
	assert_int_equal(parse_timed(&b, "100000 metadata keys and 100000 labels", &s, &nr, err),
			 0);
	assert_int_equal(nr, 1);
	assert_string_equal(s->name, "keys");
	ks_shifts_free(s, nr);

	put(&b, "  x-0: again\n"); /* a field of spec now, which has none such */
	assert_int_equal(ks_manifest_parse(b.p, b.len, &s, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "spec: x-0: unknown field"));
	free(b.p);

	b = (struct buf){};
	head(&b, "keys");
	for (i = 0; i < NR_KEYS; i++)
		put(&b, "  x-%zu: v\n", i);
	put(&b, "  x-%d: again\n%s    endpoints: [198.18.2.2]\n", NR_KEYS / 2, spec);
	assert_int_equal(parse_timed(&b, "100001 metadata keys, one twice", &s, &nr, err), -EINVAL);
	assert_non_null(strstr(err, "metadata: x-50000: field given twice"));
	free(b.p);
}

static void test_shifts(void **state)
{
	struct buf b = {};
	struct ks_shift *s;
	char err[KS_ERR_LEN];
	size_t i, nr;

	(void)state;
	for (i = 0; i < NR_SHIFTS; i++) {
		put(&b,
		    "---\napiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\n"
		    "metadata: {name: s%zu, namespace: n%zu}\n",
		    i, i % 7);
		put(&b, "%s    endpoints: [198.18.2.2]\n", spec);
	}
	/* the same name in another namespace is another shift */
	put(&b,
	    "---\napiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\n"
	    "metadata: {name: s7, namespace: n1}\n%s    endpoints: [198.18.2.2]\n",
	    spec);
	assert_int_equal(parse_timed(&b, "50001 shifts", &s, &nr, err), 0);
	assert_int_equal(nr, NR_SHIFTS + 1);
	assert_string_equal(s[NR_SHIFTS - 1].name, "s49999");
	assert_string_equal(s[NR_SHIFTS - 1].namespace, "n5");
	assert_string_equal(s[NR_SHIFTS].namespace, "n1");
	ks_shifts_free(s, nr);

	/* in its own, refused */
	put(&b,
	    "---\napiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\n"
	    "metadata: {name: s7, namespace: n0}\n%s    endpoints: [198.18.2.2]\n",
	    spec);
	assert_int_equal(parse_timed(&b, "50002 shifts, one twice", &s, &nr, err), -EINVAL);
	assert_non_null(strstr(err, "metadata.name: s7: defined twice in namespace n0"));
	free(b.p);
}

/* Unique lists (addresses, sources) through the same hash sets. */
static void test_unique_lists(void **state)
{
	struct buf b = {};
	struct ks_shift *s;
	char err[KS_ERR_LEN];
	size_t i, nr;

	(void)state;
	head(&b, "rules");
	put(&b, "spec:\n  frontend:\n    ports: [{port: 80}]\n    addresses:\n");
	for (i = 0; i < NR_ENDPOINTS / 2; i++)
		put(&b, "    - 2001:db8::%zx:%zx\n", i >> 16, i & 0xffff);
	put(&b, "  backends:\n  - {name: a, endpoints: [198.18.2.2]}\n  rules:\n"
		"  - backend: a\n    sources:\n");
	for (i = 0; i < NR_ENDPOINTS / 2; i++)
		put(&b, "    - 10.%zu.%zu.0/24\n", i >> 8 & 0xff, i & 0xff);
	assert_int_equal(parse_timed(&b, "50000 addresses and 50000 sources", &s, &nr, err), 0);
	assert_int_equal(s->nr_addresses, NR_ENDPOINTS / 2);
	assert_int_equal(s->rules[0].nr_sources, NR_ENDPOINTS / 2);
	ks_shifts_free(s, nr);
	put(&b, "    - 10.0.7.0/24\n");
	assert_int_equal(ks_manifest_parse(b.p, b.len, &s, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "spec.rules[0].sources[50000]: 10.0.7.0/24: listed twice"));
	free(b.p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_shifts),
		cmocka_unit_test(test_unique_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
