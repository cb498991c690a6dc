// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of one Kubernetes API request (user/lib/kube_http.c) against a
 * libmicrohttpd server on 127.0.0.1 in the test itself: the headers and body
 * sent, Status messages, a token file re-read and the request retried once
 * on a 401, time-outs, refused connections, and streaming (data handed over
 * as it comes, a callback's error, a prompt stop, errors not streamed); and
 * the watcher listing and watching it, with events split across chunks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <microhttpd.h>
#include <cmocka.h>

#include "lib/kube.h"

static const char STREAM[] = "{\"type\":\"ADDED\"}\n{\"type\":\"MOD";
static const char STREAM2[] = "IFIED\"}\n";

/* What the server saw last, and how it behaves. */
static struct {
	pthread_mutex_t lock;
	char method[16], auth[256], accept[64], ua[64], ctype[64], body[256];
	int requests;
	const char *valid_token; /* what /auth accepts */
	const char *rotate_file; /* /auth writes valid_token here on a 401 */
} seen = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The watcher's view of the server: Services list one object, then watch
 * two events split mid-line; the other kinds are empty and quiet. */
static const char SVC_LIST[] = "{\"kind\":\"ServiceList\",\"metadata\":{\"resourceVersion\":\"5\"},"
			       "\"items\":[{\"metadata\":{\"namespace\":\"shop\",\"name\":\"a\","
			       "\"resourceVersion\":\"5\"}}]}";
static const char EMPTY_LIST[] = "{\"metadata\":{\"resourceVersion\":\"1\"},\"items\":[]}";
static const char WATCH0[] =
	"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"namespace\":"
	"\"shop\",\"name\":\"b\",\"resourceVersion\":\"6\"}}}\n{\"type\":\"MODI";
static const char WATCH1[] = "FIED\",\"object\":{\"metadata\":{\"namespace\":\"shop\",\"name\":"
			     "\"a\",\"resourceVersion\":\"7\"}}}\n";
static struct {
	char limit[16], rv[16], bookmarks[16], timeout[16];
} svc_watch;

static struct MHD_Daemon *daemon_;
static char server[64];
static struct ks_kube_conf conf;
static char token_path[64];

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t len)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);

	snprintf(out, len, "%s", v ? v : "");
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int status, const char *body)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* /stream-end: two pieces that split a line, then the end. /stream: the
 * same, then a newline every 50 ms until the client goes. */
static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	bool endless = cls != NULL;

	(void)max;
	if (pos == 0) {
		memcpy(buf, STREAM, strlen(STREAM));
		return strlen(STREAM);
	}
	if (pos == strlen(STREAM)) {
		usleep(50000);
		memcpy(buf, STREAM2, strlen(STREAM2));
		return strlen(STREAM2);
	}
	if (!endless)
		return MHD_CONTENT_READER_END_OF_STREAM;
	usleep(50000);
	buf[0] = '\n';
	return 1;
}

static ssize_t watch_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)max;
	if (cls && pos == 0) {
		memcpy(buf, WATCH0, strlen(WATCH0));
		return strlen(WATCH0);
	}
	usleep(50000);
	if (cls && pos == strlen(WATCH0)) {
		memcpy(buf, WATCH1, strlen(WATCH1));
		return strlen(WATCH1);
	}
	buf[0] = '\n';
	return 1;
}

static void copy_arg(struct MHD_Connection *c, const char *name, char *out, size_t len)
{
	const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);

	snprintf(out, len, "%s", v ? v : "");
}

