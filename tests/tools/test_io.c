/*
 * test_io.c - tests of the .npy and CSV readers (tools/npy.h,
 * tools/csvread.h) on files the tests write themselves.
 *
 *   test_io            unit tests, in a scratch folder under the cwd
 *   test_io --data DIR shape checks on the shared data in DIR; exits 77
 *                      (skipped) when DIR lacks the files
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "csvread.h"
#include "npy.h"
#include "rng.h"
#include "tooltest.h"

#define SKIP_CODE 77

static size_t file_size(const char *path)
{
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return (size_t)st.st_size;
}

/*
 * Writes a .npy of format major.0 with the given header dict (padded to
 * 64 bytes) followed by len bytes of data.
 */
static void write_npy(const char *path, int major, const char *dict,
                      const void *data, size_t len)
{
        unsigned char buf[4096];
        size_t pre = major == 1 ? 10 : 12;
        size_t hlen = strlen(dict);
        size_t total = (pre + hlen + 1 + 63) / 64 * 64;

        assert_true(total + len <= sizeof(buf));
        memcpy(buf, "\x93NUMPY", 6);
        buf[6] = (unsigned char)major;
        buf[7] = 0;
        memset(buf + 8, 0, 4);
        buf[8] = (unsigned char)((total - pre) & 0xff);
        buf[9] = (unsigned char)((total - pre) >> 8);
        memcpy(buf + pre, dict, hlen);
        memset(buf + pre + hlen, ' ', total - pre - hlen - 1);
        buf[total - 1] = '\n';
        if (len > 0)
                memcpy(buf + total, data, len);
        tooltest_write(path, buf, total + len);
}

/* Loads path and expects failure with a message containing want. */
static void expect_npy_error(const char *path, const char *want)
{
        struct npy_array a;
        char err[256] = "";

        assert_int_equal(npy_load(path, &a, err, sizeof(err)), -1);
        assert_non_null(strstr(err, path));
        if (strstr(err, want) == NULL)
                fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* ---- npy ------------------------------------------------------------- */

static void test_npy_save_f8_roundtrip_2d(void **state)
{
        double v[6] = {0.5, -1.25, 3e300, 1e-310, 0.0, 7.0};
        struct npy_array a;
        char path[128], err[256];
        size_t r, c;

        (void)state;
        tooltest_path(path, sizeof(path), "rt2.npy");
        assert_int_equal(npy_save_f8(path, v, 2, 3, err, sizeof(err)), 0);
        assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
        assert_int_equal(a.dtype, NPY_F8);
        assert_int_equal(a.ndim, 2);
        assert_int_equal(a.rows, 2);
        assert_int_equal(a.cols, 3);
        for (r = 0; r < 2; r++)
                for (c = 0; c < 3; c++)
                        assert_memory_equal(&v[r * 3 + c], &(double){npy_get(
                                                    &a, r, c)},
                                            sizeof(double));
        npy_array_free(&a);
}

static void test_npy_save_f8_roundtrip_1d(void **state)
{
        double v[3] = {1.0, 2.0, 3.0};
        struct npy_array a;
        char path[128], err[256];

        (void)state;
        tooltest_path(path, sizeof(path), "rt1.npy");
        assert_int_equal(npy_save_f8(path, v, 3, 0, err, sizeof(err)), 0);
        assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
        assert_int_equal(a.ndim, 1);
        assert_int_equal(a.rows, 3);
        assert_int_equal(a.cols, 1);
        assert_true(npy_get(&a, 2, 0) == 3.0);
        npy_array_free(&a);
}

/* The layout numpy writes: version 1.0, data on a 64-byte boundary. */
static void test_npy_save_f8_header_layout(void **state)
{
        double v[4] = {0};
        unsigned char buf[128];
        char path[128], err[256];
        size_t hlen;
        FILE *f;

        (void)state;
        tooltest_path(path, sizeof(path), "layout.npy");
        assert_int_equal(npy_save_f8(path, v, 2, 2, err, sizeof(err)), 0);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(buf, 1, sizeof(buf), f), 128);
        fclose(f);
        assert_memory_equal(buf, "\x93NUMPY\x01\x00", 8);
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        assert_int_equal((10 + hlen) % 64, 0);
        assert_int_equal(buf[10 + hlen - 1], '\n');
        assert_int_equal(file_size(path), 10 + hlen + 4 * sizeof(double));
        assert_memory_equal(buf + 10,
                            "{'descr': '<f8', 'fortran_order': False, "
                            "'shape': (2, 2), }",
                            57);
}

