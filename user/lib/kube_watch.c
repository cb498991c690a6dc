// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The local copy of the Kubernetes objects kshift follows, and the threads
 * that keep it current: per kind, a paged list, then a watch from the
 * list's resourceVersion, resumed from the last one seen when the stream
 * ends and relisted when the server says it is too old (410). The store
 * records which objects changed so the daemon's loop rebuilds only the
 * shifts they concern. See kube.h.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "kube.h"
#include "log.h"

#define KEY_LEN		512 /* "ns/name": 63 + 1 + 253, with room */
#define LIST_LIMIT	500
#define LIST_TIMEOUT_MS 60000L
/* The server ends each watch after timeoutSeconds; randomised so that the
 * nodes of a cluster do not all come back at the same moment. */
#define WATCH_MIN_S 240
#define WATCH_MAX_S 360
/* how long past timeoutSeconds we wait before deciding the server hung */
#define WATCH_SLACK_MS 30000L
#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 30000
/* one event is one object; a huge EndpointSlice is well under this */
#define MAX_LINE (64u << 20)

static const char *const kind_names[KS_KUBE_NR_KINDS] = {
	[KS_KUBE_TRAFFICSHIFT] = "trafficshifts",
	[KS_KUBE_SERVICE] = "services",
	[KS_KUBE_ENDPOINTSLICE] = "endpointslices",
	[KS_KUBE_LEASE] = "leases",
};

/* ---- the store ---- */

int ks_kube_store_init(struct ks_kube_store *s, const char *lease_namespace)
{
	int ret;

	memset(s, 0, sizeof(*s));
	ret = -pthread_mutex_init(&s->lock, NULL);
	if (ret)
		return ret;
	if (lease_namespace && !(s->lease_namespace = strdup(lease_namespace))) {
		pthread_mutex_destroy(&s->lock);
		return -ENOMEM;
	}
	return 0;
}

static int put_obj_cb(const void *key, size_t len, void *value, void *arg)
{
	(void)key, (void)len, (void)arg;
	json_object_put(value);
	return 0;
}

static int free_set_cb(const void *key, size_t len, void *value, void *arg)
{
	struct ks_kube_set *set = value;

	(void)key, (void)len, (void)arg;
	free(set->v);
	free(set);
	return 0;
}

void ks_kube_store_destroy(struct ks_kube_store *s)
{
	int k;

	for (k = 0; k < KS_KUBE_NR_KINDS; k++) {
		ks_index_foreach(&s->objs[k], put_obj_cb, NULL);
		ks_index_destroy(&s->objs[k]);
	}
	ks_index_foreach(&s->slices_by_service, free_set_cb, NULL);
	ks_index_destroy(&s->slices_by_service);
	ks_kube_changes_free(s->changes, s->nr_changes);
	free(s->lease_namespace);
	pthread_mutex_destroy(&s->lock);
	memset(s, 0, sizeof(*s));
}

static struct json_object *field(struct json_object *o, const char *name)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, name, &v) ? v : NULL;
}

