/*
 * cl_hist.h - private to core/: histograms over B equal bins, stored as
 * Fenwick trees (binary indexed trees) of doubles, so that adding mass to
 * a bin and reading the mass below a bin both cost O(log B).
 *
 * Node x (1-based, stored at tree[x - 1]) holds the mass of bins
 * [x - lowbit(x), x).  Trees are linear in their bins: adding or scaling
 * two trees node by node adds or scales their histograms.
 */
#ifndef CFD_CORE_CL_HIST_H
#define CFD_CORE_CL_HIST_H

#include <stddef.h>

/* Adds v to bin b (< nb) of a tree of nb bins. */
static inline void cl_hist_add(double *tree, unsigned nb, unsigned b,
                               double v)
{
        for (unsigned x = b + 1; x <= nb; x += x & (0u - x))
                tree[x - 1] += v;
}

/* Mass of bins 0 .. b-1 (b <= nb). */
static inline double cl_hist_below(const double *tree, unsigned b)
{
        double s = 0.0;

        for (unsigned x = b; x > 0; x &= x - 1)
                s += tree[x - 1];
        return s;
}

/*
 * Writes the nb bin masses of a tree into bins, each multiplied by scale;
 * masses that rounding made slightly negative are reported as 0.  O(nb).
 */
void cl_hist_to_bins(const double *tree, unsigned nb, double scale,
                     double *bins);

#endif /* CFD_CORE_CL_HIST_H */
