/*
 * cl_batch.c - exact batch mode: row validation, thresholds, confident
 * counting, the issue filters of cleanlab 2.9.0's find_label_issues and
 * the label quality scores.  The K x K steps are in cl_batch_matrix.c, the
 * numpy sum and sort in cl_batch_numpy.c.
 */
#include "cl_batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Lower bound of the self-confidence and of v in the entropy score. */
#define SCORE_MIN 1e-6

/* estimate_latent results of one joint. */
struct latent {
        double *py, *noise, *inv;
};

struct cl_batch {
        struct cl_batch_params p;
        const long *labels;  /* borrowed, n values */
        const double *probs; /* borrowed, n * k values */
        size_t n;
        signed char *status; /* per row: 0 or CL_E_* */
        size_t rejected[7];  /* by reason, index -CL_E_* */
        size_t accepted;
        bool cleanlab_refuses;
        unsigned distinct;
        size_t *by_class;    /* accepted rows grouped by label, ascending */
        size_t *class_start; /* k + 1 offsets into by_class */
        int64_t *counts;     /* k */
        double *thresholds;  /* k */
        double *cut;         /* k: thresholds - CL_EPS */
        int64_t *joint, *joint_cal, *prune, *joint_cal2; /* k * k each */
        struct latent latent[2]; /* [0] raw joint, [1] calibrated */
        double *latent_mem;
        size_t issues_off_diagonal, issues_calibrated;
        /* Scratch of find_issues and rank. */
        double *keys;        /* max(n, k) */
        size_t *order;       /* max(n, k) */
        size_t *rows;        /* n */
        unsigned char *mask; /* n */
        double *xlogx;       /* k */
};

void cl_batch_params_init(struct cl_batch_params *p, unsigned k)
{
        memset(p, 0, sizeof(*p));
        p->k = k;
        p->sort = CL_BATCH_SORT_NUMPY;
        p->min_examples_per_class = 1;
        p->frac_noise = 1.0;
        p->sum_tol = 0.0;
        p->py_method = CL_BATCH_PY_CNT;
}

int cl_batch_params_check(const struct cl_batch_params *p)
{
        if (p->k < 2 || p->k > CL_BATCH_K_MAX)
                return CL_E_PARAM;
        if (p->sort != CL_BATCH_SORT_NUMPY && p->sort != CL_BATCH_SORT_STABLE)
                return CL_E_PARAM;
        if (p->min_examples_per_class < 0)
                return CL_E_PARAM;
        if (!(p->frac_noise > 0.0 && p->frac_noise <= 1.0))
                return CL_E_PARAM;
        if (!(p->sum_tol >= 0.0))
                return CL_E_PARAM;
        if ((unsigned)p->py_method > CL_BATCH_PY_MARGINAL_PS)
                return CL_E_PARAM;
        return 0;
}

static const double *row_probs(const struct cl_batch *b, size_t r)
{
        return b->probs + r * b->p.k;
}

/* Index of the largest value; the lowest index wins ties (numpy). */
static unsigned argmax(const double *v, unsigned k)
{
        unsigned j, best = 0;

        for (j = 1; j < k; j++)
                if (v[j] > v[best])
                        best = j;
        return best;
}

/* The probability checks of one row: NaN or infinity, then range. */
static int check_values(const double *v, unsigned k, bool *ret_refused)
{
        unsigned j;

        for (j = 0; j < k; j++) {
                if (!isfinite(v[j])) {
                        /* A NaN passes cleanlab's range check, an
                         * infinity does not. */
                        for (; j < k && !*ret_refused; j++)
                                *ret_refused = isinf(v[j]);
                        return CL_E_NONFINITE;
                }
        }
        for (j = 0; j < k; j++) {
                if (v[j] < -CL_EPS || v[j] > 1.0 + CL_EPS) {
                        *ret_refused = true;
                        return CL_E_RANGE;
                }
        }
        return 0;
}

/*
 * Checks one row in the order of cl.h.  *ret_refused tells whether
 * cleanlab would reject the whole input for this row; the row sum is not
 * one of its checks.
 */
