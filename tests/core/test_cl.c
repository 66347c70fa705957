/*
 * test_cl.c - cmocka tests of core/cl.h: thresholds, confident joint,
 * decay, warm-up, row rejection, snapshots, merge and the seven filters.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cl.h"

#define assert_near(a, b, tol)                                               \
        do {                                                                 \
                double a_ = (a), b_ = (b);                                   \
                if (!(fabs(a_ - b_) <= (tol))) {                             \
                        print_error("%s = %.17g, %s = %.17g, tol %g\n", #a, \
                                    a_, #b, b_, (double)(tol));              \
                        fail();                                              \
                }                                                            \
        } while (0)

/* ---- helpers ---- */

static struct cl_state *state_new_or_fail(const struct cl_params *p)
{
        struct cl_state *st = NULL;

        assert_int_equal(cl_state_new(p, &st), 0);
        assert_non_null(st);
        return st;
}

/* Parameters that decide from the first item on. */
static void params_eager(struct cl_params *p, unsigned k, enum cl_filter f)
{
        cl_params_init(p, k);
        p->filter = f;
        p->warmup_total = 0.0;
        p->warmup_class = 0.0;
}

static void observe_ok(struct cl_state *st, long label, const double *p,
                       struct cl_verdict *v)
{
        assert_int_equal(cl_observe(st, label, p, cl_state_params(st)->k, v,
                                    NULL),
                         0);
}

/* xorshift64*: a deterministic stream, state in the caller's variable. */
static double rnd01(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return (double)((*s * 2685821657736338717ull) >> 11) * 0x1p-53;
}

/*
 * One synthetic row of k classes: the model puts most mass on the true
 * class (0.55 .. 0.95), the rest spread evenly; the given label is wrong
 * with probability `noise`.  Returns the given label.
 */
static long synth_row(uint64_t *s, unsigned k, double noise, double *p)
{
        unsigned truth = (unsigned)(rnd01(s) * k) % k;
        double top = 0.55 + 0.4 * rnd01(s);
        long label = truth;

        for (unsigned j = 0; j < k; j++)
                p[j] = j == truth ? top : (1.0 - top) / (k - 1);
        if (rnd01(s) < noise)
                label = (long)((truth + 1 + (unsigned)(rnd01(s) * (k - 1))) %
                               k);
        return label;
}

/* Decides whatever the state holds (warm-up hold, decision window), as
 * a caller must before a snapshot. */
static void release_all(struct cl_state *st)
{
        size_t cap = cl_state_hold_capacity(st), held = cl_state_held(st);
        struct cl_verdict *out = calloc(cap ? cap : 1, sizeof(*out));

        assert_non_null(out);
        assert_int_equal(cl_state_release_force(st, out, cap), (int)held);
        assert_int_equal(cl_state_held(st), 0);
        free(out);
}

/* Feeds n rows, verdicts dropped; nothing stays held. */
static void feed_synth(struct cl_state *st, uint64_t *seed, size_t n,
                       double noise)
{
        unsigned k = cl_state_params(st)->k;
        double p[16];

        for (size_t r = 0; r < n; r++) {
                long label = synth_row(seed, k, noise, p);

                assert_int_equal(cl_observe(st, label, p, k, NULL, NULL), 0);
        }
        release_all(st);
}

static void snapshot_or_fail(const struct cl_state *st, char **buf,
                             size_t *len)
{
        assert_int_equal(cl_state_snapshot(st, buf, len), 0);
        assert_non_null(*buf);
        assert_true(*len > 0);
}

/* The state's snapshot equals the given bytes: nothing changed. */
static void assert_state_is(const struct cl_state *st, const char *buf,
                            size_t len)
{
        char *now;
        size_t now_len;

        snapshot_or_fail(st, &now, &now_len);
        assert_int_equal(now_len, len);
        assert_memory_equal(now, buf, len);
        free(now);
}

/* ---- names and parameters ---- */

static void test_cl_err_name_every_code(void **unused)
{
        static const int codes[] = {
                CL_E_WIDTH,    CL_E_LABEL_TYPE, CL_E_LABEL_RANGE,
                CL_E_NONFINITE, CL_E_RANGE,     CL_E_ROW_SUM,
                CL_E_PARAM,    CL_E_NOMEM,      CL_E_SNAPSHOT,
                CL_E_VERSION,  CL_E_MISMATCH,
        };

        (void)unused;
        assert_string_equal(cl_err_name(CL_E_ROW_SUM), "CL_E_ROW_SUM");
        assert_string_equal(cl_err_name(12345), "CL_E_UNKNOWN");
        assert_string_equal(cl_strerror(12345), "unknown error");
        for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]); c++) {
                assert_int_equal(strncmp(cl_err_name(codes[c]), "CL_E_", 5),
                                 0);
                assert_string_not_equal(cl_strerror(codes[c]),
                                        "unknown error");
        }
}

static void test_cl_filter_parse_round_trip(void **unused)
{
        enum cl_filter f;

        (void)unused;
        for (int x = CL_FILTER_PRUNE_BY_NOISE_RATE;
             x <= CL_FILTER_LOW_NORMALIZED_MARGIN; x++) {
                const char *name = cl_filter_name((enum cl_filter)x);

                assert_non_null(name);
                assert_int_equal(cl_filter_parse(name, &f), 0);
                assert_int_equal(f, x);
        }
        assert_int_equal(cl_filter_parse("prune_by_noise", &f), CL_E_PARAM);
        assert_int_equal(cl_filter_parse(NULL, &f), CL_E_PARAM);
        assert_null(cl_filter_name((enum cl_filter)99));
        assert_string_equal(cl_tag_name(CL_TAG_WARMUP), "warmup");
}

