// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * kshiftd: loads the kshift dataplane, attaches it to interfaces, keeps its
 * maps in step with TrafficShift manifests (a config directory, reloaded on
 * change, and kshiftctl over the control socket). Stopping it leaves the
 * dataplane serving, pinned; the next kshiftd adopts it, and only
 * --uninstall removes it.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <kshift/abi.h>
#include "lib/ctl.h"
#include "lib/config.h"
#include "lib/ctl_server.h"
#include "lib/dataplane.h"
#include "lib/kube_source.h"
#include "lib/log.h"
#include "lib/netlink.h"
#include "lib/metrics.h"
#include "lib/shadow.h"
#include "lib/shifts.h"
#include "lib/sock_lb.h"
#include "lib/state.h"

#define KS_DEFAULT_PIN_PATH "/sys/fs/bpf/kshift"
/* Editors write a file in several steps; wait for them to settle. */
#define KS_RELOAD_DELAY_MS  200
/* The collector's pace: a step of KS_CT_GC_BUDGET entries (about a
 * millisecond) every 100 ms sweeps a million entries in under a minute,
 * well within the shortest timeout that matters (10 s after a FIN). */
#define KS_GC_PERIOD_MS	    100
/* ... and a pass begins at most this often, unless the table is nearly
 * full or flushes wait: a sparse table's pass is a few steps (a batched
 * lookup walks empty buckets to fill its batch), and an empty one's is one
 * step that walks them all, which every 100 ms cost an idle kshiftd about 4%
 * of a CPU with the default million flows. */
#define KS_GC_PASS_MIN_MS   2000
/* How often every interface is checked again for TC's shortcut to its
 * peer (bpf/lib/fwd.h): for the one change no event tells, a program
 * attached to its tcx egress. */
#define KS_PEERS_CHECK_MS 5000
/* Flows one `conns` answer lists at most (it says how many there are). */
#define KS_CONNS_MAX 10000
#define KS_GC_URGENT_BUDGET 65536

struct daemon {
	struct ks_dp dp;
	struct ks_shifts shifts;
	const char *config_dir;
	struct ks_config config; /* with config_dir */
	struct ks_state state;	 /* --state-dir */
	int epfd, sigfd, inofd;
	uint64_t reload_at_ms; /* when the config directory is due a reload; 0: not */
	uint64_t gc_at_ms;     /* the connection table collector's next step */
	uint64_t peers_at_ms;  /* the next ks_dp_peers_sync() */
	uint64_t gc_pass_ms;   /* when its pass under way began */
	bool state_dirty;      /* runtime changes not yet written (state_flush) */
	struct ks_ct_gc_stats gc_stats;
	struct ks_ctl_server ctl;
	struct ks_parse_job apply_job; /* a large `apply` being parsed aside */
	struct ks_kube_source *kube; /* --kubernetes, else NULL */
	int kubefd;
	struct ks_metrics *metrics; /* --metrics-addr, else NULL */
	int metricsfd;
	bool serving;		    /* the loop runs: the config directory is loaded */
	bool adopt_pending;	    /* ks_dp_adopt_done waits for the first Kubernetes sync */
	struct ks_ifpats ifpats;    /* --iface */
	enum ks_mode mode;	    /* --mode */
	int nlfd;		    /* link events: interfaces that come and go */
	struct ks_shadow *shadow;   /* TCP stream shadow: replays mirrored flows */
	struct ks_sock_lb *sock_lb; /* --cgroup: node-local clients, else NULL */
	int shadowfd;
};

/* What /readyz says: NULL when the dataplane holds the current
 * configuration of every source. */
static const char *not_ready(void *arg)
{
	struct daemon *d = arg;

	if (!d->serving)
		return "starting";
	if (d->kube && !ks_kube_source_ready(d->kube))
		return "Kubernetes objects not yet listed and programmed";
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kshiftd [options]\n"
		"  --iface IF[,IF...]       interfaces or glob patterns (veth*,eth0); attaches to\n"
		"                           matching ones as they appear (default: every non-loopback)\n"
		"  --mode auto|xdp|xdp-generic|tc\n"
		"  --xdp-redirect           XDP forwards rewritten packets itself (XDP_REDIRECT);\n"
		"                           every egress interface must take XDP frames\n"
		"  --hairpin-addr ADDR[,ADDR6]\n"
		"                           source of a pod's flows to its own frontend that come\n"
		"                           back to it (default 169.254.42.1,fd00:a9fe:2a01::1)\n"
		"  --config-dir DIR         TrafficShift manifests, reloaded on change\n"
		"  --socket PATH            control socket (default %s), root only (0600)\n"
		"  --socket-group NAME      the socket's group may use it too (0660)\n"
		"  --state-dir DIR          runtime changes, kept across restarts (default %s)\n"
		"  --pin-path DIR           BPF pins (default %s)\n"
		"  --cgroup DIR             steer node-local clients too: socket hooks on this\n"
		"                           cgroup v2 directory (/sys/fs/cgroup: every process)\n"
		"  --kubernetes             TrafficShifts, Services and EndpointSlices from the API\n"
		"    [--kubeconfig FILE] [--context NAME] [--apiserver URL]\n"
		"    [--node-name NAME]     this node in status Leases (default: the host name)\n"
		"    [--lease-namespace NS] where the Leases live (default %s)\n"
		"  --metrics-addr ADDR:PORT Prometheus /metrics, /healthz and /readyz\n"
		"  --max-flows N            connection table size (default 1048576 flows,\n"
		"                           about 300 MB a million, preallocated)\n"
		"  --max-services N         services, one per frontend port and family (default\n"
		"                           16384, at most 1048576; 288 bytes each per CPU)\n"
		"  --max-endpoints N        endpoint slots (default 131072, at most 16777216)\n"
		"  --hash-seed SEED         flow hash seed, the same on every node of a cluster\n"
		"                           (default: the running dataplane's, else random)\n"
		"  --uninstall              detach and unpin everything under --pin-path, then exit\n"
		"  --log-format text|json   text lines, or one JSON object a line (ts, level, msg)\n"
		"  -v, --verbose            debug logging (twice: libbpf's too)\n"
		"  --version                kshiftd's version\n",
		KS_DEFAULT_SOCKET, KS_DEFAULT_STATE_DIR, KS_DEFAULT_PIN_PATH, KS_KUBE_LEASE_NS);
}

