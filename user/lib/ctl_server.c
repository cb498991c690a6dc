// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The daemon's control socket, served from its epoll loop; see ctl_server.h. */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include "ctl_server.h"
#include "log.h"

/* Work done for one client per event, so that a fast writer of a huge
 * request cannot keep the loop to itself. */
#define KS_CTL_READ_BUDGET (1u << 20)

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

struct json_object *ks_ctl_error(const char *fmt, ...)
{
	struct json_object *r = json_object_new_object();
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(r, "ok", json_object_new_boolean(false));
	json_object_object_add(r, "error", json_object_new_string(msg));
	return r;
}

/* "64 MiB", "512 KiB", "100 bytes" */
static const char *size_str(size_t n, char *buf, size_t len)
{
	if (n >= (1u << 20) && !(n % (1u << 20)))
		snprintf(buf, len, "%zu MiB", n >> 20);
	else if (n >= 1024 && !(n % 1024))
		snprintf(buf, len, "%zu KiB", n >> 10);
	else
		snprintf(buf, len, "%zu bytes", n);
	return buf;
}

int ks_ctl_server_open(struct ks_ctl_server *srv, const char *path, const char *group, int epfd,
		       ks_ctl_handler handler, void *ctx)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct stat st;
	struct group *gr;
	int err, i;

	memset(srv, 0, sizeof(*srv));
	srv->listenfd = -1;
	srv->epfd = epfd;
	srv->handler = handler;
	srv->ctx = ctx;
	srv->max_request = KS_CTL_MAX_REQUEST;
	srv->timeout_ms = KS_CTL_REQUEST_TIMEOUT_MS;
	srv->max_clients = KS_CTL_MAX_CLIENTS;
	for (i = 0; i < KS_CTL_SLOTS; i++)
		srv->clients[i].fd = -1;
	if (strlen(path) >= sizeof(srv->path))
		return -ENAMETOOLONG;
	snprintf(srv->path, sizeof(srv->path), "%s", path);
	srv->listenfd = ks_ctl_listen(path);
	if (srv->listenfd < 0) {
		err = srv->listenfd;
		srv->listenfd = -1;
		return err;
	}
	if (!stat(path, &st))
		srv->sock_ino = st.st_ino;
	if (group) {
		errno = 0;
		gr = getgrnam(group);
		if (!gr) {
			err = errno ? -errno : -ENOENT;
			pr_warn("--socket-group %s: no such group\n", group);
			goto fail;
		}
		if (chown(path, -1, gr->gr_gid) || chmod(path, 0660)) {
			err = -errno;
			pr_warn("control socket %s: group %s: %s\n", path, group, strerror(-err));
			goto fail;
		}
	}
	ev.data.fd = srv->listenfd;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, srv->listenfd, &ev)) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	ks_ctl_server_close(srv);
	return err;
}

static void client_close(struct ks_ctl_server *srv, struct ks_ctl_client *c)
{
	if (c->state == KS_CC_FREE)
		return;
	epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	json_object_put(c->req);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void ks_ctl_server_close(struct ks_ctl_server *srv)
{
	struct stat st;
	int i;

	for (i = 0; i < KS_CTL_SLOTS; i++)
		client_close(srv, &srv->clients[i]);
	if (srv->listenfd >= 0) {
		epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listenfd, NULL);
		close(srv->listenfd);
		/* only our own socket: a successor may already have bound the
		 * path */
		if (srv->path[0] && !stat(srv->path, &st) && st.st_ino == srv->sock_ino)
			unlink(srv->path);
	}
	srv->listenfd = -1;
}

int ks_ctl_server_clients(const struct ks_ctl_server *srv)
{
	int i, n = 0;

	for (i = 0; i < KS_CTL_SLOTS; i++)
		n += srv->clients[i].state != KS_CC_FREE && !srv->clients[i].turned_away;
	return n;
}

static void want(struct ks_ctl_server *srv, struct ks_ctl_client *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.fd = c->fd };

	if (c->events == events)
		return;
	if (!epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev))
		c->events = events;
}

/* Sets the answer; returns false if there is no memory for it. */
static bool set_answer(struct ks_ctl_client *c, struct json_object *resp)
{
	const char *text = json_object_to_json_string_ext(resp, JSON_C_TO_STRING_PLAIN);

	free(c->out);
	c->out = text ? strdup(text) : NULL;
	c->out_len = c->out ? strlen(c->out) : 0;
	c->out_off = 0;
	json_object_put(resp);
	return c->out;
}

