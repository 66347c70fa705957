#include "cfd_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cfd_kafka.h"
#include "cfd_log.h"
#include "msg.h"

/* How long a stopping daemon keeps retrying undelivered outputs. */
#define SHUTDOWN_GRACE_MS 30000
/* Delivery retry back-off: doubles from the first value up to the cap. */
#define RETRY_BACKOFF_FIRST_MS 100
#define RETRY_BACKOFF_MAX_MS 5000
/* Longest single wait inside the loop, so a stop request is seen soon. */
#define POLL_SLICE_MS 100
#define METADATA_TIMEOUT_MS 10000

/* Header names: the contract of schemas/README.md. */
#define HDR_VERDICT "confidentd-verdict"
#define HDR_GIVEN "confidentd-given"
#define HDR_SUGGESTED "confidentd-suggested"
#define HDR_QUALITY "confidentd-quality"
#define HDR_THRESHOLD "confidentd-threshold"
#define HDR_REASON "confidentd-reason"
#define HDR_SOURCE "confidentd-source"
#define HDR_ERROR "confidentd-error"

enum route {
        ROUTE_CLEAN = 0,
        ROUTE_SUSPECT,
        ROUTE_DEAD_LETTER,
        ROUTE_COUNT,
};

static const char *const route_names[ROUTE_COUNT] = {"clean", "suspect",
                                                     "dead_letter"};

enum slot_state {
        SLOT_PENDING = 0, /* produced, no delivery report yet */
        SLOT_DONE,        /* acknowledged by the broker */
        SLOT_FAILED,      /* delivery failed: to be produced again */
};

/* One input message of the current batch and what became of it. */
struct slot {
        rd_kafka_message_t *in; /* owned until the batch is released */
        enum route route;
        enum slot_state state;
        rd_kafka_resp_err_t err;
        struct cl_verdict verdict; /* clean and suspect routes */
        const char *error_code;    /* dead-letter route: "CL_E_RANGE" */
        char reason[256];          /* dead-letter route: the detail */
};

struct progress {
        int64_t last_ms;
        uint64_t consumed, decided, suspect;
};

struct cfd_loop {
        const struct cfg *cfg;
        struct cl_state *state;
        struct msg_decoder *decoder;
        double *probs; /* K values, reused for every message */

        rd_kafka_t *consumer;
        rd_kafka_t *producer;
        rd_kafka_topic_t *out[ROUTE_COUNT];

        struct slot *slots; /* the current batch, capacity max_items */
        size_t n_slots;
        size_t cap_slots;
        size_t pending; /* produced, awaiting a delivery report */

        bool fatal;
        bool stopping;
        struct cfd_loop_stats stats;
        struct progress progress;
};

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/*
 * Client callbacks.  They run inside rd_kafka_poll() or
 * rd_kafka_consumer_poll() on the loop's thread, except the log callback.
 */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque)
{
        struct cfd_loop *loop = opaque;
        struct slot *slot = m->_private;

        (void)rk;
        slot->err = m->err;
        slot->state = m->err ? SLOT_FAILED : SLOT_DONE;
        loop->pending--;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
        struct cfd_loop *loop = opaque;
        char quoted[512];
        char fatal_reason[512];

        if (err == RD_KAFKA_RESP_ERR__FATAL) {
                rd_kafka_fatal_error(rk, fatal_reason, sizeof(fatal_reason));
                cfd_log(CFD_LOG_ERROR, "kafka_fatal",
                        "client=%s err=%s action=stop", rd_kafka_name(rk),
                        cfd_log_quote(quoted, sizeof(quoted), fatal_reason));
                loop->fatal = true;
                return;
        }
        cfd_log(CFD_LOG_WARN, "kafka_error", "client=%s code=%s err=%s",
                rd_kafka_name(rk), rd_kafka_err2name(err),
                cfd_log_quote(quoted, sizeof(quoted), reason));
}

static int batch_finish(struct cfd_loop *loop);

