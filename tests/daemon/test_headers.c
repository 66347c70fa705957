/*
 * test_headers.c - daemon/cfd_headers.h: the output headers, the values
 * formatted for them without librdkafka, and the printf-free "%.6g"
 * against printf itself.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cfd_headers.h"

/* xorshift64*: a fixed stream of doubles. */
static double next_unit(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return (double)((*s * 2685821657736338717ull) >> 11) * 0x1p-53;
}

static void expect_g6(double v)
{
        char want[64], got[64];

        snprintf(want, sizeof(want), "%.6g", v);
        cfd_headers_format_g6(got, sizeof(got), v);
        if (strcmp(want, got) != 0)
                fail_msg("%.17g: printf '%s', fast '%s'", v, want, got);
}

static void test_cfd_headers_format_g6_edges(void **state)
{
        static const double v[] = {
                0.0, 1.0, 2.0, 0.5, 0.1, 1e-4, 9.99999e-5, 1e-6, 2e-6,
                0.99999949, 0.9999995, 0.99999951, 9.999995, 9.9999949,
                0.1234565, 0.12345650000000001, 0.00012345649999999999,
                1.0000005, 0.30000000000000004, 1.0 / 3.0, 2.0 / 3.0,
                0x1p-1074, -0.25, 10.0, 123.5, NAN, INFINITY,
        };

        (void)state;
        for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
                expect_g6(v[i]);
}

static void test_cfd_headers_format_g6_random(void **state)
{
        uint64_t s = 0x9e3779b97f4a7c15ull;

        (void)state;
        for (int i = 0; i < 1000000; i++) {
                double u = next_unit(&s);

                expect_g6(2.0 * u);                    /* quality, thresholds */
                expect_g6(pow(10.0, -7.0 + 8.0 * u));  /* every exponent */
                /* Just around 6-digit rounding ties. */
                expect_g6((floor(u * 1e6) + 0.5) / 1e6 +
                          (next_unit(&s) - 0.5) * 1e-15);
        }
}

static const char *header(rd_kafka_headers_t *h, const char *name)
{
        const void *value;
        size_t size;
        static char buf[512];

        if (rd_kafka_header_get_last(h, name, &value, &size))
                fail_msg("no header %s", name);
        assert_true(size < sizeof(buf));
        memcpy(buf, value, size);
        buf[size] = '\0';
        return buf;
}

static void test_cfd_headers_verdict_carries_the_contract(void **state)
{
        struct cl_verdict v = {.tag = CL_TAG_SUSPECT,
                               .given = 3,
                               .suggested = 17,
                               .quality = 0.0123456789,
                               .threshold = 0.87654321};
        const struct cfd_source src = {"labels", 12, 9876543210};
        rd_kafka_headers_t *h;

        (void)state;
        snprintf(v.reason, sizeof(v.reason), "pbnr 3->17");
        h = cfd_headers_verdict(&v, true, &src);
        assert_non_null(h);
        assert_int_equal(rd_kafka_header_cnt(h), 7);
        assert_string_equal(header(h, "confidentd-verdict"), "suspect");
        assert_string_equal(header(h, "confidentd-given"), "3");
        assert_string_equal(header(h, "confidentd-suggested"), "17");
        assert_string_equal(header(h, "confidentd-quality"), "0.0123457");
        assert_string_equal(header(h, "confidentd-threshold"), "0.876543");
        assert_string_equal(header(h, "confidentd-reason"), "pbnr 3->17");
        assert_string_equal(header(h, "confidentd-source"),
                            "labels/12/9876543210");
        rd_kafka_headers_destroy(h);
}

static void test_cfd_headers_dead_letter_and_long_topic(void **state)
{
        const struct cfd_source src = {
                "a-topic-name-of-two-hundred-and-forty-nine-characters-"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxx",
                0, 0};
        rd_kafka_headers_t *h;
        char want[320];

        (void)state;
        h = cfd_headers_dead_letter("CL_E_NONFINITE",
                                    "pred_probs[3]: nan is not finite", &src);
        assert_non_null(h);
        assert_int_equal(rd_kafka_header_cnt(h), 3);
        assert_string_equal(header(h, "confidentd-error"), "CL_E_NONFINITE");
        assert_string_equal(header(h, "confidentd-reason"),
                            "pred_probs[3]: nan is not finite");
        snprintf(want, sizeof(want), "%s/0/0", src.topic);
        assert_string_equal(header(h, "confidentd-source"), want);
        rd_kafka_headers_destroy(h);
}

/* Each value at the start of its own buffer; extremes of each field. */
static void test_cfd_headers_values_fills_every_buffer(void **state)
{
        const struct cl_verdict v = {.given = 0,
                                     .suggested = 4294967295u,
                                     .quality = 1e-5,
                                     .threshold = 1.5};
        const struct cfd_source src = {"labels", -1, -1};
        struct cfd_header_values val;

        (void)state;
        memset(&val, 'x', sizeof(val));
        cfd_headers_values(&val, &v, &src);
        assert_string_equal(val.given, "0");
        assert_string_equal(val.suggested, "4294967295");
        assert_string_equal(val.quality, "1e-05");
        assert_string_equal(val.threshold, "1.5");
        assert_string_equal(val.source, "labels/0/0");
}

/* The topic gives way first, then the end of the numbers. */
static void test_cfd_headers_format_source_cuts_to_fit(void **state)
{
        const struct cfd_source src = {"labels", 3, 42};
        char buf[16];

        (void)state;
        assert_string_equal(cfd_headers_format_source(buf, 16, &src),
                            "labels/3/42");
        assert_string_equal(cfd_headers_format_source(buf, 12, &src),
                            "labels/3/42");
        assert_string_equal(cfd_headers_format_source(buf, 8, &src),
                            "la/3/42");
        assert_string_equal(cfd_headers_format_source(buf, 4, &src), "/3/");
        assert_string_equal(cfd_headers_format_source(buf, 1, &src), "");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cfd_headers_format_g6_edges),
                cmocka_unit_test(test_cfd_headers_format_g6_random),
                cmocka_unit_test(test_cfd_headers_verdict_carries_the_contract),
                cmocka_unit_test(test_cfd_headers_dead_letter_and_long_topic),
                cmocka_unit_test(test_cfd_headers_values_fills_every_buffer),
                cmocka_unit_test(test_cfd_headers_format_source_cuts_to_fit),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
