/*
 * cmd_broker.c - `confidentctl broker`: an embedded Kafka cluster on
 * loopback for tests and demos, driven by fault commands on stdin.
 *
 * stdout carries the protocol only: one `BOOTSTRAP <list>` line, then one
 * `ok` or `error: <msg>` line per command.  Log lines go to stderr.
 */
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "cfd_mock.h"
#include "cli.h"
#include "ctl_signal.h"

#define LINE_MAX_BYTES 1024

static void usage(FILE *out) {
        fprintf(out,
                "usage: confidentctl broker [--topics a,b,c] "
                "[--partitions N] [--brokers N]\n"
                "\n"
                "Runs librdkafka's mock Kafka cluster on 127.0.0.1 until "
                "SIGTERM or SIGINT.\n"
                "Prints 'BOOTSTRAP 127.0.0.1:<port>[,...]' on stdout, then "
                "reads fault commands\n"
                "on stdin, one a line, and answers each with 'ok' or "
                "'error: <message>':\n"
                "  down <broker_id>            disconnect a broker\n"
                "  up <broker_id>              let it accept connections "
                "again\n"
                "  rtt <broker_id> <ms>        delay its responses\n"
                "  err <api> <error> [count]   fail the next count "
                "requests of an ApiKey\n"
                "                              (Produce, Fetch, EndTxn, "
                "...; error e.g. _TRANSPORT)\n"
                "  clear <api>                 drop queued errors of an "
                "ApiKey\n"
                "  topic <name> <partitions>   create a topic\n"
                "broker_id -1 means all brokers.  End of stdin does not "
                "stop the broker.\n"
                "\n"
                "  --topics LIST      topics to create at start, "
                "comma-separated; names of\n"
                "                     1 to 249 characters of A-Z a-z 0-9 "
                ". _ -, not . or ..\n"
                "  --partitions N     partitions per topic (default 8)\n"
                "  --brokers N        brokers in the cluster (default 1)\n"
                "Limits: a partition keeps its newest 5 MiB; other topics "
                "are auto-created\nwith 4 partitions.\n");
}

/* Writes s as a log value: bare if it has no blank, '"' or '\\'. */
static void log_value(const char *s) {
        const char *p;

        if (*s && !strpbrk(s, " \t\"\\=")) {
                fputs(s, stderr);
                return;
        }
        fputc('"', stderr);
        for (p = s; *p; p++) {
                if (*p == '"' || *p == '\\')
                        fputc('\\', stderr);
                fputc(*p == '\n' ? ' ' : *p, stderr);
        }
        fputc('"', stderr);
}

/*
 * One log line: time, level, event, then "key value" pairs from the NULL
 * terminated variable arguments (all strings).
 */
static void log_event(const char *level, const char *event, ...) {
        char stamp[32];
        struct tm tm;
        time_t now = time(NULL);
        const char *key;
        va_list ap;

        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
        flockfile(stderr);
        fprintf(stderr, "%s level=%s event=%s", stamp, level, event);
        va_start(ap, event);
        while ((key = va_arg(ap, const char *)) != NULL) {
                fprintf(stderr, " %s=", key);
                log_value(va_arg(ap, const char *));
        }
        va_end(ap);
        fputc('\n', stderr);
        funlockfile(stderr);
}

/* librdkafka's log lines for the cluster's handle, from its threads. */
static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
                           const char *buf) {
        (void)rk;
        log_event(level <= 3 ? "error" : level <= 4 ? "warn" : "info",
                  "rdkafka_log", "src", "rdkafka", "fac", fac, "msg", buf,
                  (const char *)NULL);
}

struct broker_opts {
        char *topics; /* comma-separated, borrowed from argv */
        long partitions;
        long brokers;
};

static int parse_count(const char *opt, const char *s, long max,
                       long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 1 || v > max) {
                fprintf(stderr,
                        "confidentctl broker: %s: '%s' is not a number in "
                        "1..%ld\n",
                        opt, s, max);
                return -1;
        }
        *ret = v;
        return 0;
}

/* Checks each name of a comma-separated topic list.  Returns 0 or -1. */
static int check_topics(const char *list) {
        char name[256];
        const char *p = list;

        for (;;) {
                size_t len = strcspn(p, ",");

                /* Over 249 bytes: refused, shown with what follows. */
                if (len >= sizeof(name)) {
                        cli_check_topic("broker", "topics", p);
                        return -1;
                }
                memcpy(name, p, len);
                name[len] = '\0';
                if (cli_check_topic("broker", "topics", name) != CLI_OK)
                        return -1;
                if (p[len] == '\0')
                        return 0;
                p += len + 1;
        }
}

