// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Leveled logging to stderr, one line per message, with libbpf's hooked in. */
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>
#include "log.h"

enum ks_log_level ks_log_level = KS_LOG_INFO;

void ks_log(enum ks_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > ks_log_level)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if ((level == LIBBPF_DEBUG && ks_log_level < KS_LOG_DEBUG) ||
	    (level == LIBBPF_INFO && ks_log_level < KS_LOG_INFO))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

void ks_log_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
