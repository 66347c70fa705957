/*
 * cfd_loop_priv.h - private to the loop: the batch and the loop state,
 * shared by cfd_loop.c (consuming, scoring, producing) and cfd_commit.c
 * (finishing a batch: at-least-once or in a Kafka transaction).
 */
#ifndef CFD_DAEMON_CFD_LOOP_PRIV_H
#define CFD_DAEMON_CFD_LOOP_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "cfd_loop.h"
#include "cfd_metrics.h"
#include "cfd_offsets.h"
#include "cfd_notify.h"
#include "cl.h"
#include "msg.h"

/* Longest single wait inside the loop, so a stop request is seen soon. */
#define CFD_POLL_SLICE_MS 100
/* Most messages taken from librdkafka in one call. */
#define CFD_POLL_BATCH 256

enum cfd_route {
        CFD_ROUTE_CLEAN = 0,
        CFD_ROUTE_SUSPECT,
        CFD_ROUTE_DEAD_LETTER,
        CFD_ROUTE_COUNT,
};

enum cfd_slot_state {
        CFD_SLOT_PENDING = 0, /* produced, no delivery report yet */
        CFD_SLOT_DONE,        /* acknowledged by the broker */
        CFD_SLOT_FAILED,      /* delivery failed */
};

/* One input message of the current batch and what became of it. */
struct cfd_slot {
        rd_kafka_message_t *in; /* owned until the batch is released */
        bool held;              /* warm-up hold: verdict not known yet */
        bool drop_value;        /* dead-letter without the value, which
                                 * the broker refused as output */
        int64_t taken_ms;       /* when consumed, for the latency metric */
        int metric_topic;       /* metrics id of the output topic */
        struct msg_str annotator; /* into the message, for metrics */
        enum cfd_route route;
        enum cfd_slot_state state;
        rd_kafka_resp_err_t err;
        struct cl_verdict verdict; /* clean and suspect routes */
        const char *error_code;    /* dead-letter route: "CL_E_RANGE" */
        char *reason; /* dead-letter route: the detail, CFD_REASON_MAX
                       * bytes of cfd_loop.reasons (kept out of the slot,
                       * which every pass over a batch reads) */
};

#define CFD_REASON_MAX 256

struct cfd_progress {
        int64_t last_ms;
        uint64_t consumed, decided, suspect;
};

/* An input message whose output the broker refused for good: on the next
 * attempt it goes to the dead-letter topic without its value. */
struct cfd_poison {
        int32_t partition;
        int64_t offset;
        rd_kafka_resp_err_t err;
};

#define CFD_POISON_MAX 64

struct cfd_peers;
struct cfd_routes;

struct cfd_loop {
        const struct cfg *cfg;
        volatile sig_atomic_t *stop;   /* set by the signal handler */
        volatile sig_atomic_t *reload; /* likewise, on SIGHUP */
        struct cl_params params;
        struct cl_state *state; /* owned; replaced when a batch aborts */
        /* state.share: own statistics plus the peers', which decide;
         * rebuilt from the committed state when a peer's changes. */
        struct cl_state *decider;
        struct cfd_peers *peers;
        struct msg_decoder *decoder;
        double *probs;      /* K values, reused for every message */
        double *thresholds; /* K values, for the metrics */

        rd_kafka_t *consumer;
        rd_kafka_queue_t *queue; /* the consumer's, for batch consumption */
        rd_kafka_message_t *polled[CFD_POLL_BATCH];
        struct cfd_offsets assigned; /* 1: the partition is ours now */
        rd_kafka_t *producer;
        rd_kafka_topic_t *out[CFD_ROUTE_COUNT];
        struct cfd_routes *routes; /* routing.suspect_by topics */

        /* Exactly-once only: the state topic and the committed state. */
        bool transactional;
        bool in_txn;
        rd_kafka_topic_t *state_topic;
        int32_t state_partition;
        char *committed_state; /* snapshot as of the last commit */
        bool mirror_offsets;   /* also commit them outside (the mock) */
        /* Input offsets as of the committed snapshot; the offsets of the
         * transaction being committed. */
        struct cfd_offsets committed_offsets;
        rd_kafka_topic_partition_list_t *txn_offsets;
        size_t committed_len;

