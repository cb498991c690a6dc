// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bench-prog: ns per packet of kshift's paths, timed in the kernel with
 * BPF_PROG_TEST_RUN: a parse-only baseline, an established flow, a new flow
 * and a reply. The programs (bpf/bench.bpf.c) share kshift's own maps, which
 * are programmed through the same library kshiftd uses.
 *
 *   build/bench-prog [--repeat N] [--rounds R] [--json FILE]
 *
 * Each figure is the median over R rounds of the kernel's average over N
 * runs; the ratios to the baseline come from the same invocation, and so
 * does a new connection's to an established flow (issue #8's target: 7x
 * at most). A new flow is timed twice: as a connection begins (a SYN, what
 * a flood sends too: it enters the forward entry only), and picked up
 * mid-stream (an ACK, as after a table lost it: both entries at once).
 * Then the first reply of each of those flows, which enters its reply
 * entry (the new flow entered only its forward entry), on a frontend of
 * its own whose one endpoint serves no other.
 * Two more rows take a new flow apart: a connection-table lookup that
 * misses and an insert of a fresh entry, each alone (a new flow makes one
 * of each, and its first reply one more insert).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "bench.skel.h"
#include "kshift.skel.h"
#include "lib/conntrack.h"
#include "lib/dataplane.h"
#include "lib/log.h"

#define FRAME_LEN 96 /* BENCH_FRAME_LEN in bpf/bench.bpf.c */

struct frame {
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
	unsigned char pad[FRAME_LEN - sizeof(struct ethhdr) - sizeof(struct iphdr) -
			  sizeof(struct tcphdr)];
} __attribute__((packed));

static void make_frame(struct frame *f, const char *saddr, uint16_t sport, const char *daddr,
		       uint16_t dport)
{
	memset(f, 0, sizeof(*f));
	f->eth.h_proto = htons(ETH_P_IP);
	f->ip.version = 4;
	f->ip.ihl = 5;
	f->ip.ttl = 64;
	f->ip.protocol = IPPROTO_TCP;
	f->ip.tot_len = htons(sizeof(f->ip) + sizeof(f->tcp));
	inet_pton(AF_INET, saddr, &f->ip.saddr);
	inet_pton(AF_INET, daddr, &f->ip.daddr);
	f->tcp.source = htons(sport);
	f->tcp.dest = htons(dport);
	f->tcp.doff = 5;
	f->tcp.ack = 1;
}

static int run(int prog_fd, int repeat, void *out, uint32_t *ns)
{
	unsigned char in[FRAME_LEN] = {};
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in, .data_size_in = sizeof(in),
			    .data_out = out, .data_size_out = out ? FRAME_LEN : 0,
			    .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);

	if (err)
		return -errno;
	*ns = opts.duration;
	return opts.retval;
}

static int cmp_u32(const void *a, const void *b)
{
	return *(const uint32_t *)a < *(const uint32_t *)b
		       ? -1
		       : *(const uint32_t *)a > *(const uint32_t *)b;
}

/* How a row treats the connection table. */
enum mode {
	KEEP,	     /* as it is */
	NEW,	     /* every run a new flow */
	INSERTS,     /* every run inserts an entry of its own (bench_ct_insert) */
	FIRST_REPLY, /* every run the first reply of a new flow, which each
		      * round first opens with the frame `opener` */
};

/* New flows fill the connection table, which evicts nothing: each round
 * starts from an empty one (sized for a round), and every run must have
 * been steered (or inserted), not refused for want of room. */
static double measure(struct bench_bpf *skel, struct ks_dp *dp, int prog_fd, const struct frame *f,
		      enum mode mode, int repeat, int rounds, const struct frame *opener)
{
	uint64_t before[KS_V_MAX], after[KS_V_MAX];
	enum ks_verdict want = mode == NEW ? KS_V_NAT_NEW : KS_V_NAT_REPLY;
	uint32_t ns[64], opened;
	int i;

