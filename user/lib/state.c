// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Runtime changes kept across restarts: --state-dir DIR, file DIR/state.json.
 *
 * How changes through the control socket and the config directory combine:
 *
 *   - Every shift has one owner, its source: "api" (kshiftctl apply), a
 *     file of the config directory, or Kubernetes.
 *   - `kshiftctl apply` creates or replaces "api" shifts only. Applying a
 *     name that a file or Kubernetes owns is refused (change it there), as
 *     is a frontend another shift serves. `kshiftctl delete` likewise
 *     deletes "api" shifts only.
 *   - "api" shifts persist: after every successful change, every "api"
 *     shift as it runs (its current weights included) is written here, and
 *     they are applied again at start, before the config directory is read
 *     and before the control socket serves anyone.
 *   - `set`, `switch`, `promote` and `rollback` work on every shift. On an
 *     "api" shift the new weights are part of it (above). On a config file's
 *     shift they persist as an override of the file's weights, bound to the
 *     file's spec of the shift as it was then (a fingerprint): it holds across
 *     restarts and reloads for as long as the file says the same about the
 *     shift, and is dropped (logged) as soon as the file changes it: whoever
 *     edits the file last wins. Weights set on a Kubernetes shift are not
 *     kept here: the custom resource is where they live.
 *   - A state file that cannot be read or parsed is left alone (logged), and
 *     kshiftd starts with the config directory only.
 *
 * Writes go to a temporary file in DIR, fsync, rename over state.json,
 * then fsync of DIR, so a crash leaves the old state or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <json-c/json.h>
#include "log.h"
#include "state.h"

#define FNV64_BASIS 0xcbf29ce484222325ull
#define FNV64_PRIME 0x00000100000001b3ull

static uint64_t fnv(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len--)
		h = (h ^ *b++) * FNV64_PRIME;
	return h;
}

uint64_t ks_shift_fingerprint(const struct ks_shift *s)
{
	struct json_object *j = ks_shift_to_json(s);
	const char *text;
	uint64_t h;

	if (!j)
		return 0;
	text = json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN);
	h = fnv(FNV64_BASIS, text, strlen(text));
	json_object_put(j);
	return h ? h : 1;
}

const char *ks_shift_weights_str(const struct ks_shift *s, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < s->nr_backends && off < len; i++)
		off += snprintf(buf + off, len - off, "%s%s=%u", i ? " " : "", s->backends[i].name,
				s->backends[i].weight);
	return buf;
}

static size_t name_key(char *buf, size_t len, const char *ns, const char *name)
{
	return snprintf(buf, len, "%s/%s", ns, name);
}

