#include "cfd_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 2048

static enum cfd_log_level log_level = CFD_LOG_INFO;
static bool log_journal;

/* syslog priorities for the journal prefix, by our level. */
static const int journal_priority[] = {3, 4, 6, 7};
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void cfd_log_init(void)
{
        log_journal = getenv("JOURNAL_STREAM") != NULL;
}

void cfd_log_set_level(enum cfd_log_level level)
{
        log_level = level;
}

enum cfd_log_level cfd_log_get_level(void)
{
        return log_level;
}

const char *cfd_log_level_name(enum cfd_log_level level)
{
        if ((unsigned)level > CFD_LOG_DEBUG)
                return "unknown";
        return level_names[level];
}

static size_t format_prefix(char *buf, size_t size, enum cfd_log_level level)
{
        struct timespec ts;
        struct tm tm;
        size_t n;

        if (log_journal)
                return (size_t)snprintf(buf, size, "<%d>",
                                        journal_priority[level]);

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
        n += (size_t)snprintf(buf + n, size - n, ".%03ldZ ",
                              ts.tv_nsec / 1000000);
        return n;
}

void cfd_log(enum cfd_log_level level, const char *event, const char *fmt, ...)
{
        char line[LINE_MAX_BYTES];
        size_t n;
        int len;
        va_list ap;

        if (level > log_level)
                return;

        n = format_prefix(line, sizeof(line), level);
        len = snprintf(line + n, sizeof(line) - n, "level=%s event=%s",
                       level_names[level], event);
        n += (size_t)len;

        if (fmt && *fmt && n < sizeof(line) - 2) {
                line[n++] = ' ';
                va_start(ap, fmt);
                len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
                va_end(ap);
                if (len > 0)
                        n += (size_t)len;
        }

        /* A cut line still ends with a newline. */
        if (n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';

        /* One write() per line keeps lines from threads whole. */
        if (write(STDERR_FILENO, line, n) < 0) {
                /* Nowhere left to report it. */
        }
}

const char *cfd_log_quote(char *buf, size_t size, const char *s)
{
        size_t o = 0;

        if (size < 3) {
                if (size)
                        buf[0] = '\0';
                return buf;
        }
        buf[o++] = '"';
        for (; s && *s && o + 3 < size; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char)c;
                } else if (c < 0x20 || c == 0x7f) {
                        buf[o++] = '?';
                } else {
                        buf[o++] = (char)c;
                }
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}
