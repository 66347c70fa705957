/*
 * cfd_mock.h - an embedded Kafka cluster on loopback, built on librdkafka's
 * mock cluster, for demos and tests: `bootstrap: embedded` in the daemon
 * and `confidentctl broker`.
 *
 * The cluster runs on its own rd_kafka_t (never a client's, so a client
 * that is recreated after a fatal error leaves the cluster alone) and one
 * librdkafka thread serves all of its brokers.  Each broker listens on
 * 127.0.0.1 on a port chosen by the kernel.  Limits of the mock in
 * librdkafka 2.0.2: a partition keeps its newest 5 MiB and silently drops
 * older batches, CreateTopics is not supported (topics are created here or
 * auto-created with 4 partitions), read_committed sees open and aborted
 * transactions.
 *
 * The module never prints; librdkafka's log lines go to the log callback
 * given to cfd_mock_new(), or nowhere.
 */
#ifndef CFD_DAEMON_CFD_MOCK_H
#define CFD_DAEMON_CFD_MOCK_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

enum cfd_mock_err {
        CFD_MOCK_OK = 0,
        CFD_MOCK_E_PARAM = -1,   /* argument out of range */
        CFD_MOCK_E_NOMEM = -2,
        CFD_MOCK_E_KAFKA = -3,   /* librdkafka refused the operation */
        CFD_MOCK_E_SOCKET = -4,  /* listening sockets not found or tuned */
        CFD_MOCK_E_COMMAND = -5, /* unknown command word */
        CFD_MOCK_E_ARGUMENT = -6, /* bad or missing argument of a command */
};

/* Error detail: code and a lower-case message naming the bad word. */
struct cfd_mock_error {
        int code; /* CFD_MOCK_E_* */
        char msg[256];
};

/* librdkafka's log callback type, called from librdkafka threads. */
typedef void(cfd_mock_log_fn)(const rd_kafka_t *rk, int level,
                              const char *fac, const char *buf);

struct cfd_mock;

/* Maximum broker count and partitions per topic accepted here. */
#define CFD_MOCK_MAX_BROKERS    64
#define CFD_MOCK_MAX_PARTITIONS 10000

/*
 * Starts a cluster of broker_cnt (1..CFD_MOCK_MAX_BROKERS) brokers, ids 1
 * to broker_cnt.  log_cb, if not NULL, receives librdkafka's log lines for
 * the cluster's handle; NULL discards them.  Returns 0 and sets *ret, or
 * CFD_MOCK_E_PARAM, CFD_MOCK_E_NOMEM, CFD_MOCK_E_KAFKA with *err filled
 * (err may be NULL).  Call from one thread; the cluster then serves on
 * its own.
 */
int cfd_mock_new(int broker_cnt, cfd_mock_log_fn *log_cb,
                 struct cfd_mock **ret, struct cfd_mock_error *err);

/*
 * Stops the cluster and frees it.  Shut down every client of the cluster
 * first: the cluster goes, then its handle.  NULL does nothing.
 */
void cfd_mock_free(struct cfd_mock *m);

/*
 * The bootstrap.servers list, "127.0.0.1:port[,127.0.0.1:port...]".
 * Owned by m, valid until cfd_mock_free().
 */
const char *cfd_mock_bootstraps(const struct cfd_mock *m);

/* Number of brokers, as given to cfd_mock_new(). */
int cfd_mock_broker_count(const struct cfd_mock *m);

/*
 * Sets TCP_NODELAY on the cluster's listening sockets, found among this
 * process's descriptors by their local port; Linux copies the option to
 * the sockets they accept.  Without it a small response can wait ~40 ms
 * for the client's delayed ACK.  Returns the number of listening sockets
 * changed (the broker count), or CFD_MOCK_E_SOCKET with *err filled when
 * /proc/self/fd cannot be read, a setsockopt() fails or a listener is not
 * found.  Sockets already accepted keep Nagle: call before clients start.
 */
int cfd_mock_set_nodelay(struct cfd_mock *m, struct cfd_mock_error *err);

/*
 * Creates a topic of partition_cnt (1..CFD_MOCK_MAX_PARTITIONS)
 * partitions, replicated on min(3, brokers) brokers.  Returns 0, or
 * CFD_MOCK_E_PARAM, or CFD_MOCK_E_KAFKA (e.g. the topic exists) with *err
 * filled naming the topic.
 */
int cfd_mock_topic_create(struct cfd_mock *m, const char *topic,
                          int partition_cnt, struct cfd_mock_error *err);

/*
 * Applies one fault command, words separated by blanks:
 *
 *   down <broker_id>            disconnect a broker, refuse connections
 *   up <broker_id>              accept connections again
 *   rtt <broker_id> <ms>        delay every response of a broker
 *   err <api> <error> [count]   fail the next count (default 1, at most
 *                               100000) requests of ApiKey api, cluster-wide
 *   clear <api>                 drop the errors still queued for api
 *   topic <name> <partitions>   create a topic
 *
 * broker_id is 1..brokers, or -1 for all brokers.  api is a number or a
 * protocol name (Produce, Fetch, AddOffsetsToTxn, EndTxn, ...; any case);
 * error a librdkafka error name without the RD_KAFKA_RESP_ERR_ prefix
 * (NOT_LEADER_FOR_PARTITION, _TRANSPORT; any case, prefix allowed) or its
 * number.  A trailing '\n' or "\r\n" is ignored.  Returns 0, or
 * CFD_MOCK_E_COMMAND, CFD_MOCK_E_ARGUMENT (message quotes the bad word),
 * CFD_MOCK_E_KAFKA with *err filled.
 */
int cfd_mock_command(struct cfd_mock *m, const char *line,
                     struct cfd_mock_error *err);

/* "CFD_MOCK_E_PARAM" etc., and a short description. */
const char *cfd_mock_err_name(int code);
const char *cfd_mock_strerror(int code);

#endif /* CFD_DAEMON_CFD_MOCK_H */
