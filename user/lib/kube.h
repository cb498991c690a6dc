/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The Kubernetes API as kshift uses it: where the API server is and how to
 * authenticate (kube_conf.c), one request at a time (kube_http.c), and a
 * worker thread that lists and watches resources into a local store
 * (kube_watch.c), telling the daemon's loop what changed. Nothing here knows
 * about TrafficShift semantics; kube_model.h turns stored objects into
 * struct ks_shift.
 */
#ifndef KSHIFT_KUBE_H
#define KSHIFT_KUBE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include "index.h"

#define KS_KUBE_GROUP	     "kshift.dev"
#define KS_KUBE_VERSION	     "v1alpha1"
#define KS_KUBE_PLURAL	     "trafficshifts"
#define KS_KUBE_SA_DIR	     "/var/run/secrets/kubernetes.io/serviceaccount"
#define KS_KUBE_SLICE_LABEL  "kubernetes.io/service-name"

/* ---- configuration (kube_conf.c) ---- */

/* Where the API server is and who we are. Strings are owned (free with
 * ks_kube_conf_free); a *_data field holds PEM bytes decoded from a
 * kubeconfig's base64 *-data entry, used instead of the file when set. */
struct ks_kube_conf {
	char *server;	 /* "https://host:port", no trailing slash */
	char *ca_file;	 /* NULL: system CAs */
	char *ca_data;	 /* PEM, NUL-terminated; or NULL */
	bool insecure;	 /* insecure-skip-tls-verify */
	char *token;	 /* static bearer token, or NULL */
	char *token_file;	 /* re-read on every connect and after a 401, or NULL */
	char *cert_file; /* client certificate (PEM), or NULL */
	char *cert_data;
	char *key_file; /* client key (PEM), or NULL */
	char *key_data;
	char *namespace; /* the context's namespace, the pod's, or "default" */
};

/*
 * Finds the API server and credentials, in this order:
 *   kubeconfig (the --kubeconfig path, else $KUBECONFIG's first existing
 *   file, else ~/.kube/config when present) with context (NULL: its
 *   current-context); else in-cluster (KUBERNETES_SERVICE_HOST/_PORT, the
 *   service account's token, ca.crt and namespace under sa_dir, NULL for
 *   KS_KUBE_SA_DIR).
 * apiserver, when set, replaces the server URL whichever source gave the
 * rest (the kubernetes Service's ClusterIP may itself need a proxy).
 * 0, or -errno with err naming the file, field and value at fault.
 */
int ks_kube_conf_load(struct ks_kube_conf *conf, const char *kubeconfig, const char *context,
		      const char *apiserver, const char *sa_dir, char *err, size_t errlen);
void ks_kube_conf_free(struct ks_kube_conf *conf);

/* ---- one request (kube_http.c) ---- */

struct ks_kube_resp {
	long status; /* HTTP status; 0 when no answer came */
	char *body;  /* NUL-terminated, owned; free with ks_kube_resp_free */
	size_t len;
};

/*
 * One blocking request: method "GET", "POST", "PUT", "PATCH" or "DELETE" on
 * path ("/apis/kshift.dev/v1alpha1/namespaces/default/trafficshifts/web"),
 * with body (may be NULL) sent as content_type (NULL: application/json;
 * "application/merge-patch+json" for merge patches). Re-reads the token file
 * and retries once on a 401. timeout_ms bounds the whole request.
 * Returns 0 when an HTTP answer came (whatever its status), -errno when
 * none did (err says why: connection refused, TLS, time-out).
 */
int ks_kube_request(const struct ks_kube_conf *conf, const char *method, const char *path,
		    const char *content_type, const char *body, long timeout_ms,
		    struct ks_kube_resp *resp, char *err, size_t errlen);
void ks_kube_resp_free(struct ks_kube_resp *resp);

/*
 * A GET whose 200 body is handed to on_data as it arrives (a watch stream),
 * for kube_watch.c. Any other status's body is collected in resp->body
 * instead. on_data returning non-zero ends the transfer and the call returns
 * that; so does stop (may be NULL) returning true, polled about once a
 * second, with -ECANCELED. Otherwise as ks_kube_request, except that
 * resp->status is kept when the transfer fails after the status line came
 * (200: a watch stream that broke); resp->body is then NULL.
 */
typedef int ks_kube_data_fn(void *arg, const char *data, size_t len);
int ks_kube_stream(const struct ks_kube_conf *conf, const char *path, long timeout_ms,
		   ks_kube_data_fn *on_data, bool (*stop)(void *arg), void *arg,
		   struct ks_kube_resp *resp, char *err, size_t errlen);

/* "message" of a Status object in body, or the body itself, for errors. */
const char *ks_kube_status_message(const struct ks_kube_resp *resp);

/* ---- list + watch into a store (kube_watch.c) ---- */

