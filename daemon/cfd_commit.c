/*
 * cfd_commit.c - finishing a batch.
 *
 * At-least-once: wait until the broker acknowledged every output, produce
 * failed ones again with back-off, then commit the input offsets.
 *
 * Exactly-once: the outputs, a snapshot of the statistics (to the state
 * topic) and the input offsets go into one Kafka transaction.  If it
 * cannot commit, it is aborted, the consumer is rewound to the batch's
 * first offsets and the statistics to the last committed snapshot, and
 * the batch is processed again after a back-off.  Readers with
 * isolation.level=read_committed see every item exactly once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfd_log.h"
#include "cfd_loop_priv.h"
#include "cfd_state.h"

/* How long a stopping daemon keeps retrying undelivered outputs. */
#define SHUTDOWN_GRACE_MS 30000
/* Back-off between attempts: doubles from the first value up to the cap. */
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
/* Longest wait for one transactional call. */
#define TXN_TIMEOUT_MS 30000
#define METADATA_TIMEOUT_MS 10000

/*
 * Offsets: per partition, one past the last message whose output was
 * delivered (in a transaction: not failed) with none before it in the
 * batch that was not (first = false), or the batch's first offset
 * (first = true).
 */
static rd_kafka_topic_partition_list_t *
batch_offsets(const struct cfd_loop *loop, bool first)
{
        rd_kafka_topic_partition_list_t *list =
                rd_kafka_topic_partition_list_new(16);
        rd_kafka_topic_partition_t *tp = NULL;

        for (size_t i = 0; i < loop->n_slots; i++) {
                const struct cfd_slot *slot = &loop->slots[i];
                const char *topic = rd_kafka_topic_name(slot->in->rkt);

                if (!tp || tp->partition != slot->in->partition ||
                    strcmp(tp->topic, topic))
                        tp = rd_kafka_topic_partition_list_find(
                                list, topic, slot->in->partition);
                if (!tp) {
                        tp = rd_kafka_topic_partition_list_add(
                                list, topic, slot->in->partition);
                        tp->offset = first ? slot->in->offset
                                           : RD_KAFKA_OFFSET_INVALID;
                }
                if (first)
                        continue;
                /* In a transaction an output still in flight commits or
                 * aborts with it: only a failed one blocks.  Outside, an
                 * output counts once the broker acknowledged it. */
                if (slot->state == CFD_SLOT_FAILED ||
                    (slot->state == CFD_SLOT_PENDING && !loop->transactional))
                        tp->opaque = (void *)1; /* blocked from here on */
                else if (!tp->opaque)
                        tp->offset = slot->in->offset + 1;
        }
        return list;
}

/*
 * The offsets to commit for the batch: partitions with something
 * delivered, each at one past its last delivered message, or at the
 * consumer's position when the whole partition's share of the batch was
 * delivered.  The position has moved past transaction markers (control
 * records) that follow the last message, which a commit of "last + 1"
 * would leave counted as lag.
 */
static rd_kafka_topic_partition_list_t *
committable(const struct cfd_loop *loop)
{
        rd_kafka_topic_partition_list_t *batch = batch_offsets(loop, false);
        rd_kafka_topic_partition_list_t *pos =
                rd_kafka_topic_partition_list_copy(batch);
        rd_kafka_topic_partition_list_t *out =
                rd_kafka_topic_partition_list_new(batch->cnt);

        if (rd_kafka_position(loop->consumer, pos))
                pos->cnt = 0; /* positions unknown: use the batch's */
        for (int i = 0; i < batch->cnt; i++) {
                const rd_kafka_topic_partition_t *tp = &batch->elems[i];
                int64_t offset = tp->offset;

                if (offset < 0)
                        continue;
                if (!tp->opaque && i < pos->cnt &&
                    pos->elems[i].offset > offset)
                        offset = pos->elems[i].offset;
                rd_kafka_topic_partition_list_add(out, tp->topic,
                                                  tp->partition)
                        ->offset = offset;
        }
        rd_kafka_topic_partition_list_destroy(pos);
        rd_kafka_topic_partition_list_destroy(batch);
        return out;
}

/* Sleeps in slices, keeping the watchdog, progress and metrics alive. */
static void back_off(struct cfd_loop *loop, int ms)
{
        for (int slept = 0; slept < ms; slept += CFD_POLL_SLICE_MS) {
                cfd_loop_tick(loop);
                cfd_sleep_ms(ms - slept < CFD_POLL_SLICE_MS
                                     ? ms - slept
                                     : CFD_POLL_SLICE_MS);
        }
}

