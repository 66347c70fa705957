/*
 * test_msg.c - the msgpack label message: decode, decode_id, encode.
 * Messages are built with msgpack_packer, so each test shows its fields.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>

#include <cmocka.h>
#include <msgpack.h>

#include "msg.h"

#define K 10

static const char *const class_names[K] = {
        "airplane", "automobile", "bird",  "cat",  "deer",
        "dog",      "frog",       "horse", "ship", "truck",
};

static const double probs_ok[K] = {0.01, 0.02, 0.03, 0.04, 0.05,
                                   0.06, 0.07, 0.08, 0.09, 0.55};

struct fixture {
        struct msg_decoder *dec;       /* with class names */
        struct msg_decoder *dec_plain; /* integers only */
        msgpack_sbuffer sb;
        msgpack_packer pk;
        double probs[K];
        struct msg_label lab;
        struct msg_error err;
};

static int setup(void **state)
{
        struct msg_schema named = {K, class_names};
        struct msg_schema plain = {K, NULL};
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        if (msg_decoder_new(&named, &f->dec) != 0 ||
            msg_decoder_new(&plain, &f->dec_plain) != 0)
                return -1;
        msgpack_sbuffer_init(&f->sb);
        msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
        f->lab.probs = f->probs;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        msgpack_sbuffer_destroy(&f->sb);
        msg_decoder_free(f->dec);
        msg_decoder_free(f->dec_plain);
        free(f);
        return 0;
}

static int decode(struct fixture *f)
{
        return msg_decode(f->dec, f->sb.data, f->sb.size, &f->lab, &f->err);
}

/* Asserts the failure of the last decode: code, field and message. */
static void assert_error(const struct fixture *f, int rc, int code,
                         const char *field, const char *msg)
{
        assert_int_equal(rc, code);
        assert_int_equal(f->err.code, code);
        assert_string_equal(f->err.field, field);
        if (msg)
                assert_string_equal(f->err.msg, msg);
}

/* --- message building ---------------------------------------------- */

static void put_str(msgpack_packer *pk, const char *s)
{
        msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void put_probs(msgpack_packer *pk, unsigned n)
{
        msgpack_pack_array(pk, n);
        for (unsigned i = 0; i < n; i++)
                msgpack_pack_double(pk, probs_ok[i % K]);
}

/* Packs a map header of pairs entries, then "id": id, "label": label and
 * the key "pred_probs"; the caller packs its value and pairs - 3 more. */
static void put_head(struct fixture *f, size_t pairs, int64_t id,
                     int64_t label)
{
        msgpack_pack_map(&f->pk, pairs);
        put_str(&f->pk, "id");
        msgpack_pack_int64(&f->pk, id);
        put_str(&f->pk, "label");
        msgpack_pack_int64(&f->pk, label);
        put_str(&f->pk, "pred_probs");
}

/* {"id": id, "label": label, "pred_probs": probs_ok} */
static void put_ints(struct fixture *f, int64_t id, int64_t label)
{
        put_head(f, 3, id, label);
        put_probs(&f->pk, K);
}

/* {"id": 1, "label": name (len bytes), "pred_probs": probs_ok} */
static void put_named(struct fixture *f, const char *name, size_t len)
{
        msgpack_pack_map(&f->pk, 3);
        put_str(&f->pk, "id");
        msgpack_pack_int64(&f->pk, 1);
        put_str(&f->pk, "label");
        msgpack_pack_str_with_body(&f->pk, name, len);
        put_str(&f->pk, "pred_probs");
        put_probs(&f->pk, K);
}

/* "id": 7, "label": 3 and "pred_probs": probs_ok after a map header of
 * pairs entries; the caller packs the remaining pairs - 3. */
static void put_valid_start(struct fixture *f, size_t pairs)
{
        put_head(f, pairs, 7, 3);
        put_probs(&f->pk, K);
}

/* A message with id, label and pred_probs, the value of one of them (key)
 * packed by put_value instead. */
static void put_with_value(struct fixture *f, const char *key,
                           void (*put_value)(msgpack_packer *))
{
        static const char *const keys[] = {"id", "label", "pred_probs"};

        msgpack_pack_map(&f->pk, 3);
        for (size_t i = 0; i < 3; i++) {
                put_str(&f->pk, keys[i]);
                if (strcmp(keys[i], key) == 0)
                        put_value(&f->pk);
                else if (i == 0)
                        msgpack_pack_int64(&f->pk, 7);
                else if (i == 1)
                        msgpack_pack_int64(&f->pk, 3);
                else
                        put_probs(&f->pk, K);
        }
}

/* --- msg_decoder_new ------------------------------------------------ */

static void test_msg_decoder_new_rejects_bad_schema(void **state)
{
        const char *const with_null[3] = {"a", NULL, "c"};
        const char *const with_empty[3] = {"a", "", "c"};
        const char *const with_repeat[3] = {"cat", "dog", "cat"};
        struct msg_schema one = {1, NULL};
        struct msg_schema s = {3, NULL};
        struct msg_decoder *dec = NULL;

        (void)state;
        assert_int_equal(msg_decoder_new(&one, &dec), MSG_E_PARAM);
        assert_int_equal(msg_decoder_new(NULL, &dec), MSG_E_PARAM);
        s.class_names = with_null;
        assert_int_equal(msg_decoder_new(&s, &dec), MSG_E_PARAM);
        s.class_names = with_empty;
        assert_int_equal(msg_decoder_new(&s, &dec), MSG_E_PARAM);
        s.class_names = with_repeat;
        assert_int_equal(msg_decoder_new(&s, &dec), MSG_E_PARAM);
        assert_null(dec);
        msg_decoder_free(NULL);
}

static void test_msg_decoder_new_copies_names(void **state)
{
        struct fixture *f = *state;
        char names[2][8] = {"left", "right"};
        const char *const ptrs[2] = {names[0], names[1]};
        struct msg_schema s = {2, ptrs};
        struct msg_decoder *dec;
        double probs[2];
        struct msg_label lab = {.probs = probs};

        assert_int_equal(msg_decoder_new(&s, &dec), 0);
        memset(names, 'x', sizeof(names));
        msgpack_pack_map(&f->pk, 3);
        put_str(&f->pk, "id");
        msgpack_pack_int64(&f->pk, 1);
        put_str(&f->pk, "label");
        put_str(&f->pk, "right");
        put_str(&f->pk, "pred_probs");
        put_probs(&f->pk, 2);
        assert_int_equal(msg_decode(dec, f->sb.data, f->sb.size, &lab, NULL),
                         0);
        assert_int_equal(lab.label, 1);
        msg_decoder_free(dec);
}

/* --- valid messages ------------------------------------------------- */

static void test_msg_decode_int_id_int_label_float64_probs(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 3);
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.id_kind, MSG_ID_INT);
        assert_int_equal(f->lab.id_int, 7);
        assert_null(f->lab.id.ptr);
        assert_int_equal(f->lab.label, 3);
        assert_ptr_equal(f->lab.probs, f->probs);
        for (int i = 0; i < K; i++)
                assert_true(f->probs[i] == probs_ok[i]);
        assert_null(f->lab.annotator.ptr);
        assert_null(f->lab.model.ptr);
        assert_false(f->lab.has_ts);
}

