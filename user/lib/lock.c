// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* An exclusive flock on a directory, and who holds it; see lock.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "lock.h"

pid_t ks_lock_parse_holder(const char *text, dev_t dev, ino_t ino)
{
	char want[64];
	const char *line;

	/* "1: FLOCK  ADVISORY  WRITE 1234 00:27:18699 0 EOF"; a blocked
	 * waiter's line has "->" after the number and is not the holder */
	snprintf(want, sizeof(want), "%02x:%02x:%lu", major(dev), minor(dev), (unsigned long)ino);
	for (line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		char kind[16], adv[16], mode[16], id[64], arrow[4];
		long pid;

		if (sscanf(line, "%*d: %3s", arrow) == 1 && !strcmp(arrow, "->"))
			continue;
		if (sscanf(line, "%*d: %15s %15s %15s %ld %63s", kind, adv, mode, &pid, id) != 5)
			continue;
		if (!strcmp(kind, "FLOCK") && !strcmp(id, want))
			return pid;
	}
	return 0;
}

static pid_t holder_of(int fd)
{
	char *text = NULL;
	size_t cap = 0, len = 0;
	struct stat st;
	pid_t pid = 0;
	FILE *f;

	if (fstat(fd, &st))
		return 0;
	f = fopen("/proc/locks", "re");
	if (!f)
		return 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *n = realloc(text, cap = cap ? 2 * cap : 16384);

			if (!n)
				break;
			text = n;
		}
		size_t got = fread(text + len, 1, cap - len - 1, f);

		if (!got)
			break;
		len += got;
	}
	fclose(f);
	if (text) {
		text[len] = '\0';
		pid = ks_lock_parse_holder(text, st.st_dev, st.st_ino);
	}
	free(text);
	return pid;
}

int ks_lock_dir(const char *path, pid_t *holder)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

	*holder = 0;
	if (fd < 0)
		return -errno;
	if (!flock(fd, LOCK_EX | LOCK_NB))
		return fd;
	err = -errno;
	if (err == -EWOULDBLOCK) {
		*holder = holder_of(fd);
		err = -EBUSY;
	}
	close(fd);
	return err;
}

void ks_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}