/* ---- configuration directory (user/lib/config.c) ---- */

/* Shifts a reload applies per turn of the loop: the control socket is
 * served in between, so a reload of thousands stalls no one. */
#define KS_RELOAD_STEP 200

/* Starts a reload: the files are read in a thread, then the change is
 * applied in steps (config_step); one asked for meanwhile follows. */
static void config_reload(struct daemon *d)
{
	if (!d->config_dir)
		return;
	ks_config_reload(&d->config, &d->shifts, &d->state, false);
}

/* One turn's worth of the reload under way; requests that change the
 * running set wait for its end (see on_request). */
static void config_step(struct daemon *d)
{
	if (!d->config_dir || !ks_config_busy(&d->config))
		return;
	if (ks_config_step(&d->config, KS_RELOAD_STEP) == -EINPROGRESS)
		return;
	ks_ctl_server_resume(&d->ctl);
}

/* At start: the whole directory before anything is served. */
static void config_load(struct daemon *d)
{
	if (d->config_dir)
		ks_config_reload(&d->config, &d->shifts, &d->state, true);
	while (d->config_dir && ks_config_busy(&d->config))
		ks_config_step(&d->config, SIZE_MAX);
}

/* ---- runtime changes, kept across restarts (user/lib/state.c) ---- */

/* Applies the "api" shifts of the last run, before the config directory
 * and before anyone is served; a state that does not fit is logged and
 * left alone. */
static void state_replay(struct daemon *d)
{
	struct ks_change *changes;
	struct ks_shift *shifts;
	char err[KS_ERR_LEN] = "";
	size_t nr, i;

	if (ks_state_load(&d->state, &shifts, &nr, err, sizeof(err))) {
		pr_warn("state: %s; starting without the runtime changes it holds\n", err);
		return;
	}
	if (!nr)
		return;
	changes = calloc(nr, sizeof(*changes));
	for (i = 0; changes && i < nr; i++)
		changes[i] = (struct ks_change){ .shift = &shifts[i], .source = "api" };
	if (!changes || ks_shifts_commit(&d->shifts, changes, nr, err, sizeof(err)))
		pr_warn("state: %s: the %zu shift(s) applied with kshiftctl could not be "
			"restored: %s\n",
			d->state.path, nr, changes ? err : "out of memory");
	else
		pr_info("state: restored %zu shift(s) applied with kshiftctl (generation %llu)\n",
			nr, (unsigned long long)d->state.generation);
	free(changes);
	ks_shifts_free(shifts, nr);
}

/* After a change through the socket: the next generation, kept. */
/* A runtime change was made: it is written once the loop has sent its
 * answer (state_flush), so a burst of changes costs one write and no
 * client waits on the disk (a whole state of 10,000 shifts is a few MB). */
static void state_changed(struct daemon *d)
{
	d->state.generation++;
	d->state_dirty = true;
}

static void state_flush(struct daemon *d)
{
	if (!d->state_dirty)
		return;
	ks_state_save(&d->state, &d->shifts);
	d->state_dirty = false;
}

/* ---- control requests ---- */

static struct json_object *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct json_object *reply_error(const char *fmt, ...)
{
	struct json_object *r = json_object_new_object();
	char msg[KS_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_object_add(r, "ok", json_object_new_boolean(false));
	json_object_object_add(r, "error", json_object_new_string(msg));
	return r;
}

static struct json_object *reply_ok(void)
{
	struct json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(true));
	return r;
}

