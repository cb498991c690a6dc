// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshiftctl --kubernetes (and kubectl-kshift): the commands on the
 * TrafficShift custom resource. See kube_ctl.h.
 *
 * Every change is a read, a local computation and a write carrying the
 * resourceVersion that was read, so two clients changing one shift at once
 * never lose each other's change: the loser gets 409 Conflict, reads again
 * and recomputes. A merge patch replaces lists whole, so a weight change
 * sends every backend, unchanged but for its weight.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "kube.h"
#include "kube_ctl.h"
#include "shift.h"

#define API_BASE     "/apis/" KS_KUBE_GROUP "/" KS_KUBE_VERSION
#define PATH_MAX_LEN 1024
#define MSG_LEN	     1024
/* Bounds on one document's conversion, against alias bombs. */
#define YAML_MAX_NODES (1 << 20)
#define YAML_MAX_DEPTH 64
#ifndef LIST_LIMIT
#define LIST_LIMIT 500 /* items a page; kubectl asks for as many */
#endif

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* ---- pure helpers ---- */

static struct json_object *get_path(struct json_object *o, const char *a, const char *b,
				    const char *c)
{
	const char *keys[] = { a, b, c };
	size_t i;

	for (i = 0; i < 3 && keys[i] && o; i++)
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, keys[i], &o))
			return NULL;
	return o;
}

static const char *get_str(struct json_object *o, const char *a, const char *b, const char *c)
{
	struct json_object *v = get_path(o, a, b, c);

	return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* An integer field, or def when absent or not an integer. */
static int64_t get_int(struct json_object *o, const char *a, const char *b, const char *c,
		       int64_t def)
{
	struct json_object *v = get_path(o, a, b, c);

	return json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : def;
}

static const char *backend_name(struct json_object *b)
{
	return get_str(b, "name", NULL, NULL);
}

int ks_kctl_weights(struct json_object *backends, const char *cmd, const char *const *names,
		    const uint32_t *weights, size_t n, const char *target, uint32_t *out, char *err,
		    size_t errlen)
{
	size_t i, j,
		nr = json_object_is_type(backends, json_type_array)
			     ? json_object_array_length(backends)
			     : 0;
	uint64_t sum = 0;
	int t = -1;

	if (!nr || nr > KS_MAX_BACKENDS) {
		snprintf(err, errlen, "spec.backends: %s", nr ? "too many" : "none");
		return -EINVAL;
	}
	for (i = 0; i < nr; i++) {
		struct json_object *b = json_object_array_get_idx(backends, i);
		int64_t w = get_int(b, "weight", NULL, NULL,
				    get_path(b, "weight", NULL, NULL) ? -1 : 1);

		if (!backend_name(b) || w < 0 || w > KS_WEIGHT_MAX) {
			snprintf(err, errlen, "spec.backends[%zu]: %s", i,
				 backend_name(b) ? "weight: not an integer 0..1000000"
						 : "name: missing");
			return -EINVAL;
		}
		out[i] = w;
		sum += w;
	}
	if (!strcmp(cmd, "set")) {
		for (j = 0; j < n; j++) {
			for (i = 0; i < nr; i++)
				if (!strcmp(backend_name(json_object_array_get_idx(backends, i)),
					    names[j]))
					break;
			if (i == nr) {
				snprintf(err, errlen, "%s: no such backend", names[j]);
				return -ENOENT;
			}
			if (weights[j] > KS_WEIGHT_MAX) {
				snprintf(err, errlen, "%s: weight %u: must be 0..%u", names[j],
					 weights[j], KS_WEIGHT_MAX);
				return -EINVAL;
			}
			out[i] = weights[j];
		}
		return 0;
	}
	/* all weight to one backend: the sum of the weights now, so 90/10
	 * becomes 0/100, as kshiftd does for a local shift */
	if (!strcmp(cmd, "rollback"))
		target = backend_name(json_object_array_get_idx(backends, 0));
	else if (!target && !strcmp(cmd, "promote"))
		target = backend_name(json_object_array_get_idx(backends, nr - 1));
	if (!target) {
		snprintf(err, errlen, "%s: a backend is required", cmd);
		return -EINVAL;
	}
	for (i = 0; i < nr; i++)
		if (!strcmp(backend_name(json_object_array_get_idx(backends, i)), target))
			t = i;
	if (t < 0) {
		snprintf(err, errlen, "%s: no such backend", target);
		return -ENOENT;
	}
	sum = sum > KS_WEIGHT_MAX ? KS_WEIGHT_MAX : sum ? sum : 1;
	for (i = 0; i < nr; i++)
		out[i] = (int)i == t ? sum : 0;
	return 0;
}

/* The condition of type in ts's status, or NULL. */
static struct json_object *condition(struct json_object *ts, const char *type)
{
	struct json_object *conds = get_path(ts, "status", "conditions", NULL);
	size_t i;

	if (!json_object_is_type(conds, json_type_array))
		return NULL;
	for (i = 0; i < json_object_array_length(conds); i++) {
		struct json_object *c = json_object_array_get_idx(conds, i);
		const char *t = get_str(c, "type", NULL, NULL);

		if (t && !strcmp(t, type))
			return c;
	}
	return NULL;
}

/* The generation a condition speaks for: its own observedGeneration, else
 * the status's. */
static int64_t cond_generation(struct json_object *ts, struct json_object *c)
{
	return get_int(c, "observedGeneration", NULL, NULL,
		       get_int(ts, "status", "observedGeneration", NULL, -1));
}

static bool cond_is(struct json_object *c, const char *status)
{
	const char *s = get_str(c, "status", NULL, NULL);

	return s && !strcmp(s, status);
}

bool ks_kctl_programmed(struct json_object *ts, int64_t gen, int64_t *programmed, int64_t *total)
{
	int64_t p = get_int(ts, "status", "nodes", "programmed", -1);
	int64_t t = get_int(ts, "status", "nodes", "total", -1);
	struct json_object *c = condition(ts, "Programmed");

	if (programmed)
		*programmed = p;
	if (total)
		*total = t;
	return get_int(ts, "status", "observedGeneration", NULL, -1) >= gen && t > 0 && p == t &&
	       c && cond_is(c, "True") && cond_generation(ts, c) >= gen;
}

int ks_duration_parse(const char *s, long *ms)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	double total = 0;
	char num[32];
	size_t i, n, len;
	bool bare;

	if (!s || !*s)
		return -EINVAL;
	/* only digits and one dot make a number: no sign, exponent, "inf" */
	bare = strspn(s, "0123456789.") == strlen(s);
	while (*s) {
		n = strspn(s, "0123456789.");
		if (!n || n >= sizeof(num) || memchr(s, '.', n) != memrchr(s, '.', n) ||
		    (n == 1 && *s == '.'))
			return -EINVAL;
		memcpy(num, s, n);
		num[n] = '\0';
		s += n;
		if (bare) { /* a bare number: seconds */
			total = strtod(num, NULL) * 1000;
			break;
		}
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			len = strlen(units[i].unit);
			if (!strncmp(s, units[i].unit, len))
				break;
		}
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		total += strtod(num, NULL) * units[i].ms;
		s += len;
	}
	if (total < 1 || total > 1e12)
		return -EINVAL;
	*ms = total + 0.5;
	return 0;
}