static void test_cl_params_init_defaults(void **unused)
{
        struct cl_params p;

        (void)unused;
        cl_params_init(&p, 10);
        assert_int_equal(p.filter, CL_FILTER_PRUNE_BY_NOISE_RATE);
        assert_near(p.warmup_total, 1000.0, 0.0);
        assert_int_equal(p.warmup_policy, CL_WARMUP_HOLD);
        assert_int_equal(p.delay_items, 0);
        cl_params_init(&p, 100);
        assert_near(p.warmup_total, 5000.0, 0.0);
        assert_int_equal(p.bins, 256);
        assert_int_equal(cl_params_check(&p), 0);
}

static void test_cl_params_check_rejects(void **unused)
{
        struct cl_params p;

        (void)unused;
        cl_params_init(&p, 1);
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        cl_params_init(&p, 10);
        p.bins = 15;
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        cl_params_init(&p, 10);
        p.half_life = 0.5;
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        cl_params_init(&p, 10);
        p.sum_tol = NAN;
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        cl_params_init(&p, 10);
        p.filter = (enum cl_filter)42;
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        /* A half-life of 100 items caps the effective total near 144.8:
         * a warm-up of 1000 could never end. */
        cl_params_init(&p, 10);
        p.half_life = 100.0;
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        p.warmup_total = 144.0;
        assert_int_equal(cl_params_check(&p), 0);
        assert_int_equal(cl_params_check(NULL), CL_E_PARAM);
}

static void test_cl_state_set_params_soft_fields_only(void **unused)
{
        struct cl_params p, q;
        struct cl_state *st = NULL;
        struct cl_verdict v;
        uint64_t seed = 7;
        double row[4];
        long label;

        (void)unused;
        cl_params_init(&p, 4);
        p.warmup_policy = CL_WARMUP_PASS;
        p.warmup_total = 1000;
        assert_int_equal(cl_state_new(&p, &st), 0);
        feed_synth(st, &seed, 100, 0.1);

        /* Still warming up under the old value ... */
        label = synth_row(&seed, 4, 0.1, row);
        assert_int_equal(cl_observe(st, label, row, 4, &v, NULL), 0);
        assert_int_equal(v.tag, CL_TAG_WARMUP);

        /* ... judged at once under the new one. */
        q = p;
        q.warmup_total = 50;
        q.warmup_class = 5;
        q.sum_tol = 0.01;
        assert_int_equal(cl_state_set_params(st, &q), 0);
        assert_true(cl_state_params(st)->warmup_total == 50);
        assert_true(cl_state_params(st)->sum_tol == 0.01);
        label = synth_row(&seed, 4, 0.1, row);
        assert_int_equal(cl_observe(st, label, row, 4, &v, NULL), 0);
        assert_int_not_equal(v.tag, CL_TAG_WARMUP);

        /* Layout changes and invalid values are refused, state kept. */
        q = p;
        q.filter = CL_FILTER_PRUNE_BY_CLASS;
        assert_int_equal(cl_state_set_params(st, &q), CL_E_MISMATCH);
        q = p;
        q.bins = 512;
        assert_int_equal(cl_state_set_params(st, &q), CL_E_MISMATCH);
        q = p;
        q.warmup_class = -1;
        assert_int_equal(cl_state_set_params(st, &q), CL_E_PARAM);
        assert_true(cl_state_params(st)->warmup_total == 50);
        cl_state_free(st);
}

static void test_cl_state_set_params_hold_buffer_bound(void **unused)
{
        struct cl_params p, q;
        struct cl_state *st = NULL;

        (void)unused;
        cl_params_init(&p, 3);
        p.warmup_total = 200; /* hold policy: a 200-row buffer */
        assert_int_equal(cl_state_new(&p, &st), 0);
        q = p;
        q.warmup_total = 100;
        assert_int_equal(cl_state_set_params(st, &q), 0);
        q.warmup_total = 400; /* more than the buffer made for 200 */
        assert_int_equal(cl_state_set_params(st, &q), CL_E_MISMATCH);
        cl_state_free(st);
}

static void test_cl_state_new_refuses_huge_state(void **unused)
{
        struct cl_params p;
        struct cl_state *st = NULL;

        (void)unused;
        /* Every cell of K = 1000 at B = 256: K (K - 1) margin trees, about
         * 2 GiB. */
        cl_params_init(&p, 1000);
        p.cells = 999;
        assert_true(cl_params_memory(&p) > CL_STATE_MAX_BYTES);
        assert_int_equal(cl_state_new(&p, &st), CL_E_PARAM);
        assert_null(st);
        /* The default keeps four cells per class: under 10 MiB. */
        cl_params_init(&p, 1000);
        assert_int_equal(p.cells, 4);
        assert_true(cl_params_memory(&p) < 10u << 20);
        st = state_new_or_fail(&p);
        cl_state_free(st);
        cl_state_free(NULL);
}

static void test_cl_label_from_double_rejects_fraction(void **unused)
{
        long l = -7;

        (void)unused;
        assert_int_equal(cl_label_from_double(3.0, &l), 0);
        assert_int_equal(l, 3);
        assert_int_equal(cl_label_from_double(2.5, &l), CL_E_LABEL_TYPE);
        assert_int_equal(cl_label_from_double(NAN, &l), CL_E_LABEL_TYPE);
        assert_int_equal(cl_label_from_double(INFINITY, &l),
                         CL_E_LABEL_TYPE);
        assert_int_equal(cl_label_from_double(1e300, &l), CL_E_LABEL_TYPE);
        assert_int_equal(l, 3);
}

/* ---- thresholds and the confident joint ---- */

