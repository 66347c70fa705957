/*
 * msg_diff.c - the decoder against the reference decoder; see msg_diff.h.
 */
#include "msg_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* What a label and an error hold before a decode: not zero, so that a
 * field a decoder forgets to set shows. */
#define FILL 0x5a

int msg_diff_init(struct msg_diff *d, const struct msg_schema *schema)
{
        int rc;

        memset(d, 0, sizeof(*d));
        if (schema->k > MSG_DIFF_K_MAX)
                return MSG_E_PARAM;
        d->k = schema->k;
        rc = msg_decoder_new(schema, &d->dec);
        if (rc < 0)
                return rc;
        rc = ref_decoder_new(schema, &d->ref);
        if (rc < 0) {
                msg_decoder_free(d->dec);
                d->dec = NULL;
        }
        return rc;
}

void msg_diff_release(struct msg_diff *d)
{
        msg_decoder_free(d->dec);
        ref_decoder_free(d->ref);
        d->dec = NULL;
        d->ref = NULL;
}

void msg_diff_decode(const struct msg_diff *d, bool reference, bool id_only,
                     const void *buf, size_t len, struct msg_diff_result *r)
{
        memset(r, FILL, sizeof(*r));
        r->lab.has_ts = true; /* a bool must hold 0 or 1 */
        r->lab.probs = id_only ? NULL : r->probs;
        if (reference)
                r->rc = id_only ? ref_decode_id(d->ref, buf, len, &r->lab,
                                                &r->err)
                                : ref_decode(d->ref, buf, len, &r->lab,
                                             &r->err);
        else
                r->rc = id_only ? msg_decode_id(d->dec, buf, len, &r->lab,
                                                &r->err)
                                : msg_decode(d->dec, buf, len, &r->lab,
                                             &r->err);
}

static bool same_str(const struct msg_str *a, const struct msg_str *b)
{
        if (a->len != b->len)
                return false;
        if (a->len == 0 && a->ptr && b->ptr)
                return true; /* see msg_diff.h */
        return a->ptr == b->ptr;
}

static bool same_error(const struct msg_error *a, const struct msg_error *b,
                       char *what, size_t cap)
{
        if (a->code != b->code || a->offset != b->offset) {
                snprintf(what, cap, "error code %d at %zu, expected %d at %zu",
                         a->code, a->offset, b->code, b->offset);
                return false;
        }
        if (strncmp(a->field, b->field, sizeof(a->field)) != 0 ||
            strncmp(a->msg, b->msg, sizeof(a->msg)) != 0) {
                snprintf(what, cap, "error '%.47s: %.159s', expected "
                         "'%.47s: %.159s'",
                         a->field, a->msg, b->field, b->msg);
                return false;
        }
        return true;
}

/* The label fields that msg.h defines; probs only after a success. */
static const char *label_difference(const struct msg_diff_result *a,
                                    const struct msg_diff_result *b,
                                    unsigned k)
{
        const struct msg_label *x = &a->lab, *y = &b->lab;

        if (x->id_kind != y->id_kind || x->id_int != y->id_int)
                return "id_kind or id_int";
        if (!same_str(&x->id, &y->id))
                return "id";
        if (x->label != y->label)
                return "label";
        /* the pointer is the caller's: kept, on success too */
        if ((x->probs != NULL) != (y->probs != NULL) ||
            (x->probs && x->probs != a->probs) ||
            (y->probs && y->probs != b->probs))
                return "probs pointer";
        if (a->rc == 0 && x->probs &&
            memcmp(a->probs, b->probs, k * sizeof(double)) != 0)
                return "probs";
        if (!same_str(&x->annotator, &y->annotator))
                return "annotator";
        if (!same_str(&x->model, &y->model))
                return "model";
        if (x->has_ts != y->has_ts ||
            memcmp(&x->ts, &y->ts, sizeof(x->ts)) != 0)
                return "has_ts or ts";
        return NULL;
}

bool msg_diff_same(const struct msg_diff_result *a,
                   const struct msg_diff_result *b, unsigned k, char *what,
                   size_t cap)
{
        const char *field;

        if (a->rc != b->rc) {
                snprintf(what, cap, "returned %d, expected %d", a->rc, b->rc);
                return false;
        }
        if (a->rc < 0 && !same_error(&a->err, &b->err, what, cap))
                return false;
        field = label_difference(a, b, k);
        if (field) {
                snprintf(what, cap, "label field %s differs (returned %d)",
                         field, a->rc);
                return false;
        }
        what[0] = '\0';
        return true;
}

bool msg_diff_run(const struct msg_diff *d, const void *buf, size_t len,
                  int *ret_rc, char *what, size_t cap)
{
        static const char *const names[2] = {"msg_decode", "msg_decode_id"};
        struct msg_diff_result got, want;
        char detail[512];

        for (int id_only = 0; id_only < 2; id_only++) {
                msg_diff_decode(d, false, id_only, buf, len, &got);
                msg_diff_decode(d, true, id_only, buf, len, &want);
                if (!id_only)
                        *ret_rc = got.rc;
                if (!msg_diff_same(&got, &want, d->k, detail,
                                   sizeof(detail))) {
                        snprintf(what, cap, "%s: %s", names[id_only], detail);
                        return false;
                }
        }
        what[0] = '\0';
        return true;
}
