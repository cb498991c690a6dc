// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * ks-gen: the benchmark's packet generator.
 *
 * It sends TCP frames out of a veth with BPF_PROG_RUN in live-frame mode
 * (BPF_F_TEST_XDP_LIVE_FRAMES): the kernel runs a tiny XDP program on a
 * recycled page per packet and transmits the result with XDP_TX, so a packet
 * costs no syscall, no skb and no copy on the sending side, and one core
 * makes several million packets a second. The receiving veth must have NAPI
 * enabled (GRO on, or an XDP program), as for any XDP redirect into a veth.
 *
 *   ks-gen --iface IF --dst-mac MAC --src IP --dst IP --dport PORT
 *          [--mode new|est|syn] [--sport PORT] [--seconds S | --count N]
 *          [--rate PPS | --no-pace] [--anchor IF] [--first N]
 *
 * --mode new: every packet is a SYN of a new 5-tuple: the source port walks
 *   all 65536 values, then the last byte of the source address moves on
 *   (2..251), so 16.4 million packets go out before a tuple repeats. Tuple
 *   number --first comes first, so that a run can go on where the last one
 *   stopped: a dataplane that remembers flows must not see old ones again.
 * --mode est: the same ACK segment of one flow, over and over.
 * --mode syn: the same SYN, over and over (opens the flow that est uses).
 * --anchor IF: an idle interface (a veth nobody sends to) that the program is
 *   attached to for the run, in generic mode, only so that BPF_PROG_RUN need
 *   not patch the XDP dispatcher at every call (see main()).
 *
 * Pacing. Flooding far above what the receiver takes is not free for the
 * receiver: every frame the full veth ring refuses goes back to the page pool
 * through the same locked ring the receiver's CPU returns pages to, and that
 * contention halved and scattered the measured rates. So the program paces
 * itself, in bursts of 64 packets, and every 20 ms the rate follows what the
 * receiver accepted: down to 110% of it when more than 20% were refused (but
 * at most halved, so one window in which the receiver stalled does not
 * collapse the rate), up 10% when under 5% were. It starts from far above
 * (10 Mpps) and comes down, so the receiver stays saturated with a small,
 * steady overload, like a NIC fed slightly above what its host can take; a
 * receiver that is never idle also never needs waking, which on a virtual
 * machine costs more than a packet. --rate gives the start rate (a previous
 * run's "rate" output); --no-pace sends flat out, to measure the generator.
 *
 * Prints one JSON object: packets sent, seconds, packets per second, the
 * receiver's refusals and the final paced rate.
 *
 * The XDP program is a few raw instructions rather than a .bpf.c file, so the
 * tool stays self-contained. A page comes back to the generator's page pool
 * holding whatever the node and the sink made of the packet (they forward
 * and NAT it in place), so the program writes the whole frame from a
 * template every time, then the varying fields, and finishes both checksums
 * from sums prepared here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#define ETH_LEN	    14
#define IP_LEN	    20
#define TCP_LEN	    20
#define FRAME_LEN   (ETH_LEN + IP_LEN + TCP_LEN)
#define FRAME_PAD   56 /* FRAME_LEN rounded up to 8 bytes */
#define OFF_IPCSUM  (ETH_LEN + 10)
#define OFF_SADDR4  (ETH_LEN + 15) /* last byte of the source address */
#define OFF_SPORT   (ETH_LEN + IP_LEN)
#define OFF_TCPCSUM (ETH_LEN + IP_LEN + 16)
#define SRC_HOSTS   250	      /* source addresses x.x.x.2 .. x.x.x.251 */
#define CATCH_UP_PS 100000000 /* after a stall, make up for at most 100 us */
/* Packets sent back to back: one flush and at most one wake-up of the
 * receiver's NAPI thread each (a wake-up per packet costs more than the
 * packet), and four of them fit the veth ring of 256. */
#define BURST  64
#define WINDOW 0.02 /* seconds between rate adjustments */
#define SPIN   256  /* clock reads per loop turn while waiting, some 20 us */

/* The program's state, one array entry; times in picoseconds. */
struct gen_state {
	uint64_t sent;		  /* also the tuple counter: only sent packets advance it */
	uint64_t next_ps;	  /* when the next packet may leave */
	uint64_t interval_ps;	  /* between bursts; 0: no pacing */
	uint64_t burst_left;	  /* packets of the current burst still to go */
	uint8_t frame[FRAME_PAD]; /* the template every packet starts from */
};

/* A tiny assembler: jumps name a label, resolved once the program is built. */
#define MAX_INSNS  128
#define MAX_LABELS 8
struct prog {
	struct bpf_insn insn[MAX_INSNS];
	int label_of[MAX_INSNS]; /* jump insn -> label + 1, or 0 */
	int label_at[MAX_LABELS];
	int n;
};

enum { L_DROP, L_SEND, L_CLOCK, L_SPIN, L_TIME, L_KEEP };

static void emit(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	p->insn[p->n] = (struct bpf_insn){
		.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm
	};
	p->n++;
}

static void jump(struct prog *p, uint8_t code, uint8_t dst, uint8_t src, int32_t imm, int label)
{
	p->label_of[p->n] = label + 1;
	emit(p, BPF_JMP | code, dst, src, 0, imm);
}

static void label(struct prog *p, int label)
{
	p->label_at[label] = p->n;
}

#define ALU_K(p, op, d, i)  emit(p, BPF_ALU64 | (op) | BPF_K, d, 0, 0, i)
#define ALU_X(p, op, d, s)  emit(p, BPF_ALU64 | (op) | BPF_X, d, s, 0, 0)
#define LDX(p, sz, d, s, o) emit(p, BPF_LDX | (sz) | BPF_MEM, d, s, o, 0)
#define STX(p, sz, d, s, o) emit(p, BPF_STX | (sz) | BPF_MEM, d, s, o, 0)
#define CALL(p, f)	    emit(p, BPF_JMP | BPF_CALL, 0, 0, 0, f)
#define RET(p, v)	    (ALU_K(p, BPF_MOV, BPF_REG_0, v), emit(p, BPF_JMP | BPF_EXIT, 0, 0, 0, 0))

/* r = ~fold16(r), using t as scratch */
static void fold_not(struct prog *p, int r, int t)
{
	for (int i = 0; i < 2; i++) {
		ALU_X(p, BPF_MOV, t, r);
		ALU_K(p, BPF_RSH, t, 16);
		ALU_K(p, BPF_AND, r, 0xffff);
		ALU_X(p, BPF_ADD, r, t);
	}
	ALU_K(p, BPF_XOR, r, 0xffff);
}

static void build_prog(struct prog *p, int map_fd, int walk, uint32_t ip_base, uint32_t tcp_base)
{
	memset(p, 0, sizeof(*p));
	/* r7 = &state */
	ALU_X(p, BPF_MOV, BPF_REG_6, BPF_REG_1);
	emit(p, BPF_ST | BPF_W | BPF_MEM, BPF_REG_10, 0, -4, 0);
	ALU_X(p, BPF_MOV, BPF_REG_2, BPF_REG_10);
	ALU_K(p, BPF_ADD, BPF_REG_2, -4);
	emit(p, BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd);
	emit(p, 0, 0, 0, 0, 0);
	CALL(p, BPF_FUNC_map_lookup_elem);
	jump(p, BPF_JEQ | BPF_K, BPF_REG_0, 0, 0, L_DROP);
	ALU_X(p, BPF_MOV, BPF_REG_7, BPF_REG_0);

	/* pacing, in bursts: when a burst's time has come, BURST packets
	 * leave back to back and the next burst is due interval_ps later */
	LDX(p, BPF_DW, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, interval_ps));
	jump(p, BPF_JEQ | BPF_K, BPF_REG_1, 0, 0, L_SEND);
	LDX(p, BPF_DW, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, burst_left));
	jump(p, BPF_JEQ | BPF_K, BPF_REG_1, 0, 0, L_CLOCK);
	ALU_K(p, BPF_SUB, BPF_REG_1, 1);
	STX(p, BPF_DW, BPF_REG_7, BPF_REG_1, offsetof(struct gen_state, burst_left));
	jump(p, BPF_JA, 0, 0, 0, L_SEND);
	/* Wait for the burst's time in a bounded spin: a loop turn that ends
	 * in XDP_DROP hands its page back through the page pool's locked ring,
	 * the same lock the receiver's CPU returns pages through. */
	label(p, L_CLOCK);
	ALU_K(p, BPF_MOV, BPF_REG_9, SPIN);
	label(p, L_SPIN);
	CALL(p, BPF_FUNC_ktime_get_ns);
	ALU_K(p, BPF_MUL, BPF_REG_0, 1000);
	LDX(p, BPF_DW, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, next_ps));
	jump(p, BPF_JGE | BPF_X, BPF_REG_0, BPF_REG_1, 0, L_TIME);
	ALU_K(p, BPF_SUB, BPF_REG_9, 1);
	jump(p, BPF_JNE | BPF_K, BPF_REG_9, 0, 0, L_SPIN);
	jump(p, BPF_JA, 0, 0, 0, L_DROP);
	label(p, L_TIME);
	ALU_X(p, BPF_MOV, BPF_REG_2, BPF_REG_0);
	ALU_X(p, BPF_SUB, BPF_REG_2, BPF_REG_1);
	jump(p, BPF_JLE | BPF_K, BPF_REG_2, 0, CATCH_UP_PS, L_KEEP);
	ALU_X(p, BPF_MOV, BPF_REG_1, BPF_REG_0); /* after a stall, restart from now */
	label(p, L_KEEP);
	LDX(p, BPF_DW, BPF_REG_2, BPF_REG_7, offsetof(struct gen_state, interval_ps));
	ALU_X(p, BPF_ADD, BPF_REG_1, BPF_REG_2);
	STX(p, BPF_DW, BPF_REG_7, BPF_REG_1, offsetof(struct gen_state, next_ps));
	emit(p, BPF_ST | BPF_DW | BPF_MEM, BPF_REG_7, 0, offsetof(struct gen_state, burst_left),
	     BURST - 1);

	/* r8 = n = sent++ */
	label(p, L_SEND);
	LDX(p, BPF_DW, BPF_REG_8, BPF_REG_7, offsetof(struct gen_state, sent));
	ALU_X(p, BPF_MOV, BPF_REG_1, BPF_REG_8);
	ALU_K(p, BPF_ADD, BPF_REG_1, 1);
	STX(p, BPF_DW, BPF_REG_7, BPF_REG_1, offsetof(struct gen_state, sent));

	/* The whole frame is written from the template every time: the page
	 * came back from the receivers, whose forwarding rewrote it in place
	 * (MAC addresses, TTL, NAT). r2 = data, bounds checked for the frame. */
	LDX(p, BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data));
	LDX(p, BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end));
	ALU_X(p, BPF_MOV, BPF_REG_4, BPF_REG_2);
	ALU_K(p, BPF_ADD, BPF_REG_4, FRAME_LEN);
	jump(p, BPF_JGT | BPF_X, BPF_REG_4, BPF_REG_3, 0, L_DROP);
	for (int off = 0; off + 8 <= FRAME_LEN; off += 8) {
		LDX(p, BPF_DW, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, frame) + off);
		STX(p, BPF_DW, BPF_REG_2, BPF_REG_1, off);
	}
	LDX(p, BPF_W, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, frame) + 48);
	STX(p, BPF_W, BPF_REG_2, BPF_REG_1, 48);
	LDX(p, BPF_H, BPF_REG_1, BPF_REG_7, offsetof(struct gen_state, frame) + 52);
	STX(p, BPF_H, BPF_REG_2, BPF_REG_1, 52);

	if (walk) {
		/* r1 = host byte 2 + (n >> 16) % 250, r5 = source port n & 0xffff */
		ALU_X(p, BPF_MOV, BPF_REG_1, BPF_REG_8);
		ALU_K(p, BPF_RSH, BPF_REG_1, 16);
		ALU_K(p, BPF_MOD, BPF_REG_1, SRC_HOSTS);
		ALU_K(p, BPF_ADD, BPF_REG_1, 2);
		ALU_X(p, BPF_MOV, BPF_REG_5, BPF_REG_8);
		ALU_K(p, BPF_AND, BPF_REG_5, 0xffff);
		STX(p, BPF_B, BPF_REG_2, BPF_REG_1, OFF_SADDR4);
		STX(p, BPF_H, BPF_REG_2, BPF_REG_5, OFF_SPORT);
		/* the host byte is the high half of its host-order 16-bit word */
		ALU_K(p, BPF_LSH, BPF_REG_1, 8);
		ALU_X(p, BPF_MOV, BPF_REG_3, BPF_REG_1);
		ALU_K(p, BPF_ADD, BPF_REG_3, (int32_t)ip_base);
		fold_not(p, BPF_REG_3, BPF_REG_4);
		STX(p, BPF_H, BPF_REG_2, BPF_REG_3, OFF_IPCSUM);
		/* the TCP pseudo header holds the address too */
		ALU_X(p, BPF_ADD, BPF_REG_1, BPF_REG_5);
		ALU_K(p, BPF_ADD, BPF_REG_1, (int32_t)tcp_base);
		fold_not(p, BPF_REG_1, BPF_REG_4);
		STX(p, BPF_H, BPF_REG_2, BPF_REG_1, OFF_TCPCSUM);
	}
	RET(p, XDP_TX);
	label(p, L_DROP);
	RET(p, XDP_DROP);

	for (int i = 0; i < p->n; i++)
		if (p->label_of[i])
			p->insn[i].off = p->label_at[p->label_of[i] - 1] - (i + 1);
}

