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

/* Scratch space, since ks_process() leaves little of the 512-byte stack:
 * keys and values for the map helpers, and the head of an event. */
struct ks_shadow_buf {
	struct ks_flow key;
	struct ks_mflow mf;
	struct ks_shadow_ev ev;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_shadow_buf);
} ks_shadow_buf SEC(".maps");

static __always_inline struct ks_shadow_buf *ks_mirror_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&ks_shadow_buf, &zero);
}

/* Salted, so that the sample is not the same hash range as a backend's
 * threshold: mirroring 10% of a 90/10 split takes 10% of each backend. */
#define KS_MIRROR_SALT 0x5ad0c0de5ad0c0deULL

static __always_inline struct ks_mirror_counters *ks_mirror_counters(__u32 svc)
{
	return bpf_map_lookup_elem(&ks_mirror_stats, &svc);
}

/* The shadow endpoint of a flow of svc with hash h: the shadow backend's
 * ring in the live split, as ks_pick() reads a backend's. */
static __always_inline const struct ks_endpoint *ks_mirror_pick(__u32 svc, __u32 backend, __u64 h)
{
	const struct ks_ring_chunk *chunk;
	const struct ks_split *split;
	const __u32 *gen;
	__u32 key, slot, ep;

	gen = bpf_map_lookup_elem(&ks_svc_gen, &svc);
	if (!gen || backend >= KS_MAX_BACKENDS)
		return NULL;
	key = svc * KS_GENERATIONS + (*gen & 1);
	split = bpf_map_lookup_elem(&ks_splits, &key);
	if (!split || !split->ring[backend].size)
		return NULL;
	slot = split->ring[backend].off + (__u32)h % split->ring[backend].size;
	key = slot / KS_RING_CHUNK;
	chunk = bpf_map_lookup_elem(&ks_ring, &key);
	if (!chunk)
		return NULL;
	ep = split->ring[backend].ep_base + chunk->ep[slot % KS_RING_CHUNK];
	return bpf_map_lookup_elem(&ks_endpoints, &ep);
}

/* The key of the answers from addr:port to the client of pkt. */
static __always_inline void ks_mirror_reply_key(const struct ks_pkt *pkt,
						const struct ks_addr *addr, __be16 port,
						struct ks_flow *key)
{
	key->saddr = *addr;
	key->daddr = pkt->flow.saddr;
	key->sport = port;
	key->dport = pkt->flow.sport;
	key->proto = pkt->flow.proto;
	key->family = pkt->flow.family;
	key->pad = 0;
}

static __always_inline void ks_mirror_mark(const struct ks_flow *key)
{
	struct ks_conn *c = bpf_map_lookup_elem(&ks_conns, key);

	if (c)
		c->flags |= KS_CONN_MIRRORED;
}

/* One ring record: the event head ev and its ev->len (<= cls, a power of
 * 2) payload bytes from offset off of the packet. 0, or -1 when the ring
 * is full. */