static void test_msg_decode_string_id_and_label_name(void **state)
{
        struct fixture *f = *state;

        msgpack_pack_map(&f->pk, 3);
        put_str(&f->pk, "pred_probs"); /* key order does not matter */
        put_probs(&f->pk, K);
        put_str(&f->pk, "label");
        put_str(&f->pk, "truck");
        put_str(&f->pk, "id");
        put_str(&f->pk, "img-000123");
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.id_kind, MSG_ID_STR);
        assert_int_equal(f->lab.id.len, 10);
        assert_memory_equal(f->lab.id.ptr, "img-000123", 10);
        /* the string is borrowed from the message buffer */
        assert_true(f->lab.id.ptr > f->sb.data &&
                    f->lab.id.ptr < f->sb.data + f->sb.size);
        assert_int_equal(f->lab.label, 9);
}

static void test_msg_decode_every_class_name(void **state)
{
        struct fixture *f = *state;

        for (int c = 0; c < K; c++) {
                f->sb.size = 0;
                put_named(f, class_names[c], strlen(class_names[c]));
                assert_int_equal(decode(f), 0);
                assert_int_equal(f->lab.label, c);
        }
}

static void test_msg_decode_negative_and_large_ids(void **state)
{
        static const int64_t ids[] = {-1, INT64_MIN, INT64_MAX, 0};
        struct fixture *f = *state;

        for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
                f->sb.size = 0;
                put_ints(f, ids[i], 0);
                assert_int_equal(decode(f), 0);
                assert_int_equal(f->lab.id_kind, MSG_ID_INT);
                assert_true(f->lab.id_int == ids[i]);
        }
}

static void test_msg_decode_mixed_number_probs(void **state)
{
        struct fixture *f = *state;

        put_head(f, 3, 1, 0);
        msgpack_pack_array(&f->pk, K);
        msgpack_pack_float(&f->pk, 0.1f);
        msgpack_pack_double(&f->pk, 0.2);
        msgpack_pack_int64(&f->pk, 1);
        msgpack_pack_int64(&f->pk, 0);
        msgpack_pack_int64(&f->pk, -3);
        msgpack_pack_uint64(&f->pk, UINT64_MAX);
        msgpack_pack_float(&f->pk, -0.5f);
        msgpack_pack_double(&f->pk, 1e-300);
        msgpack_pack_int8(&f->pk, -128);
        msgpack_pack_uint16(&f->pk, 65535);
        assert_int_equal(decode(f), 0);
        assert_true(f->probs[0] == (double)0.1f);
        assert_true(f->probs[1] == 0.2);
        assert_true(f->probs[2] == 1.0);
        assert_true(f->probs[3] == 0.0);
        assert_true(f->probs[4] == -3.0);
        assert_true(f->probs[5] == (double)UINT64_MAX);
        assert_true(f->probs[6] == -0.5);
        assert_true(f->probs[7] == 1e-300);
        assert_true(f->probs[8] == -128.0);
        assert_true(f->probs[9] == 65535.0);
}

