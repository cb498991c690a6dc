/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kubernetes as a source of shifts, beside the config directory and the
 * control socket: TrafficShift resources, with the Services and
 * EndpointSlices they name, become running shifts (owned by "kube"), and
 * what this node has programmed is reported back through the API.
 *
 * Threads: the watcher (kube_watch.c) fills the object store and wakes the
 * daemon's loop through an eventfd; the loop calls ks_kube_source_process,
 * which re-evaluates only the shifts the changes concern and programs them
 * (the dataplane is only ever touched from the loop). A status thread does
 * every write to the API, so no request ever blocks the loop: it renews this
 * node's Lease (carrying the generation of every shift programmed here),
 * takes part in the election of one status writer, and, when elected,
 * writes each TrafficShift's status: Accepted, ResolvedRefs, Programmed,
 * observedGeneration and how many nodes run the current generation.
 */
#ifndef KSHIFT_KUBE_SOURCE_H
#define KSHIFT_KUBE_SOURCE_H

#include <stdbool.h>
#include "shifts.h"

#define KS_KUBE_SOURCE	       "kube"
#define KS_KUBE_LEASE_NS       "kshift-system"
#define KS_KUBE_STATUS_LEASE   "kshift-status"
#define KS_KUBE_NODE_LEASE_PFX "kshift-node-"
/* Annotation on a node's Lease: {"namespace/name": generation, ...} */
#define KS_KUBE_PROGRAMMED_ANN "kshift.dev/programmed"

struct ks_kube_source_opts {
	const char *kubeconfig; /* NULL: $KUBECONFIG, ~/.kube/config, in-cluster */
	const char *context;
	const char *apiserver;	     /* overrides the server URL */
	const char *node_name;	     /* this node's identity in Leases */
	const char *lease_namespace; /* NULL: KS_KUBE_LEASE_NS */
	unsigned lease_seconds;	     /* 0: 15; how long a silent node still counts */
};

struct ks_kube_source;

/* Loads the configuration and starts the watcher and status threads.
 * 0, or -errno with err saying why (a bad kubeconfig, say). */
int ks_kube_source_start(struct ks_kube_source **src, const struct ks_kube_source_opts *opts,
			 struct ks_shifts *shifts, char *err, size_t errlen);
/* Readable when the store has changes: then call ks_kube_source_process. */
int ks_kube_source_fd(const struct ks_kube_source *src);
void ks_kube_source_process(struct ks_kube_source *src);
/* Every kind has been listed and every shift seen so far programmed (or
 * refused): what /readyz reports. */
bool ks_kube_source_ready(const struct ks_kube_source *src);
void ks_kube_source_stop(struct ks_kube_source *src);

#endif /* KSHIFT_KUBE_SOURCE_H */