/* ---- YAML to JSON ---- */

struct conv {
	yaml_document_t *doc;
	size_t nodes;
	bool failed; /* json-c's null is NULL, so NULL cannot say "failed" */
	char *err;
	size_t errlen;
};

static bool is_plain(const yaml_node_t *n, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp((const char *)n->data.scalar.value, *words))
			return true;
	return false;
}

static struct json_object *scalar_json(const yaml_node_t *n)
{
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE", NULL };
	const char *v = (const char *)n->data.scalar.value;
	long long i;
	double d;
	char *end;

	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return json_object_new_string(v);
	if (is_plain(n, trues))
		return json_object_new_boolean(1);
	if (is_plain(n, falses))
		return json_object_new_boolean(0);
	/* YAML 1.2 core: [-+]?[0-9]+ is an integer; floats with digits */
	if ((v[0] >= '0' && v[0] <= '9') ||
	    ((v[0] == '-' || v[0] == '+') && v[1] >= '0' && v[1] <= '9')) {
		errno = 0;
		i = strtoll(v, &end, 10);
		if (!*end && !errno)
			return json_object_new_int64(i);
		if (strspn(v + 1, "0123456789.eE+-") == strlen(v + 1)) {
			d = strtod(v, &end);
			if (!*end)
				return json_object_new_double(d);
		}
	}
	return json_object_new_string(v);
}

/* Kubernetes reads a null value as an unset field; so do ks_manifest_parse
 * and we. */
static bool is_null_scalar(const yaml_node_t *n)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL", NULL };

	return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       is_plain(n, nulls);
}

/* n as JSON; on failure c->failed is set, and err unless out of memory.
 * json-c's JSON null is NULL, so NULL alone cannot say "failed". */
static struct json_object *node_json(struct conv *c, yaml_node_t *n, int depth)
{
	struct json_object *o = NULL, *v;
	yaml_node_item_t *it;
	yaml_node_pair_t *p;
	yaml_node_t *k;

	if (!n || c->failed)
		return NULL;
	if (++c->nodes > YAML_MAX_NODES || depth > YAML_MAX_DEPTH) {
		snprintf(c->err, c->errlen, "line %zu: document too large or too deep",
			 n->start_mark.line + 1);
		c->failed = true;
		return NULL;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		if (is_null_scalar(n))
			return NULL;
		o = scalar_json(n);
		break;
	case YAML_SEQUENCE_NODE:
		o = json_object_new_array();
		for (it = n->data.sequence.items.start;
		     o && !c->failed && it < n->data.sequence.items.top; it++) {
			v = node_json(c, yaml_document_get_node(c->doc, *it), depth + 1);
			if (c->failed || json_object_array_add(o, v)) {
				json_object_put(v);
				c->failed = true;
			}
		}
		break;
	case YAML_MAPPING_NODE:
		o = json_object_new_object();
		for (p = n->data.mapping.pairs.start;
		     o && !c->failed && p < n->data.mapping.pairs.top; p++) {
			k = yaml_document_get_node(c->doc, p->key);
			if (!k || k->type != YAML_SCALAR_NODE) {
				snprintf(c->err, c->errlen, "line %zu: a key that is not a string",
					 n->start_mark.line + 1);
				c->failed = true;
				break;
			}
			v = node_json(c, yaml_document_get_node(c->doc, p->value), depth + 1);
			if (c->failed ||
			    json_object_object_add(o, (const char *)k->data.scalar.value, v)) {
				json_object_put(v);
				c->failed = true;
			}
		}
		break;
	default:
		return NULL;
	}
	if (!o)
		c->failed = true;
	if (c->failed) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int ks_yaml_to_json(const char *text, size_t len, struct json_object ***docs, size_t *nr, char *err,
		    size_t errlen)
{
	struct json_object **arr = NULL, **bigger, *o;
	struct conv c = { .err = err, .errlen = errlen };
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	size_t n = 0, i;
	int ret = 0;

	*docs = NULL;
	*nr = 0;
	snprintf(err, errlen, "out of memory");
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_load(&parser, &doc)) {
			snprintf(err, errlen, "line %zu: %s", parser.problem_mark.line + 1,
				 parser.problem ?: "out of memory");
			ret = -EINVAL;
			break;
		}
		root = yaml_document_get_root_node(&doc);
		if (!root) {
			yaml_document_delete(&doc);
			break;
		}
		if (is_null_scalar(root)) { /* an empty document */
			yaml_document_delete(&doc);
			continue;
		}
		c.doc = &doc;
		c.nodes = 0;
		c.failed = false;
		o = node_json(&c, root, 0);
		yaml_document_delete(&doc);
		if (c.failed) {
			ret = -EINVAL;
			break;
		}
		bigger = realloc(arr, (n + 1) * sizeof(*arr));
		if (!bigger) {
			json_object_put(o);
			ret = -ENOMEM;
			break;
		}
		arr = bigger;
		arr[n++] = o;
	}
	yaml_parser_delete(&parser);
	if (ret) {
		for (i = 0; i < n; i++)
			json_object_put(arr[i]);
		free(arr);
		return ret;
	}
	*docs = arr;
	*nr = n;
	return 0;
}

