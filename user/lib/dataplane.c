// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Loading, pinning and attaching the kshift BPF object, and programming its
 * maps: services (splits, rings, endpoints) and frontends.
 *
 * Life cycle: a restart never costs a connection.
 *   - Attachments are bpf_links, tcx ingress for TC (no clsact qdisc is
 *     created or deleted, so other tools' filters are never touched) and
 *     XDP links, each pinned as <pin>/links/<ifname>. A pin outlives
 *     kshiftd, and so does what it attaches: stopping kshiftd (SIGTERM,
 *     SIGKILL, a crash) detaches nothing and unpins nothing; the dataplane
 *     keeps serving its last state. Only --uninstall removes it
 *     (ks_dp_uninstall). The pin is named after the interface for whoever
 *     looks; the truth is the link's ifindex, read back from the kernel (a
 *     link whose interface is gone reports 0 and is forgotten).
 *   - Starting again adopts (opts.adopt): every pinned map whose layout
 *     (type, key and value size, max_entries, flags) is this build's is
 *     reused as it is, state and all (bpf_map__reuse_fd), so established
 *     flows keep their ks_conns entries, which hold the endpoint address
 *     and not just a service id. A map whose layout changed is created
 *     anew and gets whatever entries fit (migrate; what cannot be copied is
 *     logged), and replaces the old pin only once attached. The hash seed
 *     is read back from the running program's .rodata (through its BTF),
 *     so new flows hash as before.
 *   - The new program goes onto each pinned link with bpf_link_update: one
 *     atomic swap, the hook is never empty (ks_dp_attach_all).
 *   - Userspace state is rebuilt without a gap: every service a frontend
 *     leads to is adopted as it is (its ring slices and endpoint ranges
 *     reserved, so nothing new lands on them) and keeps serving. The
 *     re-applied shifts get fresh service ids and slots, and each frontend
 *     flips to its new service with one map update. ks_dp_adopt_done, after
 *     the first full apply, frees the adopted services and removes the
 *     frontends no shift claimed.
 *   - One owner: the pin directory is flocked for the life of the process
 *     (lock.c), and a second kshiftd on it is refused, named by pid. On an
 *     interface, an XDP or tcx program that is not ours (not this load's,
 *     not an adopted link's) makes kshiftd refuse it, and kshiftd never
 *     detaches a program it did not attach. Attaching at start is all or
 *     nothing.
 */
#include <dirent.h>
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
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "dataplane.h"
#include "eprev.h"
#include "lock.h"
#include "log.h"
#include "maglev.h"
#include "netlink.h"

#define BPF_FS_MAGIC 0xcafe4a11
/* How long a released ring or endpoint range waits before reuse: far
 * longer than any BPF program runs between reading a split and its ring. */
#define KS_RANGE_GRACE_NS 1000000000ull
/* Linux 6.6 uapi (see KS_BPF_TCX_INGRESS in dataplane.h) */
#define KS_BPF_LINK_TYPE_TCX 11 /* enum bpf_link_type */
#define KS_LINKS_DIR	     "links"
/* where a kshiftd from before bpf_links put its TC filter */
#define KS_LEGACY_TC_HANDLE 0x5ccf
#define KS_LEGACY_TC_PRIO   1

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
	[KS_V_NAT_ICMP_TO_ENDPOINT] = "nat_icmp_to_endpoint",
	[KS_V_NAT_ICMP_TO_CLIENT] = "nat_icmp_to_client",
	[KS_V_NAT_FRAGMENT] = "nat_fragment",
	[KS_V_DROP_SHADOW_REPLY] = "drop_shadow_reply",
	[KS_V_DROP_REFUSED] = "drop_refused",
	[KS_V_NAT_RESTEER] = "nat_resteer",
	[KS_V_REPLY_TOO_BIG] = "reply_too_big",
	[KS_V_DROP_UNREACH_HELD] = "drop_unreach_held",
};

const char *ks_verdict_name(enum ks_verdict v)
{
	return v < KS_V_MAX && verdict_names[v] ? verdict_names[v] : "unknown";
}

/* The maps kshiftd pins: its own, not the object's .rodata and .bss. */
#define for_each_pinned_map(map, obj)                                                              \
	bpf_object__for_each_map(map, obj)                                                         \
		if (!strncmp(bpf_map__name(map), "ks_", 3))

static void pin_path_of(const struct ks_dp *dp, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dp->pin_path, name);
}

static void link_pin_of(const char *pin_path, const char *ifname, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" KS_LINKS_DIR "/%s", pin_path, ifname);
}

/*
 * Makes sure pin_path is a directory on a BPF filesystem. kshiftd mounts
 * one only on /sys/fs/bpf, where one belongs (and which `ip netns exec`
 * leaves as a plain sysfs directory), never over an arbitrary directory.
 * create false: only says whether it is there (-ENOENT if not).
 */
static int pin_dir_ready(const char *pin_path, bool create)
{
	char parent[256];
	struct statfs st;
	char *slash;
	int err;

	if (strlen(pin_path) >= sizeof(parent))
		return -ENAMETOOLONG;
	snprintf(parent, sizeof(parent), "%s", pin_path);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent)
		return -EINVAL;
	*slash = '\0';
	if (statfs(parent, &st)) {
		err = -errno;
		if (create)
			pr_warn("pin path %s: %s: %s\n", pin_path, parent, strerror(-err));
		return err;
	}
	if (st.f_type != BPF_FS_MAGIC) {
		if (!create)
			return -ENOENT;
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
	if (!create)
		return access(pin_path, F_OK) ? -errno : 0;
	if (mkdir(pin_path, 0700) && errno != EEXIST) {
		err = -errno;
		pr_warn("pin path %s: %s\n", pin_path, strerror(-err));
		return err;
	}
	return 0;
}

static int lock_pin_dir(struct ks_dp *dp, const char *what)
{
	pid_t holder;
	int fd = ks_lock_dir(dp->pin_path, &holder);

	if (fd == -EBUSY) {
		if (holder > 0)
			pr_warn("%spin path %s is in use by kshiftd pid %d\n", what, dp->pin_path,
				(int)holder);
		else
			pr_warn("%spin path %s is in use by another kshiftd\n", what, dp->pin_path);
		return fd;
	}
	if (fd < 0) {
		pr_warn("%slocking %s: %s\n", what, dp->pin_path, strerror(-fd));
		return fd;
	}
	dp->lock_fd = fd;
	dp->locked = true;
	return 0;
}

static struct ks_dp_link *link_add(struct ks_dp *dp)
{
	struct ks_dp_link *v;

	if (dp->nr_links == dp->cap_links) {
		v = realloc(dp->links, (dp->cap_links ? 2 * dp->cap_links : 16) * sizeof(*v));
		if (!v)
			return NULL;
		dp->links = v;
		dp->cap_links = dp->cap_links ? 2 * dp->cap_links : 16;
	}
	v = &dp->links[dp->nr_links++];
	memset(v, 0, sizeof(*v));
	v->fd = -1;
	return v;
}

static void link_remove(struct ks_dp *dp, struct ks_dp_link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	*l = dp->links[--dp->nr_links];
}

/* What a link is attached to: 0 and *ifindex (0 when its interface is
 * gone) and *mode, or -errno. */
static int link_target(int fd, uint32_t *prog_id, int *ifindex, enum ks_mode *mode)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*prog_id = info.prog_id;
	/* tcx's {ifindex, attach_type} sits where xdp's {ifindex} does */
	*ifindex = info.xdp.ifindex;
	if (info.type == KS_BPF_LINK_TYPE_TCX) {
		*mode = KS_MODE_TC;
	} else if (info.type == BPF_LINK_TYPE_XDP) {
		DECLARE_LIBBPF_OPTS(bpf_xdp_query_opts, q);

		*mode = KS_MODE_XDP;
		if (*ifindex && !bpf_xdp_query(*ifindex, 0, &q) && q.skb_prog_id == info.prog_id)
			*mode = KS_MODE_XDP_GENERIC;
	} else {
		return -EINVAL;
	}
	return 0;
}

/* The links an earlier kshiftd pinned: adopted, still running its program
 * until ks_dp_attach_all moves them to ours. Those whose interface is gone
 * are forgotten. */
