// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The config directory as a source of shifts; the rules are in config.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include "config.h"
#include "log.h"

#define DIR_EVENTS                                                                                 \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |                    \
	 IN_DELETE_SELF | IN_MOVE_SELF)
#define PARENT_EVENTS (IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR)

/* What the directory last applied of a shift. */
struct ks_config_applied {
	uint64_t fp;	/* of what runs: the file's spec, with an override's weights */
	uint64_t base;	/* of the file's spec */
	char path[PATH_MAX];
};

static void say(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ull + ts.tv_nsec / 1000000;
}

static size_t name_key(char *buf, size_t len, const char *ns, const char *name)
{
	return snprintf(buf, len, "%s/%s", ns, name);
}

/* ---- one file ---- */

void ks_config_file_free(struct ks_config_file *f)
{
	if (!f)
		return;
	ks_shifts_free(f->shifts, f->nr);
	free(f->fps);
	free(f->name);
	free(f->path);
	free(f->error);
	memset(f, 0, sizeof(*f));
}

static void set_error(struct ks_config_file *f, const char *msg)
{
	free(f->error);
	f->error = msg ? strdup(msg) : NULL;
}

int ks_config_file_parse(struct ks_config_file *f, const char *text, size_t len)
{
	char err[KS_ERR_LEN];
	struct ks_shift *shifts;
	uint64_t *fps;
	size_t nr, i;

	if (!len) {
		set_error(f, "empty: taken as a write in progress (a file that defines nothing "
			     "holds a comment)");
		return -EAGAIN;
	}
	if (ks_manifest_parse(text, len, &shifts, &nr, err, sizeof(err))) {
		set_error(f, err);
		return -EINVAL;
	}
	fps = calloc(nr + 1, sizeof(*fps));
	if (!fps) {
		ks_shifts_free(shifts, nr);
		set_error(f, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < nr; i++)
		fps[i] = ks_shift_fingerprint(&shifts[i]);
	ks_shifts_free(f->shifts, f->nr);
	free(f->fps);
	f->shifts = shifts;
	f->fps = fps;
	f->nr = nr;
	f->parsed = true;
	set_error(f, NULL);
	return 0;
}

/* ---- the rule ---- */

struct name_use {
	const struct ks_config_file *first, *second;
	unsigned count;
};

struct fe_key {
	struct ks_addr addr;
	uint16_t port;
	uint8_t proto;
	uint8_t family;
};

struct fe_claim {
	const struct ks_shift *shift;
	const struct ks_config_file *file;
};

static struct fe_key fe_key(const struct ks_ip *ip, const struct ks_port *p)
{
	struct fe_key k;

	memset(&k, 0, sizeof(k));
	k.addr = ip->addr;
	k.family = ip->family;
	k.port = p->port;
	k.proto = p->proto;
	return k;
}

int ks_config_desired(struct ks_config_file *const *files, size_t nr, ks_config_taken_fn taken,
		      void *arg, struct ks_config_want **want, size_t *nr_want,
		      struct ks_config_refusal **refused, size_t *nr_refused)
{
	struct ks_index names = {}, fronts = {};
	struct name_use *uses = NULL;
	struct fe_claim *claims = NULL;
	size_t total = 0, nu = 0, nc = 0, f, i, a, p, claims_cap = 0;
	char key[2 * KS_NAME_LEN], addr[INET6_ADDRSTRLEN];
	int ret = -ENOMEM;

	*want = NULL;
	*refused = NULL;
	*nr_want = *nr_refused = 0;
	for (f = 0; f < nr; f++) {
		total += files[f]->nr;
		for (i = 0; i < files[f]->nr; i++)
			claims_cap += files[f]->shifts[i].nr_addresses * files[f]->shifts[i].nr_ports;
	}
	uses = calloc(total + 1, sizeof(*uses));
	claims = calloc(claims_cap + 1, sizeof(*claims));
	*want = calloc(total + 1, sizeof(**want));
	*refused = calloc(total + 1, sizeof(**refused));
	if (!uses || !claims || !*want || !*refused)
		goto out;

	/* names: count the definitions of each */
	for (f = 0; f < nr; f++) {
		for (i = 0; i < files[f]->nr; i++) {
			const struct ks_shift *s = &files[f]->shifts[i];
			size_t len = name_key(key, sizeof(key), s->namespace, s->name);
			struct name_use *u = ks_index_get(&names, key, len);

			if (!u) {
				u = &uses[nu++];
				u->first = files[f];
				if (ks_index_put(&names, key, len, u))
					goto out;
			} else if (!u->second) {
				u->second = files[f];
			}
			u->count++;
		}
	}

	for (f = 0; f < nr; f++) {
		for (i = 0; i < files[f]->nr; i++) {
			const struct ks_shift *s = &files[f]->shifts[i];
			struct name_use *u = ks_index_get(
				&names, key, name_key(key, sizeof(key), s->namespace, s->name));
			struct ks_config_refusal *r = &(*refused)[*nr_refused];
			struct fe_claim *owner = NULL;
			struct fe_key k;
			size_t oa = 0, op = 0;

			r->shift = s;
			r->file = files[f];
			if (u->count > 1) {
				if (u->first == u->second)
					say(r->why, sizeof(r->why),
						 "%s/%s: defined %u times in %s: none is applied",
						 s->namespace, s->name, u->count, u->first->name);
				else
					say(r->why, sizeof(r->why),
						 "%s/%s: defined in both %s and %s (a name may be "
						 "defined once): neither is applied",
						 s->namespace, s->name, u->first->name,
						 u->second->name);
				(*nr_refused)++;
				continue;
			}
			if (taken && taken(arg, s, r->why, sizeof(r->why))) {
				(*nr_refused)++;
				continue;
			}
			for (a = 0; a < s->nr_addresses && !owner; a++) {
				for (p = 0; p < s->nr_ports && !owner; p++) {
					k = fe_key(&s->addresses[a], &s->ports[p]);
					owner = ks_index_get(&fronts, &k, sizeof(k));
					oa = a;
					op = p;
				}
			}
			if (owner) {
				say(r->why, sizeof(r->why),
					 "%s/%s: spec.frontend.addresses[%zu]: %s port %u/%s: "
					 "already the frontend of %s/%s from %s (the first file by "
					 "name keeps it)",
					 s->namespace, s->name, oa,
					 ks_ip_str(&s->addresses[oa], addr, sizeof(addr)),
					 s->ports[op].port,
					 s->ports[op].proto == IPPROTO_UDP ? "UDP" : "TCP",
					 owner->shift->namespace, owner->shift->name,
					 owner->file->name);
				(*nr_refused)++;
				continue;
			}
			for (a = 0; a < s->nr_addresses; a++) {
				for (p = 0; p < s->nr_ports; p++) {
					k = fe_key(&s->addresses[a], &s->ports[p]);
					claims[nc] = (struct fe_claim){ .shift = s, .file = files[f] };
					if (ks_index_put(&fronts, &k, sizeof(k), &claims[nc++]))
						goto out;
				}
			}
			(*want)[(*nr_want)++] = (struct ks_config_want){
				.shift = s,
				.fp = files[f]->fps ? files[f]->fps[i] : 0,
				.file = files[f],
			};
		}
	}
	ret = 0;
out:
	if (ret) {
		free(*want);
		free(*refused);
		*want = NULL;
		*refused = NULL;
		*nr_want = *nr_refused = 0;
	}
	ks_index_destroy(&names);
	ks_index_destroy(&fronts);
	free(uses);
	free(claims);
	return ret;
}

/* ---- the directory ---- */

static bool is_manifest(const char *name)
{
	const char *dot = strrchr(name, '.');

	return name[0] != '.' && dot &&
	       (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static int watch_dir(struct ks_config *c)
{
	if (c->inofd < 0)
		return -EBADF;
	c->wd_dir = inotify_add_watch(c->inofd, c->dir, DIR_EVENTS | IN_ONLYDIR);
	return c->wd_dir < 0 ? -errno : 0;
}

int ks_config_open(struct ks_config *c, const char *dir)
{
	char *copy;
	int err;

	memset(c, 0, sizeof(*c));
	c->inofd = c->wd_dir = c->wd_parent = -1;
	c->dir = strdup(dir);
	copy = strdup(dir);
	if (!c->dir || !copy) {
		free(copy);
		return -ENOMEM;
	}
	c->evfd = c->epfd = -1;
	c->inofd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	/* one fd for the loop: inotify, and the reader thread's "done" */
	c->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->inofd < 0 || c->evfd < 0 || c->epfd < 0 ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->inofd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.fd = c->inofd }) ||
	    epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->evfd,
		      &(struct epoll_event){ .events = EPOLLIN, .data.fd = c->evfd })) {
		err = -errno;
		free(copy);
		return err;
	}
	err = watch_dir(c);
	if (err)
		pr_warn("config: watching %s: %s\n", dir, strerror(-err));
	/* the parent, for the directory being replaced */
	c->wd_parent = inotify_add_watch(c->inofd, dirname(copy), PARENT_EVENTS);
	if (c->wd_parent < 0)
		pr_warn("config: watching the parent of %s: %s\n", dir, strerror(errno));
	free(copy);
	return err;
}