static void test_msg_decode_optional_fields(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 6);
        put_str(&f->pk, "annotator");
        put_str(&f->pk, "rater-17");
        put_str(&f->pk, "model");
        put_str(&f->pk, "resnet-110");
        put_str(&f->pk, "ts");
        msgpack_pack_double(&f->pk, 1700000000.25);
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.annotator.len, 8);
        assert_memory_equal(f->lab.annotator.ptr, "rater-17", 8);
        assert_int_equal(f->lab.model.len, 10);
        assert_memory_equal(f->lab.model.ptr, "resnet-110", 10);
        assert_true(f->lab.has_ts);
        assert_true(f->lab.ts == 1700000000.25);
}

static void test_msg_decode_integer_ts(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 4);
        put_str(&f->pk, "ts");
        msgpack_pack_uint32(&f->pk, 1700000000u);
        assert_int_equal(decode(f), 0);
        assert_true(f->lab.has_ts);
        assert_true(f->lab.ts == 1700000000.0);
}

static void test_msg_decode_resets_absent_optional_fields(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 5);
        put_str(&f->pk, "annotator");
        put_str(&f->pk, "a");
        put_str(&f->pk, "ts");
        msgpack_pack_int64(&f->pk, 5);
        assert_int_equal(decode(f), 0);
        assert_true(f->lab.has_ts);

        f->sb.size = 0;
        put_valid_start(f, 3);
        assert_int_equal(decode(f), 0);
        assert_null(f->lab.annotator.ptr);
        assert_int_equal(f->lab.annotator.len, 0);
        assert_false(f->lab.has_ts);
}

static void test_msg_decode_nan_and_infinity_pass_through(void **state)
{
        struct fixture *f = *state;

        put_head(f, 3, 1, 0);
        msgpack_pack_array(&f->pk, K);
        msgpack_pack_double(&f->pk, NAN);
        msgpack_pack_float(&f->pk, NAN);
        msgpack_pack_double(&f->pk, INFINITY);
        msgpack_pack_double(&f->pk, -INFINITY);
        for (int i = 4; i < K; i++)
                msgpack_pack_double(&f->pk, 0.0);
        assert_int_equal(decode(f), 0);
        assert_true(isnan(f->probs[0]));
        assert_true(isnan(f->probs[1]));
        assert_true(isinf(f->probs[2]) && f->probs[2] > 0);
        assert_true(isinf(f->probs[3]) && f->probs[3] < 0);
}

static void put_nested_extra(msgpack_packer *pk)
{
        msgpack_pack_map(pk, 2);
        put_str(pk, "id"); /* a known name inside an extra: not a field */
        msgpack_pack_array(pk, 2);
        msgpack_pack_nil(pk);
        msgpack_pack_map(pk, 1);
        msgpack_pack_int64(pk, 1); /* non-string keys are fine in extras */
        msgpack_pack_true(pk);
        put_str(pk, "blob");
        msgpack_pack_bin_with_body(pk, "\x00\x01\x02", 3);
}

static void test_msg_decode_ignores_extra_keys(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 8);
        put_str(&f->pk, "source");
        put_nested_extra(&f->pk);
        put_str(&f->pk, "tags");
        msgpack_pack_array(&f->pk, 3);
        put_str(&f->pk, "a");
        msgpack_pack_array(&f->pk, 0);
        msgpack_pack_map(&f->pk, 0);
        put_str(&f->pk, "when");
        msgpack_pack_ext_with_body(&f->pk, "\x00\x00\x00\x01", 4, -1);
        put_str(&f->pk, "weight");
        msgpack_pack_nil(&f->pk);
        put_str(&f->pk, "weight"); /* repeated extra keys are not checked */
        msgpack_pack_false(&f->pk);
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.id_int, 7);
        assert_int_equal(f->lab.label, 3);
}

static void test_msg_decode_accepts_32_levels_of_nesting(void **state)
{
        struct fixture *f = *state;

        put_valid_start(f, 4);
        put_str(&f->pk, "deep");
        for (int i = 0; i < 31; i++) /* 31 arrays inside the top map */
                msgpack_pack_array(&f->pk, 1);
        msgpack_pack_nil(&f->pk);
        assert_int_equal(decode(f), 0);
}

static void test_msg_decode_reuses_decoder(void **state)
{
        struct fixture *f = *state;

        /* A message larger than the first zone chunk, then small ones. */
        put_valid_start(f, 4);
        put_str(&f->pk, "big");
        msgpack_pack_array(&f->pk, 5000);
        for (int i = 0; i < 5000; i++)
                msgpack_pack_int64(&f->pk, i);
        assert_int_equal(decode(f), 0);
        for (int round = 0; round < 100; round++) {
                f->sb.size = 0;
                put_valid_start(f, 3);
                assert_int_equal(decode(f), 0);
                assert_int_equal(f->lab.label, 3);
        }
}

/* --- parse errors --------------------------------------------------- */

