// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the Kubernetes object store (user/lib/kube_watch.c), fed
 * canned list items and watch lines as the API server sends them: which
 * changes are recorded (only on a new resourceVersion), relists that drop
 * what is gone, EndpointSlices indexed by their Service as labels change,
 * bookmarks, 410s and malformed lines that leave the store untouched.
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

#include "lib/kube.h"

static struct ks_kube_store store;

static int setup(void **state)
{
	(void)state;
	return ks_kube_store_init(&store, "kshift-system");
}

static int teardown(void **state)
{
	(void)state;
	ks_kube_store_destroy(&store);
	return 0;
}

/* An object's JSON; svc, when set, is its EndpointSlice service label. */
static char *obj(const char *ns, const char *name, const char *rv, const char *svc)
{
	static char buf[4][512];
	static int i;
	char labels[256] = "";

	if (svc)
		snprintf(labels, sizeof(labels), ",\"labels\":{\"%s\":\"%s\",\"x\":\"y\"}",
			 KS_KUBE_SLICE_LABEL, svc);
	i = (i + 1) % 4;
	snprintf(
		buf[i], sizeof(buf[i]),
		"{\"metadata\":{\"namespace\":\"%s\",\"name\":\"%s\",\"resourceVersion\":\"%s\"%s},"
		"\"spec\":{}}",
		ns, name, rv, labels);
	return buf[i];
}

static char *event(const char *type, const char *object)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "{\"type\":\"%s\",\"object\":%s}", type, object);
	return buf;
}

/* Lists the objects given as JSON strings, NULL-terminated. */
static int list(enum ks_kube_kind kind, ...)
{
	struct json_object *items = json_object_new_array();
	const char *o;
	va_list ap;
	int ret;

	va_start(ap, kind);
	while ((o = va_arg(ap, const char *)))
		json_object_array_add(items, json_tokener_parse(o));
	va_end(ap);
	ret = ks_kube_store_list(&store, kind, items);
	json_object_put(items);
	return ret;
}

static size_t nr_changes(void)
{
	struct ks_kube_change *c;
	size_t n;

	ks_kube_store_drain(&store, &c, &n);
	ks_kube_changes_free(c, n);
	return n;
}

static const char *rv_of(struct json_object *o)
{
	struct json_object *m, *v;

	assert_true(json_object_object_get_ex(o, "metadata", &m));
	assert_true(json_object_object_get_ex(m, "resourceVersion", &v));
	return json_object_get_string(v);
}

static void test_list_then_events(void **state)
{
	char *rv = NULL;
	struct ks_kube_change *c;
	size_t n;

	(void)state;
	assert_int_equal(list(KS_KUBE_SERVICE, obj("shop", "a", "1", NULL),
			      obj("shop", "b", "1", NULL), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 2);
	assert_int_equal(c[0].kind, KS_KUBE_SERVICE);
	assert_string_equal(c[0].ns, "shop");
	assert_null(c[0].service);
	ks_kube_changes_free(c, n);
	assert_non_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a"));
	assert_null(ks_kube_store_get(&store, KS_KUBE_TRAFFICSHIFT, "shop", "a"));

	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     event("ADDED", obj("shop", "c", "2", NULL)), &rv),
			 0);
	assert_string_equal(rv, "2");
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].ns, "shop");
	assert_string_equal(c[0].name, "c");
	ks_kube_changes_free(c, n);

	/* the same resourceVersion again is no news */
	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     event("MODIFIED", obj("shop", "a", "1", NULL)), &rv),
			 0);
	assert_int_equal(nr_changes(), 0);
	assert_string_equal(rv, "1");

	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     event("MODIFIED", obj("shop", "a", "3", NULL)), &rv),
			 0);
	assert_int_equal(nr_changes(), 1);
	assert_string_equal(rv_of(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a")), "3");

	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     event("DELETED", obj("shop", "b", "4", NULL)), &rv),
			 0);
	assert_int_equal(nr_changes(), 1);
	assert_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "b"));
	assert_string_equal(rv, "4");
	/* deleting what is not there changes nothing */
	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     event("DELETED", obj("shop", "b", "5", NULL)), NULL),
			 0);
	assert_int_equal(nr_changes(), 0);
	free(rv);
}

