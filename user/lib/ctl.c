// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The control socket protocol; see ctl.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include "ctl.h"

static int sockaddr_of(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

static void mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	for (p = dir + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(dir, 0755);
		*p = '/';
	}
}

int ks_ctl_listen(const char *path)
{
	struct sockaddr_un sa;
	int fd, err;

	err = sockaddr_of(path, &sa);
	if (err)
		return err;
	mkdir_parent(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) || listen(fd, 64)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

int ks_ctl_read_all(int fd, char **buf, size_t *len, size_t max)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap), *nb;
	ssize_t r;

	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n + 1 == cap) {
			if (cap > max) {
				free(b);
				return -EMSGSIZE;
			}
			nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			free(b);
			return r;
		}
		if (!r)
			break;
		n += r;
	}
	b[n] = '\0';
	*buf = b;
	if (len)
		*len = n;
	return 0;
}

int ks_ctl_write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len) {
		w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= w;
	}
	return 0;
}

/* Each blocking read or write waits at most what is left of the deadline. */
static int set_timeouts(int fd, uint64_t deadline)
{
	uint64_t now = now_ms(), left = deadline > now ? deadline - now : 1;
	struct timeval tv = { .tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return deadline > now ? 0 : -ETIMEDOUT;
}

/* Like ks_ctl_write_all and ks_ctl_read_all, in steps that each re-arm the
 * socket timeouts to the time left, so the deadline holds for the whole
 * exchange however the daemon trickles. */
static int write_until(int fd, const char *buf, size_t len, uint64_t deadline)
{
	ssize_t w;
	int err;

	while (len) {
		if (deadline && (err = set_timeouts(fd, deadline)))
			return err;
		w = write(fd, buf, len > 65536 ? 65536 : len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		buf += w;
		len -= w;
	}
	return 0;
}

static int read_until(int fd, char **buf, uint64_t deadline)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap), *nb;
	ssize_t r;
	int err;

	if (!b)
		return -ENOMEM;
	for (;;) {
		if (n + 1 == cap) {
			if (cap > KS_CTL_MAX_ANSWER || !(nb = realloc(b, cap * 2))) {
				free(b);
				return cap > KS_CTL_MAX_ANSWER ? -EMSGSIZE : -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		if (deadline && (err = set_timeouts(fd, deadline))) {
			free(b);
			return err;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno == EAGAIN ? -ETIMEDOUT : -errno;
			free(b);
			return err;
		}
		if (!r)
			break;
		n += r;
	}
	b[n] = '\0';
	*buf = b;
	return 0;
}

int ks_ctl_call(const char *path, struct json_object *req, struct json_object **resp,
		int timeout_ms)
{
	const char *msg = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	uint64_t deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
	struct sockaddr_un sa;
	char *answer = NULL;
	int fd, err, werr;

	*resp = NULL;
	err = sockaddr_of(path, &sa);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (deadline && (err = set_timeouts(fd, deadline)))
		goto out;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto out;
	}
	/* a daemon that refuses a request (too large) answers and stops
	 * reading: the write fails, but the answer says why */
	werr = write_until(fd, msg, strlen(msg), deadline);
	if (werr == -ETIMEDOUT) {
		err = werr;
		goto out;
	}
	shutdown(fd, SHUT_WR);
	err = read_until(fd, &answer, deadline);
	if (err || !*answer) {
		err = werr ? werr : err ? err : -EPROTO;
		goto out;
	}
	*resp = json_tokener_parse(answer);
	if (!*resp || !json_object_is_type(*resp, json_type_object)) {
		json_object_put(*resp);
		*resp = NULL;
		err = -EPROTO;
	}
out:
	free(answer);
	close(fd);
	return err;
}
