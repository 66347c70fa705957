#include "cfd_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cfd_headers.h"
#include "cfd_kafka.h"
#include "cfd_log.h"
#include "cfd_loop_priv.h"
#include "cfd_offsets.h"
#include "cfd_peers.h"
#include "cfd_reason.h"
#include "cfd_route.h"
#include "cfd_state.h"
#include "msg.h"

#define METADATA_TIMEOUT_MS 10000
/* Messages taken between two services of the producer's reports. */
#define PRODUCER_POLL_EVERY 256
/* Upper bound of what our headers and the record framing add. */
#define HEADERS_MAX_BYTES 1024

static const char *const route_names[CFD_ROUTE_COUNT] = {"clean", "suspect",
                                                         "dead_letter"};

int64_t cfd_now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void cfd_sleep_ms(int ms)
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
        struct cfd_slot *slot = m->_private;

        (void)rk;
        if (!slot) {
                /* The state record: a transient error fails its
                 * transaction, which is redone; a permanent one would
                 * fail every transaction. */
                if (cfd_delivery_error_is_permanent(m->err)) {
                        cfd_log(CFD_LOG_ERROR, "state_refused",
                                "topic=%s bytes=%zu err=\"%s\" "
                                "hint=\"raise max.message.bytes of the state "
                                "topic and message.max.bytes in "
                                "kafka.producer_properties\" action=stop",
                                rd_kafka_topic_name(m->rkt), m->len,
                                rd_kafka_err2str(m->err));
                        loop->fatal = true;
                }
                return;
        }
        slot->err = m->err;
        slot->state = m->err ? CFD_SLOT_FAILED : CFD_SLOT_DONE;
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

/* At-least-once: asynchronous offset commits report here. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
        struct cfd_loop *loop = opaque;

        (void)rk;
        if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
                return;
        cfd_metrics_offset_commit(loop->metrics, err == 0);
        if (!err) {
                loop->stats.commits++;
                return;
        }
        loop->stats.commit_failures++;
        cfd_log(CFD_LOG_WARN, "commit_failed",
                "partitions=%d err=\"%s\" action=continue",
                offsets ? offsets->cnt : 0, rd_kafka_err2str(err));
}

static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
        struct cfd_loop *loop = opaque;

        (void)rk;
        cfd_metrics_stats_json(loop->metrics, json, len);
        return 0; /* librdkafka frees json */
}

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

/*
 * Exactly-once: each assigned partition starts at the larger of the
 * group's committed offset and the offset saved with the state snapshot
 * (cfd_offsets.h).  The two agree unless the broker lost the group's
 * offset, which happens when an open transaction holding offsets is
 * fenced, or another instance moved the partition further.
 */
static void start_offsets(struct cfd_loop *loop, rd_kafka_t *rk,
                          rd_kafka_topic_partition_list_t *parts)
{
        rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, 30000);

        if (err) {
                cfd_log(CFD_LOG_WARN, "committed_offsets_unknown",
                        "err=\"%s\" action=use_state_offsets",
                        rd_kafka_err2str(err));
                for (int i = 0; i < parts->cnt; i++)
                        parts->elems[i].offset = RD_KAFKA_OFFSET_INVALID;
        }
        for (int i = 0; i < parts->cnt; i++) {
                rd_kafka_topic_partition_t *tp = &parts->elems[i];
                int64_t saved = cfd_offsets_get(&loop->committed_offsets,
                                                tp->partition);

                /* Negative offsets are logical (-1001 none, -1 end). */
                if (saved < 0 || saved <= tp->offset) {
                        cfd_log(CFD_LOG_DEBUG, "partition_start",
                                "topic=%s partition=%" PRId32
                                " committed=%" PRId64 " state=%" PRId64,
                                tp->topic, tp->partition, tp->offset, saved);
                        continue;
                }
                cfd_log(CFD_LOG_WARN, "offset_from_state",
                        "topic=%s partition=%" PRId32 " committed=%" PRId64
                        " state=%" PRId64 " action=start_at_state",
                        tp->topic, tp->partition, tp->offset, saved);
                tp->offset = saved;
        }
}

