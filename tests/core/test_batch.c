/*
 * test_batch.c - batch mode on small hand-made inputs: the worked examples
 * of docs/batch.md (argmax counting, calibration, prune matrix), the numpy
 * sum and sort ports, row validation and the filters' edge cases.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cl.h"
#include "cl_batch.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* cmocka 1.1 compares floats in single precision only. */
static void expect_near(double got, double want, double tol)
{
        if (!(fabs(got - want) <= tol))
                fail_msg("%.17g differs from %.17g by more than %g", got, want,
                         tol);
}

static struct cl_batch *batch_of(unsigned k, const long *labels,
                                 const double *probs, size_t n)
{
        struct cl_batch_params p;
        struct cl_batch *b = NULL;

        cl_batch_params_init(&p, k);
        assert_int_equal(cl_batch_new(&p, labels, probs, n, &b), 0);
        return b;
}

/* Fewer than eight values are added left to right. */
static void test_cl_batch_sum_short_run_is_sequential(void **state)
{
        const double v[7] = {1e16, 1, 1, 1, 1, 1, 1};

        (void)state;
        /* Each 1 is half an ulp of 1e16 and rounds away (to even). */
        assert_true(cl_batch_sum(v, 7) == 1e16);
}

/* From eight values on, eight accumulators are combined pairwise. */
static void test_cl_batch_sum_eight_accumulators(void **state)
{
        const double v[8] = {1e16, 1, 1, 1, 1, 1, 1, 1};

        (void)state;
        /* ((1e16 + 1) + (1 + 1)) + ((1 + 1) + (1 + 1)) = 1e16 + 6 */
        assert_true(cl_batch_sum(v, 8) == 1e16 + 6);
}

/* 22 values with many ties, longer than one insertion-sort range.
 * Expected orders printed by numpy 1.24.2: np.argsort(v) and
 * np.argsort(v, kind="stable"). */
static const double tie_keys[22] = {3, 1, 2, 1, 3, 0, 2, 1, 1, 0, 3,
                                    2, 2, 1, 0, 3, 1, 2, 0, 1, 3, 1};

static void test_cl_batch_argsort_numpy_order_of_ties(void **state)
{
        static const size_t expect[22] = {14, 18, 9,  5,  21, 13, 7, 8,
                                          19, 3,  1,  16, 17, 11, 12, 2,
                                          6,  0,  20, 4,  15, 10};
        size_t got[22];

        (void)state;
        cl_batch_argsort(tie_keys, 22, CL_BATCH_SORT_NUMPY, got);
        assert_memory_equal(got, expect, sizeof(expect));
}

static void test_cl_batch_argsort_stable_keeps_position(void **state)
{
        static const size_t expect[22] = {5,  9,  14, 18, 1,  3, 7, 8,
                                          13, 16, 19, 21, 2,  6, 11, 12,
                                          17, 0,  4,  10, 15, 20};
        size_t got[22];

        (void)state;
        cl_batch_argsort(tie_keys, 22, CL_BATCH_SORT_STABLE, got);
        assert_memory_equal(got, expect, sizeof(expect));
}

/* 40 values: 0.25 at 3, 17, 29; 0.75 at 5, 11; 0.5 elsewhere.  Expected
 * order from numpy 1.24.2's np.argsort. */
static void test_cl_batch_argsort_numpy_two_level_partition(void **state)
{
        static const size_t expect[40] = {
                17, 3,  29, 0,  23, 24, 25, 26, 27, 28, 30, 31, 32, 33,
                34, 35, 36, 37, 22, 21, 19, 38, 1,  2,  4,  6,  7,  8,
                20, 9,  12, 13, 14, 15, 16, 18, 10, 39, 11, 5};
        double v[40];
        size_t got[40], i;

        (void)state;
        for (i = 0; i < 40; i++)
                v[i] = 0.5;
        v[3] = v[17] = v[29] = 0.25;
        v[5] = v[11] = 0.75;
        cl_batch_argsort(v, 40, CL_BATCH_SORT_NUMPY, got);
        assert_memory_equal(got, expect, sizeof(expect));
}

