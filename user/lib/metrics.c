// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* /metrics, /healthz and /readyz over libmicrohttpd; see metrics.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <microhttpd.h>
#include "conntrack.h"
#include "dataplane.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "observe.h"
#include "shadow.h"

#ifndef KSHIFT_VERSION
#define KSHIFT_VERSION "0.1.0"
#endif

/* The TCP shadow's results (user/lib/shadow.h), when kshiftd runs one. */
static const struct ks_shadow *shadow;

void ks_metrics_set_shadow(const struct ks_shadow *sh)
{
	shadow = sh;
}

struct ks_metrics {
	struct MHD_Daemon *mhd;
	struct ks_shifts *shifts;
	ks_ready_fn *ready;
	void *arg;
};

/* A label value as the exposition format wants it: \\, \" and \n escaped. */
static void label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*s, f);
	}
}

static void help(FILE *f, const char *name, const char *type, const char *text)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One family of per-backend samples: value(c, weight) for every backend of
 * every shift, summed over the shift's dataplane services. */
enum backend_metric { M_PACKETS, M_BYTES, M_NEW_FLOWS, M_WEIGHT, M_OPEN };

static void backend_family(FILE *f, struct ks_shifts *t, const char *name, enum backend_metric m)
{
	struct ks_counters c, sum;
	size_t i, b, s;

	for (i = 0; i < t->n; i++) {
		const struct ks_shift_state *st = t->v[i];

		for (b = 0; b < st->spec.nr_backends; b++) {
			uint64_t v;

			memset(&sum, 0, sizeof(sum));
			for (s = 0; s < st->nr_svcs; s++) {
				if (ks_dp_stats(t->dp, st->svcs[s].svc, b, &c))
					continue;
				sum.packets += c.packets;
				sum.bytes += c.bytes;
				sum.new_flows += c.new_flows;
			}
			v = m == M_OPEN	       ? ks_observe_shift_open(t, st, b)
			    : m == M_PACKETS   ? sum.packets
			    : m == M_BYTES     ? sum.bytes
			    : m == M_NEW_FLOWS ? sum.new_flows
					       : st->spec.backends[b].weight;
			fprintf(f, "%s{namespace=\"", name);
			label(f, st->spec.namespace);
			fputs("\",shift=\"", f);
			label(f, st->spec.name);
			fputs("\",backend=\"", f);
			label(f, st->spec.backends[b].name);
			fprintf(f, "\"} %llu\n", (unsigned long long)v);
		}
	}
}

/* Passive health (docs/health.md), per endpoint address and port: node-wide,
 * as the datapath keeps it, for the endpoints that ever failed a handshake
 * (the others would only repeat zeros). */
enum health_metric { H_QUARANTINED, H_QUARANTINES, H_REFUSED, H_UNANSWERED, H_RECOVERED };

struct health_scrape {
	FILE *f;
	const char *name;
	enum health_metric m;
	uint64_t now;
};

static int health_sample(const struct ks_ep_key *key, const struct ks_ep_health *h, void *arg)
{
	struct health_scrape *s = arg;
	char ip[INET6_ADDRSTRLEN];
	uint64_t v;

	inet_ntop(key->family == KS_FAMILY_V4 ? AF_INET : AF_INET6, &key->addr, ip, sizeof(ip));
	v = s->m == H_QUARANTINED   ? ks_health_state_of(h, s->now) != KS_HEALTH_IN_SERVICE
	    : s->m == H_QUARANTINES ? h->quarantines
	    : s->m == H_REFUSED	    ? h->refused
	    : s->m == H_UNANSWERED  ? h->unanswered
				    : h->recovered;
	fprintf(s->f,
		key->family == KS_FAMILY_V4 ? "%s{endpoint=\"%s:%u\"} %llu\n"
					    : "%s{endpoint=\"[%s]:%u\"} %llu\n",
		s->name, ip, ntohs(key->port), (unsigned long long)v);
	return 0;
}

