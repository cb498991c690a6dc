// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Kubernetes as a source of shifts, and the status it reports; see kube_source.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include "kube.h"
#include "kube_model.h"
#include "kube_source.h"
#include "log.h"

#define STATUS_PERIOD_MS  1000 /* status thread's heartbeat */
/* A status pass at least this often, whatever changed: a node whose Lease
 * lapsed leaves the count without any event saying so. */
#define KS_STATUS_PASS_MAX_S 5
#define REQUEST_TIMEOUT_MS 10000
#define MAX_REFS	   (2 * KS_MAX_BACKENDS + 1)

/* What this node made of one TrafficShift. */
struct ts_result {
	char *key;	    /* "ns/name" */
	int64_t generation; /* of the object last evaluated */
	int64_t programmed; /* generation running in the dataplane; 0: none */
	bool accepted;
	char accepted_msg[KS_ERR_LEN];
	char unresolved[KS_ERR_LEN]; /* "" when every reference resolved */
	char *refs[MAX_REFS];	     /* "ns/service" keys it is entered under */
	size_t nr_refs;
};

/* TrafficShifts that name one Service: "ns/service" -> struct ref_list. */
struct ref_list {
	struct ts_result **v;
	size_t n, cap;
};

struct ks_kube_source {
	struct ks_kube_conf conf;
	struct ks_kube_store store;
	struct ks_kube_watcher *watcher;
	struct ks_shifts *shifts;
	int efd;
	char *node;
	char *lease_ns;
	unsigned lease_seconds;
	bool ready;

	/* Loop thread only. */
	struct ks_index results; /* "ns/name" -> struct ts_result */
	struct ks_index refs;	 /* "ns/service" -> struct ref_list */
	bool news;		 /* report or verdicts changed since the status thread was woken */

	/* Shared with the status thread, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	bool stopping;
	struct json_object *report;   /* {"ns/name": generation} programmed here */
	struct json_object *verdicts; /* {"ns/name": {generation, accepted, message, unresolved}} */
	pthread_t status_thread;
	bool status_started;
	bool leader; /* status thread only: we hold the status writer's Lease */
	bool reported;	   /* under mu: report or verdicts changed since the status thread looked */
	bool status_dirty; /* under mu: a TrafficShift or Lease changed: statuses may be due */
	bool store_started;
};

/* ---- the loop side: objects to shifts ---- */

static size_t split_key(const char *key, char *ns, size_t nslen, const char **name)
{
	const char *slash = strchr(key, '/');
	size_t n = slash ? (size_t)(slash - key) : 0;

	if (n >= nslen)
		n = nslen - 1;
	memcpy(ns, key, n);
	ns[n] = '\0';
	*name = slash ? slash + 1 : key;
	return n;
}

static void refs_remove(struct ks_kube_source *src, struct ts_result *r)
{
	size_t i, j;

	for (i = 0; i < r->nr_refs; i++) {
		struct ref_list *l = ks_index_get(&src->refs, r->refs[i], strlen(r->refs[i]));

		for (j = 0; l && j < l->n; j++) {
			if (l->v[j] == r) {
				l->v[j] = l->v[--l->n];
				break;
			}
		}
		if (l && !l->n) {
			ks_index_del(&src->refs, r->refs[i], strlen(r->refs[i]));
			free(l->v);
			free(l);
		}
		free(r->refs[i]);
	}
	r->nr_refs = 0;
}

/* Enters r under every Service its TrafficShift names, so that a change
 * to one of them re-evaluates it. */
static void refs_add(struct ks_kube_source *src, struct ts_result *r, const char *ns,
		     struct json_object *ts)
{
	const char *names[MAX_REFS];
	size_t n = ks_kube_model_refs(ts, names, MAX_REFS), i;
	char key[2 * KS_NAME_LEN];