static void log_partitions(const char *event,
                           const rd_kafka_topic_partition_list_t *parts)
{
        char list[512];
        size_t n = 0;

        list[0] = '\0';
        for (int i = 0; i < parts->cnt && n < sizeof(list) - 16; i++)
                n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%" PRId32,
                                      i ? "," : "", parts->elems[i].partition);
        cfd_log(CFD_LOG_INFO, event, "topic=%s count=%d partitions=%s",
                parts->cnt ? parts->elems[0].topic : "-", parts->cnt, list);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
        struct cfd_loop *loop = opaque;
        bool cooperative = !strcmp(rd_kafka_rebalance_protocol(rk),
                                   "COOPERATIVE");
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                log_partitions("partitions_assigned", parts);
                if (cooperative)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, parts);
        } else {
                /* Finish what was taken from these partitions before
                 * they go, so the next owner starts after it. */
                log_partitions("partitions_revoked", parts);
                if (loop->n_slots)
                        batch_finish(loop);
                if (cooperative)
                        error = rd_kafka_incremental_unassign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, NULL);
        }

        if (error) {
                cfd_log(CFD_LOG_ERROR, "assign_failed", "err=\"%s\"",
                        rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        } else if (aerr) {
                cfd_log(CFD_LOG_ERROR, "assign_failed", "err=\"%s\"",
                        rd_kafka_err2str(aerr));
        }
}

/*
 * Scoring: decode, check, update the statistics, pick a route.
 */

static void reject_decode(struct slot *slot, int code,
                          const struct msg_error *merr)
{
        slot->route = ROUTE_DEAD_LETTER;
        slot->error_code = msg_err_name(code);
        if (merr->field[0])
                snprintf(slot->reason, sizeof(slot->reason),
                         "%s: %s (byte %zu)", merr->field, merr->msg,
                         merr->offset);
        else
                snprintf(slot->reason, sizeof(slot->reason), "%s (byte %zu)",
                         merr->msg, merr->offset);
}

static double row_sum(const double *p, unsigned k)
{
        double s = 0.0;

        for (unsigned i = 0; i < k; i++)
                s += p[i];
        return s;
}

static void reject_row(struct cfd_loop *loop, struct slot *slot, int code,
                       int64_t label, size_t index)
{
        const struct cl_params *par = cl_state_params(loop->state);
        const double *p = loop->probs;
        char *r = slot->reason;
        size_t n = sizeof(slot->reason);

        slot->route = ROUTE_DEAD_LETTER;
        slot->error_code = cl_err_name(code);
        switch (code) {
        case CL_E_LABEL_RANGE:
                snprintf(r, n, "label: %" PRId64 " is outside 0..%u", label,
                         par->k - 1);
                break;
        case CL_E_NONFINITE:
                snprintf(r, n, "pred_probs[%zu]: %g is not finite", index,
                         p[index]);
                break;
        case CL_E_RANGE:
                snprintf(r, n, "pred_probs[%zu]: %.17g is outside [0, 1]",
                         index, p[index]);
                break;
        case CL_E_ROW_SUM:
                snprintf(r, n, "pred_probs: values sum to %.17g, not 1 "
                               "within %g", row_sum(p, par->k), par->sum_tol);
                break;
        default:
                snprintf(r, n, "%s", cl_strerror(code));
                break;
        }
}

static void score(struct cfd_loop *loop, struct slot *slot)
{
        const rd_kafka_message_t *in = slot->in;
        struct msg_label label = {.probs = loop->probs};
        struct msg_error merr;
        size_t index = 0;
        unsigned k = cl_state_params(loop->state)->k;
        int rc;

        rc = msg_decode(loop->decoder, in->payload, in->len, &label, &merr);
        if (rc < 0) {
                reject_decode(slot, rc, &merr);
                return;
        }
        rc = cl_observe(loop->state, (long)label.label, loop->probs, k,
                        &slot->verdict, &index);
        if (rc < 0) {
                reject_row(loop, slot, rc, label.label, index);
                return;
        }
        slot->route = slot->verdict.tag == CL_TAG_SUSPECT ? ROUTE_SUSPECT
                                                          : ROUTE_CLEAN;
}

static void count_route(struct cfd_loop *loop, const struct slot *slot)
{
        switch (slot->route) {
        case ROUTE_SUSPECT:
                loop->stats.suspect++;
                break;
        case ROUTE_DEAD_LETTER:
                loop->stats.dead_letter++;
                break;
        default:
                if (slot->verdict.tag == CL_TAG_WARMUP)
                        loop->stats.warmup++;
                else
                        loop->stats.clean++;
                break;
        }
}

/*
 * Producing: the output carries the input's key and value, not copied
 * (the consumed message stays alive until the batch is released).
 */

static int add_header(rd_kafka_headers_t *h, const char *name,
                      const char *value)
{
        return rd_kafka_header_add(h, name, -1, value, -1) ? -1 : 0;
}

