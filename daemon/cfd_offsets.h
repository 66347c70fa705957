/*
 * cfd_offsets.h - the input offsets that go with a state snapshot.
 *
 * Each state record carries, in its header confidentd-offsets, the next
 * offset of every input partition as committed by the same transaction
 * ("partition:offset,..."), so the statistics and the positions they
 * belong to are restored together.  The group's committed offsets are
 * used too: a partition starts at the larger of the two, which covers
 * both a partition another instance moved further and offsets a broker
 * lost when an open transaction was fenced.
 */
#ifndef CFD_DAEMON_CFD_OFFSETS_H
#define CFD_DAEMON_CFD_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#define CFD_OFFSETS_HEADER "confidentd-offsets"

/* Next offset per partition; -1 where unknown. */
struct cfd_offsets {
        int64_t *next;
        size_t n; /* partitions 0 .. n-1 */
};

void cfd_offsets_release(struct cfd_offsets *o);

/* Next offset of partition p, or -1. */
int64_t cfd_offsets_get(const struct cfd_offsets *o, int32_t p);

/* Sets the offsets of list (offsets >= 0 only).  Returns 0 or -1 (out of
 * memory; o unchanged for the partitions not yet set). */
int cfd_offsets_set(struct cfd_offsets *o,
                    const rd_kafka_topic_partition_list_t *list);

/*
 * Formats o with list applied on top, without changing o, as
 * "p:o,p:o" into a new string (free with free()).  NULL when out of
 * memory.
 */
char *cfd_offsets_format(const struct cfd_offsets *o,
                         const rd_kafka_topic_partition_list_t *list);

/* Parses len bytes of the header into o (replacing it).  Returns 0, or -1
 * when malformed (o emptied). */
int cfd_offsets_parse(struct cfd_offsets *o, const char *s, size_t len);

#endif /* CFD_DAEMON_CFD_OFFSETS_H */
