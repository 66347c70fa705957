/*
 * test_notify.c - daemon/cfd_notify.h against a datagram socket the test
 * owns, as systemd's would be: READY, STATUS, WATCHDOG (and its rate
 * limit), STOPPING, the abstract namespace, and the no-op paths.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfd_notify.h"

struct fixture {
        int fd;
        char dir[64];
        char path[108];
};

/* A bound AF_UNIX datagram socket; addr "@name" = abstract namespace. */
static int bind_socket(const char *addr)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 5};
        socklen_t len;
        int fd;

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_true(strlen(addr) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, addr, strlen(addr));
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
                          strlen(addr));
        if (addr[0] == '@')
                sa.sun_path[0] = '\0';
        else
                len++; /* the NUL of a path */
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, len), 0);
        /* A missing datagram fails the test instead of hanging it. */
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                    sizeof(tv)),
                         0);
        return fd;
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/cfd-notify-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/notify", f->dir);
        f->fd = bind_socket(f->path);
        setenv("NOTIFY_SOCKET", f->path, 1);
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        close(f->fd);
        unlink(f->path);
        rmdir(f->dir);
        unsetenv("NOTIFY_SOCKET");
        unsetenv("WATCHDOG_USEC");
        unsetenv("WATCHDOG_PID");
        free(f);
        return 0;
}

/* Receives one datagram and compares it with want. */
static void expect_datagram(int fd, const char *want)
{
        char buf[1024];
        ssize_t n;

        n = recv(fd, buf, sizeof(buf) - 1, 0);
        assert_true(n >= 0);
        buf[n] = '\0';
        assert_string_equal(buf, want);
}

