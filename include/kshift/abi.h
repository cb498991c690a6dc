/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI shared by the BPF programs and userspace: map keys and values,
 * enums and limits. Both sides include this file; there is no second copy.
 *
 * Byte order is named per field: "be" fields are in network order exactly as
 * they appear on the wire, everything else is host order.
 *
 * How a new flow is steered (see bpf/lib/lb.h):
 *   ks_frontends[addr, port, proto]     -> service id
 *   ks_svc_gen[svc]                     -> live generation g (0 or 1)
 *   ks_splits[svc * 2 + g]              -> weight thresholds and, per backend,
 *                                          a slice of the Maglev ring
 *   ks_rules[svc * 2 + g, client]       -> a backend by source prefix, before
 *                                          the thresholds (longest prefix wins)
 *   ks_ring[slice.off + h % slice.size] -> endpoint index i
 *   ks_endpoints[slice.ep_base + i]     -> address and port to DNAT to
 * and the choice is remembered in ks_conns for both directions.
 *
 * Userspace writes a new split (and new ring slices) into the idle
 * generation, then flips ks_svc_gen[svc] with one 4-byte store: a new flow
 * sees either the old split or the new one, never a mix.
 */
#ifndef KSHIFT_ABI_H
#define KSHIFT_ABI_H

#ifdef __bpf__
#include "vmlinux.h"
#else
#include <linux/types.h>
#endif

/* Limits. Each is a default that sizes a preallocated map. */
#define KS_MAX_SERVICES	 16384	   /* dataplane services: one per (shift, frontend port) */
/* The most --max-services and --max-endpoints may ask for. A service costs
 * 328 bytes per CPU (ks_stats, ks_mirror_stats) and about 500 more
 * (ks_splits, ks_frontends, ...): 131,072 services took 151 MB of maps on
 * 2 CPUs, 1,048,576 would take 344 MB per CPU plus 520 MB. */
#define KS_MAX_SERVICES_LIMIT  (1 << 20)
#define KS_MAX_ENDPOINTS_LIMIT (1 << 24) /* 24 bytes each: 403 MB */
#define KS_SVC_NONE	       0xffffffffu /* ks_frontend.svc of an address-only key */
#define KS_MAX_BACKENDS	 8	   /* backends in one shift: stable, canary, shadow, ... */
#define KS_MAX_ENDPOINTS 131072	   /* endpoint slots, node-wide; a backend's are contiguous */
#define KS_RING_SLOTS	 (1 << 25) /* Maglev ring slots, node-wide (64 MiB) */
#define KS_MAX_FLOWS	 (1 << 20) /* flows tracked: two ks_conns entries each (see below) */
#define KS_GENERATIONS	 2	   /* live split + the one being built */
#define KS_MAX_FRAGS	 16384	   /* fragmented datagrams in flight (LRU): see bpf/lib/frag.h */
#define KS_MAX_PEER_IFS	 4096	   /* interfaces TC hands packets to the peer of: bpf/lib/fwd.h */

/* Maglev rings. A backend's ring keeps its size while its endpoints come
 * and go (see user/lib/maglev.h), so a flow's slot stays put and only the
 * slots of the endpoint that left (or that the new one takes) change hands.
 * Entries are 16-bit indexes into the backend's endpoints, 32 to a chunk:
 * array map values are 8-byte aligned, so single u16 values would take 8. */
#define KS_RING_SIZE_MIN     1031  /* a prime; ring of a backend with 2..16 endpoints */
#define KS_RING_SIZE_MAX     65537 /* a prime; the largest ring */
#define KS_RING_PER_ENDPOINT 64	   /* slots an endpoint gets at least, for balance */
#define KS_RING_CHUNK	     32

/* Stats slots per service: one per backend, then one for flows that found
 * no usable backend (answered with a reset or an ICMP unreachable). */
#define KS_STATS_PER_SVC (KS_MAX_BACKENDS + 1)
#define KS_STATS_NONE	 KS_MAX_BACKENDS

#define KS_FAMILY_V4 4
#define KS_FAMILY_V6 6

/* An IPv4 or IPv6 address. IPv4 sits in v4 (be) with the other 12 bytes
 * zero, so that equal addresses compare equal bytewise. */
struct ks_addr {
	union {
		__be32 v4;
		__be32 v6[4];
		__u8 bytes[16];
	};
};

