/*
 * cl_batch.h - exact (two-pass) confident learning over a whole data set,
 * with the results of cleanlab 2.9.0 (find_label_issues, num_label_issues,
 * get_label_quality_scores, estimate_latent).  docs/batch.md says how each
 * step maps to cleanlab and which results are bit-exact.
 *
 * The caller holds the input: N labels and an N x K row-major matrix of
 * probabilities.  cl_batch_new() validates every row, computes the
 * thresholds, the confident joint (raw and calibrated), the latent
 * estimates and the prune matrix; the issue masks, scores and rankings are
 * then asked for per filter.  All memory is allocated in cl_batch_new();
 * later calls allocate nothing.
 *
 * Threads: a struct cl_batch may be used by one thread at a time (the
 * functions taking a non-const batch use scratch space inside it).
 */
#ifndef CFD_CORE_CL_BATCH_H
#define CFD_CORE_CL_BATCH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl.h"

/* Label value meaning "the caller could not read this label as an
 * integer": the row is rejected with CL_E_LABEL_TYPE. */
#define CL_BATCH_LABEL_INVALID LONG_MIN

/* Most classes batch mode accepts: K * K must fit the int of BLAS. */
#define CL_BATCH_K_MAX 4096u

/* Order of equal keys in every sort (cut-offs, calibration, ranking). */
enum cl_batch_sort {
        CL_BATCH_SORT_NUMPY = 0, /* numpy 1.24 argsort: cleanlab's order */
        CL_BATCH_SORT_STABLE,    /* by (key, position): portable */
};

/* Label quality score (cleanlab get_label_quality_scores method). */
enum cl_batch_score {
        CL_BATCH_SCORE_SELF_CONFIDENCE = 0,
        CL_BATCH_SCORE_NORMALIZED_MARGIN,
        CL_BATCH_SCORE_CONFIDENCE_WEIGHTED_ENTROPY,
};

/* How to estimate py, the prior of the true labels (cleanlab py_method). */
enum cl_batch_py {
        CL_BATCH_PY_CNT = 0,     /* INV diagonal / NM diagonal * ps */
        CL_BATCH_PY_EQN,         /* solve NM * py = ps (LAPACKE) */
        CL_BATCH_PY_MARGINAL,    /* column totals of the joint / total */
        CL_BATCH_PY_MARGINAL_PS, /* INV * ps */
};

/* cleanlab num_label_issues estimation_method. */
enum cl_batch_count {
        CL_BATCH_COUNT_OFF_DIAGONAL = 0,
        CL_BATCH_COUNT_OFF_DIAGONAL_CALIBRATED,
};

/* Fill with cl_batch_params_init(), then change what you need. */
struct cl_batch_params {
        unsigned k;                 /* classes (probability columns), 2 ..
                                     * CL_BATCH_K_MAX */
        enum cl_batch_sort sort;    /* default CL_BATCH_SORT_NUMPY */
        long min_examples_per_class; /* >= 0, default 1 */
        double frac_noise;          /* in (0, 1], default 1 */
        double sum_tol;             /* row-sum tolerance, 0 = off (default,
                                     * as cleanlab) */
        enum cl_batch_py py_method; /* default CL_BATCH_PY_CNT */
};

/* Defaults of cleanlab's find_label_issues for k classes. */
void cl_batch_params_init(struct cl_batch_params *p, unsigned k);

/* Checks a parameter set; returns 0 or CL_E_PARAM. */
int cl_batch_params_check(const struct cl_batch_params *p);

/* What validation found.  Filled by cl_batch_info(). */
struct cl_batch_info {
        size_t rows;             /* N given to cl_batch_new() */
        size_t accepted;         /* rows that entered the statistics */
        size_t rejected[7];      /* by reason: rejected[-CL_E_x] */
        unsigned distinct_labels; /* among accepted rows */
        bool too_few_labels;     /* < 2 distinct labels: nothing flagged */
        bool cleanlab_refuses;   /* cleanlab would raise on this input */
        bool parity;             /* cleanlab would compute on exactly the
                                  * accepted rows: results comparable */
};

struct cl_batch;

/*
 * Validates each row and computes all statistics that do not depend on the
 * filter.  labels holds n values, probs n * p->k values (row r at
 * probs[r * k]).  The batch keeps both pointers: they must stay valid and
 * unchanged until cl_batch_free().  A row failing a check (cl.h order:
 * CL_E_LABEL_TYPE, CL_E_LABEL_RANGE, CL_E_NONFINITE, CL_E_RANGE,
 * CL_E_ROW_SUM) is rejected and enters no statistic; this is not an error.
 * Returns 0 and sets *ret_batch, or CL_E_PARAM (bad parameters, n == 0,
 * n * k overflows, CL_BATCH_PY_EQN with a singular noise matrix) or
 * CL_E_NOMEM.
 */
int cl_batch_new(const struct cl_batch_params *p, const long *labels,
                 const double *probs, size_t n, struct cl_batch **ret_batch);

/* Frees the batch (not the caller's input); NULL does nothing. */
void cl_batch_free(struct cl_batch *b);

/* Validation summary. */
void cl_batch_info(const struct cl_batch *b, struct cl_batch_info *ret_info);

