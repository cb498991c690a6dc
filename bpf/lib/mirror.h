/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Shadow traffic (docs/shadow.md): a sample of a service's new flows is
 * also sent to a shadow backend, whose answers never reach the client. The
 * sample is of flows, not packets: a flow is mirrored whole or not at all,
 * decided when it starts by a hash of its 5-tuple against ks_mirrors[svc].
 * A mirrored flow carries KS_CONN_MIRRORED in both of its ks_conns entries,
 * so flows that are not mirrored pay one bit test; its shadow endpoint
 * (Maglev, like any flow, from the shadow backend's ring) is in ks_mflows.
 *
 *   UDP, TC:  each datagram is copied: the copy's destination rewritten to
 *             the shadow endpoint, cloned back into this interface's
 *             ingress, where it matches no frontend and is forwarded by the
 *             kernel. The shadow's answers are dropped here
 *             (KS_V_DROP_SHADOW_REPLY).
 *   UDP, XDP: nothing is copied; XDP cannot clone a frame.
 *   TCP:      a copied segment could not hold a session with the shadow,
 *             whose sequence numbers are its own. The client's payload and
 *             the start of the primary's answers go to kshiftd through the
 *             ring buffer ks_shadow_rb, and kshiftd replays the byte stream
 *             on a connection of its own (user/lib/shadow.c). XDP and TC.
 *
 * The primary never waits: a full ring drops the event (counted as lost);
 * kshiftd gives up on a flow with a gap and counts it.
 */
#ifndef KS_BPF_MIRROR_H
#define KS_BPF_MIRROR_H

#include <kshift/hash.h>
#include "common.h"
#include "conntrack.h"
#include "ctx.h"
#include "maps.h"
#include "nat.h"
#include "parse.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ks_mirror);
} ks_mirrors SEC(".maps");

/* LRU: a flow that ended leaves by eviction; one evicted while it lives
 * stops being copied, and kshiftd counts the gap. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_MAX_MIRROR_FLOWS);
	__type(key, struct ks_flow);
	__type(value, struct ks_mflow);
} ks_mflows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, KS_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct ks_mirror_counters);
} ks_mirror_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, KS_SHADOW_RING);
} ks_shadow_rb SEC(".maps");

/* Scratch space, since ks_process() leaves the mirror little of the
 * 512-byte stack (32 bytes): every key and value the map helpers take, the
 * arguments of a mirror call, and the head of an event. */
struct ks_shadow_buf {
	struct ks_flow key;   /* the mirrored flow as the client sends it, or a reply's */
	struct ks_mflow mf;   /* its shadow */
	struct ks_addr paddr; /* its primary endpoint */
	__be16 pport;
	__u16 pad;
	__u32 svc;
	__u32 k32;
	__u32 off; /* of the payload an event carries */
	__u64 h;   /* its 5-tuple hash */
	struct ks_shadow_ev ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_shadow_buf);
} ks_shadow_buf SEC(".maps");

/* The key of the one scratch entry, in .rodata: even 4 bytes of stack
 * count here. */
const volatile __u32 ks_mirror_zero = 0;

static __always_inline struct ks_shadow_buf *ks_mirror_scratch(void)
{
	return bpf_map_lookup_elem(&ks_shadow_buf, (const void *)&ks_mirror_zero);
}

/* Salted, so that the sample is not the same hash range as a backend's
 * threshold: mirroring 10% of a 90/10 split takes 10% of each backend. */
#define KS_MIRROR_SALT 0x5ad0c0de5ad0c0deULL

/* The shadow endpoint of b's flow: the shadow backend's ring in the live
 * split, as ks_pick() reads a backend's. */
static __always_inline const struct ks_endpoint *ks_mirror_pick(struct ks_shadow_buf *b,
								__u32 backend)
{
	const struct ks_ring_chunk *chunk;
	const struct ks_split *split;
	const __u32 *gen;
	__u32 slot;

	gen = bpf_map_lookup_elem(&ks_svc_gen, &b->svc);
	if (!gen || backend >= KS_MAX_BACKENDS)
		return NULL;
	b->k32 = b->svc * KS_GENERATIONS + (*gen & 1);
	split = bpf_map_lookup_elem(&ks_splits, &b->k32);
	if (!split || !split->ring[backend].size)
		return NULL;
	slot = split->ring[backend].off + (__u32)b->h % split->ring[backend].size;
	b->k32 = slot / KS_RING_CHUNK;
	chunk = bpf_map_lookup_elem(&ks_ring, &b->k32);
	if (!chunk)
		return NULL;
	b->k32 = split->ring[backend].ep_base + chunk->ep[slot % KS_RING_CHUNK];
	return bpf_map_lookup_elem(&ks_endpoints, &b->k32);
}