	for (i = 0; i < n; i++) {
		struct ref_list *l;
		int len = snprintf(key, sizeof(key), "%s/%s", ns, names[i]);

		l = ks_index_get(&src->refs, key, len);
		if (!l) {
			l = calloc(1, sizeof(*l));
			if (!l || ks_index_put(&src->refs, key, len, l)) {
				free(l);
				continue;
			}
		}
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 4;
			struct ts_result **v = realloc(l->v, cap * sizeof(*v));

			if (!v)
				continue;
			l->v = v;
			l->cap = cap;
		}
		r->refs[r->nr_refs] = strdup(key);
		if (!r->refs[r->nr_refs])
			continue;
		r->nr_refs++;
		l->v[l->n++] = r;
	}
}

/* Field by field: the JSON form merges endpoints listed per frontend port,
 * so it cannot tell a change of which port an endpoint serves. */
static bool same_shift(const struct ks_shift *a, const struct ks_shift *b)
{
	return ks_shift_equal(a, b);
}

/* Brings the running shift key in line with its TrafficShift (store lock
 * held). A spec that is refused leaves what runs exactly as it was. */
static void evaluate(struct ks_kube_source *src, const char *key)
{
	struct ts_result *r = ks_index_get(&src->results, key, strlen(key));
	char ns[KS_NAME_LEN], err[KS_ERR_LEN];
	struct ks_shift_state *running;
	struct ks_change change;
	struct json_object *ts;
	struct ks_shift shift;
	const char *name;

	split_key(key, ns, sizeof(ns), &name);
	ts = ks_kube_store_get(&src->store, KS_KUBE_TRAFFICSHIFT, ns, name);
	running = ks_shifts_find(src->shifts, ns, name);
	if (running && strcmp(running->source, KS_KUBE_SOURCE)) {
		/* a local shift of that name: not ours to touch */
		if (ts && (!r || r->accepted))
			pr_warn("kube: %s: refused: a local shift (from %s) has that name\n", key,
				running->source);
		if (r) {
			r->accepted = false;
			snprintf(r->accepted_msg, sizeof(r->accepted_msg),
				 "a shift of that name is defined locally on this node (%s)",
				 running->source);
		}
		return;
	}

	if (!ts) {
		if (running && !ks_shifts_delete(src->shifts, ns, name, err, sizeof(err)))
			pr_info("kube: %s: deleted\n", key);
		if (r) {
			refs_remove(src, r);
			ks_index_del(&src->results, key, strlen(key));
			free(r->key);
			free(r);
		}
		return;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r || !(r->key = strdup(key)) ||
		    ks_index_put(&src->results, key, strlen(key), r)) {
			pr_warn("kube: %s: out of memory\n", key);
			if (r)
				free(r->key);
			free(r);
			return;
		}
	}
	refs_remove(src, r);
	refs_add(src, r, ns, ts);
	r->generation = json_object_get_int64(
		json_object_object_get(json_object_object_get(ts, "metadata"), "generation"));

	memset(&shift, 0, sizeof(shift));
	r->unresolved[0] = '\0';
	if (ks_kube_model_shift(ts, &src->store, &shift, r->unresolved, sizeof(r->unresolved),
				err, sizeof(err))) {
		if (r->accepted || strcmp(r->accepted_msg, err))
			pr_warn("kube: %s: generation %lld refused: %s\n", key,
				(long long)r->generation, err);
		r->accepted = false;
		snprintf(r->accepted_msg, sizeof(r->accepted_msg), "%s", err);
		return;
	}
	if (running && same_shift(&running->spec, &shift)) {
		r->accepted = true;
		r->accepted_msg[0] = '\0';
		ks_shift_free(&shift);
		return;
	}
	change = (struct ks_change){ .shift = &shift, .source = KS_KUBE_SOURCE };
	if (ks_shifts_check_batch(src->shifts, &change, 1, err, sizeof(err)) ||
	    ks_shifts_apply(src->shifts, &shift, KS_KUBE_SOURCE, err, sizeof(err))) {
		if (r->accepted || strcmp(r->accepted_msg, err))
			pr_warn("kube: %s: generation %lld refused: %s\n", key,
				(long long)r->generation, err);
		r->accepted = false;
		snprintf(r->accepted_msg, sizeof(r->accepted_msg), "%s", err);
	} else {
		r->accepted = true;
		r->accepted_msg[0] = '\0';
		r->programmed = r->generation;
		pr_info("kube: %s: generation %lld programmed%s%s\n", key,
			(long long)r->generation, r->unresolved[0] ? "; " : "", r->unresolved);
	}
	ks_shift_free(&shift);
}

