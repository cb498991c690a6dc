/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The control socket between kshiftctl and kshiftd: a Unix stream socket,
 * one request per connection. The client writes one JSON object and shuts
 * down its writing side; the daemon answers with one JSON object and
 * closes. A request is {"cmd": ..., ...}; an answer is {"ok": true, ...}
 * or {"ok": false, "error": "..."}. The daemon answers only after the
 * dataplane has applied the change.
 *
 * Limits the daemon enforces (see ctl_server.h): a request is at most
 * KS_CTL_MAX_REQUEST bytes and must arrive whole within
 * KS_CTL_REQUEST_TIMEOUT_MS of the connection; at most KS_CTL_MAX_CLIENTS
 * connections are open at once. Whatever breaks a limit gets an error
 * answer naming it.
 */
#ifndef KSHIFT_CTL_H
#define KSHIFT_CTL_H

#include <stddef.h>
#include <json-c/json.h>

#define KS_DEFAULT_SOCKET "/run/kshift/kshiftd.sock"
/* Largest request: a manifest of about 100,000 small shifts (some 600
 * bytes each) fits, which is more than the dataplane can hold. */
#define KS_CTL_MAX_REQUEST	  (64u << 20)
#define KS_CTL_REQUEST_TIMEOUT_MS 5000
#define KS_CTL_MAX_CLIENTS	  64
/* Largest answer a client takes: `get -o json` of every shift. */
#define KS_CTL_MAX_ANSWER (1024u << 20)
/* kshiftctl's default for --timeout. */
#define KS_CTL_DEFAULT_TIMEOUT_MS 30000

/* Listening socket at path (its directory is created), mode 0600; fd or
 * -errno. */
int ks_ctl_listen(const char *path);
/* Reads until EOF into a NUL-terminated buffer of at most max bytes; 0,
 * -EMSGSIZE or -errno (-EAGAIN when a receive timeout expires). */
int ks_ctl_read_all(int fd, char **buf, size_t *len, size_t max);
int ks_ctl_write_all(int fd, const char *buf, size_t len);
/*
 * Sends req, waits for and parses the answer; 0 or -errno. Gives up with
 * -ETIMEDOUT when timeout_ms (<= 0: no limit) passes before the whole
 * answer is in. When the daemon closes before taking the whole request (it
 * refused it), its answer is still read and returned.
 */
int ks_ctl_call(const char *path, struct json_object *req, struct json_object **resp,
		int timeout_ms);

#endif /* KSHIFT_CTL_H */
