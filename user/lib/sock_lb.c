// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Node-local clients through cgroup socket hooks (bpf/lib/sock.h): loading
 * the socket programs onto the packet programs' maps, attaching them to a
 * cgroup, and their life across restarts.
 *
 * One set of maps serves both objects: every map of the socket object that
 * the packet object also has is the packet object's, by fd
 * (bpf_map__reuse_fd), so weights, rules, rings, health and counters are
 * one. Its own map, ks_sock_rev, is pinned beside the others and reused by
 * the next kshiftd, so a socket steered before a restart still shows its
 * frontend to getpeername and recvmsg after it.
 *
 * The hooks are bpf_links pinned as <pin>/sock/<program>, like the
 * interface links under <pin>/links: stopping kshiftd leaves them
 * steering; the next kshiftd moves each to its new program with
 * bpf_link_update (no moment without the hook), or, if --cgroup names
 * another cgroup now, detaches them and attaches anew there; started
 * without --cgroup it detaches them; --uninstall removes them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeletons, whose rodata uses its types */
#include "kshift.skel.h"
#include "kshift_sock.skel.h"
#include "lock.h"
#include "log.h"
#include "shifts.h"
#include "sock_lb.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#define KS_SOCK_DIR	 "sock"
#define KS_CGROUP2_MAGIC 0x63677270
/* Walks of the node's sockets at most once a second, however fast
 * endpoints churn: each costs a batch update of every endpoint listed and
 * a pass over every socket. */
#define KS_SOCK_REAP_GAP_MS 1000

struct ks_sock_lb {
	struct kshift_sock_bpf *skel;
	char cgroup[256];
	size_t flushes;		/* the collector's queued flushes when last looked at */
	bool reap_pending;	/* endpoints removed since the last walk */
	uint64_t reap_after_ms; /* CLOCK_MONOTONIC: the next walk not before */
	uint32_t live_gen;	/* ks_sock_live's generation */
};

static void sock_dir_of(const char *pin_path, char *buf, size_t len)
{
	snprintf(buf, len, "%s/" KS_SOCK_DIR, pin_path);
}

/* The network namespace kshiftd runs in, which is the node's. */
static int netns_cookie(uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	close(fd);
	return err;
}

/* ks_sock_rev as an earlier kshiftd pinned it, if its layout is ours. */
static int reuse_rev_pin(struct bpf_map *map, const char *pin_path)
{
	char path[512];
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", pin_path, bpf_map__name(map));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != bpf_map__type(map) ||
	    info.key_size != bpf_map__key_size(map) ||
	    info.value_size != bpf_map__value_size(map) ||
	    info.max_entries != bpf_map__max_entries(map)) {
		pr_info("%s: another layout; created anew\n", path);
		unlink(path);
	} else {
		err = bpf_map__reuse_fd(map, fd);
	}
	close(fd);
	return err;
}

/* Every map the packet object has is shared; ks_sock_rev comes from its pin. */
static int share_maps(struct ks_sock_lb *s, struct ks_dp *dp)
{
	struct bpf_map *map, *theirs;
	int err;

	bpf_object__for_each_map(map, s->skel->obj) {
		if (bpf_map__is_internal(map))
			continue;
		theirs = bpf_object__find_map_by_name(dp->skel->obj, bpf_map__name(map));
		if (theirs)
			err = bpf_map__reuse_fd(map, bpf_map__fd(theirs));
		else if (dp->pin_path[0])
			err = reuse_rev_pin(map, dp->pin_path);
		else
			err = 0;
		if (err) {
			pr_warn("socket programs: sharing map %s: %s\n", bpf_map__name(map),
				strerror(-err));
			return err;
		}
	}
	return 0;
}

/* A pinned link's cgroup and attach type, or -errno. */
static int cgroup_link_target(int fd, uint64_t *cgroup_id, uint32_t *attach_type)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	if (info.type != BPF_LINK_TYPE_CGROUP)
		return -EINVAL;
	*cgroup_id = info.cgroup.cgroup_id;
	*attach_type = info.cgroup.attach_type;
	return 0;
}

