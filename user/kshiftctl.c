// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshiftctl: changes and shows TrafficShifts through kshiftd's control
 * socket. Every change returns once the dataplane has applied it.
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
#include "lib/shift.h"

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *socket;
	const char *ns;	    /* -n; NULL: every namespace for get, "default" otherwise */
	const char *file;   /* apply -f */
	const char *output; /* get -o */
	int argc;	    /* positionals after the command */
	char **argv;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: kshiftctl [--socket PATH] [-n NAMESPACE] COMMAND\n"
		   "  apply -f FILE                create or replace the shifts in a manifest (- "
		   "for stdin)\n"
		   "  get [NAME] [-o wide|json|yaml]  shifts, weights, endpoints, observed split\n"
		   "  set NAME BACKEND=W ...       set weights\n"
		   "  switch NAME BACKEND          blue/green: all weight to BACKEND, atomically\n"
		   "  promote NAME [BACKEND]       all weight to the canary (the last backend "
		   "unless named)\n"
		   "  rollback NAME                all weight back to the first backend\n"
		   "  delete NAME\n"
		   "  verdicts                     the dataplane's per-reason packet counters\n");
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

	ret = ks_ctl_call(c->socket, req, &resp);
	json_object_put(req);
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

/* Prints a JSON value as YAML (block style), indent spaces deep. */
static void print_yaml(struct json_object *v, int indent, bool in_list)
{
	size_t i, n;
	bool first = true;

	switch (json_object_get_type(v)) {
	case json_type_object:
		if (!json_object_object_length(v)) {
			printf(" {}\n");
			break;
		}
		if (!in_list)
			printf("\n");
		json_object_object_foreach(v, key, val) {
			printf("%*s%s:", (in_list && first) ? 0 : indent, "", key);
			first = false;
			print_yaml(val, indent + 2, false);
		}
		break;
	case json_type_array:
		n = json_object_array_length(v);
		if (!n) {
			printf(" []\n");
			break;
		}
		printf("\n");
		for (i = 0; i < n; i++) {
			struct json_object *item = json_object_array_get_idx(v, i);

			printf("%*s- ", indent, "");
			if (json_object_is_type(item, json_type_object))
				print_yaml(item, indent + 2, true);
			else {
				print_yaml(item, 0, true);
			}
		}
		break;
	case json_type_string:
		printf("%s%s\n", in_list ? "" : " ",
		       json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE));
		break;
	default:
		printf("%s%s\n", in_list ? "" : " ", json_object_to_json_string(v));
		break;
	}
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
		print_yaml(shown, 0, true);
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

/* switch NAME BACKEND, promote NAME [BACKEND], rollback NAME, delete NAME */
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "namespace", required_argument, NULL, 'n' },
		{ "filename", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "kubernetes", no_argument, NULL, 'k' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct ctl c = { .socket = KS_DEFAULT_SOCKET };
	const char *cmd;
	int opt;

	while ((opt = getopt_long(argc, argv, "n:f:o:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'S':
			c.socket = optarg;
			break;
		case 'n':
			c.ns = optarg;
			break;
		case 'f':
			c.file = optarg;
			break;
		case 'o':
			c.output = optarg;
			break;
		case 'k':
		case 'K':
			return fail("--kubernetes: not available in this version");
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("a command is required");
	cmd = argv[optind];
	c.argc = argc - optind - 1;
	c.argv = argv + optind + 1;

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
	if (!strcmp(cmd, "rollback") || !strcmp(cmd, "delete"))
		return cmd_named(&c, cmd, 1, 1);
	if (!strcmp(cmd, "verdicts"))
		return cmd_verdicts(&c);
	if (!strcmp(cmd, "mirror") || !strcmp(cmd, "top"))
		return fail("%s: not available in this version", cmd);
	return usage_error("%s: unknown command", cmd);
}
