// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshiftctl: changes and shows TrafficShifts through kshiftd's control
 * socket (every change returns once the dataplane has applied it), or with
 * --kubernetes through the API server's TrafficShift custom resources
 * (lib/kube_ctl.c). Run as kubectl-kshift, a kubectl plugin, it acts on the
 * cluster unless told --socket.
 * Exit status: 0 done, 1 refused or failed (message on stderr), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>
#include "lib/ctl.h"
#include "lib/kube_ctl.h"
#include "lib/shift.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *socket;
	const char *ns;	    /* -n; NULL: every namespace for get, "default" otherwise */
	const char *file;   /* apply -f */
	const char *output; /* get -o */
	int timeout_ms;	    /* --timeout */
	bool once;	    /* top --once */
	bool force;	    /* set, switch: --force */
	bool flush;	    /* conns --flush */
	int argc;	    /* positionals after the command */
	char **argv;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kshiftctl [--socket PATH | --kubernetes [--kubeconfig FILE]\n"
		   "                 [--context C]] [-n NAMESPACE] [--timeout D] COMMAND\n"
		   "  apply -f FILE                create or replace the shifts in a manifest (- "
		   "for stdin)\n"
		   "  get [NAME] [-o wide|json|yaml]  shifts, weights, endpoints, observed split\n"
		   "  set NAME BACKEND=W ...       set weights\n"
		   "  switch NAME BACKEND          blue/green: all weight to BACKEND, atomically\n"
		   "  promote NAME [BACKEND]       all weight to the canary (the last backend "
		   "unless named)\n"
		   "  rollback NAME                all weight back to the first backend\n"
		   "  mirror NAME BACKEND [--percent P] | mirror NAME --off\n"
		   "  delete NAME... | delete -f FILE\n"
		   "  conns [NAME] [--flush]       the live flows of a shift: client, endpoint, state\n"
		   "  verdicts                     the dataplane's per-reason packet counters\n"
		   "  top [NAME] [--once]          live per-backend view\n"
		   "  version\n"
		   "COMMAND --help shows the command's own usage.\n"
		   "options:\n"
		   "  --timeout D                  give up after D (500ms, 10s, 2m; default 30s,\n"
		   "                               60s with --wait)\n"
		   "  --wait                       --kubernetes: after a change, wait until every\n"
		   "                               node has programmed it\n"
		   "  -A, --all-namespaces         get: every namespace\n"
		   "  -o json                      a change (apply, set, ...): the daemon's answer,\n"
		   "                               with elapsed_us, its own time for it\n"
		   "KSHIFT_SOCKET stands for --socket. As kubectl-kshift (kubectl kshift ...),\n"
		   "--kubernetes is the default.\n");
}

#ifndef KSHIFT_VERSION
#define KSHIFT_VERSION "0.1.0"
#endif

/* Each verb's own usage, for VERB --help. */
static const struct verb {
	const char *name, *synopsis, *what;
} verbs[] = {
	{ "apply", "apply -f FILE",
	  "create or replace the shifts in a manifest (- for stdin); a list\n"
	  "  that get -o yaml printed applies back as it is" },
	{ "get", "get [NAME] [-o wide|json|yaml] [-A]",
	  "shifts: frontends, weights and shares, endpoints, the observed split and its\n"
	  "  window, rejected flows and open connections" },
	{ "set", "set NAME BACKEND=W ... [--force]",
	  "set weights (relative integers 0..1000000); refused if every backend with\n"
	  "  weight would have no endpoint, unless --force" },
	{ "switch", "switch NAME BACKEND [--force]",
	  "blue/green: all weight to BACKEND, atomically; refused if it has no\n"
	  "  endpoint, unless --force" },
	{ "promote", "promote NAME [BACKEND]",
	  "all weight to the canary (the last backend unless named)" },
	{ "rollback", "rollback NAME", "all weight back to the first backend" },
	{ "mirror", "mirror NAME BACKEND [--percent P] | mirror NAME --off",
	  "shadow traffic: copy new flows to BACKEND, its replies dropped" },
	{ "top", "top [NAME] [--once]",
	  "live per-backend view, redrawn every second: weight and share, observed\n"
	  "  share over the last 10 s, new flows/s, packets/s, bytes/s, resets, open\n"
	  "  connections; plain lines without a terminal, one block with --once" },
	{ "delete", "delete NAME... | delete -f FILE", "delete shifts" },
	{ "conns", "conns [NAME] [--flush] [-o json]",
	  "the live flows of a shift (of every shift without NAME): client, frontend,\n"
	  "  endpoint, backend, state, idle time. --flush forgets them instead, as\n"
	  "  conntrack -F does: each flow's next packet is steered as a new flow's,\n"
	  "  so one whose weights changed since it began moves, and breaks" },
	{ "verdicts", "verdicts [-o json]", "the dataplane's packet counters by reason" },
	{ "version", "version", "kshiftctl's version" },
};

