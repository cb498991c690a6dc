// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Loading, pinning and attaching the kshift BPF object, and programming its
 * maps: services (splits, rings, endpoints) and frontends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "dataplane.h"
#include "log.h"
#include "maglev.h"

#define BPF_FS_MAGIC 0xcafe4a11
/* How long a released ring or endpoint range waits before reuse: far
 * longer than any BPF program runs between reading a split and its ring. */
#define KS_RANGE_GRACE_NS 1000000000ull
#define KS_TC_HANDLE	  0x5ccf
#define KS_TC_PRIO	  1

static const char *const mode_names[] = {
	[KS_MODE_AUTO] = "auto",
	[KS_MODE_XDP] = "xdp",
	[KS_MODE_XDP_GENERIC] = "xdp-generic",
	[KS_MODE_TC] = "tc",
};

const char *ks_mode_name(enum ks_mode mode)
{
	return mode_names[mode];
}

int ks_mode_parse(const char *s, enum ks_mode *mode)
{
	size_t i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (!strcmp(s, mode_names[i])) {
			*mode = i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *const verdict_names[KS_V_MAX] = {
	[KS_V_PASS_NOT_IP] = "pass_not_ip",
	[KS_V_PASS_NO_MATCH] = "pass_no_match",
	[KS_V_PASS_NOT_L4] = "pass_not_l4",
	[KS_V_PASS_FRAGMENT] = "pass_fragment",
	[KS_V_DROP_FRAGMENT] = "drop_fragment",
	[KS_V_DROP_MALFORMED] = "drop_malformed",
	[KS_V_NAT_NEW] = "nat_new",
	[KS_V_NAT_ESTABLISHED] = "nat_established",
	[KS_V_NAT_REPLY] = "nat_reply",
	[KS_V_REJECT_RESET] = "reject_reset",
	[KS_V_REJECT_UNREACH] = "reject_unreach",
	[KS_V_DROP_NO_ENDPOINT] = "drop_no_endpoint",
	[KS_V_ABORTED] = "aborted",
	[KS_V_DROP_CT_FULL] = "drop_ct_full",
	[KS_V_DROP_CT_CLASH] = "drop_ct_clash",
};

const char *ks_verdict_name(enum ks_verdict v)
{
	return v < KS_V_MAX && verdict_names[v] ? verdict_names[v] : "unknown";
}

/* The maps kshiftd pins: its own, not the object's .rodata and .bss. */
#define for_each_pinned_map(map, obj)                                                              \
	bpf_object__for_each_map(map, obj)                                                         \
		if (!strncmp(bpf_map__name(map), "ks_", 3))

static void unpin_maps(struct ks_dp *dp, const char *dir)
{
	char path[sizeof(dp->pin_path) + 32];
	struct bpf_map *map;

	for_each_pinned_map(map, dp->skel->obj) {
		snprintf(path, sizeof(path), "%s/%s", dir, bpf_map__name(map));
		unlink(path);
	}
}

/*
 * Pins every ks_ map under pin_path. The directory above it must be on a
 * BPF filesystem; kshiftd mounts one only on /sys/fs/bpf, where one belongs
 * (and which `ip netns exec` leaves as a plain sysfs directory), never over
 * an arbitrary directory. Maps are pinned one by one: libbpf's
 * bpf_object__pin_maps turns every "." of the path into "_".
 */
static int pin_maps(struct ks_dp *dp, const char *pin_path)
{
	char parent[sizeof(dp->pin_path)], path[sizeof(dp->pin_path) + 32];
	struct bpf_map *map;
	struct statfs st;
	char *slash;
	int err;

	if (strlen(pin_path) >= sizeof(dp->pin_path))
		return -ENAMETOOLONG;
	snprintf(parent, sizeof(parent), "%s", pin_path);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return -EINVAL;
	*slash = '\0';
	if (statfs(parent, &st)) {
		err = -errno;
		pr_warn("pin path %s: %s: %s\n", pin_path, parent, strerror(-err));
		return err;
	}
	if (st.f_type != BPF_FS_MAGIC) {
		if (strcmp(parent, "/sys/fs/bpf")) {
			pr_warn("pin path %s: %s is not a BPF filesystem (mount -t bpf bpf %s)\n",
				pin_path, parent, parent);
			return -ENOTSUP;
		}
		if (mount("bpf", parent, "bpf", 0, "mode=0700")) {
			err = -errno;
			pr_warn("mounting a BPF filesystem on %s: %s\n", parent, strerror(-err));
			return err;
		}
	}
	if (mkdir(pin_path, 0700) && errno != EEXIST) {
		err = -errno;
		pr_warn("pin path %s: %s\n", pin_path, strerror(-err));
		return err;
	}
	/* pins left by a kshiftd that died without cleaning up */
	unpin_maps(dp, pin_path);
	for_each_pinned_map(map, dp->skel->obj) {
		snprintf(path, sizeof(path), "%s/%s", pin_path, bpf_map__name(map));
		err = bpf_map__pin(map, path);
		if (err) {
			pr_warn("pinning %s: %s\n", path, strerror(-err));
			unpin_maps(dp, pin_path);
			return err;
		}
	}
	snprintf(dp->pin_path, sizeof(dp->pin_path), "%s", pin_path);
	return 0;
}

static void *map_mmap(struct bpf_map *map)
{
	size_t len = (size_t)bpf_map__max_entries(map) * bpf_map__value_size(map);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(map), 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Map sizes and connection table timeouts from opts, before the load. */
static int size_maps(struct ks_dp *dp, const struct ks_dp_opts *opts)
{
	struct kshift_bpf *s = dp->skel;
	uint64_t flows = opts->max_flows ? opts->max_flows : KS_MAX_FLOWS;
	uint32_t svcs = opts->max_services ? opts->max_services : KS_MAX_SERVICES;
	uint32_t eps = opts->max_endpoints ? opts->max_endpoints : KS_MAX_ENDPOINTS;
	const struct ks_ct_timeouts *t = &opts->ct_timeouts;
	struct ks_ct_timeouts *rt = (void *)&s->rodata->ks_ct_timeouts;
	int err;

	if (svcs > KS_MAX_SERVICES || eps > KS_MAX_ENDPOINTS || flows > INT32_MAX / 2) {
		pr_warn("map sizes: at most %u services, %u endpoints and %d flows\n",
			KS_MAX_SERVICES, KS_MAX_ENDPOINTS, INT32_MAX / 2);
		return -EINVAL;
	}
	err = bpf_map__set_max_entries(s->maps.ks_conns, 2 * flows);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_frontends, 4 * svcs);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_svc_gen, svcs);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_splits, svcs * KS_GENERATIONS);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_stats, svcs * KS_STATS_PER_SVC);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_endpoints, eps);
	if (err)
		return err;
	if (t->syn_sent)
		rt->syn_sent = t->syn_sent;
	if (t->established)
		rt->established = t->established;
	if (t->closing)
		rt->closing = t->closing;
	if (t->closed)
		rt->closed = t->closed;
	if (t->udp)
		rt->udp = t->udp;
	return 0;
}

