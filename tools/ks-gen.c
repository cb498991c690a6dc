// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-gen: the benchmark's packet generator.
 *
 * It sends TCP frames out of a veth with BPF_PROG_RUN in live-frame mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel runs a tiny XDP program on a
 * recycled page per packet and transmits the result with XDP_TX, so a packet
 * costs no syscall, no skb and no copy on the sending side. That keeps the
 * generator well clear of being the bottleneck on one core. The receiving veth
 * must have NAPI enabled (GRO on, or an XDP program), as for any XDP redirect.
 *
 *   ks-gen --iface IF --dst-mac MAC --src IP --dst IP --dport PORT
 *          [--mode new|est|syn] [--sport PORT] [--seconds S | --count N]
 *
 * --mode new: every packet is a SYN from a new 5-tuple: the source port walks
 *   all 65536 values, then the last byte of the source address moves on
 *   (2..251), so 16.4 million packets pass before a tuple repeats.
 * --mode est: the same ACK segment of one flow over and over.
 * --mode syn: the same SYN over and over (opens the flow that est then uses).
 *
 * Prints one JSON object: packets run, seconds, packets per second.
 *
 * The XDP program is a handful of raw instructions rather than a .bpf.c file
 * so the tool stays self-contained. Packet data in a recycled page keeps what
 * the program wrote last time, so the program writes absolute values (never
 * increments) and both checksums are recomputed from sums prepared here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define ETH_LEN	  14
#define IP_LEN	  20
#define TCP_LEN	  20
#define FRAME_LEN (ETH_LEN + IP_LEN + TCP_LEN)
#define OFF_IPCSUM (ETH_LEN + 10)
#define OFF_SADDR4 (ETH_LEN + 15) /* last byte of the source address */
#define OFF_SPORT  (ETH_LEN + IP_LEN)
#define OFF_TCPCSUM (ETH_LEN + IP_LEN + 16)
#define SRC_HOSTS  250 /* source addresses x.x.x.2 .. x.x.x.251 */

/* Just enough of the instruction encoding for the program below. */
#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), \
						.off = (o), .imm = (i) })
#define MOV64_REG(d, s)	    INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i)	    INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ALU64_IMM(op, d, i) INSN(BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU64_REG(op, d, s) INSN(BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
#define LDX(sz, d, s, o)    INSN(BPF_LDX | (sz) | BPF_MEM, d, s, o, 0)
#define STX(sz, d, s, o)    INSN(BPF_STX | (sz) | BPF_MEM, d, s, o, 0)
#define ST(sz, d, o, i)	    INSN(BPF_ST | (sz) | BPF_MEM, d, 0, o, i)
#define JMP_IMM(op, d, i, o) INSN(BPF_JMP | (op) | BPF_K, d, 0, o, i)
#define JMP_REG(op, d, s, o) INSN(BPF_JMP | (op) | BPF_X, d, s, o, 0)
#define CALL(f)		    INSN(BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define EXIT()		    INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define TO_DROP		    -32768 /* jump offset patched to the program's last two insns */
#define LD_MAP_FD(d, fd)                                                  \
	INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)