static void test_npy_save_f8_unwritable_path(void **state)
{
        double v = 1.0;
        char path[128], err[256] = "";

        (void)state;
        tooltest_path(path, sizeof(path), "no/such/dir.npy");
        assert_int_equal(npy_save_f8(path, &v, 1, 0, err, sizeof(err)), -1);
        assert_non_null(strstr(err, path));
}

static void test_npy_load_all_dtypes(void **state)
{
        static const float f4[2] = {1.5f, -2.0f};
        static const int64_t i8[2] = {-5, INT64_C(1) << 40};
        static const int32_t i4[2] = {-7, 9};
        static const uint16_t u2[2] = {65535, 3};
        static const uint64_t u8[2] = {0, UINT64_C(1) << 50};
        static const struct {
                const char *descr;
                enum npy_dtype dtype;
                const void *data;
                size_t size;
                double second;
        } cases[] = {
                {"<f4", NPY_F4, f4, sizeof(f4), -2.0},
                {"<i8", NPY_I8, i8, sizeof(i8), 1099511627776.0},
                {"<i4", NPY_I4, i4, sizeof(i4), 9.0},
                {"<u2", NPY_U2, u2, sizeof(u2), 3.0},
                {"<u8", NPY_U8, u8, sizeof(u8), 1125899906842624.0},
        };
        char path[128], dict[128], err[256];
        struct npy_array a;
        size_t i;

        (void)state;
        tooltest_path(path, sizeof(path), "dtype.npy");
        for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(dict, sizeof(dict),
                         "{'descr': '%s', 'fortran_order': False, "
                         "'shape': (2,), }",
                         cases[i].descr);
                write_npy(path, 1, dict, cases[i].data, cases[i].size);
                assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
                assert_int_equal(a.dtype, cases[i].dtype);
                assert_true(npy_get(&a, 1, 0) == cases[i].second);
                npy_array_free(&a);
        }
}

static void test_npy_load_versions_2_and_3(void **state)
{
        const double v[2] = {4.0, 5.0};
        char path[128], err[256];
        struct npy_array a;
        int major;

        (void)state;
        tooltest_path(path, sizeof(path), "v2.npy");
        for (major = 2; major <= 3; major++) {
                write_npy(path, major,
                          "{'descr': '<f8', 'fortran_order': False, "
                          "'shape': (1, 2), }",
                          v, sizeof(v));
                assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
                assert_int_equal(a.rows, 1);
                assert_int_equal(a.cols, 2);
                assert_true(npy_get(&a, 0, 1) == 5.0);
                npy_array_free(&a);
        }
}

/* Keys in any order, double quotes, no trailing comma, extra blanks. */
static void test_npy_load_header_variants(void **state)
{
        const double v[2] = {4.0, 5.0};
        char path[128], err[256];
        struct npy_array a;

        (void)state;
        tooltest_path(path, sizeof(path), "variant.npy");
        write_npy(path, 1,
                  "{ \"shape\" : ( 2 , 1 ) ,\"fortran_order\":False,"
                  "'descr':'<f8'}",
                  v, sizeof(v));
        assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
        assert_int_equal(a.ndim, 2);
        assert_int_equal(a.rows, 2);
        assert_int_equal(a.cols, 1);
        npy_array_free(&a);
}

static void test_npy_load_empty_array(void **state)
{
        char path[128], err[256];
        struct npy_array a;

        (void)state;
        tooltest_path(path, sizeof(path), "empty.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 4), }",
                  NULL, 0);
        assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
        assert_int_equal(a.rows, 0);
        assert_int_equal(a.cols, 4);
        npy_array_free(&a);
}

static void test_npy_load_missing_file(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "absent.npy");
        expect_npy_error(path, "No such file");
}