int ks_config_fd(const struct ks_config *c)
{
	return c->epfd;
}

static void plan_reload(struct ks_config *c);
static int start_reader(struct ks_config *c);

bool ks_config_event(struct ks_config *c)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	char *copy = strdup(c->dir), *base = copy ? basename(copy) : NULL;
	bool due = false, rewatch = false;
	uint64_t one;
	ssize_t n;
	char *p;

	/* the reader thread is done: what it read becomes a change */
	if (c->reading && read(c->evfd, &one, sizeof(one)) == sizeof(one)) {
		pthread_join(c->reader, NULL);
		c->reading = false;
		if (c->again) {
			/* the files changed while they were read: again */
			c->again = false;
			if (c->wd_dir < 0)
				watch_dir(c);
			if (!start_reader(c))
				goto inotify;
		}
		plan_reload(c);
	}
inotify:

	while ((n = read(c->inofd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->wd == c->wd_dir) {
				due = true;
				if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
					/* the directory went or moved away: its watch
					 * must not follow it */
					if (!(ev->mask & IN_IGNORED))
						inotify_rm_watch(c->inofd, c->wd_dir);
					c->wd_dir = -1;
					rewatch = true;
				}
			} else if (ev->wd == c->wd_parent && ev->len && base &&
				   !strcmp(ev->name, base)) {
				due = true;
				rewatch = true;
			}
			if (ev->mask & IN_Q_OVERFLOW)
				due = true;
		}
	}
	if (rewatch) {
		if (c->wd_dir >= 0)
			inotify_rm_watch(c->inofd, c->wd_dir);
		c->wd_dir = -1;
		if (!watch_dir(c))
			pr_info("config: watching %s again\n", c->dir);
	}
	free(copy);
	return due;
}

