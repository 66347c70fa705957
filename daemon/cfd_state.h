/*
 * cfd_state.h - where the statistics come from at start, and where they
 * are saved.
 *
 * With delivery.mode exactly_once every transaction also writes a
 * snapshot of the core state to the compacted state topic, keyed by the
 * transactional id, so the newest committed snapshot always matches the
 * committed input offsets.  At start the daemon takes, in this order: the
 * newest committed snapshot of its key on the state topic, else the file
 * of state.initial, else an empty state.
 */
#ifndef CFD_DAEMON_CFD_STATE_H
#define CFD_DAEMON_CFD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "cfg.h"
#include "cl.h"

/* Where a state came from, for the start-up log line. */
enum cfd_state_origin {
        CFD_STATE_EMPTY = 0,
        CFD_STATE_TOPIC,
        CFD_STATE_FILE,
};

const char *cfd_state_origin_name(enum cfd_state_origin origin);

/* A snapshot read back from the state topic. */
struct cfd_state_record {
        char *buf;     /* the snapshot (free with free()) */
        size_t len;
        int64_t offset; /* its offset on the state topic */
        char *inputs;   /* its confidentd-offsets header, NUL-terminated
                         * (free with free()), or NULL */
};

/*
 * Reads the newest committed snapshot stored under key on topic, through
 * a short-lived consumer of its own (read_committed, no group) built from
 * cfg's properties.  Returns 1 with *ret filled, 0 when the topic holds
 * no snapshot of key, or -1 with errbuf filled.
 */
int cfd_state_fetch(const struct cfg *cfg, const char *bootstrap,
                    const char *topic, const char *key,
                    struct cfd_state_record *ret, char *errbuf,
                    size_t errsize);

/*
 * Builds the state to start from: the snapshot bytes if buf is not NULL,
 * else the file of cfg->state.initial if set, else a new state for
 * params.  A snapshot made with other parameters than params is refused,
 * naming the first one that differs.  Returns 0 with *ret_state and
 * *ret_origin set, or -1 with errbuf filled.
 */
int cfd_state_build(const struct cfg *cfg, const struct cl_params *params,
                    const char *buf, size_t len, struct cl_state **ret_state,
                    enum cfd_state_origin *ret_origin, char *errbuf,
                    size_t errsize);

/*
 * The partition of topic (partition_cnt partitions) that holds key: the
 * same CRC32 choice as librdkafka's consistent partitioner.
 */
int32_t cfd_state_partition(rd_kafka_topic_t *rkt, const char *key,
                            int32_t partition_cnt);

#endif /* CFD_DAEMON_CFD_STATE_H */
