// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Programs for `make bench-prog`: kshift's packet path timed with
 * BPF_PROG_TEST_RUN. A test run repeats a program on one buffer and keeps
 * its writes, so each run first restores the frame from bench_frame (the
 * parse-only baseline pays for that copy too, so ratios stay fair).
 * bench_new_flow makes every run a new flow by changing the source port
 * (BENCH_NEW_FLOW), or the reply of the run's new flow by changing the
 * destination port the same way (BENCH_FIRST_REPLY). The maps are kshift's
 * own, shared by the loader through their fds.
 *
 * bench_ct_miss and bench_ct_insert time the two things a new flow does to
 * the connection table that an established one does not: a lookup that
 * misses, and an insert of an entry never seen before (a new flow makes
 * one, and its first reply another). They tell how much of a new flow is
 * the table, and so what another layout of it could save.
 */
#include "lib/lb.h"

#define BENCH_FRAME_LEN 96

__u8 bench_frame[BENCH_FRAME_LEN];
__u32 bench_new_flow;
__u32 bench_seq;

enum { BENCH_NEW_FLOW = 1, BENCH_FIRST_REPLY = 2 };

static __always_inline int restore(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ks_pkt pkt = {};

	if (data + BENCH_FRAME_LEN > data_end)
		return -1;
	__builtin_memcpy(data, bench_frame, BENCH_FRAME_LEN);
	if (bench_new_flow && ks_parse(data, data_end, BENCH_FRAME_LEN, &pkt) == KS_PARSE_OK) {
		bool reply = bench_new_flow == BENCH_FIRST_REPLY;
		__be16 *port = data + ((pkt.l4_off + (reply ? 2 : 0)) & 0x1ff);

		if ((void *)(port + 1) > data_end)
			return -1;
		/* 2^31 distinct flows: the client's port and the low half of
		 * its address */
		__u32 seq = bench_seq++;
		__be16 *addr_lo = data + (pkt.l3_off & 0x1f) + (reply ? 18 : 14);

		if ((void *)(addr_lo + 1) > data_end)
			return -1;
		*port = bpf_htons(1024 + (seq & 0x7fff));
		*addr_lo = bpf_htons(seq >> 15);
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

/* A reply entry of a flow never seen: the source port and the low half of
 * the client's address count the runs, as in restore(). */
static __always_inline void bench_ct_key(struct ks_flow *key)
{
	__u32 seq = bench_seq++;

	*key = (struct ks_flow){
		.saddr.v4 = bpf_htonl(0xc6120202),		 /* 198.18.2.2 */
		.daddr.v4 = bpf_htonl(0xc6120000 | (seq >> 15)), /* 198.18.x.y */
		.sport = bpf_htons(8080),
		.dport = bpf_htons(1024 + (seq & 0x7fff)),
		.proto = IPPROTO_TCP,
		.family = KS_FAMILY_V4,
	};
}

SEC("xdp")
int bench_ct_miss(struct xdp_md *ctx)
{
	struct ks_flow key;

	if (restore(ctx))
		return XDP_ABORTED;
	bench_ct_key(&key);
	if (bpf_map_lookup_elem(&ks_conns, &key))
		return ks_finish(ctx, true, KS_V_ABORTED, KS_ACT_DROP);
	return ks_finish(ctx, true, KS_V_PASS_NO_MATCH, KS_ACT_PASS);
}

SEC("xdp")
int bench_ct_insert(struct xdp_md *ctx)
{
	struct ks_conn c = {
		.addr.v4 = bpf_htonl(0xc6126401), /* 198.18.100.1 */
		.port = bpf_htons(80),
		.dir = KS_DIR_REPLY,
		.state = KS_CT_ESTABLISHED,
	};
	struct ks_flow key;

	if (restore(ctx))
		return XDP_ABORTED;
	bench_ct_key(&key);
	c.seen_ns = ks_ct_now();
	if (bpf_map_update_elem(&ks_conns, &key, &c, BPF_NOEXIST))
		return ks_finish(ctx, true, KS_V_DROP_CT_FULL, KS_ACT_DROP);
	return ks_finish(ctx, true, KS_V_PASS_NO_MATCH, KS_ACT_PASS);
}

SEC("xdp")
int bench_lb(struct xdp_md *ctx)
{
	if (restore(ctx))
		return XDP_ABORTED;
	return ks_process(ctx, true);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
