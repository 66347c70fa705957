/*
 * test_cells.c - cmocka tests of a state that keeps fewer confident-joint
 * cells than K - 1 per class (docs/streaming.md, "Large K"): take-over,
 * snapshot and restore, merge.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cl.h"

#define K 40u

static uint64_t next_u64(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545f4914f6cdd1dULL;
}

/* A row peaked on t with a runner-up that depends on the draw; label t,
 * or with 20% chance the runner-up or any class. */
static long make_row(uint64_t *seed, double *p)
{
        uint64_t x = next_u64(seed);
        unsigned t = (unsigned)(x % K);
        unsigned o = (t + 1 + (unsigned)((x >> 8) % 3)) % K;
        unsigned coin = (unsigned)((x >> 20) % 100);

        for (unsigned j = 0; j < K; j++)
                p[j] = 0.2 / (K - 2);
        p[t] = 0.55 + 0.01 * (double)((x >> 30) % 10);
        p[o] = 0.25 - 0.01 * (double)((x >> 30) % 10);
        if (coin < 12)
                return o;
        if (coin < 20)
                return (long)((x >> 40) % K);
        return t;
}

static struct cl_state *fed_state(unsigned cells, uint64_t seed, size_t n)
{
        struct cl_params p;
        struct cl_state *st = NULL;
        struct cl_verdict *out;
        double row[K];

        cl_params_init(&p, K);
        p.cells = cells;
        p.warmup_total = 500.0;
        assert_int_equal(cl_state_new(&p, &st), 0);
        for (size_t r = 0; r < n; r++) {
                long label = make_row(&seed, row);

                assert_int_equal(cl_observe(st, label, row, K, NULL, NULL), 0);
        }
        /* The warm-up hold keeps the first items: decide them, as a
         * caller must before a snapshot. */
        out = calloc(cl_state_hold_capacity(st), sizeof(*out));
        assert_non_null(out);
        assert_true(cl_state_release_force(st, out,
                                           cl_state_hold_capacity(st)) >= 0);
        assert_int_equal(cl_state_held(st), 0);
        free(out);
        return st;
}

static double row_off(const struct cl_state *st, unsigned i)
{
        double off = 0.0;

        for (unsigned j = 0; j < K; j++)
                off += j == i ? 0.0 : cl_state_joint(st, i, j);
        return off;
}

static void test_cl_state_joint_pooled_keeps_cells(void **unused)
{
        struct cl_state *st = fed_state(3, 1, 20000);
        double bins[256];

        (void)unused;
        for (unsigned i = 0; i < K; i++) {
                unsigned kept = 0;

                for (unsigned j = 0; j < K; j++) {
                        int rc = cl_state_hist(st, CL_HIST_MARGIN, i, j, bins);

                        if (j == i)
                                continue;
                        kept += rc == 0;
                        /* A histogram exactly for the kept columns. */
                        assert_int_equal(rc == 0,
                                         cl_state_joint(st, i, j) > 0.0);
                }
                assert_true(kept <= 3);
                /* Label i is the runner-up of classes i-1..i-3, which
                 * carry most of the row: one
                 * of them at least holds a cell. */
                assert_true(cl_state_joint(st, i, (i + K - 1) % K) > 0.0 ||
                            cl_state_joint(st, i, (i + K - 2) % K) > 0.0 ||
                            cl_state_joint(st, i, (i + K - 3) % K) > 0.0);
                assert_true(row_off(st, i) > 0.0);
        }
        cl_state_free(st);
}

static void test_cl_state_restore_pooled_round_trip(void **unused)
{
        struct cl_state *st = fed_state(2, 2, 20000), *back = NULL;
        char *buf, *again;
        size_t len, again_len;
        uint64_t seed = 99;
        double row[K];

        (void)unused;
        assert_int_equal(cl_state_snapshot(st, &buf, &len), 0);
        assert_int_equal(cl_state_restore(buf, len, &back), 0);
        assert_int_equal(cl_state_params(back)->cells, 2);
        assert_int_equal(cl_state_snapshot(back, &again, &again_len), 0);
        assert_int_equal(again_len, len);
        assert_memory_equal(again, buf, len);
        /* Same decisions from here on, take-overs included. */
        for (int r = 0; r < 5000; r++) {
                long label = make_row(&seed, row);
                struct cl_verdict va, vb;

                assert_int_equal(cl_observe(st, label, row, K, &va, NULL), 0);
                assert_int_equal(cl_observe(back, label, row, K, &vb, NULL),
                                 0);
                assert_int_equal(va.tag, vb.tag);
                assert_int_equal(va.suggested, vb.suggested);
                assert_string_equal(va.reason, vb.reason);
        }
        free(again);
        free(buf);
        cl_state_free(back);
        cl_state_free(st);
}

static void test_cl_state_merge_pooled_adds_shared_cells(void **unused)
{
        struct cl_state *a = fed_state(3, 3, 20000);
        struct cl_state *b = fed_state(3, 4, 20000);
        struct cl_state *c = fed_state(2, 4, 100);
        double before[K], diag0;

        (void)unused;
        for (unsigned j = 0; j < K; j++)
                before[j] = cl_state_joint(a, 0, j) + cl_state_joint(b, 0, j);
        diag0 = before[0];
        assert_int_equal(cl_state_merge(a, c), CL_E_MISMATCH);
        assert_int_equal(cl_state_merge(a, b), 0);
        /* The diagonal adds; a column kept by both adds; every column kept
         * after the merge was kept by one of them; at most 3 per class. */
        assert_true(cl_state_joint(a, 0, 0) == diag0);
        for (unsigned j = 1; j < K; j++) {
                double now = cl_state_joint(a, 0, j);

                assert_true(now <= before[j] * (1 + 1e-12));
                if (now > 0.0)
                        assert_true(before[j] > 0.0);
        }
        assert_int_equal(cl_state_items(a), 40000);
        /* Merging a state into itself doubles every kept cell. */
        before[1] = cl_state_joint(a, 0, 1);
        assert_int_equal(cl_state_merge(a, a), 0);
        assert_true(cl_state_joint(a, 0, 1) == 2 * before[1]);
        cl_state_free(c);
        cl_state_free(b);
        cl_state_free(a);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_state_joint_pooled_keeps_cells),
                cmocka_unit_test(test_cl_state_restore_pooled_round_trip),
                cmocka_unit_test(test_cl_state_merge_pooled_adds_shared_cells),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
