/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Node-local clients: kshift's socket programs (bpf/kshift_sock.bpf.c) on
 * a cgroup v2 directory, sharing the packet programs' maps. Links pinned
 * as <pin_path>/sock/<program>, so, like the interface links, they outlive
 * kshiftd, are adopted (and moved to the new programs atomically) by the
 * next one, and only --uninstall removes them.
 */
#ifndef KSHIFT_SOCK_LB_H
#define KSHIFT_SOCK_LB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "dataplane.h"

struct ks_sock_lb;

/*
 * With cgroup: loads the socket programs on dp's maps and attaches them to
 * the cgroup (taking over the links an earlier kshiftd pinned there).
 * cgroup NULL: removes any socket hooks an earlier kshiftd left under dp's
 * pin path, and *out is NULL. 0 or -errno (logged).
 */
int ks_sock_lb_open(struct ks_sock_lb **out, struct ks_dp *dp, const char *cgroup);
/* Frees; the pinned links stay, serving. */
void ks_sock_lb_close(struct ks_sock_lb *s);

struct ks_shifts;

/*
 * Closes the node's sockets that were steered to an endpoint no shift lists
 * any more (draining ones are listed, and keep theirs), through a TCP and a
 * UDP socket iterator calling the kfunc bpf_sock_destroy: their peer is
 * gone, and the application learns it at once (ECONNABORTED; TCP sends a
 * reset) rather than after timeouts. How many were closed, or -errno.
 */
int ks_sock_lb_reap(struct ks_sock_lb *s, const struct ks_shifts *t);
/*
 * What counts as live for ks_sock_lb_reap: every endpoint (address, port in
 * network order, family) some shift lists, draining ones included, on each
 * of its shift's services of its family (at the frontend's port where it
 * names none). More than it serves is harmless: a socket is closed only
 * when its endpoint is not there. 0 and a malloc'd array (possibly with
 * repeats), or -ENOMEM.
 */
int ks_sock_lb_live_keys(const struct ks_shifts *t, struct ks_ep_key **keys, size_t *nr);
/* Reaps when the connection table's collector has new flushes queued,
 * which is when a change removed endpoints: at once, then at most once a
 * second while endpoints keep going. s may be NULL. */
void ks_sock_lb_changed(struct ks_sock_lb *s, const struct ks_shifts *t);

/* --uninstall: detaches and unpins the socket hooks under pin_path. The
 * number removed, or -errno. Takes the pin directory's lock meanwhile. */
int ks_sock_lb_uninstall(const char *pin_path);

#endif /* KSHIFT_SOCK_LB_H */