static void test_npy_load_bad_magic(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "magic.npy");
        tooltest_write(path, "PK\x03\x04 not numpy at all", 22);
        expect_npy_error(path, "not a .npy file");
}

static void test_npy_load_bad_version(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "version.npy");
        tooltest_write(path, "\x93NUMPY\x04\x00\x10\x00{}", 12);
        expect_npy_error(path, "unsupported format version 4.0");
}

static void test_npy_load_header_too_long(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "long.npy");
        tooltest_write(path, "\x93NUMPY\x02\x00\x00\x00\x00\x10", 12);
        expect_npy_error(path, "header length 268435456 exceeds");
}

static void test_npy_load_unsupported_dtype(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "bigend.npy");
        write_npy(path, 1,
                  "{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }",
                  "\0\0\0\0\0\0\0\0", 8);
        expect_npy_error(path, "header at byte 20: unsupported dtype '>f8'");
}

static void test_npy_load_fortran_order_is_transposed(void **state)
{
        /* Column-major bytes of [[1, 2, 3], [4, 5, 6]]. */
        static const double col_major[6] = {1, 4, 2, 5, 3, 6};
        char path[128], err[256];
        struct npy_array a;

        (void)state;
        tooltest_path(path, sizeof(path), "fortran.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }",
                  col_major, sizeof(col_major));
        assert_int_equal(npy_load(path, &a, err, sizeof(err)), 0);
        assert_int_equal(a.rows, 2);
        assert_int_equal(a.cols, 3);
        for (size_t r = 0; r < 2; r++)
                for (size_t c = 0; c < 3; c++)
                        assert_true(npy_get(&a, r, c) ==
                                    (double)(r * 3 + c + 1));
        npy_array_free(&a);
}

static void test_npy_load_three_dims(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "3d.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, "
                  "'shape': (1, 1, 1), }",
                  "\0\0\0\0\0\0\0\0", 8);
        expect_npy_error(path, "more than 2 dimensions");
}

static void test_npy_load_zero_dims(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "0d.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
                  "\0\0\0\0\0\0\0\0", 8);
        expect_npy_error(path, "0-dimensional");
}

static void test_npy_load_missing_key(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "nokey.npy");
        write_npy(path, 1, "{'descr': '<f8', 'shape': (1,), }",
                  "\0\0\0\0\0\0\0\0", 8);
        expect_npy_error(path, "missing key 'fortran_order'");
}

static void test_npy_load_repeated_key(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "twice.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, "
                  "'shape': (1,), }",
                  "\0\0\0\0\0\0\0\0", 8);
        /* The second 'descr' starts at byte 10 + 17 of the file. */
        expect_npy_error(path, "header at byte 27: unknown or repeated key "
                               "'descr'");
}

static void test_npy_load_huge_shape(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "huge.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, "
                  "'shape': (4611686018427387904, 4), }",
                  NULL, 0);
        expect_npy_error(path, "too large");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, "
                  "'shape': (99999999999999999999999,), }",
                  NULL, 0);
        expect_npy_error(path, "dimension too large");
}

static void test_npy_load_truncated_data(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "short.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
                  "\0\0\0\0\0\0\0\0", 8);
        expect_npy_error(path, "truncated data: 8 of 16 bytes");
}

static void test_npy_load_trailing_bytes(void **state)
{
        char path[128];

        (void)state;
        tooltest_path(path, sizeof(path), "long.npy");
        write_npy(path, 1,
                  "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }",
                  "\0\0\0\0\0\0\0\0\0", 9);
        expect_npy_error(path, "unexpected bytes after 8 bytes of data");
}

/* Every proper prefix of a valid file is an error, never a crash. */
static void test_npy_load_every_prefix_fails(void **state)
{
        double v[2] = {1.0, 2.0};
        char path[128], cut[128], err[256];
        unsigned char buf[256];
        struct npy_array a;
        size_t len, n;
        FILE *f;

        (void)state;
        tooltest_path(path, sizeof(path), "whole.npy");
        tooltest_path(cut, sizeof(cut), "cut.npy");
        assert_int_equal(npy_save_f8(path, v, 2, 0, err, sizeof(err)), 0);
        f = fopen(path, "rb");
        assert_non_null(f);
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        for (n = 0; n < len; n++) {
                tooltest_write(cut, buf, n);
                assert_int_equal(npy_load(cut, &a, err, sizeof(err)), -1);
                assert_non_null(strstr(err, cut));
        }
}