	for (i = 0; i < rounds; i++) {
		if (mode != KEEP && ks_ct_flush_all(dp) < 0)
			return -1;
		if (mode == FIRST_REPLY) {
			memcpy(skel->bss->bench_frame, opener, FRAME_LEN);
			skel->bss->bench_new_flow = 1;
			skel->bss->bench_seq = 0;
			if (run(prog_fd, repeat, NULL, &opened) < 0)
				return -1;
			skel->bss->bench_seq = 0;
		}
		memcpy(skel->bss->bench_frame, f, FRAME_LEN);
		skel->bss->bench_new_flow = mode == NEW ? 1 : mode == FIRST_REPLY ? 2 : 0;
		if (ks_dp_verdicts(dp, before) || run(prog_fd, repeat, NULL, &ns[i]) < 0 ||
		    ks_dp_verdicts(dp, after))
			return -1;
		if ((mode == NEW || mode == FIRST_REPLY) &&
		    after[want] - before[want] != (uint64_t)repeat) {
			fprintf(stderr, "bench-prog: %llu of %d runs %s\n",
				(unsigned long long)(after[want] - before[want]), repeat,
				mode == NEW ? "steered" : "translated");
			return -1;
		}
		if (mode == INSERTS && after[KS_V_DROP_CT_FULL] != before[KS_V_DROP_CT_FULL]) {
			fprintf(stderr, "bench-prog: an insert found the table full\n");
			return -1;
		}
	}
	qsort(ns, rounds, sizeof(ns[0]), cmp_u32);
	return ns[rounds / 2];
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The collector's cost on the table the last new-flow round left (flows
 * live, nothing to delete): one default step, a whole pass, and a flush of
 * everything (ms[0..2]). */
