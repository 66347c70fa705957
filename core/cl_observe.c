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
#include "cl_hold.h"
#include "cl_state.h"

/* What one pass over the row finds (everything the decision needs). */
struct row_scan {
        unsigned label;
        unsigned guess;    /* confident guess g of rule 3.1, or K if none */
        unsigned argmax;   /* lowest index of the largest p */
        unsigned other;    /* lowest index of the largest p[j], j != label */
        bool cleared;      /* final argmax filter 4.10 clears the item */
};

/* A cut is found for this much more than the quota that needed it. */
#define CUT_HEADROOM 1.0625

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
        cl_state_cuts_reset(st);
}

/* What scan_row() has found so far. */
struct scan_acc {
        double sum;     /* of the values, in index order */
        double low;     /* smallest value */
        double other_p; /* largest value other than the label's */
        unsigned other; /* its lowest index, K before any */
        unsigned n_conf; /* confident classes other than the label */
        unsigned conf;  /* one of them, K before any */
};

/* Values from .. to - 1 of the row, none of them the label's: a few
 * compare-and-moves each, no branch but the loop's. */
static inline void scan_others(struct scan_acc *a, const double *p,
                               const double *thr_m, unsigned from,
                               unsigned to)
{
        for (unsigned j = from; j < to; j++) {
                double x = p[j];
                bool confident = x >= thr_m[j];

                a->sum += x;
                a->low = x < a->low ? x : a->low;
                a->n_conf += confident;
                a->conf = confident ? j : a->conf;
                if (x > a->other_p) {
                        a->other_p = x;
                        a->other = j;
                }
        }
}

/*
 * Confident guess (3.1), argmax, best other class and the final filter
 * (4.10), in one pass, which also checks the row: returns false when
 * cl_check_row() would reject it (a value out of range, NaN or infinite,
 * or the sum off by more than sum_tol; width and label are the caller's).
 * thr_label is the confidence bound of the given class with this item
 * counted, which cl_observe() finds before it changes the state.
 *
 * The pass keeps only what cannot be had afterwards (struct scan_acc);
 * the argmax, the final filter and the range check follow from it.
 * Rows with NaN or infinities get meaningless fields but are rejected.
 */