/* Any single corrupted header byte gives a clean result. */
static void test_npy_load_corrupt_header_bytes(void **state)
{
        static const unsigned char subst[] = {0, '\'', '"', '(', ')', ',',
                                              ':', '{', '}', '9', 0xff};
        double v[2] = {1.0, 2.0};
        char path[128], bad[128], err[256];
        unsigned char buf[256], copy[256];
        struct npy_array a;
        size_t len, i, j;
        FILE *f;

        (void)state;
        tooltest_path(path, sizeof(path), "good.npy");
        tooltest_path(bad, sizeof(bad), "bad.npy");
        assert_int_equal(npy_save_f8(path, v, 1, 2, err, sizeof(err)), 0);
        f = fopen(path, "rb");
        assert_non_null(f);
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        for (i = 0; i < 64; i++) {
                for (j = 0; j < sizeof(subst); j++) {
                        memcpy(copy, buf, len);
                        copy[i] = subst[j];
                        tooltest_write(bad, copy, len);
                        if (npy_load(bad, &a, err, sizeof(err)) == 0)
                                npy_array_free(&a);
                        else
                                assert_non_null(strstr(err, bad));
                }
        }
}

/* ---- csv ------------------------------------------------------------- */

static struct csv_reader *open_text(const char *name, const char *text,
                                    char *path, size_t size)
{
        struct csv_reader *r;
        char err[256];

        tooltest_path(path, size, name);
        tooltest_write(path, text, strlen(text));
        r = csv_open(path, err, sizeof(err));
        if (r == NULL)
                fail_msg("csv_open: %s", err);
        return r;
}

/* Expects the next record to be fields a, b (two columns). */
static void expect_record(struct csv_reader *r, const char *a, const char *b,
                          size_t line)
{
        char err[256];

        if (csv_next(r, err, sizeof(err)) != 1)
                fail_msg("csv_next: %s", err);
        assert_string_equal(csv_field(r, 0), a);
        assert_string_equal(csv_field(r, 1), b);
        assert_null(csv_field(r, 2));
        assert_int_equal(csv_line(r), line);
}

static void expect_end(struct csv_reader *r)
{
        char err[256];

        assert_int_equal(csv_next(r, err, sizeof(err)), 0);
}

/* Expects csv_next() to fail with exactly want. */
static void expect_csv_error(struct csv_reader *r, const char *want)
{
        char err[256] = "";

        assert_int_equal(csv_next(r, err, sizeof(err)), -1);
        assert_string_equal(err, want);
}

static void test_csv_open_reads_header(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("hdr.csv", "seq,item,label,true_label\n", path,
                      sizeof(path));
        assert_int_equal(csv_columns(r), 4);
        assert_int_equal(csv_column(r, "seq"), 0);
        assert_int_equal(csv_column(r, "true_label"), 3);
        assert_int_equal(csv_column(r, "true"), -1);
        expect_end(r);
        csv_close(r);
}

static void test_csv_next_plain_records(void **state)
{
        struct csv_reader *r;
        char path[128];
        long long v;

        (void)state;
        r = open_text("plain.csv", "a,b\n1,-2\n,x\n", path, sizeof(path));
        expect_record(r, "1", "-2", 2);
        assert_int_equal(csv_parse_i64(csv_field(r, 1), &v), 0);
        assert_int_equal(v, -2);
        expect_record(r, "", "x", 3);
        expect_end(r);
        expect_end(r);
        csv_close(r);
}

static void test_csv_next_quoted_fields(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("quoted.csv",
                      "\"a\",b\n"
                      "\"x,y\",\"say \"\"hi\"\"\"\n"
                      "\"two\nlines\",\"\"\n"
                      "last,\"\r\n\"\n",
                      path, sizeof(path));
        expect_record(r, "x,y", "say \"hi\"", 2);
        expect_record(r, "two\nlines", "", 3);
        expect_record(r, "last", "\r\n", 5);
        expect_end(r);
        csv_close(r);
}

