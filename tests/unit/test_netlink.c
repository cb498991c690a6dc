// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Interfaces that come and go (user/lib/netlink.c): rtnetlink link messages
 * built here byte by byte, as the kernel sends them, fed to the parser; the
 * --iface glob matching; and the /proc/locks reading of user/lib/lock.c.
 * No root, no socket.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <sys/sysmacros.h>
#include <cmocka.h>

#include "lib/lock.h"
#include "lib/netlink.h"

/* A datagram of netlink messages under construction. */
struct nlbuf {
	char data[4096] __attribute__((aligned(NLMSG_ALIGNTO)));
	size_t len;
	size_t last; /* where its last message starts */
};

/* Appends a message of type with a zeroed body of len bytes (its header:
 * ifinfomsg, tcmsg, ...); returns the body. */
static void *add_msg(struct nlbuf *b, uint16_t type, size_t len)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)(b->data + b->len);

	memset(nh, 0, NLMSG_SPACE(len));
	b->last = b->len;
	nh->nlmsg_type = type;
	nh->nlmsg_len = NLMSG_LENGTH(len);
	b->len += NLMSG_ALIGN(nh->nlmsg_len);
	return NLMSG_DATA(nh);
}

/* Appends one attribute to the last message; returns it, for a nested
 * one's attributes to follow (nest_end then covers them). */
static struct rtattr *add_attr(struct nlbuf *b, uint16_t type, const void *data, size_t len)
{
	struct nlmsghdr *nh = (struct nlmsghdr *)(b->data + b->last);
	struct rtattr *rta = (struct rtattr *)((char *)nh + NLMSG_ALIGN(nh->nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(rta), data, len);
	nh->nlmsg_len = NLMSG_ALIGN(nh->nlmsg_len) + RTA_ALIGN(rta->rta_len);
	b->len = b->last + NLMSG_ALIGN(nh->nlmsg_len);
	return rta;
}

static void nest_end(struct nlbuf *b, struct rtattr *nest)
{
	nest->rta_len = (uint16_t)(b->data + b->len - (char *)nest);
}

static void add_str(struct nlbuf *b, uint16_t type, const char *str)
{
	add_attr(b, type, str, strlen(str) + 1);
}

/* Appends one link message; name NULL: no IFLA_IFNAME attribute. Also
 * adds an IFLA_MTU before the name, as the kernel does, so the parser must
 * walk attributes. */
static void add_link(struct nlbuf *b, uint16_t type, int ifindex, const char *name, unsigned flags)
{
	struct ifinfomsg *ifi = add_msg(b, type, sizeof(*ifi));
	uint32_t mtu = 1500;

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = flags;
	add_attr(b, IFLA_MTU, &mtu, sizeof(mtu));
	if (name)
		add_str(b, IFLA_IFNAME, name);
}

/* A link as the kernel describes it: its kind (IFLA_LINKINFO), whether
 * its peer is in another namespace, its root qdisc. */
static void add_pair(struct nlbuf *b, int ifindex, const char *kind, bool away, const char *qdisc)
{
	int32_t nsid = 0;
	struct rtattr *info;

	add_link(b, RTM_NEWLINK, ifindex, "ep0", IFF_UP);
	add_str(b, IFLA_QDISC, qdisc);
	info = add_attr(b, IFLA_LINKINFO, NULL, 0);
	add_str(b, IFLA_INFO_KIND, kind);
	nest_end(b, info);
	if (away)
		add_attr(b, IFLA_LINK_NETNSID, &nsid, sizeof(nsid));
}

static void add_other(struct nlbuf *b, uint16_t type)
{
	add_msg(b, type, 16);
}

static void add_qdisc(struct nlbuf *b, uint16_t type, int ifindex, const char *kind)
{
	struct tcmsg *tcm = add_msg(b, type, sizeof(*tcm));

	tcm->tcm_ifindex = ifindex;
	tcm->tcm_parent = TC_H_CLSACT;
	add_str(b, TCA_KIND, kind);
}

struct seen {
	struct ks_nl_event ev[8];
	int n;
};

static void record(const struct ks_nl_event *ev, void *arg)
{
	struct seen *s = arg;

	if (s->n < 8)
		s->ev[s->n++] = *ev;
}

/* A message of type whose body is too short for its header: refused, and
 * nothing reported. */
static void expect_too_short(uint16_t type)
{
	struct nlbuf b = {};
	struct seen s = {};

	add_msg(&b, type, 4);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), -EINVAL);
	assert_int_equal(s.n, 0);
}