/*
 * At-least-once.
 */

static void reproduce_failed(struct cfd_loop *loop)
{
        const struct cfd_slot *first = NULL;
        size_t failed = 0;

        for (size_t i = 0; i < loop->n_slots; i++) {
                struct cfd_slot *slot = &loop->slots[i];

                if (slot->state != CFD_SLOT_FAILED)
                        continue;
                if (!first)
                        first = slot;
                failed++;
                /* Retrying cannot help an output the broker refuses. */
                if (cfd_delivery_error_is_permanent(slot->err))
                        cfd_loop_refuse(loop, slot);
                loop->stats.delivery_retries++;
                cfd_loop_produce(loop, slot);
        }
        if (first)
                cfd_log(CFD_LOG_WARN, "delivery_failed",
                        "failed=%zu topic=%s err=\"%s\" action=retry", failed,
                        rd_kafka_topic_name(loop->out[first->route]),
                        rd_kafka_err2str(first->err));
}

/* Delivers every output, retrying with back-off; gives up only when
 * stopping and the grace period is over.  Returns 0 when all are
 * delivered. */
static int deliver_all(struct cfd_loop *loop)
{
        int backoff_ms = BACKOFF_FIRST_MS;
        int64_t give_up_at = -1;

        for (;;) {
                if (cfd_loop_wait_deliveries(loop) < 0)
                        return -1;
                if (cfd_loop_count_failed(loop) == 0)
                        return 0;
                if (cfd_loop_stopping(loop) && give_up_at < 0)
                        give_up_at = cfd_now_ms() + SHUTDOWN_GRACE_MS;
                if (give_up_at >= 0 && cfd_now_ms() >= give_up_at)
                        return -1;
                back_off(loop, backoff_ms);
                if (backoff_ms < BACKOFF_MAX_MS)
                        backoff_ms *= 2;
                reproduce_failed(loop);
        }
}