static const struct verb *verb_of(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

static void verb_usage(FILE *f, const struct verb *v)
{
	fprintf(f,
		"usage: kshiftctl [--socket PATH | --kubernetes ...] [-n NAMESPACE] [--timeout D] "
		"%s\n  %s\n",
		v->synopsis, v->what);
}

static void vsay(const char *fmt, va_list ap)
{
	fputs("kshiftctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* A refusal or failure: message on stderr, exit status 1. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return EXIT_FAILED;
}

/* A command line that makes no sense: message and usage, exit status 2. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	usage(stderr);
	return EXIT_USAGE;
}

static const char *ns_or_default(const struct ctl *c)
{
	return c->ns ? c->ns : "default";
}

/* Sends req (consumed) and hands back the answer if it says ok. */
static int call(const struct ctl *c, struct json_object *req, struct json_object **out)
{
	struct json_object *resp, *ok, *err;
	int ret;

	ret = ks_ctl_call(c->socket, req, &resp, c->timeout_ms);
	json_object_put(req);
	if (ret == -ETIMEDOUT)
		return fail("%s: no answer within %d ms (--timeout)", c->socket, c->timeout_ms);
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		return fail("%s: %s: is kshiftd running? start it or pass --socket PATH "
			    "(or set KSHIFT_SOCKET)",
			    c->socket, strerror(-ret));
	if (ret == -EACCES || ret == -EPERM)
		return fail("%s: %s: run as root or join the socket's group", c->socket,
			    strerror(-ret));
	if (ret)
		return fail("%s: %s: is this kshiftd's control socket? pass --socket PATH",
			    c->socket, strerror(-ret));
	if (!json_object_object_get_ex(resp, "ok", &ok) || !json_object_get_boolean(ok)) {
		ret = fail("%s", json_object_object_get_ex(resp, "error", &err)
					 ? json_object_get_string(err)
					 : "kshiftd refused the request");
		json_object_put(resp);
		return ret;
	}
	if (out)
		*out = resp;
	else
		json_object_put(resp);
	return EXIT_OK;
}

/* A change with -o json: the daemon's answer as it is, with elapsed_us, the
 * daemon's own time for the request (the dataplane change included) */
static bool print_answer(const struct ctl *c, struct json_object *resp)
{
	if (!c->output || strcmp(c->output, "json"))
		return false;
	printf("%s\n", json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY |
								JSON_C_TO_STRING_NOSLASHESCAPE));
	return true;
}

static struct json_object *request(const char *cmd, const struct ctl *c, const char *name)
{
	struct json_object *req = json_object_new_object();

	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	json_object_object_add(req, "namespace", json_object_new_string(ns_or_default(c)));
	if (name)
		json_object_object_add(req, "name", json_object_new_string(name));
	return req;
}

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
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	if (buf)
		buf[n] = '\0';
	if (f != stdin)
		fclose(f);
	return buf;
}

static struct json_object *path_get(struct json_object *o, const char *a, const char *b);

/*
 * What apply sends: the file as it is, so that refusals name its lines;
 * rewritten only when it is a list (what get -o yaml prints of several
 * shifts: a sequence, or a kind: List) or -n names the namespace, as JSON
 * documents without their status. Refuses a file that holds no shift and a
 * document whose namespace contradicts -n.
 */
static int apply_text(const struct ctl *c, char **text)
{
	struct json_object **docs = NULL, *all = json_object_new_array(), *items, *ns;
	size_t nr = 0, i, j, w = 0, cap;
	char err[KS_ERR_LEN], *out;
	bool rewrite = c->ns != NULL;
	int ret = EXIT_OK;

	if (ks_yaml_to_json(*text, strlen(*text), &docs, &nr, err, sizeof(err))) {
		json_object_put(all);
		return fail("%s: %s", c->file, err); /* the daemon would say the same */
	}
	for (i = 0; i < nr; i++) {
		items = docs[i];
		if (json_object_is_type(docs[i], json_type_object) &&
		    json_object_get_string(path_get(docs[i], "kind", NULL)) &&
		    !strcmp(json_object_get_string(path_get(docs[i], "kind", NULL)), "List"))
			items = path_get(docs[i], "items", NULL);
		if (!json_object_is_type(items, json_type_array)) {
			json_object_array_add(all, json_object_get(docs[i]));
			continue;
		}
		rewrite = true;
		for (j = 0; j < json_object_array_length(items); j++)
			json_object_array_add(all,
					      json_object_get(json_object_array_get_idx(items, j)));
	}
	for (i = 0; i < nr; i++)
		json_object_put(docs[i]);
	free(docs);
	if (!json_object_array_length(all)) {
		json_object_put(all);
		return fail("%s: holds no TrafficShift: nothing to apply", c->file);
	}
	if (!rewrite) {
		json_object_put(all);
		return EXIT_OK;
	}
	cap = 1;
	for (i = 0; i < json_object_array_length(all) && !ret; i++) {
		struct json_object *d = json_object_array_get_idx(all, i), *meta;

		if (!json_object_is_type(d, json_type_object))
			continue; /* the daemon refuses it, naming it */
		json_object_object_del(d, "status");
		meta = path_get(d, "metadata", NULL);
		ns = path_get(meta, "namespace", NULL);
		if (c->ns && ns && strcmp(json_object_get_string(ns), c->ns))
			ret = fail("%s: document %zu: metadata.namespace %s contradicts -n %s",
				   c->file, i + 1, json_object_get_string(ns), c->ns);
		else if (c->ns && json_object_is_type(meta, json_type_object))
			json_object_object_add(meta, "namespace", json_object_new_string(c->ns));
		cap += strlen(json_object_to_json_string(d)) + 8;
	}
	out = ret ? NULL : malloc(cap);
	for (i = 0; out && i < json_object_array_length(all); i++)
		w += snprintf(out + w, cap - w, "%s%s\n", i ? "---\n" : "",
			      json_object_to_json_string(json_object_array_get_idx(all, i)));
	json_object_put(all);
	if (ret)
		return ret;
	if (!out)
		return fail("out of memory");
	free(*text);
	*text = out;
	return EXIT_OK;
}

