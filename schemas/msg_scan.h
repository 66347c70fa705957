/*
 * msg_scan.h - private to cfd_schemas: checks raw msgpack bytes without
 * building objects.  msg_decode() walks the top-level map with these
 * functions: it reads each header with msg_scan_head(), checks the
 * containers it opens itself with msg_scan_check_count(), and checks and
 * skips every other value with msg_scan_value().  Every check reports a
 * MSG_E_PARSE with the byte offset where it failed, and no container is
 * trusted to hold more elements than bytes remain.
 */
#ifndef CFD_SCHEMAS_MSG_SCAN_H
#define CFD_SCHEMAS_MSG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* Containers open at once that msgpack-c accepts (its
 * MSGPACK_EMBED_STACK_SIZE); it fails on deeper nesting, so we do too, as
 * the decoder did when it unpacked with msgpack-c. */
#define MSG_SCAN_DEPTH_MAX 32

enum msg_scan_kind {
        MSG_SCAN_SCALAR = 0, /* anything but an array or a map */
        MSG_SCAN_ARRAY,
        MSG_SCAN_MAP,
};

/* One value's header as read from the wire. */
struct msg_scan_head {
        enum msg_scan_kind kind;
        uint32_t count; /* elements of an array, pairs of a map */
        size_t size;    /* header bytes, plus the payload of a scalar */
};

/*
 * Reads the header of the value at buf[pos] into *ret_head, checking that
 * a scalar's payload lies within len.  Returns 0, or MSG_E_PARSE with *err
 * filled (err may be NULL) for pos == len, a cut header or payload, or the
 * reserved byte 0xc1.
 */
int msg_scan_head(const unsigned char *buf, size_t len, size_t pos,
                  struct msg_scan_head *ret_head, struct msg_error *err);

/*
 * Checks that the elements which the array or map header h, read at
 * buf[pos], declares can be present: each takes at least one byte.
 * Returns 0, or MSG_E_PARSE with *err filled (err may be NULL).  Nesting is
 * not checked here.
 */
int msg_scan_check_count(size_t len, size_t pos,
                         const struct msg_scan_head *h, struct msg_error *err);

/*
 * Checks the complete value starting at buf[*pos], which lies inside open
 * containers already (0 for a message's top-level value): every header
 * valid, every declared element present, nesting within
 * MSG_SCAN_DEPTH_MAX counting the open ones.  Returns 0 and moves *pos
 * past the value, or MSG_E_PARSE with *err filled (err may be NULL) and
 * *pos unchanged.
 */
int msg_scan_value(const unsigned char *buf, size_t len, size_t *pos,
                   unsigned open, struct msg_error *err);

/* Fills *err (when not NULL) with code, offset, field and a printf-style
 * message; field and message are cut to fit. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
void msg_error_set(struct msg_error *err, int code, size_t offset,
                   const char *field, const char *fmt, ...);

#endif /* CFD_SCHEMAS_MSG_SCAN_H */
