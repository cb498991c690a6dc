// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-kube-dump: drives kshift's Kubernetes client (user/lib/kube*.c) alone,
 * for tests and for looking at what kshiftd would see.
 *
 *   ks-kube-dump [--kubeconfig F] [--context C] [--apiserver URL]
 *                [--lease-namespace NS] [--state FILE] [--for SECONDS] [-v]
 *       runs the watcher; prints each change as it is drained
 *       ("endpointslices shop/web-abc web"), and after each batch rewrites
 *       FILE (atomically) with the whole store: a line "synced KIND..."
 *       then "KIND NS/NAME RESOURCEVERSION [SERVICE]" per object, sorted.
 *       Ends after SECONDS, or on SIGINT/SIGTERM.
 *   ks-kube-dump [...] --request METHOD PATH [BODY]
 *       one request; prints the status and the body.
 *
 * Exit status: 0, 1 on failure, 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "lib/kube.h"
#include "lib/log.h"

static const char *const kinds[KS_KUBE_NR_KINDS] = { "trafficshifts", "services", "endpointslices",
						     "leases" };
static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

struct lines {
	char **v;
	size_t n, cap;
	enum ks_kube_kind kind;
};

static const char *meta(struct json_object *o, const char *a, const char *b)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, "metadata", &o) || !json_object_object_get_ex(o, a, &v))
		return NULL;
	if (b && !json_object_object_get_ex(v, b, &v))
		return NULL;
	return json_object_get_string(v);
}

static int add_line(const void *key, size_t len, void *value, void *arg)
{
	struct lines *l = arg;
	const char *svc = meta(value, "labels", KS_KUBE_SLICE_LABEL);
	char **v;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		v = realloc(l->v, l->cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
	}
	if (asprintf(&l->v[l->n], "%s %.*s %s%s%s", kinds[l->kind], (int)len, (const char *)key,
		     meta(value, "resourceVersion", NULL) ?: "-", svc ? " " : "", svc ?: "") < 0)
		return -ENOMEM;
	l->n++;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* With the store's lock held. */
static int write_state(struct ks_kube_store *s, const char *path)
{
	struct lines l = {};
	char tmp[4096];
	size_t i;
	FILE *f;
	int k, ret = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fputs("synced", f);
	for (k = 0; k < KS_KUBE_NR_KINDS; k++)
		if (s->synced[k])
			fprintf(f, " %s", kinds[k]);
	fputc('\n', f);
	for (k = 0; k < KS_KUBE_NR_KINDS && !ret; k++) {
		l.kind = k;
		ret = ks_index_foreach(&s->objs[k], add_line, &l);
	}
	qsort(l.v, l.n, sizeof(*l.v), cmp);
	for (i = 0; i < l.n; i++) {
		fprintf(f, "%s\n", l.v[i]);
		free(l.v[i]);
	}
	free(l.v);
	if (fclose(f) || ret)
		return ret ?: -EIO;
	return rename(tmp, path) ? -errno : 0;
}

static int run_request(const struct ks_kube_conf *conf, const char *method, const char *path,
		       const char *body)
{
	struct ks_kube_resp resp;
	char err[512];
	int ret = ks_kube_request(conf, method, path, NULL, body, 30000, &resp, err, sizeof(err));

	if (ret) {
		fprintf(stderr, "ks-kube-dump: %s\n", err);
		return 1;
	}
	printf("%ld\n%s\n", resp.status, resp.body);
	if (resp.status >= 400)
		fprintf(stderr, "ks-kube-dump: %s\n", ks_kube_status_message(&resp));
	ks_kube_resp_free(&resp);
	return 0;
}

static int run_watch(const struct ks_kube_conf *conf, const char *lease_ns, const char *state,
		     double seconds)
{
	struct ks_kube_watcher *w;
	struct ks_kube_store s;
	struct ks_kube_change *c;
	struct timespec t0, t;
	bool synced_seen[KS_KUBE_NR_KINDS] = {};
	size_t n, i;
	uint64_t v;
	int efd, k, ret;

	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0 || ks_kube_store_init(&s, lease_ns)) {
		perror("ks-kube-dump: eventfd/store");
		return 1;
	}
	ret = ks_kube_watcher_start(&w, conf, &s, efd);
	if (ret) {
		fprintf(stderr, "ks-kube-dump: watcher: %s\n", strerror(-ret));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!quit) {
		struct pollfd p = { .fd = efd, .events = POLLIN };
		bool dirty;

		clock_gettime(CLOCK_MONOTONIC, &t);
		if (seconds > 0 &&
		    (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 >= seconds)
			break;
		poll(&p, 1, 100);
		dirty = read(efd, &v, sizeof(v)) == sizeof(v);
		pthread_mutex_lock(&s.lock);
		for (k = 0; k < KS_KUBE_NR_KINDS; k++)
			if (s.synced[k] != synced_seen[k]) {
				synced_seen[k] = s.synced[k];
				dirty = true;
			}
		ks_kube_store_drain(&s, &c, &n);
		for (i = 0; i < n; i++)
			printf("%s %s/%s%s%s\n", kinds[c[i].kind], c[i].ns, c[i].name,
			       c[i].service ? " " : "", c[i].service ?: "");
		fflush(stdout);
		if ((dirty || n) && state && (ret = write_state(&s, state)))
			fprintf(stderr, "ks-kube-dump: %s: %s\n", state, strerror(-ret));
		pthread_mutex_unlock(&s.lock);
		ks_kube_changes_free(c, n);
	}
	ks_kube_watcher_stop(w);
	ks_kube_store_destroy(&s);
	close(efd);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ks-kube-dump [--kubeconfig F] [--context C] [--apiserver URL]\n"
			"                    [--lease-namespace NS] [--state FILE] [--for SECONDS] "
			"[-v]\n"
			"       ks-kube-dump [...] --request METHOD PATH [BODY]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kubeconfig", required_argument, NULL, 'k' },
		{ "context", required_argument, NULL, 'c' },
		{ "apiserver", required_argument, NULL, 'a' },
		{ "lease-namespace", required_argument, NULL, 'l' },
		{ "state", required_argument, NULL, 's' },
		{ "for", required_argument, NULL, 'f' },
		{ "request", no_argument, NULL, 'r' },
		{ "verbose", no_argument, NULL, 'v' },
		{},
	};
	const char *kubeconfig = NULL, *context = NULL, *apiserver = NULL, *lease_ns = NULL;
	const char *state = NULL;
	struct sigaction sa = { .sa_handler = on_signal };
	struct ks_kube_conf conf;
	bool request = false;
	double seconds = 0;
	char err[512];
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			kubeconfig = optarg;
			break;
		case 'c':
			context = optarg;
			break;
		case 'a':
			apiserver = optarg;
			break;
		case 'l':
			lease_ns = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'f':
			seconds = atof(optarg);
			break;
		case 'r':
			request = true;
			break;
		case 'v':
			ks_log_level = KS_LOG_DEBUG;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (request ? argc - optind < 2 || argc - optind > 3 : optind != argc) {
		usage();
		return 2;
	}
	if (ks_log_level < KS_LOG_INFO)
		ks_log_level = KS_LOG_INFO;
	ret = ks_kube_conf_load(&conf, kubeconfig, context, apiserver, NULL, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "ks-kube-dump: %s\n", err);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (request)
		ret = run_request(&conf, argv[optind], argv[optind + 1], argv[optind + 2]);
	else
		ret = run_watch(&conf, lease_ns, state, seconds);
	ks_kube_conf_free(&conf);
	return ret;
}