static int check_row(const struct cl_batch_params *p, long label,
                     const double *v, bool *ret_refused)
{
        double sum = 0.0;
        unsigned j;
        int err;

        *ret_refused = true;
        if (label == CL_BATCH_LABEL_INVALID)
                return CL_E_LABEL_TYPE;
        if (label < 0 || (unsigned long)label >= p->k)
                return CL_E_LABEL_RANGE;
        *ret_refused = false;
        err = check_values(v, p->k, ret_refused);
        if (err < 0 || p->sum_tol <= 0.0)
                return err;
        for (j = 0; j < p->k; j++)
                sum += v[j];
        return fabs(sum - 1.0) > p->sum_tol ? CL_E_ROW_SUM : 0;
}

/* Validates every row; counts the accepted rows of each class. */
static void validate_rows(struct cl_batch *b)
{
        size_t r;
        bool refused;
        int err;

        for (r = 0; r < b->n; r++) {
                err = check_row(&b->p, b->labels[r], row_probs(b, r),
                                &refused);
                b->status[r] = (signed char)err;
                if (err < 0) {
                        b->rejected[-err]++;
                        b->cleanlab_refuses |= refused;
                        continue;
                }
                b->accepted++;
                if (b->counts[b->labels[r]]++ == 0)
                        b->distinct++;
        }
        /* cleanlab accepts a single class only when it is class 0. */
        if (b->distinct == 1 && b->counts[0] == 0)
                b->cleanlab_refuses = true;
}

/* Lists the accepted rows class by class, in row order within a class. */
static void group_rows(struct cl_batch *b)
{
        unsigned k;
        size_t r, *next = b->order; /* k cursors, before order is used */

        b->class_start[0] = 0;
        for (k = 0; k < b->p.k; k++) {
                b->class_start[k + 1] =
                        b->class_start[k] + (size_t)b->counts[k];
                next[k] = b->class_start[k];
        }
        for (r = 0; r < b->n; r++)
                if (b->status[r] == 0)
                        b->by_class[next[b->labels[r]]++] = r;
}

/* Per-class mean of the given-class probability, numpy's summation. */
static void compute_thresholds(struct cl_batch *b)
{
        unsigned k;
        size_t i, nk;
        const size_t *rows;
        double t;

        for (k = 0; k < b->p.k; k++) {
                rows = b->by_class + b->class_start[k];
                nk = (size_t)b->counts[k];
                for (i = 0; i < nk; i++)
                        b->keys[i] = row_probs(b, rows[i])[k];
                t = nk > 0 ? cl_batch_sum(b->keys, nk) / (double)nk
                           : CL_T_MISSING;
                b->thresholds[k] = fmax(t, CL_T_FLOOR);
                b->cut[k] = b->thresholds[k] - CL_EPS;
        }
}

/*
 * The class row r is counted as (cleanlab compute_confident_joint): the
 * only class reaching its threshold, the argmax of the whole row when
 * several do (it need not be one of them), -1 when none does.
 */
static long confident_class(const struct cl_batch *b, const double *v)
{
        unsigned j, hits = 0, first = 0;

        for (j = 0; j < b->p.k; j++)
                if (v[j] >= b->cut[j] && hits++ == 0)
                        first = j;
        if (hits == 0)
                return -1;
        return hits == 1 ? (long)first : (long)argmax(v, b->p.k);
}

/* cleanlab _reduce_issues: true when the given label, raised by CL_EPS,
 * is the argmax of the row, which clears the row of any flag. */
static bool label_is_argmax(const double *v, unsigned k, long label)
{
        unsigned j, best = 0;
        double bv = label == 0 ? v[0] + CL_EPS : v[0], x;

        for (j = 1; j < k; j++) {
                x = (long)j == label ? v[j] + CL_EPS : v[j];
                if (x > bv) {
                        bv = x;
                        best = j;
                }
        }
        return (long)best == label;
}

/* The raw confident joint, and the rows it counts off the diagonal that
 * the argmax filter keeps (num_label_issues "off_diagonal"). */