/*
 * The K = 3 example of the specification (3.1): 6 rows labelled 0 with
 * (0.99, 0.005, 0.005), 4 labelled 1 with (0.4, 0.2, 0.4), 4 labelled 2
 * with (0.4, 0.4, 0.2), 1 labelled 1 with (0.5, 0.25, 0.25).
 */
static const double ex_rows[4][3] = {
        { 0.99, 0.005, 0.005 },
        { 0.4, 0.2, 0.4 },
        { 0.4, 0.4, 0.2 },
        { 0.5, 0.25, 0.25 },
};
static const long ex_label[4] = { 0, 1, 2, 1 };
static const int ex_times[4] = { 6, 4, 4, 1 };

/* Feeds the example once, counting suspects among rows 6..14 and 0..5. */
static void feed_example(struct cl_state *st, int *ret_late, int *ret_early)
{
        struct cl_verdict v;
        int row = 0;

        *ret_late = *ret_early = 0;
        for (int g = 0; g < 4; g++) {
                for (int t = 0; t < ex_times[g]; t++, row++) {
                        observe_ok(st, ex_label[g], ex_rows[g], &v);
                        if (v.tag == CL_TAG_SUSPECT)
                                (row >= 6 ? (*ret_late)++ : (*ret_early)++);
                }
        }
}

static void test_cl_observe_example_first_pass_by_hand(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        int late, early;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_CONFIDENT_LEARNING);
        p.sum_tol = 0.0;
        st = state_new_or_fail(&p);
        feed_example(st, &late, &early);

        /* Thresholds: means of p[k] over class-k rows. */
        assert_near(cl_state_threshold(st, 0), 0.99, 1e-15);
        assert_near(cl_state_threshold(st, 1), (4 * 0.2 + 0.25) / 5, 1e-15);
        assert_near(cl_state_threshold(st, 2), 0.2, 1e-15);
        /*
         * Online, each row is counted with the thresholds of its moment:
         * rows labelled 1 come while class 2 is unseen (T_MISSING), so
         * only class 1 is confident: J[1][1] += 4.  Rows labelled 2 pass
         * classes 1 and 2, and the argmax of the whole row is the tie of
         * columns 0 and 1, lowest index: J[2][0] += 4 although class 0 is
         * not confident.  The last row passes 1 (0.25 >= 0.21) and 2 and
         * lands in column 0 too.
         */
        assert_near(cl_state_joint(st, 0, 0), 6, 0);
        assert_near(cl_state_joint(st, 1, 1), 4, 0);
        assert_near(cl_state_joint(st, 1, 0), 1, 0);
        assert_near(cl_state_joint(st, 1, 2), 0, 0);
        assert_near(cl_state_joint(st, 2, 0), 4, 0);
        assert_near(cl_state_joint(st, 2, 2), 0, 0);
        assert_int_equal(early, 0);
        assert_int_equal(late, 5);
        cl_state_free(st);
}

static void test_cl_observe_example_second_pass_matches_cleanlab(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        double before[3][3];
        int late, early;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_CONFIDENT_LEARNING);
        st = state_new_or_fail(&p);
        feed_example(st, &late, &early);
        for (unsigned i = 0; i < 3; i++)
                for (unsigned j = 0; j < 3; j++)
                        before[i][j] = cl_state_joint(st, i, j);

        /* With thresholds near (0.99, 0.21, 0.2) from the first pass, the
         * second pass counts as cleanlab does: cleanlab's C is
         * [[6,0,0],[1,1,4],[4,0,1]], whose diagonal 1s are its fix-up
         * max(C[k][k], 1); the counts themselves are these. */
        feed_example(st, &late, &early);
        static const double want[3][3] = {
                { 6, 0, 0 },
                { 1, 0, 4 },
                { 4, 0, 0 },
        };
        for (unsigned i = 0; i < 3; i++)
                for (unsigned j = 0; j < 3; j++)
                        assert_near(cl_state_joint(st, i, j) - before[i][j],
                                    want[i][j], 0);
        /* cleanlab flags rows 6..14 under confident_learning. */
        assert_int_equal(late, 9);
        assert_int_equal(early, 0);
        assert_near(cl_state_threshold(st, 1), 0.21, 1e-15);
        cl_state_free(st);
}

static void test_cl_state_threshold_missing_class(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        const double row[3] = { 0.0, 1.0, 0.0 };

        (void)unused;
        params_eager(&p, 3, CL_FILTER_PRUNE_BY_NOISE_RATE);
        st = state_new_or_fail(&p);
        assert_near(cl_state_threshold(st, 0), CL_T_MISSING, 0);
        /* A class whose rows all give it 0 is floored at T_FLOOR. */
        observe_ok(st, 0, row, NULL);
        assert_near(cl_state_threshold(st, 0), CL_T_FLOOR, 0);
        assert_near(cl_state_threshold(st, 2), CL_T_MISSING, 0);
        assert_near(cl_state_threshold(st, 7), CL_T_MISSING, 0);
        cl_state_free(st);
}

/* ---- decay ---- */

static void test_cl_observe_decay_halves_after_half_life(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        const double a[2] = { 0.9, 0.1 }, b[2] = { 0.2, 0.8 };
        double want = 0.0;

        (void)unused;
        params_eager(&p, 2, CL_FILTER_PRUNE_BY_NOISE_RATE);
        p.half_life = 10.0;
        st = state_new_or_fail(&p);
        observe_ok(st, 0, a, NULL);
        for (int t = 0; t < 10; t++)
                observe_ok(st, 1, b, NULL);
        /* The class-0 item is 10 items old: weight 1/2. */
        assert_near(cl_state_class_count(st, 0), 0.5, 1e-12);
        for (int t = 0; t < 10; t++)
                want += pow(2.0, -t / 10.0);
        assert_near(cl_state_class_count(st, 1), want, 1e-12);
        assert_near(cl_state_total(st), want + 0.5, 1e-12);
        assert_int_equal(cl_state_items(st), 11);
        /* Thresholds are weighted means: class 0 has one item only. */
        assert_near(cl_state_threshold(st, 0), 0.9, 1e-15);
        cl_state_free(st);
}

