/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kshiftctl's Kubernetes mode: every command acts on the TrafficShift custom
 * resource through the API server (kube.h), never on a node's dataplane.
 * Weight changes are computed here exactly as kshiftd computes them for a
 * local shift, and sent as merge patches with a resourceVersion
 * precondition, retried on 409 Conflict. The pure parts (YAML to JSON,
 * weights, durations, the wait predicate) are exposed for tests.
 */
#ifndef KSHIFT_KUBE_CTL_H
#define KSHIFT_KUBE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>

/* Requests are retried this many times on 409 Conflict, re-reading first. */
#define KS_KCTL_RETRIES 5
/* How long a command may take without --timeout; --wait waits longer. */
#define KS_KCTL_TIMEOUT_MS	30000
#define KS_KCTL_WAIT_TIMEOUT_MS 60000
#define KS_KCTL_POLL_MS		200

struct ks_kctl_opts {
	const char *kubeconfig; /* NULL: $KUBECONFIG, ~/.kube/config, in-cluster */
	const char *context;	/* NULL: current-context */
	const char *ns;		/* -n; NULL: the context's namespace */
	bool all_namespaces;	/* get -A */
	const char *file;	/* apply -f, delete -f */
	const char *output;	/* get -o */
	bool wait;		/* --wait */
	long timeout_ms;	/* --timeout; 0: the default */
	const char *percent;	/* mirror --percent */
	bool off;		/* mirror --off */
	void (*usage)(FILE *f); /* printed after a usage error */
};

/* Runs one command; returns the exit status (0 done, 1 failed, 2 usage). */
int ks_kctl_run(const struct ks_kctl_opts *o, const char *cmd, int argc, char **argv);

/*
 * The new weights of the backends listed in spec.backends (a JSON array of
 * {name, weight, ...}; an absent weight is 1, as in a manifest) after cmd:
 *   "set": names[i] gets weights[i], the others keep theirs;
 *   "switch", "promote", "rollback": all the weight (the sum of the current
 *   weights, at most KS_WEIGHT_MAX, at least 1) to target; promote's
 *   default target is the last backend, rollback's is always the first.
 * out receives one weight per backend, in order. 0, or -EINVAL/-ENOENT
 * with err naming the backend or field at fault.
 */
int ks_kctl_weights(struct json_object *backends, const char *cmd, const char *const *names,
		    const uint32_t *weights, size_t n, const char *target, uint32_t *out, char *err,
		    size_t errlen);

/*
 * Whether object ts has been programmed at generation gen: its
 * status.observedGeneration is at least gen, its Programmed condition is
 * True for that generation, and status.nodes.programmed equals
 * status.nodes.total with total > 0. *programmed and *total (may be NULL)
 * receive the node counts, -1 when absent.
 */
bool ks_kctl_programmed(struct json_object *ts, int64_t gen, int64_t *programmed, int64_t *total);

/*
 * Every non-empty document of a YAML (or JSON) stream as a JSON object, in
 * order, the documents ks_manifest_parse would read: plain scalars become
 * null, booleans, decimal integers or floats as YAML 1.2's core schema
 * reads them (0x10 and yes stay strings), quoted ones strings. 0 with *docs (free each with
 * json_object_put, then the array) and *nr, or -EINVAL/-ENOMEM with err set.
 */
int ks_yaml_to_json(const char *text, size_t len, struct json_object ***docs, size_t *nr, char *err,
		    size_t errlen);

/* "500ms", "10s", "2m", "1h", "1m30s", or a bare number of seconds, to
 * milliseconds (> 0). 0 or -EINVAL. */
int ks_duration_parse(const char *s, long *ms);

/* A JSON value as block-style YAML, for -o yaml. */
void ks_print_yaml(FILE *f, struct json_object *v);

#endif /* KSHIFT_KUBE_CTL_H */