static void test_msg_decode_truncated_at_every_byte(void **state)
{
        struct fixture *f = *state;
        struct msg_label before;
        size_t full;

        put_valid_start(f, 6);
        put_str(&f->pk, "annotator");
        put_str(&f->pk, "rater-17");
        put_str(&f->pk, "model");
        put_str(&f->pk, "m");
        put_str(&f->pk, "ts");
        msgpack_pack_double(&f->pk, 1.5);
        full = f->sb.size;
        memset(&before, 0xa5, sizeof(before));
        before.probs = f->probs;
        for (size_t cut = 0; cut < full; cut++) {
                f->lab = before;
                assert_int_equal(msg_decode(f->dec, f->sb.data, cut, &f->lab,
                                            &f->err),
                                 MSG_E_PARSE);
                assert_int_equal(f->err.code, MSG_E_PARSE);
                assert_true(f->err.offset <= cut);
                assert_memory_equal(&f->lab, &before, sizeof(before));
        }
        assert_int_equal(msg_decode(f->dec, f->sb.data, full, &f->lab, NULL),
                         0);
}

static void test_msg_decode_truncated_reports_offsets(void **state)
{
        struct fixture *f = *state;
        char want[128];
        size_t full;
        int rc;

        put_valid_start(f, 4);
        put_str(&f->pk, "ts");
        msgpack_pack_double(&f->pk, 1.5); /* 9 bytes, last in the message */
        full = f->sb.size;
        rc = msg_decode(f->dec, f->sb.data, full - 1, &f->lab, &f->err);
        snprintf(want, sizeof(want),
                 "message truncated: the value at offset %zu needs 9 bytes, "
                 "8 remain",
                 full - 9);
        assert_error(f, rc, MSG_E_PARSE, "", want);
        assert_int_equal(f->err.offset, full - 9);

        rc = msg_decode(f->dec, f->sb.data, 0, &f->lab, &f->err);
        assert_error(f, rc, MSG_E_PARSE, "", "empty message");
        assert_int_equal(f->err.offset, 0);
}

static void test_msg_decode_rejects_huge_container_header(void **state)
{
        struct fixture *f = *state;
        /* {"x": array32 of 2^32 - 1 elements}: 9 bytes that would ask
         * msgpack_unpack() for about 100 GB of objects. */
        static const unsigned char msg[] = {0x81, 0xa1, 'x', 0xdd,
                                            0xff, 0xff, 0xff, 0xff};
        int rc;

        rc = msg_decode(f->dec, msg, sizeof(msg), &f->lab, &f->err);
        assert_error(f, rc, MSG_E_PARSE, "",
                     "message truncated: the array at offset 3 has "
                     "4294967295 elements, 0 bytes follow");
        assert_int_equal(f->err.offset, 3);
}

static void test_msg_decode_rejects_reserved_byte(void **state)
{
        struct fixture *f = *state;
        static const unsigned char msg[] = {0x81, 0xa1, 'x', 0xc1};
        int rc;

        rc = msg_decode(f->dec, msg, sizeof(msg), &f->lab, &f->err);
        assert_error(f, rc, MSG_E_PARSE, "",
                     "not msgpack: reserved byte 0xc1 at offset 3");
        assert_int_equal(f->err.offset, 3);
}

static void test_msg_decode_rejects_json(void **state)
{
        struct fixture *f = *state;
        static const char json[] =
                "{\"id\": 1, \"label\": 2, \"pred_probs\": [0.5, 0.5]}";
        int rc;

        rc = msg_decode(f->dec, json, strlen(json), &f->lab, &f->err);
        assert_error(f, rc, MSG_E_PARSE, "",
                     "not msgpack: starts with '{', JSON perhaps");
        assert_int_equal(f->err.offset, 0);
}

static void test_msg_decode_rejects_trailing_bytes(void **state)
{
        struct fixture *f = *state;
        size_t full;
        int rc;

        put_valid_start(f, 3);
        full = f->sb.size;
        msgpack_pack_nil(&f->pk);
        rc = decode(f);
        assert_error(f, rc, MSG_E_PARSE, "", NULL);
        assert_int_equal(f->err.offset, full);
}

static void test_msg_decode_rejects_deep_nesting(void **state)
{
        struct fixture *f = *state;
        size_t at;
        int rc;

        put_valid_start(f, 4);
        put_str(&f->pk, "deep");
        for (int i = 0; i < 31; i++)
                msgpack_pack_array(&f->pk, 1);
        at = f->sb.size;
        msgpack_pack_array(&f->pk, 1); /* the 33rd open container */
        msgpack_pack_nil(&f->pk);
        rc = decode(f);
        assert_error(f, rc, MSG_E_PARSE, "", NULL);
        assert_int_equal(f->err.offset, at);
}

/* --- type errors ---------------------------------------------------- */

static void test_msg_decode_rejects_non_map(void **state)
{
        struct fixture *f = *state;
        int rc;

        msgpack_pack_array(&f->pk, 1);
        msgpack_pack_int64(&f->pk, 1);
        rc = decode(f);
        assert_error(f, rc, MSG_E_TYPE, "",
                     "expected a map at the top level, got array");
        assert_int_equal(f->err.offset, 0);
}

static void test_msg_decode_rejects_non_string_key(void **state)
{
        struct fixture *f = *state;
        size_t at;
        int rc;

        put_valid_start(f, 4);
        at = f->sb.size;
        msgpack_pack_int64(&f->pk, 5);
        msgpack_pack_int64(&f->pk, 6);
        rc = decode(f);
        assert_error(f, rc, MSG_E_TYPE, "",
                     "expected a string key, got integer");
        assert_int_equal(f->err.offset, at);
}