static void test_csv_next_crlf(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("crlf.csv", "a,b\r\n1,2\r\n\"3\",4\r\n", path,
                      sizeof(path));
        assert_int_equal(csv_column(r, "b"), 1);
        expect_record(r, "1", "2", 2);
        expect_record(r, "3", "4", 3);
        expect_end(r);
        csv_close(r);
}

static void test_csv_next_no_final_newline(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("nofinal.csv", "a,b\n1,2", path, sizeof(path));
        expect_record(r, "1", "2", 2);
        expect_end(r);
        csv_close(r);
}

static void test_csv_next_skips_blank_lines(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("blank.csv", "\na,b\n\n1,2\r\n\r\n3,4\n\n", path,
                      sizeof(path));
        expect_record(r, "1", "2", 4);
        expect_record(r, "3", "4", 6);
        expect_end(r);
        csv_close(r);
}

static void test_csv_open_strips_bom(void **state)
{
        struct csv_reader *r;
        char path[128];

        (void)state;
        r = open_text("bom.csv", "\xef\xbb\xbfid,label\n", path, sizeof(path));
        assert_int_equal(csv_column(r, "id"), 0);
        csv_close(r);
}

/* A field longer than the read block and than the initial buffers. */
static void test_csv_next_long_field(void **state)
{
        size_t n = 200000, i;
        struct csv_reader *r;
        char path[128];
        char *text;

        (void)state;
        text = malloc(n + 32);
        assert_non_null(text);
        strcpy(text, "a,b\n\"");
        for (i = 0; i < n; i++)
                text[5 + i] = (char)('a' + i % 26);
        strcpy(text + 5 + n, "\",z\n");
        r = open_text("longfield.csv", text, path, sizeof(path));
        text[5 + n] = '\0';
        expect_record(r, text + 5, "z", 2);
        expect_end(r);
        csv_close(r);
        free(text);
}

static void test_csv_next_field_count_error(void **state)
{
        struct csv_reader *r;
        char path[128], want[256];

        (void)state;
        r = open_text("count.csv", "a,b\n1,2\n1,2,3\n", path, sizeof(path));
        expect_record(r, "1", "2", 2);
        snprintf(want, sizeof(want), "%s:3: 3 fields, but the header has 2",
                 path);
        expect_csv_error(r, want);
        /* The reader stays failed. */
        expect_csv_error(r, want);
        csv_close(r);
}

static void test_csv_next_unterminated_quote(void **state)
{
        struct csv_reader *r;
        char path[128], want[256];

        (void)state;
        r = open_text("unterm.csv", "a,b\n1,\"open\n\nstill\n", path,
                      sizeof(path));
        snprintf(want, sizeof(want), "%s:2: unterminated quoted field", path);
        expect_csv_error(r, want);
        csv_close(r);
}

static void test_csv_next_text_after_quote(void **state)
{
        struct csv_reader *r;
        char path[128], want[256];

        (void)state;
        r = open_text("after.csv", "a,b\n1,2\n\"x\"y,2\n", path, sizeof(path));
        expect_record(r, "1", "2", 2);
        snprintf(want, sizeof(want),
                 "%s:3: unexpected character after a closing quote", path);
        expect_csv_error(r, want);
        csv_close(r);
}

static void test_csv_next_quote_in_unquoted(void **state)
{
        struct csv_reader *r;
        char path[128], want[256];

        (void)state;
        r = open_text("inner.csv", "a,b\nx\"y,2\n", path, sizeof(path));
        snprintf(want, sizeof(want), "%s:2: quote inside an unquoted field",
                 path);
        expect_csv_error(r, want);
        csv_close(r);
}

static void test_csv_next_bare_carriage_return(void **state)
{
        struct csv_reader *r;
        char path[128], want[256];

        (void)state;
        r = open_text("cr.csv", "a,b\n1,2\rx,y\n", path, sizeof(path));
        snprintf(want, sizeof(want),
                 "%s:2: carriage return not followed by a line feed", path);
        expect_csv_error(r, want);
        csv_close(r);
}

