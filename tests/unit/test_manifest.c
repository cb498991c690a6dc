// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of TrafficShift manifest parsing (user/lib/manifest.c) and of
 * its JSON form (user/lib/shift_json.c): valid YAML and JSON documents field
 * by field, defaults, IPv6, a table of refused manifests whose messages must
 * name the line, the field and the value, and the JSON round trip.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "lib/shift.h"

/* The example in SPEC.md without status, with explicit endpoints and a
 * shadow backend for the mirror. */
static const char example[] = "apiVersion: kshift.dev/v1alpha1\n"
			      "kind: TrafficShift\n"
			      "metadata:\n"
			      "  name: web\n"
			      "  namespace: shop\n"
			      "  generation: 3\n"
			      "spec:\n"
			      "  frontend:\n"
			      "    service: web\n"
			      "    addresses: [\"198.18.100.1\"]\n"
			      "    ports:\n"
			      "    - {port: 80, protocol: TCP}\n"
			      "    - {port: 53, protocol: UDP}\n"
			      "  backends:\n"
			      "  - name: stable\n"
			      "    service: web-v1\n"
			      "    endpoints: [\"198.18.2.2:8080\", \"198.18.2.3:8080\"]\n"
			      "    weight: 90\n"
			      "  - name: canary\n"
			      "    service: web-v2\n"
			      "    endpoints: [\"198.18.3.2:8080\"]\n"
			      "    weight: 10\n"
			      "  - name: shadow\n"
			      "    endpoints: [198.18.4.2]\n"
			      "    weight: 0\n"
			      "  affinity: client\n"
			      "  rules:\n"
			      "  - sources: [\"198.18.1.16/28\", 198.18.1.5]\n"
			      "    backend: canary\n"
			      "  mirror:\n"
			      "    backend: shadow\n"
			      "    percent: 25\n";

static struct ks_shift *parse_ok(const char *text, size_t want)
{
	char err[KS_ERR_LEN];
	struct ks_shift *shifts;
	size_t nr;
	int ret;

	ret = ks_manifest_parse(text, strlen(text), &shifts, &nr, err, sizeof(err));
	if (ret)
		fail_msg("refused: %s", err);
	assert_int_equal(nr, want);
	return shifts;
}

static void assert_ip(const struct ks_ip *ip, const char *want)
{
	char buf[INET6_ADDRSTRLEN];

	assert_string_equal(ks_ip_str(ip, buf, sizeof(buf)), want);
}

static void assert_endpoint(const struct ks_endpoint_spec *ep, const char *ip, uint16_t port)
{
	assert_ip(&ep->ip, ip);
	assert_int_equal(ep->port, port);
}

static void assert_prefix(const struct ks_prefix *pfx, const char *addr, unsigned int len)
{
	struct ks_ip ip = {.addr = pfx->addr, .family = pfx->family};

	assert_ip(&ip, addr);
	assert_int_equal(pfx->len, len);
}

/* Deep equality, arrays bytewise: the parser zeroes padding. */
static void assert_shift_equal(const struct ks_shift *a, const struct ks_shift *b)
{
	size_t i;

	assert_string_equal(a->name, b->name);
	assert_string_equal(a->namespace, b->namespace);
	assert_string_equal(a->frontend_service, b->frontend_service);
	assert_int_equal(a->generation, b->generation);
	assert_int_equal(a->nr_addresses, b->nr_addresses);
	if (a->nr_addresses)
		assert_memory_equal(a->addresses, b->addresses,
				    a->nr_addresses * sizeof(*a->addresses));
	assert_int_equal(a->nr_ports, b->nr_ports);
	assert_memory_equal(a->ports, b->ports, a->nr_ports * sizeof(*a->ports));
	assert_int_equal(a->nr_backends, b->nr_backends);
	for (i = 0; i < a->nr_backends; i++) {
		const struct ks_backend_spec *x = &a->backends[i], *y = &b->backends[i];

		assert_string_equal(x->name, y->name);
		assert_string_equal(x->service, y->service);
		assert_int_equal(x->weight, y->weight);
		assert_int_equal(x->nr_endpoints, y->nr_endpoints);
		if (x->nr_endpoints)
			assert_memory_equal(x->endpoints, y->endpoints,
					    x->nr_endpoints * sizeof(*x->endpoints));
	}
	assert_int_equal(a->affinity, b->affinity);
	assert_int_equal(a->nr_rules, b->nr_rules);
	for (i = 0; i < a->nr_rules; i++) {
		assert_int_equal(a->rules[i].backend, b->rules[i].backend);
		assert_int_equal(a->rules[i].nr_sources, b->rules[i].nr_sources);
		assert_memory_equal(a->rules[i].sources, b->rules[i].sources,
				    a->rules[i].nr_sources * sizeof(*a->rules[i].sources));
	}
	assert_int_equal(a->mirror_backend, b->mirror_backend);
	assert_int_equal(a->mirror_percent, b->mirror_percent);
}