static int cmd_apply(struct ctl *c)
{
	struct json_object *req, *resp, *n;
	char *text;
	int ret;

	if (!c->file)
		return usage_error("apply: -f FILE is required");
	if (c->argc)
		return usage_error("apply: unexpected argument %s", c->argv[0]);
	text = read_input(c->file);
	if (!text)
		return fail("%s: %s", c->file, strerror(errno));
	ret = apply_text(c, &text);
	if (ret) {
		free(text);
		return ret;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("apply"));
	json_object_object_add(req, "manifest", json_object_new_string(text));
	free(text);
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	json_object_object_get_ex(resp, "applied", &n);
	if (!print_answer(c, resp))
		printf("applied %d shift(s)\n", json_object_get_int(n));
	json_object_put(resp);
	return EXIT_OK;
}

static struct json_object *path_get(struct json_object *o, const char *a, const char *b)
{
	struct json_object *x = NULL, *y = NULL;

	if (!json_object_object_get_ex(o, a, &x))
		return NULL;
	if (!b)
		return x;
	return json_object_object_get_ex(x, b, &y) ? y : NULL;
}

/* A shift's frontends and refusals, under its backends. */
static void print_frontends(struct json_object *it)
{
	struct json_object *fes = path_get(it, "status", "frontends");
	size_t i;

	printf("  frontends:");
	for (i = 0; fes && i < json_object_array_length(fes); i++)
		printf("%s %s", i ? "," : "",
		       json_object_get_string(json_object_array_get_idx(fes, i)));
	printf("; rejected flows: %s; observed: %s\n",
	       json_object_get_string(path_get(it, "status", "rejectedFlows")) ?: "0",
	       json_object_get_string(path_get(it, "status", "observedWindow"))
		       ?: "new flows since the last change");
}

/* A shift's source rules, under its backends: which are in force. */
static void print_rules(struct json_object *rules)
{
	size_t i;

	if (!json_object_is_type(rules, json_type_array))
		return; /* a daemon without rules says nothing of them */
	for (i = 0; i < json_object_array_length(rules); i++) {
		struct json_object *r = json_object_array_get_idx(rules, i);
		struct json_object *why = path_get(r, "reason", NULL);

		printf("  rule for %s \u2192 %s%s%s\n",
		       json_object_get_string(path_get(r, "source", NULL)),
		       json_object_get_string(path_get(r, "backend", NULL)), why ? ": " : "",
		       why ? json_object_get_string(why) : "");
	}
}

/* -o wide: a shift's mirror and how the shadow's answers compared
 * (docs/shadow.md), with the last mismatches. */
static void print_mirror(struct json_object *it)
{
	struct json_object *st = path_get(it, "status", "mirror");
	struct json_object *spec = path_get(it, "spec", "mirror");
	struct json_object *mm = st ? path_get(st, "lastMismatches", NULL) : NULL;
	size_t i;

	if (!st || (!spec && !json_object_get_int64(path_get(st, "mirroredFlows", NULL))))
		return;
	if (spec)
		printf("  mirror: %s%% of new flows to %s;",
		       json_object_get_string(path_get(spec, "percent", NULL)),
		       json_object_get_string(path_get(spec, "backend", NULL)));
	else
		printf("  mirror: off;");
	printf(" shadow answers: %s match, %s mismatch, %s dropped; UDP copies %s, lost "
	       "events %s\n",
	       json_object_get_string(path_get(st, "match", NULL)),
	       json_object_get_string(path_get(st, "mismatch", NULL)),
	       json_object_get_string(path_get(st, "dropped", NULL)),
	       json_object_get_string(path_get(st, "udpCopies", NULL)),
	       json_object_get_string(path_get(st, "lostEvents", NULL)));
	for (i = 0; json_object_is_type(mm, json_type_array) && i < json_object_array_length(mm);
	     i++)
		printf("    mismatch %s\n",
		       json_object_get_string(json_object_array_get_idx(mm, i)));
}

static void print_table(struct json_object *items, bool wide)
{
	size_t i, j, n = json_object_array_length(items);

	printf("%-12s %-20s %-12s %8s %7s %9s %10s %9s %8s", "NAMESPACE", "NAME", "BACKEND",
	       "WEIGHT", "SHARE", "ENDPOINTS", "NEW-FLOWS", "OBSERVED", "OPEN");
	if (wide)
		printf(" %12s %14s %s", "PACKETS", "BYTES", "SOURCE");
	printf("\n");
	for (i = 0; i < n; i++) {
		struct json_object *it = json_object_array_get_idx(items, i);
		struct json_object *backends = path_get(it, "status", "backends");
		const char *ns = json_object_get_string(path_get(it, "metadata", "namespace"));
		const char *name = json_object_get_string(path_get(it, "metadata", "name"));

		for (j = 0; j < json_object_array_length(backends); j++) {
			struct json_object *b = json_object_array_get_idx(backends, j);

			printf("%-12s %-20s %-12s %8s %6.1f%% %9s %10s %8.1f%% %8s", j ? "" : ns,
			       j ? "" : name, json_object_get_string(path_get(b, "name", NULL)),
			       json_object_get_string(path_get(b, "weight", NULL)),
			       json_object_get_double(path_get(b, "sharePercent", NULL)),
			       json_object_get_string(path_get(b, "endpoints", NULL)),
			       json_object_get_string(path_get(b, "newFlows", NULL)),
			       json_object_get_double(path_get(b, "observedPercent", NULL)),
			       json_object_get_string(path_get(b, "openConnections", NULL)) ?: "-");
			if (wide)
				printf(" %12s %14s %s",
				       json_object_get_string(path_get(b, "packets", NULL)),
				       json_object_get_string(path_get(b, "bytes", NULL)),
				       j ? ""
					 : json_object_get_string(
						   path_get(it, "status", "source")));
			printf("\n");
		}
		print_frontends(it);
		print_rules(path_get(it, "status", "rules"));
		if (wide)
			print_mirror(it);
	}
}

