/*
 * cl.c - names, parameters, life cycle, getters and merge of struct
 * cl_state.  The per-item path is in cl_observe.c, the snapshot format in
 * cl_snapshot.c.
 */
#include "cl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl_hist.h"
#include "cl_state.h"

struct err_entry {
        int code;
        const char *name;
        const char *text;
};

static const struct err_entry err_table[] = {
        { CL_OK, "CL_OK", "success" },
        { CL_E_WIDTH, "CL_E_WIDTH", "number of probabilities is not K" },
        { CL_E_LABEL_TYPE, "CL_E_LABEL_TYPE", "label is not an integer" },
        { CL_E_LABEL_RANGE, "CL_E_LABEL_RANGE", "label is outside 0..K-1" },
        { CL_E_NONFINITE, "CL_E_NONFINITE",
          "a probability is NaN or infinite" },
        { CL_E_RANGE, "CL_E_RANGE", "a probability is outside [0, 1]" },
        { CL_E_ROW_SUM, "CL_E_ROW_SUM",
          "probabilities do not sum to 1 within sum_tol" },
        { CL_E_PARAM, "CL_E_PARAM", "invalid parameter" },
        { CL_E_NOMEM, "CL_E_NOMEM", "out of memory" },
        { CL_E_SNAPSHOT, "CL_E_SNAPSHOT", "malformed state snapshot" },
        { CL_E_VERSION, "CL_E_VERSION",
          "unknown state snapshot format version" },
        { CL_E_MISMATCH, "CL_E_MISMATCH",
          "states differ in K, bins, half-life or filter" },
};

static const struct err_entry *err_find(int code)
{
        for (size_t e = 0; e < sizeof(err_table) / sizeof(err_table[0]); e++)
                if (err_table[e].code == code)
                        return &err_table[e];
        return NULL;
}

const char *cl_err_name(int code)
{
        const struct err_entry *e = err_find(code);

        return e ? e->name : "CL_E_UNKNOWN";
}

const char *cl_strerror(int code)
{
        const struct err_entry *e = err_find(code);

        return e ? e->text : "unknown error";
}

static const char *const filter_names[] = {
        [CL_FILTER_PRUNE_BY_NOISE_RATE] = "prune_by_noise_rate",
        [CL_FILTER_PRUNE_BY_CLASS] = "prune_by_class",
        [CL_FILTER_BOTH] = "both",
        [CL_FILTER_CONFIDENT_LEARNING] = "confident_learning",
        [CL_FILTER_PREDICTED_NEQ_GIVEN] = "predicted_neq_given",
        [CL_FILTER_LOW_SELF_CONFIDENCE] = "low_self_confidence",
        [CL_FILTER_LOW_NORMALIZED_MARGIN] = "low_normalized_margin",
};

#define N_FILTERS (sizeof(filter_names) / sizeof(filter_names[0]))

const char *cl_filter_name(enum cl_filter f)
{
        if ((unsigned)f >= N_FILTERS)
                return NULL;
        return filter_names[f];
}

int cl_filter_parse(const char *name, enum cl_filter *ret_filter)
{
        if (!name)
                return CL_E_PARAM;
        for (unsigned f = 0; f < N_FILTERS; f++) {
                if (strcmp(name, filter_names[f]) == 0) {
                        *ret_filter = (enum cl_filter)f;
                        return 0;
                }
        }
        return CL_E_PARAM;
}

const char *cl_tag_name(enum cl_tag tag)
{
        switch (tag) {
        case CL_TAG_CLEAN:
                return "clean";
        case CL_TAG_SUSPECT:
                return "suspect";
        case CL_TAG_WARMUP:
                return "warmup";
        }
        return NULL;
}

int cl_label_from_double(double x, long *ret_label)
{
        long v;

        /* The bounds keep the conversion defined (C11 6.3.1.4); they also
         * reject NaN and infinities, for which every comparison fails. */
        if (!(x > -0x1p63 && x < 0x1p63))
                return CL_E_LABEL_TYPE;
        v = (long)x;
        if ((double)v != x)
                return CL_E_LABEL_TYPE;
        *ret_label = v;
        return 0;
}

void cl_params_init(struct cl_params *p, unsigned k)
{
        memset(p, 0, sizeof(*p));
        p->k = k;
        p->filter = CL_FILTER_PRUNE_BY_NOISE_RATE;
        p->half_life = 0.0;
        p->bins = 256;
        p->warmup_total = 50.0 * k > 1000.0 ? 50.0 * k : 1000.0;
        p->warmup_class = 30.0;
        p->min_examples = 1.0;
        p->sum_tol = 1e-3;
        p->low_final_filter = false;
}

