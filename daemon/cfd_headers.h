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

/* Room for "topic/partition/offset": a topic name has at most 249
 * characters, a partition 10 digits, an offset 19. */
#define CFD_HEADERS_SOURCE_MAX 320

/*
 * The formatted values of a clean or suspect output's headers, each a
 * terminated string at the start of its buffer.  The caller's storage:
 * the formatting is kept apart from librdkafka so that it can be tested
 * alone (tests/daemon/test_hot_path.c: it allocates nothing).
 */
struct cfd_header_values {
        char given[16];                      /* decimal, "3" */
        char suggested[16];                  /* decimal, "17" */
        char quality[32];                    /* "%.6g", "0.0123457" */
        char threshold[32];                  /* "%.6g", "0.876543" */
        char source[CFD_HEADERS_SOURCE_MAX]; /* "labels/12/9876543210" */
};

/*
 * Fills *ret with the header values of verdict v for an input from src.
 * Allocates nothing, makes no system call; any thread.
 */
void cfd_headers_values(struct cfd_header_values *ret,
                        const struct cl_verdict *v,
                        const struct cfd_source *src);

/*
 * Writes src as "topic/partition/offset" into buf of size bytes (at
 * least 1), the topic cut to fit (CFD_HEADERS_SOURCE_MAX never cuts; 32
 * keeps both numbers whole), and returns buf.  A negative partition or
 * offset is written as 0.  The dead letter's confidentd-source; allocates
 * nothing, makes no system call; any thread.
 */
const char *cfd_headers_format_source(char *buf, size_t size,
                                      const struct cfd_source *src);

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