static void test_full_manifest(void **state)
{
	struct ks_shift *s = parse_ok(example, 1);

	(void)state;
	assert_string_equal(s->name, "web");
	assert_string_equal(s->namespace, "shop");
	assert_int_equal(s->generation, 3);
	assert_string_equal(s->frontend_service, "web");
	assert_int_equal(s->nr_addresses, 1);
	assert_ip(&s->addresses[0], "198.18.100.1");
	assert_int_equal(s->addresses[0].family, KS_FAMILY_V4);
	assert_int_equal(s->nr_ports, 2);
	assert_int_equal(s->ports[0].port, 80);
	assert_int_equal(s->ports[0].proto, IPPROTO_TCP);
	assert_int_equal(s->ports[1].port, 53);
	assert_int_equal(s->ports[1].proto, IPPROTO_UDP);

	assert_int_equal(s->nr_backends, 3);
	assert_string_equal(s->backends[0].name, "stable");
	assert_string_equal(s->backends[0].service, "web-v1");
	assert_int_equal(s->backends[0].weight, 90);
	assert_int_equal(s->backends[0].nr_endpoints, 2);
	assert_endpoint(&s->backends[0].endpoints[0], "198.18.2.2", 8080);
	assert_endpoint(&s->backends[0].endpoints[1], "198.18.2.3", 8080);
	assert_string_equal(s->backends[1].name, "canary");
	assert_string_equal(s->backends[1].service, "web-v2");
	assert_int_equal(s->backends[1].weight, 10);
	assert_int_equal(s->backends[1].nr_endpoints, 1);
	assert_endpoint(&s->backends[1].endpoints[0], "198.18.3.2", 8080);
	assert_string_equal(s->backends[2].name, "shadow");
	assert_string_equal(s->backends[2].service, "");
	assert_int_equal(s->backends[2].weight, 0);
	assert_endpoint(&s->backends[2].endpoints[0], "198.18.4.2", 0);

	assert_int_equal(s->affinity, KS_AFFINITY_CLIENT);
	assert_int_equal(s->nr_rules, 1);
	assert_int_equal(s->rules[0].backend, 1);
	assert_int_equal(s->rules[0].nr_sources, 2);
	assert_prefix(&s->rules[0].sources[0], "198.18.1.16", 28);
	assert_prefix(&s->rules[0].sources[1], "198.18.1.5", 32);
	assert_int_equal(s->mirror_backend, 2);
	assert_int_equal(s->mirror_percent, 25);
	ks_shifts_free(s, 1);
}

static void test_multi_document(void **state)
{
	const char *text = "# leading comment\n"
			   "---\n"
			   "---\n" /* empty */
			   "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: a}\n"
			   "spec:\n"
			   "  frontend: {addresses: [198.18.100.1], ports: [{port: 80}]}\n"
			   "  backends: [{name: one, endpoints: [198.18.2.2]}]\n"
			   "--- ~\n" /* null */
			   "---\n"
			   "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: a, namespace: other}\n"
			   "spec:\n"
			   "  frontend: {addresses: [198.18.100.2], ports: [{port: 80}]}\n"
			   "  backends: [{name: one, endpoints: [198.18.2.3]}]\n"
			   "...\n";
	struct ks_shift *s = parse_ok(text, 2);

	(void)state;
	assert_string_equal(s[0].name, "a");
	assert_string_equal(s[0].namespace, "default");
	assert_string_equal(s[1].name, "a");
	assert_string_equal(s[1].namespace, "other");
	assert_ip(&s[1].addresses[0], "198.18.100.2");
	ks_shifts_free(s, 2);
}

/* What the Kubernetes API returns: JSON, with metadata and status kshift
 * does not read. */
static void test_json_input(void **state)
{
	const char *text =
	    "{\"apiVersion\":\"kshift.dev/v1alpha1\",\"kind\":\"TrafficShift\","
	    "\"metadata\":{\"name\":\"web\",\"namespace\":\"default\",\"uid\":\"0c1d\","
	    "\"resourceVersion\":\"123\",\"generation\":7,"
	    "\"creationTimestamp\":\"2024-01-01T00:00:00Z\","
	    "\"labels\":{\"app\":\"web\"},\"annotations\":{\"a/b\":\"{\\\"x\\\": 1}\"},"
	    "\"managedFields\":[{\"manager\":\"kubectl\",\"fieldsV1\":{\"f:spec\":{}}}]},"
	    "\"spec\":{\"frontend\":{\"service\":\"web\",\"ports\":[{\"port\":8443}]},"
	    "\"backends\":[{\"name\":\"blue\",\"service\":\"web-blue\",\"weight\":0},"
	    "{\"name\":\"green\",\"service\":\"web-green\",\"weight\":1000000}],"
	    "\"affinity\":\"connection\",\"mirror\":{\"backend\":\"blue\"}},"
	    "\"status\":{\"observedGeneration\":6,\"conditions\":[]}}";
	struct ks_shift *s = parse_ok(text, 1);

	(void)state;
	assert_string_equal(s->name, "web");
	assert_int_equal(s->generation, 7);
	assert_string_equal(s->frontend_service, "web");
	assert_int_equal(s->nr_addresses, 0);
	assert_int_equal(s->ports[0].port, 8443);
	assert_int_equal(s->nr_backends, 2);
	assert_int_equal(s->backends[0].weight, 0);
	assert_int_equal(s->backends[1].weight, KS_WEIGHT_MAX);
	assert_string_equal(s->backends[1].service, "web-green");
	assert_int_equal(s->backends[1].nr_endpoints, 0);
	assert_int_equal(s->mirror_backend, 0);
	assert_int_equal(s->mirror_percent, 100);
	ks_shifts_free(s, 1);
}

static void test_defaults(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata:\n"
			   "  name: a.b-c\n"
			   "  namespace:\n" /* null: unset */
			   "spec:\n"
			   "  frontend:\n"
			   "    addresses: [198.18.100.1]\n"
			   "    ports: [{port: 80}]\n"
			   "  backends:\n"
			   "  - name: only\n"
			   "    endpoints: [198.18.2.2]\n"
			   "    weight: ~\n"
			   "  rules: []\n"
			   "  mirror: null\n";
	struct ks_shift *s = parse_ok(text, 1);

	(void)state;
	assert_string_equal(s->name, "a.b-c");
	assert_string_equal(s->namespace, "default");
	assert_int_equal(s->generation, 0);
	assert_string_equal(s->frontend_service, "");
	assert_int_equal(s->ports[0].proto, IPPROTO_TCP);
	assert_int_equal(s->backends[0].weight, 1);
	assert_int_equal(s->backends[0].endpoints[0].port, 0);
	assert_int_equal(s->affinity, KS_AFFINITY_CONNECTION);
	assert_int_equal(s->nr_rules, 0);
	assert_null(s->rules);
	assert_int_equal(s->mirror_backend, -1);
	ks_shifts_free(s, 1);
}