/* ks_frontends key: what clients address. A key with port 0 and proto 0
 * marks a frontend address as such (used for the fragment policy). */
struct ks_frontend_key {
	struct ks_addr addr;
	__be16 port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP; 0 for the address-only key */
	__u8 family;
};

struct ks_frontend {
	__u32 svc;
	__u32 flags; /* enum ks_frontend_flags */
};

/* How a frontend's new flows enter the connection table (bpf/lib/conntrack.h):
 * by default the first packet inserts the forward entry only, and the first
 * reply finds its flow through ks_eprev. Set by kshiftd before the frontend,
 * or an endpoint that calls for it, takes new flows. */
enum ks_frontend_flags {
	/* the first packet inserts the reply entry too: an endpoint of this
	 * frontend also serves another (the reply tuple of a new flow may be
	 * a live flow's of the other, which only an insert finds while that
	 * flow is half-open too), or is not in ks_eprev (no room) */
	KS_FE_REPLY_AT_ONCE = 1 << 0,
};

/*
 * ks_eprev: the frontends each endpoint serves, so that a flow's first
 * reply (endpoint -> client) can find the flow's forward entry (client ->
 * frontend) and insert its reply entry. Key: the endpoint as replies come
 * from it; value: up to KS_EPREV_MAX frontends, addresses and ports of the
 * endpoint's family and protocol. Only a hint: the datapath trusts a
 * frontend only if the forward entry it names is live and steered to this
 * very endpoint.
 */
#define KS_EPREV_MAX 4
struct ks_eprev_key {
	struct ks_addr addr;
	__be16 port;
	__u8 family;
	__u8 proto;
};

struct ks_eprev_fe {
	struct ks_addr addr;
	__be16 port;
	__u8 pad[2];
};

struct ks_eprev {
	__u32 nr; /* frontends in fe[], at most KS_EPREV_MAX */
	__u32 pad;
	struct ks_eprev_fe fe[KS_EPREV_MAX];
};

enum ks_split_flags {
	/* hash the client address only: every flow of one client goes to one
	 * backend, and one endpoint in it. Backends take ranges of the hash
	 * space in order, so while two backends share the weight, raising one
	 * only moves clients onto it (tests/unit/test_cohorts.c) */
	KS_SPLIT_CLIENT_AFFINITY = 1 << 0,
	/* this generation has source rules in ks_rules (bpf/lib/rules.h) */
	KS_SPLIT_RULES = 1 << 1,
};

/*
 * ks_rules key (an LPM trie): a source prefix of one generation of one
 * service, so that rules flip with the split they belong to. prefixlen
 * counts every bit after itself that must match: KS_RULE_KEY_BITS for
 * svc_gen, family and pad, then the prefix's own length.
 */
#define KS_MAX_RULES	 65536 /* source prefixes, node-wide, both generations */
#define KS_RULE_KEY_BITS 64
struct ks_rule_key {
	__u32 prefixlen;
	__u32 svc_gen; /* svc * KS_GENERATIONS + generation */
	__u8 family;
	__u8 pad[3];
	struct ks_addr addr; /* host bits zero */
};

/* ks_rules value: the backend (index into the split) matching clients go
 * to, before weights apply; with no usable endpoint there, weights do. */
struct ks_rule {
	__u32 backend;
};

/* A backend's slice of ks_ring: slots [off, off + size), whose values
 * index its endpoints at ks_endpoints[ep_base + value]. size 0: no usable
 * endpoint. */
struct ks_ring_slice {
	__u32 off;
	__u32 size;
	__u32 ep_base;
	__u32 nr_eps; /* endpoints at ep_base (0 from a kshiftd that did not say) */
};

struct ks_ring_chunk {
	__u16 ep[KS_RING_CHUNK];
};

/* One generation of a service's traffic split. Backend i takes new flows
 * whose 32-bit hash is below threshold[i] and at or above threshold[i-1];
 * the last backend takes the rest. nr_backends counts up to the last
 * backend with a nonzero weight and a usable endpoint; 0 means no backend
 * can take a new flow. */
struct ks_split {
	__u32 nr_backends;
	__u32 flags; /* enum ks_split_flags */
	__u32 threshold[KS_MAX_BACKENDS];
	struct ks_ring_slice ring[KS_MAX_BACKENDS];
};

/* 24 bytes: array map elements are 8-byte aligned, and userspace writes
 * them through mmap at sizeof() strides. */