        /* Warm-up hold: verdicts of released items, and since when the
         * oldest held item waits. */
        struct cl_verdict *released;
        size_t released_cap;
        int64_t hold_since_ms;

        struct cfd_slot *slots; /* the current batch */
        char (*reasons)[CFD_REASON_MAX]; /* slot i's reason text */
        size_t n_slots;
        size_t cap_slots;
        size_t pending; /* produced outputs awaiting a delivery report */

        size_t max_output_bytes; /* the producer's message.max.bytes */
        struct cfd_poison poison[CFD_POISON_MAX];
        size_t n_poison;

        /* Borrowed from main: NULL-safe. */
        struct cfd_metrics *metrics;
        struct cfd_notify *notify;
        int metric_topic[CFD_ROUTE_COUNT];
        int metric_input;
        int64_t last_publish_ms;

        bool fatal;
        bool stopping;
        struct cfd_loop_stats stats; /* committed work only */
        struct cfd_progress progress;
};

/* Produces the output of one slot (again, after a failure). */
void cfd_loop_produce(struct cfd_loop *loop, struct cfd_slot *slot);

/* Serves delivery reports until no output is pending.  Returns 0, or -1
 * when a fatal client error happened meanwhile. */
int cfd_loop_wait_deliveries(struct cfd_loop *loop);

/* Destroys the batch's input messages and empties it. */
void cfd_loop_release(struct cfd_loop *loop);

/* Number of failed outputs in the batch. */
size_t cfd_loop_count_failed(const struct cfd_loop *loop);

/*
 * Decides the items held for warm-up (all in the current batch) when the
 * state says so, or at once with force, and produces them.  Returns 0, or
 * -1 when the state could not release them (logged; they stay held).
 */
int cfd_loop_release_held(struct cfd_loop *loop, bool force);

/* Adds the committed batch's routes to the totals. */
void cfd_loop_count_batch(struct cfd_loop *loop);

/*
 * Finishes the batch: every output delivered and the input offsets
 * committed (at-least-once), or everything committed in one transaction
 * (exactly-once).  On an aborted transaction the consumer is rewound to
 * the batch's first offsets and the state to the last commit, so the same
 * messages are processed again.  Returns 0 when committed, -1 otherwise.
 */
int cfd_commit_batch(struct cfd_loop *loop);

/*
 * Exactly-once set-up: init_transactions (which fences an older instance
 * with the same transactional id and aborts its open transaction), then
 * the state topic.  Returns 0 or -1 with errbuf filled.
 */
int cfd_commit_init(struct cfd_loop *loop, char *errbuf, size_t errsize);

/* Starts a transaction if none is open.  Returns 0 or -1 (fatal). */
int cfd_commit_begin(struct cfd_loop *loop);

/* Remembers the state as committed (start-up, after each commit). */
int cfd_commit_keep_state(struct cfd_loop *loop);

/* True once a stop was requested (and remembers it). */
bool cfd_loop_stopping(struct cfd_loop *loop);

/*
 * Housekeeping for every pass of a loop that may wait: the systemd
 * watchdog, the progress line, the metrics heartbeat.
 */
void cfd_loop_tick(struct cfd_loop *loop);

/* Whether a delivery error will fail again however often it is retried
 * (the output is too large, or malformed, for the broker). */
bool cfd_delivery_error_is_permanent(rd_kafka_resp_err_t err);

/*
 * Turns a slot whose output the broker refused for good into a dead
 * letter without the value (the input keeps it at its source offset),
 * and remembers the input offset for when the batch is redone.
 */
void cfd_loop_refuse(struct cfd_loop *loop, struct cfd_slot *slot);

/* Records the committed batch in the metrics. */
void cfd_loop_account(struct cfd_loop *loop);

/* The state that decides: the shared one, or the own one. */
struct cl_state *cfd_loop_decider(const struct cfd_loop *loop);

/*
 * state.share: rebuilds the deciding state from the committed own state
 * plus every peer's newest snapshot, when a peer's changed or with force
 * (after a rollback).  Returns 0, or -1 (logged; the old one stays).
 */
int cfd_loop_refresh_decider(struct cfd_loop *loop, bool force);

int64_t cfd_now_ms(void);
void cfd_sleep_ms(int ms);

#endif /* CFD_DAEMON_CFD_LOOP_PRIV_H */