static void test_ipv6(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: v6}\n"
			   "spec:\n"
			   "  frontend:\n"
			   "    addresses: [\"2001:2:0:100:0:0:0:1\", 198.18.100.1]\n"
			   "    ports: [{port: 443}]\n"
			   "  backends:\n"
			   "  - name: stable\n"
			   "    endpoints: [\"[2001:2:0:2::2]:8080\", \"2001:2:0:2::3\", "
			   "\"[2001:2:0:2:0::4]:80\"]\n"
			   "  rules:\n"
			   "  - sources: [\"2001:2:0:1::/64\", \"2001:2:0:1:0:0:0:10\", \"::/0\"]\n"
			   "    backend: stable\n";
	struct ks_shift *s = parse_ok(text, 1);

	(void)state;
	assert_int_equal(s->nr_addresses, 2);
	assert_ip(&s->addresses[0], "2001:2:0:100::1");
	assert_int_equal(s->addresses[0].family, KS_FAMILY_V6);
	assert_int_equal(s->addresses[1].family, KS_FAMILY_V4);
	assert_endpoint(&s->backends[0].endpoints[0], "2001:2:0:2::2", 8080);
	assert_endpoint(&s->backends[0].endpoints[1], "2001:2:0:2::3", 0);
	assert_endpoint(&s->backends[0].endpoints[2], "2001:2:0:2::4", 80);
	assert_prefix(&s->rules[0].sources[0], "2001:2:0:1::", 64);
	assert_prefix(&s->rules[0].sources[1], "2001:2:0:1::10", 128);
	assert_prefix(&s->rules[0].sources[2], "::", 0);
	assert_int_equal(s->rules[0].sources[0].family, KS_FAMILY_V6);
	ks_shifts_free(s, 1);
}

static void test_empty_input(void **state)
{
	const char *texts[] = {"", "# nothing\n", "---\n", "---\n...\n---\n"};
	struct ks_shift *s = (void *)1;
	char err[KS_ERR_LEN];
	size_t i, nr = 1;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		assert_int_equal(
		    ks_manifest_parse(texts[i], strlen(texts[i]), &s, &nr, err, sizeof(err)), 0);
		assert_null(s);
		assert_int_equal(nr, 0);
	}
}

/* A refusal in a later document gives back nothing, and its line is
 * counted from the start of the file. */
static void test_error_in_later_document(void **state)
{
	char text[4096], err[KS_ERR_LEN];
	struct ks_shift *s = (void *)1;
	size_t nr = 1;

	(void)state;
	snprintf(text, sizeof(text), "%s---\n%s", example, example);
	strstr(strstr(text, "---\n"), "shop")[3] = 'q';	    /* no duplicate */
	*strstr(strstr(text, "---\n"), "weight: 10") = 'X'; /* "Xeight: 10" in document 2 */
	assert_int_equal(ks_manifest_parse(text, strlen(text), &s, &nr, err, sizeof(err)), -EINVAL);
	assert_null(s);
	assert_int_equal(nr, 0);
	assert_string_equal(err, "line 55: spec.backends[1]: Xeight: unknown field");
}

/* An alias shares one node, so it is read as often as it is named: fine
 * for a list named twice, refused when it multiplies into a huge document. */
static void test_aliases(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: web}\n"
			   "spec:\n"
			   "  frontend: {addresses: [198.18.100.1], ports: &ports [{port: 80}]}\n"
			   "  backends:\n"
			   "  - {name: a, endpoints: &eps [198.18.2.2, 198.18.2.3]}\n"
			   "  - {name: b, endpoints: *eps}\n";
	char *bomb, *p, err[KS_ERR_LEN];
	struct ks_shift *s = parse_ok(text, 1);
	size_t i, nr;

	(void)state;
	assert_int_equal(s->backends[1].nr_endpoints, 2);
	assert_endpoint(&s->backends[1].endpoints[1], "198.18.2.3", 0);
	ks_shifts_free(s, 1);

	/* 300 rules, each naming the same 300 sources: 90000 items */
	bomb = malloc(64 * 1024);
	assert_non_null(bomb);
	p = bomb + sprintf(bomb, "%s  rules:\n  - &r {backend: a, sources: [", text);
	for (i = 0; i < 300; i++)
		p += sprintf(p, "%s198.18.%zu.%zu", i ? ", " : "", i / 250, i % 250);
	p += sprintf(p, "]}\n");
	for (i = 1; i < 300; i++)
		p += sprintf(p, "  - *r\n");
	assert_int_equal(ks_manifest_parse(bomb, p - bomb, &s, &nr, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "spec.rules["));
	assert_non_null(strstr(err, "more than 65536 list items"));
	free(bomb);
}