static void files_free(struct ks_config *c)
{
	size_t i;

	for (i = 0; i < c->nr_files; i++) {
		ks_config_file_free(c->files[i]);
		free(c->files[i]);
	}
	free(c->files);
	c->files = NULL;
	c->nr_files = 0;
}

static int free_applied(const void *key, size_t len, void *value, void *arg)
{
	(void)key;
	(void)len;
	(void)arg;
	free(value);
	return 0;
}

static void job_free(struct ks_config_job *j);

void ks_config_close(struct ks_config *c)
{
	/* a reader still parsing (tens of seconds over a huge file) must not
	 * hold up the exit: it is left to end with the process, with what it
	 * uses */
	if (c->reading) {
		pthread_detach(c->reader);
		return;
	}
	job_free(c->job);
	c->job = NULL;
	if (c->inofd >= 0)
		close(c->inofd);
	if (c->evfd >= 0)
		close(c->evfd);
	if (c->epfd >= 0)
		close(c->epfd);
	files_free(c);
	ks_index_foreach(&c->applied, free_applied, NULL);
	ks_index_destroy(&c->applied);
	ks_index_destroy(&c->refused);
	free(c->dir);
	memset(c, 0, sizeof(*c));
	c->inofd = c->wd_dir = c->wd_parent = c->evfd = c->epfd = -1;
}

