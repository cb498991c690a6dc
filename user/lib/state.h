/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What kshiftctl changed, kept across restarts in DIR/state.json; the rules
 * are at the top of state.c.
 */
#ifndef KSHIFT_STATE_H
#define KSHIFT_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include "index.h"
#include "shift.h"
#include "shifts.h"

#define KS_DEFAULT_STATE_DIR "/var/lib/kshift"
#define KS_STATE_FILE	     "state.json"

/* Weights set through the control socket on a shift some other source
 * (a config file) owns, valid while that source's spec of it stays the one
 * with fingerprint base_fp. */
struct ks_override {
	char ns[KS_NAME_LEN], name[KS_NAME_LEN];
	uint64_t base_fp;
	size_t n;
	char names[KS_MAX_BACKENDS][KS_NAME_LEN];
	uint32_t weights[KS_MAX_BACKENDS];
};

struct ks_state {
	char *path; /* DIR/state.json; NULL: nothing is kept */
	struct ks_index overrides; /* "ns/name" -> struct ks_override */
	uint64_t generation;	   /* changes made since the state began */
};

/* Creates dir if needed. dir NULL: keeps nothing (saves are no-ops). */
int ks_state_open(struct ks_state *s, const char *dir);
void ks_state_close(struct ks_state *s);

/* Reads state.json: the overrides stay in s, the "api" shifts are handed
 * back to replay (free with ks_shifts_free). A missing file is an empty
 * state. 0, or -errno with err set (the file is then left alone). */
int ks_state_load(struct ks_state *s, struct ks_shift **api, size_t *nr, char *err,
		  size_t errlen);
/* Writes the "api" shifts of t and the overrides: a temporary file,
 * fsync, rename over state.json, fsync of the directory. 0 or -errno. */
int ks_state_save(struct ks_state *s, struct ks_shifts *t);

/* Records weights of ns/name over the spec with fingerprint base_fp; n
 * backends by name. Replaces an older override of the shift. */
int ks_state_set_override(struct ks_state *s, const struct ks_shift *now, uint64_t base_fp);
void ks_state_drop_override(struct ks_state *s, const char *ns, const char *name);
const struct ks_override *ks_state_override(const struct ks_state *s, const char *ns,
					    const char *name);
/* base_fp adjusted for an override's weights: what a spec with them
 * applied is fingerprinted as. */
uint64_t ks_override_fp(const struct ks_override *o);
/* Gives *spec (a copy the caller owns) the override's weights. */
void ks_override_apply(const struct ks_override *o, struct ks_shift *spec);

/* "stable=90 canary=10": a shift's weights, for the log. */
const char *ks_shift_weights_str(const struct ks_shift *s, char *buf, size_t len);

/* A fingerprint of a shift's whole spec (weights included), from its JSON
 * form: equal specs, equal fingerprints. 0 on ENOMEM. */
uint64_t ks_shift_fingerprint(const struct ks_shift *s);

#endif /* KSHIFT_STATE_H */