/* libyaml reports bad UTF-8 by byte offset; the line is still right. */
static void test_syntax_error_line(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\n"
			   "metadata:\n  name: w\xff"
			   "eb\n";
	struct ks_shift *s;
	char err[KS_ERR_LEN];
	size_t nr;

	(void)state;
	assert_int_equal(ks_manifest_parse(text, strlen(text), &s, &nr, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 4: invalid leading UTF-8 octet");
}

static void test_error_buffer(void **state)
{
	const char *text = "apiVersion: v1\n";
	struct ks_shift *s;
	char err[12];
	size_t nr;

	(void)state;
	memset(err, 'x', sizeof(err));
	assert_int_equal(ks_manifest_parse(text, strlen(text), &s, &nr, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "line 1: api");
	assert_int_equal(ks_manifest_parse(text, strlen(text), &s, &nr, NULL, 0), -EINVAL);
}

/* Endpoints as strings and as {address, draining}, mixed in one list. */
static void test_draining(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: web}\n"
			   "spec:\n"
			   "  frontend: {addresses: [198.18.100.1], ports: [{port: 80}]}\n"
			   "  backends:\n"
			   "  - name: stable\n"
			   "    endpoints:\n"
			   "    - 198.18.2.2:8080\n"
			   "    - {address: 198.18.2.3:8080, draining: true}\n"
			   "    - {address: \"[2001:2:0:2::2]:8080\", draining: false}\n"
			   "    - {address: 198.18.2.4, draining: True}\n"
			   "    - {address: 198.18.2.5, draining: ~}\n";
	struct ks_shift *s = parse_ok(text, 1);
	const struct ks_endpoint_spec *eps = s->backends[0].endpoints;

	(void)state;
	assert_int_equal(s->backends[0].nr_endpoints, 5);
	assert_endpoint(&eps[0], "198.18.2.2", 8080);
	assert_int_equal(eps[0].state, KS_EP_READY);
	assert_endpoint(&eps[1], "198.18.2.3", 8080);
	assert_int_equal(eps[1].state, KS_EP_TERMINATING);
	assert_endpoint(&eps[2], "2001:2:0:2::2", 8080);
	assert_int_equal(eps[2].state, KS_EP_READY);
	assert_endpoint(&eps[3], "198.18.2.4", 0);
	assert_int_equal(eps[3].state, KS_EP_TERMINATING);
	assert_int_equal(eps[4].state, KS_EP_READY); /* null: the default */
	assert_int_equal(eps[1].frontend_port, 0);
	ks_shifts_free(s, 1);
}

/* SPEC: a frontend needs addresses or a service, a backend endpoints or a
 * service; a frontend Service supplies the ports when none are given. */
static void test_service_only(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: web}\n"
			   "spec:\n"
			   "  frontend: {service: web}\n"
			   "  backends:\n"
			   "  - {name: stable, service: web-v1}\n"
			   "  - {name: canary, endpoints: []}\n";
	struct ks_shift *s = parse_ok(text, 1);

	(void)state;
	assert_string_equal(s->frontend_service, "web");
	assert_int_equal(s->nr_addresses, 0);
	assert_int_equal(s->nr_ports, 0);
	assert_string_equal(s->backends[0].service, "web-v1");
	assert_int_equal(s->backends[0].nr_endpoints, 0);
	assert_int_equal(s->backends[1].nr_endpoints, 0);
	ks_shifts_free(s, 1);
}

/* A draining endpoint is written in the object form, the others as
 * strings; endpoints listed per frontend port (from Kubernetes) once per
 * address and port. */
static void test_json_endpoints(void **state)
{
	const char *text = "apiVersion: kshift.dev/v1alpha1\n"
			   "kind: TrafficShift\n"
			   "metadata: {name: web}\n"
			   "spec:\n"
			   "  frontend: {addresses: [198.18.100.1], ports: [{port: 80}, {port: 443}]}\n"
			   "  backends:\n"
			   "  - name: stable\n"
			   "    endpoints: [198.18.2.2:8080, {address: 198.18.2.3:8080, draining: true}]\n";
	struct ks_endpoint_spec eps[4];
	struct ks_shift *s = parse_ok(text, 1);
	struct json_object *json;
	const char *out;

	(void)state;
	json = ks_shift_to_json(s);
	out = json_object_to_json_string_ext(json, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(out, "\"endpoints\":[\"198.18.2.2:8080\",{\"address\":"
				    "\"198.18.2.3:8080\",\"draining\":true}]"));
	json_object_put(json);

	/* as kube_model.c lists them: 80 -> 8080 and 443 -> 8443 */
	memset(eps, 0, sizeof(eps));
	eps[0] = s->backends[0].endpoints[0];
	eps[0].frontend_port = 80;
	eps[1] = eps[0];
	eps[1].frontend_port = 443;
	eps[1].port = 8443;
	eps[2] = eps[0];
	eps[2].frontend_port = 443;
	eps[2].frontend_proto = IPPROTO_TCP;
	eps[3] = eps[1];
	free(s->backends[0].endpoints);
	s->backends[0].endpoints = eps;
	s->backends[0].nr_endpoints = 4;
	json = ks_shift_to_json(s);
	out = json_object_to_json_string_ext(json, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(out, "\"endpoints\":[\"198.18.2.2:8080\",\"198.18.2.2:8443\"]"));
	json_object_put(json);
	s->backends[0].endpoints = NULL;
	s->backends[0].nr_endpoints = 0;
	ks_shifts_free(s, 1);
}

/* Output of kshiftctl get -o json, applied again, is the same shift. */
static void test_json_round_trip(void **state)
{
	const char *texts[] = {
	    example,
	    "apiVersion: kshift.dev/v1alpha1\n"
	    "kind: TrafficShift\n"
	    "metadata: {name: v6}\n"
	    "spec:\n"
	    "  frontend: {service: web, addresses: [\"2001:2:0:100::1\"], ports: [{port: 80}]}\n"
	    "  backends:\n"
	    "  - {name: a, endpoints: [\"[2001:2:0:2::2]:8080\", \"2001:2:0:2::3\"]}\n"
	    "  - {name: b, service: b-svc, weight: 0}\n"
	    "  rules: [{sources: [\"2001:2:0:1::/64\", \"198.18.1.0/24\"], backend: b}]\n",
	    "apiVersion: kshift.dev/v1alpha1\n"
	    "kind: TrafficShift\n"
	    "metadata: {name: drain}\n"
	    "spec:\n"
	    "  frontend: {service: web}\n"
	    "  backends:\n"
	    "  - name: a\n"
	    "    endpoints: [{address: \"[2001:2:0:2::2]:8080\", draining: true}, 198.18.2.2,\n"
	    "                {address: 198.18.2.3, draining: true}, {address: 198.18.2.4}]\n",
	};
	struct ks_shift *s, *back;
	struct json_object *json;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		s = parse_ok(texts[i], 1);
		json = ks_shift_to_json(s);
		assert_non_null(json);
		back = parse_ok(json_object_to_json_string(json), 1);
		assert_shift_equal(s, back);
		back = (ks_shifts_free(back, 1), NULL);
		/* and pretty-printed, tabs and all */
		back = parse_ok(json_object_to_json_string_ext(
				    json, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_PRETTY_TAB),
				1);
		assert_shift_equal(s, back);
		ks_shifts_free(back, 1);
		json_object_put(json);
		ks_shifts_free(s, 1);
	}
}

