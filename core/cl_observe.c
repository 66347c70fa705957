/*
 * cl_observe.c - the per-item path: validate a row, add it to the decayed
 * statistics, decide clean / suspect.  Allocates nothing; O(K log B).
 *
 * Section numbers refer to the confident-learning specification that
 * docs/streaming.md summarises (cleanlab 2.9.0 behaviour).
 */
#include "cl.h"

#include <math.h>
#include <string.h>

#include "cl_hist.h"
#include "cl_state.h"

/* What one pass over the row finds (everything the decision needs). */
struct row_scan {
        unsigned label;
        unsigned guess;    /* confident guess g of rule 3.1, or K if none */
        unsigned argmax;   /* lowest index of the largest p */
        unsigned other;    /* lowest index of the largest p[j], j != label */
        bool cleared;      /* final argmax filter 4.10 clears the item */
};

/* Outcome of one quantile test against a quota. */
struct quota_test {
        bool fired;
        bool borderline;
        double ratio; /* interpolated mass below / quota */
};

int cl_check_row(const struct cl_state *st, long label, const double *probs,
                 size_t n, size_t *ret_index)
{
        size_t nonfinite = n, range = n;
        double sum = 0.0;

        if (n != st->p.k) {
                if (ret_index)
                        *ret_index = n;
                return CL_E_WIDTH;
        }
        if (label < 0 || label >= (long)st->p.k) {
                if (ret_index)
                        *ret_index = 0;
                return CL_E_LABEL_RANGE;
        }
        /* One pass; NaN anywhere outranks a range error anywhere (1.2). */
        for (size_t k = 0; k < n; k++) {
                double x = probs[k];

                if (!isfinite(x)) {
                        nonfinite = k;
                        break;
                }
                if (range == n && (x < -CL_EPS || x > 1.0 + CL_EPS))
                        range = k;
                sum += x;
        }
        if (nonfinite < n || range < n) {
                if (ret_index)
                        *ret_index = nonfinite < n ? nonfinite : range;
                return nonfinite < n ? CL_E_NONFINITE : CL_E_RANGE;
        }
        if (st->p.sum_tol > 0.0 && fabs(sum - 1.0) > st->p.sum_tol) {
                if (ret_index)
                        *ret_index = n;
                return CL_E_ROW_SUM;
        }
        return 0;
}

/* Divides every sum by w and restarts w at 1 (cl_state.h).  The scale is
 * a power of two only by chance, so thresholds are recomputed from the
 * scaled sums to stay a function of them (snapshots rely on that). */
static void state_renormalise(struct cl_state *st)
{
        double inv = 1.0 / st->w;

        for (size_t x = 0; x < st->n_sums; x++) {
                double v = st->block[x] * inv;

                st->block[x] = v < CL_FLUSH_BELOW && v > -CL_FLUSH_BELOW
                                       ? 0.0
                                       : v;
        }
        st->w = 1.0;
        cl_state_refresh(st);
}

/*
 * Confident guess (3.1), argmax, best other class and the final filter
 * (4.10), in one pass.  Only the given class's threshold changed with this
 * item, and it is already up to date.
 */
static void scan_row(const struct cl_state *st, const double *p,
                     unsigned label, struct row_scan *s)
{
        unsigned k = st->p.k, n_conf = 0, first = k, best = 0, other = k;
        double lifted = p[label] + CL_EPS, best_p = p[0], other_p = -HUGE_VAL;
        bool cleared = true;

        /* The running maxima stay in registers: comparing with p[best]
         * would chain a load into every step. */
        for (unsigned j = 0; j < k; j++) {
                double x = p[j];

                if (x >= st->thr_m[j]) {
                        if (n_conf++ == 0)
                                first = j;
                }
                if (x > best_p) {
                        best_p = x;
                        best = j;
                }
                if (j == label)
                        continue;
                if (x > other_p) {
                        other_p = x;
                        other = j;
                }
                /* argmax of p with p[label] + EPS: a lower index wins a
                 * tie, so it must stay strictly below. */
                if (j < label ? x >= lifted : x > lifted)
                        cleared = false;
        }
        s->label = label;
        /* Pitfall 1: with two or more confident classes, the argmax of
         * the whole row, which need not be confident itself. */
        s->guess = n_conf == 0 ? k : n_conf == 1 ? first : best;
        s->argmax = best;
        s->other = other;
        s->cleared = cleared;
}

