/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Interfaces that come and go: which ones kshiftd serves (--iface names and
 * glob patterns) and the rtnetlink link events that say one appeared,
 * changed or vanished. The socket is non-blocking, one more fd for the
 * daemon's event loop; the parser takes a buffer, so tests feed it canned
 * messages.
 */
#ifndef KSHIFT_NETLINK_H
#define KSHIFT_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <net/if.h>

/* --iface: names and fnmatch(3) patterns; none means every interface but
 * loopback. */
struct ks_ifpats {
	char **v;
	int n;
};

/* Splits a comma-separated --iface argument (NULL: every interface). */
int ks_ifpats_parse(const char *arg, struct ks_ifpats *p);
void ks_ifpats_free(struct ks_ifpats *p);
bool ks_ifpat_is_glob(const char *pat);
bool ks_ifpats_match(const struct ks_ifpats *p, const char *name);
/* Whether name is in the list as itself, not through a pattern. */
bool ks_ifpats_named(const struct ks_ifpats *p, const char *name);
/*
 * The interfaces that exist now and match, in ifindex order. strict: a
 * name without glob characters must exist, else -ENODEV and *missing
 * points at it. Patterns may match nothing.
 */
int ks_ifpats_resolve(const struct ks_ifpats *p, bool strict, char ***names, int *n,
		      const char **missing);
void ks_ifnames_free(char **names, int n);

enum ks_nl_kind {
	KS_NL_NEWLINK, /* appeared, or changed (name, up/down) */
	KS_NL_DELLINK, /* gone (deleted, or moved to another namespace) */
	KS_NL_QDISC,   /* a queueing discipline added to it, changed or removed */
};

struct ks_nl_event {
	enum ks_nl_kind kind;
	int ifindex;
	char name[IF_NAMESIZE]; /* empty when the message carried none */
	bool up;
	/* links: what handing packets to the peer takes (ks_nl_to_peer) */
	bool pair;	/* a veth or netkit */
	bool peer_away; /* its peer in another namespace (IFLA_LINK_NETNSID) */
	bool noqueue;	/* its root qdisc is noqueue */
	/* qdiscs */
	bool clsact; /* a clsact qdisc: filters, maybe on egress */
};

typedef void (*ks_nl_cb)(const struct ks_nl_event *ev, void *arg);

/* A NETLINK_ROUTE socket subscribed to link and qdisc events: fd or
 * -errno. */
int ks_nl_open(void);
/* Reports every link and qdisc event in buf (one datagram of netlink
 * messages); the number reported, or -EINVAL for a malformed message (the
 * events before it are reported). Other message types are skipped. */
int ks_nl_parse(const void *buf, size_t len, ks_nl_cb cb, void *arg);
/* Reads and reports what is pending on fd: the number of events, or
 * -ENOBUFS when the kernel dropped events (the caller rescans). */
int ks_nl_read(int fd, ks_nl_cb cb, void *arg);

/*
 * For each of ifindex[0..n): whether a TC ingress program may hand the
 * packets it forwards out of that interface straight to its peer
 * (bpf_redirect_peer), skipping the interface's own transmit: ok[i] true
 * for a veth or netkit whose other end is in another namespace (a pod's),
 * with noqueue as its root qdisc and no clsact (no shaping, no filter that
 * the shortcut would pass by). Programs on its tcx egress the caller
 * checks. One dump of the links and one of the qdiscs, whatever n: 0, or
 * -errno (ok[] all false).
 */
int ks_nl_to_peer(const int *ifindex, size_t n, bool *ok);

#endif /* KSHIFT_NETLINK_H */