static void test_csv_next_nul_byte(void **state)
{
        static const char text[] = "a,b\n1,2\nx\0,y\n";
        char path[128], want[256], err[256];
        struct csv_reader *r;

        (void)state;
        tooltest_path(path, sizeof(path), "nul.csv");
        tooltest_write(path, text, sizeof(text) - 1);
        r = csv_open(path, err, sizeof(err));
        assert_non_null(r);
        expect_record(r, "1", "2", 2);
        snprintf(want, sizeof(want), "%s:3: NUL byte in field", path);
        expect_csv_error(r, want);
        csv_close(r);
}

static void expect_open_error(const char *name, const char *text,
                              const char *msg)
{
        char path[128], want[256], err[256] = "";

        tooltest_path(path, sizeof(path), name);
        tooltest_write(path, text, strlen(text));
        assert_null(csv_open(path, err, sizeof(err)));
        snprintf(want, sizeof(want), "%s:%s", path, msg);
        assert_string_equal(err, want);
}

static void test_csv_open_empty_file(void **state)
{
        (void)state;
        expect_open_error("empty.csv", "", "1: empty file, expected a header "
                                           "line");
        expect_open_error("blankonly.csv", "\n\r\n",
                          "3: empty file, expected a header line");
}

static void test_csv_open_duplicate_column(void **state)
{
        (void)state;
        expect_open_error("dup.csv", "id,label,id\n1,2,3\n",
                          "1: duplicate column 'id'");
}

static void test_csv_open_bad_header(void **state)
{
        (void)state;
        expect_open_error("badhdr.csv", "\"id,label\n",
                          "1: unterminated quoted field");
}

static void test_csv_open_missing_file(void **state)
{
        char path[128], err[256] = "";

        (void)state;
        tooltest_path(path, sizeof(path), "absent.csv");
        assert_null(csv_open(path, err, sizeof(err)));
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "No such file"));
}

