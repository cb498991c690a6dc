/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Leveled logging to stderr, one line per message, each with its time
 * (RFC 3339, UTC, milliseconds) and level:
 *   2026-11-30T13:35:19.123Z info config: web.yaml: applied default/web: ...
 * or, with KS_LOG_JSON (kshiftd --log-format json), one JSON object a line:
 *   {"ts":"2026-11-30T13:35:19.123Z","level":"info","msg":"config: ..."}
 * libbpf's own messages are routed through it.
 */
#ifndef KSHIFT_LOG_H
#define KSHIFT_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum ks_log_level { KS_LOG_WARN, KS_LOG_INFO, KS_LOG_DEBUG };
enum ks_log_format { KS_LOG_TEXT, KS_LOG_JSON };

extern enum ks_log_level ks_log_level;
extern enum ks_log_format ks_log_format;

void ks_log(enum ks_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends libbpf's warnings (and, at debug level, everything) to ks_log. */
void ks_log_libbpf(void);
/* "text" or "json"; 0 or -EINVAL. */
int ks_log_format_parse(const char *s, enum ks_log_format *f);
/* One line as it would be logged (no newline), for tests. */
void ks_log_format_line(char *buf, size_t len, enum ks_log_level level, const char *msg);

/*
 * Whether this process may load and attach BPF programs: CAP_BPF (or
 * CAP_SYS_ADMIN) and CAP_NET_ADMIN in its effective set (CAP_PERFMON too,
 * which the verifier wants for the dataplane's pointer arithmetic without
 * CAP_SYS_ADMIN). If not, writes the missing ones to buf ("CAP_BPF,
 * CAP_NET_ADMIN") and returns false.
 */
bool ks_have_privileges(char *buf, size_t len);

#define pr_warn(...)  ks_log(KS_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  ks_log(KS_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)

#endif /* KSHIFT_LOG_H */
