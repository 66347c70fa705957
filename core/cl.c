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
#include "cl_hold.h"
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
          "states differ in K, bins, half-life, filter or cells" },
        { CL_E_HELD, "CL_E_HELD", "the state holds items not yet released" },
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
        case CL_TAG_HELD:
                return "held";
        }
        return NULL;
}

const char *cl_warmup_policy_name(enum cl_warmup_policy w)
{
        switch (w) {
        case CL_WARMUP_PASS:
                return "pass";
        case CL_WARMUP_HOLD:
                return "hold";
        }
        return NULL;
}

int cl_warmup_policy_parse(const char *name,
                           enum cl_warmup_policy *ret_policy)
{
        if (name && strcmp(name, "pass") == 0)
                *ret_policy = CL_WARMUP_PASS;
        else if (name && strcmp(name, "hold") == 0)
                *ret_policy = CL_WARMUP_HOLD;
        else
                return CL_E_PARAM;
        return 0;
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
        p->warmup_policy = CL_WARMUP_HOLD;
        p->delay_items = 0;
        p->cells = k > 1 ? CL_CELLS_BUDGET / k : 1;
        /* Fewer than four per class cost F1 on simulated streams: the
         * lightest cell keeps being taken over (docs/streaming.md). */
        if (p->cells < 4)
                p->cells = 4;
        if (k > 1 && p->cells > k - 1)
                p->cells = k - 1;
}

/* Cells kept per class, for parameters not yet checked (K may be 0). */
static uint64_t cells_of(const struct cl_params *p)
{
        return p->k < 2 ? p->cells : cl_cells_per_class(p);
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
        *ret_mg = mg ? k * cells_of(p) * h : 0;
        *ret_low = low ? h : 0;
}

/* Doubles in the state block; in 64 bits, as K S B may pass 2^32. */
static uint64_t block_doubles(const struct cl_params *p)
{
        uint64_t k = p->k, sc, mg, low;

        hist_lengths(p, &sc, &mg, &low);
        /* total, offdiag, cnt, sc_sum, diag, off, cell_cnt, cell_err,
         * cell_mass, histograms, thr, thr_m */
        return 2 + 4 * k + 3 * k * cells_of(p) + sc + mg + low + 2 * k;
}

/* Histogram trees the filter needs, each with a cut (cl_state.h). */
static uint64_t tree_count(const struct cl_params *p)
{
        struct cl_hist_shape sh;
        uint64_t sc, mg, low;

        hist_lengths(p, &sc, &mg, &low);
        cl_hist_shape_init(&sh, p->bins);
        return (sc + mg + low) / sh.nodes;
}

size_t cl_params_memory(const struct cl_params *p)
{
        uint64_t n, cols, trees;

        /* K, cells and bins beyond their limits could overflow 64 bits. */
        if (p->k > CL_K_MAX || p->bins < 1 || p->bins > CL_BINS_MAX)
                return SIZE_MAX;
        n = block_doubles(p);
        cols = (uint64_t)p->k * cells_of(p);
        trees = tree_count(p);
        /* The doubles, the cell columns (uint32_t each), the cuts. */
        if (n > (SIZE_MAX - sizeof(struct cl_state)) / sizeof(double) / 4 ||
            cols > (SIZE_MAX / 4) / sizeof(uint32_t) ||
            trees > (SIZE_MAX / 4) / sizeof(struct cl_cut))
                return SIZE_MAX;
        return sizeof(struct cl_state) + (size_t)n * sizeof(double) +
               (size_t)cols * sizeof(uint32_t) +
               (size_t)trees * sizeof(struct cl_cut);
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
        if (!cl_filter_name(p->filter) ||
            !cl_warmup_policy_name(p->warmup_policy))
                return CL_E_PARAM;
        if (p->bins < CL_BINS_MIN || p->bins > CL_BINS_MAX)
                return CL_E_PARAM;
        if (!is_count(p->half_life) || p->half_life > CL_HALF_LIFE_MAX ||
            (p->half_life > 0.0 && p->half_life < 1.0))
                return CL_E_PARAM;
        if (p->cells < 1)
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
        /* Only an exact state (cells >= K - 1) of a large K, or huge bins,
         * can pass the limit. */
        if (cl_params_memory(p) > CL_STATE_MAX_BYTES)
                return CL_E_PARAM;
        /* The hold buffer (cl_hold.c) counts towards the same limit;
         * cl_hold_memory() is SIZE_MAX for a window beyond
         * CL_HOLD_MAX_BYTES. */
        if (cl_hold_memory(p) > CL_STATE_MAX_BYTES - cl_params_memory(p))
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
        st->diag = x;
        x += k;
        st->off = x;
        x += k;
        st->cell_cnt = x;
        x += st->n_cells;
        st->cell_err = x;
        x += st->n_cells;
        st->cell_mass = x;
        x += st->n_cells;
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
        /* The cuts follow the trees' order. */
        st->cut_sc = st->n_sc ? st->cut : NULL;
        st->cut_mg = st->n_mg ? st->cut + st->n_sc / st->shape.nodes : NULL;
        st->cut_low = st->n_low ? st->cut + st->n_trees - 1 : NULL;
}