static int cmd_get(struct ctl *c)
{
	const char *out = c->output ? c->output : "table";
	struct json_object *req, *resp, *items, *shown;
	int ret;

	if (strcmp(out, "table") && strcmp(out, "wide") && strcmp(out, "json") &&
	    strcmp(out, "yaml"))
		return usage_error("get: -o %s: must be wide, json or yaml", out);
	if (c->argc > 1)
		return usage_error("get: unexpected argument %s", c->argv[1]);
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("get"));
	if (c->ns || c->argc)
		json_object_object_add(req, "namespace", json_object_new_string(ns_or_default(c)));
	if (c->argc)
		json_object_object_add(req, "name", json_object_new_string(c->argv[0]));
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	json_object_object_get_ex(resp, "items", &items);
	/* one shift asked for: the object itself, as kubectl does */
	shown = c->argc ? json_object_array_get_idx(items, 0) : items;
	if (!strcmp(out, "json"))
		printf("%s\n",
		       json_object_to_json_string_ext(
			       shown, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (!strcmp(out, "yaml"))
		ks_print_yaml(stdout, shown);
	else if (!json_object_array_length(items))
		fprintf(stderr, "No resources found\n");
	else
		print_table(items, !strcmp(out, "wide"));
	json_object_put(resp);
	return EXIT_OK;
}

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

static int change(const struct ctl *c, const char *cmd, struct json_object *req,
		  struct json_object *weights, const char *target);

static int cmd_set(struct ctl *c)
{
	struct json_object *req, *weights;
	uint32_t w;
	int i;

	if (c->argc < 2)
		return usage_error("set: NAME BACKEND=W ... expected");
	req = request("set", c, c->argv[0]);
	weights = json_object_new_object();
	json_object_object_add(req, "weights", weights);
	for (i = 1; i < c->argc; i++) {
		char *eq = strchr(c->argv[i], '=');

		if (!eq || eq == c->argv[i]) {
			json_object_put(req);
			return usage_error("set: %s: expected BACKEND=WEIGHT", c->argv[i]);
		}
		if (parse_weight(eq + 1, &w)) {
			json_object_put(req);
			return fail("%.*s: weight %s: must be an integer 0..%u",
				    (int)(eq - c->argv[i]), c->argv[i], eq + 1, KS_WEIGHT_MAX);
		}
		*eq = '\0';
		if (json_object_object_get_ex(weights, c->argv[i], NULL)) {
			json_object_put(req);
			return fail("set %s: backend %s named twice: give each backend once",
				    c->argv[0], c->argv[i]);
		}
		json_object_object_add(weights, c->argv[i], json_object_new_int64(w));
	}
	return change(c, "set", req, weights, NULL);
}

/* ---- top: a live view from the counters, refreshed every second ---- */

#define TOP_WINDOW_S 10 /* observed shares: new flows over the last 10 s */
#define TOP_SAMPLES  (TOP_WINDOW_S + 2)

struct top_sample {
	double t; /* monotonic seconds */
	struct json_object *items;
};

static double mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int top_fetch(struct ctl *c, struct top_sample *s)
{
	struct json_object *req = json_object_new_object(), *resp, *items;
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("get"));
	if (c->ns || c->argc)
		json_object_object_add(req, "namespace", json_object_new_string(ns_or_default(c)));
	if (c->argc)
		json_object_object_add(req, "name", json_object_new_string(c->argv[0]));
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	json_object_object_get_ex(resp, "items", &items);
	s->items = json_object_get(items);
	s->t = mono_s();
	json_object_put(resp);
	return 0;
}

/* A backend's counter in an older sample: the shift and backend by name. */
static int64_t top_old(struct json_object *items, const char *ns, const char *name,
		       const char *backend, const char *field)
{
	size_t i, j;

	for (i = 0; i < json_object_array_length(items); i++) {
		struct json_object *it = json_object_array_get_idx(items, i), *bs;

		if (strcmp(json_object_get_string(path_get(it, "metadata", "namespace")), ns) ||
		    strcmp(json_object_get_string(path_get(it, "metadata", "name")), name))
			continue;
		if (!field)
			return json_object_get_int64(path_get(it, "status", "rejectedFlows"));
		bs = path_get(it, "status", "backends");
		for (j = 0; j < json_object_array_length(bs); j++) {
			struct json_object *b = json_object_array_get_idx(bs, j);

			if (!strcmp(json_object_get_string(path_get(b, "name", NULL)), backend))
				return json_object_get_int64(path_get(b, field, NULL));
		}
	}
	return -1;
}