static void commit_offsets(struct cfd_loop *loop, bool sync)
{
        rd_kafka_topic_partition_list_t *list = committable(loop);
        rd_kafka_resp_err_t err;

        /* The outcome, also of a synchronous commit, reaches the offset
         * commit callback (cfd_loop.c), which counts and logs it. */
        if (list->cnt > 0) {
                err = rd_kafka_commit(loop->consumer, list, !sync);
                if (err && sync)
                        cfd_log(CFD_LOG_WARN, "commit_failed",
                                "partitions=%d err=\"%s\" action=stop",
                                list->cnt, rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(list);
}

static int commit_at_least_once(struct cfd_loop *loop)
{
        int rc = deliver_all(loop);

        if (loop->fatal)
                return -1; /* outputs may be lost: commit nothing */
        if (rc < 0)
                cfd_log(CFD_LOG_ERROR, "delivery_abandoned",
                        "undelivered=%zu action=not_committed",
                        cfd_loop_count_failed(loop));
        commit_offsets(loop, loop->stopping);
        cfd_loop_account(loop);
        cfd_loop_count_batch(loop);
        return rc;
}

/*
 * Exactly-once.
 */

static void log_txn_error(const char *event, rd_kafka_error_t *error,
                          const char *action)
{
        cfd_log(CFD_LOG_WARN, event, "code=%s err=\"%s\" action=%s",
                rd_kafka_error_name(error), rd_kafka_error_string(error),
                action);
}

/* Classifies a transactional error: 1 retry the call, 0 abort, -1 fatal. */
static int txn_error_kind(struct cfd_loop *loop, rd_kafka_error_t *error)
{
        if (rd_kafka_error_is_fatal(error)) {
                cfd_log(CFD_LOG_ERROR, "txn_fatal",
                        "code=%s err=\"%s\" action=stop",
                        rd_kafka_error_name(error),
                        rd_kafka_error_string(error));
                loop->fatal = true;
                return -1;
        }
        if (rd_kafka_error_txn_requires_abort(error))
                return 0;
        return rd_kafka_error_is_retriable(error) ? 1 : 0;
}

int cfd_commit_begin(struct cfd_loop *loop)
{
        rd_kafka_error_t *error;

        if (!loop->transactional || loop->in_txn)
                return 0;
        error = rd_kafka_begin_transaction(loop->producer);
        if (error) {
                cfd_log(CFD_LOG_ERROR, "txn_begin_failed",
                        "code=%s err=\"%s\" action=stop",
                        rd_kafka_error_name(error),
                        rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                loop->fatal = true;
                return -1;
        }
        loop->in_txn = true;
        return 0;
}

int cfd_commit_keep_state(struct cfd_loop *loop)
{
        char *buf;
        size_t len;
        int rc = cl_state_snapshot(loop->state, &buf, &len);

        if (rc < 0)
                return rc;
        free(loop->committed_state);
        loop->committed_state = buf;
        loop->committed_len = len;
        return 0;
}

/* The snapshot of the state after this batch, into the transaction.
 * Returns the snapshot (kept as committed on success) or NULL. */
static char *produce_state(struct cfd_loop *loop, size_t *ret_len)
{
        const char *key = loop->cfg->delivery.transactional_id;
        rd_kafka_resp_err_t err;
        char *buf, *inputs;
        int rc;

        rc = cl_state_snapshot(loop->state, &buf, ret_len);
        if (rc < 0) {
                cfd_log(CFD_LOG_ERROR, "snapshot_failed", "err=\"%s\"",
                        cl_strerror(rc));
                return NULL;
        }
        inputs = cfd_offsets_format(&loop->committed_offsets,
                                    loop->txn_offsets);
        if (!inputs) {
                cfd_log(CFD_LOG_ERROR, "snapshot_failed",
                        "err=\"out of memory\"");
                free(buf);
                return NULL;
        }
        err = rd_kafka_producev(loop->producer,
                                RD_KAFKA_V_RKT(loop->state_topic),
                                RD_KAFKA_V_PARTITION(loop->state_partition),
                                RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_VALUE(buf, *ret_len),
                                RD_KAFKA_V_HEADER(CFD_OFFSETS_HEADER, inputs,
                                                  -1),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_OPAQUE(NULL), RD_KAFKA_V_END);
        free(inputs);
        if (err) {
                bool permanent = cfd_delivery_error_is_permanent(err);

                cfd_log(permanent ? CFD_LOG_ERROR : CFD_LOG_WARN,
                        "state_produce_failed",
                        "topic=%s bytes=%zu err=\"%s\" action=%s",
                        rd_kafka_topic_name(loop->state_topic), *ret_len,
                        rd_kafka_err2str(err), permanent ? "stop" : "retry");
                /* A snapshot larger than message.max.bytes would fail
                 * every transaction. */
                if (permanent)
                        loop->fatal = true;
                free(buf);
                return NULL;
        }
        return buf;
}

static rd_kafka_error_t *send_offsets(struct cfd_loop *loop)
{
        rd_kafka_consumer_group_metadata_t *meta =
                rd_kafka_consumer_group_metadata(loop->consumer);
        rd_kafka_error_t *error;

        error = rd_kafka_send_offsets_to_transaction(
                loop->producer, loop->txn_offsets, meta, TXN_TIMEOUT_MS);
        rd_kafka_consumer_group_metadata_destroy(meta);
        return error;
}

/*
 * librdkafka's mock broker acknowledges the offsets of a transaction
 * without storing them, so there they are also committed outside it,
 * after it.  Never on Kafka: such a commit, retried across a broker
 * restart, could land after a newer transaction and move the group back.
 */
static void mirror_offsets(struct cfd_loop *loop)
{
        if (loop->mirror_offsets && loop->txn_offsets->cnt > 0)
                rd_kafka_commit(loop->consumer, loop->txn_offsets, 1);
}

/* Retries a retriable call until it succeeds or needs an abort.
 * Returns 0 on success, 1 when the transaction must be aborted, -1 on a
 * fatal error. */
static int txn_step(struct cfd_loop *loop, const char *event,
                    rd_kafka_error_t *(*call)(struct cfd_loop *))
{
        int backoff_ms = BACKOFF_FIRST_MS;
        int64_t give_up_at = -1;

        for (;;) {
                rd_kafka_error_t *error = call(loop);
                int kind;

                if (!error)
                        return 0;
                kind = txn_error_kind(loop, error);
                log_txn_error(event, error,
                              kind > 0 ? "retry" : kind == 0 ? "abort" : "stop");
                rd_kafka_error_destroy(error);
                if (kind <= 0)
                        return kind < 0 ? -1 : 1;
                if (cfd_loop_stopping(loop) && give_up_at < 0)
                        give_up_at = cfd_now_ms() + SHUTDOWN_GRACE_MS;
                if (give_up_at >= 0 && cfd_now_ms() >= give_up_at)
                        return 1; /* stopping: abort, redo after restart */
                back_off(loop, backoff_ms);
                if (backoff_ms < BACKOFF_MAX_MS)
                        backoff_ms *= 2;
        }
}

static rd_kafka_error_t *commit_call(struct cfd_loop *loop)
{
        return rd_kafka_commit_transaction(loop->producer, TXN_TIMEOUT_MS);
}

/* Puts the consumer back on the batch's first offsets. */
static void rewind_consumer(struct cfd_loop *loop)
{
        rd_kafka_topic_partition_list_t *list = batch_offsets(loop, true);
        rd_kafka_error_t *error;

        error = rd_kafka_seek_partitions(loop->consumer, list, TXN_TIMEOUT_MS);
        if (error) {
                /* The next rebalance or restart starts from the committed
                 * offsets, which are these: nothing is lost. */
                cfd_log(CFD_LOG_ERROR, "rewind_failed", "err=\"%s\"",
                        rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
        }
        rd_kafka_topic_partition_list_destroy(list);
}

/* Goes back to the last commit: statistics and consumer positions. */
static int roll_back(struct cfd_loop *loop)
{
        struct cl_state *st = NULL;
        int rc;

        rc = cl_state_restore(loop->committed_state, loop->committed_len, &st);
        if (rc < 0) {
                cfd_log(CFD_LOG_ERROR, "rollback_failed",
                        "err=\"%s\" action=stop", cl_strerror(rc));
                loop->fatal = true;
                return -1;
        }
        cl_state_free(loop->state);
        loop->state = st;
        rewind_consumer(loop);
        return cfd_loop_refresh_decider(loop, true);
}

/* Outputs the broker refused for good go to the dead-letter topic, without
 * their value, when the batch is redone. */
static void remember_refused(struct cfd_loop *loop)
{
        for (size_t i = 0; i < loop->n_slots; i++) {
                struct cfd_slot *slot = &loop->slots[i];

                if (slot->state == CFD_SLOT_FAILED &&
                    cfd_delivery_error_is_permanent(slot->err))
                        cfd_loop_refuse(loop, slot);
        }
}

static int abort_txn(struct cfd_loop *loop)
{
        rd_kafka_error_t *error;

        error = rd_kafka_abort_transaction(loop->producer, TXN_TIMEOUT_MS);
        loop->in_txn = false;
        if (error) {
                cfd_log(CFD_LOG_ERROR, "txn_abort_failed",
                        "code=%s err=\"%s\" action=stop",
                        rd_kafka_error_name(error),
                        rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                loop->fatal = true;
                return -1;
        }
        loop->stats.aborts++;
        cfd_loop_wait_deliveries(loop); /* purged outputs report here */
        remember_refused(loop);
        return roll_back(loop);
}

static void log_failed_outputs(const struct cfd_loop *loop)
{
        for (size_t i = 0; i < loop->n_slots; i++) {
                const struct cfd_slot *slot = &loop->slots[i];

                if (slot->state != CFD_SLOT_FAILED)
                        continue;
                cfd_log(CFD_LOG_WARN, "output_failed",
                        "failed=%zu first_partition=%" PRId32
                        " first_offset=%" PRId64 " err=\"%s\" action=abort",
                        cfd_loop_count_failed(loop), slot->in->partition,
                        slot->in->offset, rd_kafka_err2str(slot->err));
                return;
        }
}

/* The transaction itself: the state record, the offsets, the commit.
 * Returns 0 when committed (with *ret_snap the snapshot it holds), 1 when
 * it must be aborted, -1 on a fatal error. */
static int commit_transaction(struct cfd_loop *loop, char **ret_snap,
                              size_t *ret_len)
{
        char *snap = NULL;
        int rc = 1;

        /* An output that never left (refused by producev) is unknown to
         * the transaction: committing would lose its item. */
        if (cfd_loop_count_failed(loop) == 0)
                snap = produce_state(loop, ret_len);
        else
                log_failed_outputs(loop);
        if (snap)
                rc = txn_step(loop, "txn_offsets_failed", send_offsets);
        if (rc == 0)
                rc = txn_step(loop, "txn_commit_failed", commit_call);
        if (rc == 0)
                *ret_snap = snap;
        else
                free(snap);
        return rc;
}

/* After a commit: the new committed state, counts, metrics, offsets. */
static void committed(struct cfd_loop *loop, char *snap, size_t len)
{
        loop->in_txn = false;
        cfd_loop_wait_deliveries(loop);
        free(loop->committed_state);
        loop->committed_state = snap;
        loop->committed_len = len;
        if (cfd_offsets_set(&loop->committed_offsets, loop->txn_offsets) < 0)
                cfd_log(CFD_LOG_WARN, "offsets_not_kept",
                        "err=\"out of memory\" action=continue");
        /* The producer committed them, which the consumer's statistics
         * do not see; stored, they give the lag (cfd_metrics.c). */
        if (loop->txn_offsets->cnt > 0)
                rd_kafka_offsets_store(loop->consumer, loop->txn_offsets);
        loop->stats.commits++;
        cfd_metrics_transaction(loop->metrics, true);
        cfd_loop_account(loop);
        cfd_loop_count_batch(loop);
        mirror_offsets(loop);
        cfd_loop_refresh_decider(loop, false);
}

static int commit_exactly_once(struct cfd_loop *loop)
{
        size_t snap_len = 0;
        char *snap = NULL;
        int rc;

        loop->txn_offsets = committable(loop);
        rc = commit_transaction(loop, &snap, &snap_len);
        if (rc == 0)
                committed(loop, snap, snap_len);
        rd_kafka_topic_partition_list_destroy(loop->txn_offsets);
        loop->txn_offsets = NULL;
        if (rc == 0)
                return 0;
        if (rc < 0 || loop->fatal)
                return -1;
        cfd_metrics_transaction(loop->metrics, false);
        cfd_log(CFD_LOG_WARN, "txn_aborted",
                "items=%zu action=rewind_and_retry", loop->n_slots);
        if (abort_txn(loop) == 0 && !cfd_loop_stopping(loop))
                back_off(loop, BACKOFF_FIRST_MS);
        return -1;
}

int cfd_commit_batch(struct cfd_loop *loop)
{
        int rc;

        /* A batch is committed whole: nothing in it may still be held. */
        if (cl_state_held(cfd_loop_decider(loop)) &&
            cfd_loop_release_held(loop, true) < 0)
                loop->fatal = true;

        if (loop->transactional)
                rc = commit_exactly_once(loop);
        else
                rc = commit_at_least_once(loop);
        cfd_loop_release(loop);
        return rc;
}

/*
 * Set-up.
 */

static int open_state_topic(struct cfd_loop *loop, char *errbuf,
                            size_t errsize)
{
        const char *name = loop->cfg->kafka.topic_state;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
        rd_kafka_resp_err_t err;

        /* Histograms are mostly zeros: lz4 shrinks a snapshot a lot. */
        if (rd_kafka_topic_conf_set(tconf, "compression.codec", "lz4", errbuf,
                                    errsize) != RD_KAFKA_CONF_OK) {
                rd_kafka_topic_conf_destroy(tconf);
                return -1;
        }
        loop->state_topic = rd_kafka_topic_new(loop->producer, name, tconf);
        if (!loop->state_topic) {
                snprintf(errbuf, errsize, "state topic '%s': %s", name,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        err = rd_kafka_metadata(loop->producer, 0, loop->state_topic, &md,
                                METADATA_TIMEOUT_MS);
        if (!err && (md->topic_cnt != 1 || md->topics[0].err ||
                     md->topics[0].partition_cnt < 1))
                err = md->topic_cnt ? md->topics[0].err
                                    : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!err)
                loop->state_partition = cfd_state_partition(
                        loop->state_topic, loop->cfg->delivery.transactional_id,
                        md->topics[0].partition_cnt);
        if (md)
                rd_kafka_metadata_destroy(md);
        if (err) {
                snprintf(errbuf, errsize,
                         "state topic '%s': %s (create it with "
                         "cleanup.policy=compact)",
                         name, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

/* The mock cluster names itself "mockCluster<hex>" (rdkafka_mock.c). */
static bool broker_is_mock(rd_kafka_t *rk)
{
        char *id = rd_kafka_clusterid(rk, METADATA_TIMEOUT_MS);
        bool mock = id && !strncmp(id, "mockCluster", 11);

        if (id)
                rd_kafka_mem_free(rk, id);
        return mock;
}

int cfd_commit_init(struct cfd_loop *loop, char *errbuf, size_t errsize)
{
        rd_kafka_error_t *error;

        if (!loop->transactional)
                return 0;
        loop->mirror_offsets = broker_is_mock(loop->producer);
        if (loop->mirror_offsets)
                cfd_log(CFD_LOG_INFO, "offsets_mirrored",
                        "reason=\"librdkafka's mock broker does not store "
                        "the offsets of a transaction\" "
                        "action=commit_them_outside_too");
        error = rd_kafka_init_transactions(loop->producer, TXN_TIMEOUT_MS);
        if (error) {
                snprintf(errbuf, errsize, "init_transactions (%s): %s",
                         loop->cfg->delivery.transactional_id,
                         rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
                return -1;
        }
        return open_state_topic(loop, errbuf, errsize);
}