static enum MHD_Result watcher_route(struct MHD_Connection *c, const char *url)
{
	bool svc = !strcmp(url, "/api/v1/services");
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "watch")) {
		if (svc)
			copy_arg(c, "limit", svc_watch.limit, sizeof(svc_watch.limit));
		return reply(c, 200, svc ? SVC_LIST : EMPTY_LIST);
	}
	if (svc) {
		copy_arg(c, "resourceVersion", svc_watch.rv, sizeof(svc_watch.rv));
		copy_arg(c, "allowWatchBookmarks", svc_watch.bookmarks,
			 sizeof(svc_watch.bookmarks));
		copy_arg(c, "timeoutSeconds", svc_watch.timeout, sizeof(svc_watch.timeout));
	}
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256, watch_cb,
					      svc ? (void *)1 : NULL, NULL);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload,
			       size_t *upload_len, void **con_cls)
{
	static int first_call;
	struct MHD_Response *r;
	enum MHD_Result ret;
	bool authorized;

	(void)cls, (void)version;
	/* the first call only says a request came; the body follows */
	if (!*con_cls) {
		*con_cls = &first_call;
		pthread_mutex_lock(&seen.lock);
		seen.requests++;
		seen.body[0] = '\0';
		snprintf(seen.method, sizeof(seen.method), "%s", method);
		copy_header(c, "Authorization", seen.auth, sizeof(seen.auth));
		copy_header(c, "Accept", seen.accept, sizeof(seen.accept));
		copy_header(c, "User-Agent", seen.ua, sizeof(seen.ua));
		copy_header(c, "Content-Type", seen.ctype, sizeof(seen.ctype));
		pthread_mutex_unlock(&seen.lock);
		return MHD_YES;
	}
	if (*upload_len) {
		pthread_mutex_lock(&seen.lock);
		strncat(seen.body, upload, *upload_len < 200 ? *upload_len : 200);
		pthread_mutex_unlock(&seen.lock);
		*upload_len = 0;
		return MHD_YES;
	}
	if (!strcmp(url, "/ok"))
		return reply(c, 200, "{\"kind\":\"Thing\"}");
	if (!strcmp(url, "/status"))
		return reply(c, 404,
			     "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
			     "\"message\":\"services \\\"web\\\" not found\",\"code\":404}");
	if (!strcmp(url, "/plain"))
		return reply(c, 500, "boom");
	if (!strcmp(url, "/empty"))
		return reply(c, 503, "");
	if (!strcmp(url, "/slow")) {
		usleep(1500000);
		return reply(c, 200, "{}");
	}
	if (!strcmp(url, "/auth")) {
		char want[128];
		FILE *f;

		snprintf(want, sizeof(want), "Bearer %s", seen.valid_token);
		pthread_mutex_lock(&seen.lock);
		authorized = !strcmp(seen.auth, want);
		/* rotated between the client's read and its request */
		if (!authorized && seen.rotate_file && (f = fopen(seen.rotate_file, "w"))) {
			fprintf(f, "%s\n", seen.valid_token);
			fclose(f);
		}
		pthread_mutex_unlock(&seen.lock);
		return authorized ? reply(c, 200, "{}")
				  : reply(c, 401,
					  "{\"kind\":\"Status\",\"message\":\"Unauthorized\","
					  "\"code\":401}");
	}
	if (!strcmp(url, "/stream") || !strcmp(url, "/stream-end")) {
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, stream_cb,
						      !strcmp(url, "/stream") ? (void *)1 : NULL,
						      NULL);
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (!strncmp(url, "/api", 4))
		return watcher_route(c, url);
	return reply(c, 404, "{\"kind\":\"Status\",\"message\":\"no such path\"}");
}

static int setup(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const union MHD_DaemonInfo *info;
	int fd;

	(void)state;
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION,
				   0, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR,
				   (struct sockaddr *)&a, MHD_OPTION_END);
	if (!daemon_)
		return -1;
	info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(server, sizeof(server), "http://127.0.0.1:%u", info->port);
	memset(&conf, 0, sizeof(conf));
	conf.server = server;
	conf.token = "tok";
	snprintf(token_path, sizeof(token_path), "/tmp/test_kube_http.XXXXXX");
	fd = mkstemp(token_path);
	if (fd < 0)
		return -1;
	close(fd);
	seen.requests = 0;
	seen.rotate_file = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	unlink(token_path);
	return 0;
}

