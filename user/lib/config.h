/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The config directory (--config-dir) as a source of shifts, for the
 * daemon's epoll loop. What runs from it is a function of the files in it,
 * whatever the order in which they were added, changed and removed:
 *
 *   - Files are *.yaml, *.yml and *.json not starting with ".", taken in
 *     file name order (strcmp). Anything else that is not a regular file
 *     (a directory called x.yaml) is skipped, and logged once.
 *   - Each shift of a file stands on its own. A name (namespace/name)
 *     defined in two files, or twice in one, runs from neither: it is
 *     refused in every place, logged naming the files. Removing all but one
 *     definition applies that one.
 *   - A frontend (address, port, protocol) claimed by two shifts goes to
 *     the one in the file first by name (within a file: the first); the
 *     other is refused and re-checked on every reload, so it is applied
 *     ("now applied") once the winner is gone.
 *   - A shift of another source (kshiftctl apply, Kubernetes) that is
 *     running keeps its name and frontends: a file shift that would take
 *     them is refused, and applied once the other is gone.
 *   - A file that cannot be parsed, or cannot be read, keeps what it last
 *     had (its last good version, if any), as does an empty (0-byte) file:
 *     editors and `>` redirections truncate first and write after, so an
 *     empty file is taken as a write in progress. A file that deliberately
 *     defines nothing holds a comment or "---". Writers should write a
 *     temporary file (a name starting with "." or not ending in .yaml) and
 *     rename it into place: rename is atomic, and a reader never sees half.
 *   - A missing directory keeps what runs until it reappears (a directory
 *     being replaced: `mv conf conf.old; mkdir conf`); the new directory is
 *     watched as soon as it appears, without SIGHUP. An empty directory
 *     defines nothing.
 *   - Each reload is one all-or-nothing change of the running set (see
 *     ks_shifts_commit): if the wanted set does not fit (services, endpoint
 *     slots), nothing changes and the reason is logged.
 *
 * Weights set with kshiftctl on a file's shift stay (state.c) until the
 * file changes that shift.
 */
#ifndef KSHIFT_CONFIG_H
#define KSHIFT_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>
#include "index.h"
#include "shift.h"
#include "shifts.h"
#include "state.h"

/* A file of the directory as last read. */
struct ks_config_file {
	char *name;	    /* in the directory, e.g. "web.yaml" */
	char *path;	    /* dir/name: the source of its shifts */
	bool regular;	    /* false: skipped */
	bool parsed;	    /* shifts is its last good version */
	dev_t dev;	    /* what was read, to skip unchanged files */
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
	struct ks_shift *shifts;
	uint64_t *fps; /* ks_shift_fingerprint of each */
	size_t nr;
	char *error; /* why the last read failed, NULL if it did not */
	bool seen;
};

/* A shift the directory wants running. */
struct ks_config_want {
	const struct ks_shift *shift;
	uint64_t fp;
	const struct ks_config_file *file;
};

/* A shift of a file that does not run, and why. */
struct ks_config_refusal {
	const struct ks_shift *shift;
	const struct ks_config_file *file;
	char why[KS_ERR_LEN];
};

/* Whether a running shift of another source holds s's name or one of its
 * frontends; if so, says which in why. */
typedef bool (*ks_config_taken_fn)(void *arg, const struct ks_shift *s, char *why, size_t len);

/*
 * The pure rule: from files (sorted by name), which shifts run and which
 * are refused, as the comment above says. taken may be NULL. Arrays are
 * the caller's to free (free()); they point into files. 0 or -ENOMEM.
 */
int ks_config_desired(struct ks_config_file *const *files, size_t nr, ks_config_taken_fn taken,
		      void *arg, struct ks_config_want **want, size_t *nr_want,
		      struct ks_config_refusal **refused, size_t *nr_refused);

/* Sets f's shifts from a manifest's text, as a read of the file would:
 * an empty text or a parse error keeps what it had (returns -EAGAIN or
 * -EINVAL with f->error set). For tests and ks_config_scan. */
int ks_config_file_parse(struct ks_config_file *f, const char *text, size_t len);
void ks_config_file_free(struct ks_config_file *f);

