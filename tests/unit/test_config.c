// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Unit tests of the config directory's rule (user/lib/config.c), as pure
 * logic: files given as text, what runs and what is refused. A frontend
 * shared by two files goes to the first by name and moves to the other
 * when the first goes; a name in two files runs from neither until one
 * goes; an empty or half-written file keeps what it had; a shift of
 * another source keeps its frontend; any history of edits ends where a
 * fresh load of the final files does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "lib/config.h"

static char *doc(const char *name, const char *vip)
{
	char *s;

	if (asprintf(&s,
		     "apiVersion: kshift.dev/v1alpha1\n"
		     "kind: TrafficShift\n"
		     "metadata: {name: %s}\n"
		     "spec:\n"
		     "  frontend:\n"
		     "    addresses: [\"%s\"]\n"
		     "    ports: [{port: 80, protocol: TCP}]\n"
		     "  backends:\n"
		     "  - {name: stable, endpoints: [\"198.18.2.2:8080\"], weight: 90}\n"
		     "  - {name: canary, endpoints: [\"198.18.3.2:8080\"], weight: 10}\n",
		     name, vip) < 0)
		return NULL;
	return s;
}

/* A directory of up to 8 files, kept sorted by name as ks_config_scan does. */
struct dir {
	struct ks_config_file *f[8];
	size_t n;
};

static struct ks_config_file *file(struct dir *d, const char *name)
{
	size_t i, j;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->f[i]->name, name))
			return d->f[i];
	for (i = 0; i < d->n && strcmp(d->f[i]->name, name) < 0; i++)
		;
	for (j = d->n; j > i; j--)
		d->f[j] = d->f[j - 1];
	d->f[i] = calloc(1, sizeof(**d->f));
	assert_non_null(d->f[i]);
	d->f[i]->name = strdup(name);
	d->f[i]->regular = true;
	d->n++;
	return d->f[i];
}

static int put(struct dir *d, const char *name, const char *text)
{
	return ks_config_file_parse(file(d, name), text, strlen(text));
}

/* put with one shift document */
static void put1(struct dir *d, const char *file_name, const char *shift, const char *vip)
{
	char *t = doc(shift, vip);

	assert_int_equal(put(d, file_name, t), 0);
	free(t);
}

static void rm(struct dir *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (strcmp(d->f[i]->name, name))
			continue;
		ks_config_file_free(d->f[i]);
		free(d->f[i]);
		memmove(&d->f[i], &d->f[i + 1], (d->n - i - 1) * sizeof(d->f[0]));
		d->n--;
		return;
	}
}

static void dir_free(struct dir *d)
{
	while (d->n)
		rm(d, d->f[0]->name);
}

/* What runs, as "name@file name@file ...", and the refusals' reasons. */
static void desired(struct dir *d, ks_config_taken_fn taken, char *out, size_t len, char *why,
		    size_t whylen)
{
	struct ks_config_want *w;
	struct ks_config_refusal *r;
	size_t nw, nr, i, off = 0;

	assert_int_equal(ks_config_desired(d->f, d->n, taken, NULL, &w, &nw, &r, &nr), 0);
	out[0] = '\0';
	for (i = 0; i < nw; i++)
		off += snprintf(out + off, len - off, "%s%s@%s", i ? " " : "", w[i].shift->name,
				w[i].file->name);
	if (why) {
		why[0] = '\0';
		for (i = 0, off = 0; i < nr; i++)
			off += snprintf(why + off, whylen - off, "%s[%s] %s", i ? "\n" : "",
					r[i].file->name, r[i].why);
	}
	free(w);
	free(r);
}

static void test_shared_frontend(void **state)
{
	struct dir d = {};
	char run[1024], why[4096];

	(void)state;
	put1(&d, "web.yaml", "web", "198.18.100.1");
	put1(&d, "web2.yaml", "web2", "198.18.100.1");
	desired(&d, NULL, run, sizeof(run), why, sizeof(why));
	assert_string_equal(run, "web@web.yaml");
	/* the refusal names the frontend, the winner and its file */
	assert_non_null(strstr(why, "[web2.yaml]"));
	assert_non_null(strstr(why, "198.18.100.1 port 80/TCP"));
	assert_non_null(strstr(why, "default/web from web.yaml"));
	/* the winner goes: the other runs */
	rm(&d, "web.yaml");
	desired(&d, NULL, run, sizeof(run), why, sizeof(why));
	assert_string_equal(run, "web2@web2.yaml");
	assert_string_equal(why, "");
	/* it comes back: first by name wins again, as a fresh load would */
	put1(&d, "web.yaml", "web", "198.18.100.1");
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "web@web.yaml");
	dir_free(&d);
}

