/*
 * msg.h - the msgpack label message: decoding for the daemon, encoding for
 * the replay and simulation tools.  See schemas/README.md for the format.
 *
 * No I/O and no global state.  Decoding reads the message bytes in one
 * pass, where they lie, and allocates nothing.
 */
#ifndef CFD_SCHEMAS_MSG_H
#define CFD_SCHEMAS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

enum msg_err {
        MSG_OK = 0,
        MSG_E_PARSE = -1,     /* not msgpack, truncated, or trailing bytes */
        MSG_E_TYPE = -2,      /* top level not a map, or field of wrong type */
        MSG_E_MISSING = -3,   /* a required field (id, label, pred_probs) */
        MSG_E_DUPLICATE = -4, /* a key appears twice */
        MSG_E_WIDTH = -5,     /* pred_probs has a length other than K */
        MSG_E_LABEL = -6,     /* label name unknown, or integer out of int64 */
        MSG_E_NOMEM = -7,
        MSG_E_PARAM = -8,     /* invalid schema or encode arguments */
};

/* Name of a code ("MSG_E_PARSE"; "MSG_E_UNKNOWN" for a code not listed)
 * and a short lower-case description.  Both return static strings. */
const char *msg_err_name(int code);
const char *msg_strerror(int code);

/* What the decoder needs to know: K and, optionally, class names. */
struct msg_schema {
        unsigned k;                     /* number of classes, >= 2 */
        const char *const *class_names; /* k names, or NULL: integers only */
};

/* Where a decode failed: field name ("pred_probs[3]", "label", "" for the
 * whole message), byte offset when known, and a lower-case message. */
struct msg_error {
        int code;      /* MSG_E_* */
        size_t offset; /* byte offset into the message, or len when unknown */
        char field[48];
        char msg[160];
};

enum msg_id_kind {
        MSG_ID_INT = 0,
        MSG_ID_STR,
};

/* A string borrowed from the message buffer: not NUL-terminated. */
struct msg_str {
        const char *ptr; /* NULL when absent */
        size_t len;
};

/*
 * One decoded label.  Strings point into the caller's message buffer and
 * stay valid while it does; probs is caller storage of capacity K.
 */
struct msg_label {
        enum msg_id_kind id_kind;
        int64_t id_int;           /* MSG_ID_INT */
        struct msg_str id;        /* MSG_ID_STR */
        int64_t label;            /* class index; a name is mapped to it */
        double *probs;            /* K values, filled by the decoder */
        struct msg_str annotator; /* optional: ptr NULL when absent */
        struct msg_str model;     /* optional: ptr NULL when absent */
        bool has_ts;
        double ts;                /* optional: any number, as sent */
};

struct msg_decoder;

/*
 * Creates a decoder for messages of schema->k classes.  Copies the schema
 * (names included) and builds a sorted index of the class names, so that
 * msg_decode() maps a name without allocating.  Returns 0 and sets *ret,
 * or MSG_E_PARAM (k < 2, a NULL, empty or repeated name) or MSG_E_NOMEM.
 */
int msg_decoder_new(const struct msg_schema *schema, struct msg_decoder **ret);

/* Frees a decoder; NULL does nothing. */
void msg_decoder_free(struct msg_decoder *dec);

/*
 * Decodes one message of len bytes.  out->probs must point at K doubles.
 * Returns 0, or a MSG_E_* code with *err filled (err may be NULL):
 * MSG_E_PARAM for a NULL dec, out or out->probs, or a NULL buf with len
 * > 0; the others as listed in schemas/README.md.  A NULL buf of length 0
 * (a Kafka tombstone) is MSG_E_PARSE, "empty message".
 *
 * On success every field of *out but probs (the pointer) is set; on failure
 * *out keeps its fields except that out->probs[] may be partly written.
 * Keys other than id, label, pred_probs, annotator, model and ts are ignored
 * here, whatever their value (nested maps included); they travel on
 * untouched because the daemon forwards the original bytes.  A repeated
 * known key is MSG_E_DUPLICATE; a repeated ignored key is not detected.
 * Integer and float32 probabilities are widened to double; values are not
 * range-checked and NaN or infinity pass through (that is core's
 * cl_check_row()), nor is the label compared with K.
 *
 * The decoder is not thread safe: use one per thread.  Nothing is
 * allocated.
 */
int msg_decode(struct msg_decoder *dec, const void *buf, size_t len,
               struct msg_label *out, struct msg_error *err);

/*
 * Decodes only the id of a message: id_kind, id_int and id of *out are set
 * on success, nothing else is read or written (out->probs may be NULL).
 * Checks the message as msg_decode() does up to the top-level map (so
 * MSG_E_PARSE, MSG_E_TYPE for a non-map or a non-string key), then
 * MSG_E_TYPE, MSG_E_DUPLICATE or MSG_E_MISSING for id alone; the other
 * fields are not looked at.  Used on output messages, whose bytes are the
 * input message's.
 */
int msg_decode_id(struct msg_decoder *dec, const void *buf, size_t len,
                  struct msg_label *out, struct msg_error *err);

/*
 * What msg_encode_label() writes.  id_str NULL sends id_int;
 * label_name not NULL is sent instead of label; annotator and model NULL
 * are omitted; ts is sent as a float64 when has_ts; use_float32 writes
 * pred_probs as float32 (rounding each value to float).
 */
struct msg_encode_args {
        const char *id_str;
        int64_t id_int;
        int64_t label;
        const char *label_name; /* if not NULL, sent instead of label */
        const double *probs;    /* k values */
        unsigned k;
        bool use_float32;
        const char *annotator;
        const char *model;
        bool has_ts;
        double ts;
};

/*
 * Appends one label message to sbuf, keys in the order id, label,
 * pred_probs, annotator, model, ts.  Returns 0, MSG_E_PARAM (sbuf, a or
 * a->probs NULL, or k == 0) or MSG_E_NOMEM; on failure sbuf holds what it
 * held before the call.
 */
int msg_encode_label(msgpack_sbuffer *sbuf, const struct msg_encode_args *a);

#endif /* CFD_SCHEMAS_MSG_H */
