// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Where the Kubernetes API server is and how to authenticate to it: a
 * kubeconfig file (the subset kubectl writes for certificate and token
 * users) or, inside a pod, the service account's files. See kube.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>
#include "kube.h"

struct kcfg {
	const char *path;
	char dir[PATH_MAX]; /* relative paths in the file resolve against this */
	yaml_document_t doc;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct kcfg *k, int ret, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	n = snprintf(k->err, k->errlen, "kubeconfig %s: ", k->path);
	if (n < k->errlen) {
		va_start(ap, fmt);
		vsnprintf(k->err + n, k->errlen - n, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static yaml_node_t *node(struct kcfg *k, int id)
{
	return yaml_document_get_node(&k->doc, id);
}

/* The value under key in mapping n, or NULL. */
static yaml_node_t *get(struct kcfg *k, yaml_node_t *n, const char *key)
{
	yaml_node_pair_t *p;

	if (!n || n->type != YAML_MAPPING_NODE)
		return NULL;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *kn = node(k, p->key);

		if (kn && kn->type == YAML_SCALAR_NODE &&
		    !strcmp((char *)kn->data.scalar.value, key))
			return node(k, p->value);
	}
	return NULL;
}

/* The scalar under key, NULL when absent, empty or not a scalar. */
static const char *get_str(struct kcfg *k, yaml_node_t *n, const char *key)
{
	yaml_node_t *v = get(k, n, key);

	if (!v || v->type != YAML_SCALAR_NODE || !v->data.scalar.length)
		return NULL;
	return (const char *)v->data.scalar.value;
}

/*
 * clusters, users and contexts are lists of {name: N, <what>: {...}}:
 * the inner mapping of the entry named name, or NULL.
 */
static yaml_node_t *named(struct kcfg *k, const char *list, const char *what, const char *name)
{
	yaml_node_t *seq = get(k, node(k, 1), list);
	yaml_node_item_t *it;

	if (!seq || seq->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *e = node(k, *it);
		const char *n = get_str(k, e, "name");

		if (n && !strcmp(n, name)) {
			yaml_node_t *inner = get(k, e, what);

			/* an entry with no body is as good as an empty one */
			return inner ? inner : e;
		}
	}
	return NULL;
}

/* A file named in the kubeconfig: relative to the kubeconfig's directory. */
static int dup_path(struct kcfg *k, const char *v, char **out)
{
	if (v[0] == '/' || !k->dir[0])
		*out = strdup(v);
	else if (asprintf(out, "%s/%s", k->dir, v) < 0)
		*out = NULL;
	return *out ? 0 : -ENOMEM;
}

static int b64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe base64, whitespace and padding ignored; the result is
 * NUL-terminated (PEM is text). -EINVAL on any other character. */
static int b64_decode(const char *in, char **out)
{
	size_t len = strlen(in), n = 0;
	unsigned int acc = 0, bits = 0;
	char *p = malloc(len / 4 * 3 + 4);

	if (!p)
		return -ENOMEM;
	for (; *in; in++) {
		int v = b64_value((unsigned char)*in);

		if (v < 0) {
			if (*in == '=' || *in == '\n' || *in == '\r' || *in == ' ' || *in == '\t')
				continue;
			free(p);
			return -EINVAL;
		}
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[n++] = (acc >> bits) & 0xff;
		}
	}
	p[n] = '\0';
	*out = p;
	return 0;
}

/* For each credential a file (path) or inline data (base64). */
static int file_or_data(struct kcfg *k, yaml_node_t *n, const char *what, const char *name,
			const char *file_key, char **file, char **data)
{
	const char *f = get_str(k, n, file_key), *d;
	char key[64];

	snprintf(key, sizeof(key), "%s-data", file_key);
	d = get_str(k, n, key);
	if (d) {
		if (b64_decode(d, data))
			return fail(k, -EINVAL, "%s %s: %s: not valid base64", what, name, key);
		return 0;
	}
	return f ? dup_path(k, f, file) : 0;
}

static int load_cluster(struct kcfg *k, struct ks_kube_conf *c, const char *name)
{
	yaml_node_t *cl = named(k, "clusters", "cluster", name);
	const char *v;
	int err;

	if (!cl)
		return fail(k, -ENOENT, "cluster %s: not found", name);
	v = get_str(k, cl, "server");
	if (!v)
		return fail(k, -EINVAL, "cluster %s: server: missing", name);
	c->server = strdup(v);
	if (!c->server)
		return -ENOMEM;
	v = get_str(k, cl, "insecure-skip-tls-verify");
	c->insecure = v && !strcmp(v, "true");
	err = file_or_data(k, cl, "cluster", name, "certificate-authority", &c->ca_file,
			   &c->ca_data);
	if (err)
		return err;
	if (get(k, cl, "proxy-url"))
		return fail(k, -EOPNOTSUPP, "cluster %s: proxy-url: not supported", name);
	return 0;
}

static int load_user(struct kcfg *k, struct ks_kube_conf *c, const char *name)
{
	yaml_node_t *u = named(k, "users", "user", name);
	const char *v;
	int err;

	if (!u)
		return fail(k, -ENOENT, "user %s: not found", name);
	/* Say which kind of credential we cannot use rather than connecting
	 * without one and failing with a 401 later. */
	if (get(k, u, "exec")) {
		v = get_str(k, get(k, u, "exec"), "command");
		return fail(k, -EOPNOTSUPP,
			    "user %s: exec: credential plugins (%s) are not supported", name,
			    v ? v : "no command");
	}
	if (get(k, u, "auth-provider")) {
		v = get_str(k, get(k, u, "auth-provider"), "name");
		return fail(k, -EOPNOTSUPP, "user %s: auth-provider: %s: not supported", name,
			    v ? v : "unnamed");
	}
	if (get(k, u, "username") || get(k, u, "password"))
		return fail(k, -EOPNOTSUPP, "user %s: username/password: not supported", name);
	v = get_str(k, u, "token");
	if (v && !(c->token = strdup(v)))
		return -ENOMEM;
	v = get_str(k, u, "tokenFile");
	if (v && (err = dup_path(k, v, &c->token_file)))
		return err;
	err = file_or_data(k, u, "user", name, "client-certificate", &c->cert_file, &c->cert_data);
	if (!err)
		err = file_or_data(k, u, "user", name, "client-key", &c->key_file, &c->key_data);
	if (err)
		return err;
	if (!(c->cert_file || c->cert_data) != !(c->key_file || c->key_data))
		return fail(k, -EINVAL, "user %s: %s: missing", name,
			    c->key_file || c->key_data ? "client-certificate" : "client-key");
	return 0;
}

static int load_kubeconfig(struct ks_kube_conf *c, const char *path, const char *context,
			   char *errbuf, size_t errlen)
{
	struct kcfg k = { .path = path, .err = errbuf, .errlen = errlen };
	yaml_parser_t parser;
	yaml_node_t *ctx;
	const char *v, *slash;
	FILE *f;
	int err;

	f = fopen(path, "r");
	if (!f) {
		err = -errno;
		return fail(&k, err, "%s", strerror(-err));
	}
	slash = strrchr(path, '/');
	if (slash)
		snprintf(k.dir, sizeof(k.dir), "%.*s", (int)(slash - path) ?: 1, path);
	if (!yaml_parser_initialize(&parser)) {
		fclose(f);
		return -ENOMEM;
	}
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &k.doc)) {
		err = fail(&k, -EINVAL, "line %zu: %s", parser.problem_mark.line + 1,
			   parser.problem ? parser.problem : "not YAML");
		yaml_parser_delete(&parser);
		fclose(f);
		return err;
	}
	yaml_parser_delete(&parser);
	fclose(f);

	err = -EINVAL;
	if (!node(&k, 1) || node(&k, 1)->type != YAML_MAPPING_NODE) {
		fail(&k, err, "not a kubeconfig (no mapping at the top)");
		goto out;
	}
	if (!context) {
		context = get_str(&k, node(&k, 1), "current-context");
		if (!context) {
			fail(&k, err, "current-context: missing, and no context given");
			goto out;
		}
	}
	ctx = named(&k, "contexts", "context", context);
	if (!ctx) {
		err = fail(&k, -ENOENT, "context %s: not found", context);
		goto out;
	}
	v = get_str(&k, ctx, "cluster");
	if (!v) {
		fail(&k, err, "context %s: cluster: missing", context);
		goto out;
	}
	err = load_cluster(&k, c, v);
	if (err)
		goto out;
	v = get_str(&k, ctx, "user");
	if (v && (err = load_user(&k, c, v)))
		goto out;
	v = get_str(&k, ctx, "namespace");
	if (v && !(c->namespace = strdup(v)))
		err = -ENOMEM;
