// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Passive health for `kshiftctl get`: see health.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <kshift/abi.h> /* before the skeleton, whose rodata uses its types */
#include "kshift.skel.h"
#include "conntrack.h"
#include "health.h"
#include "index.h"
#include "observe.h"

const char *ks_health_state_name(enum ks_health_state s)
{
	switch (s) {
	case KS_HEALTH_QUARANTINED:
		return "quarantined";
	case KS_HEALTH_TRIAL:
		return "trial";
	default:
		return "in service";
	}
}

enum ks_health_state ks_health_state_of(const struct ks_ep_health *h, uint64_t now_ns)
{
	if (!h->quarantined_ns)
		return KS_HEALTH_IN_SERVICE;
	if (now_ns - h->quarantined_ns < KS_HEALTH_QUARANTINE_NS)
		return KS_HEALTH_QUARANTINED;
	return KS_HEALTH_TRIAL;
}

int ks_health_get(struct ks_dp *dp, const struct ks_endpoint *ep, struct ks_ep_health *h)
{
	struct ks_ep_key key = { .addr = ep->addr, .port = ep->port, .family = ep->family };

	memset(h, 0, sizeof(*h));
	if (!dp->skel)
		return -ENODEV;
	if (bpf_map_lookup_elem(bpf_map__fd(dp->skel->maps.ks_health), &key, h))
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

int ks_health_foreach(struct ks_dp *dp, ks_health_fn *fn, void *arg)
{
	struct ks_ep_key key, next;
	struct ks_ep_health h;
	__u32 n, max;
	int fd, err;

	if (!dp->skel)
		return -ENODEV;
	fd = bpf_map__fd(dp->skel->maps.ks_health);
	max = bpf_map__max_entries(dp->skel->maps.ks_health);
	/* a key evicted under the walk (LRU) restarts it: bounded all the same */
	for (n = 0; n < max; n++) {
		err = bpf_map_get_next_key(fd, n ? &key : NULL, &next);
		if (err)
			return err == -ENOENT ? 0 : err;
		key = next;
		if (bpf_map_lookup_elem(fd, &key, &h))
			continue;
		err = fn(&key, &h, arg);
		if (err)
			return err;
	}
	return 0;
}

/* One endpoint, by its address and the port flows reach it on. */
static struct json_object *ep_json(struct ks_dp *dp, const struct ks_shift_state *st,
				   const struct ks_endpoint *ep, const char *draining, bool open,
				   uint64_t now)
{
	struct json_object *o = json_object_new_object();
	char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 8];
	enum ks_health_state state;
	struct ks_ep_health h;

	inet_ntop(ep->family == KS_FAMILY_V4 ? AF_INET : AF_INET6, &ep->addr, ip, sizeof(ip));
	snprintf(addr, sizeof(addr), ep->family == KS_FAMILY_V4 ? "%s:%u" : "[%s]:%u", ip,
		 ntohs(ep->port));
	ks_health_get(dp, ep, &h);
	state = ks_health_state_of(&h, now);
	json_object_object_add(o, "address", json_object_new_string(addr));
	if (draining)
		json_object_object_add(o, "draining", json_object_new_boolean(1));
	json_object_object_add(o, "health", json_object_new_string(ks_health_state_name(state)));
	json_object_object_add(o, "quarantined",
			       json_object_new_boolean(state != KS_HEALTH_IN_SERVICE));
	if (state != KS_HEALTH_IN_SERVICE)
		json_object_object_add(
			o, "quarantinedForMs",
			json_object_new_int64((int64_t)((now - h.quarantined_ns) / 1000000)));
	json_object_object_add(o, "quarantines", json_object_new_int64(h.quarantines));
	json_object_object_add(o, "refused", json_object_new_int64(h.refused));
	json_object_object_add(o, "unanswered", json_object_new_int64(h.unanswered));
	json_object_object_add(o, "recovered", json_object_new_int64(h.recovered));
	if (open)
		json_object_object_add(o, "connections",
				       json_object_new_int64(ks_observe_ep_open(dp, st, ep)));
	return o;
}

struct json_object *ks_health_backend_json(struct ks_dp *dp, const struct ks_shift_state *st,
					   size_t b, bool open)
{
	const struct ks_backend_spec *bs = &st->spec.backends[b];
	struct json_object *arr = json_object_new_array();
	struct ks_index seen = {};
	uint64_t now = ks_ct_now();
	uint8_t key[19];
	size_t i, j;

	for (i = 0; i < bs->nr_endpoints; i++) {
		const struct ks_endpoint_spec *es = &bs->endpoints[i];

		for (j = 0; j < st->nr_svcs; j++) {
			const struct ks_svc_ref *ref = &st->svcs[j];
			struct ks_endpoint ep = {
				.addr = es->ip.addr,
				.family = es->ip.family,
				.port = htons(es->port ? es->port : ref->port.port),
			};

			if (ref->family != es->ip.family)
				continue;
			/* once per address and port, whichever frontend ports it serves */
			memcpy(key, &ep.addr, 16);
			memcpy(key + 16, &ep.port, 2);
			key[18] = ep.family;
			if (ks_index_get(&seen, key, sizeof(key)) ||
			    ks_index_put(&seen, key, sizeof(key), (void *)1))
				continue;
			json_object_array_add(arr, ep_json(dp, st, &ep,
							   es->state == KS_EP_READY ? NULL : "yes",
							   open, now));
		}
	}
	ks_index_destroy(&seen);
	return arr;
}