int ks_dp_open(struct ks_dp *dp, const struct ks_dp_opts *opts)
{
	uint64_t seed = opts->hash_seed;
	int err;

	memset(dp, 0, sizeof(*dp));
	dp->nr_cpus = libbpf_num_possible_cpus();
	if (dp->nr_cpus <= 0)
		return dp->nr_cpus ? dp->nr_cpus : -EINVAL;
	dp->svcs = calloc(KS_MAX_SERVICES, sizeof(*dp->svcs));
	if (!dp->svcs)
		return -ENOMEM;
	if (ks_ranges_init(&dp->ring_slots, KS_RING_SLOTS, KS_RANGE_GRACE_NS) ||
	    ks_ranges_init(&dp->ep_slots, opts->max_endpoints ?: KS_MAX_ENDPOINTS,
			   KS_RANGE_GRACE_NS)) {
		err = -ENOMEM;
		goto fail;
	}

	dp->skel = kshift_bpf__open();
	if (!dp->skel) {
		err = -errno;
		pr_warn("opening the BPF object: %s\n", strerror(-err));
		goto fail;
	}
	while (!seed && getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		;
	dp->skel->rodata->ks_hash_seed = seed;
	dp->skel->rodata->ks_xdp_veth = opts->xdp_veth;
	dp->skel->rodata->ks_xdp_redirect = opts->xdp_redirect;
	err = size_maps(dp, opts);
	if (err)
		goto fail;
	err = kshift_bpf__load(dp->skel);
	if (err) {
		pr_warn("loading the BPF object: %s\n", strerror(-err));
		goto fail;
	}
	dp->ring = map_mmap(dp->skel->maps.ks_ring);
	dp->endpoints = map_mmap(dp->skel->maps.ks_endpoints);
	if (!dp->ring || !dp->endpoints) {
		err = -errno;
		pr_warn("mapping the ring and endpoint maps: %s\n", strerror(-err));
		goto fail;
	}
	if (opts->pin_path) {
		err = pin_maps(dp, opts->pin_path);
		if (err)
			goto fail;
	}
	return 0;
fail:
	ks_dp_close(dp);
	return err;
}

static void detach(struct ks_dp_link *l, struct ks_dp *dp)
{
	if (l->mode == KS_MODE_TC) {
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = l->ifindex,
				    .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = KS_TC_HANDLE,
				    .priority = KS_TC_PRIO);

		bpf_tc_detach(&hook, &opts);
		if (l->created_hook) {
			hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
			bpf_tc_hook_destroy(&hook);
		}
	} else {
		__u32 flags = l->mode == KS_MODE_XDP ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
		DECLARE_LIBBPF_OPTS(bpf_xdp_attach_opts, opts,
				    .old_prog_fd = bpf_program__fd(dp->skel->progs.ks_xdp));

		bpf_xdp_detach(l->ifindex, flags | XDP_FLAGS_REPLACE, &opts);
	}
	pr_info("detached from %s\n", l->ifname);
}

