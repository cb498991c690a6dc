/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * From Kubernetes objects to struct ks_shift: a TrafficShift custom resource
 * whose frontend and backends name Services becomes the same shift a local
 * manifest would give, with the Services' cluster IPs as frontend addresses
 * and their EndpointSlices' endpoints as backends, following kube-proxy's
 * reading of EndpointSlices. Plain C over json-c objects; no I/O.
 */
#ifndef KSHIFT_KUBE_MODEL_H
#define KSHIFT_KUBE_MODEL_H

#include <json-c/json.h>
#include "kube.h"
#include "shift.h"

/*
 * Builds the shift that TrafficShift object ts describes, looking up the
 * Services and EndpointSlices it names in store (whose lock the caller
 * holds). The spec is validated exactly as a local manifest is (the same
 * messages); Kubernetes-only metadata (uid, resourceVersion, labels,
 * annotations, managedFields, ...) and status are ignored.
 *   frontend.service: the Service's clusterIPs (both families) join
 *   frontend.addresses; ports given in the TrafficShift are used, else the
 *   Service's ports (TCP and UDP).
 *   backends[].service: every EndpointSlice labelled with it, addresses of
 *   each frontend family, de-duplicated; the endpoint port is the slice port
 *   matching the Service port's targetPort (by name or number) for each
 *   frontend port; ready endpoints take new flows, serving+terminating ones
 *   are KS_EP_TERMINATING (new flows only when nothing of the backend is
 *   ready), not serving ones are left out. A missing ready/serving condition
 *   counts as true, a missing terminating as false.
 * A named Service that does not exist (yet) gives a backend with no
 * endpoints, and *unresolved (may be NULL) is set with a message for the
 * ResolvedRefs condition, e.g.
 * "spec.backends[1].service: web-v2: not found in namespace shop".
 * Returns 0, or -EINVAL with err set (the Accepted condition's message).
 */
int ks_kube_model_shift(struct json_object *ts, struct ks_kube_store *store, struct ks_shift *out,
			char *unresolved, size_t unresolved_len, char *err, size_t errlen);

/* The Services (namespace-local names) that ts refers to, so the daemon can
 * find the shifts a Service or EndpointSlice change concerns. Fills names
 * with up to max borrowed strings; returns how many. */
size_t ks_kube_model_refs(struct json_object *ts, const char **names, size_t max);

#endif /* KSHIFT_KUBE_MODEL_H */