static void test_new_and_del(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	add_link(&b, RTM_NEWLINK, 7, "veth1a2b", IFF_UP);
	add_link(&b, RTM_NEWLINK, 8, "cli1", 0);
	add_link(&b, RTM_DELLINK, 7, "veth1a2b", 0);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.ev[0].kind, KS_NL_NEWLINK);
	assert_int_equal(s.ev[0].ifindex, 7);
	assert_string_equal(s.ev[0].name, "veth1a2b");
	assert_true(s.ev[0].up);
	assert_int_equal(s.ev[1].ifindex, 8);
	assert_string_equal(s.ev[1].name, "cli1");
	assert_false(s.ev[1].up);
	assert_int_equal(s.ev[2].kind, KS_NL_DELLINK);
	assert_int_equal(s.ev[2].ifindex, 7);
}

static void test_other_messages_skipped(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	add_other(&b, RTM_NEWADDR);
	add_link(&b, RTM_NEWLINK, 3, "eth0", IFF_UP);
	add_other(&b, RTM_NEWROUTE);
	add_other(&b, NLMSG_DONE);
	/* after DONE, nothing more is read */
	add_link(&b, RTM_NEWLINK, 4, "eth1", IFF_UP);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), 1);
	assert_string_equal(s.ev[0].name, "eth0");
}

static void test_no_name(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	add_link(&b, RTM_DELLINK, 9, NULL, 0);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), 1);
	assert_int_equal(s.ev[0].ifindex, 9);
	assert_string_equal(s.ev[0].name, "");
}

static void test_malformed(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	/* truncated: the datagram ends inside the second message */
	add_link(&b, RTM_NEWLINK, 5, "ep0", IFF_UP);
	add_link(&b, RTM_NEWLINK, 6, "ep1", IFF_UP);
	assert_int_equal(ks_nl_parse(b.data, b.len - 8, record, &s), -EINVAL);
	assert_int_equal(s.n, 1); /* the first one still counted */

	/* a link message too short for its ifinfomsg */
	expect_too_short(RTM_NEWLINK);

	/* a name that does not fit IFNAMSIZ */
	memset(&b, 0, sizeof(b));
	add_link(&b, RTM_NEWLINK, 5, "averyveryverylongname", IFF_UP);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), -EINVAL);

	/* ifindex 0 is no interface */
	memset(&b, 0, sizeof(b));
	add_link(&b, RTM_NEWLINK, 0, "x", IFF_UP);
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), -EINVAL);
}

/* What decides whether TC hands packets to an interface's peer: a veth or
 * netkit, its peer in another namespace, noqueue, and no clsact. */
static void test_peer_facts(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	add_pair(&b, 11, "veth", true, "noqueue");
	add_pair(&b, 12, "netkit", true, "noqueue");
	add_pair(&b, 13, "veth", false, "noqueue");	 /* both ends here */
	add_pair(&b, 14, "veth", true, "tbf");		 /* shaped */
	add_pair(&b, 15, "bridge", false, "noqueue"); /* no pair */
	add_pair(&b, 16, "vethx", true, "noqueue2");
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), 6);
	assert_true(s.ev[0].pair && s.ev[0].peer_away && s.ev[0].noqueue);
	assert_string_equal(s.ev[0].name, "ep0");
	assert_true(s.ev[1].pair && s.ev[1].peer_away && s.ev[1].noqueue);
	assert_true(s.ev[2].pair && s.ev[2].noqueue);
	assert_false(s.ev[2].peer_away);
	assert_true(s.ev[3].pair && s.ev[3].peer_away);
	assert_false(s.ev[3].noqueue);
	assert_false(s.ev[4].pair);
	assert_false(s.ev[5].pair || s.ev[5].noqueue);
}

static void test_qdisc_events(void **state)
{
	struct nlbuf b = {};
	struct seen s = {};

	(void)state;
	add_qdisc(&b, RTM_NEWQDISC, 21, "clsact");
	add_qdisc(&b, RTM_NEWQDISC, 22, "tbf");
	add_qdisc(&b, RTM_DELQDISC, 21, "clsact");
	assert_int_equal(ks_nl_parse(b.data, b.len, record, &s), 3);
	assert_int_equal(s.ev[0].kind, KS_NL_QDISC);
	assert_int_equal(s.ev[0].ifindex, 21);
	assert_true(s.ev[0].clsact);
	assert_int_equal(s.ev[1].ifindex, 22);
	assert_false(s.ev[1].clsact);
	assert_int_equal(s.ev[2].kind, KS_NL_QDISC);

	/* too short for its tcmsg */
	expect_too_short(RTM_NEWQDISC);
}

