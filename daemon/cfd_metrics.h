/*
 * cfd_metrics.h - Prometheus /metrics and /healthz over HTTP.
 *
 * Two sides share one struct cfd_metrics:
 *
 *   the loop thread (writer) counts into private storage with plain
 *   increments: cfd_metrics_consumed(), _verdict(), _dead_letter(),
 *   _delivered(), _transaction(), _offset_commit(), _thresholds(),
 *   _stats_json().  No lock is taken per item.  Once per batch, and at
 *   least once a second while idle, it calls cfd_metrics_publish(),
 *   which copies the counters into the published snapshot under a mutex
 *   (a few kilobytes; no allocation).
 *
 *   the HTTP thread (libmicrohttpd's own) renders the published snapshot
 *   on GET /metrics under the same mutex; /healthz reads an atomic
 *   heartbeat that the loop sets with cfd_metrics_heartbeat().
 *
 * So a scrape sees the state of the last publish, never a half-counted
 * batch.  Every function accepts a NULL handle and then does nothing,
 * so the loop can call them unconditionally when metrics are off.
 *
 * The exposition (text format 0.0.4) is listed in docs/operating.md.
 * Label values (class, topic, annotator, reason) are escaped.  Series
 * are bounded: classes by the schema, topics by CFD_METRICS_MAX_TOPICS,
 * reasons by CFD_METRICS_MAX_REASONS, partitions by max_partitions and
 * annotators by top_annotators plus one "other" series.
 */
#ifndef CFD_DAEMON_CFD_METRICS_H
#define CFD_DAEMON_CFD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum cfd_metrics_err {
        CFD_METRICS_E_PARAM = -1,  /* bad argument or config value */
        CFD_METRICS_E_NOMEM = -2,  /* out of memory */
        CFD_METRICS_E_ADDR = -3,   /* listen address is not host:port */
        CFD_METRICS_E_LISTEN = -4, /* socket, bind or listen failed */
        CFD_METRICS_E_HTTP = -5,   /* libmicrohttpd did not start */
        CFD_METRICS_E_PARSE = -6,  /* statistics JSON is malformed */
        CFD_METRICS_E_FULL = -7,   /* a fixed table is full */
};

#define CFD_METRICS_MAX_TOPICS 16      /* distinct topic names */
#define CFD_METRICS_MAX_REASONS 32     /* distinct dead-letter codes */
#define CFD_METRICS_TOPIC_MAX 256      /* Kafka allows 249 bytes */
#define CFD_METRICS_ANNOTATOR_MAX 128  /* longer ids count as "other" */
#define CFD_METRICS_TOP_ANNOTATORS 10  /* default top_annotators */
#define CFD_METRICS_MAX_ANNOTATORS 256 /* largest top_annotators */

enum cfd_metrics_verdict {
        CFD_METRICS_CLEAN = 0,
        CFD_METRICS_SUSPECT,
        CFD_METRICS_WARMUP, /* routed clean while the statistics warm up */
        CFD_METRICS_VERDICT_COUNT,
};

struct cfd_metrics_config {
        /* "host:port" to serve on; host is an IPv4 or a bracketed IPv6
         * literal, or "localhost"; port 0 picks a free port (see
         * cfd_metrics_port()).  NULL or "" = no HTTP server: counting
         * and cfd_metrics_render() still work. */
        const char *listen;
        const char *const *class_names; /* n_classes names, unique */
        unsigned n_classes;             /* >= 1 */
        unsigned top_annotators;  /* 0: CFD_METRICS_TOP_ANNOTATORS */
        unsigned flag_window_s;   /* flag-ratio window; 0: 300 */
        unsigned health_max_age_s; /* /healthz tolerance; 0: 60 */
        unsigned max_partitions;  /* lag series kept; 0: 1024 */
        const char *version;      /* confidentd_build_info; NULL: "" */
};

/*
 * Lag of one partition, from librdkafka's statistics JSON
 * (statistics.interval.ms > 0, stats_cb on the consumer handle).
 * Offsets are -1 (or librdkafka's -1001) when unknown.
 *
 * consumer_lag is (ls_offset under isolation.level=read_committed, else
 * hi_offset) - committed_offset; consumer_lag_stored the same from
 * stored_offset.  lag is what /metrics exports: the smaller of the two
 * where both are known, else the known one, else -1 (partition left
 * out).  The daemon turns librdkafka's automatic offset store off: with
 * at-least-once delivery only the consumer's commits count; with
 * transactions the producer commits the offsets, which the consumer's
 * committed_offset never sees, so the daemon stores them after each
 * transaction and the stored offset is the one that moves.
 *
 * Transaction markers (control records) occupy offsets that are never
 * handed to the application.  A consumer that commits "last message
 * offset + 1" after a producer's transaction therefore sees lag 1 (per
 * transaction still at the tail) although everything is processed.  To
 * read 0, commit the consumer's position (rd_kafka_position()), which
 * the fetcher moves past control records, once a batch is complete.
 */
struct cfd_metrics_lag {
        char topic[CFD_METRICS_TOPIC_MAX];
        int32_t partition;
        int64_t hi_offset, ls_offset, committed_offset, stored_offset;
        int64_t consumer_lag, consumer_lag_stored;
        int64_t lag;
};

struct cfd_metrics;

/*
 * Creates the counters and, when cfg->listen is set, starts the HTTP
 * server on its own thread.  cfg is copied (names included).  Returns 0
 * and sets *ret_m, or CFD_METRICS_E_PARAM, _NOMEM, _ADDR, _LISTEN or
 * _HTTP with errbuf (may be NULL) holding one line that names the
 * address and the system error.
 */
