// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of finding the Kubernetes API server and credentials
 * (user/lib/kube_conf.c): kubeconfig files written to a temporary directory
 * (tokens, token files, base64 certificate data, contexts, relative paths,
 * refusals that name the file, field and value), $KUBECONFIG lists,
 * ~/.kube/config, and in-cluster service account directories.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/kube.h"

static char dir[64]; /* mkdtemp of a short template */
static struct ks_kube_conf conf;
static char err[512];

/* The path of name in the test's directory, valid for the next 3 calls. */
static const char *path_in(const char *name)
{
	static char buf[4][PATH_MAX];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static const char *write_file(const char *name, const char *text)
{
	const char *p = path_in(name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/test_kube_conf.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	/* nothing of the machine's own configuration may leak in */
	unsetenv("KUBECONFIG");
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	setenv("HOME", dir, 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	ks_kube_conf_free(&conf);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) ? -1 : 0;
}

static const char token_config[] = "apiVersion: v1\n"
				   "kind: Config\n"
				   "clusters:\n"
				   "- name: dev\n"
				   "  cluster:\n"
				   "    server: https://198.18.0.1:6443/\n"
				   "    insecure-skip-tls-verify: true\n"
				   "users:\n"
				   "- name: admin\n"
				   "  user:\n"
				   "    token: abc.def\n"
				   "contexts:\n"
				   "- name: dev\n"
				   "  context:\n"
				   "    cluster: dev\n"
				   "    user: admin\n"
				   "    namespace: shop\n"
				   "current-context: dev\n";

static void test_token(void **state)
{
	const char *p = write_file("config", token_config);

	(void)state;
	assert_int_equal(ks_kube_conf_load(&conf, p, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.1:6443");
	assert_true(conf.insecure);
	assert_string_equal(conf.token, "abc.def");
	assert_null(conf.token_file);
	assert_null(conf.ca_file);
	assert_null(conf.ca_data);
	assert_null(conf.cert_file);
	assert_string_equal(conf.namespace, "shop");
}

static void test_token_file_relative_paths(void **state)
{
	const char *p;

	(void)state;
	assert_int_equal(mkdir(path_in("kube"), 0700), 0);
	p = write_file("kube/config", "clusters:\n"
				      "- name: c\n"
				      "  cluster:\n"
				      "    server: https://198.18.0.1\n"
				      "    certificate-authority: pki/ca.crt\n"
				      "users:\n"
				      "- name: u\n"
				      "  user:\n"
				      "    tokenFile: token\n"
				      "    client-certificate: /etc/abs/cert.pem\n"
				      "    client-key: key.pem\n"
				      "contexts:\n"
				      "- name: x\n"
				      "  context: {cluster: c, user: u}\n"
				      "current-context: x\n");
	assert_int_equal(ks_kube_conf_load(&conf, p, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.ca_file, path_in("kube/pki/ca.crt"));
	assert_string_equal(conf.token_file, path_in("kube/token"));
	assert_null(conf.token);
	assert_string_equal(conf.cert_file, "/etc/abs/cert.pem");
	assert_string_equal(conf.key_file, path_in("kube/key.pem"));
	assert_false(conf.insecure);
	assert_string_equal(conf.namespace, "default");
}

static void test_cert_data(void **state)
{
	const char *p;

	(void)state;
	/* "-----BEGIN CERTIFICATE-----\nMIIB\n", "KEY!", "CA\n" in base64 */
	p = write_file("config", "clusters:\n"
				 "- name: c\n"
				 "  cluster:\n"
				 "    server: https://198.18.0.1\n"
				 "    certificate-authority: ignored.crt\n"
				 "    certificate-authority-data: Q0EK\n"
				 "users:\n"
				 "- name: u\n"
				 "  user:\n"
				 "    client-certificate-data: "
				 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIK\n"
				 "    client-key-data: S0VZIQ==\n"
				 "contexts:\n"
				 "- name: x\n"
				 "  context: {cluster: c, user: u}\n"
				 "current-context: x\n");
	assert_int_equal(ks_kube_conf_load(&conf, p, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.ca_data, "CA\n");
	assert_null(conf.ca_file);
	assert_string_equal(conf.cert_data, "-----BEGIN CERTIFICATE-----\nMIIB\n");
	assert_string_equal(conf.key_data, "KEY!");
	assert_null(conf.cert_file);
	assert_null(conf.key_file);
}

static const char two_contexts[] = "clusters:\n"
				   "- name: a\n"
				   "  cluster: {server: https://198.18.0.1}\n"
				   "- name: b\n"
				   "  cluster: {server: https://198.18.0.2:8443}\n"
				   "users:\n"
				   "- name: ua\n"
				   "  user: {token: ta}\n"
				   "- name: ub\n"
				   "  user: {token: tb}\n"
				   "contexts:\n"
				   "- name: a\n"
				   "  context: {cluster: a, user: ua, namespace: na}\n"
				   "- name: b\n"
				   "  context: {cluster: b, user: ub}\n"
				   "- name: no-user\n"
				   "  context: {cluster: a, user: nobody}\n"
				   "- name: no-cluster\n"
				   "  context: {cluster: nowhere, user: ua}\n"
				   "current-context: a\n";

static void test_two_contexts(void **state)
{
	const char *p = write_file("config", two_contexts);

	(void)state;
	assert_int_equal(ks_kube_conf_load(&conf, p, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.1");
	assert_string_equal(conf.token, "ta");
	assert_string_equal(conf.namespace, "na");
	ks_kube_conf_free(&conf);
	assert_int_equal(ks_kube_conf_load(&conf, p, "b", NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.2:8443");
	assert_string_equal(conf.token, "tb");
	assert_string_equal(conf.namespace, "default");
}

/* Each refusal must name the file, the field and the value. */
static void expect_error(const char *path, const char *context, int want, const char *msg)
{
	char full[PATH_MAX + 256];

	assert_int_equal(ks_kube_conf_load(&conf, path, context, NULL, NULL, err, sizeof(err)),
			 want);
	snprintf(full, sizeof(full), "kubeconfig %s: %s", path, msg);
	assert_string_equal(err, full);
	assert_null(conf.server);
}

static void test_errors(void **state)
{
	const char *p = write_file("config", two_contexts);

	(void)state;
	expect_error(p, "nope", -ENOENT, "context nope: not found");
	expect_error(p, "no-user", -ENOENT, "user nobody: not found");
	expect_error(p, "no-cluster", -ENOENT, "cluster nowhere: not found");
	expect_error(path_in("absent"), NULL, -ENOENT, "No such file or directory");
	p = write_file("exec", "clusters:\n"
			       "- name: c\n"
			       "  cluster: {server: https://198.18.0.1}\n"
			       "users:\n"
			       "- name: eks\n"
			       "  user:\n"
			       "    exec:\n"
			       "      apiVersion: client.authentication.k8s.io/v1beta1\n"
			       "      command: aws\n"
			       "- name: gcp\n"
			       "  user:\n"
			       "    auth-provider: {name: gcp}\n"
			       "- name: half\n"
			       "  user: {client-certificate: c.pem}\n"
			       "- name: bad64\n"
			       "  user: {client-key-data: \"!!\", client-certificate-data: QQ==}\n"
			       "contexts:\n"
			       "- {name: eks, context: {cluster: c, user: eks}}\n"
			       "- {name: gcp, context: {cluster: c, user: gcp}}\n"
			       "- {name: half, context: {cluster: c, user: half}}\n"
			       "- {name: bad64, context: {cluster: c, user: bad64}}\n"
			       "- {name: noserver, context: {cluster: none}}\n"
			       "- {name: nocluster, context: {user: gcp}}\n");
	expect_error(p, "eks", -EOPNOTSUPP,
		     "user eks: exec: credential plugins (aws) are not supported");
	expect_error(p, "gcp", -EOPNOTSUPP, "user gcp: auth-provider: gcp: not supported");
	expect_error(p, "half", -EINVAL, "user half: client-key: missing");
	expect_error(p, "bad64", -EINVAL, "user bad64: client-key-data: not valid base64");
	expect_error(p, "nocluster", -EINVAL, "context nocluster: cluster: missing");
	expect_error(p, NULL, -EINVAL, "current-context: missing, and no context given");
	p = write_file("broken", "clusters: [\n");
	assert_int_equal(ks_kube_conf_load(&conf, p, NULL, NULL, NULL, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, p));
}

static void test_kubeconfig_env_list(void **state)
{
	char env[3 * PATH_MAX];

	(void)state;
	write_file("a", "clusters: [{name: c, cluster: {server: https://198.18.0.1}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\n"
			"current-context: x\n");
	write_file("b", "clusters: [{name: c, cluster: {server: https://198.18.0.2}}]\n"
			"contexts: [{name: x, context: {cluster: c}}]\n"
			"current-context: x\n");
	snprintf(env, sizeof(env), "%s:%s:%s", path_in("missing"), path_in("b"), path_in("a"));
	setenv("KUBECONFIG", env, 1);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.2");
	assert_null(conf.token);
	ks_kube_conf_free(&conf);
	/* --kubeconfig wins over the environment */
	assert_int_equal(ks_kube_conf_load(&conf, path_in("a"), NULL, NULL, NULL, err, sizeof(err)),
			 0);
	assert_string_equal(conf.server, "https://198.18.0.1");
	ks_kube_conf_free(&conf);
	unsetenv("KUBECONFIG");

	/* ~/.kube/config when nothing else is named */
	assert_int_equal(mkdir(path_in(".kube"), 0700), 0);
	assert_int_equal(rename(path_in("a"), path_in(".kube/config")), 0);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.1");
}

static const char *make_sa_dir(void)
{
	assert_int_equal(mkdir(path_in("sa"), 0700), 0);
	write_file("sa/token", "eyJhbGciOi.token\n");
	write_file("sa/ca.crt", "-----BEGIN CERTIFICATE-----\n");
	write_file("sa/namespace", "kshift-system\n");
	return path_in("sa");
}

static void test_in_cluster(void **state)
{
	const char *sa = make_sa_dir();

	(void)state;
	/* nothing at all: a clear refusal */
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, sa, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "KUBERNETES_SERVICE_HOST"));

	setenv("KUBERNETES_SERVICE_HOST", "198.18.0.10", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, sa, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://198.18.0.10:443");
	assert_string_equal(conf.token_file, path_in("sa/token"));
	assert_null(conf.token);
	assert_string_equal(conf.ca_file, path_in("sa/ca.crt"));
	assert_string_equal(conf.namespace, "kshift-system");
	ks_kube_conf_free(&conf);

	setenv("KUBERNETES_SERVICE_HOST", "2001:2::10", 1);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, sa, err, sizeof(err)), 0);
	assert_string_equal(conf.server, "https://[2001:2::10]:443");
	ks_kube_conf_free(&conf);

	/* a service account without a token cannot talk to the API */
	assert_int_equal(unlink(path_in("sa/token")), 0);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, NULL, sa, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path_in("sa/token")));
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
}

static void test_apiserver_override(void **state)
{
	char p[PATH_MAX];
	const char *sa;

	(void)state;
	snprintf(p, sizeof(p), "%s", write_file("config", token_config));
	assert_int_equal(
		ks_kube_conf_load(&conf, p, NULL, "http://127.0.0.1:8001/", NULL, err, sizeof(err)),
		0);
	assert_string_equal(conf.server, "http://127.0.0.1:8001");
	assert_string_equal(conf.token, "abc.def");
	assert_string_equal(conf.namespace, "shop");
	ks_kube_conf_free(&conf);

	/* in a pod, the URL replaces the Service's address only */
	sa = make_sa_dir();
	setenv("KUBERNETES_SERVICE_HOST", "198.18.0.10", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, "https://198.18.0.20:6443", sa, err,
					   sizeof(err)),
			 0);
	assert_string_equal(conf.server, "https://198.18.0.20:6443");
	assert_string_equal(conf.token_file, path_in("sa/token"));
	assert_string_equal(conf.namespace, "kshift-system");
	ks_kube_conf_free(&conf);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");

	/* no configuration at all: the URL alone (kubectl proxy) */
	assert_int_equal(ks_kube_conf_load(&conf, NULL, NULL, "http://127.0.0.1:8001",
					   "/nonexistent", err, sizeof(err)),
			 0);
	assert_string_equal(conf.server, "http://127.0.0.1:8001");
	assert_null(conf.token);
	assert_null(conf.token_file);
	assert_string_equal(conf.namespace, "default");
	ks_kube_conf_free(&conf);

	assert_int_equal(
		ks_kube_conf_load(&conf, p, NULL, "198.18.0.1:6443", NULL, err, sizeof(err)),
		-EINVAL);
	assert_string_equal(err, "server 198.18.0.1:6443: not an http:// or https:// URL");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_token, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_file_relative_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cert_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_contexts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kubeconfig_env_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_in_cluster, setup, teardown),
		cmocka_unit_test_setup_teardown(test_apiserver_override, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
