/*
 * test_hold.c - held items (cl.h): warm-up hold and decision window,
 * release in order, forced release, snapshots, allocation and the memory
 * budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl.h"
#include "cl_batch.h"

#define K 3
#define N 60

/* Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc: counts
 * the allocations of core between two points of a test. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static unsigned long allocations;

void *__wrap_malloc(size_t n)
{
        allocations++;
        return __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
        allocations++;
        return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
        allocations++;
        return __real_realloc(p, n);
}

/* A small data set with planted errors: row r of class r % K puts most
 * mass on its class; every seventh row is labelled one class off. */
static void make_rows(long labels[N], double probs[N * K])
{
        uint32_t x = 12345;

        for (size_t r = 0; r < N; r++) {
                unsigned c = (unsigned)(r % K);
                double rest = 0.0;

                for (unsigned j = 0; j < K; j++) {
                        x = x * 1664525u + 1013904223u;
                        probs[r * K + j] = 0.05 + (x >> 24) / 2560.0;
                        if (j != c)
                                rest += probs[r * K + j];
                }
                probs[r * K + c] = 1.0 - rest;
                labels[r] = r % 7 == 3 ? (long)((c + 1) % K) : (long)c;
        }
}

static struct cl_state *new_state(double warmup_total, enum cl_filter f)
{
        struct cl_params p;
        struct cl_state *st = NULL;

        cl_params_init(&p, K);
        p.filter = f;
        p.warmup_total = warmup_total;
        p.warmup_policy = CL_WARMUP_HOLD;
        assert_int_equal(cl_state_new(&p, &st), 0);
        return st;
}

static void test_cl_observe_hold_releases_in_order(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict v, out[N];
        struct cl_state *st = new_state(N, CL_FILTER_PRUNE_BY_NOISE_RATE);

        (void)unused;
        make_rows(labels, probs);
        assert_int_equal(cl_state_hold_capacity(st), N);
        for (size_t r = 0; r < N; r++) {
                assert_false(cl_state_release_due(st));
                assert_int_equal(cl_observe(st, labels[r], probs + r * K, K,
                                            &v, NULL),
                                 0);
                assert_int_equal(v.tag, CL_TAG_HELD);
                assert_int_equal(v.hold_index, r);
                assert_string_equal(v.reason, "held");
        }
        assert_true(cl_state_release_due(st));
        assert_int_equal(cl_state_release(st, out, N), N);
        assert_int_equal(cl_state_held(st), 0);
        assert_false(cl_state_release_due(st));
        for (size_t r = 0; r < N; r++) {
                assert_int_equal(out[r].hold_index, r);
                assert_int_equal(out[r].given, labels[r]);
                assert_true(out[r].tag == CL_TAG_CLEAN ||
                            out[r].tag == CL_TAG_SUSPECT);
        }
        /* Warm now: the next item is decided online. */
        assert_int_equal(cl_observe(st, labels[0], probs, K, &v, NULL), 0);
        assert_int_not_equal(v.tag, CL_TAG_HELD);
        assert_int_equal(cl_state_held(st), 0);
        cl_state_free(st);
}

/* Released verdicts equal batch mode over the held rows, and a forced
 * release of the same rows (state not warm) gives the same verdicts. */
