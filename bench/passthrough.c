/*
 * passthrough.c - the baseline for the end-to-end benchmark: consume a
 * topic and produce every message's key and value, unchanged and without
 * headers, to one output topic, finishing batches as daemon/cfd_commit.c
 * does: a batch ends after --max-items messages or --interval-ms since
 * its first message; then
 *
 *   at_least_once: wait until every output is acknowledged, commit the
 *                  offsets (asynchronously);
 *   exactly_once:  the outputs and the offsets in one transaction
 *                  (send_offsets_to_transaction, commit_transaction),
 *                  then the same offsets committed outside it, as the
 *                  daemon does for the mock broker.
 *
 * With --headers every output also carries the seven headers the daemon
 * attaches to a clean item, built by the daemon's own cfd_headers_verdict()
 * for a fixed verdict: a baseline that pays what the daemon's outputs cost
 * librdkafka and the broker, without the scoring.
 *
 * Client settings are the daemon's defaults (cfd_kafka.c); --property
 * adds the ones its configuration adds.  Stops after --expect messages
 * are finished, or on SIGTERM/SIGINT, and prints
 *
 *   passthrough items=N batches=B first_to_last_s=S items_per_s=R
 *
 * where S runs from the first message consumed to the last batch done.
 */
#include <getopt.h>
#include <inttypes.h>
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
#define POLL_SLICE_MS 100

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
        stop = sig;
}

struct opts {
        const char *brokers, *topic, *out, *group;
        bool txn;
        bool headers;
        long max_items, interval_ms, expect;
        const char *props[MAX_PROPS];
        int nprops;
};

struct run {
        const struct opts *o;
        rd_kafka_t *consumer, *producer;
        rd_kafka_topic_t *out;
        rd_kafka_message_t **batch;
        long n, pending, failed;
        long done, batches;
        double t_first;
};

static int set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
        char err[256];

        if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        fprintf(stderr, "passthrough: %s: %s\n", name, err);
        return -1;
}

static int set_props(rd_kafka_conf_t *conf, const struct opts *o)
{
        for (int i = 0; i < o->nprops; i++) {
                char name[128];
                const char *eq = strchr(o->props[i], '=');

                if (!eq || (size_t)(eq - o->props[i]) >= sizeof(name)) {
                        fprintf(stderr, "passthrough: bad property '%s'\n",
                                o->props[i]);
                        return -1;
                }
                memcpy(name, o->props[i], (size_t)(eq - o->props[i]));
                name[eq - o->props[i]] = '\0';
                if (set(conf, name, eq + 1) < 0)
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
        if (m->err)
                r->failed++;
}

static rd_kafka_t *client(struct run *r, rd_kafka_type_t type)
{
        const struct opts *o = r->o;
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char err[512], txn_id[200];
        rd_kafka_t *rk;
        int rc = set(conf, "bootstrap.servers", o->brokers);

        if (type == RD_KAFKA_CONSUMER) {
                rc |= set(conf, "group.id", o->group);
                rc |= set(conf, "auto.offset.reset", "earliest");
                rc |= set(conf, "isolation.level", "read_committed");
                rc |= set(conf, "session.timeout.ms", "6000");
                rc |= set(conf, "heartbeat.interval.ms", "500");
                rc |= set(conf, "enable.auto.commit", "false");
                rc |= set(conf, "enable.auto.offset.store", "false");
                rc |= set(conf, "enable.partition.eof", "false");
        } else {
                rc |= set(conf, "enable.idempotence", "true");
                rc |= set(conf, "acks", "all");
                rc |= set(conf, "linger.ms", "5");
                snprintf(txn_id, sizeof(txn_id), "passthrough-%s", o->group);
                if (o->txn)
                        rc |= set(conf, "transactional.id", txn_id);
                rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
                rd_kafka_conf_set_opaque(conf, r);
        }
        if (rc || (type == RD_KAFKA_CONSUMER && set_props(conf, o) < 0)) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rk = rd_kafka_new(type, conf, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "passthrough: rd_kafka_new: %s\n", err);
                rd_kafka_conf_destroy(conf);
        }
        return rk;
}

