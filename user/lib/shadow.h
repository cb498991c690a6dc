/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shadow traffic, kshiftd's side (docs/shadow.md). The dataplane
 * (bpf/lib/mirror.h) sends the client's bytes of every mirrored TCP flow,
 * and the start of each of the primary's answers, through the ring buffer
 * ks_shadow_rb. This source of the daemon's loop replays each flow on a
 * connection of its own to the flow's shadow endpoint: the same request
 * bytes, in order (reassembled by sequence number: duplicates dropped,
 * small gaps waited for, a flow with a gap it cannot fill given up and
 * counted). It reads the shadow's answers, throws them away, and compares
 * each with the primary's: for HTTP the status code and body length,
 * otherwise the response length and a hash of its first bytes.
 *
 * Nothing here blocks: every socket is non-blocking, everything a flow
 * holds is bounded, and a shadow that is slow or gone only loses its own
 * copies. The primary never waits for any of it.
 */
#ifndef KSHIFT_SHADOW_H
#define KSHIFT_SHADOW_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <kshift/abi.h>
#include "dataplane.h"

/* Limits, per flow and in all. */
#define KS_SHADOW_FLOWS	     8192	  /* flows replayed at once; more are dropped */
#define KS_SHADOW_FLOW_BUF   (4u << 20)	  /* bytes a flow holds: unsent, out of order */
#define KS_SHADOW_TOTAL_BUF  (256u << 20) /* bytes all flows hold */
#define KS_SHADOW_IDLE_MS    300000	  /* a flow with no news for this long ends (keep-alive) */
#define KS_SHADOW_ENDED_MS   10000	  /* ... once its shadow connection is gone */
#define KS_SHADOW_GAP_MS     2000	  /* a gap not filled in this long: given up */
#define KS_SHADOW_MISMATCHES 5		  /* last mismatches kept per service */
#define KS_SHADOW_HASH_BYTES 64		  /* non-HTTP answers: bytes hashed */

enum ks_shadow_result {
	KS_SHADOW_MATCH,
	KS_SHADOW_MISMATCH,
	KS_SHADOW_DROPPED, /* the shadow's copy was lost, refused, or never answered */
	KS_SHADOW_NR_RESULTS,
};

/* What the replay says of one service. */
struct ks_shadow_svc_stats {
	uint64_t results[KS_SHADOW_NR_RESULTS];	    /* requests (HTTP) or flows (other) */
	uint64_t flows;				    /* flows replayed */
	uint64_t bytes;				    /* request bytes sent to the shadow */
	char mismatches[KS_SHADOW_MISMATCHES][160]; /* the last few, newest at last_mm - 1 */
	unsigned int nr_mm;
};

struct ks_shadow;

/* Opens the replay on dp's ring buffer. 0 or -errno. */
int ks_shadow_open(struct ks_shadow **sh, struct ks_dp *dp);
void ks_shadow_close(struct ks_shadow *sh);
/* One fd for the daemon's epoll (an epoll of the ring and every replay
 * socket): readable when there is work. */
int ks_shadow_fd(const struct ks_shadow *sh);
/* Does what can be done now, without blocking. */
void ks_shadow_process(struct ks_shadow *sh);
/* ms until the next deadline (a gap, an idle flow), -1: none. */
int ks_shadow_timeout(const struct ks_shadow *sh);

/* The results of service svc (NULL: none yet), and of all. */
const struct ks_shadow_svc_stats *ks_shadow_svc(const struct ks_shadow *sh, uint32_t svc);
void ks_shadow_totals(const struct ks_shadow *sh, uint64_t out[KS_SHADOW_NR_RESULTS]);
const char *ks_shadow_result_name(enum ks_shadow_result r);

/*
 * The status of a shift's mirror over its services svcs[0..n): results,
 * flows, the dataplane's counters (copies, lost events, shadow answers
 * dropped) and the last mismatches. sh may be NULL (results 0).
 */
struct json_object *ks_shadow_status(const struct ks_shadow *sh, struct ks_dp *dp,
				     const uint32_t *svcs, size_t n);

/* ks_mirrors[svc]: mirror percent (0: off) of svc's new flows to backend. */
int ks_dp_mirror_set(struct ks_dp *dp, uint32_t svc, uint32_t percent, uint32_t backend);
/* The per-CPU mirror counters of svc, summed. */
int ks_dp_mirror_stats(struct ks_dp *dp, uint32_t svc, struct ks_mirror_counters *out);

/*
 * For the unit test, without a dataplane: a replay whose flows all "connect"
 * to a dup of fd (one end of a socketpair), fed ring records by hand, and
 * its sweep run at will.
 */
int ks_shadow_test_open(struct ks_shadow **sh, int fd);
void ks_shadow_test_feed(struct ks_shadow *sh, const void *rec, size_t size);
void ks_shadow_test_sweep(struct ks_shadow *sh);

/* Response parsing, exposed for the unit test: the response starting at
 * buf[0..len). Returns the header length (> 0) and sets *status and
 * *body (-1: not given by Content-Length), 0 if the header is not complete
 * in buf, -1 if buf does not start an HTTP response. */
int ks_shadow_parse_response(const char *buf, size_t len, int *status, int64_t *body);

#endif /* KSHIFT_SHADOW_H */
