/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The TrafficShift resource in memory: what a manifest (a file in the config
 * directory, or a Kubernetes custom resource) says, after validation. The
 * dataplane code turns it into map entries; nothing here knows about BPF.
 */
#ifndef KSHIFT_SHIFT_H
#define KSHIFT_SHIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <kshift/abi.h>

#define KS_NAME_LEN   254 /* a Kubernetes object name (DNS-1123 subdomain) and its NUL */
#define KS_WEIGHT_MAX 1000000
#define KS_ERR_LEN    512

#define KS_API_VERSION "kshift.dev/v1alpha1"
#define KS_KIND	       "TrafficShift"

struct ks_ip {
	struct ks_addr addr;
	uint8_t family; /* KS_FAMILY_V4 or KS_FAMILY_V6 */
};

struct ks_prefix {
	struct ks_addr addr; /* host bits are zero */
	uint8_t family;
	uint8_t len;
};

struct ks_port {
	uint16_t port; /* host order */
	uint8_t proto; /* IPPROTO_TCP or IPPROTO_UDP */
};

/*
 * Which new flows an endpoint takes. Established flows live in the
 * dataplane's connection table and never look at this, so a terminating
 * endpoint keeps them for as long as they last.
 */
enum ks_endpoint_state {
	KS_EP_READY = 0,   /* takes new flows */
	KS_EP_TERMINATING, /* takes new flows only while no endpoint of its backend is ready
			    * (kube-proxy's rule for serving+terminating endpoints); a
			    * manifest's "draining: true" */
};

/*
 * One endpoint, for one frontend port or for all of them. In Kubernetes the
 * port behind a Service depends on the Service port (80 -> 8080,
 * 443 -> 8443), so the same address may be listed once per frontend port,
 * each time with its own port. Manifests only give endpoints for every
 * frontend port (frontend_port 0). The fields up to state are the
 * endpoint's identity: two endpoints with equal ones are the same endpoint.
 */
struct ks_endpoint_spec {
	struct ks_ip ip;
	uint16_t port;		/* host order; 0: the frontend port */
	uint16_t frontend_port; /* host order; 0: serves every frontend port */
	uint8_t frontend_proto; /* with frontend_port: IPPROTO_TCP or IPPROTO_UDP; 0: either */
	uint8_t state;		/* enum ks_endpoint_state */
};

struct ks_backend_spec {
	char name[KS_NAME_LEN];
	char service[KS_NAME_LEN]; /* Kubernetes Service, or "" */
	struct ks_endpoint_spec *endpoints;
	size_t nr_endpoints;
	uint32_t weight; /* 0..KS_WEIGHT_MAX */
};

enum ks_affinity {
	KS_AFFINITY_CONNECTION = 0,
	KS_AFFINITY_CLIENT,
};

struct ks_rule_spec {
	struct ks_prefix *sources;
	size_t nr_sources;
	int backend; /* index into backends */
};

struct ks_shift {
	char name[KS_NAME_LEN];
	char namespace[KS_NAME_LEN]; /* "default" when the manifest gives none */
	char frontend_service[KS_NAME_LEN];
	struct ks_ip *addresses;
	size_t nr_addresses;
	struct ks_port *ports;
	size_t nr_ports;
	struct ks_backend_spec backends[KS_MAX_BACKENDS];
	size_t nr_backends;
	enum ks_affinity affinity;
	struct ks_rule_spec *rules;
	size_t nr_rules;
	int mirror_backend; /* index into backends, -1: no mirror */
	uint32_t mirror_percent;
	int64_t generation; /* metadata.generation, 0 when absent */
};

/*
 * Parses every document of a YAML (or JSON) manifest; documents are
 * separated by "---" and empty ones are skipped. On success returns 0 and
 * hands over an array of *nr shifts in *shifts (free with ks_shifts_free).
 * On failure returns -EINVAL (or -ENOMEM), leaves *shifts NULL and writes one
 * line to err naming the document's line, the field path and the value, e.g.
 *   "line 14: spec.backends[1].weight: 2000000: must be 0..1000000"
 * Validation is strict: unknown fields, duplicate backend names, rules or a
 * mirror naming an unknown backend, bad addresses and ports are refused.
 */
int ks_manifest_parse(const char *text, size_t len, struct ks_shift **shifts, size_t *nr, char *err,
		      size_t errlen);

/* The same document as JSON (apiVersion, kind, metadata, spec), so that
 * `kshiftctl get -o json` output can be applied again. NULL on ENOMEM. */
struct json_object *ks_shift_to_json(const struct ks_shift *shift);

/* Deep copy; 0 or -ENOMEM. */
int ks_shift_copy(struct ks_shift *dst, const struct ks_shift *src);
void ks_shift_free(struct ks_shift *shift); /* frees what it owns, not shift */
/* Whether a and b are the same shift, field by field, generation included.
 * Compare with this rather than with ks_shift_to_json, which merges the
 * per-port endpoints of a Kubernetes shift. */
bool ks_shift_equal(const struct ks_shift *a, const struct ks_shift *b);
void ks_shifts_free(struct ks_shift *shifts, size_t nr);

/* Index of the backend called name, or -1. */
int ks_shift_backend(const struct ks_shift *shift, const char *name);

/* "198.18.2.2", "2001:2::1"; buf of at least INET6_ADDRSTRLEN. */
const char *ks_ip_str(const struct ks_ip *ip, char *buf, size_t len);
/* Parses an IPv4 or IPv6 address; 0 or -EINVAL. */
int ks_ip_parse(const char *s, struct ks_ip *ip);

#endif /* KSHIFT_SHIFT_H */