static void test_csv_parse_i64_cases(void **state)
{
        long long v = 42;

        (void)state;
        assert_int_equal(csv_parse_i64("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(csv_parse_i64("-9223372036854775808", &v), 0);
        assert_true(v == INT64_MIN);
        assert_int_equal(csv_parse_i64("+17", &v), 0);
        assert_int_equal(v, 17);
        v = 42;
        assert_int_equal(csv_parse_i64("9223372036854775808", &v), -1);
        assert_int_equal(csv_parse_i64("", &v), -1);
        assert_int_equal(csv_parse_i64(" 1", &v), -1);
        assert_int_equal(csv_parse_i64("1 ", &v), -1);
        assert_int_equal(csv_parse_i64("1.0", &v), -1);
        assert_int_equal(csv_parse_i64("cat", &v), -1);
        assert_int_equal(v, 42);
}

static void test_csv_parse_f64_cases(void **state)
{
        double v = 42.0;

        (void)state;
        assert_int_equal(csv_parse_f64("0.25", &v), 0);
        assert_true(v == 0.25);
        assert_int_equal(csv_parse_f64("-1e-3", &v), 0);
        assert_true(v == -1e-3);
        assert_int_equal(csv_parse_f64("1e-320", &v), 0);
        assert_true(v > 0.0);
        v = 42.0;
        assert_int_equal(csv_parse_f64("1e999", &v), -1);
        assert_int_equal(csv_parse_f64("", &v), -1);
        assert_int_equal(csv_parse_f64(" 1", &v), -1);
        assert_int_equal(csv_parse_f64("1x", &v), -1);
        assert_true(v == 42.0);
}

/* ---- rng ------------------------------------------------------------- */

static void test_rng_init_same_seed_same_numbers(void **state)
{
        struct rng a, b;
        int i;

        (void)state;
        rng_init(&a, 42, 3);
        rng_init(&b, 42, 3);
        for (i = 0; i < 1000; i++)
                assert_true(rng_next(&a) == rng_next(&b));
}

static void test_rng_init_streams_and_seeds_differ(void **state)
{
        struct rng a, b, c;
        int i, same_ab = 0, same_ac = 0;

        (void)state;
        rng_init(&a, 1, 1);
        rng_init(&b, 1, 2);
        rng_init(&c, 2, 1);
        for (i = 0; i < 100; i++) {
                uint64_t x = rng_next(&a);

                same_ab += x == rng_next(&b);
                same_ac += x == rng_next(&c);
        }
        assert_int_equal(same_ab, 0);
        assert_int_equal(same_ac, 0);
}

static void test_rng_below_in_range_and_uniform(void **state)
{
        size_t counts[7] = {0};
        struct rng r;
        int i;

        (void)state;
        rng_init(&r, 5, 0);
        for (i = 0; i < 70000; i++) {
                uint64_t x = rng_below(&r, 7);

                assert_true(x < 7);
                counts[x]++;
        }
        /* 10000 expected per value; sd about 93. */
        for (i = 0; i < 7; i++)
                assert_true(counts[i] > 9500 && counts[i] < 10500);
        assert_true(rng_below(&r, 1) == 0);
}

static void test_rng_uniform_and_normal_moments(void **state)
{
        double u, z, su = 0.0, sz = 0.0, szz = 0.0;
        const int n = 100000;
        struct rng r;
        int i;

        (void)state;
        rng_init(&r, 9, 0);
        for (i = 0; i < n; i++) {
                u = rng_uniform(&r);
                assert_true(u >= 0.0 && u < 1.0);
                su += u;
                z = rng_normal(&r);
                sz += z;
                szz += z * z;
        }
        assert_true(fabs(su / n - 0.5) < 0.005);
        assert_true(fabs(sz / n) < 0.02);
        assert_true(fabs(szz / n - 1.0) < 0.02);
}

static int run_unit_tests(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_npy_save_f8_roundtrip_2d),
                cmocka_unit_test(test_npy_save_f8_roundtrip_1d),
                cmocka_unit_test(test_npy_save_f8_header_layout),
                cmocka_unit_test(test_npy_save_f8_unwritable_path),
                cmocka_unit_test(test_npy_load_all_dtypes),
                cmocka_unit_test(test_npy_load_versions_2_and_3),
                cmocka_unit_test(test_npy_load_header_variants),
                cmocka_unit_test(test_npy_load_empty_array),
                cmocka_unit_test(test_npy_load_missing_file),
                cmocka_unit_test(test_npy_load_bad_magic),
                cmocka_unit_test(test_npy_load_bad_version),
                cmocka_unit_test(test_npy_load_header_too_long),
                cmocka_unit_test(test_npy_load_unsupported_dtype),
                cmocka_unit_test(test_npy_load_fortran_order_is_transposed),
                cmocka_unit_test(test_npy_load_three_dims),
                cmocka_unit_test(test_npy_load_zero_dims),
                cmocka_unit_test(test_npy_load_missing_key),
                cmocka_unit_test(test_npy_load_repeated_key),
                cmocka_unit_test(test_npy_load_huge_shape),
                cmocka_unit_test(test_npy_load_truncated_data),
                cmocka_unit_test(test_npy_load_trailing_bytes),
                cmocka_unit_test(test_npy_load_every_prefix_fails),
                cmocka_unit_test(test_npy_load_corrupt_header_bytes),
                cmocka_unit_test(test_csv_open_reads_header),
                cmocka_unit_test(test_csv_next_plain_records),
                cmocka_unit_test(test_csv_next_quoted_fields),
                cmocka_unit_test(test_csv_next_crlf),
                cmocka_unit_test(test_csv_next_no_final_newline),
                cmocka_unit_test(test_csv_next_skips_blank_lines),
                cmocka_unit_test(test_csv_open_strips_bom),
                cmocka_unit_test(test_csv_next_long_field),
                cmocka_unit_test(test_csv_next_field_count_error),
                cmocka_unit_test(test_csv_next_unterminated_quote),
                cmocka_unit_test(test_csv_next_text_after_quote),
                cmocka_unit_test(test_csv_next_quote_in_unquoted),
                cmocka_unit_test(test_csv_next_bare_carriage_return),
                cmocka_unit_test(test_csv_next_nul_byte),
                cmocka_unit_test(test_csv_open_empty_file),
                cmocka_unit_test(test_csv_open_duplicate_column),
                cmocka_unit_test(test_csv_open_bad_header),
                cmocka_unit_test(test_csv_open_missing_file),
                cmocka_unit_test(test_csv_parse_i64_cases),
                cmocka_unit_test(test_csv_parse_f64_cases),
                cmocka_unit_test(test_rng_init_same_seed_same_numbers),
                cmocka_unit_test(test_rng_init_streams_and_seeds_differ),
                cmocka_unit_test(test_rng_below_in_range_and_uniform),
                cmocka_unit_test(test_rng_uniform_and_normal_moments),
        };

        return cmocka_run_group_tests(tests, tooltest_make_scratch,
                                      tooltest_remove_scratch);
}