/* One screen: rates between prev and now, shares between win and now. */
static void top_print(const struct top_sample *now, const struct top_sample *prev,
		      const struct top_sample *win, bool ansi)
{
	double dt = now->t - prev->t, dw = now->t - win->t;
	size_t i, j;

	if (ansi)
		printf("\033[H\033[2J");
	printf("kshiftctl top: rates over the last %.1f s, observed shares of new flows over the "
	       "last %.1f s\n",
	       dt, dw);
	printf("%-24s %-12s %8s %7s %9s %9s %10s %12s %8s %8s\n", "SHIFT", "BACKEND", "WEIGHT",
	       "SHARE", "OBSERVED", "NEW/S", "PACKETS/S", "BYTES/S", "RESETS", "OPEN");
	for (i = 0; i < json_object_array_length(now->items); i++) {
		struct json_object *it = json_object_array_get_idx(now->items, i);
		struct json_object *bs = path_get(it, "status", "backends");
		const char *ns = json_object_get_string(path_get(it, "metadata", "namespace"));
		const char *name = json_object_get_string(path_get(it, "metadata", "name"));
		int64_t total = 0, rej, rej_old;
		char shift[2 * KS_NAME_LEN];

		snprintf(shift, sizeof(shift), "%s/%s", ns, name);
		for (j = 0; j < json_object_array_length(bs); j++) {
			struct json_object *b = json_object_array_get_idx(bs, j);
			int64_t old = top_old(win->items, ns, name,
					      json_object_get_string(path_get(b, "name", NULL)),
					      "newFlows");

			total += json_object_get_int64(path_get(b, "newFlows", NULL)) -
				 (old < 0 ? 0 : old);
		}
		rej = json_object_get_int64(path_get(it, "status", "rejectedFlows"));
		rej_old = top_old(prev->items, ns, name, NULL, NULL);
		for (j = 0; j < json_object_array_length(bs); j++) {
			struct json_object *b = json_object_array_get_idx(bs, j);
			const char *bn = json_object_get_string(path_get(b, "name", NULL));
			int64_t nf = json_object_get_int64(path_get(b, "newFlows", NULL));
			int64_t wo = top_old(win->items, ns, name, bn, "newFlows");
			int64_t po = top_old(prev->items, ns, name, bn, "newFlows");
			int64_t pp = top_old(prev->items, ns, name, bn, "packets");
			int64_t pb = top_old(prev->items, ns, name, bn, "bytes");
			char obs[16];

			if (total > 0)
				snprintf(obs, sizeof(obs), "%.1f%%",
					 100.0 * (nf - (wo < 0 ? 0 : wo)) / total);
			else
				snprintf(obs, sizeof(obs), "-");
			printf("%-24s %-12s %8s %6.1f%% %9s %9.1f %10.1f %12.1f %8s %8s\n",
			       j ? "" : shift, bn,
			       json_object_get_string(path_get(b, "weight", NULL)),
			       json_object_get_double(path_get(b, "sharePercent", NULL)), obs,
			       dt > 0 && po >= 0 ? (nf - po) / dt : 0.0,
			       dt > 0 && pp >= 0
				       ? (json_object_get_int64(path_get(b, "packets", NULL)) -
					  pp) / dt
				       : 0.0,
			       dt > 0 && pb >= 0
				       ? (json_object_get_int64(path_get(b, "bytes", NULL)) - pb) /
						 dt
				       : 0.0,
			       j ? ""
				 : json_object_get_string(path_get(it, "status", "rejectedFlows")),
			       json_object_get_string(path_get(b, "openConnections", NULL)) ?: "-");
		}
		printf("%-24s resets %.1f/s (new flows no endpoint could take)\n", "",
		       dt > 0 && rej_old >= 0 ? (rej - rej_old) / dt : 0.0);
	}
	if (!json_object_array_length(now->items))
		printf("No resources found\n");
	fflush(stdout);
}

static void top_drop(struct top_sample *s)
{
	json_object_put(s->items);
	s->items = NULL;
}

/* top [NAME] [--once]: on a terminal, a screen redrawn every second; else,
 * or with --once, plain lines (--once: one block, rates over one second). */
static int cmd_top(struct ctl *c)
{
	struct top_sample h[TOP_SAMPLES] = {};
	bool ansi = !c->once && isatty(STDOUT_FILENO);
	size_t n = 0, i, w;
	int ret;

	if (c->argc > 1)
		return usage_error("top: unexpected argument %s", c->argv[1]);
	ret = top_fetch(c, &h[0]);
	if (ret)
		return ret;
	n = 1;
	for (;;) {
		sleep(1);
		if (n == TOP_SAMPLES) {
			top_drop(&h[0]);
			memmove(h, h + 1, (TOP_SAMPLES - 1) * sizeof(h[0]));
			memset(&h[TOP_SAMPLES - 1], 0, sizeof(h[0]));
			n--;
		}
		ret = top_fetch(c, &h[n]);
		if (ret)
			break;
		n++;
		/* the oldest sample within the window */
		for (w = 0; w + 1 < n && h[n - 1].t - h[w].t > TOP_WINDOW_S + 0.5; w++)
			;
		top_print(&h[n - 1], &h[n - 2], &h[w], ansi);
		if (c->once)
			break;
		if (!ansi)
			printf("\n");
	}
	for (i = 0; i < n; i++)
		top_drop(&h[i]);
	return ret;
}

/* The shift NAME as get -o json shows it (the answer holds it), or NULL
 * with the failure said. */
/* One shift as get shows it, without open connections (a walk of the
 * connection table that a change's check and summary do without). */
static struct json_object *get_one(const struct ctl *c, const char *name, struct json_object **resp)
{
	struct json_object *req = request("get", c, name), *items;

	json_object_object_add(req, "connections", json_object_new_boolean(0));
	if (call(c, req, resp))
		return NULL;
	json_object_object_get_ex(*resp, "items", &items);
	return json_object_array_get_idx(items, 0);
}