static void put_float(msgpack_packer *pk)
{
        msgpack_pack_double(pk, 2.5);
}

static void put_integral_float(msgpack_packer *pk)
{
        msgpack_pack_double(pk, 3.0);
}

static void put_integral_float32(msgpack_packer *pk)
{
        msgpack_pack_float(pk, 3.0f);
}

static void put_nil(msgpack_packer *pk)
{
        msgpack_pack_nil(pk);
}

static void put_true(msgpack_packer *pk)
{
        msgpack_pack_true(pk);
}

static void put_array_of_one(msgpack_packer *pk)
{
        msgpack_pack_array(pk, 1);
        msgpack_pack_int64(pk, 1);
}

static void put_bin(msgpack_packer *pk)
{
        msgpack_pack_bin_with_body(pk, "ab", 2);
}

static void put_map_of_probs(msgpack_packer *pk)
{
        msgpack_pack_map(pk, 1);
        put_str(pk, "p");
        put_probs(pk, K);
}

static void put_probs_with_string(msgpack_packer *pk)
{
        msgpack_pack_array(pk, K);
        for (int i = 0; i < K; i++) {
                if (i == 3)
                        put_str(pk, "0.4");
                else
                        msgpack_pack_double(pk, 0.1);
        }
}

static void put_probs_with_nil(msgpack_packer *pk)
{
        msgpack_pack_array(pk, K);
        for (int i = 0; i < K - 1; i++)
                msgpack_pack_double(pk, 0.1);
        msgpack_pack_nil(pk);
}

static void test_msg_decode_rejects_wrong_required_types(void **state)
{
        static const struct {
                const char *key;
                void (*put)(msgpack_packer *);
                const char *field, *msg;
        } cases[] = {
                {"id", put_float, "id",
                 "expected an integer or a string, got float64"},
                {"id", put_nil, "id",
                 "expected an integer or a string, got nil"},
                {"id", put_array_of_one, "id",
                 "expected an integer or a string, got array"},
                {"id", put_bin, "id",
                 "expected an integer or a string, got bin"},
                {"label", put_integral_float, "label",
                 "expected an integer class index or a class name, "
                 "got float64"},
                {"label", put_integral_float32, "label",
                 "expected an integer class index or a class name, "
                 "got float32"},
                {"label", put_true, "label",
                 "expected an integer class index or a class name, "
                 "got boolean"},
                {"pred_probs", put_map_of_probs, "pred_probs",
                 "expected an array, got map"},
                {"pred_probs", put_float, "pred_probs",
                 "expected an array, got float64"},
                {"pred_probs", put_probs_with_string, "pred_probs[3]",
                 "expected a number, got string"},
                {"pred_probs", put_probs_with_nil, "pred_probs[9]",
                 "expected a number, got nil"},
        };
        struct fixture *f = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int rc;

                f->sb.size = 0;
                put_with_value(f, cases[i].key, cases[i].put);
                rc = decode(f);
                assert_error(f, rc, MSG_E_TYPE, cases[i].field,
                             cases[i].msg);
                assert_true(f->err.offset < f->sb.size);
        }
}

static void test_msg_decode_rejects_wrong_optional_types(void **state)
{
        static const struct {
                const char *key;
                void (*put)(msgpack_packer *);
                const char *msg;
        } cases[] = {
                {"annotator", put_float, "expected a string, got float64"},
                {"annotator", put_nil, "expected a string, got nil"},
                {"model", put_bin, "expected a string, got bin"},
                {"ts", put_true, "expected a number, got boolean"},
                {"ts", put_array_of_one, "expected a number, got array"},
        };
        struct fixture *f = *state;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                size_t at;
                int rc;

                f->sb.size = 0;
                put_valid_start(f, 4);
                put_str(&f->pk, cases[i].key);
                at = f->sb.size;
                cases[i].put(&f->pk);
                rc = decode(f);
                assert_error(f, rc, MSG_E_TYPE, cases[i].key, cases[i].msg);
                assert_int_equal(f->err.offset, at);
        }
}

static void test_msg_decode_type_error_names_element_offset(void **state)
{
        struct fixture *f = *state;
        int rc;

        put_with_value(f, "pred_probs", put_probs_with_string);
        rc = decode(f);
        assert_error(f, rc, MSG_E_TYPE, "pred_probs[3]", NULL);
        /* map 1 + "id" 3 + 7 1 + "label" 6 + 3 1 + "pred_probs" 11 +
         * array header 1 = 24; then three float64 of 9 bytes */
        assert_int_equal(f->err.offset, 24 + 3 * 9);
}

/* --- missing, duplicate, width, label ------------------------------- */