/* Nothing is queued on the socket. */
static void expect_nothing(int fd)
{
        char buf[64];

        assert_int_equal(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
}

static struct cfd_notify *new_notify(void)
{
        struct cfd_notify *n = NULL;

        assert_int_equal(cfd_notify_new(&n), 0);
        assert_non_null(n);
        return n;
}

static void test_cfd_notify_ready_sends_ready(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n = new_notify();

        assert_true(cfd_notify_enabled(n));
        assert_int_equal(cfd_notify_ready(n), 1);
        expect_datagram(f->fd, "READY=1");
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_status_formats_one_line(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n = new_notify();

        assert_int_equal(cfd_notify_status(n, "items=%d lag=%s", 42, "7\nX"),
                         1);
        expect_datagram(f->fd, "STATUS=items=42 lag=7 X");
        cfd_notify_free(n);
}

static void test_cfd_notify_status_cuts_long_text(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n = new_notify();
        char want[sizeof("STATUS=") + CFD_NOTIFY_STATUS_MAX];
        char text[2 * CFD_NOTIFY_STATUS_MAX];

        memset(text, 'a', sizeof(text) - 1);
        text[sizeof(text) - 1] = '\0';
        assert_int_equal(cfd_notify_status(n, "%s", text), 1);
        snprintf(want, sizeof(want), "STATUS=%.*s",
                 CFD_NOTIFY_STATUS_MAX, text);
        expect_datagram(f->fd, want);
        cfd_notify_free(n);
}

static void test_cfd_notify_stopping_sends_stopping(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n = new_notify();

        assert_int_equal(cfd_notify_stopping(n), 1);
        expect_datagram(f->fd, "STOPPING=1");
        cfd_notify_free(n);
}

static void test_cfd_notify_watchdog_at_half_interval(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n;
        const uint64_t t0 = 5000000;

        setenv("WATCHDOG_USEC", "2000000", 1);
        n = new_notify();
        assert_int_equal(cfd_notify_watchdog_usec(n), 2000000);
        assert_int_equal(cfd_notify_watchdog_at(n, t0), 1);
        expect_datagram(f->fd, "WATCHDOG=1");
        /* Not due until half the interval has passed. */
        assert_int_equal(cfd_notify_watchdog_at(n, t0 + 1), 0);
        assert_int_equal(cfd_notify_watchdog_at(n, t0 + 999999), 0);
        expect_nothing(f->fd);
        assert_int_equal(cfd_notify_watchdog_at(n, t0 + 1000000), 1);
        expect_datagram(f->fd, "WATCHDOG=1");
        assert_int_equal(cfd_notify_watchdog_at(n, t0 + 1999999), 0);
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_watchdog_uses_clock(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n;

        /* An hour: the first call sends, the next is not due. */
        setenv("WATCHDOG_USEC", "3600000000", 1);
        n = new_notify();
        assert_int_equal(cfd_notify_watchdog(n), 1);
        expect_datagram(f->fd, "WATCHDOG=1");
        assert_int_equal(cfd_notify_watchdog(n), 0);
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_watchdog_off_without_usec(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n = new_notify();

        assert_int_equal(cfd_notify_watchdog_usec(n), 0);
        assert_int_equal(cfd_notify_watchdog_at(n, 1), 0);
        assert_int_equal(cfd_notify_watchdog(n), 0);
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_watchdog_off_for_other_pid(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n;
        char pid[32];

        /* The watchdog was meant for another process of the unit. */
        snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
        setenv("WATCHDOG_USEC", "2000000", 1);
        setenv("WATCHDOG_PID", pid, 1);
        n = new_notify();
        assert_int_equal(cfd_notify_watchdog_usec(n), 0);
        assert_int_equal(cfd_notify_watchdog_at(n, 1), 0);
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_ready_abstract_socket(void **state)
{
        struct cfd_notify *n;
        char name[64];
        int fd;

        (void)state;
        snprintf(name, sizeof(name), "@cfd-notify-test-%ld", (long)getpid());
        fd = bind_socket(name);
        setenv("NOTIFY_SOCKET", name, 1);
        n = new_notify();
        assert_int_equal(cfd_notify_ready(n), 1);
        expect_datagram(fd, "READY=1");
        cfd_notify_free(n);
        close(fd);
}

static void test_cfd_notify_new_without_socket_is_noop(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n;

        unsetenv("NOTIFY_SOCKET");
        setenv("WATCHDOG_USEC", "2000000", 1);
        n = new_notify();
        assert_false(cfd_notify_enabled(n));
        assert_int_equal(cfd_notify_watchdog_usec(n), 0);
        assert_int_equal(cfd_notify_ready(n), 0);
        assert_int_equal(cfd_notify_status(n, "x=%d", 1), 0);
        assert_int_equal(cfd_notify_watchdog_at(n, 1), 0);
        assert_int_equal(cfd_notify_stopping(n), 0);
        expect_nothing(f->fd);
        cfd_notify_free(n);
}

static void test_cfd_notify_null_handle_is_noop(void **state)
{
        struct fixture *f = *state;

        assert_false(cfd_notify_enabled(NULL));
        assert_int_equal(cfd_notify_watchdog_usec(NULL), 0);
        assert_int_equal(cfd_notify_ready(NULL), 0);
        assert_int_equal(cfd_notify_status(NULL, "x"), 0);
        assert_int_equal(cfd_notify_watchdog(NULL), 0);
        assert_int_equal(cfd_notify_stopping(NULL), 0);
        assert_int_equal(cfd_notify_errno(NULL), 0);
        cfd_notify_free(NULL);
        expect_nothing(f->fd);
}

static void test_cfd_notify_ready_send_failure(void **state)
{
        struct fixture *f = *state;
        struct cfd_notify *n;
        char gone[160];

        snprintf(gone, sizeof(gone), "%s/absent", f->dir);
        setenv("NOTIFY_SOCKET", gone, 1);
        setenv("WATCHDOG_USEC", "2000000", 1);
        n = new_notify();
        assert_int_equal(cfd_notify_ready(n), CFD_NOTIFY_E_SEND);
        assert_int_equal(cfd_notify_errno(n), ENOENT);
        assert_string_equal(cfd_notify_strerror(CFD_NOTIFY_E_SEND),
                            "send failed");
        /* A failed ping is retried a tenth of the interval later. */
        assert_int_equal(cfd_notify_watchdog_at(n, 1000), CFD_NOTIFY_E_SEND);
        assert_int_equal(cfd_notify_watchdog_at(n, 1000 + 199999), 0);
        assert_int_equal(cfd_notify_watchdog_at(n, 1000 + 200000),
                         CFD_NOTIFY_E_SEND);
        cfd_notify_free(n);
}

static void test_cfd_notify_strerror_names_codes(void **state)
{
        (void)state;
        assert_string_equal(cfd_notify_strerror(CFD_NOTIFY_E_NOMEM),
                            "out of memory");
        assert_string_equal(cfd_notify_strerror(0), "unknown error");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
                T(test_cfd_notify_ready_sends_ready),
                T(test_cfd_notify_status_formats_one_line),
                T(test_cfd_notify_status_cuts_long_text),
                T(test_cfd_notify_stopping_sends_stopping),
                T(test_cfd_notify_watchdog_at_half_interval),
                T(test_cfd_notify_watchdog_uses_clock),
                T(test_cfd_notify_watchdog_off_without_usec),
                T(test_cfd_notify_watchdog_off_for_other_pid),
                T(test_cfd_notify_ready_abstract_socket),
                T(test_cfd_notify_new_without_socket_is_noop),
                T(test_cfd_notify_null_handle_is_noop),
                T(test_cfd_notify_ready_send_failure),
                T(test_cfd_notify_strerror_names_codes),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