/* "stable=90 (90%) canary=10 (10%)" from a shift's status. */
static void weights_line(struct json_object *ts, char *buf, size_t len)
{
	struct json_object *bs = path_get(ts, "status", "backends");
	size_t i, w = 0;

	buf[0] = '\0';
	for (i = 0; i < json_object_array_length(bs) && w < len; i++) {
		struct json_object *b = json_object_array_get_idx(bs, i);

		w += snprintf(buf + w, len - w, "%s%s=%s (%.0f%%)", i ? " " : "",
			      json_object_get_string(path_get(b, "name", NULL)),
			      json_object_get_string(path_get(b, "weight", NULL)),
			      json_object_get_double(path_get(b, "sharePercent", NULL)));
	}
}

/*
 * A weight change (set: weights; switch, promote: target), refused before
 * it is sent if it would leave every backend that has weight without an
 * endpoint (every new connection reset) unless --force; weights all 0 is
 * the recreate step, and allowed. Says what it did afterwards.
 */
static int change(const struct ctl *c, const char *cmd, struct json_object *req,
		  struct json_object *weights, const char *target)
{
	struct json_object *resp = NULL, *ts, *bs;
	char gen[48] = "";
	const char *name = c->argv[0];
	bool weighted = false, served = false;
	char line[1024];
	size_t i;
	int ret;

	ts = get_one(c, name, &resp);
	if (!ts) {
		json_object_put(req);
		json_object_put(resp);
		return EXIT_FAILED;
	}
	bs = path_get(ts, "status", "backends");
	for (i = 0; i < json_object_array_length(bs); i++) {
		struct json_object *b = json_object_array_get_idx(bs, i), *w;
		const char *bn = json_object_get_string(path_get(b, "name", NULL));
		int64_t weight = json_object_get_int64(path_get(b, "weight", NULL));

		if (weights && json_object_object_get_ex(weights, bn, &w))
			weight = json_object_get_int64(w);
		if (target)
			weight = !strcmp(bn, target);
		if (!strcmp(cmd, "rollback"))
			weight = i == 0;
		if (weight) {
			weighted = true;
			served |= json_object_get_int64(path_get(b, "endpoints", NULL)) > 0;
		}
	}
	json_object_put(resp);
	if (weighted && !served && !c->force) {
		json_object_put(req);
		return fail("%s %s: every backend with weight would have no endpoint, so every new "
			    "connection would be reset; add endpoints first, or pass --force",
			    cmd, name);
	}
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	if (print_answer(c, resp)) {
		json_object_put(resp);
		return EXIT_OK;
	}
	if (path_get(resp, "generation", NULL))
		snprintf(gen, sizeof(gen), ", generation %s",
			 json_object_get_string(path_get(resp, "generation", NULL)));
	json_object_put(resp);
	resp = NULL;
	ts = get_one(c, name, &resp);
	if (ts) {
		weights_line(ts, line, sizeof(line));
		printf("%s/%s: %s%s\n",
		       json_object_get_string(path_get(ts, "metadata", "namespace")), name, line,
		       gen);
	}
	json_object_put(resp);
	return EXIT_OK;
}

/* switch NAME BACKEND, promote NAME [BACKEND], rollback NAME */
static int cmd_named(struct ctl *c, const char *cmd, int min_args, int max_args)
{
	struct json_object *req;

	if (c->argc < min_args || c->argc > max_args)
		return usage_error("%s: %s expected", cmd,
				   max_args == 1   ? "NAME"
				   : min_args == 2 ? "NAME BACKEND"
						   : "NAME [BACKEND]");
	req = request(cmd, c, c->argv[0]);
	if (c->argc > 1)
		json_object_object_add(req, "backend", json_object_new_string(c->argv[1]));
	return change(c, cmd, req, NULL, c->argc > 1 ? c->argv[1] : NULL);
}

/* One deletion, said when done. */
static int deleted(const struct ctl *c, struct json_object *req, const char *ns, const char *name)
{
	struct json_object *resp, *gen;
	int ret = call(c, req, &resp);

	if (ret)
		return ret;
	if (print_answer(c, resp)) {
		json_object_put(resp);
		return EXIT_OK;
	}
	gen = path_get(resp, "generation", NULL);
	printf("deleted %s/%s%s%s\n", ns, name, gen ? ", generation " : "",
	       gen ? json_object_get_string(gen) : "");
	json_object_put(resp);
	return EXIT_OK;
}

/* mirror NAME BACKEND [--percent P] | mirror NAME --off (docs/shadow.md) */
static int cmd_mirror(struct ctl *c, const char *percent, bool off)
{
	struct json_object *req, *resp;
	char *end;
	long p = 100;
	int ret;

	if (off ? c->argc != 1 : c->argc != 2)
		return usage_error("mirror: NAME BACKEND [--percent P] or NAME --off expected");
	if (off && percent)
		return usage_error("mirror: --off and --percent do not go together");
	if (percent) {
		errno = 0;
		p = strtol(percent, &end, 10);
		if (errno || !*percent || *end || p < 0 || p > 100)
			return fail("mirror: percent %s: must be an integer 0..100", percent);
	}
	req = request("mirror", c, c->argv[0]);
	if (!off) {
		json_object_object_add(req, "backend", json_object_new_string(c->argv[1]));
		json_object_object_add(req, "percent", json_object_new_int64(p));
	}
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	if (print_answer(c, resp))
		;
	else if (off)
		printf("%s: mirror off\n", c->argv[0]);
	else
		printf("%s: mirroring %ld%% of new flows to %s\n", c->argv[0], p, c->argv[1]);
	json_object_put(resp);
	return 0;
}

/* delete NAME... | delete -f FILE: every one is tried, one missing or
 * refused does not keep the rest */