static void test_relist_deletes_stale(void **state)
{
	struct ks_kube_change *c;
	size_t n, i;
	bool saw_b = false, saw_c = false;

	(void)state;
	assert_int_equal(list(KS_KUBE_TRAFFICSHIFT, obj("shop", "a", "1", NULL),
			      obj("shop", "b", "1", NULL), obj("web", "c", "1", NULL), NULL),
			 0);
	assert_int_equal(nr_changes(), 3);
	/* a unchanged, b modified, c gone while we were not watching */
	assert_int_equal(list(KS_KUBE_TRAFFICSHIFT, obj("shop", "a", "1", NULL),
			      obj("shop", "b", "7", NULL), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 2);
	for (i = 0; i < n; i++) {
		saw_b |= !strcmp(c[i].ns, "shop") && !strcmp(c[i].name, "b");
		saw_c |= !strcmp(c[i].ns, "web") && !strcmp(c[i].name, "c");
	}
	assert_true(saw_b && saw_c);
	ks_kube_changes_free(c, n);
	assert_null(ks_kube_store_get(&store, KS_KUBE_TRAFFICSHIFT, "web", "c"));
	assert_string_equal(rv_of(ks_kube_store_get(&store, KS_KUBE_TRAFFICSHIFT, "shop", "b")),
			    "7");

	/* an empty relist empties the kind, and only that kind */
	assert_int_equal(list(KS_KUBE_SERVICE, obj("shop", "a", "1", NULL), NULL), 0);
	assert_int_equal(nr_changes(), 1);
	assert_int_equal(list(KS_KUBE_TRAFFICSHIFT, NULL), 0);
	assert_int_equal(nr_changes(), 2);
	assert_null(ks_kube_store_get(&store, KS_KUBE_TRAFFICSHIFT, "shop", "a"));
	assert_non_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a"));
}

static bool set_has(const struct ks_kube_set *set, struct json_object *o)
{
	size_t i;

	for (i = 0; set && i < set->n; i++)
		if (set->v[i] == o)
			return true;
	return false;
}

static void test_slice_moves_between_services(void **state)
{
	const enum ks_kube_kind K = KS_KUBE_ENDPOINTSLICE;
	const struct ks_kube_set *set;
	struct ks_kube_change *c;
	struct json_object *s1, *s2;
	size_t n;

	(void)state;
	assert_int_equal(list(K, obj("shop", "web-v1-abc", "1", "web-v1"),
			      obj("shop", "web-v1-def", "1", "web-v1"),
			      obj("other", "web-v1-xyz", "1", "web-v1"), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 3);
	assert_string_equal(c[0].service, "web-v1");
	ks_kube_changes_free(c, n);
	s1 = ks_kube_store_get(&store, K, "shop", "web-v1-abc");
	s2 = ks_kube_store_get(&store, K, "shop", "web-v1-def");
	set = ks_kube_store_slices(&store, "shop", "web-v1");
	assert_non_null(set);
	assert_int_equal(set->n, 2);
	assert_true(set_has(set, s1) && set_has(set, s2));
	assert_int_equal(ks_kube_store_slices(&store, "other", "web-v1")->n, 1);

	/* relabelled: one change for the Service it left, one for the new */
	assert_int_equal(ks_kube_store_event(
				 &store, K,
				 event("MODIFIED", obj("shop", "web-v1-abc", "2", "web-v2")), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].service, "web-v1");
	assert_string_equal(c[1].service, "web-v2");
	assert_string_equal(c[1].name, "web-v1-abc");
	ks_kube_changes_free(c, n);
	s1 = ks_kube_store_get(&store, K, "shop", "web-v1-abc");
	set = ks_kube_store_slices(&store, "shop", "web-v1");
	assert_int_equal(set->n, 1);
	assert_true(set_has(set, s2));
	set = ks_kube_store_slices(&store, "shop", "web-v2");
	assert_int_equal(set->n, 1);
	assert_true(set_has(set, s1));

	/* a new version under the same label replaces the set's member */
	assert_int_equal(ks_kube_store_event(
				 &store, K,
				 event("MODIFIED", obj("shop", "web-v1-abc", "3", "web-v2")), NULL),
			 0);
	assert_int_equal(nr_changes(), 1);
	set = ks_kube_store_slices(&store, "shop", "web-v2");
	assert_int_equal(set->n, 1);
	assert_ptr_equal(set->v[0], ks_kube_store_get(&store, K, "shop", "web-v1-abc"));

	/* deleted: the change names the Service, and the set goes */
	assert_int_equal(ks_kube_store_event(
				 &store, K,
				 event("DELETED", obj("shop", "web-v1-abc", "4", "web-v2")), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 1);
	assert_string_equal(c[0].service, "web-v2");
	ks_kube_changes_free(c, n);
	assert_null(ks_kube_store_slices(&store, "shop", "web-v2"));

	/* the label removed: out of every set */
	assert_int_equal(
		ks_kube_store_event(&store, K,
				    event("MODIFIED", obj("shop", "web-v1-def", "5", NULL)), NULL),
		0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].service, "web-v1");
	assert_null(c[1].service);
	ks_kube_changes_free(c, n);
	assert_null(ks_kube_store_slices(&store, "shop", "web-v1"));

	/* a relist that lacks a slice takes it out of its set */
	assert_int_equal(list(K, obj("shop", "web-v1-def", "5", NULL), NULL), 0);
	assert_int_equal(nr_changes(), 1);
	assert_null(ks_kube_store_slices(&store, "other", "web-v1"));
}

static void test_bookmark(void **state)
{
	char *rv = strdup("10");

	(void)state;
	assert_int_equal(list(KS_KUBE_SERVICE, obj("shop", "a", "1", NULL), NULL), 0);
	assert_int_equal(nr_changes(), 1);
	assert_int_equal(
		ks_kube_store_event(
			&store, KS_KUBE_SERVICE,
			"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Service\","
			"\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"99\"}}}",
			&rv),
		0);
	assert_string_equal(rv, "99");
	assert_int_equal(nr_changes(), 0);
	assert_string_equal(rv_of(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a")), "1");
	free(rv);
}

static void test_error_events(void **state)
{
	char *rv = strdup("10");

	(void)state;
	assert_int_equal(
		ks_kube_store_event(
			&store, KS_KUBE_SERVICE,
			"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":"
			"\"v1\",\"status\":\"Failure\",\"message\":\"too old resource "
			"version: 1 (2)\",\"reason\":\"Expired\",\"code\":410}}",
			&rv),
		-ESTALE);
	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE,
					     "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
					     "\"message\":\"internal error\",\"code\":500}}",
					     &rv),
			 -EPROTO);
	assert_string_equal(rv, "10");
	assert_int_equal(nr_changes(), 0);
	free(rv);
}

static void test_malformed_lines(void **state)
{
	static const char *const bad[] = {
		"not json",
		"{\"type\":\"ADDED\"",
		"[1,2]",
		"{\"type\":\"ADDED\"}",
		"{\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"9\"}}}",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":\"shop\"}}}",
		"{\"type\":\"ADDED\",\"object\":\"a\"}",
		"{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"\"}}}",
		"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}} trailing",
		"{\"type\":\"RENAMED\",\"object\":{\"metadata\":{\"namespace\":\"shop\","
		"\"name\":\"a\",\"resourceVersion\":\"9\"}}}",
	};
	struct json_object *items;
	char *rv = strdup("5");
	size_t i;

	(void)state;
	assert_int_equal(list(KS_KUBE_SERVICE, obj("shop", "a", "1", NULL), NULL), 0);
	assert_int_equal(nr_changes(), 1);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ks_kube_store_event(&store, KS_KUBE_SERVICE, bad[i], &rv) != -EPROTO)
			fail_msg("accepted: %s", bad[i]);
	}
	assert_string_equal(rv, "5");
	assert_int_equal(nr_changes(), 0);
	assert_string_equal(rv_of(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a")), "1");

	/* a list with one bad item is refused whole */
	items = json_object_new_array();
	json_object_array_add(items, json_tokener_parse(obj("shop", "b", "2", NULL)));
	json_object_array_add(items, json_tokener_parse("{\"metadata\":{}}"));
	assert_int_equal(ks_kube_store_list(&store, KS_KUBE_SERVICE, items), -EPROTO);
	json_object_put(items);
	assert_int_equal(ks_kube_store_list(&store, KS_KUBE_SERVICE, NULL), -EPROTO);
	assert_int_equal(nr_changes(), 0);
	assert_non_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "a"));
	assert_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "b"));
	free(rv);
}