/* Bin of a score in [0, 1] (clamped), and the position inside it. */
static unsigned bin_of(double pos, unsigned nb, double *ret_frac)
{
        unsigned b;

        if (!(pos > 0.0)) {
                *ret_frac = 0.0;
                return 0;
        }
        if (pos >= nb) {
                *ret_frac = 1.0;
                return nb - 1;
        }
        b = (unsigned)pos;
        *ret_frac = pos - b;
        return b;
}

static double score_pos(const struct cl_state *st, double x)
{
        return x * st->p.bins;
}

static double margin_pos(const struct cl_state *st, double m)
{
        return (m + 1.0) * st->half_bins;
}

/* Normalized margin (5.1) of the row. */
static double norm_margin(const double *p, const struct row_scan *s)
{
        return (p[s->label] - p[s->other] + 1.0) / 2.0;
}

static void update_hists(struct cl_state *st, const double *p,
                         const struct row_scan *s, double w)
{
        const struct cl_hist_shape *sh = &st->shape;
        unsigned k = st->p.k, nb = st->p.bins, i = s->label;
        double frac;

        if (st->h_sc) {
                unsigned b = bin_of(score_pos(st, p[i]), nb, &frac);

                cl_hist_add(cl_class_tree(st, i), sh, b, w);
        }
        if (st->h_mg) {
                /* The K - 1 cells of class i are adjacent, j skipping i. */
                double *tree = st->h_mg + (size_t)i * (k - 1) * sh->nodes;

                for (unsigned j = 0; j < k; j++) {
                        unsigned b;

                        if (j == i)
                                continue;
                        b = bin_of(margin_pos(st, p[i] - p[j]), nb, &frac);
                        cl_hist_add(tree, sh, b, w);
                        tree += sh->nodes;
                }
        }
        if (st->h_low) {
                double x = st->p.filter == CL_FILTER_LOW_SELF_CONFIDENCE
                                   ? p[i]
                                   : norm_margin(p, s);
                unsigned b = bin_of(score_pos(st, x), nb, &frac);

                cl_hist_add(st->h_low, sh, b, w);
        }
}

/* Adds the row to every sum (7.4); the caller has advanced the clock. */
static void state_update(struct cl_state *st, const double *p,
                         unsigned label, struct row_scan *s)
{
        unsigned k = st->p.k;
        double w = st->w, t;

        st->cnt[label] += w;
        st->sc_sum[label] += w * p[label];
        t = st->sc_sum[label] / st->cnt[label];
        if (!(t >= CL_T_FLOOR))
                t = CL_T_FLOOR;
        st->thr[label] = t;
        st->thr_m[label] = t - CL_EPS;

        scan_row(st, p, label, s);
        if (s->guess < k)
                st->joint[(size_t)label * k + s->guess] += w;
        if (s->guess < k && s->guess != label && !s->cleared)
                *st->offdiag += w;
        *st->total += w;
        update_hists(st, p, s, w);
}

/*
 * Is the item among the lowest `quota` mass of a histogram?  The mass
 * strictly below x is interpolated inside x's bin (7.5).  Borderline: the
 * quota falls inside x's own bin, so a finer histogram could decide
 * otherwise.
 */
static void quota_test(const double *tree, const struct cl_hist_shape *sh,
                       double pos, double quota, struct quota_test *q)
{
        double frac, lo, hi, below;
        unsigned b = bin_of(pos, sh->bins, &frac);

        lo = cl_hist_below(tree, sh, b);
        hi = lo + cl_hist_bin(tree, b);
        below = lo + (hi - lo) * frac;
        q->fired = below < quota;
        q->borderline = lo < quota && quota <= hi;
        q->ratio = quota > 0.0 ? below / quota : HUGE_VAL;
}

/* Appends text at *out, stopping at end; returns the new position. */
static char *put_text(char *out, const char *end, const char *text)
{
        while (*text && out < end)
                *out++ = *text++;
        return out;
}