static int cmd_delete(struct ctl *c)
{
	struct json_object **docs;
	char err[KS_ERR_LEN];
	size_t nr = 0, i;
	int ret = EXIT_OK;
	char *text;

	if (c->file && c->argc)
		return usage_error("delete: NAME... or -f FILE, not both");
	if (!c->file && !c->argc)
		return usage_error("delete: NAME... or -f FILE expected");
	if (!c->file) {
		for (i = 0; i < (size_t)c->argc; i++)
			ret |= deleted(c, request("delete", c, c->argv[i]), ns_or_default(c),
				       c->argv[i]);
		return ret ? EXIT_FAILED : EXIT_OK;
	}
	text = read_input(c->file);
	if (!text)
		return fail("%s: %s", c->file, strerror(errno));
	if (ks_yaml_to_json(text, strlen(text), &docs, &nr, err, sizeof(err))) {
		free(text);
		return fail("%s: %s", c->file, err);
	}
	free(text);
	for (i = 0; i < nr; i++) {
		struct json_object *meta = path_get(docs[i], "metadata", NULL);
		struct json_object *name = path_get(meta, "name", NULL);
		struct json_object *ns = path_get(meta, "namespace", NULL), *req;

		if (!json_object_is_type(name, json_type_string)) {
			ret |= fail("%s: document %zu: metadata.name: required", c->file, i + 1);
			continue;
		}
		req = request("delete", c, json_object_get_string(name));
		if (json_object_is_type(ns, json_type_string))
			json_object_object_add(req, "namespace",
					       json_object_new_string(json_object_get_string(ns)));
		ret |= deleted(c, req,
			       json_object_is_type(ns, json_type_string)
				       ? json_object_get_string(ns)
				       : ns_or_default(c),
			       json_object_get_string(name));
	}
	for (i = 0; i < nr; i++)
		json_object_put(docs[i]);
	free(docs);
	return ret ? EXIT_FAILED : EXIT_OK;
}

static int cmd_conns(struct ctl *c)
{
	struct json_object *req, *resp, *items;
	size_t i, n;
	int ret;

	if (c->argc > 1)
		return usage_error("conns: unexpected argument %s", c->argv[1]);
	if (c->output && strcmp(c->output, "json"))
		return usage_error("conns: -o %s: only json", c->output);
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("conns"));
	if (c->ns || c->argc)
		json_object_object_add(req, "namespace", json_object_new_string(ns_or_default(c)));
	if (c->argc)
		json_object_object_add(req, "name", json_object_new_string(c->argv[0]));
	if (c->flush)
		json_object_object_add(req, "flush", json_object_new_boolean(true));
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	if (c->flush && !c->output) {
		printf("flushed %lld flow(s)\n",
		       (long long)json_object_get_int64(path_get(resp, "flushed", NULL)));
		json_object_put(resp);
		return EXIT_OK;
	}
	if (c->output) {
		printf("%s\n", json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY));
		json_object_put(resp);
		return EXIT_OK;
	}
	items = path_get(resp, "items", NULL);
	n = json_object_array_length(items);
	if (!n) {
		printf("No connections found\n");
	} else {
		printf("%-12s %-16s %-5s %-22s %-22s %-22s %-10s %-12s %8s\n", "NAMESPACE",
		       "SHIFT", "PROTO", "CLIENT", "FRONTEND", "ENDPOINT", "BACKEND", "STATE",
		       "IDLE");
		for (i = 0; i < n; i++) {
			struct json_object *f = json_object_array_get_idx(items, i);

			printf("%-12s %-16s %-5s %-22s %-22s %-22s %-10s %-12s %7.1fs\n",
			       json_object_get_string(path_get(f, "namespace", NULL)),
			       json_object_get_string(path_get(f, "shift", NULL)),
			       json_object_get_string(path_get(f, "protocol", NULL)),
			       json_object_get_string(path_get(f, "client", NULL)),
			       json_object_get_string(path_get(f, "frontend", NULL)),
			       json_object_get_string(path_get(f, "endpoint", NULL)),
			       json_object_get_string(path_get(f, "backend", NULL)),
			       json_object_get_string(path_get(f, "state", NULL)),
			       json_object_get_double(path_get(f, "idleSeconds", NULL)));
		}
	}
	if ((size_t)json_object_get_int64(path_get(resp, "total", NULL)) > n)
		printf("(%zu of %lld flows shown)\n", n,
		       (long long)json_object_get_int64(path_get(resp, "total", NULL)));
	json_object_put(resp);
	return EXIT_OK;
}

static int cmd_verdicts(struct ctl *c)
{
	struct json_object *req = json_object_new_object(), *resp;
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("verdicts"));
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	if (c->output && !strcmp(c->output, "json")) {
		printf("%s\n", json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY));
	} else if (c->output) {
		json_object_put(resp);
		return usage_error("verdicts: -o %s: only json", c->output);
	} else {
		struct json_object *v = path_get(resp, "verdicts", NULL);
		struct json_object *ifs = path_get(resp, "interfaces", NULL);

		printf("%-24s %16s\n", "VERDICT", "PACKETS");
		json_object_object_foreach(v, key, val)
			printf("%-24s %16s\n", key, json_object_get_string(val));
		if (ifs) {
			printf("\n%-24s %16s\n", "INTERFACE", "MODE");
			json_object_object_foreach(ifs, ik, iv)
				printf("%-24s %16s\n", ik, json_object_get_string(iv));
		}
	}
	json_object_put(resp);
	return EXIT_OK;
}

