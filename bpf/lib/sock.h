/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Node-local clients: processes in the node's own network namespace (the
 * kubelet, host-network pods, an operator's curl). Their packets never
 * cross an interface's ingress, where XDP and TC steer, so kshift steers
 * their sockets instead, in cgroup hooks, as Cilium's socket load balancer
 * does:
 *
 *   connect (TCP, connected UDP)  -> frontend? the address becomes the
 *   sendmsg (unconnected UDP)        endpoint ks_pick chose, remembered
 *                                    in ks_sock_rev
 *   getpeername, recvmsg (UDP)    -> an endpoint ks_sock_rev knows for
 *                                    this socket shows as its frontend
 *
 * The flow then goes straight to the endpoint: no ks_conns entry, no
 * rewriting of any packet, in either direction, and nothing for the
 * connection table to expire. The pick is ks_pick's, on the same maps
 * (weights, source rules, Maglev rings, health), with a flow made of what
 * a socket has before it sends: its bound address (unspecified when not
 * bound, which is usual: source rules see node-local clients as ::/0 or
 * 0.0.0.0/0), the frontend, and 16 bits of its socket cookie as source
 * port. Every socket hashes apart, and one socket always to the same
 * endpoint while the ring stands, so an unconnected UDP socket's datagrams
 * to one frontend all go to one endpoint without any state per datagram.
 *
 * Counted in ks_stats like the packet path: a socket's first connect or
 * datagram to an endpoint is a new flow, each connect or unconnected
 * datagram a packet (a connected socket's datagrams and all bytes go by
 * unseen: no hook runs for them); no usable endpoint is a rejected flow, and
 * the application is told ECONNREFUSED, as the packet path's reset or ICMP
 * unreachable would tell it.
 *
 * Only sockets of the node's network namespace (ks_node_netns, set by the
 * loader) are steered: a pod's sockets sit in the same cgroup tree, but its
 * packets already cross the interfaces kshift serves, and one path per
 * client keeps the counters single.
 */
#ifndef KS_BPF_SOCK_H
#define KS_BPF_SOCK_H

#include "lb.h"

/* The node's network namespace cookie (SO_NETNS_COOKIE); 0: every one. */
const volatile __u64 ks_node_netns = 0;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, KS_MAX_SOCK_REV);
	__type(key, struct ks_sock_key);
	__type(value, struct ks_sock_rev);
} ks_sock_rev SEC(".maps");

#define KS_ECONNREFUSED 111

/* A sock_addr context's user address, IPv4-mapped IPv6 read as IPv4. */
static __always_inline __u8 ks_sock_get(const struct bpf_sock_addr *ctx, const bool v6,
					struct ks_addr *a, __be16 *port)
{
	*port = (__be16)ctx->user_port;
	if (!v6) {
		a->v4 = ctx->user_ip4;
		return KS_FAMILY_V4;
	}
	a->v6[0] = ctx->user_ip6[0];
	a->v6[1] = ctx->user_ip6[1];
	a->v6[2] = ctx->user_ip6[2];
	a->v6[3] = ctx->user_ip6[3];
	if (a->v6[0] || a->v6[1] || a->v6[2] != bpf_htonl(0xffff))
		return KS_FAMILY_V6;
	a->v4 = a->v6[3];
	a->v6[1] = a->v6[2] = a->v6[3] = 0;
	return KS_FAMILY_V4;
}

/* ... and written back, an IPv4 address IPv4-mapped on an IPv6 socket. */
static __always_inline void ks_sock_set(struct bpf_sock_addr *ctx, const bool v6,
					const struct ks_addr *a, __u8 family, __be16 port)
{
	ctx->user_port = port;
	if (!v6) {
		ctx->user_ip4 = a->v4;
		return;
	}
	if (family == KS_FAMILY_V4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = a->v4;
		return;
	}
	ctx->user_ip6[0] = a->v6[0];
	ctx->user_ip6[1] = a->v6[1];
	ctx->user_ip6[2] = a->v6[2];
	ctx->user_ip6[3] = a->v6[3];
}

static __always_inline bool ks_sock_ours(struct bpf_sock_addr *ctx)
{
	return !ks_node_netns || bpf_get_netns_cookie(ctx) == ks_node_netns;
}

/* The source of a socket's flow, as far as it is known before it sends. */
static __always_inline void ks_sock_source(const struct bpf_sock_addr *ctx, struct ks_flow *f)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return;
	if (f->family == KS_FAMILY_V4 && sk->family == 2 /* AF_INET */) {
		f->saddr.v4 = sk->src_ip4;
	} else if (f->family == KS_FAMILY_V6 && sk->family == 10 /* AF_INET6 */) {
		f->saddr.v6[0] = sk->src_ip6[0];
		f->saddr.v6[1] = sk->src_ip6[1];
		f->saddr.v6[2] = sk->src_ip6[2];
		f->saddr.v6[3] = sk->src_ip6[3];
	}
}

/*
 * connect and sendmsg: a frontend's address becomes its endpoint's. Returns
 * 1 to go on (steered or not ours), 0 to refuse (ECONNREFUSED).
 */
