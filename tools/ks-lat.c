// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-lat: the benchmark's latency client.
 *
 *   ks-lat --dst IP --port PORT [--src IP] [--count N] [--timeout-ms MS]
 *
 * Makes N HTTP requests one after the other, each on a new TCP connection
 * (a new 5-tuple, so every request is a new flow for the dataplane): connect,
 * send a GET, read the response to its end, close. A request's latency is
 * the time from connect() to the end of the response. Prints one JSON
 * object: count, ok, errors, and p50/p90/p99/max in microseconds over the
 * requests that succeeded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One request on a new connection; 0 when a 200 response came back whole. */
static int request(const struct sockaddr_in *src, const struct sockaddr_in *dst, int timeout_ms)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
	struct timeval tv = { timeout_ms / 1000, timeout_ms % 1000 * 1000 };
	char buf[1024];
	size_t got = 0;
	ssize_t n;
	int fd, ok = -1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (src && bind(fd, (const struct sockaddr *)src, sizeof(*src)))
		goto out;
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)))
		goto out;
	if (write(fd, req, sizeof(req) - 1) != sizeof(req) - 1)
		goto out;
	while ((n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0) {
		got += n;
		if (got == sizeof(buf) - 1)
			break;
	}
	buf[got] = 0;
	if (n == 0 && !strncmp(buf, "HTTP/1.1 200 ", 13))
		ok = 0;
out:
	close(fd);
	return ok;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dst", 1, 0, 'd' },	{ "port", 1, 0, 'p' },	     { "src", 1, 0, 's' },
		{ "count", 1, 0, 'c' }, { "timeout-ms", 1, 0, 't' }, { 0 },
	};
	struct sockaddr_in dst = { .sin_family = AF_INET }, src = { .sin_family = AF_INET };
	int c, count = 1000, timeout_ms = 1000, have_src = 0, nok = 0;
	double *lat;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!inet_aton(optarg, &dst.sin_addr))
				count = -1;
			break;
		case 'p':
			dst.sin_port = htons(atoi(optarg));
			break;
		case 's':
			have_src = inet_aton(optarg, &src.sin_addr);
			break;
		case 'c':
			count = atoi(optarg);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			count = -1;
		}
	}
	if (count <= 0 || !dst.sin_addr.s_addr || !dst.sin_port) {
		fprintf(stderr, "usage: ks-lat --dst IP --port PORT [--src IP] [--count N] "
				"[--timeout-ms MS]\n");
		return 2;
	}
	lat = calloc(count, sizeof(*lat));
	if (!lat)
		return 1;
	for (int i = 0; i < count; i++) {
		double t0 = now_us();

		if (!request(have_src ? &src : NULL, &dst, timeout_ms))
			lat[nok++] = now_us() - t0;
	}
	qsort(lat, nok, sizeof(*lat), cmp);
#define PCT(p) (nok ? lat[(int)((nok - 1) * (p))] : 0)
	printf("{\"count\": %d, \"ok\": %d, \"errors\": %d, \"p50\": %.1f, \"p90\": %.1f, "
	       "\"p99\": %.1f, \"max\": %.1f}\n",
	       count, nok, count - nok, PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0));
	free(lat);
	return nok ? 0 : 1;
}