static const char *str_field(struct json_object *req, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/* Manifests up to this size are parsed at once; larger ones in a thread,
 * while the loop goes on (the parser takes seconds over tens of thousands
 * of shifts). */
#define KS_APPLY_INLINE (256u << 10)

/* Parses an apply's manifest: at once, or aside (-EINPROGRESS: the request
 * is parked and offered again when the parse is done). */
static int parse_apply(struct daemon *d, struct json_object *req, const char *text,
		       struct ks_shift **shifts, size_t *nr, char *err, size_t errlen)
{
	struct ks_parse_job *j = &d->apply_job;
	struct json_object *idv;
	size_t len = strlen(text);
	int64_t id;

	if (json_object_object_get_ex(req, "_parse", &idv)) {
		id = json_object_get_int64(idv);
		if (j->id == (uint64_t)id && j->done)
			return ks_parse_job_take(j, shifts, nr, err, errlen);
		if (j->id == (uint64_t)id)
			return -EINPROGRESS;
		/* its result was dropped (it could not be taken then): again */
		json_object_object_del(req, "_parse");
	}
	if (len <= KS_APPLY_INLINE || j->fd < 0)
		return ks_manifest_parse(text, len, shifts, nr, err, errlen);
	if (j->running || j->done)
		return -EINPROGRESS; /* another apply's: this one waits its turn */
	id = ks_parse_job_start(j, text, len);
	if (id < 0)
		return ks_manifest_parse(text, len, shifts, nr, err, errlen);
	json_object_object_add(req, "_parse", json_object_new_int64(id));
	return -EINPROGRESS;
}

static struct json_object *do_apply(struct daemon *d, struct json_object *req)
{
	const char *text = str_field(req, "manifest");
	struct ks_change *changes;
	char err[KS_ERR_LEN] = "";
	struct ks_shift *shifts;
	struct json_object *r;
	size_t nr, i;
	int ret;

	if (!text)
		return reply_error("request: manifest: missing");
	ret = parse_apply(d, req, text, &shifts, &nr, err, sizeof(err));
	if (ret == -EINPROGRESS)
		return NULL; /* parked until the parse is done */
	if (ret)
		return reply_error("%s", err);
	changes = calloc(nr + 1, sizeof(*changes));
	if (!changes) {
		ks_shifts_free(shifts, nr);
		return reply_error("out of memory");
	}
	for (i = 0; i < nr; i++) {
		const struct ks_shift_state *st =
			ks_shifts_find(&d->shifts, shifts[i].namespace, shifts[i].name);

		/* one owner per shift: a file's or Kubernetes' stays theirs */
		if (st && strcmp(st->source, "api")) {
			r = reply_error("%s/%s: defined by %s: change it there (weights: kshiftctl "
					"set)",
					shifts[i].namespace, shifts[i].name, st->source);
			goto out;
		}
		changes[i] = (struct ks_change){ .shift = &shifts[i], .source = "api" };
	}
	/* checked whole, then applied whole or not at all */
	if (ks_shifts_commit(&d->shifts, changes, nr, err, sizeof(err))) {
		r = reply_error("%s", err);
	} else {
		state_changed(d);
		for (i = 0; i < nr && i < 20; i++)
			pr_info("api: applied %s/%s: %s (generation %llu)\n",
				shifts[i].namespace, shifts[i].name,
				ks_shift_weights_str(&shifts[i], err, sizeof(err)),
				(unsigned long long)d->state.generation);
		pr_info("api: applied %zu shift(s) (generation %llu)\n", nr,
			(unsigned long long)d->state.generation);
		r = reply_ok();
		json_object_object_add(r, "applied", json_object_new_int64(nr));
	}
out:
	free(changes);
	ks_shifts_free(shifts, nr);
	return r;
}

/* status.mirror of a shift that mirrors, or did: the shadow's results. */
static struct json_object *shadow_status(struct daemon *d, const struct ks_shift_state *st,
					 struct json_object *doc)
{
	struct json_object *status;
	uint32_t svcs[64];
	size_t i, n = 0;

	if (!doc || !json_object_object_get_ex(doc, "status", &status))
		return doc;
	for (i = 0; i < st->nr_svcs && n < 64; i++)
		svcs[n++] = st->svcs[i].svc;
	json_object_object_add(status, "mirror", ks_shadow_status(d->shadow, &d->dp, svcs, n));
	return doc;
}

/* mirror: a running shift's mirror backend and percent, or off. */
static struct json_object *do_mirror(struct daemon *d, struct json_object *req)
{
	const char *ns = str_field(req, "namespace"), *name = str_field(req, "name");
	const char *backend = str_field(req, "backend");
	struct ks_shift_state *st;
	struct json_object *p;
	char err[KS_ERR_LEN];
	int64_t percent = 100;

	if (!name)
		return reply_error("request: name: missing");
	st = ks_shifts_find(&d->shifts, ns ? ns : "default", name);
	if (!st)
		return reply_error("%s/%s: no such shift", ns ? ns : "default", name);
	if (!strcmp(st->source, KS_KUBE_SOURCE))
		return reply_error("%s/%s: owned by Kubernetes: change the TrafficShift "
				   "(kshiftctl --kubernetes mirror)",
				   st->spec.namespace, st->spec.name);
	if (json_object_object_get_ex(req, "percent", &p)) {
		percent = json_object_get_int64(p);
		if (!json_object_is_type(p, json_type_int) || percent < 0 || percent > 100)
			return reply_error("percent %s: must be an integer 0..100",
					   json_object_get_string(p));
	}
	if (ks_shifts_set_mirror(&d->shifts, st, backend, (uint32_t)percent, err, sizeof(err)))
		return reply_error("%s", err);
	state_changed(d);
	if (backend)
		pr_info("api: mirror %s/%s: %lld%% of new flows to %s (generation %llu)\n",
			st->spec.namespace, st->spec.name, (long long)percent, backend,
			(unsigned long long)d->state.generation);
	else
		pr_info("api: mirror %s/%s: off (generation %llu)\n", st->spec.namespace,
			st->spec.name, (unsigned long long)d->state.generation);
	return reply_ok();
}

static int by_name(const void *a, const void *b)
{
	const struct ks_shift *x = &(*(struct ks_shift_state *const *)a)->spec;
	const struct ks_shift *y = &(*(struct ks_shift_state *const *)b)->spec;
	int c = strcmp(x->namespace, y->namespace);

	return c ? c : strcmp(x->name, y->name);
}

static struct json_object *do_get(struct daemon *d, struct json_object *req)
{
	const char *ns = str_field(req, "namespace"), *name = str_field(req, "name");
	struct json_object *r, *items = json_object_new_array(), *v;
	/* "connections": false: no open connections, which cost a walk of the
	 * connection table (kshiftctl's check before a change needs none) */
	bool open = !json_object_object_get_ex(req, "connections", &v) ||
		    !json_object_is_type(v, json_type_boolean) || json_object_get_boolean(v);
	struct ks_shift_state **sorted;
	size_t i;

	sorted = malloc((d->shifts.n + 1) * sizeof(*sorted));
	if (!sorted) {
		json_object_put(items);
		return reply_error("out of memory");
	}
	if (d->shifts.n)
		memcpy(sorted, d->shifts.v, d->shifts.n * sizeof(*sorted));
	qsort(sorted, d->shifts.n, sizeof(*sorted), by_name);
	for (i = 0; i < d->shifts.n; i++) {
		const struct ks_shift_state *st = sorted[i];

		if ((ns && strcmp(ns, st->spec.namespace)) || (name && strcmp(name, st->spec.name)))
			continue;
		json_object_array_add(items,
				      shadow_status(d, st, ks_shifts_status(&d->shifts, st, open)));
	}
	free(sorted);
	if (name && !json_object_array_length(items)) {
		json_object_put(items);
		return reply_error("%s/%s: no such shift", ns ? ns : "default", name);
	}
	r = reply_ok();
	json_object_object_add(r, "items", items);
	return r;
}

/* conns: the live flows of a shift, or of all, client to endpoint; with
 * flush, forgets them instead (kshiftctl conns --flush). */
static struct json_object *do_conns(struct daemon *d, struct json_object *req)
{
	const char *ns = str_field(req, "namespace"), *name = str_field(req, "name");
	struct json_object *flush = json_object_object_get(req, "flush");
	struct json_object *r, *items;
	size_t total = 0;
	long long flushed;

	if (name && !ks_shifts_find(&d->shifts, ns ? ns : "default", name))
		return reply_error("%s/%s: no such shift", ns ? ns : "default", name);
	if (flush && !json_object_is_type(flush, json_type_boolean))
		return reply_error("request: flush: a boolean expected");
	if (flush && json_object_get_boolean(flush)) {
		flushed = ks_shifts_flush_conns(&d->shifts, name ? (ns ? ns : "default") : ns,
						name);
		if (flushed < 0)
			return reply_error("flushing the connection table: %s",
					   strerror((int)-flushed));
		pr_info("api: flushed %lld flow(s) of %s%s%s\n", flushed,
			name ? (ns ? ns : "default") : "every shift", name ? "/" : "",
			name ? name : "");
		r = reply_ok();
		json_object_object_add(r, "flushed", json_object_new_int64(flushed));
		return r;
	}
	items = ks_shifts_conns(&d->shifts, name ? (ns ? ns : "default") : ns, name,
				KS_CONNS_MAX, &total);
	if (!items)
		return reply_error("reading the connection table: %s", strerror(errno));
	r = reply_ok();
	json_object_object_add(r, "items", items);
	json_object_object_add(r, "total", json_object_new_int64(total));
	return r;
}

static struct json_object *do_verdicts(struct daemon *d, struct json_object *req)
{
	struct json_object *r, *v, *links;
	uint64_t counts[KS_V_MAX];
	int i;

	(void)req;
	if (ks_dp_verdicts(&d->dp, counts))
		return reply_error("reading verdict counters: %s", strerror(errno));
	r = reply_ok();
	v = json_object_new_object();
	for (i = 0; i < KS_V_MAX; i++)
		json_object_object_add(v, ks_verdict_name(i), json_object_new_int64(counts[i]));
	json_object_object_add(r, "verdicts", v);
	links = json_object_new_object();
	for (i = 0; i < d->dp.nr_links; i++) {
		const struct ks_dp_link *l = &d->dp.links[i];
		char mode[32];

		snprintf(mode, sizeof(mode), "%s%s", ks_mode_name(l->mode),
			 l->to_peer ? ", to peer" : "");
		json_object_object_add(links, l->ifname, json_object_new_string(mode));
	}
	json_object_object_add(r, "interfaces", links);
	return r;
}

/* ok, with the generation a change made, for kshiftctl to say. */
static struct json_object *reply_generation(struct daemon *d)
{
	struct json_object *r = reply_ok();

	json_object_object_add(r, "generation",
			       json_object_new_int64((int64_t)d->state.generation));
	return r;
}

/* set, switch, promote and rollback: new weights for a named shift. */
static struct json_object *do_weights(struct daemon *d, struct json_object *req, const char *cmd)
{
	const char *ns = str_field(req, "namespace"), *name = str_field(req, "name");
	const char *names[KS_MAX_BACKENDS], *target = str_field(req, "backend");
	uint32_t weights[KS_MAX_BACKENDS], sum = 0;
	struct ks_shift_state *st;
	struct json_object *w;
	char err[KS_ERR_LEN], now[512];
	size_t n = 0, i;
	uint64_t base;
	int t;

	if (!name)
		return reply_error("request: name: missing");
	st = ks_shifts_find(&d->shifts, ns ? ns : "default", name);
	if (!st)
		return reply_error("%s/%s: no such shift", ns ? ns : "default", name);
	/* a local change would last only until the resource next changes */
	if (!strcmp(st->source, KS_KUBE_SOURCE))
		return reply_error("%s/%s: owned by Kubernetes: change the TrafficShift "
				   "(kubectl kshift %s, or kshiftctl --kubernetes %s)",
				   st->spec.namespace, st->spec.name, cmd, cmd);

	if (!strcmp(cmd, "set")) {
		if (!json_object_object_get_ex(req, "weights", &w) ||
		    !json_object_is_type(w, json_type_object))
			return reply_error("request: weights: missing");
		json_object_object_foreach(w, key, val) {
			int64_t v = json_object_get_int64(val);

			if (n == KS_MAX_BACKENDS)
				return reply_error("%s: too many backends", key);
			if (!json_object_is_type(val, json_type_int) || v < 0 || v > KS_WEIGHT_MAX)
				return reply_error("%s: weight %s: must be 0..%u", key,
						   json_object_get_string(val), KS_WEIGHT_MAX);
			names[n] = key;
			weights[n++] = v;
		}
	} else {
		/* all weight to one backend: the sum of the weights now, so
		 * 90/10 becomes 0/100 */
		if (!strcmp(cmd, "rollback"))
			target = st->spec.backends[0].name;
		else if (!target && !strcmp(cmd, "promote"))
			target = st->spec.backends[st->spec.nr_backends - 1].name;
		if (!target)
			return reply_error("request: backend: missing");
		t = ks_shift_backend(&st->spec, target);
		if (t < 0)
			return reply_error("%s: no such backend in shift %s/%s", target,
					   st->spec.namespace, st->spec.name);
		for (i = 0; i < st->spec.nr_backends; i++)
			sum += st->spec.backends[i].weight;
		sum = sum > KS_WEIGHT_MAX ? KS_WEIGHT_MAX : sum ? sum : 1;
		for (i = 0; i < st->spec.nr_backends; i++) {
			names[n] = st->spec.backends[i].name;
			weights[n++] = (int)i == t ? sum : 0;
		}
	}
	if (ks_shifts_set_weights(&d->shifts, st, names, weights, n, err, sizeof(err)))
		return reply_error("%s", err);
	/* a file's shift keeps the new weights as an override, until the
	 * file changes the shift (see state.c) */
	if (d->config_dir && ks_config_owns(&d->config, st->source) &&
	    ks_config_base_fp(&d->config, st->spec.namespace, st->spec.name, &base) &&
	    !ks_state_set_override(&d->state, &st->spec, base))
		ks_config_note_running(
			&d->config, st->spec.namespace, st->spec.name,
			ks_override_fp(ks_state_override(&d->state, st->spec.namespace,
							 st->spec.name)));
	state_changed(d);
	ks_shift_weights_str(&st->spec, now, sizeof(now));
	pr_info("api: %s %s/%s: %s (generation %llu)\n", cmd, st->spec.namespace, st->spec.name,
		now, (unsigned long long)d->state.generation);
	return reply_generation(d);
}

static struct json_object *do_delete(struct daemon *d, struct json_object *req)
{
	const char *ns = str_field(req, "namespace"), *name = str_field(req, "name");
	const struct ks_shift_state *st;
	char err[KS_ERR_LEN];

	if (!name)
		return reply_error("request: name: missing");
	st = ks_shifts_find(&d->shifts, ns ? ns : "default", name);
	if (st && strcmp(st->source, "api"))
		return reply_error("%s/%s: defined by %s: remove it there", ns ? ns : "default",
				   name, st->source);
	if (ks_shifts_delete(&d->shifts, ns ? ns : "default", name, err, sizeof(err)))
		return reply_error("%s", err);
	state_changed(d);
	pr_info("api: deleted %s/%s (generation %llu)\n", ns ? ns : "default", name,
		(unsigned long long)d->state.generation);
	/* a file shift refused for this one's name or frontend may run now */
	if (d->config_dir && !d->reload_at_ms)
		d->reload_at_ms = 1;
	return reply_generation(d);
}

static struct json_object *handle(struct daemon *d, struct json_object *req)
{
	const char *cmd = str_field(req, "cmd");

	if (!cmd)
		return reply_error("request: cmd: missing");
	if (!strcmp(cmd, "apply"))
		return do_apply(d, req);
	if (!strcmp(cmd, "get"))
		return do_get(d, req);
	if (!strcmp(cmd, "set") || !strcmp(cmd, "switch") || !strcmp(cmd, "promote") ||
	    !strcmp(cmd, "rollback"))
		return do_weights(d, req, cmd);
	if (!strcmp(cmd, "delete"))
		return do_delete(d, req);
	if (!strcmp(cmd, "mirror"))
		return do_mirror(d, req);
	if (!strcmp(cmd, "verdicts"))
		return do_verdicts(d, req);
	if (!strcmp(cmd, "conns"))
		return do_conns(d, req);
	return reply_error("request: cmd: %s: unknown", cmd);
}

/* The control socket's handler: one complete request, one answer. */
static struct json_object *on_request(void *ctx, struct json_object *req)
{
	struct daemon *d = ctx;
	const char *cmd = str_field(req, "cmd");

	/* while a reload is under way, changes wait for its end (NULL:
	 * parked); reads are served at once */
	if (d->config_dir && ks_config_busy(&d->config) && cmd && strcmp(cmd, "get") &&
	    strcmp(cmd, "verdicts"))
		return NULL;
	return handle(d, req);
}

/* ---- set-up and main loop ---- */

/* ---- interfaces that come and go (pods) ---- */

/* A link event: attach to a matching interface as it appears, forget one
 * that vanished, follow a rename; a served one that changed, or whose
 * qdiscs did, may take packets for its peer or no longer. */
static void on_link(const struct ks_nl_event *ev, void *arg)
{
	struct daemon *d = arg;
	struct ks_dp_link *l = ks_dp_link_find(&d->dp, ev->ifindex);

	if (ev->kind == KS_NL_DELLINK) {
		ks_dp_forget(&d->dp, ev->ifindex);
		return;
	}
	if (ev->kind == KS_NL_QDISC) {
		if (l)
			ks_dp_peer_check(&d->dp, ev->ifindex);
		return;
	}
	if (!ev->name[0])
		return;
	if (l && strcmp(l->ifname, ev->name)) {
		if (ks_ifpats_match(&d->ifpats, ev->name))
			ks_dp_rename(&d->dp, ev->ifindex, ev->name);
		else
			ks_dp_detach(&d->dp, ev->ifindex);
	} else if (l) {
		ks_dp_peer_check(&d->dp, ev->ifindex);
	} else if (ks_ifpats_match(&d->ifpats, ev->name)) {
		ks_dp_attach(&d->dp, ev->name, d->mode, NULL); /* logs what it did */
	}
}

/* Events were lost (the socket overflowed): compare with what is there. */
static void ifaces_rescan(struct daemon *d)
{
	char **names, name[IF_NAMESIZE];
	const char *missing;
	int i, n;

	for (i = d->dp.nr_links - 1; i >= 0; i--)
		if (!if_indextoname(d->dp.links[i].ifindex, name))
			ks_dp_forget(&d->dp, d->dp.links[i].ifindex);
	if (ks_ifpats_resolve(&d->ifpats, false, &names, &n, &missing))
		return;
	for (i = 0; i < n; i++)
		ks_dp_attach(&d->dp, names[i], d->mode, NULL);
	ks_ifnames_free(names, n);
}

static void ifaces_event(struct daemon *d)
{
	if (ks_nl_read(d->nlfd, on_link, d) == -ENOBUFS) {
		pr_warn("netlink: link events lost; rescanning the interfaces\n");
		ifaces_rescan(d);
	}
}

static int add_fd(struct daemon *d, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

static int setup_loop(struct daemon *d, const char *socket_path, const char *socket_group)
{
	sigset_t mask;
	int err;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	d->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	d->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (d->sigfd < 0 || d->epfd < 0)
		return -errno;
	if (ks_parse_job_init(&d->apply_job) || add_fd(d, d->apply_job.fd))
		pr_warn("large manifests will be parsed in the loop: %s\n", strerror(errno));
	err = ks_ctl_server_open(&d->ctl, socket_path, socket_group, d->epfd, on_request, d);
	if (err) {
		pr_warn("control socket %s: %s\n", socket_path, strerror(-err));
		return err;
	}
	if (d->config_dir) {
		err = ks_config_open(&d->config, d->config_dir);
		if (err) {
			pr_warn("watching %s: %s\n", d->config_dir, strerror(-err));
			return err;
		}
		if ((err = add_fd(d, d->inofd = ks_config_fd(&d->config))))
			return err;
	}
	if ((err = add_fd(d, d->sigfd)))
		return err;
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

/* One step of the connection table's collector, every KS_GC_PERIOD_MS;
 * back to back while flows of removed endpoints wait to be flushed, so a
 * client stuck on one moves on within a fraction of a second. */
static void gc_step(struct daemon *d)
{
	bool urgent = ks_ct_gc_urgent(&d->shifts.gc);
	uint64_t now = now_ms();
	int ret;

	/* new flushes: a change removed endpoints, whose node-local sockets go;
	 * not before every source's shifts are back (their endpoints are live) */
	if (!d->adopt_pending)
		ks_sock_lb_changed(d->sock_lb, &d->shifts);
	if (!urgent && now < d->gc_at_ms)
		return;
	d->gc_at_ms = now + KS_GC_PERIOD_MS;
	if (!d->shifts.gc.in_pass)
		d->gc_pass_ms = now;
	ret = ks_ct_gc_step(&d->dp, &d->shifts.gc, ks_ct_now(), urgent ? KS_GC_URGENT_BUDGET : 0,
			    &d->gc_stats);
	if (ret > 0 && !d->shifts.gc.pressure && d->gc_at_ms < d->gc_pass_ms + KS_GC_PASS_MIN_MS)
		d->gc_at_ms = d->gc_pass_ms + KS_GC_PASS_MIN_MS;
	if (ret < 0)
		pr_warn("connection table: collecting: %s\n", strerror(-ret));
	else if (ret > 0)
		pr_debug("connection table: pass %llu: %llu live flows, %llu expired, %llu "
			 "flushed so far\n",
			 (unsigned long long)d->gc_stats.passes,
			 (unsigned long long)d->gc_stats.live,
			 (unsigned long long)d->gc_stats.expired,
			 (unsigned long long)d->gc_stats.flushed);
}

static void run(struct daemon *d)
{
	struct epoll_event evs[8];
	uint64_t now;
	int n, i, timeout, t;

	for (;;) {
		/* a deadline, not an idle period: clients must not put a
		 * reload off */
		now = now_ms();
		timeout = -1;
		if (d->reload_at_ms)
			timeout = d->reload_at_ms > now ? (int)(d->reload_at_ms - now) : 0;
		if (d->config_dir && ks_config_busy(&d->config))
			timeout = 0;
		t = ks_ctl_server_timeout(&d->ctl);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
		t = ks_ct_gc_urgent(&d->shifts.gc) ? 0
		    : d->gc_at_ms > now		   ? (int)(d->gc_at_ms - now)
						   : 0;
		if (timeout < 0 || t < timeout)
			timeout = t;
		t = ks_shadow_timeout(d->shadow);
		if (t >= 0 && (timeout < 0 || t < timeout))
			timeout = t;
		n = epoll_wait(d->epfd, evs, 8, timeout);
		if (n < 0 && errno != EINTR)
			return;
		ks_ctl_server_expire(&d->ctl);
		gc_step(d);
		if (now_ms() >= d->peers_at_ms) {
			ks_dp_peers_sync(&d->dp);
			d->peers_at_ms = now_ms() + KS_PEERS_CHECK_MS;
		}
		if (d->shadow && !ks_shadow_timeout(d->shadow))
			ks_shadow_process(d->shadow); /* its flows' deadlines */
		config_step(d);
		if (d->reload_at_ms && now_ms() >= d->reload_at_ms) {
			d->reload_at_ms = 0;
			config_reload(d);
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (ks_ctl_server_event(&d->ctl, fd, evs[i].events)) {
				continue;
			} else if (fd == d->apply_job.fd) {
				/* its request takes the result; if it went away,
				 * the result goes too */
				if (ks_parse_job_event(&d->apply_job)) {
					ks_ctl_server_resume(&d->ctl);
					ks_parse_job_drop(&d->apply_job);
					/* the next large apply may start */
					ks_ctl_server_resume(&d->ctl);
				}
			} else if (d->shadow && fd == d->shadowfd) {
				ks_shadow_process(d->shadow);
			} else if (d->metrics && fd == d->metricsfd) {
				ks_metrics_serve(d->metrics);
			} else if (d->kube && fd == d->kubefd) {
				ks_kube_source_process(d->kube);
				if (d->adopt_pending && ks_kube_source_ready(d->kube)) {
					ks_dp_adopt_done(&d->dp);
					d->adopt_pending = false;
				}
			} else if (fd == d->nlfd) {
				ifaces_event(d);
			} else if (fd == d->inofd) {
				if (ks_config_event(&d->config) && !d->reload_at_ms)
					d->reload_at_ms = now_ms() + KS_RELOAD_DELAY_MS;
			} else if (fd == d->sigfd) {
				struct signalfd_siginfo si;

				if (read(d->sigfd, &si, sizeof(si)) != sizeof(si))
					continue;
				if (si.ssi_signo == SIGHUP) {
					config_reload(d);
					continue;
				}
				pr_info("signal %d: shutting down\n", si.ssi_signo);
				state_flush(d);
				return;
			}
		}
		/* the answers are out: now the disk */
		state_flush(d);
	}
}

/* --hairpin-addr ADDR[,ADDR6]: either family, or both, in any order. */
static int ks_hairpin_opt(char *arg, struct ks_dp_opts *o)
{
	unsigned char buf[16];
	char *a;

	for (a = strtok(arg, ","); a; a = strtok(NULL, ",")) {
		bool v6 = strchr(a, ':');

		if (inet_pton(v6 ? AF_INET6 : AF_INET, a, buf) != 1) {
			fprintf(stderr, "kshiftd: --hairpin-addr %s: not an IPv4 or IPv6 address\n",
				a);
			return -EINVAL;
		}
		if (v6)
			o->hairpin_addr6 = a;
		else
			o->hairpin_addr = a;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "mode", required_argument, NULL, 'm' },
		{ "xdp-redirect", no_argument, NULL, 'x' },
		{ "hairpin-addr", required_argument, NULL, 'P' },
		{ "config-dir", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "socket-group", required_argument, NULL, 'G' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "pin-path", required_argument, NULL, 'p' },
		{ "cgroup", required_argument, NULL, 'g' },
		{ "kubernetes", no_argument, NULL, 'k' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "node-name", required_argument, NULL, 'N' },
		{ "context", required_argument, NULL, 'C' },
		{ "apiserver", required_argument, NULL, 'A' },
		{ "lease-namespace", required_argument, NULL, 'L' },
		{ "metrics-addr", required_argument, NULL, 'M' },
		{ "hash-seed", required_argument, NULL, 'H' },
		{ "max-flows", required_argument, NULL, 'F' },
		{ "max-services", required_argument, NULL, 'V' },
		{ "max-endpoints", required_argument, NULL, 'E' },
		{ "uninstall", no_argument, NULL, 'U' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "log-format", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'R' },
		{},
	};
	const char *ifaces = NULL, *socket_path = KS_DEFAULT_SOCKET;
	const char *pin_path = KS_DEFAULT_PIN_PATH, *socket_group = NULL;
	const char *state_dir = KS_DEFAULT_STATE_DIR, *cgroup = NULL;
	struct daemon d = { .epfd = -1, .sigfd = -1, .inofd = -1, .ctl.listenfd = -1, .kubefd = -1,
			    .metricsfd = -1, .nlfd = -1, .shadowfd = -1 };
	bool uninstall = false, *optional;
	char missing_caps[128];
	const char *missing;
	struct ks_dp_opts dp_opts = {};
	struct ks_kube_source_opts kube_opts = {};
	bool kubernetes = false;
	const char *metrics_addr = NULL;
	char kube_err[KS_ERR_LEN];
	enum ks_mode mode = KS_MODE_AUTO;
	struct stat st;
	int c, err, i, nr_ifnames = 0, verbose = 0;
	char **ifnames = NULL;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			ifaces = optarg;
			break;
		case 'm':
			if (ks_mode_parse(optarg, &mode)) {
				fprintf(stderr,
					"kshiftd: --mode %s: must be auto, xdp, xdp-generic or "
					"tc\n",
					optarg);
				return 2;
			}
			break;
		case 'c':
			d.config_dir = optarg;
			break;
		case 'x':
			dp_opts.xdp_redirect = true;
			break;
		case 'P':
			if (ks_hairpin_opt(optarg, &dp_opts))
				return 2;
			break;
		case 's':
			socket_path = optarg;
			break;
		case 'G':
			socket_group = optarg;
			break;
		case 'S':
			state_dir = optarg;
			break;
		case 'g':
			cgroup = optarg;
			break;
		case 'p':
			pin_path = optarg;
			break;
		case 'k':
			kubernetes = true;
			break;
		case 'K':
			kube_opts.kubeconfig = optarg;
			break;
		case 'C':
			kube_opts.context = optarg;
			break;
		case 'A':
			kube_opts.apiserver = optarg;
			break;
		case 'N':
			kube_opts.node_name = optarg;
			break;
		case 'L':
			kube_opts.lease_namespace = optarg;
			break;
		case 'M':
			metrics_addr = optarg;
			break;
		case 'F':
		case 'V':
		case 'E': {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || !*optarg || *end || !v || v > UINT32_MAX) {
				fprintf(stderr, "kshiftd: --%s %s: must be a positive number\n",
					c == 'F' ? "max-flows" : c == 'V' ? "max-services"
									  : "max-endpoints",
					optarg);
				return 2;
			}
			*(c == 'F' ? &dp_opts.max_flows : c == 'V' ? &dp_opts.max_services
								  : &dp_opts.max_endpoints) = v;
			break;
		}
		case 'H': {
			char *end;

			errno = 0;
			dp_opts.hash_seed = strtoull(optarg, &end, 0);
			if (errno || !*optarg || *end || !dp_opts.hash_seed) {
				fprintf(stderr, "kshiftd: --hash-seed %s: must be a non-zero 64-bit "
						"number\n",
					optarg);
				return 2;
			}
			break;
		}
		case 'U':
			uninstall = true;
			break;
		case 'J':
			if (ks_log_format_parse(optarg, &ks_log_format)) {
				fprintf(stderr, "kshiftd: --log-format %s: must be text or json\n",
					optarg);
				return 2;
			}
			break;
		case 'v':
			verbose++;
			break;
		case 'R':
			printf("kshiftd %s\n", KSHIFT_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kshiftd: unexpected argument %s\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (d.config_dir && (stat(d.config_dir, &st) || !S_ISDIR(st.st_mode))) {
		fprintf(stderr, "kshiftd: --config-dir %s: not a directory\n", d.config_dir);
		return 2;
	}
	ks_log_level = verbose ? KS_LOG_DEBUG : KS_LOG_INFO;
	ks_log_libbpf();
	setvbuf(stderr, NULL, _IOLBF, 0);
	if (!ks_have_privileges(missing_caps, sizeof(missing_caps))) {
		pr_warn("kshiftd needs CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (or root); this "
			"process lacks %s\n",
			missing_caps);
		return 1;
	}

	/* only --uninstall removes kshift from a node: stopping kshiftd
	 * leaves the dataplane serving, for the next one to adopt */
	if (uninstall) {
		/* the socket hooks first; a running kshiftd refuses both */
		err = ks_sock_lb_uninstall(pin_path);
		if (err == -EBUSY)
			return 1;
		return ks_dp_uninstall(pin_path) || err < 0 ? 1 : 0;
	}
	if (ks_ifpats_parse(ifaces, &d.ifpats)) {
		fprintf(stderr, "kshiftd: --iface %s: no interface named\n", ifaces);
		return 2;
	}
	/* subscribed before listing: an interface that appears in between
	 * is not missed */
	d.nlfd = ks_nl_open();
	if (d.nlfd < 0) {
		fprintf(stderr, "kshiftd: netlink link events: %s\n", strerror(-d.nlfd));
		return 1;
	}
	err = ks_ifpats_resolve(&d.ifpats, true, &ifnames, &nr_ifnames, &missing);
	if (err) {
		if (missing)
			fprintf(stderr, "kshiftd: --iface %s: no such interface\n", missing);
		else
			fprintf(stderr, "kshiftd: listing interfaces: %s\n", strerror(-err));
		close(d.nlfd);
		ks_ifpats_free(&d.ifpats);
		return 1;
	}
	d.mode = mode;
	dp_opts.pin_path = pin_path;
	dp_opts.adopt = true;
	/* XDP passing up: the egress program rewrites sources (bpf/lib/hairpin.h);
	 * XDP that redirects rewrites both ends, and needs none */
	dp_opts.xdp_split = !dp_opts.xdp_redirect;
	/* generic XDP on a veth sees a local peer's partial checksums too */
	for (i = 0; i < nr_ifnames; i++)
		if ((mode == KS_MODE_XDP || mode == KS_MODE_XDP_GENERIC) && ks_is_veth(ifnames[i]))
			dp_opts.xdp_veth = true;
	/* interfaces that appear later are pods' veths */
	for (i = 0; i < d.ifpats.n; i++)
		if ((mode == KS_MODE_XDP || mode == KS_MODE_XDP_GENERIC) &&
		    ks_ifpat_is_glob(d.ifpats.v[i]))
			dp_opts.xdp_veth = true;
	err = ks_dp_open(&d.dp, &dp_opts);
	/* before the interfaces: a --cgroup refused leaves them as they were */
	if (!err)
		err = ks_sock_lb_open(&d.sock_lb, &d.dp, cgroup);
	ks_shifts_init(&d.shifts, &d.dp);
	/* all or nothing for the interfaces named: a refusal leaves every
	 * interface as it was; one a pattern matched is skipped instead */
	optional = calloc(nr_ifnames + 1, sizeof(*optional));
	for (i = 0; optional && i < nr_ifnames; i++)
		optional[i] = !ks_ifpats_named(&d.ifpats, ifnames[i]);
	if (!err)
		err = optional ? ks_dp_attach_all(&d.dp, ifnames, optional, nr_ifnames, mode)
			       : -ENOMEM;
	free(optional);
	if (!err)
		err = setup_loop(&d, socket_path, socket_group);
	if (!err)
		err = add_fd(&d, d.nlfd);
	/* without the shadow, mirrored UDP is still copied; TCP is not */
	if (!err && ks_shadow_open(&d.shadow, &d.dp))
		pr_warn("kshiftd: shadow replay off: mirrored TCP flows are not replayed\n");
	if (!err && d.shadow)
		err = add_fd(&d, d.shadowfd = ks_shadow_fd(d.shadow));
	ks_metrics_set_shadow(d.shadow);
	if (!err && kubernetes) {
		err = ks_kube_source_start(&d.kube, &kube_opts, &d.shifts, kube_err,
					   sizeof(kube_err));
		if (err)
			pr_warn("kshiftd: --kubernetes: %s\n", kube_err);
		else if (!(err = add_fd(&d, d.kubefd = ks_kube_source_fd(d.kube))))
			pr_info("kshiftd: Kubernetes source started\n");
	}
	if (!err && metrics_addr) {
		err = ks_metrics_start(&d.metrics, metrics_addr, &d.shifts, not_ready, &d, kube_err,
				       sizeof(kube_err));
		if (err)
			pr_warn("kshiftd: %s\n", kube_err);
		else
			err = add_fd(&d, d.metricsfd = ks_metrics_fd(d.metrics));
	}
	if (!err) {
		err = ks_state_open(&d.state, state_dir);
		if (err)
			pr_warn("--state-dir %s: %s: runtime changes will not survive a restart\n",
				state_dir, strerror(-err));
		err = 0;
		state_replay(&d);
		config_load(&d);
		/* the shifts are back on fresh services: what the adopted
		 * maps served and no shift claimed goes; with Kubernetes, once
		 * the cluster's shifts are back too (until then the adopted
		 * ones keep serving) */
		if (d.kube)
			d.adopt_pending = true;
		else
			ks_dp_adopt_done(&d.dp);
		d.serving = true;
		pr_info("kshiftd: ready on %s, %d interface(s), pins under %s\n", socket_path,
			d.dp.nr_links, pin_path);
		run(&d);
	}

	ks_ctl_server_close(&d.ctl);
	ks_metrics_stop(d.metrics);
	ks_kube_source_stop(d.kube);
	ks_shifts_destroy(&d.shifts);
	ks_shadow_close(d.shadow);
	ks_sock_lb_close(d.sock_lb);
	ks_dp_close(&d.dp);
	if (d.config_dir)
		ks_config_close(&d.config);
	ks_state_close(&d.state);
	ks_ifnames_free(ifnames, nr_ifnames);
	ks_ifpats_free(&d.ifpats);
	if (d.nlfd >= 0)
		close(d.nlfd);
	return err ? 1 : 0;
}
