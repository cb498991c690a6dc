// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the shadow replay (user/lib/shadow.c), without root or a
 * network: the answer parser (an HTTP/1.x response head, whole or cut
 * anywhere, with and without Content-Length, and bytes that are not HTTP),
 * and the replay fed ring records by hand, its shadow connection one end of
 * a socketpair: reassembly (out of order, duplicates, overlaps), the FIN,
 * answers compared, and a gap that is never filled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "lib/shadow.h"

static const char ok200[] = "HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 18\r\n\r\n"
			    "stable 198.18.2.2\n";

static void test_whole(void **state)
{
	int status = 0;
	int64_t body = 0;
	int hlen;

	(void)state;
	hlen = ks_shadow_parse_response(ok200, sizeof(ok200) - 1, &status, &body);
	assert_int_equal(hlen, strstr(ok200, "\r\n\r\n") + 4 - ok200);
	assert_int_equal(status, 200);
	assert_int_equal(body, 18);
}

/* every cut before the end of the head: "not yet", never a wrong answer */
static void test_cut(void **state)
{
	size_t head = strstr(ok200, "\r\n\r\n") + 4 - ok200, len;
	int status;
	int64_t body;

	(void)state;
	for (len = 0; len < head; len++)
		assert_int_equal(ks_shadow_parse_response(ok200, len, &status, &body), 0);
	assert_int_equal(ks_shadow_parse_response(ok200, head, &status, &body), (int)head);
}

static void test_cases(void **state)
{
	static const struct {
		const char *text;
		int ret; /* 1: a head, its length checked apart */
		int status;
		int64_t body;
	} cases[] = {
		{ "HTTP/1.0 500 Internal\r\ncontent-length: 25\r\n\r\n", 1, 500, 25 },
		{ "HTTP/1.1 204 No Content\r\n\r\n", 1, 204, -1 },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 1,
		  200, -1 },
		{ "HTTP/1.1 404 Not Found\r\nCONTENT-LENGTH:   0\r\n\r\n", 1, 404, 0 },
		{ "SSH-2.0-OpenSSH\r\n", -1, 0, 0 },
		{ "HTTP/2 200\r\n\r\n", -1, 0, 0 },
		{ "HTTP/1.1 2xx Bad\r\n\r\n", -1, 0, 0 },
		{ "\x16\x03\x01", -1, 0, 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int status = 0, ret;
		int64_t body = 0;

		ret = ks_shadow_parse_response(cases[i].text, strlen(cases[i].text), &status,
					       &body);
		if (cases[i].ret == 1) {
			assert_int_equal(ret, (int)strlen(cases[i].text));
			assert_int_equal(status, cases[i].status);
			assert_int_equal(body, cases[i].body);
		} else {
			assert_int_equal(ret, cases[i].ret);
		}
	}
}

#define SVC 7

static size_t rec(uint8_t *buf, uint16_t sport, uint8_t kind, uint32_t seq, uint8_t flags,
		  const char *data)
{
	struct ks_shadow_ev ev = {
		.flow = { .saddr.v4 = 0x020112c6,
			  .daddr.v4 = 0x016412c6,
			  .sport = sport,
			  .dport = 80,
			  .proto = 6,
			  .family = KS_FAMILY_V4 },
		.shadow.v4 = 0x020412c6,
		.shadow_port = 8080,
		.kind = kind,
		.tcp_flags = flags,
		.seq = seq,
		.svc = SVC,
	};
	size_t n = data ? strlen(data) : 0;

	ev.len = ev.seg_len = n;
	memcpy(buf, &ev, sizeof(ev));
	if (n)
		memcpy(buf + sizeof(ev), data, n);
	return sizeof(ev) + n;
}

static void feed(struct ks_shadow *sh, uint16_t sport, uint8_t kind, uint32_t seq, uint8_t flags,
		 const char *data)
{
	uint8_t buf[1024];

	ks_shadow_test_feed(sh, buf, rec(buf, sport, kind, seq, flags, data));
}