struct ks_endpoint {
	struct ks_addr addr;
	__be16 port;
	__u8 family;
	__u8 pad[5];
};

/* ks_conns key: a flow as it is seen on the wire, in one direction. */
struct ks_flow {
	struct ks_addr saddr;
	struct ks_addr daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

enum ks_conn_dir {
	KS_DIR_FORWARD = 1, /* client -> frontend: rewrite destination to addr:port */
	KS_DIR_REPLY = 2,   /* endpoint -> client: rewrite source to addr:port */
};

/*
 * Where a flow stands (bpf/lib/conntrack.h). Each state has its idle
 * timeout, after which the datapath treats the flow as gone and the
 * daemon's garbage collector (user/lib/conntrack.c) deletes it.
 */
enum ks_ct_state {
	KS_CT_SYN_SENT = 1, /* TCP: the client's SYN seen, no answer yet */
	KS_CT_ESTABLISHED,  /* TCP: SYN-ACK or the client's ACK seen, or joined mid-stream */
	KS_CT_CLOSING,	    /* TCP: a FIN seen, in either direction */
	KS_CT_CLOSED,	    /* TCP: a RST seen, in either direction */
	KS_CT_UDP,	    /* UDP: no states, one timeout */
	KS_CT_NR_STATES,
};

/* Idle timeouts, ns, per state (kube-proxy's and Cilium's choices). The
 * loader may set others (struct ks_ct_timeouts in the program's rodata),
 * none shorter than KS_CT_TOUCH_NS: a flow stamped within it is live. */
#define KS_NS_PER_SEC		 1000000000ULL
#define KS_CT_TIMEOUT_SYN_SENT	 (60 * KS_NS_PER_SEC)
#define KS_CT_TIMEOUT_ESTABLISHED (6 * 3600 * KS_NS_PER_SEC)
#define KS_CT_TIMEOUT_CLOSING	 (10 * KS_NS_PER_SEC)
#define KS_CT_TIMEOUT_CLOSED	 (10 * KS_NS_PER_SEC)
#define KS_CT_TIMEOUT_UDP	 (60 * KS_NS_PER_SEC)
/* A packet refreshes its entry's seen_ns only when it is this much older,
 * so a busy flow does not write its cache line on every packet. */
#define KS_CT_TOUCH_NS KS_NS_PER_SEC

struct ks_ct_timeouts {
	__u64 syn_sent;
	__u64 established;
	__u64 closing;
	__u64 closed;
	__u64 udp;
};

/*
 * ks_conns value: the rewrite for one direction of a flow, and the flow's
 * state. The two entries of a flow name each other: the forward entry's
 * addr:port is the endpoint, which with the client makes the reply key;
 * the reply entry's addr:port is the frontend, which with the client makes
 * the forward key.
 */
struct ks_conn {
	struct ks_addr addr;
	__be16 port;
	__u8 dir; /* enum ks_conn_dir */
	__u8 backend;
	__u32 svc;
	__u64 seen_ns; /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE) of a recent packet */
	__u32 isn;     /* TCP, forward: the client's SYN sequence number (host order), or 0 */
	__u8 state;    /* enum ks_ct_state */
	__u8 flags;    /* enum ks_conn_flags */
	__u8 resteers; /* TCP, forward: times this handshake moved endpoint (bpf/lib/health.h) */
	__u8 pad;
};

enum ks_conn_flags {
	KS_CONN_MIRRORED = 1 << 0, /* a copy goes to a shadow: see ks_mflows (bpf/lib/mirror.h) */
	KS_CONN_HAIRPIN = 1 << 1,  /* the client is the endpoint: its source is rewritten too,
				    * to the hairpin address (bpf/lib/hairpin.h) */
};

/* ks_frags key: a fragmented datagram, by the addresses, protocol and IP
 * id its fragments share (as they arrive, before any rewrite). */
struct ks_frag_key {
	struct ks_addr saddr;
	struct ks_addr daddr;
	__be32 id; /* IPv4: the 16-bit id in the first two bytes; IPv6: the fragment header's */
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* ks_frags value: the address its first fragment was rewritten to. */
struct ks_frag {
	struct ks_addr addr;
	__u8 dir; /* enum ks_conn_dir: destination (forward) or source (reply) */
	__u8 backend;
	__u16 pad;
	__u32 svc;
};

/* ks_clock (per CPU): the coarse clock as of a jiffy, read again only when
 * jiffies move on (bpf/lib/conntrack.h: ks_ct_now()). */
struct ks_clock {
	__u64 jiffies;
	__u64 ns;
};

/* Per-CPU counters, per (service, backend) in ks_stats. */
struct ks_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
	__u64 rejected; /* new flows answered with a reset or unreachable */
};