static int links_scan(struct ks_dp *dp)
{
	char dir[sizeof(dp->pin_path) + 16], path[sizeof(dir) + 256 + 2];
	char newpath[sizeof(path)], ifname[IF_NAMESIZE];
	struct ks_dp_link *l;
	struct dirent *de;
	enum ks_mode mode;
	uint32_t prog_id;
	int fd, ifindex, err;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/" KS_LINKS_DIR, dp->pin_path);
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		/* <ifname>:egress: user/lib/egress.c's */
		if (de->d_name[0] == '.' || strchr(de->d_name, ':'))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			pr_warn("adopting %s: %s; leaving it\n", path, strerror(errno));
			continue;
		}
		err = link_target(fd, &prog_id, &ifindex, &mode);
		if (err) {
			pr_warn("adopting %s: not a kshift link (%s); leaving it\n", path,
				strerror(-err));
			close(fd);
			continue;
		}
		if (!ifindex || !if_indextoname(ifindex, ifname)) {
			pr_info("forgot %s: interface gone\n", de->d_name);
			unlink(path);
			close(fd);
			continue;
		}
		l = link_add(dp);
		if (!l) {
			close(fd);
			closedir(d);
			return -ENOMEM;
		}
		*l = (struct ks_dp_link){ .ifindex = ifindex,
					  .mode = mode,
					  .fd = fd,
					  .prog_id = prog_id,
					  .adopted = true };
		snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
		/* renamed while no kshiftd ran: the pin follows the name
		 * (pinned anew: bpffs has no rename) */
		if (strcmp(ifname, de->d_name)) {
			link_pin_of(dp->pin_path, ifname, newpath, sizeof(newpath));
			unlink(newpath);
			if (!bpf_obj_pin(fd, newpath))
				unlink(path);
		}
		pr_info("adopted the link on %s (%s, program %u)\n", ifname, ks_mode_name(mode),
			prog_id);
	}
	closedir(d);
	return 0;
}

/* The hash seed of a running program, read from its .rodata through BTF:
 * new flows keep hashing as before the restart. */
static int seed_from_rodata(int mfd, const struct bpf_map_info *mi, uint64_t *seed)
{
	struct btf *btf = btf__load_from_kernel_by_id(mi->btf_id);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec, *var;
	__u32 key = 0;
	int i, err = -ENOENT;
	char *val;

	if (!btf)
		return -errno;
	sec = btf__type_by_id(btf, mi->btf_value_type_id);
	if (!sec || !btf_is_datasec(sec))
		goto out;
	vs = btf_var_secinfos(sec);
	for (i = 0; i < btf_vlen(sec); i++, vs++) {
		var = btf__type_by_id(btf, vs->type);
		if (!var || strcmp(btf__name_by_offset(btf, var->name_off), "ks_hash_seed") ||
		    vs->size != sizeof(*seed) || vs->offset + vs->size > mi->value_size)
			continue;
		val = malloc(mi->value_size);
		if (val && !bpf_map_lookup_elem(mfd, &key, val)) {
			memcpy(seed, val + vs->offset, sizeof(*seed));
			err = 0;
		}
		free(val);
		break;
	}
out:
	btf__free(btf);
	return err;
}

static int adopted_seed(uint32_t prog_id, uint64_t *seed)
{
	struct bpf_prog_info pi = {};
	__u32 map_ids[32], len = sizeof(pi), i;
	int pfd = bpf_prog_get_fd_by_id(prog_id), err = -ENOENT;

	if (pfd < 0)
		return -errno;
	pi.nr_map_ids = sizeof(map_ids) / sizeof(map_ids[0]);
	pi.map_ids = (__u64)(unsigned long)map_ids;
	if (bpf_obj_get_info_by_fd(pfd, &pi, &len))
		goto out;
	for (i = 0; i < pi.nr_map_ids && i < sizeof(map_ids) / sizeof(map_ids[0]) && err; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		int mfd = bpf_map_get_fd_by_id(map_ids[i]);

		if (mfd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(mfd, &mi, &mlen) && strstr(mi.name, ".rodata") &&
		    mi.btf_id && mi.btf_value_type_id)
			err = seed_from_rodata(mfd, &mi, seed);
		close(mfd);
	}
out:
	close(pfd);
	return err;
}

static bool same_layout(const struct bpf_map *map, const struct bpf_map_info *info)
{
	return info->type == bpf_map__type(map) && info->key_size == bpf_map__key_size(map) &&
	       info->value_size == bpf_map__value_size(map) &&
	       info->max_entries == bpf_map__max_entries(map) &&
	       info->map_flags == bpf_map__map_flags(map);
}

/*
 * Before load: the pin directory, its lock, and (adopting) the pins of an
 * earlier kshiftd: its links, its hash seed, and every map whose layout is
 * this build's, reused as it is. A map whose layout differs is created
 * anew and gets what can be copied after load (migrate).
 */
static int pins_prepare(struct ks_dp *dp, const struct ks_dp_opts *opts)
{
	char path[sizeof(dp->pin_path) + 32];
	struct bpf_map *map;
	struct ks_dp_link *l;
	uint64_t seed = 0;
	int fd, err, i;

	err = pin_dir_ready(opts->pin_path, true);
	if (err)
		return err;
	snprintf(dp->pin_path, sizeof(dp->pin_path), "%s", opts->pin_path);
	err = lock_pin_dir(dp, "");
	if (err)
		return err;
	pin_path_of(dp, KS_LINKS_DIR, path, sizeof(path));
	if (mkdir(path, 0700) && errno != EEXIST) {
		err = -errno;
		pr_warn("pin path %s: %s\n", path, strerror(-err));
		return err;
	}
	if (!opts->adopt) {
		/* a fresh start only where nothing runs: a dataplane pinned
		 * here is adopted or uninstalled, never run over */
		for_each_pinned_map(map, dp->skel->obj) {
			pin_path_of(dp, bpf_map__name(map), path, sizeof(path));
			if (!access(path, F_OK)) {
				pr_warn("pin path %s holds a kshift dataplane (%s): adopt it or "
					"uninstall it\n",
					dp->pin_path, bpf_map__name(map));
				return -EEXIST;
			}
		}
		return 0;
	}
	err = links_scan(dp);
	if (err)
		return err;
	for (i = 0; i < dp->nr_links && !opts->hash_seed; i++) {
		l = &dp->links[i];
		if (!adopted_seed(l->prog_id, &seed)) {
			dp->skel->rodata->ks_hash_seed = seed;
			pr_info("kept the hash seed of the running program\n");
			break;
		}
	}
	for_each_pinned_map(map, dp->skel->obj) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);

		pin_path_of(dp, bpf_map__name(map), path, sizeof(path));
		fd = bpf_obj_get(path);
		if (fd < 0) {
			/* a kshiftd died while re-pinning it (pins_commit) */
			char aside[sizeof(path) + 8];

			snprintf(aside, sizeof(aside), "%s/ks_new_%s", dp->pin_path,
				 bpf_map__name(map));
			fd = bpf_obj_get(aside);
			if (fd < 0)
				continue;
			if (bpf_obj_pin(fd, path) == 0)
				unlink(aside);
		}
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			err = -errno;
			close(fd);
			pr_warn("adopting %s: %s\n", path, strerror(-err));
			return err;
		}
		dp->adopted = true;
		if (same_layout(map, &info)) {
			err = bpf_map__reuse_fd(map, fd);
			close(fd);
			if (err) {
				pr_warn("adopting %s: %s\n", path, strerror(-err));
				return err;
			}
			continue;
		}
		if (dp->nr_repin == (int)(sizeof(dp->repin) / sizeof(dp->repin[0]))) {
			close(fd);
			return -E2BIG;
		}
		dp->repin[dp->nr_repin++] = (struct ks_dp_repin){ .map = map, .old_fd = fd };
	}
	return 0;
}