static void test_cl_observe_decay_survives_renormalisation(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        const double a[2] = { 0.7, 0.3 }, b[2] = { 0.4, 0.6 };

        (void)unused;
        /* Half-life 1: the raw weight doubles per item and passes 2^600
         * after 600 items, so 2000 items renormalise three times. */
        params_eager(&p, 2, CL_FILTER_PRUNE_BY_CLASS);
        p.half_life = 1.0;
        st = state_new_or_fail(&p);
        for (int t = 0; t < 2000; t++)
                observe_ok(st, t % 2, t % 2 ? b : a, NULL);
        /* Newest item (class 1) weighs 1, the one before 1/2, ...:
         * class 1 has 1 + 1/4 + 1/16 + ... = 4/3, class 0 2/3. */
        assert_near(cl_state_class_count(st, 1), 4.0 / 3.0, 1e-12);
        assert_near(cl_state_class_count(st, 0), 2.0 / 3.0, 1e-12);
        assert_near(cl_state_total(st), 2.0, 1e-12);
        assert_near(cl_state_threshold(st, 0), 0.7, 1e-12);
        assert_near(cl_state_threshold(st, 1), 0.6, 1e-12);
        cl_state_free(st);
}

/* ---- warm-up ---- */

static void test_cl_observe_warmup_then_decides(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict v;
        uint64_t seed = 7;
        double row[3];
        int suspects = 0;

        (void)unused;
        cl_params_init(&p, 3);
        p.warmup_policy = CL_WARMUP_PASS;
        p.warmup_total = 200.0;
        p.warmup_class = 20.0;
        st = state_new_or_fail(&p);
        for (int t = 0; t < 199; t++) {
                long label = synth_row(&seed, 3, 0.2, row);

                observe_ok(st, label, row, &v);
                assert_int_equal(v.tag, CL_TAG_WARMUP);
                assert_string_equal(v.reason, "warmup");
                assert_int_equal(v.suggested, label);
        }
        for (int t = 0; t < 2000; t++) {
                long label = synth_row(&seed, 3, 0.2, row);

                observe_ok(st, label, row, &v);
                assert_int_not_equal(v.tag, CL_TAG_WARMUP);
                suspects += v.tag == CL_TAG_SUSPECT;
        }
        /* About 20% of the labels are wrong. */
        assert_in_range(suspects, 200, 600);
        cl_state_free(st);
}

static void test_cl_observe_warmup_waits_for_class(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict v;
        const double c0[2] = { 0.9, 0.1 }, c1[2] = { 0.05, 0.95 };

        (void)unused;
        cl_params_init(&p, 2);
        p.filter = CL_FILTER_CONFIDENT_LEARNING;
        p.warmup_total = 10.0;
        p.warmup_class = 3.0;
        st = state_new_or_fail(&p);
        for (int t = 0; t < 20; t++)
                observe_ok(st, 0, c0, &v);
        assert_int_equal(v.tag, CL_TAG_CLEAN);
        /* Class 1 is new: its first two items still wait. */
        observe_ok(st, 1, c0, &v);
        assert_int_equal(v.tag, CL_TAG_WARMUP);
        observe_ok(st, 1, c1, &v);
        assert_int_equal(v.tag, CL_TAG_WARMUP);
        observe_ok(st, 1, c0, &v);
        assert_int_equal(v.tag, CL_TAG_SUSPECT);
        assert_int_equal(v.suggested, 0);
        assert_string_equal(v.reason, "cl 1->0");
        cl_state_free(st);
}

static void test_cl_observe_predicted_neq_given_needs_no_warmup(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict v;
        const double row[3] = { 0.1, 0.7, 0.2 };

        (void)unused;
        cl_params_init(&p, 3);
        p.filter = CL_FILTER_PREDICTED_NEQ_GIVEN;
        st = state_new_or_fail(&p);
        observe_ok(st, 0, row, &v);
        assert_int_equal(v.tag, CL_TAG_SUSPECT);
        assert_int_equal(v.suggested, 1);
        assert_string_equal(v.reason, "pred 0->1");
        observe_ok(st, 1, row, &v);
        assert_int_equal(v.tag, CL_TAG_CLEAN);
        assert_string_equal(v.reason, "argmax");
        cl_state_free(st);
}

/* ---- row rejection ---- */

struct reject_case {
        long label;
        double p[3];
        size_t n;
        int code;
        size_t index;
};