/* Writes what the socket takes; closes the client when the answer is out
 * (and, while draining, the request has ended). */
static void flush(struct ks_ctl_server *srv, struct ks_ctl_client *c)
{
	ssize_t w;

	while (c->out_off < c->out_len) {
		w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			break;
		if (w < 0) {
			client_close(srv, c);
			return;
		}
		c->out_off += w;
	}
	if (c->out_off < c->out_len) {
		want(srv, c, c->state == KS_CC_DRAINING ? EPOLLIN | EPOLLOUT : EPOLLOUT);
		return;
	}
	if (c->state == KS_CC_DRAINING && !c->in_eof) {
		shutdown(c->fd, SHUT_WR);
		want(srv, c, EPOLLIN);
		return;
	}
	client_close(srv, c);
}

/* Turns the request down with resp, reading (and dropping) the rest of it
 * so the client gets to read the answer. */
static void refuse(struct ks_ctl_server *srv, struct ks_ctl_client *c, struct json_object *resp)
{
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	c->state = KS_CC_DRAINING;
	if (!set_answer(c, resp)) {
		client_close(srv, c);
		return;
	}
	flush(srv, c);
}

/* Hands the request to the daemon; parks it if the daemon says wait. */
static void dispatch(struct ks_ctl_server *srv, struct ks_ctl_client *c)
{
	struct json_object *resp = srv->handler(srv->ctx, c->req);

	if (!resp) {
		c->state = KS_CC_PARKED;
		return;
	}
	json_object_put(c->req);
	c->req = NULL;
	c->state = KS_CC_WRITING;
	/* the daemon's own time for the request, parsing, any wait behind
	 * another change, and the dataplane change included: a client's own
	 * timing would add its start and the socket round trip */
	if (json_object_is_type(resp, json_type_object))
		json_object_object_add(resp, "elapsed_us",
				       json_object_new_int64(now_us() - c->whole_us));
	/* the answer gets a deadline of its own: a large one to a slow
	 * reader is not cut off for the time the request took */
	c->deadline_ms = now_ms() + srv->timeout_ms;
	if (!set_answer(c, resp)) {
		client_close(srv, c);
		return;
	}
	flush(srv, c);
}

static void answer(struct ks_ctl_server *srv, struct ks_ctl_client *c)
{
	enum json_tokener_error jerr;

	c->whole_us = now_us();
	c->req = json_tokener_parse_verbose(c->in ? c->in : "", &jerr);
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
	/* a complete request: nothing more to read */
	want(srv, c, 0);
	if (!c->req || !json_object_is_type(c->req, json_type_object)) {
		json_object_put(c->req);
		c->req = NULL;
		c->state = KS_CC_WRITING;
		c->deadline_ms = now_ms() + srv->timeout_ms;
		if (!set_answer(c, ks_ctl_error("request: not a JSON object"))) {
			client_close(srv, c);
			return;
		}
		flush(srv, c);
		return;
	}
	dispatch(srv, c);
}

void ks_ctl_server_resume(struct ks_ctl_server *srv)
{
	int i;

	for (i = 0; i < KS_CTL_SLOTS; i++)
		if (srv->clients[i].state == KS_CC_PARKED)
			dispatch(srv, &srv->clients[i]);
}

static void on_readable(struct ks_ctl_server *srv, struct ks_ctl_client *c)
{
	char sink[65536], size[32];
	size_t budget = KS_CTL_READ_BUDGET, cap;
	ssize_t r;
	char *nb;

	while (budget && !c->in_eof) {
		if (c->state == KS_CC_DRAINING) {
			r = read(c->fd, sink, sizeof(sink));
		} else {
			if (c->in_len + 1 >= c->in_cap) {
				cap = c->in_cap ? 2 * c->in_cap : 4096;
				if (cap > srv->max_request + 1)
					cap = srv->max_request + 2;
				nb = realloc(c->in, cap);
				if (!nb) {
					refuse(srv, c, ks_ctl_error("kshiftd: out of memory"));
					return;
				}
				c->in = nb;
				c->in_cap = cap;
				/* a string even if nothing comes: EOF at once */
				c->in[c->in_len] = '\0';
			}
			r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r < 0) {
			client_close(srv, c);
			return;
		}
		if (!r) {
			c->in_eof = true;
			break;
		}
		budget -= (size_t)r < budget ? (size_t)r : budget;
		if (c->state == KS_CC_DRAINING)
			continue;
		c->in_len += r;
		c->in[c->in_len] = '\0';
		if (c->in_len > srv->max_request) {
			pr_warn("control socket: a request over %s refused\n",
				size_str(srv->max_request, size, sizeof(size)));
			refuse(srv, c,
			       ks_ctl_error("request too large: over %s, the limit of the control "
					    "socket; split the manifest",
					    size_str(srv->max_request, size, sizeof(size))));
			return;
		}
	}
	if (!c->in_eof)
		return;
	if (c->state == KS_CC_DRAINING)
		flush(srv, c);
	else
		answer(srv, c);
}