static int mark_key(struct ks_index *dirty, const char *key)
{
	return ks_index_put(dirty, key, strlen(key), (void *)1);
}

/* Brings key's entries of what the status thread reads (src->report: the
 * generation programmed here; src->verdicts: accepted, messages) in line
 * with its result, or removes them; true when they changed. */
static bool report_key(struct ks_kube_source *src, const char *key)
{
	const struct ts_result *r = ks_index_get(&src->results, key, strlen(key));
	struct json_object *v = NULL, *was;
	bool changed;

	if (r) {
		v = json_object_new_object();
		json_object_object_add(v, "generation", json_object_new_int64(r->generation));
		json_object_object_add(v, "accepted", json_object_new_boolean(r->accepted));
		json_object_object_add(v, "message", json_object_new_string(r->accepted_msg));
		json_object_object_add(v, "unresolved", json_object_new_string(r->unresolved));
	}
	pthread_mutex_lock(&src->mu);
	was = json_object_object_get(src->verdicts, key);
	changed = !json_object_equal(v, was);
	if (v)
		json_object_object_add(src->verdicts, key, v);
	else
		json_object_object_del(src->verdicts, key);
	was = json_object_object_get(src->report, key);
	if (r && r->programmed) {
		changed |= json_object_get_int64(was) != r->programmed;
		json_object_object_add(src->report, key, json_object_new_int64(r->programmed));
	} else if (was) {
		changed = true;
		json_object_object_del(src->report, key);
	}
	pthread_mutex_unlock(&src->mu);
	return changed;
}

static int evaluate_one(const void *key, size_t len, void *value, void *arg)
{
	struct ks_kube_source *src = arg;
	char k[2 * KS_NAME_LEN];

	(void)value;
	snprintf(k, sizeof(k), "%.*s", (int)len, (const char *)key);
	evaluate(src, k);
	src->news |= report_key(src, k);
	return 0;
}

static int mark_all(const void *key, size_t len, void *value, void *arg)
{
	(void)value;
	ks_index_put(arg, key, len, (void *)1);
	return 0;
}

