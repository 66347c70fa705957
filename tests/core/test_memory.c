/*
 * test_memory.c - the state does not grow with the stream: 5 million items
 * through cl_observe() leave cl_state_memory() unchanged and the process's
 * resident memory flat between the first and the fifth million, for K = 10
 * (every cell kept) and K = 256 (two cells per class, with take-overs).
 *
 * With --table, prints instead the state size by K and filter at the
 * default parameters (docs/streaming.md, "Memory and cost").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cl.h"

#define N_ITEMS 5000000u
#define N_CHECK 1000000u
/* Distinct probability rows the items draw from. */
#define N_ROWS 512u
/* Allowed growth of the resident set from 1 M to 5 M items. */
#define RSS_SLACK ((size_t)1 << 20)

/* xorshift64*: the test's own generator, so runs are reproducible. */
static uint64_t next_u64(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545f4914f6cdd1dULL;
}

/* Resident set size in bytes from /proc/self/statm, 0 if unreadable. */
static size_t rss_bytes(void)
{
        unsigned long size, resident;
        FILE *f = fopen("/proc/self/statm", "r");
        int n;

        if (!f)
                return 0;
        n = fscanf(f, "%lu %lu", &size, &resident);
        fclose(f);
        if (n != 2)
                return 0;
        return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * Row r is peaked on class r % k (0.6), with 0.25 on a second class that
 * varies with r and the rest spread evenly: the confident guesses of a
 * class's items then fall in many columns, which keeps a pooled state
 * taking cells over for the whole run.
 */
static double *make_rows(unsigned k)
{
        double *rows = calloc((size_t)N_ROWS * k, sizeof(double));

        assert_non_null(rows);
        for (unsigned r = 0; r < N_ROWS; r++) {
                double *p = rows + (size_t)r * k;
                unsigned t = r % k, o = (t + 1 + (r / k * 7) % (k - 1)) % k;

                for (unsigned j = 0; j < k; j++)
                        p[j] = 0.15 / (k - 2);
                p[t] = 0.6;
                p[o] = 0.25;
        }
        return rows;
}

struct run {
        size_t mem_1m, mem_5m, rss_1m, rss_5m;
        unsigned suspect, by_tree, by_rule;
};

/* Feeds N_ITEMS items; 85% carry the row's peak class as label. */
static void feed(struct cl_state *st, const double *rows, unsigned k,
                 struct run *run)
{
        uint64_t seed = 0x9e3779b97f4a7c15ULL;
        struct cl_verdict v;

        for (unsigned n = 1; n <= N_ITEMS; n++) {
                uint64_t x = next_u64(&seed);
                unsigned r = (unsigned)(x % N_ROWS);
                unsigned label = r % k;

                if ((x >> 32) % 100 < 15)
                        label = (unsigned)((x >> 40) % k);
                assert_int_equal(cl_observe(st, label, rows + (size_t)r * k,
                                            k, &v, NULL),
                                 0);
                if (v.tag == CL_TAG_SUSPECT) {
                        run->suspect++;
                        run->by_tree += strncmp(v.reason, "pbnr ", 5) == 0;
                        run->by_rule += strncmp(v.reason, "pbnr-cl ", 8) == 0;
                }
                if (n == N_CHECK) {
                        run->mem_1m = cl_state_memory(st);
                        run->rss_1m = rss_bytes();
                }
        }
        run->mem_5m = cl_state_memory(st);
        run->rss_5m = rss_bytes();
}

static void check_flat(const struct cl_params *p, struct run *run)
{
        struct cl_state *st = NULL;
        double *rows = make_rows(p->k);

        assert_int_equal(cl_state_new(p, &st), 0);
        feed(st, rows, p->k, run);
        printf("k=%u cells=%u items=%u state_bytes=%zu rss_1m=%zu "
               "rss_5m=%zu suspect=%u by_tree=%u by_rule=%u\n",
               p->k, p->cells, N_ITEMS, run->mem_5m, run->rss_1m,
               run->rss_5m, run->suspect, run->by_tree, run->by_rule);
        assert_int_equal(run->mem_1m, run->mem_5m);
        assert_true(run->rss_1m > 0);
        assert_true(run->rss_5m <= run->rss_1m + RSS_SLACK);
        cl_state_free(st);
        free(rows);
}

static void test_cl_observe_memory_flat_all_cells(void **unused)
{
        struct cl_params p;
        struct run run = { 0 };

        (void)unused;
        cl_params_init(&p, 10);
        assert_int_equal(p.cells, 9);
        check_flat(&p, &run);
        assert_true(run.by_tree > 0);
        assert_int_equal(run.by_rule, 0);
}

static void test_cl_observe_memory_flat_pooled_cells(void **unused)
{
        struct cl_params p;
        struct run run = { 0 };

        (void)unused;
        cl_params_init(&p, 256);
        p.cells = 2;
        check_flat(&p, &run);
        /* Both ways of deciding ran: kept cells' trees and the rule for
         * columns without one. */
        assert_true(run.by_tree > 0);
        assert_true(run.by_rule > 0);
}

static void print_table(void)
{
        static const unsigned ks[] = { 10, 100, 200, 500, 1000, 4096 };
        static const enum cl_filter fs[] = {
                CL_FILTER_PRUNE_BY_NOISE_RATE, CL_FILTER_BOTH,
                CL_FILTER_PRUNE_BY_CLASS, CL_FILTER_CONFIDENT_LEARNING,
                CL_FILTER_LOW_SELF_CONFIDENCE,
        };

        printf("| K | cells | filter | B = 256 | B = 64 | every cell, B = 256 |\n");
        printf("|---|---|---|---|---|---|\n");
        for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++) {
                for (size_t b = 0; b < sizeof(fs) / sizeof(fs[0]); b++) {
                        struct cl_params p;
                        size_t m256, m64, exact;

                        cl_params_init(&p, ks[a]);
                        p.filter = fs[b];
                        m256 = cl_params_memory(&p);
                        p.bins = 64;
                        m64 = cl_params_memory(&p);
                        p.bins = 256;
                        p.cells = ks[a] - 1;
                        exact = cl_params_memory(&p);
                        cl_params_init(&p, ks[a]);
                        printf("| %u | %u | %s | %.2f MiB | %.2f MiB | "
                               "%.1f MiB |\n",
                               ks[a], p.cells, cl_filter_name(fs[b]),
                               (double)m256 / (1 << 20),
                               (double)m64 / (1 << 20),
                               (double)exact / (1 << 20));
                }
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_observe_memory_flat_all_cells),
                cmocka_unit_test(test_cl_observe_memory_flat_pooled_cells),
        };

        if (argc > 1 && strcmp(argv[1], "--table") == 0) {
                print_table();
                return 0;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
