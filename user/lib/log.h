/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Leveled logging to stderr; libbpf's own messages are routed through it. */
#ifndef KSHIFT_LOG_H
#define KSHIFT_LOG_H

enum ks_log_level { KS_LOG_WARN, KS_LOG_INFO, KS_LOG_DEBUG };

extern enum ks_log_level ks_log_level;

void ks_log(enum ks_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends libbpf's warnings (and, at debug level, everything) to ks_log. */
void ks_log_libbpf(void);

#define pr_warn(...)  ks_log(KS_LOG_WARN, __VA_ARGS__)
#define pr_info(...)  ks_log(KS_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) ks_log(KS_LOG_DEBUG, __VA_ARGS__)

#endif /* KSHIFT_LOG_H */