static void test_drain_empties(void **state)
{
	struct ks_kube_change *c;
	size_t n;

	(void)state;
	assert_int_equal(list(KS_KUBE_LEASE, obj("kshift-system", "node-1", "1", NULL),
			      obj("kshift-system", "node-2", "1", NULL), NULL),
			 0);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 2);
	assert_int_equal(c[1].kind, KS_KUBE_LEASE);
	ks_kube_changes_free(c, n);
	ks_kube_store_drain(&store, &c, &n);
	assert_int_equal(n, 0);
	assert_null(c);
	ks_kube_changes_free(c, n);
	/* and it records again afterwards */
	assert_int_equal(ks_kube_store_event(
				 &store, KS_KUBE_LEASE,
				 event("DELETED", obj("kshift-system", "node-1", "2", NULL)), NULL),
			 0);
	assert_int_equal(nr_changes(), 1);
}

/* Deeper than json-c's default limit of 32, as managedFields can be. */
static void test_deep_object(void **state)
{
	char line[1024] = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"d\","
			  "\"namespace\":\"shop\",\"resourceVersion\":\"1\"},\"spec\":";
	int i;

	(void)state;
	for (i = 0; i < 60; i++)
		strcat(line, "{\"a\":");
	strcat(line, "1");
	for (i = 0; i < 60; i++)
		strcat(line, "}");
	strcat(line, "}}");
	assert_int_equal(ks_kube_store_event(&store, KS_KUBE_SERVICE, line, NULL), 0);
	assert_non_null(ks_kube_store_get(&store, KS_KUBE_SERVICE, "shop", "d"));
}

static void test_managed_fields_dropped(void **state)
{
	struct json_object *o, *m, *v;

	(void)state;
	assert_int_equal(
		ks_kube_store_event(
			&store, KS_KUBE_TRAFFICSHIFT,
			"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"web\","
			"\"namespace\":\"shop\",\"resourceVersion\":\"3\",\"managedFields\":"
			"[{\"manager\":\"kubectl\"}],\"labels\":{\"a\":\"b\"}}}}",
			NULL),
		0);
	o = ks_kube_store_get(&store, KS_KUBE_TRAFFICSHIFT, "shop", "web");
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "metadata", &m));
	assert_false(json_object_object_get_ex(m, "managedFields", &v));
	assert_true(json_object_object_get_ex(m, "labels", &v));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_then_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_relist_deletes_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slice_moves_between_services, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bookmark, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drain_empties, setup, teardown),
		cmocka_unit_test_setup_teardown(test_managed_fields_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deep_object, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
