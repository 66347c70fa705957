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