/* ---- shared data ----------------------------------------------------- */

static const char *data_dir;

static void data_path(char *buf, size_t size, const char *rel)
{
        snprintf(buf, size, "%s/%s", data_dir, rel);
}

static void test_npy_load_cifar10_pred_probs(void **state)
{
        char path[512], err[512];
        struct npy_array a;
        double sum = 0.0;
        size_t c;

        (void)state;
        data_path(path, sizeof(path), "labelerrors/cifar10/pred_probs.npy");
        if (npy_load(path, &a, err, sizeof(err)) < 0)
                fail_msg("%s", err);
        assert_int_equal(a.dtype, NPY_F8);
        assert_int_equal(a.ndim, 2);
        assert_int_equal(a.rows, 10000);
        assert_int_equal(a.cols, 10);
        for (c = 0; c < a.cols; c++)
                sum += npy_get(&a, a.rows - 1, c);
        assert_true(sum > 0.999 && sum < 1.001);
        npy_array_free(&a);
}

static void test_npy_load_cifar10_labels(void **state)
{
        char path[512], err[512];
        struct npy_array a;

        (void)state;
        data_path(path, sizeof(path), "labelerrors/cifar10/labels.npy");
        if (npy_load(path, &a, err, sizeof(err)) < 0)
                fail_msg("%s", err);
        assert_int_equal(a.dtype, NPY_U2);
        assert_int_equal(a.ndim, 1);
        assert_int_equal(a.rows, 10000);
        npy_array_free(&a);
}

/* Reads all 511000 rows; the first is 0,3190,3,3 (data README). */
static void test_csv_next_cifar10h_annotations(void **state)
{
        static const char *const names[] = {"seq", "item", "label",
                                            "true_label"};
        char path[512], err[512];
        struct csv_reader *r;
        size_t rows = 0, i;
        long long v;
        int rc;

        (void)state;
        data_path(path, sizeof(path), "cifar10h/annotations.csv");
        r = csv_open(path, err, sizeof(err));
        if (r == NULL)
                fail_msg("%s", err);
        assert_int_equal(csv_columns(r), 4);
        for (i = 0; i < 4; i++)
                assert_int_equal(csv_column(r, names[i]), (int)i);
        while ((rc = csv_next(r, err, sizeof(err))) == 1) {
                for (i = 0; i < 4; i++)
                        assert_int_equal(csv_parse_i64(csv_field(r, i), &v),
                                         0);
                if (rows++ == 0)
                        assert_string_equal(csv_field(r, 1), "3190");
        }
        if (rc < 0)
                fail_msg("%s", err);
        assert_int_equal(rows, 511000);
        csv_close(r);
}

static int run_data_tests(const char *dir)
{
        static const char *const needed[] = {
                "labelerrors/cifar10/pred_probs.npy",
                "labelerrors/cifar10/labels.npy",
                "cifar10h/annotations.csv",
        };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_npy_load_cifar10_pred_probs),
                cmocka_unit_test(test_npy_load_cifar10_labels),
                cmocka_unit_test(test_csv_next_cifar10h_annotations),
        };
        char path[512];
        size_t i;

        data_dir = dir;
        for (i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
                data_path(path, sizeof(path), needed[i]);
                if (access(path, R_OK) != 0) {
                        printf("skipped: shared data file %s is absent\n",
                               path);
                        return SKIP_CODE;
                }
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(int argc, char **argv)
{
        if (argc == 3 && strcmp(argv[1], "--data") == 0)
                return run_data_tests(argv[2]);
        if (argc != 1) {
                fprintf(stderr, "usage: %s [--data DIR]\n", argv[0]);
                return 2;
        }
        return run_unit_tests();
}