static void test_patterns(void **state)
{
	struct ks_ifpats p;

	(void)state;
	assert_int_equal(ks_ifpats_parse("eth0,veth*,cali*,lxc*", &p), 0);
	assert_int_equal(p.n, 4);
	assert_true(ks_ifpats_match(&p, "eth0"));
	assert_false(ks_ifpats_match(&p, "eth01"));
	assert_false(ks_ifpats_match(&p, "eth1"));
	assert_true(ks_ifpats_match(&p, "veth"));
	assert_true(ks_ifpats_match(&p, "veth9f3a"));
	assert_true(ks_ifpats_match(&p, "cali12ab34cd56e"));
	assert_true(ks_ifpats_match(&p, "lxc_health"));
	assert_false(ks_ifpats_match(&p, "lo"));
	assert_false(ks_ifpats_match(&p, "docker0"));
	assert_false(ks_ifpats_match(&p, "xveth1"));
	assert_true(ks_ifpats_named(&p, "eth0"));
	assert_false(ks_ifpats_named(&p, "veth9f3a"));
	ks_ifpats_free(&p);

	assert_int_equal(ks_ifpats_parse("cli[0-3],ep?", &p), 0);
	assert_true(ks_ifpats_match(&p, "cli2"));
	assert_false(ks_ifpats_match(&p, "cli4"));
	assert_true(ks_ifpats_match(&p, "ep7"));
	assert_false(ks_ifpats_match(&p, "ep10"));
	ks_ifpats_free(&p);

	/* none given: every interface but loopback */
	assert_int_equal(ks_ifpats_parse(NULL, &p), 0);
	assert_true(ks_ifpats_match(&p, "eth0"));
	assert_true(ks_ifpats_match(&p, "veth1"));
	assert_false(ks_ifpats_match(&p, "lo"));
	ks_ifpats_free(&p);

	assert_true(ks_ifpat_is_glob("veth*"));
	assert_true(ks_ifpat_is_glob("ep?"));
	assert_true(ks_ifpat_is_glob("cli[01]"));
	assert_false(ks_ifpat_is_glob("eth0"));

	/* nothing, or a name no interface can have */
	assert_int_equal(ks_ifpats_parse(",", &p), -EINVAL);
	assert_int_equal(ks_ifpats_parse("averyveryverylongname", &p), -ENAMETOOLONG);
}

/* A name without glob characters must exist when resolved strictly;
 * patterns may match nothing. "lo" exists in every namespace. */
static void test_resolve(void **state)
{
	struct ks_ifpats p;
	const char *missing;
	char **names;
	int n;

	(void)state;
	assert_int_equal(ks_ifpats_parse("lo,nosuch0", &p), 0);
	assert_int_equal(ks_ifpats_resolve(&p, true, &names, &n, &missing), -ENODEV);
	assert_non_null(missing);
	assert_string_equal(missing, "nosuch0");
	assert_int_equal(ks_ifpats_resolve(&p, false, &names, &n, &missing), 0);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "lo");
	ks_ifnames_free(names, n);
	ks_ifpats_free(&p);

	assert_int_equal(ks_ifpats_parse("nosuch*,lo", &p), 0);
	assert_int_equal(ks_ifpats_resolve(&p, true, &names, &n, &missing), 0);
	assert_int_equal(n, 1);
	ks_ifnames_free(names, n);
	ks_ifpats_free(&p);
}

static void test_lock_holder(void **state)
{
	const char *locks = "1: POSIX  ADVISORY  WRITE 77 00:27:18699 0 EOF\n"
			    "2: FLOCK  ADVISORY  WRITE 4242 00:27:18699 0 EOF\n"
			    "2: -> FLOCK  ADVISORY  WRITE 5151 00:27:18699 0 EOF\n"
			    "3: FLOCK  ADVISORY  WRITE 999 fd:01:18699 0 EOF\n";

	(void)state;
	assert_int_equal(ks_lock_parse_holder(locks, makedev(0, 0x27), 18699), 4242);
	assert_int_equal(ks_lock_parse_holder(locks, makedev(0xfd, 1), 18699), 999);
	assert_int_equal(ks_lock_parse_holder(locks, makedev(0, 0x27), 18698), 0);
	assert_int_equal(ks_lock_parse_holder("", makedev(0, 0x27), 18699), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_and_del), cmocka_unit_test(test_other_messages_skipped),
		cmocka_unit_test(test_no_name),	    cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_peer_facts),  cmocka_unit_test(test_qdisc_events),
		cmocka_unit_test(test_patterns),    cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_lock_holder),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