void ks_kube_source_process(struct ks_kube_source *src)
{
	struct ks_kube_change *changes;
	struct ks_index dirty = {};
	char key[2 * KS_NAME_LEN];
	bool synced, status_news = false;
	uint64_t v;
	size_t n, i, j;

	if (read(src->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		pr_warn("kube: reading the watcher's eventfd: %s\n", strerror(errno));

	pthread_mutex_lock(&src->store.lock);
	ks_kube_store_drain(&src->store, &changes, &n);
	for (i = 0; i < n; i++) {
		const struct ks_kube_change *c = &changes[i];
		const char *svc = c->kind == KS_KUBE_SERVICE ? c->name : c->service;
		struct ref_list *l;

		if (c->kind == KS_KUBE_TRAFFICSHIFT || c->kind == KS_KUBE_LEASE)
			status_news = true;
		if (c->kind == KS_KUBE_TRAFFICSHIFT) {
			snprintf(key, sizeof(key), "%s/%s", c->ns, c->name);
			mark_key(&dirty, key);
		} else if (svc) {
			snprintf(key, sizeof(key), "%s/%s", c->ns, svc);
			l = ks_index_get(&src->refs, key, strlen(key));
			for (j = 0; l && j < l->n; j++)
				mark_key(&dirty, l->v[j]->key);
		}
	}
	synced = true;
	for (i = 0; i < KS_KUBE_NR_KINDS; i++)
		synced &= src->store.synced[i];
	/* the first time everything is listed, also pick up shifts whose
	 * changes were drained before the Services they name arrived */
	if (synced && !src->ready)
		ks_index_foreach(&src->store.objs[KS_KUBE_TRAFFICSHIFT], mark_all, &dirty);
	ks_index_foreach(&dirty, evaluate_one, src);
	pthread_mutex_unlock(&src->store.lock);
	ks_kube_changes_free(changes, n);
	ks_index_destroy(&dirty);
	if (synced && !src->ready) {
		pthread_mutex_lock(&src->mu);
		src->ready = true; /* the status thread reads it too */
		pthread_mutex_unlock(&src->mu);
		src->news = true;
		pr_info("kube: synced: %zu TrafficShift(s)\n", src->results.n);
	}
	/* wake the status thread only for news; what it writes comes back as
	 * watch events, which make it look again but find nothing to write */
	if (src->news || status_news) {
		pthread_mutex_lock(&src->mu);
		src->reported |= src->news;
		src->status_dirty = true;
		pthread_cond_signal(&src->wake);
		pthread_mutex_unlock(&src->mu);
		src->news = false;
	}
}

/* ---- the status thread: leases and status, every write to the API ---- */

static void now_rfc3339(char *buf, size_t len, bool micro)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (micro)
		snprintf(buf + n, len - n, ".%06ldZ", ts.tv_nsec / 1000);
	else
		snprintf(buf + n, len - n, "Z");
}

/* Seconds since the epoch of an RFC 3339 time ("...Z"); 0 if unreadable. */
static time_t parse_time(const char *s)
{
	struct tm tm = {};

	if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
		return 0;
	return timegm(&tm);
}

/* o.a, or o.a.b; NULL where any step is missing. */
static struct json_object *jpath(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return v;
}

static const char *jstr(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v = jpath(o, a, b);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A Lease is live while its renewTime is within its duration. */
static bool lease_live(struct json_object *lease, time_t now)
{
	time_t renew = parse_time(jstr(lease, "spec", "renewTime"));
	int64_t dur = json_object_get_int64(jpath(lease, "spec", "leaseDurationSeconds"));

	return renew && now <= renew + dur;
}

static int api(struct ks_kube_source *src, const char *method, const char *path,
	       const char *ctype, struct json_object *body, long *status)
{
	struct ks_kube_resp resp = {};
	char err[KS_ERR_LEN];
	int ret;

	ret = ks_kube_request(&src->conf, method, path, ctype,
			      body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN)
				   : NULL,
			      REQUEST_TIMEOUT_MS, &resp, err, sizeof(err));
	*status = resp.status;
	if (!ret && (resp.status < 200 || resp.status >= 300) && resp.status != 404 &&
	    resp.status != 409)
		pr_warn("kube: %s %s: HTTP %ld: %s\n", method, path, resp.status,
			ks_kube_status_message(&resp));
	else if (ret)
		pr_warn("kube: %s %s: %s\n", method, path, err);
	ks_kube_resp_free(&resp);
	return ret;
}

static struct json_object *lease_object(struct ks_kube_source *src, const char *name,
					const char *rv, const char *role)
{
	struct json_object *l = json_object_new_object(), *md = json_object_new_object();
	struct json_object *labels = json_object_new_object(), *spec = json_object_new_object();
	char now[64];

	now_rfc3339(now, sizeof(now), true);
	json_object_object_add(l, "apiVersion", json_object_new_string("coordination.k8s.io/v1"));
	json_object_object_add(l, "kind", json_object_new_string("Lease"));
	json_object_object_add(md, "name", json_object_new_string(name));
	json_object_object_add(md, "namespace", json_object_new_string(src->lease_ns));
	if (rv)
		json_object_object_add(md, "resourceVersion", json_object_new_string(rv));
	json_object_object_add(labels, "app.kubernetes.io/name", json_object_new_string("kshift"));
	json_object_object_add(labels, "kshift.dev/role", json_object_new_string(role));
	json_object_object_add(md, "labels", labels);
	json_object_object_add(l, "metadata", md);
	json_object_object_add(spec, "holderIdentity", json_object_new_string(src->node));
	json_object_object_add(spec, "leaseDurationSeconds",
			       json_object_new_int(src->lease_seconds));
	json_object_object_add(spec, "renewTime", json_object_new_string(now));
	json_object_object_add(l, "spec", spec);
	return l;
}

/* Creates or renews a Lease of ours. rv: the stored copy's resourceVersion
 * (NULL: create). Returns the HTTP status. */
static long lease_write(struct ks_kube_source *src, const char *name, const char *rv,
			struct json_object *lease)
{
	char path[512];
	long status = 0;

	if (rv) {
		snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s",
			 src->lease_ns, name);
		api(src, "PUT", path, NULL, lease, &status);
	} else {
		snprintf(path, sizeof(path), "/apis/coordination.k8s.io/v1/namespaces/%s/leases",
			 src->lease_ns);
		api(src, "POST", path, NULL, lease, &status);
	}
	json_object_put(lease);
	return status;
}

