// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* --iface patterns and rtnetlink link events; see netlink.h. */
#include <errno.h>
#include <fnmatch.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include "netlink.h"

int ks_ifpats_parse(const char *arg, struct ks_ifpats *p)
{
	char *list, *name, *save, **nv;
	int err = 0;

	memset(p, 0, sizeof(*p));
	if (!arg)
		return 0;
	list = strdup(arg);
	if (!list)
		return -ENOMEM;
	for (name = strtok_r(list, ",", &save); name && !err; name = strtok_r(NULL, ",", &save)) {
		if (strlen(name) >= IF_NAMESIZE && !ks_ifpat_is_glob(name)) {
			err = -ENAMETOOLONG;
			break;
		}
		nv = realloc(p->v, (p->n + 1) * sizeof(*nv));
		if (!nv || !(nv[p->n] = strdup(name))) {
			if (nv)
				p->v = nv;
			err = -ENOMEM;
			break;
		}
		p->v = nv;
		p->n++;
	}
	free(list);
	if (!err && !p->n)
		err = -EINVAL;
	if (err)
		ks_ifpats_free(p);
	return err;
}

void ks_ifpats_free(struct ks_ifpats *p)
{
	ks_ifnames_free(p->v, p->n);
	memset(p, 0, sizeof(*p));
}

void ks_ifnames_free(char **names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

bool ks_ifpat_is_glob(const char *pat)
{
	return strpbrk(pat, "*?[") != NULL;
}

bool ks_ifpats_match(const struct ks_ifpats *p, const char *name)
{
	int i;

	if (!p->n)
		return strcmp(name, "lo") != 0;
	for (i = 0; i < p->n; i++)
		if (!fnmatch(p->v[i], name, 0))
			return true;
	return false;
}

bool ks_ifpats_named(const struct ks_ifpats *p, const char *name)
{
	int i;

	for (i = 0; i < p->n; i++)
		if (!ks_ifpat_is_glob(p->v[i]) && !strcmp(p->v[i], name))
			return true;
	return false;
}

int ks_ifpats_resolve(const struct ks_ifpats *p, bool strict, char ***names, int *n,
		      const char **missing)
{
	struct if_nameindex *all, *it;
	char **v = NULL, **nv;
	int i, nr = 0, err = 0;

	*names = NULL;
	*n = 0;
	*missing = NULL;
	all = if_nameindex();
	if (!all)
		return -errno;
	for (i = 0; i < p->n && strict; i++) {
		if (ks_ifpat_is_glob(p->v[i]))
			continue;
		for (it = all; it->if_index; it++)
			if (!strcmp(it->if_name, p->v[i]))
				break;
		if (!it->if_index) {
			*missing = p->v[i];
			err = -ENODEV;
			goto out;
		}
	}
	for (it = all; it->if_index; it++) {
		if (!ks_ifpats_match(p, it->if_name))
			continue;
		nv = realloc(v, (nr + 1) * sizeof(*v));
		if (!nv || !(nv[nr] = strdup(it->if_name))) {
			if (nv)
				v = nv;
			err = -ENOMEM;
			goto out;
		}
		v = nv;
		nr++;
	}
out:
	if_freenameindex(all);
	if (err) {
		ks_ifnames_free(v, nr);
		return err;
	}
	*names = v;
	*n = nr;
	return 0;
}

int ks_nl_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE), err;
	int rcvbuf = 1 << 20;

	if (fd < 0)
		return -errno;
	/* a burst of pods (or a rescan's worth) fits; an overrun is noticed
	 * (ENOBUFS) and answered with a rescan */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int parse_link(const struct nlmsghdr *nh, struct ks_nl_event *ev)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	const struct rtattr *rta;
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));

	if (len < 0)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	ev->kind = nh->nlmsg_type == RTM_NEWLINK ? KS_NL_NEWLINK : KS_NL_DELLINK;
	ev->ifindex = ifi->ifi_index;
	ev->up = ifi->ifi_flags & IFF_UP;
	for (rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		size_t n;

		if (rta->rta_type != IFLA_IFNAME)
			continue;
		n = RTA_PAYLOAD(rta);
		n = strnlen(RTA_DATA(rta), n);
		if (n >= IF_NAMESIZE)
			return -EINVAL;
		memcpy(ev->name, RTA_DATA(rta), n);
		ev->name[n] = '\0';
	}
	return ev->ifindex > 0 ? 0 : -EINVAL;
}

int ks_nl_parse(const void *buf, size_t len, ks_nl_cb cb, void *arg)
{
	const struct nlmsghdr *nh;
	struct ks_nl_event ev;
	int left = len > INT32_MAX ? INT32_MAX : (int)len, count = 0;

	for (nh = buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
		if (nh->nlmsg_type == NLMSG_DONE)
			return count;
		if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK)
			continue;
		if (parse_link(nh, &ev))
			return -EINVAL;
		cb(&ev, arg);
		count++;
	}
	/* what is left is a truncated message */
	return left > 0 ? -EINVAL : count;
}

int ks_nl_read(int fd, ks_nl_cb cb, void *arg)
{
	char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	int total = 0, n;
	ssize_t got;

	for (;;) {
		got = recv(fd, buf, sizeof(buf), 0);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return total;
			return -errno;
		}
		if (!got)
			return total;
		n = ks_nl_parse(buf, got, cb, arg);
		if (n > 0)
			total += n;
	}
}
