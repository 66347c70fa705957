/*
 * batch_dump.c - runs the batch mode on many cases read from one file and
 * writes every result the differential test compares with cleanlab
 * (tests/diff/compare.py), so thousands of cases cost one process start.
 *
 * Usage: batch_dump IN OUT
 *
 * All fields are 8 bytes in the machine's byte order (the writer runs on
 * the same machine).  IN is a sequence of cases:
 *
 *      id k n sort min_examples  int64 x 5 (sort: enum cl_batch_sort;
 *                                min_examples_per_class)
 *      frac_noise                float64
 *      labels[n]                 int64
 *      probs[n * k]              float64, row-major
 *
 * OUT gets one record per case, in input order:
 *
 *      id status                 int64; status: cl_batch_new() result
 * and when status is 0:
 *      accepted parity refuses too_few_labels           int64 x 4
 *      thresholds[k] class_counts[k]                    float64, int64
 *      joint[k * k] joint_calibrated[k * k]             int64
 *      per calibrated, then raw joint: py[k] noise[k * k] inv_noise[k * k]
 *              (cl_batch_latent() layouts)              float64
 *      num_label_issues off_diagonal, off_diagonal_calibrated   int64
 *      per filter in enum cl_filter order: mask[n]      int64 (0 or 1)
 *      per score in enum cl_batch_score order: scores[n]        float64
 *      per score: count, rows[count]: the prune_by_noise_rate rows
 *              ranked by that score                     int64
 *
 * Exit status: 0 all cases written, 1 unreadable input or I/O error.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "cl_batch.h"

#define NAME "batch_dump"
#define N_MAX 10000000u /* rows per case; the test uses at most 2000 */
#define FILTERS 7       /* CL_FILTER_PRUNE_BY_NOISE_RATE ..
                         * CL_FILTER_LOW_NORMALIZED_MARGIN */
#define SCORES 3        /* enum cl_batch_score */

/* One case and the buffers for its results. */
struct dump_case {
        int64_t id;
        unsigned k;
        size_t n;
        enum cl_batch_sort sort;
        long min_examples;
        double frac_noise;
        long *labels;
        double *probs;
        unsigned char *mask;
        double *scores;
        size_t *rows;
};

static void case_release(struct dump_case *c)
{
        free(c->labels);
        free(c->probs);
        free(c->mask);
        free(c->scores);
        free(c->rows);
        memset(c, 0, sizeof(*c));
}

static bool put_i64(FILE *f, int64_t v)
{
        return fwrite(&v, sizeof(v), 1, f) == 1;
}

static bool put_f64s(FILE *f, const double *v, size_t count)
{
        return fwrite(v, sizeof(*v), count, f) == count;
}

static bool put_i64s(FILE *f, const int64_t *v, size_t count)
{
        return fwrite(v, sizeof(*v), count, f) == count;
}

/*
 * Reads the next case.  Returns 1 with *c filled, 0 at the end of the
 * file, -1 on a short or malformed case (message printed).
 */
static int case_read(FILE *f, struct dump_case *c)
{
        int64_t head[5], label;
        size_t r;

        memset(c, 0, sizeof(*c));
        r = fread(head, sizeof(head[0]), 5, f);
        if (r == 0 && feof(f))
                return 0;
        if (r != 5 || fread(&c->frac_noise, sizeof(double), 1, f) != 1 ||
            head[1] < 2 || head[1] > (int64_t)CL_BATCH_K_MAX ||
            head[2] < 1 || head[2] > (int64_t)N_MAX ||
            (head[3] != CL_BATCH_SORT_NUMPY &&
             head[3] != CL_BATCH_SORT_STABLE) ||
            head[4] < 0 || head[4] > LONG_MAX) {
                fprintf(stderr, NAME ": malformed case header\n");
                return -1;
        }
        c->id = head[0];
        c->k = (unsigned)head[1];
        c->n = (size_t)head[2];
        c->sort = (enum cl_batch_sort)head[3];
        c->min_examples = (long)head[4];
        c->labels = malloc(c->n * sizeof(*c->labels));
        c->probs = malloc(c->n * c->k * sizeof(*c->probs));
        c->mask = malloc(c->n);
        c->scores = malloc(c->n * sizeof(*c->scores));
        c->rows = malloc(c->n * sizeof(*c->rows));
        if (!c->labels || !c->probs || !c->mask || !c->scores || !c->rows) {
                fprintf(stderr, NAME ": out of memory (n=%zu k=%u)\n", c->n,
                        c->k);
                return -1;
        }
        for (r = 0; r < c->n; r++) {
                if (fread(&label, sizeof(label), 1, f) != 1)
                        goto out_short;
                c->labels[r] = (long)label;
        }
        if (fread(c->probs, sizeof(double), c->n * c->k, f) != c->n * c->k)
                goto out_short;
        return 1;
out_short:
        fprintf(stderr, NAME ": case id=%lld is cut short\n",
                (long long)c->id);
        return -1;
}