static void health_family(FILE *f, struct ks_shifts *t, const char *name, const char *type,
			  enum health_metric m, const char *text)
{
	struct health_scrape s = { .f = f, .name = name, .m = m, .now = ks_ct_now() };

	help(f, name, type, text);
	ks_health_foreach(t->dp, health_sample, &s);
}

char *ks_metrics_text(struct ks_shifts *t, bool ready)
{
	uint64_t verdicts[KS_V_MAX];
	struct ks_counters c;
	size_t len, i, s;
	char *buf = NULL;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	help(f, "kshift_build_info", "gauge", "kshift's version, always 1.");
	fprintf(f, "kshift_build_info{version=\"%s\"} 1\n", KSHIFT_VERSION);
	help(f, "kshift_ready", "gauge", "1 when the dataplane holds the current configuration.");
	fprintf(f, "kshift_ready %d\n", ready);
	help(f, "kshift_shifts", "gauge", "TrafficShifts programmed on this node.");
	fprintf(f, "kshift_shifts %zu\n", t->n);

	help(f, "kshift_backend_packets_total", "counter",
	     "Packets steered to a backend, both directions.");
	backend_family(f, t, "kshift_backend_packets_total", M_PACKETS);
	help(f, "kshift_backend_bytes_total", "counter",
	     "Bytes steered to a backend, both directions.");
	backend_family(f, t, "kshift_backend_bytes_total", M_BYTES);
	help(f, "kshift_backend_new_flows_total", "counter", "New flows a backend was chosen for.");
	backend_family(f, t, "kshift_backend_new_flows_total", M_NEW_FLOWS);
	help(f, "kshift_backend_weight", "gauge", "A backend's configured relative weight.");
	backend_family(f, t, "kshift_backend_weight", M_WEIGHT);
	help(f, "kshift_backend_open_connections", "gauge",
	     "Flows to a backend in the connection table, neither closed nor expired.");
	backend_family(f, t, "kshift_backend_open_connections", M_OPEN);

	help(f, "kshift_rejected_flows_total", "counter",
	     "New flows that found no usable endpoint (answered with a reset or unreachable).");
	for (i = 0; i < t->n; i++) {
		const struct ks_shift_state *st = t->v[i];
		uint64_t rejected = 0;

		for (s = 0; s < st->nr_svcs; s++)
			if (!ks_dp_stats(t->dp, st->svcs[s].svc, KS_STATS_NONE, &c))
				rejected += c.rejected;
		fputs("kshift_rejected_flows_total{namespace=\"", f);
		label(f, st->spec.namespace);
		fputs("\",shift=\"", f);
		label(f, st->spec.name);
		fprintf(f, "\"} %llu\n", (unsigned long long)rejected);
	}

	help(f, "kshift_shadow_requests_total", "counter",
	     "Requests mirrored to a shadow, by how its answer compared with the primary's "
	     "(docs/shadow.md).");
	for (i = 0; i < t->n; i++) {
		const struct ks_shift_state *st = t->v[i];
		uint64_t res[KS_SHADOW_NR_RESULTS] = {};
		const struct ks_shadow_svc_stats *ss;
		int r;

		for (s = 0; s < st->nr_svcs; s++)
			if ((ss = ks_shadow_svc(shadow, st->svcs[s].svc)))
				for (r = 0; r < KS_SHADOW_NR_RESULTS; r++)
					res[r] += ss->results[r];
		/* shifts that mirror, or did */
		if (st->spec.mirror_backend < 0 && !(res[0] | res[1] | res[2]))
			continue;
		for (r = 0; r < KS_SHADOW_NR_RESULTS; r++) {
			fputs("kshift_shadow_requests_total{namespace=\"", f);
			label(f, st->spec.namespace);
			fputs("\",shift=\"", f);
			label(f, st->spec.name);
			fprintf(f, "\",result=\"%s\"} %llu\n", ks_shadow_result_name(r),
				(unsigned long long)res[r]);
		}
	}

	health_family(f, t, "kshift_endpoint_quarantined", "gauge", H_QUARANTINED,
		      "1 while new flows stay off an endpoint, or try it one at a time.");
	health_family(f, t, "kshift_endpoint_quarantines_total", "counter", H_QUARANTINES,
		      "Times an endpoint entered quarantine.");
	health_family(f, t, "kshift_endpoint_refused_total", "counter", H_REFUSED,
		      "Handshakes an endpoint refused with a reset or an ICMP unreachable.");
	health_family(f, t, "kshift_endpoint_unanswered_total", "counter", H_UNANSWERED,
		      "Handshakes an endpoint left unanswered until the client retransmitted.");
	health_family(f, t, "kshift_endpoint_recovered_total", "counter", H_RECOVERED,
		      "Times an endpoint's answer to a handshake ended its quarantine.");

	if (!ks_dp_verdicts(t->dp, verdicts)) {
		help(f, "kshift_verdict_packets_total", "counter",
		     "Packets the dataplane saw, by what it did with them.");
		for (i = 0; i < KS_V_MAX; i++)
			fprintf(f, "kshift_verdict_packets_total{reason=\"%s\"} %llu\n",
				ks_verdict_name(i), (unsigned long long)verdicts[i]);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
			     char *body)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	ret = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload,
			      size_t *upload_len, void **state)
{
	struct ks_metrics *m = cls;
	const char *why;
	char *body;

	(void)version;
	(void)upload;
	(void)upload_len;
	(void)state;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", strdup("only GET\n"));
	why = m->ready(m->arg);
	if (!strcmp(url, "/healthz"))
		return reply(conn, MHD_HTTP_OK, "text/plain", strdup("ok\n"));
	if (!strcmp(url, "/readyz")) {
		if (!why)
			return reply(conn, MHD_HTTP_OK, "text/plain", strdup("ready\n"));
		if (asprintf(&body, "not ready: %s\n", why) < 0)
			return MHD_NO;
		return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", body);
	}
	if (!strcmp(url, "/metrics")) {
		body = ks_metrics_text(m->shifts, !why);
		if (!body)
			return MHD_NO;
		return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body);
	}
	return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain",
		     strdup("not found: try /metrics, /healthz or /readyz\n"));
}