/* One status condition, keeping lastTransitionTime while the status holds. */
static struct json_object *condition(struct json_object *old_conds, const char *type, bool ok,
				     const char *reason, const char *msg, int64_t gen)
{
	struct json_object *c = json_object_new_object();
	const char *since = NULL;
	char now[64];
	size_t i;

	for (i = 0; old_conds && i < json_object_array_length(old_conds); i++) {
		struct json_object *o = json_object_array_get_idx(old_conds, i);
		const char *t = jstr(o, "type", NULL), *s = jstr(o, "status", NULL);

		if (t && s && !strcmp(t, type) && !strcmp(s, ok ? "True" : "False"))
			since = jstr(o, "lastTransitionTime", NULL);
	}
	now_rfc3339(now, sizeof(now), false);
	json_object_object_add(c, "type", json_object_new_string(type));
	json_object_object_add(c, "status", json_object_new_string(ok ? "True" : "False"));
	json_object_object_add(c, "reason", json_object_new_string(reason));
	json_object_object_add(c, "message", json_object_new_string(msg));
	json_object_object_add(c, "observedGeneration", json_object_new_int64(gen));
	json_object_object_add(c, "lastTransitionTime", json_object_new_string(since ? since : now));
	return c;
}

/* "stable=90,canary=10", for kubectl's printer column. */
static void weights_of(struct json_object *ts, char *buf, size_t len)
{
	struct json_object *bs = jpath(ts, "spec", "backends");
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; bs && i < json_object_array_length(bs) && n < len; i++) {
		struct json_object *b = json_object_array_get_idx(bs, i);

		n += snprintf(buf + n, len - n, "%s%s=%lld", i ? "," : "",
			      jstr(b, "name", NULL) ?: "?",
			      (long long)json_object_get_int64(jpath(b, "weight", NULL)));
	}
}

struct status_ctx {
	struct ks_kube_source *src;
	struct json_object *verdicts;
	struct json_object *node_reports; /* array of {"ns/name": gen} of live nodes */
	struct json_object *writes;	  /* array of [path, body] */
	time_t now;
};

static int count_node(const void *key, size_t len, void *value, void *arg)
{
	struct status_ctx *c = arg;
	struct json_object *lease = value, *rep;
	const char *role = jstr(jpath(lease, "metadata", "labels"), "kshift.dev/role", NULL);
	const char *ann;

	(void)key;
	(void)len;
	if (!role || strcmp(role, "node") || !lease_live(lease, c->now))
		return 0;
	ann = jstr(jpath(lease, "metadata", "annotations"), KS_KUBE_PROGRAMMED_ANN, NULL);
	rep = ann ? json_tokener_parse(ann) : NULL;
	json_object_array_add(c->node_reports, rep ? rep : json_object_new_object());
	return 0;
}

/* The status one TrafficShift should carry; queued for writing when it
 * differs from what it carries (ignoring transition times). */