/* The key of the answers from addr:port to the client of pkt, in b->key. */
static __always_inline void ks_mirror_reply_key(const struct ks_pkt *pkt,
						const struct ks_addr *addr, __be16 port,
						struct ks_shadow_buf *b)
{
	__builtin_memcpy(&b->key.saddr, addr, sizeof(*addr));
	__builtin_memcpy(&b->key.daddr, &pkt->flow.saddr, sizeof(*addr));
	b->key.sport = port;
	b->key.dport = pkt->flow.sport;
	b->key.proto = pkt->flow.proto;
	b->key.family = pkt->flow.family;
	b->key.pad = 0;
}

static __always_inline void ks_mirror_mark(const struct ks_flow *key)
{
	struct ks_conn *c = bpf_map_lookup_elem(&ks_conns, key);

	if (c)
		c->flags |= KS_CONN_MIRRORED;
}

/* One ring record of the event in b (b->ev and b->ev.len <= cls payload
 * bytes from b->off), cls a power of 2. b->k32: 0, or 1 when the ring was
 * full. Everything is read from b after the reservation, so that only
 * ctx, b and the record live across calls: no stack (see below). */
static __always_inline void ks_mirror_emit(void *ctx, const bool xdp, struct ks_shadow_buf *b,
					   const __u32 cls)
{
	__u8 *rec = bpf_ringbuf_reserve(&ks_shadow_rb, sizeof(b->ev) + cls, 0);
	__u32 len;
	long err;

	if (!rec) {
		b->k32 = 1;
		return;
	}
	b->k32 = 0;
	__builtin_memcpy(rec, &b->ev, sizeof(b->ev));
	if (b->ev.len) {
		/* len is 1..cls already; the mask says so in a form the
		 * verifier follows */
		len = ((b->ev.len - 1) & (cls - 1)) + 1;
		err = xdp ? bpf_xdp_load_bytes(ctx, b->off, rec + sizeof(b->ev), len)
			  : bpf_skb_load_bytes(ctx, b->off, rec + sizeof(b->ev), len);
		if (err)
			((struct ks_shadow_ev *)rec)->len = 0;
	}
	bpf_ringbuf_submit(rec, 0);
}

/*
 * The ring record of the event in the scratch buffer (b->ev, and b->ev.len
 * payload bytes from b->off), in a global function of each hook: the
 * verifier checks it once, on its own. Inlined at each of its call sites,
 * the ring buffer's size classes multiplied the paths past the verifier's
 * limit of a million instructions. It takes only the context and finds the
 * rest in the scratch buffer, since ks_process() leaves a called function
 * almost none of the 512-byte stack.
 */
static __always_inline int ks_mirror_emit_do(void *ctx, const bool xdp)
{
	struct ks_shadow_buf *b = ks_mirror_scratch();
	struct ks_mirror_counters *mc;

	if (!b)
		return 0;
	/* ring records have sizes the verifier knows: the smallest class
	 * that holds the payload, so a request of a few bytes takes little
	 * of the ring and a GSO segment still fits whole */
	if (b->ev.len <= 512)
		ks_mirror_emit(ctx, xdp, b, 512);
	else if (b->ev.len <= 2048) /* an MTU's segment: XDP, and TC without GRO */
		ks_mirror_emit(ctx, xdp, b, 2048);
	else if (b->ev.len <= 4096)
		ks_mirror_emit(ctx, xdp, b, 4096);
	else if (b->ev.len <= 16384)
		ks_mirror_emit(ctx, xdp, b, 16384);
	else
		ks_mirror_emit(ctx, xdp, b, KS_SHADOW_SEG_MAX + 1);
	mc = bpf_map_lookup_elem(&ks_mirror_stats, &b->ev.svc);
	if (!mc)
		return 0;
	if (b->k32)
		mc->lost++;
	else if (b->ev.kind == KS_SHADOW_DATA)
		mc->segments++;
	return 0;
}

__noinline int ks_mirror_emit_xdp(struct xdp_md *ctx)
{
	return ks_mirror_emit_do(ctx, true);
}

__noinline int ks_mirror_emit_tc(struct __sk_buff *ctx)
{
	return ks_mirror_emit_do(ctx, false);
}

/*
 * Sends a record of kind about b's flow (b->key, as the client sends it,
 * and its shadow b->mf) to kshiftd, with the first cap bytes of the
 * packet's L4 payload (all of it for the client's side; the start of a
 * response for the reply side).
 */