static void count_joint(struct cl_batch *b)
{
        size_t r, kk = b->p.k;
        long g, l;
        unsigned j;

        for (r = 0; r < b->n; r++) {
                if (b->status[r] != 0)
                        continue;
                l = b->labels[r];
                g = confident_class(b, row_probs(b, r));
                if (g < 0)
                        continue;
                b->joint[(size_t)l * kk + (size_t)g]++;
                if (g != l && !label_is_argmax(row_probs(b, r), b->p.k, l))
                        b->issues_off_diagonal++;
        }
        for (j = 0; j < kk; j++)
                if (b->joint[j * kk + j] < 1)
                        b->joint[j * kk + j] = 1;
}

/* num_label_issues "off_diagonal_calibrated": the off-diagonal share of
 * the joint calibrated a second time, times the number of rows. */
static int count_calibrated_issues(struct cl_batch *b)
{
        size_t kk = b->p.k, j;
        int64_t total = 0;
        double share;
        int err;

        err = cl_batch_calibrate(b->joint_cal, b->counts, b->p.k, b->p.sort,
                                 b->joint_cal2);
        if (err < 0)
                return err;
        for (j = 0; j < kk * kk; j++)
                total += b->joint_cal2[j];
        for (j = 0; j < kk; j++)
                b->keys[j] = (double)b->joint_cal2[j * kk + j] /
                             fmax((double)total, 1e-100);
        share = 1.0 - cl_batch_sum(b->keys, kk);
        b->issues_calibrated = (size_t)fmax(rint(share * (double)b->accepted),
                                            0.0);
        return 0;
}

static int compute_latent(struct cl_batch *b)
{
        const int64_t *joints[2] = {b->joint, b->joint_cal};
        size_t kk = b->p.k, i;
        int err;

        for (i = 0; i < 2; i++) {
                b->latent[i].py = b->latent_mem + i * (kk + 2 * kk * kk);
                b->latent[i].noise = b->latent[i].py + kk;
                b->latent[i].inv = b->latent[i].noise + kk * kk;
        }
        if (b->accepted == 0) {
                for (i = 0; i < 2 * (kk + 2 * kk * kk); i++)
                        b->latent_mem[i] = (double)NAN;
                return 0;
        }
        for (i = 0; i < 2; i++) {
                err = cl_batch_estimate_latent(joints[i], b->counts, b->p.k,
                                               b->p.py_method,
                                               b->latent[i].py,
                                               b->latent[i].noise,
                                               b->latent[i].inv);
                if (err < 0)
                        return err;
        }
        return 0;
}

static int batch_alloc(struct cl_batch *b)
{
        size_t n = b->n, k = b->p.k, nk = n > k ? n : k;

        b->status = malloc(n);
        b->mask = malloc(n);
        /* keys and order also serve K-long steps (group_rows,
         * count_calibrated_issues) when n < k. */
        b->keys = malloc(nk * sizeof(*b->keys));
        b->order = malloc(nk * sizeof(*b->order));
        b->rows = malloc(n * sizeof(*b->rows));
        b->by_class = malloc(n * sizeof(*b->by_class));
        b->class_start = malloc((k + 1) * sizeof(*b->class_start));
        b->counts = calloc(k, sizeof(*b->counts));
        b->thresholds = malloc(3 * k * sizeof(*b->thresholds));
        b->joint = calloc(4 * k * k, sizeof(*b->joint));
        b->latent_mem = malloc(2 * (k + 2 * k * k) * sizeof(double));
        if (!b->status || !b->mask || !b->keys || !b->order || !b->rows ||
            !b->by_class || !b->class_start || !b->counts ||
            !b->thresholds || !b->joint || !b->latent_mem)
                return CL_E_NOMEM;
        b->cut = b->thresholds + k;
        b->xlogx = b->cut + k;
        b->joint_cal = b->joint + k * k;
        b->prune = b->joint_cal + k * k;
        b->joint_cal2 = b->prune + k * k;
        return 0;
}

/* Every statistic that does not depend on the filter. */
static int batch_compute(struct cl_batch *b)
{
        int err;

        validate_rows(b);
        group_rows(b);
        compute_thresholds(b);
        count_joint(b);
        err = cl_batch_calibrate(b->joint, b->counts, b->p.k, b->p.sort,
                                 b->joint_cal);
        if (err < 0)
                return err;
        err = cl_batch_make_prune_matrix(b->joint_cal, b->p.k,
                                         b->p.min_examples_per_class,
                                         b->p.frac_noise, b->prune);
        if (err < 0)
                return err;
        err = count_calibrated_issues(b);
        if (err < 0)
                return err;
        return compute_latent(b);
}

