/*
 * fuzz_msg_decode.c - libFuzzer target for msg_decode() and
 * msg_decode_id(), and the checks it makes on every input:
 *
 * - a failure sets err.code to the returned code, an offset within the
 *   message and a NUL-terminated field and message;
 * - a success leaves every string inside the input buffer, and the label
 *   re-encoded by msg_encode_label() decodes to the same fields;
 * - msg_decode_id() agrees with msg_decode() about the id;
 * - both agree in everything with the reference decoder, the decoder as
 *   it was before decoding became a single pass (tests/schemas/msg_diff.h),
 *   with and without class names.
 *
 * Built with clang and -DCFD_FUZZ=ON it runs under libFuzzer; otherwise
 * corpus_driver.c runs it over the seed corpus as a CTest.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "msg.h"
#include "msg_diff.h"

#define K 10

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const class_names[K] = {
        "airplane", "automobile", "bird",  "cat",  "deer",
        "dog",      "frog",       "horse", "ship", "truck",
};

#define CHECK(cond)                                                        \
        do {                                                               \
                if (!(cond)) {                                             \
                        fprintf(stderr, "%s:%d: check failed: %s\n",       \
                                __FILE__, __LINE__, #cond);                \
                        abort();                                           \
                }                                                          \
        } while (0)

static struct msg_decoder *decoder(void)
{
        static struct msg_decoder *dec;
        struct msg_schema schema = {K, class_names};

        if (!dec)
                CHECK(msg_decoder_new(&schema, &dec) == 0);
        return dec;
}

/* The decoder and the reference, with class names (0) and without (1). */
static const struct msg_diff *differ(int plain)
{
        static struct msg_diff diff[2];
        static bool ready[2];
        struct msg_schema schema = {K, plain ? NULL : class_names};

        if (!ready[plain]) {
                CHECK(msg_diff_init(&diff[plain], &schema) == 0);
                ready[plain] = true;
        }
        return &diff[plain];
}

static void check_same_as_reference(const uint8_t *data, size_t size)
{
        for (int plain = 0; plain < 2; plain++) {
                char what[768];
                int rc;

                if (!msg_diff_run(differ(plain), data, size, &rc, what,
                                  sizeof(what))) {
                        fprintf(stderr, "differs from the reference (%s): "
                                "%s\n",
                                plain ? "no class names" : "class names",
                                what);
                        abort();
                }
        }
}

static void check_error(int rc, const struct msg_error *err, size_t size)
{
        CHECK(rc < 0);
        CHECK(err->code == rc);
        CHECK(strcmp(msg_err_name(rc), "MSG_E_UNKNOWN") != 0);
        CHECK(err->offset <= size);
        CHECK(memchr(err->field, '\0', sizeof(err->field)) != NULL);
        CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
        CHECK(err->msg[0] != '\0');
}

static void check_inside(const struct msg_str *s, const uint8_t *data,
                         size_t size)
{
        if (!s->ptr)
                return;
        CHECK((const uint8_t *)s->ptr >= data);
        CHECK((const uint8_t *)s->ptr + s->len <= data + size);
}

/* A borrowed string as a C string, or NULL when it holds a NUL byte (the
 * encoder takes C strings) or is absent.  Free with free(). */
static char *cstr(const struct msg_str *s)
{
        char *c;

        if (!s->ptr || memchr(s->ptr, '\0', s->len))
                return NULL;
        c = malloc(s->len + 1);
        CHECK(c != NULL);
        memcpy(c, s->ptr, s->len);
        c[s->len] = '\0';
        return c;
}

static bool same_str(const struct msg_str *a, const struct msg_str *b)
{
        return a->len == b->len && (a->len == 0 || !memcmp(a->ptr, b->ptr,
                                                           a->len));
}

/* Re-encodes a decoded label and checks that it decodes the same. */
static void check_round_trip(const struct msg_label *lab)
{
        char *id = cstr(&lab->id), *annotator = cstr(&lab->annotator);
        char *model = cstr(&lab->model);
        struct msg_encode_args a = {
                .id_str = id,
                .id_int = lab->id_int,
                .label = lab->label,
                .probs = lab->probs,
                .k = K,
                .annotator = annotator,
                .model = model,
                .has_ts = lab->has_ts,
                .ts = lab->ts,
        };
        double probs[K];
        struct msg_label back = {.probs = probs};
        msgpack_sbuffer sb;

        if ((lab->id_kind == MSG_ID_STR && !id) ||
            (lab->annotator.ptr && !annotator) || (lab->model.ptr && !model))
                goto out;
        msgpack_sbuffer_init(&sb);
        CHECK(msg_encode_label(&sb, &a) == 0);
        CHECK(msg_decode(decoder(), sb.data, sb.size, &back, NULL) == 0);
        CHECK(back.id_kind == lab->id_kind);
        CHECK(back.id_int == lab->id_int);
        CHECK(same_str(&back.id, &lab->id));
        CHECK(back.label == lab->label);
        CHECK(memcmp(probs, lab->probs, sizeof(probs)) == 0);
        CHECK(same_str(&back.annotator, &lab->annotator));
        CHECK(same_str(&back.model, &lab->model));
        CHECK(back.has_ts == lab->has_ts);
        CHECK(!lab->has_ts || memcmp(&back.ts, &lab->ts, sizeof(double)) == 0);
        msgpack_sbuffer_destroy(&sb);
out:
        free(id);
        free(annotator);
        free(model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        double probs[K];
        struct msg_label lab = {.probs = probs}, only_id = {0};
        struct msg_error err;
        int rc, rc_id;

        rc = msg_decode(decoder(), data, size, &lab, &err);
        if (rc < 0) {
                check_error(rc, &err, size);
        } else {
                check_inside(&lab.id, data, size);
                check_inside(&lab.annotator, data, size);
                check_inside(&lab.model, data, size);
                check_round_trip(&lab);
        }

        rc_id = msg_decode_id(decoder(), data, size, &only_id, &err);
        if (rc_id < 0)
                check_error(rc_id, &err, size);
        if (rc == 0) {
                CHECK(rc_id == 0);
                CHECK(only_id.id_kind == lab.id_kind);
                CHECK(only_id.id_int == lab.id_int);
                CHECK(only_id.id.ptr == lab.id.ptr);
        }
        check_same_as_reference(data, size);
        return 0;
}