static void print_yaml(FILE *f, struct json_object *v, int indent, bool in_list)
{
	size_t i, n;
	bool first = true;

	switch (json_object_get_type(v)) {
	case json_type_object:
		if (!json_object_object_length(v)) {
			fprintf(f, " {}\n");
			break;
		}
		if (!in_list)
			fprintf(f, "\n");
		json_object_object_foreach(v, key, val) {
			fprintf(f, "%*s%s:", (in_list && first) ? 0 : indent, "", key);
			first = false;
			print_yaml(f, val, indent + 2, false);
		}
		break;
	case json_type_array:
		n = json_object_array_length(v);
		if (!n) {
			fprintf(f, " []\n");
			break;
		}
		fprintf(f, "\n");
		for (i = 0; i < n; i++) {
			struct json_object *item = json_object_array_get_idx(v, i);

			fprintf(f, "%*s- ", indent, "");
			print_yaml(f, item,
				   json_object_is_type(item, json_type_object) ? indent + 2 : 0,
				   true);
		}
		break;
	case json_type_string:
		fprintf(f, "%s%s\n", in_list ? "" : " ",
			json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
		break;
	default:
		fprintf(f, "%s%s\n", in_list ? "" : " ", json_object_to_json_string(v));
		break;
	}
}

void ks_print_yaml(FILE *f, struct json_object *v)
{
	print_yaml(f, v, 0, true);
}

/* ---- talking to the API server ---- */

struct kctx {
	const struct ks_kctl_opts *o;
	struct ks_kube_conf conf;
	const char *ns;	    /* -n, else the context's namespace */
	long long deadline; /* CLOCK_MONOTONIC ms: the whole command's */
	long timeout_ms;    /* what --timeout (or its default) allows */
	bool quiet;	    /* api() leaves reporting a missing answer to its caller */
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void vsay(const char *fmt, va_list ap)
{
	fputs("kshiftctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return EXIT_FAILED;
}

__attribute__((format(printf, 2, 3))) static int usage_error(struct kctx *k, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	if (k->o->usage)
		k->o->usage(stderr);
	return EXIT_USAGE;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Backoff before retry n (0-based) after a conflict: 50 ms doubling, with
 * jitter so that two clients that collided do not collide again. */
static void backoff(int n)
{
	long ms = 50L << n;

	sleep_ms(ms / 2 + rand() % (ms / 2 + 1));
}

static const char *shift_path(char *buf, const char *ns, const char *name)
{
	if (name)
		snprintf(buf, PATH_MAX_LEN, API_BASE "/namespaces/%s/" KS_KUBE_PLURAL "/%s", ns,
			 name);
	else if (ns)
		snprintf(buf, PATH_MAX_LEN, API_BASE "/namespaces/%s/" KS_KUBE_PLURAL, ns);
	else
		snprintf(buf, PATH_MAX_LEN, API_BASE "/" KS_KUBE_PLURAL);
	return buf;
}

/* What one request gave: the status, the body parsed (NULL when not JSON)
 * and, for errors, the API's message. */
struct answer {
	long status;
	struct json_object *obj;
	char msg[MSG_LEN];
};

static void answer_free(struct answer *a)
{
	json_object_put(a->obj);
	a->obj = NULL;
}

/*
 * One request within the command's deadline. 0 when the API server
 * answered (whatever the status); EXIT_FAILED, with a message naming the
 * server, when it did not.
 */
static int api(struct kctx *k, const char *method, const char *path, const char *ctype,
	       struct json_object *body, struct answer *a)
{
	struct ks_kube_resp resp = { 0 };
	long left = k->deadline - now_ms();
	char err[MSG_LEN] = "";
	const char *msg;
	int ret;

	memset(a, 0, sizeof(*a));
	if (left <= 0 && k->quiet)
		return EXIT_FAILED;
	if (left <= 0)
		return fail("%s: no answer within %ld ms (--timeout)", k->conf.server,
			    k->timeout_ms);
	ret = ks_kube_request(&k->conf, method, path, ctype,
			      body ? json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN)
				   : NULL,
			      left, &resp, err, sizeof(err));
	if (ret) {
		ks_kube_resp_free(&resp);
		if (k->quiet)
			return EXIT_FAILED;
		if (!*err)
			snprintf(err, sizeof(err), "%s", strerror(-ret));
		/* err may name the URL already */
		return fail("%s%s%s (check the kubeconfig: its server, context and credentials)",
			    strstr(err, k->conf.server) ? "" : k->conf.server,
			    strstr(err, k->conf.server) ? "" : ": ", err);
	}
	a->status = resp.status;
	a->obj = resp.body ? json_tokener_parse(resp.body) : NULL;
	if (resp.status >= 200 && resp.status <= 299 &&
	    !json_object_is_type(a->obj, json_type_object))
		snprintf(a->msg, sizeof(a->msg), "%s %s: the answer is not a JSON object", method,
			 path);
	if (resp.status < 200 || resp.status > 299) {
		msg = ks_kube_status_message(&resp);
		snprintf(a->msg, sizeof(a->msg), "%s", msg && *msg ? msg : "(no message)");
		/* one line: a proxy's HTML error page must not flood the terminal */
		a->msg[strcspn(a->msg, "\r\n")] = '\0';
	}
	ks_kube_resp_free(&resp);
	return 0;
}

/* The one way to report an API refusal. */
static int api_fail(const char *ns, const char *name, const struct answer *a)
{
	return fail("%s/%s: %s (HTTP %ld)", ns, name ? name : "", a->msg, a->status);
}

static bool ok_status(const struct answer *a)
{
	return a->status >= 200 && a->status <= 299 &&
	       json_object_is_type(a->obj, json_type_object);
}

/* ---- waiting for the daemons ---- */

/* Polls ns/name until generation gen is programmed on every node that
 * reports, or the deadline passes. */
static int wait_programmed(struct kctx *k, const char *ns, const char *name, int64_t gen)
{
	char path[PATH_MAX_LEN];
	int64_t p = -1, t = -1, observed = -1;
	struct json_object *c;
	struct answer a;
	long long start = now_ms(), left;
	char seen[64];
	int ret;

	fflush(stdout); /* what was changed shows while we wait */
	shift_path(path, ns, name);
	for (;;) {
		/* a poll the deadline cuts short is a wait that timed out */
		k->quiet = true;
		ret = api(k, "GET", path, NULL, NULL, &a);
		k->quiet = false;
		if (ret && now_ms() >= k->deadline)
			break;
		if (ret && api(k, "GET", path, NULL, NULL, &a))
			return EXIT_FAILED;
		if (!ok_status(&a)) {
			answer_free(&a);
			return api_fail(ns, name, &a);
		}
		if (ks_kctl_programmed(a.obj, gen, &p, &t)) {
			answer_free(&a);
			printf("%s/%s: generation %lld programmed on %lld of %lld node(s)\n", ns,
			       name, (long long)gen, (long long)p, (long long)t);
			return EXIT_OK;
		}
		observed = get_int(a.obj, "status", "observedGeneration", NULL, -1);
		/* a spec the daemons refuse will never be programmed */
		c = condition(a.obj, "Accepted");
		if (c && cond_is(c, "False") && cond_generation(a.obj, c) >= gen) {
			fail("%s/%s: generation %lld not accepted: %s", ns, name, (long long)gen,
			     get_str(c, "message", NULL, NULL) ?: "(no message)");
			answer_free(&a);
			return EXIT_FAILED;
		}
		answer_free(&a);
		/* the last look leaves time for its own request */
		left = k->deadline - now_ms() - KS_KCTL_POLL_MS / 4;
		if (left <= 0)
			break;
		sleep_ms(left < KS_KCTL_POLL_MS ? left : KS_KCTL_POLL_MS);
	}
	if (observed >= 0)
		snprintf(seen, sizeof(seen), "status.observedGeneration %lld", (long long)observed);
	else
		snprintf(seen, sizeof(seen), "no status");
	if (t < 0)
		return fail("%s/%s: generation %lld not programmed after %.1f s: no node has "
			    "reported it (%s); is kshiftd running with --kubernetes?",
			    ns, name, (long long)gen, (now_ms() - start) / 1000.0, seen);
	return fail("%s/%s: generation %lld not programmed after %.1f s: %lld of %lld node(s) "
		    "programmed it (%s)",
		    ns, name, (long long)gen, (now_ms() - start) / 1000.0,
		    (long long)(p < 0 ? 0 : p), (long long)t, seen);
}

/* ---- apply ---- */

static char *read_input(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	size_t cap = 65536, n = 0, r;
	char *buf, *nb;

	if (!f)
		return NULL;
	buf = malloc(cap);
	while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			nb = realloc(buf, cap *= 2);
			if (!nb)
				free(buf);
			buf = nb;
		}
	}
	if (buf)
		buf[n] = '\0';
	else
		errno = ENOMEM;
	if (f != stdin)
		fclose(f);
	return buf;
}

static void free_docs(struct json_object **docs, size_t nr)
{
	size_t i;

	for (i = 0; i < nr; i++)
		json_object_put(docs[i]);
	free(docs);
}

/* The manifest's documents, validated as a local manifest is and then as
 * JSON objects; the documents' namespace checked against -n. */
static int load_docs(struct kctx *k, struct json_object ***docs, size_t *nr)
{
	struct ks_shift *shifts;
	char err[KS_ERR_LEN];
	size_t n, i;
	char *text;
	int ret;

	text = read_input(k->o->file);
	if (!text)
		return fail("%s: %s", k->o->file, strerror(errno));
	ret = ks_manifest_parse(text, strlen(text), &shifts, &n, err, sizeof(err));
	if (ret) {
		free(text);
		return fail("%s: %s", k->o->file, err);
	}
	ks_shifts_free(shifts, n);
	ret = ks_yaml_to_json(text, strlen(text), docs, nr, err, sizeof(err));
	free(text);
	if (ret)
		return fail("%s: %s", k->o->file, err);
	/* both skip the same empty documents, so this is never expected */
	ret = *nr != n ? fail("%s: %zu documents, but %zu shifts", k->o->file, *nr, n) : EXIT_OK;
	for (i = 0; i < *nr && !ret; i++) {
		const char *ns = get_str((*docs)[i], "metadata", "namespace", NULL);

		if (ns && k->o->ns && strcmp(ns, k->o->ns))
			ret = fail("%s: %s: metadata.namespace %s does not match -n %s", k->o->file,
				   get_str((*docs)[i], "metadata", "name", NULL), ns, k->o->ns);
	}
	if (ret) {
		free_docs(*docs, *nr);
		*docs = NULL;
		*nr = 0;
	}
	return ret;
}

/* Copies doc's field key into dst, if doc has it. */
static void take(struct json_object *dst, struct json_object *doc, const char *key)
{
	struct json_object *v;

	if (json_object_object_get_ex(doc, key, &v))
		json_object_object_add(dst, key, json_object_get(v));
}

/* What to send to create doc in ns: the document without status and
 * without what the API server sets. */
static struct json_object *for_create(struct json_object *doc, const char *ns)
{
	static const char *const server_set[] = { "resourceVersion",
						  "uid",
						  "generation",
						  "creationTimestamp",
						  "managedFields",
						  "selfLink",
						  "deletionTimestamp",
						  "deletionGracePeriodSeconds",
						  NULL };
	struct json_object *o = json_object_new_object(), *meta, *m = json_object_new_object();
	const char *const *k;

	take(o, doc, "apiVersion");
	take(o, doc, "kind");
	json_object_object_get_ex(doc, "metadata", &meta);
	json_object_object_foreach(meta, key, val) {
		for (k = server_set; *k && strcmp(*k, key); k++)
			;
		if (!*k)
			json_object_object_add(m, key, json_object_get(val));
	}
	json_object_object_add(m, "namespace", json_object_new_string(ns));
	json_object_object_add(o, "metadata", m);
	take(o, doc, "spec");
	return o;
}

/* What to send to replace cur with doc: cur (so that what others set,
 * finalizers, owners, stays) with doc's spec, and doc's labels and
 * annotations when it has them. */
static struct json_object *for_replace(struct json_object *cur, struct json_object *doc)
{
	struct json_object *o = NULL, *meta, *dmeta;

	if (json_object_deep_copy(cur, &o, NULL))
		return NULL;
	json_object_object_del(o, "status");
	json_object_object_get_ex(o, "metadata", &meta);
	json_object_object_get_ex(doc, "metadata", &dmeta);
	json_object_object_del(meta, "managedFields");
	take(meta, dmeta, "labels");
	take(meta, dmeta, "annotations");
	take(o, doc, "spec");
	return o;
}

/* Creates or replaces one document; *gen gets the generation it has. */
static int apply_one(struct kctx *k, struct json_object *doc, const char *ns, int64_t *gen)
{
	const char *name = get_str(doc, "metadata", "name", NULL), *what = NULL;
	char path[PATH_MAX_LEN], coll[PATH_MAX_LEN];
	struct json_object *body;
	struct answer cur, a;
	int attempt, ret;

	shift_path(path, ns, name);
	shift_path(coll, ns, NULL);
	for (attempt = 0; attempt <= KS_KCTL_RETRIES; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		if (api(k, "GET", path, NULL, NULL, &cur))
			return EXIT_FAILED;
		if (cur.status == 404) {
			body = for_create(doc, ns);
			ret = api(k, "POST", coll, NULL, body, &a);
			what = "created";
		} else if (ok_status(&cur)) {
			body = for_replace(cur.obj, doc);
			if (!body) {
				answer_free(&cur);
				return fail("%s/%s: out of memory", ns, name);
			}
			ret = api(k, "PUT", path, NULL, body, &a);
			what = get_int(a.obj, "metadata", "generation", NULL, 0) ==
					       get_int(cur.obj, "metadata", "generation", NULL, 0)
				       ? "unchanged"
				       : "configured";
		} else {
			ret = api_fail(ns, name, &cur);
			answer_free(&cur);
			return ret;
		}
		json_object_put(body);
		answer_free(&cur);
		if (ret)
			return ret;
		if (a.status != 409)
			break;
		answer_free(&a); /* changed (or created) since we read it */
	}
	if (!ok_status(&a)) {
		ret = api_fail(ns, name, &a);
		answer_free(&a);
		return ret;
	}
	*gen = get_int(a.obj, "metadata", "generation", NULL, 0);
	printf("%s/%s %s (generation %lld)\n", ns, name, what, (long long)*gen);
	answer_free(&a);
	return EXIT_OK;
}

static int cmd_apply(struct kctx *k, int argc, char **argv)
{
	struct json_object **docs;
	int64_t *gens;
	size_t nr, i;
	int ret;

	if (!k->o->file)
		return usage_error(k, "apply: -f FILE is required");
	if (argc)
		return usage_error(k, "apply: unexpected argument %s", argv[0]);
	ret = load_docs(k, &docs, &nr);
	if (ret)
		return ret;
	gens = calloc(nr + 1, sizeof(*gens));
	if (!gens) {
		free_docs(docs, nr);
		return fail("out of memory");
	}
	for (i = 0; i < nr && !ret; i++)
		ret = apply_one(k, docs[i],
				get_str(docs[i], "metadata", "namespace", NULL) ?: k->ns, &gens[i]);
	for (i = 0; i < nr && !ret && k->o->wait; i++)
		ret = wait_programmed(k, get_str(docs[i], "metadata", "namespace", NULL) ?: k->ns,
				      get_str(docs[i], "metadata", "name", NULL), gens[i]);
	free(gens);
	free_docs(docs, nr);
	return ret;
}

/* ---- get ---- */

/* s percent-encoded for a query string (a continue token is opaque). */
static char *url_escape(const char *s)
{
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	for (; out && *s; s++) {
		if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || strchr("-._~", *s))
			*o++ = *s;
		else
			o += sprintf(o, "%%%02X", (unsigned char)*s);
	}
	if (out)
		*o = '\0';
	return out;
}