int cfd_metrics_new(const struct cfd_metrics_config *cfg,
                    struct cfd_metrics **ret_m, char *errbuf,
                    size_t errsize);

/* Stops the server (waits for its thread) and frees; NULL does nothing. */
void cfd_metrics_free(struct cfd_metrics *m);

/* The TCP port the server listens on; 0 without a server. */
unsigned cfd_metrics_port(const struct cfd_metrics *m);

/*
 * Writer side: the loop thread only.
 */

/*
 * Returns the id (>= 0) of topic name for the per-topic counters,
 * adding it on first use; CFD_METRICS_E_FULL past CFD_METRICS_MAX_TOPICS
 * names, CFD_METRICS_E_PARAM for a NULL, empty or over-long name.  Call
 * it at start for the input and output topics and keep the ids.
 */
int cfd_metrics_topic(struct cfd_metrics *m, const char *name);

/* One message taken from topic (an id from cfd_metrics_topic()). */
void cfd_metrics_consumed(struct cfd_metrics *m, int topic);

/*
 * One scored item: its given class (0..n_classes-1; others are
 * ignored), the verdict, and its annotator id (len bytes, not
 * NUL-terminated; NULL or len 0 when absent).  The annotator counts
 * under its own name while it is among the top_annotators by volume
 * since start, else under "other"; ids that are absent, not UTF-8,
 * longer than CFD_METRICS_ANNOTATOR_MAX or literally "other" always
 * count as "other".  Cost: a scan of about 4 * top_annotators hashes.
 */
void cfd_metrics_verdict(struct cfd_metrics *m, unsigned cls,
                         enum cfd_metrics_verdict verdict,
                         const char *annotator, size_t len);

/*
 * One item sent to the dead-letter topic, by reason code (e.g.
 * "CL_E_RANGE").  Past CFD_METRICS_MAX_REASONS distinct codes, or for a
 * NULL or empty code, the item counts under "other".
 */
void cfd_metrics_dead_letter(struct cfd_metrics *m, const char *reason);

/*
 * One output acknowledged by the broker on topic, latency_s seconds after
 * its input was consumed (CLOCK_MONOTONIC difference; negative counts as
 * 0).  Call it from the delivery report callback.
 */
void cfd_metrics_delivered(struct cfd_metrics *m, int topic,
                           double latency_s);

/* A transaction ended: committed (true) or aborted (false). */
void cfd_metrics_transaction(struct cfd_metrics *m, bool committed);

/* An offset commit ended: ok (true) or failed (false). */
void cfd_metrics_offset_commit(struct cfd_metrics *m, bool ok);

/*
 * The current per-class thresholds, k values in class order (k is cut to
 * n_classes).  Call it once per batch, e.g. from cl_state_threshold().
 */
void cfd_metrics_thresholds(struct cfd_metrics *m, const double *t,
                            unsigned k);

/*
 * Takes a librdkafka statistics JSON document (the stats_cb arguments)
 * and replaces the lag table with its partitions of known lag.
 * Documents whose "type" is not "consumer" are ignored (a producer's
 * statistics carry no lag).  Returns 0, CFD_METRICS_E_PARSE (the table is
 * kept), or CFD_METRICS_E_FULL when more than max_partitions partitions
 * had a lag (the first max_partitions are kept).
 */
int cfd_metrics_stats_json(struct cfd_metrics *m, const char *json,
                           size_t len);

/*
 * Makes everything counted so far visible to scrapes, and moves the
 * flag-ratio window on.  cfd_metrics_publish_at() takes the
 * CLOCK_MONOTONIC time in milliseconds.
 */
void cfd_metrics_publish(struct cfd_metrics *m);
void cfd_metrics_publish_at(struct cfd_metrics *m, int64_t now_ms);

/*
 * Records that the loop is healthy now: it made progress, or it polled
 * while connected and found nothing to do.  /healthz answers 200 for
 * health_max_age_s after the last heartbeat, 503 before the first one
 * and after that.  Any thread; lock-free.
 */
void cfd_metrics_heartbeat(struct cfd_metrics *m);
void cfd_metrics_heartbeat_at(struct cfd_metrics *m, int64_t now_ms);

/*
 * Reader side: any thread.
 */

/* What /healthz answers at CLOCK_MONOTONIC time now_ms. */
bool cfd_metrics_healthy_at(const struct cfd_metrics *m, int64_t now_ms);

/*
 * Renders the published snapshot in the Prometheus text format into a
 * new NUL-terminated buffer, which the caller frees with free().  Returns
 * 0 and sets *ret_buf and *ret_len, CFD_METRICS_E_PARAM (NULL handle) or
 * CFD_METRICS_E_NOMEM.
 */
int cfd_metrics_render(struct cfd_metrics *m, char **ret_buf,
                       size_t *ret_len);

/*
 * Parses the per-partition lag fields out of a librdkafka statistics
 * JSON document of len bytes (no NUL needed) without a JSON library:
 * topics.<name>.partitions.<id>.{hi_offset, ls_offset,
 * committed_offset, stored_offset, consumer_lag, consumer_lag_stored};
 * everything else is skipped.  Partition -1 (librdkafka's internal
 * "unassigned" queue) and partitions whose lag is unknown are left out.
 * Fills at most cap entries of out and returns how many partitions had a
 * known lag (more than cap means some were dropped), or
 * CFD_METRICS_E_PARSE.  *ret_consumer (may be NULL) is set to whether
 * "type" was "consumer".
 */
int cfd_metrics_parse_lag(const char *json, size_t len,
                          struct cfd_metrics_lag *out, size_t cap,
                          bool *ret_consumer);

/* A short text for a CFD_METRICS_E_* code. */
const char *cfd_metrics_strerror(int code);

#endif /* CFD_DAEMON_CFD_METRICS_H */
