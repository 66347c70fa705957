/*
 * cl_state.h - private to core/: the layout of struct cl_state, shared by
 * cl.c (life cycle, getters, merge), cl_observe.c (the per-item path) and
 * cl_snapshot.c.
 */
#ifndef CFD_CORE_CL_STATE_H
#define CFD_CORE_CL_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl.h"
#include "cl_hist.h"

/*
 * Decay uses lazy weights (docs/streaming.md): item number t adds the raw
 * weight w_t = 2^(t / half_life) to every sum it touches, so nothing old is
 * ever multiplied on the per-item path, and a field's effective value is
 * raw / w.  When w passes CL_RENORM_AT every sum is divided by w and w
 * restarts at 1: about once per 600 half-lives.  Sums stay below about
 * 2^600 * 1.45 * CL_HALF_LIFE_MAX < 2^650, far from overflow.
 */
#define CL_RENORM_AT 0x1p600
/* At renormalisation, a sum below this (contributions older than ~900
 * half-lives) becomes 0, so no denormal ever reaches the per-item path. */
#define CL_FLUSH_BELOW 0x1p-900

/*
 * All raw (weighted) sums live in one block of doubles, in this order, so
 * that renormalisation, merge and snapshot treat them alike:
 *
 *   total      1          weight of all items (T)
 *   offdiag    1          weight of confident_learning suspects (O)
 *   cnt        K          weight of items labelled k
 *   sc_sum     K          weighted sum of p[k] over those items
 *   diag       K          confident joint, diagonal
 *   off        K          confident joint, sum of row k off the diagonal
 *   cell_cnt   K * S      joint weight of each kept cell (i, cell_col)
 *   cell_err   K * S      part of cell_cnt inherited at eviction
 *   cell_mass  K * S      weight added to the cell's margin tree
 *   h_sc       K * H      histogram of p[i], items labelled i
 *   h_mg       K * S * H  histogram of p[i] - p[cell_col], cell by cell
 *   h_low      H          histogram of the low_* score
 *
 * H = shape.nodes, the doubles of one histogram tree (cl_hist.h).  S =
 * cells, the off-diagonal cells kept per class: min(p.cells, K - 1).
 * Cell s of class i is number i * S + s; cell_col (outside the block, K S
 * entries) names its column j, or K while unused.
 *
 * With S = K - 1 (`exact`) cell s of class i is column s < i ? s : s + 1
 * for good, and the state is the full confident joint and K (K - 1)
 * margin histograms.  With fewer, each class's cells follow the heaviest
 * columns of its joint row by the Space-Saving rule (docs/streaming.md,
 * "Large K"): an off-diagonal count for a column not kept takes over the
 * lightest cell, inheriting its weight as cell_err, with an empty tree.
 *
 * A histogram not needed by the filter has length 0.  After the sums come
 * thr and thr_m (K each), caches derived from cnt and sc_sum.
 *
 * Outside the block, each histogram tree has a cut (struct cl_cut): a
 * cache of the decision path, neither saved nor merged.
 */

/*
 * Where a tree's quota test cannot fire: while the quota stays below
 * `quota`, every position >= pos has more than the quota strictly below
 * it (cl_hist_cut()), so the exact test would answer "not fired, not
 * borderline".  Valid while the tree only gains mass: renormalisation,
 * merge and a cell take-over zero it.  All zero (quota 0) is never
 * valid, as a tested quota is not below 0.
 */
struct cl_cut {
        double pos;   /* a bin edge, in bins from the low end; HUGE_VAL */
        double quota; /* the quota pos was found for */
};
struct cl_state {
        struct cl_params p;
        uint64_t items;   /* accepted rows, not decayed */
        double w;         /* raw weight of the newest item */
        double growth;    /* 2^(1 / half_life), 1 without decay */
        double half_bins; /* bins / 2, for the margin bins */
        struct cl_hist_shape shape;
        unsigned cells;   /* S: cells kept per class */
        bool exact;       /* S = K - 1: every cell, fixed columns */
        double *total;
        double *offdiag;
        double *cnt;
        double *sc_sum;
        double *diag;
        double *off;
        double *cell_cnt;
        double *cell_err;
        double *cell_mass;
        double *h_sc;
        double *h_mg;
        double *h_low;
        double *thr;   /* max(sc_sum / cnt, T_FLOOR), T_MISSING if cnt 0 */
        double *thr_m; /* thr - EPS: class k is confident iff p[k] >= it */
        uint32_t *cell_col; /* K * S columns, K for an unused cell */
        size_t n_sums; /* doubles from total to the end of h_low */
        size_t n_cells;           /* K * S */
        size_t n_sc, n_mg, n_low; /* lengths of the three histograms */
        double *block;            /* n_sums + 2 K doubles */
        struct cl_cut *cut;       /* one per tree: h_sc, h_mg, h_low */
        struct cl_cut *cut_sc, *cut_mg, *cut_low; /* into cut, or NULL */
        size_t n_trees;
        struct cl_hold *hold;     /* warmup_policy hold, else NULL
                                   * (cl_hold.c) */
};

/* Decides an item that was counted earlier with the statistics as they
 * are now (the decision window of cl_hold.c); fills every field of *v
 * but hold_index (0).  cl_observe.c. */
void cl_observe_judge(struct cl_state *st, unsigned label,
                      const double *p, struct cl_verdict *v);

/* Forgets every cut (after sums were scaled down or replaced). */
void cl_state_cuts_reset(struct cl_state *st);

/* Recomputes thr and thr_m of every class from cnt and sc_sum. */
void cl_state_refresh(struct cl_state *st);

/* Cells kept per class for these parameters: min(p->cells, K - 1). */
static inline unsigned cl_cells_per_class(const struct cl_params *p)
{
        return p->cells < p->k - 1 ? p->cells : p->k - 1;
}

/* The fixed column of cell s of class i in an exact state. */
static inline unsigned cl_exact_col(unsigned i, unsigned s)
{
        return s < i ? s : s + 1;
}

/* Index of class i's cell for column j != i, or SIZE_MAX if none is
 * kept. */
static inline size_t cl_cell_find(const struct cl_state *st, unsigned i,
                                  unsigned j)
{
        size_t c = (size_t)i * st->cells;

        if (st->exact)
                return c + (j < i ? j : j - 1);
        for (size_t end = c + st->cells; c < end; c++)
                if (st->cell_col[c] == j)
                        return c;
        return SIZE_MAX;
}

/* The margin histogram of cell c. */
static inline double *cl_cell_tree(const struct cl_state *st, size_t c)
{
        return st->h_mg + c * st->shape.nodes;
}

/* The self-confidence histogram of class i. */
static inline double *cl_class_tree(const struct cl_state *st, unsigned i)
{
        return st->h_sc + (size_t)i * st->shape.nodes;
}

#endif /* CFD_CORE_CL_STATE_H */