static bool scan_row(const struct cl_state *st, const double *p,
                     unsigned label, double thr_label, struct row_scan *s)
{
        unsigned k = st->p.k;
        double own = p[label], lifted = own + CL_EPS, high;
        struct scan_acc a = {.sum = 0.0, .low = HUGE_VAL,
                             .other_p = -HUGE_VAL, .other = k,
                             .n_conf = 0, .conf = k};
        bool valid;

        scan_others(&a, p, st->thr_m, 0, label);
        a.sum += own;
        a.low = own < a.low ? own : a.low;
        scan_others(&a, p, st->thr_m, label + 1, k);
        /* The given class, with its new threshold.  With one confident
         * class, a.conf is that class. */
        if (own >= thr_label) {
                a.n_conf++;
                a.conf = label;
        }
        s->label = label;
        /* The lowest index of the largest value: label or other. */
        s->argmax = own > a.other_p || (own == a.other_p && label < a.other)
                            ? label
                            : a.other;
        /* Pitfall 1: with two or more confident classes, the argmax of
         * the whole row, which need not be confident itself. */
        s->guess = a.n_conf == 0 ? k : a.n_conf == 1 ? a.conf : s->argmax;
        s->other = a.other;
        /* argmax of p with p[label] + EPS: a class above it, or equal
         * with a lower index, keeps the item; `other` is the lowest index
         * of the largest value among the classes that can. */
        s->cleared = !(a.other_p > lifted ||
                       (a.other_p == lifted && a.other < label));
        /* In range iff the extremes are; a NaN anywhere makes the sum
         * NaN (and an infinity makes an extreme out of range).  The same
         * sum, in the same order, as cl_check_row(). */
        high = own > a.other_p ? own : a.other_p;
        valid = a.low >= -CL_EPS && high <= 1.0 + CL_EPS && a.sum == a.sum;
        return valid && !(st->p.sum_tol > 0.0 &&
                          fabs(a.sum - 1.0) > st->p.sum_tol);
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

/*
 * Bin of a margin position, as bin_of() but without the position inside
 * the bin, clamped with a max and a min rather than two early returns,
 * as this runs K - 1 times per item.  last = bins - 1; a position in
 * [last, bins) truncates to last either way.
 */
static unsigned margin_bin(double pos, double last)
{
        double c = pos > 0.0 ? pos : 0.0;

        return (unsigned)(c < last ? c : last);
}

/*
 * Adds the item to the margin trees of class i's cells, which are
 * adjacent.  sh is a copy of the state's shape, so that the compiler
 * knows the adds to the trees leave it alone and keeps it in registers
 * across the cells.
 */
static inline void margins_add(struct cl_state *st,
                               const struct cl_hist_shape *sh,
                               const double *p, unsigned i, double w)
{
        const uint32_t *col = st->cell_col;
        double *restrict mass = st->cell_mass;
        double *restrict tree;
        double own = p[i], half = st->half_bins, last = sh->bins - 1;
        unsigned k = st->p.k;
        size_t c = (size_t)i * st->cells, end = c + st->cells;

        for (tree = cl_cell_tree(st, c); c < end; c++, tree += sh->nodes) {
                unsigned j = col[c];

                if (j == k)
                        continue;
                /* margin_pos() of p[i] - p[j]. */
                cl_hist_add(tree, sh,
                            margin_bin((own - p[j] + 1.0) * half, last), w);
                mass[c] += w;
        }
}

/* Trees of two levels (17 to 256 bins, the default 256 among them) have
 * their own copy of the loop, where the assignment tells the compiler
 * the depth and it drops the level loop: K - 1 adds per item make its
 * tests a good part of the cost. */
static void add_margins(struct cl_state *st, const double *p, unsigned i,
                        double w)
{
        struct cl_hist_shape sh = st->shape;

        if (sh.levels == 2) {
                sh.levels = 2;
                margins_add(st, &sh, p, i, w);
        } else {
                margins_add(st, &sh, p, i, w);
        }
}

static void update_hists(struct cl_state *st, const double *p,
                         const struct row_scan *s, double w)
{
        const struct cl_hist_shape *sh = &st->shape;
        unsigned nb = st->p.bins, i = s->label;
        double frac;

        if (st->h_sc) {
                unsigned b = bin_of(score_pos(st, p[i]), nb, &frac);

                cl_hist_add(cl_class_tree(st, i), sh, b, w);
        }
        if (st->h_mg)
                add_margins(st, p, i, w);
        if (st->h_low) {
                double x = st->p.filter == CL_FILTER_LOW_SELF_CONFIDENCE
                                   ? p[i]
                                   : norm_margin(p, s);
                unsigned b = bin_of(score_pos(st, x), nb, &frac);

                cl_hist_add(st->h_low, sh, b, w);
        }
}

/*
 * Space-Saving (Metwally, Agrawal, El Abbadi, ICDT 2005) over the columns
 * of joint row i: column g not kept takes over the lightest cell, whose
 * weight it inherits as cell_err, so that cell_cnt stays an upper bound
 * of the column's weight and cell_cnt - cell_err is exactly the weight
 * counted since the take-over.  The margin tree restarts empty.
 */
static size_t cell_take_over(struct cl_state *st, unsigned i, unsigned g)
{
        size_t c = (size_t)i * st->cells, m = c;

        for (size_t end = c + st->cells; c < end; c++)
                if (st->cell_cnt[c] < st->cell_cnt[m])
                        m = c;
        st->cell_col[m] = g;
        st->cell_err[m] = st->cell_cnt[m];
        st->cell_mass[m] = 0.0;
        if (st->h_mg) {
                memset(cl_cell_tree(st, m), 0,
                       st->shape.nodes * sizeof(double));
                st->cut_mg[m] = (struct cl_cut){ 0.0, 0.0 };
        }
        return m;
}

/* Counts the confident guess g != i of an item labelled i. */
static void joint_add_off(struct cl_state *st, unsigned i, unsigned g,
                          double w)
{
        size_t c = cl_cell_find(st, i, g);

        if (c == SIZE_MAX)
                c = cell_take_over(st, i, g);
        st->cell_cnt[c] += w;
        st->off[i] += w;
}

/* Threshold of class i once an item of weight w with p[i] = x is
 * counted, computed as if cnt and sc_sum were updated in place. */
static double class_threshold(const struct cl_state *st, unsigned i,
                              double w, double x)
{
        double t = (st->sc_sum[i] + w * x) / (st->cnt[i] + w);

        return t >= CL_T_FLOOR ? t : CL_T_FLOOR;
}

/* Adds the row, of weight w = st->w and scanned into s with threshold t
 * of its class, to every sum (7.4); the caller has advanced the clock. */
static void state_add(struct cl_state *st, const double *p,
                      const struct row_scan *s, double t)
{
        unsigned k = st->p.k, i = s->label;
        double w = st->w;

        st->cnt[i] += w;
        st->sc_sum[i] += w * p[i];
        st->thr[i] = t;
        st->thr_m[i] = t - CL_EPS;
        if (s->guess == i)
                st->diag[i] += w;
        else if (s->guess < k)
                joint_add_off(st, i, s->guess, w);
        if (s->guess < k && s->guess != i && !s->cleared)
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

/*
 * The exact quota test, for quota_check(); a cut that the quota has
 * outgrown is found again for CUT_HEADROOM times the quota, so that it
 * lasts while the quota grows.  Most items do not get here.
 */
static void quota_check_exact(const double *tree, struct cl_cut *cut,
                              const struct cl_hist_shape *sh, double pos,
                              double quota, struct quota_test *q)
{
        double target;
        unsigned c;

        quota_test(tree, sh, pos, quota, q);
        if (quota < cut->quota)
                return;
        target = quota * CUT_HEADROOM;
        c = cl_hist_cut(tree, sh, target);
        cut->pos = c < sh->bins ? (double)c : HUGE_VAL;
        cut->quota = target;
}

/*
 * The quota test of a tree whose cut (cl_state.h) may answer it: an item
 * at or above the cut, with the quota below the one the cut was found
 * for, has more than the quota strictly below it, so the exact test
 * would say "not fired, not borderline"; most items of a class are there.
 * Inline, so that in that case the caller sees constants.
 */
static inline void quota_check(const double *tree, struct cl_cut *cut,
                               const struct cl_hist_shape *sh, double pos,
                               double quota, struct quota_test *q)
{
        if (pos >= cut->pos && quota < cut->quota) {
                q->fired = false;
                q->borderline = false;
                q->ratio = HUGE_VAL;
                return;
        }
        quota_check_exact(tree, cut, sh, pos, quota, q);
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
 * least one item (3.1 fix-up), and its off-diagonal part.  An exact state
 * adds its cells in column order, as the row was always summed; the off
 * sum of a pooled state also holds the columns it does not keep. */
static double joint_row(const struct cl_state *st, unsigned i,
                        double *ret_off)
{
        double off = 0.0, diag = st->diag[i];

        if (st->exact) {
                const double *cell = st->cell_cnt + (size_t)i * st->cells;

                for (unsigned s = 0; s < st->cells; s++)
                        off += cell[s];
        } else {
                off = st->off[i];
        }
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
 *
 * A pooled cell's tree holds only the items since its take-over, and
 * cell_cnt - cell_err counts exactly those: with the row's shares steady,
 * the tree's quota is that weight / R_i * cnt[i] (docs/streaming.md,
 * "Large K").  A tree with less than warmup_class items is not asked.
 * In an exact state cell_err is 0 and every tree has cnt[i]: the rule
 * above, bit for bit.
 */
static unsigned test_noise_rate(struct cl_state *st, const double *p,
                                unsigned i, bool *borderline)
{
        unsigned k = st->p.k, blamed = k;
        size_t c = (size_t)i * st->cells;
        double off, r = joint_row(st, i, &off), best = HUGE_VAL;
        double young = st->p.warmup_class * st->w;
        struct quota_test q;

        for (size_t end = c + st->cells; c < end; c++) {
                unsigned j = st->cell_col[c];
                double since = st->cell_cnt[c] - st->cell_err[c];

                if (j == k || !(since > 0.0) || st->cell_mass[c] < young)
                        continue;
                quota_check(cl_cell_tree(st, c), &st->cut_mg[c], &st->shape,
                            margin_pos(st, p[i] - p[j]),
                            since / r * st->cnt[i], &q);
                *borderline = *borderline || q.borderline;
                if (q.fired && q.ratio < best) {
                        best = q.ratio;
                        blamed = j;
                }
        }
        return blamed;
}

/*
 * A pooled state has no tree for most cells, and a young one for a cell
 * just taken over: an item whose confident guess g != i falls in such a
 * cell is judged by the confident_learning rule instead, which needs no
 * histogram (docs/streaming.md, "Large K").  Returns g, or K.
 */
static unsigned test_untracked(const struct cl_state *st,
                               const struct row_scan *s)
{
        unsigned k = st->p.k, i = s->label, g = s->guess;
        size_t c;

        if (st->exact || g >= k || g == i)
                return k;
        c = cl_cell_find(st, i, g);
        if (c != SIZE_MAX &&
            st->cell_mass[c] >= st->p.warmup_class * st->w)
                return k;
        return g;
}

/* prune_by_class (4.4): class i loses its off-diagonal share of items, the
 * ones with the lowest p[i]. */
static bool test_class(struct cl_state *st, const double *p,
                       unsigned i, bool *borderline)
{
        double off, r = joint_row(st, i, &off);
        struct quota_test q;

        quota_check(cl_class_tree(st, i), &st->cut_sc[i], &st->shape,
                    score_pos(st, p[i]), off / r * st->cnt[i], &q);
        *borderline = *borderline || q.borderline;
        return q.fired;
}

/* low_*: the lowest-scoring share O / T of all items, O being the weight
 * confident_learning would flag (4.9 with num_label_issues, 4.12). */
static bool test_low(struct cl_state *st, const double *p,
                     const struct row_scan *s, bool *borderline)
{
        double x = st->p.filter == CL_FILTER_LOW_SELF_CONFIDENCE
                           ? p[s->label]
                           : norm_margin(p, s);
        struct quota_test q;

        quota_check(st->h_low, st->cut_low, &st->shape, score_pos(st, x),
                    *st->offdiag, &q);
        *borderline = q.borderline;
        return q.fired;
}

static bool is_warm(const struct cl_state *st, unsigned i)
{
        return *st->total >= st->p.warmup_total * st->w &&
               st->cnt[i] >= st->p.warmup_class * st->w;
}

/* The three quantile filters, for a warm item the final filter kept. */
static void decide_prune(struct cl_state *st, const double *p,
                         const struct row_scan *s, struct cl_verdict *v)
{
        enum cl_filter f = st->p.filter;
        unsigned i = s->label, j = st->p.k;
        bool by_class = true, untracked = false;

        if (!(st->cnt[i] > st->p.min_examples * st->w)) {
                set_text(v, "min_examples");
                return;
        }
        if (f != CL_FILTER_PRUNE_BY_CLASS) {
                j = test_noise_rate(st, p, i, &v->borderline);
                if (j == st->p.k) {
                        j = test_untracked(st, s);
                        untracked = j < st->p.k;
                }
        }
        if (f != CL_FILTER_PRUNE_BY_NOISE_RATE)
                by_class = test_class(st, p, i, &v->borderline);

        if (f == CL_FILTER_PRUNE_BY_CLASS && by_class) {
                suspect(v, s->other);
                set_reason(v, "pbc", i, st->p.k, st->p.k);
        } else if (f != CL_FILTER_PRUNE_BY_CLASS && j < st->p.k &&
                   by_class) {
                suspect(v, j);
                set_reason(v, untracked ? (f == CL_FILTER_BOTH ? "both-cl"
                                                                : "pbnr-cl")
                                        : (f == CL_FILTER_BOTH ? "both"
                                                                : "pbnr"),
                           i, j, st->p.k);
        } else {
                set_text(v, "pass");
        }
}

static void decide(struct cl_state *st, const double *p,
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

/* Keeps an item for cl_state_release(); its verdict says CL_TAG_HELD. */
static int hold_item(struct cl_state *st, const double *p, unsigned i,
                     enum cl_hold_kind kind, struct cl_verdict *v)
{
        uint64_t at = cl_hold_push(st, i, p, kind);

        if (!v)
                return 0;
        v->tag = CL_TAG_HELD;
        v->given = i;
        v->suggested = i;
        v->quality = p[i];
        v->threshold = st->thr[i];
        v->borderline = false;
        v->hold_index = at;
        set_text(v, "held");
        return 0;
}

/* The verdict of an item the statistics already count (s for them). */
static void judge(struct cl_state *st, const double *p,
                  const struct row_scan *s, struct cl_verdict *v)
{
        /* Filled in place: a local copied out at the end costs a stalled
         * store-to-load forward of the byte-wise written reason. */
        v->given = s->label;
        v->suggested = s->label;
        v->quality = p[s->label];
        v->threshold = st->thr[s->label];
        v->borderline = false;
        v->hold_index = 0;
        decide(st, p, s, v);
}

void cl_observe_judge(struct cl_state *st, unsigned label,
                      const double *p, struct cl_verdict *v)
{
        struct row_scan s;

        /* The confident guess with today's thresholds: a held item is
         * judged as if it arrived now, after the items since.  The row
         * was checked when it came. */
        scan_row(st, p, label, st->thr_m[label], &s);
        judge(st, p, &s, v);
}

/* Counts a valid row: the clock, the sums, then the verdict or the
 * hold.  s and t are from scan_row() and class_threshold() with weight
 * w, the clock's next value; held is cl_hold_wants() before any of it. */
static int observe_row(struct cl_state *st, const double *p,
                       const struct row_scan *s, enum cl_hold_kind held,
                       double w, double t, struct cl_verdict *ret_verdict)
{
        st->items++;
        st->w = w;
        state_add(st, p, s, t);
        if (held != CL_HOLD_NONE)
                return hold_item(st, p, s->label, held, ret_verdict);
        if (ret_verdict)
                judge(st, p, s, ret_verdict);
        return 0;
}

int cl_observe(struct cl_state *st, long label, const double *probs,
               size_t n, struct cl_verdict *ret_verdict, size_t *ret_index)
{
        struct row_scan s;
        enum cl_hold_kind held;
        double w = st->w * st->growth, t;
        unsigned i;
        int rc;

        if (n != st->p.k || label < 0 || label >= (long)st->p.k)
                return cl_check_row(st, label, probs, n, ret_index);
        i = (unsigned)label;
        if (w > CL_RENORM_AT) {
                /* About once per 600 half-lives: every sum is divided by
                 * w first, so the item counts with weight 1. */
                rc = cl_check_row(st, label, probs, n, ret_index);
                if (rc < 0)
                        return rc;
                /* Warm-up hold is asked before the item counts. */
                held = cl_hold_wants(st);
                st->w = w;
                state_renormalise(st);
                w = st->w;
                t = class_threshold(st, i, w, probs[i]);
                scan_row(st, probs, i, t - CL_EPS, &s);
                return observe_row(st, probs, &s, held, w, t, ret_verdict);
        }
        /* One pass checks the row and finds what the decision needs,
         * before anything changes: a rejected row leaves the state as it
         * was. */
        t = class_threshold(st, i, w, probs[i]);
        if (!scan_row(st, probs, i, t - CL_EPS, &s))
                return cl_check_row(st, label, probs, n, ret_index);
        held = cl_hold_wants(st);
        return observe_row(st, probs, &s, held, w, t, ret_verdict);
}
