/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The control socket between kshiftctl and kshiftd: a Unix stream socket,
 * one request per connection. The client writes one JSON object and shuts
 * down its writing side; the daemon answers with one JSON object and
 * closes. A request is {"cmd": ..., ...}; an answer is {"ok": true, ...}
 * or {"ok": false, "error": "..."}. The daemon answers only after the
 * dataplane has applied the change.
 */
#ifndef KSHIFT_CTL_H
#define KSHIFT_CTL_H

#include <stddef.h>
#include <json-c/json.h>

#define KS_DEFAULT_SOCKET "/run/kshift/kshiftd.sock"
/* Largest request: a manifest of some tens of thousands of shifts. */
#define KS_CTL_MAX_MSG (256u << 20)

/* Listening socket at path (its directory is created); fd or -errno. */
int ks_ctl_listen(const char *path);
/* Reads until EOF into a NUL-terminated buffer; 0 or -errno. */
int ks_ctl_read_all(int fd, char **buf, size_t *len);
int ks_ctl_write_all(int fd, const char *buf, size_t len);
/* Sends req, waits for and parses the answer; 0 or -errno. */
int ks_ctl_call(const char *path, struct json_object *req, struct json_object **resp);

#endif /* KSHIFT_CTL_H */
