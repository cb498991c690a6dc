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
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
		   "  mirror NAME BACKEND [--percent P] | mirror NAME --off   (--kubernetes)\n"
		   "  delete NAME... | delete -f FILE\n"
		   "  verdicts                     the dataplane's per-reason packet counters\n"
		   "options:\n"
		   "  --timeout D                  give up after D (500ms, 10s, 2m; default 30s,\n"
		   "                               60s with --wait)\n"
		   "  --wait                       --kubernetes: after a change, wait until every\n"
		   "                               node has programmed it\n"
		   "  -A, --all-namespaces         get: every namespace\n"
		   "KSHIFT_SOCKET stands for --socket. As kubectl-kshift (kubectl kshift ...),\n"
		   "--kubernetes is the default.\n");
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
	if (ret)
		return fail("%s: %s (is kshiftd running?)", c->socket, strerror(-ret));
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
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("apply"));
	json_object_object_add(req, "manifest", json_object_new_string(text));
	free(text);
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	json_object_object_get_ex(resp, "applied", &n);
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

static void print_table(struct json_object *items, bool wide)
{
	size_t i, j, n = json_object_array_length(items);

	printf("%-12s %-20s %-12s %8s %9s %10s %9s", "NAMESPACE", "NAME", "BACKEND", "WEIGHT",
	       "ENDPOINTS", "NEW-FLOWS", "OBSERVED");
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

			printf("%-12s %-20s %-12s %8s %9s %10s %8.1f%%", j ? "" : ns, j ? "" : name,
			       json_object_get_string(path_get(b, "name", NULL)),
			       json_object_get_string(path_get(b, "weight", NULL)),
			       json_object_get_string(path_get(b, "endpoints", NULL)),
			       json_object_get_string(path_get(b, "newFlows", NULL)),
			       json_object_get_double(path_get(b, "observedPercent", NULL)));
			if (wide)
				printf(" %12s %14s %s",
				       json_object_get_string(path_get(b, "packets", NULL)),
				       json_object_get_string(path_get(b, "bytes", NULL)),
				       j ? ""
					 : json_object_get_string(
						   path_get(it, "status", "source")));
			printf("\n");
		}
		print_rules(path_get(it, "status", "rules"));
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
		json_object_object_add(weights, c->argv[i], json_object_new_int64(w));
	}
	return call(c, req, NULL);
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
	return call(c, req, NULL);
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
			ret |= call(c, request("delete", c, c->argv[i]), NULL);
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
		ret |= call(c, req, NULL);
	}
	for (i = 0; i < nr; i++)
		json_object_put(docs[i]);
	free(docs);
	return ret ? EXIT_FAILED : EXIT_OK;
}

static int cmd_verdicts(struct ctl *c)
{
	struct json_object *req = json_object_new_object(), *resp;
	int ret;

	json_object_object_add(req, "cmd", json_object_new_string("verdicts"));
	ret = call(c, req, &resp);
	if (ret)
		return ret;
	printf("%s\n", json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PRETTY));
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
		{ "once", no_argument, NULL, '1' }, /* top: taken so that top's answer is seen */
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct ctl c = { .socket = getenv("KSHIFT_SOCKET") ?: KS_DEFAULT_SOCKET };
	struct ks_kctl_opts k = { .usage = usage };
	bool kube = false, socket = false;
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
			c.output = k.output = optarg;
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
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (kube && socket)
		return usage_error("--socket and --kubernetes do not go together");
	if (optind >= argc)
		return usage_error("a command is required");
	cmd = argv[optind];
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
	if (k.percent || k.off)
		return usage_error("--percent and --off are for mirror, with --kubernetes");
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
	if (!strcmp(cmd, "mirror") || !strcmp(cmd, "top") || !strcmp(cmd, "conns"))
		return fail("%s: not available in this version", cmd);
	return usage_error("%s: unknown command", cmd);
}