void ks_dp_close(struct ks_dp *dp)
{
	uint32_t i, b;

	while (dp->nr_links > 0)
		detach(&dp->links[--dp->nr_links], dp);
	if (dp->pin_path[0] && dp->skel) {
		unpin_maps(dp, dp->pin_path);
		rmdir(dp->pin_path);
	}
	if (dp->ring)
		munmap(dp->ring, (size_t)KS_RING_SLOTS * sizeof(*dp->ring));
	if (dp->endpoints)
		munmap(dp->endpoints, (size_t)bpf_map__max_entries(dp->skel->maps.ks_endpoints) *
					      sizeof(*dp->endpoints));
	kshift_bpf__destroy(dp->skel);
	for (i = 0; dp->svcs && i < KS_MAX_SERVICES; i++)
		for (b = 0; b < KS_MAX_BACKENDS; b++)
			free(dp->svcs[i].slots[b].eps);
	free(dp->svcs);
	ks_ranges_destroy(&dp->ring_slots);
	ks_ranges_destroy(&dp->ep_slots);
	memset(dp, 0, sizeof(*dp));
}

bool ks_is_veth(const char *ifname)
{
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = { .ifr_data = (void *)&info };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool veth = false;

	if (fd < 0)
		return false;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (!ioctl(fd, SIOCETHTOOL, &ifr))
		veth = !strcmp(info.driver, "veth");
	close(fd);
	return veth;
}

static int attach_tc(struct ks_dp *dp, struct ks_dp_link *l)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = l->ifindex,
			    .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = KS_TC_HANDLE, .priority = KS_TC_PRIO,
			    .prog_fd = bpf_program__fd(dp->skel->progs.ks_tc),
			    .flags = BPF_TC_F_REPLACE);
	int err = bpf_tc_hook_create(&hook);

	if (err && err != -EEXIST)
		return err;
	l->created_hook = !err;
	err = bpf_tc_attach(&hook, &opts);
	if (err && l->created_hook) {
		hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
		bpf_tc_hook_destroy(&hook);
	}
	return err;
}

