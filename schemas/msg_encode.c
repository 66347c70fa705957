/*
 * msg_encode.c - label messages to msgpack bytes, with msgpack_packer over
 * a msgpack_sbuffer.  Used by the replay and simulation tools and tests;
 * the daemon forwards input bytes and never re-encodes.
 */
#include "msg.h"

#include <string.h>

/* The msgpack_pack_*() calls return 0, or -1 when the buffer cannot grow. */

static int pack_cstr(msgpack_packer *pk, const char *s)
{
        size_t len = strlen(s);

        if (msgpack_pack_str(pk, len) < 0)
                return -1;
        return msgpack_pack_str_body(pk, s, len);
}

static int pack_probs(msgpack_packer *pk, const struct msg_encode_args *a)
{
        if (msgpack_pack_array(pk, a->k) < 0)
                return -1;
        for (unsigned i = 0; i < a->k; i++) {
                int rc = a->use_float32
                                 ? msgpack_pack_float(pk, (float)a->probs[i])
                                 : msgpack_pack_double(pk, a->probs[i]);

                if (rc < 0)
                        return -1;
        }
        return 0;
}

/* Packs the required keys: id, label, pred_probs. */
static int pack_required(msgpack_packer *pk, const struct msg_encode_args *a)
{
        if (pack_cstr(pk, "id") < 0)
                return -1;
        if ((a->id_str ? pack_cstr(pk, a->id_str)
                       : msgpack_pack_int64(pk, a->id_int)) < 0)
                return -1;
        if (pack_cstr(pk, "label") < 0)
                return -1;
        if ((a->label_name ? pack_cstr(pk, a->label_name)
                           : msgpack_pack_int64(pk, a->label)) < 0)
                return -1;
        if (pack_cstr(pk, "pred_probs") < 0)
                return -1;
        return pack_probs(pk, a);
}

/* Packs the optional keys that a sets: annotator, model, ts. */
static int pack_optional(msgpack_packer *pk, const struct msg_encode_args *a)
{
        if (a->annotator && (pack_cstr(pk, "annotator") < 0 ||
                             pack_cstr(pk, a->annotator) < 0))
                return -1;
        if (a->model &&
            (pack_cstr(pk, "model") < 0 || pack_cstr(pk, a->model) < 0))
                return -1;
        if (a->has_ts &&
            (pack_cstr(pk, "ts") < 0 || msgpack_pack_double(pk, a->ts) < 0))
                return -1;
        return 0;
}

int msg_encode_label(msgpack_sbuffer *sbuf, const struct msg_encode_args *a)
{
        msgpack_packer pk;
        size_t start, pairs;

        if (!sbuf || !a || !a->probs || a->k == 0)
                return MSG_E_PARAM;
        start = sbuf->size;
        pairs = 3u + (a->annotator != NULL) + (a->model != NULL) +
                (a->has_ts ? 1u : 0u);
        msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
        if (msgpack_pack_map(&pk, pairs) < 0 || pack_required(&pk, a) < 0 ||
            pack_optional(&pk, a) < 0) {
                sbuf->size = start; /* drop the partial message */
                return MSG_E_NOMEM;
        }
        return 0;
}