static void test_headers_and_body(void **state)
{
	struct ks_kube_resp resp;
	char err[256];

	(void)state;
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/ok", NULL, NULL, 5000, &resp, err, sizeof(err)), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "{\"kind\":\"Thing\"}");
	assert_int_equal(resp.len, strlen(resp.body));
	assert_string_equal(seen.method, "GET");
	assert_string_equal(seen.auth, "Bearer tok");
	assert_string_equal(seen.accept, "application/json");
	assert_string_equal(seen.ctype, "");
	assert_memory_equal(seen.ua, "kshift/", 7);
	ks_kube_resp_free(&resp);

	assert_int_equal(ks_kube_request(&conf, "POST", "/ok", NULL, "{\"a\":1}", 5000, &resp, err,
					 sizeof(err)),
			 0);
	assert_string_equal(seen.method, "POST");
	assert_string_equal(seen.ctype, "application/json");
	assert_string_equal(seen.body, "{\"a\":1}");
	ks_kube_resp_free(&resp);

	assert_int_equal(ks_kube_request(&conf, "PATCH", "/ok", "application/merge-patch+json",
					 "{\"b\":2}", 5000, &resp, err, sizeof(err)),
			 0);
	assert_string_equal(seen.method, "PATCH");
	assert_string_equal(seen.ctype, "application/merge-patch+json");
	assert_string_equal(seen.body, "{\"b\":2}");
	ks_kube_resp_free(&resp);

	/* no credentials, no Authorization header */
	conf.token = NULL;
	assert_int_equal(
		ks_kube_request(&conf, "DELETE", "/ok", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_string_equal(seen.method, "DELETE");
	assert_string_equal(seen.auth, "");
	ks_kube_resp_free(&resp);
}

static void test_status_message(void **state)
{
	struct ks_kube_resp resp;
	char err[256];

	(void)state;
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/status", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(ks_kube_status_message(&resp), "services \"web\" not found");
	ks_kube_resp_free(&resp);
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/plain", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 500);
	assert_string_equal(ks_kube_status_message(&resp), "boom");
	ks_kube_resp_free(&resp);
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/empty", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_non_null(resp.body);
	assert_string_equal(ks_kube_status_message(&resp), "HTTP 503 with no body");
	ks_kube_resp_free(&resp);
}

static void write_token(const char *t)
{
	FILE *f = fopen(token_path, "w");

	assert_non_null(f);
	fprintf(f, "%s\n", t);
	fclose(f);
}

static void test_token_file_retry_on_401(void **state)
{
	struct ks_kube_resp resp;
	char err[256];

	(void)state;
	seen.valid_token = "new";
	seen.rotate_file = token_path;
	write_token("old");
	conf.token = NULL;
	conf.token_file = token_path;
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/auth", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(seen.requests, 2);
	assert_string_equal(seen.auth, "Bearer new");
	ks_kube_resp_free(&resp);

	/* re-read on every request, not only after a 401 */
	seen.valid_token = "newer";
	seen.rotate_file = NULL;
	write_token("newer");
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/auth", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 200);
	assert_int_equal(seen.requests, 3);
	ks_kube_resp_free(&resp);

	/* a token that stays wrong: one retry, then the 401 is the answer */
	write_token("wrong");
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/auth", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 401);
	assert_int_equal(seen.requests, 5);
	assert_string_equal(ks_kube_status_message(&resp), "Unauthorized");
	ks_kube_resp_free(&resp);

	/* a static token is not retried */
	conf.token_file = NULL;
	conf.token = "static";
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/auth", NULL, NULL, 5000, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 401);
	assert_int_equal(seen.requests, 6);
	ks_kube_resp_free(&resp);

	conf.token_file = "/nonexistent/token";
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/auth", NULL, NULL, 5000, &resp, err, sizeof(err)),
		-ENOENT);
	assert_string_equal(err, "token file /nonexistent/token: No such file or directory");
	assert_int_equal(seen.requests, 6);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_timeout_and_refused(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	struct ks_kube_resp resp;
	char err[256], url[64];
	uint64_t t0 = now_ms();
	int fd;

	(void)state;
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/slow", NULL, NULL, 300, &resp, err, sizeof(err)),
		-ETIMEDOUT);
	assert_true(now_ms() - t0 < 1200);
	assert_non_null(strstr(err, "GET http://127.0.0.1:"));
	assert_null(resp.body);

	/* a port that was free a moment ago: nothing listens there */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(a.sin_port));
	conf.server = url;
	assert_int_equal(
		ks_kube_request(&conf, "GET", "/ok?x=1", NULL, NULL, 2000, &resp, err, sizeof(err)),
		-ECONNREFUSED);
	/* the message names the URL, without its query */
	assert_non_null(strstr(err, url));
	assert_null(strstr(err, "x=1"));
	assert_int_equal(resp.status, 0);
}

struct sink {
	char data[256];
	int ret;      /* what on_data returns */
	uint64_t end; /* stop after this time (ms), 0: never */
};

static int on_data(void *arg, const char *data, size_t len)
{
	struct sink *s = arg;

	strncat(s->data, data, len < sizeof(s->data) - strlen(s->data) - 1 ? len : 0);
	return s->ret;
}

static bool stop(void *arg)
{
	struct sink *s = arg;

	return s->end && now_ms() >= s->end;
}