static rd_kafka_headers_t *make_headers(const struct slot *slot)
{
        const struct cl_verdict *v = &slot->verdict;
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        char source[320], num[3][32];
        int rc = 0;

        snprintf(source, sizeof(source), "%s/%" PRId32 "/%" PRId64,
                 rd_kafka_topic_name(slot->in->rkt), slot->in->partition,
                 slot->in->offset);
        if (slot->route == ROUTE_DEAD_LETTER) {
                rc |= add_header(h, HDR_ERROR, slot->error_code);
                rc |= add_header(h, HDR_REASON, slot->reason);
                rc |= add_header(h, HDR_SOURCE, source);
        } else {
                snprintf(num[0], sizeof(num[0]), "%u", v->given);
                snprintf(num[1], sizeof(num[1]), "%u", v->suggested);
                rc |= add_header(h, HDR_VERDICT,
                                 slot->route == ROUTE_SUSPECT ? "suspect"
                                                              : "clean");
                rc |= add_header(h, HDR_GIVEN, num[0]);
                rc |= add_header(h, HDR_SUGGESTED, num[1]);
                snprintf(num[2], sizeof(num[2]), "%.6g", v->quality);
                rc |= add_header(h, HDR_QUALITY, num[2]);
                snprintf(num[2], sizeof(num[2]), "%.6g", v->threshold);
                rc |= add_header(h, HDR_THRESHOLD, num[2]);
                rc |= add_header(h, HDR_REASON, v->reason);
                rc |= add_header(h, HDR_SOURCE, source);
        }
        if (rc) {
                rd_kafka_headers_destroy(h);
                return NULL;
        }
        return h;
}

/* Hands one output to the producer, waiting while its queue is full. */
static void produce(struct cfd_loop *loop, struct slot *slot)
{
        const rd_kafka_message_t *in = slot->in;
        rd_kafka_headers_t *hdrs = make_headers(slot);
        rd_kafka_resp_err_t err;

        if (!hdrs) {
                slot->state = SLOT_FAILED;
                slot->err = RD_KAFKA_RESP_ERR__FAIL;
                return;
        }
        slot->state = SLOT_PENDING;
        for (;;) {
                err = rd_kafka_producev(
                        loop->producer, RD_KAFKA_V_RKT(loop->out[slot->route]),
                        RD_KAFKA_V_KEY(in->key, in->key_len),
                        RD_KAFKA_V_VALUE(in->payload, in->len),
                        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(slot),
                        RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(loop->producer, POLL_SLICE_MS);
        }
        if (err) {
                rd_kafka_headers_destroy(hdrs);
                slot->state = SLOT_FAILED;
                slot->err = err;
                return;
        }
        loop->pending++;
}

/*
 * Finishing a batch: wait for every delivery report, produce failed
 * outputs again, commit, release the input messages.
 */

static int wait_deliveries(struct cfd_loop *loop)
{
        while (loop->pending > 0) {
                rd_kafka_poll(loop->producer, POLL_SLICE_MS);
                if (loop->fatal)
                        return -1;
        }
        return 0;
}

static size_t reproduce_failed(struct cfd_loop *loop)
{
        size_t failed = 0;

        for (size_t i = 0; i < loop->n_slots; i++) {
                struct slot *slot = &loop->slots[i];

                if (slot->state != SLOT_FAILED)
                        continue;
                if (failed++ == 0)
                        cfd_log(CFD_LOG_WARN, "delivery_failed",
                                "topic=%s err=\"%s\" action=retry",
                                rd_kafka_topic_name(loop->out[slot->route]),
                                rd_kafka_err2str(slot->err));
                loop->stats.delivery_retries++;
                produce(loop, slot);
        }
        return failed;
}

static size_t count_failed(const struct cfd_loop *loop)
{
        size_t n = 0;

        for (size_t i = 0; i < loop->n_slots; i++)
                n += loop->slots[i].state == SLOT_FAILED;
        return n;
}

/*
 * Delivers every output of the batch, retrying with back-off.  Gives up
 * only when stopping and the grace period is over.  Returns 0 when all
 * outputs are delivered, -1 otherwise.
 */
static int deliver_all(struct cfd_loop *loop)
{
        int backoff_ms = RETRY_BACKOFF_FIRST_MS;
        int64_t give_up_at = -1;

        for (;;) {
                if (wait_deliveries(loop) < 0)
                        return -1;
                if (count_failed(loop) == 0)
                        return 0;
                if (loop->stopping && give_up_at < 0)
                        give_up_at = now_ms() + SHUTDOWN_GRACE_MS;
                if (give_up_at >= 0 && now_ms() >= give_up_at)
                        return -1;
                sleep_ms(backoff_ms);
                if (backoff_ms < RETRY_BACKOFF_MAX_MS)
                        backoff_ms *= 2;
                reproduce_failed(loop);
        }
}

/*
 * Offsets to commit: per partition, one past the last output delivered
 * with no undelivered output before it in the batch.
 */
static rd_kafka_topic_partition_list_t *commit_list(const struct cfd_loop *loop)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(16);
        rd_kafka_topic_partition_t *tp = NULL;

        for (size_t i = 0; i < loop->n_slots; i++) {
                const struct slot *slot = &loop->slots[i];
                const char *topic = rd_kafka_topic_name(slot->in->rkt);

                if (!tp || tp->partition != slot->in->partition ||
                    strcmp(tp->topic, topic))
                        tp = rd_kafka_topic_partition_list_find(
                                list, topic, slot->in->partition);
                if (!tp) {
                        tp = rd_kafka_topic_partition_list_add(
                                list, topic, slot->in->partition);
                        tp->offset = RD_KAFKA_OFFSET_INVALID;
                        tp->opaque = NULL; /* NULL: not blocked */
                }
                if (tp->opaque)
                        continue;
                if (slot->state == SLOT_DONE)
                        tp->offset = slot->in->offset + 1;
                else
                        tp->opaque = (void *)slot; /* blocked from here */
        }
        return list;
}