/* One past the last offset of each partition in the batch. */
static rd_kafka_topic_partition_list_t *batch_offsets(const struct run *r)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(64);

        for (long i = 0; i < r->n; i++) {
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

static int wait_deliveries(struct run *r)
{
        while (r->pending > 0 && !stop)
                rd_kafka_poll(r->producer, POLL_SLICE_MS);
        return r->failed ? -1 : 0;
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

/* Finishes the batch in hand.  Returns 0 or -1 (the run stops). */
static int finish_batch(struct run *r)
{
        rd_kafka_topic_partition_list_t *offsets = batch_offsets(r);
        rd_kafka_consumer_group_metadata_t *meta;
        int rc = 0;

        if (r->o->txn) {
                meta = rd_kafka_consumer_group_metadata(r->consumer);
                rc = txn_check(rd_kafka_send_offsets_to_transaction(
                                       r->producer, offsets, meta,
                                       TXN_TIMEOUT_MS),
                               "send_offsets_to_transaction");
                rd_kafka_consumer_group_metadata_destroy(meta);
                if (rc == 0)
                        rc = txn_check(rd_kafka_commit_transaction(
                                               r->producer, TXN_TIMEOUT_MS),
                                       "commit_transaction");
                if (rc == 0)
                        rc = wait_deliveries(r);
                if (rc == 0)
                        rd_kafka_commit(r->consumer, offsets, 1);
        } else {
                rc = wait_deliveries(r);
                if (rc == 0)
                        rd_kafka_commit(r->consumer, offsets, 1);
        }
        rd_kafka_topic_partition_list_destroy(offsets);
        for (long i = 0; i < r->n; i++)
                rd_kafka_message_destroy(r->batch[i]);
        r->done += r->n;
        r->batches++;
        r->n = 0;
        return rc;
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

static int produce(struct run *r, rd_kafka_message_t *m)
{
        rd_kafka_headers_t *hdrs = r->o->headers ? clean_headers(m) : NULL;
        rd_kafka_resp_err_t err;

        if (r->o->headers && !hdrs) {
                fprintf(stderr, "passthrough: headers refused\n");
                return -1;
        }
        for (;;) {
                /* Without headers, as a plain client would call it. */
                if (hdrs)
                        err = rd_kafka_producev(
                                r->producer, RD_KAFKA_V_RKT(r->out),
                                RD_KAFKA_V_KEY(m->key, m->key_len),
                                RD_KAFKA_V_VALUE(m->payload, m->len),
                                RD_KAFKA_V_HEADERS(hdrs),
                                RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
                else
                        err = rd_kafka_producev(
                                r->producer, RD_KAFKA_V_RKT(r->out),
                                RD_KAFKA_V_KEY(m->key, m->key_len),
                                RD_KAFKA_V_VALUE(m->payload, m->len),
                                RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(r->producer, POLL_SLICE_MS);
        }
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

/* Takes messages until the batch is due; then finishes it. */
static int loop(struct run *r)
{
        double deadline = -1.0, now;

        while (!stop && r->done < r->o->expect) {
                rd_kafka_message_t *m =
                        rd_kafka_consumer_poll(r->consumer, POLL_SLICE_MS);

                rd_kafka_poll(r->producer, 0);
                now = bench_clock(CLOCK_MONOTONIC);
                if (m && m->err) {
                        rd_kafka_message_destroy(m);
                } else if (m) {
                        if (r->t_first < 0)
                                r->t_first = now;
                        if (deadline < 0) {
                                deadline = now + r->o->interval_ms / 1000.0;
                                if (r->o->txn &&
                                    txn_check(rd_kafka_begin_transaction(
                                                      r->producer),
                                              "begin_transaction") < 0)
                                        return -1;
                        }
                        r->batch[r->n++] = m;
                        if (produce(r, m) < 0)
                                return -1;
                }
                if (r->n > 0 && (r->n >= r->o->max_items || now >= deadline)) {
                        if (finish_batch(r) < 0)
                                return -1;
                        deadline = -1.0;
                }
        }
        return 0;
}

static int parse(int argc, char **argv, struct opts *o)
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
                {"property", required_argument, NULL, 'X'},
                {"headers", no_argument, NULL, 'H'},
                {NULL, 0, NULL, 0},
        };
        int c;

        while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
                switch (c) {
                case 'b': o->brokers = optarg; break;
                case 't': o->topic = optarg; break;
                case 'o': o->out = optarg; break;
                case 'g': o->group = optarg; break;
                case 'm': o->txn = !strcmp(optarg, "exactly_once"); break;
                case 'n': o->max_items = strtol(optarg, NULL, 10); break;
                case 'i': o->interval_ms = strtol(optarg, NULL, 10); break;
                case 'e': o->expect = strtol(optarg, NULL, 10); break;
                case 'H': o->headers = true; break;
                case 'X':
                        if (o->nprops == MAX_PROPS)
                                return -1;
                        o->props[o->nprops++] = optarg;
                        break;
                default: return -1;
                }
        }
        if (!o->brokers || !o->topic || !o->out || o->max_items < 1 ||
            o->interval_ms < 1 || o->expect < 1)
                return -1;
        return 0;
}

static int start(struct run *r)
{
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_resp_err_t err;

        r->consumer = client(r, RD_KAFKA_CONSUMER);
        r->producer = client(r, RD_KAFKA_PRODUCER);
        r->batch = malloc((size_t)r->o->max_items * sizeof(*r->batch));
        if (!r->consumer || !r->producer || !r->batch)
                return -1;
        r->out = rd_kafka_topic_new(r->producer, r->o->out, NULL);
        if (r->o->txn && txn_check(rd_kafka_init_transactions(r->producer,
                                                              TXN_TIMEOUT_MS),
                                   "init_transactions") < 0)
                return -1;
        rd_kafka_poll_set_consumer(r->consumer);
        topics = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, r->o->topic,
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

int main(int argc, char **argv)
{
        struct opts o = {.group = "passthrough", .max_items = 10000,
                         .interval_ms = 100};
        struct run r = {.o = &o, .t_first = -1.0};
        const struct rd_kafka_metadata *md = NULL;
        struct rusage ru;
        double span;
        int rc = 1;

        if (parse(argc, argv, &o) < 0) {
                fprintf(stderr,
                        "usage: passthrough --brokers ADDR --topic IN --out "
                        "OUT --expect N\n"
                        "         [--group G] [--mode exactly_once|"
                        "at_least_once] [--max-items N]\n"
                        "         [--interval-ms MS] [--headers] "
                        "[--property NAME=VALUE]...\n");
                return 2;
        }
        signal(SIGTERM, on_signal);
        signal(SIGINT, on_signal);
        if (start(&r) < 0)
                goto out_close;
        /* Output topic metadata before the first message, as the daemon
         * warms its output topics. */
        if (rd_kafka_metadata(r.producer, 0, r.out, &md, 10000) == 0)
                rd_kafka_metadata_destroy(md);
        if (loop(&r) == 0 && (r.n == 0 || finish_batch(&r) == 0))
                rc = 0;
        span = bench_clock(CLOCK_MONOTONIC) - r.t_first;
        getrusage(RUSAGE_SELF, &ru);
        printf("passthrough items=%ld batches=%ld first_to_last_s=%.3f "
               "items_per_s=%.0f cpu_s=%.2f\n",
               r.done, r.batches, span,
               r.t_first >= 0 && span > 0 ? (double)r.done / span : 0.0,
               (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) *
                               1e-6);
out_close:
        if (r.consumer)
                rd_kafka_consumer_close(r.consumer);
        if (r.out)
                rd_kafka_topic_destroy(r.out);
        if (r.producer) {
                rd_kafka_flush(r.producer, 10000);
                rd_kafka_destroy(r.producer);
        }
        if (r.consumer)
                rd_kafka_destroy(r.consumer);
        free(r.batch);
        return rc;
}