enum ks_kube_kind {
	KS_KUBE_TRAFFICSHIFT, /* kshift.dev/v1alpha1 trafficshifts, every namespace */
	KS_KUBE_SERVICE,      /* v1 services, every namespace */
	KS_KUBE_ENDPOINTSLICE, /* discovery.k8s.io/v1 endpointslices, every namespace */
	KS_KUBE_LEASE,	       /* coordination.k8s.io/v1 leases in the daemon's namespace,
				* label app.kubernetes.io/name=kshift */
	KS_KUBE_NR_KINDS,
};

/* One change the store saw: an object of kind kind in ns/name was added,
 * modified or deleted (also by a relist that found it changed or gone).
 * For an EndpointSlice, service is its kubernetes.io/service-name label
 * (before and after the change, if it moved: then two changes). */
struct ks_kube_change {
	enum ks_kube_kind kind;
	char *ns;
	char *name;
	char *service; /* EndpointSlices only, else NULL */
};

/*
 * The objects last seen, per kind, keyed "ns/name". The worker thread
 * writes under lock; the daemon reads under lock. Objects are the API's
 * JSON as received, less metadata.managedFields (json-c, owned by the
 * store).
 */
struct ks_kube_store {
	pthread_mutex_t lock;
	struct ks_index objs[KS_KUBE_NR_KINDS];	 /* "ns/name" -> struct json_object * */
	struct ks_index slices_by_service;	 /* "ns/service" -> struct ks_kube_set * */
	struct ks_kube_change *changes;		 /* not yet drained */
	size_t nr_changes, cap_changes;
	bool synced[KS_KUBE_NR_KINDS];		 /* the first list has completed */
	char *lease_namespace;			 /* where KS_KUBE_LEASE objects live */
};

/* A small set of objects (the EndpointSlices of one Service). */
struct ks_kube_set {
	struct json_object **v;
	size_t n, cap;
};

int ks_kube_store_init(struct ks_kube_store *s, const char *lease_namespace);
void ks_kube_store_destroy(struct ks_kube_store *s);

/* Both with the lock held. The object, or NULL; borrowed. */
struct json_object *ks_kube_store_get(struct ks_kube_store *s, enum ks_kube_kind kind,
				      const char *ns, const char *name);
/* The EndpointSlices labelled with ns/service; borrowed, NULL when none. */
const struct ks_kube_set *ks_kube_store_slices(struct ks_kube_store *s, const char *ns,
					       const char *service);

/* With the lock held: hands over the pending changes (free with
 * ks_kube_changes_free) and empties the queue. */
void ks_kube_store_drain(struct ks_kube_store *s, struct ks_kube_change **changes, size_t *n);
void ks_kube_changes_free(struct ks_kube_change *changes, size_t n);

/*
 * Applies one list page or one watch event to the store, as the worker
 * does; exposed so tests can feed canned API output without a server.
 *   ks_kube_store_list: items of a complete list (all pages joined); objects
 *   in the store that the list lacks are deleted (a relist leaves nothing
 *   stale).
 *   ks_kube_store_event: one watch line {"type": ..., "object": ...};
 *   returns 0, or -ESTALE for an ERROR event with code 410 (relist), or
 *   -EPROTO for any other ERROR or a malformed line (the store unchanged).
 *   *resource_version (may be NULL) is the caller's malloc'd resumption
 *   point: replaced by the event's resourceVersion (BOOKMARKs included).
 * Both take the lock themselves and record changes only for objects whose
 * resourceVersion changed.
 */
int ks_kube_store_list(struct ks_kube_store *s, enum ks_kube_kind kind, struct json_object *items);
int ks_kube_store_event(struct ks_kube_store *s, enum ks_kube_kind kind, const char *line,
			char **resource_version);

struct ks_kube_watcher;

/*
 * Starts a thread per kind that lists (paged with limit/continue, applied
 * to the store at once when all pages are in) then watches
 * (resourceVersion, allowWatchBookmarks, a randomised timeoutSeconds) into
 * store: when a stream ends or breaks, it watches again at once from the
 * last resourceVersion seen; on a 410 (as the HTTP status or as an ERROR
 * event in the stream) it relists; when a request fails it retries after a
 * jittered exponential backoff (200 ms doubling to 30 s). After every batch of
 * changes it writes 1 to notify_fd (an eventfd, or -1 for none) so the
 * daemon's loop wakes. conf and store must outlive w. Leases are watched
 * only when the store has a lease_namespace. 0 or -errno.
 */
int ks_kube_watcher_start(struct ks_kube_watcher **w, const struct ks_kube_conf *conf,
			  struct ks_kube_store *store, int notify_fd);
/* Stops the thread and frees w (not the store). */
void ks_kube_watcher_stop(struct ks_kube_watcher *w);

#endif /* KSHIFT_KUBE_H */