/* Why the program did what it did: one counter each in ks_verdicts. */
enum ks_verdict {
	KS_V_PASS_NOT_IP = 0,  /* not IPv4/IPv6: untouched */
	KS_V_PASS_NO_MATCH,    /* no frontend or flow: untouched */
	KS_V_PASS_NOT_L4,      /* IP but neither TCP nor UDP: untouched */
	KS_V_PASS_FRAGMENT,    /* fragment not for a frontend address: untouched */
	KS_V_DROP_FRAGMENT,    /* fragment for a frontend address: cannot be steered */
	KS_V_DROP_MALFORMED,   /* headers truncated or inconsistent, to a frontend */
	KS_V_NAT_NEW,	       /* new flow steered to an endpoint */
	KS_V_NAT_ESTABLISHED,  /* established flow, forward direction */
	KS_V_NAT_REPLY,	       /* established flow, reply direction */
	KS_V_REJECT_RESET,     /* no usable endpoint: TCP reset sent */
	KS_V_REJECT_UNREACH,   /* no usable endpoint: ICMP unreachable sent */
	KS_V_DROP_NO_ENDPOINT, /* no usable endpoint, and no reply possible (e.g. a RST) */
	KS_V_ABORTED,	       /* a helper failed: dropped */
	KS_V_DROP_CT_FULL,     /* new flow, but the connection table is full: dropped */
	KS_V_DROP_CT_CLASH,    /* new flow whose reply would be taken for a live flow's
				* (one client port, two frontends, one endpoint): dropped */
	KS_V_NAT_ICMP_TO_ENDPOINT, /* ICMP error about a reply, sent to the frontend: on to the endpoint */
	KS_V_NAT_ICMP_TO_CLIENT,   /* ICMP error about a packet to an endpoint: as the frontend's */
	KS_V_NAT_FRAGMENT,	   /* a later fragment of a steered datagram: rewritten like its first */
	KS_V_DROP_SHADOW_REPLY,	   /* a shadow's answer to a mirrored datagram: never reaches the client */
	KS_V_DROP_REFUSED,	   /* an endpoint refused a handshake (reset or unreachable): held back
				    * from the client, whose next SYN goes elsewhere (bpf/lib/health.h) */
	KS_V_NAT_RESTEER,	   /* a handshake its endpoint refused or ignored, steered anew */
	KS_V_REPLY_TOO_BIG,	   /* too big for its next hop, may not be fragmented: ICMP frag
				    * needed / packet too big sent to its sender (bpf/lib/mtu.h) */
	KS_V_DROP_UNREACH_HELD,	   /* an ICMP unreachable answering a handshake's SYN: held back
				    * like a reset, the next SYN goes elsewhere (bpf/lib/health.h) */
	KS_V_MAX,
};

/*
 * Shadow traffic (bpf/lib/mirror.h, user/lib/shadow.c, docs/shadow.md): a
 * sample of a service's new flows, decided when each starts, is copied to
 * an endpoint of a shadow backend whose answers never reach the client.
 */
#define KS_MAX_MIRROR_FLOWS 65536     /* mirrored flows remembered (LRU) */
#define KS_SHADOW_RING	    (32 << 20) /* ring buffer to kshiftd, bytes: 15,000 MTU segments */
#define KS_SHADOW_SEG_MAX   65535     /* payload captured of one segment (a GSO skb) */
#define KS_SHADOW_REPLY_MAX 256	      /* of a primary's reply segment: a response's start */

/* ks_mirrors[svc]: percent of the service's new flows mirrored to its
 * split's backend `backend` (that backend's ring slice picks the shadow
 * endpoint). percent 0: none. */
struct ks_mirror {
	__u32 percent; /* 0..100 */
	__u32 backend;
};

enum ks_mflow_kind {
	KS_MFLOW_FORWARD = 1, /* key: a mirrored flow as the client sends it */
	KS_MFLOW_SHADOW,      /* key: the shadow's answer to a copied datagram: dropped */
};

