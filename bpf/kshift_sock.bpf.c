// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshift's socket programs, for node-local clients (bpf/lib/sock.h):
 * attached by kshiftd --cgroup to a cgroup v2 directory, they steer the
 * sockets of the node's network namespace with the maps of the packet
 * programs (kshift.bpf.c), which kshiftd shares with them; and the
 * socket iterators that close sockets whose endpoint is gone.
 */
#include "lib/sock.h"

SEC("cgroup/connect4")
int ks_connect4(struct bpf_sock_addr *ctx)
{
	return ks_sock_steer(ctx, false);
}

SEC("cgroup/connect6")
int ks_connect6(struct bpf_sock_addr *ctx)
{
	return ks_sock_steer(ctx, true);
}

SEC("cgroup/sendmsg4")
int ks_sendmsg4(struct bpf_sock_addr *ctx)
{
	return ks_sock_steer(ctx, false);
}

SEC("cgroup/sendmsg6")
int ks_sendmsg6(struct bpf_sock_addr *ctx)
{
	return ks_sock_steer(ctx, true);
}

SEC("cgroup/recvmsg4")
int ks_recvmsg4(struct bpf_sock_addr *ctx)
{
	return ks_sock_reverse(ctx, false);
}

SEC("cgroup/recvmsg6")
int ks_recvmsg6(struct bpf_sock_addr *ctx)
{
	return ks_sock_reverse(ctx, true);
}

SEC("cgroup/getpeername4")
int ks_getpeername4(struct bpf_sock_addr *ctx)
{
	return ks_sock_reverse(ctx, false);
}

SEC("cgroup/getpeername6")
int ks_getpeername6(struct bpf_sock_addr *ctx)
{
	return ks_sock_reverse(ctx, true);
}

/* Not attached: kshiftd runs these once after a change removes endpoints. */
SEC("iter/tcp")
int ks_reap_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	if (!skc || skc->skc_state == KS_TCP_LISTEN || skc->skc_state == KS_TCP_CLOSE)
		return 0;
	return ks_sock_reap(skc);
}

SEC("iter/udp")
int ks_reap_udp(struct bpf_iter__udp *ctx)
{
	struct udp_sock *udp = ctx->udp_sk;

	if (!udp)
		return 0;
	return ks_sock_reap(&udp->inet.sk.__sk_common);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
