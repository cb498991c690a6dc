/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The connection table: both directions of every steered flow in ks_conns
 * (see bpf/lib/maps.h), each entry with the flow's state and when it last
 * carried a packet, so that the table says what is true of the flow now.
 *
 * States and their idle timeouts (enum ks_ct_state, KS_CT_TIMEOUT_* in
 * include/kshift/abi.h, settable at load in ks_ct_timeouts):
 *
 *   TCP SYN (client)            -> SYN_SENT     60 s
 *   SYN-ACK (endpoint), or a
 *   client ACK, or mid-stream   -> ESTABLISHED  6 h
 *   FIN, either way             -> CLOSING      10 s
 *   RST, either way             -> CLOSED       10 s
 *   UDP                         -> UDP          60 s
 *
 * An entry idle for longer than its state's timeout is absent to the
 * datapath: a forward packet is steered again as a new flow, a reply passes
 * untouched. The daemon deletes such entries (user/lib/conntrack.c).
 *
 * A client's SYN on a remembered 5-tuple re-steers the flow only if the flow
 * is over: closed, closing, or still half-open with another initial sequence
 * number (a new connect() from the same port). A retransmitted SYN (same
 * ISN), and any SYN on an established flow (a client that lost its state,
 * or someone off the path who guessed the 5-tuple), keep the endpoint. A
 * re-steer deletes the flow's old reply entry. After a flow closes, a
 * SYN-ACK on its reply tuple is another connection's (a client that reused
 * its port to reach the endpoint directly) and passes untouched.
 *
 * Each direction's packet refreshes its own entry at most once per
 * KS_CT_TOUCH_NS, and then also the other direction's, rebuilding it if it
 * is missing: a flow is never left translated one way only. A refresh
 * never moves an entry's state back (see ks_ct_update()).
 *
 * One insert per new flow: an insert is most of what a new flow costs, so
 * the first packet enters the forward entry only (ks_ct_create()), and the
 * flow's first reply enters the reply entry (ks_ct_reply_entry()): kshiftd
 * keeps, in ks_eprev, the frontends each endpoint serves, and a packet
 * from an endpoint that no entry knows is a reply only if one of those
 * frontends has a live forward entry from the packet's destination steered
 * to exactly this endpoint. An unanswered SYN (a flood) costs one entry.
 */
#ifndef KS_BPF_CONNTRACK_H
#define KS_BPF_CONNTRACK_H

#include "common.h"
#include "hairpin.h"
#include "maps.h"
#include "parse.h"

const volatile struct ks_ct_timeouts ks_ct_timeouts = {
	.syn_sent = KS_CT_TIMEOUT_SYN_SENT,
	.established = KS_CT_TIMEOUT_ESTABLISHED,
	.closing = KS_CT_TIMEOUT_CLOSING,
	.closed = KS_CT_TIMEOUT_CLOSED,
	.udp = KS_CT_TIMEOUT_UDP,
};

/*
 * The datapath's clock: bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE,
 * which userspace reads too). The coarse clock moves once a tick, when
 * jiffies do; jiffies are one load (the verifier inlines bpf_jiffies64),
 * where the coarse clock is a helper call that costs a sixth of an
 * established packet on a VM with return-thunk mitigations. So each CPU
 * keeps the clock's value as of the current jiffy.
 */
static __always_inline __u64 ks_ct_now(void)
{
	__u64 j = bpf_jiffies64();
	struct ks_clock *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&ks_clock, &zero);
	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j) {
		c->jiffies = j;
		c->ns = bpf_ktime_get_coarse_ns();
	}
	return c->ns;
}

static __always_inline __u64 ks_ct_timeout(__u8 state)
{
	switch (state) {
	case KS_CT_SYN_SENT:
		return ks_ct_timeouts.syn_sent;
	case KS_CT_CLOSING:
		return ks_ct_timeouts.closing;
	case KS_CT_CLOSED:
		return ks_ct_timeouts.closed;
	case KS_CT_UDP:
		return ks_ct_timeouts.udp;
	default:
		return ks_ct_timeouts.established;
	}
}

/* Another CPU may have stamped the entry a moment after now was read. */
static __always_inline bool ks_ct_live(const struct ks_conn *c, __u64 now)
{
	return (__s64)(now - c->seen_ns) <= (__s64)ks_ct_timeout(c->state);
}

static __always_inline bool ks_ct_pure_syn(const struct ks_pkt *pkt)
{
	return pkt->flow.proto == IPPROTO_TCP &&
	       (pkt->tcp_flags & (KS_TCP_SYN | KS_TCP_ACK | KS_TCP_RST)) == KS_TCP_SYN;
}