/* Run as a kubectl plugin (kubectl kshift ...), through its link. */
static bool is_plugin(const char *argv0)
{
	const char *base = strrchr(argv0, '/');

	return !strcmp(base ? base + 1 : argv0, "kubectl-kshift");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "filename", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "kubernetes", no_argument, NULL, 'k' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "context", required_argument, NULL, 'C' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "wait", no_argument, NULL, 'W' },
		{ "all-namespaces", no_argument, NULL, 'A' },
		{ "percent", required_argument, NULL, 'P' },
		{ "off", no_argument, NULL, 'O' },
		{ "once", no_argument, NULL, '1' }, /* top */
		{ "force", no_argument, NULL, 'F' },
		{ "flush", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct ctl c = { .socket = getenv("KSHIFT_SOCKET") ?: KS_DEFAULT_SOCKET };
	struct ks_kctl_opts k = { .usage = usage };
	bool kube = false, socket = false, help = false;
	const struct verb *v;
	const char *cmd;
	long ms;
	int opt;

	while ((opt = getopt_long(argc, argv, "n:f:o:Ah", opts, NULL)) != -1) {
		switch (opt) {
		case 'S':
			c.socket = optarg;
			socket = true;
			break;
		case 'n':
			c.ns = k.ns = optarg;
			break;
		case 'f':
			c.file = k.file = optarg;
			break;
		case 'o':
			/* -o json, -ojson and -o=json, as kubectl takes them */
			c.output = k.output = optarg + (optarg[0] == '=');
			break;
		case 'k':
			kube = true;
			break;
		case 'K':
			k.kubeconfig = optarg;
			kube = true;
			break;
		case 'C':
			k.context = optarg;
			kube = true;
			break;
		case 'T':
			if (ks_duration_parse(optarg, &ms) || ms > INT_MAX)
				return usage_error("--timeout %s: expected a duration like 500ms, "
						   "10s or 2m",
						   optarg);
			k.timeout_ms = c.timeout_ms = ms;
			break;
		case 'W':
			k.wait = true;
			break;
		case 'A':
			k.all_namespaces = true;
			break;
		case 'P':
			k.percent = optarg;
			break;
		case 'O':
			k.off = true;
			break;
		case '1':
			c.once = true;
			break;
		case 'F':
			c.force = true;
			break;
		case 'X':
			c.flush = true;
			break;
		case 'h':
			help = true;
			break;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (help) {
		v = optind < argc ? verb_of(argv[optind]) : NULL;
		if (optind < argc && !v)
			return usage_error("%s: unknown command", argv[optind]);
		if (v)
			verb_usage(stdout, v);
		else
			usage(stdout);
		return EXIT_OK;
	}
	/* a peer that hangs up is an error to report, not a signal to die of */
	signal(SIGPIPE, SIG_IGN);
	if (kube && socket)
		return usage_error("--socket and --kubernetes do not go together");
	if (optind >= argc)
		return usage_error("a command is required");
	cmd = argv[optind];
	if (!strcmp(cmd, "version")) {
		if (argc - optind > 1)
			return usage_error("version: unexpected argument %s", argv[optind + 1]);
		printf("kshiftctl %s\n", KSHIFT_VERSION);
		return EXIT_OK;
	}
	if (c.force && strcmp(cmd, "set") && strcmp(cmd, "switch"))
		return usage_error("%s: --force is for set and switch", cmd);
	if (c.flush && strcmp(cmd, "conns"))
		return usage_error("%s: --flush is for conns", cmd);
	c.argc = argc - optind - 1;
	c.argv = argv + optind + 1;

	/* a kubectl plugin acts on the cluster, unless told a socket */
	if (kube || (is_plugin(argv[0]) && !socket))
		return ks_kctl_run(&k, cmd, c.argc, c.argv);

	if (!c.timeout_ms)
		c.timeout_ms = KS_CTL_DEFAULT_TIMEOUT_MS;
	if (k.all_namespaces) {
		if (c.ns)
			return usage_error("-n and -A do not go together");
		if (strcmp(cmd, "get"))
			return usage_error("%s: -A is only for get", cmd);
	}
	if ((k.percent || k.off) && strcmp(cmd, "mirror"))
		return usage_error("--percent and --off are for mirror");
	if (c.output && strcmp(c.output, "json") && strcmp(cmd, "get") && strcmp(cmd, "top"))
		return usage_error("%s: -o %s: only json (the daemon's answer, with elapsed_us)",
				   cmd, c.output);
	/* --wait is what local mode always does: a change returns applied */
	if (!strcmp(cmd, "apply"))
		return cmd_apply(&c);
	if (!strcmp(cmd, "get"))
		return cmd_get(&c);
	if (!strcmp(cmd, "set"))
		return cmd_set(&c);
	if (!strcmp(cmd, "switch"))
		return cmd_named(&c, cmd, 2, 2);
	if (!strcmp(cmd, "promote"))
		return cmd_named(&c, cmd, 1, 2);
	if (!strcmp(cmd, "rollback"))
		return cmd_named(&c, cmd, 1, 1);
	if (!strcmp(cmd, "delete"))
		return cmd_delete(&c);
	if (!strcmp(cmd, "verdicts"))
		return cmd_verdicts(&c);
	if (!strcmp(cmd, "mirror"))
		return cmd_mirror(&c, k.percent, k.off);
	if (!strcmp(cmd, "top"))
		return cmd_top(&c);
	if (!strcmp(cmd, "conns"))
		return cmd_conns(&c);
	return usage_error("%s: unknown command", cmd);
}
