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
#include <sys/time.h>
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
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK | RTMGRP_TC };
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

/* Whether attribute rta holds the string str. */
static bool rta_is(const struct rtattr *rta, const char *str)
{
	size_t n = strlen(str) + 1;

	return RTA_PAYLOAD(rta) >= n && !memcmp(RTA_DATA(rta), str, n);
}

static int parse_link(const struct nlmsghdr *nh, struct ks_nl_event *ev)
{
	const struct ifinfomsg *ifi = NLMSG_DATA(nh);
	const struct rtattr *rta, *info;
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)), ilen;
	size_t n;

	if (len < 0)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	ev->kind = nh->nlmsg_type == RTM_NEWLINK ? KS_NL_NEWLINK : KS_NL_DELLINK;
	ev->ifindex = ifi->ifi_index;
	ev->up = ifi->ifi_flags & IFF_UP;
	for (rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
		switch (rta->rta_type) {
		case IFLA_IFNAME:
			n = strnlen(RTA_DATA(rta), RTA_PAYLOAD(rta));
			if (n >= IF_NAMESIZE)
				return -EINVAL;
			memcpy(ev->name, RTA_DATA(rta), n);
			ev->name[n] = '\0';
			break;
		case IFLA_LINK_NETNSID:
			ev->peer_away = true;
			break;
		case IFLA_QDISC:
			ev->noqueue = rta_is(rta, "noqueue");
			break;
		case IFLA_LINKINFO:
			ilen = RTA_PAYLOAD(rta);
			for (info = RTA_DATA(rta); RTA_OK(info, ilen); info = RTA_NEXT(info, ilen))
				if (info->rta_type == IFLA_INFO_KIND)
					ev->pair = rta_is(info, "veth") || rta_is(info, "netkit");
			break;
		}
	}
	return ev->ifindex > 0 ? 0 : -EINVAL;
}

static int parse_qdisc(const struct nlmsghdr *nh, struct ks_nl_event *ev)
{
	const struct tcmsg *tcm = NLMSG_DATA(nh);
	const struct rtattr *rta;
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*tcm));

	if (len < 0)
		return -EINVAL;
	memset(ev, 0, sizeof(*ev));
	ev->kind = KS_NL_QDISC;
	ev->ifindex = tcm->tcm_ifindex;
	for (rta = TCA_RTA(tcm); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
		if (rta->rta_type == TCA_KIND)
			ev->clsact = rta_is(rta, "clsact");
	return ev->ifindex > 0 ? 0 : -EINVAL;
}

int ks_nl_parse(const void *buf, size_t len, ks_nl_cb cb, void *arg)
{
	const struct nlmsghdr *nh;
	struct ks_nl_event ev;
	int left = len > INT32_MAX ? INT32_MAX : (int)len, count = 0, err;

	for (nh = buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
		switch (nh->nlmsg_type) {
		case NLMSG_DONE:
			return count;
		case RTM_NEWLINK:
		case RTM_DELLINK:
			err = parse_link(nh, &ev);
			break;
		case RTM_NEWQDISC:
		case RTM_DELQDISC:
			err = parse_qdisc(nh, &ev);
			break;
		default:
			continue;
		}
		if (err)
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

/* What ks_nl_to_peer() learns from the dumps, per interface asked. */
struct to_peer {
	const int *ifindex;
	size_t n;
	bool *link_ok, *clsact;
};

static void to_peer_note(const struct ks_nl_event *ev, void *arg)
{
	struct to_peer *t = arg;
	size_t i;

	for (i = 0; i < t->n; i++) {
		if (t->ifindex[i] != ev->ifindex)
			continue;
		if (ev->kind == KS_NL_NEWLINK)
			t->link_ok[i] = ev->pair && ev->peer_away && ev->noqueue;
		else if (ev->kind == KS_NL_QDISC)
			t->clsact[i] |= ev->clsact;
	}
}

/* Dumps what type lists (links, qdiscs) on fd, every message to
 * to_peer_note(): 0 or -errno. A dump, not a get: it answers the asker
 * alone, where a get of a qdisc is told to every listener of qdisc events
 * (the daemon's own socket too) and not to the asker. */
static int dump(int fd, uint16_t type, const void *body, size_t len, struct to_peer *t)
{
	struct {
		struct nlmsghdr nh;
		char body[64] __attribute__((aligned(NLMSG_ALIGNTO)));
	} req = { .nh = { .nlmsg_len = NLMSG_LENGTH(len),
			  .nlmsg_type = type,
			  .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			  .nlmsg_seq = 1 } };
	char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
	const struct nlmsghdr *nh;
	ssize_t got;
	int left;

	memcpy(req.body, body, len);
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0)
		return -errno;
	for (;;) {
		got = recv(fd, buf, sizeof(buf), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		left = (int)got;
		for (nh = (void *)buf; NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
			if (nh->nlmsg_type == NLMSG_ERROR)
				return ((const struct nlmsgerr *)NLMSG_DATA(nh))->error;
			if (nh->nlmsg_type == NLMSG_DONE)
				return 0;
			if (ks_nl_parse(nh, nh->nlmsg_len, to_peer_note, t) < 0)
				return -EINVAL;
		}
	}
}

int ks_nl_to_peer(const int *ifindex, size_t n, bool *ok)
{
	struct ifinfomsg ifi = { .ifi_family = AF_UNSPEC };
	struct tcmsg tcm = { .tcm_family = AF_UNSPEC };
	struct timeval tv = { .tv_sec = 1 };
	struct to_peer t = { .ifindex = ifindex, .n = n };
	size_t i;
	int fd, err = -ENOMEM;

	t.link_ok = calloc(2 * n + 1, sizeof(bool));
	if (!t.link_ok)
		return err;
	t.clsact = t.link_ok + n;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	err = dump(fd, RTM_GETLINK, &ifi, sizeof(ifi), &t);
	if (!err)
		err = dump(fd, RTM_GETQDISC, &tcm, sizeof(tcm), &t);
	close(fd);
	for (i = 0; i < n; i++)
		ok[i] = !err && t.link_ok[i] && !t.clsact[i];
out:
	free(t.link_ok);
	return err;
}