static void commit_batch(struct cfd_loop *loop)
{
        rd_kafka_topic_partition_list_t *list = commit_list(loop);
        rd_kafka_resp_err_t err;
        int j = 0;

        /* Drop partitions with nothing delivered. */
        for (int i = 0; i < list->cnt; i++) {
                list->elems[i].opaque = NULL;
                if (list->elems[i].offset >= 0)
                        list->elems[j++] = list->elems[i];
        }
        list->cnt = j;

        if (j > 0) {
                /* Synchronous when stopping, so the last commit lands. */
                err = rd_kafka_commit(loop->consumer, list, !loop->stopping);
                if (err) {
                        loop->stats.commit_failures++;
                        cfd_log(CFD_LOG_WARN, "commit_failed",
                                "partitions=%d err=\"%s\" action=continue",
                                j, rd_kafka_err2str(err));
                } else {
                        loop->stats.commits++;
                }
        }
        rd_kafka_topic_partition_list_destroy(list);
}

static void batch_release(struct cfd_loop *loop)
{
        for (size_t i = 0; i < loop->n_slots; i++)
                rd_kafka_message_destroy(loop->slots[i].in);
        loop->n_slots = 0;
}

/* Returns 0 when the whole batch was delivered and committed. */
static int batch_finish(struct cfd_loop *loop)
{
        int rc = deliver_all(loop);

        if (loop->fatal) {
                /* Outputs may be lost in the fatal client; commit nothing. */
                batch_release(loop);
                return -1;
        }
        if (rc < 0)
                cfd_log(CFD_LOG_ERROR, "delivery_abandoned",
                        "undelivered=%zu action=not_committed",
                        count_failed(loop));
        commit_batch(loop);
        batch_release(loop);
        return rc;
}

/*
 * Taking a batch from the consumer.
 */