static int parse_addr(const char *s, struct sockaddr_storage *ss, char *err, size_t errlen)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	const char *colon = strrchr(s, ':');
	char host[INET6_ADDRSTRLEN + 2];
	size_t hl = colon ? (size_t)(colon - s) : 0;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	port = colon ? strtol(colon + 1, &end, 10) : -1;
	if (!colon || !colon[1] || *end || port < 1 || port > 65535 || hl >= sizeof(host))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
			goto bad;
		return 0;
	}
	s6->sin6_family = AF_INET6; /* ":PORT": every address, both families */
	s6->sin6_port = htons(port);
	if (!hl)
		return 0;
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "--metrics-addr %s: must be ADDR:PORT, [ADDR]:PORT or :PORT", s);
	return -EINVAL;
}

int ks_metrics_start(struct ks_metrics **out, const char *addr, struct ks_shifts *shifts,
		     ks_ready_fn *ready, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct ks_metrics *m;
	unsigned flags = MHD_USE_EPOLL;
	int ret;

	ret = parse_addr(addr, &ss, err, errlen);
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->shifts = shifts;
	m->ready = ready;
	m->arg = arg;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_DUAL_STACK;
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handle, m, MHD_OPTION_SOCK_ADDR, &ss,
				  MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT,
				  64u, MHD_OPTION_END);
	if (!m->mhd) {
		ret = errno ? -errno : -EADDRINUSE;
		snprintf(err, errlen, "--metrics-addr %s: cannot listen: %s", addr, strerror(-ret));
		free(m);
		return ret;
	}
	*out = m;
	return 0;
}

int ks_metrics_fd(const struct ks_metrics *m)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);

	return info ? info->epoll_fd : -1;
}

void ks_metrics_serve(struct ks_metrics *m)
{
	MHD_run(m->mhd);
}

void ks_metrics_stop(struct ks_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->mhd);
	free(m);
}
