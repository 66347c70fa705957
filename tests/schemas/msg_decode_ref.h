/*
 * msg_decode_ref.h - the decoder of schemas/ as it was before decoding
 * became a single pass: a scan of the raw bytes, msgpack_unpack() into a
 * zone, then the fields.  Kept unchanged, under other names, as the
 * reference that test_msg_diff and the fuzz target compare msg_decode()
 * and msg_decode_id() with.  Same contract as in msg.h.
 */
#ifndef CFD_TESTS_MSG_DECODE_REF_H
#define CFD_TESTS_MSG_DECODE_REF_H

#include <stddef.h>

#include "msg.h"

struct ref_decoder;

int ref_decoder_new(const struct msg_schema *schema, struct ref_decoder **ret);
void ref_decoder_free(struct ref_decoder *dec);
int ref_decode(struct ref_decoder *dec, const void *buf, size_t len,
               struct msg_label *out, struct msg_error *err);
int ref_decode_id(struct ref_decoder *dec, const void *buf, size_t len,
                  struct msg_label *out, struct msg_error *err);

#endif /* CFD_TESTS_MSG_DECODE_REF_H */
