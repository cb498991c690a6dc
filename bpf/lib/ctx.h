/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What differs between an XDP and a TC program, behind one set of names.
 * Every function takes `xdp` as a constant from the entry program, so the
 * compiler keeps only one side and the packet logic is written once.
 */
#ifndef KS_BPF_CTX_H
#define KS_BPF_CTX_H

#include "common.h"

static __always_inline void *ks_data(void *ctx, const bool xdp)
{
	if (xdp)
		return (void *)(long)((struct xdp_md *)ctx)->data;
	return (void *)(long)((struct __sk_buff *)ctx)->data;
}

static __always_inline void *ks_data_end(void *ctx, const bool xdp)
{
	if (xdp)
		return (void *)(long)((struct xdp_md *)ctx)->data_end;
	return (void *)(long)((struct __sk_buff *)ctx)->data_end;
}

/* The whole frame, which may extend past the directly accessible data (an
 * skb's paged part, an XDP frame's fragments). A helper rather than
 * data_end - data, whose arithmetic the compiler may reorder into forms the
 * verifier refuses. */
static __always_inline __u32 ks_frame_len(void *ctx, const bool xdp)
{
	if (xdp)
		return bpf_xdp_get_buff_len(ctx);
	return ((struct __sk_buff *)ctx)->len;
}

/* Makes the first len bytes (the headers) directly accessible. */
static __always_inline void ks_pull(void *ctx, const bool xdp, __u32 len)
{
	if (!xdp)
		bpf_skb_pull_data(ctx, len);
}

/* Adds len bytes in front of the frame. */
static __always_inline int ks_push_head(void *ctx, const bool xdp, __u32 len)
{
	if (xdp)
		return bpf_xdp_adjust_head(ctx, -(int)len);
	return bpf_skb_change_head(ctx, len, 0);
}

/* Cuts the frame down to len bytes. */
static __always_inline int ks_trim(void *ctx, const bool xdp, __u32 len)
{
	if (xdp)
		return bpf_xdp_adjust_tail(ctx, (int)len - (int)ks_frame_len(ctx, xdp));
	return bpf_skb_change_tail(ctx, len, 0);
}

static __always_inline int ks_retcode(void *ctx, const bool xdp, enum ks_action act)
{
	switch (act) {
	case KS_ACT_PASS:
		return xdp ? XDP_PASS : TC_ACT_OK;
	case KS_ACT_TX:
		if (xdp)
			return XDP_TX;
		return bpf_redirect(((struct __sk_buff *)ctx)->ifindex, 0);
	default:
		return xdp ? XDP_DROP : TC_ACT_SHOT;
	}
}

#endif /* KS_BPF_CTX_H */