/* Returns 0, 1 for --help, or -1 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct broker_opts *o) {
        static const struct option longopts[] = {
                {"topics", required_argument, NULL, 't'},
                {"partitions", required_argument, NULL, 'p'},
                {"brokers", required_argument, NULL, 'b'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        o->topics = NULL;
        o->partitions = 8;
        o->brokers = 1;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                switch (c) {
                case 't':
                        if (check_topics(optarg))
                                return -1;
                        o->topics = optarg;
                        break;
                case 'p':
                        if (parse_count("--partitions", optarg,
                                        CFD_MOCK_MAX_PARTITIONS,
                                        &o->partitions))
                                return -1;
                        break;
                case 'b':
                        if (parse_count("--brokers", optarg,
                                        CFD_MOCK_MAX_BROKERS, &o->brokers))
                                return -1;
                        break;
                case 'h':
                        return 1;
                default:
                        return -1;
                }
        }
        if (optind < argc) {
                fprintf(stderr,
                        "confidentctl broker: unexpected argument '%s'\n",
                        argv[optind]);
                return -1;
        }
        return 0;
}

/* Creates each topic of the comma-separated list.  Returns 0 or -1. */
static int create_topics(struct cfd_mock *m, const char *list,
                         int partitions) {
        struct cfd_mock_error err;
        char *copy, *name, *save = NULL;
        char count[16];
        int rc = 0;

        if (!list)
                return 0;
        copy = strdup(list);
        if (!copy) {
                log_event("error", "start_failed", "err", "out of memory",
                          (const char *)NULL);
                return -1;
        }
        snprintf(count, sizeof(count), "%d", partitions);
        for (name = strtok_r(copy, ",", &save); name;
             name = strtok_r(NULL, ",", &save)) {
                if (cfd_mock_topic_create(m, name, partitions, &err)) {
                        log_event("error", "topic_create_failed", "topic",
                                  name, "err", err.msg, (const char *)NULL);
                        rc = -1;
                        break;
                }
                log_event("info", "topic_created", "topic", name,
                          "partitions", count, (const char *)NULL);
        }
        free(copy);
        return rc;
}

/* Runs one command line and answers it on stdout. */
static void run_command(struct cfd_mock *m, const char *line) {
        struct cfd_mock_error err;

        if (cfd_mock_command(m, line, &err) == 0) {
                log_event("info", "fault_command", "command", line,
                          (const char *)NULL);
                printf("ok\n");
        } else {
                log_event("warn", "fault_command_failed", "command", line,
                          "err", err.msg, (const char *)NULL);
                printf("error: %s\n", err.msg);
        }
        fflush(stdout);
}

/*
 * Line assembly for stdin.  A line longer than LINE_MAX_BYTES is answered
 * with an error once its end is seen.
 */
struct line_buf {
        char buf[LINE_MAX_BYTES + 1];
        size_t len;
        int overlong;
};

static void feed_bytes(struct cfd_mock *m, struct line_buf *lb,
                       const char *data, size_t n) {
        size_t i;

        for (i = 0; i < n; i++) {
                if (data[i] != '\n') {
                        if (lb->len < LINE_MAX_BYTES)
                                lb->buf[lb->len++] = data[i];
                        else
                                lb->overlong = 1;
                        continue;
                }
                lb->buf[lb->len] = '\0';
                if (lb->overlong) {
                        printf("error: command longer than %d bytes\n",
                               LINE_MAX_BYTES);
                        fflush(stdout);
                } else if (strspn(lb->buf, " \t\r") != lb->len) {
                        run_command(m, lb->buf);
                }
                lb->len = 0;
                lb->overlong = 0;
        }
}

/* Serves stdin commands until a signal arrives.  Returns 0 or -1. */
static int serve(struct cfd_mock *m) {
        struct line_buf lb = {.len = 0};
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        char data[4096];

        while (!ctl_stop_signal) {
                ssize_t n;
                /* Bounded wait: a signal just before poll() is seen
                 * within half a second. */
                int r = poll(&pfd, 1, 500);

                if (r == -1 && errno == EINTR)
                        continue;
                if (r == -1) {
                        log_event("error", "poll_failed", "err",
                                  strerror(errno), (const char *)NULL);
                        return -1;
                }
                if (r == 0)
                        continue;
                n = read(STDIN_FILENO, data, sizeof(data));
                if (n == -1 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        /* EOF or a broken stdin: keep serving Kafka. */
                        log_event("info", "stdin_closed", "action",
                                  "serve_until_signal", (const char *)NULL);
                        pfd.fd = -1;
                        continue;
                }
                feed_bytes(m, &lb, data, (size_t)n);
        }
        return 0;
}

/* Starts the cluster and announces it.  Returns 0 or -1 (logged). */
static int start(const struct broker_opts *o, struct cfd_mock **ret) {
        struct cfd_mock_error err;
        struct cfd_mock *m;
        int rc;

        rc = cfd_mock_new((int)o->brokers, on_rdkafka_log, &m, &err);
        if (rc) {
                log_event("error", "start_failed", "err", err.msg,
                          (const char *)NULL);
                return -1;
        }
        if (cfd_mock_set_nodelay(m, &err) < 0)
                log_event("warn", "nodelay_failed", "err", err.msg,
                          "action", "continue_with_nagle",
                          (const char *)NULL);
        if (create_topics(m, o->topics, (int)o->partitions)) {
                cfd_mock_free(m);
                return -1;
        }
        *ret = m;
        return 0;
}

int cmd_broker(int argc, char **argv) {
        struct broker_opts o;
        struct cfd_mock *m;
        char brokers[16];
        int rc;

        rc = parse_args(argc, argv, &o);
        if (rc) {
                usage(rc > 0 ? stdout : stderr);
                return rc > 0 ? 0 : 2;
        }
        /* Answers go to stdout: a reader that left must not kill us. */
        if (ctl_catch_stop_signals("broker") ||
            signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return 1;
        if (start(&o, &m))
                return 1;

        printf("BOOTSTRAP %s\n", cfd_mock_bootstraps(m));
        fflush(stdout);
        snprintf(brokers, sizeof(brokers), "%ld", o.brokers);
        log_event("info", "ready", "bootstrap", cfd_mock_bootstraps(m),
                  "brokers", brokers, "version", rd_kafka_version_str(),
                  (const char *)NULL);

        rc = serve(m);
        log_event(rc ? "error" : "info", "stop", "signal",
                  ctl_stop_signal == SIGINT    ? "INT"
                  : ctl_stop_signal == SIGTERM ? "TERM"
                                           : "none",
                  (const char *)NULL);
        cfd_mock_free(m);
        return rc ? 1 : 0;
}