/* ks_mflows value: where a mirrored flow's copies go. */
struct ks_mflow {
	struct ks_addr addr; /* the shadow endpoint */
	__be16 port;
	__u8 kind; /* enum ks_mflow_kind */
	__u8 pad;
	__u32 svc;
};

/* Per-CPU, per service, in ks_mirror_stats. */
struct ks_mirror_counters {
	__u64 flows;	      /* new flows mirrored */
	__u64 copies;	      /* UDP datagrams copied to the shadow (TC) */
	__u64 segments;	      /* TCP segments captured for kshiftd to replay */
	__u64 lost;	      /* events the ring buffer had no room for */
	__u64 shadow_replies; /* shadow answers dropped at the node */
};

enum ks_shadow_kind {
	KS_SHADOW_OPEN = 1, /* client SYN of a mirrored TCP flow: seq is its ISN */
	KS_SHADOW_DATA,	    /* client payload at seq (FIN/RST in tcp_flags) */
	KS_SHADOW_REPLY,    /* the primary's reply: the start of a segment at seq; SYN-ACK: ISN */
};

/* A record in ks_shadow_rb, followed by len bytes of payload. */
struct ks_shadow_ev {
	struct ks_flow flow;  /* the mirrored flow as the client sends it */
	struct ks_addr shadow; /* the shadow endpoint */
	__be16 shadow_port;
	__u8 kind; /* enum ks_shadow_kind */
	__u8 tcp_flags;
	__u32 seq;     /* host order */
	__u32 len;     /* bytes that follow */
	__u32 seg_len; /* the segment's payload, of which len were captured */
	__u32 svc;
	__u32 pad;
};

#ifndef __bpf__
_Static_assert(sizeof(struct ks_mirror) == 8, "ks_mirror");
_Static_assert(sizeof(struct ks_mflow) == 24, "ks_mflow");
_Static_assert(sizeof(struct ks_shadow_ev) == 80, "ks_shadow_ev");
#endif

#ifndef __bpf__
_Static_assert(sizeof(struct ks_addr) == 16, "ks_addr");
_Static_assert(sizeof(struct ks_frontend_key) == 20, "ks_frontend_key");
_Static_assert(sizeof(struct ks_split) == 8 + 4 * KS_MAX_BACKENDS + 16 * KS_MAX_BACKENDS,
	       "ks_split");
_Static_assert(sizeof(struct ks_ring_chunk) == 64, "ks_ring_chunk");
_Static_assert(KS_RING_SLOTS % KS_RING_CHUNK == 0, "ks_ring chunks");
_Static_assert(sizeof(struct ks_endpoint) == 24, "ks_endpoint");
_Static_assert(sizeof(struct ks_eprev_key) == 20, "ks_eprev_key");
_Static_assert(sizeof(struct ks_eprev) == 88, "ks_eprev");
_Static_assert(sizeof(struct ks_flow) == 40, "ks_flow");
_Static_assert(sizeof(struct ks_conn) == 40, "ks_conn");
_Static_assert(sizeof(struct ks_counters) == 32, "ks_counters");
_Static_assert(sizeof(struct ks_frag_key) == 40, "ks_frag_key");
_Static_assert(sizeof(struct ks_frag) == 24, "ks_frag");
_Static_assert(sizeof(struct ks_rule_key) == 28, "ks_rule_key");
#endif

/*
 * Passive health (bpf/lib/health.h, docs/health.md): an endpoint that
 * refuses a new flow's handshake, or leaves it unanswered until the client
 * retransmits, is quarantined: new flows avoid it for KS_HEALTH_QUARANTINE_NS,
 * then one new flow at a time tries it (at most one per KS_HEALTH_TRIAL_NS),
 * and the first handshake it answers puts it back in service.
 */
#define KS_MAX_HEALTH		 16384 /* endpoints with a health record (LRU) */
#define KS_HEALTH_QUARANTINE_NS	 (2 * KS_NS_PER_SEC)
#define KS_HEALTH_TRIAL_NS	 (3 * KS_NS_PER_SEC) /* longer than a SYN's first retransmission */
#define KS_HEALTH_MAX_RESTEERS	 2 /* a handshake moves at most this often, then fails as it would */
#define KS_HEALTH_PROBES	 3 /* endpoints of a backend tried past a quarantined one */
/* A SYN repeated sooner than this is a duplicate, not a retransmission:
 * Linux's shortest RTO (TCP_RTO_MIN); the first SYN retransmission is 1 s. */
