// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the Kubernetes model (user/lib/kube_model.c): TrafficShift
 * objects, with the Services and EndpointSlices they name listed into a
 * store (user/lib/kube_watch.c) as the API server sends them, become the
 * shift a local manifest would give. Slices aggregated and de-duplicated,
 * target ports by name and per frontend port, address families, the
 * ready/serving/terminating matrix, frontend Services, unresolved names, and
 * refusals worded as for a local manifest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "lib/kube_model.h"

static struct ks_kube_store store;

static int setup(void **state)
{
	(void)state;
	return ks_kube_store_init(&store, NULL);
}

static int teardown(void **state)
{
	(void)state;
	ks_kube_store_destroy(&store);
	return 0;
}

/* JSON written with single quotes, which C strings make easier to read. */
static struct json_object *J(const char *text)
{
	char *s = strdup(text), *p;
	struct json_object *o;

	assert_non_null(s);
	for (p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	o = json_tokener_parse(s);
	if (!o)
		fail_msg("bad test JSON: %s", s);
	free(s);
	return o;
}

/* Lists the objects (JSON texts, NULL-terminated) as the whole of kind. */
static void list(enum ks_kube_kind kind, ...)
{
	struct json_object *items = json_object_new_array();
	const char *o;
	va_list ap;

	va_start(ap, kind);
	while ((o = va_arg(ap, const char *)))
		json_object_array_add(items, J(o));
	va_end(ap);
	assert_int_equal(ks_kube_store_list(&store, kind, items), 0);
	json_object_put(items);
}

/* A Service in namespace shop; ports and the rest of spec as given. */
static char *service(const char *name, const char *spec)
{
	char *s;

	assert_true(asprintf(&s,
			     "{'apiVersion': 'v1', 'kind': 'Service', 'metadata': "
			     "{'name': '%s', 'namespace': 'shop', 'resourceVersion': '1'}, "
			     "'spec': %s}",
			     name, spec) > 0);
	return s;
}

/* An EndpointSlice of Service svc in namespace shop. */
static char *slice(const char *name, const char *svc, const char *type, const char *ports,
		   const char *endpoints)
{
	char *s;

	assert_true(
		asprintf(&s,
			 "{'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice', "
			 "'metadata': {'name': '%s', 'namespace': 'shop', 'resourceVersion': '1', "
			 "'labels': {'kubernetes.io/service-name': '%s'}}, "
			 "'addressType': '%s', 'ports': %s, 'endpoints': %s}",
			 name, svc, type, ports, endpoints) > 0);
	return s;
}

/* A TrafficShift in namespace shop with this spec. */
static struct json_object *trafficshift(const char *spec)
{
	char *s;
	struct json_object *o;

	assert_true(asprintf(&s,
			     "{'apiVersion': 'kshift.dev/v1alpha1', 'kind': 'TrafficShift', "
			     "'metadata': {'name': 'web', 'namespace': 'shop', 'generation': 4}, "
			     "'spec': %s}",
			     spec) > 0);
	o = J(s);
	free(s);
	return o;
}

/* ks_kube_model_shift on ts (consumed); must succeed. */
static void model_ok(struct json_object *ts, struct ks_shift *out, char *unresolved, size_t len)
{
	char err[KS_ERR_LEN];
	int ret = ks_kube_model_shift(ts, &store, out, unresolved, len, err, sizeof(err));

	json_object_put(ts);
	if (ret)
		fail_msg("refused (%d): %s", ret, err);
}

/* The endpoints of a backend as "ip:port@frontend_port" (with a " T" for
 * terminating ones), space-separated, in order. */
static const char *eps_str(const struct ks_backend_spec *b)
{
	static char buf[4096];
	char ip[64];
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < b->nr_endpoints; i++) {
		const struct ks_endpoint_spec *e = &b->endpoints[i];

		n += snprintf(buf + n, sizeof(buf) - n, "%s%s:%u@%u%s%s", i ? " " : "",
			      ks_ip_str(&e->ip, ip, sizeof(ip)), e->port, e->frontend_port,
			      e->frontend_proto == IPPROTO_UDP ? "/udp" : "",
			      e->state == KS_EP_TERMINATING ? " T" : "");
	}
	return buf;
}

static const char *addrs_str(const struct ks_shift *s)
{
	static char buf[1024];
	char ip[64];
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < s->nr_addresses; i++)
		n += snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? " " : "",
			      ks_ip_str(&s->addresses[i], ip, sizeof(ip)));
	return buf;
}

