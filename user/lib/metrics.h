/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kshiftd's HTTP endpoint (--metrics-addr): Prometheus text exposition on
 * /metrics, liveness on /healthz, readiness on /readyz. Served by
 * libmicrohttpd in the daemon's own loop (its epoll fd is one more source),
 * so a scrape reads the running set without locks and never runs beside a
 * change.
 */
#ifndef KSHIFT_METRICS_H
#define KSHIFT_METRICS_H

#include <stdbool.h>
#include "shifts.h"

struct ks_metrics;

/* Why the daemon is not ready, or NULL when it is: what /readyz says. */
typedef const char *ks_ready_fn(void *arg);

/* Listens on addr ("ADDR:PORT", "[V6]:PORT" or ":PORT" for every address).
 * 0, or -errno with err saying why. */
int ks_metrics_start(struct ks_metrics **m, const char *addr, struct ks_shifts *shifts,
		     ks_ready_fn *ready, void *arg, char *err, size_t errlen);
/* Readable when a client needs serving: then call ks_metrics_serve. */
int ks_metrics_fd(const struct ks_metrics *m);
void ks_metrics_serve(struct ks_metrics *m);
void ks_metrics_stop(struct ks_metrics *m);

/* The exposition text of /metrics (malloc'd), for tests and the handler. */
char *ks_metrics_text(struct ks_shifts *shifts, bool ready);
/* kshift_shadow_requests_total comes from the TCP shadow sh (user/lib/shadow.h). */
struct ks_shadow;
void ks_metrics_set_shadow(const struct ks_shadow *sh);

#endif /* KSHIFT_METRICS_H */