/* Attaches prog to the cgroup, or moves the link pinned for it there. */
static int attach_one(struct bpf_program *prog, int cg_fd, uint64_t cg_id, const char *dir,
		      bool *created)
{
	enum bpf_attach_type type = bpf_program__expected_attach_type(prog);
	char path[600];
	uint64_t id = 0;
	uint32_t at = 0;
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", dir, bpf_program__name(prog));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		if (!cgroup_link_target(fd, &id, &at) && id == cg_id && at == (uint32_t)type) {
			err = bpf_link_update(fd, bpf_program__fd(prog), NULL);
			close(fd);
			if (!err)
				return 0;
			pr_warn("%s: moving to the new program: %s\n", path, strerror(-err));
			return err;
		}
		/* another cgroup than --cgroup names now: off it */
		bpf_link_detach(fd);
		close(fd);
		unlink(path);
	}
	fd = bpf_link_create(bpf_program__fd(prog), cg_fd, type, NULL);
	if (fd < 0) {
		pr_warn("attaching %s to the cgroup: %s\n", bpf_program__name(prog), strerror(-fd));
		return fd;
	}
	err = bpf_obj_pin(fd, path) ? -errno : 0;
	if (err) {
		pr_warn("pinning %s: %s\n", path, strerror(-err));
		bpf_link_detach(fd);
	}
	close(fd);
	*created = !err;
	return err;
}

/* A start that fails leaves no hook it attached (adopted ones, moved to
 * the new programs, stay: they steered before and steer as before). */
static void detach_pinned(const char *dir, const char *name)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		bpf_link_detach(fd);
		close(fd);
	}
	unlink(path);
}

/* Detaches and unpins every socket hook under pin_path: how many. */
static int remove_hooks(const char *pin_path)
{
	char dir[512], path[sizeof(dir) + 256 + 2];
	struct dirent *de;
	int fd, n = 0;
	DIR *d;

	sock_dir_of(pin_path, dir, sizeof(dir));
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd >= 0) {
			if (!bpf_link_detach(fd))
				n++;
			close(fd);
		}
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
	return n;
}

static int attach_all(struct ks_sock_lb *s, const char *pin_path)
{
	struct bpf_program *prog, *created[16];
	int cg_fd, err = 0, n = 0, i;
	bool new_link = false;
	struct statfs sfs;
	struct stat st;
	char dir[512];

	cg_fd = open(s->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg_fd < 0 || fstat(cg_fd, &st) || fstatfs(cg_fd, &sfs)) {
		err = -errno;
		pr_warn("--cgroup %s: %s\n", s->cgroup, strerror(-err));
		if (cg_fd >= 0)
			close(cg_fd);
		return err;
	}
	if (sfs.f_type != KS_CGROUP2_MAGIC) {
		pr_warn("--cgroup %s: not a cgroup v2 directory (a cgroup2 mount, or one in it)\n",
			s->cgroup);
		close(cg_fd);
		return -EINVAL;
	}
	sock_dir_of(pin_path, dir, sizeof(dir));
	if (mkdir(dir, 0700) && errno != EEXIST) {
		err = -errno;
		pr_warn("pin path %s: %s\n", dir, strerror(-err));
		close(cg_fd);
		return err;
	}
	/* a cgroup v2 directory's inode number is its cgroup id */
	for (prog = bpf_object__next_program(s->skel->obj, NULL); prog;
	     prog = bpf_object__next_program(s->skel->obj, prog)) {
		if (bpf_program__type(prog) != BPF_PROG_TYPE_CGROUP_SOCK_ADDR)
			continue; /* the iterators: run by ks_sock_lb_reap */
		new_link = false;
		err = attach_one(prog, cg_fd, st.st_ino, dir, &new_link);
		if (err)
			break;
		if (new_link && n < (int)(sizeof(created) / sizeof(created[0])))
			created[n++] = prog;
	}
	for (i = 0; err && i < n; i++)
		detach_pinned(dir, bpf_program__name(created[i]));
	if (err)
		rmdir(dir); /* if empty: a first start that failed */
	close(cg_fd);
	return err;
}

