/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kshiftd's side of the control socket (the protocol is in ctl.h), as one
 * source of the daemon's epoll loop. Nothing in it blocks: the listening
 * socket and every client are non-blocking, each client has its own read
 * buffer, write buffer and deadline, so a client that stalls, trickles or
 * never reads its answer holds up nobody but itself. A request is handled
 * (by the daemon's handler, synchronously) only once it is complete, so
 * changes stay serialised, one request at a time.
 *
 * Limits: a request must be whole within timeout_ms of the connection and
 * at most max_request bytes; writing the answer gets timeout_ms more; at
 * most max_clients connections at once, and the next is answered with an
 * error and closed. Each refusal answers {"ok": false, "error": ...} naming
 * the limit.
 */
#ifndef KSHIFT_CTL_SERVER_H
#define KSHIFT_CTL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>
#include "ctl.h"

/* Answers one request (a JSON object); returns the answer, which the
 * server frees, or NULL when the request must wait (the daemon is in the
 * middle of a change): it is parked and offered again at
 * ks_ctl_server_resume. */
typedef struct json_object *(*ks_ctl_handler)(void *ctx, struct json_object *req);

enum ks_ctl_client_state {
	KS_CC_FREE = 0,
	KS_CC_READING,	/* taking the request */
	KS_CC_DRAINING, /* request refused: answering, and discarding input until EOF */
	KS_CC_WRITING,	/* answering */
	KS_CC_PARKED,	/* complete, waiting for the daemon */
};

struct ks_ctl_client {
	int fd;
	enum ks_ctl_client_state state;
	uint64_t deadline_ms; /* CLOCK_MONOTONIC */
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off;
	bool in_eof;
	struct json_object *req; /* parked */
	uint64_t whole_us;	 /* CLOCK_MONOTONIC: when the request was in whole */
	bool turned_away; /* over max_clients: told so, not counted */
	uint32_t events;  /* as registered with epoll */
};

/* Connections past max_clients held for a moment, to tell them why. */
#define KS_CTL_REFUSE_SLOTS 16
#define KS_CTL_SLOTS	    (KS_CTL_MAX_CLIENTS + KS_CTL_REFUSE_SLOTS)

struct ks_ctl_server {
	int listenfd, epfd;
	char path[108];
	ino_t sock_ino; /* to remove only our own socket */
	size_t max_request;
	int timeout_ms;
	int max_clients;
	ks_ctl_handler handler;
	void *ctx;
	struct ks_ctl_client clients[KS_CTL_SLOTS];
	uint64_t nr_refused; /* connections turned away at max_clients */
};

/*
 * Listens on path (0600; with group non-NULL, owned by that group and
 * 0660) and adds the socket to epfd with data.fd = the socket. Limits take
 * the KS_CTL_ defaults; change them in srv before the first event.
 * 0 or -errno.
 */
int ks_ctl_server_open(struct ks_ctl_server *srv, const char *path, const char *group, int epfd,
		       ks_ctl_handler handler, void *ctx);
/* Closes every client and the socket, and removes the socket file if it is
 * still ours. */
void ks_ctl_server_close(struct ks_ctl_server *srv);
/* Handles an epoll event if fd is the server's (listening socket or a
 * client); returns whether it was. */
bool ks_ctl_server_event(struct ks_ctl_server *srv, int fd, uint32_t events);
/* Milliseconds until the next client deadline, for epoll_wait; -1: none. */
int ks_ctl_server_timeout(const struct ks_ctl_server *srv);
/* Cuts off the clients past their deadline (a late request gets an error
 * answer, if it takes one at once). */
void ks_ctl_server_expire(struct ks_ctl_server *srv);
/* Offers the parked requests to the handler again. */
void ks_ctl_server_resume(struct ks_ctl_server *srv);
/* Open client connections. */
int ks_ctl_server_clients(const struct ks_ctl_server *srv);

/* {"ok": false, "error": msg}. */
struct json_object *ks_ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* KSHIFT_CTL_SERVER_H */