struct opts {
	const char *iface;
	uint8_t dst_mac[6];
	struct in_addr src, dst;
	uint16_t sport, dport;
	const char *mode, *anchor;
	double seconds, rate;
	unsigned long long count, first;
	int no_pace;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Sum of 16-bit words as loaded in host order: the ones' complement sum is
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

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned int m[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = m[i];
	return 0;
}

/* Reads a number from /sys/class/net/IF/...; -1 when it cannot. */
static long long read_sys(const char *iface, const char *what)
{
	char path[160], buf[32];
	long long v = -1;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/class/net/%s/%s", iface, what);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		v = strtoll(buf, NULL, 10);
	}
	close(fd);
	return v;
}

static int own_mac(const char *iface, uint8_t mac[6])
{
	char path[160], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", iface);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return parse_mac(buf, mac);
}

/*
 * Builds the frame. For --mode new the varying fields (last source address
 * byte, source port) are left at zero in the checksum sums returned.
 */
static void build_frame(const struct opts *o, const uint8_t src_mac[6], uint8_t *f,
			uint32_t *ip_base, uint32_t *tcp_base)
{
	uint8_t *ip = f + ETH_LEN, *tcp = ip + IP_LEN, pseudo[12];
	uint16_t w;
	uint32_t l;

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
	w = htons(o->sport);
	memcpy(tcp, &w, 2);
	w = htons(o->dport);
	memcpy(tcp + 2, &w, 2);
	l = htonl(1000);
	memcpy(tcp + 4, &l, 4);
	tcp[12] = 5 << 4;
	if (!strcmp(o->mode, "est")) {
		l = htonl(1001); /* the segment after the SYN's */
		memcpy(tcp + 4, &l, 4);
		l = htonl(1);
		memcpy(tcp + 8, &l, 4);
		tcp[13] = 0x10; /* ACK */
	} else {
		tcp[13] = 0x02; /* SYN */
	}
	w = htons(64240);
	memcpy(tcp + 14, &w, 2);
	if (!strcmp(o->mode, "new")) {
		ip[15] = 0;
		memset(tcp, 0, 2);
	}

	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = IPPROTO_TCP;
	w = htons(TCP_LEN);
	memcpy(pseudo + 10, &w, 2);
	*ip_base = sum16(ip, IP_LEN);
	*tcp_base = sum16(pseudo, sizeof(pseudo)) + sum16(tcp, TCP_LEN);
	w = fold(*ip_base);
	memcpy(ip + 10, &w, 2);
	w = fold(*tcp_base);
	memcpy(tcp + 16, &w, 2);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ks-gen --iface IF --dst-mac MAC --src IP --dst IP --dport PORT\n"
		"              [--mode new|est|syn] [--sport PORT] [--seconds S | --count N]\n"
		"              [--rate PPS | --no-pace] [--anchor IF] [--first N]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "iface", 1, 0, 'i' },	  { "dst-mac", 1, 0, 'm' },
		{ "src", 1, 0, 's' },	  { "dst", 1, 0, 'd' },
		{ "dport", 1, 0, 'p' },	  { "sport", 1, 0, 'P' },
		{ "mode", 1, 0, 'M' },	  { "seconds", 1, 0, 't' },
		{ "count", 1, 0, 'c' },	  { "rate", 1, 0, 'r' },
		{ "no-pace", 0, 0, 'n' }, { "anchor", 1, 0, 'a' },
		{ "first", 1, 0, 'f' },	  { 0 },
	};
	int c, have_mac = 0;

	*o = (struct opts){ .mode = "new", .sport = 40000, .seconds = 1, .rate = 1e7 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			o->iface = optarg;
			break;
		case 'm':
			have_mac = !parse_mac(optarg, o->dst_mac);
			break;
		case 's':
			if (!inet_aton(optarg, &o->src))
				usage();
			break;
		case 'd':
			if (!inet_aton(optarg, &o->dst))
				usage();
			break;
		case 'p':
			o->dport = atoi(optarg);
			break;
		case 'P':
			o->sport = atoi(optarg);
			break;
		case 'M':
			o->mode = optarg;
			break;
		case 't':
			o->seconds = atof(optarg);
			break;
		case 'c':
			o->count = strtoull(optarg, NULL, 0);
			break;
		case 'r':
			o->rate = atof(optarg);
			break;
		case 'n':
			o->no_pace = 1;
			break;
		case 'a':
			o->anchor = optarg;
			break;
		case 'f':
			o->first = strtoull(optarg, NULL, 0);
			break;
		default:
			usage();
		}
	}
	if (!o->iface || !have_mac || !o->src.s_addr || !o->dst.s_addr || !o->dport ||
	    o->rate < 1000 ||
	    (strcmp(o->mode, "new") && strcmp(o->mode, "est") && strcmp(o->mode, "syn")))
		usage();
}