/* The key of the other direction's entry of the flow whose entry c is.
 * A hairpin flow's replies go to the hairpin address (bpf/lib/hairpin.h),
 * and its client is its endpoint. */
static __always_inline void ks_ct_peer_key(const struct ks_flow *key, const struct ks_conn *c,
					   struct ks_flow *peer)
{
	bool fwd = c->dir == KS_DIR_FORWARD, hairpin = c->flags & KS_CONN_HAIRPIN;

	*peer = (struct ks_flow){
		.saddr = fwd ? c->addr : hairpin ? key->saddr : key->daddr,
		.daddr = fwd ? key->saddr : c->addr,
		.sport = fwd ? c->port : key->dport,
		.dport = fwd ? key->sport : c->port,
		.proto = key->proto,
		.family = key->family,
	};
	if (unlikely(hairpin && fwd))
		ks_hairpin_addr(key->family, &peer->daddr);
}

/* Does p, found at the peer key of (key, c), name (key, c) back? */
static __always_inline bool ks_ct_is_peer(const struct ks_flow *key, const struct ks_conn *c,
					  const struct ks_conn *p)
{
	bool fwd = c->dir == KS_DIR_FORWARD;
	const struct ks_addr *a = fwd ? &key->daddr : &key->saddr;

	return p->dir != c->dir && p->port == (fwd ? key->dport : key->sport) &&
	       ks_addr_eq(&p->addr, a);
}

/* What ks_conns says of a packet. */
enum ks_ct_use {
	KS_CT_MISS,  /* no live entry that this packet belongs to */
	KS_CT_HIT,   /* rewrite the packet as the entry says; ks_ct_update() it */
	KS_CT_FRESH, /* ... and the entry needs no update */
};

/* An endpoint's SYN-ACK on the reply entry c of a flow that is over: the
 * client's port belongs to another connection now, made to the endpoint
 * directly, which the endpoint's TIME_WAIT let in (ks_ct_forget_reused). */
static __always_inline bool ks_ct_port_reused(const struct ks_pkt *pkt, const struct ks_conn *c)
{
	return c->dir == KS_DIR_REPLY && (c->state == KS_CT_CLOSING || c->state == KS_CT_CLOSED) &&
	       (pkt->tcp_flags & (KS_TCP_SYN | KS_TCP_ACK)) == (KS_TCP_SYN | KS_TCP_ACK);
}

static __always_inline enum ks_ct_use ks_ct_check(const struct ks_pkt *pkt,
						  const struct ks_conn *c, __u64 now)
{
	if (!c)
		return KS_CT_MISS;
	/* most packets: a flow stamped within the second (no timeout is
	 * shorter), or stamped by a CPU whose clock is a tick ahead of this
	 * one's (signed), no flag that moves its state */
	if ((__s64)(now - c->seen_ns) < (__s64)KS_CT_TOUCH_NS && c->state != KS_CT_SYN_SENT &&
	    !(pkt->tcp_flags & (KS_TCP_SYN | KS_TCP_FIN | KS_TCP_RST)))
		return KS_CT_FRESH;
	if (!ks_ct_live(c, now))
		return KS_CT_MISS;
	if (pkt->flow.proto != IPPROTO_TCP)
		return KS_CT_HIT;
	if (ks_ct_pure_syn(pkt)) {
		/* an endpoint does not open connections to a client's port */
		if (c->dir != KS_DIR_FORWARD)
			return KS_CT_MISS;
		if (c->state == KS_CT_ESTABLISHED)
			return KS_CT_HIT;
		if (c->state == KS_CT_SYN_SENT && c->isn == pkt->tcp_seq)
			return KS_CT_HIT;
		return KS_CT_MISS;
	}
	if (ks_ct_port_reused(pkt, c))
		return KS_CT_MISS;
	return KS_CT_HIT;
}

static __always_inline __u8 ks_ct_next_state(const struct ks_pkt *pkt, const struct ks_conn *c)
{
	__u8 f = pkt->tcp_flags, state = c->state;

	if (pkt->flow.proto != IPPROTO_TCP)
		return KS_CT_UDP;
	if ((f & KS_TCP_RST) || state == KS_CT_CLOSED)
		return KS_CT_CLOSED;
	if ((f & KS_TCP_FIN) || state == KS_CT_CLOSING)
		return KS_CT_CLOSING;
	if (state == KS_CT_SYN_SENT &&
	    (c->dir == KS_DIR_REPLY ? (f & (KS_TCP_SYN | KS_TCP_ACK)) == (KS_TCP_SYN | KS_TCP_ACK)
				     : (f & (KS_TCP_SYN | KS_TCP_ACK)) == KS_TCP_ACK))
		return KS_CT_ESTABLISHED;
	return state;
}

