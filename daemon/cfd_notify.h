/*
 * cfd_notify.h - readiness, status, watchdog and stop notices to systemd.
 *
 * Under a unit with Type=notify, systemd passes a datagram socket in
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace) and,
 * with WatchdogSec=, the interval in $WATCHDOG_USEC.  The messages are
 * sent with sd_notify() of libsystemd:
 *
 *   READY=1       the broker was reached and the state restored
 *   STATUS=...    one line, shown by `systemctl status`
 *   WATCHDOG=1    the main loop is alive; at most every WATCHDOG_USEC / 2
 *   STOPPING=1    shutdown has begun
 *
 * Without $NOTIFY_SOCKET every call does nothing and returns 0, so the
 * daemon behaves the same outside systemd.  A handle is used by one
 * thread (the loop's); nothing here blocks: each notice is one datagram.
 */
#ifndef CFD_DAEMON_CFD_NOTIFY_H
#define CFD_DAEMON_CFD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

enum cfd_notify_err {
        CFD_NOTIFY_E_NOMEM = -1, /* out of memory */
        CFD_NOTIFY_E_SEND = -2,  /* the datagram could not be sent */
};

/* Longest STATUS= text sent; longer text is cut. */
#define CFD_NOTIFY_STATUS_MAX 256

struct cfd_notify;

/*
 * Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (and $WATCHDOG_PID, which must
 * name this process if set) once and returns a handle in *ret_n.  A
 * handle is returned whether or not the variables are set.  Returns 0, or
 * CFD_NOTIFY_E_NOMEM.
 */
int cfd_notify_new(struct cfd_notify **ret_n);

/* Frees a handle; NULL does nothing.  Sends nothing. */
void cfd_notify_free(struct cfd_notify *n);

/* True when $NOTIFY_SOCKET was set at cfd_notify_new(). */
bool cfd_notify_enabled(const struct cfd_notify *n);

/*
 * The watchdog interval systemd asked for, in microseconds; 0 when the
 * watchdog is off (or the handle is disabled or NULL).
 */
uint64_t cfd_notify_watchdog_usec(const struct cfd_notify *n);

/*
 * Each of the senders below returns 1 when a message was sent, 0 when
 * there was nothing to do (no $NOTIFY_SOCKET, NULL handle, or a watchdog
 * ping not yet due), or CFD_NOTIFY_E_SEND, with the errno value kept for
 * cfd_notify_errno().  A failure changes nothing in the daemon's work;
 * the caller logs it once and goes on.
 */

/* Sends READY=1: startup is complete. */
int cfd_notify_ready(struct cfd_notify *n);

/*
 * Sends STATUS= with the formatted text.  Line breaks, which would end
 * the assignment, become spaces; the text is cut to
 * CFD_NOTIFY_STATUS_MAX bytes.
 */
int cfd_notify_status(struct cfd_notify *n, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/*
 * Sends WATCHDOG=1 when half of the watchdog interval has passed since
 * the last ping (the first call always sends).  Costs one clock read when
 * not due: call it on every loop iteration.  After a failed send the
 * ping is tried again a tenth of the interval later, not on every call.
 */
int cfd_notify_watchdog(struct cfd_notify *n);

/*
 * cfd_notify_watchdog() with the current CLOCK_MONOTONIC time given in
 * microseconds, for a caller that has already read the clock.
 */
int cfd_notify_watchdog_at(struct cfd_notify *n, uint64_t now_usec);

/* Sends STOPPING=1: shutdown has begun (send it once, on the signal). */
int cfd_notify_stopping(struct cfd_notify *n);

/* The errno value of the last failed send, 0 if none failed. */
int cfd_notify_errno(const struct cfd_notify *n);

/* "out of memory", "send failed", or "unknown error". */
const char *cfd_notify_strerror(int code);

#endif /* CFD_DAEMON_CFD_NOTIFY_H */