static struct ks_config_file *file_of(struct ks_config *c, const char *name)
{
	struct ks_config_file **v, *f;
	size_t i;

	for (i = 0; i < c->nr_files; i++)
		if (!strcmp(c->files[i]->name, name))
			return c->files[i];
	v = realloc(c->files, (c->nr_files + 1) * sizeof(*v));
	if (!v)
		return NULL;
	c->files = v;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->name = strdup(name);
	if (f->name && asprintf(&f->path, "%s/%s", c->dir, name) < 0)
		f->path = NULL;
	if (!f->name || !f->path) {
		ks_config_file_free(f);
		free(f);
		return NULL;
	}
	c->files[c->nr_files++] = f;
	return f;
}

/* Reads f if it changed since the last read. */
static void read_file(struct ks_config_file *f)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	ssize_t r;
	int fd;

	fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		if (!f->error || strcmp(f->error, strerror(errno)))
			pr_warn("config: %s: %s; keeping what it had\n", f->path, strerror(errno));
		set_error(f, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		if (f->regular || !f->error)
			pr_warn("config: %s: not a regular file: skipped\n", f->path);
		f->regular = false;
		set_error(f, "not a regular file");
		ks_shifts_free(f->shifts, f->nr);
		f->shifts = NULL;
		f->nr = 0;
		f->parsed = false;
		close(fd);
		return;
	}
	f->regular = true;
	if ((f->parsed || f->error) && st.st_dev == f->dev && st.st_ino == f->ino &&
	    st.st_size == f->size &&
	    st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec == f->mtime_ns) {
		close(fd);
		return;
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime_ns = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	text = malloc(st.st_size + 1);
	while (text && len < (size_t)st.st_size) {
		r = read(fd, text + len, st.st_size - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += r;
	}
	close(fd);
	if (!text) {
		set_error(f, "out of memory");
		return;
	}
	text[len] = '\0';
	switch (ks_config_file_parse(f, text, len)) {
	case 0:
		break;
	case -EAGAIN:
		pr_warn("config: %s: %s; keeping its %zu shift(s)\n", f->path, f->error, f->nr);
		break;
	default:
		pr_warn("config: %s: %s; keeping what it had (%zu shift(s))\n", f->path,
			f->error, f->nr);
		break;
	}
	free(text);
}

static int by_file_name(const void *a, const void *b)
{
	return strcmp((*(struct ks_config_file *const *)a)->name,
		      (*(struct ks_config_file *const *)b)->name);
}

/* Rereads the directory: false if it is missing (what runs stays). */
static bool scan(struct ks_config *c)
{
	struct dirent *de;
	size_t i;
	DIR *dir;

	dir = opendir(c->dir);
	if (!dir) {
		if (!c->dir_missing)
			pr_warn("config: %s: %s; keeping the shifts it had until it is back\n",
				c->dir, strerror(errno));
		c->dir_missing = true;
		return false;
	}
	c->dir_missing = false;
	for (i = 0; i < c->nr_files; i++)
		c->files[i]->seen = false;
	while ((de = readdir(dir))) {
		struct ks_config_file *f;

		if (!is_manifest(de->d_name))
			continue;
		f = file_of(c, de->d_name);
		if (!f) {
			pr_warn("config: %s/%s: out of memory\n", c->dir, de->d_name);
			continue;
		}
		f->seen = true;
		read_file(f);
	}
	closedir(dir);
	for (i = 0; i < c->nr_files;) {
		if (c->files[i]->seen) {
			i++;
			continue;
		}
		ks_config_file_free(c->files[i]);
		free(c->files[i]);
		c->files[i] = c->files[--c->nr_files];
	}
	qsort(c->files, c->nr_files, sizeof(*c->files), by_file_name);
	return true;
}

bool ks_config_owns(const struct ks_config *c, const char *source)
{
	size_t n = strlen(c->dir);

	return source && !strncmp(source, c->dir, n) && source[n] == '/' &&
	       !strchr(source + n + 1, '/');
}

struct taken_arg {
	struct ks_config *c;
	struct ks_shifts *t;
};

/* A running shift of another source holding s's name or a frontend. */
static bool taken_by_other(void *arg, const struct ks_shift *s, char *why, size_t len)
{
	struct taken_arg *ta = arg;
	const struct ks_shift_state *st = ks_shifts_find(ta->t, s->namespace, s->name);
	char addr[INET6_ADDRSTRLEN];
	size_t a, p;

	if (st && !ks_config_owns(ta->c, st->source)) {
		say(why, len, "%s/%s: running from %s, which keeps it", s->namespace,
			 s->name, st->source);
		return true;
	}
	for (a = 0; a < s->nr_addresses; a++) {
		for (p = 0; p < s->nr_ports; p++) {
			st = ks_shifts_frontend_owner(ta->t, &s->addresses[a], &s->ports[p]);
			if (!st || ks_config_owns(ta->c, st->source))
				continue;
			say(why, len,
				 "%s/%s: spec.frontend.addresses[%zu]: %s port %u/%s: already the "
				 "frontend of %s/%s from %s, which keeps it",
				 s->namespace, s->name, a,
				 ks_ip_str(&s->addresses[a], addr, sizeof(addr)), s->ports[p].port,
				 s->ports[p].proto == IPPROTO_UDP ? "UDP" : "TCP",
				 st->spec.namespace, st->spec.name, st->source);
			return true;
		}
	}
	return false;
}

struct gone {
	char ns[KS_NAME_LEN], name[KS_NAME_LEN];
	char source[PATH_MAX];
};

/* A reload being applied, in steps from the loop. */
struct ks_config_job {
	struct ks_shifts *t;
	struct ks_state *state;
	struct ks_config_want *want;
	size_t nr_want;
	struct ks_config_refusal *refused;
	size_t nr_refused;
	struct ks_change *changes;
	size_t nr_changes;
	struct ks_shift *eff; /* the changes' shifts: the file's, with overrides */
	uint64_t *eff_fp;
	size_t nr_eff;
	struct gone *gone; /* the changes' deletions */
	struct ks_index wanted, refused_now;
	struct ks_commit *cm;
	bool state_dirty;
	uint64_t t0, t1, t2;
};

static void job_free(struct ks_config_job *j)
{
	if (!j)
		return;
	ks_shifts_commit_free(j->cm);
	ks_shifts_free(j->eff, j->nr_eff);
	free(j->eff_fp);
	free(j->changes);
	free(j->gone);
	free(j->want);
	free(j->refused);
	ks_index_destroy(&j->wanted);
	ks_index_destroy(&j->refused_now);
	free(j);
}

bool ks_config_busy(const struct ks_config *c)
{
	return c->job;
}

/* Logs refusals that are new or changed since the last reload. */
static int note_refusals(struct ks_config *c, struct ks_config_job *j)
{
	char key[2 * KS_NAME_LEN];
	size_t i;

	for (i = 0; i < j->nr_refused; i++) {
		const struct ks_shift *s = j->refused[i].shift;
		size_t len = name_key(key, sizeof(key), s->namespace, s->name);
		uint64_t h = 1469598103934665603ull;
		const char *p;

		for (p = j->refused[i].why; *p; p++)
			h = (h ^ (uint8_t)*p) * 1099511628211ull;
		h |= 1;
		if ((uint64_t)(uintptr_t)ks_index_get(&c->refused, key, len) != (uintptr_t)h)
			pr_warn("config: %s: refused: %s\n", j->refused[i].file->path,
				j->refused[i].why);
		if (ks_index_put(&j->refused_now, key, len, (void *)(uintptr_t)h))
			return -ENOMEM;
	}
	return 0;
}

/* What to apply (new, changed, or running from another file) and what to
 * remove (running from the directory, no longer wanted). */
static int plan(struct ks_config *c, struct ks_config_job *j)
{
	struct ks_shifts *t = j->t;
	char key[2 * KS_NAME_LEN];
	size_t i;

	j->changes = calloc(j->nr_want + t->n + 1, sizeof(*j->changes));
	j->eff = calloc(j->nr_want + 1, sizeof(*j->eff));
	j->eff_fp = calloc(j->nr_want + 1, sizeof(*j->eff_fp));
	j->gone = calloc(t->n + 1, sizeof(*j->gone));
	if (!j->changes || !j->eff || !j->eff_fp || !j->gone)
		return -ENOMEM;
	for (i = 0; i < j->nr_want; i++) {
		const struct ks_config_want *w = &j->want[i];
		const struct ks_shift *s = w->shift;
		size_t len = name_key(key, sizeof(key), s->namespace, s->name);
		const struct ks_override *o = ks_state_override(j->state, s->namespace, s->name);
		const struct ks_config_applied *ap = ks_index_get(&c->applied, key, len);
		const struct ks_shift_state *st = ks_shifts_find(t, s->namespace, s->name);
		uint64_t fp = w->fp;

		if (ks_index_put(&j->wanted, key, len, (void *)w))
			return -ENOMEM;
		if (o && o->base_fp != w->fp) {
			pr_info("config: %s: %s changed in the file: the weights set with kshiftctl "
				"give way to the file's\n",
				w->file->path, key);
			ks_state_drop_override(j->state, s->namespace, s->name);
			j->state_dirty = true;
			o = NULL;
		}
		if (o)
			fp = ks_override_fp(o);
		if (st && ap && ap->fp == fp && !strcmp(st->source, w->file->path))
			continue;
		if (ks_shift_copy(&j->eff[j->nr_eff], s))
			return -ENOMEM;
		if (o)
			ks_override_apply(o, &j->eff[j->nr_eff]);
		j->eff_fp[j->nr_eff] = fp;
		j->changes[j->nr_changes++] = (struct ks_change){
			.shift = &j->eff[j->nr_eff],
			.source = w->file->path,
		};
		j->nr_eff++;
	}
	for (i = 0; i < t->n; i++) {
		const struct ks_shift_state *st = t->v[i];
		struct gone *g = &j->gone[j->nr_changes - j->nr_eff];

		if (!ks_config_owns(c, st->source) ||
		    ks_index_get(&j->wanted, key,
				 name_key(key, sizeof(key), st->spec.namespace, st->spec.name)))
			continue;
		/* copies: the commit frees the states they come from */
		snprintf(g->ns, sizeof(g->ns), "%s", st->spec.namespace);
		snprintf(g->name, sizeof(g->name), "%s", st->spec.name);
		snprintf(g->source, sizeof(g->source), "%s", st->source);
		j->changes[j->nr_changes++] = (struct ks_change){ .ns = g->ns, .name = g->name };
	}
	return 0;
}

/* After the commit: what the directory applied, logged. */
static void done(struct ks_config *c, struct ks_config_job *j)
{
	uint64_t gen = ++j->state->generation;
	char key[2 * KS_NAME_LEN], w[256];
	size_t i, logged = 0;

	for (i = j->nr_eff; i < j->nr_changes; i++) {
		const struct gone *g = &j->gone[i - j->nr_eff];
		size_t len = name_key(key, sizeof(key), g->ns, g->name);

		free(ks_index_del(&c->applied, key, len));
		if (logged++ < 50)
			pr_info("config: %s: removed %s (generation %llu)\n", g->source, key,
				(unsigned long long)gen);
	}
	for (i = 0; i < j->nr_eff; i++) {
		struct ks_config_applied *ap;
		const struct ks_config_want *wt;
		size_t len = name_key(key, sizeof(key), j->eff[i].namespace, j->eff[i].name);

		ap = ks_index_get(&c->applied, key, len);
		if (!ap) {
			ap = calloc(1, sizeof(*ap));
			if (!ap || ks_index_put(&c->applied, key, len, ap)) {
				free(ap);
				continue;
			}
		}
		wt = ks_index_get(&j->wanted, key, len);
		ap->fp = j->eff_fp[i];
		ap->base = wt ? wt->fp : 0;
		snprintf(ap->path, sizeof(ap->path), "%s", j->changes[i].source);
		if (logged++ < 50)
			pr_info("config: %s: applied %s: %s%s (generation %llu)\n",
				j->changes[i].source, key, ks_shift_weights_str(&j->eff[i], w, sizeof(w)),
				ks_index_get(&c->refused, key, len) ? ", now applied" : "",
				(unsigned long long)gen);
	}
	if (logged > 50)
		pr_info("config: %s: ... and %zu more change(s) (generation %llu)\n", c->dir,
			logged - 50, (unsigned long long)gen);
	pr_info("config: %s: %zu change(s) in %llu ms (reading and parsing %llu ms, applying "
		"%llu ms, serving the socket in between)\n",
		c->dir, j->nr_changes, (unsigned long long)(now_ms() - j->t0),
		(unsigned long long)(j->t1 - j->t0), (unsigned long long)(now_ms() - j->t2));
}

/* The end of a reload, applied or not. */
static void finish(struct ks_config *c, struct ks_config_job *j, bool ok)
{
	if (ok) {
		ks_index_destroy(&c->refused);
		c->refused = j->refused_now;
		memset(&j->refused_now, 0, sizeof(j->refused_now));
	}
	if (j->state_dirty)
		ks_state_save(j->state, j->t);
	job_free(j);
	c->job = NULL;
	if (c->again) {
		c->again = false;
		if (c->wd_dir < 0)
			watch_dir(c);
		start_reader(c);
	}
}

int ks_config_step(struct ks_config *c, size_t budget)
{
	struct ks_config_job *j = c->job;
	int ret;

	if (!j)
		return 0;
	ret = ks_shifts_commit_step(j->cm, budget);
	if (ret == -EINPROGRESS)
		return ret;
	if (ret)
		pr_warn("config: %s: reload refused, what runs stays as it was: %s\n", c->dir,
			ks_shifts_commit_error(j->cm));
	else
		done(c, j);
	finish(c, j, !ret);
	return ret;
}

/* From what was read: the wanted set, and the change towards it checked
 * and under way (or refused, or none). */
static void plan_reload(struct ks_config *c)
{
	struct taken_arg ta = { .c = c, .t = c->t };
	struct ks_config_job *j;
	char err[KS_ERR_LEN] = "";
	int ret;

	if (!c->scan_ok)
		return;
	j = calloc(1, sizeof(*j));
	if (!j) {
		pr_warn("config: %s: out of memory\n", c->dir);
		return;
	}
	j->t = c->t;
	j->state = c->state;
	j->t0 = c->scan_t0;
	j->t1 = c->scan_t1;
	c->job = j;
	ret = ks_config_desired(c->files, c->nr_files, taken_by_other, &ta, &j->want,
				&j->nr_want, &j->refused, &j->nr_refused);
	if (!ret)
		ret = note_refusals(c, j);
	if (!ret)
		ret = plan(c, j);
	if (ret) {
		pr_warn("config: %s: out of memory\n", c->dir);
		finish(c, j, false);
		return;
	}
	if (!j->nr_changes) {
		finish(c, j, true);
		return;
	}
	j->t2 = now_ms();
	/* checked whole here, applied in steps by ks_config_step */
	ret = ks_shifts_commit_start(c->t, j->changes, j->nr_changes, &j->cm, err, sizeof(err));
	if (ret) {
		pr_warn("config: %s: reload refused, what runs stays as it was: %s\n", c->dir,
			err);
		finish(c, j, false);
	}
}

static void *reader(void *arg)
{
	struct ks_config *c = arg;
	uint64_t one = 1;

	c->scan_t0 = now_ms();
	c->scan_ok = scan(c);
	c->scan_t1 = now_ms();
	if (write(c->evfd, &one, sizeof(one)) != sizeof(one))
		pr_warn("config: %s: waking the loop: %s\n", c->dir, strerror(errno));
	return NULL;
}

/* Reads and parses the files in a thread of their own (a parser may take
 * seconds over tens of thousands of shifts); nothing else touches files
 * until it is done. */
static int start_reader(struct ks_config *c)
{
	int err = pthread_create(&c->reader, NULL, reader, c);

	if (err) {
		pr_warn("config: %s: starting a reader: %s\n", c->dir, strerror(err));
		return -err;
	}
	c->reading = true;
	return 0;
}

int ks_config_reload(struct ks_config *c, struct ks_shifts *t, struct ks_state *state, bool wait)
{
	c->t = t;
	c->state = state;
	if (c->reading || c->job) {
		c->again = true;
		return -EBUSY;
	}
	/* here, not in the reader: the watches are the loop's */
	if (c->wd_dir < 0 && !watch_dir(c))
		pr_info("config: watching %s again\n", c->dir);
	if (!wait && !start_reader(c))
		return 0;
	c->scan_t0 = now_ms();
	c->scan_ok = scan(c);
	c->scan_t1 = now_ms();
	plan_reload(c);
	return 0;
}

bool ks_config_base_fp(const struct ks_config *c, const char *ns, const char *name,
		       uint64_t *fp)
{
	char key[2 * KS_NAME_LEN];
	const struct ks_config_applied *ap =
		ks_index_get(&c->applied, key, name_key(key, sizeof(key), ns, name));

	if (!ap)
		return false;
	*fp = ap->base;
	return true;
}

void ks_config_note_running(struct ks_config *c, const char *ns, const char *name, uint64_t fp)
{
	char key[2 * KS_NAME_LEN];
	struct ks_config_applied *ap =
		ks_index_get(&c->applied, key, name_key(key, sizeof(key), ns, name));

	if (ap)
		ap->fp = fp;
}

/* ---- a manifest parsed aside ---- */

int ks_parse_job_init(struct ks_parse_job *j)
{
	memset(j, 0, sizeof(*j));
	j->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return j->fd < 0 ? -errno : 0;
}

static void *parse_job(void *arg)
{
	struct ks_parse_job *j = arg;
	uint64_t one = 1;

	j->ret = ks_manifest_parse(j->text, j->len, &j->shifts, &j->nr, j->err, sizeof(j->err));
	if (write(j->fd, &one, sizeof(one)) != sizeof(one))
		pr_warn("apply: waking the loop: %s\n", strerror(errno));
	return NULL;
}

int64_t ks_parse_job_start(struct ks_parse_job *j, const char *text, size_t len)
{
	int err;

	if (j->running || j->done)
		return -EBUSY;
	j->text = malloc(len + 1);
	if (!j->text)
		return -ENOMEM;
	memcpy(j->text, text, len);
	j->text[len] = '\0';
	j->len = len;
	j->shifts = NULL;
	j->nr = 0;
	j->err[0] = '\0';
	err = pthread_create(&j->thread, NULL, parse_job, j);
	if (err) {
		free(j->text);
		j->text = NULL;
		return -err;
	}
	j->running = true;
	j->id = ++j->next_id;
	return j->id;
}

bool ks_parse_job_event(struct ks_parse_job *j)
{
	uint64_t one;

	if (!j->running || read(j->fd, &one, sizeof(one)) != sizeof(one))
		return false;
	pthread_join(j->thread, NULL);
	j->running = false;
	j->done = true;
	free(j->text);
	j->text = NULL;
	return true;
}

int ks_parse_job_take(struct ks_parse_job *j, struct ks_shift **shifts, size_t *nr, char *err,
		      size_t errlen)
{
	int ret = j->ret;

	*shifts = j->shifts;
	*nr = j->nr;
	if (ret)
		snprintf(err, errlen, "%s", j->err);
	j->shifts = NULL;
	j->nr = 0;
	j->done = false;
	j->id = 0;
	return ret;
}

void ks_parse_job_drop(struct ks_parse_job *j)
{
	if (!j->done)
		return;
	ks_shifts_free(j->shifts, j->nr);
	j->shifts = NULL;
	j->nr = 0;
	j->done = false;
	j->id = 0;
}

void ks_parse_job_destroy(struct ks_parse_job *j)
{
	/* one still running ends with the process */
	if (j->running) {
		pthread_detach(j->thread);
		return;
	}
	ks_parse_job_drop(j);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}
