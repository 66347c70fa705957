/*
 * cl_hist.h - private to core/: histograms over B equal bins that answer
 * "mass below bin b" in O(log B).
 *
 * A histogram is a 16-ary tree of partial sums kept in one array of
 * doubles: level 0 holds the B bin masses, level l + 1 holds the sums of
 * groups of 16 consecutive level-l nodes, up to the first level of at most
 * 16 nodes (B = 256: 256 + 16 nodes).  Adding mass touches one node per
 * level; the mass below bin b is at most 15 sibling nodes per level, read
 * from adjacent memory.  Compared with a binary Fenwick tree this halves
 * the scattered writes on the per-item path, which dominates, since every
 * item updates K - 1 margin histograms while only items that survive the
 * argmax filter query them.
 *
 * Trees are linear in their bins: adding or scaling two trees node by node
 * adds or scales their histograms.
 */
#ifndef CFD_CORE_CL_HIST_H
#define CFD_CORE_CL_HIST_H

#include <stdbool.h>
#include <stddef.h>

#define CL_HIST_FAN_BITS 4u
#define CL_HIST_FAN (1u << CL_HIST_FAN_BITS)
#define CL_HIST_MAX_LEVELS 4u /* 16^4 = CL_BINS_MAX */

/* Where the levels of a tree of `bins` bins start; same for every tree
 * of that size. */
struct cl_hist_shape {
        unsigned bins;
        unsigned levels;
        size_t start[CL_HIST_MAX_LEVELS];
        size_t size[CL_HIST_MAX_LEVELS];
        size_t nodes; /* doubles per tree */
};

/* Fills the shape for 1 <= bins <= 16^CL_HIST_MAX_LEVELS. */
void cl_hist_shape_init(struct cl_hist_shape *sh, unsigned bins);

/* Adds v to bin b (< bins). */
static inline void cl_hist_add(double *tree, const struct cl_hist_shape *sh,
                               unsigned b, double v)
{
        for (unsigned l = 0; l < sh->levels; l++)
                tree[sh->start[l] + (b >> (l * CL_HIST_FAN_BITS))] += v;
}

/* Mass of bins 0 .. b-1 (b < bins). */
static inline double cl_hist_below(const double *tree,
                                   const struct cl_hist_shape *sh, unsigned b)
{
        double s = 0.0;

        for (unsigned l = 0; l < sh->levels; l++) {
                const double *node = tree + sh->start[l];
                unsigned x = b >> (l * CL_HIST_FAN_BITS);

                for (unsigned y = x & ~(CL_HIST_FAN - 1); y < x; y++)
                        s += node[y];
        }
        return s;
}

/* Mass of bin b. */
static inline double cl_hist_bin(const double *tree, unsigned b)
{
        return tree[b];
}

/*
 * A bound on cl_hist_below() that holds while the tree only gains mass:
 * returns a bin c such that cl_hist_below(tree, sh, b) >= mass for every
 * bin b >= c, now and after any cl_hist_add() of v >= 0, as long as no
 * node is negative; `bins` when no bin is found.  c is the lowest such bin
 * that the partial sums of the levels above prove, often the lowest of
 * all.  Why it holds: cl_hist_below() adds, level by level from the bins
 * up, the siblings left of the bin's node; leaving out the lowest levels
 * starts the same additions from 0 instead of a non-negative sum, and a
 * rounded sum of non-negative terms does not decrease when a term or the
 * starting value grows.  About 64 levels^2 additions: for a cache refreshed
 * now and then, not for every item.
 */
unsigned cl_hist_cut(const double *tree, const struct cl_hist_shape *sh,
                     double mass);

/*
 * Checks that every inner node is the sum of its children, to a relative
 * 1e-6 (parent and children add the same weights in different orders;
 * typical drift is far smaller) plus `slack` absolute (mass flushed to
 * zero at renormalisation).  For snapshots, whose trees cannot be
 * trusted.  O(nodes).
 */
bool cl_hist_consistent(const double *tree, const struct cl_hist_shape *sh,
                        double slack);

#endif /* CFD_CORE_CL_HIST_H */
