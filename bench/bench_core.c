/*
 * bench_core.c - speed and memory of core/ alone, no I/O in the timed part.
 *
 *   bench_core observe K SECONDS   cl_observe() on generated rows, warm
 *   bench_core rss N               peak RSS of a K = 10 loop at 1 M and N
 *   bench_core batch LABELS.csv PROBS.npy
 *                                  cl_batch over CIFAR-10H (stream order)
 *
 * Each prints one line of key=value pairs that bench/run reads.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "cl.h"
#include "cl_batch.h"
#include "csvread.h"
#include "npy.h"

/* Rows cycled through by the timed loop: enough to defeat branch
 * predictors, small enough to stay in the last-level cache up to K = 100. */
#define POOL_BYTES ((size_t)8 << 20)
#define POOL_MAX_ROWS 65536u
#define CHUNK 4096u

struct pool {
        unsigned k;
        size_t n;
        long *labels;
        double *probs;
};

static int pool_init(struct pool *pl, unsigned k, uint64_t seed)
{
        size_t n = POOL_BYTES / (k * sizeof(double));

        if (n > POOL_MAX_ROWS)
                n = POOL_MAX_ROWS;
        pl->k = k;
        pl->n = n;
        pl->labels = malloc(n * sizeof(*pl->labels));
        pl->probs = malloc(n * k * sizeof(*pl->probs));
        if (!pl->labels || !pl->probs) {
                free(pl->labels);
                free(pl->probs);
                return -1;
        }
        bench_rows(seed, k, n, pl->labels, pl->probs);
        return 0;
}

static void pool_release(struct pool *pl)
{
        free(pl->labels);
        free(pl->probs);
}

/*
 * Feeds rows [from, from + count) of the pool (cycling), releasing held
 * items when due.  Returns the number of suspects, or -1 on an error.
 */
static long feed(struct cl_state *st, const struct pool *pl, size_t from,
                 size_t count, struct cl_verdict *out, size_t cap)
{
        struct cl_verdict v;
        long suspects = 0;

        for (size_t i = 0; i < count; i++) {
                size_t r = (from + i) % pl->n;
                int rc = cl_observe(st, pl->labels[r], &pl->probs[r * pl->k],
                                    pl->k, &v, NULL);

                if (rc < 0) {
                        fprintf(stderr, "bench_core: cl_observe: %s\n",
                                cl_strerror(rc));
                        return -1;
                }
                suspects += v.tag == CL_TAG_SUSPECT;
                if (v.tag == CL_TAG_HELD && cl_state_release_due(st) &&
                    cl_state_release(st, out, cap) < 0)
                        return -1;
        }
        return suspects;
}

static int new_warm_state(const struct pool *pl, struct cl_state **ret_st,
                          size_t *ret_fed)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict *out;
        size_t cap, warm;
        int rc;

        cl_params_init(&p, pl->k);
        rc = cl_state_new(&p, &st);
        if (rc < 0) {
                fprintf(stderr, "bench_core: cl_state_new: %s\n",
                        cl_strerror(rc));
                return -1;
        }
        cap = cl_state_hold_capacity(st);
        out = malloc((cap ? cap : 1) * sizeof(*out));
        /* Warm: three times the warm-up total, at least 100k rows, so
         * every histogram the filter reads has data. */
        warm = (size_t)(3 * p.warmup_total);
        if (warm < 100000)
                warm = 100000;
        if (!out || feed(st, pl, 0, warm, out, cap) < 0 ||
            cl_state_release_force(st, out, cap) < 0) {
                free(out);
                cl_state_free(st);
                return -1;
        }
        free(out);
        *ret_st = st;
        *ret_fed = warm;
        return 0;
}

static int run_observe(unsigned k, double seconds)
{
        struct pool pl;
        struct cl_state *st;
        size_t pos, items = 0, snap_len = 0;
        double c0, w0, cpu, wall;
        char *snap = NULL;
        long suspects = 0, s;

        if (pool_init(&pl, k, 42 + k) < 0)
                return 1;
        if (new_warm_state(&pl, &st, &pos) < 0) {
                pool_release(&pl);
                return 1;
        }
        c0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
        w0 = bench_clock(CLOCK_MONOTONIC);
        do {
                s = feed(st, &pl, pos + items, CHUNK, NULL, 0);
                if (s < 0)
                        break;
                suspects += s;
                items += CHUNK;
                cpu = bench_clock(CLOCK_THREAD_CPUTIME_ID) - c0;
        } while (cpu < seconds);
        wall = bench_clock(CLOCK_MONOTONIC) - w0;
        if (s >= 0 && cl_state_snapshot(st, &snap, &snap_len) < 0)
                s = -1;
        if (s >= 0)
                printf("core_observe k=%u items=%zu suspect=%ld cpu_s=%.3f "
                       "wall_s=%.3f items_per_cpu_s=%.0f items_per_s=%.0f "
                       "snapshot_bytes=%zu state_bytes=%zu\n",
                       k, items, suspects, cpu, wall, (double)items / cpu,
                       (double)items / wall, snap_len,
                       cl_state_memory(st));
        free(snap);
        cl_state_free(st);
        pool_release(&pl);
        return s < 0;
}