#define SVC_WEB_V1                                                                                 \
	"{'selector': {'app': 'web'}, 'clusterIP': '198.18.100.11', 'ports': "                     \
	"[{'name': 'http', 'port': 80, 'targetPort': 'web', 'protocol': 'TCP'}]}"
#define HTTP_8080 "[{'name': 'http', 'port': 8080, 'protocol': 'TCP'}]"
#define READY	  "'conditions': {'ready': true, 'serving': true, 'terminating': false}"
#define TS_V1                                                                                      \
	"{'frontend': {'addresses': ['198.18.100.1'], 'ports': [{'port': 80}]}, "                  \
	"'backends': [{'name': 'stable', 'service': 'web-v1'}]}"

/* Two slices of one Service, one endpoint in both: each endpoint once, in
 * address order, on the slice port the Service port names (its targetPort
 * is the name "web", the slice gives the number). */
static void test_slices_aggregated(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	char *v1 = service("web-v1", SVC_WEB_V1);
	char *a = slice("web-v1-a", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.4'], " READY "},"
			" {'addresses': ['198.18.2.2'], " READY "}]");
	char *b = slice("web-v1-b", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.3'], " READY "},"
			" {'addresses': ['198.18.2.2'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, NULL);
	model_ok(trafficshift(TS_V1), &s, unresolved, sizeof(unresolved));
	assert_string_equal(unresolved, "");
	assert_string_equal(s.name, "web");
	assert_string_equal(s.namespace, "shop");
	assert_int_equal(s.generation, 4);
	assert_string_equal(eps_str(&s.backends[0]),
			    "198.18.2.2:8080@80 198.18.2.3:8080@80 198.18.2.4:8080@80");
	assert_int_equal(s.backends[0].endpoints[0].frontend_proto, IPPROTO_TCP);
	ks_shift_free(&s);
	free(v1);
	free(a);
	free(b);
}

/* Two frontend ports whose endpoints listen on different ports: each
 * endpoint listed once per frontend port, with its own port. A frontend
 * port the backend Service does not have is reported. */
static void test_ports_per_frontend_port(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	char *v1 = service("web-v1",
			   "{'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080},"
			   " {'name': 'https', 'port': 443, 'targetPort': 'tls'},"
			   " {'name': 'dns', 'port': 53, 'protocol': 'UDP', 'targetPort': 5353}]}");
	char *a = slice("web-v1-a", "web-v1", "IPv4",
			"[{'name': 'https', 'port': 8443}, {'name': 'http', 'port': 8080},"
			" {'name': 'dns', 'port': 5353, 'protocol': 'UDP'}]",
			"[{'addresses': ['198.18.2.3'], " READY "},"
			" {'addresses': ['198.18.2.2'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, NULL);
	model_ok(trafficshift("{'frontend': {'addresses': ['198.18.100.1'], 'ports': "
			      "[{'port': 80}, {'port': 443}, {'port': 53, 'protocol': 'UDP'},"
			      " {'port': 8000}]}, "
			      "'backends': [{'name': 'stable', 'service': 'web-v1'}]}"),
		 &s, unresolved, sizeof(unresolved));
	assert_string_equal(eps_str(&s.backends[0]),
			    "198.18.2.2:5353@53/udp 198.18.2.3:5353@53/udp "
			    "198.18.2.2:8080@80 198.18.2.3:8080@80 "
			    "198.18.2.2:8443@443 198.18.2.3:8443@443");
	assert_string_equal(unresolved, "spec.backends[0].service: web-v1: no port 8000/TCP");
	ks_shift_free(&s);
	free(v1);
	free(a);
}

/* Endpoints of a family the frontend has no address of are left out; a
 * dual-stack frontend takes both. FQDN slices are skipped. */
static void test_families(void **state)
{
	struct ks_shift s;
	char *v1 = service("web-v1", SVC_WEB_V1);
	char *a = slice("web-v1-a", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.2'], " READY "}]");
	char *b = slice("web-v1-b", "web-v1", "IPv6", HTTP_8080,
			"[{'addresses': ['2001:2:0:2::2'], " READY "},"
			" {'addresses': ['198.18.2.9'], " READY "}]"); /* wrong family: skipped */
	char *c = slice("web-v1-c", "web-v1", "FQDN", HTTP_8080,
			"[{'addresses': ['web.example'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, c, NULL);
	model_ok(trafficshift(TS_V1), &s, NULL, 0);
	assert_string_equal(eps_str(&s.backends[0]), "198.18.2.2:8080@80");
	ks_shift_free(&s);

	model_ok(trafficshift("{'frontend': {'addresses': ['2001:2:0:100::1'], 'ports': "
			      "[{'port': 80}]}, 'backends': [{'name': 's', 'service': 'web-v1'}]}"),
		 &s, NULL, 0);
	assert_string_equal(eps_str(&s.backends[0]), "2001:2:0:2::2:8080@80");
	ks_shift_free(&s);

	model_ok(trafficshift("{'frontend': {'addresses': ['198.18.100.1', '2001:2:0:100::1'], "
			      "'ports': [{'port': 80}]}, "
			      "'backends': [{'name': 's', 'service': 'web-v1'}]}"),
		 &s, NULL, 0);
	assert_string_equal(eps_str(&s.backends[0]), "198.18.2.2:8080@80 2001:2:0:2::2:8080@80");
	ks_shift_free(&s);
	free(v1);
	free(a);
	free(b);
	free(c);
}

/* kube-proxy's reading of conditions: missing ready and serving are true,
 * a missing terminating false; ready takes new flows, serving and
 * terminating is KS_EP_TERMINATING, anything else is left out. The same
 * address in two slices is ready if either says so. */
static void test_conditions(void **state)
{
	struct ks_shift s;
	char *v1 = service("web-v1", SVC_WEB_V1);
	char *a = slice("web-v1-a", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.1'], 'conditions': {}},"
			" {'addresses': ['198.18.2.2']},"
			" {'addresses': ['198.18.2.3'], 'conditions': {'ready': false}},"
			" {'addresses': ['198.18.2.4'], 'conditions': {'ready': false, "
			"'serving': true, 'terminating': true}},"
			" {'addresses': ['198.18.2.5'], 'conditions': {'ready': false, "
			"'serving': false, 'terminating': true}},"
			" {'addresses': ['198.18.2.6'], 'conditions': {'ready': false, "
			"'terminating': true}},"
			" {'addresses': ['198.18.2.7'], 'conditions': {'ready': true, "
			"'terminating': true}},"
			" {'addresses': ['198.18.2.8'], 'conditions': {'serving': false}},"
			" {'addresses': ['198.18.2.9'], 'conditions': {'ready': null, "
			"'serving': false, 'terminating': false}},"
			" {'addresses': ['198.18.2.10'], 'conditions': {'ready': false, "
			"'serving': true}},"
			" {'addresses': ['198.18.2.11', '198.18.2.12'], 'conditions': {'ready': "
			"false, 'serving': true, 'terminating': true}}]");
	char *b = slice("web-v1-b", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.4'], 'conditions': {'ready': true}},"
			" {'addresses': ['198.18.2.6'], 'conditions': {'ready': false, "
			"'serving': false}}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, NULL);
	model_ok(trafficshift(TS_V1), &s, NULL, 0);
	assert_string_equal(eps_str(&s.backends[0]),
			    "198.18.2.1:8080@80 198.18.2.2:8080@80 198.18.2.4:8080@80 "
			    "198.18.2.6:8080@80 T 198.18.2.7:8080@80 198.18.2.8:8080@80 "
			    "198.18.2.9:8080@80 198.18.2.11:8080@80 T 198.18.2.12:8080@80 T");
	ks_shift_free(&s);
	free(v1);
	free(a);
	free(b);
}

/* A Service that does not exist: the backend gets no endpoints, and the
 * first unresolved name is reported; the shift is still accepted. Explicit
 * endpoints stay. */
static void test_missing_service(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	char *v1 = service("web-v1", SVC_WEB_V1);
	char *a = slice("web-v1-a", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.2'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, NULL);
	model_ok(
		trafficshift("{'frontend': {'addresses': ['198.18.100.1'], 'ports': "
			     "[{'port': 80}]}, 'backends': ["
			     "{'name': 'stable', 'service': 'web-v1', 'endpoints': ['198.18.2.9']},"
			     " {'name': 'canary', 'service': 'web-v2'},"
			     " {'name': 'shadow', 'service': 'web-v3'}]}"),
		&s, unresolved, sizeof(unresolved));
	assert_string_equal(unresolved,
			    "spec.backends[1].service: web-v2: not found in namespace shop");
	assert_int_equal(s.nr_backends, 3);
	assert_string_equal(eps_str(&s.backends[0]), "198.18.2.9:0@0 198.18.2.2:8080@80");
	assert_int_equal(s.backends[1].nr_endpoints, 0);
	assert_int_equal(s.backends[2].nr_endpoints, 0);
	ks_shift_free(&s);

	/* a Service with no slices at all (selectorless, none made by hand) */
	list(KS_KUBE_ENDPOINTSLICE, NULL);
	model_ok(trafficshift(TS_V1), &s, unresolved, sizeof(unresolved));
	assert_string_equal(unresolved, "spec.backends[0].service: web-v1: has no EndpointSlices");
	assert_int_equal(s.backends[0].nr_endpoints, 0);
	ks_shift_free(&s);
	free(v1);
	free(a);
}

/* Slices whose Service is gone (or not seen yet): their port is found by
 * the frontend Service port's name, or is the only one of the protocol. */
static void test_slices_without_service(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	char *web = service("web", "{'clusterIP': '198.18.100.1', 'ports': [{'name': 'http', "
				   "'port': 80}]}");
	char *a = slice("web-v2-a", "web-v2", "IPv4",
			"[{'name': 'metrics', 'port': 9090}, {'name': 'http', 'port': 8081}]",
			"[{'addresses': ['198.18.3.2'], " READY "}]");
	char *b = slice("web-v3-a", "web-v3", "IPv4", "[{'name': 'x', 'port': 8082}]",
			"[{'addresses': ['198.18.4.2'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, web, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, NULL);
	model_ok(trafficshift("{'frontend': {'service': 'web'}, 'backends': ["
			      "{'name': 'canary', 'service': 'web-v2'},"
			      " {'name': 'shadow', 'service': 'web-v3'}]}"),
		 &s, unresolved, sizeof(unresolved));
	assert_string_equal(eps_str(&s.backends[0]), "198.18.3.2:8081@80");
	assert_string_equal(eps_str(&s.backends[1]), "198.18.4.2:8082@80");
	assert_string_equal(unresolved,
			    "spec.backends[0].service: web-v2: not found in namespace shop");
	ks_shift_free(&s);
	free(web);
	free(a);
	free(b);
}

/* frontend.service: its cluster IPs of both families (then external and
 * load-balancer IPs) after the TrafficShift's own addresses; its TCP and
 * UDP ports when the TrafficShift gives none; a backend Service numbering
 * its ports differently is matched by the frontend port's name. */
static void test_frontend_service(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	char *web = service("web", "{'clusterIP': '198.18.100.1', 'clusterIPs': ['198.18.100.1', "
				   "'2001:2:0:100::1'], 'externalIPs': ['198.18.100.2'], 'ports': ["
				   "{'name': 'http', 'port': 80, 'targetPort': 8080},"
				   " {'name': 'dns', 'port': 53, 'protocol': 'UDP'},"
				   " {'name': 'sig', 'port': 3868, 'protocol': 'SCTP'}]}");
	char *v2 = service("web-v2", "{'ports': [{'name': 'http', 'port': 8000, 'targetPort': "
				     "'web'}, {'name': 'dns', 'port': 53, 'protocol': 'UDP'}]}");
	char *a = slice("web-v2-a", "web-v2", "IPv6",
			"[{'name': 'http', 'port': 8080}, {'name': 'dns', 'port': 5353, "
			"'protocol': 'UDP'}]",
			"[{'addresses': ['2001:2:0:3::2'], " READY "}]");
	char *lb = strdup("{'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'lb', "
			  "'namespace': 'shop'}, 'spec': {'type': 'LoadBalancer', 'clusterIPs': "
			  "['198.18.100.5'], 'ports': [{'port': 443}]}, 'status': {'loadBalancer': "
			  "{'ingress': [{'ip': '198.18.100.6'}, {'hostname': 'lb.example'}]}}}");
	char *headless = service("db", "{'clusterIP': 'None', 'clusterIPs': ['None'], 'ports': "
				       "[{'port': 5432}]}");

	(void)state;
	list(KS_KUBE_SERVICE, web, v2, lb, headless, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, NULL);
	model_ok(trafficshift("{'frontend': {'service': 'web', 'addresses': ['198.18.100.1', "
			      "'198.18.100.9']}, 'backends': [{'name': 'canary', 'service': "
			      "'web-v2'}]}"),
		 &s, unresolved, sizeof(unresolved));
	assert_string_equal(unresolved, "");
	assert_string_equal(addrs_str(&s),
			    "198.18.100.1 198.18.100.9 2001:2:0:100::1 198.18.100.2");
	assert_int_equal(s.nr_ports, 2);
	assert_int_equal(s.ports[0].port, 80);
	assert_int_equal(s.ports[0].proto, IPPROTO_TCP);
	assert_int_equal(s.ports[1].port, 53);
	assert_int_equal(s.ports[1].proto, IPPROTO_UDP);
	assert_string_equal(eps_str(&s.backends[0]),
			    "2001:2:0:3::2:5353@53/udp 2001:2:0:3::2:8080@80");
	ks_shift_free(&s);

	/* ports given: only those */
	model_ok(trafficshift("{'frontend': {'service': 'web', 'ports': [{'port': 80}]}, "
			      "'backends': [{'name': 'canary', 'service': 'web-v2'}]}"),
		 &s, NULL, 0);
	assert_int_equal(s.nr_ports, 1);
	assert_string_equal(eps_str(&s.backends[0]), "2001:2:0:3::2:8080@80");
	ks_shift_free(&s);

	model_ok(trafficshift("{'frontend': {'service': 'lb'}, 'backends': [{'name': 'a', "
			      "'endpoints': []}]}"),
		 &s, NULL, 0);
	assert_string_equal(addrs_str(&s), "198.18.100.5 198.18.100.6");
	ks_shift_free(&s);

	model_ok(trafficshift("{'frontend': {'service': 'db'}, 'backends': [{'name': 'a', "
			      "'endpoints': []}]}"),
		 &s, unresolved, sizeof(unresolved));
	assert_int_equal(s.nr_addresses, 0);
	assert_string_equal(
		unresolved,
		"spec.frontend.service: db: has no cluster IP (headless or ExternalName?)");
	ks_shift_free(&s);

	model_ok(trafficshift("{'frontend': {'service': 'nope'}, 'backends': [{'name': 'a', "
			      "'service': 'nope-either'}]}"),
		 &s, unresolved, sizeof(unresolved));
	assert_int_equal(s.nr_ports, 0);
	assert_string_equal(unresolved, "spec.frontend.service: nope: not found in namespace shop");
	ks_shift_free(&s);
	free(web);
	free(v2);
	free(a);
	free(lb);
	free(headless);
}

/* The object as the API server returns it: uid, resourceVersion, labels,
 * annotations, managedFields and status are no concern of the model. */
static void test_api_object(void **state)
{
	struct ks_shift s;
	char unresolved[256];
	struct json_object *ts =
		J("{'apiVersion': 'kshift.dev/v1alpha1', 'kind': 'TrafficShift', 'metadata': {"
		  "'name': 'web', 'namespace': 'shop', 'uid': '6f1c', 'resourceVersion': '98765', "
		  "'generation': 12, 'creationTimestamp': '2026-11-30T10:00:00Z', "
		  "'labels': {'app': 'web'}, 'annotations': {'kubectl.kubernetes.io/"
		  "last-applied-configuration': '{\\'x\\': 1}'}, 'finalizers': ['kshift.dev/x'], "
		  "'managedFields': [{'manager': 'kubectl', 'operation': 'Update', 'fieldsType': "
		  "'FieldsV1', 'fieldsV1': {'f:spec': {'f:backends': {}}}}]}, "
		  "'spec': {'frontend': {'addresses': ['198.18.100.1'], 'ports': [{'port': 80, "
		  "'protocol': 'TCP'}]}, 'backends': [{'name': 'stable', 'endpoints': "
		  "['198.18.2.2:8080', {'address': '198.18.2.3:8080', 'draining': true}], "
		  "'weight': 90}], 'affinity': 'client'}, "
		  "'status': {'observedGeneration': 11, 'conditions': [{'type': 'Accepted', "
		  "'status': 'True', 'reason': 'Accepted', 'lastTransitionTime': "
		  "'2026-11-30T10:00:01Z'}], 'anything': {'at': 'all'}}}");

	(void)state;
	model_ok(ts, &s, unresolved, sizeof(unresolved));
	assert_string_equal(s.name, "web");
	assert_string_equal(s.namespace, "shop");
	assert_int_equal(s.generation, 12);
	assert_int_equal(s.affinity, KS_AFFINITY_CLIENT);
	assert_int_equal(s.backends[0].weight, 90);
	assert_string_equal(eps_str(&s.backends[0]), "198.18.2.2:8080@0 198.18.2.3:8080@0 T");
	assert_string_equal(unresolved, "");
	ks_shift_free(&s);
}

/* A refused spec: the message a local manifest would get, without its
 * line number (one line of JSON has no useful one); out left empty. */
static void test_refused_like_manifest(void **state)
{
	static const struct {
		const char *json, *yaml;
	} cases[] = {
		{ "{'frontend': {'addresses': ['198.18.100.1'], 'ports': [{'port': 80}]}, "
		  "'backends': [{'name': 'a', 'endpoints': []}, {'name': 'b', 'service': 'x', "
		  "'weight': 2000000}]}",
		  "  frontend: {addresses: [198.18.100.1], ports: [{port: 80}]}\n"
		  "  backends:\n  - {name: a, endpoints: []}\n"
		  "  - {name: b, service: x, weight: 2000000}\n" },
		{ "{'frontend': {'ports': [{'port': 80}]}, 'backends': [{'name': 'a', 'service': "
		  "'x'}]}",
		  "  frontend: {ports: [{port: 80}]}\n  backends: [{name: a, service: x}]\n" },
		{ "{'frontend': {'service': 'web'}, 'backends': [{'name': 'a', 'endpoints': "
		  "['198.18.2.2', {'address': '198.18.2.2', 'draining': true}]}]}",
		  "  frontend: {service: web}\n  backends:\n"
		  "  - {name: a, endpoints: [198.18.2.2, {address: 198.18.2.2, draining: "
		  "true}]}\n" },
		{ "{'frontend': {'service': 'web'}, 'backends': [{'name': 'a', 'endpoints': "
		  "[{'address': '198.18.2.2', 'draining': 'yes'}]}]}",
		  "  frontend: {service: web}\n  backends:\n"
		  "  - {name: a, endpoints: [{address: 198.18.2.2, draining: \"yes\"}]}\n" },
		{ "{'frontend': {'service': 'web'}, 'backends': [{'name': 'a', 'service': 'x', "
		  "'weigth': 1}]}",
		  "  frontend: {service: web}\n  backends: [{name: a, service: x, weigth: 1}]\n" },
		{ "{'frontend': {'service': 'web'}, 'backends': [{'name': 'a'}]}",
		  "  frontend: {service: web}\n  backends: [{name: a}]\n" },
		{ "{'frontend': {'service': 'Web'}, 'backends': [{'name': 'a', 'service': 'x'}]}",
		  "  frontend: {service: Web}\n  backends: [{name: a, service: x}]\n" },
	};
	char err[KS_ERR_LEN], want[KS_ERR_LEN], text[2048], unresolved[64];
	struct ks_shift s, *shifts;
	struct json_object *ts;
	size_t i, nr;
	int ret;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
			 "apiVersion: kshift.dev/v1alpha1\nkind: TrafficShift\n"
			 "metadata: {name: web, namespace: shop}\nspec:\n%s",
			 cases[i].yaml);
		assert_int_equal(
			ks_manifest_parse(text, strlen(text), &shifts, &nr, want, sizeof(want)),
			-EINVAL);
		assert_non_null(strstr(want, ": spec."));
		ts = trafficshift(cases[i].json);
		ret = ks_kube_model_shift(ts, &store, &s, unresolved, sizeof(unresolved), err,
					  sizeof(err));
		json_object_put(ts);
		assert_int_equal(ret, -EINVAL);
		/* "line N: spec...." locally */
		assert_string_equal(err, strstr(want, ": spec.") + 2);
		assert_int_equal(s.nr_backends, 0);
		assert_null(s.addresses);
		ks_shift_free(&s);
	}

	/* no object, no spec */
	assert_int_equal(ks_kube_model_shift(NULL, &store, &s, NULL, 0, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "not a JSON object");
	ts = J("{'apiVersion': 'kshift.dev/v1alpha1', 'kind': 'TrafficShift', 'metadata': "
	       "{'name': 'x'}}");
	ret = ks_kube_model_shift(ts, &store, &s, NULL, 0, err, sizeof(err));
	json_object_put(ts);
	assert_int_equal(ret, -EINVAL);
	assert_string_equal(err, "spec: required");
}

/* Objects of the wrong shape where the model reads: skipped, never a
 * crash, and what is well-formed beside them still counts. */
static void test_malformed(void **state)
{
	struct ks_shift s;
	char *v1 = service("web-v1", "{'clusterIPs': [null, 7, '198.18.100.1'], 'externalIPs': "
				     "'198.18.100.2', 'ports': [null, 80, {'port': '80'}, {'port': "
				     "80, 'name': 9}, {'port': 99999}]}");
	char *a = slice("web-v1-a", "web-v1", "IPv4",
			"[null, {'port': 8080}, {'name': 'x', 'port': -1}]",
			"[null, 7, {'addresses': [null, 7, 'x', '198.18.2.2', '2001:2::2']},"
			" {'addresses': '198.18.2.3'}, {'addresses': ['198.18.2.4'], "
			"'conditions': 'ready'}, {'addresses': ['198.18.2.5'], 'conditions': "
			"{'ready': 'false'}}]");
	char *b = slice("web-v1-b", "web-v1", "IPv4", "{'port': 8080}", "{'addresses': []}");
	char *c = strdup("{'metadata': {'name': 'web-v1-c', 'namespace': 'shop', 'labels': "
			 "{'kubernetes.io/service-name': 'web-v1'}}}");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, c, NULL);
	model_ok(trafficshift("{'frontend': {'service': 'web-v1', 'ports': [{'port': 80}]}, "
			      "'backends': [{'name': 'stable', 'service': 'web-v1'}]}"),
		 &s, NULL, 0);
	assert_string_equal(addrs_str(&s), "198.18.100.1");
	/* the unnamed Service port matches the unnamed slice port; a
	 * condition of the wrong type counts as missing */
	assert_string_equal(eps_str(&s.backends[0]),
			    "198.18.2.2:8080@80 198.18.2.4:8080@80 198.18.2.5:8080@80");
	ks_shift_free(&s);
	free(v1);
	free(a);
	free(b);
	free(c);
}

/* The Services a TrafficShift names, once each, frontend first. */
static void test_refs(void **state)
{
	struct json_object *ts = trafficshift(
		"{'frontend': {'service': 'web'}, 'backends': [{'name': 'a', 'service': 'web-v1'},"
		" {'name': 'b', 'endpoints': []}, {'name': 'c', 'service': 'web'},"
		" {'name': 'd', 'service': 'web-v1'}, {'name': 'e', 'service': 7},"
		" {'name': 'f', 'service': 'web-v2'}]}");
	const char *names[4];

	(void)state;
	assert_int_equal(ks_kube_model_refs(ts, names, 4), 3);
	assert_string_equal(names[0], "web");
	assert_string_equal(names[1], "web-v1");
	assert_string_equal(names[2], "web-v2");
	assert_int_equal(ks_kube_model_refs(ts, names, 2), 2);
	json_object_put(ts);
	assert_int_equal(ks_kube_model_refs(NULL, names, 4), 0);
}

/* The result is the same whatever order the slices come in, so an
 * unchanged backend compares equal and keeps its ring. */
static void test_stable_order(void **state)
{
	struct ks_shift s;
	char first[4096];
	char *v1 = service("web-v1", SVC_WEB_V1);
	char *a = slice("web-v1-a", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.20'], " READY "},"
			" {'addresses': ['198.18.2.3'], " READY "}]");
	char *b = slice("web-v1-b", "web-v1", "IPv4", HTTP_8080,
			"[{'addresses': ['198.18.2.100'], " READY "}]");

	(void)state;
	list(KS_KUBE_SERVICE, v1, NULL);
	list(KS_KUBE_ENDPOINTSLICE, a, b, NULL);
	model_ok(trafficshift(TS_V1), &s, NULL, 0);
	snprintf(first, sizeof(first), "%s", eps_str(&s.backends[0]));
	ks_shift_free(&s);
	list(KS_KUBE_ENDPOINTSLICE, NULL);
	list(KS_KUBE_ENDPOINTSLICE, b, a, NULL);
	model_ok(trafficshift(TS_V1), &s, NULL, 0);
	assert_string_equal(eps_str(&s.backends[0]), first);
	assert_string_equal(first, "198.18.2.3:8080@80 198.18.2.20:8080@80 198.18.2.100:8080@80");
	ks_shift_free(&s);
	free(v1);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slices_aggregated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports_per_frontend_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_families, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conditions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slices_without_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frontend_service, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_object, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_like_manifest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stable_order, setup, teardown),
	};

	return cmocka_run_group_tests_name("kube_model", tests, NULL, NULL);
}