/* Up to 16 values numpy insertion-sorts, which keeps ties in place; NaN
 * sorts last. */
static void test_cl_batch_argsort_short_is_stable_nan_last(void **state)
{
        const double v[6] = {0.5, NAN, -0.5, 0.5, -0.5, 0.0};
        static const size_t expect[6] = {2, 4, 5, 0, 3, 1};
        size_t got[6];

        (void)state;
        cl_batch_argsort(v, 6, CL_BATCH_SORT_NUMPY, got);
        assert_memory_equal(got, expect, sizeof(expect));
}

/* The 3.1 example: with two confident classes the row goes to the argmax
 * of the whole row, here a class that was not confident. */
static const long argmax_labels[15] = {0, 0, 0, 0, 0, 0, 1, 1,
                                       1, 1, 2, 2, 2, 2, 1};

static void argmax_probs(double *p)
{
        static const double rows[4][3] = {{0.99, 0.005, 0.005},
                                          {0.4, 0.2, 0.4},
                                          {0.4, 0.4, 0.2},
                                          {0.5, 0.25, 0.25}};
        size_t r, which;

        for (r = 0; r < 15; r++) {
                which = r < 6 ? 0 : r < 10 ? 1 : r < 14 ? 2 : 3;
                memcpy(p + 3 * r, rows[which], sizeof(rows[0]));
        }
}

static void test_cl_batch_joint_uses_argmax_of_whole_row(void **state)
{
        static const int64_t expect[9] = {6, 0, 0, 1, 1, 4, 4, 0, 1};
        double probs[45];
        struct cl_batch *b;
        const double *t;

        (void)state;
        argmax_probs(probs);
        b = batch_of(3, argmax_labels, probs, 15);
        t = cl_batch_thresholds(b);
        expect_near(t[0], 0.99, 1e-15);
        expect_near(t[1], 0.21, 1e-15);
        expect_near(t[2], 0.2, 1e-15);
        assert_memory_equal(cl_batch_joint(b), expect, sizeof(expect));
        cl_batch_free(b);
}

static void test_cl_batch_find_issues_confident_learning_rows(void **state)
{
        double probs[45];
        unsigned char mask[15];
        struct cl_batch *b;
        size_t r, count;

        (void)state;
        argmax_probs(probs);
        b = batch_of(3, argmax_labels, probs, 15);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_CONFIDENT_LEARNING,
                                              mask, &count),
                         0);
        assert_int_equal(count, 9);
        for (r = 0; r < 15; r++)
                assert_int_equal(mask[r], r >= 6);
        assert_int_equal(cl_batch_num_label_issues(
                                 b, CL_BATCH_COUNT_OFF_DIAGONAL),
                         9);
        cl_batch_free(b);
}

/* The 20news worked example: row 3 scales to 1.75, 3.5, 381.5, 3.5, 1.75,
 * rounds half to even to a total of 394 and gives back 2 at the two
 * lowest residuals (columns 2 and 3, tied with column 6). */
static void test_cl_batch_calibrate_round_half_even_keeps_total(void **state)
{
        int64_t cj[13 * 13] = {0}, counts[13], cal[13 * 13];
        static const int64_t row3[13] = {0, 2, 3, 381, 0, 0, 4,
                                         0, 0, 0, 0, 0, 2};
        size_t i;

        (void)state;
        for (i = 0; i < 13; i++) {
                cj[i * 13 + i] = 100;
                counts[i] = 100;
        }
        cj[3 * 13 + 3] = 218;
        cj[3 * 13 + 1] = 1;
        cj[3 * 13 + 2] = 2;
        cj[3 * 13 + 6] = 2;
        cj[3 * 13 + 12] = 1;
        counts[3] = 392;
        assert_int_equal(cl_batch_calibrate(cj, counts, 13,
                                            CL_BATCH_SORT_NUMPY, cal),
                         0);
        assert_memory_equal(cal + 3 * 13, row3, sizeof(row3));
        for (i = 0; i < 13; i++)
                if (i != 3)
                        assert_int_equal(cal[i * 13 + i], 100);
}

