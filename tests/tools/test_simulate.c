/*
 * test_simulate.c - tests of `confidentctl simulate` (tools/cmd_simulate.c),
 * run in-process on files in a scratch folder.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmds.h"
#include "csvread.h"
#include "npy.h"
#include "tooltest.h"

#define MAX_K 16

/* Output paths of one run, named after a tag. */
struct sim_files {
        char labels[128], probs[128], noise[128], out[128];
};

static void sim_files(struct sim_files *f, const char *tag)
{
        char name[64];

        snprintf(name, sizeof(name), "%s.csv", tag);
        tooltest_path(f->labels, sizeof(f->labels), name);
        snprintf(name, sizeof(name), "%s.npy", tag);
        tooltest_path(f->probs, sizeof(f->probs), name);
        snprintf(name, sizeof(name), "%s.noise.csv", tag);
        tooltest_path(f->noise, sizeof(f->noise), name);
        snprintf(name, sizeof(name), "%s.out", tag);
        tooltest_path(f->out, sizeof(f->out), name);
}

/*
 * Runs simulate writing the files of tag, with extra options (NULL
 * terminated, at most 16).  Returns the exit status.
 */
static int run_sim(const char *tag, struct sim_files *f, ...)
{
        const char *args[32];
        const char *a;
        va_list ap;
        int n = 0;

        sim_files(f, tag);
        args[n++] = "simulate";
        args[n++] = "--out-labels";
        args[n++] = f->labels;
        args[n++] = "--out-probs";
        args[n++] = f->probs;
        args[n++] = "--out-noise";
        args[n++] = f->noise;
        va_start(ap, f);
        while ((a = va_arg(ap, const char *)) != NULL && n < 31)
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        return tooltest_run(cmd_simulate, f->out, args);
}

static bool same_file(const char *a, const char *b)
{
        size_t la, lb;
        char *x = tooltest_read(a, &la);
        char *y = tooltest_read(b, &lb);
        bool same = la == lb && memcmp(x, y, la) == 0;

        free(x);
        free(y);
        return same;
}

static void assert_same_file(const char *a, const char *b)
{
        if (!same_file(a, b))
                fail_msg("%s and %s differ", a, b);
}

/* Integer field i of the current record. */
static long long field(struct csv_reader *r, size_t i)
{
        long long v;

        assert_int_equal(csv_parse_i64(csv_field(r, i), &v), 0);
        return v;
}

/* What the labels CSV holds, summarised. */
struct label_stats {
        size_t rows, wrong;
        size_t distinct_classes_first_100, distinct_annotators_first_100;
};

static void read_labels(const char *path, struct label_stats *st)
{
        unsigned seen_class[MAX_K] = {0}, seen_ann[MAX_K] = {0};
        char err[256];
        struct csv_reader *r;
        long long t, a;
        int rc;

        memset(st, 0, sizeof(*st));
        r = csv_open(path, err, sizeof(err));
        assert_non_null(r);
        assert_int_equal(csv_column(r, "id"), 0);
        assert_int_equal(csv_column(r, "row"), 4);
        while ((rc = csv_next(r, err, sizeof(err))) == 1) {
                assert_int_equal(field(r, 0), (long long)st->rows);
                t = field(r, 2);
                a = field(r, 3);
                st->wrong += field(r, 1) != t;
                if (st->rows < 100 && t < MAX_K && a < MAX_K) {
                        st->distinct_classes_first_100 += !seen_class[t]++;
                        st->distinct_annotators_first_100 += !seen_ann[a]++;
                }
                st->rows++;
        }
        assert_int_equal(rc, 0);
        csv_close(r);
}

static void test_cmd_simulate_same_seed_same_bytes(void **state)
{
        struct sim_files a, b;

        (void)state;
        assert_int_equal(run_sim("a", &a, "--items", "3000", "--seed", "7",
                                 NULL),
                         0);
        assert_int_equal(run_sim("b", &b, "--items", "3000", "--seed", "7",
                                 NULL),
                         0);
        assert_same_file(a.labels, b.labels);
        assert_same_file(a.probs, b.probs);
        assert_same_file(a.noise, b.noise);
        assert_same_file(a.out, b.out);
}

static void test_cmd_simulate_other_seed_differs(void **state)
{
        struct sim_files a, b;

        (void)state;
        assert_int_equal(run_sim("c", &a, "--items", "500", "--seed", "1",
                                 NULL),
                         0);
        assert_int_equal(run_sim("d", &b, "--items", "500", "--seed", "2",
                                 NULL),
                         0);
        assert_false(same_file(a.labels, b.labels));
        assert_false(same_file(a.probs, b.probs));
}

/* The model's accuracy has its own random stream: labels stay put. */
static void test_cmd_simulate_accuracy_keeps_labels(void **state)
{
        struct sim_files a, b;

        (void)state;
        assert_int_equal(run_sim("e", &a, "--items", "500", "--accuracy",
                                 "0.7", NULL),
                         0);
        assert_int_equal(run_sim("f", &b, "--items", "500", "--accuracy",
                                 "0.95", NULL),
                         0);
        assert_same_file(a.labels, b.labels);
        assert_false(same_file(a.probs, b.probs));
}