int cl_batch_new(const struct cl_batch_params *p, const long *labels,
                 const double *probs, size_t n, struct cl_batch **ret_batch)
{
        struct cl_batch *b;
        int err;

        err = cl_batch_params_check(p);
        if (err < 0)
                return err;
        if (n == 0 || n > SIZE_MAX / sizeof(double) / p->k)
                return CL_E_PARAM;
        b = calloc(1, sizeof(*b));
        if (!b)
                return CL_E_NOMEM;
        b->p = *p;
        b->labels = labels;
        b->probs = probs;
        b->n = n;

        err = batch_alloc(b);
        if (err == 0)
                err = batch_compute(b);
        if (err < 0) {
                cl_batch_free(b);
                return err;
        }
        *ret_batch = b;
        return 0;
}

void cl_batch_free(struct cl_batch *b)
{
        if (!b)
                return;
        free(b->status);
        free(b->mask);
        free(b->keys);
        free(b->order);
        free(b->rows);
        free(b->by_class);
        free(b->class_start);
        free(b->counts);
        free(b->thresholds);
        free(b->joint);
        free(b->latent_mem);
        free(b);
}

void cl_batch_info(const struct cl_batch *b, struct cl_batch_info *ret_info)
{
        size_t rejected = b->n - b->accepted;

        memset(ret_info, 0, sizeof(*ret_info));
        ret_info->rows = b->n;
        ret_info->accepted = b->accepted;
        memcpy(ret_info->rejected, b->rejected, sizeof(b->rejected));
        ret_info->distinct_labels = b->distinct;
        ret_info->too_few_labels = b->distinct < 2;
        ret_info->cleanlab_refuses = b->cleanlab_refuses;
        ret_info->parity = rejected == 0 && !b->cleanlab_refuses;
}

int cl_batch_row_status(const struct cl_batch *b, size_t r)
{
        return b->status[r];
}

const int64_t *cl_batch_class_counts(const struct cl_batch *b)
{
        return b->counts;
}

const double *cl_batch_thresholds(const struct cl_batch *b)
{
        return b->thresholds;
}

const int64_t *cl_batch_joint(const struct cl_batch *b)
{
        return b->joint;
}

const int64_t *cl_batch_joint_calibrated(const struct cl_batch *b)
{
        return b->joint_cal;
}

const int64_t *cl_batch_prune_matrix(const struct cl_batch *b)
{
        return b->prune;
}

void cl_batch_latent(const struct cl_batch *b, bool calibrated,
                     const double **ret_py, const double **ret_noise,
                     const double **ret_inv_noise)
{
        const struct latent *l = &b->latent[calibrated ? 1 : 0];

        if (ret_py)
                *ret_py = l->py;
        if (ret_noise)
                *ret_noise = l->noise;
        if (ret_inv_noise)
                *ret_inv_noise = l->inv;
}

size_t cl_batch_num_label_issues(const struct cl_batch *b,
                                 enum cl_batch_count method)
{
        if (method == CL_BATCH_COUNT_OFF_DIAGONAL_CALIBRATED)
                return b->issues_calibrated;
        return b->issues_off_diagonal;
}

/* Quality score of an accepted row (cleanlab rank.py). */
static double row_score(const double *v, unsigned k, long label,
                        enum cl_batch_score score, double *xlogx)
{
        double s = v[label], other = -INFINITY, h, vv;
        unsigned j;

        switch (score) {
        case CL_BATCH_SCORE_SELF_CONFIDENCE:
                return s;
        case CL_BATCH_SCORE_NORMALIZED_MARGIN:
                for (j = 0; j < k; j++)
                        if ((long)j != label && v[j] > other)
                                other = v[j];
                return ((s - other) + 1.0) / 2.0;
        case CL_BATCH_SCORE_CONFIDENCE_WEIGHTED_ENTROPY:
                for (j = 0; j < k; j++)
                        xlogx[j] = v[j] == 0.0 ? 0.0 : v[j] * log(v[j]);
                h = -cl_batch_sum(xlogx, k) / log((double)k);
                vv = h / fmax(s, SCORE_MIN);
                /* log(v + 1), not log1p: the result must match numpy's. */
                return log(vv + 1.0) / fmax(vv, SCORE_MIN);
        }
        return NAN;
}

