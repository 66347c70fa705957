/*
 * msg_diff.h - decodes a message with msg_decode() and msg_decode_id() and
 * with the reference decoder (msg_decode_ref.h), and compares everything
 * the contract in msg.h makes visible: the return code; on failure the
 * error's code, offset, field and message and an untouched label; on
 * success every field of the label, probabilities and time stamp bit for
 * bit, strings by address and length.
 *
 * One exception, on purpose: an empty string (id, annotator, model) is
 * compared by length only, both addresses non-NULL.  msgpack-c gave it the
 * address of the last fixed-size field it had read (often the key before
 * it); the decoder gives the address where its bytes would start.
 */
#ifndef CFD_TESTS_MSG_DIFF_H
#define CFD_TESTS_MSG_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"
#include "msg_decode_ref.h"

#define MSG_DIFF_K_MAX 16

/* One decode: what came back and what was left in the label. */
struct msg_diff_result {
        int rc;
        struct msg_error err;
        struct msg_label lab; /* lab.probs points at probs, or is NULL */
        double probs[MSG_DIFF_K_MAX];
};

struct msg_diff {
        struct msg_decoder *dec;
        struct ref_decoder *ref;
        unsigned k;
};

/* Both decoders for schema (k <= MSG_DIFF_K_MAX).  Returns 0 or the code
 * of msg_decoder_new() or ref_decoder_new(). */
int msg_diff_init(struct msg_diff *d, const struct msg_schema *schema);
void msg_diff_release(struct msg_diff *d);

/* Decodes with the decoder (reference false) or the reference, with
 * msg_decode() or, when id_only, msg_decode_id(), into *r.  The label and
 * the error start filled with the same bytes each time. */
void msg_diff_decode(const struct msg_diff *d, bool reference, bool id_only,
                     const void *buf, size_t len, struct msg_diff_result *r);

/* Whether a and b agree as described above; if not, what (cap bytes)
 * names the first difference. */
bool msg_diff_same(const struct msg_diff_result *a,
                   const struct msg_diff_result *b, unsigned k, char *what,
                   size_t cap);

/* Decodes buf both ways with msg_decode() and with msg_decode_id() and
 * compares.  Returns true when both agree; *ret_rc is msg_decode()'s code.
 * On a difference what names it, with the function. */
bool msg_diff_run(const struct msg_diff *d, const void *buf, size_t len,
                  int *ret_rc, char *what, size_t cap);

#endif /* CFD_TESTS_MSG_DIFF_H */
