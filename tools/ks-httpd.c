// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-httpd: the benchmark's backend, a small HTTP/1.1 server.
 *
 *   ks-httpd --port PORT [--ready FILE]
 *
 * One thread, epoll, non-blocking sockets: it reads a request up to its blank
 * line and answers "200 OK" with a short body naming the address it was
 * reached on. A request that says "Connection: close" (ks-lat's: every
 * request a short connection) is answered and the connection closed; any
 * other is kept alive for the next request (ks-load's, latency under load).
 * Written in C so that the server's own time is microseconds and the latency
 * measured is the network path's.
 * Listens on every address of its namespace; FILE is created once it listens.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define REQ_MAX	   4096

struct conn {
	int fd;
	size_t len;
	char req[REQ_MAX];
};

static int listen_on(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* Answers every complete request read so far; 1 when the connection is done. */
static int serve(struct conn *c)
{
	char resp[256], local[INET_ADDRSTRLEN] = "?";
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char *end;
	ssize_t n;
	int len, close_it;

	for (;;) {
		n = read(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len);
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return 1;
		c->len += n;
		c->req[c->len] = 0;
		while ((end = strstr(c->req, "\r\n\r\n"))) {
			size_t used = end + 4 - c->req;

			*end = 0;
			close_it = strcasestr(c->req, "\r\nConnection: close") != NULL;
			if (!getsockname(c->fd, (struct sockaddr *)&a, &alen))
				inet_ntop(AF_INET, &a.sin_addr, local, sizeof(local));
			len = snprintf(resp, sizeof(resp),
				       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
				       "Content-Length: %zu\r\n%s\r\n%s\n",
				       strlen(local) + 1,
				       close_it ? "Connection: close\r\n" : "", local);
			/* a response this small fits the send buffer of a client
			 * that waits for each answer before asking again */
			if (write(c->fd, resp, len) != len || close_it)
				return 1;
			memmove(c->req, c->req + used, c->len - used + 1);
			c->len -= used;
		}
		if (c->len == sizeof(c->req) - 1)
			return 1;
	}
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "port", 1, 0, 'p' }, { "ready", 1, 0, 'r' }, { 0 } };
	struct epoll_event ev, events[MAX_EVENTS];
	const char *ready = NULL;
	int c, port = 0, lfd, ep;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'p')
			port = atoi(optarg);
		else if (c == 'r')
			ready = optarg;
		else
			port = -1;
	}
	if (port <= 0 || port > 65535) {
		fprintf(stderr, "usage: ks-httpd --port PORT [--ready FILE]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(port);
	if (lfd < 0) {
		fprintf(stderr, "ks-httpd: listening on port %d: %s\n", port, strerror(-lfd));
		return 1;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
		perror("ks-httpd: epoll");
		return 1;
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f)
			fclose(f);
	}

	for (;;) {
		int n = epoll_wait(ep, events, MAX_EVENTS, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			perror("ks-httpd: epoll_wait");
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct conn *cn = events[i].data.ptr;

			if (!cn) {
				int fd;

				while ((fd = accept4(lfd, NULL, NULL,
						     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					cn = calloc(1, sizeof(*cn));
					if (!cn) {
						close(fd);
						continue;
					}
					cn->fd = fd;
					ev = (struct epoll_event){ .events = EPOLLIN,
								   .data.ptr = cn };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
						close(fd);
						free(cn);
					}
				}
				continue;
			}
			if (serve(cn)) {
				close(cn->fd); /* also leaves the epoll set */
				free(cn);
			}
		}
	}
}
