/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table (ks_conns) as userspace keeps it: a garbage
 * collector that deletes the flows the datapath already treats as gone
 * (idle past their state's timeout, see bpf/lib/conntrack.h), flushes of
 * the flows of a removed endpoint or a deleted service, and a listing for
 * `kshiftctl conns`. Every deletion takes both directions of a flow.
 *
 * The daemon calls ks_ct_gc_step() from its loop, say every 100 ms with the
 * default budget: each call costs at most a few milliseconds, and a table
 * of a million flows is swept in about a minute (see KS_CT_GC_BUDGET).
 */
#ifndef KSHIFT_CONNTRACK_H
#define KSHIFT_CONNTRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <kshift/abi.h>
#include "dataplane.h"
#include "index.h"

/* Entries one ks_ct_gc_step() looks at by default: about 1 ms of syscalls
 * (one batched lookup) plus one delete per expired flow. */
#define KS_CT_GC_BUDGET 4096

/*
 * Under pressure (the last pass found the table more than
 * KS_CT_GC_PRESSURE_PCT full: a SYN flood, say), half-open flows idle for
 * KS_CT_GC_EARLY_SYN_NS are collected too, and each step looks at
 * KS_CT_GC_PRESSURE_MUL times its budget. The table never evicts an
 * established flow to make room (bpf/lib/maps.h); this is how room comes
 * back for new ones before the half-open timeout.
 */
#define KS_CT_GC_PRESSURE_PCT 90
#define KS_CT_GC_EARLY_SYN_NS (5 * KS_NS_PER_SEC)
#define KS_CT_GC_PRESSURE_MUL 8

struct ks_ct_gc_stats {
	uint64_t scanned; /* entries looked at */
	uint64_t expired; /* flows deleted: idle past their state's timeout */
	uint64_t early;	  /* ... of which half-open, collected early under pressure */
	uint64_t flushed; /* flows deleted by ks_ct_flush_*() */
	uint64_t live;	  /* flows found live in the last complete pass */
	uint64_t passes;  /* complete passes over the table */
};

/* The collector's place in the table between calls. Zero it to start;
 * ks_ct_gc_destroy frees what ks_ct_gc_flush queued. */
struct ks_ct_gc {
	uint32_t batch; /* the kernel's cursor (a hash bucket) */
	bool in_pass;
	bool pressure;	    /* the last pass found the table nearly full */
	uint64_t live;	    /* live flows counted so far in this pass */
	uint64_t entries;   /* entries kept so far in this pass */
	uint64_t pass;	    /* complete passes so far */
	struct ks_index flushes; /* struct ks_ct_flush_key -> first pass that covers it */
};

/* The datapath's clock (bpf_ktime_get_coarse_ns): CLOCK_MONOTONIC_COARSE. */
uint64_t ks_ct_now(void);

/*
 * Looks at up to budget entries (0: KS_CT_GC_BUDGET) from where the last
 * call stopped and deletes the flows idle past their timeout at now_ns
 * (ks_ct_now()), both directions. Adds to *st. Returns 1 when this call
 * finished a pass over the whole table (the next starts another), 0 when
 * there is more, or -errno.
 */
int ks_ct_gc_step(struct ks_dp *dp, struct ks_ct_gc *gc, uint64_t now_ns, uint32_t budget,
		  struct ks_ct_gc_stats *st);
/* The rest of a pass (a whole one from a zeroed gc), at once: for tests and
 * tools; the daemon steps. */
int ks_ct_gc(struct ks_dp *dp, struct ks_ct_gc *gc, uint64_t now_ns, struct ks_ct_gc_stats *st);

/*
 * Queues the flows of service svc steered to ep (NULL: every flow of svc)
 * for deletion by the collector: every step deletes those it meets, until a
 * whole pass begun after the call has ended. This is how a removed endpoint
 * or a deleted service loses its flows without the loop stopping for a walk
 * of the whole table; while flushes are queued, ks_ct_gc_urgent says so and
 * the daemon steps without pause (a million entries in well under a
 * second, in steps of a few milliseconds). 0 or -ENOMEM.
 */
int ks_ct_gc_flush(struct ks_ct_gc *gc, uint32_t svc, const struct ks_endpoint *ep);
bool ks_ct_gc_urgent(const struct ks_ct_gc *gc);
void ks_ct_gc_destroy(struct ks_ct_gc *gc);

/*
 * Deletes every flow of service svc steered to ep (its address, port and
 * family; pad ignored), so that their next packets are steered anew: call
 * when an endpoint is removed from a service (not when it starts draining:
 * a draining endpoint keeps its flows). A UDP client with a fixed source
 * port then moves on at once. Returns the number of flows deleted, or
 * -errno. It walks the whole table and deletes in batches: on a 2-core VM
 * about 1 s a million flows, plus 0.8 s a million flows deleted
 * (bench-prog). Too long for the daemon's loop at that size: run it aside,
 * or accept the pause when endpoints are removed.
 */
int ks_ct_flush_endpoint(struct ks_dp *dp, uint32_t svc, const struct ks_endpoint *ep);
/* ... every flow of service svc: call when it is deleted, before its id
 * can be reused. */
int ks_ct_flush_svc(struct ks_dp *dp, uint32_t svc);
/* ... every flow of the services in svcs (keys: uint32_t ids), in one walk. */
int ks_ct_flush_svcs(struct ks_dp *dp, const struct ks_index *svcs);
/* ... every flow. */
int ks_ct_flush_all(struct ks_dp *dp);

/* One flow, as `kshiftctl conns` shows it. Ports in host order. */
struct ks_ct_flow {
	uint8_t family; /* KS_FAMILY_V4 or _V6 */
	uint8_t proto;	/* IPPROTO_TCP or _UDP */
	uint8_t state;	/* enum ks_ct_state */
	uint8_t backend;
	uint32_t svc;
	struct ks_addr client, frontend, endpoint;
	uint16_t client_port, frontend_port, endpoint_port;
	uint64_t idle_ns; /* since its last packet, to KS_CT_TOUCH_NS */
	bool expired;	  /* idle past its timeout: gone to the datapath */
};

/* Calls cb for each flow (its forward entry) of service svc, or of every
 * service with svc UINT32_MAX, until cb returns nonzero (which is then
 * returned). Returns 0, or -errno. */
int ks_ct_list(struct ks_dp *dp, uint32_t svc, uint64_t now_ns,
	       int (*cb)(const struct ks_ct_flow *flow, void *arg), void *arg);

const char *ks_ct_state_name(uint8_t state);
/* The idle timeout of state in the loaded program, ns. */
uint64_t ks_ct_timeout(const struct ks_dp *dp, uint8_t state);

#endif /* KSHIFT_CONNTRACK_H */