static void test_cl_observe_rejects_leave_state_unchanged(void **unused)
{
        static const struct reject_case cases[] = {
                { 0, { 0.5, 0.5, 0.0 }, 2, CL_E_WIDTH, 2 },
                { 3, { 0.5, 0.5, 0.0 }, 3, CL_E_LABEL_RANGE, 0 },
                { -1, { 0.5, 0.5, 0.0 }, 3, CL_E_LABEL_RANGE, 0 },
                { 0, { 1.5, 0.5, NAN }, 3, CL_E_NONFINITE, 2 },
                { 0, { 0.5, INFINITY, 0.0 }, 3, CL_E_NONFINITE, 1 },
                { 0, { 0.5, -0.5, 1.0 }, 3, CL_E_RANGE, 1 },
                { 0, { 1.0 + 2e-6, 0.0, 0.0 }, 3, CL_E_RANGE, 0 },
                { 0, { 0.5, 0.5, 0.5 }, 3, CL_E_ROW_SUM, 3 },
        };
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict v;
        uint64_t seed = 3;
        char *buf;
        size_t len;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_BOTH);
        st = state_new_or_fail(&p);
        feed_synth(st, &seed, 500, 0.1);
        snapshot_or_fail(st, &buf, &len);
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                const struct reject_case *rc = &cases[c];
                size_t index = 99;

                assert_int_equal(cl_check_row(st, rc->label, rc->p, rc->n,
                                              &index),
                                 rc->code);
                assert_int_equal(index, rc->index);
                index = 99;
                assert_int_equal(cl_observe(st, rc->label, rc->p, rc->n, &v,
                                            &index),
                                 rc->code);
                assert_int_equal(index, rc->index);
                assert_state_is(st, buf, len);
        }
        assert_int_equal(cl_state_items(st), 500);
        free(buf);
        cl_state_free(st);
}

static void test_cl_check_row_tolerances(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        /* cleanlab accepts 1 + 5e-7 and -5e-7; a sum of 1.5 only when the
         * sum check is off. */
        const double edge[3] = { 1.0 + 5e-7, -5e-7, 0.0 };
        const double heavy[3] = { 0.5, 0.5, 0.5 };

        (void)unused;
        params_eager(&p, 3, CL_FILTER_PRUNE_BY_NOISE_RATE);
        st = state_new_or_fail(&p);
        assert_int_equal(cl_check_row(st, 0, edge, 3, NULL), 0);
        assert_int_equal(cl_check_row(st, 0, heavy, 3, NULL), CL_E_ROW_SUM);
        cl_state_free(st);
        p.sum_tol = 0.0;
        st = state_new_or_fail(&p);
        assert_int_equal(cl_check_row(st, 0, heavy, 3, NULL), 0);
        cl_state_free(st);
}

/* ---- snapshots ---- */

static void assert_same_verdicts(struct cl_state *a, struct cl_state *b,
                                 uint64_t seed, size_t n)
{
        unsigned k = cl_state_params(a)->k;
        struct cl_verdict va, vb;
        double p[16];

        for (size_t r = 0; r < n; r++) {
                long label = synth_row(&seed, k, 0.15, p);

                observe_ok(a, label, p, &va);
                observe_ok(b, label, p, &vb);
                assert_int_equal(va.tag, vb.tag);
                assert_int_equal(va.suggested, vb.suggested);
                assert_int_equal(va.borderline, vb.borderline);
                assert_string_equal(va.reason, vb.reason);
                assert_memory_equal(&va.threshold, &vb.threshold,
                                    sizeof(double));
        }
}

static void assert_params_equal(const struct cl_params *a,
                                const struct cl_params *b)
{
        assert_int_equal(a->k, b->k);
        assert_int_equal(a->filter, b->filter);
        assert_int_equal(a->bins, b->bins);
        assert_int_equal(a->low_final_filter, b->low_final_filter);
        assert_near(a->half_life, b->half_life, 0);
        assert_near(a->warmup_total, b->warmup_total, 0);
        assert_near(a->warmup_class, b->warmup_class, 0);
        assert_near(a->min_examples, b->min_examples, 0);
        assert_near(a->sum_tol, b->sum_tol, 0);
        assert_int_equal(a->warmup_policy, b->warmup_policy);
        assert_int_equal(a->delay_items, b->delay_items);
}

static void snapshot_round_trip(const struct cl_params *p)
{
        struct cl_state *st, *back = NULL;
        uint64_t seed = 11;
        char *buf, *again;
        size_t len, again_len;

        st = state_new_or_fail(p);
        feed_synth(st, &seed, 3000, 0.15);
        snapshot_or_fail(st, &buf, &len);
        assert_int_equal(cl_state_restore(buf, len, &back), 0);
        assert_params_equal(cl_state_params(back), p);
        assert_int_equal(cl_state_items(back), 3000);
        /* Same bytes again, and the same decisions from here on. */
        snapshot_or_fail(back, &again, &again_len);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, buf, len);
        assert_same_verdicts(st, back, 99, 3000);
        free(again);
        free(buf);
        cl_state_free(back);
        cl_state_free(st);
}

static void test_cl_state_restore_round_trip(void **unused)
{
        struct cl_params p;

        (void)unused;
        cl_params_init(&p, 4);
        p.warmup_total = 100.0;
        snapshot_round_trip(&p);
        p.delay_items = 7;
        snapshot_round_trip(&p);
        p.delay_items = 0;
        /* Half-life 5 renormalises every 3000 items, inside the replay. */
        p.filter = CL_FILTER_BOTH;
        p.half_life = 5.0;
        p.warmup_total = 5.0;
        p.warmup_class = 1.0;
        p.bins = 17;
        snapshot_round_trip(&p);
        p.filter = CL_FILTER_LOW_NORMALIZED_MARGIN;
        p.low_final_filter = true;
        snapshot_round_trip(&p);
        p.filter = CL_FILTER_CONFIDENT_LEARNING;
        snapshot_round_trip(&p);
}

/* A small, decayed state's snapshot for the corruption tests. */
static void small_snapshot(char **buf, size_t *len)
{
        struct cl_params p;
        struct cl_state *st;
        uint64_t seed = 5;

        params_eager(&p, 3, CL_FILTER_BOTH);
        p.bins = 16;
        st = state_new_or_fail(&p);
        feed_synth(st, &seed, 200, 0.1);
        snapshot_or_fail(st, buf, len);
        cl_state_free(st);
}