/* Keeps the set of assigned input partitions (value 1: assigned). */
static void mark_assigned(struct cfd_loop *loop,
                          const rd_kafka_topic_partition_list_t *parts,
                          bool assigned)
{
        rd_kafka_topic_partition_list_t *marks;

        if (!assigned) {
                for (int i = 0; i < parts->cnt; i++) {
                        int32_t p = parts->elems[i].partition;

                        if (p >= 0 && (size_t)p < loop->assigned.n)
                                loop->assigned.next[p] = -1;
                }
                return;
        }
        marks = rd_kafka_topic_partition_list_copy(parts);
        for (int i = 0; i < marks->cnt; i++)
                marks->elems[i].offset = 1;
        if (cfd_offsets_set(&loop->assigned, marks) < 0)
                loop->fatal = true; /* out of memory */
        rd_kafka_topic_partition_list_destroy(marks);
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
                mark_assigned(loop, parts, true);
                if (loop->transactional)
                        start_offsets(loop, rk, parts);
                if (cooperative)
                        error = rd_kafka_incremental_assign(rk, parts);
                else
                        aerr = rd_kafka_assign(rk, parts);
        } else {
                /* Finish what was taken from these partitions before
                 * they go, so the next owner starts after it. */
                log_partitions("partitions_revoked", parts);
                mark_assigned(loop, parts, false);
                if (loop->n_slots)
                        cfd_commit_batch(loop);
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

static void reject_decode(struct cfd_slot *slot, int code,
                          const struct msg_error *merr)
{
        slot->route = CFD_ROUTE_DEAD_LETTER;
        slot->error_code = msg_err_name(code);
        cfd_reason_decode(slot->reason, CFD_REASON_MAX, merr);
}

static void reject_row(struct cfd_loop *loop, struct cfd_slot *slot, int code,
                       int64_t label, size_t index)
{
        slot->route = CFD_ROUTE_DEAD_LETTER;
        slot->error_code = cl_err_name(code);
        cfd_reason_row(slot->reason, CFD_REASON_MAX, code, label, index,
                       loop->probs, cl_state_params(loop->state));
}

static void score(struct cfd_loop *loop, struct cfd_slot *slot)
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
        rc = cl_observe(cfd_loop_decider(loop), (long)label.label,
                        loop->probs, k, &slot->verdict, &index);
        /* Sharing: the instance's own statistics, the ones it saves,
         * take the item too (same checks, so the same outcome). */
        if (rc == 0 && loop->decider)
                cl_observe(loop->state, (long)label.label, loop->probs, k,
                           NULL, NULL);
        if (rc < 0) {
                reject_row(loop, slot, rc, label.label, index);
                return;
        }
        slot->annotator = label.annotator;
        slot->held = slot->verdict.tag == CL_TAG_HELD;
        slot->route = slot->verdict.tag == CL_TAG_SUSPECT ? CFD_ROUTE_SUSPECT
                                                          : CFD_ROUTE_CLEAN;
}

/*
 * Producing: the output carries the input's key and value, not copied
 * (the consumed message stays alive until the batch is released).
 */

static rd_kafka_headers_t *make_headers(const struct cfd_slot *slot)
{
        const struct cfd_source src = {rd_kafka_topic_name(slot->in->rkt),
                                       slot->in->partition,
                                       slot->in->offset};

        if (slot->route == CFD_ROUTE_DEAD_LETTER)
                return cfd_headers_dead_letter(slot->error_code, slot->reason,
                                               &src);
        return cfd_headers_verdict(&slot->verdict,
                                   slot->route == CFD_ROUTE_SUSPECT, &src);
}

/* The topic of a slot's output, and its metrics id. */
static rd_kafka_topic_t *output_topic(struct cfd_loop *loop,
                                      struct cfd_slot *slot)
{
        rd_kafka_topic_t *routed = NULL;
        int id;

        slot->metric_topic = loop->metric_topic[slot->route];
        if (slot->route == CFD_ROUTE_SUSPECT && loop->routes)
                routed = cfd_routes_suspect(loop->routes, slot->verdict.given,
                                            &slot->annotator, &id);
        if (!routed)
                return loop->out[slot->route];
        slot->metric_topic = id;
        return routed;
}