static void test_msg_decode_rejects_missing_fields(void **state)
{
        static const char *const keys[] = {"id", "label", "pred_probs"};
        struct fixture *f = *state;

        for (size_t skip = 0; skip < 3; skip++) {
                char want[64];
                int rc;

                f->sb.size = 0;
                msgpack_pack_map(&f->pk, 3);
                for (size_t i = 0; i < 3; i++) {
                        if (i == skip) {
                                put_str(&f->pk, "other");
                                msgpack_pack_nil(&f->pk);
                                continue;
                        }
                        put_str(&f->pk, keys[i]);
                        if (i < 2)
                                msgpack_pack_int64(&f->pk, 1);
                        else
                                put_probs(&f->pk, K);
                }
                rc = decode(f);
                snprintf(want, sizeof(want), "required field '%s' is missing",
                         keys[skip]);
                assert_error(f, rc, MSG_E_MISSING, keys[skip], want);
                assert_int_equal(f->err.offset, f->sb.size);
        }
}

static void test_msg_decode_rejects_empty_map(void **state)
{
        struct fixture *f = *state;
        int rc;

        msgpack_pack_map(&f->pk, 0);
        rc = decode(f);
        assert_error(f, rc, MSG_E_MISSING, "id",
                     "required field 'id' is missing");
}

static void test_msg_decode_rejects_duplicate_key(void **state)
{
        struct fixture *f = *state;
        size_t at;
        int rc;

        put_valid_start(f, 4);
        at = f->sb.size;
        put_str(&f->pk, "label");
        msgpack_pack_int64(&f->pk, 4);
        rc = decode(f);
        /* the first "label" key is at 1 + 3 + 1 = 5 */
        assert_error(f, rc, MSG_E_DUPLICATE, "label",
                     "duplicate key 'label', first at offset 5");
        assert_int_equal(f->err.offset, at);
}

static void test_msg_decode_rejects_duplicate_optional_key(void **state)
{
        struct fixture *f = *state;
        int rc;

        put_valid_start(f, 5);
        put_str(&f->pk, "ts");
        msgpack_pack_int64(&f->pk, 1);
        put_str(&f->pk, "ts");
        msgpack_pack_int64(&f->pk, 2);
        rc = decode(f);
        assert_error(f, rc, MSG_E_DUPLICATE, "ts", NULL);
}

static void test_msg_decode_rejects_wrong_width(void **state)
{
        static const unsigned widths[] = {0, 1, K - 1, K + 1, 300};
        struct fixture *f = *state;

        for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++) {
                char want[64];
                int rc;

                f->sb.size = 0;
                put_head(f, 3, 1, 1);
                put_probs(&f->pk, widths[i]);
                rc = decode(f);
                snprintf(want, sizeof(want),
                         "pred_probs has %u values, expected 10", widths[i]);
                assert_error(f, rc, MSG_E_WIDTH, "pred_probs", want);
                assert_int_equal(f->err.offset, 23);
        }
}

static void test_msg_decode_rejects_unknown_label_name(void **state)
{
        struct fixture *f = *state;
        int rc;

        put_named(f, "Cat", 3); /* names are case-sensitive */
        rc = decode(f);
        assert_error(f, rc, MSG_E_LABEL, "label", "unknown class name 'Cat'");
        assert_int_equal(f->err.offset, 11);

        rc = msg_decode(f->dec_plain, f->sb.data, f->sb.size, &f->lab,
                        &f->err);
        assert_error(f, rc, MSG_E_LABEL, "label",
                     "class name 'Cat' given, but the schema has no class "
                     "names");
}

static void test_msg_decode_quotes_unprintable_label_name(void **state)
{
        struct fixture *f = *state;
        char name[100];
        int rc;

        memset(name, 'z', sizeof(name));
        name[0] = '\n';
        put_named(f, name, sizeof(name));
        rc = decode(f);
        assert_error(f, rc, MSG_E_LABEL, "label",
                     "unknown class name '?zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                     "zzzzzzzzzzzz...'");
}

static void put_uint64_max(msgpack_packer *pk)
{
        msgpack_pack_uint64(pk, UINT64_MAX);
}

static void put_int64_max_plus_one(msgpack_packer *pk)
{
        msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1);
}

static void test_msg_decode_rejects_label_above_int64(void **state)
{
        struct fixture *f = *state;
        int rc;

        put_with_value(f, "label", put_uint64_max);
        rc = decode(f);
        assert_error(f, rc, MSG_E_LABEL, "label",
                     "label 18446744073709551615 is above the int64 range");
}

static void test_msg_decode_passes_out_of_range_label(void **state)
{
        static const int64_t labels[] = {-1, K, INT64_MIN, INT64_MAX};
        struct fixture *f = *state;

        /* The range against K is core's check: these decode as sent. */
        for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++) {
                f->sb.size = 0;
                put_ints(f, 1, labels[i]);
                assert_int_equal(decode(f), 0);
                assert_true(f->lab.label == labels[i]);
        }
}

static void test_msg_decode_rejects_id_above_int64(void **state)
{
        struct fixture *f = *state;
        int rc;

        put_with_value(f, "id", put_int64_max_plus_one);
        rc = decode(f);
        assert_error(f, rc, MSG_E_TYPE, "id",
                     "integer id 9223372036854775808 is above the int64 "
                     "range");
        assert_int_equal(f->err.offset, 4);
}

