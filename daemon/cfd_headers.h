/*
 * cfd_headers.h - the Kafka headers of the daemon's outputs, the contract
 * of schemas/README.md: confidentd-verdict, -given, -suggested, -quality,
 * -threshold, -reason and -source on clean and suspect items;
 * confidentd-error, -reason and -source on dead letters.
 */
#ifndef CFD_DAEMON_CFD_HEADERS_H
#define CFD_DAEMON_CFD_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "cl.h"

/* Where the input came from: confidentd-source "topic/partition/offset". */
struct cfd_source {
        const char *topic;
        int32_t partition;
        int64_t offset;
};

/*
 * Headers of a clean (suspect false) or suspect output.  Returns a new
 * list (given to rd_kafka_producev(), or freed with
 * rd_kafka_headers_destroy()), or NULL when librdkafka refused a header.
 */
rd_kafka_headers_t *cfd_headers_verdict(const struct cl_verdict *v,
                                        bool suspect,
                                        const struct cfd_source *src);

/* Headers of a dead letter: the error code name and the reason. */
rd_kafka_headers_t *cfd_headers_dead_letter(const char *code,
                                            const char *reason,
                                            const struct cfd_source *src);

/*
 * Writes v as printf's "%.6g" does, into buf of size bytes (at least 16
 * for the fast path), and returns buf.  Exported for its test.
 */
const char *cfd_headers_format_g6(char *buf, size_t size, double v);

#endif /* CFD_DAEMON_CFD_HEADERS_H */
