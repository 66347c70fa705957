/*
 * passthrough.c - the baseline for the end-to-end benchmark: consume a
 * topic and produce every message's key and value, unchanged (with no
 * headers unless --headers), to one output topic, finishing batches as
 * daemon/cfd_commit.c does: a batch ends after --max-items messages or
 * --interval-ms since its first message; then
 *
 *   at_least_once: wait until every output is acknowledged, commit the
 *                  offsets (asynchronously);
 *   exactly_once:  the outputs and the offsets in one transaction
 *                  (send_offsets_to_transaction, commit_transaction).
 *                  With --mirror-offsets the same offsets are then also
 *                  committed outside it, as the daemon does on the
 *                  embedded mock broker only, which does not store the
 *                  offsets of a transaction; never use it on Kafka
 *                  (at_least_once ignores it).
 *
 * With --headers every output also carries the seven headers the daemon
 * attaches to a clean item, built by the daemon's own cfd_headers_verdict()
 * for a fixed verdict: a baseline that pays what the daemon's outputs cost
 * librdkafka and the broker, without the scoring.
 *
 * Client settings are the daemon's defaults (cfd_kafka.c); --property
 * adds consumer properties, as its configuration does.  Stops after
 * --expect messages are finished and prints
 *
 *   passthrough items=N batches=B first_to_last_s=S items_per_s=R cpu_s=C
 *
 * where S runs from the first message consumed to the last batch done
 * (0.000, and R 0, when no message arrived) and C is the CPU time of the
 * process, user and system.  Exit status 0; 1 when the run stops early:
 * SIGTERM/SIGINT, a fatal librdkafka error, all brokers down, an output
 * not delivered, a failed transaction or --timeout-s (default 300)
 * seconds gone.  Then the batch in hand is not committed (an open
 * transaction is aborted); once the clients have started, the line is
 * still printed, for the batches finished.  Exit status 2: usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "bench_common.h"
#include "cfd_headers.h"

#define MAX_PROPS 32
#define TXN_TIMEOUT_MS 30000
/* Short: the abort runs on the way out, often with the broker gone; an
 * abort left undone is fenced by the next init_transactions. */
#define ABORT_TIMEOUT_MS 3000
#define METADATA_TIMEOUT_MS 10000
#define POLL_SLICE_MS 100

/* Why the run stops: a signal number, or STOP_ERROR (already printed). */
#define STOP_ERROR (-1)
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = sig;
}

struct opts {
        const char *brokers, *topic, *out, *group;
        bool txn, headers, mirror_offsets;
        long max_items, interval_ms, expect, timeout_s;
        const char *props[MAX_PROPS];
        int n_props;
};

struct run {
        const struct opts *opts;
        rd_kafka_t *consumer, *producer;
        rd_kafka_topic_t *out;
        rd_kafka_message_t **batch; /* consumed, not yet finished */
        long batch_len, pending, undelivered;
        rd_kafka_resp_err_t delivery_err; /* the first one */
        long finished, batches;
        bool in_txn;
        double t_first, give_up_at; /* CLOCK_MONOTONIC seconds */
};

static int conf_set(rd_kafka_conf_t *conf, const char *name,
                    const char *value)
{
        char errstr[256];

        if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        fprintf(stderr, "passthrough: %s: %s\n", name, errstr);
        return -1;
}

static int conf_set_props(rd_kafka_conf_t *conf, const struct opts *opts)
{
        for (int i = 0; i < opts->n_props; i++) {
                const char *prop = opts->props[i];
                const char *eq = strchr(prop, '=');
                char name[128];

                if (!eq || (size_t)(eq - prop) >= sizeof(name)) {
                        fprintf(stderr, "passthrough: bad property '%s'\n",
                                prop);
                        return -1;
                }
                memcpy(name, prop, (size_t)(eq - prop));
                name[eq - prop] = '\0';
                if (conf_set(conf, name, eq + 1) < 0)
                        return -1;
        }
        return 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
        struct run *r = opaque;

        (void)rk;
        r->pending--;
        if (m->err && r->undelivered++ == 0)
                r->delivery_err = m->err;
}