/* Every TrafficShift of ns (NULL: of every namespace), as one List: the
 * pages of a chunked list joined. */
static int list_all(struct kctx *k, const char *ns, struct json_object **list)
{
	struct json_object *items, *more;
	char path[PATH_MAX_LEN], *url;
	const char *cont = NULL;
	char *next = NULL;
	struct answer a;
	size_t i;
	int n;

	*list = NULL;
	shift_path(path, ns, NULL);
	do {
		if (next)
			n = asprintf(&url, "%s?limit=%d&continue=%s", path, LIST_LIMIT, next);
		else
			n = asprintf(&url, "%s?limit=%d", path, LIST_LIMIT);
		free(next);
		next = NULL;
		if (n < 0 || api(k, "GET", url, NULL, NULL, &a)) {
			if (n >= 0)
				free(url);
			json_object_put(*list);
			return n < 0 ? fail("out of memory") : EXIT_FAILED;
		}
		free(url);
		if (!ok_status(&a)) {
			fail("%s: %s (HTTP %ld)", ns ? ns : "every namespace", a.msg, a.status);
			answer_free(&a);
			json_object_put(*list);
			return EXIT_FAILED;
		}
		cont = get_str(a.obj, "metadata", "continue", NULL);
		if (cont && *cont && !(next = url_escape(cont))) {
			answer_free(&a);
			json_object_put(*list);
			return fail("out of memory");
		}
		if (!*list) {
			*list = json_object_get(a.obj);
		} else if (json_object_object_get_ex(a.obj, "items", &more) &&
			   json_object_object_get_ex(*list, "items", &items)) {
			for (i = 0; i < json_object_array_length(more); i++)
				json_object_array_add(
					items, json_object_get(json_object_array_get_idx(more, i)));
		}
		answer_free(&a);
	} while (next);
	/* one List, as if it had come in one page */
	if (json_object_object_get_ex(*list, "metadata", &more)) {
		json_object_object_del(more, "continue");
		json_object_object_del(more, "remainingItemCount");
	}
	return EXIT_OK;
}