void cl_state_cuts_reset(struct cl_state *st)
{
        if (st->n_trees)
                memset(st->cut, 0, st->n_trees * sizeof(*st->cut));
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

/* Columns of a fresh state: fixed when exact, else every cell unused. */
static void cells_reset(struct cl_state *st)
{
        unsigned k = st->p.k;

        for (unsigned i = 0; i < k; i++)
                for (unsigned s = 0; s < st->cells; s++)
                        st->cell_col[(size_t)i * st->cells + s] =
                                st->exact ? cl_exact_col(i, s) : k;
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
        st->cells = cl_cells_per_class(p);
        st->exact = st->cells == p->k - 1;
        st->n_cells = (size_t)p->k * st->cells;
        st->n_trees = (size_t)tree_count(p);
        cl_hist_shape_init(&st->shape, p->bins);
        st->block = calloc((size_t)block_doubles(p), sizeof(double));
        st->cell_col = calloc(st->n_cells, sizeof(*st->cell_col));
        st->cut = calloc(st->n_trees ? st->n_trees : 1, sizeof(*st->cut));
        if (!st->block || !st->cell_col || !st->cut) {
                free(st->cut);
                free(st->cell_col);
                free(st->block);
                free(st);
                return CL_E_NOMEM;
        }
        state_layout(st);
        cells_reset(st);
        st->w = 1.0;
        st->growth = p->half_life > 0.0 ? exp2(1.0 / p->half_life) : 1.0;
        st->half_bins = p->bins / 2.0;
        cl_state_refresh(st);
        if (cl_hold_init(st) < 0) {
                cl_state_free(st);
                return CL_E_NOMEM;
        }
        *ret_state = st;
        return 0;
}

void cl_state_free(struct cl_state *st)
{
        if (!st)
                return;
        cl_hold_release(st);
        free(st->cut);
        free(st->cell_col);
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
        size_t c;

        if (i >= st->p.k || j >= st->p.k)
                return 0.0;
        if (i == j)
                return st->diag[i] / st->w;
        c = cl_cell_find(st, i, j);
        return c == SIZE_MAX ? 0.0 : st->cell_cnt[c] / st->w;
}

/* The tree of histogram h (class i, cell (i, j)), or NULL if not kept. */
static const double *hist_tree(const struct cl_state *st, enum cl_hist h,
                               unsigned i, unsigned j)
{
        unsigned k = st->p.k;
        size_t c;

        switch (h) {
        case CL_HIST_SELF_CONF:
                return st->h_sc && i < k ? cl_class_tree(st, i) : NULL;
        case CL_HIST_MARGIN:
                if (!st->h_mg || i >= k || j >= k || i == j)
                        return NULL;
                c = cl_cell_find(st, i, j);
                return c == SIZE_MAX ? NULL : cl_cell_tree(st, c);
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
        return cl_params_memory(&st->p) + cl_hold_memory(&st->p);
}

/* d[x] = d[x] * sd + s[x] * ss for n doubles; d may be s. */
static void sums_merge(double *d, const double *s, size_t n, double sd,
                       double ss)
{
        for (size_t x = 0; x < n; x++)
                d[x] = d[x] * sd + s[x] * ss;
}

/* Cell c of src, scaled by ss, added to cell d of dst (add) or in place
 * of it. */
static void cell_take(struct cl_state *dst, size_t d,
                      const struct cl_state *src, size_t c, double ss,
                      bool add)
{
        size_t h = dst->shape.nodes;
        double sd = add ? 1.0 : 0.0;

        dst->cell_col[d] = src->cell_col[c];
        sums_merge(dst->cell_cnt + d, src->cell_cnt + c, 1, sd, ss);
        sums_merge(dst->cell_err + d, src->cell_err + c, 1, sd, ss);
        sums_merge(dst->cell_mass + d, src->cell_mass + c, 1, sd, ss);
        if (dst->h_mg)
                sums_merge(cl_cell_tree(dst, d), cl_cell_tree(src, c), h, sd,
                           ss);
}

/* The cell of class i with the least joint weight (the first such). */
static size_t cell_lightest(const struct cl_state *st, unsigned i)
{
        size_t c = (size_t)i * st->cells, best = c;

        for (size_t end = c + st->cells; c < end; c++)
                if (st->cell_cnt[c] < st->cell_cnt[best])
                        best = c;
        return best;
}

/*
 * Class i of two states with cells that follow their heaviest columns
 * (dst already in effective units): a column both keep adds; one only src
 * keeps replaces dst's lightest cell if it weighs more.  Taking each
 * candidate against the current lightest keeps the heaviest S columns of
 * the union.  O(S^2).
 */
static void cells_merge_row(struct cl_state *dst, const struct cl_state *src,
                            unsigned i, double ss)
{
        size_t c = (size_t)i * src->cells;

        for (size_t end = c + src->cells; c < end; c++) {
                unsigned j = src->cell_col[c];
                size_t d;

                if (j == src->p.k)
                        continue;
                d = cl_cell_find(dst, i, j);
                if (d != SIZE_MAX) {
                        cell_take(dst, d, src, c, ss, true);
                        continue;
                }
                d = cell_lightest(dst, i);
                if (src->cell_cnt[c] * ss > dst->cell_cnt[d])
                        cell_take(dst, d, src, c, ss, false);
        }
}

int cl_state_merge(struct cl_state *dst, const struct cl_state *src)
{
        const struct cl_params *a = &dst->p, *b = &src->p;
        double sd, ss;

        if (a->k != b->k || a->bins != b->bins ||
            a->half_life != b->half_life || a->filter != b->filter ||
            dst->cells != src->cells)
                return CL_E_MISMATCH;

        /* Both in effective units (newest item weighs 1), then added: the
         * two newest items become simultaneous and the clock restarts.
         * Read before write per element, so src == dst works too. */
        sd = 1.0 / dst->w;
        ss = 1.0 / src->w;
        if (dst->exact || dst == src) {
                /* Same columns cell for cell. */
                sums_merge(dst->block, src->block, dst->n_sums, sd, ss);
        } else {
                size_t head = (size_t)(dst->cell_cnt - dst->block);

                sums_merge(dst->block, src->block, head, sd, ss);
                if (dst->h_sc)
                        sums_merge(dst->h_sc, src->h_sc, dst->n_sc, sd, ss);
                if (dst->h_low)
                        sums_merge(dst->h_low, src->h_low, dst->n_low, sd,
                                   ss);
                sums_merge(dst->cell_cnt, dst->cell_cnt, 3 * dst->n_cells,
                           sd, 0.0);
                if (dst->h_mg)
                        sums_merge(dst->h_mg, dst->h_mg, dst->n_mg, sd, 0.0);
                for (unsigned i = 0; i < dst->p.k; i++)
                        cells_merge_row(dst, src, i, ss);
        }
        dst->w = 1.0;
        cl_state_cuts_reset(dst);
        dst->items = src->items > UINT64_MAX - dst->items
                             ? UINT64_MAX
                             : dst->items + src->items;
        cl_state_refresh(dst);
        return 0;
}

/* The parameters that shape the state's memory or its weights. */
static bool same_layout(const struct cl_params *a, const struct cl_params *b)
{
        return a->k == b->k && a->filter == b->filter &&
               a->half_life == b->half_life && a->bins == b->bins &&
               a->cells == b->cells && a->warmup_policy == b->warmup_policy &&
               a->delay_items == b->delay_items;
}

int cl_state_set_params(struct cl_state *st, const struct cl_params *p)
{
        int rc = cl_params_check(p);

        if (rc < 0)
                return rc;
        if (!same_layout(&st->p, p) ||
            cl_hold_capacity(p) > cl_hold_capacity(&st->p))
                return CL_E_MISMATCH;
        st->p.warmup_total = p->warmup_total;
        st->p.warmup_class = p->warmup_class;
        st->p.min_examples = p->min_examples;
        st->p.sum_tol = p->sum_tol;
        st->p.low_final_filter = p->low_final_filter;
        return 0;
}
