/*
 * cl_hist.c - Fenwick-tree histograms: the parts off the per-item path.
 */
#include "cl_hist.h"

void cl_hist_to_bins(const double *tree, unsigned nb, double scale,
                     double *bins)
{
        for (unsigned b = 0; b < nb; b++)
                bins[b] = tree[b];
        /* Undo the tree from the top: node x is still a tree value when it
         * is taken out of its parent x + lowbit(x), because only x's own
         * children (all below x) change it, and they come later. */
        for (unsigned x = nb; x > 0; x--) {
                unsigned parent = x + (x & (0u - x));

                if (parent <= nb)
                        bins[parent - 1] -= bins[x - 1];
        }
        for (unsigned b = 0; b < nb; b++)
                bins[b] = bins[b] > 0.0 ? bins[b] * scale : 0.0;
}