static int attach_xdp(struct ks_dp *dp, struct ks_dp_link *l, __u32 mode_flag)
{
	return bpf_xdp_attach(l->ifindex, bpf_program__fd(dp->skel->progs.ks_xdp),
			      mode_flag | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
}

int ks_dp_attach(struct ks_dp *dp, const char *ifname, enum ks_mode mode, enum ks_mode *used)
{
	struct ks_dp_link *l;
	int err;

	if (dp->nr_links >= (int)(sizeof(dp->links) / sizeof(dp->links[0])))
		return -E2BIG;
	l = &dp->links[dp->nr_links];
	memset(l, 0, sizeof(*l));
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
	l->ifindex = if_nametoindex(ifname);
	if (!l->ifindex)
		return -ENODEV;

	if (mode == KS_MODE_AUTO)
		mode = ks_is_veth(ifname) ? KS_MODE_TC : KS_MODE_XDP;
	switch (mode) {
	case KS_MODE_XDP:
		err = attach_xdp(dp, l, XDP_FLAGS_DRV_MODE);
		if (err == -EOPNOTSUPP || err == -EINVAL) {
			pr_info("%s: native XDP refused (%s), using generic XDP\n", ifname,
				strerror(-err));
			mode = KS_MODE_XDP_GENERIC;
			err = attach_xdp(dp, l, XDP_FLAGS_SKB_MODE);
		}
		break;
	case KS_MODE_XDP_GENERIC:
		err = attach_xdp(dp, l, XDP_FLAGS_SKB_MODE);
		break;
	default:
		mode = KS_MODE_TC;
		err = attach_tc(dp, l);
		break;
	}
	if (err) {
		pr_warn("attaching to %s (%s): %s\n", ifname, ks_mode_name(mode), strerror(-err));
		return err;
	}
	l->mode = mode;
	dp->nr_links++;
	if (used)
		*used = mode;
	pr_info("attached to %s (%s)\n", ifname, ks_mode_name(mode));
	return 0;
}

static int zero_stats(struct ks_dp *dp, uint32_t svc)
{
	int fd = bpf_map__fd(dp->skel->maps.ks_stats);
	struct ks_counters *zero = calloc(dp->nr_cpus, sizeof(*zero));
	uint32_t i, key;
	int err = 0;

	if (!zero)
		return -ENOMEM;
	for (i = 0; i < KS_STATS_PER_SVC && !err; i++) {
		key = svc * KS_STATS_PER_SVC + i;
		err = bpf_map_update_elem(fd, &key, zero, BPF_ANY) ? -errno : 0;
	}
	free(zero);
	return err;
}

int ks_dp_svc_new(struct ks_dp *dp, uint32_t *svc)
{
	uint32_t max = bpf_map__max_entries(dp->skel->maps.ks_svc_gen); /* --max-services */
	uint32_t i, id;
	int err;

	/* round robin, so a just-freed id (whose flows may linger in
	 * ks_conns) is the last to be reused */
	for (i = 0; i < max; i++) {
		id = (dp->next_svc + i) % max;
		if (dp->svcs[id].used)
			continue;
		err = zero_stats(dp, id);
		if (err)
			return err;
		memset(&dp->svcs[id], 0, sizeof(dp->svcs[id]));
		dp->svcs[id].used = true;
		dp->next_svc = id + 1;
		*svc = id;
		return 0;
	}
	return -ENOSPC;
}

static bool same_endpoints(const struct ks_dp_slot *slot, const struct ks_dp_backend *b)
{
	return slot->nr_eps == b->nr_eps &&
	       (!b->nr_eps || !memcmp(slot->eps, b->eps, b->nr_eps * sizeof(*b->eps)));
}

static void release_slot(struct ks_dp *dp, struct ks_dp_slot *slot)
{
	ks_ranges_release(&dp->ring_slots, slot->slice.off, slot->slice.size);
	ks_ranges_release(&dp->ep_slots, slot->slice.ep_base, slot->nr_eps);
	free(slot->eps);
	memset(slot, 0, sizeof(*slot));
}

/* Builds a backend's endpoints and ring in fresh ranges, from its current
 * ring where the size allows, so that flows keep their endpoints. */
static int build_slot(struct ks_dp *dp, const struct ks_dp_slot *cur, const struct ks_dp_backend *b,
		      struct ks_dp_slot *out)
{
	uint32_t size = ks_ring_size(b->nr_eps, cur->slice.size);
	int err;

	memset(out, 0, sizeof(*out));
	if (!b->nr_eps)
		return 0;
	out->eps = malloc(b->nr_eps * sizeof(*b->eps));
	if (!out->eps)
		return -ENOMEM;
	memcpy(out->eps, b->eps, b->nr_eps * sizeof(*b->eps));
	out->nr_eps = b->nr_eps;
	err = ks_ranges_alloc(&dp->ep_slots, b->nr_eps, &out->slice.ep_base);
	if (err)
		goto fail_eps;
	err = ks_ranges_alloc(&dp->ring_slots, size, &out->slice.off);
	if (err)
		goto fail_ring;
	out->slice.size = size;

	if (cur->nr_eps && cur->slice.size == size)
		err = ks_maglev_update(cur->eps, cur->nr_eps, dp->ring + cur->slice.off, b->eps,
				       b->nr_eps, dp->ring + out->slice.off, size);
	else
		err = ks_maglev_fill(b->eps, b->nr_eps, dp->ring + out->slice.off, size);
	if (err)
		goto fail_fill;
	memcpy(dp->endpoints + out->slice.ep_base, b->eps, b->nr_eps * sizeof(*b->eps));
	return 0;
fail_fill:
	ks_ranges_release(&dp->ring_slots, out->slice.off, size);
fail_ring:
	ks_ranges_release(&dp->ep_slots, out->slice.ep_base, b->nr_eps);
fail_eps:
	free(out->eps);
	memset(out, 0, sizeof(*out));
	return err;
}

int ks_dp_svc_set(struct ks_dp *dp, uint32_t svc, const struct ks_dp_backend *b, uint32_t n,
		  uint32_t flags)
{
	static const struct ks_dp_slot none;
	struct ks_dp_slot next[KS_MAX_BACKENDS] = {};
	bool fresh[KS_MAX_BACKENDS] = {};
	uint32_t weights[KS_MAX_BACKENDS];
	struct ks_dp_svc *s;
	struct ks_split split = { .flags = flags };
	uint32_t i, key, gen;
	int err = 0;

	if (svc >= KS_MAX_SERVICES || !dp->svcs[svc].used || n > KS_MAX_BACKENDS)
		return -EINVAL;
	s = &dp->svcs[svc];
	for (i = 0; i < n && !err; i++) {
		const struct ks_dp_slot *cur = i < s->nr_backends ? &s->slots[i] : &none;

		if (i < s->nr_backends && same_endpoints(cur, &b[i])) {
			next[i] = *cur;
		} else {
			err = build_slot(dp, cur, &b[i], &next[i]);
			fresh[i] = true;
		}
		/* a backend with no endpoint takes no new flows */
		weights[i] = b[i].nr_eps ? b[i].weight : 0;
		split.ring[i] = next[i].slice;
	}
	if (err)
		goto undo;
	ks_split_thresholds(weights, n, &split);

	gen = s->gen ^ 1;
	key = svc * KS_GENERATIONS + gen;
	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &split, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_svc_gen), &svc, &gen, BPF_ANY)) {
		err = -errno;
		goto undo;
	}

	/* live now: what the old generation used and the new one does not
	 * goes back, after the grace period */
	for (i = 0; i < s->nr_backends; i++)
		if (i >= n || fresh[i])
			release_slot(dp, &s->slots[i]);
	memset(s->slots, 0, sizeof(s->slots));
	memcpy(s->slots, next, n * sizeof(next[0]));
	s->nr_backends = n;
	s->gen = gen;
	return 0;
