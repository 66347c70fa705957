/*
 * cl_hist.c - 16-ary sum trees: the parts off the per-item path.
 */
#include "cl_hist.h"

#include <math.h>

void cl_hist_shape_init(struct cl_hist_shape *sh, unsigned bins)
{
        size_t size = bins, start = 0;
        unsigned l = 0;

        sh->bins = bins;
        for (;;) {
                sh->start[l] = start;
                sh->size[l] = size;
                start += size;
                l++;
                if (size <= CL_HIST_FAN || l == CL_HIST_MAX_LEVELS)
                        break;
                size = (size + CL_HIST_FAN - 1) / CL_HIST_FAN;
        }
        sh->levels = l;
        sh->nodes = start;
}

/*
 * cl_hist_below() of a bin in node x of level l, leaving out the levels
 * below l: the same terms in the same order, started from 0 instead of
 * the non-negative sum of those levels, so never more.
 */
static double below_from(const double *tree, const struct cl_hist_shape *sh,
                         unsigned l, size_t x)
{
        double s = 0.0;

        for (unsigned m = l; m < sh->levels; m++, x >>= CL_HIST_FAN_BITS) {
                const double *node = tree + sh->start[m];

                for (size_t y = x & ~(size_t)(CL_HIST_FAN - 1); y < x; y++)
                        s += node[y];
        }
        return s;
}

/*
 * From the top level down: among the nodes under the node where the bound
 * crosses `mass` (all nodes at the top), the first whose below_from() is
 * at least mass starts the cut.  below_from() grows with x among siblings
 * (more terms of the same kind, same terms above), so a binary search
 * finds it; every bin from there on, in this or a later sibling or in a
 * later node of a level above, has at least mass below it.
 */
unsigned cl_hist_cut(const double *tree, const struct cl_hist_shape *sh,
                     double mass)
{
        unsigned top = sh->levels - 1, cut = sh->bins;
        size_t first = 0, end = sh->size[top];

        /* cl_hist_below() reads the top level from node 0 only when it
         * has at most 16 nodes, which CL_HIST_MAX_LEVELS ensures for
         * every valid number of bins. */
        if (end > CL_HIST_FAN)
                return sh->bins;
        for (unsigned l = top + 1; l-- > 0;) {
                size_t lo = first, hi = end;

                /* Smallest x in [first, end) with enough below, or end. */
                while (lo < hi) {
                        size_t mid = lo + (hi - lo) / 2;

                        if (below_from(tree, sh, l, mid) >= mass)
                                hi = mid;
                        else
                                lo = mid + 1;
                }
                if (lo == end)
                        break;
                cut = (unsigned)(lo << (l * CL_HIST_FAN_BITS));
                if (lo == first || l == 0)
                        break;
                /* The children of node lo - 1, where the bound crosses. */
                first = (lo - 1) << CL_HIST_FAN_BITS;
                end = first + CL_HIST_FAN;
                if (end > sh->size[l - 1])
                        end = sh->size[l - 1];
        }
        return cut;
}

bool cl_hist_consistent(const double *tree, const struct cl_hist_shape *sh,
                        double slack)
{
        for (unsigned l = 1; l < sh->levels; l++) {
                const double *child = tree + sh->start[l - 1];
                const double *node = tree + sh->start[l];

                for (size_t x = 0; x < sh->size[l]; x++) {
                        size_t lo = x * CL_HIST_FAN, hi = lo + CL_HIST_FAN;
                        double sum = 0.0;

                        if (hi > sh->size[l - 1])
                                hi = sh->size[l - 1];
                        for (size_t c = lo; c < hi; c++)
                                sum += child[c];
                        if (!(fabs(node[x] - sum) <= 1e-6 * node[x] + slack))
                                return false;
                }
        }
        return true;
}