static void test_msg_decode_rejects_null_arguments(void **state)
{
        struct fixture *f = *state;
        struct msg_label no_probs = {0};

        put_valid_start(f, 3);
        assert_int_equal(msg_decode(NULL, f->sb.data, f->sb.size, &f->lab,
                                    &f->err),
                         MSG_E_PARAM);
        assert_int_equal(msg_decode(f->dec, NULL, 3, &f->lab, &f->err),
                         MSG_E_PARAM);
        assert_int_equal(msg_decode(f->dec, f->sb.data, f->sb.size,
                                    &no_probs, &f->err),
                         MSG_E_PARAM);
        assert_int_equal(f->err.code, MSG_E_PARAM);
        /* a Kafka tombstone: no value at all */
        assert_int_equal(msg_decode(f->dec, NULL, 0, &f->lab, &f->err),
                         MSG_E_PARSE);
        assert_string_equal(f->err.msg, "empty message");
}

/* --- msg_decode_id -------------------------------------------------- */

static void test_msg_decode_id_reads_only_the_id(void **state)
{
        struct fixture *f = *state;
        struct msg_label lab;

        /* pred_probs of the wrong width and a bad label do not matter */
        msgpack_pack_map(&f->pk, 3);
        put_str(&f->pk, "label");
        msgpack_pack_double(&f->pk, 1.0);
        put_str(&f->pk, "pred_probs");
        put_probs(&f->pk, 3);
        put_str(&f->pk, "id");
        put_str(&f->pk, "abc");
        memset(&lab, 0, sizeof(lab));
        lab.label = 42;
        assert_int_equal(msg_decode_id(f->dec, f->sb.data, f->sb.size, &lab,
                                       &f->err),
                         0);
        assert_int_equal(lab.id_kind, MSG_ID_STR);
        assert_int_equal(lab.id.len, 3);
        assert_memory_equal(lab.id.ptr, "abc", 3);
        assert_int_equal(lab.label, 42);
        assert_null(lab.probs);
}

static void test_msg_decode_id_errors(void **state)
{
        struct fixture *f = *state;
        struct msg_label lab = {0};
        int rc;

        msgpack_pack_map(&f->pk, 1);
        put_str(&f->pk, "label");
        msgpack_pack_int64(&f->pk, 1);
        rc = msg_decode_id(f->dec, f->sb.data, f->sb.size, &lab, &f->err);
        assert_error(f, rc, MSG_E_MISSING, "id", NULL);

        f->sb.size = 0;
        msgpack_pack_map(&f->pk, 2);
        put_str(&f->pk, "id");
        msgpack_pack_int64(&f->pk, 1);
        put_str(&f->pk, "id");
        msgpack_pack_int64(&f->pk, 2);
        rc = msg_decode_id(f->dec, f->sb.data, f->sb.size, &lab, &f->err);
        assert_error(f, rc, MSG_E_DUPLICATE, "id", NULL);

        f->sb.size = 0;
        msgpack_pack_map(&f->pk, 1);
        put_str(&f->pk, "id");
        msgpack_pack_double(&f->pk, 1.0);
        rc = msg_decode_id(f->dec, f->sb.data, f->sb.size, &lab, &f->err);
        assert_error(f, rc, MSG_E_TYPE, "id", NULL);

        rc = msg_decode_id(f->dec, f->sb.data, f->sb.size - 1, &lab,
                           &f->err);
        assert_error(f, rc, MSG_E_PARSE, "", NULL);
}

/* --- msg_encode_label ----------------------------------------------- */

static void test_msg_encode_label_round_trip(void **state)
{
        struct fixture *f = *state;
        struct msg_encode_args a = {
                .id_int = -12345,
                .label = 6,
                .probs = probs_ok,
                .k = K,
        };

        assert_int_equal(msg_encode_label(&f->sb, &a), 0);
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.id_kind, MSG_ID_INT);
        assert_int_equal(f->lab.id_int, -12345);
        assert_int_equal(f->lab.label, 6);
        assert_memory_equal(f->probs, probs_ok, sizeof(probs_ok));
        assert_null(f->lab.annotator.ptr);
        assert_null(f->lab.model.ptr);
        assert_false(f->lab.has_ts);
}

static void test_msg_encode_label_round_trip_all_fields(void **state)
{
        struct fixture *f = *state;
        struct msg_encode_args a = {
                .id_str = "img-42",
                .label_name = "horse",
                .probs = probs_ok,
                .k = K,
                .use_float32 = true,
                .annotator = "rater-3",
                .model = "vgg",
                .has_ts = true,
                .ts = 1700000000.5,
        };

        assert_int_equal(msg_encode_label(&f->sb, &a), 0);
        assert_int_equal(decode(f), 0);
        assert_int_equal(f->lab.id_kind, MSG_ID_STR);
        assert_memory_equal(f->lab.id.ptr, "img-42", 6);
        assert_int_equal(f->lab.label, 7);
        for (int i = 0; i < K; i++)
                assert_true(f->probs[i] == (double)(float)probs_ok[i]);
        assert_int_equal(f->lab.annotator.len, 7);
        assert_memory_equal(f->lab.annotator.ptr, "rater-3", 7);
        assert_int_equal(f->lab.model.len, 3);
        assert_true(f->lab.has_ts && f->lab.ts == 1700000000.5);
}