static bool is_percpu(__u32 type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static bool is_array(__u32 type)
{
	return type == BPF_MAP_TYPE_ARRAY || type == BPF_MAP_TYPE_PERCPU_ARRAY;
}

static bool all_zero(const char *p, size_t n)
{
	return !n || (!p[0] && !memcmp(p, p + 1, n - 1));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* A per-CPU scratch map (ks_*_tmp, ks_*_scratch) holds one packet's
 * temporaries: nothing in it outlives the packet, nothing to migrate. */
static bool is_scratch(const char *name)
{
	return ends_with(name, "_tmp") || ends_with(name, "_scratch");
}

/* Copies what fits from a pinned map whose layout changed into the new
 * one: entries whose key and value sizes match; says what it dropped. */
static void migrate(struct ks_dp *dp, struct bpf_map *map, int old_fd)
{
	struct bpf_map_info old = {};
	__u32 len = sizeof(old), max = bpf_map__max_entries(map), k, n;
	__u32 type = bpf_map__type(map), vsize = bpf_map__value_size(map);
	unsigned long copied = 0, dropped = 0;
	int new_fd = bpf_map__fd(map);
	const char *name = bpf_map__name(map);
	char *key = NULL, *next = NULL, *val = NULL;
	size_t vlen;

	if (bpf_obj_get_info_by_fd(old_fd, &old, &len))
		return;
	if (is_scratch(name)) {
		pr_info("%s: layout changed (value %u->%u bytes): scratch, nothing to keep\n", name,
			old.value_size, vsize);
		return;
	}
	pr_info("%s: layout changed (type %u->%u, key %u->%u, value %u->%u bytes, %u->%u "
		"entries): migrating\n",
		name, old.type, type, old.key_size, bpf_map__key_size(map), old.value_size, vsize,
		old.max_entries, max);
	if (old.key_size != bpf_map__key_size(map) || old.value_size != vsize ||
	    is_percpu(old.type) != is_percpu(type) || is_array(old.type) != is_array(type)) {
		pr_warn("%s: entries cannot be copied to the new layout: all dropped\n", name);
		return;
	}
	vlen = is_percpu(type) ? (size_t)((vsize + 7) & ~7u) * dp->nr_cpus : vsize;
	key = calloc(1, old.key_size);
	next = calloc(1, old.key_size);
	val = malloc(vlen);
	if (!key || !next || !val)
		goto out;
	if (is_array(type)) {
		n = old.max_entries < max ? old.max_entries : max;
		for (k = 0; k < old.max_entries; k++) {
			if (bpf_map_lookup_elem(old_fd, &k, val) || all_zero(val, vlen))
				continue;
			if (k < n && !bpf_map_update_elem(new_fd, &k, val, BPF_ANY))
				copied++;
			else
				dropped++;
		}
	} else {
		void *prev = NULL;

		while (!bpf_map_get_next_key(old_fd, prev, next)) {
			memcpy(key, next, old.key_size);
			prev = key;
			if (bpf_map_lookup_elem(old_fd, key, val))
				continue;
			if (!bpf_map_update_elem(new_fd, key, val, BPF_ANY))
				copied++;
			else
				dropped++;
		}
	}
	pr_info("%s: %lu entries copied, %lu dropped\n", name, copied, dropped);
out:
	free(key);
	free(next);
	free(val);
}

/* Marks [off, off + len) of every adopted slot as taken in r, which is
 * fresh: everything up to the last taken slot is allocated at once, and
 * the gaps between are given back. */
static int reserve(struct ks_ranges *r, struct ks_range *taken, size_t n)
{
	uint32_t end = 0, cur = 0, off;
	size_t i;
	int err;

	for (i = 0; i < n; i++)
		if (taken[i].off + taken[i].len > end)
			end = taken[i].off + taken[i].len;
	if (!end)
		return 0;
	err = ks_ranges_alloc(r, end, &off);
	if (err)
		return err;
	for (i = 0; i < n; i++) {
		if (taken[i].off > cur)
			ks_ranges_release(r, cur, taken[i].off - cur);
		if (taken[i].off + taken[i].len > cur)
			cur = taken[i].off + taken[i].len;
	}
	return 0;
}

static int by_off(const void *a, const void *b)
{
	const struct ks_range *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* Adopts the service svc that a frontend leads to: its live split's ring
 * slices and endpoint ranges become its slots, so nothing new lands on
 * them until ks_dp_adopt_done frees them. */
static void adopt_svc(struct ks_dp *dp, uint32_t svc)
{
	struct ks_dp_svc *s = &dp->svcs[svc];
	struct ks_split split;
	uint32_t gen = 0, key, i, j, nr;

	if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_svc_gen), &svc, &gen))
		return;
	key = svc * KS_GENERATIONS + (gen & 1);
	if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &split))
		return;
	memset(s, 0, sizeof(*s));
	s->used = s->adopted = true;
	s->gen = gen & 1;
	s->nr_backends = KS_MAX_BACKENDS;
	for (i = 0; i < KS_MAX_BACKENDS; i++) {
		struct ks_ring_slice sl = split.ring[i];

		if (!sl.size || sl.off + sl.size > dp->ring_slots.size || sl.off + sl.size < sl.off)
			continue;
		/* the ring holds indexes into the backend's endpoints, every
		 * one of them at least once */
		for (j = 0, nr = 0; j < sl.size; j++)
			if (dp->ring[sl.off + j] + 1u > nr)
				nr = dp->ring[sl.off + j] + 1u;
		if (sl.ep_base + nr > dp->ep_slots.size)
			continue;
		s->slots[i].slice = sl;
		s->slots[i].nr_eps = nr;
	}
	if (svc + 1 > dp->next_svc)
		dp->next_svc = svc + 1;
}

static int fe_link(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc);

static int adopt_services(struct ks_dp *dp)
{
	int fe_fd = bpf_map__fd(dp->skel->maps.ks_frontends);
	uint32_t nr_svcs = bpf_map__max_entries(dp->skel->maps.ks_svc_gen), svc, i, nsvc = 0;
	struct ks_frontend_key key, *prev = NULL;
	struct ks_range *ring = NULL, *eps = NULL;
	size_t nr = 0, cap = 0;
	struct ks_frontend fe;
	int err = 0, keys = 0, flags;

	if (nr_svcs > dp->max_svcs)
		nr_svcs = dp->max_svcs;
	while (!bpf_map_get_next_key(fe_fd, prev, &key)) {
		prev = &key;
		keys++;
		/* an address-only key names no service (KS_SVC_NONE; older
		 * kshiftd wrote 16384 there, a service now that there may be more) */
		if (bpf_map_lookup_elem(fe_fd, &key, &fe) || fe.svc >= nr_svcs ||
		    (!key.port && !key.proto))
			continue;
		if (!dp->svcs[fe.svc].used) {
			adopt_svc(dp, fe.svc);
			nsvc += dp->svcs[fe.svc].adopted;
		}
		if (!dp->svcs[fe.svc].adopted)
			continue;
		dp->svcs[fe.svc].fe_refs++;
		/* the index of the frontends' endpoints, as it was (eprev.c) */
		flags = fe_link(dp, &key, fe.svc);
		if (flags < 0) {
			err = flags;
			goto out;
		}
	}
	/* two adopted slots never overlap (unless the maps were corrupt):
	 * sorted, a slot that overlaps the one before is dropped */
	for (svc = 0; svc < nr_svcs; svc++) {
		for (i = 0; dp->svcs[svc].adopted && i < KS_MAX_BACKENDS; i++) {
			struct ks_dp_slot *sl = &dp->svcs[svc].slots[i];

			if (!sl->slice.size)
				continue;
			if (nr == cap) {
				struct ks_range *a, *b;

				cap = cap ? 2 * cap : 64;
				a = realloc(ring, cap * sizeof(*a));
				if (a)
					ring = a;
				b = realloc(eps, cap * sizeof(*b));
				if (b)
					eps = b;
				if (!a || !b) {
					err = -ENOMEM;
					goto out;
				}
			}
			ring[nr] = (struct ks_range){ .off = sl->slice.off, .len = sl->slice.size };
			eps[nr] = (struct ks_range){ .off = sl->slice.ep_base, .len = sl->nr_eps };
			nr++;
		}
	}
	qsort(ring, nr, sizeof(*ring), by_off);
	qsort(eps, nr, sizeof(*eps), by_off);
	for (i = 1; i < nr; i++)
		if (ring[i].off < ring[i - 1].off + ring[i - 1].len ||
		    eps[i].off < eps[i - 1].off + eps[i - 1].len)
			pr_warn("adopted services overlap in the ring or endpoints: the maps may "
				"be corrupt\n");
	err = reserve(&dp->ring_slots, ring, nr);
	if (!err)
		err = reserve(&dp->ep_slots, eps, nr);
	if (!err && keys)
		pr_info("adopted %u service(s) behind %d frontend key(s), serving as they were\n",
			nsvc, keys);
out:
	free(ring);
	free(eps);
	return err;
}

/* After load, adopting: migrates the maps whose layout changed (pinned
 * on commit) and takes stock of the services the maps serve. */
static int pins_finish(struct ks_dp *dp, const struct ks_dp_opts *opts)
{
	int i, err;

	for (i = 0; i < dp->nr_repin; i++) {
		migrate(dp, dp->repin[i].map, dp->repin[i].old_fd);
		close(dp->repin[i].old_fd);
		dp->repin[i].old_fd = -1;
	}
	if (opts->adopt) {
		err = adopt_services(dp);
		if (err)
			return err;
	}
	return 0;
}

/* Once attached: maps that had no pin get one, and those re-created for a
 * new layout replace their old pins (until then the old program, still on
 * its links, used the old maps). A start that fails leaves no new pin. */
static void pins_commit(struct ks_dp *dp)
{
	char path[sizeof(dp->pin_path) + 32], tmp[sizeof(path) + 8];
	struct bpf_map *map;
	int i;

	if (!dp->pin_path[0])
		return;
	for_each_pinned_map(map, dp->skel->obj) {
		pin_path_of(dp, bpf_map__name(map), path, sizeof(path));
		if (access(path, F_OK) && bpf_obj_pin(bpf_map__fd(map), path))
			pr_warn("pinning %s: %s\n", path, strerror(errno));
	}
	for (i = 0; i < dp->nr_repin; i++) {
		struct bpf_map *map = dp->repin[i].map;

		pin_path_of(dp, bpf_map__name(map), path, sizeof(path));
		/* pinned aside first (bpffs has no rename), so that a pin
		 * of the map always exists; pins_prepare picks up the one
		 * aside if kshiftd died in between */
		snprintf(tmp, sizeof(tmp), "%s/ks_new_%s", dp->pin_path, bpf_map__name(map));
		unlink(tmp);
		if (bpf_obj_pin(bpf_map__fd(map), tmp) || (unlink(path), 0) ||
		    bpf_obj_pin(bpf_map__fd(map), path))
			pr_warn("pinning %s: %s\n", path, strerror(errno));
		unlink(tmp);
	}
	dp->nr_repin = 0;
}

