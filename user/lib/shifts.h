/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The running set of TrafficShifts and what each became in the dataplane:
 * one service per (frontend port, protocol, address family), each with a
 * split of the shift's backends. Every change either takes effect whole or
 * leaves what was running exactly as it was.
 */
#ifndef KSHIFT_SHIFTS_H
#define KSHIFT_SHIFTS_H

#include <json-c/json.h>
#include "conntrack.h"
#include "dataplane.h"
#include "index.h"
#include "shift.h"

struct ks_svc_ref {
	uint32_t svc;
	struct ks_port port;
	uint8_t family;
};

struct ks_shift_state {
	struct ks_shift spec; /* as applied, with weight changes since */
	char *source;	      /* the config file it came from, or "api" */
	char *saved;	      /* spec as JSON text, made once per change (ks_shifts_saved) */
	struct ks_svc_ref *svcs;
	size_t nr_svcs;
	/* counters when the weights last changed, so `get` can show the
	 * split observed under the current weights */
	uint64_t baseline_flows[KS_MAX_BACKENDS];
};

struct ks_shifts {
	struct ks_dp *dp;
	struct ks_shift_state **v;
	size_t n, cap;
	struct ks_index by_name;     /* "namespace/name" -> state */
	struct ks_index by_frontend; /* struct frontend_id -> state */
	struct ks_index addr_refs;   /* struct frontend_id, port 0 -> shifts using the address */
	/* the connection table's collector, with the flows of removed
	 * endpoints and deleted services queued for it (the daemon steps it) */
	struct ks_ct_gc gc;
};

void ks_shifts_init(struct ks_shifts *t, struct ks_dp *dp);
void ks_shifts_destroy(struct ks_shifts *t); /* forgets; leaves the maps as they are */

struct ks_shift_state *ks_shifts_find(struct ks_shifts *t, const char *ns, const char *name);
/* st's spec as the state file keeps it (ks_shift_to_json, one line), made
 * again only after st changed: a state of 100,000 shifts is written after
 * every change, and most of them have not. NULL on ENOMEM. */
const char *ks_shifts_saved(struct ks_shift_state *st);
/* The running shift serving ip port/proto, or NULL. */
const struct ks_shift_state *ks_shifts_frontend_owner(struct ks_shifts *t, const struct ks_ip *ip,
						     const struct ks_port *port);


/*
 * One change of a batch: create or replace shift (from source: a config
 * file, "api", ...), or, with shift NULL, delete ns/name.
 */
struct ks_change {
	const struct ks_shift *shift;
	const char *source;
	const char *ns, *name; /* deletions */
};

/*
 * Checks a batch as a whole, as its end state: every name once, every
 * frontend served by one shift (running shifts the batch replaces or
 * deletes do not count, whatever the order), and room in the dataplane
 * (services, endpoint and ring slots, frontend entries) for what it adds.
 * 0, or -errno with err naming the shift, the frontend or the limit.
 */
int ks_shifts_check_batch(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
			  size_t errlen);
/* The room part of the check alone. */
int ks_shifts_check_capacity(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
			     size_t errlen);
/*
 * Checks, then applies a batch all or nothing: deletions first, then the
 * shifts in an order in which no frontend is ever served twice (a frontend
 * moved between two shifts of the batch follows its release). If a step
 * still fails (ENOMEM, a fragmented ring), what the batch changed is put
 * back as it was. 0, or -errno with err set.
 */
int ks_shifts_commit(struct ks_shifts *t, const struct ks_change *c, size_t n, char *err,
		     size_t errlen);

/*
 * The same in steps, for the daemon's loop: start checks (refusing as
 * ks_shifts_commit would, with nothing changed), each step does at most
 * budget deletions or applications and returns -EINPROGRESS while there is
 * more, 0 when done, or -errno after putting back what the commit did
 * (why: ks_shifts_commit_error). Nothing else may change t in between.
 * c must live until the commit is freed.
 */
struct ks_commit;
int ks_shifts_commit_start(struct ks_shifts *t, const struct ks_change *c, size_t n,
			   struct ks_commit **cm, char *err, size_t errlen);
int ks_shifts_commit_step(struct ks_commit *cm, size_t budget);
const char *ks_shifts_commit_error(const struct ks_commit *cm);
void ks_shifts_commit_free(struct ks_commit *cm);

/* Creates or replaces a shift. On error, writes why to err (naming the
 * field and value) and changes nothing. */
int ks_shifts_apply(struct ks_shifts *t, const struct ks_shift *shift, const char *source,
		    char *err, size_t errlen);
int ks_shifts_delete(struct ks_shifts *t, const char *ns, const char *name, char *err,
		     size_t errlen);
/* Sets the weights of the named backends, all at once; others keep theirs. */
int ks_shifts_set_weights(struct ks_shifts *t, struct ks_shift_state *st, const char *const *names,
			  const uint32_t *weights, size_t n, char *err, size_t errlen);

/* Mirrors percent of the shift's new flows to backend (NULL: mirror off). */
int ks_shifts_set_mirror(struct ks_shifts *t, struct ks_shift_state *st, const char *backend,
			 uint32_t percent, char *err, size_t errlen);

/* The shift as a manifest, with a status object: per backend its weight,
 * endpoints, counters and the observed split since the last change. */
/* open: with the open connections per backend and endpoint, which take a
 * walk of the whole connection table (shared by every shift's status, and
 * cached for a moment: user/lib/observe.c). */
struct json_object *ks_shifts_status(struct ks_shifts *t, const struct ks_shift_state *st,
				     bool open);

/* The live flows of the shifts named (ns and name NULL: every one), as
 * `kshiftctl conns` lists them: at most max, *total counting them all.
 * One walk of the connection table; NULL on error. */
struct json_object *ks_shifts_conns(struct ks_shifts *t, const char *ns, const char *name,
				    size_t max, size_t *total);

/* Forgets the flows of the shifts named (ns and name NULL: every flow in
 * the table), as conntrack -F does: each one's next packet is steered as a
 * new flow's. Returns how many flows went, or -errno. */
long long ks_shifts_flush_conns(struct ks_shifts *t, const char *ns, const char *name);

#endif /* KSHIFT_SHIFTS_H */