static bool score_valid(enum cl_batch_score score)
{
        return score == CL_BATCH_SCORE_SELF_CONFIDENCE ||
               score == CL_BATCH_SCORE_NORMALIZED_MARGIN ||
               score == CL_BATCH_SCORE_CONFIDENCE_WEIGHTED_ENTROPY;
}

static double score_of(const struct cl_batch *b, size_t r,
                       enum cl_batch_score score)
{
        return row_score(row_probs(b, r), b->p.k, b->labels[r], score,
                         b->xlogx);
}

int cl_batch_quality(struct cl_batch *b, enum cl_batch_score score,
                     double *ret_scores)
{
        size_t r;

        if (!score_valid(score))
                return CL_E_PARAM;
        for (r = 0; r < b->n; r++)
                ret_scores[r] = b->status[r] == 0 ? score_of(b, r, score)
                                                  : (double)NAN;
        return 0;
}

/* Flags the first `take` class-k rows in ascending order of b->keys, which
 * holds one key per class-k row (cleanlab's argsort cut-off). */
static void flag_lowest(struct cl_batch *b, unsigned k, int64_t take,
                        unsigned char *mask)
{
        const size_t *rows = b->by_class + b->class_start[k];
        size_t nk = (size_t)b->counts[k], i, m;

        m = (uint64_t)take < nk ? (size_t)take : nk;
        cl_batch_argsort(b->keys, nk, b->p.sort, b->order);
        for (i = 0; i < m; i++)
                mask[rows[b->order[i]]] = 1;
}

/* cleanlab skips (with a warning) classes with too few rows.  It also
 * drops the mask of a class with a single row (find_label_issues copies
 * a class's mask only when it is longer than 1), which matters when
 * min_examples_per_class is 0. */
static bool class_prunable(const struct cl_batch *b, unsigned k)
{
        return b->counts[k] > b->p.min_examples_per_class &&
               b->counts[k] > 1;
}

/* For each class k, the n_k - M[k][k] class-k rows with the lowest
 * probability of class k. */
static void prune_by_class(struct cl_batch *b, unsigned char *mask)
{
        size_t kk = b->p.k, i;
        const size_t *rows;
        unsigned k;

        for (k = 0; k < b->p.k; k++) {
                int64_t take = b->counts[k] - b->prune[k * kk + k];

                if (!class_prunable(b, k) || take < 1)
                        continue;
                rows = b->by_class + b->class_start[k];
                for (i = 0; i < (size_t)b->counts[k]; i++)
                        b->keys[i] = row_probs(b, rows[i])[k];
                flag_lowest(b, k, take, mask);
        }
}

/* For each class k and other class j, the M[j][k] class-k rows with the
 * largest P[j] - P[k].  Every cell ranks all class-k rows, also those that
 * were never confident. */
static void prune_by_noise_rate(struct cl_batch *b, unsigned char *mask)
{
        size_t kk = b->p.k, i;
        const size_t *rows;
        const double *v;
        unsigned k, j;

        for (k = 0; k < b->p.k; k++) {
                if (!class_prunable(b, k))
                        continue;
                rows = b->by_class + b->class_start[k];
                for (j = 0; j < b->p.k; j++) {
                        if (j == k || b->prune[j * kk + k] < 1)
                                continue;
                        /* cleanlab sorts -(P[j] - P[k]); IEEE subtraction
                         * makes that bit-equal to P[k] - P[j]. */
                        for (i = 0; i < (size_t)b->counts[k]; i++) {
                                v = row_probs(b, rows[i]);
                                b->keys[i] = v[k] - v[j];
                        }
                        flag_lowest(b, k, b->prune[j * kk + k], mask);
                }
        }
}

