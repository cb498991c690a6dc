/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * kshift's maps, pinned by name under the pin directory by kshiftd. Layouts
 * and the meaning of each map are in include/kshift/abi.h.
 */
#ifndef KS_BPF_MAPS_H
#define KS_BPF_MAPS_H

#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4 * KS_MAX_SERVICES); /* (address, port) and address-only keys */
	__type(key, struct ks_frontend_key);
	__type(value, struct ks_frontend);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} ks_frontends SEC(".maps");

/* The live generation of each service's split: flipped with one 4-byte
 * store, which is what makes a weight change atomic for new flows. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
} ks_svc_gen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, (KS_MAX_SERVICES * KS_GENERATIONS));
	__type(key, __u32);
	__type(value, struct ks_split);
} ks_splits SEC(".maps");

/* Maglev rings of every backend, back to back; userspace writes them
 * through mmap, so loading thousands of services is memcpy, not syscalls. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_RING_SLOTS / KS_RING_CHUNK);
	__type(key, __u32);
	__type(value, struct ks_ring_chunk);
	__uint(map_flags, BPF_F_MMAPABLE);
} ks_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct ks_endpoint);
	__uint(map_flags, BPF_F_MMAPABLE);
} ks_endpoints SEC(".maps");

/*
 * Both directions of every steered flow (bpf/lib/conntrack.h). A plain
 * hash, not an LRU: an LRU evicts one direction of a flow as readily as the
 * other, leaving the flow half translated, and lets a SYN flood push out
 * established flows. Here nothing is evicted; entries leave when they
 * expire (the daemon's garbage collector deletes them, both directions
 * together), and a new flow that finds the table full is dropped and
 * counted (KS_V_DROP_CT_FULL). Sized at load from --max-flows: two entries
 * a flow. Preallocated, since an insert then costs a third of one that
 * allocates (BPF_F_NO_PREALLOC).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * KS_MAX_FLOWS);
	__type(key, struct ks_flow);
	__type(value, struct ks_conn);
} ks_conns SEC(".maps");

/* The frontends of each endpoint, for a flow's first reply (see abi.h).
 * Written by kshiftd only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KS_MAX_ENDPOINTS);
	__type(key, struct ks_eprev_key);
	__type(value, struct ks_eprev);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} ks_eprev SEC(".maps");

/* The connection table's clock, per CPU: bpf/lib/conntrack.h. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_clock);
} ks_clock SEC(".maps");

/* Where the first fragment of a datagram went, for the rest to follow
 * (bpf/lib/frag.h). LRU: a datagram is reassembled, or given up on, within
 * seconds; an entry evicted early costs one datagram, never a flow. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_MAX_FRAGS);
	__type(key, struct ks_frag_key);
	__type(value, struct ks_frag);
} ks_frags SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, (KS_MAX_SERVICES * KS_STATS_PER_SVC));
	__type(key, __u32);
	__type(value, struct ks_counters);
} ks_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KS_V_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ks_verdicts SEC(".maps");

#endif /* KS_BPF_MAPS_H */