static const char *str_field(struct json_object *o, const char *name)
{
	struct json_object *v = field(o, name);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static const char *meta_str(struct json_object *o, const char *name)
{
	return str_field(field(o, "metadata"), name);
}

static const char *slice_service(struct json_object *o)
{
	return str_field(field(field(o, "metadata"), "labels"), KS_KUBE_SLICE_LABEL);
}

/* "ns/name" of an object, -EPROTO when it has no name. */
static int key_of(struct json_object *o, char *key)
{
	const char *ns = meta_str(o, "namespace"), *name = meta_str(o, "name");

	if (!json_object_is_type(o, json_type_object) || !name || !*name ||
	    snprintf(key, KEY_LEN, "%s/%s", ns ? ns : "", name) >= KEY_LEN)
		return -EPROTO;
	return 0;
}

struct json_object *ks_kube_store_get(struct ks_kube_store *s, enum ks_kube_kind kind,
				      const char *ns, const char *name)
{
	char key[KEY_LEN];

	if (snprintf(key, sizeof(key), "%s/%s", ns, name) >= KEY_LEN)
		return NULL;
	return ks_index_get(&s->objs[kind], key, strlen(key));
}

const struct ks_kube_set *ks_kube_store_slices(struct ks_kube_store *s, const char *ns,
					       const char *service)
{
	char key[KEY_LEN];

	if (snprintf(key, sizeof(key), "%s/%s", ns, service) >= KEY_LEN)
		return NULL;
	return ks_index_get(&s->slices_by_service, key, strlen(key));
}

/* key is "ns/name" of the object; the set is "ns/service". */
static int set_add(struct ks_kube_store *s, const char *key, const char *service,
		   struct json_object *o)
{
	char skey[KEY_LEN];
	struct ks_kube_set *set;
	int n = snprintf(skey, sizeof(skey), "%.*s/%s", (int)strcspn(key, "/"), key, service);

	if (n >= KEY_LEN)
		return -EPROTO;
	set = ks_index_get(&s->slices_by_service, skey, n);
	if (!set) {
		set = calloc(1, sizeof(*set));
		if (!set || ks_index_put(&s->slices_by_service, skey, n, set)) {
			free(set);
			return -ENOMEM;
		}
	}
	if (set->n == set->cap) {
		size_t cap = set->cap ? 2 * set->cap : 4;
		struct json_object **v = realloc(set->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		set->v = v;
		set->cap = cap;
	}
	set->v[set->n++] = o;
	return 0;
}

static void set_del(struct ks_kube_store *s, const char *key, const char *service,
		    struct json_object *o)
{
	char skey[KEY_LEN];
	struct ks_kube_set *set;
	int n = snprintf(skey, sizeof(skey), "%.*s/%s", (int)strcspn(key, "/"), key, service);
	size_t i;

	if (n >= KEY_LEN || !(set = ks_index_get(&s->slices_by_service, skey, n)))
		return;
	for (i = 0; i < set->n; i++)
		if (set->v[i] == o) {
			set->v[i] = set->v[--set->n];
			break;
		}
	/* an empty set goes, so ks_kube_store_slices says "none" with NULL */
	if (!set->n) {
		ks_index_del(&s->slices_by_service, skey, n);
		free_set_cb(NULL, 0, set, NULL);
	}
}

static void clear_change(struct ks_kube_change *c)
{
	free(c->ns);
	free(c->name);
	free(c->service);
}

static int record(struct ks_kube_store *s, enum ks_kube_kind kind, const char *key,
		  const char *service)
{
	struct ks_kube_change *c;
	size_t nslen = strcspn(key, "/");

	if (s->nr_changes == s->cap_changes) {
		size_t cap = s->cap_changes ? 2 * s->cap_changes : 64;

		c = realloc(s->changes, cap * sizeof(*c));
		if (!c)
			return -ENOMEM;
		s->changes = c;
		s->cap_changes = cap;
	}
	c = &s->changes[s->nr_changes];
	c->kind = kind;
	c->ns = strndup(key, nslen);
	c->name = strdup(key + nslen + 1);
	c->service = service ? strdup(service) : NULL;
	if (!c->ns || !c->name || (service && !c->service)) {
		clear_change(c);
		return -ENOMEM;
	}
	s->nr_changes++;
	return 0;
}

static bool same_version(struct json_object *a, struct json_object *b)
{
	const char *ra = meta_str(a, "resourceVersion"), *rb = meta_str(b, "resourceVersion");

	return ra && rb && !strcmp(ra, rb);
}

/* Stores obj under key unless the stored one has its resourceVersion;
 * the number of changes recorded, or -errno. */
static int put_obj(struct ks_kube_store *s, enum ks_kube_kind kind, const char *key,
		   struct json_object *obj)
{
	struct json_object *old = ks_index_get(&s->objs[kind], key, strlen(key));
	const char *was, *now;
	int ret, n = 0;

	if (old && same_version(old, obj))
		return 0;
	/* often half of an object, and nothing of kshift reads it */
	if (field(obj, "metadata"))
		json_object_object_del(field(obj, "metadata"), "managedFields");
	ret = ks_index_put(&s->objs[kind], key, strlen(key), json_object_get(obj));
	if (ret) {
		json_object_put(obj);
		return ret;
	}
	if (kind == KS_KUBE_ENDPOINTSLICE) {
		was = old ? slice_service(old) : NULL;
		now = slice_service(obj);
		if (was)
			set_del(s, key, was, old);
		if (now && (ret = set_add(s, key, now, obj)))
			goto out;
		/* a slice that moved is news for the Service it left, too */
		if (was && (!now || strcmp(was, now))) {
			if ((ret = record(s, kind, key, was)))
				goto out;
			n++;
		}
		ret = record(s, kind, key, now);
	} else {
		ret = record(s, kind, key, NULL);
	}
	if (!ret)
		n++;
out:
	json_object_put(old);
	return ret ? ret : n;
}

static int del_obj(struct ks_kube_store *s, enum ks_kube_kind kind, const char *key)
{
	struct json_object *old = ks_index_del(&s->objs[kind], key, strlen(key));
	const char *was = NULL;
	int ret;

	if (!old)
		return 0;
	if (kind == KS_KUBE_ENDPOINTSLICE && (was = slice_service(old)))
		set_del(s, key, was, old);
	ret = record(s, kind, key, was);
	json_object_put(old);
	return ret ? ret : 1;
}

struct stale {
	const struct ks_index *seen;
	char **keys;
	size_t n, cap;
};

static int find_stale(const void *key, size_t len, void *value, void *arg)
{
	struct stale *st = arg;

	(void)value;
	if (ks_index_get(st->seen, key, len))
		return 0;
	if (st->n == st->cap) {
		size_t cap = st->cap ? 2 * st->cap : 16;
		char **k = realloc(st->keys, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		st->keys = k;
		st->cap = cap;
	}
	st->keys[st->n] = strndup(key, len);
	return st->keys[st->n++] ? 0 : -ENOMEM;
}

/* ks_kube_store_list, returning the number of changes recorded. */
static int store_list(struct ks_kube_store *s, enum ks_kube_kind kind, struct json_object *items)
{
	struct ks_index seen = {};
	struct stale st = { .seen = &seen };
	char key[KEY_LEN];
	size_t i, n;
	int ret = 0, changes = 0;

	if (!json_object_is_type(items, json_type_array))
		return -EPROTO;
	n = json_object_array_length(items);
	/* check everything before touching the store, so a bad list changes
	 * nothing */
	for (i = 0; i < n; i++) {
		ret = key_of(json_object_array_get_idx(items, i), key);
		if (!ret)
			ret = ks_index_put(&seen, key, strlen(key), (void *)1);
		if (ret) {
			ks_index_destroy(&seen);
			return ret;
		}
	}
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < n && ret >= 0; i++) {
		struct json_object *o = json_object_array_get_idx(items, i);

		key_of(o, key);
		ret = put_obj(s, kind, key, o);
		changes += ret > 0 ? ret : 0;
	}
	if (ret >= 0)
		ret = ks_index_foreach(&s->objs[kind], find_stale, &st);
	for (i = 0; i < st.n; i++) {
		int r = ret < 0 ? 0 : del_obj(s, kind, st.keys[i]);

		ret = r < 0 ? r : ret;
		changes += r > 0 ? r : 0;
		free(st.keys[i]);
	}
	pthread_mutex_unlock(&s->lock);
	free(st.keys);
	ks_index_destroy(&seen);
	return ret < 0 ? ret : changes;
}

int ks_kube_store_list(struct ks_kube_store *s, enum ks_kube_kind kind, struct json_object *items)
{
	int ret = store_list(s, kind, items);

	return ret < 0 ? ret : 0;
}

__attribute__((format(printf, 3, 4))) static int why(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf) {
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

/* One whole JSON document, or NULL with *err saying why. json-c's default
 * depth of 32 is less than a deep managedFields entry can need. */
static struct json_object *parse_json(const char *text, const char **err)
{
	struct json_tokener *tok = json_tokener_new_ex(256);
	struct json_object *o;
	size_t len = strlen(text);

	*err = "out of memory";
	if (!tok)
		return NULL;
	o = json_tokener_parse_ex(tok, text, len);
	if (!o)
		*err = json_tokener_get_error(tok) == json_tokener_continue
			       ? "truncated"
			       : json_tokener_error_desc(json_tokener_get_error(tok));
	else if (text[json_tokener_get_parse_end(tok) +
		      strspn(text + json_tokener_get_parse_end(tok), " \t\r\n")]) {
		*err = "text after the JSON";
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

/* ks_kube_store_event, returning the number of changes recorded and
 * saying in reason (may be NULL) why a line was refused. */
static int store_event(struct ks_kube_store *s, enum ks_kube_kind kind, const char *line,
		       char **resource_version, char *reason, size_t reason_len)
{
	const char *type, *rv, *jerr;
	struct json_object *ev = parse_json(line, &jerr), *obj;
	char key[KEY_LEN];
	int ret = 0;

	if (!ev)
		return why(reason, reason_len, "watch event: %s", jerr);
	type = str_field(ev, "type");
	obj = field(ev, "object");
	if (!type || !json_object_is_type(obj, json_type_object)) {
		ret = why(reason, reason_len, "watch event: no type or object");
		goto out;
	}
	if (!strcmp(type, "ERROR")) {
		struct json_object *code = field(obj, "code");
		const char *msg = str_field(obj, "message");

		if (code && json_object_get_int(code) == 410)
			ret = -ESTALE;
		else
			ret = why(reason, reason_len, "ERROR event: %d: %s",
				  code ? json_object_get_int(code) : 0, msg ? msg : "no message");
		goto out;
	}
	if (strcmp(type, "BOOKMARK")) {
		if (key_of(obj, key)) {
			ret = why(reason, reason_len, "%s event: object without metadata.name",
				  type);
			goto out;
		}
		if (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
			pthread_mutex_lock(&s->lock);
			ret = put_obj(s, kind, key, obj);
			pthread_mutex_unlock(&s->lock);
		} else if (!strcmp(type, "DELETED")) {
			pthread_mutex_lock(&s->lock);
			ret = del_obj(s, kind, key);
			pthread_mutex_unlock(&s->lock);
		} else {
			ret = why(reason, reason_len, "watch event: unknown type %s", type);
		}
		if (ret < 0)
			goto out;
	}
	rv = meta_str(obj, "resourceVersion");
	if (resource_version && rv) {
		char *copy = strdup(rv);

		if (!copy) {
			ret = -ENOMEM;
			goto out;
		}
		free(*resource_version);
		*resource_version = copy;
	}
out:
	json_object_put(ev);
	return ret;
}

int ks_kube_store_event(struct ks_kube_store *s, enum ks_kube_kind kind, const char *line,
			char **resource_version)
{
	int ret = store_event(s, kind, line, resource_version, NULL, 0);

	return ret < 0 ? ret : 0;
}

void ks_kube_store_drain(struct ks_kube_store *s, struct ks_kube_change **changes, size_t *n)
{
	*changes = s->changes;
	*n = s->nr_changes;
	s->changes = NULL;
	s->nr_changes = s->cap_changes = 0;
}

void ks_kube_changes_free(struct ks_kube_change *changes, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		clear_change(&changes[i]);
	free(changes);
}

/* ---- the watcher: one thread per kind ---- */

struct kind_watch {
	struct ks_kube_watcher *w;
	enum ks_kube_kind kind;
	pthread_t thread;
	bool started;
	char *path; /* the collection, maybe with a labelSelector query */
	char *rv;   /* where the watch resumes; NULL: list first */
	/* the stream's bytes not yet split into lines */
	char *buf;
	size_t len, cap;
	unsigned int events;   /* applied from the current stream */
	unsigned int failures; /* in a row, for the backoff */
	char reason[256];      /* why the stream's last line was refused */
	char last_warn[512];   /* so a retry storm logs one line */
	uint64_t rng;
};

struct ks_kube_watcher {
	const struct ks_kube_conf *conf;
	struct ks_kube_store *store;
	int notify_fd;
	atomic_bool stop;
	pthread_mutex_t mu; /* with cv, so a backoff sleep ends at once on stop */
	pthread_cond_t cv;
	struct kind_watch kinds[KS_KUBE_NR_KINDS];
};

static bool stopping(void *arg)
{
	struct kind_watch *kw = arg;

	return atomic_load(&kw->w->stop);
}

static uint64_t next_rand(struct kind_watch *kw)
{
	/* xorshift64: enough to spread retries and time-outs */
	kw->rng ^= kw->rng << 13;
	kw->rng ^= kw->rng >> 7;
	kw->rng ^= kw->rng << 17;
	return kw->rng;
}

static void notify(struct kind_watch *kw)
{
	uint64_t one = 1;

	if (kw->w->notify_fd >= 0 && write(kw->w->notify_fd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		pr_warn("kube: %s: notify: %s\n", kind_names[kw->kind], strerror(errno));
}

/* A failure is logged when it differs from the last one, so a server that is
 * down for an hour gives one warning, not one per retry. */
static void warn_once(struct kind_watch *kw, const char *msg)
{
	if (strcmp(kw->last_warn, msg)) {
		pr_warn("kube: %s: %s (retrying)\n", kind_names[kw->kind], msg);
		snprintf(kw->last_warn, sizeof(kw->last_warn), "%s", msg);
	} else {
		pr_debug("kube: %s: %s (still)\n", kind_names[kw->kind], msg);
	}
}

static void succeeded(struct kind_watch *kw, const char *what)
{
	if (kw->last_warn[0])
		pr_info("kube: %s: %s again\n", kind_names[kw->kind], what);
	kw->last_warn[0] = '\0';
	kw->failures = 0;
}

/* Full jitter: a random wait up to a ceiling that doubles with each failure
 * in a row, so a restarted API server is not hit by every node at once. */
static void backoff(struct kind_watch *kw)
{
	struct ks_kube_watcher *w = kw->w;
	unsigned int shift = kw->failures < 8 ? kw->failures : 8;
	uint64_t cap = (uint64_t)BACKOFF_MIN_MS << shift, ms;
	struct timespec until;

	if (cap > BACKOFF_MAX_MS)
		cap = BACKOFF_MAX_MS;
	ms = next_rand(kw) % (cap + 1);
	kw->failures++;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->mu);
	while (!atomic_load(&w->stop) &&
	       pthread_cond_timedwait(&w->cv, &w->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&w->mu);
}

/* A list page arrives whole into body; only a watch is split into lines. */
struct page {
	struct kind_watch *kw;
	struct ks_kube_resp body;
};

static int collect(void *arg, const char *data, size_t len)
{
	struct ks_kube_resp *r = &((struct page *)arg)->body;
	char *b;

	if (r->len + len > MAX_LINE)
		return -EFBIG;
	b = realloc(r->body, r->len + len + 1);
	if (!b)
		return -ENOMEM;
	memcpy(b + r->len, data, len);
	r->body = b;
	r->len += len;
	b[r->len] = '\0';
	return 0;
}

static bool stop_page(void *arg)
{
	return stopping(((struct page *)arg)->kw);
}

/* Percent-encodes a continue token for a query string. */
static char *escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(s) + 1), *p = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		unsigned char c = *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~') {
			*p++ = c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

/* Fetches one page, adding its objects to items; *cont (NULL on the last
 * page) and *rv from its metadata. */
static int list_page(struct kind_watch *kw, struct json_object *items, char **cont, char **rv,
		     char *err, size_t errlen)
{
	struct page pg = { .kw = kw };
	struct ks_kube_resp resp;
	struct json_object *list = NULL, *arr;
	char *path = NULL, *esc = *cont ? escape(*cont) : NULL;
	const char *c, *v, *jerr = "empty";
	size_t i, n;
	int ret;

	if ((*cont && !esc) ||
	    asprintf(&path, "%s%climit=%d%s%s", kw->path, strchr(kw->path, '?') ? '&' : '?',
		     LIST_LIMIT, esc ? "&continue=" : "", esc ? esc : "") < 0) {
		free(esc);
		snprintf(err, errlen, "list: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	free(esc);
	ret = ks_kube_stream(kw->w->conf, path, LIST_TIMEOUT_MS, collect, stop_page, &pg, &resp,
			     err, errlen);
	free(path);
	if (ret)
		goto out;
	if (resp.status != 200) {
		snprintf(err, errlen, "list: HTTP %ld: %s", resp.status,
			 ks_kube_status_message(&resp));
		ret = resp.status == 410 ? -ESTALE : -EIO;
		goto out;
	}
	ret = -EPROTO;
	list = pg.body.body ? parse_json(pg.body.body, &jerr) : NULL;
	arr = field(list, "items");
	if (!list) {
		snprintf(err, errlen, "list: the answer is not JSON: %s", jerr);
		goto out;
	}
	if (arr && !json_object_is_type(arr, json_type_array)) {
		snprintf(err, errlen, "list: the answer's items are not a list");
		goto out;
	}
	/* "items": null is how some servers say none */
	n = arr ? json_object_array_length(arr) : 0;
	for (i = 0; i < n; i++)
		if (json_object_array_add(items,
					  json_object_get(json_object_array_get_idx(arr, i)))) {
			snprintf(err, errlen, "list: %s", strerror(ENOMEM));
			ret = -ENOMEM;
			goto out;
		}
	c = str_field(field(list, "metadata"), "continue");
	v = str_field(field(list, "metadata"), "resourceVersion");
	if (!v || !*v) {
		snprintf(err, errlen, "list: no metadata.resourceVersion");
		goto out;
	}
	free(*cont);
	free(*rv);
	*cont = c && *c ? strdup(c) : NULL;
	*rv = strdup(v);
	ret = (c && *c && !*cont) || !*rv ? -ENOMEM : 0;
out:
	json_object_put(list);
	ks_kube_resp_free(&pg.body);
	ks_kube_resp_free(&resp);
	return ret;
}

/* Every page first, then one store update, so the daemon never sees half a
 * relist (objects of later pages missing, as if deleted). */
static int list(struct kind_watch *kw, char *err, size_t errlen)
{
	struct ks_kube_store *s = kw->w->store;
	struct json_object *items = json_object_new_array();
	char *cont = NULL, *rv = NULL;
	int ret, pages = 0;

	if (!items)
		return -ENOMEM;
	do {
		ret = list_page(kw, items, &cont, &rv, err, errlen);
		pages++;
	} while (!ret && cont);
	if (!ret) {
		ret = store_list(s, kw->kind, items);
		if (ret < 0)
			snprintf(err, errlen, "list: %s", strerror(-ret));
	}
	if (ret >= 0) {
		bool first;

		pthread_mutex_lock(&s->lock);
		first = !s->synced[kw->kind];
		s->synced[kw->kind] = true;
		pthread_mutex_unlock(&s->lock);
		/* the first list wakes the daemon even when it found nothing
		 * (no Lease yet, say): being synced is news of its own */
		if (ret > 0 || first)
			notify(kw);
		pr_info("kube: %s: listed %zu in %d page%s at resourceVersion %s, %d changed\n",
			kind_names[kw->kind], json_object_array_length(items), pages,
			pages == 1 ? "" : "s", rv, ret);
		free(kw->rv);
		kw->rv = rv;
		rv = NULL;
		ret = 0;
	}
	free(cont);
	free(rv);
	json_object_put(items);
	return ret;
}

/* The watch body is one JSON event per line; curl hands it over in pieces
 * that need not end at a line. */
static int on_stream(void *arg, const char *data, size_t len)
{
	struct kind_watch *kw = arg;
	char *nl, *line, *b;
	int ret;

	if (kw->len + len > MAX_LINE)
		return -EFBIG;
	if (kw->len + len + 1 > kw->cap) {
		size_t cap = (kw->len + len + 1) * 2;

		b = realloc(kw->buf, cap);
		if (!b)
			return -ENOMEM;
		kw->buf = b;
		kw->cap = cap;
	}
	memcpy(kw->buf + kw->len, data, len);
	kw->len += len;
	kw->buf[kw->len] = '\0';
	line = kw->buf;
	while ((nl = memchr(line, '\n', kw->buf + kw->len - line))) {
		*nl = '\0';
		if (!kw->events)
			succeeded(kw, "watching");
		if (line[strspn(line, " \t\r")]) {
			ret = store_event(kw->w->store, kw->kind, line, &kw->rv, kw->reason,
					  sizeof(kw->reason));
			if (ret < 0)
				return ret;
			kw->events++;
			if (ret > 0)
				notify(kw);
		}
		line = nl + 1;
	}
	kw->len -= line - kw->buf;
	memmove(kw->buf, line, kw->len);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One watch stream from kw->rv until the server ends it: 0, -ESTALE to
 * relist, or another -errno to back off and resume. */
static int watch(struct kind_watch *kw, char *err, size_t errlen)
{
	unsigned int secs = WATCH_MIN_S + next_rand(kw) % (WATCH_MAX_S - WATCH_MIN_S + 1);
	struct ks_kube_resp resp;
	uint64_t start = now_ms();
	char *path;
	int ret;

	if (asprintf(&path,
		     "%s%cwatch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%u",
		     kw->path, strchr(kw->path, '?') ? '&' : '?', kw->rv, secs) < 0) {
		snprintf(err, errlen, "watch: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	kw->len = 0;
	kw->events = 0;
	kw->reason[0] = '\0';
	ret = ks_kube_stream(kw->w->conf, path, secs * 1000L + WATCH_SLACK_MS, on_stream, stopping,
			     kw, &resp, err, errlen);
	free(path);
	if (ret == -EPROTO)
		snprintf(err, errlen, "watch: %s", kw->reason);
	/* A stream that was up and then broke (a proxy or the server going
	 * away) is resumed at once, as a stream that ended is: the events
	 * since kw->rv are replayed. Only a stream that breaks at once again
	 * and again counts as a failure. */
	if (ret && ret != -ECANCELED && ret != -EPROTO && ret != -ESTALE && resp.status == 200 &&
	    (kw->events || now_ms() - start >= 1000)) {
		pr_info("kube: %s: watch stream broke (%s), resuming\n", kind_names[kw->kind], err);
		return 0;
	}
	if (ret)
		return ret;
	if (resp.status == 410) {
		ret = -ESTALE;
	} else if (resp.status != 200) {
		snprintf(err, errlen, "watch: HTTP %ld: %s", resp.status,
			 ks_kube_status_message(&resp));
		ret = -EIO;
	} else if (!kw->events && now_ms() - start < 1000) {
		/* a server that closes every watch at once must not make us
		 * spin: count it as a failure */
		snprintf(err, errlen, "watch: the server ended the stream at once");
		ret = -ECONNRESET;
	} else {
		succeeded(kw, "watching");
	}
	ks_kube_resp_free(&resp);
	return ret;
}

static void *run(void *arg)
{
	struct kind_watch *kw = arg;
	const char *name = kind_names[kw->kind];
	char err[512];
	int ret;

	while (!stopping(kw)) {
		err[0] = '\0';
		if (!kw->rv) {
			ret = list(kw, err, sizeof(err));
			if (!ret)
				succeeded(kw, "listing");
		} else {
			ret = watch(kw, err, sizeof(err));
		}
		if (ret == -ECANCELED || stopping(kw))
			break;
		if (ret == -ESTALE && kw->rv) {
			pr_info("kube: %s: resourceVersion %s is too old, relisting\n", name,
				kw->rv);
			free(kw->rv);
			kw->rv = NULL;
			/* a server that says 410 to the version its own list
			 * just gave must not make us relist in a loop */
			if (!kw->events)
				backoff(kw);
			continue;
		}
		if (ret) {
			warn_once(kw, err[0] ? err : strerror(-ret));
			backoff(kw);
		}
	}
	return NULL;
}

static int kind_path(struct ks_kube_watcher *w, enum ks_kube_kind kind, char **path)
{
	int n = -1;

	switch (kind) {
	case KS_KUBE_TRAFFICSHIFT:
		n = asprintf(path, "/apis/%s/%s/%s", KS_KUBE_GROUP, KS_KUBE_VERSION,
			     KS_KUBE_PLURAL);
		break;
	case KS_KUBE_SERVICE:
		n = asprintf(path, "/api/v1/services");
		break;
	case KS_KUBE_ENDPOINTSLICE:
		n = asprintf(path, "/apis/discovery.k8s.io/v1/endpointslices");
		break;
	case KS_KUBE_LEASE:
		n = asprintf(path,
			     "/apis/coordination.k8s.io/v1/namespaces/%s/leases"
			     "?labelSelector=app.kubernetes.io%%2Fname%%3Dkshift",
			     w->store->lease_namespace);
		break;
	default:
		break;
	}
	if (n < 0)
		*path = NULL;
	return n < 0 ? -ENOMEM : 0;
}

int ks_kube_watcher_start(struct ks_kube_watcher **wp, const struct ks_kube_conf *conf,
			  struct ks_kube_store *store, int notify_fd)
{
	struct ks_kube_watcher *w = calloc(1, sizeof(*w));
	pthread_condattr_t ca;
	sigset_t all, old;
	struct timespec ts;
	int k, ret = 0;

	*wp = NULL;
	if (!w)
		return -ENOMEM;
	w->conf = conf;
	w->store = store;
	w->notify_fd = notify_fd;
	atomic_init(&w->stop, false);
	pthread_mutex_init(&w->mu, NULL);
	/* the backoff sleeps on a monotonic deadline: the wall clock may jump */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	clock_gettime(CLOCK_REALTIME, &ts);

	/* the threads take no signals: they stay with the daemon's loop */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (k = 0; k < KS_KUBE_NR_KINDS && !ret; k++) {
		struct kind_watch *kw = &w->kinds[k];

		kw->w = w;
		kw->kind = k;
		kw->rng = ((uint64_t)ts.tv_nsec << 20) ^ ts.tv_sec ^
			  (0x9e3779b97f4a7c15ull * (k + 1));
		if (k == KS_KUBE_LEASE && !store->lease_namespace)
			continue;
		ret = kind_path(w, k, &kw->path);
		if (!ret)
			ret = -pthread_create(&kw->thread, NULL, run, kw);
		kw->started = !ret;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		pr_warn("kube: starting the %s watcher: %s\n", kind_names[k - 1], strerror(-ret));
		ks_kube_watcher_stop(w);
		return ret;
	}
	*wp = w;
	return 0;
}

void ks_kube_watcher_stop(struct ks_kube_watcher *w)
{
	int k;

	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	atomic_store(&w->stop, true);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (k = 0; k < KS_KUBE_NR_KINDS; k++) {
		struct kind_watch *kw = &w->kinds[k];

		if (kw->started)
			pthread_join(kw->thread, NULL);
		free(kw->path);
		free(kw->rv);
		free(kw->buf);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