static int status_of(const void *key, size_t len, void *value, void *arg)
{
	struct status_ctx *c = arg;
	struct json_object *ts = value, *v, *st, *conds, *nodes, *old = jpath(ts, "status", NULL);
	int64_t gen = json_object_get_int64(jpath(ts, "metadata", "generation"));
	size_t i, total = json_object_array_length(c->node_reports), programmed = 0;
	char k[2 * KS_NAME_LEN], summary[32], weights[512], path[1024];
	const char *ns = jstr(ts, "metadata", "namespace"), *name = jstr(ts, "metadata", "name");
	bool accepted, resolved;
	const char *msg, *unresolved;

	snprintf(k, sizeof(k), "%.*s", (int)len, (const char *)key);
	if (!ns || !name)
		return 0;
	v = json_object_object_get(c->verdicts, k);
	if (!v || json_object_get_int64(json_object_object_get(v, "generation")) != gen)
		return 0; /* not evaluated here yet: say nothing rather than guess */
	accepted = json_object_get_boolean(json_object_object_get(v, "accepted"));
	msg = json_object_get_string(json_object_object_get(v, "message"));
	unresolved = json_object_get_string(json_object_object_get(v, "unresolved"));
	resolved = !unresolved || !*unresolved;
	for (i = 0; i < total; i++)
		programmed += json_object_get_int64(json_object_object_get(
				      json_object_array_get_idx(c->node_reports, i), k)) >= gen;

	conds = json_object_new_array();
	old = old ? jpath(old, "conditions", NULL) : NULL;
	json_object_array_add(conds, condition(old, "Accepted", accepted,
					       accepted ? "Accepted" : "Invalid",
					       accepted ? "the spec is valid" : msg, gen));
	json_object_array_add(conds, condition(old, "ResolvedRefs", resolved,
					       resolved ? "ResolvedRefs" : "BackendNotFound",
					       resolved ? "every Service named exists" : unresolved,
					       gen));
	snprintf(summary, sizeof(summary), "%zu/%zu", programmed, total);
	json_object_array_add(conds, condition(old, "Programmed", total && programmed == total,
					       total && programmed == total ? "Programmed"
									    : "Pending",
					       summary, gen));
	st = json_object_new_object();
	json_object_object_add(st, "observedGeneration", json_object_new_int64(gen));
	json_object_object_add(st, "conditions", conds);
	nodes = json_object_new_object();
	json_object_object_add(nodes, "programmed", json_object_new_int64(programmed));
	json_object_object_add(nodes, "total", json_object_new_int64(total));
	json_object_object_add(nodes, "summary", json_object_new_string(summary));
	json_object_object_add(st, "nodes", nodes);
	weights_of(ts, weights, sizeof(weights));
	json_object_object_add(st, "weights", json_object_new_string(weights));

	/* unchanged (transition times are kept, so whole-object equality
	 * holds when nothing moved): no write, no event, no loop */
	if (json_object_equal(st, jpath(ts, "status", NULL))) {
		json_object_put(st);
		return 0;
	}
	v = json_object_new_object();
	json_object_object_add(v, "status", st);
	snprintf(path, sizeof(path), "/apis/%s/%s/namespaces/%s/%s/%s/status", KS_KUBE_GROUP,
		 KS_KUBE_VERSION, ns, KS_KUBE_PLURAL, name);
	json_object_array_add(c->writes, json_object_new_string(path));
	json_object_array_add(c->writes, v);
	return 0;
}

/* One round: renew our node Lease, try for the status writer's Lease,
 * and if we hold it, bring every TrafficShift's status up to date. */
/* When the status thread last did what it does on a clock. */
struct status_clock {
	struct json_object *last_report; /* as our node's Lease last carried it */
	time_t node_renewed, writer_renewed, status_pass;
};

/*
 * One round: renew our node's Lease when what we run changed or a third of
 * its duration has passed; try for (or renew) the status writer's Lease;
 * and if we hold it and a TrafficShift or a node's report changed, bring
 * every TrafficShift's status up to date. Rounds with nothing to do cost a
 * few comparisons, so a quiet cluster of thousands of shifts costs nothing.
 */