/* The entry of the other direction, as it is made from (key, c). */
static __always_inline void ks_ct_peer_val(const struct ks_flow *key, const struct ks_conn *c,
					   struct ks_conn *p)
{
	bool fwd = c->dir == KS_DIR_FORWARD;

	*p = (struct ks_conn){
		.addr = fwd ? key->daddr : key->saddr,
		.port = fwd ? key->dport : key->sport,
		.dir = fwd ? KS_DIR_REPLY : KS_DIR_FORWARD,
		.backend = c->backend,
		.svc = c->svc,
		.seen_ns = c->seen_ns,
		.state = c->state,
		.flags = c->flags & (KS_CONN_HAIRPIN | KS_CONN_MIRRORED),
	};
}

/* Gives the other direction's entry c's state and time; makes it again if
 * it is missing. Another live flow's entry at that key is left alone. */
static __always_inline void ks_ct_sync_peer(const struct ks_flow *key, const struct ks_conn *c)
{
	struct ks_flow pk;
	struct ks_conn *p, v;

	ks_ct_peer_key(key, c, &pk);
	p = bpf_map_lookup_elem(&ks_conns, &pk);
	if (p) {
		if (ks_ct_is_peer(key, c, p)) {
			/* never back: see ks_ct_update() */
			if (p->state < c->state)
				p->state = c->state;
			p->seen_ns = c->seen_ns;
		}
		return;
	}
	ks_ct_peer_val(key, c, &v);
	bpf_map_update_elem(&ks_conns, &pk, &v, BPF_NOEXIST);
}

/*
 * A packet of the flow of entry c: its state moves, its time is stamped
 * (coarsely), and the other direction follows.
 *
 * A flow's states only move forward (enum ks_ct_state: SYN_SENT,
 * ESTABLISHED, CLOSING, CLOSED), and so do the entries' states: the two
 * directions of a flow are updated on different CPUs at once (a veth has
 * a queue per CPU, so even one direction's packets are), without a lock,
 * and a packet's state was read before another CPU's FIN may have moved
 * the flow on. Written as read, an ACK racing the endpoint's FIN put one
 * entry back to ESTABLISHED, and the next refresh copied that onto the
 * other: a finished flow held its endpoint against a new SYN. A stamp a
 * tick ahead of now (the per-CPU clocks of ks_ct_now()) is fresh, not
 * wrapped round to a second old, which refreshed far more often.
 */
static __always_inline void ks_ct_update(const struct ks_pkt *pkt, struct ks_conn *c, __u64 now)
{
	__u8 state = ks_ct_next_state(pkt, c);

	if (state == c->state && (__s64)(now - c->seen_ns) < (__s64)KS_CT_TOUCH_NS)
		return;
	if (state > c->state)
		c->state = state;
	if ((__s64)(now - c->seen_ns) > 0)
		c->seen_ns = now;
	ks_ct_sync_peer(&pkt->flow, c);
}

/* Per CPU, the entries ks_ct_create() builds, and ks_ct_reply_make()'s
 * memory: what it is asked, its temporaries. Not on the stack, which
 * ks_process() fills (a global function's stack adds to it). */
struct ks_ct_tmp {
	struct ks_flow key;
	__u64 now;
	__u32 tcp_flags;
	struct ks_flow fk;
	struct ks_conn v;
	struct ks_eprev_key ek;
	struct ks_conn fwd;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ks_ct_tmp);
} ks_ct_tmp SEC(".maps");

/*
 * Remembers a new flow (forward key pkt->flow) through frontend fe, steered
 * to ep, replacing stale, the expired or ended entry found at its key, if
 * any. Returns 0, or the verdict that refuses the flow: the table is full,
 * or the reply tuple is a live flow's of another frontend (one client port
 * to two frontends that share an endpoint, whose replies could not be told
 * apart).
 *
 * The forward entry alone goes in, and the first reply brings the reply
 * entry (ks_ct_reply_entry()), unless fe says its endpoints serve other
 * frontends too (the insert of the reply entry is what finds a clash) or
 * are missing from ks_eprev, or the flow is a hairpin one, whose replies
 * go to the hairpin address, or a TCP flow picked up mid-stream. Then both
 * go in, the reply entry first, so no failure leaves a forward entry
 * without its reply.
 */
