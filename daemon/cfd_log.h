/*
 * cfd_log.h - one line per event on stderr, key=value fields.
 *
 *   2026-12-04T16:22:00.123Z level=info event=ready partitions=8
 *
 * Under systemd (JOURNAL_STREAM set) a "<N>" priority prefix replaces the
 * timestamp so journald stores the right level.  Safe to call from any
 * thread: each line is written with a single write().
 */
#ifndef CFD_DAEMON_CFD_LOG_H
#define CFD_DAEMON_CFD_LOG_H

#include <stddef.h>

enum cfd_log_level {
        CFD_LOG_ERROR = 0,
        CFD_LOG_WARN,
        CFD_LOG_INFO,
        CFD_LOG_DEBUG,
};

/* Decides the line prefix from the environment; call once at start. */
void cfd_log_init(void);

/* Lines above this level are dropped (default info). */
void cfd_log_set_level(enum cfd_log_level level);
enum cfd_log_level cfd_log_get_level(void);

/* "error", "warn", "info", "debug". */
const char *cfd_log_level_name(enum cfd_log_level level);

/*
 * Logs "level=L event=EVENT " followed by the formatted fields, which the
 * caller writes as key=value pairs (quote values that may hold spaces with
 * cfd_log_quote()).
 */
void cfd_log(enum cfd_log_level level, const char *event, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * Writes s into buf as a double-quoted log value: quotes and backslashes
 * are escaped, control characters become '?', and the result is cut to
 * fit.  Returns buf.
 */
const char *cfd_log_quote(char *buf, size_t size, const char *s);

#endif /* CFD_DAEMON_CFD_LOG_H */
