// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer harness of what kshiftd --kubernetes reads from the network:
 * watch lines of TrafficShifts, Services and EndpointSlices into the store
 * (user/lib/kube_watch.c), then every TrafficShift in it through the model
 * (user/lib/kube_model.c) as the daemon resolves it. The input is lines;
 * each line's first byte picks the kind ('t', 's', anything else: an
 * EndpointSlice) and the rest is one watch event, e.g.
 *   s{"type":"ADDED","object":{"kind":"Service","metadata":{...},"spec":{...}}}
 * Besides ASan and UBSan's findings, a refused shift must say why, and an
 * accepted one must come back out as JSON that the manifest parser takes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube_model.h"

#define MAX_REFS 16

struct walk {
	struct ks_kube_store *store;
};

static void check_json(const struct ks_shift *s)
{
	struct json_object *o = ks_shift_to_json(s);
	const char *text;
	struct ks_shift *again;
	char err[KS_ERR_LEN];
	size_t nr;

	if (!o)
		return;
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (ks_manifest_parse(text, strlen(text), &again, &nr, err, sizeof(err))) {
		fprintf(stderr, "JSON of a Kubernetes shift refused: %s\n%s\n", err, text);
		abort();
	}
	ks_shifts_free(again, nr);
	json_object_put(o);
}

static int model_one(const void *key, size_t len, void *value, void *arg)
{
	struct walk *w = arg;
	const char *names[MAX_REFS];
	char unresolved[KS_ERR_LEN] = "", err[KS_ERR_LEN] = "";
	struct ks_shift s;
	size_t i, n;

	(void)key, (void)len;
	n = ks_kube_model_refs(value, names, MAX_REFS);
	for (i = 0; i < n && i < MAX_REFS; i++)
		if (!names[i])
			abort();
	memset(&s, 0, sizeof(s));
	if (ks_kube_model_shift(value, w->store, &s, unresolved, sizeof(unresolved), err,
				sizeof(err))) {
		if (!err[0])
			abort(); /* refused without a word */
		ks_shift_free(&s);
		return 0;
	}
	check_json(&s);
	ks_shift_free(&s);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ks_kube_store store;
	struct ks_kube_change *changes;
	char *text, *line, *next, *rv = NULL;
	struct walk w = { .store = &store };
	enum ks_kube_kind kind;
	size_t nr;

	if (ks_kube_store_init(&store, NULL))
		return 0;
	text = malloc(size + 1);
	if (!text)
		goto out;
	memcpy(text, data, size);
	text[size] = '\0';
	for (line = text; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		kind = *line == 't'   ? KS_KUBE_TRAFFICSHIFT
		       : *line == 's' ? KS_KUBE_SERVICE
				      : KS_KUBE_ENDPOINTSLICE;
		ks_kube_store_event(&store, kind, line + 1, &rv);
	}
	pthread_mutex_lock(&store.lock);
	ks_kube_store_drain(&store, &changes, &nr);
	ks_kube_changes_free(changes, nr);
	ks_index_foreach(&store.objs[KS_KUBE_TRAFFICSHIFT], model_one, &w);
	pthread_mutex_unlock(&store.lock);
out:
	free(rv);
	free(text);
	ks_kube_store_destroy(&store);
	return 0;
}