static __always_inline int ks_sock_steer(struct bpf_sock_addr *ctx, const bool v6)
{
	struct ks_frontend_key key = {};
	struct ks_sock_key rkey = {};
	struct ks_sock_rev rev = {};
	const struct ks_frontend *fe;
	const struct ks_endpoint *ep;
	const struct ks_sock_rev *old;
	struct ks_flow flow = {};
	__u32 backend = 0;
	__u32 proto = ctx->protocol;
	bool new_flow;
	__u64 cookie;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	if (!ks_sock_ours(ctx))
		return 1;
	key.family = ks_sock_get(ctx, v6, &key.addr, &key.port);
	key.proto = proto;
	fe = bpf_map_lookup_elem(&ks_frontends, &key);
	if (!fe)
		return 1;

	cookie = bpf_get_socket_cookie(ctx);
	flow.daddr = key.addr;
	flow.dport = key.port;
	flow.proto = key.proto;
	flow.family = key.family;
	flow.sport = (__be16)cookie;
	/* an IPv4-mapped call on an IPv6 socket has no IPv4 source yet */
	if (!v6 || key.family == KS_FAMILY_V6)
		ks_sock_source(ctx, &flow);
	ep = ks_pick(fe->svc, &flow, &backend, false, bpf_ktime_get_coarse_ns());
	if (!ep || ep->family != key.family) {
		ks_count(fe->svc, KS_STATS_NONE, 0, true, true);
		bpf_set_retval(-KS_ECONNREFUSED);
		return 0;
	}

	rkey.cookie = cookie;
	rkey.addr = ep->addr;
	rkey.port = ep->port;
	rkey.family = ep->family;
	rev.addr = key.addr;
	rev.port = key.port;
	rev.family = key.family;
	old = bpf_map_lookup_elem(&ks_sock_rev, &rkey);
	new_flow = !old || old->port != rev.port || old->addr.v6[0] != rev.addr.v6[0] ||
		   old->addr.v6[1] != rev.addr.v6[1] || old->addr.v6[2] != rev.addr.v6[2] ||
		   old->addr.v6[3] != rev.addr.v6[3];
	if (new_flow)
		bpf_map_update_elem(&ks_sock_rev, &rkey, &rev, BPF_ANY);
	ks_count(fe->svc, backend, 0, new_flow, false);
	ks_sock_set(ctx, v6, &ep->addr, ep->family, ep->port);
	return 1;
}

/* getpeername and recvmsg: an endpoint this socket was steered to shows as
 * the frontend it called. Always 1: these hooks cannot refuse. */
static __always_inline int ks_sock_reverse(struct bpf_sock_addr *ctx, const bool v6)
{
	struct ks_sock_key rkey = {};
	const struct ks_sock_rev *rev;

	if (!ks_sock_ours(ctx))
		return 1;
	rkey.family = ks_sock_get(ctx, v6, &rkey.addr, &rkey.port);
	rkey.cookie = bpf_get_socket_cookie(ctx);
	rev = bpf_map_lookup_elem(&ks_sock_rev, &rkey);
	if (rev)
		ks_sock_set(ctx, v6, &rev->addr, rev->family, rev->port);
	return 1;
}

/*
 * Sockets whose endpoint is gone. After a change removes endpoints, kshiftd
 * writes every endpoint some shift still lists (draining ones too: they
 * keep their connections) into ks_sock_live under a new generation, with
 * one batch update, and walks the node's TCP and UDP sockets with an
 * iterator: a connected socket this file steered (its peer is in
 * ks_sock_rev under its cookie) to an endpoint not in ks_sock_live at that
 * generation is closed (bpf_sock_destroy: TCP sends a reset, the
 * application gets ECONNABORTED) rather than left to time out on a peer
 * that is gone. Sockets kshift never steered are never touched. Entries of
 * older generations stay until the map fills, which saves deleting them
 * one by one each time. Twice the endpoint slots: every port of an
 * endpoint that serves several counts.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 2 * KS_MAX_ENDPOINTS);
	__type(key, struct ks_ep_key);
	__type(value, __u32); /* the generation that listed it */
	__uint(map_flags, BPF_F_NO_PREALLOC);
} ks_sock_live SEC(".maps");

/* The generation ks_sock_live holds now, set by kshiftd before a walk. */
__u32 ks_sock_live_gen = 0;
/* Sockets closed, for kshiftd's log. */
__u64 ks_sock_reaped = 0;

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

#define KS_AF_INET	   2
#define KS_AF_INET6	   10
#define KS_TCP_ESTABLISHED 1
#define KS_TCP_CLOSE	   7
#define KS_TCP_LISTEN	   10

static __always_inline int ks_sock_reap(struct sock_common *skc)
{
	struct ks_sock_key rkey = {};
	__u16 family = skc->skc_family;
	const __u32 *live;

	if (!skc->skc_dport)
		return 0;
	rkey.port = skc->skc_dport;
	if (family == KS_AF_INET) {
		rkey.family = KS_FAMILY_V4;
		rkey.addr.v4 = skc->skc_daddr;
	} else if (family == KS_AF_INET6) {
		rkey.addr.v6[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
		rkey.addr.v6[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
		rkey.addr.v6[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
		rkey.addr.v6[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
		rkey.family = KS_FAMILY_V6;
		/* an IPv4 peer of an IPv6 socket, as ks_sock_get reads it */
		if (!rkey.addr.v6[0] && !rkey.addr.v6[1] && rkey.addr.v6[2] == bpf_htonl(0xffff)) {
			rkey.addr.v4 = rkey.addr.v6[3];
			rkey.addr.v6[1] = rkey.addr.v6[2] = rkey.addr.v6[3] = 0;
			rkey.family = KS_FAMILY_V4;
		}
	} else {
		return 0;
	}
	rkey.cookie = bpf_get_socket_cookie(skc);
	if (!bpf_map_lookup_elem(&ks_sock_rev, &rkey))
		return 0;
	/* a ks_sock_key after its cookie is a ks_ep_key (include/kshift/abi.h) */
	live = bpf_map_lookup_elem(&ks_sock_live, &rkey.addr);
	if (live && *live == ks_sock_live_gen)
		return 0;
	if (!bpf_sock_destroy(skc))
		__sync_fetch_and_add(&ks_sock_reaped, 1);
	return 0;
}

#endif /* KS_BPF_SOCK_H */