struct opts {
	const char *iface;
	uint8_t dst_mac[6];
	struct in_addr src, dst;
	uint16_t sport, dport;
	const char *mode;
	double seconds;
	unsigned long long count;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sum of 16-bit words as loaded in host order; the ones' complement sum is
 * byte-order neutral, so the program can finish it the same way. */
static uint32_t sum16(const uint8_t *p, size_t len)
{
	uint32_t s = 0;
	uint16_t w;

	for (size_t i = 0; i + 1 < len; i += 2) {
		memcpy(&w, p + i, 2);
		s += w;
	}
	return s;
}

static uint16_t fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static int own_mac(const char *iface, uint8_t mac[6])
{
	char path[128];
	unsigned int m[6];
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	n = fscanf(f, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]);
	fclose(f);
	if (n != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = m[i];
	return 0;
}

/*
 * Builds the frame; for --mode new it also returns the checksum sums with the
 * varying fields (last source address byte, source port) left at zero.
 */
static void build_frame(const struct opts *o, const uint8_t src_mac[6], uint8_t *f,
			uint32_t *ip_base, uint32_t *tcp_base)
{
	int new_flows = !strcmp(o->mode, "new");
	uint8_t *ip = f + ETH_LEN, *tcp = ip + IP_LEN, pseudo[12];

	memset(f, 0, FRAME_LEN);
	memcpy(f, o->dst_mac, 6);
	memcpy(f + 6, src_mac, 6);
	f[12] = 0x08; /* IPv4 */
	ip[0] = 0x45;
	ip[3] = IP_LEN + TCP_LEN;
	ip[6] = 0x40; /* DF */
	ip[8] = 64;
	ip[9] = IPPROTO_TCP;
	memcpy(ip + 12, &o->src, 4);
	memcpy(ip + 16, &o->dst, 4);
	*(uint16_t *)tcp = htons(o->sport);
	*(uint16_t *)(tcp + 2) = htons(o->dport);
	*(uint32_t *)(tcp + 4) = htonl(1000);
	tcp[12] = 5 << 4;
	if (!strcmp(o->mode, "est")) {
		*(uint32_t *)(tcp + 4) = htonl(1001);
		*(uint32_t *)(tcp + 8) = htonl(1);
		tcp[13] = 0x10; /* ACK */
	} else {
		tcp[13] = 0x02; /* SYN */
	}
	*(uint16_t *)(tcp + 14) = htons(64240);
	if (new_flows) {
		ip[15] = 0;
		*(uint16_t *)tcp = 0;
	}

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	*(uint16_t *)(pseudo + 10) = htons(TCP_LEN);
	*ip_base = sum16(ip, IP_LEN);
	*tcp_base = sum16(pseudo, sizeof(pseudo)) + sum16(tcp, TCP_LEN);
	*(uint16_t *)(ip + 10) = fold(*ip_base);
	*(uint16_t *)(tcp + 16) = fold(*tcp_base);
}

/*
 * Loads the per-packet program. new flows: n = counter++; host byte
 * 2 + (n >> 16) % 250, source port n & 0xffff; checksums finished from the
 * prepared sums. Otherwise the program only returns XDP_TX.
 */
static int load_prog(int new_flows, int map_fd, uint32_t ip_base, uint32_t tcp_base)
{
	struct bpf_insn fixed[] = { MOV64_IMM(BPF_REG_0, XDP_TX), EXIT() };
	struct bpf_insn walk[] = {
		MOV64_REG(BPF_REG_6, BPF_REG_1),
		ST(BPF_W, BPF_REG_10, -4, 0),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ALU64_IMM(BPF_ADD, BPF_REG_2, -4),
		LD_MAP_FD(BPF_REG_1, map_fd),
		CALL(BPF_FUNC_map_lookup_elem),
		JMP_IMM(BPF_JEQ, BPF_REG_0, 0, TO_DROP),
		LDX(BPF_DW, BPF_REG_7, BPF_REG_0, 0),
		MOV64_REG(BPF_REG_1, BPF_REG_7),
		ALU64_IMM(BPF_ADD, BPF_REG_1, 1),
		STX(BPF_DW, BPF_REG_0, BPF_REG_1, 0),
		LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data)),
		LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end)),
		MOV64_REG(BPF_REG_4, BPF_REG_2),
		ALU64_IMM(BPF_ADD, BPF_REG_4, FRAME_LEN),
		JMP_REG(BPF_JGT, BPF_REG_4, BPF_REG_3, TO_DROP),
		/* r8 = host byte, r9 = source port */
		MOV64_REG(BPF_REG_8, BPF_REG_7),
		ALU64_IMM(BPF_RSH, BPF_REG_8, 16),
		ALU64_IMM(BPF_MOD, BPF_REG_8, SRC_HOSTS),
		ALU64_IMM(BPF_ADD, BPF_REG_8, 2),
		MOV64_REG(BPF_REG_9, BPF_REG_7),
		ALU64_IMM(BPF_AND, BPF_REG_9, 0xffff),
		STX(BPF_B, BPF_REG_2, BPF_REG_8, OFF_SADDR4),
		STX(BPF_H, BPF_REG_2, BPF_REG_9, OFF_SPORT),
		/* the varying address byte is the high half of its host-order word */
		ALU64_IMM(BPF_LSH, BPF_REG_8, 8),
		/* IP checksum */
		MOV64_REG(BPF_REG_1, BPF_REG_8),
		ALU64_IMM(BPF_ADD, BPF_REG_1, (int32_t)ip_base),
		MOV64_REG(BPF_REG_4, BPF_REG_1),
		ALU64_IMM(BPF_RSH, BPF_REG_4, 16),
		ALU64_IMM(BPF_AND, BPF_REG_1, 0xffff),
		ALU64_REG(BPF_ADD, BPF_REG_1, BPF_REG_4),
		MOV64_REG(BPF_REG_4, BPF_REG_1),
		ALU64_IMM(BPF_RSH, BPF_REG_4, 16),
		ALU64_IMM(BPF_AND, BPF_REG_1, 0xffff),
		ALU64_REG(BPF_ADD, BPF_REG_1, BPF_REG_4),
		ALU64_IMM(BPF_XOR, BPF_REG_1, 0xffff),
		STX(BPF_H, BPF_REG_2, BPF_REG_1, OFF_IPCSUM),
		/* TCP checksum: the pseudo header holds the address too */
		ALU64_REG(BPF_ADD, BPF_REG_8, BPF_REG_9),
		ALU64_IMM(BPF_ADD, BPF_REG_8, (int32_t)tcp_base),
		MOV64_REG(BPF_REG_4, BPF_REG_8),
		ALU64_IMM(BPF_RSH, BPF_REG_4, 16),
		ALU64_IMM(BPF_AND, BPF_REG_8, 0xffff),
		ALU64_REG(BPF_ADD, BPF_REG_8, BPF_REG_4),
		MOV64_REG(BPF_REG_4, BPF_REG_8),
		ALU64_IMM(BPF_RSH, BPF_REG_4, 16),
		ALU64_IMM(BPF_AND, BPF_REG_8, 0xffff),
		ALU64_REG(BPF_ADD, BPF_REG_8, BPF_REG_4),
		ALU64_IMM(BPF_XOR, BPF_REG_8, 0xffff),
		STX(BPF_H, BPF_REG_2, BPF_REG_8, OFF_TCPCSUM),
		MOV64_IMM(BPF_REG_0, XDP_TX),
		EXIT(),
		/* drop: */
		MOV64_IMM(BPF_REG_0, XDP_ABORTED),
		EXIT(),
	};
	static char log[65536];
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .log_buf = log, .log_size = sizeof(log));

	size_t n = sizeof(walk) / sizeof(walk[0]);
	int fd;

	for (size_t i = 0; i < n; i++)
		if (walk[i].off == TO_DROP)
			walk[i].off = (n - 2) - (i + 1);
	if (new_flows)
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "ks_gen", "GPL", walk, n, &lo);
	else
		fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "ks_gen", "GPL", fixed, 2, &lo);
	if (fd < 0)
		fprintf(stderr, "ks-gen: loading the XDP program: %s\n%s", strerror(-fd), log);
	return fd;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int m[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = m[i];
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: ks-gen --iface IF --dst-mac MAC --src IP --dst IP --dport PORT\n"
			"              [--mode new|est|syn] [--sport PORT] [--seconds S | --count N]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "iface", 1, 0, 'i' },	  { "dst-mac", 1, 0, 'm' }, { "src", 1, 0, 's' },
		{ "dst", 1, 0, 'd' },	  { "dport", 1, 0, 'p' },   { "sport", 1, 0, 'P' },
		{ "mode", 1, 0, 'M' },	  { "seconds", 1, 0, 't' }, { "count", 1, 0, 'c' },
		{ 0 },
	};
	int c, have_mac = 0;

	*o = (struct opts){ .mode = "new", .sport = 40000, .seconds = 1 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i': o->iface = optarg; break;
		case 'm': have_mac = !parse_mac(optarg, o->dst_mac); break;
		case 's': if (!inet_aton(optarg, &o->src)) usage(); break;
		case 'd': if (!inet_aton(optarg, &o->dst)) usage(); break;
		case 'p': o->dport = atoi(optarg); break;
		case 'P': o->sport = atoi(optarg); break;
		case 'M': o->mode = optarg; break;
		case 't': o->seconds = atof(optarg); break;
		case 'c': o->count = strtoull(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!o->iface || !have_mac || !o->src.s_addr || !o->dst.s_addr || !o->dport ||
	    (strcmp(o->mode, "new") && strcmp(o->mode, "est") && strcmp(o->mode, "syn")))
		usage();
}

