// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the control socket (user/lib/ctl_server.c, user/lib/ctl.c)
 * without root: a server on a socket in a temporary directory, pumped by
 * hand. A stuck client does not hold up another; the request deadline,
 * the size limit and the client limit answer with errors naming them; a
 * parked request is answered on resume; ks_ctl_call gives up at its
 * timeout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <cmocka.h>

#include "lib/ctl_server.h"

static bool park;
static int handled;

static struct json_object *handler(void *ctx, struct json_object *req)
{
	struct json_object *r, *cmd;

	(void)ctx;
	if (park)
		return NULL;
	handled++;
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(true));
	if (json_object_object_get_ex(req, "cmd", &cmd))
		json_object_object_add(r, "echo", json_object_get(cmd));
	return r;
}

struct fixture {
	char dir[64], path[96];
	int epfd;
	struct ks_ctl_server srv;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ks-ctl-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ks_ctl_server_open(&f->srv, f->path, NULL, f->epfd, handler, NULL))
		return -1;
	park = false;
	handled = 0;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	ks_ctl_server_close(&f->srv);
	close(f->epfd);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Runs the server's side for ms milliseconds. */
static void pump(struct fixture *f, int ms)
{
	struct epoll_event evs[16];
	struct timespec t0, t;
	int n, i, left = ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (left > 0) {
		n = epoll_wait(f->epfd, evs, 16, left < 10 ? left : 10);
		ks_ctl_server_expire(&f->srv);
		for (i = 0; i < n; i++)
			assert_true(ks_ctl_server_event(&f->srv, evs[i].data.fd, evs[i].events));
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = ms - (int)((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
	}
}

static int client(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	strcpy(sa.sun_path, f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void send_req(int fd, const char *req)
{
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	shutdown(fd, SHUT_WR);
}

/* What the server answered so far. */
static const char *answer(int fd, char *buf, size_t len)
{
	ssize_t n = read(fd, buf, len - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void test_stuck_does_not_block(void **state)
{
	struct fixture *f = *state;
	int stuck = client(f), c = client(f);
	char buf[4096];

	send_req(c, "{\"cmd\":\"get\"}");
	pump(f, 50);
	assert_non_null(strstr(answer(c, buf, sizeof(buf)), "\"echo\":\"get\""));
	assert_int_equal(handled, 1);
	close(c);
	close(stuck);
}

static void test_deadline(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int stuck, trickle;

	f->srv.timeout_ms = 200;
	stuck = client(f);
	trickle = client(f);
	pump(f, 100);
	assert_int_equal(write(trickle, "{", 1), 1);
	pump(f, 80);
	assert_int_equal(write(trickle, "\"", 1), 1);
	pump(f, 150);
	/* 200 ms from connecting, whatever arrived in between */
	assert_non_null(strstr(answer(stuck, buf, sizeof(buf)), "timed out"));
	assert_non_null(strstr(answer(trickle, buf, sizeof(buf)), "within 200 ms"));
	assert_int_equal(ks_ctl_server_clients(&f->srv), 0);
	close(stuck);
	close(trickle);
}

static void test_too_large(void **state)
{
	struct fixture *f = *state;
	char big[300], buf[4096];
	int c;

	f->srv.max_request = 100;
	memset(big, 'x', sizeof(big));
	c = client(f);
	assert_int_equal(write(c, big, sizeof(big)), (ssize_t)sizeof(big));
	shutdown(c, SHUT_WR);
	pump(f, 50);
	assert_non_null(strstr(answer(c, buf, sizeof(buf)), "over 100 bytes"));
	assert_int_equal(handled, 0);
	close(c);
}

static void test_too_many(void **state)
{
	struct fixture *f = *state;
	int a, b, c, d;
	char buf[4096];

	f->srv.max_clients = 2;
	a = client(f);
	b = client(f);
	pump(f, 20);
	c = client(f);
	send_req(c, "{\"cmd\":\"get\"}");
	pump(f, 50);
	assert_non_null(strstr(answer(c, buf, sizeof(buf)), "the limit is 2"));
	close(a);
	close(b);
	pump(f, 20);
	d = client(f);
	send_req(d, "{\"cmd\":\"get\"}");
	pump(f, 50);
	assert_non_null(strstr(answer(d, buf, sizeof(buf)), "\"ok\":true"));
	close(c);
	close(d);
}

static void test_park(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int c = client(f);

	park = true;
	send_req(c, "{\"cmd\":\"set\"}");
	pump(f, 50);
	assert_string_equal(answer(c, buf, sizeof(buf)), "");
	/* parked requests have no deadline: the daemon owes them an answer */
	f->srv.timeout_ms = 10;
	pump(f, 50);
	park = false;
	ks_ctl_server_resume(&f->srv);
	pump(f, 20);
	assert_non_null(strstr(answer(c, buf, sizeof(buf)), "\"echo\":\"set\""));
	close(c);
}

static void test_not_json(void **state)
{
	struct fixture *f = *state;
	char buf[4096];
	int c = client(f);

	send_req(c, "[1, 2");
	pump(f, 50);
	assert_non_null(strstr(answer(c, buf, sizeof(buf)), "not a JSON object"));
	close(c);
}

static void test_call_timeout(void **state)
{
	struct fixture *f = *state;
	struct json_object *req = json_object_new_object(), *resp;
	struct timespec t0, t;
	int ret;

	/* nobody pumps the server: the answer never comes */
	(void)f;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = ks_ctl_call(f->path, req, &resp, 200);
	clock_gettime(CLOCK_MONOTONIC, &t);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_true((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
	json_object_put(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stuck_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_many, setup, teardown),
		cmocka_unit_test_setup_teardown(test_park, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