static void status_round(struct ks_kube_source *src, struct status_clock *clk)
{
	struct status_ctx c = { .src = src, .now = time(NULL) };
	struct json_object *report = NULL, *lease = NULL, *held = NULL;
	time_t third = src->lease_seconds / 3 ? src->lease_seconds / 3 : 1;
	bool renew_node = c.now - clk->node_renewed >= third;
	bool leader = false, reported, pass;
	char node_lease[KS_NAME_LEN];
	const char *rv, *holder;
	size_t i;
	long status;

	/* copies: the loop goes on changing them in place */
	pthread_mutex_lock(&src->mu);
	reported = src->reported;
	pass = src->status_dirty || c.now - clk->status_pass >= KS_STATUS_PASS_MAX_S;
	if (src->ready && (reported || renew_node || !clk->last_report || pass) &&
	    (json_object_deep_copy(src->report, &report, NULL) ||
	     json_object_deep_copy(src->verdicts, &c.verdicts, NULL))) {
		json_object_put(report);
		report = NULL;
	}
	if (report) {
		src->reported = false;
		src->status_dirty = false;
	}
	pthread_mutex_unlock(&src->mu);
	if (!report)
		return; /* nothing to do, nothing to say yet, or no memory to say it */

	snprintf(node_lease, sizeof(node_lease), "%s%s", KS_KUBE_NODE_LEASE_PFX, src->node);
	pthread_mutex_lock(&src->store.lock);
	if (renew_node || !clk->last_report || !json_object_equal(report, clk->last_report)) {
		struct json_object *ann = json_object_new_object();

		lease = ks_kube_store_get(&src->store, KS_KUBE_LEASE, src->lease_ns, node_lease);
		rv = lease ? jstr(lease, "metadata", "resourceVersion") : NULL;
		lease = lease_object(src, node_lease, rv, "node");
		json_object_object_add(ann, KS_KUBE_PROGRAMMED_ANN,
				       json_object_new_string(json_object_to_json_string_ext(
					       report, JSON_C_TO_STRING_PLAIN)));
		json_object_object_add(json_object_object_get(lease, "metadata"), "annotations",
				       ann);
	}
	/* the status writer: whoever holds kshift-status, until it lapses */
	held = ks_kube_store_get(&src->store, KS_KUBE_LEASE, src->lease_ns, KS_KUBE_STATUS_LEASE);
	holder = held ? jstr(held, "spec", "holderIdentity") : NULL;
	rv = held ? jstr(held, "metadata", "resourceVersion") : NULL;
	if (holder && !strcmp(holder, src->node) && src->leader &&
	    c.now - clk->writer_renewed < third)
		leader = true; /* ours, and not due for renewal */
	else if (!held || !holder || !strcmp(holder, src->node) || !lease_live(held, c.now))
		held = lease_object(src, KS_KUBE_STATUS_LEASE, rv, "status-writer");
	else
		held = NULL;
	if (leader)
		held = NULL;
	pthread_mutex_unlock(&src->store.lock);

	if (lease && lease_write(src, node_lease, json_object_get_string(jpath(
							  lease, "metadata", "resourceVersion")),
				 json_object_get(lease)) / 100 == 2) {
		json_object_put(clk->last_report);
		clk->last_report = json_object_get(report);
		clk->node_renewed = c.now;
	}
	json_object_put(lease);
	if (held) {
		status = lease_write(src, KS_KUBE_STATUS_LEASE,
				     json_object_get_string(jpath(held, "metadata", "resourceVersion")),
				     json_object_get(held));
		leader = status / 100 == 2;
		if (leader)
			clk->writer_renewed = c.now;
		json_object_put(held);
	}
	if (leader != src->leader) {
		pr_info("kube: this node (%s) %s the status writer\n", src->node,
			leader ? "is now" : "is no longer");
		pass = true; /* a new writer looks at everything */
	}
	src->leader = leader;

	if (leader && pass) {
		c.node_reports = json_object_new_array();
		c.writes = json_object_new_array();
		pthread_mutex_lock(&src->store.lock);
		ks_index_foreach(&src->store.objs[KS_KUBE_LEASE], count_node, &c);
		ks_index_foreach(&src->store.objs[KS_KUBE_TRAFFICSHIFT], status_of, &c);
		pthread_mutex_unlock(&src->store.lock);
		for (i = 0; i + 1 < json_object_array_length(c.writes); i += 2)
			api(src, "PATCH",
			    json_object_get_string(json_object_array_get_idx(c.writes, i)),
			    "application/merge-patch+json",
			    json_object_array_get_idx(c.writes, i + 1), &status);
		json_object_put(c.node_reports);
		json_object_put(c.writes);
		clk->status_pass = c.now;
	}
	json_object_put(report);
	json_object_put(c.verdicts);
}