static void test_msg_encode_label_appends(void **state)
{
        struct fixture *f = *state;
        struct msg_encode_args a = {.id_int = 1, .probs = probs_ok, .k = K};
        size_t one;
        int rc;

        assert_int_equal(msg_encode_label(&f->sb, &a), 0);
        one = f->sb.size;
        a.id_int = 2;
        assert_int_equal(msg_encode_label(&f->sb, &a), 0);
        assert_int_equal(f->sb.size, 2 * one);
        /* two messages in one buffer are trailing bytes to the decoder */
        rc = decode(f);
        assert_error(f, rc, MSG_E_PARSE, "", NULL);
        assert_int_equal(f->err.offset, one);
        assert_int_equal(msg_decode(f->dec, f->sb.data + one, one, &f->lab,
                                    NULL),
                         0);
        assert_int_equal(f->lab.id_int, 2);
}

static void test_msg_encode_label_rejects_bad_args(void **state)
{
        struct fixture *f = *state;
        struct msg_encode_args a = {.probs = NULL, .k = K};

        assert_int_equal(msg_encode_label(&f->sb, &a), MSG_E_PARAM);
        a.probs = probs_ok;
        a.k = 0;
        assert_int_equal(msg_encode_label(&f->sb, &a), MSG_E_PARAM);
        assert_int_equal(msg_encode_label(NULL, &a), MSG_E_PARAM);
        assert_int_equal(msg_encode_label(&f->sb, NULL), MSG_E_PARAM);
        assert_int_equal(f->sb.size, 0);
}

/* --- names ---------------------------------------------------------- */

static void test_msg_err_name_covers_every_code(void **state)
{
        static const struct {
                int code;
                const char *name;
        } codes[] = {
                {MSG_OK, "MSG_OK"},
                {MSG_E_PARSE, "MSG_E_PARSE"},
                {MSG_E_TYPE, "MSG_E_TYPE"},
                {MSG_E_MISSING, "MSG_E_MISSING"},
                {MSG_E_DUPLICATE, "MSG_E_DUPLICATE"},
                {MSG_E_WIDTH, "MSG_E_WIDTH"},
                {MSG_E_LABEL, "MSG_E_LABEL"},
                {MSG_E_NOMEM, "MSG_E_NOMEM"},
                {MSG_E_PARAM, "MSG_E_PARAM"},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
                assert_string_equal(msg_err_name(codes[i].code),
                                    codes[i].name);
                assert_string_not_equal(msg_strerror(codes[i].code),
                                        "unknown error");
        }
        assert_string_equal(msg_err_name(-99), "MSG_E_UNKNOWN");
        assert_string_equal(msg_strerror(-99), "unknown error");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
                T(test_msg_decoder_new_rejects_bad_schema),
                T(test_msg_decoder_new_copies_names),
                T(test_msg_decode_int_id_int_label_float64_probs),
                T(test_msg_decode_string_id_and_label_name),
                T(test_msg_decode_every_class_name),
                T(test_msg_decode_negative_and_large_ids),
                T(test_msg_decode_mixed_number_probs),
                T(test_msg_decode_optional_fields),
                T(test_msg_decode_integer_ts),
                T(test_msg_decode_resets_absent_optional_fields),
                T(test_msg_decode_nan_and_infinity_pass_through),
                T(test_msg_decode_ignores_extra_keys),
                T(test_msg_decode_accepts_32_levels_of_nesting),
                T(test_msg_decode_reuses_decoder),
                T(test_msg_decode_truncated_at_every_byte),
                T(test_msg_decode_truncated_reports_offsets),
                T(test_msg_decode_rejects_huge_container_header),
                T(test_msg_decode_rejects_reserved_byte),
                T(test_msg_decode_rejects_json),
                T(test_msg_decode_rejects_trailing_bytes),
                T(test_msg_decode_rejects_deep_nesting),
                T(test_msg_decode_rejects_non_map),
                T(test_msg_decode_rejects_non_string_key),
                T(test_msg_decode_rejects_wrong_required_types),
                T(test_msg_decode_rejects_wrong_optional_types),
                T(test_msg_decode_type_error_names_element_offset),
                T(test_msg_decode_rejects_missing_fields),
                T(test_msg_decode_rejects_empty_map),
                T(test_msg_decode_rejects_duplicate_key),
                T(test_msg_decode_rejects_duplicate_optional_key),
                T(test_msg_decode_rejects_wrong_width),
                T(test_msg_decode_rejects_unknown_label_name),
                T(test_msg_decode_quotes_unprintable_label_name),
                T(test_msg_decode_rejects_label_above_int64),
                T(test_msg_decode_passes_out_of_range_label),
                T(test_msg_decode_rejects_id_above_int64),
                T(test_msg_decode_rejects_null_arguments),
                T(test_msg_decode_id_reads_only_the_id),
                T(test_msg_decode_id_errors),
                T(test_msg_encode_label_round_trip),
                T(test_msg_encode_label_round_trip_all_fields),
                T(test_msg_encode_label_appends),
                T(test_msg_encode_label_rejects_bad_args),
                T(test_msg_err_name_covers_every_code),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