/* Hands one output to the producer, waiting while its queue is full. */
void cfd_loop_produce(struct cfd_loop *loop, struct cfd_slot *slot)
{
        const rd_kafka_message_t *in = slot->in;
        rd_kafka_headers_t *hdrs = make_headers(slot);
        rd_kafka_topic_t *rkt = output_topic(loop, slot);
        rd_kafka_resp_err_t err;

        if (!hdrs) {
                slot->state = CFD_SLOT_FAILED;
                slot->err = RD_KAFKA_RESP_ERR__FAIL;
                return;
        }
        slot->state = CFD_SLOT_PENDING;
        for (;;) {
                err = rd_kafka_producev(
                        loop->producer, RD_KAFKA_V_RKT(rkt),
                        RD_KAFKA_V_KEY(in->key, in->key_len),
                        RD_KAFKA_V_VALUE(slot->drop_value ? NULL : in->payload,
                                         slot->drop_value ? 0 : in->len),
                        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(slot),
                        RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        break;
                rd_kafka_poll(loop->producer, CFD_POLL_SLICE_MS);
        }
        if (err) {
                rd_kafka_headers_destroy(hdrs);
                slot->state = CFD_SLOT_FAILED;
                slot->err = err;
                /* Larger than message.max.bytes: refused before it left,
                 * so the value goes no further than the input topic. */
                if (cfd_delivery_error_is_permanent(err) && !slot->drop_value) {
                        cfd_loop_refuse(loop, slot);
                        cfd_loop_produce(loop, slot);
                }
                return;
        }
        loop->pending++;
}

/*
 * Helpers for cfd_commit.c.
 */

int cfd_loop_wait_deliveries(struct cfd_loop *loop)
{
        while (loop->pending > 0) {
                rd_kafka_poll(loop->producer, CFD_POLL_SLICE_MS);
                cfd_loop_tick(loop);
                if (loop->fatal)
                        return -1;
        }
        return 0;
}

size_t cfd_loop_count_failed(const struct cfd_loop *loop)
{
        size_t n = 0;

        for (size_t i = 0; i < loop->n_slots; i++)
                n += loop->slots[i].state == CFD_SLOT_FAILED;
        return n;
}

void cfd_loop_release(struct cfd_loop *loop)
{
        for (size_t i = 0; i < loop->n_slots; i++)
                rd_kafka_message_destroy(loop->slots[i].in);
        loop->n_slots = 0;
}

void cfd_loop_count_batch(struct cfd_loop *loop)
{
        struct cfd_loop_stats *t = &loop->stats;

        for (size_t i = 0; i < loop->n_slots; i++) {
                const struct cfd_slot *slot = &loop->slots[i];

                t->consumed++;
                if (slot->route == CFD_ROUTE_SUSPECT)
                        t->suspect++;
                else if (slot->route == CFD_ROUTE_DEAD_LETTER)
                        t->dead_letter++;
                else if (slot->verdict.tag == CL_TAG_WARMUP)
                        t->warmup++;
                else
                        t->clean++;
        }
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

static const struct cfd_poison *find_poison(const struct cfd_loop *loop,
                                            int32_t partition, int64_t offset)
{
        for (size_t i = 0; i < loop->n_poison; i++)
                if (loop->poison[i].partition == partition &&
                    loop->poison[i].offset == offset)
                        return &loop->poison[i];
        return NULL;
}

/*
 * An input the broker will refuse as output, by its size against the
 * producer's message.max.bytes (checked before anything else, so that
 * such an item never enters the statistics), or because it was refused
 * before.
 */
static bool is_poison(struct cfd_loop *loop, struct cfd_slot *slot)
{
        const rd_kafka_message_t *m = slot->in;

        if (m->len + m->key_len + HEADERS_MAX_BYTES > loop->max_output_bytes) {
                slot->err = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
                return true;
        }
        return loop->n_poison &&
               find_poison(loop, m->partition, m->offset) != NULL;
}

bool cfd_delivery_error_is_permanent(rd_kafka_resp_err_t err)
{
        switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_MSG:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
                return true;
        default:
                return false;
        }
}

void cfd_loop_refuse(struct cfd_loop *loop, struct cfd_slot *slot)
{
        const rd_kafka_message_t *in = slot->in;
        const struct cfd_poison *known =
                find_poison(loop, in->partition, in->offset);
        rd_kafka_resp_err_t err = known ? known->err : slot->err;

        if (!known && loop->n_poison < CFD_POISON_MAX)
                loop->poison[loop->n_poison++] = (struct cfd_poison){
                        in->partition, in->offset, err};
        cfd_log(CFD_LOG_WARN, "output_refused",
                "partition=%" PRId32 " offset=%" PRId64 " bytes=%zu "
                "err=\"%s\" action=dead_letter_without_value",
                in->partition, in->offset, in->len, rd_kafka_err2str(err));
        slot->route = CFD_ROUTE_DEAD_LETTER;
        slot->drop_value = true;
        slot->held = false;
        slot->error_code = "CFD_E_OUTPUT_REFUSED";
        snprintf(slot->reason, CFD_REASON_MAX,
                 "the broker refused the %zu-byte output (%s); the value "
                 "stays in the input topic at the source offset",
                 in->len, rd_kafka_err2str(err));
}

static void take(struct cfd_loop *loop, rd_kafka_message_t *m, int64_t now)
{
        struct cfd_slot *slot = &loop->slots[loop->n_slots];

        memset(slot, 0, sizeof(*slot));
        slot->reason = loop->reasons[loop->n_slots++];
        slot->in = m;
        slot->taken_ms = now;
        if (is_poison(loop, slot))
                cfd_loop_refuse(loop, slot);
        else
                score(loop, slot);
        if (slot->held) {
                if (cl_state_held(cfd_loop_decider(loop)) == 1)
                        loop->hold_since_ms = now;
                if (cl_state_release_due(cfd_loop_decider(loop)))
                        cfd_loop_release_held(loop, false);
                return;
        }
        cfd_loop_produce(loop, slot);
}

/* Gives each held slot, in batch order, its released verdict. */
static void route_released(struct cfd_loop *loop, size_t n)
{
        size_t j = 0;

        for (size_t i = 0; i < loop->n_slots && j < n; i++) {
                struct cfd_slot *slot = &loop->slots[i];

                if (!slot->held)
                        continue;
                slot->held = false;
                slot->verdict = loop->released[j++];
                slot->route = slot->verdict.tag == CL_TAG_SUSPECT
                                      ? CFD_ROUTE_SUSPECT
                                      : CFD_ROUTE_CLEAN;
                cfd_loop_produce(loop, slot);
        }
}

int cfd_loop_release_held(struct cfd_loop *loop, bool force)
{
        struct cl_state *st = cfd_loop_decider(loop);
        size_t held = cl_state_held(st);
        int64_t waited_ms = cfd_now_ms() - loop->hold_since_ms;
        int n;

        if (held == 0)
                return 0;
        n = force ? cl_state_release_force(st, loop->released,
                                           loop->released_cap)
                  : cl_state_release(st, loop->released, loop->released_cap);
        if (n < 0) {
                cfd_log(CFD_LOG_ERROR, "release_failed",
                        "held=%zu err=\"%s\"", held, cl_strerror(n));
                return -1;
        }
        cfd_log(CFD_LOG_INFO, "warmup_released",
                "items=%d waited_ms=%" PRId64 " forced=%s", n, waited_ms,
                force ? "yes" : "no");
        route_released(loop, (size_t)n);
        /* The own statistics held the same items; their verdicts are
         * the decider's. */
        if (loop->decider)
                cl_state_release_force(loop->state, loop->released,
                                       loop->released_cap);
        return 0;
}

/* A batch takes commit.max_items items besides the ones held, so that
 * neither the batch size nor dead letters cut a hold short. */
static size_t batch_capacity(const struct cfd_loop *loop,
                             const struct cfg *cfg)
{
        return (size_t)cfg->commit.max_items +
               cl_state_hold_capacity(loop->state);
}

/* Whether the batch must end now: max_items items besides those held, or
 * past its deadline (unless items are held and have not waited
 * max_hold_ms). */
static bool batch_due(const struct cfd_loop *loop, int64_t deadline,
                      int64_t now)
{
        size_t held = cl_state_held(cfd_loop_decider(loop));

        if (loop->n_slots >= loop->cap_slots ||
            loop->n_slots - held >= loop->cfg->commit.max_items)
                return true;
        if (deadline < 0 || now < deadline)
                return false;
        return held == 0 ||
               now - loop->hold_since_ms >= loop->cfg->filter.max_hold_ms;
}

/*
 * Fills the batch until it holds max_items messages, interval_ms passed
 * since its first message, or a stop is requested.
 */
/* Whether the partition of the input topic is assigned to this instance
 * now (kept by the rebalance callback). */
static bool is_assigned(const struct cfd_loop *loop, int32_t partition)
{
        return cfd_offsets_get(&loop->assigned, partition) > 0;
}

/*
 * Takes the messages of one consume call into the batch.  A message of a
 * partition revoked during the call is dropped: the next owner starts at
 * the offsets committed on revocation, which do not include it.  Returns
 * the new deadline.
 */
static int64_t take_polled(struct cfd_loop *loop, size_t n, int64_t deadline,
                           int64_t now)
{
        for (size_t i = 0; i < n; i++) {
                rd_kafka_message_t *m = loop->polled[i];

                if (m->err) {
                        consumer_event(loop, m);
                        continue;
                }
                if (loop->fatal || !is_assigned(loop, m->partition) ||
                    cfd_commit_begin(loop) < 0) {
                        rd_kafka_message_destroy(m);
                        continue;
                }
                if (deadline < 0)
                        deadline = now + loop->cfg->commit.interval_ms;
                take(loop, m, now);
        }
        return deadline;
}

/* Messages one consume call may take: what the batch still has room for. */
static size_t poll_room(const struct cfd_loop *loop)
{
        size_t held = cl_state_held(cfd_loop_decider(loop));
        size_t room = loop->cap_slots - loop->n_slots;
        size_t left = loop->cfg->commit.max_items - (loop->n_slots - held);

        if (left < room)
                room = left;
        return room < CFD_POLL_BATCH ? room : CFD_POLL_BATCH;
}

/*
 * Fills the batch until it holds max_items messages, interval_ms passed
 * since its first message, or a stop is requested.  Messages come in
 * groups of up to CFD_POLL_BATCH per call into librdkafka.
 */
static void batch_fill(struct cfd_loop *loop)
{
        int64_t deadline = -1, now = cfd_now_ms();

        while (!*loop->stop && !*loop->reload && !loop->fatal &&
               !batch_due(loop, deadline, now)) {
                int64_t wait_ms = CFD_POLL_SLICE_MS;
                ssize_t n;

                if (deadline >= 0 && deadline - now < wait_ms)
                        wait_ms = deadline - now > 0 ? deadline - now : 0;
                n = rd_kafka_consume_batch_queue(loop->queue, (int)wait_ms,
                                                 loop->polled,
                                                 poll_room(loop));
                now = cfd_now_ms();
                /* Delivery reports of this batch wait for its end; serve
                 * them now and then so they do not pile up. */
                rd_kafka_poll(loop->producer, 0);
                if (n < 0) {
                        cfd_log(CFD_LOG_WARN, "consume_failed",
                                "err=\"%s\"",
                                rd_kafka_err2str(rd_kafka_last_error()));
                        continue;
                }
                if (n == 0) {
                        if (deadline < 0 && loop->n_slots == 0)
                                break; /* idle: let the caller look around */
                        continue;
                }
                deadline = take_polled(loop, (size_t)n, deadline, now);
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
        struct cfd_progress *p = &loop->progress;
        unsigned every_s = loop->cfg->log.progress_interval_s;
        int64_t now = cfd_now_ms();
        uint64_t decided = s->clean + s->suspect;
        double secs, rate, flag_rate;
        int64_t lag;

        if (every_s == 0 || now - p->last_ms < (int64_t)every_s * 1000)
                return;

        secs = (double)(now - p->last_ms) / 1000.0;
        rate = (double)(s->consumed - p->consumed) / secs;
        flag_rate = decided > p->decided
                            ? (double)(s->suspect - p->suspect) /
                                      (double)(decided - p->decided)
                            : 0.0;
        lag = consumer_lag(loop);
        cfd_log(CFD_LOG_INFO, "progress",
                "items=%" PRIu64 " items_per_s=%.0f clean=%" PRIu64
                " suspect=%" PRIu64 " warmup=%" PRIu64 " dead_letter=%" PRIu64
                " flag_rate=%.4f lag=%" PRId64 " pending=%zu",
                s->consumed, rate, s->clean, s->suspect, s->warmup,
                s->dead_letter, flag_rate, lag, loop->n_slots);
        cfd_notify_status(loop->notify,
                          "items=%" PRIu64 " items/s=%.0f suspect=%" PRIu64
                          " flag_rate=%.4f lag=%" PRId64,
                          s->consumed, rate, s->suspect, flag_rate, lag);
        p->last_ms = now;
        p->consumed = s->consumed;
        p->decided = decided;
        p->suspect = s->suspect;
}

bool cfd_loop_stopping(struct cfd_loop *loop)
{
        if (!loop->stopping && *loop->stop) {
                loop->stopping = true;
                cfd_notify_stopping(loop->notify);
                cfd_log(CFD_LOG_INFO, "stopping", "pending=%zu",
                        loop->n_slots);
        }
        return loop->stopping;
}

void cfd_loop_tick(struct cfd_loop *loop)
{
        int64_t now = cfd_now_ms();

        cfd_notify_watchdog(loop->notify);
        progress_maybe(loop);
        if (now - loop->last_publish_ms >= 1000) {
                cfd_metrics_heartbeat(loop->metrics);
                cfd_metrics_publish(loop->metrics);
                loop->last_publish_ms = now;
        }
}

static void account_slot(struct cfd_loop *loop, const struct cfd_slot *slot,
                         int64_t now)
{
        static const enum cfd_metrics_verdict kinds[] = {
                [CL_TAG_CLEAN] = CFD_METRICS_CLEAN,
                [CL_TAG_SUSPECT] = CFD_METRICS_SUSPECT,
                [CL_TAG_WARMUP] = CFD_METRICS_WARMUP,
                [CL_TAG_HELD] = CFD_METRICS_WARMUP,
        };

        cfd_metrics_consumed(loop->metrics, loop->metric_input);
        if (slot->route == CFD_ROUTE_DEAD_LETTER)
                cfd_metrics_dead_letter(loop->metrics, slot->error_code);
        else
                cfd_metrics_verdict(loop->metrics, slot->verdict.given,
                                    kinds[slot->verdict.tag],
                                    slot->annotator.ptr,
                                    slot->annotator.len);
        cfd_metrics_delivered(loop->metrics, slot->metric_topic,
                              (double)(now - slot->taken_ms) / 1000.0);
}

void cfd_loop_account(struct cfd_loop *loop)
{
        int64_t now = cfd_now_ms();
        unsigned k = loop->params.k;

        if (!loop->metrics)
                return;
        for (size_t i = 0; i < loop->n_slots; i++)
                account_slot(loop, &loop->slots[i], now);
        for (unsigned c = 0; c < k; c++)
                loop->thresholds[c] =
                        cl_state_threshold(cfd_loop_decider(loop), c);
        cfd_metrics_thresholds(loop->metrics, loop->thresholds, k);
}

int cfd_loop_run(struct cfd_loop *loop, volatile sig_atomic_t *stop,
                 volatile sig_atomic_t *reload)
{
        int rc = 0;

        loop->stop = stop;
        loop->reload = reload;
        loop->progress.last_ms = cfd_now_ms();
        while (!cfd_loop_stopping(loop) && !loop->fatal && !*reload) {
                batch_fill(loop);
                /* A failed batch is consumed again: not final. */
                if (loop->n_slots)
                        cfd_commit_batch(loop);
                cfd_loop_tick(loop);
        }
        if (loop->n_slots && cfd_commit_batch(loop) < 0)
                rc = -1;
        if (loop->fatal)
                return -1;
        /* A batch that failed before a reload is consumed again after
         * it, as during the run; before a stop it is left uncommitted. */
        if (*reload && !loop->stopping)
                return CFD_LOOP_RELOAD;
        return rc;
}

/* Builds what a new configuration needs before anything is changed, so
 * that a failure leaves the loop as it was. */
struct reconfig {
        struct cfd_routes *routes;
        struct cfd_slot *slots;
        char (*reasons)[CFD_REASON_MAX];
        size_t cap_slots;
};

static void reconfig_discard(struct reconfig *rc)
{
        cfd_routes_free(rc->routes);
        free(rc->slots);
        free(rc->reasons);
}

static int reconfig_prepare(struct cfd_loop *loop, const struct cfg *cfg,
                            struct reconfig *rc, char *errbuf, size_t errsize)
{
        if (cfd_routes_new(loop->producer, cfg, loop->metrics, &rc->routes,
                           errbuf, errsize) < 0)
                return -1;
        rc->cap_slots = batch_capacity(loop, cfg);
        rc->slots = calloc(rc->cap_slots, sizeof(*rc->slots));
        rc->reasons = calloc(rc->cap_slots, sizeof(*rc->reasons));
        if (!rc->slots || !rc->reasons) {
                snprintf(errbuf, errsize, "out of memory for a batch of %zu",
                         rc->cap_slots);
                reconfig_discard(rc);
                return -1;
        }
        return 0;
}

int cfd_loop_reconfigure(struct cfd_loop *loop, const struct cfg *cfg,
                         const struct cl_params *params, char *errbuf,
                         size_t errsize)
{
        struct cl_params old = loop->params;
        struct reconfig rc = {NULL, NULL, NULL, 0};
        int err;

        if (loop->n_slots) {
                snprintf(errbuf, errsize, "a batch is in progress");
                return -1;
        }
        if (reconfig_prepare(loop, cfg, &rc, errbuf, errsize) < 0)
                return -1;
        err = cl_state_set_params(loop->state, params);
        if (err == 0 && loop->decider)
                err = cl_state_set_params(loop->decider, params);
        if (err < 0) {
                cl_state_set_params(loop->state, &old);
                snprintf(errbuf, errsize,
                         "filter: %s (warm-up beyond the hold buffer made at "
                         "start needs a restart)",
                         cl_strerror(err));
                reconfig_discard(&rc);
                return -1;
        }
        cfd_routes_free(loop->routes);
        loop->routes = rc.routes;
        free(loop->slots);
        loop->slots = rc.slots;
        free(loop->reasons);
        loop->reasons = rc.reasons;
        loop->cap_slots = rc.cap_slots;
        loop->cfg = cfg;
        loop->params = *params;
        return 0;
}

/*
 * Sharing statistics with the other instances (state.share).
 */

struct cl_state *cfd_loop_decider(const struct cfd_loop *loop)
{
        return loop->decider ? loop->decider : loop->state;
}

int cfd_loop_refresh_decider(struct cfd_loop *loop, bool force)
{
        struct cl_state *st = NULL;
        size_t merged;
        int rc;

        if (!loop->peers)
                return 0;
        if (!cfd_peers_poll(loop->peers) && !force && loop->decider)
                return 0;
        rc = cl_state_restore(loop->committed_state, loop->committed_len, &st);
        if (rc < 0) {
                cfd_log(CFD_LOG_ERROR, "share_failed", "err=\"%s\"",
                        cl_strerror(rc));
                return -1;
        }
        merged = cfd_peers_merge_into(loop->peers, st);
        cl_state_free(loop->decider);
        loop->decider = st;
        cfd_log(CFD_LOG_DEBUG, "shared_statistics",
                "peers=%zu merged=%zu items=%" PRIu64,
                cfd_peers_count(loop->peers), merged, cl_state_items(st));
        return 0;
}

static int start_sharing(struct cfd_loop *loop, const char *bootstrap,
                         char *errbuf, size_t errsize)
{
        if (!loop->cfg->state.share)
                return 0;
        if (!loop->transactional) {
                snprintf(errbuf, errsize,
                         "%s: state.share needs delivery.mode exactly_once "
                         "(the statistics travel on the state topic)",
                         loop->cfg->path ? loop->cfg->path : "config");
                return -1;
        }
        if (cfd_peers_new(loop->cfg, bootstrap,
                          loop->cfg->delivery.transactional_id, &loop->peers,
                          errbuf, errsize) < 0)
                return -1;
        return cfd_loop_refresh_decider(loop, true);
}

/*
 * Construction and teardown.
 */

/* Consumer statistics every few seconds feed the lag metrics. */
static int set_stats(rd_kafka_conf_t *conf,
                     int (*cb)(rd_kafka_t *, char *, size_t, void *),
                     char *errbuf, size_t errsize)
{
        if (rd_kafka_conf_set(conf, "statistics.interval.ms", "5000", errbuf,
                              errsize) != RD_KAFKA_CONF_OK)
                return -1;
        rd_kafka_conf_set_stats_cb(conf, cb);
        return 0;
}

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
        if (role == CFD_KAFKA_PRODUCER) {
                rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        } else {
                rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
                if (!loop->transactional)
                        rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
                if (loop->metrics &&
                    set_stats(conf, on_stats, errbuf, errsize) < 0) {
                        rd_kafka_conf_destroy(conf);
                        return NULL;
                }
        }

        rk = rd_kafka_new(role == CFD_KAFKA_PRODUCER ? RD_KAFKA_PRODUCER
                                                     : RD_KAFKA_CONSUMER,
                          conf, errbuf, errsize);
        if (!rk)
                rd_kafka_conf_destroy(conf); /* taken only on success */
        return rk;
}

/* The producer's message.max.bytes, which bounds every output. */
static size_t output_limit(rd_kafka_t *producer)
{
        const rd_kafka_conf_t *conf = rd_kafka_conf(producer);
        char value[32];
        size_t size = sizeof(value);
        unsigned long long n;

        if (rd_kafka_conf_get(conf, "message.max.bytes", value, &size) !=
                    RD_KAFKA_CONF_OK ||
            sscanf(value, "%llu", &n) != 1)
                return (size_t)1000000; /* librdkafka's default */
        return (size_t)n;
}

static int open_outputs(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        const char *names[CFD_ROUTE_COUNT] = {
                loop->cfg->kafka.topic_clean, loop->cfg->kafka.topic_suspect,
                loop->cfg->kafka.topic_dead_letter};

        for (int r = 0; r < CFD_ROUTE_COUNT; r++) {
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
                loop->metric_topic[r] = cfd_metrics_topic(loop->metrics,
                                                           names[r]);
                cfd_log(CFD_LOG_DEBUG, "output_ready", "route=%s topic=%s",
                        route_names[r], names[r]);
        }
        return cfd_routes_new(loop->producer, loop->cfg, loop->metrics,
                              &loop->routes, errbuf, errsize);
}

static int subscribe(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        rd_kafka_topic_partition_list_t *topics =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err;

        rd_kafka_topic_partition_list_add(topics, loop->cfg->kafka.topic_input,
                                          RD_KAFKA_PARTITION_UA);
        rd_kafka_poll_set_consumer(loop->consumer);
        loop->queue = rd_kafka_queue_get_consumer(loop->consumer);
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

/* The statistics to start from: the state topic's newest snapshot (after
 * init_transactions fenced any older instance), else the initial file,
 * else empty. */
static int load_state(struct cfd_loop *loop, const char *bootstrap,
                      char *errbuf, size_t errsize)
{
        struct cfd_state_record rec = {NULL, 0, -1, NULL};
        enum cfd_state_origin origin;
        int rc = 0;

        if (loop->transactional)
                rc = cfd_state_fetch(loop->cfg, bootstrap,
                                     loop->cfg->kafka.topic_state,
                                     loop->cfg->delivery.transactional_id,
                                     &rec, errbuf, errsize);
        if (rc < 0)
                return -1;
        rc = cfd_state_build(loop->cfg, &loop->params, rec.buf, rec.len,
                             &loop->state, &origin, errbuf, errsize);
        if (rc == 0 && rec.inputs &&
            cfd_offsets_parse(&loop->committed_offsets, rec.inputs,
                              strlen(rec.inputs)) < 0)
                cfd_log(CFD_LOG_WARN, "state_offsets_unreadable",
                        "offset=%" PRId64 " action=use_group_offsets",
                        rec.offset);
        free(rec.buf);
        free(rec.inputs);
        if (rc < 0)
                return -1;
        cfd_log(CFD_LOG_INFO, "state_loaded",
                "origin=%s items=%" PRIu64 " offset=%" PRId64 " bytes=%zu",
                cfd_state_origin_name(origin), cl_state_items(loop->state),
                rec.offset, rec.len);
        if (cfd_commit_keep_state(loop) < 0) {
                snprintf(errbuf, errsize, "out of memory for a snapshot");
                return -1;
        }
        return 0;
}

/* The batch and the per-item buffers, sized once. */
static int alloc_batch(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        size_t hold = cl_state_hold_capacity(loop->state);

        loop->cap_slots = batch_capacity(loop, loop->cfg);
        loop->slots = calloc(loop->cap_slots, sizeof(*loop->slots));
        loop->reasons = calloc(loop->cap_slots, sizeof(*loop->reasons));
        loop->probs = calloc(loop->params.k, sizeof(*loop->probs));
        loop->thresholds = calloc(loop->params.k, sizeof(*loop->thresholds));
        loop->released_cap = hold;
        loop->released = calloc(hold ? hold : 1, sizeof(*loop->released));
        if (!loop->slots || !loop->reasons || !loop->probs ||
            !loop->thresholds || !loop->released) {
                snprintf(errbuf, errsize, "out of memory for a batch of %zu",
                         loop->cap_slots);
                return -1;
        }
        return 0;
}

int cfd_loop_new(const struct cfg *cfg, const char *bootstrap,
                 const struct cl_params *params,
                 const struct cfd_loop_observers *obs,
                 struct cfd_loop **ret_loop, char *errbuf, size_t errsize)
{
        struct cfd_loop *loop = calloc(1, sizeof(*loop));

        if (!loop) {
                snprintf(errbuf, errsize, "out of memory");
                return -1;
        }
        loop->cfg = cfg;
        if (obs) {
                loop->metrics = obs->metrics;
                loop->notify = obs->notify;
        }
        loop->metric_input = cfd_metrics_topic(loop->metrics,
                                               cfg->kafka.topic_input);
        loop->params = *params;
        loop->transactional = cfg->delivery.mode == CFG_DELIVERY_EXACTLY_ONCE;
        if (make_decoder(loop, errbuf, errsize) < 0)
                goto out_free;

        loop->producer = client_new(loop, CFD_KAFKA_PRODUCER, bootstrap,
                                    errbuf, errsize);
        if (loop->producer)
                loop->max_output_bytes = output_limit(loop->producer);
        if (!loop->producer || open_outputs(loop, errbuf, errsize) < 0 ||
            cfd_commit_init(loop, errbuf, errsize) < 0 ||
            load_state(loop, bootstrap, errbuf, errsize) < 0 ||
            alloc_batch(loop, errbuf, errsize) < 0 ||
            start_sharing(loop, bootstrap, errbuf, errsize) < 0)
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

        cfd_loop_release(loop);
        if (loop->queue)
                rd_kafka_queue_destroy(loop->queue);
        if (loop->consumer) {
                err = rd_kafka_consumer_close(loop->consumer);
                if (err)
                        cfd_log(CFD_LOG_WARN, "consumer_close_failed",
                                "err=\"%s\"", rd_kafka_err2str(err));
                rd_kafka_destroy(loop->consumer);
        }
        for (int r = 0; r < CFD_ROUTE_COUNT; r++)
                if (loop->out[r])
                        rd_kafka_topic_destroy(loop->out[r]);
        if (loop->state_topic)
                rd_kafka_topic_destroy(loop->state_topic);
        cfd_routes_free(loop->routes);
        if (loop->producer) {
                /* Every batch waited for its deliveries: nothing is left
                 * but what a failed start produced (nothing). */
                rd_kafka_flush(loop->producer, CFD_POLL_SLICE_MS);
                rd_kafka_destroy(loop->producer);
        }
        msg_decoder_free(loop->decoder);
        cfd_peers_free(loop->peers);
        cfd_offsets_release(&loop->committed_offsets);
        cfd_offsets_release(&loop->assigned);
        cl_state_free(loop->decider);
        cl_state_free(loop->state);
        free(loop->committed_state);
        free(loop->released);
        free(loop->thresholds);
        free(loop->probs);
        free(loop->reasons);
        free(loop->slots);
        free(loop);
}

const struct cfd_loop_stats *cfd_loop_stats(const struct cfd_loop *loop)
{
        return &loop->stats;
}
