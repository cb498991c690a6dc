// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshift's entry programs: the same packet logic (bpf/lib/lb.h) attached as
 * XDP or as TC clsact ingress, on every interface kshiftd serves, and in XDP
 * mode a TC egress program beside it.
 */
#include "lib/egress.h"
#include "lib/lb.h"

SEC("xdp")
int ks_xdp(struct xdp_md *ctx)
{
	return ks_process(ctx, true);
}

SEC("tc")
int ks_tc(struct __sk_buff *skb)
{
	return ks_process(skb, false);
}

/* XDP mode where XDP passes steered packets up the stack: the sources, as
 * packets leave (bpf/lib/hairpin.h, bpf/lib/egress.h) */
SEC("tc")
int ks_egress_tc(struct __sk_buff *skb)
{
	return ks_egress(skb);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