static uint32_t prog_id_of(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.id;
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

	if (svcs > KS_MAX_SERVICES_LIMIT || eps > KS_MAX_ENDPOINTS_LIMIT || flows > INT32_MAX / 2) {
		pr_warn("map sizes: at most %u services, %u endpoints and %d flows\n",
			KS_MAX_SERVICES_LIMIT, KS_MAX_ENDPOINTS_LIMIT, INT32_MAX / 2);
		return -EINVAL;
	}
	err = bpf_map__set_max_entries(s->maps.ks_conns, 2 * flows);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_frontends, 4 * svcs);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_svc_gen, svcs);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_splits, svcs * KS_GENERATIONS);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_stats, svcs * KS_STATS_PER_SVC);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_endpoints, eps);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_eprev, eps);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_mirrors, svcs);
	err = err ?: bpf_map__set_max_entries(s->maps.ks_mirror_stats, svcs);
	if (err)
		return err;
	dp->svcs = calloc(svcs, sizeof(*dp->svcs));
	if (!dp->svcs)
		return -ENOMEM;
	dp->max_svcs = svcs;
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

/* The programs whose verification ks_dp_verified_insns() tells. */
static const char *const verified_progs[] = { "ks_xdp", "ks_tc", "ks_egress_tc" };
#define NR_VERIFIED (sizeof(verified_progs) / sizeof(verified_progs[0]))
_Static_assert(NR_VERIFIED == sizeof(((struct ks_dp *)0)->verified_insns) / sizeof(uint32_t),
	       "a count for each program");

/* Loads the object; with stats, asks the verifier for its statistics
 * (BPF_LOG_STATS alone: without it, a refused program's log is libbpf's
 * usual one) and keeps how many instructions it walked for each program. */
static int load(struct ks_dp *dp, bool stats)
{
	static const size_t log_size = 4096;
	char *logs[NR_VERIFIED] = { NULL };
	struct bpf_program *prog;
	const char *at;
	size_t i;
	int err;

	for (i = 0; stats && i < NR_VERIFIED; i++) {
		prog = bpf_object__find_program_by_name(dp->skel->obj, verified_progs[i]);
		logs[i] = calloc(1, log_size);
		if (prog && logs[i] && bpf_program__autoload(prog)) {
			bpf_program__set_log_buf(prog, logs[i], log_size);
			bpf_program__set_log_level(prog, 4);
		}
	}
	err = kshift_bpf__load(dp->skel);
	for (i = 0; i < NR_VERIFIED; i++) {
		at = logs[i] ? strstr(logs[i], "processed ") : NULL;
		dp->verified_insns[i] = at ? (uint32_t)strtoul(at + 10, NULL, 10) : 0;
		free(logs[i]);
	}
	return err;
}

uint32_t ks_dp_verified_insns(const struct ks_dp *dp, const char *prog)
{
	size_t i;

	for (i = 0; i < NR_VERIFIED; i++)
		if (!strcmp(prog, verified_progs[i]))
			return dp->verified_insns[i];
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
	err = ks_dp_hairpin_set(dp, opts);
	if (err)
		goto fail;
	dp->lock_fd = -1;
	err = size_maps(dp, opts);
	if (err)
		goto fail;
	if (opts->pin_path) {
		err = pins_prepare(dp, opts);
		if (err)
			goto fail;
	}
	err = load(dp, opts->verifier_stats);
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
	dp->prog_ids[0] = prog_id_of(bpf_program__fd(dp->skel->progs.ks_xdp));
	dp->prog_ids[1] = prog_id_of(bpf_program__fd(dp->skel->progs.ks_tc));
	if (opts->pin_path) {
		err = pins_finish(dp, opts);
		if (err)
			goto fail;
	}
	return 0;
fail:
	ks_dp_close(dp);
	return err;
}

void ks_dp_close(struct ks_dp *dp)
{
	uint32_t i, b;
	int l;

	/* the links and maps stay pinned, serving: closing our fds detaches
	 * nothing (only links never pinned, without a pin path, go) */
	for (l = 0; l < dp->nr_links; l++)
		if (dp->links[l].fd >= 0)
			close(dp->links[l].fd);
	free(dp->links);
	for (l = 0; l < dp->nr_repin; l++)
		if (dp->repin[l].old_fd >= 0)
			close(dp->repin[l].old_fd);
	if (dp->ring)
		munmap(dp->ring, (size_t)KS_RING_SLOTS * sizeof(*dp->ring));
	if (dp->endpoints)
		munmap(dp->endpoints, (size_t)bpf_map__max_entries(dp->skel->maps.ks_endpoints) *
					      sizeof(*dp->endpoints));
	kshift_bpf__destroy(dp->skel);
	for (i = 0; dp->svcs && i < dp->max_svcs; i++) {
		for (b = 0; b < KS_MAX_BACKENDS; b++)
			free(dp->svcs[i].slots[b].eps);
		free(dp->svcs[i].fes);
	}
	free(dp->svcs);
	ks_eprev_destroy(dp);
	ks_ranges_destroy(&dp->ring_slots);
	ks_ranges_destroy(&dp->ep_slots);
	if (dp->locked) {
		char links[sizeof(dp->pin_path) + 16];

		/* empty after a first start that failed: gone again; else
		 * they hold the pins and stay */
		snprintf(links, sizeof(links), "%s/" KS_LINKS_DIR, dp->pin_path);
		rmdir(links);
		rmdir(dp->pin_path);
		ks_unlock(dp->lock_fd);
	}
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

static enum ks_mode want_mode(const char *ifname, enum ks_mode mode)
{
	if (mode == KS_MODE_AUTO)
		return ks_is_veth(ifname) ? KS_MODE_TC : KS_MODE_XDP;
	return mode;
}

/* XDP forced on a veth (auto picks TC there): what it costs, measured in
 * the README's Benchmark section (scripts/bench-veth-xdp.sh) */
static void warn_xdp_veth(const char *ifname, enum ks_mode mode)
{
	if (mode == KS_MODE_XDP && ks_is_veth(ifname))
		pr_warn("%s: XDP on a veth turns off its peer's TSO and costs 70-80%% of bulk TCP "
			"throughput through it; use --mode tc, or auto (TC on veths)\n",
			ifname);
}

/* Whether a link attached in mode `have` serves a request for `want`: XDP
 * takes generic XDP, where the driver refused native. */
static bool serves(enum ks_mode have, enum ks_mode want)
{
	if (want == KS_MODE_TC || want == KS_MODE_XDP_GENERIC)
		return have == want;
	return have == KS_MODE_XDP || have == KS_MODE_XDP_GENERIC;
}

static int prog_fd(struct ks_dp *dp, enum ks_mode mode)
{
	return bpf_program__fd(mode == KS_MODE_TC ? dp->skel->progs.ks_tc : dp->skel->progs.ks_xdp);
}

struct ks_dp_link *ks_dp_link_find(struct ks_dp *dp, int ifindex)
{
	int i;

	for (i = 0; i < dp->nr_links; i++)
		if (dp->links[i].ifindex == ifindex)
			return &dp->links[i];
	return NULL;
}

static bool ours(struct ks_dp *dp, uint32_t prog_id)
{
	int i;

	if (prog_id == dp->prog_ids[0] || prog_id == dp->prog_ids[1])
		return true;
	for (i = 0; i < dp->nr_links; i++)
		if (dp->links[i].prog_id == prog_id)
			return true;
	return false;
}

static void refuse_foreign(const char *ifname, const char *hook, uint32_t id)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &info, &len))
		info.name[0] = '\0';
	if (fd >= 0)
		close(fd);
	pr_warn("%s: %s program %u (%s) is attached and is not ours: not attaching there%s\n",
		ifname, hook, id, info.name[0] ? info.name : "unnamed",
		strncmp(info.name, "ks_", 3) ? ""
					     : " (kshift's: another kshiftd's, or one an older "
					       "kshiftd left, which kshiftd --uninstall removes)");
}

/* One owner per interface: -EBUSY (logged, naming the program) when an
 * XDP or tcx program that is not ours is attached. A plain TC (clsact)
 * filter is another tool's and runs beside us. */
