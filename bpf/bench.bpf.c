// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Programs for `make bench-prog`: kshift's packet path timed with
 * BPF_PROG_TEST_RUN. A test run repeats a program on one buffer and keeps
 * its writes, so each run first restores the frame from bench_frame (the
 * parse-only baseline pays for that copy too, so ratios stay fair).
 * bench_new_flow makes every run a new flow by changing the source port.
 * The maps are kshift's own, shared by the loader through their fds.
 */
#include "lib/lb.h"

#define BENCH_FRAME_LEN 96

__u8 bench_frame[BENCH_FRAME_LEN];
__u32 bench_new_flow;
__u32 bench_seq;

static __always_inline int restore(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ks_pkt pkt = {};

	if (data + BENCH_FRAME_LEN > data_end)
		return -1;
	__builtin_memcpy(data, bench_frame, BENCH_FRAME_LEN);
	if (bench_new_flow && ks_parse(data, data_end, BENCH_FRAME_LEN, &pkt) == KS_PARSE_OK) {
		__be16 *sport = data + (pkt.l4_off & 0x1ff);

		if ((void *)(sport + 1) > data_end)
			return -1;
		/* 2^31 distinct flows: the source port and the low half of the
		 * source address */
		__u32 seq = bench_seq++;
		__be16 *saddr_lo = data + (pkt.l3_off & 0x1f) + 14;

		if ((void *)(saddr_lo + 1) > data_end)
			return -1;
		*sport = bpf_htons(1024 + (seq & 0x7fff));
		*saddr_lo = bpf_htons(seq >> 15);
	}
	return 0;
}

SEC("xdp")
int bench_parse(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ks_pkt pkt = {};
	int ret;

	if (restore(ctx))
		return XDP_ABORTED;
	ret = ks_parse(data, data_end, BENCH_FRAME_LEN, &pkt);
	return ks_finish(ctx, true, ret == KS_PARSE_OK ? KS_V_PASS_NO_MATCH : KS_V_PASS_NOT_IP,
			 KS_ACT_PASS);
}

SEC("xdp")
int bench_lb(struct xdp_md *ctx)
{
	if (restore(ctx))
		return XDP_ABORTED;
	return ks_process(ctx, true);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