static void test_stream(void **state)
{
	struct ks_kube_resp resp;
	struct sink s = {};
	char err[256];
	uint64_t t0;

	(void)state;
	assert_int_equal(ks_kube_stream(&conf, "/stream-end", 5000, on_data, stop, &s, &resp, err,
					sizeof(err)),
			 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(s.data, "{\"type\":\"ADDED\"}\n{\"type\":\"MODIFIED\"}\n");
	ks_kube_resp_free(&resp);

	/* the callback's error ends the transfer and is the result */
	memset(&s, 0, sizeof(s));
	s.ret = -ESTALE;
	assert_int_equal(ks_kube_stream(&conf, "/stream-end", 5000, on_data, stop, &s, &resp, err,
					sizeof(err)),
			 -ESTALE);
	assert_string_equal(s.data, STREAM);
	assert_int_equal(resp.status, 200);

	/* an error answer is collected, not streamed */
	memset(&s, 0, sizeof(s));
	assert_int_equal(
		ks_kube_stream(&conf, "/status", 5000, on_data, stop, &s, &resp, err, sizeof(err)),
		0);
	assert_int_equal(resp.status, 404);
	assert_string_equal(s.data, "");
	assert_string_equal(ks_kube_status_message(&resp), "services \"web\" not found");
	ks_kube_resp_free(&resp);

	/* stop ends an endless stream within about a second */
	memset(&s, 0, sizeof(s));
	t0 = now_ms();
	s.end = t0 + 300;
	assert_int_equal(
		ks_kube_stream(&conf, "/stream", 60000, on_data, stop, &s, &resp, err, sizeof(err)),
		-ECANCELED);
	assert_true(now_ms() - t0 < 2000);
	assert_memory_equal(s.data, STREAM, strlen(STREAM));
}

static void test_watcher(void **state)
{
	struct ks_kube_store s;
	struct ks_kube_watcher *w;
	struct ks_kube_change *c;
	struct json_object *a = NULL, *m, *rv;
	uint64_t t0, v = 0;
	size_t n, i, svc_changes = 0;
	bool done = false;
	int efd = eventfd(0, EFD_NONBLOCK), timeout;

	(void)state;
	assert_true(efd >= 0);
	assert_int_equal(ks_kube_store_init(&s, NULL), 0);
	assert_int_equal(ks_kube_watcher_start(&w, &conf, &s, efd), 0);
	for (t0 = now_ms(); !done && now_ms() - t0 < 5000; usleep(20000)) {
		pthread_mutex_lock(&s.lock);
		a = ks_kube_store_get(&s, KS_KUBE_SERVICE, "shop", "a");
		done = a && ks_kube_store_get(&s, KS_KUBE_SERVICE, "shop", "b") &&
		       json_object_object_get_ex(a, "metadata", &m) &&
		       json_object_object_get_ex(m, "resourceVersion", &rv) &&
		       !strcmp(json_object_get_string(rv), "7") && s.synced[KS_KUBE_TRAFFICSHIFT] &&
		       s.synced[KS_KUBE_ENDPOINTSLICE];
		pthread_mutex_unlock(&s.lock);
	}
	assert_true(done);
	assert_true(s.synced[KS_KUBE_SERVICE]);
	assert_false(s.synced[KS_KUBE_LEASE]); /* no lease namespace: not watched */
	assert_int_equal(read(efd, &v, sizeof(v)), sizeof(v));
	assert_true(v >= 1);

	pthread_mutex_lock(&s.lock);
	ks_kube_store_drain(&s, &c, &n);
	pthread_mutex_unlock(&s.lock);
	for (i = 0; i < n; i++)
		svc_changes += c[i].kind == KS_KUBE_SERVICE;
	assert_int_equal(svc_changes, 3); /* a listed, b added, a modified */
	ks_kube_changes_free(c, n);

	assert_string_equal(svc_watch.limit, "500");
	assert_string_equal(svc_watch.rv, "5");
	assert_string_equal(svc_watch.bookmarks, "true");
	timeout = atoi(svc_watch.timeout);
	assert_true(timeout >= 240 && timeout <= 360);

	/* every thread is inside a quiet watch; stopping must not wait for it */
	t0 = now_ms();
	ks_kube_watcher_stop(w);
	assert_true(now_ms() - t0 < 2000);
	ks_kube_store_destroy(&s);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_headers_and_body, setup, teardown),
		cmocka_unit_test_setup_teardown(test_status_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_token_file_retry_on_401, setup, teardown),
		cmocka_unit_test_setup_teardown(test_timeout_and_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_watcher, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