/* Stops the run on what librdkafka does not recover from by itself: a
 * fatal error, or every broker unreachable (it would retry forever). */
static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque)
{
        char fatal_reason[512];

        (void)opaque;
        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(rk, fatal_reason, sizeof(fatal_reason));
                reason = fatal_reason;
        } else if (err != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
                return;
        }
        fprintf(stderr, "passthrough: %s: %s: %s\n", rd_kafka_name(rk),
                rd_kafka_err2name(err), reason);
        stop = STOP_ERROR;
}

static rd_kafka_t *new_client(struct run *r, rd_kafka_type_t type)
{
        const struct opts *opts = r->opts;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[512], txn_id[200];
        rd_kafka_t *rk;
        int rc = conf_set(conf, "bootstrap.servers", opts->brokers);

        if (type == RD_KAFKA_CONSUMER) {
                rc |= conf_set(conf, "group.id", opts->group);
                rc |= conf_set(conf, "auto.offset.reset", "earliest");
                rc |= conf_set(conf, "isolation.level", "read_committed");
                rc |= conf_set(conf, "session.timeout.ms", "6000");
                rc |= conf_set(conf, "heartbeat.interval.ms", "500");
                rc |= conf_set(conf, "enable.auto.commit", "false");
                rc |= conf_set(conf, "enable.auto.offset.store", "false");
                rc |= conf_set(conf, "enable.partition.eof", "false");
                rc |= conf_set_props(conf, opts);
        } else {
                rc |= conf_set(conf, "enable.idempotence", "true");
                rc |= conf_set(conf, "acks", "all");
                rc |= conf_set(conf, "linger.ms", "5");
                if (opts->txn) {
                        snprintf(txn_id, sizeof(txn_id), "passthrough-%s",
                                 opts->group);
                        rc |= conf_set(conf, "transactional.id", txn_id);
                }
                rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        }
        if (rc) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_opaque(conf, r);
        rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "passthrough: rd_kafka_new: %s\n", errstr);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* True once the run must end; turns the deadline into a stop. */
static bool stopping(struct run *r, double now)
{
        if (!stop && now >= r->give_up_at) {
                fprintf(stderr, "passthrough: not finished after "
                        "--timeout-s %ld, %ld of %ld items\n",
                        r->opts->timeout_s, r->finished, r->opts->expect);
                stop = STOP_ERROR;
        }
        return stop != 0;
}

/* One past the last offset of each partition in the batch. */
static rd_kafka_topic_partition_list_t *batch_offsets(const struct run *r)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(64);

        for (long i = 0; i < r->batch_len; i++) {
                const rd_kafka_message_t *m = r->batch[i];
                rd_kafka_topic_partition_t *tp =
                        rd_kafka_topic_partition_list_find(
                                list, rd_kafka_topic_name(m->rkt),
                                m->partition);

                if (!tp)
                        tp = rd_kafka_topic_partition_list_add(
                                list, rd_kafka_topic_name(m->rkt),
                                m->partition);
                tp->offset = m->offset + 1;
        }
        return list;
}

/* Returns 0 once every output is acknowledged, -1 if one failed or the
 * run stops first. */
static int wait_deliveries(struct run *r)
{
        rd_kafka_poll(r->producer, 0);
        while (r->pending > 0 && !stopping(r, bench_clock(CLOCK_MONOTONIC)))
                rd_kafka_poll(r->producer, POLL_SLICE_MS);
        if (r->undelivered > 0)
                fprintf(stderr, "passthrough: %ld outputs not delivered: %s\n",
                        r->undelivered, rd_kafka_err2str(r->delivery_err));
        return r->pending > 0 || r->undelivered > 0 ? -1 : 0;
}