static void test_cl_state_restore_rejects_truncated(void **unused)
{
        struct cl_state *st = NULL;
        char *buf;
        size_t len;

        (void)unused;
        small_snapshot(&buf, &len);
        for (size_t cut = 0; cut < len; cut++)
                assert_int_equal(cl_state_restore(buf, cut, &st),
                                 CL_E_SNAPSHOT);
        assert_null(st);
        assert_int_equal(cl_state_restore(NULL, 0, &st), CL_E_SNAPSHOT);
        free(buf);
}

static void test_cl_state_restore_survives_bit_flips(void **unused)
{
        struct cl_state *st;
        char *buf;
        size_t len;
        int rejected = 0;

        (void)unused;
        small_snapshot(&buf, &len);
        /* Any flip must be refused or give a usable state (a flipped
         * mantissa bit is a valid, different number). */
        for (size_t at = 0; at < len; at++) {
                for (int bit = 0; bit < 8; bit += 3) {
                        int rc;

                        buf[at] = (char)(buf[at] ^ (1 << bit));
                        st = NULL;
                        rc = cl_state_restore(buf, len, &st);
                        assert_true(rc == 0 || rc == CL_E_SNAPSHOT ||
                                    rc == CL_E_VERSION);
                        if (rc == 0) {
                                uint64_t seed = 1;

                                feed_synth(st, &seed, 50, 0.1);
                                cl_state_free(st);
                        } else {
                                rejected++;
                        }
                        buf[at] = (char)(buf[at] ^ (1 << bit));
                }
        }
        assert_true(rejected > 0);
        free(buf);
}

static void test_cl_state_restore_rejects_container_bomb(void **unused)
{
        /* array32 declaring 2^32 - 1 elements in 5 bytes, and a map16
         * declaring 65535 pairs: msgpack_unpack() alone would reserve
         * memory for every declared element first. */
        static const char bomb[] = { (char)0xdd, (char)0xff, (char)0xff,
                                     (char)0xff, (char)0xff };
        static const char map[] = { (char)0xde, (char)0xff, (char)0xff,
                                    (char)0xa1, 'k', 0x01 };
        struct cl_state *st = NULL;

        (void)unused;
        assert_int_equal(cl_state_restore(bomb, sizeof(bomb), &st),
                         CL_E_SNAPSHOT);
        assert_int_equal(cl_state_restore(map, sizeof(map), &st),
                         CL_E_SNAPSHOT);
        assert_int_equal(cl_state_restore("\xc1", 1, &st), CL_E_SNAPSHOT);
        assert_null(st);
}

/* Repacks a snapshot with field `key` replaced by what `put` writes (or
 * dropped when put is NULL), plus an unknown field when `extra` is set. */
typedef void (*field_fn)(msgpack_packer *pk);

static bool key_is(const msgpack_object *k, const char *key)
{
        return k->type == MSGPACK_OBJECT_STR &&
               k->via.str.size == strlen(key) &&
               memcmp(k->via.str.ptr, key, strlen(key)) == 0;
}

static void repack(const char *buf, size_t len, const char *key,
                   field_fn put, bool extra, msgpack_sbuffer *out)
{
        msgpack_unpacked u;
        msgpack_packer pk;
        size_t off = 0, n;
        const msgpack_object_map *m;

        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf, len, &off),
                         MSGPACK_UNPACK_SUCCESS);
        m = &u.data.via.map;
        msgpack_sbuffer_init(out);
        msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
        n = m->size + (extra ? 1 : 0);
        for (uint32_t e = 0; e < m->size; e++)
                if (!put && key_is(&m->ptr[e].key, key))
                        n--;
        assert_int_equal(msgpack_pack_map(&pk, n), 0);
        for (uint32_t e = 0; e < m->size; e++) {
                const msgpack_object *k = &m->ptr[e].key;
                bool hit = key_is(k, key);

                if (hit && !put)
                        continue;
                assert_int_equal(msgpack_pack_object(&pk, *k), 0);
                if (hit)
                        put(&pk);
                else
                        assert_int_equal(msgpack_pack_object(&pk,
                                                             m->ptr[e].val),
                                         0);
        }
        if (extra) {
                assert_int_equal(msgpack_pack_str_with_body(&pk, "zz", 2), 0);
                assert_int_equal(msgpack_pack_nil(&pk), 0);
        }
        msgpack_unpacked_destroy(&u);
}

static void put_version_next(msgpack_packer *pk)
{
        msgpack_pack_uint64(pk, 3);
}

static void put_short_array(msgpack_packer *pk)
{
        msgpack_pack_array(pk, 2);
        msgpack_pack_double(pk, 1.0);
        msgpack_pack_double(pk, 1.0);
}

static void put_string(msgpack_packer *pk)
{
        msgpack_pack_str_with_body(pk, "x", 1);
}

static void put_negative(msgpack_packer *pk)
{
        msgpack_pack_double(pk, -1.0);
}

static void put_k_huge(msgpack_packer *pk)
{
        msgpack_pack_uint64(pk, 1u << 20);
}

struct corrupt_case {
        const char *key;
        field_fn put;
        bool extra;
        int code;
};

