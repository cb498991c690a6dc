// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The egress program of XDP mode (bpf/lib/hairpin.h, bpf/lib/egress.h):
 * where XDP passes steered packets up the stack, it rewrites destinations
 * only, and a tcx egress program on the same interface rewrites sources.
 * Every interface with an XDP link of ours gets one, pinned beside it as
 * <pin>/links/<ifname>:egress (no interface name holds a ':'), so that it
 * outlives kshiftd like the XDP link does, is moved to a new load's program
 * with bpf_link_update (never a gap), and goes with --uninstall. The state
 * is the pins: ks_dp_egress_sync() makes them match dp->links after every
 * change of the links.
 */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h>
#include "kshift.skel.h"
#include "dataplane.h"
#include "log.h"

#define KS_EGRESS_SUFFIX  ":egress"

static void egress_pin_of(const struct ks_dp *dp, const char *ifname, char *buf, size_t len)
{
	snprintf(buf, len, "%s/links/%s" KS_EGRESS_SUFFIX, dp->pin_path, ifname);
}

/* The ifindex and program of a pinned link, or -errno. */
static int egress_target(int fd, int *ifindex, uint32_t *prog_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	*ifindex = info.xdp.ifindex; /* tcx's ifindex sits where xdp's does */
	*prog_id = info.prog_id;
	return 0;
}

static bool wants_egress(const struct ks_dp *dp, int ifindex)
{
	int i;

	if (!dp->skel->rodata->ks_xdp_split)
		return false;
	for (i = 0; i < dp->nr_links; i++)
		if (dp->links[i].ifindex == ifindex && dp->links[i].mode != KS_MODE_TC)
			return true;
	return false;
}

/* One XDP link's egress program: there, running this load's program. */
static int egress_ensure(struct ks_dp *dp, const struct ks_dp_link *l, int prog_fd,
			 uint32_t prog_id)
{
	char path[sizeof(dp->pin_path) + 32 + IF_NAMESIZE];
	uint32_t have = 0;
	int fd, ifindex = 0, err;

	egress_pin_of(dp, l->ifname, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		if (!egress_target(fd, &ifindex, &have) && ifindex == l->ifindex) {
			err = have == prog_id || !bpf_link_update(fd, prog_fd, NULL) ? 0 : -errno;
			close(fd);
			if (err)
				pr_warn("%s: updating its egress link: %s\n", l->ifname,
					strerror(-err));
			return err;
		}
		/* a pin of an interface gone whose name came back */
		bpf_link_detach(fd);
		close(fd);
		unlink(path);
	}
	fd = bpf_link_create(prog_fd, l->ifindex, KS_BPF_TCX_EGRESS, NULL);
	if (fd < 0) {
		pr_warn("%s: attaching the egress program (tcx egress): %s\n", l->ifname,
			strerror(-fd));
		return fd;
	}
	if (bpf_obj_pin(fd, path)) {
		err = -errno;
		pr_warn("pinning %s: %s\n", path, strerror(-err));
		bpf_link_detach(fd);
		close(fd);
		return err;
	}
	close(fd);
	pr_info("attached the egress program to %s (tcx egress)\n", l->ifname);
	return 0;
}

int ks_dp_egress_sync(struct ks_dp *dp)
{
	char dir[sizeof(dp->pin_path) + 16], path[sizeof(dir) + 256 + 2];
	int prog_fd = bpf_program__fd(dp->skel->progs.ks_egress_tc), i, fd, ifindex = 0, err = 0;
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	struct dirent *de;
	uint32_t prog_id;
	size_t n;
	DIR *d;

	/* without pins nothing would outlive this call */
	if (!dp->pin_path[0] || prog_fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno;
	for (i = 0; i < dp->nr_links; i++)
		if (wants_egress(dp, dp->links[i].ifindex))
			err = err ?: egress_ensure(dp, &dp->links[i], prog_fd, info.id);

	/* the egress links of interfaces without an XDP link of ours go */
	snprintf(dir, sizeof(dir), "%s/links", dp->pin_path);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		n = strlen(de->d_name);
		if (n <= strlen(KS_EGRESS_SUFFIX) ||
		    strcmp(de->d_name + n - strlen(KS_EGRESS_SUFFIX), KS_EGRESS_SUFFIX))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		fd = bpf_obj_get(path);
		if (fd >= 0 && !egress_target(fd, &ifindex, &prog_id) && ifindex &&
		    wants_egress(dp, ifindex)) {
			close(fd);
			continue;
		}
		if (fd >= 0) {
			bpf_link_detach(fd);
			close(fd);
		}
		unlink(path);
		pr_info("detached the egress program: %.*s\n", (int)(n - strlen(KS_EGRESS_SUFFIX)),
			de->d_name);
	}
	if (d)
		closedir(d);
	return err;
}

int ks_dp_hairpin_set(struct ks_dp *dp, const struct ks_dp_opts *opts)
{
	dp->skel->rodata->ks_xdp_split = opts->xdp_split;
	if (opts->hairpin_addr &&
	    inet_pton(AF_INET, opts->hairpin_addr, (void *)dp->skel->rodata->ks_hairpin_v4) != 1) {
		pr_warn("hairpin address %s: not an IPv4 address\n", opts->hairpin_addr);
		return -EINVAL;
	}
	if (opts->hairpin_addr6 && inet_pton(AF_INET6, opts->hairpin_addr6,
					     (void *)dp->skel->rodata->ks_hairpin_v6) != 1) {
		pr_warn("hairpin address %s: not an IPv6 address\n", opts->hairpin_addr6);
		return -EINVAL;
	}
	return 0;
}