static void gc_cost(struct ks_dp *dp, int flows, double ms[3])
{
	struct ks_ct_gc_stats st = {};
	struct ks_ct_gc gc = {};
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ks_ct_gc_step(dp, &gc, ks_ct_now(), 0, &st);
	ms[0] = ms_since(&t0);
	memset(&gc, 0, sizeof(gc));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ks_ct_gc(dp, &gc, ks_ct_now(), &st);
	ms[1] = ms_since(&t0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ks_ct_flush_all(dp);
	ms[2] = ms_since(&t0);
	(void)flows;
}

static int reuse_maps(struct bench_bpf *skel, struct ks_dp *dp)
{
	struct bpf_map *map, *ks;

	bpf_object__for_each_map(map, skel->obj) {
		ks = bpf_object__find_map_by_name(dp->skel->obj, bpf_map__name(map));
		if (!ks)
			continue; /* .bss and .rodata are the bench object's own */
		if (bpf_map__reuse_fd(map, bpf_map__fd(ks)))
			return -errno;
	}
	return 0;
}

/* VIP 198.18.100.2:80 -> 198.18.4.2:8080, an endpoint of its own */
static int program_single(struct ks_dp *dp)
{
	struct ks_endpoint ep = { .port = htons(8080), .family = KS_FAMILY_V4 };
	struct ks_frontend_key key = { .port = htons(80),
				       .proto = IPPROTO_TCP,
				       .family = KS_FAMILY_V4 };
	struct ks_dp_backend b = { .weight = 1, .eps = &ep, .nr_eps = 1 };
	uint32_t svc;
	int err;

	inet_pton(AF_INET, "198.18.4.2", &ep.addr.v4);
	inet_pton(AF_INET, "198.18.100.2", &key.addr.v4);
	err = ks_dp_svc_new(dp, &svc);
	if (!err)
		err = ks_dp_svc_set(dp, svc, &b, 1, 0);
	if (!err)
		err = ks_dp_frontend_add(dp, &key, svc);
	return err;
}

/* VIP 198.18.100.1:80 -> stable (2 endpoints, weight 90), canary (1, 10) */
static int program_service(struct ks_dp *dp)
{
	struct ks_endpoint stable[2] = {}, canary[1] = {};
	struct ks_frontend_key key = { .port = htons(80),
				       .proto = IPPROTO_TCP,
				       .family = KS_FAMILY_V4 };
	struct ks_dp_backend b[2] = {
		{ .weight = 90, .eps = stable, .nr_eps = 2 },
		{ .weight = 10, .eps = canary, .nr_eps = 1 },
	};
	const char *addrs[] = { "198.18.2.2", "198.18.2.3", "198.18.3.2" };
	struct ks_endpoint *eps[] = { &stable[0], &stable[1], &canary[0] };
	uint32_t svc;
	int i, err;

	for (i = 0; i < 3; i++) {
		inet_pton(AF_INET, addrs[i], &eps[i]->addr.v4);
		eps[i]->port = htons(8080);
		eps[i]->family = KS_FAMILY_V4;
	}
	inet_pton(AF_INET, "198.18.100.1", &key.addr.v4);
	err = ks_dp_svc_new(dp, &svc);
	if (!err)
		err = ks_dp_svc_set(dp, svc, b, 2, 0);
	if (!err)
		err = ks_dp_frontend_add(dp, &key, svc);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "repeat", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "json", required_argument, NULL, 'j' },
		{},
	};
	struct ks_dp_opts dp_opts = { .hash_seed = 42 };
	int repeat = 1000000, rounds = 5, c, err, lb_fd, parse_fd, miss_fd, insert_fd;
	double base, est, fresh, syn, reply, first, miss, insert, gc_ms[3];
	struct frame fwd, rev, out, fwd_syn, one_syn, one_synack;
	struct bench_bpf *skel;
	const char *json = NULL;
	char ep[INET_ADDRSTRLEN];
	struct ks_dp dp;
	uint32_t ns;
	FILE *f;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			repeat = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'j':
			json = optarg;
			break;
		default:
			fprintf(stderr,
				"usage: bench-prog [--repeat N] [--rounds R] [--json FILE]\n");
			return 2;
		}
	}
	if (repeat < 1 || rounds < 1 || rounds > 64) {
		fprintf(stderr, "bench-prog: --repeat >= 1, --rounds 1..64\n");
		return 2;
	}
	ks_log_libbpf();
	dp_opts.max_flows = repeat + 1024;
	err = ks_dp_open(&dp, &dp_opts);
	if (err)
		return 1;
	err = program_service(&dp) ?: program_single(&dp);
	skel = bench_bpf__open();
	if (err || !skel || reuse_maps(skel, &dp) || bench_bpf__load(skel)) {
		fprintf(stderr, "bench-prog: setting up: %s\n", strerror(err ? -err : errno));
		ks_dp_close(&dp);
		return 1;
	}
	lb_fd = bpf_program__fd(skel->progs.bench_lb);
	parse_fd = bpf_program__fd(skel->progs.bench_parse);
	miss_fd = bpf_program__fd(skel->progs.bench_ct_miss);
	insert_fd = bpf_program__fd(skel->progs.bench_ct_insert);

	/* one pass to open the flow and learn its endpoint, for the reply */
	make_frame(&fwd, "198.18.1.2", 40000, "198.18.100.1", 80);
	memcpy(skel->bss->bench_frame, &fwd, FRAME_LEN);
	if (run(lb_fd, 1, &out, &ns) != XDP_PASS) {
		fprintf(stderr, "bench-prog: the first packet was not steered\n");
		return 1;
	}
	inet_ntop(AF_INET, &out.ip.daddr, ep, sizeof(ep));
	make_frame(&rev, ep, ntohs(out.tcp.dest), "198.18.1.2", 40000);

	base = measure(skel, &dp, parse_fd, &fwd, KEEP, repeat, rounds, NULL);
	est = measure(skel, &dp, lb_fd, &fwd, KEEP, repeat, rounds, NULL);
	fresh = measure(skel, &dp, lb_fd, &fwd, NEW, repeat, rounds, NULL);
	fwd_syn = fwd;
	fwd_syn.tcp.ack = 0;
	fwd_syn.tcp.syn = 1;
	fwd_syn.tcp.seq = htonl(1000);
	syn = measure(skel, &dp, lb_fd, &fwd_syn, NEW, repeat, rounds, NULL);
	/* SYNs to the single endpoint's frontend, and its SYN-ACKs */
	make_frame(&one_syn, "198.18.1.2", 40000, "198.18.100.2", 80);
	one_syn.tcp.ack = 0;
	one_syn.tcp.syn = 1;
	make_frame(&one_synack, "198.18.4.2", 8080, "198.18.1.2", 40000);
	one_synack.tcp.syn = 1;
	first = measure(skel, &dp, lb_fd, &one_synack, FIRST_REPLY, repeat, rounds, &one_syn);
	/* the misses on the table the inserts left: as full as a new flow's
	 * table is midway through its round */
	insert = measure(skel, &dp, insert_fd, &fwd, INSERTS, repeat, rounds, NULL);
	miss = measure(skel, &dp, miss_fd, &fwd, KEEP, repeat, rounds, NULL);
	gc_cost(&dp, repeat, gc_ms);
	/* the flow of the reply, steered again after the flushes */
	memcpy(skel->bss->bench_frame, &fwd, FRAME_LEN);
	skel->bss->bench_new_flow = false;
	if (run(lb_fd, 1, &out, &ns) != XDP_PASS) {
		fprintf(stderr, "bench-prog: the flow was not steered again\n");
		return 1;
	}
	reply = measure(skel, &dp, lb_fd, &rev, KEEP, repeat, rounds, NULL);
	if (base <= 0 || est <= 0 || fresh <= 0 || syn <= 0 || reply <= 0 || first <= 0 ||
	    miss <= 0 || insert <= 0) {
		fprintf(stderr, "bench-prog: a test run failed\n");
		return 1;
	}

	printf("BPF_PROG_TEST_RUN, XDP, median of %d rounds x %d runs (frame restore included "
	       "in every row)\n",
	       rounds, repeat);
	printf("  %-20s %8s %8s\n", "path", "ns/pkt", "x base");
	printf("  %-20s %8.1f %8.2f\n", "parse only (base)", base, 1.0);
	printf("  %-20s %8.1f %8.2f\n", "established flow", est, est / base);
	printf("  %-20s %8.1f %8.2f\n", "new flow, SYN", syn, syn / base);
	printf("  %-20s %8.1f %8.2f\n", "new flow, mid-stream", fresh, fresh / base);
	printf("  %-20s %8.1f %8.2f\n", "reply (reverse NAT)", reply, reply / base);
	printf("  %-20s %8.1f %8.2f\n", "first reply, SYN-ACK", first, first / base);
	printf("  %-20s %8.1f %8.2f\n", "table: lookup, miss", miss, miss / base);
	printf("  %-20s %8.1f %8.2f\n", "table: insert", insert, insert / base);
	printf("new connection (SYN) / established flow: %.2fx (mid-stream: %.2fx); its first "
	       "reply %.2fx; above the baseline, a table lookup that misses %.0f ns, an insert "
	       "%.0f ns\n",
	       syn / est, fresh / est, first / est, miss - base, insert - base);
	printf("connection table of %d flows: a GC step (%d entries) %.2f ms, a GC pass %.1f ms, "
	       "a flush %.1f ms\n",
	       repeat, KS_CT_GC_BUDGET, gc_ms[0], gc_ms[1], gc_ms[2]);
	if (json && (f = fopen(json, "w"))) {
		fprintf(f,
			"{\"parse_ns\": %.1f, \"established_ns\": %.1f, \"new_flow_ns\": %.1f, "
			"\"new_syn_ns\": %.1f, \"reply_ns\": %.1f, \"first_reply_ns\": %.1f, "
			"\"ct_miss_ns\": %.1f, \"ct_insert_ns\": %.1f}\n",
			base, est, fresh, syn, reply, first, miss, insert);
		fclose(f);
	}
	bench_bpf__destroy(skel);
	ks_dp_close(&dp);
	return 0;
}