static int check_owner(struct ks_dp *dp, int ifindex, const char *ifname)
{
	DECLARE_LIBBPF_OPTS(bpf_xdp_query_opts, xq);
	__u32 ids[64], i, xdp[3];

	if (!bpf_xdp_query(ifindex, 0, &xq)) {
		xdp[0] = xq.drv_prog_id;
		xdp[1] = xq.skb_prog_id;
		xdp[2] = xq.hw_prog_id;
		for (i = 0; i < 3; i++) {
			if (xdp[i] && !ours(dp, xdp[i])) {
				refuse_foreign(ifname, "XDP", xdp[i]);
				return -EBUSY;
			}
		}
	}
	DECLARE_LIBBPF_OPTS(bpf_prog_query_opts, tq, .prog_ids = ids,
			    .prog_cnt = sizeof(ids) / sizeof(ids[0]));
	if (!bpf_prog_query_opts(ifindex, KS_BPF_TCX_INGRESS, &tq)) {
		for (i = 0; i < tq.prog_cnt && i < sizeof(ids) / sizeof(ids[0]); i++) {
			if (!ours(dp, ids[i])) {
				refuse_foreign(ifname, "tcx ingress", ids[i]);
				return -EBUSY;
			}
		}
	}
	return 0;
}

/* A new link on l->ifindex in *mode (XDP falls back to generic where the
 * driver refuses native): its fd, or -errno. */
static int link_create(struct ks_dp *dp, const char *ifname, int ifindex, enum ks_mode *mode)
{
	DECLARE_LIBBPF_OPTS(bpf_link_create_opts, o);
	int fd;

	if (*mode == KS_MODE_TC) {
		/* tcx through the raw link_create: libbpf 1.1 has no
		 * bpf_program__attach_tcx, and needs none */
		fd = bpf_link_create(prog_fd(dp, KS_MODE_TC), ifindex, KS_BPF_TCX_INGRESS, NULL);
		if (fd == -EINVAL)
			pr_warn("%s: tcx refused (EINVAL): TC mode needs Linux 6.6 or later\n",
				ifname);
		return fd;
	}
	o.flags = *mode == KS_MODE_XDP ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	fd = bpf_link_create(prog_fd(dp, KS_MODE_XDP), ifindex, BPF_XDP, &o);
	if (*mode == KS_MODE_XDP && (fd == -EOPNOTSUPP || fd == -EINVAL)) {
		pr_info("%s: native XDP refused (%s), using generic XDP\n", ifname, strerror(-fd));
		*mode = KS_MODE_XDP_GENERIC;
		o.flags = XDP_FLAGS_SKB_MODE;
		fd = bpf_link_create(prog_fd(dp, KS_MODE_XDP), ifindex, BPF_XDP, &o);
	}
	return fd;
}

static int link_pin(struct ks_dp *dp, struct ks_dp_link *l)
{
	char path[sizeof(dp->pin_path) + 16 + IF_NAMESIZE];

	if (!dp->pin_path[0])
		return 0;
	link_pin_of(dp->pin_path, l->ifname, path, sizeof(path));
	/* a pin by that name is a link of an interface gone and, its name
	 * reused, back: that link is defunct */
	unlink(path);
	if (bpf_obj_pin(l->fd, path)) {
		int err = -errno;

		pr_warn("pinning %s: %s\n", path, strerror(-err));
		return err;
	}
	return 0;
}

static void link_unpin(struct ks_dp *dp, struct ks_dp_link *l)
{
	char path[sizeof(dp->pin_path) + 16 + IF_NAMESIZE];

	if (!dp->pin_path[0])
		return;
	link_pin_of(dp->pin_path, l->ifname, path, sizeof(path));
	unlink(path);
}

/* Whether a program runs on ifindex's tcx egress (another tool's, or ours
 * in XDP split mode), which a packet handed to the peer would pass by. */
static bool tcx_egress_busy(int ifindex)
{
	__u32 ids[8];
	DECLARE_LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids,
			    .prog_cnt = sizeof(ids) / sizeof(ids[0]));

	return bpf_prog_query_opts(ifindex, KS_BPF_TCX_EGRESS, &q) || q.prog_cnt;
}

/* ks_peer_ifs and the link of ifindex (if served) made to say whether TC
 * hands packets to its peer: ok, as ks_nl_to_peer() found it. */
static void peer_set(struct ks_dp *dp, int ifindex, bool ok)
{
	struct ks_dp_link *l = ks_dp_link_find(dp, ifindex);
	int fd = bpf_map__fd(dp->skel->maps.ks_peer_ifs);
	__u32 key = ifindex;
	__u8 one = 1;

	/* TC's own links only: where XDP serves, TC forwards nothing */
	ok = ok && l && l->mode == KS_MODE_TC && !tcx_egress_busy(ifindex);
	if (ok && bpf_map_update_elem(fd, &key, &one, BPF_ANY)) {
		pr_warn("%s: ks_peer_ifs: %s\n", l->ifname, strerror(errno));
		ok = false;
	}
	if (!ok)
		bpf_map_delete_elem(fd, &key);
	if (!l || ok == l->to_peer)
		return;
	l->to_peer = ok;
	if (ok)
		pr_info("%s: TC hands what it forwards there to the peer directly\n", l->ifname);
	else
		pr_info("%s: TC forwards through it (a qdisc, a filter or no peer elsewhere)\n",
			l->ifname);
}

void ks_dp_peer_check(struct ks_dp *dp, int ifindex)
{
	bool ok = false;

	if (ks_dp_link_find(dp, ifindex))
		ks_nl_to_peer(&ifindex, 1, &ok);
	peer_set(dp, ifindex, ok);
}

void ks_dp_peers_sync(struct ks_dp *dp)
{
	int fd = bpf_map__fd(dp->skel->maps.ks_peer_ifs), *ifindex, i, n = 0;
	struct ks_dp_link *l;
	__u32 key, *prev = NULL;
	bool *ok;

	/* none but TC links' is kept: deleted from the first, each in turn */
	while (!bpf_map_get_next_key(fd, prev, &key)) {
		l = ks_dp_link_find(dp, (int)key);
		if (!l || l->mode != KS_MODE_TC)
			bpf_map_delete_elem(fd, &key);
		else
			prev = &key;
	}
	ifindex = calloc(dp->nr_links + 1, sizeof(*ifindex) + sizeof(*ok));
	if (!ifindex)
		return;
	ok = (bool *)(ifindex + dp->nr_links + 1);
	for (i = 0; i < dp->nr_links; i++)
		if (dp->links[i].mode == KS_MODE_TC)
			ifindex[n++] = dp->links[i].ifindex;
	/* XDP mode: no dump every 5 s for nothing */
	if (n)
		ks_nl_to_peer(ifindex, n, ok);
	for (i = 0; i < n; i++)
		peer_set(dp, ifindex[i], ok[i]);
	free(ifindex);
}

int ks_dp_attach(struct ks_dp *dp, const char *ifname, enum ks_mode mode, enum ks_mode *used)
{
	struct ks_dp_link *l;
	int ifindex = if_nametoindex(ifname), fd, err;

	if (!ifindex)
		return -ENODEV;
	l = ks_dp_link_find(dp, ifindex);
	if (l && !l->adopted) {
		if (used)
			*used = l->mode;
		return 0;
	}
	mode = want_mode(ifname, mode);
	warn_xdp_veth(ifname, mode);
	err = check_owner(dp, ifindex, ifname);
	if (err)
		return err;
	if (l && serves(l->mode, mode)) {
		/* adopted: moved to our program atomically, never empty */
		if (bpf_link_update(l->fd, prog_fd(dp, l->mode), NULL)) {
			err = -errno;
			pr_warn("%s: updating its link to the new program: %s\n", ifname,
				strerror(-err));
			return err;
		}
		l->adopted = false;
		l->prog_id = dp->prog_ids[l->mode == KS_MODE_TC];
		if (used)
			*used = l->mode;
		pr_info("attached to %s (%s): took over the running link\n", ifname,
			ks_mode_name(l->mode));
		ks_dp_peer_check(dp, ifindex);
		return ks_dp_egress_sync(dp);
	}
	fd = link_create(dp, ifname, ifindex, &mode);
	if (fd < 0) {
		pr_warn("attaching to %s (%s): %s\n", ifname, ks_mode_name(mode), strerror(-fd));
		return fd;
	}
	if (l) {
		/* adopted in another mode: ours replaces it; both ran for a
		 * moment, which is harmless (the second sees rewritten packets
		 * that match no frontend) */
		bpf_link_detach(l->fd);
		link_unpin(dp, l);
		pr_info("detached the adopted %s link from %s\n", ks_mode_name(l->mode), ifname);
		link_remove(dp, l);
	}
	l = link_add(dp);
	if (!l) {
		close(fd);
		return -ENOMEM;
	}
	*l = (struct ks_dp_link){ .ifindex = ifindex,
				  .mode = mode,
				  .fd = fd,
				  .prog_id = dp->prog_ids[mode == KS_MODE_TC] };
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
	err = link_pin(dp, l);
	if (err) {
		link_remove(dp, l);
		return err;
	}
	if (used)
		*used = mode;
	pr_info("attached to %s (%s)\n", ifname, ks_mode_name(mode));
	ks_dp_peer_check(dp, ifindex);
	return ks_dp_egress_sync(dp);
}

