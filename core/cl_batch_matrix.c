/*
 * cl_batch_matrix.c - the K x K steps of batch mode: calibration of the
 * confident joint, the prune matrix and estimate_latent (cleanlab 2.9.0,
 * cleanlab/count.py and cleanlab/filter.py; formulas in docs/batch.md).
 *
 * Calibration and the prune matrix feed integer results through rint()
 * and truncation, where one ulp decides a count (a 3.4999999999999996
 * rounds differently from 3.5): they run as plain loops in numpy's exact
 * operation order.  estimate_latent only produces doubles compared within
 * 1e-12, so its sums, scalings and transposes go through CBLAS and the
 * optional linear solve (py_method "eqn") through LAPACKE.
 */
#include "cl_batch.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>

/* cleanlab's TINY_VALUE, lower bound of every divisor. */
#define TINY 1e-100
/* Lower bound of py (cleanlab's CLIPPING_LOWER_BOUND). */
#define PY_MIN 1e-6
/* Upper bound of an off-diagonal noise rate. */
#define NOISE_RATE_MAX 0.9999

static int check_counts(const int64_t *counts, unsigned k, int64_t *ret_n)
{
        int64_t n = 0;
        unsigned i;

        if (k == 0)
                return CL_E_PARAM;
        for (i = 0; i < k; i++) {
                if (counts[i] < 0)
                        return CL_E_PARAM;
                n += counts[i];
        }
        *ret_n = n;
        return 0;
}

/*
 * cleanlab round_preserving_sum(): rint() every value, then move the
 * largest (for +1) or smallest (for -1) residuals until the integers add
 * up to rint(sum(y)).  y, a, res and ord hold k values.
 */
static void round_keep_total(const double *y, unsigned k,
                             enum cl_batch_sort mode, double *a, double *res,
                             size_t *ord)
{
        double want, have, diff, step;
        size_t i, j, m;

        for (j = 0; j < k; j++)
                a[j] = rint(y[j]);
        want = rint(cl_batch_sum(y, k));
        /* Sums of integral doubles are exact in any order below 2^53. */
        have = rint(cl_batch_sum(a, k));
        while (fabs(have - want) > CL_EPS) {
                diff = rint(want - have);
                step = diff < 0 ? -1.0 : 1.0;
                m = fabs(diff) < (double)k ? (size_t)fabs(diff) : k;
                for (j = 0; j < k; j++)
                        res[j] = y[j] - a[j];
                cl_batch_argsort(res, k, mode, ord);
                for (i = 0; i < m; i++)
                        a[step > 0 ? ord[k - 1 - i] : ord[i]] += step;
                have = rint(cl_batch_sum(a, k));
        }
}

/* Calibration steps 1 and 2 into y (K * K): each row scaled to its class
 * count, then the whole to n; t is K * K scratch. */
static void calibrate_scale(const int64_t *cj, const int64_t *counts,
                            unsigned k, double n, double *y, double *t)
{
        size_t i, j, kk = k;
        int64_t row;
        double r, s;

        for (i = 0; i < kk; i++) {
                row = 0;
                for (j = 0; j < kk; j++)
                        row += cj[i * kk + j];
                r = fmax((double)row, TINY);
                /* cleanlab divides first, then multiplies. */
                for (j = 0; j < kk; j++)
                        y[i * kk + j] =
                                (double)cj[i * kk + j] / r * (double)counts[i];
        }
        /* numpy sums this intermediate in its memory order, which is the
         * transpose of ours: column by column. */
        for (j = 0; j < kk; j++)
                for (i = 0; i < kk; i++)
                        t[j * kk + i] = y[i * kk + j];
        s = fmax(cl_batch_sum(t, kk * kk), TINY);
        for (i = 0; i < kk * kk; i++)
                y[i] = y[i] / s * n;
}

int cl_batch_calibrate(const int64_t *cj, const int64_t *class_counts,
                       unsigned k, enum cl_batch_sort mode,
                       int64_t *ret_cal)
{
        size_t kk = k, i, j;
        double *y, *t, *a, *res;
        size_t *ord;
        int64_t n;
        int err;

        err = check_counts(class_counts, k, &n);
        if (err < 0)
                return err;
        y = malloc((2 * kk * kk + 2 * kk) * sizeof(*y));
        ord = malloc(kk * sizeof(*ord));
        if (!y || !ord) {
                err = CL_E_NOMEM;
                goto out_free;
        }
        t = y + kk * kk;
        a = t + kk * kk;
        res = a + kk;

        calibrate_scale(cj, class_counts, k, (double)n, y, t);
        for (i = 0; i < kk; i++) {
                round_keep_total(y + i * kk, k, mode, a, res, ord);
                for (j = 0; j < kk; j++)
                        ret_cal[i * kk + j] = (int64_t)a[j];
        }
out_free:
        free(ord);
        free(y);
        return err;
}

