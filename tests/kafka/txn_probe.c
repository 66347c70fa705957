/*
 * txn_probe: checks transaction isolation on a real broker.
 *
 *   txn_probe BOOTSTRAP TOPIC
 *
 * TOPIC must exist, with one partition, and be empty.  The probe produces
 * ABORTED_N messages in a transaction that it aborts, then COMMITTED_N in
 * one that it commits, and checks that
 *   - a read_committed consumer sees exactly the committed messages,
 *   - a read_uncommitted consumer sees all of them, aborted ones included,
 *   - the high watermark counts the two transaction markers as well.
 * librdkafka's mock cluster fails the first check: it has no isolation.
 * Exit status 0 when all hold, 1 otherwise; one line per check on stdout.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#define ABORTED_N       3
#define COMMITTED_N     5
#define TIMEOUT_MS      30000
#define ABORTED_PREFIX  "aborted-"
#define COMMITTED_PREFIX "committed-"

struct probe_count {
        int committed; /* values starting with COMMITTED_PREFIX */
        int aborted;   /* values starting with ABORTED_PREFIX */
        int other;
};

static int set_conf(rd_kafka_conf_t *conf, const char *name,
                    const char *value) {
        char errstr[256];

        if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        fprintf(stderr, "txn_probe: %s=%s: %s\n", name, value, errstr);
        return -1;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, const char *bootstrap,
                              const char *const *props) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        char errstr[256];
        rd_kafka_t *rk;

        if (set_conf(conf, "bootstrap.servers", bootstrap) != 0)
                goto out_free_conf;
        for (; props[0] != NULL; props += 2)
                if (set_conf(conf, props[0], props[1]) != 0)
                        goto out_free_conf;

        rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
        if (rk != NULL)
                return rk; /* rd_kafka_new() took the conf */
        fprintf(stderr, "txn_probe: rd_kafka_new: %s\n", errstr);

out_free_conf:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

/* Reports a failed transactional call; returns -1 so callers can
 * `return txn_failed(...)`. */