undo:
	for (i = 0; i < n; i++)
		if (fresh[i])
			release_slot(dp, &next[i]);
	return err;
}

void ks_dp_svc_delete(struct ks_dp *dp, uint32_t svc)
{
	struct ks_split empty = {};
	struct ks_dp_svc *s;
	uint32_t i, key;

	if (svc >= KS_MAX_SERVICES || !dp->svcs[svc].used)
		return;
	s = &dp->svcs[svc];
	for (i = 0; i < KS_GENERATIONS; i++) {
		key = svc * KS_GENERATIONS + i;
		bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &empty, BPF_ANY);
	}
	for (i = 0; i < s->nr_backends; i++)
		release_slot(dp, &s->slots[i]);
	memset(s, 0, sizeof(*s));
}

int ks_dp_frontend_add(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc)
{
	struct ks_frontend fe = { .svc = svc };

	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key, &fe, BPF_ANY))
		return -errno;
	return 0;
}

void ks_dp_frontend_del(struct ks_dp *dp, const struct ks_frontend_key *key)
{
	bpf_map_delete_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key);
}

int ks_dp_stats(struct ks_dp *dp, uint32_t svc, uint32_t backend, struct ks_counters *out)
{
	struct ks_counters percpu[dp->nr_cpus];
	uint32_t key = svc * KS_STATS_PER_SVC + backend;
	int i;

	memset(out, 0, sizeof(*out));
	if (svc >= KS_MAX_SERVICES || backend >= KS_STATS_PER_SVC)
		return -EINVAL;
	if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_stats), &key, percpu))
		return -errno;
	for (i = 0; i < dp->nr_cpus; i++) {
		out->packets += percpu[i].packets;
		out->bytes += percpu[i].bytes;
		out->new_flows += percpu[i].new_flows;
		out->rejected += percpu[i].rejected;
	}
	return 0;
}

int ks_dp_verdicts(struct ks_dp *dp, uint64_t out[KS_V_MAX])
{
	uint64_t percpu[dp->nr_cpus];
	uint32_t v;
	int i;

	for (v = 0; v < KS_V_MAX; v++) {
		out[v] = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_verdicts), &v, percpu))
			return -errno;
		for (i = 0; i < dp->nr_cpus; i++)
			out[v] += percpu[i];
	}
	return 0;
}