/* Appends x in decimal (a class index: at most 5 digits). */
static char *put_uint(char *out, const char *end, unsigned x)
{
        char digits[10];
        unsigned n = 0;

        do {
                digits[n++] = (char)('0' + x % 10);
                x /= 10;
        } while (x);
        while (n && out < end)
                *out++ = digits[--n];
        return out;
}

/* Writes "<tag> <i>" or, with a blamed class j < K, "<tag> <i>-><j>".
 * Hand-formatted: snprintf() would dominate the cost of a suspect. */
static void set_reason(struct cl_verdict *v, const char *tag, unsigned i,
                       unsigned j, unsigned k)
{
        const char *end = v->reason + sizeof(v->reason) - 1;
        char *out = v->reason;

        out = put_text(out, end, tag);
        out = put_text(out, end, " ");
        out = put_uint(out, end, i);
        if (j < k) {
                out = put_text(out, end, "->");
                out = put_uint(out, end, j);
        }
        *out = '\0';
}

static void set_text(struct cl_verdict *v, const char *text)
{
        size_t n = strlen(text);

        if (n >= sizeof(v->reason))
                n = sizeof(v->reason) - 1;
        memcpy(v->reason, text, n);
        v->reason[n] = '\0';
}

static void suspect(struct cl_verdict *v, unsigned blamed)
{
        v->tag = CL_TAG_SUSPECT;
        v->suggested = blamed;
}

/* Weight of class i's confident-joint row with the diagonal raised to at
 * least one item (3.1 fix-up), and its off-diagonal part. */
static double joint_row(const struct cl_state *st, unsigned i,
                        double *ret_off)
{
        const double *row = st->joint + (size_t)i * st->p.k;
        double off = 0.0, diag = row[i];

        for (unsigned j = 0; j < st->p.k; j++)
                off += j == i ? 0.0 : row[j];
        if (diag < st->w)
                diag = st->w;
        *ret_off = off;
        return diag + off;
}

/*
 * prune_by_noise_rate (4.5 as a quantile test): cell (i, j) removes the
 * share J[i][j] / R_i of class i with the lowest margin p[i] - p[j]; the
 * calibrated count of the cell is that share of cnt[i] (3.2 without the
 * integer rounding).  The cell that fires deepest inside its quota is
 * blamed.  Returns the blamed class, or K when no cell fires.
 */
static unsigned test_noise_rate(const struct cl_state *st, const double *p,
                                unsigned i, bool *borderline)
{
        unsigned k = st->p.k, blamed = k;
        const double *row = st->joint + (size_t)i * k;
        const double *tree = st->h_mg + (size_t)i * (k - 1) * st->shape.nodes;
        double off, r = joint_row(st, i, &off), best = HUGE_VAL;
        struct quota_test q;

        for (unsigned j = 0; j < k; j++) {
                if (j == i)
                        continue;
                if (row[j] > 0.0) {
                        quota_test(tree, &st->shape,
                                   margin_pos(st, p[i] - p[j]),
                                   row[j] / r * st->cnt[i], &q);
                        *borderline = *borderline || q.borderline;
                        if (q.fired && q.ratio < best) {
                                best = q.ratio;
                                blamed = j;
                        }
                }
                tree += st->shape.nodes;
        }
        return blamed;
}

/* prune_by_class (4.4): class i loses its off-diagonal share of items, the
 * ones with the lowest p[i]. */
static bool test_class(const struct cl_state *st, const double *p,
                       unsigned i, bool *borderline)
{
        double off, r = joint_row(st, i, &off);
        struct quota_test q;

        quota_test(cl_class_tree(st, i), &st->shape, score_pos(st, p[i]),
                   off / r * st->cnt[i], &q);
        *borderline = *borderline || q.borderline;
        return q.fired;
}

/* low_*: the lowest-scoring share O / T of all items, O being the weight
 * confident_learning would flag (4.9 with num_label_issues, 4.12). */
static bool test_low(const struct cl_state *st, const double *p,
                     const struct row_scan *s, bool *borderline)
{
        double x = st->p.filter == CL_FILTER_LOW_SELF_CONFIDENCE
                           ? p[s->label]
                           : norm_margin(p, s);
        struct quota_test q;

        quota_test(st->h_low, &st->shape, score_pos(st, x), *st->offdiag,
                   &q);
        *borderline = q.borderline;
        return q.fired;
}