/* Missing class: its calibrated row is all zero. */
static void test_cl_batch_calibrate_missing_class_row_zero(void **state)
{
        const int64_t cj[4] = {5, 1, 0, 1}, counts[2] = {6, 0};
        int64_t cal[4];

        (void)state;
        assert_int_equal(cl_batch_calibrate(cj, counts, 2,
                                            CL_BATCH_SORT_NUMPY, cal),
                         0);
        assert_int_equal(cal[0] + cal[1], 6);
        assert_int_equal(cal[2], 0);
        assert_int_equal(cal[3], 0);
}

/* The prune-matrix examples of 4.2, from M0 = [[10,3,2],[1,0,4],[2,2,7]]
 * (M0 is the transposed calibrated joint). */
static void prune_of(long m, double f, int64_t *out)
{
        static const int64_t m0[9] = {10, 3, 2, 1, 0, 4, 2, 2, 7};
        int64_t cal[9];
        size_t i, j;

        for (i = 0; i < 3; i++)
                for (j = 0; j < 3; j++)
                        cal[i * 3 + j] = m0[j * 3 + i];
        assert_int_equal(cl_batch_make_prune_matrix(cal, 3, m, f, out), 0);
}

static void test_cl_batch_make_prune_matrix_raises_diagonal(void **state)
{
        static const int64_t m1[9] = {10, 2, 2, 1, 1, 4, 2, 1, 7};
        static const int64_t m5[9] = {10, 0, 2, 1, 5, 4, 2, 0, 7};
        int64_t got[9];

        (void)state;
        prune_of(1, 1.0, got);
        assert_memory_equal(got, m1, sizeof(m1));
        prune_of(5, 1.0, got);
        assert_memory_equal(got, m5, sizeof(m5));
}

static void test_cl_batch_make_prune_matrix_frac_noise_truncates(void **state)
{
        static const int64_t expect[9] = {11, 1, 1, 0, 2, 2, 1, 0, 10};
        int64_t got[9];

        (void)state;
        prune_of(1, 0.5, got);
        assert_memory_equal(got, expect, sizeof(expect));
}

static void test_cl_batch_make_prune_matrix_bad_param(void **state)
{
        const int64_t cal[4] = {1, 0, 0, 1};
        int64_t out[4];

        (void)state;
        assert_int_equal(cl_batch_make_prune_matrix(cal, 2, 1, 0.0, out),
                         CL_E_PARAM);
        assert_int_equal(cl_batch_make_prune_matrix(cal, 2, -1, 1.0, out),
                         CL_E_PARAM);
}

/* cleanlab sums the moved noise of a column of the transposed joint as a
 * contiguous run, pairwise for K > 8: 14.999999999999998 left to right,
 * 15 in numpy's order, and the diagonal is truncated (cleanlab 2.9.0 gives
 * 15).  Found by tests/diff. */
static void test_cl_batch_make_prune_matrix_frac_noise_pairwise_sum(void **s)
{
        static const int64_t row0[9] = {1, 1, 6, 3, 5, 3, 1, 1, 0};
        int64_t cal[81] = {0}, out[81];
        size_t i;

        (void)s;
        memcpy(cal, row0, sizeof(row0));
        for (i = 1; i < 9; i++)
                cal[i * 9 + i] = 5;
        assert_int_equal(cl_batch_make_prune_matrix(cal, 9, 0, 0.3, out), 0);
        assert_int_equal(out[0], 15);
}

/* The imdb example of 3.3. */
static void test_cl_batch_estimate_latent_imdb_example(void **state)
{
        const int64_t cj[4] = {11792, 708, 601, 11899};
        const int64_t counts[2] = {12500, 12500};
        double py[2], nm[4], inv[4];

        (void)state;
        assert_int_equal(cl_batch_estimate_latent(cj, counts, 2,
                                                  CL_BATCH_PY_CNT, py, nm,
                                                  inv),
                         0);
        expect_near(py[0], 0.49572, 1e-12);
        expect_near(py[1], 0.50428, 1e-12);
        expect_near(nm[0], 11792.0 / 12393.0, 1e-15);
        expect_near(inv[0], 0.94336, 1e-15);
        expect_near(inv[1 * 2 + 0], 0.05664, 1e-15);
}

