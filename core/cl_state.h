/*
 * cl_state.h - private to core/: the layout of struct cl_state, shared by
 * cl.c (life cycle, getters, merge), cl_observe.c (the per-item path) and
 * cl_snapshot.c.
 */
#ifndef CFD_CORE_CL_STATE_H
#define CFD_CORE_CL_STATE_H

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
 *   joint      K * K      confident joint, row = given, column = guess
 *   h_sc       K * H      histogram of p[i], items labelled i
 *   h_mg       K(K-1) * H histogram of p[i] - p[j], cell (i, j != i)
 *   h_low      H          histogram of the low_* score
 *
 * H = shape.nodes, the doubles of one histogram tree (cl_hist.h).
 *
 * A histogram not needed by the filter has length 0.  After the sums come
 * thr and thr_m (K each), caches derived from cnt and sc_sum.
 */
struct cl_state {
        struct cl_params p;
        uint64_t items;   /* accepted rows, not decayed */
        double w;         /* raw weight of the newest item */
        double growth;    /* 2^(1 / half_life), 1 without decay */
        double half_bins; /* bins / 2, for the margin bins */
        struct cl_hist_shape shape;
        double *total;
        double *offdiag;
        double *cnt;
        double *sc_sum;
        double *joint;
        double *h_sc;
        double *h_mg;
        double *h_low;
        double *thr;   /* max(sc_sum / cnt, T_FLOOR), T_MISSING if cnt 0 */
        double *thr_m; /* thr - EPS: class k is confident iff p[k] >= it */
        size_t n_sums; /* doubles from total to the end of h_low */
        size_t n_sc, n_mg, n_low; /* lengths of the three histograms */
        double *block;            /* n_sums + 2 K doubles */
};

/* Recomputes thr and thr_m of every class from cnt and sc_sum. */
void cl_state_refresh(struct cl_state *st);

/* The margin histogram of cell (i, j), j != i.  The K - 1 cells of
 * class i are adjacent, in order of j. */
static inline double *cl_margin_tree(const struct cl_state *st, unsigned i,
                                     unsigned j)
{
        size_t cell = (size_t)i * (st->p.k - 1) + (j < i ? j : j - 1);

        return st->h_mg + cell * st->shape.nodes;
}

/* The self-confidence histogram of class i. */
static inline double *cl_class_tree(const struct cl_state *st, unsigned i)
{
        return st->h_sc + (size_t)i * st->shape.nodes;
}

#endif /* CFD_CORE_CL_STATE_H */