static void test_cmd_simulate_noise_rate_near_requested(void **state)
{
        struct label_stats st;
        struct sim_files f;
        double rate;

        (void)state;
        assert_int_equal(run_sim("g", &f, NULL), 0);
        read_labels(f.labels, &st);
        assert_int_equal(st.rows, 20000);
        rate = (double)st.wrong / (double)st.rows;
        if (fabs(rate - 0.1) > 0.015)
                fail_msg("error rate %.4f, requested 0.1", rate);

        assert_int_equal(run_sim("h", &f, "--classes", "4", "--noise", "0.2",
                                 "--annotators", "8", "--per-item", "3",
                                 "--items", "10000", NULL),
                         0);
        read_labels(f.labels, &st);
        assert_int_equal(st.rows, 30000);
        rate = (double)st.wrong / (double)st.rows;
        if (fabs(rate - 0.2) > 0.03)
                fail_msg("error rate %.4f, requested 0.2", rate);
}

/* No sorting by class or annotator: the first rows mix both. */
static void test_cmd_simulate_rows_interleave(void **state)
{
        struct label_stats st;
        struct sim_files f;

        (void)state;
        assert_int_equal(run_sim("i", &f, "--items", "1000", NULL), 0);
        read_labels(f.labels, &st);
        assert_true(st.distinct_classes_first_100 >= 8);
        assert_int_equal(st.distinct_annotators_first_100, 5);
}

static void test_cmd_simulate_model_accuracy_near_requested(void **state)
{
        struct csv_reader *r;
        struct npy_array a;
        struct sim_files f;
        size_t right = 0, c, best;
        long long row, truth;
        char err[256];

        (void)state;
        assert_int_equal(run_sim("j", &f, "--accuracy", "0.8", NULL), 0);
        assert_int_equal(npy_load(f.probs, &a, err, sizeof(err)), 0);
        assert_int_equal(a.rows, 20000);
        assert_int_equal(a.cols, 10);
        r = csv_open(f.labels, err, sizeof(err));
        assert_non_null(r);
        while (csv_next(r, err, sizeof(err)) == 1) {
                row = field(r, 4);
                truth = field(r, 2);
                for (best = 0, c = 1; c < a.cols; c++)
                        if (npy_get(&a, (size_t)row, c) >
                            npy_get(&a, (size_t)row, best))
                                best = c;
                right += (long long)best == truth;
        }
        csv_close(r);
        npy_array_free(&a);
        if (fabs((double)right / 20000.0 - 0.8) > 0.015)
                fail_msg("model accuracy %.4f, requested 0.8",
                         (double)right / 20000.0);
}

/* Rows sum to 1; the diagonal beats every wrong label. */
static void test_cmd_simulate_noise_matrices_valid(void **state)
{
        double m[5][4][4], sum;
        struct csv_reader *r;
        struct sim_files f;
        long long a, t, j;
        char err[256];
        size_t n = 0;

        (void)state;
        assert_int_equal(run_sim("k", &f, "--classes", "4", "--noise", "0.25",
                                 "--items", "100", NULL),
                         0);
        r = csv_open(f.noise, err, sizeof(err));
        assert_non_null(r);
        while (csv_next(r, err, sizeof(err)) == 1) {
                a = field(r, 0);
                t = field(r, 1);
                j = field(r, 2);
                assert_true(a < 5 && t < 4 && j < 4);
                assert_int_equal(csv_parse_f64(csv_field(r, 3), &m[a][t][j]),
                                 0);
                n++;
        }
        csv_close(r);
        assert_int_equal(n, 5 * 4 * 4);
        for (a = 0; a < 5; a++) {
                for (t = 0; t < 4; t++) {
                        sum = 0.0;
                        for (j = 0; j < 4; j++) {
                                sum += m[a][t][j];
                                assert_true(m[a][t][j] > 0.0);
                                if (j != t)
                                        assert_true(m[a][t][j] < m[a][t][t]);
                        }
                        assert_true(fabs(sum - 1.0) < 1e-12);
                }
        }
}

static void test_cmd_simulate_usage_errors(void **state)
{
        static const char *const missing[] = {"simulate", "--items", "10",
                                              NULL};
        struct sim_files f;

        (void)state;
        sim_files(&f, "usage");
        assert_int_equal(tooltest_run(cmd_simulate, f.out, missing), 2);
        assert_int_equal(run_sim("u1", &f, "--noise", "0.5", NULL), 2);
        assert_int_equal(run_sim("u2", &f, "--per-item", "6", NULL), 2);
        assert_int_equal(run_sim("u3", &f, "--accuracy", "0.1", NULL), 2);
        assert_int_equal(run_sim("u4", &f, "--classes", "x", NULL), 2);
        assert_int_equal(run_sim("u5", &f, "--bogus", NULL), 2);
        assert_int_equal(run_sim("u6", &f, "extra", NULL), 2);
}

static void test_cmd_simulate_unwritable_output(void **state)
{
        const char *args[6] = {"simulate", "--out-labels", NULL,
                               "--out-probs", NULL, NULL};
        struct sim_files f;

        (void)state;
        sim_files(&f, "nodir");
        strcat(f.labels, ".missing/labels.csv");
        args[2] = f.labels;
        args[4] = f.probs;
        assert_int_equal(tooltest_run(cmd_simulate, f.out, args), 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmd_simulate_same_seed_same_bytes),
                cmocka_unit_test(test_cmd_simulate_other_seed_differs),
                cmocka_unit_test(test_cmd_simulate_accuracy_keeps_labels),
                cmocka_unit_test(test_cmd_simulate_noise_rate_near_requested),
                cmocka_unit_test(test_cmd_simulate_rows_interleave),
                cmocka_unit_test(
                        test_cmd_simulate_model_accuracy_near_requested),
                cmocka_unit_test(test_cmd_simulate_noise_matrices_valid),
                cmocka_unit_test(test_cmd_simulate_usage_errors),
                cmocka_unit_test(test_cmd_simulate_unwritable_output),
        };

        return cmocka_run_group_tests(tests, tooltest_make_scratch,
                                      tooltest_remove_scratch);
}