static void print_header(bool wide)
{
	printf("%-12s %-20s %-12s %8s %7s %-12s %-10s %-9s %s%s\n", "NAMESPACE", "NAME", "BACKEND",
	       "WEIGHT", "SHARE", "ENDPOINTS", "PROGRAMMED", "OBSERVED", wide ? "NODES " : "NODES",
	       wide ? "MIRROR       MESSAGE" : "");
}

/* One shift: a line per backend, the shift's status on the first. */
static void print_shift(struct json_object *ts, bool wide)
{
	struct json_object *backends = get_path(ts, "spec", "backends", NULL);
	struct json_object *prog = condition(ts, "Programmed");
	const char *ns = get_str(ts, "metadata", "namespace", NULL) ?: "";
	const char *name = get_str(ts, "metadata", "name", NULL) ?: "";
	int64_t gen = get_int(ts, "metadata", "generation", NULL, 0);
	int64_t obs = get_int(ts, "status", "observedGeneration", NULL, -1);
	int64_t p = get_int(ts, "status", "nodes", "programmed", -1);
	int64_t t = get_int(ts, "status", "nodes", "total", -1);
	char observed[48], nodes[48], eps[KS_NAME_LEN + 8], mirror[64] = "-", line[2048];
	int len;
	size_t i, n = json_object_is_type(backends, json_type_array)
			      ? json_object_array_length(backends)
			      : 0;
	uint64_t sum = 0;

	for (i = 0; i < n; i++)
		sum += get_int(json_object_array_get_idx(backends, i), "weight", NULL, NULL, 1);
	if (obs >= 0)
		snprintf(observed, sizeof(observed), "%lld/%lld", (long long)obs, (long long)gen);
	else
		snprintf(observed, sizeof(observed), "-/%lld", (long long)gen);
	if (t >= 0)
		snprintf(nodes, sizeof(nodes), "%lld/%lld", (long long)(p < 0 ? 0 : p),
			 (long long)t);
	else
		snprintf(nodes, sizeof(nodes), "-");
	if (get_str(ts, "spec", "mirror", "backend"))
		snprintf(mirror, sizeof(mirror), "%s %lld%%",
			 get_str(ts, "spec", "mirror", "backend"),
			 (long long)get_int(ts, "spec", "mirror", "percent", 100));
	for (i = 0; i < n || i == 0; i++) {
		struct json_object *b = json_object_array_get_idx(backends, i);
		struct json_object *e = get_path(b, "endpoints", NULL, NULL);
		int64_t w = get_int(b, "weight", NULL, NULL, 1);

		if (get_str(b, "service", NULL, NULL))
			snprintf(eps, sizeof(eps), "svc/%s", get_str(b, "service", NULL, NULL));
		else
			snprintf(eps, sizeof(eps), "%zu",
				 json_object_is_type(e, json_type_array)
					 ? json_object_array_length(e)
					 : 0);
		len = snprintf(line, sizeof(line),
			       "%-12s %-20s %-12s %8lld %6.1f%% %-12s %-10s %-9s %-5s", i ? "" : ns,
			       i ? "" : name, backend_name(b) ?: "-", (long long)(b ? w : 0),
			       sum && b ? 100.0 * w / sum : 0.0, b ? eps : "-",
			       i      ? ""
			       : prog ? get_str(prog, "status", NULL, NULL) ?: "?"
				      : "-",
			       i ? "" : observed, i ? "" : nodes);
		if (wide && len < (int)sizeof(line))
			len += snprintf(line + len, sizeof(line) - len, " %-12s %s", i ? "" : mirror,
					i || !prog ? "" : get_str(prog, "message", NULL, NULL) ?: "");
		/* padding ends at the last column that has something */
		len = len < (int)sizeof(line) ? len : (int)sizeof(line) - 1;
		while (len > 0 && line[len - 1] == ' ')
			len--;
		printf("%.*s\n", len, line);
	}
}

