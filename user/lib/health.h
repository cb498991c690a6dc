/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Passive health as userspace reads it (bpf/lib/health.h keeps it): each
 * endpoint's quarantine and counters from ks_health, and the connections
 * the connection table holds for it, for `kshiftctl get`.
 */
#ifndef KSHIFT_HEALTH_H
#define KSHIFT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <kshift/abi.h>
#include "dataplane.h"
#include "shift.h"
#include "shifts.h"

/* Where an endpoint stands, as new flows see it. */
enum ks_health_state {
	KS_HEALTH_IN_SERVICE,
	KS_HEALTH_QUARANTINED, /* new flows stay off it */
	KS_HEALTH_TRIAL,       /* quarantine over: one new flow at a time tries it */
};

const char *ks_health_state_name(enum ks_health_state s);
/* The state of a record at now_ns (the datapath clock, ks_ct_now()). */
enum ks_health_state ks_health_state_of(const struct ks_ep_health *h, uint64_t now_ns);

/* ep's record (zeros if it has none). 0, or -errno. */
int ks_health_get(struct ks_dp *dp, const struct ks_endpoint *ep, struct ks_ep_health *h);

/* Calls fn on every record ks_health holds (endpoints that failed a
 * handshake at least once, node-wide), until fn returns nonzero. 0, fn's
 * result, or -errno. */
typedef int ks_health_fn(const struct ks_ep_key *key, const struct ks_ep_health *h, void *arg);
int ks_health_foreach(struct ks_dp *dp, ks_health_fn *fn, void *arg);

/*
 * The endpoints of backend b of shift st, one JSON object each: address,
 * health state, counters (quarantines, refused, unanswered, recovered) and
 * the open connections the table holds for it (SYN_SENT, ESTABLISHED and
 * UDP flows not expired), so a draining endpoint shows what it still
 * serves: the counts of user/lib/observe.c's walk, which every shift's
 * status shares.
 */
struct json_object *ks_health_backend_json(struct ks_dp *dp, const struct ks_shift_state *st,
					   size_t b, bool open);

#endif /* KSHIFT_HEALTH_H */