int main(int argc, char **argv)
{
	uint8_t frame[FRAME_LEN], src_mac[6];
	uint32_t ip_base, tcp_base, key = 0;
	unsigned long long sent = 0;
	int ifindex, map_fd, prog_fd, err;
	struct xdp_md ctx = { .data_end = FRAME_LEN };
	double t0, elapsed;
	struct opts o;
	uint64_t zero = 0;

	parse_args(argc, argv, &o);
	ifindex = if_nametoindex(o.iface);
	if (!ifindex || own_mac(o.iface, src_mac)) {
		fprintf(stderr, "ks-gen: no interface %s here\n", o.iface);
		return 1;
	}
	ctx.ingress_ifindex = ifindex;
	build_frame(&o, src_mac, frame, &ip_base, &tcp_base);

	map_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ks_gen_ctr", 4, 8, 1, NULL);
	if (map_fd < 0) {
		fprintf(stderr, "ks-gen: creating the counter map: %s\n", strerror(-map_fd));
		return 1;
	}
	bpf_map_update_elem(map_fd, &key, &zero, BPF_ANY);
	prog_fd = load_prog(!strcmp(o.mode, "new"), map_fd, ip_base, tcp_base);
	if (prog_fd < 0)
		return 1;

	/* Chunks of about 10 ms keep the end time close to the asked one. */
	t0 = now();
	for (unsigned int chunk = 1024;;) {
		unsigned long long want = chunk;
		double t;

		if (o.count && o.count - sent < want)
			want = o.count - sent;
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = frame, .data_size_in = FRAME_LEN,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = want,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
		err = bpf_prog_test_run_opts(prog_fd, &ro);
		if (err) {
			fprintf(stderr, "ks-gen: BPF_PROG_RUN on %s: %s\n", o.iface, strerror(-err));
			return 1;
		}
		sent += want;
		t = now() - t0;
		if (o.count ? sent >= o.count : t >= o.seconds)
			break;
		if (t > 0 && sent / t * 0.01 > chunk)
			chunk = sent / t * 0.01;
	}
	elapsed = now() - t0;
	printf("{\"packets\": %llu, \"seconds\": %.4f, \"pps\": %.0f}\n", sent, elapsed,
	       sent / elapsed);
	return 0;
}