/* The Accepted and ResolvedRefs conditions that are False, after the table:
 * why a shift is not what its spec says. */
static void print_problems(struct json_object *ts)
{
	static const char *const types[] = { "Accepted", "ResolvedRefs", NULL };
	const char *const *t;

	for (t = types; *t; t++) {
		struct json_object *c = condition(ts, *t);

		if (c && cond_is(c, "False"))
			printf("%s/%s: %s False: %s%s%s\n",
			       get_str(ts, "metadata", "namespace", NULL) ?: "",
			       get_str(ts, "metadata", "name", NULL) ?: "", *t,
			       get_str(c, "reason", NULL, NULL) ?: "",
			       get_str(c, "reason", NULL, NULL) ? ": " : "",
			       get_str(c, "message", NULL, NULL) ?: "");
	}
}

static int cmd_get(struct kctx *k, int argc, char **argv)
{
	const char *out = k->o->output ? k->o->output : "table";
	struct json_object *shown, *items = NULL;
	char path[PATH_MAX_LEN];
	bool wide = !strcmp(out, "wide");
	struct answer a = { 0 };
	size_t i, n;
	int ret;

	if (strcmp(out, "table") && strcmp(out, "wide") && strcmp(out, "json") &&
	    strcmp(out, "yaml"))
		return usage_error(k, "get: -o %s: must be wide, json or yaml", out);
	if (argc > 1)
		return usage_error(k, "get: unexpected argument %s", argv[1]);
	if (argc && k->o->all_namespaces)
		return usage_error(k, "get: a NAME and -A do not go together");
	if (argc) {
		if (api(k, "GET", shift_path(path, k->ns, argv[0]), NULL, NULL, &a))
			return EXIT_FAILED;
		if (!ok_status(&a)) {
			ret = api_fail(k->ns, argv[0], &a);
			answer_free(&a);
			return ret;
		}
		shown = a.obj;
	} else {
		ret = list_all(k, k->o->all_namespaces ? NULL : k->ns, &shown);
		if (ret)
			return ret;
		json_object_object_get_ex(shown, "items", &items);
	}
	if (!strcmp(out, "json")) {
		printf("%s\n",
		       json_object_to_json_string_ext(
			       shown, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (!strcmp(out, "yaml")) {
		ks_print_yaml(stdout, shown);
	} else if (argc) {
		print_header(wide);
		print_shift(shown, wide);
		print_problems(shown);
	} else {
		n = json_object_is_type(items, json_type_array) ? json_object_array_length(items)
								: 0;
		if (!n)
			fprintf(stderr, "No TrafficShifts found%s%s.\n",
				k->o->all_namespaces ? "" : " in namespace ",
				k->o->all_namespaces ? "" : k->ns);
		else
			print_header(wide);
		for (i = 0; i < n; i++)
			print_shift(json_object_array_get_idx(items, i), wide);
		for (i = 0; i < n; i++)
			print_problems(json_object_array_get_idx(items, i));
	}
	json_object_put(shown);
	return EXIT_OK;
}

/* ---- changes: set, switch, promote, rollback, mirror ---- */

/* What a change does to the object it read: fills spec (a fresh object
 * the patch's "spec") or refuses with a message (EXIT_FAILED). */
typedef int change_fn(struct kctx *k, struct json_object *cur, struct json_object *spec, void *arg);

/*
 * Reads ns/name, lets fn compute the patch, sends it with the
 * resourceVersion read as a precondition; on 409 starts again. The
 * object as patched is left in *out.
 */
static int patch_shift(struct kctx *k, const char *name, change_fn *fn, void *arg,
		       struct json_object **out)
{
	struct json_object *patch, *meta, *spec;
	char path[PATH_MAX_LEN];
	struct answer cur, a;
	int attempt, ret;

	shift_path(path, k->ns, name);
	for (attempt = 0; attempt <= KS_KCTL_RETRIES; attempt++) {
		if (attempt)
			backoff(attempt - 1);
		if (api(k, "GET", path, NULL, NULL, &cur))
			return EXIT_FAILED;
		if (!ok_status(&cur)) {
			ret = api_fail(k->ns, name, &cur);
			answer_free(&cur);
			return ret;
		}
		patch = json_object_new_object();
		meta = json_object_new_object();
		spec = json_object_new_object();
		json_object_object_add(patch, "metadata", meta);
		json_object_object_add(patch, "spec", spec);
		json_object_object_add(
			meta, "resourceVersion",
			json_object_new_string(get_str(cur.obj, "metadata", "resourceVersion", NULL)
						       ?: ""));
		ret = fn(k, cur.obj, spec, arg);
		answer_free(&cur);
		if (!ret)
			ret = api(k, "PATCH", path, "application/merge-patch+json", patch, &a);
		json_object_put(patch);
		if (ret)
			return ret;
		if (a.status != 409)
			break;
		answer_free(&a);
	}
	if (!ok_status(&a)) {
		ret = api_fail(k->ns, name, &a);
		answer_free(&a);
		return ret;
	}
	*out = a.obj;
	return EXIT_OK;
}

struct weights_arg {
	const char *cmd;
	const char *names[KS_MAX_BACKENDS];
	uint32_t weights[KS_MAX_BACKENDS];
	size_t n;
	const char *target;
};

static int change_weights(struct kctx *k, struct json_object *cur, struct json_object *spec,
			  void *arg)
{
	struct json_object *backends = get_path(cur, "spec", "backends", NULL), *list, *b;
	uint32_t w[KS_MAX_BACKENDS];
	struct weights_arg *wa = arg;
	char err[KS_ERR_LEN];
	size_t i;
	int ret;

	ret = ks_kctl_weights(backends, wa->cmd, wa->names, wa->weights, wa->n, wa->target, w, err,
			      sizeof(err));
	/* the messages kshiftd gives for a local shift */
	if (ret == -ENOENT)
		return fail("%s in shift %s/%s", err, k->ns,
			    get_str(cur, "metadata", "name", NULL));
	if (ret)
		return fail("%s/%s: %s", k->ns, get_str(cur, "metadata", "name", NULL), err);
	list = json_object_new_array();
	for (i = 0; i < json_object_array_length(backends); i++) {
		/* every backend as it is, but for its weight */
		b = NULL;
		json_object_deep_copy(json_object_array_get_idx(backends, i), &b, NULL);
		json_object_object_add(b, "weight", json_object_new_int64(w[i]));
		json_object_array_add(list, b);
	}
	json_object_object_add(spec, "backends", list);
	return EXIT_OK;
}

/* "default/web generation 4: stable 0 (0.0%), canary 100 (100.0%)" */
static void print_weights(const char *ns, struct json_object *ts)
{
	struct json_object *backends = get_path(ts, "spec", "backends", NULL);
	size_t i, n = json_object_array_length(backends);
	uint64_t sum = 0;

	for (i = 0; i < n; i++)
		sum += get_int(json_object_array_get_idx(backends, i), "weight", NULL, NULL, 1);
	printf("%s/%s generation %lld:", ns, get_str(ts, "metadata", "name", NULL) ?: "",
	       (long long)get_int(ts, "metadata", "generation", NULL, 0));
	for (i = 0; i < n; i++) {
		struct json_object *b = json_object_array_get_idx(backends, i);
		int64_t w = get_int(b, "weight", NULL, NULL, 1);

		printf("%s %s %lld (%.1f%%)", i ? "," : "", backend_name(b) ?: "?", (long long)w,
		       sum ? 100.0 * w / sum : 0.0);
	}
	printf("\n");
}

/* The same check and message as local mode's set. */
static int parse_weight(const char *s, uint32_t *w)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > KS_WEIGHT_MAX)
		return -EINVAL;
	*w = v;
	return 0;
}

static int finish_change(struct kctx *k, const char *name, struct json_object *ts)
{
	int64_t gen = get_int(ts, "metadata", "generation", NULL, 0);
	int ret = EXIT_OK;

	print_weights(k->ns, ts);
	if (k->o->wait)
		ret = wait_programmed(k, k->ns, name, gen);
	json_object_put(ts);
	return ret;
}

static int cmd_weights(struct kctx *k, const char *cmd, int argc, char **argv)
{
	struct weights_arg wa = { .cmd = cmd };
	struct json_object *ts;
	int i, ret;

	if (!strcmp(cmd, "set")) {
		if (argc < 2)
			return usage_error(k, "set: NAME BACKEND=W ... expected");
		if (argc - 1 > KS_MAX_BACKENDS)
			return fail("set: at most %d backends", KS_MAX_BACKENDS);
		for (i = 1; i < argc; i++) {
			char *eq = strchr(argv[i], '=');

			if (!eq || eq == argv[i])
				return usage_error(k, "set: %s: expected BACKEND=WEIGHT", argv[i]);
			if (parse_weight(eq + 1, &wa.weights[wa.n]))
				return fail("%.*s: weight %s: must be an integer 0..%u",
					    (int)(eq - argv[i]), argv[i], eq + 1, KS_WEIGHT_MAX);
			*eq = '\0';
			wa.names[wa.n++] = argv[i];
		}
	} else if (!strcmp(cmd, "switch")) {
		if (argc != 2)
			return usage_error(k, "switch: NAME BACKEND expected");
		wa.target = argv[1];
	} else if (!strcmp(cmd, "promote")) {
		if (argc < 1 || argc > 2)
			return usage_error(k, "promote: NAME [BACKEND] expected");
		wa.target = argc > 1 ? argv[1] : NULL;
	} else if (argc != 1) {
		return usage_error(k, "rollback: NAME expected");
	}
	ret = patch_shift(k, argv[0], change_weights, &wa, &ts);
	return ret ? ret : finish_change(k, argv[0], ts);
}

struct mirror_arg {
	const char *backend; /* NULL: off */
	long percent;
};

static int change_mirror(struct kctx *k, struct json_object *cur, struct json_object *spec,
			 void *arg)
{
	struct json_object *backends = get_path(cur, "spec", "backends", NULL), *m;
	struct mirror_arg *ma = arg;
	size_t i, n = json_object_is_type(backends, json_type_array)
			      ? json_object_array_length(backends)
			      : 0;

	if (!ma->backend) {
		json_object_object_add(spec, "mirror", NULL); /* JSON null: remove */
		return EXIT_OK;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(backend_name(json_object_array_get_idx(backends, i)) ?: "",
			    ma->backend))
			break;
	if (i == n)
		return fail("%s: no such backend in shift %s/%s", ma->backend, k->ns,
			    get_str(cur, "metadata", "name", NULL));
	m = json_object_new_object();
	json_object_object_add(m, "backend", json_object_new_string(ma->backend));
	json_object_object_add(m, "percent", json_object_new_int64(ma->percent));
	json_object_object_add(spec, "mirror", m);
	return EXIT_OK;
}

static int cmd_mirror(struct kctx *k, int argc, char **argv)
{
	struct mirror_arg ma = { .percent = 100 };
	struct json_object *ts;
	char *end;
	int ret;

	if (k->o->off ? argc != 1 : argc != 2)
		return usage_error(k, "mirror: NAME BACKEND [--percent P] or NAME --off expected");
	if (k->o->off && k->o->percent)
		return usage_error(k, "mirror: --off and --percent do not go together");
	if (k->o->percent) {
		errno = 0;
		ma.percent = strtol(k->o->percent, &end, 10);
		if (errno || *end || end == k->o->percent || ma.percent < 0 || ma.percent > 100)
			return fail("mirror: percent %s: must be an integer 0..100", k->o->percent);
	}
	ma.backend = k->o->off ? NULL : argv[1];
	ret = patch_shift(k, argv[0], change_mirror, &ma, &ts);
	if (ret)
		return ret;
	if (ma.backend)
		printf("%s/%s generation %lld: mirroring %ld%% of new flows to %s\n", k->ns,
		       argv[0], (long long)get_int(ts, "metadata", "generation", NULL, 0),
		       ma.percent, ma.backend);
	else
		printf("%s/%s generation %lld: mirror off\n", k->ns, argv[0],
		       (long long)get_int(ts, "metadata", "generation", NULL, 0));
	if (k->o->wait)
		ret = wait_programmed(k, k->ns, argv[0],
				      get_int(ts, "metadata", "generation", NULL, 0));
	json_object_put(ts);
	return ret;
}

/* ---- delete ---- */

static int delete_one(struct kctx *k, const char *ns, const char *name)
{
	char path[PATH_MAX_LEN];
	struct answer a;
	int ret = EXIT_OK;

	if (api(k, "DELETE", shift_path(path, ns, name), NULL, NULL, &a))
		return EXIT_FAILED;
	if (a.status == 404)
		ret = fail("%s/%s: not found", ns, name);
	else if (a.status < 200 || a.status > 299)
		ret = api_fail(ns, name, &a);
	else
		printf("%s/%s deleted\n", ns, name);
	answer_free(&a);
	return ret;
}

static int cmd_delete(struct kctx *k, int argc, char **argv)
{
	struct json_object **docs;
	int i, ret = EXIT_OK;
	size_t nr, j;

	if (k->o->file && argc)
		return usage_error(k, "delete: NAME... or -f FILE, not both");
	if (!k->o->file && !argc)
		return usage_error(k, "delete: NAME... or -f FILE expected");
	if (!k->o->file) {
		/* every one is tried: one missing must not keep the rest */
		for (i = 0; i < argc; i++)
			ret |= delete_one(k, k->ns, argv[i]);
		return ret ? EXIT_FAILED : EXIT_OK;
	}
	ret = load_docs(k, &docs, &nr);
	if (ret)
		return ret;
	for (j = 0; j < nr; j++)
		ret |= delete_one(k, get_str(docs[j], "metadata", "namespace", NULL) ?: k->ns,
				  get_str(docs[j], "metadata", "name", NULL));
	free_docs(docs, nr);
	return ret ? EXIT_FAILED : EXIT_OK;
}

/* ---- the entry point ---- */

int ks_kctl_run(const struct ks_kctl_opts *o, const char *cmd, int argc, char **argv)
{
	struct kctx k = { .o = o };
	char err[KS_ERR_LEN];
	int ret;

	if (!strcmp(cmd, "top") || !strcmp(cmd, "conns") || !strcmp(cmd, "verdicts"))
		return fail("%s reads one node's dataplane: run it on the node with --socket", cmd);
	if (strcmp(cmd, "apply") && strcmp(cmd, "get") && strcmp(cmd, "set") &&
	    strcmp(cmd, "switch") && strcmp(cmd, "promote") && strcmp(cmd, "rollback") &&
	    strcmp(cmd, "mirror") && strcmp(cmd, "delete"))
		return usage_error(&k, "%s: unknown command", cmd);
	if (o->all_namespaces && strcmp(cmd, "get"))
		return usage_error(&k, "%s: -A is only for get", cmd);
	if (o->wait && (!strcmp(cmd, "get") || !strcmp(cmd, "delete")))
		return usage_error(&k, "%s: --wait is for changes", cmd);

	k.timeout_ms = o->timeout_ms ? o->timeout_ms
		       : o->wait     ? KS_KCTL_WAIT_TIMEOUT_MS
				     : KS_KCTL_TIMEOUT_MS;
	k.deadline = now_ms() + k.timeout_ms;
	srand(getpid() ^ now_ms());
	ret = ks_kube_conf_load(&k.conf, o->kubeconfig, o->context, NULL, NULL, err, sizeof(err));
	if (ret)
		return fail("%s", err);
	k.ns = o->ns ? o->ns : k.conf.namespace ? k.conf.namespace : "default";

	if (!strcmp(cmd, "apply"))
		ret = cmd_apply(&k, argc, argv);
	else if (!strcmp(cmd, "get"))
		ret = cmd_get(&k, argc, argv);
	else if (!strcmp(cmd, "mirror"))
		ret = cmd_mirror(&k, argc, argv);
	else if (!strcmp(cmd, "delete"))
		ret = cmd_delete(&k, argc, argv);
	else
		ret = cmd_weights(&k, cmd, argc, argv);
	ks_kube_conf_free(&k.conf);
	return ret;
}