static bool is_warm(const struct cl_state *st, unsigned i)
{
        return *st->total >= st->p.warmup_total * st->w &&
               st->cnt[i] >= st->p.warmup_class * st->w;
}

/* The three quantile filters, for a warm item the final filter kept. */
static void decide_prune(const struct cl_state *st, const double *p,
                         const struct row_scan *s, struct cl_verdict *v)
{
        enum cl_filter f = st->p.filter;
        unsigned i = s->label, j = st->p.k;
        bool by_class = true;

        if (!(st->cnt[i] > st->p.min_examples * st->w)) {
                set_text(v, "min_examples");
                return;
        }
        if (f != CL_FILTER_PRUNE_BY_CLASS)
                j = test_noise_rate(st, p, i, &v->borderline);
        if (f != CL_FILTER_PRUNE_BY_NOISE_RATE)
                by_class = test_class(st, p, i, &v->borderline);

        if (f == CL_FILTER_PRUNE_BY_CLASS && by_class) {
                suspect(v, s->other);
                set_reason(v, "pbc", i, st->p.k, st->p.k);
        } else if (f != CL_FILTER_PRUNE_BY_CLASS && j < st->p.k &&
                   by_class) {
                suspect(v, j);
                set_reason(v, f == CL_FILTER_BOTH ? "both" : "pbnr", i, j,
                           st->p.k);
        } else {
                set_text(v, "pass");
        }
}

static void decide(const struct cl_state *st, const double *p,
                   const struct row_scan *s, struct cl_verdict *v)
{
        enum cl_filter f = st->p.filter;
        unsigned i = s->label;
        bool low = f == CL_FILTER_LOW_SELF_CONFIDENCE ||
                   f == CL_FILTER_LOW_NORMALIZED_MARGIN;

        v->tag = CL_TAG_CLEAN;
        if (f != CL_FILTER_PREDICTED_NEQ_GIVEN && !is_warm(st, i)) {
                v->tag = CL_TAG_WARMUP;
                set_text(v, "warmup");
                return;
        }
        if (s->cleared && (!low || st->p.low_final_filter)) {
                set_text(v, "argmax");
                return;
        }
        switch (f) {
        case CL_FILTER_PREDICTED_NEQ_GIVEN:
                suspect(v, s->argmax);
                set_reason(v, "pred", i, s->argmax, st->p.k);
                return;
        case CL_FILTER_CONFIDENT_LEARNING:
                if (s->guess < st->p.k && s->guess != i) {
                        suspect(v, s->guess);
                        set_reason(v, "cl", i, s->guess, st->p.k);
                } else {
                        set_text(v, "pass");
                }
                return;
        case CL_FILTER_LOW_SELF_CONFIDENCE:
        case CL_FILTER_LOW_NORMALIZED_MARGIN:
                if (test_low(st, p, s, &v->borderline)) {
                        suspect(v, s->other);
                        set_text(v, f == CL_FILTER_LOW_SELF_CONFIDENCE
                                            ? "low_sc"
                                            : "low_nm");
                } else {
                        set_text(v, "pass");
                }
                return;
        case CL_FILTER_PRUNE_BY_NOISE_RATE:
        case CL_FILTER_PRUNE_BY_CLASS:
        case CL_FILTER_BOTH:
                decide_prune(st, p, s, v);
                return;
        }
}

int cl_observe(struct cl_state *st, long label, const double *probs,
               size_t n, struct cl_verdict *ret_verdict, size_t *ret_index)
{
        struct row_scan s;
        struct cl_verdict *v = ret_verdict;
        unsigned i;
        int rc;

        rc = cl_check_row(st, label, probs, n, ret_index);
        if (rc < 0)
                return rc;

        i = (unsigned)label;
        st->items++;
        st->w *= st->growth;
        if (st->w > CL_RENORM_AT)
                state_renormalise(st);
        state_update(st, probs, i, &s);
        if (!v)
                return 0;

        /* Filled in place: a local copied out at the end costs a stalled
         * store-to-load forward of the byte-wise written reason. */
        v->given = i;
        v->suggested = i;
        v->quality = probs[i];
        v->threshold = st->thr[i];
        v->borderline = false;
        decide(st, probs, &s, v);
        return 0;
}