out:
	yaml_document_delete(&k.doc);
	return err;
}

static bool exists(const char *path)
{
	return !access(path, F_OK);
}

/* The first line of a small file, trimmed; -errno when unreadable. */
static int read_small(const char *path, char **out)
{
	char buf[4096];
	size_t n;
	FILE *f = fopen(path, "r");

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

/* Inside a pod: the kubernetes Service's address from the environment and the
 * service account's files. With apiserver given, a missing environment or
 * missing files are not errors: the URL alone may be enough (a proxy). */
static int load_in_cluster(struct ks_kube_conf *c, const char *sa_dir, bool have_server, char *err,
			   size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	char path[PATH_MAX];
	int ret;

	if (!have_server) {
		if (!host || !*host || !port || !*port) {
			snprintf(err, errlen,
				 "no kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) and "
				 "not in "
				 "a cluster (KUBERNETES_SERVICE_HOST/_PORT unset)");
			return -ENOENT;
		}
		/* an IPv6 literal needs brackets in a URL */
		if (asprintf(&c->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
			     host, port) < 0)
			return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/token", sa_dir);
	if (exists(path)) {
		c->token_file = strdup(path);
		if (!c->token_file)
			return -ENOMEM;
	} else if (!have_server) {
		snprintf(err, errlen, "in-cluster: %s: %s", path, strerror(ENOENT));
		return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/ca.crt", sa_dir);
	if (exists(path) && !(c->ca_file = strdup(path)))
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/namespace", sa_dir);
	if (exists(path) && (ret = read_small(path, &c->namespace))) {
		snprintf(err, errlen, "in-cluster: %s: %s", path, strerror(-ret));
		return ret;
	}
	return 0;
}

/* --kubeconfig, else the first file of $KUBECONFIG that exists (kubectl
 * merges them all; we take the first whole, which is what a single-cluster
 * daemon needs), else ~/.kube/config. NULL: none. Like kubectl, a set
 * $KUBECONFIG hides ~/.kube/config. */
static char *find_kubeconfig(const char *given)
{
	const char *env = getenv("KUBECONFIG"), *home = getenv("HOME");
	char *path = NULL;

	if (given)
		return strdup(given);
	if (env && *env) {
		char *list = strdup(env), *save, *p;

		for (p = list ? strtok_r(list, ":", &save) : NULL; p;
		     p = strtok_r(NULL, ":", &save))
			if (exists(p)) {
				path = strdup(p);
				break;
			}
		free(list);
		return path;
	}
	if (home && asprintf(&path, "%s/.kube/config", home) >= 0 && !exists(path)) {
		free(path);
		path = NULL;
	}
	return path;
}

int ks_kube_conf_load(struct ks_kube_conf *conf, const char *kubeconfig, const char *context,
		      const char *apiserver, const char *sa_dir, char *err, size_t errlen)
{
	char *path = find_kubeconfig(kubeconfig);
	size_t n;
	int ret;

	memset(conf, 0, sizeof(*conf));
	err[0] = '\0';
	if (path)
		ret = load_kubeconfig(conf, path, context, err, errlen);
	else
		ret = load_in_cluster(conf, sa_dir ? sa_dir : KS_KUBE_SA_DIR, apiserver != NULL,
				      err, errlen);
	free(path);
	if (!ret && apiserver) {
		free(conf->server);
		conf->server = strdup(apiserver);
	}
	if (!ret && !conf->namespace)
		conf->namespace = strdup("default");
	if (!ret && (!conf->server || !conf->namespace))
		ret = -ENOMEM;
	if (!ret) {
		n = strlen(conf->server);
		while (n && conf->server[n - 1] == '/')
			conf->server[--n] = '\0';
		if (strncmp(conf->server, "https://", 8) && strncmp(conf->server, "http://", 7)) {
			snprintf(err, errlen, "server %s: not an http:// or https:// URL",
				 conf->server);
			ret = -EINVAL;
		}
	}
	if (ret) {
		if (ret == -ENOMEM && !err[0])
			snprintf(err, errlen, "kubernetes configuration: %s", strerror(ENOMEM));
		ks_kube_conf_free(conf);
	}
	return ret;
}

void ks_kube_conf_free(struct ks_kube_conf *c)
{
	free(c->server);
	free(c->ca_file);
	free(c->ca_data);
	free(c->token);
	free(c->token_file);
	free(c->cert_file);
	free(c->cert_data);
	free(c->key_file);
	free(c->key_data);
	free(c->namespace);
	memset(c, 0, sizeof(*c));
}
