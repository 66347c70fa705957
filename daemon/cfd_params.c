#include "cfd_params.h"

#include <math.h>
#include <stdio.h>

/* Effective item count a decayed sum tends to: 1 / (1 - 2^(-1/h)). */
static double steady_items(double half_life)
{
        return half_life > 0.0 ? 1.0 / (1.0 - exp2(-1.0 / half_life))
                               : HUGE_VAL;
}

/*
 * Says which setting core refused and why, for the checks an operator can
 * run into; a generic sentence for the rest.
 */
static void explain(const struct cl_params *p, const char *path,
                    char *errbuf, size_t errsize)
{
        double steady = steady_items(p->half_life);
        double mib = (double)cl_params_memory(p) / (1024.0 * 1024.0);
        double limit_mib = (double)CL_STATE_MAX_BYTES / (1024.0 * 1024.0);

        if (p->half_life > 0.0 && p->half_life < 1.0)
                snprintf(errbuf, errsize,
                         "%s: filter.half_life %g is below 1 item; use 0 "
                         "for no decay",
                         path, p->half_life);
        else if (p->warmup_total >= steady)
                snprintf(errbuf, errsize,
                         "%s: with filter.half_life %g the statistics hold "
                         "at most %.0f effective items, not the %.0f of "
                         "filter.warmup_total: no item would ever be judged; "
                         "raise half_life or lower warmup_total",
                         path, p->half_life, steady, p->warmup_total);
        else if (p->warmup_class >= steady || p->min_examples >= steady)
                snprintf(errbuf, errsize,
                         "%s: with filter.half_life %g the statistics hold "
                         "at most %.0f effective items, fewer than "
                         "filter.warmup_class or filter.min_examples",
                         path, p->half_life, steady);
        else if (mib > limit_mib)
                snprintf(errbuf, errsize,
                         "%s: %u classes with filter.bins %u need a %.0f MiB "
                         "state, above the %.0f MiB limit; lower filter.bins "
                         "or use fewer classes",
                         path, p->k, p->bins, mib, limit_mib);
        else
                snprintf(errbuf, errsize,
                         "%s: filter: %s (classes %u, bins %u, half_life %g, "
                         "warmup_total %.0f)",
                         path, cl_strerror(CL_E_PARAM), p->k, p->bins,
                         p->half_life, p->warmup_total);
}

int cfd_params_from_cfg(const struct cfg *cfg, struct cl_params *ret_params,
                        char *errbuf, size_t errsize)
{
        const char *path = cfg->path ? cfg->path : "config";
        struct cl_params p;

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

        if (cl_params_check(&p) < 0) {
                explain(&p, path, errbuf, errsize);
                return -1;
        }
        *ret_params = p;
        return 0;
}
