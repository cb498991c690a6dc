/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One owner per pin directory: an exclusive flock on the directory itself
 * (it works on bpffs), held for the life of the process and dropped by the
 * kernel however the process ends. The holder's pid comes from /proc/locks,
 * so there is no pid file to go stale.
 */
#ifndef KSHIFT_LOCK_H
#define KSHIFT_LOCK_H

#include <sys/types.h>

/* Locks the directory at path: its fd (>= 0), or -EBUSY with *holder set to
 * the pid holding it (0 when it cannot be told), or another -errno. */
int ks_lock_dir(const char *path, pid_t *holder);
void ks_unlock(int fd);
/* The pid holding a flock on (dev, ino) in a /proc/locks text, or 0. */
pid_t ks_lock_parse_holder(const char *proc_locks, dev_t dev, ino_t ino);

#endif /* KSHIFT_LOCK_H */