static bool put_latent(FILE *f, const struct cl_batch *b, bool calibrated,
                       unsigned k)
{
        const double *py, *nm, *inv;
        size_t kk = (size_t)k * k;

        cl_batch_latent(b, calibrated, &py, &nm, &inv);
        return put_f64s(f, py, k) && put_f64s(f, nm, kk) &&
               put_f64s(f, inv, kk);
}

static bool put_statistics(FILE *f, const struct cl_batch *b, unsigned k)
{
        struct cl_batch_info info;
        size_t kk = (size_t)k * k;

        cl_batch_info(b, &info);
        return put_i64(f, (int64_t)info.accepted) &&
               put_i64(f, info.parity) && put_i64(f, info.cleanlab_refuses) &&
               put_i64(f, info.too_few_labels) &&
               put_f64s(f, cl_batch_thresholds(b), k) &&
               put_i64s(f, cl_batch_class_counts(b), k) &&
               put_i64s(f, cl_batch_joint(b), kk) &&
               put_i64s(f, cl_batch_joint_calibrated(b), kk) &&
               put_latent(f, b, true, k) && put_latent(f, b, false, k) &&
               put_i64(f, (int64_t)cl_batch_num_label_issues(
                                  b, CL_BATCH_COUNT_OFF_DIAGONAL)) &&
               put_i64(f, (int64_t)cl_batch_num_label_issues(
                                  b, CL_BATCH_COUNT_OFF_DIAGONAL_CALIBRATED));
}

static bool put_mask(FILE *f, const unsigned char *mask, size_t n)
{
        size_t r;

        for (r = 0; r < n; r++)
                if (!put_i64(f, mask[r]))
                        return false;
        return true;
}

static bool put_rows(FILE *f, const size_t *rows, size_t count)
{
        size_t i;

        if (!put_i64(f, (int64_t)count))
                return false;
        for (i = 0; i < count; i++)
                if (!put_i64(f, (int64_t)rows[i]))
                        return false;
        return true;
}

/* Masks, scores and rankings; 0, or -1 on a library or write error. */
static int put_results(FILE *f, struct cl_batch *b, struct dump_case *c)
{
        size_t count;
        int i, err;

        for (i = 0; i < FILTERS; i++) {
                err = cl_batch_find_issues(b, (enum cl_filter)i, c->mask,
                                           NULL);
                if (err < 0 || !put_mask(f, c->mask, c->n))
                        return -1;
        }
        for (i = 0; i < SCORES; i++) {
                err = cl_batch_quality(b, (enum cl_batch_score)i, c->scores);
                if (err < 0 || !put_f64s(f, c->scores, c->n))
                        return -1;
        }
        err = cl_batch_find_issues(b, CL_FILTER_PRUNE_BY_NOISE_RATE, c->mask,
                                   NULL);
        for (i = 0; err == 0 && i < SCORES; i++) {
                err = cl_batch_rank(b, c->mask, (enum cl_batch_score)i,
                                    c->rows, &count);
                if (err == 0 && !put_rows(f, c->rows, count))
                        return -1;
        }
        return err < 0 ? -1 : 0;
}

/* Runs one case and writes its record; 0 or -1. */
static int case_run(FILE *out, struct dump_case *c)
{
        struct cl_batch_params p;
        struct cl_batch *b = NULL;
        int err, rc = -1;

        cl_batch_params_init(&p, c->k);
        p.sort = c->sort;
        p.min_examples_per_class = c->min_examples;
        p.frac_noise = c->frac_noise;
        err = cl_batch_new(&p, c->labels, c->probs, c->n, &b);
        if (!put_i64(out, c->id) || !put_i64(out, err))
                goto out_free;
        if (err < 0) {
                rc = 0;
                goto out_free;
        }
        if (!put_statistics(out, b, c->k) || put_results(out, b, c) < 0)
                goto out_free;
        rc = 0;
out_free:
        if (rc < 0)
                fprintf(stderr, NAME ": case id=%lld failed\n",
                        (long long)c->id);
        cl_batch_free(b);
        return rc;
}

int main(int argc, char **argv)
{
        struct dump_case c;
        FILE *in, *out;
        int got, rc = 1;

        if (argc != 3) {
                fprintf(stderr, "usage: " NAME " IN OUT\n");
                return 1;
        }
        in = fopen(argv[1], "rb");
        if (!in) {
                fprintf(stderr, NAME ": %s: %s\n", argv[1], strerror(errno));
                return 1;
        }
        out = fopen(argv[2], "wb");
        if (!out) {
                fprintf(stderr, NAME ": %s: %s\n", argv[2], strerror(errno));
                goto out_close_in;
        }
        while ((got = case_read(in, &c)) == 1) {
                if (case_run(out, &c) < 0)
                        break;
                case_release(&c);
        }
        case_release(&c);
        if (got == 0 && fclose(out) == 0)
                rc = 0;
        else if (got == 0)
                fprintf(stderr, NAME ": %s: write failed\n", argv[2]);
        else
                fclose(out);
out_close_in:
        fclose(in);
        return rc;
}
