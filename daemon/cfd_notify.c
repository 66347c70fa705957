#include "cfd_notify.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <systemd/sd-daemon.h>

struct cfd_notify {
        bool enabled;          /* $NOTIFY_SOCKET was set */
        uint64_t watchdog_usec; /* 0: no watchdog */
        uint64_t next_ping_usec; /* CLOCK_MONOTONIC; 0: ping at once */
        int last_errno;
};

int cfd_notify_new(struct cfd_notify **ret_n)
{
        struct cfd_notify *n;
        uint64_t usec = 0;
        const char *sock;

        n = calloc(1, sizeof(*n));
        if (!n)
                return CFD_NOTIFY_E_NOMEM;
        sock = getenv("NOTIFY_SOCKET");
        n->enabled = sock && sock[0];
        /* Returns > 0 only when WATCHDOG_USEC parses and WATCHDOG_PID,
         * if set, is ours; a malformed value leaves the watchdog off. */
        if (n->enabled && sd_watchdog_enabled(0, &usec) > 0)
                n->watchdog_usec = usec;
        *ret_n = n;
        return 0;
}

void cfd_notify_free(struct cfd_notify *n)
{
        free(n);
}

bool cfd_notify_enabled(const struct cfd_notify *n)
{
        return n && n->enabled;
}

uint64_t cfd_notify_watchdog_usec(const struct cfd_notify *n)
{
        return n ? n->watchdog_usec : 0;
}

static int send_state(struct cfd_notify *n, const char *state)
{
        int rc;

        if (!n || !n->enabled)
                return 0;
        rc = sd_notify(0, state);
        if (rc < 0) {
                n->last_errno = -rc;
                return CFD_NOTIFY_E_SEND;
        }
        /* 0 means $NOTIFY_SOCKET went away after cfd_notify_new(). */
        return rc > 0;
}

int cfd_notify_ready(struct cfd_notify *n)
{
        return send_state(n, "READY=1");
}

int cfd_notify_stopping(struct cfd_notify *n)
{
        return send_state(n, "STOPPING=1");
}

int cfd_notify_status(struct cfd_notify *n, const char *fmt, ...)
{
        /* "STATUS=" + text + NUL */
        char buf[sizeof("STATUS=") + CFD_NOTIFY_STATUS_MAX];
        const size_t off = sizeof("STATUS=") - 1;
        va_list ap;
        int len;

        if (!n || !n->enabled)
                return 0;
        memcpy(buf, "STATUS=", off);
        va_start(ap, fmt);
        len = vsnprintf(buf + off, sizeof(buf) - off, fmt, ap);
        va_end(ap);
        if (len < 0)
                buf[off] = '\0';
        /* A newline would end the assignment and start another. */
        for (char *p = buf + off; *p; p++)
                if (*p == '\n' || *p == '\r')
                        *p = ' ';
        return send_state(n, buf);
}

int cfd_notify_watchdog_at(struct cfd_notify *n, uint64_t now_usec)
{
        uint64_t half;
        int rc;

        if (!n || !n->enabled || n->watchdog_usec == 0)
                return 0;
        if (n->next_ping_usec != 0 && now_usec < n->next_ping_usec)
                return 0;
        half = n->watchdog_usec / 2;
        rc = send_state(n, "WATCHDOG=1");
        /* Retry a failed ping soon, but not on every loop iteration. */
        n->next_ping_usec = now_usec + (rc < 0 ? half / 5 : half);
        if (n->next_ping_usec == 0)
                n->next_ping_usec = 1;
        return rc;
}

int cfd_notify_watchdog(struct cfd_notify *n)
{
        struct timespec ts;

        if (!n || !n->enabled || n->watchdog_usec == 0)
                return 0;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return cfd_notify_watchdog_at(n, (uint64_t)ts.tv_sec * 1000000u +
                                                 (uint64_t)ts.tv_nsec / 1000u);
}

int cfd_notify_errno(const struct cfd_notify *n)
{
        return n ? n->last_errno : 0;
}

const char *cfd_notify_strerror(int code)
{
        switch (code) {
        case CFD_NOTIFY_E_NOMEM:
                return "out of memory";
        case CFD_NOTIFY_E_SEND:
                return "send failed";
        default:
                return "unknown error";
        }
}