/* The other py methods agree with cnt when the joint is consistent:
 * here noise * py = ps holds exactly. */
static void test_cl_batch_estimate_latent_py_methods(void **state)
{
        const int64_t cj[4] = {30, 10, 10, 50}, counts[2] = {40, 60};
        double cnt[2], py[2], nm[4], inv[4];
        enum cl_batch_py m;

        (void)state;
        assert_int_equal(cl_batch_estimate_latent(cj, counts, 2,
                                                  CL_BATCH_PY_CNT, cnt, nm,
                                                  inv),
                         0);
        for (m = CL_BATCH_PY_EQN; m <= CL_BATCH_PY_MARGINAL_PS; m++) {
                assert_int_equal(cl_batch_estimate_latent(cj, counts, 2, m,
                                                          py, nm, inv),
                                 0);
                expect_near(py[0], cnt[0], 1e-12);
                expect_near(py[1], cnt[1], 1e-12);
        }
}

static void test_cl_batch_estimate_latent_singular_eqn(void **state)
{
        const int64_t cj[4] = {1, 1, 1, 1}, counts[2] = {2, 2};
        double py[2], nm[4], inv[4];

        (void)state;
        assert_int_equal(cl_batch_estimate_latent(cj, counts, 2,
                                                  CL_BATCH_PY_EQN, py, nm,
                                                  inv),
                         CL_E_PARAM);
        assert_int_equal(cl_batch_estimate_latent(cj, counts, 0,
                                                  CL_BATCH_PY_CNT, py, nm,
                                                  inv),
                         CL_E_PARAM);
}

/* Rows failing each check, in cl.h's order, next to good rows. */
static void test_cl_batch_new_rejects_rows_with_reason(void **state)
{
        const long labels[8] = {0, CL_BATCH_LABEL_INVALID, 2, -1, 0, 1, 1,
                                0};
        const double probs[16] = {0.9, 0.1,     0.5,       0.5,
                                  0.5, 0.5,     0.5,       0.5,
                                  NAN, 0.5,     1 + 2e-6,  0.0,
                                  0.2, 1 + 5e-7, 0.2,      0.8};
        struct cl_batch_params p;
        struct cl_batch_info info;
        struct cl_batch *b;
        static const int expect[8] = {0,
                                      CL_E_LABEL_TYPE,
                                      CL_E_LABEL_RANGE,
                                      CL_E_LABEL_RANGE,
                                      CL_E_NONFINITE,
                                      CL_E_RANGE,
                                      0,
                                      0};
        size_t r;

        (void)state;
        cl_batch_params_init(&p, 2);
        assert_int_equal(cl_batch_new(&p, labels, probs, 8, &b), 0);
        for (r = 0; r < 8; r++)
                assert_int_equal(cl_batch_row_status(b, r), expect[r]);
        cl_batch_info(b, &info);
        assert_int_equal(info.accepted, 3);
        assert_int_equal(info.rejected[-CL_E_LABEL_RANGE], 2);
        assert_int_equal(info.distinct_labels, 2);
        assert_true(info.cleanlab_refuses);
        assert_false(info.parity);
        cl_batch_free(b);
}

/* NaN and the row sum pass cleanlab's checks: rejected here, but cleanlab
 * would not have refused the input. */
static void test_cl_batch_new_nan_and_row_sum_not_refused(void **state)
{
        const long labels[3] = {0, 1, 1};
        const double probs[6] = {0.9, 0.1, NAN, 1.0, 0.75, 0.75};
        struct cl_batch_params p;
        struct cl_batch_info info;
        struct cl_batch *b;

        (void)state;
        cl_batch_params_init(&p, 2);
        p.sum_tol = 1e-3;
        assert_int_equal(cl_batch_new(&p, labels, probs, 3, &b), 0);
        assert_int_equal(cl_batch_row_status(b, 1), CL_E_NONFINITE);
        assert_int_equal(cl_batch_row_status(b, 2), CL_E_ROW_SUM);
        cl_batch_info(b, &info);
        assert_false(info.cleanlab_refuses);
        assert_false(info.parity);
        assert_true(info.too_few_labels);
        cl_batch_free(b);
}