static void *status_main(void *arg)
{
	struct ks_kube_source *src = arg;
	struct status_clock clk = {};
	struct timespec until;

	pthread_mutex_lock(&src->mu);
	while (!src->stopping) {
		pthread_mutex_unlock(&src->mu);
		status_round(src, &clk);
		pthread_mutex_lock(&src->mu);
		if (src->stopping)
			break;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += STATUS_PERIOD_MS % 1000 * 1000000L;
		until.tv_sec += STATUS_PERIOD_MS / 1000 + until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&src->wake, &src->mu, &until);
	}
	pthread_mutex_unlock(&src->mu);
	json_object_put(clk.last_report);
	return NULL;
}

/* ---- life cycle ---- */

int ks_kube_source_start(struct ks_kube_source **out, const struct ks_kube_source_opts *opts,
			 struct ks_shifts *shifts, char *err, size_t errlen)
{
	struct ks_kube_source *src = calloc(1, sizeof(*src));
	char host[256];
	int ret;

	if (!src)
		return -ENOMEM;
	src->efd = -1;
	src->shifts = shifts;
	src->lease_seconds = opts->lease_seconds ? opts->lease_seconds : 15;
	src->report = json_object_new_object();
	src->verdicts = json_object_new_object();
	pthread_mutex_init(&src->mu, NULL);
	pthread_cond_init(&src->wake, NULL);
	if (!opts->node_name && gethostname(host, sizeof(host)))
		snprintf(host, sizeof(host), "unknown");
	src->node = strdup(opts->node_name ? opts->node_name : host);
	src->lease_ns = strdup(opts->lease_namespace ? opts->lease_namespace : KS_KUBE_LEASE_NS);
	if (!src->node || !src->lease_ns || !src->report || !src->verdicts) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = ks_kube_conf_load(&src->conf, opts->kubeconfig, opts->context, opts->apiserver,
				NULL, err, errlen);
	if (ret)
		goto fail;
	ret = ks_kube_store_init(&src->store, src->lease_ns);
	if (ret)
		goto fail;
	src->store_started = true;
	src->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (src->efd < 0) {
		ret = -errno;
		goto fail;
	}
	ret = ks_kube_watcher_start(&src->watcher, &src->conf, &src->store, src->efd);
	if (ret) {
		snprintf(err, errlen, "starting the watcher: %s", strerror(-ret));
		goto fail;
	}
	ret = -pthread_create(&src->status_thread, NULL, status_main, src);
	if (ret) {
		snprintf(err, errlen, "starting the status thread: %s", strerror(-ret));
		goto fail;
	}
	src->status_started = true;
	pr_info("kube: watching %s as node %s (leases in %s)\n", src->conf.server, src->node,
		src->lease_ns);
	*out = src;
	return 0;
fail:
	ks_kube_source_stop(src);
	return ret;
}

int ks_kube_source_fd(const struct ks_kube_source *src)
{
	return src->efd;
}

bool ks_kube_source_ready(const struct ks_kube_source *src)
{
	return src->ready;
}

static int free_result(const void *key, size_t len, void *value, void *arg)
{
	struct ts_result *r = value;

	(void)key;
	(void)len;
	refs_remove(arg, r);
	free(r->key);
	free(r);
	return 0;
}

/* Stops the threads and forgets; what was programmed keeps running. */
void ks_kube_source_stop(struct ks_kube_source *src)
{
	if (!src)
		return;
	if (src->status_started) {
		pthread_mutex_lock(&src->mu);
		src->stopping = true;
		pthread_cond_signal(&src->wake);
		pthread_mutex_unlock(&src->mu);
		pthread_join(src->status_thread, NULL);
	}
	if (src->watcher)
		ks_kube_watcher_stop(src->watcher);
	ks_index_foreach(&src->results, free_result, src);
	ks_index_destroy(&src->results);
	ks_index_destroy(&src->refs);
	if (src->store_started)
		ks_kube_store_destroy(&src->store);
	if (src->efd >= 0)
		close(src->efd);
	ks_kube_conf_free(&src->conf);
	json_object_put(src->report);
	json_object_put(src->verdicts);
	pthread_mutex_destroy(&src->mu);
	pthread_cond_destroy(&src->wake);
	free(src->node);
	free(src->lease_ns);
	free(src);
}