static __always_inline int ks_mirror_emit(void *ctx, const bool xdp, const struct ks_shadow_ev *ev,
					  __u32 off, __u32 len, const __u32 cls)
{
	__u8 *rec = bpf_ringbuf_reserve(&ks_shadow_rb, sizeof(*ev) + cls, 0);
	long err = 0;

	if (!rec)
		return -1;
	__builtin_memcpy(rec, ev, sizeof(*ev));
	/* len is 1..cls already; the mask (cls is a power of 2) says so in a
	 * form the verifier follows */
	len = ((len - 1) & (cls - 1)) + 1;
	if (ev->len)
		err = xdp ? bpf_xdp_load_bytes(ctx, off, rec + sizeof(*ev), len)
			  : bpf_skb_load_bytes(ctx, off, rec + sizeof(*ev), len);
	if (err)
		((struct ks_shadow_ev *)rec)->len = 0;
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

/*
 * Sends a record of kind about the mirrored flow fwd (as the client sends
 * it) to kshiftd, with the first cap bytes of the packet's L4 payload (all
 * of it for the client's side; the start of a response for the reply side).
 */
static __always_inline void ks_mirror_event(void *ctx, const bool xdp, const struct ks_pkt *pkt,
					    const struct ks_flow *fwd, const struct ks_mflow *mf,
					    __u8 kind, __u32 cap)
{
	void *data = ks_data(ctx, xdp), *data_end = ks_data_end(ctx, xdp);
	struct ks_mirror_counters *mc = ks_mirror_counters(mf->svc);
	struct tcphdr *th = data + (pkt->l4_off & 0x1ff);
	struct ks_shadow_buf *b = ks_mirror_scratch();
	__u32 off, seg = 0, len;
	int err;

	if (!b || (void *)(th + 1) > data_end)
		return;
	off = (pkt->l4_off & 0x1ff) + th->doff * 4;
	if (pkt->l3_off + pkt->l3_len > off)
		seg = pkt->l3_off + pkt->l3_len - off;
	len = seg < cap ? seg : cap;
	__builtin_memcpy(&b->ev.flow, fwd, sizeof(*fwd));
	__builtin_memcpy(&b->ev.shadow, &mf->addr, sizeof(mf->addr));
	b->ev.shadow_port = mf->port;
	b->ev.kind = kind;
	b->ev.tcp_flags = pkt->tcp_flags;
	b->ev.seq = pkt->tcp_seq;
	b->ev.seg_len = seg;
	b->ev.svc = mf->svc;
	b->ev.pad = 0;
	b->ev.len = len;
	/* ring records have sizes the verifier knows: the smallest class
	 * that holds the payload, so a request of a few bytes takes little
	 * of the ring and a GSO segment still fits whole */
	if (len <= 512)
		err = ks_mirror_emit(ctx, xdp, &b->ev, off, len, 512);
	else if (len <= 4096)
		err = ks_mirror_emit(ctx, xdp, &b->ev, off, len, 4096);
	else if (len <= 16384)
		err = ks_mirror_emit(ctx, xdp, &b->ev, off, len, 16384);
	else
		err = ks_mirror_emit(ctx, xdp, &b->ev, off, len, KS_SHADOW_SEG_MAX + 1);
	if (err) {
		if (mc)
			mc->lost++;
		return;
	}
	if (mc && kind == KS_SHADOW_DATA)
		mc->segments++;
}

/*
 * A datagram of a mirrored flow, about to be rewritten for the primary: its
 * copy goes to the shadow. The packet is rewritten for the shadow and cloned
 * into this interface's ingress, where it matches nothing of ours and the
 * kernel forwards it; the caller then rewrites the original for the primary
 * (from the shadow's address: ks_nat() works from what is in the packet).
 */
static __always_inline void ks_mirror_copy(void *ctx, const bool xdp, struct ks_pkt *pkt,
					   const struct ks_mflow *mf)
{
	struct ks_mirror_counters *mc;

	if (xdp || pkt->frag)
		return;
	if (ks_nat(ctx, xdp, pkt, true, &mf->addr, mf->port))
		return;
	if (bpf_clone_redirect(ctx, ((struct __sk_buff *)ctx)->ifindex, BPF_F_INGRESS))
		return;
	mc = ks_mirror_counters(mf->svc);
	if (mc)
		mc->copies++;
}

/*
 * A new flow of svc (pkt->flow, steered to primary and entered in ks_conns)
 * with 5-tuple hash h: mirrored if it falls in the sample.
 * TCP flows are mirrored only from their SYN, since a replay must start at
 * the first byte.
 */
static __always_inline void ks_mirror_start(void *ctx, const bool xdp, struct ks_pkt *pkt,
					    __u32 svc, const struct ks_endpoint *primary, __u64 h)
{
	const struct ks_mirror *m = bpf_map_lookup_elem(&ks_mirrors, &svc);
	bool tcp = pkt->flow.proto == IPPROTO_TCP;
	struct ks_mirror_counters *mc;
	const struct ks_endpoint *ep;
	struct ks_shadow_buf *b;

	if (likely(!m || !m->percent))
		return;
	if (tcp && !ks_ct_pure_syn(pkt))
		return;
	if (ks_hash_mix(h ^ KS_MIRROR_SALT) % 100 >= m->percent)
		return;
	ep = ks_mirror_pick(svc, m->backend, h);
	b = ks_mirror_scratch();
	if (!ep || !b)
		return;
	b->mf.addr = ep->addr;
	b->mf.port = ep->port;
	b->mf.kind = KS_MFLOW_FORWARD;
	b->mf.pad = 0;
	b->mf.svc = svc;
	if (bpf_map_update_elem(&ks_mflows, &pkt->flow, &b->mf, BPF_ANY))
		return;
	/* both entries of the flow, so its replies are seen too */
	ks_mirror_mark(&pkt->flow);
	ks_mirror_reply_key(pkt, &primary->addr, primary->port, &b->key);
	ks_mirror_mark(&b->key);
	mc = ks_mirror_counters(svc);
	if (mc)
		mc->flows++;
	if (tcp) {
		ks_mirror_event(ctx, xdp, pkt, &pkt->flow, &b->mf, KS_SHADOW_OPEN, 0);
		return;
	}
	/* the shadow's answers, to be dropped at the node */
	ks_mirror_reply_key(pkt, &ep->addr, ep->port, &b->key);
	b->mf.kind = KS_MFLOW_SHADOW;
	bpf_map_update_elem(&ks_mflows, &b->key, &b->mf, BPF_ANY);
	b->mf.kind = KS_MFLOW_FORWARD;
	ks_mirror_copy(ctx, xdp, pkt, &b->mf);
}

/*
 * A packet of a mirrored flow (entry c; fwd: the client's direction), before
 * it is rewritten for the primary. UDP: a copy to the shadow (TC only).
 * TCP: the client's payload, FIN and RST, and the start of the primary's
 * answers, to kshiftd.
 */
static __always_inline void ks_mirror(void *ctx, const bool xdp, struct ks_pkt *pkt,
				      const struct ks_conn *c, bool fwd)
{
	struct ks_shadow_buf *b = ks_mirror_scratch();
	const struct ks_flow *key = &pkt->flow;
	const struct ks_mflow *mf;

	if (!b)
		return;
	if (!fwd) {
		/* the flow as the client sends it: to the frontend */
		b->key.saddr = pkt->flow.daddr;
		b->key.daddr = c->addr;
		b->key.sport = pkt->flow.dport;
		b->key.dport = c->port;
		b->key.proto = pkt->flow.proto;
		b->key.family = pkt->flow.family;
		b->key.pad = 0;
		key = &b->key;
	}
	mf = bpf_map_lookup_elem(&ks_mflows, key);
	if (!mf || mf->kind != KS_MFLOW_FORWARD)
		return;
	if (pkt->flow.proto == IPPROTO_TCP) {
		if (fwd && (pkt->l3_off + pkt->l3_len > pkt->l4_off + sizeof(struct tcphdr) ||
			    (pkt->tcp_flags & (KS_TCP_FIN | KS_TCP_RST))))
			ks_mirror_event(ctx, xdp, pkt, key, mf, KS_SHADOW_DATA,
					KS_SHADOW_SEG_MAX);
		else if (!fwd && (pkt->tcp_flags & KS_TCP_SYN ||
				  pkt->l3_off + pkt->l3_len > pkt->l4_off + sizeof(struct tcphdr)))
			ks_mirror_event(ctx, xdp, pkt, key, mf, KS_SHADOW_REPLY,
					KS_SHADOW_REPLY_MAX);
		return;
	}
	if (fwd)
		ks_mirror_copy(ctx, xdp, pkt, mf);
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
	mc = ks_mirror_counters(mf->svc);
	if (mc)
		mc->shadow_replies++;
	return true;
}

#endif /* KS_BPF_MIRROR_H */
