/*
 * msg_scan.h - private to cfd_schemas: checks raw msgpack bytes without
 * building objects, and finds the byte offset of a value for an error.
 *
 * msgpack_unpack() allocates n objects as soon as it reads an array or map
 * header claiming n elements, before it knows whether they follow; a few
 * bytes can thus ask for gigabytes.  It also reports no offset for a parse
 * error.  msg_decode() therefore runs msg_scan_value() first: once it has
 * passed, every declared element exists, so the zone needs at most a few
 * dozen bytes per message byte, and msgpack_unpack() cannot fail but for
 * lack of memory.
 */
#ifndef CFD_SCHEMAS_MSG_SCAN_H
#define CFD_SCHEMAS_MSG_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* Containers open at once that msgpack-c accepts (its
 * MSGPACK_EMBED_STACK_SIZE); it fails on deeper nesting, so we do too. */
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
 * Checks the complete value starting at buf[*pos]: every header valid,
 * every declared element present, nesting within MSG_SCAN_DEPTH_MAX.
 * Returns 0 and moves *pos past the value, or MSG_E_PARSE with *err filled
 * (err may be NULL) and *pos unchanged.
 */
int msg_scan_value(const unsigned char *buf, size_t len, size_t *pos,
                   struct msg_error *err);

/*
 * Offsets for error reports in a message that msg_scan_value() accepted
 * and whose top level is a map: of the key or the value of pair number
 * pair (0-based), and of element index of the array at offset pos.  Both
 * return len when the value is not there.
 */
size_t msg_scan_pair_offset(const unsigned char *buf, size_t len,
                            uint32_t pair, int want_value);
size_t msg_scan_element_offset(const unsigned char *buf, size_t len,
                               size_t pos, uint32_t index);

/* Fills *err (when not NULL) with code, offset, field and a printf-style
 * message; field and message are cut to fit. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
void msg_error_set(struct msg_error *err, int code, size_t offset,
                   const char *field, const char *fmt, ...);

#endif /* CFD_SCHEMAS_MSG_SCAN_H */
