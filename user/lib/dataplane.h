/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The dataplane as userspace drives it: load and pin the BPF object, attach
 * it to interfaces, and program services (a weighted split of backends, each
 * a set of endpoints) and the frontends that lead to them. Knows maps and
 * rings, not manifests.
 */
#ifndef KSHIFT_DATAPLANE_H
#define KSHIFT_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include <net/if.h>
#include <kshift/abi.h>
#include "index.h"
#include "ranges.h"

enum ks_mode {
	KS_MODE_AUTO,	     /* TC on veth (see bpf/lib/nat.h), native XDP elsewhere, else TC */
	KS_MODE_XDP,	     /* native XDP, generic XDP where the driver refuses native */
	KS_MODE_XDP_GENERIC, /* generic (skb) XDP */
	KS_MODE_TC,	     /* TC ingress through tcx (Linux 6.6+): others' filters untouched */
};

const char *ks_mode_name(enum ks_mode mode);
int ks_mode_parse(const char *s, enum ks_mode *mode);

struct ks_dp_backend {
	uint32_t weight;
	const struct ks_endpoint *eps; /* usable endpoints, port in network order */
	uint32_t nr_eps;
	/* then, at eps[nr_eps...], endpoints that take no new flow but keep
	 * theirs (draining, or not ready): their flows' replies are found too
	 * (ks_eprev) */
	uint32_t nr_draining;
};

/* What a service's live generation holds, per backend. */
struct ks_dp_slot {
	struct ks_ring_slice slice;
	struct ks_endpoint *eps; /* copy of the endpoints at slice.ep_base, then the
				  * draining ones (NULL when adopted: see slot_eps) */
	uint32_t nr_eps;
	uint32_t nr_draining;
};

struct ks_dp_svc {
	bool used;
	bool adopted;	  /* found serving at open: freed when no frontend leads to it
			   * any more, or by ks_dp_adopt_done */
	uint32_t fe_refs; /* adopted: the frontend keys that lead to it */
	uint32_t gen;
	uint32_t nr_backends;
	struct ks_dp_slot slots[KS_MAX_BACKENDS];
	/* the frontend keys (with port and protocol) that lead to it, each
	 * linked in ks_eprev with the endpoints of the slots (eprev.h) */
	struct ks_frontend_key *fes;
	uint32_t nr_fes, cap_fes;
};

/* tcx hooks (enum bpf_attach_type): Linux 6.6 uapi, which the 6.1 headers
 * of Debian 12 do not have yet */
#define KS_BPF_TCX_INGRESS 46
#define KS_BPF_TCX_EGRESS  47

/* An attachment: a bpf_link, pinned under <pin_path>/links/<ifname> so
 * that it outlives kshiftd. */
struct ks_dp_link {
	int ifindex;
	char ifname[IF_NAMESIZE];
	enum ks_mode mode; /* as attached: XDP, XDP_GENERIC or TC */
	int fd;
	uint32_t prog_id; /* the program it runs (adopted: the one found) */
	bool adopted;	  /* found pinned at open, still running the old program */
	bool to_peer;	  /* TC hands packets to its peer directly (ks_dp_peer_check) */
};

struct ks_dp_opts {
	const char *pin_path; /* NULL: do not pin */
	uint64_t hash_seed;   /* 0: random */
	bool xdp_veth;	      /* native XDP on a veth: see ks_xdp_veth in bpf/lib/common.h */
	bool xdp_redirect;    /* XDP forwards by FIB lookup: see bpf/lib/fwd.h */
	bool xdp_split;	      /* XDP passing up rewrites destinations, a tcx egress program
			       * sources (bpf/lib/hairpin.h, user/lib/egress.c) */
	const char *hairpin_addr;  /* IPv4, NULL: the default (bpf/lib/hairpin.h) */
	const char *hairpin_addr6; /* IPv6, NULL: the default */
	bool adopt;	      /* take over the maps and links pinned under pin_path */
	/*
	 * Map sizes, set at load; 0: the default. Memory, preallocated:
	 * ks_conns takes about 300 MB per million flows (two entries a
	 * flow); ks_stats 288 bytes per service per CPU; ks_endpoints 24
	 * bytes per endpoint slot.
	 */
	uint32_t max_flows;	/* KS_MAX_FLOWS (1,048,576) */
	uint32_t max_services;	/* KS_MAX_SERVICES; at most KS_MAX_SERVICES_LIMIT */
	uint32_t max_endpoints; /* KS_MAX_ENDPOINTS; at most KS_MAX_ENDPOINTS_LIMIT */
	/* idle timeouts of the connection table; zero fields: the defaults
	 * (KS_CT_TIMEOUT_* in include/kshift/abi.h) */
	struct ks_ct_timeouts ct_timeouts;
	/* keep how many instructions the verifier walked for each program
	 * (ks_dp_verified_insns()): its limit is a million, per program */
	bool verifier_stats;
};

/* veth hands XDP frames whose checksum the peer left partial (XDP cannot
 * tell), and XDP_TX on a veth needs NAPI on the peer: TC serves veth better,
 * and is what KS_MODE_AUTO picks there. */
bool ks_is_veth(const char *ifname);

/* A pinned map whose layout changed: re-created, repinned once attached. */
struct ks_dp_repin {
	struct bpf_map *map;
	int old_fd;
};