static int run_rss(size_t total)
{
        struct pool pl;
        struct cl_state *st;
        size_t fed, done = 0, mark = 1000000;
        double c0;

        if (pool_init(&pl, 10, 7) < 0)
                return 1;
        if (new_warm_state(&pl, &st, &fed) < 0) {
                pool_release(&pl);
                return 1;
        }
        done = fed;
        c0 = bench_clock(CLOCK_THREAD_CPUTIME_ID);
        while (done < total) {
                size_t n = total - done < CHUNK ? total - done : CHUNK;

                if (feed(st, &pl, done, n, NULL, 0) < 0)
                        break;
                done += n;
                if (done >= mark || done == total) {
                        printf("core_rss k=10 items=%zu peak_rss_kib=%ld "
                               "state_bytes=%zu cpu_s=%.2f\n",
                               done, bench_peak_rss_kib(),
                               cl_state_memory(st),
                               bench_clock(CLOCK_THREAD_CPUTIME_ID) - c0);
                        mark *= 10;
                }
        }
        cl_state_free(st);
        pool_release(&pl);
        return done < total;
}

/* Labels from the CSV column label, probabilities of row item of the
 * .npy, in CSV order.  Returns the number of rows, or 0 on failure. */
static size_t load_stream(const char *csv_path, const char *npy_path,
                          long **ret_labels, double **ret_probs,
                          unsigned *ret_k)
{
        char err[256];
        struct npy_array a;
        struct csv_reader *csv;
        long *labels = NULL;
        double *probs = NULL;
        size_t n = 0, cap = 0;
        int cl, ci, rc;
        long long lab, item;

        if (npy_load(npy_path, &a, err, sizeof(err)) < 0) {
                fprintf(stderr, "bench_core: %s\n", err);
                return 0;
        }
        csv = csv_open(csv_path, err, sizeof(err));
        if (!csv) {
                fprintf(stderr, "bench_core: %s\n", err);
                npy_array_free(&a);
                return 0;
        }
        cl = csv_column(csv, "label");
        ci = csv_column(csv, "item");
        while (cl >= 0 && ci >= 0 && (rc = csv_next(csv, err, sizeof(err))) > 0) {
                if (csv_parse_i64(csv_field(csv, (size_t)cl), &lab) < 0 ||
                    csv_parse_i64(csv_field(csv, (size_t)ci), &item) < 0 ||
                    item < 0 || (size_t)item >= a.rows)
                        break;
                if (n == cap) {
                        cap = cap ? cap * 2 : 65536;
                        labels = realloc(labels, cap * sizeof(*labels));
                        probs = realloc(probs, cap * a.cols * sizeof(*probs));
                        if (!labels || !probs)
                                break;
                }
                labels[n] = (long)lab;
                for (size_t c = 0; c < a.cols; c++)
                        probs[n * a.cols + c] = npy_get(&a, (size_t)item, c);
                n++;
        }
        csv_close(csv);
        *ret_k = (unsigned)a.cols;
        npy_array_free(&a);
        *ret_labels = labels;
        *ret_probs = probs;
        return n;
}

static int run_batch(const char *csv_path, const char *npy_path)
{
        struct cl_batch_params p;
        struct cl_batch *b = NULL;
        unsigned char *mask = NULL;
        long *labels = NULL;
        double *probs = NULL, w0, best = -1.0;
        size_t n, flagged = 0;
        unsigned k = 0;
        int rc = 0;

        n = load_stream(csv_path, npy_path, &labels, &probs, &k);
        mask = malloc(n ? n : 1);
        if (!n || !mask) {
                rc = -1;
                goto out_free;
        }
        cl_batch_params_init(&p, k);
        /* Best of three: the first run also pays page faults. */
        for (int rep = 0; rep < 3 && rc == 0; rep++) {
                w0 = bench_clock(CLOCK_MONOTONIC);
                rc = cl_batch_new(&p, labels, probs, n, &b);
                if (rc == 0)
                        rc = cl_batch_find_issues(
                                b, CL_FILTER_PRUNE_BY_NOISE_RATE, mask,
                                &flagged);
                w0 = bench_clock(CLOCK_MONOTONIC) - w0;
                if (best < 0 || w0 < best)
                        best = w0;
                cl_batch_free(b);
                b = NULL;
        }
        if (rc == 0)
                printf("core_batch rows=%zu k=%u flagged=%zu seconds=%.4f\n",
                       n, k, flagged, best);
        else
                fprintf(stderr, "bench_core: batch: %s\n", cl_strerror(rc));
out_free:
        free(mask);
        free(labels);
        free(probs);
        return rc != 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: bench_core observe K SECONDS\n"
                        "       bench_core rss ITEMS\n"
                        "       bench_core batch LABELS.csv PROBS.npy\n");
}

int main(int argc, char **argv)
{
        if (argc == 4 && !strcmp(argv[1], "observe"))
                return run_observe((unsigned)strtoul(argv[2], NULL, 10),
                                   strtod(argv[3], NULL));
        if (argc == 3 && !strcmp(argv[1], "rss"))
                return run_rss((size_t)strtoull(argv[2], NULL, 10));
        if (argc == 4 && !strcmp(argv[1], "batch"))
                return run_batch(argv[2], argv[3]);
        usage();
        return 2;
}