static __always_inline int ks_ct_create(const struct ks_pkt *pkt, const struct ks_conn *stale,
					const struct ks_frontend *fe, const struct ks_endpoint *ep,
					__u32 backend, __u64 now)
{
	const struct ks_flow *flow = &pkt->flow;
	struct ks_conn *fwd, *old;
	struct ks_ct_tmp *t;
	__u32 zero = 0;
	long err;

	t = bpf_map_lookup_elem(&ks_ct_tmp, &zero);
	if (!t)
		return KS_V_ABORTED;
	fwd = &t->fwd;
	__builtin_memset(fwd, 0, sizeof(*fwd));
	fwd->addr = ep->addr;
	fwd->port = ep->port;
	fwd->dir = KS_DIR_FORWARD;
	fwd->backend = backend;
	fwd->svc = fe->svc;
	fwd->seen_ns = now;
	fwd->state = flow->proto != IPPROTO_TCP ? KS_CT_UDP
		     : ks_ct_pure_syn(pkt)	? KS_CT_SYN_SENT
						: KS_CT_ESTABLISHED;
	fwd->flags = ks_addr_eq(&ep->addr, &flow->saddr) ? KS_CONN_HAIRPIN : 0;
	if (ks_ct_pure_syn(pkt))
		fwd->isn = pkt->tcp_seq;

	/* the old reply entry of a flow steered again goes, even to the same
	 * endpoint: the new flow's state (a handshake passive health may hold
	 * back) is its first reply's to make */
	if (stale && stale->dir == KS_DIR_FORWARD) {
		ks_ct_peer_key(flow, stale, &t->key);
		old = bpf_map_lookup_elem(&ks_conns, &t->key);
		if (old && ks_ct_is_peer(flow, stale, old))
			bpf_map_delete_elem(&ks_conns, &t->key);
	}

	/* a TCP flow picked up mid-stream has replies of every kind (see
	 * ks_ct_first_reply_like()) */
	if (likely(!(fe->flags & KS_FE_REPLY_AT_ONCE) && !fwd->flags &&
		   fwd->state != KS_CT_ESTABLISHED)) {
		if (bpf_map_update_elem(&ks_conns, flow, fwd, BPF_ANY))
			return KS_V_DROP_CT_FULL;
		return 0;
	}

	/* t->fk: the reply entry's key, t->v: the entry */
	ks_ct_peer_key(flow, fwd, &t->fk);
	ks_ct_peer_val(flow, fwd, &t->v);
	err = bpf_map_update_elem(&ks_conns, &t->fk, &t->v, BPF_NOEXIST);
	if (err == -KS_EEXIST) {
		old = bpf_map_lookup_elem(&ks_conns, &t->fk);
		/* this flow's own, or a flow that is over, may be replaced */
		if (old && ks_ct_live(old, now) && old->state != KS_CT_CLOSED &&
		    old->state != KS_CT_CLOSING && !ks_ct_is_peer(flow, fwd, old))
			return KS_V_DROP_CT_CLASH;
		err = bpf_map_update_elem(&ks_conns, &t->fk, &t->v, BPF_ANY);
	}
	if (err)
		return KS_V_DROP_CT_FULL;
	if (bpf_map_update_elem(&ks_conns, flow, fwd, BPF_ANY)) {
		bpf_map_delete_elem(&ks_conns, &t->fk);
		return KS_V_DROP_CT_FULL;
	}
	return 0;
}

/*
 * Whether a packet from an endpoint may be a flow's first reply, and worth
 * ks_ct_reply_entry(): a flow whose first packet entered only its forward
 * entry is UDP, or TCP from its SYN, which the endpoint answers with a
 * SYN-ACK or a reset. The rest of a TCP connection straight to an endpoint
 * (a probe, a pod calling a pod) then costs no search.
 */
static __always_inline bool ks_ct_first_reply_like(const struct ks_pkt *pkt)
{
	return pkt->flow.proto != IPPROTO_TCP || (pkt->tcp_flags & (KS_TCP_SYN | KS_TCP_RST));
}

/* What ks_ct_reply_entry() found. */
enum ks_ct_reply {
	KS_CT_REPLY_NONE,    /* no steered flow's reply */
	KS_CT_REPLY_ENTERED, /* a flow's first reply: its entry is in */
	KS_CT_REPLY_FULL,    /* a flow's reply, whose entry found no room: drop it */
};

/*
 * t->key, a packet (or an ICMP error's quote, reversed) from
 * an endpoint to a client that found no live entry: is it the reply of a
 * flow whose first packet entered only its forward entry? The frontends
 * the endpoint serves (ks_eprev, a hint kshiftd keeps) say where to look;
 * a forward entry from the key's destination to one of them is the flow's
 * if it is live and steered to exactly the key's source. Its reply entry is
 * then made from it. Not a reply: a SYN (endpoints do not open connections
 * to a client's port), or a SYN-ACK to a flow that is over (another
 * connection, from a reused port, to the endpoint directly).
 *
 * A global function, verified once on its own: inlined in the packet path
 * (three times, with its loop), the search took the path past the
 * verifier's million instructions. Its state is in t (ks_ct_tmp), since the
 * path leaves it little stack, and it returns no pointer.
 */