/* A rejected row leaves every statistic as if it were absent. */
static void test_cl_batch_new_rejected_row_enters_nothing(void **state)
{
        double with[48], without[45];
        long lwith[16];
        unsigned char mask[16];
        struct cl_batch *a, *b;

        (void)state;
        argmax_probs(without);
        memcpy(with, without, sizeof(without));
        memcpy(lwith, argmax_labels, sizeof(argmax_labels));
        with[45] = 0.0;
        with[46] = 2.0; /* out of range */
        with[47] = 0.0;
        lwith[15] = 1;
        a = batch_of(3, argmax_labels, without, 15);
        b = batch_of(3, lwith, with, 16);
        assert_memory_equal(cl_batch_thresholds(a), cl_batch_thresholds(b),
                            3 * sizeof(double));
        assert_memory_equal(cl_batch_joint(a), cl_batch_joint(b),
                            9 * sizeof(int64_t));
        assert_memory_equal(cl_batch_joint_calibrated(a),
                            cl_batch_joint_calibrated(b),
                            9 * sizeof(int64_t));
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PREDICTED_NEQ_GIVEN,
                                              mask, NULL),
                         0);
        assert_int_equal(mask[15], 0);
        cl_batch_free(a);
        cl_batch_free(b);
}

static void test_cl_batch_new_bad_params(void **state)
{
        const long labels[2] = {0, 1};
        const double probs[4] = {1, 0, 0, 1};
        struct cl_batch_params p;
        struct cl_batch *b = NULL;

        (void)state;
        cl_batch_params_init(&p, 1);
        assert_int_equal(cl_batch_new(&p, labels, probs, 2, &b), CL_E_PARAM);
        cl_batch_params_init(&p, 2);
        assert_int_equal(cl_batch_new(&p, labels, probs, 0, &b), CL_E_PARAM);
        p.frac_noise = 0.0;
        assert_int_equal(cl_batch_new(&p, labels, probs, 2, &b), CL_E_PARAM);
        assert_null(b);
        cl_batch_free(NULL);
}

/* One class only: nothing is flagged; cleanlab accepts it for class 0 and
 * refuses it for any other class. */
static void test_cl_batch_find_issues_single_class_flags_nothing(void **state)
{
        long labels[3] = {0, 0, 0};
        const double probs[6] = {0.1, 0.9, 0.2, 0.8, 0.9, 0.1};
        unsigned char mask[3];
        struct cl_batch_info info;
        struct cl_batch *b;
        size_t count;

        (void)state;
        b = batch_of(2, labels, probs, 3);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PREDICTED_NEQ_GIVEN,
                                              mask, &count),
                         0);
        assert_int_equal(count, 0);
        cl_batch_info(b, &info);
        assert_true(info.too_few_labels);
        assert_false(info.cleanlab_refuses);
        cl_batch_free(b);

        labels[0] = labels[1] = labels[2] = 1;
        b = batch_of(2, labels, probs, 3);
        cl_batch_info(b, &info);
        assert_true(info.cleanlab_refuses);
        assert_int_equal(cl_batch_find_issues(b, (enum cl_filter)99, mask,
                                              &count),
                         CL_E_PARAM);
        cl_batch_free(b);
}

/* With min_examples_per_class 0 a one-row class passes the size check,
 * but cleanlab keeps a class's prune mask only when the class has more
 * than one row: row 0 (class 0, calibrated into cell [0][1]) is flagged
 * by confident_learning only, as by cleanlab 2.9.0.  Found by tests/diff.
 */
