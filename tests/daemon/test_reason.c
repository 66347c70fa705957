/*
 * test_reason.c - daemon/cfd_reason.h: the confidentd-reason text of a
 * dead letter, which operators read and alert on, word for word.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cfd_reason.h"

static struct cl_params params_k(unsigned k)
{
        struct cl_params par;

        cl_params_init(&par, k);
        return par;
}

static void test_decode_names_field_and_byte(void **unused)
{
        struct msg_error merr = {.offset = 17};
        char buf[256];

        (void)unused;
        strcpy(merr.field, "pred_probs");
        strcpy(merr.msg, "expected an array of 10 numbers, got a string");
        assert_string_equal(cfd_reason_decode(buf, sizeof(buf), &merr),
                            "pred_probs: expected an array of 10 numbers, "
                            "got a string (byte 17)");
}

static void test_decode_without_field(void **unused)
{
        struct msg_error merr = {.offset = 0};
        char buf[256];

        (void)unused;
        strcpy(merr.msg, "not a msgpack map");
        assert_string_equal(cfd_reason_decode(buf, sizeof(buf), &merr),
                            "not a msgpack map (byte 0)");
}

static void test_row_label_range(void **unused)
{
        struct cl_params par = params_k(10);
        double p[10] = {0};
        char buf[256];

        (void)unused;
        assert_string_equal(cfd_reason_row(buf, sizeof(buf),
                                           CL_E_LABEL_RANGE, -1, 0, p, &par),
                            "label: -1 is outside 0..9");
        assert_string_equal(cfd_reason_row(buf, sizeof(buf),
                                           CL_E_LABEL_RANGE, INT64_MAX, 0, p,
                                           &par),
                            "label: 9223372036854775807 is outside 0..9");
}

static void test_row_value_shown_as_received(void **unused)
{
        struct cl_params par = params_k(3);
        double p[3] = {0.5, NAN, 1.0000001};
        char buf[256];

        (void)unused;
        assert_string_equal(cfd_reason_row(buf, sizeof(buf), CL_E_NONFINITE,
                                           0, 1, p, &par),
                            "pred_probs[1]: nan is not finite");
        /* All 17 digits: "%g" would print 1 and contradict itself. */
        assert_string_equal(cfd_reason_row(buf, sizeof(buf), CL_E_RANGE, 0,
                                           2, p, &par),
                            "pred_probs[2]: 1.0000001000000001 is outside "
                            "[0, 1]");
}

static void test_row_sum(void **unused)
{
        struct cl_params par = params_k(2);
        double p[2] = {0.25, 0.5};
        char buf[256];

        (void)unused;
        assert_string_equal(cfd_reason_row(buf, sizeof(buf), CL_E_ROW_SUM, 0,
                                           0, p, &par),
                            "pred_probs: values sum to 0.75, not 1 within "
                            "0.001");
}

static void test_row_other_code_uses_strerror(void **unused)
{
        struct cl_params par = params_k(2);
        double p[2] = {0.5, 0.5};
        char buf[256];

        (void)unused;
        assert_string_equal(cfd_reason_row(buf, sizeof(buf), CL_E_NOMEM, 0,
                                           0, p, &par),
                            cl_strerror(CL_E_NOMEM));
}

static void test_cut_to_fit(void **unused)
{
        struct cl_params par = params_k(10);
        struct msg_error merr = {.offset = 123};
        double p[10] = {0};
        char buf[8];

        (void)unused;
        strcpy(merr.field, "annotator");
        strcpy(merr.msg, "longer than 255 bytes");
        assert_string_equal(cfd_reason_decode(buf, sizeof(buf), &merr),
                            "annotat");
        assert_string_equal(cfd_reason_row(buf, sizeof(buf),
                                           CL_E_LABEL_RANGE, 12, 0, p, &par),
                            "label: ");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_decode_names_field_and_byte),
                cmocka_unit_test(test_decode_without_field),
                cmocka_unit_test(test_row_label_range),
                cmocka_unit_test(test_row_value_shown_as_received),
                cmocka_unit_test(test_row_sum),
                cmocka_unit_test(test_row_other_code_uses_strerror),
                cmocka_unit_test(test_cut_to_fit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