static int txn_failed(const char *what, rd_kafka_error_t *error) {
        fprintf(stderr, "txn_probe: %s: %s\n", what,
                rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
}

static int produce_n(rd_kafka_t *rk, const char *topic, const char *prefix,
                     int n) {
        char value[64];
        rd_kafka_resp_err_t err;
        int i;

        for (i = 0; i < n; i++) {
                snprintf(value, sizeof(value), "%s%d", prefix, i);
                err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                        RD_KAFKA_V_PARTITION(0),
                                        RD_KAFKA_V_VALUE(value, strlen(value)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                        RD_KAFKA_V_END);
                if (err) {
                        fprintf(stderr, "txn_probe: produce: %s\n",
                                rd_kafka_err2str(err));
                        return -1;
                }
        }
        return 0;
}

/* One transaction of N messages with PREFIX, committed or aborted. */
static int run_transaction(rd_kafka_t *rk, const char *topic,
                           const char *prefix, int n, int commit) {
        rd_kafka_error_t *error;

        error = rd_kafka_begin_transaction(rk);
        if (error)
                return txn_failed("begin_transaction", error);

        if (produce_n(rk, topic, prefix, n) != 0)
                return -1;
        /* Flush first so that the aborted messages reach the log: the
         * test is that the broker hides them, not that we never sent
         * them. */
        if (rd_kafka_flush(rk, TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                fprintf(stderr, "txn_probe: flush timed out\n");
                return -1;
        }

        if (commit)
                error = rd_kafka_commit_transaction(rk, TIMEOUT_MS);
        else
                error = rd_kafka_abort_transaction(rk, TIMEOUT_MS);
        if (error)
                return txn_failed(commit ? "commit_transaction" :
                                           "abort_transaction", error);
        return 0;
}

static int produce_transactions(const char *bootstrap, const char *topic) {
        static const char *const props[] = {
                "transactional.id", "confidentd-txn-probe",
                "transaction.timeout.ms", "60000",
                NULL,
        };
        rd_kafka_error_t *error;
        rd_kafka_t *rk;
        int ret = -1;

        rk = client_new(RD_KAFKA_PRODUCER, bootstrap, props);
        if (rk == NULL)
                return -1;

        error = rd_kafka_init_transactions(rk, TIMEOUT_MS);
        if (error) {
                txn_failed("init_transactions", error);
                goto out_destroy;
        }
        if (run_transaction(rk, topic, ABORTED_PREFIX, ABORTED_N, 0) != 0)
                goto out_destroy;
        if (run_transaction(rk, topic, COMMITTED_PREFIX, COMMITTED_N, 1) != 0)
                goto out_destroy;
        ret = 0;

out_destroy:
        rd_kafka_destroy(rk);
        return ret;
}

static void count_value(struct probe_count *count,
                        const rd_kafka_message_t *msg) {
        const char *v = msg->payload;
        size_t len = msg->len;
        size_t alen = strlen(ABORTED_PREFIX), clen = strlen(COMMITTED_PREFIX);

        if (len >= clen && memcmp(v, COMMITTED_PREFIX, clen) == 0)
                count->committed++;
        else if (len >= alen && memcmp(v, ABORTED_PREFIX, alen) == 0)
                count->aborted++;
        else
                count->other++;
}

/* Reads partition 0 from the beginning to its end with ISOLATION
 * ("read_committed" or "read_uncommitted").  Also returns the high
 * watermark seen at the end. */
static int consume_all(const char *bootstrap, const char *topic,
                       const char *isolation, struct probe_count *ret_count,
                       int64_t *ret_high) {
        const char *const props[] = {
                "group.id", "confidentd-txn-probe",
                "isolation.level", isolation,
                "enable.partition.eof", "true",
                "enable.auto.commit", "false",
                NULL,
        };
        struct probe_count count = {0, 0, 0};
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_message_t *msg;
        rd_kafka_resp_err_t err;
        int64_t low, high;
        int eof = 0, ret = -1;
        rd_kafka_t *rk;

        rk = client_new(RD_KAFKA_CONSUMER, bootstrap, props);
        if (rk == NULL)
                return -1;

        parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic, 0)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        err = rd_kafka_assign(rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                fprintf(stderr, "txn_probe: assign: %s\n",
                        rd_kafka_err2str(err));
                goto out_close;
        }

        /* Bounded: TIMEOUT_MS of polls without reaching the end fails. */
        while (!eof) {
                msg = rd_kafka_consumer_poll(rk, TIMEOUT_MS);
                if (msg == NULL) {
                        fprintf(stderr, "txn_probe: %s: no end of partition "
                                "within %d ms\n", isolation, TIMEOUT_MS);
                        goto out_close;
                }
                if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        eof = 1;
                } else if (msg->err) {
                        fprintf(stderr, "txn_probe: consume: %s\n",
                                rd_kafka_message_errstr(msg));
                        rd_kafka_message_destroy(msg);
                        goto out_close;
                } else {
                        count_value(&count, msg);
                }
                rd_kafka_message_destroy(msg);
        }

        err = rd_kafka_query_watermark_offsets(rk, topic, 0, &low, &high,
                                               TIMEOUT_MS);
        if (err) {
                fprintf(stderr, "txn_probe: watermarks: %s\n",
                        rd_kafka_err2str(err));
                goto out_close;
        }
        *ret_count = count;
        *ret_high = high;
        ret = 0;

out_close:
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return ret;
}

static int check(int ok, const char *what) {
        printf("%s %s\n", ok ? "ok  " : "FAIL", what);
        return ok ? 0 : 1;
}

int main(int argc, char **argv) {
        struct probe_count committed, uncommitted;
        int64_t high, high_uncommitted;
        int failed = 0;

        if (argc != 3) {
                fprintf(stderr, "usage: txn_probe BOOTSTRAP TOPIC\n");
                return 2;
        }
        if (produce_transactions(argv[1], argv[2]) != 0)
                return 1;
        if (consume_all(argv[1], argv[2], "read_committed", &committed,
                        &high) != 0)
                return 1;
        if (consume_all(argv[1], argv[2], "read_uncommitted", &uncommitted,
                        &high_uncommitted) != 0)
                return 1;

        printf("read_committed: committed=%d aborted=%d other=%d\n",
               committed.committed, committed.aborted, committed.other);
        printf("read_uncommitted: committed=%d aborted=%d other=%d\n",
               uncommitted.committed, uncommitted.aborted,
               uncommitted.other);
        printf("high_watermark=%" PRId64 "\n", high);

        failed += check(committed.committed == COMMITTED_N &&
                        committed.aborted == 0 && committed.other == 0,
                        "read_committed sees only the committed messages");
        failed += check(uncommitted.committed == COMMITTED_N &&
                        uncommitted.aborted == ABORTED_N &&
                        uncommitted.other == 0,
                        "read_uncommitted sees the aborted messages too");
        /* One control record (abort or commit marker) ends each
         * transaction and takes an offset of its own; both consumers
         * ask the same broker, so both see the same watermark. */
        failed += check(high == ABORTED_N + COMMITTED_N + 2 &&
                        high_uncommitted == high,
                        "high watermark counts both transaction markers");
        return failed ? 1 : 0;
}