int ks_dp_attach_all(struct ks_dp *dp, char *const *ifnames, const bool *optional, int n,
		     enum ks_mode mode)
{
	int before = dp->nr_links, i, j, ifindex, err = 0;
	bool *fresh = NULL, *keep = NULL, *skip;
	struct ks_dp_link *l;

	fresh = calloc(2 * (n + 1), sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	skip = fresh + n + 1;
	/* checked first, everywhere: a refusal leaves everything as it was */
	for (i = 0; i < n; i++) {
		ifindex = if_nametoindex(ifnames[i]);
		err = ifindex ? check_owner(dp, ifindex, ifnames[i]) : -ENODEV;
		if (err && optional && optional[i]) {
			skip[i] = true;
			err = 0;
			continue;
		}
		if (err == -ENODEV)
			pr_warn("%s: no such interface\n", ifnames[i]);
		if (err)
			goto out;
	}
	/* links made here, until all are made: rolled back on failure */
	for (i = 0; i < n && !err; i++) {
		enum ks_mode m = want_mode(ifnames[i], mode);
		int fd;

		if (skip[i])
			continue;
		warn_xdp_veth(ifnames[i], m);
		ifindex = if_nametoindex(ifnames[i]);
		l = ks_dp_link_find(dp, ifindex);
		if (l && (!l->adopted || serves(l->mode, m)))
			continue;
		if (l && l->mode != KS_MODE_TC && m != KS_MODE_TC) {
			/* native and generic XDP cannot be attached at once: a
			 * change between them leaves a gap (detached below) */
			pr_info("%s: from %s to %s: detaching first\n", ifnames[i],
				ks_mode_name(l->mode), ks_mode_name(m));
			bpf_link_detach(l->fd);
		}
		fd = link_create(dp, ifnames[i], ifindex, &m);
		if (fd < 0) {
			pr_warn("attaching to %s (%s): %s\n", ifnames[i], ks_mode_name(m),
				strerror(-fd));
			err = fd;
			break;
		}
		l = link_add(dp);
		if (!l) {
			close(fd);
			err = -ENOMEM;
			break;
		}
		*l = (struct ks_dp_link){ .ifindex = ifindex,
					  .mode = m,
					  .fd = fd,
					  .prog_id = dp->prog_ids[m == KS_MODE_TC] };
		snprintf(l->ifname, sizeof(l->ifname), "%s", ifnames[i]);
		fresh[i] = true;
	}
	if (err) {
		/* never pinned: closing the fd detaches */
		while (dp->nr_links > before)
			link_remove(dp, &dp->links[dp->nr_links - 1]);
		pr_warn("attached to nothing: rolled back\n");
		goto out;
	}
	/* all made: from here on nothing fails the start */
	keep = calloc(dp->nr_links + 1, sizeof(*keep));
	if (!keep) {
		err = -ENOMEM;
		goto out;
	}
	for (j = 0; j < dp->nr_links; j++) {
		l = &dp->links[j];
		for (i = 0; i < n; i++)
			if (!skip[i] && l->ifindex == (int)if_nametoindex(ifnames[i]))
				break;
		if (j >= before) {
			keep[j] = true;
			if (link_pin(dp, l))
				pr_warn("%s: not pinned: the attachment ends with kshiftd\n",
					l->ifname);
			pr_info("attached to %s (%s)\n", l->ifname, ks_mode_name(l->mode));
			continue;
		}
		if (!l->adopted) {
			keep[j] = i < n;
			continue;
		}
		if (i < n && serves(l->mode, want_mode(l->ifname, mode))) {
			keep[j] = !bpf_link_update(l->fd, prog_fd(dp, l->mode), NULL);
			if (!keep[j]) {
				pr_warn("%s: updating its link to the new program: %s\n", l->ifname,
					strerror(errno));
				continue;
			}
			l->adopted = false;
			l->prog_id = dp->prog_ids[l->mode == KS_MODE_TC];
			pr_info("attached to %s (%s): took over the running link\n", l->ifname,
				ks_mode_name(l->mode));
		}
	}
	/* adopted links not kept: replaced by a link in another mode, or on
	 * an interface no longer served. Ours, so ours to detach */
	for (j = dp->nr_links - 1; j >= 0; j--) {
		char name[IF_NAMESIZE];
		bool replaced = false;

		l = &dp->links[j];
		if (keep[j])
			continue;
		snprintf(name, sizeof(name), "%s", l->ifname);
		/* its replacement took its pin already (link_pin) */
		for (i = 0; i < dp->nr_links; i++)
			replaced |= i != j && dp->links[i].ifindex == l->ifindex;
		bpf_link_detach(l->fd);
		if (!replaced)
			link_unpin(dp, l);
		pr_info("detached from %s (%s): %s\n", name, ks_mode_name(l->mode),
			replaced ? "replaced" : "not in --iface");
		link_remove(dp, l);
		/* link_remove moved the last link into slot j */
		keep[j] = keep[dp->nr_links];
	}
	pins_commit(dp);
	ks_dp_peers_sync(dp);
	err = ks_dp_egress_sync(dp);
out:
	free(fresh);
	free(keep);
	return err;
}

void ks_dp_forget(struct ks_dp *dp, int ifindex)
{
	struct ks_dp_link *l = ks_dp_link_find(dp, ifindex);

	if (!l)
		return;
	pr_info("forgot %s: interface gone\n", l->ifname);
	link_unpin(dp, l);
	link_remove(dp, l);
	ks_dp_peer_check(dp, ifindex);
	ks_dp_egress_sync(dp);
}

void ks_dp_detach(struct ks_dp *dp, int ifindex)
{
	struct ks_dp_link *l = ks_dp_link_find(dp, ifindex);

	if (!l)
		return;
	bpf_link_detach(l->fd);
	link_unpin(dp, l);
	pr_info("detached from %s (%s)\n", l->ifname, ks_mode_name(l->mode));
	link_remove(dp, l);
	ks_dp_peer_check(dp, ifindex);
	ks_dp_egress_sync(dp);
}

void ks_dp_rename(struct ks_dp *dp, int ifindex, const char *ifname)
{
	char from[sizeof(dp->pin_path) + 16 + IF_NAMESIZE], to[sizeof(from)];
	struct ks_dp_link *l = ks_dp_link_find(dp, ifindex);

	if (!l || !strcmp(l->ifname, ifname))
		return;
	if (dp->pin_path[0]) {
		/* pinned anew under the new name: bpffs has no rename */
		link_pin_of(dp->pin_path, l->ifname, from, sizeof(from));
		link_pin_of(dp->pin_path, ifname, to, sizeof(to));
		unlink(to);
		if (bpf_obj_pin(l->fd, to))
			pr_warn("pinning %s: %s\n", to, strerror(errno));
		else
			unlink(from);
	}
	pr_info("%s is now %s\n", l->ifname, ifname);
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
}

static void adopted_free(struct ks_dp *dp, uint32_t svc);

void ks_dp_adopt_done(struct ks_dp *dp)
{
	int fe_fd = bpf_map__fd(dp->skel->maps.ks_frontends);
	uint32_t nr_svcs = bpf_map__max_entries(dp->skel->maps.ks_svc_gen), svc, freed = 0;
	struct ks_frontend_key key, *prev = NULL, *gone = NULL, *kept = NULL, *v;
	size_t nr_gone = 0, nr_kept = 0, cap_gone = 0, cap_kept = 0, i, k;
	struct ks_frontend fe;

	if (!dp->adopted)
		return;
	dp->adopted = false;
	if (nr_svcs > dp->max_svcs)
		nr_svcs = dp->max_svcs;
	/* frontends still on an adopted service: no shift claimed them */
	while (!bpf_map_get_next_key(fe_fd, prev, &key)) {
		bool drop;

		prev = &key;
		if (bpf_map_lookup_elem(fe_fd, &key, &fe))
			continue;
		if (!key.port && !key.proto)
			continue; /* address-only: decided below */
		drop = fe.svc < nr_svcs && dp->svcs[fe.svc].adopted;
		if (drop ? nr_gone == cap_gone : nr_kept == cap_kept) {
			size_t *cap = drop ? &cap_gone : &cap_kept;

			v = realloc(drop ? gone : kept, (*cap ? 2 * *cap : 64) * sizeof(*v));
			if (!v)
				goto out;
			*cap = *cap ? 2 * *cap : 64;
			*(drop ? &gone : &kept) = v;
		}
		if (drop)
			gone[nr_gone++] = key;
		else
			kept[nr_kept++] = key;
	}
	/* address-only keys (the fragment policy) of addresses left with no
	 * frontend */
	prev = NULL;
	while (!bpf_map_get_next_key(fe_fd, prev, &key)) {
		bool used = false;

		prev = &key;
		if (key.port || key.proto)
			continue;
		for (k = 0; k < nr_kept && !used; k++)
			used = kept[k].family == key.family &&
			       !memcmp(&kept[k].addr, &key.addr, sizeof(key.addr));
		if (used)
			continue;
		if (nr_gone == cap_gone) {
			v = realloc(gone, (cap_gone ? 2 * cap_gone : 64) * sizeof(*v));
			if (!v)
				goto out;
			gone = v;
			cap_gone = cap_gone ? 2 * cap_gone : 64;
		}
		gone[nr_gone++] = key;
	}
	for (i = 0; i < nr_gone; i++)
		ks_dp_frontend_del(dp, &gone[i]);
	for (svc = 0; svc < nr_svcs; svc++) {
		if (!dp->svcs[svc].adopted)
			continue;
		adopted_free(dp, svc);
		freed++;
	}
	pr_info("adoption done: %u adopted service(s) no shift claimed freed, %zu frontend "
		"key(s) removed\n",
		freed, nr_gone);
out:
	free(gone);
	free(kept);
}

/* Whether program id is named name; its fd in *fd when asked for. */
static bool prog_named(uint32_t id, const char *name, int *fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int pfd = bpf_prog_get_fd_by_id(id);
	bool same;

	if (pfd < 0)
		return false;
	same = !bpf_obj_get_info_by_fd(pfd, &info, &len) && !strcmp(info.name, name);
	if (same && fd)
		*fd = pfd;
	else
		close(pfd);
	return same;
}

#define APPEND(buf, w, ...)                                                                        \
	((w) += snprintf((buf) + (w), (w) < sizeof(buf) ? sizeof(buf) - (w) : 0, __VA_ARGS__))

/*
 * What a kshiftd from before bpf_links left on this namespace's interfaces
 * (killed, it could not clean up): ks_xdp attached by netlink, and ks_tc
 * as a clsact filter (handle 0x5ccf, pref 1; the qdisc stays, other tools
 * may use it). A program attached through a link (another kshiftd's,
 * pinned elsewhere) cannot be detached by netlink, and stays.
 */
static int legacy_sweep(char *what, size_t len, size_t *w, bool first)
{
	struct if_nameindex *all = if_nameindex(), *it;
	int n = 0, i, pfd;

	for (it = all; it && it->if_index; it++) {
		DECLARE_LIBBPF_OPTS(bpf_xdp_query_opts, q);
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = it->if_index,
				    .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, tq, .handle = KS_LEGACY_TC_HANDLE,
				    .priority = KS_LEGACY_TC_PRIO);

		if (!bpf_xdp_query(it->if_index, 0, &q)) {
			__u32 ids[2] = { q.drv_prog_id, q.skb_prog_id };
			__u32 flags[2] = { XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE };

			for (i = 0; i < 2; i++) {
				DECLARE_LIBBPF_OPTS(bpf_xdp_attach_opts, o);

				if (!ids[i] || !prog_named(ids[i], "ks_xdp", &pfd))
					continue;
				o.old_prog_fd = pfd;
				if (!bpf_xdp_detach(it->if_index, flags[i] | XDP_FLAGS_REPLACE,
						    &o)) {
					w[0] += snprintf(what + *w, *w < len ? len - *w : 0,
							 "%s%s (xdp, left by an older kshiftd)",
							 first && !n ? "" : ", ", it->if_name);
					n++;
				}
				close(pfd);
			}
		}
		if (!bpf_tc_query(&hook, &tq) && prog_named(tq.prog_id, "ks_tc", NULL)) {
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, del, .handle = KS_LEGACY_TC_HANDLE,
					    .priority = KS_LEGACY_TC_PRIO);

			if (!bpf_tc_detach(&hook, &del)) {
				w[0] += snprintf(what + *w, *w < len ? len - *w : 0,
						 "%s%s (tc filter, left by an older kshiftd)",
						 first && !n ? "" : ", ", it->if_name);
				n++;
			}
		}
	}
	if (all)
		if_freenameindex(all);
	return n;
}