/* what the shadow end of the socketpair got so far */
static size_t got(struct ks_shadow *sh, int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	int i;

	for (i = 0; i < 20; i++) {
		ks_shadow_process(sh);
		while ((r = recv(fd, buf + n, len - 1 - n, MSG_DONTWAIT)) > 0)
			n += r;
		if (r == 0)
			break;
		usleep(1000);
	}
	buf[n] = '\0';
	return n;
}

static const char resp_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
static const char resp_bad[] = "HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad";

static void test_replay(void **state)
{
	const struct ks_shadow_svc_stats *st;
	struct ks_shadow *sh;
	char buf[256];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	assert_int_equal(ks_shadow_test_open(&sh, sv[0]), 0);

	feed(sh, 4000, KS_SHADOW_OPEN, 1000, 0x02, NULL);
	feed(sh, 4000, KS_SHADOW_DATA, 1006, 0x18, "world"); /* ahead of a gap */
	feed(sh, 4000, KS_SHADOW_DATA, 1001, 0x18, "hello"); /* fills it */
	feed(sh, 4000, KS_SHADOW_DATA, 1001, 0x18, "hello"); /* retransmitted */
	feed(sh, 4000, KS_SHADOW_DATA, 1009, 0x18, "ld!!");  /* overlaps by two */
	got(sh, sv[1], buf, sizeof(buf));
	assert_string_equal(buf, "helloworld!!");

	/* the primary's SYN-ACK and two answers; the shadow's two differ in
	 * the second */
	feed(sh, 4000, KS_SHADOW_REPLY, 5000, 0x12, NULL);
	feed(sh, 4000, KS_SHADOW_REPLY, 5001, 0x18, resp_ok);
	feed(sh, 4000, KS_SHADOW_REPLY, 5001 + strlen(resp_ok), 0x18, resp_ok);
	assert_int_equal(write(sv[1], resp_ok, strlen(resp_ok)), (ssize_t)strlen(resp_ok));
	assert_int_equal(write(sv[1], resp_bad, strlen(resp_bad)), (ssize_t)strlen(resp_bad));
	got(sh, sv[1], buf, sizeof(buf));
	st = ks_shadow_svc(sh, SVC);
	assert_non_null(st);
	assert_int_equal(st->results[KS_SHADOW_MATCH], 1);
	assert_int_equal(st->results[KS_SHADOW_MISMATCH], 1);
	assert_non_null(strstr(st->mismatches[0], "answer 2: primary 200, 5 bytes, shadow 500, 3 "
						  "bytes"));

	/* the client's FIN: the shadow sees the end of the request stream */
	feed(sh, 4000, KS_SHADOW_DATA, 1013, 0x11, NULL);
	assert_int_equal(got(sh, sv[1], buf, sizeof(buf)), 0);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT), 0);
	close(sv[1]); /* and it closes */
	got(sh, sv[0], buf, sizeof(buf));
	ks_shadow_test_sweep(sh);
	assert_int_equal(st->results[KS_SHADOW_DROPPED], 0);
	assert_int_equal(st->flows, 1);
	assert_int_equal(st->bytes, strlen("helloworld!!"));

	/* a gap never filled: given up after KS_SHADOW_GAP_MS, counted as
	 * dropped when the client ends */
	feed(sh, 4001, KS_SHADOW_OPEN, 9000, 0x02, NULL);
	feed(sh, 4001, KS_SHADOW_DATA, 9101, 0x18, "late");
	usleep((KS_SHADOW_GAP_MS + 200) * 1000);
	ks_shadow_test_sweep(sh);
	feed(sh, 4001, KS_SHADOW_DATA, 9105, 0x04, NULL);
	ks_shadow_test_sweep(sh);
	assert_int_equal(st->results[KS_SHADOW_DROPPED], 1);
	ks_shadow_close(sh);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_cases),
		cmocka_unit_test(test_replay),
	};

	return cmocka_run_group_tests_name("shadow", tests, NULL, NULL);
}
