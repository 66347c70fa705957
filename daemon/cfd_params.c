#include "cfd_params.h"

#include <stdio.h>

int cfd_params_from_cfg(const struct cfg *cfg, struct cl_params *ret_params,
                        char *errbuf, size_t errsize)
{
        const char *path = cfg->path ? cfg->path : "config";
        struct cl_params p;
        int rc;

        cl_params_init(&p, cfg->classes.count);
        if (cl_filter_parse(cfg->filter.method, &p.filter) < 0) {
                snprintf(errbuf, errsize, "%s:%u:%u: unknown filter method '%s'",
                         path, cfg->filter.method_line, cfg->filter.method_col,
                         cfg->filter.method);
                return -1;
        }
        p.half_life = cfg->filter.half_life;
        p.bins = cfg->filter.bins;
        if (cfg->filter.warmup_total >= 0)
                p.warmup_total = cfg->filter.warmup_total;
        p.warmup_class = cfg->filter.warmup_class;
        p.min_examples = cfg->filter.min_examples;
        p.sum_tol = cfg->filter.sum_tolerance;
        p.warmup_policy = cfg->filter.warmup_policy == CFG_WARMUP_HOLD
                                  ? CL_WARMUP_HOLD
                                  : CL_WARMUP_PASS;

        rc = cl_params_check(&p);
        if (rc < 0) {
                snprintf(errbuf, errsize, "%s: filter: %s (K=%u, bins=%u)",
                         path, cl_strerror(rc), p.k, p.bins);
                return -1;
        }
        *ret_params = p;
        return 0;
}
