/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Source rules in the dataplane (bpf/lib/rules.h): the prefixes of a
 * service's split, written into the generation ks_dp_svc_set is about to
 * flip to, so that rules and weights change together.
 */
#ifndef KSHIFT_RULES_H
#define KSHIFT_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include "dataplane.h"
#include "shift.h"

struct ks_dp_rule {
	struct ks_addr addr; /* host bits zero */
	uint8_t family;
	uint8_t len; /* prefix length */
	uint8_t backend;
};

/*
 * Replaces the rules of svc's idle generation (the one the next
 * ks_dp_svc_set writes and flips to) with r[0..n); a prefix listed twice
 * keeps its first backend. Returns the split flags the generation needs
 * (KS_SPLIT_RULES, or 0 for no rules), or -errno with nothing of r left
 * in the map.
 */
int ks_rules_stage(struct ks_dp *dp, uint32_t svc, const struct ks_dp_rule *r, size_t n);

/* Removes the rules of generation gen of svc, or of both with gen < 0. */
void ks_rules_clear(struct ks_dp *dp, uint32_t svc, int gen);

/* status.rules of `kshiftctl get`: per source prefix of s, its backend and
 * whether the rule is in force; one whose backend has no endpoint of the
 * prefix's family says so ("no endpoints, weights apply"). */
struct json_object *ks_rules_status(const struct ks_shift *s);

/* Refuses (-EINVAL, err naming the field and value) an endpoint or a rule
 * source of a family that none of the shift's explicit frontend addresses
 * has: it could never serve or match. Shifts whose frontend is a Service
 * are not checked (its addresses come later). */
int ks_shift_check_families(const struct ks_shift *s, char *err, size_t errlen);

#endif /* KSHIFT_RULES_H */
