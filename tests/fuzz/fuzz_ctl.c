// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness of the control socket's server side (user/lib/
 * ctl_server.c), the one input of kshiftd a local user writes: each input
 * but its first byte is sent on a fresh connection, in two writes split
 * where that first byte says, and the server is pumped until it has answered and closed.
 * The handler is a stub that echoes the request's cmd, and parks requests
 * whose cmd is "park" once, as a daemon in the middle of a change does.
 * What must hold: every request gets exactly one answer, a JSON object with
 * a boolean "ok", and the connection then ends; nothing leaks.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/ctl_server.h"

static struct ks_ctl_server srv;
static char dir[64], path[96];
static int epfd = -1;
static bool parked;

static struct json_object *handler(void *ctx, struct json_object *req)
{
	struct json_object *r, *cmd = NULL;

	(void)ctx;
	json_object_object_get_ex(req, "cmd", &cmd);
	if (cmd && json_object_is_type(cmd, json_type_string) &&
	    !strcmp(json_object_get_string(cmd), "park") && !parked) {
		parked = true;
		return NULL;
	}
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(true));
	if (cmd)
		json_object_object_add(r, "echo", json_object_get(cmd));
	return r;
}

static void cleanup(void)
{
	ks_ctl_server_close(&srv);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	snprintf(dir, sizeof(dir), "/tmp/ks-fuzz-ctl-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/sock", dir);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || ks_ctl_server_open(&srv, path, NULL, epfd, handler, NULL))
		abort();
	atexit(cleanup);
	return 0;
}

/* One round of the server's loop. */
static void pump(void)
{
	struct epoll_event evs[8];
	int n, i;

	n = epoll_wait(epfd, evs, 8, 1);
	ks_ctl_server_expire(&srv);
	for (i = 0; i < n; i++)
		if (!ks_ctl_server_event(&srv, evs[i].data.fd, evs[i].events))
			abort();
	if (parked) {
		ks_ctl_server_resume(&srv);
		parked = false;
	}
}

/* Sends all of data, pumping the server while the socket is full. */
static void send_all(int fd, const uint8_t *data, size_t len)
{
	ssize_t w;

	while (len) {
		w = send(fd, data, len, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			pump();
			continue;
		}
		if (w < 0)
			return; /* the server closed on us (a refusal): fine */
		data += w;
		len -= w;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *ans = NULL;
	size_t len = 0, cap = 0, split = size ? data[0] : 0;
	struct json_object *o, *ok;
	int fd, rounds;
	ssize_t r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
		abort();
	if (size) {
		data++;
		size--;
	}
	if (split > size)
		split = size;
	pump();
	send_all(fd, data, split);
	pump();
	send_all(fd, data + split, size - split);
	shutdown(fd, SHUT_WR);
	for (rounds = 0; rounds < 100000; rounds++) {
		if (len + 4096 > cap) {
			cap = 2 * cap + 4096;
			ans = realloc(ans, cap);
			if (!ans)
				abort();
		}
		r = recv(fd, ans + len, cap - len - 1, 0);
		if (r > 0) {
			len += r;
			continue;
		}
		if (!r)
			break;
		if (errno != EAGAIN)
			break;
		pump();
	}
	if (rounds == 100000) {
		fprintf(stderr, "no answer, and the connection still open\n");
		abort();
	}
	ans[len] = '\0';
	o = json_tokener_parse(ans);
	if (!o || !json_object_object_get_ex(o, "ok", &ok) ||
	    !json_object_is_type(ok, json_type_boolean)) {
		fprintf(stderr, "not an answer: %s\n", ans);
		abort();
	}
	json_object_put(o);
	free(ans);
	close(fd);
	/* the server notices the close and frees the slot */
	while (ks_ctl_server_clients(&srv))
		pump();
	return 0;
}