static void test_same_name(void **state)
{
	struct dir d = {};
	char run[1024], why[4096];

	(void)state;
	put1(&d, "a.yaml", "web", "198.18.100.1");
	put1(&d, "b.yaml", "web", "198.18.100.2");
	put1(&d, "c.yaml", "other", "198.18.100.3");
	desired(&d, NULL, run, sizeof(run), why, sizeof(why));
	assert_string_equal(run, "other@c.yaml");
	/* refused in both places, each naming both files */
	assert_non_null(strstr(why, "[a.yaml] default/web: defined in both a.yaml and b.yaml"));
	assert_non_null(strstr(why, "[b.yaml] default/web: defined in both a.yaml and b.yaml"));
	/* removing either applies the other */
	rm(&d, "a.yaml");
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "web@b.yaml other@c.yaml");
	put1(&d, "a.yaml", "web", "198.18.100.1");
	rm(&d, "b.yaml");
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "web@a.yaml other@c.yaml");
	/* twice in one file: the parser refuses the file, which defines
	 * nothing then */
	{
		char *t1 = doc("dup", "198.18.100.7"), *t2 = doc("dup", "198.18.100.8"), *t;

		assert_true(asprintf(&t, "%s---\n%s", t1, t2) > 0);
		assert_int_equal(put(&d, "d.yaml", t), -EINVAL);
		assert_non_null(strstr(file(&d, "d.yaml")->error, "defined twice"));
		desired(&d, NULL, run, sizeof(run), NULL, 0);
		assert_string_equal(run, "web@a.yaml other@c.yaml");
		free(t1);
		free(t2);
		free(t);
	}
	dir_free(&d);
}

static void test_truncated_and_empty(void **state)
{
	struct dir d = {};
	char run[1024];
	char *t = doc("web", "198.18.100.1");

	(void)state;
	put1(&d, "web.yaml", "web", "198.18.100.1");
	/* truncated: 0 bytes is a write in progress */
	assert_int_equal(put(&d, "web.yaml", ""), -EAGAIN);
	assert_non_null(file(&d, "web.yaml")->error);
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "web@web.yaml");
	/* half written: keeps its last good version */
	t[strlen(t) / 2] = '\0';
	assert_int_equal(put(&d, "web.yaml", t), -EINVAL);
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "web@web.yaml");
	/* the write completes */
	put1(&d, "web.yaml", "web", "198.18.100.1");
	assert_null(file(&d, "web.yaml")->error);
	/* a file that says nothing on purpose defines nothing */
	assert_int_equal(put(&d, "web.yaml", "# nothing here for now\n"), 0);
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "");
	/* a new file that never parsed defines nothing */
	assert_int_equal(put(&d, "new.yaml", "kind: [\n"), -EINVAL);
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "");
	free(t);
	dir_free(&d);
}

/* Another source's shift holds 198.18.100.9 and the name "api-owned". */
static bool taken(void *arg, const struct ks_shift *s, char *why, size_t len)
{
	(void)arg;
	if (!strcmp(s->name, "api-owned") ||
	    (s->addresses[0].family == KS_FAMILY_V4 &&
	     s->addresses[0].addr.v4 == htonl(0xc6126409))) {
		snprintf(why, len, "%s: taken by the api", s->name);
		return true;
	}
	return false;
}

static void test_other_source(void **state)
{
	struct dir d = {};
	char run[1024], why[4096];

	(void)state;
	put1(&d, "a.yaml", "x", "198.18.100.9");
	put1(&d, "b.yaml", "y", "198.18.100.9");
	put1(&d, "c.yaml", "api-owned", "198.18.100.10");
	desired(&d, taken, run, sizeof(run), why, sizeof(why));
	assert_string_equal(run, "");
	assert_non_null(strstr(why, "[a.yaml] x: taken by the api"));
	/* without the other source, the first file by name takes it */
	desired(&d, NULL, run, sizeof(run), NULL, 0);
	assert_string_equal(run, "x@a.yaml api-owned@c.yaml");
	dir_free(&d);
}

/* Every order of adding, changing and removing ends where a fresh load of
 * the final directory does. */
static void test_history_free(void **state)
{
	static const char *names[] = { "a.yaml", "b.yaml", "c.yaml" };
	static const char *vips[] = { "198.18.100.1", "198.18.100.2" };
	static const char *shifts[] = { "web", "api", "db" };
	char run[1024], fresh_run[1024];
	unsigned seed = 1;
	int round, step;

	(void)state;
	for (round = 0; round < 200; round++) {
		struct dir d = {}, fresh = {};
		size_t i;

		for (step = 0; step < 12; step++) {
			const char *n = names[rand_r(&seed) % 3];

			switch (rand_r(&seed) % 4) {
			case 0:
				rm(&d, n);
				break;
			case 1:
				/* a failed write: keeps what the file had */
				put(&d, n, rand_r(&seed) % 2 ? "" : "spec: [");
				break;
			default:
				put1(&d, n, shifts[rand_r(&seed) % 3], vips[rand_r(&seed) % 2]);
				break;
			}
		}
		/* the final directory: every file with a good version as it
		 * reads now; a fresh load of it */
		for (i = 0; i < d.n; i++) {
			if (!d.f[i]->parsed)
				continue;
			struct ks_config_file *f = file(&fresh, d.f[i]->name);
			size_t k;

			f->shifts = calloc(d.f[i]->nr + 1, sizeof(*f->shifts));
			f->fps = calloc(d.f[i]->nr + 1, sizeof(*f->fps));
			for (k = 0; k < d.f[i]->nr; k++)
				assert_int_equal(ks_shift_copy(&f->shifts[k], &d.f[i]->shifts[k]),
						 0);
			f->nr = d.f[i]->nr;
			f->parsed = true;
		}
		desired(&d, NULL, run, sizeof(run), NULL, 0);
		desired(&fresh, NULL, fresh_run, sizeof(fresh_run), NULL, 0);
		assert_string_equal(run, fresh_run);
		dir_free(&d);
		dir_free(&fresh);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_frontend),	 cmocka_unit_test(test_same_name),
		cmocka_unit_test(test_truncated_and_empty), cmocka_unit_test(test_other_source),
		cmocka_unit_test(test_history_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