#define KS_HEALTH_SYN_RETRY_NS	 (200 * 1000 * 1000ULL)
/* Health is looked at only this long after the last quarantine began, so
 * a node where every endpoint answers pays nothing for it. */
#define KS_HEALTH_ACTIVE_NS	 (60 * KS_NS_PER_SEC)

/* ks_health key: an endpoint as flows are steered to it; the first bytes
 * of its struct ks_endpoint, which the datapath passes as the key. */
struct ks_ep_key {
	struct ks_addr addr;
	__be16 port;
	__u8 family;
	__u8 pad;
};

/* ks_health value. Counters only grow; updated atomically. */
struct ks_ep_health {
	__u64 quarantined_ns; /* when its quarantine began (bpf_ktime_get_coarse_ns); 0: in service */
	__u64 trial_ns;	      /* when a new flow last went to it on trial */
	__u64 quarantines;    /* times it entered quarantine */
	__u64 refused;	      /* handshakes it answered with a reset or an unreachable */
	__u64 unanswered;     /* handshakes it left unanswered until the client's retransmission */
	__u64 recovered;      /* times a handshake it answered ended its quarantine */
};

#ifndef __bpf__
_Static_assert(sizeof(struct ks_ep_key) == 20, "ks_ep_key");
_Static_assert(__builtin_offsetof(struct ks_ep_key, port) ==
			       __builtin_offsetof(struct ks_endpoint, port) &&
		       __builtin_offsetof(struct ks_ep_key, family) ==
			       __builtin_offsetof(struct ks_endpoint, family),
	       "ks_ep_key is how a ks_endpoint begins");
_Static_assert(sizeof(struct ks_ep_health) == 48, "ks_ep_health");
#endif

/*
 * Node-local clients (bpf/lib/sock.h): a socket's connect or sendmsg to a
 * frontend is rewritten to the endpoint picked, and ks_sock_rev remembers
 * it, so that getpeername and recvmsg answer with the frontend. Keyed by
 * socket and endpoint, as one UDP socket may call several frontends. LRU:
 * 65,536 entries take about 8 MB; an entry evicted while its socket lives
 * costs only the address the application is told (the endpoint's).
 */
#define KS_MAX_SOCK_REV 65536

struct ks_sock_key {
	__u64 cookie;	     /* the socket's (bpf_get_socket_cookie) */
	struct ks_addr addr; /* the endpoint it was steered to */
	__be16 port;
	__u8 family;
	__u8 pad[5];
};

struct ks_sock_rev {
	struct ks_addr addr; /* the frontend the application called */
	__be16 port;
	__u8 family;
	__u8 pad;
};

#ifndef __bpf__
_Static_assert(sizeof(struct ks_sock_key) == 32, "ks_sock_key");
_Static_assert(sizeof(struct ks_sock_rev) == 20, "ks_sock_rev");
_Static_assert(__builtin_offsetof(struct ks_sock_key, port) -
				       __builtin_offsetof(struct ks_sock_key, addr) ==
			       __builtin_offsetof(struct ks_ep_key, port) &&
		       __builtin_offsetof(struct ks_sock_key, family) -
				       __builtin_offsetof(struct ks_sock_key, addr) ==
			       __builtin_offsetof(struct ks_ep_key, family),
	       "a ks_sock_key goes on, after its cookie, as a ks_ep_key (bpf/lib/sock.h)");
#endif

/* Map names, as pinned under the pin directory. */
#define KS_MAP_FRONTENDS "ks_frontends"
#define KS_MAP_SVC_GEN	 "ks_svc_gen"
#define KS_MAP_SPLITS	 "ks_splits"
#define KS_MAP_RING	 "ks_ring"
#define KS_MAP_ENDPOINTS "ks_endpoints"
#define KS_MAP_CONNS	 "ks_conns"
#define KS_MAP_FRAGS	 "ks_frags"
#define KS_MAP_STATS	 "ks_stats"
#define KS_MAP_VERDICTS	 "ks_verdicts"
#define KS_MAP_MIRRORS	 "ks_mirrors"
#define KS_MAP_SHADOW_RB "ks_shadow_rb"
#define KS_MAP_RULES	 "ks_rules"
#define KS_MAP_HEALTH	 "ks_health"
#define KS_MAP_SOCK_REV	 "ks_sock_rev"

#endif /* KSHIFT_ABI_H */
