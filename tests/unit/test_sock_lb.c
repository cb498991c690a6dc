// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Which endpoints keep their node-local sockets when kshiftd closes those
 * of removed endpoints (user/lib/sock_lb.c, ks_sock_lb_live_keys): every
 * endpoint a shift lists, draining ones too, on each service of its family
 * at its own port or, naming none, the service's frontend port; nothing
 * else. A socket whose endpoint is missing here is closed, so a key too
 * few is a connection lost: the lists are checked exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <cmocka.h>

#include "lib/shifts.h"
#include "lib/sock_lb.h"

static struct ks_endpoint_spec ep4(const char *addr, uint16_t port, uint8_t state)
{
	struct ks_endpoint_spec e = { .ip.family = KS_FAMILY_V4, .port = port, .state = state };

	assert_int_equal(inet_pton(AF_INET, addr, &e.ip.addr.v4), 1);
	return e;
}

static struct ks_endpoint_spec ep6(const char *addr, uint16_t port)
{
	struct ks_endpoint_spec e = { .ip.family = KS_FAMILY_V6, .port = port };

	assert_int_equal(inet_pton(AF_INET6, addr, e.ip.addr.bytes), 1);
	return e;
}

static struct ks_ep_key key(const char *addr, uint16_t port)
{
	struct ks_ep_key k = { .port = htons(port) };

	if (strchr(addr, ':')) {
		k.family = KS_FAMILY_V6;
		assert_int_equal(inet_pton(AF_INET6, addr, k.addr.bytes), 1);
	} else {
		k.family = KS_FAMILY_V4;
		assert_int_equal(inet_pton(AF_INET, addr, &k.addr.v4), 1);
	}
	return k;
}

static size_t count(const struct ks_ep_key *keys, size_t n, const char *addr, uint16_t port)
{
	struct ks_ep_key k = key(addr, port);
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		c += !memcmp(&keys[i], &k, sizeof(k));
	return c;
}

/* web: TCP 80 on IPv4 and IPv6, UDP 53 on IPv4; stable has an endpoint at
 * the frontend's port, a draining one at 8080 and an IPv6 one at 8080;
 * canary one at the frontend's port. */
static void test_live_keys(void **state)
{
	struct ks_endpoint_spec stable[] = {
		ep4("198.18.2.2", 0, KS_EP_READY),
		ep4("198.18.2.3", 8080, KS_EP_TERMINATING),
		ep6("2001:2:0:2::2", 8080),
	};
	struct ks_endpoint_spec canary[] = { ep4("198.18.3.2", 0, KS_EP_READY) };
	struct ks_svc_ref svcs[] = {
		{ .svc = 0, .port = { 80, IPPROTO_TCP }, .family = KS_FAMILY_V4 },
		{ .svc = 1, .port = { 80, IPPROTO_TCP }, .family = KS_FAMILY_V6 },
		{ .svc = 2, .port = { 53, IPPROTO_UDP }, .family = KS_FAMILY_V4 },
	};
	struct ks_shift_state web = { .svcs = svcs, .nr_svcs = 3 };
	struct ks_shift_state *v[] = { &web };
	struct ks_shifts t = { .v = v, .n = 1 };
	struct ks_ep_key *keys = NULL;
	size_t n = 0;

	(void)state;
	web.spec.nr_backends = 2;
	web.spec.backends[0] = (struct ks_backend_spec){ .name = "stable",
							 .endpoints = stable,
							 .nr_endpoints = 3 };
	web.spec.backends[1] = (struct ks_backend_spec){ .name = "canary",
							 .endpoints = canary,
							 .nr_endpoints = 1 };
	assert_int_equal(ks_sock_lb_live_keys(&t, &keys, &n), 0);
	/* TCP 80 v4: 3; TCP 80 v6: 1; UDP 53 v4: 3 */
	assert_int_equal(n, 7);
	assert_int_equal(count(keys, n, "198.18.2.2", 80), 1);
	assert_int_equal(count(keys, n, "198.18.2.2", 53), 1);
	/* draining: listed, on both of its family's services */
	assert_int_equal(count(keys, n, "198.18.2.3", 8080), 2);
	assert_int_equal(count(keys, n, "2001:2:0:2::2", 8080), 1);
	assert_int_equal(count(keys, n, "198.18.3.2", 80), 1);
	assert_int_equal(count(keys, n, "198.18.3.2", 53), 1);
	/* never listed: another port, the other family's frontend port */
	assert_int_equal(count(keys, n, "198.18.2.2", 8080), 0);
	assert_int_equal(count(keys, n, "2001:2:0:2::2", 80), 0);
	free(keys);
}

/* No shift, or a shift with no endpoint: nothing is live, and that is an
 * answer (every steered socket's endpoint is gone), not an error. */
static void test_live_keys_empty(void **state)
{
	struct ks_svc_ref svcs[] = { { .port = { 80, IPPROTO_TCP }, .family = KS_FAMILY_V4 } };
	struct ks_shift_state empty = { .svcs = svcs, .nr_svcs = 1 };
	struct ks_shift_state *v[] = { &empty };
	struct ks_shifts none = {}, one = { .v = v, .n = 1 };
	struct ks_ep_key *keys = (void *)1;
	size_t n = 1;

	(void)state;
	empty.spec.nr_backends = 1;
	assert_int_equal(ks_sock_lb_live_keys(&none, &keys, &n), 0);
	assert_int_equal(n, 0);
	free(keys);
	keys = (void *)1;
	n = 1;
	assert_int_equal(ks_sock_lb_live_keys(&one, &keys, &n), 0);
	assert_int_equal(n, 0);
	free(keys);
}

/* Many shifts, many endpoints: every one listed once per service. */
static void test_live_keys_many(void **state)
{
	enum { SHIFTS = 50, EPS = 200 };
	static struct ks_endpoint_spec eps[SHIFTS][EPS];
	static struct ks_shift_state st[SHIFTS];
	static struct ks_shift_state *v[SHIFTS];
	struct ks_svc_ref svc = { .port = { 443, IPPROTO_TCP }, .family = KS_FAMILY_V4 };
	struct ks_shifts t = { .v = v, .n = SHIFTS };
	struct ks_ep_key *keys = NULL;
	char addr[32];
	size_t i, j, n = 0;

	(void)state;
	for (i = 0; i < SHIFTS; i++) {
		for (j = 0; j < EPS; j++) {
			snprintf(addr, sizeof(addr), "198.19.%zu.%zu", i, j + 1);
			eps[i][j] = ep4(addr, 0, KS_EP_READY);
		}
		st[i] = (struct ks_shift_state){ .svcs = &svc, .nr_svcs = 1 };
		st[i].spec.nr_backends = 1;
		st[i].spec.backends[0].endpoints = eps[i];
		st[i].spec.backends[0].nr_endpoints = EPS;
		v[i] = &st[i];
	}
	assert_int_equal(ks_sock_lb_live_keys(&t, &keys, &n), 0);
	assert_int_equal(n, SHIFTS * EPS);
	assert_int_equal(count(keys, n, "198.19.0.1", 443), 1);
	assert_int_equal(count(keys, n, "198.19.49.200", 443), 1);
	assert_int_equal(count(keys, n, "198.19.49.201", 443), 0);
	free(keys);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_keys),
		cmocka_unit_test(test_live_keys_empty),
		cmocka_unit_test(test_live_keys_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