static void test_cl_state_restore_rejects_bad_fields(void **unused)
{
        static const struct corrupt_case cases[] = {
                { "version", put_version_next, false, CL_E_VERSION },
                { "version", NULL, false, CL_E_SNAPSHOT },
                { "format", put_string, false, CL_E_SNAPSHOT },
                { "cnt", put_short_array, false, CL_E_SNAPSHOT },
                { "h_mg", put_short_array, false, CL_E_SNAPSHOT },
                { "diag", put_string, false, CL_E_SNAPSHOT },
                { "cell_col", put_short_array, false, CL_E_SNAPSHOT },
                { "w", put_negative, false, CL_E_SNAPSHOT },
                { "total", put_negative, false, CL_E_SNAPSHOT },
                { "k", put_k_huge, false, CL_E_SNAPSHOT },
                { "filter", put_string, false, CL_E_SNAPSHOT },
                { "sc_sum", NULL, false, CL_E_SNAPSHOT },
                { "items", NULL, false, CL_E_SNAPSHOT },
                { "none", NULL, true, CL_E_SNAPSHOT },
        };
        struct cl_state *st = NULL;
        msgpack_sbuffer sb;
        char *buf;
        size_t len;

        (void)unused;
        small_snapshot(&buf, &len);
        /* The repacked original is accepted: the cases test one change. */
        repack(buf, len, "zz", NULL, false, &sb);
        assert_int_equal(cl_state_restore(sb.data, sb.size, &st), 0);
        cl_state_free(st);
        msgpack_sbuffer_destroy(&sb);
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                const struct corrupt_case *cc = &cases[c];

                repack(buf, len, cc->key, cc->put, cc->extra, &sb);
                st = NULL;
                assert_int_equal(cl_state_restore(sb.data, sb.size, &st),
                                 cc->code);
                assert_null(st);
                msgpack_sbuffer_destroy(&sb);
        }
        free(buf);
}

static void put_bad_tree(msgpack_packer *pk)
{
        /* Three trees of 17 bins: 17 bin nodes and 2 parents each; node
         * 17 is the parent of bins 0..15 of class 0. */
        msgpack_pack_array(pk, 3 * 19);
        for (int x = 0; x < 3 * 19; x++)
                msgpack_pack_double(pk, x == 17 ? 5.0 : 0.0);
}

static void test_cl_state_restore_rejects_inconsistent_tree(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        msgpack_sbuffer sb;
        uint64_t seed = 2;
        char *buf;
        size_t len;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_PRUNE_BY_CLASS);
        p.bins = 17;
        st = state_new_or_fail(&p);
        feed_synth(st, &seed, 100, 0.1);
        snapshot_or_fail(st, &buf, &len);
        cl_state_free(st);
        /* A parent holding 5 over seventeen empty bins. */
        repack(buf, len, "h_sc", put_bad_tree, false, &sb);
        st = NULL;
        assert_int_equal(cl_state_restore(sb.data, sb.size, &st),
                         CL_E_SNAPSHOT);
        assert_null(st);
        msgpack_sbuffer_destroy(&sb);
        free(buf);
}

/* ---- merge ---- */

static void assert_hist_equal(const struct cl_state *a,
                              const struct cl_state *b, enum cl_hist h,
                              unsigned i, unsigned j)
{
        unsigned nb = cl_state_params(a)->bins;
        double ha[256], hb[256];

        assert_true(nb <= 256);
        assert_int_equal(cl_state_hist(a, h, i, j, ha), 0);
        assert_int_equal(cl_state_hist(b, h, i, j, hb), 0);
        for (unsigned x = 0; x < nb; x++)
                assert_near(ha[x], hb[x], 1e-9);
}

static void test_cl_state_merge_equals_one_stream(void **unused)
{
        struct cl_params p;
        struct cl_state *a, *b, *one;
        uint64_t sa = 21, sb = 22, s1 = 21, s2 = 22;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_BOTH);
        a = state_new_or_fail(&p);
        b = state_new_or_fail(&p);
        one = state_new_or_fail(&p);
        feed_synth(a, &sa, 2000, 0.1);
        feed_synth(b, &sb, 1500, 0.3);
        feed_synth(one, &s1, 2000, 0.1);
        feed_synth(one, &s2, 1500, 0.3);

        assert_int_equal(cl_state_merge(a, b), 0);
        assert_int_equal(cl_state_items(a), 3500);
        assert_near(cl_state_total(a), cl_state_total(one), 1e-9);
        for (unsigned i = 0; i < 3; i++) {
                assert_near(cl_state_class_count(a, i),
                            cl_state_class_count(one, i), 1e-9);
                assert_near(cl_state_threshold(a, i),
                            cl_state_threshold(one, i), 1e-9);
                assert_hist_equal(a, one, CL_HIST_SELF_CONF, i, 0);
                for (unsigned j = 0; j < 3; j++)
                        if (j != i)
                                assert_hist_equal(a, one, CL_HIST_MARGIN, i,
                                                  j);
        }
        cl_state_free(one);
        cl_state_free(b);
        cl_state_free(a);
}

static void test_cl_state_merge_decayed_restarts_clock(void **unused)
{
        struct cl_params p;
        struct cl_state *a, *b;
        const double r[2] = { 0.8, 0.2 };

        (void)unused;
        params_eager(&p, 2, CL_FILTER_PRUNE_BY_NOISE_RATE);
        p.half_life = 4.0;
        a = state_new_or_fail(&p);
        b = state_new_or_fail(&p);
        for (int t = 0; t < 8; t++)
                observe_ok(a, 0, r, NULL);
        observe_ok(b, 0, r, NULL);
        /* a: 1 + 2^-1/4 + ... + 2^-7/4; b: 1; merged: the sum. */
        double want = 1.0;
        for (int t = 0; t < 8; t++)
                want += pow(2.0, -t / 4.0);
        assert_int_equal(cl_state_merge(a, b), 0);
        assert_near(cl_state_class_count(a, 0), want, 1e-12);
        /* After 4 more items of class 1, the merged mass has halved. */
        for (int t = 0; t < 4; t++)
                observe_ok(a, 1, r, NULL);
        assert_near(cl_state_class_count(a, 0), want / 2.0, 1e-12);
        cl_state_free(b);
        cl_state_free(a);
}

