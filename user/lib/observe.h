/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What an operator watches during a shift, beyond the counters: open
 * connections per backend (from the connection table), each backend's
 * configured share, and the frontends, added to the status that
 * `kshiftctl get` and `top` show and /metrics exports.
 */
#ifndef KSHIFT_OBSERVE_H
#define KSHIFT_OBSERVE_H

#include <stdint.h>
#include <json-c/json.h>
#include "shifts.h"

/* Flows of backend b of dataplane service svc that are open: in the
 * connection table, with no FIN or reset seen, not idle past their timeout. One walk of
 * the table counts every service; its counts serve for a second (a walk
 * takes about a second per million flows). 0 on any error. */
uint64_t ks_observe_open(struct ks_dp *dp, uint32_t svc, uint32_t b);

/* Open flows of a shift's services on one endpoint (its port as flows reach
 * it, network order), from the same walk. */
uint64_t ks_observe_ep_open(struct ks_dp *dp, const struct ks_shift_state *st,
			    const struct ks_endpoint *ep);

/* ... summed over the services of a shift. */
uint64_t ks_observe_shift_open(struct ks_shifts *t, const struct ks_shift_state *st, uint32_t b);

/* Adds to doc (from ks_shifts_status) status.frontends ("198.18.100.1:80/TCP"),
 * and per backend sharePercent (its weight's share of the sum) and, when
 * open, openConnections; status.observedWindow says what observedPercent covers. */
void ks_observe_status(struct ks_shifts *t, const struct ks_shift_state *st,
		       struct json_object *doc, bool open);

#endif /* KSHIFT_OBSERVE_H */