static void test_copy_free(void **state)
{
	struct ks_shift *s = parse_ok(example, 1), copy, empty = {.mirror_backend = -1};

	(void)state;
	assert_int_equal(ks_shift_copy(&copy, s), 0);
	assert_shift_equal(&copy, s);
	assert_ptr_not_equal(copy.addresses, s->addresses);
	assert_ptr_not_equal(copy.backends[0].endpoints, s->backends[0].endpoints);
	assert_ptr_not_equal(copy.rules[0].sources, s->rules[0].sources);
	ks_shifts_free(s, 1); /* the copy owns its own memory */
	assert_endpoint(&copy.backends[0].endpoints[1], "198.18.2.3", 8080);
	ks_shift_free(&copy);
	ks_shift_free(&copy); /* harmless */
	assert_int_equal(copy.nr_backends, 0);
	assert_int_equal(ks_shift_copy(&copy, &empty), 0);
	ks_shift_free(&copy);
	ks_shift_free(NULL);
	ks_shifts_free(NULL, 0);
}

/* Equal field by field; each kind of difference tells them apart, the
 * endpoint fields that the JSON form merges included. */
static void test_shift_equal(void **state)
{
	struct ks_shift *a = parse_ok(example, 1), *b = parse_ok(example, 1), c;

	(void)state;
	assert_true(ks_shift_equal(a, b));
	assert_int_equal(ks_shift_copy(&c, a), 0);
	assert_true(ks_shift_equal(a, &c));
#define DIFFERS(change, undo)                                                                      	do {                                                                                       		change;                                                                            		assert_false(ks_shift_equal(a, b));                                                		undo;                                                                              		assert_true(ks_shift_equal(a, b));                                                 	} while (0)
	DIFFERS(b->generation++, b->generation--);
	DIFFERS(b->namespace[0] = 'x', b->namespace[0] = 's');
	DIFFERS(b->addresses[0].addr.bytes[3]++, b->addresses[0].addr.bytes[3]--);
	DIFFERS(b->ports[1].proto = IPPROTO_TCP, b->ports[1].proto = IPPROTO_UDP);
	DIFFERS(b->backends[1].weight++, b->backends[1].weight--);
	DIFFERS(b->backends[0].nr_endpoints--, b->backends[0].nr_endpoints++);
	DIFFERS(b->backends[0].endpoints[1].state = KS_EP_TERMINATING,
		b->backends[0].endpoints[1].state = KS_EP_READY);
	DIFFERS(b->backends[0].endpoints[1].frontend_port = 80,
		b->backends[0].endpoints[1].frontend_port = 0);
	DIFFERS(b->backends[0].endpoints[1].port = 8443, b->backends[0].endpoints[1].port = 8080);
	DIFFERS(b->rules[0].sources[0].len = 27, b->rules[0].sources[0].len = 28);
	DIFFERS(b->mirror_percent = 100, b->mirror_percent = 25);
	DIFFERS(b->affinity = KS_AFFINITY_CONNECTION, b->affinity = KS_AFFINITY_CLIENT);
#undef DIFFERS
	ks_shift_free(&c);
	ks_shifts_free(a, 1);
	ks_shifts_free(b, 1);
}

static void test_shift_backend(void **state)
{
	struct ks_shift *s = parse_ok(example, 1);

	(void)state;
	assert_int_equal(ks_shift_backend(s, "stable"), 0);
	assert_int_equal(ks_shift_backend(s, "shadow"), 2);
	assert_int_equal(ks_shift_backend(s, "blue"), -1);
	assert_int_equal(ks_shift_backend(s, ""), -1);
	ks_shifts_free(s, 1);
}