/* One column c of the prune matrix: m0 is column c of the transposed
 * joint (m0[j] = cal[c][j]), x and d are K-long scratch, out gets column
 * c. */
static void prune_column(const int64_t *cal, unsigned k, unsigned c,
                         long min_examples, double frac_noise, double *x,
                         double *d, int64_t *out)
{
        size_t kk = k, j;
        int64_t diag = cal[c * kk + c], raised, nonzero = 0;
        double per_cell, moved;

        raised = diag > min_examples ? diag : (int64_t)min_examples;
        for (j = 0; j < kk; j++)
                nonzero += cal[c * kk + j] != 0;
        /* The increase of the diagonal is taken evenly from the other
         * non-zero cells; the count assumes the diagonal is one of them. */
        per_cell = (double)(raised - diag) /
                   fmax((double)nonzero - 1.0, 1.0);
        for (j = 0; j < kk; j++)
                x[j] = fmax((double)cal[c * kk + j] - per_cell, 0.0);
        x[c] = (double)raised;
        /* frac_noise keeps that share of each noise cell and moves the rest
         * to the diagonal.  cleanlab works on the transposed joint, a
         * column-major view, so numpy sums each column as a contiguous
         * run, in its pairwise order (the diagonal adds 0); for K > 8
         * that differs from a running sum, and one ulp moves the
         * truncated diagonal across an integer. */
        for (j = 0; j < kk; j++)
                d[j] = j == c ? 0.0 : x[j] - x[j] * frac_noise;
        moved = cl_batch_sum(d, kk);
        for (j = 0; j < kk; j++) {
                double v = j == c ? x[c] + moved : x[j] * frac_noise;

                out[j * kk + c] = (int64_t)v; /* truncation, as astype */
        }
}

int cl_batch_make_prune_matrix(const int64_t *cal, unsigned k,
                               long min_examples_per_class,
                               double frac_noise, int64_t *ret_prune)
{
        double *x;
        unsigned c;

        if (k == 0 || min_examples_per_class < 0 ||
            !(frac_noise > 0.0 && frac_noise <= 1.0))
                return CL_E_PARAM;
        x = malloc(2 * (size_t)k * sizeof(*x));
        if (!x)
                return CL_E_NOMEM;
        for (c = 0; c < k; c++)
                prune_column(cal, k, c, min_examples_per_class, frac_noise, x,
                             x + k, ret_prune);
        free(x);
        return 0;
}

/* Divides column j of the row-major k x k matrix m by max(div[j], TINY). */
static void scale_columns(double *m, const double *div, int k)
{
        int j;

        for (j = 0; j < k; j++)
                cblas_dscal(k, 1.0 / fmax(div[j], TINY), m + j, k);
}

/* cleanlab clip_noise_rates(): off-diagonal cells into [0, 0.9999], the
 * diagonal kept, then every column scaled to sum 1. */
static void clip_noise_rates(double *m, int k, const double *ones,
                             double *colsum)
{
        int i, j;

        for (i = 0; i < k; i++)
                for (j = 0; j < k; j++)
                        if (i != j)
                                m[i * k + j] = fmin(fmax(m[i * k + j], 0.0),
                                                    NOISE_RATE_MAX);
        cblas_dgemv(CblasRowMajor, CblasTrans, k, k, 1.0, m, k, ones, 1, 0.0,
                    colsum, 1);
        scale_columns(m, colsum, k);
}

/* cleanlab clip_values(py, 1e-6, 1, new_sum = 1). */
static void clip_py(double *py, int k)
{
        int j;

        for (j = 0; j < k; j++)
                py[j] = fmin(fmax(py[j], PY_MIN), 1.0);
        /* All values are now positive: the absolute sum is the sum. */
        cblas_dscal(k, 1.0 / fmax(cblas_dasum(k, py, 1), TINY), py, 1);
}

/* py before clipping, from the unclipped matrices (cleanlab compute_py).
 * lu (k * k) and piv (k) are scratch for the "eqn" solve. */