int main(int argc, char **argv)
{
	static char log[65536];
	LIBBPF_OPTS(bpf_prog_load_opts, lo, .log_buf = log, .log_size = sizeof(log));
	struct xdp_md ctx = { .data_end = FRAME_LEN };
	struct gen_state st = { 0 };
	uint8_t frame[FRAME_LEN], src_mac[6];
	uint32_t ip_base, tcp_base, key = 0;
	long long drop0, drop_prev, d;
	uint64_t sent_prev;
	int map_fd, prog_fd, err;
	double t0, t_prev, t, rate;
	unsigned int chunk = 256;
	struct opts o;
	struct prog p;

	parse_args(argc, argv, &o);
	ctx.ingress_ifindex = if_nametoindex(o.iface);
	if (!ctx.ingress_ifindex || own_mac(o.iface, src_mac)) {
		fprintf(stderr, "ks-gen: no interface %s here\n", o.iface);
		return 1;
	}
	build_frame(&o, src_mac, frame, &ip_base, &tcp_base);
	memcpy(st.frame, frame, FRAME_LEN);
	st.sent = o.first;

	map_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "ks_gen_state", 4, sizeof(st), 1, NULL);
	if (map_fd < 0) {
		fprintf(stderr, "ks-gen: creating the state map: %s\n", strerror(-map_fd));
		return 1;
	}
	build_prog(&p, map_fd, !strcmp(o.mode, "new"), ip_base, tcp_base);
	prog_fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "ks_gen", "GPL", p.insn, p.n, &lo);
	if (prog_fd < 0) {
		fprintf(stderr, "ks-gen: loading the XDP program: %s\n%s", strerror(-prog_fd), log);
		return 1;
	}

	/* Every BPF_PROG_RUN of an XDP program not attached anywhere patches it
	 * into the XDP dispatcher's code and out again, which stalls for a long
	 * while on a paravirtualised guest; attached to an idle interface it
	 * stays in and a call only takes a reference. */
	if (o.anchor) {
		LIBBPF_OPTS(bpf_link_create_opts, lc, .flags = XDP_FLAGS_SKB_MODE);
		int ifindex = if_nametoindex(o.anchor);

		if (!ifindex || bpf_link_create(prog_fd, ifindex, BPF_XDP, &lc) < 0) {
			fprintf(stderr, "ks-gen: cannot attach to the anchor %s\n", o.anchor);
			return 1;
		}
	}

	rate = o.rate;
	sent_prev = o.first;
	drop0 = drop_prev = read_sys(o.iface, "statistics/tx_dropped");
	t0 = t_prev = now();
	for (;;) {
		double tc = now();

		if (!o.no_pace)
			st.interval_ps = 1e12 * BURST / rate;
		if ((err = bpf_map_update_elem(map_fd, &key, &st, BPF_ANY)))
			break;
		LIBBPF_OPTS(bpf_test_run_opts, ro, .data_in = frame, .data_size_in = FRAME_LEN,
			    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
			    .repeat = o.count && o.no_pace ? o.count - (st.sent - o.first) : chunk,
			    .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
		if ((err = bpf_prog_test_run_opts(prog_fd, &ro)))
			break;
		if ((err = bpf_map_lookup_elem(map_fd, &key, &st)))
			break;
		t = now();
		if (o.count ? st.sent - o.first >= o.count : t - t0 >= o.seconds)
			break;
		/* Each call sets up and tears down a page pool, so calls are
		 * long, but no longer than half a window: a loop turn takes
		 * from tens of ns (sending) to tens of us (waiting), so the
		 * number of turns follows the time the last call took. */
		chunk *= t - tc < WINDOW / 4 ? 2 : t - tc > WINDOW / 2 ? 0.5 : 1;
		chunk = chunk < 64 ? 64 : chunk > (1u << 24) ? 1u << 24 : chunk;
		if (t - t_prev < WINDOW)
			continue;
		/* follow what the receiver accepted over the last window */
		d = read_sys(o.iface, "statistics/tx_dropped");
		if (!o.no_pace && d >= 0 && st.sent > sent_prev) {
			double sent = st.sent - sent_prev, refused = d - drop_prev;
			double accepted = (sent - refused) / (t - t_prev);

			/* at most halve per window: a window in which the
			 * receiver stalled says nothing about its rate */
			if (refused > 0.2 * sent)
				rate = accepted * 1.1 > rate / 2 ? accepted * 1.1 : rate / 2;
			else if (refused < 0.05 * sent)
				rate *= 1.1;
			if (rate < 1000)
				rate = 1000;
		}
		drop_prev = d;
		sent_prev = st.sent;
		t_prev = t;
	}
	if (err) {
		fprintf(stderr, "ks-gen: BPF_PROG_RUN on %s: %s\n", o.iface, strerror(-err));
		return 1;
	}
	t = now() - t0;
	d = read_sys(o.iface, "statistics/tx_dropped");
	printf("{\"packets\": %llu, \"seconds\": %.4f, \"pps\": %.0f, \"refused\": %lld, "
	       "\"rate\": %.0f}\n",
	       (unsigned long long)(st.sent - o.first), t, (st.sent - o.first) / t,
	       d >= 0 ? d - drop0 : -1, rate);
	return 0;
}