int ks_dp_uninstall(const char *pin_path)
{
	char dir[256 + 16], path[sizeof(dir) + 256], what[2048] = "", ifname[IF_NAMESIZE];
	struct ks_dp dp = {};
	int err, fd, ifindex, links = 0, maps = 0;
	struct dirent *de;
	enum ks_mode mode;
	uint32_t prog_id;
	libbpf_print_fn_t prev;
	size_t w = 0;
	DIR *d;

	err = pin_dir_ready(pin_path, false);
	if (err && err != -ENOENT) {
		pr_warn("kshiftd: --uninstall: pin path %s: %s\n", pin_path, strerror(-err));
		return err;
	}
	if (!err) {
		snprintf(dp.pin_path, sizeof(dp.pin_path), "%s", pin_path);
		err = lock_pin_dir(&dp, "kshiftd: --uninstall: ");
		if (err)
			return err;
	}

	/* links first: their programs go with them */
	snprintf(dir, sizeof(dir), "%s/" KS_LINKS_DIR, pin_path);
	d = dp.locked ? opendir(dir) : NULL;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd >= 0 && !link_target(fd, &prog_id, &ifindex, &mode)) {
			if (ifindex && if_indextoname(ifindex, ifname))
				APPEND(what, w, "%s%s (%s)", links ? ", " : "", ifname,
				       ks_mode_name(mode));
			else
				APPEND(what, w, "%s%s (interface gone)", links ? ", " : "",
				       de->d_name);
			bpf_link_detach(fd);
			links++;
		}
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	if (d)
		closedir(d);
	/* interfaces without a clsact qdisc make libbpf say so: not news */
	prev = libbpf_set_print(NULL);
	links += legacy_sweep(what, sizeof(what), &w, !links);
	libbpf_set_print(prev);
	if (dp.locked) {
		rmdir(dir);
		d = opendir(pin_path);
		while (d && (de = readdir(d))) {
			if (strncmp(de->d_name, "ks_", 3))
				continue;
			snprintf(path, sizeof(path), "%s/%s", pin_path, de->d_name);
			if (!unlink(path))
				maps++;
		}
		if (d)
			closedir(d);
		ks_unlock(dp.lock_fd);
		if (rmdir(pin_path) && errno != ENOENT)
			pr_warn("kshiftd: --uninstall: %s: %s (left in place)\n", pin_path,
				strerror(errno));
	}
	if (!links && !maps) {
		printf("kshiftd: nothing installed under %s\n", pin_path);
		return 0;
	}
	printf("kshiftd: uninstalled: detached from %d interface(s)%s%s; removed %d map pin(s) "
	       "under %s\n",
	       links, links ? ": " : "", what, maps, pin_path);
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
	uint32_t max = dp->max_svcs; /* --max-services */
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

/* A frontend key that leads to a service, not one marking an address. */
static bool leads_to_svc(const struct ks_frontend_key *key)
{
	return key->port || key->proto;
}

/* The endpoints whose flows a slot holds, into *n: the ring's, then the
 * draining ones; an adopted slot knows only the ring's. */
static const struct ks_endpoint *slot_eps(const struct ks_dp *dp, const struct ks_dp_slot *slot,
					  uint32_t *n)
{
	if (!slot->eps) {
		*n = slot->nr_eps;
		return dp->endpoints + slot->slice.ep_base;
	}
	*n = slot->nr_eps + slot->nr_draining;
	return slot->eps;
}

/* Links frontend key with the endpoints of slots[i] for each i < n that
 * pick (NULL: all) says, in ks_eprev (eprev.c). Returns the flags key
 * needs, or -ENOMEM with nothing linked. */
static int slots_link(struct ks_dp *dp, const struct ks_frontend_key *key,
		      const struct ks_dp_slot *slots, const bool *pick, uint32_t n)
{
	const struct ks_endpoint *eps;
	uint32_t i, nr;
	int flags = 0, f;

	for (i = 0; i < n; i++) {
		if (pick && !pick[i])
			continue;
		eps = slot_eps(dp, &slots[i], &nr);
		f = ks_eprev_link(dp, key, eps, nr);
		if (f < 0) {
			while (i--)
				if (!pick || pick[i]) {
					eps = slot_eps(dp, &slots[i], &nr);
					ks_eprev_unlink(dp, key, eps, nr);
				}
			return f;
		}
		flags |= f;
	}
	return flags;
}