static int txn_check(rd_kafka_error_t *error, const char *what)
{
        if (!error)
                return 0;
        fprintf(stderr, "passthrough: %s: %s\n", what,
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
}

static void drop_batch(struct run *r)
{
        for (long i = 0; i < r->batch_len; i++)
                rd_kafka_message_destroy(r->batch[i]);
        r->batch_len = 0;
}

static int commit_txn(struct run *r,
                      const rd_kafka_topic_partition_list_t *offsets)
{
        rd_kafka_consumer_group_metadata_t *meta =
                rd_kafka_consumer_group_metadata(r->consumer);
        int rc;

        rc = txn_check(rd_kafka_send_offsets_to_transaction(
                               r->producer, offsets, meta, TXN_TIMEOUT_MS),
                       "send_offsets_to_transaction");
        rd_kafka_consumer_group_metadata_destroy(meta);
        if (rc == 0)
                rc = txn_check(rd_kafka_commit_transaction(r->producer,
                                                           TXN_TIMEOUT_MS),
                               "commit_transaction");
        if (rc == 0)
                r->in_txn = false;
        return rc;
}

/* Finishes the batch in hand.  Returns 0, or -1 (the run stops, the
 * messages stay in the batch: outputs may still point into them). */
static int finish_batch(struct run *r)
{
        rd_kafka_topic_partition_list_t *offsets = batch_offsets(r);
        int rc = r->opts->txn ? commit_txn(r, offsets) : 0;

        if (rc == 0)
                rc = wait_deliveries(r);
        if (rc == 0 && (!r->opts->txn || r->opts->mirror_offsets))
                rd_kafka_commit(r->consumer, offsets, 1);
        rd_kafka_topic_partition_list_destroy(offsets);
        if (rc < 0)
                return -1;
        r->finished += r->batch_len;
        r->batches++;
        drop_batch(r);
        return 0;
}

/* The daemon's headers for a typical clean item consumed as m. */
static rd_kafka_headers_t *clean_headers(const rd_kafka_message_t *m)
{
        static const struct cl_verdict clean = {
                .tag = CL_TAG_CLEAN, .given = 3, .suggested = 3,
                .quality = 0.912345, .threshold = 0.54321,
                .reason = "pass"};
        const struct cfd_source src = {rd_kafka_topic_name(m->rkt),
                                       m->partition, m->offset};

        return cfd_headers_verdict(&clean, false, &src);
}

/* Produces m's key and value without a copy: m must outlive the output. */
static rd_kafka_resp_err_t send_output(struct run *r,
                                       const rd_kafka_message_t *m,
                                       rd_kafka_headers_t *hdrs)
{
        /* Without headers, as a plain client would call it. */
        if (hdrs)
                return rd_kafka_producev(
                        r->producer, RD_KAFKA_V_RKT(r->out),
                        RD_KAFKA_V_KEY(m->key, m->key_len),
                        RD_KAFKA_V_VALUE(m->payload, m->len),
                        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_MSGFLAGS(0),
                        RD_KAFKA_V_END);
        return rd_kafka_producev(r->producer, RD_KAFKA_V_RKT(r->out),
                                 RD_KAFKA_V_KEY(m->key, m->key_len),
                                 RD_KAFKA_V_VALUE(m->payload, m->len),
                                 RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
}

static int produce(struct run *r, const rd_kafka_message_t *m)
{
        rd_kafka_headers_t *hdrs = r->opts->headers ? clean_headers(m) : NULL;
        rd_kafka_resp_err_t err;

        if (r->opts->headers && !hdrs) {
                fprintf(stderr, "passthrough: headers refused\n");
                return -1;
        }
        while ((err = send_output(r, m, hdrs)) ==
                       RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               !stopping(r, bench_clock(CLOCK_MONOTONIC)))
                rd_kafka_poll(r->producer, POLL_SLICE_MS);
        if (err) {
                if (hdrs)
                        rd_kafka_headers_destroy(hdrs);
                fprintf(stderr, "passthrough: produce: %s\n",
                        rd_kafka_err2str(err));
                return -1;
        }
        r->pending++;
        return 0;
}

/* Takes one message; begins a batch (and its transaction) on the first. */
static int take(struct run *r, rd_kafka_message_t *m, double now,
                double *batch_due)
{
        if (r->t_first < 0)
                r->t_first = now;
        if (*batch_due < 0) {
                *batch_due = now + (double)r->opts->interval_ms / 1000.0;
                if (r->opts->txn) {
                        if (txn_check(rd_kafka_begin_transaction(r->producer),
                                      "begin_transaction") < 0)
                                return -1;
                        r->in_txn = true;
                }
        }
        r->batch[r->batch_len++] = m;
        return produce(r, m);
}

/* Takes messages until the batch is due; then finishes it.  Returns 0
 * after --expect messages, -1 when the run stops before. */
static int run_loop(struct run *r)
{
        double batch_due = -1.0, now;

        while (r->finished < r->opts->expect) {
                rd_kafka_message_t *m =
                        rd_kafka_consumer_poll(r->consumer, POLL_SLICE_MS);

                rd_kafka_poll(r->producer, 0);
                now = bench_clock(CLOCK_MONOTONIC);
                if (m && m->err) {
                        /* A fatal error may come as a message. */
                        if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                                on_error(r->consumer, m->err,
                                         rd_kafka_message_errstr(m), r);
                        rd_kafka_message_destroy(m);
                } else if (m && take(r, m, now, &batch_due) < 0) {
                        return -1;
                }
                if (stopping(r, now))
                        return -1;
                if (r->batch_len > 0 &&
                    (r->batch_len >= r->opts->max_items || now >= batch_due)) {
                        if (finish_batch(r) < 0)
                                return -1;
                        batch_due = -1.0;
                }
        }
        return 0;
}

static int parse_long(const char *name, const char *text, long min, long max,
                      long *ret)
{
        char *end;
        long value;

        errno = 0;
        value = strtol(text, &end, 10);
        if (errno || end == text || *end || value < min || value > max) {
                fprintf(stderr,
                        "passthrough: --%s '%s': not a whole number in "
                        "%ld..%ld\n",
                        name, text, min, max);
                return -1;
        }
        *ret = value;
        return 0;
}

static int parse_opts(int argc, char **argv, struct opts *opts)
{
        static const struct option longs[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"out", required_argument, NULL, 'o'},
                {"group", required_argument, NULL, 'g'},
                {"mode", required_argument, NULL, 'm'},
                {"max-items", required_argument, NULL, 'n'},
                {"interval-ms", required_argument, NULL, 'i'},
                {"expect", required_argument, NULL, 'e'},
                {"timeout-s", required_argument, NULL, 's'},
                {"property", required_argument, NULL, 'X'},
                {"headers", no_argument, NULL, 'H'},
                {"mirror-offsets", no_argument, NULL, 'M'},
                {NULL, 0, NULL, 0},
        };
        int c, rc = 0;

        while (rc == 0 &&
               (c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'b': opts->brokers = optarg; break;
                case 't': opts->topic = optarg; break;
                case 'o': opts->out = optarg; break;
                case 'g': opts->group = optarg; break;
                case 'm':
                        opts->txn = !strcmp(optarg, "exactly_once");
                        if (!opts->txn && strcmp(optarg, "at_least_once")) {
                                fprintf(stderr, "passthrough: --mode '%s': "
                                        "exactly_once or at_least_once\n",
                                        optarg);
                                rc = -1;
                        }
                        break;
                case 'n':
                        rc = parse_long("max-items", optarg, 1, 1000000,
                                        &opts->max_items);
                        break;
                case 'i':
                        rc = parse_long("interval-ms", optarg, 1, 3600000,
                                        &opts->interval_ms);
                        break;
                case 'e':
                        rc = parse_long("expect", optarg, 1, LONG_MAX,
                                        &opts->expect);
                        break;
                case 's':
                        rc = parse_long("timeout-s", optarg, 1, 86400,
                                        &opts->timeout_s);
                        break;
                case 'H': opts->headers = true; break;
                case 'M': opts->mirror_offsets = true; break;
                case 'X':
                        if (opts->n_props == MAX_PROPS)
                                return -1;
                        opts->props[opts->n_props++] = optarg;
                        break;
                default: return -1;
                }
        }
        if (rc < 0 || optind < argc || !opts->brokers || !opts->topic ||
            !opts->out || !opts->expect)
                return -1;
        return 0;
}

static int start(struct run *r)
{
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_resp_err_t err;

        r->consumer = new_client(r, RD_KAFKA_CONSUMER);
        r->producer = new_client(r, RD_KAFKA_PRODUCER);
        r->batch = malloc((size_t)r->opts->max_items * sizeof(*r->batch));
        if (!r->consumer || !r->producer || !r->batch)
                return -1;
        r->out = rd_kafka_topic_new(r->producer, r->opts->out, NULL);
        if (!r->out) {
                fprintf(stderr, "passthrough: topic '%s': %s\n", r->opts->out,
                        rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        if (r->opts->txn &&
            txn_check(rd_kafka_init_transactions(r->producer, TXN_TIMEOUT_MS),
                      "init_transactions") < 0)
                return -1;
        rd_kafka_poll_set_consumer(r->consumer);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, r->opts->topic,
                                          RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(r->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                fprintf(stderr, "passthrough: subscribe: %s\n",
                        rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

/*
 * Releases the run in the order librdkafka needs: an open transaction
 * aborted, the producer gone (its outputs point into the consumed
 * messages), then the messages destroyed before the consumer closes.
 */
static void close_run(struct run *r)
{
        if (r->producer) {
                if (r->in_txn)
                        txn_check(rd_kafka_abort_transaction(r->producer,
                                                             ABORT_TIMEOUT_MS),
                                  "abort_transaction");
                /* After a success nothing is left to purge. */
                rd_kafka_purge(r->producer, RD_KAFKA_PURGE_F_QUEUE |
                                                    RD_KAFKA_PURGE_F_INFLIGHT);
                if (r->out)
                        rd_kafka_topic_destroy(r->out);
                rd_kafka_destroy(r->producer);
        }
        drop_batch(r);
        if (r->consumer) {
                rd_kafka_consumer_close(r->consumer);
                rd_kafka_destroy(r->consumer);
        }
        free(r->batch);
}

static void print_result(const struct run *r)
{
        double span = 0.0, cpu_s;
        struct rusage ru;

        if (r->t_first >= 0)
                span = bench_clock(CLOCK_MONOTONIC) - r->t_first;
        getrusage(RUSAGE_SELF, &ru);
        cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
        printf("passthrough items=%ld batches=%ld first_to_last_s=%.3f "
               "items_per_s=%.0f cpu_s=%.2f\n",
               r->finished, r->batches, span,
               span > 0 ? (double)r->finished / span : 0.0, cpu_s);
}

int main(int argc, char **argv)
{
        struct opts opts = {.group = "passthrough", .max_items = 10000,
                            .interval_ms = 100, .timeout_s = 300};
        struct run r = {.opts = &opts, .t_first = -1.0};
        const struct rd_kafka_metadata *meta = NULL;
        int rc = 1;

        if (parse_opts(argc, argv, &opts) < 0) {
                fprintf(stderr,
                        "usage: passthrough --brokers ADDR --topic IN --out "
                        "OUT --expect N\n"
                        "         [--group G] [--mode exactly_once|"
                        "at_least_once] [--max-items N]\n"
                        "         [--interval-ms MS] [--timeout-s S] "
                        "[--headers] [--mirror-offsets]\n"
                        "         [--property NAME=VALUE]...\n");
                return 2;
        }
        r.give_up_at = bench_clock(CLOCK_MONOTONIC) + (double)opts.timeout_s;
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        if (start(&r) < 0)
                goto out_close;
        /* Output topic metadata before the first message, as the daemon
         * warms its output topics. */
        if (rd_kafka_metadata(r.producer, 0, r.out, &meta,
                              METADATA_TIMEOUT_MS) == 0)
                rd_kafka_metadata_destroy(meta);
        if (run_loop(&r) == 0)
                rc = 0;
        else if (stop > 0)
                fprintf(stderr, "passthrough: stopped by signal %d; the "
                        "batch in hand is not committed\n", (int)stop);
        print_result(&r);
out_close:
        close_run(&r);
        return rc;
}