static int estimate_py(enum cl_batch_py method, int k, const double *noise,
                       const double *inv, const double *ps,
                       const double *colsum, double *lu, lapack_int *piv,
                       double *py)
{
        int j;

        switch (method) {
        case CL_BATCH_PY_CNT:
                for (j = 0; j < k; j++)
                        py[j] = inv[j * k + j] /
                                fmax(noise[j * k + j], TINY) * ps[j];
                return 0;
        case CL_BATCH_PY_EQN:
                /* noise * py = ps; cleanlab inverts the matrix instead,
                 * which agrees up to rounding. */
                cblas_dcopy(k * k, noise, 1, lu, 1);
                cblas_dcopy(k, ps, 1, py, 1);
                if (LAPACKE_dgesv(LAPACK_ROW_MAJOR, k, 1, lu, k, piv, py, 1))
                        return CL_E_PARAM;
                return 0;
        case CL_BATCH_PY_MARGINAL:
                cblas_dcopy(k, colsum, 1, py, 1);
                cblas_dscal(k, 1.0 / fmax(cblas_dasum(k, colsum, 1), TINY),
                            py, 1);
                return 0;
        case CL_BATCH_PY_MARGINAL_PS:
                cblas_dgemv(CblasRowMajor, CblasNoTrans, k, k, 1.0, inv, k,
                            ps, 1, 0.0, py, 1);
                return 0;
        }
        return CL_E_PARAM;
}

/* Scratch of estimate_latent, one allocation. */
struct latent_work {
        double *c, *ones, *colsum, *rowsum, *ps, *lu;
        lapack_int *piv;
};

static int latent_work_alloc(struct latent_work *w, size_t k)
{
        size_t j;

        w->c = malloc((2 * k * k + 4 * k) * sizeof(double));
        w->piv = malloc(k * sizeof(*w->piv));
        if (!w->c || !w->piv) {
                free(w->c);
                free(w->piv);
                return CL_E_NOMEM;
        }
        w->lu = w->c + k * k;
        w->ones = w->lu + k * k;
        w->colsum = w->ones + k;
        w->rowsum = w->colsum + k;
        w->ps = w->rowsum + k;
        for (j = 0; j < k; j++)
                w->ones[j] = 1.0;
        return 0;
}

int cl_batch_estimate_latent(const int64_t *cj, const int64_t *class_counts,
                             unsigned k, enum cl_batch_py method,
                             double *ret_py, double *ret_noise,
                             double *ret_inv_noise)
{
        struct latent_work w;
        int64_t n;
        int err, ik = (int)k, i;

        err = check_counts(class_counts, k, &n);
        if (err < 0)
                return err;
        if (n == 0 || k > CL_BATCH_K_MAX)
                return CL_E_PARAM;
        err = latent_work_alloc(&w, k);
        if (err < 0)
                return err;

        for (i = 0; i < ik * ik; i++)
                w.c[i] = (double)cj[i];
        for (i = 0; i < ik; i++)
                w.ps[i] = (double)class_counts[i] / (double)n;
        /* Totals of integer counts: exact whatever order BLAS adds in. */
        cblas_dgemv(CblasRowMajor, CblasTrans, ik, ik, 1.0, w.c, ik, w.ones,
                    1, 0.0, w.colsum, 1);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, ik, ik, 1.0, w.c, ik,
                    w.ones, 1, 0.0, w.rowsum, 1);
        /* noise[i][j] = C[i][j] / colsum[j]: P(given i | true j). */
        cblas_dcopy(ik * ik, w.c, 1, ret_noise, 1);
        scale_columns(ret_noise, w.colsum, ik);
        /* inv[j][i] = C[i][j] / rowsum[i]: P(true j | given i). */
        for (i = 0; i < ik; i++)
                cblas_dcopy(ik, w.c + i * ik, 1, ret_inv_noise + i, ik);
        scale_columns(ret_inv_noise, w.rowsum, ik);

        err = estimate_py(method, ik, ret_noise, ret_inv_noise, w.ps,
                          w.colsum, w.lu, w.piv, ret_py);
        if (err == 0) {
                clip_py(ret_py, ik);
                clip_noise_rates(ret_noise, ik, w.ones, w.colsum);
                clip_noise_rates(ret_inv_noise, ik, w.ones, w.colsum);
        }
        free(w.piv);
        free(w.c);
        return err;
}