__noinline int ks_ct_reply_make(struct ks_ct_tmp *t)
{
	const struct ks_eprev *rev;
	struct ks_conn *f = NULL;
	__u32 i;

	if (!t || ((t->tcp_flags & KS_TCP_SYN) && !(t->tcp_flags & KS_TCP_ACK)))
		return KS_CT_REPLY_NONE;
	__builtin_memset(&t->ek, 0, sizeof(t->ek));
	t->ek.addr = t->key.saddr;
	t->ek.port = t->key.sport;
	t->ek.family = t->key.family;
	t->ek.proto = t->key.proto;
	rev = bpf_map_lookup_elem(&ks_eprev, &t->ek);
	if (!rev)
		return KS_CT_REPLY_NONE;
	/* field by field: a compound literal would be built on the stack */
	__builtin_memset(&t->fk, 0, sizeof(t->fk));
	t->fk.saddr = t->key.daddr;
	t->fk.sport = t->key.dport;
	t->fk.proto = t->key.proto;
	t->fk.family = t->key.family;
	for (i = 0; i < KS_EPREV_MAX && i < rev->nr; i++) {
		t->fk.daddr = rev->fe[i].addr;
		t->fk.dport = rev->fe[i].port;
		f = bpf_map_lookup_elem(&ks_conns, &t->fk);
		if (f && f->dir == KS_DIR_FORWARD && f->port == t->key.sport &&
		    !(f->flags & KS_CONN_HAIRPIN) && ks_addr_eq(&f->addr, &t->key.saddr) &&
		    ks_ct_live(f, t->now) &&
		    !((t->tcp_flags & KS_TCP_SYN) &&
		      (f->state == KS_CT_CLOSING || f->state == KS_CT_CLOSED)))
			break;
		f = NULL;
	}
	if (!f)
		return KS_CT_REPLY_NONE;
	ks_ct_peer_val(&t->fk, f, &t->v);
	if (bpf_map_update_elem(&ks_conns, &t->key, &t->v, BPF_ANY))
		return KS_CT_REPLY_FULL;
	return KS_CT_REPLY_ENTERED;
}

/* ks_ct_reply_make() for key; on KS_CT_REPLY_ENTERED, *out is the entry. */
static __always_inline enum ks_ct_reply ks_ct_reply_entry(const struct ks_flow *key,
							  __u8 tcp_flags, __u64 now,
							  struct ks_conn **out)
{
	struct ks_ct_tmp *t;
	__u32 zero = 0;
	int ret;

	t = bpf_map_lookup_elem(&ks_ct_tmp, &zero);
	if (!t)
		return KS_CT_REPLY_NONE;
	__builtin_memcpy(&t->key, key, sizeof(*key));
	t->now = now;
	t->tcp_flags = tcp_flags;
	ret = ks_ct_reply_make(t);
	if (ret != KS_CT_REPLY_ENTERED)
		return ret == KS_CT_REPLY_FULL ? KS_CT_REPLY_FULL : KS_CT_REPLY_NONE;
	*out = bpf_map_lookup_elem(&ks_conns, key);
	return *out ? KS_CT_REPLY_ENTERED : KS_CT_REPLY_FULL;
}

/*
 * The old flow of a reused port (ks_ct_port_reused(), which ks_ct_check()
 * took for no reply of c's): its entries go, or the rest of the new
 * connection would be taken for the old flow's: the endpoint's packets
 * rewritten to come from the frontend, its reset taken for a first reply.
 */
static __always_inline void ks_ct_forget_reused(const struct ks_pkt *pkt, const struct ks_conn *c)
{
	struct ks_ct_tmp *t;
	struct ks_conn *f;
	__u32 zero = 0;

	if (!c || !ks_ct_port_reused(pkt, c))
		return;
	t = bpf_map_lookup_elem(&ks_ct_tmp, &zero);
	if (!t)
		return;
	ks_ct_peer_key(&pkt->flow, c, &t->fk);
	f = bpf_map_lookup_elem(&ks_conns, &t->fk);
	if (f && ks_ct_is_peer(&pkt->flow, c, f))
		bpf_map_delete_elem(&ks_conns, &t->fk);
	bpf_map_delete_elem(&ks_conns, &pkt->flow);
}

#endif /* KS_BPF_CONNTRACK_H */