/* Lengths of the three histograms the filter needs (0 for the others). */
static void hist_lengths(const struct cl_params *p, uint64_t *ret_sc,
                         uint64_t *ret_mg, uint64_t *ret_low)
{
        struct cl_hist_shape sh;
        uint64_t k = p->k, h;
        bool sc = false, mg = false, low = false;

        cl_hist_shape_init(&sh, p->bins);
        h = sh.nodes;

        switch (p->filter) {
        case CL_FILTER_PRUNE_BY_NOISE_RATE:
                mg = true;
                break;
        case CL_FILTER_PRUNE_BY_CLASS:
                sc = true;
                break;
        case CL_FILTER_BOTH:
                sc = mg = true;
                break;
        case CL_FILTER_LOW_SELF_CONFIDENCE:
        case CL_FILTER_LOW_NORMALIZED_MARGIN:
                low = true;
                break;
        case CL_FILTER_CONFIDENT_LEARNING:
        case CL_FILTER_PREDICTED_NEQ_GIVEN:
                break;
        }
        *ret_sc = sc ? k * h : 0;
        *ret_mg = mg && k > 0 ? k * (k - 1) * h : 0;
        *ret_low = low ? h : 0;
}

/* Doubles in the state block; in 64 bits, as K^2 B may pass 2^32. */
static uint64_t block_doubles(const struct cl_params *p)
{
        uint64_t k = p->k, sc, mg, low;

        hist_lengths(p, &sc, &mg, &low);
        /* total, offdiag, cnt, sc_sum, joint, histograms, thr, thr_m */
        return 2 + 2 * k + k * k + sc + mg + low + 2 * k;
}

size_t cl_params_memory(const struct cl_params *p)
{
        uint64_t n;

        /* K and bins beyond their limits could overflow 64 bits. */
        if (p->k > CL_K_MAX || p->bins < 1 || p->bins > CL_BINS_MAX)
                return SIZE_MAX;
        n = block_doubles(p);
        if (n > (SIZE_MAX - sizeof(struct cl_state)) / sizeof(double))
                return SIZE_MAX;
        return sizeof(struct cl_state) + (size_t)n * sizeof(double);
}

static bool is_count(double x)
{
        return isfinite(x) && x >= 0.0;
}

/* Effective total that a decayed stream approaches: sum of 2^(-t / h)
 * over t >= 0.  Infinite without decay. */
static double steady_total(double half_life)
{
        if (half_life == 0.0)
                return HUGE_VAL;
        return 1.0 / (1.0 - exp2(-1.0 / half_life));
}

int cl_params_check(const struct cl_params *p)
{
        double limit;

        if (!p || p->k < 2 || p->k > CL_K_MAX)
                return CL_E_PARAM;
        if (!cl_filter_name(p->filter))
                return CL_E_PARAM;
        if (p->bins < CL_BINS_MIN || p->bins > CL_BINS_MAX)
                return CL_E_PARAM;
        if (!is_count(p->half_life) || p->half_life > CL_HALF_LIFE_MAX ||
            (p->half_life > 0.0 && p->half_life < 1.0))
                return CL_E_PARAM;
        if (!is_count(p->warmup_total) || !is_count(p->warmup_class) ||
            !is_count(p->min_examples) || !is_count(p->sum_tol))
                return CL_E_PARAM;
        /* Under decay the effective counts never pass steady_total(); a
         * threshold at or above it would keep every item in warm-up. */
        limit = steady_total(p->half_life);
        if (p->warmup_total >= limit || p->warmup_class >= limit ||
            p->min_examples >= limit)
                return CL_E_PARAM;
        /* TODO: prune_by_noise_rate and both keep K (K - 1) margin trees;
         * at B = 256 a K above about 700 passes CL_STATE_MAX_BYTES and is
         * refused here with CL_E_PARAM, so the daemon will not start.
         * Keeping trees only for cells whose joint passes a floor (each
         * with its own warm-up) would lift the limit. */
        if (cl_params_memory(p) > CL_STATE_MAX_BYTES)
                return CL_E_PARAM;
        return 0;
}

/* Points the named fields into the block (layout in cl_state.h). */
static void state_layout(struct cl_state *st)
{
        size_t k = st->p.k;
        double *x = st->block;

        st->total = x++;
        st->offdiag = x++;
        st->cnt = x;
        x += k;
        st->sc_sum = x;
        x += k;
        st->joint = x;
        x += k * k;
        st->h_sc = st->n_sc ? x : NULL;
        x += st->n_sc;
        st->h_mg = st->n_mg ? x : NULL;
        x += st->n_mg;
        st->h_low = st->n_low ? x : NULL;
        x += st->n_low;
        st->n_sums = (size_t)(x - st->block);
        st->thr = x;
        x += k;
        st->thr_m = x;
}