static void test_cl_state_release_force_equals_warm(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict warm[N], forced[N];
        struct cl_batch_params bp;
        struct cl_batch *b = NULL;
        unsigned char mask[N];
        size_t flagged = 0;
        struct cl_state *a = new_state(N, CL_FILTER_PRUNE_BY_NOISE_RATE);
        struct cl_state *c = new_state(2 * N, CL_FILTER_PRUNE_BY_NOISE_RATE);

        (void)unused;
        make_rows(labels, probs);
        for (size_t r = 0; r < N; r++) {
                assert_int_equal(cl_observe(a, labels[r], probs + r * K, K,
                                            NULL, NULL),
                                 0);
                assert_int_equal(cl_observe(c, labels[r], probs + r * K, K,
                                            NULL, NULL),
                                 0);
        }
        assert_int_equal(cl_state_held(a), N);
        assert_int_equal(cl_state_held(c), N);
        assert_int_equal(cl_state_release(a, warm, N), N);
        assert_false(cl_state_release_due(c));
        assert_int_equal(cl_state_release(c, forced, N), 0);
        assert_int_equal(cl_state_release_force(c, forced, N), N);

        cl_batch_params_init(&bp, K);
        assert_int_equal(cl_batch_new(&bp, labels, probs, N, &b), 0);
        assert_int_equal(cl_batch_find_issues(b, CL_FILTER_PRUNE_BY_NOISE_RATE,
                                              mask, &flagged),
                         0);
        assert_true(flagged > 0);
        for (size_t r = 0; r < N; r++) {
                assert_int_equal(warm[r].tag, mask[r] ? CL_TAG_SUSPECT
                                                      : CL_TAG_CLEAN);
                assert_int_equal(forced[r].tag, warm[r].tag);
                assert_int_equal(forced[r].suggested, warm[r].suggested);
                assert_string_equal(forced[r].reason, warm[r].reason);
        }
        cl_batch_free(b);
        cl_state_free(a);
        cl_state_free(c);
}

static void test_cl_state_release_small_cap_keeps_items(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict out[N];
        struct cl_state *st = new_state(N, CL_FILTER_PRUNE_BY_CLASS);

        (void)unused;
        make_rows(labels, probs);
        for (size_t r = 0; r < N; r++)
                assert_int_equal(cl_observe(st, labels[r], probs + r * K, K,
                                            NULL, NULL),
                                 0);
        assert_int_equal(cl_state_release(st, out, N - 1), CL_E_PARAM);
        assert_int_equal(cl_state_held(st), N);
        assert_int_equal(cl_state_release(st, out, N), N);
        cl_state_free(st);
}

static void test_cl_state_snapshot_refuses_held_items(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict out[N], v;
        struct cl_state *st = new_state(N, CL_FILTER_BOTH), *back = NULL;
        char *buf = NULL;
        size_t len = 0;

        (void)unused;
        make_rows(labels, probs);
        for (size_t r = 0; r < N; r++)
                assert_int_equal(cl_observe(st, labels[r], probs + r * K, K,
                                            NULL, NULL),
                                 0);
        assert_int_equal(cl_state_snapshot(st, &buf, &len), CL_E_HELD);
        assert_null(buf);
        assert_int_equal(cl_state_release(st, out, N), N);
        assert_int_equal(cl_state_snapshot(st, &buf, &len), 0);
        assert_int_equal(cl_state_restore(buf, len, &back), 0);
        assert_int_equal(cl_state_params(back)->warmup_policy,
                         CL_WARMUP_HOLD);
        /* The restored state is warm: it holds nothing more. */
        assert_int_equal(cl_observe(back, labels[1], probs + K, K, &v, NULL),
                         0);
        assert_int_not_equal(v.tag, CL_TAG_HELD);
        free(buf);
        cl_state_free(back);
        cl_state_free(st);
}

static void test_cl_observe_hold_allocates_nothing(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict v;
        struct cl_state *st = new_state(N, CL_FILTER_PRUNE_BY_NOISE_RATE);
        unsigned long before;

        (void)unused;
        make_rows(labels, probs);
        before = allocations;
        for (size_t r = 0; r < N; r++)
                assert_int_equal(cl_observe(st, labels[r], probs + r * K, K,
                                            &v, NULL),
                                 0);
        assert_int_equal(allocations, before);
        cl_state_free(st);
}

static void test_cl_observe_hold_not_for_predicted_neq_given(void **unused)
{
        long labels[N];
        double probs[N * K];
        struct cl_verdict v;
        struct cl_state *st = new_state(N, CL_FILTER_PREDICTED_NEQ_GIVEN);

        (void)unused;
        make_rows(labels, probs);
        assert_int_equal(cl_state_hold_capacity(st), 0);
        assert_int_equal(cl_observe(st, labels[0], probs, K, &v, NULL), 0);
        assert_int_not_equal(v.tag, CL_TAG_HELD);
        assert_int_equal(cl_state_release_force(st, NULL, 0), 0);
        cl_state_free(st);
}

/* A decision window of D items: each item comes out, in arrival order,
 * once D later items are counted; a forced release empties the window. */