int ks_state_open(struct ks_state *s, const char *dir)
{
	memset(s, 0, sizeof(*s));
	if (!dir)
		return 0;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	if (asprintf(&s->path, "%s/%s", dir, KS_STATE_FILE) < 0) {
		s->path = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int free_override(const void *key, size_t len, void *value, void *arg)
{
	(void)key;
	(void)len;
	(void)arg;
	free(value);
	return 0;
}

void ks_state_close(struct ks_state *s)
{
	ks_index_foreach(&s->overrides, free_override, NULL);
	ks_index_destroy(&s->overrides);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

const struct ks_override *ks_state_override(const struct ks_state *s, const char *ns,
					    const char *name)
{
	char key[2 * KS_NAME_LEN];

	return ks_index_get(&s->overrides, key, name_key(key, sizeof(key), ns, name));
}

void ks_state_drop_override(struct ks_state *s, const char *ns, const char *name)
{
	char key[2 * KS_NAME_LEN];

	free(ks_index_del(&s->overrides, key, name_key(key, sizeof(key), ns, name)));
}

static int put_override(struct ks_state *s, struct ks_override *o)
{
	char key[2 * KS_NAME_LEN];
	size_t len = name_key(key, sizeof(key), o->ns, o->name);
	struct ks_override *old = ks_index_get(&s->overrides, key, len);

	if (ks_index_put(&s->overrides, key, len, o))
		return -ENOMEM;
	free(old);
	return 0;
}

int ks_state_set_override(struct ks_state *s, const struct ks_shift *now, uint64_t base_fp)
{
	struct ks_override *o = calloc(1, sizeof(*o));
	size_t i;

	if (!o)
		return -ENOMEM;
	snprintf(o->ns, sizeof(o->ns), "%s", now->namespace);
	snprintf(o->name, sizeof(o->name), "%s", now->name);
	o->base_fp = base_fp;
	o->n = now->nr_backends;
	for (i = 0; i < o->n; i++) {
		snprintf(o->names[i], sizeof(o->names[i]), "%s", now->backends[i].name);
		o->weights[i] = now->backends[i].weight;
	}
	if (put_override(s, o)) {
		free(o);
		return -ENOMEM;
	}
	return 0;
}

uint64_t ks_override_fp(const struct ks_override *o)
{
	uint64_t h = fnv(FNV64_BASIS, &o->base_fp, sizeof(o->base_fp));
	size_t i;

	for (i = 0; i < o->n; i++) {
		h = fnv(h, o->names[i], strlen(o->names[i]) + 1);
		h = fnv(h, &o->weights[i], sizeof(o->weights[i]));
	}
	return h == o->base_fp ? h + 1 : h;
}

void ks_override_apply(const struct ks_override *o, struct ks_shift *spec)
{
	size_t i;
	int b;

	for (i = 0; i < o->n; i++) {
		b = ks_shift_backend(spec, o->names[i]);
		if (b >= 0)
			spec->backends[b].weight = o->weights[i];
	}
}

/* ---- the file ---- */

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t r;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (!fstat(fd, &st) && (buf = malloc(st.st_size + 1))) {
		while (n < (size_t)st.st_size && (r = read(fd, buf + n, st.st_size - n)) > 0)
			n += r;
		buf[n] = '\0';
		*len = n;
	}
	close(fd);
	return buf;
}

static const char *str_of(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static int load_overrides(struct ks_state *s, struct json_object *arr, char *err, size_t errlen)
{
	size_t i, n = json_object_array_length(arr);

	for (i = 0; i < n; i++) {
		struct json_object *item = json_object_array_get_idx(arr, i), *w;
		const char *ns = str_of(item, "namespace"), *name = str_of(item, "name");
		const char *base = str_of(item, "base");
		struct ks_override *o;

		if (!ns || !name || !base || !json_object_object_get_ex(item, "weights", &w) ||
		    !json_object_is_type(w, json_type_object)) {
			snprintf(err, errlen, "overrides[%zu]: namespace, name, base or weights "
					      "missing", i);
			return -EINVAL;
		}
		o = calloc(1, sizeof(*o));
		if (!o)
			return -ENOMEM;
		snprintf(o->ns, sizeof(o->ns), "%s", ns);
		snprintf(o->name, sizeof(o->name), "%s", name);
		o->base_fp = strtoull(base, NULL, 16);
		json_object_object_foreach(w, key, val) {
			if (o->n == KS_MAX_BACKENDS)
				break;
			snprintf(o->names[o->n], sizeof(o->names[o->n]), "%s", key);
			o->weights[o->n++] = json_object_get_int64(val);
		}
		if (put_override(s, o)) {
			free(o);
			return -ENOMEM;
		}
	}
	return 0;
}

int ks_state_load(struct ks_state *s, struct ks_shift **api, size_t *nr, char *err, size_t errlen)
{
	struct json_object *doc = NULL, *shifts, *ovr, *gen;
	char *text, *manifest = NULL;
	size_t len = 0, i, n, off = 0, cap = 1;
	int ret = 0;

	*api = NULL;
	*nr = 0;
	if (!s->path)
		return 0;
	text = slurp(s->path, &len);
	if (!text) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", s->path, strerror(errno));
		return -errno;
	}
	doc = json_tokener_parse(text);
	free(text);
	if (!doc || !json_object_is_type(doc, json_type_object)) {
		snprintf(err, errlen, "%s: not a JSON object", s->path);
		ret = -EINVAL;
		goto out;
	}
	if (json_object_object_get_ex(doc, "generation", &gen))
		s->generation = json_object_get_int64(gen);
	if (json_object_object_get_ex(doc, "overrides", &ovr) &&
	    json_object_is_type(ovr, json_type_array)) {
		ret = load_overrides(s, ovr, err, errlen);
		if (ret)
			goto out;
	}
	if (!json_object_object_get_ex(doc, "shifts", &shifts) ||
	    !json_object_is_type(shifts, json_type_array) ||
	    !(n = json_object_array_length(shifts)))
		goto out;
	/* the shifts as one multi-document manifest, through the parser that
	 * checks every manifest */
	for (i = 0; i < n; i++)
		cap += strlen(json_object_to_json_string_ext(json_object_array_get_idx(shifts, i),
							     JSON_C_TO_STRING_PLAIN)) +
		       6;
	manifest = malloc(cap);
	if (!manifest) {
		ret = -ENOMEM;
		goto out;
	}
	for (i = 0; i < n; i++)
		off += sprintf(manifest + off, "%s%s", i ? "\n---\n" : "",
			       json_object_to_json_string_ext(json_object_array_get_idx(shifts, i),
							      JSON_C_TO_STRING_PLAIN));
	if (ks_manifest_parse(manifest, off, api, nr, err, errlen)) {
		char why[KS_ERR_LEN];

		snprintf(why, sizeof(why), "%s", err);
		snprintf(err, errlen, "%s: shifts: %s", s->path, why);
		ret = -EINVAL;
	}
out:
	free(manifest);
	json_object_put(doc);
	return ret;
}

struct save_ctx {
	struct json_object *arr;
};

static int save_override(const void *key, size_t len, void *value, void *arg)
{
	const struct ks_override *o = value;
	struct json_object *item = json_object_new_object(), *w = json_object_new_object();
	char base[32];
	size_t i;

	(void)key;
	(void)len;
	snprintf(base, sizeof(base), "%016llx", (unsigned long long)o->base_fp);
	json_object_object_add(item, "namespace", json_object_new_string(o->ns));
	json_object_object_add(item, "name", json_object_new_string(o->name));
	json_object_object_add(item, "base", json_object_new_string(base));
	for (i = 0; i < o->n; i++)
		json_object_object_add(w, o->names[i], json_object_new_int64(o->weights[i]));
	json_object_object_add(item, "weights", w);
	json_object_array_add(((struct save_ctx *)arg)->arr, item);
	return 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len) {
		w = write(fd, buf, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= w;
	}
	return 0;
}

int ks_state_save(struct ks_state *s, struct ks_shifts *t)
{
	struct save_ctx ctx = {};
	char *text = NULL, *tmp = NULL, *dir = NULL, *slash;
	const char *saved, *sep = "";
	size_t len = 0, i;
	int fd = -1, dfd, ret = 0;
	FILE *f;

	if (!s->path)
		return 0;
	/* written as text, each shift's from its cache (ks_shifts_saved): at
	 * 100,000 shifts, building and printing them all again took seconds */
	f = open_memstream(&text, &len);
	ctx.arr = json_object_new_array();
	if (!f || !ctx.arr) {
		ret = -ENOMEM;
		goto out;
	}
	fprintf(f, "{\"version\":1,\"generation\":%llu,\"shifts\":[",
		(unsigned long long)s->generation);
	for (i = 0; i < t->n && !ret; i++) {
		if (strcmp(t->v[i]->source, "api"))
			continue;
		saved = ks_shifts_saved(t->v[i]);
		if (!saved)
			ret = -ENOMEM;
		else
			fprintf(f, "%s%s", sep, saved);
		sep = ",";
	}
	ks_index_foreach(&s->overrides, save_override, &ctx);
	fprintf(f, "],\"overrides\":%s}\n",
		json_object_to_json_string_ext(ctx.arr, JSON_C_TO_STRING_PLAIN));
	if (fclose(f))
		ret = -ENOMEM;
	f = NULL;
	if (ret || asprintf(&tmp, "%s.tmp", s->path) < 0 || !(dir = strdup(s->path))) {
		ret = -ENOMEM;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (ret = write_all(fd, text, len)) || fsync(fd) || rename(tmp, s->path)) {
		ret = ret ? ret : -errno;
		unlink(tmp);
		goto out;
	}
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	if (ret)
		pr_warn("state: writing %s: %s: runtime changes will not survive a restart\n",
			s->path, strerror(-ret));
	if (fd >= 0)
		close(fd);
	if (f)
		fclose(f);
	free(text);
	free(tmp);
	free(dir);
	json_object_put(ctx.arr);
	return ret;
}