static void test_ip(void **state)
{
	static const struct {
		const char *in, *out; /* out NULL: refused */
	} cases[] = {
	    {"198.18.2.2", "198.18.2.2"},
	    {"2001:2:0:0:0:0:0:1", "2001:2::1"},
	    {"2001:0002::0001", "2001:2::1"},
	    {"::", "::"},
	    {"1.2.3", NULL},
	    {"010.1.1.1", NULL},
	    {"1.2.3.4 ", NULL},
	    {"256.1.1.1", NULL},
	    {"fe80::1%eth0", NULL},
	    {"", NULL},
	};
	struct ks_ip ip, bad = {.family = 0};
	char buf[INET6_ADDRSTRLEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = ks_ip_parse(cases[i].in, &ip);

		if (!cases[i].out) {
			assert_int_equal(ret, -EINVAL);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_string_equal(ks_ip_str(&ip, buf, sizeof(buf)), cases[i].out);
	}
	assert_string_equal(ks_ip_str(&bad, buf, sizeof(buf)), "?");
}

/*
 * Refused manifests. Each is one document built from the parts below, and
 * the message must start with "line N: " and hold the field path and the
 * value (or, where the node has none, the reason).
 */
#define HEAD	 "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata:\n  name: web\n"
#define FRONTEND "  frontend:\n    addresses: [198.18.100.1]\n    ports: [{port: 80}]\n"
#define BACKENDS                                                                                   \
	"  backends:\n"                                                                            \
	"  - {name: stable, endpoints: [\"198.18.2.2:8080\"], weight: 90}\n"                       \
	"  - {name: canary, endpoints: [\"198.18.3.2:8080\"], weight: 10}\n"
/* HEAD is lines 1-4, "spec:" 5, FRONTEND 6-8, BACKENDS 9-11, more from 12 */
#define VALID(more)	  HEAD "spec:\n" FRONTEND BACKENDS more
#define WITH_FRONTEND(fe) HEAD "spec:\n  frontend:\n" fe BACKENDS
#define WITH_BACKENDS(b)  HEAD "spec:\n" FRONTEND "  backends:\n" b
#define ENDPOINT(ep)	  WITH_BACKENDS("  - {name: stable, endpoints: [\"" ep "\"]}\n")
#define EPS(list)	  WITH_BACKENDS("  - {name: stable, endpoints: [" list "]}\n")
#define WEIGHT(w)	  WITH_BACKENDS("  - {name: stable, weight: " w "}\n")
#define SOURCE(src)	  VALID("  rules: [{sources: [\"" src "\"], backend: canary}]\n")
#define LONG_LABEL	  "a123456789012345678901234567890123456789012345678901234567890123"

struct bad_case {
	const char *name;
	const char *text;
	int line;
	const char *path;
	const char *value;
};

static const struct bad_case bad_cases[] = {
    {"api_version", "apiVersion: kshift.dev/v1\nkind: TrafficShift\n", 1, "apiVersion",
     "kshift.dev/v1"},
    {"kind", "apiVersion: kshift.dev/v1alpha1\nkind: Deployment\n", 2, "kind",
     "Deployment: must be TrafficShift"},
    {"kind_missing", "apiVersion: kshift.dev/v1alpha1\nmetadata: {name: a}\n", 1, "kind",
     "required"},
    {"not_a_mapping", "- a\n- b\n", 1, "", "must be a mapping, not a list"},
    {"unknown_top_field", HEAD "specs: {}\n", 5, "", "specs: unknown field"},
    {"yaml_syntax", HEAD "spec: [\n  frontend: {\n", 7, "", "did not find expected node content"},
    {"name_missing", "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata: {}\n", 3,
     "metadata.name", "required"},
    {"name_uppercase",
     "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\nmetadata:\n"
     "  name: Web_1\n",
     4, "metadata.name", "Web_1"},
    {"namespace_dot", HEAD "  namespace: a.b\n", 5, "metadata.namespace", "a.b"},
    {"generation_negative", HEAD "  generation: -1\n", 5, "metadata.generation", "-1"},
    {"duplicate_document", VALID("---\n") VALID(""), 16, "metadata.name", "web"},
    {"spec_missing", HEAD, 1, "spec", "required"},
    {"spec_unknown_field", VALID("  weights: {stable: 1}\n"), 12, "spec", "weights"},
    {"field_twice", VALID("  affinity: client\n  affinity: client\n"), 13, "spec",
     "affinity: field given twice"},
    {"frontend_unknown_field", WITH_FRONTEND("    adresses: [198.18.100.1]\n"), 7, "spec.frontend",
     "adresses"},
    {"frontend_no_target", WITH_FRONTEND("    ports: [{port: 80}]\n"), 7, "spec.frontend",
     "needs a service or addresses"},
    {"frontend_service", WITH_FRONTEND("    service: Web\n    ports: [{port: 80}]\n"), 7,
     "spec.frontend.service", "Web"},
    {"address_short", WITH_FRONTEND("    addresses: [198.18.100]\n    ports: [{port: 80}]\n"), 7,
     "spec.frontend.addresses[0]", "198.18.100"},
    {"address_octal", WITH_FRONTEND("    addresses: [010.1.1.1]\n    ports: [{port: 80}]\n"), 7,
     "spec.frontend.addresses[0]", "010.1.1.1"},
    {"address_twice",
     WITH_FRONTEND("    addresses: [198.18.100.1, \"2001:2::1\", \"2001:2:0::1\"]\n"
		   "    ports: [{port: 80}]\n"),
     7, "spec.frontend.addresses[2]", "2001:2:0::1: listed twice"},
    {"addresses_map", WITH_FRONTEND("    addresses: {a: 198.18.100.1}\n"), 7,
     "spec.frontend.addresses", "must be a list, not a mapping"},
    {"ports_missing", WITH_FRONTEND("    addresses: [198.18.100.1]\n"), 7, "spec.frontend.ports",
     "required without a service"},
    {"ports_empty", WITH_FRONTEND("    addresses: [198.18.100.1]\n    ports: []\n"), 8,
     "spec.frontend.ports", "at least 1 item"},
    {"port_zero", WITH_FRONTEND("    addresses: [198.18.100.1]\n    ports: [{port: 0}]\n"), 8,
     "spec.frontend.ports[0].port", "0: must be 1..65535"},
    {"port_big", WITH_FRONTEND("    addresses: [198.18.100.1]\n    ports: [{port: 65536}]\n"), 8,
     "spec.frontend.ports[0].port", "65536"},
    {"port_missing", WITH_FRONTEND("    addresses: [198.18.100.1]\n    ports: [{protocol: TCP}]\n"),
     8, "spec.frontend.ports[0].port", "required"},
    {"protocol",
     WITH_FRONTEND("    addresses: [198.18.100.1]\n    ports: [{port: 80, protocol: SCTP}]\n"), 8,
     "spec.frontend.ports[0].protocol", "SCTP: must be TCP or UDP"},
    {"port_twice",
     WITH_FRONTEND(
	 "    addresses: [198.18.100.1]\n"
	 "    ports: [{port: 80}, {port: 80, protocol: UDP}, {port: 80, protocol: TCP}]\n"),
     8, "spec.frontend.ports[2]", "listed twice"},
    {"backends_missing", HEAD "spec:\n" FRONTEND, 6, "spec.backends", "required"},
    {"backends_empty", WITH_BACKENDS("    []\n"), 10, "spec.backends", "at least 1 item"},
    {"backends_nine",
     WITH_BACKENDS("    [{name: a}, {name: b}, {name: c}, {name: d}, {name: e}, {name: f},"
		   " {name: g}, {name: h}, {name: i}]\n"),
     10, "spec.backends", "has 9 items, at most 8"},
    {"backend_not_map", WITH_BACKENDS("  - stable\n"), 10, "spec.backends[0]",
     "stable: must be a mapping"},
    {"backend_name_missing", WITH_BACKENDS("  - {weight: 1}\n"), 10, "spec.backends[0].name",
     "required"},
    {"backend_name_long", WITH_BACKENDS("  - {name: " LONG_LABEL "}\n"), 10,
     "spec.backends[0].name", LONG_LABEL},
    {"backend_name_twice",
     WITH_BACKENDS("  - {name: stable, service: a}\n  - {name: stable, service: b}\n"), 11,
     "spec.backends[1].name", "stable: backend name given twice"},
    {"backend_unknown_field", WITH_BACKENDS("  - {name: stable, weigth: 1}\n"), 10,
     "spec.backends[0]", "weigth: unknown field"},
    {"backend_service", WITH_BACKENDS("  - {name: stable, service: [web]}\n"), 10,
     "spec.backends[0].service", "must be a string, not a list"},
    {"weight_big",
     HEAD "spec:\n" FRONTEND "  backends:\n  - {name: stable, endpoints: []}\n"
	  "  - name: canary\n    weight: 2000000\n",
     12, "spec.backends[1].weight", "2000000: must be 0..1000000"},
    {"weight_quoted", WEIGHT("\"90\""), 10, "spec.backends[0].weight",
     "90: must be an integer, not a quoted string"},
    {"weight_float", WEIGHT("1.5"), 10, "spec.backends[0].weight", "1.5: must be an integer"},
    {"weight_negative", WEIGHT("-1"), 10, "spec.backends[0].weight", "-1: must be 0..1000000"},
    {"weight_overflow", WEIGHT("99999999999999999999"), 10, "spec.backends[0].weight",
     "99999999999999999999: must be 0..1000000"},
    {"weight_hex", WEIGHT("0x10"), 10, "spec.backends[0].weight", "0x10"},
    {"weight_leading_zero", WEIGHT("010"), 10, "spec.backends[0].weight", "010"},
    {"weight_list", WEIGHT("[1]"), 10, "spec.backends[0].weight", "must be an integer, not a list"},
    {"weight_bool", WEIGHT("true"), 10, "spec.backends[0].weight", "true"},
    {"endpoint_port_zero", ENDPOINT("198.18.2.2:0"), 10, "spec.backends[0].endpoints[0]",
     "198.18.2.2:0: port must be 1..65535"},
    {"endpoint_port_big", ENDPOINT("198.18.2.2:99999"), 10, "spec.backends[0].endpoints[0]",
     "198.18.2.2:99999"},
    {"endpoint_short", ENDPOINT("198.18.2"), 10, "spec.backends[0].endpoints[0]", "198.18.2"},
    {"endpoint_v4_brackets", ENDPOINT("[198.18.2.2]:80"), 10, "spec.backends[0].endpoints[0]",
     "[198.18.2.2]:80"},
    {"endpoint_v6_no_port", ENDPOINT("[2001:2::2]"), 10, "spec.backends[0].endpoints[0]",
     "[2001:2::2]"},
    {"endpoint_hostname", ENDPOINT("web-v1:8080"), 10, "spec.backends[0].endpoints[0]",
     "web-v1:8080"},
    {"endpoint_twice",
     WITH_BACKENDS("  - {name: stable, endpoints: [198.18.2.2, \"198.18.2.2:80\", "
		   "198.18.2.2]}\n"),
     10, "spec.backends[0].endpoints[2]", "198.18.2.2: listed twice"},
    {"endpoint_twice_draining",
     WITH_BACKENDS("  - name: stable\n"
		   "    endpoints:\n"
		   "    - 198.18.2.3:8080\n"
		   "    - 198.18.2.2:8080\n"
		   "    - {address: 198.18.2.2:8080, draining: true}\n"),
     14, "spec.backends[0].endpoints[2]",
     "198.18.2.2:8080: listed twice, as endpoints[1] and endpoints[2], draining in only one"},
    {"endpoint_twice_objects",
     EPS("{address: \"[2001:2::2]:80\"}, {address: \"[2001:2:0::2]:80\"}"), 10,
     "spec.backends[0].endpoints[1]", "[2001:2:0::2]:80: listed twice, as endpoints[0] and "
     "endpoints[1]"},
    {"draining_maybe", EPS("{address: 198.18.2.2, draining: maybe}"), 10,
     "spec.backends[0].endpoints[0].draining", "maybe: must be true or false"},
    {"draining_yes", EPS("{address: 198.18.2.2, draining: yes}"), 10,
     "spec.backends[0].endpoints[0].draining", "yes: must be true or false"},
    {"draining_quoted", EPS("{address: 198.18.2.2, draining: \"true\"}"), 10,
     "spec.backends[0].endpoints[0].draining", "true: must be true or false, not a quoted"},
    {"draining_list", EPS("{address: 198.18.2.2, draining: [true]}"), 10,
     "spec.backends[0].endpoints[0].draining", "must be true or false, not a list"},
    {"endpoint_address_missing", EPS("{draining: true}"), 10,
     "spec.backends[0].endpoints[0].address", "required"},
    {"endpoint_address_bad", EPS("{address: \"198.18.2.2:http\"}"), 10,
     "spec.backends[0].endpoints[0].address", "198.18.2.2:http: port must be 1..65535"},
    {"endpoint_address_list", EPS("{address: [198.18.2.2]}"), 10,
     "spec.backends[0].endpoints[0].address", "must be a string, not a list"},
    {"endpoint_unknown_field", EPS("{address: 198.18.2.2, drain: true}"), 10,
     "spec.backends[0].endpoints[0]", "drain: unknown field"},
    {"endpoint_list", EPS("[198.18.2.2]"), 10, "spec.backends[0].endpoints[0]",
     "must be an address or a mapping with address and draining, not a list"},
    {"backend_no_endpoints", WITH_BACKENDS("  - {name: stable, weight: 1}\n"), 10,
     "spec.backends[0]", "needs a service or endpoints"},
    {"affinity", VALID("  affinity: sticky\n"), 12, "spec.affinity",
     "sticky: must be connection or client"},
    {"rule_unknown_backend", VALID("  rules:\n  - sources: [198.18.1.0/24]\n    backend: blue\n"),
     14, "spec.rules[0].backend", "blue: no such backend"},
    {"rule_backend_missing", VALID("  rules:\n  - sources: [198.18.1.0/24]\n"), 13,
     "spec.rules[0].backend", "required"},
    {"rule_sources_empty", VALID("  rules: [{sources: [], backend: canary}]\n"), 12,
     "spec.rules[0].sources", "at least 1 item"},
    {"rule_host_bits", SOURCE("198.18.1.17/28"), 12, "spec.rules[0].sources[0]",
     "198.18.1.17/28: host bits set, did you mean 198.18.1.16/28?"},
    {"rule_host_bits_v6", SOURCE("2001:2:0:1::1/64"), 12, "spec.rules[0].sources[0]",
     "did you mean 2001:2:0:1::/64?"},
    {"rule_prefix_long", SOURCE("198.18.1.0/33"), 12, "spec.rules[0].sources[0]",
     "198.18.1.0/33: prefix length must be 0..32"},
    {"rule_prefix_bad", SOURCE("198.18.1.0/"), 12, "spec.rules[0].sources[0]", "198.18.1.0/"},
    {"rule_source_not_ip", SOURCE("clients"), 12, "spec.rules[0].sources[0]", "clients"},
    {"rule_unknown_field", VALID("  rules: [{source: [198.18.1.0/24], backend: canary}]\n"), 12,
     "spec.rules[0]", "source: unknown field"},
    {"mirror_unknown_backend", VALID("  mirror: {backend: shadow}\n"), 12, "spec.mirror.backend",
     "shadow: no such backend"},
    {"mirror_backend_missing", VALID("  mirror: {percent: 10}\n"), 12, "spec.mirror.backend",
     "required"},
    {"mirror_percent", VALID("  mirror:\n    backend: canary\n    percent: 101\n"), 14,
     "spec.mirror.percent", "101: must be 0..100"},
    {"control_characters", VALID("  affinity: \"a\\nb\"\n"), 12, "spec.affinity", "a?b: must be"},
};

static void test_bad(void **state)
{
	const struct bad_case *bc = *state;
	struct ks_shift *s = (void *)1;
	char err[KS_ERR_LEN], prefix[32];
	size_t nr = 1;

	assert_int_equal(ks_manifest_parse(bc->text, strlen(bc->text), &s, &nr, err, sizeof(err)),
			 -EINVAL);
	assert_null(s);
	assert_int_equal(nr, 0);
	snprintf(prefix, sizeof(prefix), "line %d: ", bc->line);
	if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, bc->path) ||
	    !strstr(err, bc->value) || strchr(err, '\n'))
		fail_msg("got \"%s\", want \"%s%s: ...%s...\"", err, prefix, bc->path, bc->value);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_manifest),
	    cmocka_unit_test(test_multi_document),
	    cmocka_unit_test(test_json_input),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_empty_input),
	    cmocka_unit_test(test_error_in_later_document),
	    cmocka_unit_test(test_error_buffer),
	    cmocka_unit_test(test_aliases),
	    cmocka_unit_test(test_syntax_error_line),
	    cmocka_unit_test(test_draining),
	    cmocka_unit_test(test_service_only),
	    cmocka_unit_test(test_json_endpoints),
	    cmocka_unit_test(test_json_round_trip),
	    cmocka_unit_test(test_copy_free),
	    cmocka_unit_test(test_shift_equal),
	    cmocka_unit_test(test_shift_backend),
	    cmocka_unit_test(test_ip),
	};
	size_t i, nr_bad = sizeof(bad_cases) / sizeof(bad_cases[0]);
	struct CMUnitTest bad[sizeof(bad_cases) / sizeof(bad_cases[0])];
	int failed;

	/* one named test per refused manifest, so a failure says which */
	for (i = 0; i < nr_bad; i++)
		bad[i] = (struct CMUnitTest){.name = bad_cases[i].name,
					     .test_func = test_bad,
					     .initial_state = (void *)&bad_cases[i]};
	failed = cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
	failed += _cmocka_run_group_tests("manifest_refused", bad, nr_bad, NULL, NULL);
	return failed ? 1 : 0;
}