static void consumer_event(struct cfd_loop *loop, rd_kafka_message_t *m)
{
        cfd_log(CFD_LOG_WARN, "consume_error",
                "topic=%s partition=%" PRId32 " code=%s err=\"%s\"",
                m->rkt ? rd_kafka_topic_name(m->rkt) : "-", m->partition,
                rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                loop->fatal = true;
        rd_kafka_message_destroy(m);
}

static void take(struct cfd_loop *loop, rd_kafka_message_t *m)
{
        struct slot *slot = &loop->slots[loop->n_slots++];

        memset(slot, 0, sizeof(*slot));
        slot->in = m;
        loop->stats.consumed++;
        score(loop, slot);
        count_route(loop, slot);
        produce(loop, slot);
}

/*
 * Fills the batch until it holds max_items messages, interval_ms passed
 * since its first message, or a stop is requested.
 */
static void batch_fill(struct cfd_loop *loop, volatile sig_atomic_t *stop)
{
        int64_t deadline = -1;
        int wait_ms = POLL_SLICE_MS;

        while (loop->n_slots < loop->cap_slots && !*stop && !loop->fatal) {
                rd_kafka_message_t *m;

                if (deadline >= 0) {
                        int64_t left = deadline - now_ms();

                        if (left <= 0)
                                break;
                        wait_ms = left < POLL_SLICE_MS ? (int)left
                                                       : POLL_SLICE_MS;
                }
                m = rd_kafka_consumer_poll(loop->consumer, wait_ms);
                rd_kafka_poll(loop->producer, 0);
                if (!m) {
                        if (deadline < 0 && loop->n_slots == 0)
                                break; /* idle: let the caller look around */
                        continue;
                }
                if (m->err) {
                        consumer_event(loop, m);
                        continue;
                }
                if (deadline < 0)
                        deadline = now_ms() + loop->cfg->commit.interval_ms;
                take(loop, m);
        }
}

/*
 * Progress line: rates since the previous line, and consumer lag.
 */

static int64_t consumer_lag(const struct cfd_loop *loop)
{
        rd_kafka_topic_partition_list_t *parts = NULL;
        int64_t lag = 0;

        if (rd_kafka_assignment(loop->consumer, &parts) || !parts)
                return -1;
        if (rd_kafka_position(loop->consumer, parts)) {
                rd_kafka_topic_partition_list_destroy(parts);
                return -1;
        }
        for (int i = 0; i < parts->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &parts->elems[i];
                int64_t lo, hi;

                if (rd_kafka_get_watermark_offsets(loop->consumer, tp->topic,
                                                   tp->partition, &lo, &hi) ||
                    hi < 0)
                        continue;
                lag += tp->offset >= 0 ? hi - tp->offset : hi - lo;
        }
        rd_kafka_topic_partition_list_destroy(parts);
        return lag;
}

static void progress_maybe(struct cfd_loop *loop)
{
        const struct cfd_loop_stats *s = &loop->stats;
        struct progress *p = &loop->progress;
        unsigned every_s = loop->cfg->log.progress_interval_s;
        int64_t now = now_ms();
        uint64_t decided = s->clean + s->suspect;
        uint64_t d_decided, d_suspect;
        double secs;

        if (every_s == 0 || now - p->last_ms < (int64_t)every_s * 1000)
                return;

        secs = (double)(now - p->last_ms) / 1000.0;
        d_decided = decided - p->decided;
        d_suspect = s->suspect - p->suspect;
        cfd_log(CFD_LOG_INFO, "progress",
                "items=%" PRIu64 " items_per_s=%.0f clean=%" PRIu64
                " suspect=%" PRIu64 " warmup=%" PRIu64 " dead_letter=%" PRIu64
                " flag_rate=%.4f lag=%" PRId64,
                s->consumed, (double)(s->consumed - p->consumed) / secs,
                s->clean, s->suspect, s->warmup, s->dead_letter,
                d_decided ? (double)d_suspect / (double)d_decided : 0.0,
                consumer_lag(loop));
        p->last_ms = now;
        p->consumed = s->consumed;
        p->decided = decided;
        p->suspect = s->suspect;
}

int cfd_loop_run(struct cfd_loop *loop, volatile sig_atomic_t *stop)
{
        int rc = 0;

        loop->progress.last_ms = now_ms();
        while (!*stop && !loop->fatal) {
                batch_fill(loop, stop);
                if (loop->n_slots) {
                        loop->stopping = *stop != 0;
                        if (batch_finish(loop) < 0)
                                rc = -1;
                }
                progress_maybe(loop);
        }
        loop->stopping = true;
        if (loop->n_slots && batch_finish(loop) < 0)
                rc = -1;
        if (loop->fatal)
                rc = -1;
        return rc;
}

/*
 * Construction and teardown.
 */

static rd_kafka_t *client_new(struct cfd_loop *loop, enum cfd_kafka_role role,
                              const char *bootstrap, char *errbuf,
                              size_t errsize)
{
        rd_kafka_conf_t *conf = cfd_kafka_conf_new(loop->cfg, role, bootstrap,
                                                   loop, errbuf, errsize);
        rd_kafka_t *rk;

        if (!conf)
                return NULL;
        rd_kafka_conf_set_error_cb(conf, on_error);
        if (role == CFD_KAFKA_PRODUCER)
                rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        else
                rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);

        rk = rd_kafka_new(role == CFD_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER
                                                     : RD_KAFKA_CONSUMER,
                          conf, errbuf, errsize);
        if (!rk)
                rd_kafka_conf_destroy(conf); /* taken only on success */
        return rk;
}