struct ks_config_job;

struct ks_config {
	char *dir;
	struct ks_config_file **files; /* sorted by name */
	size_t nr_files;
	bool dir_missing;
	int inofd, wd_dir, wd_parent;
	struct ks_index applied; /* "ns/name" -> struct ks_config_applied */
	struct ks_index refused; /* "ns/name" -> hash of why: refused at the last reload */
	struct ks_config_job *job; /* a reload being applied */
	int evfd, epfd;		   /* the reader's "done"; inotify and evfd, for the loop */
	pthread_t reader;
	bool reading; /* the reader thread runs: files are its own */
	bool again;   /* a reload was asked for while one was under way */
	bool scan_ok;
	uint64_t scan_t0, scan_t1;
	struct ks_shifts *t;
	struct ks_state *state;
};

/* Watches dir (and its parent, for the directory being replaced). */
int ks_config_open(struct ks_config *c, const char *dir);
void ks_config_close(struct ks_config *c);
/* The fd for the loop (inotify, and the end of a reading); -1 if none. */
int ks_config_fd(const struct ks_config *c);
/* Takes the fd's events: true when the directory is due a reload. A
 * reading that ended becomes a change under way (ks_config_busy). */
bool ks_config_event(struct ks_config *c);
/*
 * Rereads the directory (unchanged files from cache; in a thread of its
 * own unless wait), works out what should run and checks the change that
 * brings the running set there, whole; once that change is under way
 * (ks_config_busy), call ks_config_step until it returns 0. A refused
 * change is logged and changes nothing. Asked while a reload is under way,
 * another follows it (-EBUSY). Without wait, the reading ends in
 * ks_config_event.
 */
int ks_config_reload(struct ks_config *c, struct ks_shifts *t, struct ks_state *st, bool wait);
/* Applies up to budget shifts of the change under way: -EINPROGRESS while
 * there is more, 0 when done (or none under way), -errno when a step failed
 * and the change was rolled back (logged). Nothing else may change the
 * running set while a change is under way: see ks_config_busy. */
int ks_config_step(struct ks_config *c, size_t budget);
bool ks_config_busy(const struct ks_config *c);
/* The fingerprint of the file's spec of a running file shift, for an
 * override; false if ns/name is not running from the directory. */
bool ks_config_base_fp(const struct ks_config *c, const char *ns, const char *name,
		       uint64_t *fp);
/* After weights of a file shift were set: what now runs has fingerprint
 * fp, so the next reload leaves it alone. */
void ks_config_note_running(struct ks_config *c, const char *ns, const char *name, uint64_t fp);
/* Whether source names a file of this directory. */
bool ks_config_owns(const struct ks_config *c, const char *source);

#endif /* KSHIFT_CONFIG_H */

/*
 * A manifest parsed in a thread of its own, for `kshiftctl apply` of a
 * large one: the parser takes seconds over tens of thousands of shifts,
 * and the loop must go on serving meanwhile. One at a time; fd (for the
 * loop) turns readable when it is done.
 */
struct ks_parse_job {
	int fd;		/* eventfd */
	uint64_t id;	/* of the request it is for; 0: none */
	uint64_t next_id;
	char *text;
	size_t len;
	struct ks_shift *shifts;
	size_t nr;
	int ret;
	char err[KS_ERR_LEN];
	pthread_t thread;
	bool running, done;
};

int ks_parse_job_init(struct ks_parse_job *j);
void ks_parse_job_destroy(struct ks_parse_job *j);
/* Starts parsing a copy of text; returns the job's id (> 0) or -errno. */
int64_t ks_parse_job_start(struct ks_parse_job *j, const char *text, size_t len);
/* Takes the fd's event: true when the job just finished. */
bool ks_parse_job_event(struct ks_parse_job *j);
/* Hands over the result (as ks_manifest_parse would) and frees the job
 * for the next one. */
int ks_parse_job_take(struct ks_parse_job *j, struct ks_shift **shifts, size_t *nr, char *err,
		      size_t errlen);
/* Drops a finished job's result (its request went away). */
void ks_parse_job_drop(struct ks_parse_job *j);