static __always_inline void ks_mirror_event(void *ctx, const bool xdp, const struct ks_pkt *pkt,
					    struct ks_shadow_buf *b, __u8 kind, __u32 cap)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	struct tcphdr *th = data + (pkt->l4_off & 0x1ff);
	__u32 seg = 0;

	if ((void *)(th + 1) > data_end)
		return;
	b->off = (pkt->l4_off & 0x1ff) + th->doff * 4;
	if (pkt->l3_off + pkt->l3_len > b->off)
		seg = pkt->l3_off + pkt->l3_len - b->off;
	__builtin_memcpy(&b->ev.flow, &b->key, sizeof(b->key));
	__builtin_memcpy(&b->ev.shadow, &b->mf.addr, sizeof(b->mf.addr));
	b->ev.shadow_port = b->mf.port;
	b->ev.kind = kind;
	b->ev.tcp_flags = pkt->tcp_flags;
	b->ev.seq = pkt->tcp_seq;
	b->ev.seg_len = seg;
	b->ev.svc = b->mf.svc;
	b->ev.pad = 0;
	b->ev.len = seg < cap ? seg : cap;
	if (xdp)
		ks_mirror_emit_xdp(ctx);
	else
		ks_mirror_emit_tc(ctx);
}

/*
 * A datagram of a mirrored flow, about to be rewritten for the primary: its
 * copy goes to the shadow b->mf. The packet is rewritten for the shadow and
 * cloned into this interface's ingress, where it matches nothing of ours
 * and the kernel forwards it; the caller then rewrites the original for the
 * primary (from the shadow's address: ks_nat() works from what is in the
 * packet).
 */
static __always_inline void ks_mirror_copy(void *ctx, const bool xdp, struct ks_pkt *pkt,
					   struct ks_shadow_buf *b)
{
	struct ks_mirror_counters *mc;

	if (xdp || pkt->frag)
		return;
	if (ks_nat(ctx, xdp, pkt, true, &b->mf.addr, b->mf.port))
		return;
	if (bpf_clone_redirect(ctx, ((struct __sk_buff *)ctx)->ifindex, BPF_F_INGRESS))
		return;
	mc = bpf_map_lookup_elem(&ks_mirror_stats, &b->mf.svc);
	if (mc)
		mc->copies++;
}

/* Whether service svc mirrors any of its new flows: most do not, and their
 * new flows then skip the rest (the sample's hash included). */
static __always_inline bool ks_mirror_on(__u32 svc)
{
	const struct ks_mirror *m = bpf_map_lookup_elem(&ks_mirrors, &svc);

	return m && m->percent;
}

/*
 * A new flow (pkt->flow, steered to b's primary endpoint and entered in
 * ks_conns) of service b->svc with 5-tuple hash b->h: mirrored if it falls
 * in the sample. TCP flows are mirrored only from their SYN, since a replay
 * must start at the first byte.
 */
static __always_inline void ks_mirror_start_do(void *ctx, const bool xdp, struct ks_pkt *pkt,
					       struct ks_shadow_buf *b)
{
	const struct ks_mirror *m = bpf_map_lookup_elem(&ks_mirrors, &b->svc);
	struct ks_mirror_counters *mc;
	const struct ks_endpoint *ep;

	if (likely(!m || !m->percent))
		return;
	if (pkt->flow.proto == IPPROTO_TCP && !ks_ct_pure_syn(pkt))
		return;
	if (ks_hash_mix(b->h ^ KS_MIRROR_SALT) % 100 >= m->percent)
		return;
	ep = ks_mirror_pick(b, m->backend);
	if (!ep)
		return;
	__builtin_memcpy(&b->mf.addr, &ep->addr, sizeof(ep->addr));
	b->mf.port = ep->port;
	b->mf.kind = KS_MFLOW_FORWARD;
	b->mf.pad = 0;
	b->mf.svc = b->svc;
	__builtin_memcpy(&b->key, &pkt->flow, sizeof(b->key));
	if (bpf_map_update_elem(&ks_mflows, &b->key, &b->mf, BPF_ANY))
		return;
	/* both entries of the flow, so its replies are seen too */
	ks_mirror_mark(&b->key);
	ks_mirror_reply_key(pkt, &b->paddr, b->pport, b);
	ks_mirror_mark(&b->key);
	mc = bpf_map_lookup_elem(&ks_mirror_stats, &b->svc);
	if (mc)
		mc->flows++;
	if (pkt->flow.proto == IPPROTO_TCP) {
		__builtin_memcpy(&b->key, &pkt->flow, sizeof(b->key));
		ks_mirror_event(ctx, xdp, pkt, b, KS_SHADOW_OPEN, 0);
		return;
	}
	/* the shadow's answers, to be dropped at the node */
	ks_mirror_reply_key(pkt, &b->mf.addr, b->mf.port, b);
	b->mf.kind = KS_MFLOW_SHADOW;
	bpf_map_update_elem(&ks_mflows, &b->key, &b->mf, BPF_ANY);
	b->mf.kind = KS_MFLOW_FORWARD;
	ks_mirror_copy(ctx, xdp, pkt, b);
}