int ks_sock_lb_open(struct ks_sock_lb **out, struct ks_dp *dp, const char *cgroup)
{
	struct ks_sock_lb *s;
	char path[512];
	uint64_t cookie;
	int err, n;

	*out = NULL;
	if (!cgroup) {
		n = dp->pin_path[0] ? remove_hooks(dp->pin_path) : 0;
		if (n > 0)
			pr_info("socket hooks: %d detached (started without --cgroup)\n", n);
		return n < 0 ? n : 0;
	}
	if (!dp->pin_path[0]) {
		pr_warn("--cgroup needs a pin path\n");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	snprintf(s->cgroup, sizeof(s->cgroup), "%s", cgroup);
	err = netns_cookie(&cookie);
	if (err) {
		pr_warn("socket programs: the network namespace's cookie: %s\n", strerror(-err));
		goto fail;
	}
	s->skel = kshift_sock_bpf__open();
	if (!s->skel) {
		err = -errno;
		pr_warn("opening the socket programs: %s\n", strerror(-err));
		goto fail;
	}
	/* new flows hash as the packet programs hash them */
	s->skel->rodata->ks_hash_seed = dp->skel->rodata->ks_hash_seed;
	s->skel->rodata->ks_node_netns = cookie;
	err = share_maps(s, dp);
	if (err)
		goto fail;
	err = kshift_sock_bpf__load(s->skel);
	if (err) {
		pr_warn("loading the socket programs: %s\n", strerror(-err));
		goto fail;
	}
	err = attach_all(s, dp->pin_path);
	if (err)
		goto fail;
	snprintf(path, sizeof(path), "%s/%s", dp->pin_path, KS_MAP_SOCK_REV);
	if (access(path, F_OK) && bpf_obj_pin(bpf_map__fd(s->skel->maps.ks_sock_rev), path))
		pr_warn("pinning %s: %s (getpeername and recvmsg will show endpoints to sockets "
			"steered before a restart)\n",
			path, strerror(errno));
	pr_info("socket hooks on cgroup %s: node-local clients steered\n", cgroup);
	*out = s;
	return 0;
fail:
	ks_sock_lb_close(s);
	return err;
}

void ks_sock_lb_close(struct ks_sock_lb *s)
{
	if (!s)
		return;
	kshift_sock_bpf__destroy(s->skel);
	free(s);
}

/* Empties ks_sock_live: when entries of old generations fill it. */
static void clear_live(int fd)
{
	struct ks_ep_key key;

	while (!bpf_map_get_next_key(fd, NULL, &key))
		if (bpf_map_delete_elem(fd, &key))
			return;
}

int ks_sock_lb_live_keys(const struct ks_shifts *t, struct ks_ep_key **out, size_t *nr)
{
	struct ks_ep_key *keys = NULL, *k;
	const struct ks_shift_state *st;
	const struct ks_endpoint_spec *es;
	size_t i, r, b, e, n = 0, cap = 0;

	for (i = 0; i < t->n; i++) {
		st = t->v[i];
		for (r = 0; r < st->nr_svcs; r++) {
			for (b = 0; b < st->spec.nr_backends; b++) {
				for (e = 0; e < st->spec.backends[b].nr_endpoints; e++) {
					es = &st->spec.backends[b].endpoints[e];
					if (es->ip.family != st->svcs[r].family)
						continue;
					if (n == cap) {
						cap = cap ? 2 * cap : 1024;
						k = realloc(keys, cap * sizeof(*keys));
						if (!k) {
							free(keys);
							return -ENOMEM;
						}
						keys = k;
					}
					keys[n++] = (struct ks_ep_key){
						.addr = es->ip.addr,
						.port = htons(es->port ?: st->svcs[r].port.port),
						.family = es->ip.family,
					};
				}
			}
		}
	}
	*out = keys;
	*nr = n;
	return 0;
}

/* ks_sock_live: the keys above, under a new generation. */
static int fill_live(struct ks_sock_lb *s, const struct ks_shifts *t)
{
	int fd = bpf_map__fd(s->skel->maps.ks_sock_live), err;
	struct ks_ep_key *keys = NULL;
	uint32_t *gens = NULL, gen, count;
	size_t i, n = 0;

	err = ks_sock_lb_live_keys(t, &keys, &n);
	if (err)
		return err;
	gen = ++s->live_gen ?: ++s->live_gen;
	gens = malloc((n ?: 1) * sizeof(*gens));
	if (!gens) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		gens[i] = gen;
	count = n;
	err = n ? bpf_map_update_batch(fd, keys, gens, &count, NULL) : 0;
	if (err == -E2BIG || err == -ENOSPC || err == -ENOMEM) {
		clear_live(fd);
		count = n;
		err = bpf_map_update_batch(fd, keys, gens, &count, NULL);
	}
	if (!err)
		s->skel->bss->ks_sock_live_gen = gen;
out:
	free(keys);
	free(gens);
	return err;
}

static int run_iter(struct bpf_program *prog)
{
	struct bpf_link *link = bpf_program__attach_iter(prog, NULL);
	char buf[64];
	int fd, err = 0;
	ssize_t n;

	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		err = -errno;
	} else {
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		if (n < 0)
			err = -errno;
		close(fd);
	}
	bpf_link__destroy(link);
	return err;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

int ks_sock_lb_reap(struct ks_sock_lb *s, const struct ks_shifts *t)
{
	uint64_t before, t0 = now_us(), t1;
	int err;

	if (!s)
		return 0;
	err = fill_live(s, t);
	if (err) {
		/* with endpoints missing from it, live sockets would go */
		pr_warn("socket hooks: listing the live endpoints: %s; no socket closed\n",
			strerror(-err));
		return err;
	}
	t1 = now_us();
	before = s->skel->bss->ks_sock_reaped;
	err = run_iter(s->skel->progs.ks_reap_tcp);
	if (!err)
		err = run_iter(s->skel->progs.ks_reap_udp);
	if (err) {
		pr_warn("socket hooks: walking the node's sockets: %s\n", strerror(-err));
		return err;
	}
	pr_debug("socket hooks: live endpoints listed in %llu us, sockets walked in %llu us\n",
		 (unsigned long long)(t1 - t0), (unsigned long long)(now_us() - t1));
	if (s->skel->bss->ks_sock_reaped != before)
		pr_info("socket hooks: closed %llu node-local socket(s) of removed endpoints\n",
			(unsigned long long)(s->skel->bss->ks_sock_reaped - before));
	return (int)(s->skel->bss->ks_sock_reaped - before);
}

void ks_sock_lb_changed(struct ks_sock_lb *s, const struct ks_shifts *t)
{
	uint64_t now;

	if (!s)
		return;
	if (t->gc.flushes.n > s->flushes)
		s->reap_pending = true;
	s->flushes = t->gc.flushes.n;
	if (!s->reap_pending)
		return;
	now = now_us() / 1000;
	if (now < s->reap_after_ms)
		return;
	s->reap_pending = false;
	s->reap_after_ms = now + KS_SOCK_REAP_GAP_MS;
	ks_sock_lb_reap(s, t);
}

int ks_sock_lb_uninstall(const char *pin_path)
{
	pid_t holder = 0;
	int lock, n;

	lock = ks_lock_dir(pin_path, &holder);
	if (lock == -ENOENT)
		return 0;
	if (lock < 0) {
		if (lock == -EBUSY && holder)
			pr_warn("kshiftd: --uninstall: pin path %s is in use by kshiftd pid %d\n",
				pin_path, holder);
		else
			pr_warn("kshiftd: --uninstall: locking %s: %s\n", pin_path,
				strerror(-lock));
		return lock;
	}
	n = remove_hooks(pin_path);
	ks_unlock(lock);
	if (n > 0)
		printf("kshiftd: uninstalled: detached %d socket hook(s)\n", n);
	return n;
}