static struct ks_ctl_client *free_slot(struct ks_ctl_server *srv)
{
	int i;

	for (i = 0; i < KS_CTL_SLOTS; i++)
		if (srv->clients[i].state == KS_CC_FREE)
			return &srv->clients[i];
	return NULL;
}

static void on_accept(struct ks_ctl_server *srv)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct ks_ctl_client *c;
	bool full;
	int fd;

	for (;;) {
		fd = accept4(srv->listenfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		full = ks_ctl_server_clients(srv) >= srv->max_clients;
		c = free_slot(srv);
		if (full) {
			if (!srv->nr_refused++ || !(srv->nr_refused % 1000))
				pr_warn("control socket: %d clients open, the limit: turning new ones "
					"away (%llu so far)\n",
					srv->max_clients, (unsigned long long)srv->nr_refused);
		}
		if (!c) {
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->state = KS_CC_READING;
		c->deadline_ms = now_ms() + srv->timeout_ms;
		c->events = EPOLLIN;
		ev.data.fd = fd;
		if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			memset(c, 0, sizeof(*c));
			c->fd = -1;
			continue;
		}
		if (full) {
			/* told why, its request read and dropped so that it
			 * gets to read the answer; a second at most */
			c->turned_away = true;
			c->deadline_ms = now_ms() + 1000;
			refuse(srv, c,
			       ks_ctl_error("kshiftd: too many control connections at once (the "
					    "limit is %d); try again",
					    srv->max_clients));
		}
	}
}

bool ks_ctl_server_event(struct ks_ctl_server *srv, int fd, uint32_t events)
{
	struct ks_ctl_client *c;
	int i;

	if (fd < 0)
		return false;
	if (fd == srv->listenfd) {
		on_accept(srv);
		return true;
	}
	for (i = 0; i < KS_CTL_SLOTS; i++) {
		c = &srv->clients[i];
		if (c->state == KS_CC_FREE || c->fd != fd)
			continue;
		if ((events & EPOLLIN) && (c->state == KS_CC_READING || c->state == KS_CC_DRAINING))
			on_readable(srv, c);
		if (c->state != KS_CC_FREE && (events & EPOLLOUT))
			flush(srv, c);
		if (c->state != KS_CC_FREE && (events & (EPOLLERR | EPOLLHUP)) &&
		    !(events & EPOLLIN))
			client_close(srv, c);
		return true;
	}
	return false;
}

int ks_ctl_server_timeout(const struct ks_ctl_server *srv)
{
	uint64_t now = now_ms(), first = 0;
	int i;

	for (i = 0; i < KS_CTL_SLOTS; i++)
		if (srv->clients[i].state != KS_CC_FREE && srv->clients[i].state != KS_CC_PARKED &&
		    (!first || srv->clients[i].deadline_ms < first))
			first = srv->clients[i].deadline_ms;
	if (!first)
		return -1;
	return first > now ? (int)(first - now) : 0;
}

void ks_ctl_server_expire(struct ks_ctl_server *srv)
{
	uint64_t now = now_ms();
	struct ks_ctl_client *c;
	int i;

	for (i = 0; i < KS_CTL_SLOTS; i++) {
		c = &srv->clients[i];
		if (c->state == KS_CC_FREE || c->state == KS_CC_PARKED || c->deadline_ms > now)
			continue;
		if (c->state == KS_CC_READING) {
			pr_info("control socket: a client sent no complete request within %d ms: "
				"cut off\n",
				srv->timeout_ms);
			/* one try at telling it why, then gone */
			c->state = KS_CC_DRAINING;
			c->in_eof = true;
			if (set_answer(c, ks_ctl_error("request timed out: not complete within "
						       "%d ms of connecting",
						       srv->timeout_ms)))
				send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
		client_close(srv, c);
	}
}