/*
 * A packet of a mirrored flow (entry c; fwd: the client's direction), before
 * it is rewritten for the primary. UDP: a copy to the shadow (TC only).
 * TCP: the client's payload, FIN and RST, and the start of the primary's
 * answers (and its SYN-ACK, for its sequence numbers), to kshiftd.
 */
static __always_inline void ks_mirror_do(void *ctx, const bool xdp, struct ks_pkt *pkt,
					 const struct ks_conn *c, bool fwd, struct ks_shadow_buf *b)
{
	const struct ks_mflow *mf;
	bool payload;

	if (fwd) {
		__builtin_memcpy(&b->key, &pkt->flow, sizeof(b->key));
	} else {
		/* the flow as the client sends it: to the frontend */
		__builtin_memcpy(&b->key.saddr, &pkt->flow.daddr, sizeof(c->addr));
		__builtin_memcpy(&b->key.daddr, &c->addr, sizeof(c->addr));
		b->key.sport = pkt->flow.dport;
		b->key.dport = c->port;
		b->key.proto = pkt->flow.proto;
		b->key.family = pkt->flow.family;
		b->key.pad = 0;
	}
	mf = bpf_map_lookup_elem(&ks_mflows, &b->key);
	if (!mf || mf->kind != KS_MFLOW_FORWARD)
		return;
	__builtin_memcpy(&b->mf, mf, sizeof(b->mf));
	if (pkt->flow.proto != IPPROTO_TCP) {
		if (fwd)
			ks_mirror_copy(ctx, xdp, pkt, b);
		return;
	}
	payload = pkt->l3_off + pkt->l3_len > pkt->l4_off + sizeof(struct tcphdr);
	if (fwd && (payload || (pkt->tcp_flags & (KS_TCP_FIN | KS_TCP_RST))))
		ks_mirror_event(ctx, xdp, pkt, b, KS_SHADOW_DATA, KS_SHADOW_SEG_MAX);
	else if (!fwd && (payload || (pkt->tcp_flags & KS_TCP_SYN)))
		ks_mirror_event(ctx, xdp, pkt, b, KS_SHADOW_REPLY, KS_SHADOW_REPLY_MAX);
}

/* A new flow of svc, steered to primary, with 5-tuple hash h: mirrored if
 * it falls in the sample (see ks_mirror_start_do). */
static __always_inline void ks_mirror_start(void *ctx, const bool xdp, struct ks_pkt *pkt,
					    __u32 svc, const struct ks_endpoint *primary, __u64 h)
{
	struct ks_shadow_buf *b = ks_mirror_scratch();

	if (!b)
		return;
	b->svc = svc;
	b->h = h;
	__builtin_memcpy(&b->paddr, &primary->addr, sizeof(b->paddr));
	b->pport = primary->port;
	ks_mirror_start_do(ctx, xdp, pkt, b);
}

/* A packet of a mirrored flow (see ks_mirror_do), before its rewrite. */
static __always_inline void ks_mirror(void *ctx, const bool xdp, struct ks_pkt *pkt,
				      const struct ks_conn *c, bool fwd)
{
	struct ks_shadow_buf *b = ks_mirror_scratch();

	if (b)
		ks_mirror_do(ctx, xdp, pkt, c, fwd, b);
}

/* A packet that matched no flow and no frontend: the shadow's answer to a
 * copied datagram? */
static __always_inline bool ks_mirror_shadow_reply(const struct ks_pkt *pkt)
{
	struct ks_mirror_counters *mc;
	const struct ks_mflow *mf;

	if (pkt->flow.proto != IPPROTO_UDP)
		return false;
	mf = bpf_map_lookup_elem(&ks_mflows, &pkt->flow);
	if (!mf || mf->kind != KS_MFLOW_SHADOW)
		return false;
	mc = bpf_map_lookup_elem(&ks_mirror_stats, &mf->svc);
	if (mc)
		mc->shadow_replies++;
	return true;
}

#endif /* KS_BPF_MIRROR_H */