void cl_state_refresh(struct cl_state *st)
{
        for (unsigned k = 0; k < st->p.k; k++) {
                double t = CL_T_MISSING;

                if (st->cnt[k] > 0.0)
                        t = st->sc_sum[k] / st->cnt[k];
                /* Written so that a NaN (impossible from valid rows) would
                 * also end at the floor. */
                if (!(t >= CL_T_FLOOR))
                        t = CL_T_FLOOR;
                st->thr[k] = t;
                st->thr_m[k] = t - CL_EPS;
        }
}

int cl_state_new(const struct cl_params *p, struct cl_state **ret_state)
{
        struct cl_state *st;
        uint64_t sc, mg, low;
        int rc;

        rc = cl_params_check(p);
        if (rc < 0)
                return rc;

        st = calloc(1, sizeof(*st));
        if (!st)
                return CL_E_NOMEM;
        st->p = *p;
        hist_lengths(p, &sc, &mg, &low);
        /* cl_params_check() bounded the total by CL_STATE_MAX_BYTES, so
         * every length fits in a size_t. */
        st->n_sc = (size_t)sc;
        st->n_mg = (size_t)mg;
        st->n_low = (size_t)low;
        st->block = calloc((size_t)block_doubles(p), sizeof(double));
        if (!st->block) {
                free(st);
                return CL_E_NOMEM;
        }
        state_layout(st);
        st->w = 1.0;
        st->growth = p->half_life > 0.0 ? exp2(1.0 / p->half_life) : 1.0;
        st->half_bins = p->bins / 2.0;
        cl_hist_shape_init(&st->shape, p->bins);
        cl_state_refresh(st);
        *ret_state = st;
        return 0;
}

void cl_state_free(struct cl_state *st)
{
        if (!st)
                return;
        free(st->block);
        free(st);
}

const struct cl_params *cl_state_params(const struct cl_state *st)
{
        return &st->p;
}

uint64_t cl_state_items(const struct cl_state *st)
{
        return st->items;
}

double cl_state_total(const struct cl_state *st)
{
        return *st->total / st->w;
}

double cl_state_threshold(const struct cl_state *st, unsigned k)
{
        return k < st->p.k ? st->thr[k] : CL_T_MISSING;
}

double cl_state_class_count(const struct cl_state *st, unsigned k)
{
        return k < st->p.k ? st->cnt[k] / st->w : 0.0;
}

double cl_state_joint(const struct cl_state *st, unsigned i, unsigned j)
{
        if (i >= st->p.k || j >= st->p.k)
                return 0.0;
        return st->joint[(size_t)i * st->p.k + j] / st->w;
}

/* The tree of histogram h (class i, cell (i, j)), or NULL if not kept. */
static const double *hist_tree(const struct cl_state *st, enum cl_hist h,
                               unsigned i, unsigned j)
{
        unsigned k = st->p.k;

        switch (h) {
        case CL_HIST_SELF_CONF:
                return st->h_sc && i < k ? cl_class_tree(st, i) : NULL;
        case CL_HIST_MARGIN:
                if (!st->h_mg || i >= k || j >= k || i == j)
                        return NULL;
                return cl_margin_tree(st, i, j);
        case CL_HIST_LOW_SC:
                if (st->p.filter != CL_FILTER_LOW_SELF_CONFIDENCE)
                        return NULL;
                return st->h_low;
        case CL_HIST_LOW_NM:
                if (st->p.filter != CL_FILTER_LOW_NORMALIZED_MARGIN)
                        return NULL;
                return st->h_low;
        }
        return NULL;
}

int cl_state_hist(const struct cl_state *st, enum cl_hist h, unsigned i,
                  unsigned j, double *ret_bins)
{
        const double *tree = hist_tree(st, h, i, j);

        if (!tree)
                return CL_E_PARAM;
        for (unsigned b = 0; b < st->p.bins; b++)
                ret_bins[b] = cl_hist_bin(tree, b) / st->w;
        return 0;
}

size_t cl_state_memory(const struct cl_state *st)
{
        return cl_params_memory(&st->p);
}

int cl_state_merge(struct cl_state *dst, const struct cl_state *src)
{
        const struct cl_params *a = &dst->p, *b = &src->p;
        double sd, ss;

        if (a->k != b->k || a->bins != b->bins ||
            a->half_life != b->half_life || a->filter != b->filter)
                return CL_E_MISMATCH;

        /* Both in effective units (newest item weighs 1), then added: the
         * two newest items become simultaneous and the clock restarts.
         * Read before write per element, so src == dst works too. */
        sd = 1.0 / dst->w;
        ss = 1.0 / src->w;
        for (size_t x = 0; x < dst->n_sums; x++)
                dst->block[x] = dst->block[x] * sd + src->block[x] * ss;
        dst->w = 1.0;
        dst->items = src->items > UINT64_MAX - dst->items
                             ? UINT64_MAX
                             : dst->items + src->items;
        cl_state_refresh(dst);
        return 0;
}