static int open_outputs(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        const char *names[ROUTE_COUNT] = {loop->cfg->kafka.topic_clean,
                                          loop->cfg->kafka.topic_suspect,
                                          loop->cfg->kafka.topic_dead_letter};

        for (int r = 0; r < ROUTE_COUNT; r++) {
                loop->out[r] = rd_kafka_topic_new(loop->producer, names[r],
                                                  NULL);
                if (!loop->out[r]) {
                        snprintf(errbuf, errsize, "topic '%s': %s", names[r],
                                 rd_kafka_err2str(rd_kafka_last_error()));
                        return -1;
                }
                /* The first produce would otherwise wait for metadata. */
                if (cfd_kafka_warm_topic(loop->producer, names[r],
                                         METADATA_TIMEOUT_MS, errbuf,
                                         errsize) < 0)
                        return -1;
                cfd_log(CFD_LOG_DEBUG, "output_ready", "route=%s topic=%s",
                        route_names[r], names[r]);
        }
        return 0;
}

static int subscribe(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        rd_kafka_topic_partition_list_t *topics =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err;

        rd_kafka_topic_partition_list_add(topics, loop->cfg->kafka.topic_input,
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_poll_set_consumer(loop->consumer);
        err = rd_kafka_subscribe(loop->consumer, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                snprintf(errbuf, errsize, "subscribe to '%s': %s",
                         loop->cfg->kafka.topic_input, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

static int make_decoder(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        struct msg_schema schema = {
                .k = loop->cfg->classes.count,
                .class_names = (const char *const *)loop->cfg->classes.names,
        };
        int rc = msg_decoder_new(&schema, &loop->decoder);

        if (rc < 0)
                snprintf(errbuf, errsize, "message decoder: %s",
                         msg_strerror(rc));
        return rc < 0 ? -1 : 0;
}

int cfd_loop_new(const struct cfg *cfg, const char *bootstrap,
                 struct cl_state *state, struct cfd_loop **ret_loop,
                 char *errbuf, size_t errsize)
{
        struct cfd_loop *loop = calloc(1, sizeof(*loop));

        if (!loop) {
                snprintf(errbuf, errsize, "out of memory");
                return -1;
        }
        loop->cfg = cfg;
        loop->state = state;
        loop->cap_slots = cfg->commit.max_items;
        loop->slots = calloc(loop->cap_slots, sizeof(*loop->slots));
        loop->probs = calloc(cfg->classes.count, sizeof(*loop->probs));
        if (!loop->slots || !loop->probs) {
                snprintf(errbuf, errsize, "out of memory for a batch of %zu",
                         loop->cap_slots);
                goto out_free;
        }
        if (make_decoder(loop, errbuf, errsize) < 0)
                goto out_free;

        loop->producer = client_new(loop, CFD_KAFKA_PRODUCER, bootstrap,
                                    errbuf, errsize);
        if (!loop->producer || open_outputs(loop, errbuf, errsize) < 0)
                goto out_free;
        loop->consumer = client_new(loop, CFD_KAFKA_CONSUMER, bootstrap,
                                    errbuf, errsize);
        if (!loop->consumer || subscribe(loop, errbuf, errsize) < 0)
                goto out_free;

        *ret_loop = loop;
        return 0;

out_free:
        cfd_loop_free(loop);
        return -1;
}

void cfd_loop_free(struct cfd_loop *loop)
{
        rd_kafka_resp_err_t err;

        if (!loop)
                return;

        batch_release(loop);
        if (loop->consumer) {
                err = rd_kafka_consumer_close(loop->consumer);
                if (err)
                        cfd_log(CFD_LOG_WARN, "consumer_close_failed",
                                "err=\"%s\"", rd_kafka_err2str(err));
                rd_kafka_destroy(loop->consumer);
        }
        for (int r = 0; r < ROUTE_COUNT; r++)
                if (loop->out[r])
                        rd_kafka_topic_destroy(loop->out[r]);
        if (loop->producer) {
                /* Every batch waited for its deliveries: nothing is left
                 * but what a failed start produced (nothing). */
                rd_kafka_flush(loop->producer, POLL_SLICE_MS);
                rd_kafka_destroy(loop->producer);
        }
        msg_decoder_free(loop->decoder);
        free(loop->probs);
        free(loop->slots);
        free(loop);
}

const struct cfd_loop_stats *cfd_loop_stats(const struct cfd_loop *loop)
{
        return &loop->stats;
}