struct ks_dp {
	struct kshift_bpf *skel;
	uint16_t *ring;		       /* ks_ring through mmap, as one slot array */
	struct ks_endpoint *endpoints; /* ks_endpoints through mmap */
	struct ks_ranges ring_slots;
	struct ks_ranges ep_slots;
	struct ks_dp_svc *svcs; /* max_svcs of them */
	uint32_t max_svcs;	/* services the maps hold (--max-services) */
	uint32_t next_svc;
	struct ks_dp_link *links;
	int nr_links, cap_links;
	char pin_path[256];
	int nr_cpus;
	int lock_fd; /* the pin directory, flocked; valid when locked */
	bool locked;
	bool adopted;	      /* maps came from pins: services are adopted */
	uint32_t prog_ids[2]; /* this load's XDP and TC programs */
	struct ks_dp_repin repin[16];
	int nr_repin;
	struct ks_index eprev;	     /* ks_eprev's userspace copy (eprev.c) */
	struct ks_index eprev_links; /* (endpoint, frontend) -> times linked */
	uint32_t verified_insns[3];  /* ks_xdp, ks_tc, ks_egress_tc: opts->verifier_stats */
};

/*
 * Loads the BPF object. With a pin path: takes the pin directory's lock
 * (-EBUSY when another kshiftd holds it, named in the log) and, with
 * opts->adopt, takes over what an earlier kshiftd left there: its maps
 * (with their state) and its links (see the comment atop dataplane.c).
 */
int ks_dp_open(struct ks_dp *dp, const struct ks_dp_opts *opts);
/* Frees; leaves every pinned map and link in place, serving. */
void ks_dp_close(struct ks_dp *dp);
/* With opts->verifier_stats: the instructions the verifier walked to load
 * program prog ("ks_xdp", "ks_tc", "ks_egress_tc"); 0 if not known. */
uint32_t ks_dp_verified_insns(const struct ks_dp *dp, const char *prog);

/*
 * The attachments at start, all or nothing: creates a link on every
 * interface of ifnames that has none, moves every adopted link to this
 * load's program (atomically: the hook is never empty), and detaches the
 * adopted links of interfaces not in ifnames. Refuses (-EBUSY) an
 * interface where a program that is not ours is attached, -ENODEV one
 * that is gone; optional[i] (NULL: none is): skipped instead, with a
 * warning (interfaces a glob pattern matched). On error, the links made
 * here are removed and the rest is as it was.
 */
int ks_dp_attach_all(struct ks_dp *dp, char *const *ifnames, const bool *optional, int n,
		     enum ks_mode mode);
/* Attaches to one more interface; on success *used says which mode was taken. */
int ks_dp_attach(struct ks_dp *dp, const char *ifname, enum ks_mode mode, enum ks_mode *used);
struct ks_dp_link *ks_dp_link_find(struct ks_dp *dp, int ifindex);
/* The interface is gone: drops its link and pin. */
void ks_dp_forget(struct ks_dp *dp, int ifindex);
/* Detaches from an interface still there (ours, no longer wanted). */
void ks_dp_detach(struct ks_dp *dp, int ifindex);
/* Whether TC may hand what it forwards out of ifindex straight to the
 * interface's peer (bpf/lib/fwd.h): ks_peer_ifs and the link's to_peer
 * made to say it. Called as a link is made or goes, and on a change of the
 * interface or of its qdiscs. */
void ks_dp_peer_check(struct ks_dp *dp, int ifindex);
/* ... for every link, and ks_peer_ifs rid of what is not one (adopted, it
 * may list interfaces gone meanwhile, whose index a new one may take): at
 * start, and now and then for what no event tells (a tcx egress program
 * attached). One dump of the links and one of the qdiscs. */
void ks_dp_peers_sync(struct ks_dp *dp);
/* The interface was renamed: its pin follows. */
void ks_dp_rename(struct ks_dp *dp, int ifindex, const char *ifname);
/* The egress programs (user/lib/egress.c) made to match the XDP links:
 * after any change of the links. */
int ks_dp_egress_sync(struct ks_dp *dp);
/* At open: the hairpin addresses of opts into the program; -EINVAL for
 * one that is not an address of its family. */
int ks_dp_hairpin_set(struct ks_dp *dp, const struct ks_dp_opts *opts);

/* After the first full apply following an adopting open (the re-applied
 * shifts run on fresh services by then): frees every adopted service and
 * removes the frontends still leading to one, which no shift claimed. */
void ks_dp_adopt_done(struct ks_dp *dp);

/* kshiftd --uninstall: detaches every pinned link and removes the pins
 * under pin_path; says what it removed on stdout. -EBUSY when a kshiftd
 * runs on it. */
int ks_dp_uninstall(const char *pin_path);

int ks_dp_svc_new(struct ks_dp *dp, uint32_t *svc);
/*
 * Gives svc a new split: backends b[0..n) with their weights and endpoints,
 * flags from enum ks_split_flags. Builds the new generation aside and flips
 * to it with one store, so a new flow sees all of the old split or all of
 * the new one. A backend whose endpoints did not change keeps its ring.
 * On error nothing visible changed.
 */
int ks_dp_svc_set(struct ks_dp *dp, uint32_t svc, const struct ks_dp_backend *b, uint32_t n,
		  uint32_t flags);
/* Frees svc; remove its frontends first. */
void ks_dp_svc_delete(struct ks_dp *dp, uint32_t svc);

int ks_dp_frontend_add(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc);
void ks_dp_frontend_del(struct ks_dp *dp, const struct ks_frontend_key *key);

/* Sums of the per-CPU counters of (svc, backend); backend KS_STATS_NONE for
 * flows that found no endpoint. */
int ks_dp_stats(struct ks_dp *dp, uint32_t svc, uint32_t backend, struct ks_counters *out);
int ks_dp_verdicts(struct ks_dp *dp, uint64_t out[KS_V_MAX]);
const char *ks_verdict_name(enum ks_verdict v);

#endif /* KSHIFT_DATAPLANE_H */