/* 0 if row r was accepted, else its CL_E_* reason; r < rows. */
int cl_batch_row_status(const struct cl_batch *b, size_t r);

/*
 * Results of cl_batch_new(), owned by the batch and valid until
 * cl_batch_free().  Vectors have K entries, matrices K * K, row-major.
 * Joints: row = given label, column = estimated true label.  Prune
 * matrix: row = true label, column = given label (cleanlab's layout).
 */
const int64_t *cl_batch_class_counts(const struct cl_batch *b);
const double *cl_batch_thresholds(const struct cl_batch *b);
const int64_t *cl_batch_joint(const struct cl_batch *b);
const int64_t *cl_batch_joint_calibrated(const struct cl_batch *b);
const int64_t *cl_batch_prune_matrix(const struct cl_batch *b);

/*
 * estimate_latent() of the calibrated joint (calibrated true) or of the
 * raw one: py (K), noise matrix P(given i | true j) at [i * K + j] and
 * inverse noise matrix P(true j | given i) at [j * K + i].  Any of the
 * ret_ pointers may be NULL.
 */
void cl_batch_latent(const struct cl_batch *b, bool calibrated,
                     const double **ret_py, const double **ret_noise,
                     const double **ret_inv_noise);

/* cleanlab num_label_issues() over the accepted rows. */
size_t cl_batch_num_label_issues(const struct cl_batch *b,
                                 enum cl_batch_count method);

/*
 * cleanlab find_label_issues(filter_by = filter): sets ret_mask[r] to 1
 * for each flagged row and 0 otherwise (rejected rows: 0); ret_mask has
 * rows entries.  *ret_count (if not NULL) gets the number flagged.
 * With fewer than 2 distinct labels nothing is flagged.
 * Returns 0 or CL_E_PARAM for an unknown filter.
 */
int cl_batch_find_issues(struct cl_batch *b, enum cl_filter filter,
                         unsigned char *ret_mask, size_t *ret_count);

/*
 * Quality score of each row (lower = more likely mislabelled), into
 * ret_scores[rows]; rejected rows get NaN.  Returns 0 or CL_E_PARAM.
 */
int cl_batch_quality(struct cl_batch *b, enum cl_batch_score score,
                     double *ret_scores);

/*
 * Ranks the rows set in mask (rows entries, e.g. from
 * cl_batch_find_issues()) by ascending score, as cleanlab's
 * return_indices_ranked_by: writes the row indices into ret_rows (room
 * for as many rows as mask sets) and their number into *ret_count.
 * Rejected rows are skipped.  Returns 0 or CL_E_PARAM.
 */
int cl_batch_rank(struct cl_batch *b, const unsigned char *mask,
                  enum cl_batch_score score, size_t *ret_rows,
                  size_t *ret_count);

/* Building blocks, exported for tests and tools. */

/*
 * Sum of v[0..n-1] in numpy 1.24's float64 order: blocks of 8192 values,
 * each summed pairwise with eight accumulators (docs/batch.md).
 */
double cl_batch_sum(const double *v, size_t n);

/*
 * Writes into ret_idx the permutation that sorts v[0..n-1] ascending (NaN
 * last).  CL_BATCH_SORT_NUMPY orders equal keys exactly as numpy 1.24's
 * default argsort (introsort); CL_BATCH_SORT_STABLE by position.
 * Allocates nothing; O(n log n) time in the worst case.
 */
void cl_batch_argsort(const double *v, size_t n, enum cl_batch_sort mode,
                      size_t *ret_idx);

/*
 * cleanlab calibrate_confident_joint(): scales each row i of the K x K
 * joint cj to class_counts[i] and the whole to their sum, then rounds
 * every row to integers keeping its total.  ret_cal gets K * K values.
 * Returns 0, CL_E_PARAM (k == 0 or a negative count) or CL_E_NOMEM.
 */
int cl_batch_calibrate(const int64_t *cj, const int64_t *class_counts,
                       unsigned k, enum cl_batch_sort mode,
                       int64_t *ret_cal);

/*
 * cleanlab's prune matrix (_keep_at_least_n_per_class and the frac_noise
 * step): from the calibrated joint cal (row = given) to ret_prune (row =
 * true, column = given), K * K values.  Returns 0 or CL_E_PARAM.
 */
int cl_batch_make_prune_matrix(const int64_t *cal, unsigned k,
                               long min_examples_per_class,
                               double frac_noise, int64_t *ret_prune);

/*
 * cleanlab estimate_latent(): py (K), noise matrix and inverse noise
 * matrix (K * K, layouts as in cl_batch_latent()) from a K x K joint cj
 * and the class counts of the labels.  Returns 0, CL_E_PARAM (k == 0, a
 * k > CL_BATCH_K_MAX, a negative count, all counts zero, or
 * CL_BATCH_PY_EQN with a singular noise matrix) or CL_E_NOMEM.
 */
int cl_batch_estimate_latent(const int64_t *cj, const int64_t *class_counts,
                             unsigned k, enum cl_batch_py method,
                             double *ret_py, double *ret_noise,
                             double *ret_inv_noise);

#endif /* CFD_CORE_CL_BATCH_H */