static void test_cl_state_release_window_in_order(void **unused)
{
        enum { D = 5 };
        long labels[N];
        double probs[N * K];
        struct cl_verdict v, out[D + 1];
        struct cl_params p;
        struct cl_state *st = NULL;
        size_t next = 0;

        (void)unused;
        make_rows(labels, probs);
        cl_params_init(&p, K);
        p.warmup_total = 0.0;
        p.warmup_class = 0.0;
        p.delay_items = D;
        assert_int_equal(cl_state_new(&p, &st), 0);
        assert_int_equal(cl_state_hold_capacity(st), D + 1);
        for (size_t r = 0; r < N; r++) {
                int n;

                assert_int_equal(cl_observe(st, labels[r], probs + r * K, K,
                                            &v, NULL),
                                 0);
                assert_int_equal(v.tag, CL_TAG_HELD);
                assert_int_equal(v.hold_index, r % (D + 1));
                assert_int_equal(cl_state_release_due(st), r >= D);
                n = cl_state_release(st, out, D + 1);
                assert_int_equal(n, r >= D ? 1 : 0);
                if (n == 1) {
                        assert_int_equal(out[0].hold_index, next % (D + 1));
                        assert_int_equal(out[0].given, labels[next]);
                        assert_int_not_equal(out[0].tag, CL_TAG_HELD);
                        next++;
                }
                assert_int_equal(cl_state_held(st), r >= D ? D : r + 1);
        }
        assert_int_equal(cl_state_release_force(st, out, D + 1), D);
        for (size_t r = 0; r < D; r++, next++)
                assert_int_equal(out[r].given, labels[next]);
        assert_int_equal(next, N);
        assert_int_equal(cl_state_held(st), 0);
        cl_state_free(st);
}

/* The hold buffer stays within CL_HOLD_MAX_BYTES: at K = 1000 the default
 * warm-up (50,000 items) is cut to what fits, and a window that does not
 * fit is refused. */
static void test_cl_state_hold_within_budget(void **unused)
{
        struct cl_params p;
        struct cl_state *st = NULL;
        size_t row = 1000 * sizeof(double);

        (void)unused;
        cl_params_init(&p, 1000);
        assert_int_equal(p.warmup_policy, CL_WARMUP_HOLD);
        assert_int_equal(cl_state_new(&p, &st), 0);
        assert_true(cl_state_hold_capacity(st) > 1000);
        assert_true(cl_state_hold_capacity(st) <= CL_HOLD_MAX_BYTES / row);
        assert_true(cl_state_memory(st) - cl_params_memory(&p) <=
                    CL_HOLD_MAX_BYTES);
        cl_state_free(st);
        p.delay_items = (unsigned)(CL_HOLD_MAX_BYTES / row);
        assert_int_equal(cl_params_check(&p), CL_E_PARAM);
        p.delay_items = 1000;
        assert_int_equal(cl_params_check(&p), 0);
}

static void test_cl_warmup_policy_parse_names(void **unused)
{
        enum cl_warmup_policy w = CL_WARMUP_PASS;

        (void)unused;
        assert_int_equal(cl_warmup_policy_parse("hold", &w), 0);
        assert_int_equal(w, CL_WARMUP_HOLD);
        assert_string_equal(cl_warmup_policy_name(CL_WARMUP_PASS), "pass");
        assert_int_equal(cl_warmup_policy_parse("later", &w), CL_E_PARAM);
        assert_string_equal(cl_tag_name(CL_TAG_HELD), "held");
        assert_string_equal(cl_err_name(CL_E_HELD), "CL_E_HELD");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_observe_hold_releases_in_order),
                cmocka_unit_test(test_cl_state_release_force_equals_warm),
                cmocka_unit_test(test_cl_state_release_small_cap_keeps_items),
                cmocka_unit_test(test_cl_state_snapshot_refuses_held_items),
                cmocka_unit_test(test_cl_observe_hold_allocates_nothing),
                cmocka_unit_test(
                        test_cl_observe_hold_not_for_predicted_neq_given),
                cmocka_unit_test(test_cl_state_release_window_in_order),
                cmocka_unit_test(test_cl_state_hold_within_budget),
                cmocka_unit_test(test_cl_warmup_policy_parse_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