static void slots_unlink(struct ks_dp *dp, const struct ks_frontend_key *key,
			 const struct ks_dp_slot *slots, const bool *pick, uint32_t n)
{
	const struct ks_endpoint *eps;
	uint32_t i, nr;

	for (i = 0; i < n; i++) {
		if (pick && !pick[i])
			continue;
		eps = slot_eps(dp, &slots[i], &nr);
		ks_eprev_unlink(dp, key, eps, nr);
	}
}

/* Every frontend of s linked with the slots pick says; -ENOMEM with none. */
static int svc_link(struct ks_dp *dp, struct ks_dp_svc *s, const struct ks_dp_slot *slots,
		    const bool *pick, uint32_t n)
{
	uint32_t f;
	int err;

	for (f = 0; f < s->nr_fes; f++) {
		err = slots_link(dp, &s->fes[f], slots, pick, n);
		if (err < 0) {
			while (f--)
				slots_unlink(dp, &s->fes[f], slots, pick, n);
			return err;
		}
	}
	return 0;
}

static void svc_unlink(struct ks_dp *dp, struct ks_dp_svc *s, const struct ks_dp_slot *slots,
		       const bool *pick, uint32_t n)
{
	uint32_t f;

	for (f = 0; f < s->nr_fes; f++)
		slots_unlink(dp, &s->fes[f], slots, pick, n);
}

/* Frontend key leads to svc now: linked with its endpoints, and listed.
 * Returns the flags it needs, or -ENOMEM with nothing changed. */
static int fe_link(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc)
{
	struct ks_dp_svc *s = &dp->svcs[svc];
	int flags;

	if (s->nr_fes == s->cap_fes) {
		uint32_t cap = s->cap_fes ? 2 * s->cap_fes : 2;
		struct ks_frontend_key *v = realloc(s->fes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->fes = v;
		s->cap_fes = cap;
	}
	flags = slots_link(dp, key, s->slots, NULL, s->nr_backends);
	if (flags >= 0)
		s->fes[s->nr_fes++] = *key;
	return flags;
}

/* ... and no longer. */
static void fe_unlink(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc)
{
	struct ks_dp_svc *s = &dp->svcs[svc];
	uint32_t f;

	for (f = 0; f < s->nr_fes; f++) {
		if (memcmp(&s->fes[f], key, sizeof(*key)))
			continue;
		slots_unlink(dp, key, s->slots, NULL, s->nr_backends);
		s->fes[f] = s->fes[--s->nr_fes];
		return;
	}
}

/* A service's frontends and their links go with it. */
static void svc_forget_frontends(struct ks_dp *dp, struct ks_dp_svc *s)
{
	svc_unlink(dp, s, s->slots, NULL, s->nr_backends);
	free(s->fes);
	s->fes = NULL;
	s->nr_fes = s->cap_fes = 0;
}

static bool same_endpoints(const struct ks_dp_slot *slot, const struct ks_dp_backend *b)
{
	uint32_t n = b->nr_eps + b->nr_draining;

	return slot->nr_eps == b->nr_eps && slot->nr_draining == b->nr_draining &&
	       (!n || (slot->eps && !memcmp(slot->eps, b->eps, n * sizeof(*b->eps))));
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
	uint32_t size = ks_ring_size(b->nr_eps, cur->slice.size), all = b->nr_eps + b->nr_draining;
	int err;

	memset(out, 0, sizeof(*out));
	if (!all)
		return 0;
	out->eps = malloc(all * sizeof(*b->eps));
	if (!out->eps)
		return -ENOMEM;
	memcpy(out->eps, b->eps, all * sizeof(*b->eps));
	out->nr_draining = b->nr_draining;
	if (!b->nr_eps)
		return 0;
	out->nr_eps = b->nr_eps;
	err = ks_ranges_alloc(&dp->ep_slots, b->nr_eps, &out->slice.ep_base);
	if (err)
		goto fail_eps;
	err = ks_ranges_alloc(&dp->ring_slots, size, &out->slice.off);
	if (err)
		goto fail_ring;
	out->slice.size = size;
	out->slice.nr_eps = b->nr_eps;

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

	if (svc >= dp->max_svcs || !dp->svcs[svc].used || n > KS_MAX_BACKENDS)
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
	/* replies of the new endpoints' flows find them from the first */
	err = svc_link(dp, s, next, fresh, n);
	if (err)
		goto undo;

	gen = s->gen ^ 1;
	key = svc * KS_GENERATIONS + gen;
	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &split, BPF_ANY) ||
	    bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_svc_gen), &svc, &gen, BPF_ANY)) {
		err = -errno;
		svc_unlink(dp, s, next, fresh, n);
		goto undo;
	}

	/* live now: what the old generation used and the new one does not
	 * goes back, after the grace period */
	for (i = 0; i < s->nr_backends; i++) {
		if (i < n && !fresh[i])
			continue;
		svc_unlink(dp, s, &s->slots[i], NULL, 1);
		release_slot(dp, &s->slots[i]);
	}
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

	if (svc >= dp->max_svcs || !dp->svcs[svc].used)
		return;
	s = &dp->svcs[svc];
	for (i = 0; i < KS_GENERATIONS; i++) {
		key = svc * KS_GENERATIONS + i;
		bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_splits), &key, &empty, BPF_ANY);
	}
	svc_forget_frontends(dp, s);
	for (i = 0; i < s->nr_backends; i++)
		release_slot(dp, &s->slots[i]);
	memset(s, 0, sizeof(*s));
}

/* An adopted service that no frontend leads to any more: its slots go
 * back (reusable after the grace period, like any) but its splits stay
 * whole, so a packet that read the frontend just before it flipped still
 * finds the split it expects. */
static void adopted_free(struct ks_dp *dp, uint32_t svc)
{
	struct ks_dp_svc *s = &dp->svcs[svc];
	uint32_t i;

	svc_forget_frontends(dp, s);
	for (i = 0; i < s->nr_backends; i++)
		release_slot(dp, &s->slots[i]);
	memset(s, 0, sizeof(*s));
}

/* What a frontend key led to before it changed: while adopted services
 * remain, one that loses its last frontend is freed at once, so that
 * re-applying every shift on a full node never needs twice the room. */
static bool led_to_adopted(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t *svc)
{
	struct ks_frontend old;

	return dp->adopted && (key->port || key->proto) &&
	       !bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key, &old) &&
	       old.svc < dp->max_svcs && dp->svcs[old.svc].adopted && (*svc = old.svc, true);
}

static void adopted_unref(struct ks_dp *dp, uint32_t svc)
{
	if (dp->svcs[svc].fe_refs && !--dp->svcs[svc].fe_refs)
		adopted_free(dp, svc);
}

/* The service a frontend key leads to now, if it is one that is linked. */
static bool linked_svc(struct ks_dp *dp, const struct ks_frontend_key *key, struct ks_frontend *fe)
{
	return leads_to_svc(key) &&
	       !bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key, fe) &&
	       fe->svc < dp->max_svcs && dp->svcs[fe->svc].used;
}

/* Linked first, so a flow's first reply finds the flow from the start (the
 * flags the links call for go in with the key), and unlinked from the
 * service it led to before only after. */
int ks_dp_frontend_add(struct ks_dp *dp, const struct ks_frontend_key *key, uint32_t svc)
{
	struct ks_frontend fe = { .svc = svc }, before;
	bool adopted, had = linked_svc(dp, key, &before), link;
	uint32_t old;
	int flags;

	link = leads_to_svc(key) && svc < dp->max_svcs && dp->svcs[svc].used &&
	       !(had && before.svc == svc);
	if (had && before.svc == svc)
		fe.flags = before.flags;
	if (link) {
		flags = fe_link(dp, key, svc);
		if (flags < 0)
			return flags;
		fe.flags = flags;
	}
	adopted = led_to_adopted(dp, key, &old) && old != svc;
	if (bpf_map_update_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key, &fe, BPF_ANY)) {
		flags = -errno;
		if (link)
			fe_unlink(dp, key, svc);
		return flags;
	}
	if (link && had)
		fe_unlink(dp, key, before.svc);
	if (adopted)
		adopted_unref(dp, old);
	return 0;
}

void ks_dp_frontend_del(struct ks_dp *dp, const struct ks_frontend_key *key)
{
	struct ks_frontend before;
	bool adopted, had = linked_svc(dp, key, &before);
	uint32_t old;

	adopted = led_to_adopted(dp, key, &old);
	if (bpf_map_delete_elem(bpf_map__fd(dp->skel->maps.ks_frontends), key))
		return;
	if (had)
		fe_unlink(dp, key, before.svc);
	if (adopted)
		adopted_unref(dp, old);
}

int ks_dp_stats(struct ks_dp *dp, uint32_t svc, uint32_t backend, struct ks_counters *out)
{
	struct ks_counters percpu[dp->nr_cpus];
	uint32_t key = svc * KS_STATS_PER_SVC + backend;
	int i;

	memset(out, 0, sizeof(*out));
	if (svc >= dp->max_svcs || backend >= KS_STATS_PER_SVC)
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
