// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Leveled, timestamped logging to stderr, text or JSON; see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <bpf/libbpf.h>
#include "log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

enum ks_log_level ks_log_level = KS_LOG_INFO;
enum ks_log_format ks_log_format = KS_LOG_TEXT;

static const char *const level_names[] = {
	[KS_LOG_WARN] = "warn",
	[KS_LOG_INFO] = "info",
	[KS_LOG_DEBUG] = "debug",
};

int ks_log_format_parse(const char *s, enum ks_log_format *f)
{
	if (!strcmp(s, "text"))
		*f = KS_LOG_TEXT;
	else if (!strcmp(s, "json"))
		*f = KS_LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

static void timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(buf + n, len - n, ".%03uZ", (unsigned)(ts.tv_nsec / 1000000) % 1000);
}

/* msg as the inside of a JSON string. */
static size_t json_escape(char *out, size_t len, const char *msg)
{
	size_t o = 0;
	const unsigned char *p;

	for (p = (const unsigned char *)msg; *p && o + 7 < len; p++) {
		switch (*p) {
		case '"':
		case '\\':
			out[o++] = '\\';
			out[o++] = *p;
			break;
		case '\n':
			out[o++] = '\\';
			out[o++] = 'n';
			break;
		case '\t':
			out[o++] = '\\';
			out[o++] = 't';
			break;
		default:
			if (*p < 0x20)
				o += snprintf(out + o, len - o, "\\u%04x", *p);
			else
				out[o++] = *p;
		}
	}
	out[o] = '\0';
	return o;
}

void ks_log_format_line(char *buf, size_t len, enum ks_log_level level, const char *msg)
{
	char ts[40], esc[4096];

	timestamp(ts, sizeof(ts));
	if (ks_log_format == KS_LOG_JSON) {
		json_escape(esc, sizeof(esc), msg);
		snprintf(buf, len, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", ts,
			 level_names[level], esc);
	} else {
		snprintf(buf, len, "%s %s %s", ts, level_names[level], msg);
	}
}

static void emit(enum ks_log_level level, const char *fmt, va_list ap)
{
	char msg[4096], line[8192];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* one line per message: the trailing newline is ours to add */
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	if (!n)
		return;
	ks_log_format_line(line, sizeof(line), level, msg);
	fprintf(stderr, "%s\n", line);
}

void ks_log(enum ks_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > ks_log_level)
		return;
	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if ((level == LIBBPF_DEBUG && ks_log_level < KS_LOG_DEBUG) ||
	    (level == LIBBPF_INFO && ks_log_level < KS_LOG_INFO))
		return 0;
	emit(level == LIBBPF_WARN ? KS_LOG_WARN : level == LIBBPF_INFO ? KS_LOG_INFO : KS_LOG_DEBUG,
	     fmt, ap);
	return 0;
}

void ks_log_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}

bool ks_have_privileges(char *buf, size_t len)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = {};
	size_t off = 0;
	bool ok = true;
	int i;
	static const struct {
		int cap;
		const char *name;
	} need[] = {
		{ CAP_BPF, "CAP_BPF" },
		{ CAP_NET_ADMIN, "CAP_NET_ADMIN" },
		{ CAP_PERFMON, "CAP_PERFMON" },
	};

	buf[0] = '\0';
	if (syscall(SYS_capget, &hdr, data))
		return true; /* cannot tell: let loading say */
#define HAS(c) (data[(c) / 32].effective & (1u << ((c) % 32)))
	if (HAS(CAP_SYS_ADMIN) && HAS(CAP_NET_ADMIN))
		return true;
	for (i = 0; i < (int)(sizeof(need) / sizeof(need[0])); i++) {
		if (HAS(need[i].cap) || (HAS(CAP_SYS_ADMIN) && need[i].cap != CAP_NET_ADMIN))
			continue;
		ok = false;
		off += snprintf(buf + off, off < len ? len - off : 0, "%s%s", off ? ", " : "",
				need[i].name);
	}
#undef HAS
	return ok;
}