static void test_cl_batch_find_issues_single_row_class_not_pruned(void **s)
{
        static const long labels[7] = {0, 1, 1, 1, 2, 2, 2};
        static const double probs[21] = {
                0.05, 0.9, 0.05, 0.1, 0.8, 0.1, 0.1, 0.7, 0.2, 0.1, 0.6,
                0.3,  0.1, 0.1,  0.8, 0.1, 0.2, 0.7, 0.1, 0.3, 0.6,
        };
        static const enum cl_filter pruning[3] = {
                CL_FILTER_PRUNE_BY_NOISE_RATE, CL_FILTER_PRUNE_BY_CLASS,
                CL_FILTER_BOTH,
        };
        struct cl_batch_params p;
        struct cl_batch *b = NULL;
        unsigned char mask[7];
        size_t i, count;

        (void)s;
        cl_batch_params_init(&p, 3);
        p.min_examples_per_class = 0;
        assert_int_equal(cl_batch_new(&p, labels, probs, 7, &b), 0);
        assert_int_equal(cl_batch_joint_calibrated(b)[0 * 3 + 1], 1);
        for (i = 0; i < ARRAY_LEN(pruning); i++) {
                assert_int_equal(cl_batch_find_issues(b, pruning[i], mask,
                                                      &count),
                                 0);
                assert_int_equal(count, 0);
        }
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_CONFIDENT_LEARNING,
                                              mask, &count),
                         0);
        assert_int_equal(count, 1);
        assert_int_equal(mask[0], 1);
        cl_batch_free(b);
}

static void test_cl_batch_quality_hand_computed(void **state)
{
        const long labels[2] = {0, 1};
        const double probs[6] = {0.2, 0.5, 0.3, 0.5, 0.5, 0.0};
        struct cl_batch *b;
        double s[2];

        (void)state;
        b = batch_of(3, labels, probs, 2);
        assert_int_equal(cl_batch_quality(b, CL_BATCH_SCORE_SELF_CONFIDENCE,
                                          s),
                         0);
        assert_true(s[0] == 0.2 && s[1] == 0.5);
        assert_int_equal(cl_batch_quality(b, CL_BATCH_SCORE_NORMALIZED_MARGIN,
                                          s),
                         0);
        expect_near(s[0], 0.35, 1e-15);
        expect_near(s[1], 0.5, 1e-15);
        assert_int_equal(cl_batch_quality(
                                 b, CL_BATCH_SCORE_CONFIDENCE_WEIGHTED_ENTROPY,
                                 s),
                         0);
        /* Row 1: h = log 2 / log 3, v = h / 0.5, score = log(v + 1) / v. */
        expect_near(s[1], 0.646813104889, 1e-12);
        assert_int_equal(cl_batch_quality(b, (enum cl_batch_score)7, s),
                         CL_E_PARAM);
        cl_batch_free(b);
}

/*
 * low_self_confidence takes the num_label_issues lowest-scoring rows
 * without the final argmax filter: row 3 (label 0 is its argmax) is
 * taken, while confident_learning flags row 7.
 */
static void test_cl_batch_find_issues_low_modes_skip_final_filter(void **s)
{
        const long labels[11] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2};
        double probs[33] = {
                0.6,  0.2,  0.2,  0.6,  0.2,  0.2,  0.6,  0.2,  0.2,
                0.34, 0.33, 0.33, 0.05, 0.9,  0.05, 0.05, 0.9,  0.05,
                0.05, 0.9,  0.05, 0.6,  0.38, 0.02, 0.05, 0.05, 0.9,
                0.05, 0.05, 0.9,  0.05, 0.05, 0.9};
        unsigned char mask[11];
        struct cl_batch *b;
        size_t count, ranked[11];

        (void)s;
        b = batch_of(3, labels, probs, 11);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_CONFIDENT_LEARNING,
                                              mask, &count),
                         0);
        assert_int_equal(count, 1);
        assert_int_equal(mask[7], 1);
        assert_int_equal(cl_batch_find_issues(
                                 b, CL_FILTER_LOW_SELF_CONFIDENCE, mask,
                                 &count),
                         0);
        assert_int_equal(count, 1);
        assert_int_equal(mask[3], 1);

        /* Ranking the predicted_neq_given rows (3 is not one: its argmax
         * is its label). */
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PREDICTED_NEQ_GIVEN,
                                              mask, &count),
                         0);
        assert_int_equal(count, 1);
        mask[3] = 1;
        assert_int_equal(cl_batch_rank(b, mask,
                                       CL_BATCH_SCORE_SELF_CONFIDENCE,
                                       ranked, &count),
                         0);
        assert_int_equal(count, 2);
        assert_int_equal(ranked[0], 3); /* 0.34 */
        assert_int_equal(ranked[1], 7); /* 0.38 */
        cl_batch_free(b);
}