static void test_cl_state_merge_mismatch_leaves_dst(void **unused)
{
        struct cl_params p, q;
        struct cl_state *a, *b;
        uint64_t seed = 4;
        char *buf;
        size_t len;

        (void)unused;
        params_eager(&p, 3, CL_FILTER_PRUNE_BY_NOISE_RATE);
        a = state_new_or_fail(&p);
        feed_synth(a, &seed, 300, 0.1);
        snapshot_or_fail(a, &buf, &len);
        for (int change = 0; change < 4; change++) {
                q = p;
                if (change == 0)
                        q.k = 4;
                else if (change == 1)
                        q.bins = 128;
                else if (change == 2)
                        q.half_life = 1000.0;
                else
                        q.filter = CL_FILTER_BOTH;
                b = state_new_or_fail(&q);
                assert_int_equal(cl_state_merge(a, b), CL_E_MISMATCH);
                assert_state_is(a, buf, len);
                cl_state_free(b);
        }
        free(buf);
        cl_state_free(a);
}

static void test_cl_state_hist_not_kept(void **unused)
{
        struct cl_params p;
        struct cl_state *st;
        double bins[256];

        (void)unused;
        params_eager(&p, 3, CL_FILTER_PRUNE_BY_NOISE_RATE);
        st = state_new_or_fail(&p);
        assert_int_equal(cl_state_hist(st, CL_HIST_SELF_CONF, 0, 0, bins),
                         CL_E_PARAM);
        assert_int_equal(cl_state_hist(st, CL_HIST_MARGIN, 1, 1, bins),
                         CL_E_PARAM);
        assert_int_equal(cl_state_hist(st, CL_HIST_MARGIN, 1, 3, bins),
                         CL_E_PARAM);
        assert_int_equal(cl_state_hist(st, CL_HIST_LOW_SC, 0, 0, bins),
                         CL_E_PARAM);
        assert_int_equal(cl_state_hist(st, CL_HIST_MARGIN, 1, 2, bins), 0);
        cl_state_free(st);
}

/* ---- every filter flags a planted error ---- */

static void test_cl_observe_every_filter_flags_planted_error(void **unused)
{
        /* Labelled 0, the model is sure of class 1. */
        static const double planted[3] = { 0.02, 0.96, 0.02 };
        static const double good[3] = { 0.96, 0.02, 0.02 };
        static const char *const reason[] = {
                "pbnr 0->1", "pbc 0",  "both 0->1", "cl 0->1",
                "pred 0->1", "low_sc", "low_nm",
        };
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict v;

        (void)unused;
        for (int f = CL_FILTER_PRUNE_BY_NOISE_RATE;
             f <= CL_FILTER_LOW_NORMALIZED_MARGIN; f++) {
                uint64_t seed = 8;

                cl_params_init(&p, 3);
                p.filter = (enum cl_filter)f;
                st = state_new_or_fail(&p);
                feed_synth(st, &seed, 3000, 0.05);

                observe_ok(st, 0, planted, &v);
                assert_int_equal(v.tag, CL_TAG_SUSPECT);
                assert_int_equal(v.given, 0);
                assert_int_equal(v.suggested, 1);
                assert_string_equal(v.reason, reason[f]);
                assert_near(v.quality, 0.02, 0);
                assert_near(v.threshold, cl_state_threshold(st, 0), 0);

                observe_ok(st, 0, good, &v);
                assert_int_equal(v.tag, CL_TAG_CLEAN);
                assert_int_equal(v.suggested, 0);
                cl_state_free(st);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_err_name_every_code),
                cmocka_unit_test(test_cl_filter_parse_round_trip),
                cmocka_unit_test(test_cl_params_init_defaults),
                cmocka_unit_test(test_cl_params_check_rejects),
                cmocka_unit_test(test_cl_state_new_refuses_huge_state),
                cmocka_unit_test(test_cl_state_set_params_soft_fields_only),
                cmocka_unit_test(test_cl_state_set_params_hold_buffer_bound),
                cmocka_unit_test(test_cl_label_from_double_rejects_fraction),
                cmocka_unit_test(test_cl_observe_example_first_pass_by_hand),
                cmocka_unit_test(
                        test_cl_observe_example_second_pass_matches_cleanlab),
                cmocka_unit_test(test_cl_state_threshold_missing_class),
                cmocka_unit_test(test_cl_observe_decay_halves_after_half_life),
                cmocka_unit_test(
                        test_cl_observe_decay_survives_renormalisation),
                cmocka_unit_test(test_cl_observe_warmup_then_decides),
                cmocka_unit_test(test_cl_observe_warmup_waits_for_class),
                cmocka_unit_test(
                        test_cl_observe_predicted_neq_given_needs_no_warmup),
                cmocka_unit_test(
                        test_cl_observe_rejects_leave_state_unchanged),
                cmocka_unit_test(test_cl_check_row_tolerances),
                cmocka_unit_test(test_cl_state_restore_round_trip),
                cmocka_unit_test(test_cl_state_restore_rejects_truncated),
                cmocka_unit_test(test_cl_state_restore_survives_bit_flips),
                cmocka_unit_test(test_cl_state_restore_rejects_container_bomb),
                cmocka_unit_test(test_cl_state_restore_rejects_bad_fields),
                cmocka_unit_test(
                        test_cl_state_restore_rejects_inconsistent_tree),
                cmocka_unit_test(test_cl_state_merge_equals_one_stream),
                cmocka_unit_test(test_cl_state_merge_decayed_restarts_clock),
                cmocka_unit_test(test_cl_state_merge_mismatch_leaves_dst),
                cmocka_unit_test(test_cl_state_hist_not_kept),
                cmocka_unit_test(
                        test_cl_observe_every_filter_flags_planted_error),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