static void confident_learning(const struct cl_batch *b, unsigned char *mask)
{
        size_t r;
        long g;

        for (r = 0; r < b->n; r++) {
                if (b->status[r] != 0)
                        continue;
                g = confident_class(b, row_probs(b, r));
                mask[r] = g >= 0 && g != b->labels[r];
        }
}

static void predicted_neq_given(const struct cl_batch *b,
                                unsigned char *mask)
{
        size_t r;

        for (r = 0; r < b->n; r++)
                if (b->status[r] == 0)
                        mask[r] = (long)argmax(row_probs(b, r), b->p.k) !=
                                  b->labels[r];
}

/* low_self_confidence, low_normalized_margin: the num_label_issues
 * (off_diagonal) accepted rows with the lowest score. */
static void low_score(struct cl_batch *b, enum cl_batch_score score,
                      unsigned char *mask)
{
        size_t r, m = 0, i, take = b->issues_off_diagonal;

        for (r = 0; r < b->n; r++) {
                if (b->status[r] != 0)
                        continue;
                b->rows[m] = r;
                b->keys[m++] = score_of(b, r, score);
        }
        cl_batch_argsort(b->keys, m, b->p.sort, b->order);
        for (i = 0; i < take && i < m; i++)
                mask[b->rows[b->order[i]]] = 1;
}

static void final_filter(const struct cl_batch *b, unsigned char *mask)
{
        size_t r;

        for (r = 0; r < b->n; r++)
                if (mask[r] && label_is_argmax(row_probs(b, r), b->p.k,
                                               b->labels[r]))
                        mask[r] = 0;
}

static int run_filter(struct cl_batch *b, enum cl_filter filter,
                      unsigned char *mask)
{
        size_t r;

        switch (filter) {
        case CL_FILTER_PRUNE_BY_NOISE_RATE:
                prune_by_noise_rate(b, mask);
                break;
        case CL_FILTER_PRUNE_BY_CLASS:
                prune_by_class(b, mask);
                break;
        case CL_FILTER_BOTH:
                prune_by_noise_rate(b, mask);
                memset(b->mask, 0, b->n);
                prune_by_class(b, b->mask);
                for (r = 0; r < b->n; r++)
                        mask[r] &= b->mask[r];
                break;
        case CL_FILTER_CONFIDENT_LEARNING:
                confident_learning(b, mask);
                break;
        case CL_FILTER_PREDICTED_NEQ_GIVEN:
                predicted_neq_given(b, mask);
                break;
        case CL_FILTER_LOW_SELF_CONFIDENCE:
                low_score(b, CL_BATCH_SCORE_SELF_CONFIDENCE, mask);
                return 0; /* cleanlab skips the argmax filter here */
        case CL_FILTER_LOW_NORMALIZED_MARGIN:
                low_score(b, CL_BATCH_SCORE_NORMALIZED_MARGIN, mask);
                return 0;
        default:
                return CL_E_PARAM;
        }
        final_filter(b, mask);
        return 0;
}

int cl_batch_find_issues(struct cl_batch *b, enum cl_filter filter,
                         unsigned char *ret_mask, size_t *ret_count)
{
        size_t r, count = 0;
        int err = 0;

        memset(ret_mask, 0, b->n);
        if (b->distinct >= 2)
                err = run_filter(b, filter, ret_mask);
        else if (!cl_filter_name(filter))
                err = CL_E_PARAM;
        if (err < 0)
                return err;
        for (r = 0; r < b->n; r++)
                count += ret_mask[r];
        if (ret_count)
                *ret_count = count;
        return 0;
}

int cl_batch_rank(struct cl_batch *b, const unsigned char *mask,
                  enum cl_batch_score score, size_t *ret_rows,
                  size_t *ret_count)
{
        size_t r, m = 0, i;

        if (!score_valid(score))
                return CL_E_PARAM;
        for (r = 0; r < b->n; r++) {
                if (!mask[r] || b->status[r] != 0)
                        continue;
                b->rows[m] = r;
                b->keys[m++] = score_of(b, r, score);
        }
        cl_batch_argsort(b->keys, m, b->p.sort, b->order);
        for (i = 0; i < m; i++)
                ret_rows[i] = b->rows[b->order[i]];
        *ret_count = m;
        return 0;
}