/* prune_by_class takes the n_k - M[k][k] lowest P[k] of class k;
 * prune_by_noise_rate the M[j][k] largest P[j] - P[k]; both intersects. */
static void test_cl_batch_find_issues_prune_modes(void **state)
{
        double probs[45];
        unsigned char pbc[15], pbnr[15], both[15];
        struct cl_batch *b;
        size_t r, count;

        (void)state;
        argmax_probs(probs);
        b = batch_of(3, argmax_labels, probs, 15);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PRUNE_BY_CLASS,
                                              pbc, &count),
                         0);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PRUNE_BY_NOISE_RATE,
                                              pbnr, NULL),
                         0);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_BOTH, both, NULL),
                         0);
        for (r = 0; r < 15; r++) {
                assert_int_equal(both[r], pbc[r] && pbnr[r]);
                /* Class 0 rows are all confidently right. */
                if (r < 6)
                        assert_int_equal(pbc[r] | pbnr[r], 0);
        }
        assert_true(count > 0);
        cl_batch_free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_batch_sum_short_run_is_sequential),
                cmocka_unit_test(test_cl_batch_sum_eight_accumulators),
                cmocka_unit_test(test_cl_batch_argsort_numpy_order_of_ties),
                cmocka_unit_test(test_cl_batch_argsort_stable_keeps_position),
                cmocka_unit_test(
                        test_cl_batch_argsort_numpy_two_level_partition),
                cmocka_unit_test(
                        test_cl_batch_argsort_short_is_stable_nan_last),
                cmocka_unit_test(test_cl_batch_joint_uses_argmax_of_whole_row),
                cmocka_unit_test(
                        test_cl_batch_find_issues_confident_learning_rows),
                cmocka_unit_test(
                        test_cl_batch_calibrate_round_half_even_keeps_total),
                cmocka_unit_test(
                        test_cl_batch_calibrate_missing_class_row_zero),
                cmocka_unit_test(
                        test_cl_batch_make_prune_matrix_raises_diagonal),
                cmocka_unit_test(
                        test_cl_batch_make_prune_matrix_frac_noise_truncates),
                cmocka_unit_test(
                        test_cl_batch_make_prune_matrix_frac_noise_pairwise_sum),
                cmocka_unit_test(test_cl_batch_make_prune_matrix_bad_param),
                cmocka_unit_test(test_cl_batch_estimate_latent_imdb_example),
                cmocka_unit_test(test_cl_batch_estimate_latent_py_methods),
                cmocka_unit_test(test_cl_batch_estimate_latent_singular_eqn),
                cmocka_unit_test(test_cl_batch_new_rejects_rows_with_reason),
                cmocka_unit_test(
                        test_cl_batch_new_nan_and_row_sum_not_refused),
                cmocka_unit_test(
                        test_cl_batch_new_rejected_row_enters_nothing),
                cmocka_unit_test(test_cl_batch_new_bad_params),
                cmocka_unit_test(
                        test_cl_batch_find_issues_single_class_flags_nothing),
                cmocka_unit_test(
                        test_cl_batch_find_issues_single_row_class_not_pruned),
                cmocka_unit_test(test_cl_batch_quality_hand_computed),
                cmocka_unit_test(
                        test_cl_batch_find_issues_low_modes_skip_final_filter),
                cmocka_unit_test(test_cl_batch_find_issues_prune_modes),
        };

        return cmocka_run_group_tests_name("core_batch", tests, NULL, NULL);
}
