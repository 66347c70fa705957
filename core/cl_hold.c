/*
 * cl_hold.c - items held before their verdict: the warm-up hold (keep the
 * items that arrive before the state is warm, then decide them all at
 * once with the exact batch algorithm, cl_batch.h, over exactly those
 * items) and the decision window (decide each item once delay_items
 * later items are counted).
 *
 * Why: an item decided online during warm-up can only be passed as clean
 * (the statistics are too young), so every label error among the first
 * warmup_total items is missed.  Once warmup_total items are known, batch
 * mode ranks them among each other as cleanlab would, which is as good as
 * a decision about them can be with the data seen so far.  The window
 * serves the items after warm-up: judged once later items are counted,
 * an item is ranked among statistics that are older, and so steadier,
 * than those of its own arrival.
 */
#include "cl_hold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_batch.h"
#include "cl_state.h"

/* Under decay the count of items that brings the effective total to T is
 * computed in floating point; one more row absorbs its rounding. */
#define HOLD_ROUNDING_ROWS 1.0
/* A warm-up count above this is absurd; it is cut to the budget anyway,
 * and the bound keeps the double-to-size_t conversion defined. */
#define HOLD_ROWS_MAX 0x1p40

/*
 * One ring of rows.  The oldest n_warm rows wait for batch mode; they
 * exist only while the state is not warm, which it never stops being, so
 * they always start at slot 0 of an empty ring (head is reset whenever
 * the ring empties) and are contiguous, as cl_batch_new() needs.  Window
 * rows follow them.
 */
struct cl_hold {
        size_t cap;           /* slots */
        size_t warm_cap;      /* most warm-up rows, <= cap */
        size_t head;          /* slot of the oldest row */
        size_t n;             /* rows held */
        size_t n_warm;        /* of which the oldest n_warm are warm-up */
        double *probs;        /* cap * K, row-major */
        long *labels;         /* cap (cl_batch_new() takes long) */
        unsigned char *mask;  /* warm_cap, batch verdicts at release */
};

static bool filter_holds(const struct cl_params *p)
{
        return p->filter != CL_FILTER_PREDICTED_NEQ_GIVEN;
}

/* Bytes per held row: probabilities, label, batch mask. */
static size_t row_bytes(const struct cl_params *p)
{
        return (size_t)p->k * sizeof(double) + sizeof(long) + 1;
}

/* Rows that fit in CL_HOLD_MAX_BYTES (K <= CL_K_MAX: no overflow). */
static size_t budget_rows(const struct cl_params *p)
{
        return (CL_HOLD_MAX_BYTES - sizeof(struct cl_hold)) / row_bytes(p);
}

/* Items that bring the effective total to warmup_total. */
static double warm_rows(const struct cl_params *p)
{
        double lambda;

        if (p->half_life == 0.0)
                return ceil(p->warmup_total);
        /* n items of weights 1, l, l^2, ... (l = 2^(-1/h)) sum to
         * (1 - l^n) / (1 - l); solve for the first n >= T. */
        lambda = exp2(-1.0 / p->half_life);
        return ceil(-p->half_life *
                    log2(1.0 - p->warmup_total * (1.0 - lambda))) +
               HOLD_ROUNDING_ROWS;
}

/* Warm-up rows of the buffer: what warm-up needs, cut to the budget. */
static size_t warm_capacity(const struct cl_params *p)
{
        double rows;
        size_t budget = budget_rows(p);

        if (p->warmup_policy != CL_WARMUP_HOLD || !filter_holds(p) ||
            !(p->warmup_total > 0.0))
                return 0;
        rows = warm_rows(p);
        if (!(rows <= HOLD_ROWS_MAX) || (size_t)rows > budget)
                return budget;
        return (size_t)rows;
}

size_t cl_hold_capacity(const struct cl_params *p)
{
        size_t warm = warm_capacity(p), window;

        if (p->delay_items == 0 || !filter_holds(p))
                return warm;
        window = (size_t)p->delay_items + 1;
        if (window > budget_rows(p))
                return SIZE_MAX;
        return window > warm ? window : warm;
}

size_t cl_hold_memory(const struct cl_params *p)
{
        size_t cap;

        if (p->k > CL_K_MAX)
                return SIZE_MAX;
        cap = cl_hold_capacity(p);
        if (cap == 0)
                return 0;
        if (cap == SIZE_MAX)
                return SIZE_MAX;
        /* cap <= budget_rows(): within CL_HOLD_MAX_BYTES. */
        return sizeof(struct cl_hold) + cap * row_bytes(p);
}

int cl_hold_init(struct cl_state *st)
{
        size_t cap = cl_hold_capacity(&st->p), k = st->p.k;
        struct cl_hold *h;

        st->hold = NULL;
        if (cap == 0)
                return 0;
        /* cl_params_check() bounded cl_hold_memory(), so nothing below
         * overflows. */
        h = calloc(1, sizeof(*h));
        if (!h)
                return CL_E_NOMEM;
        h->cap = cap;
        h->warm_cap = warm_capacity(&st->p);
        h->probs = malloc(cap * k * sizeof(double));
        h->labels = malloc(cap * sizeof(long));
        h->mask = malloc(h->warm_cap ? h->warm_cap : 1);
        st->hold = h;
        if (!h->probs || !h->labels || !h->mask) {
                cl_hold_release(st);
                return CL_E_NOMEM;
        }
        return 0;
}

void cl_hold_release(struct cl_state *st)
{
        struct cl_hold *h = st->hold;

        if (!h)
                return;
        free(h->probs);
        free(h->labels);
        free(h->mask);
        free(h);
        st->hold = NULL;
}

/* The effective total has reached warmup_total (the class condition of
 * online warm-up does not apply: batch mode needs none). */
static bool total_warm(const struct cl_state *st)
{
        return *st->total >= st->p.warmup_total * st->w;
}

enum cl_hold_kind cl_hold_wants(const struct cl_state *st)
{
        const struct cl_hold *h = st->hold;

        if (!h || h->n == h->cap)
                return CL_HOLD_NONE;
        /* Warm-up rows only into a ring of warm-up rows (see above). */
        if (h->warm_cap > 0 && !total_warm(st) && h->n == h->n_warm)
                return h->n_warm < h->warm_cap ? CL_HOLD_WARMUP
                                               : CL_HOLD_NONE;
        return st->p.delay_items > 0 ? CL_HOLD_WINDOW : CL_HOLD_NONE;
}

uint64_t cl_hold_push(struct cl_state *st, unsigned label, const double *p,
                      enum cl_hold_kind kind)
{
        struct cl_hold *h = st->hold;
        size_t k = st->p.k, slot = (h->head + h->n) % h->cap;

        memcpy(h->probs + slot * k, p, k * sizeof(double));
        h->labels[slot] = label;
        h->n++;
        if (kind == CL_HOLD_WARMUP)
                h->n_warm++;
        return slot;
}

size_t cl_state_held(const struct cl_state *st)
{
        return st->hold ? st->hold->n : 0;
}

size_t cl_state_hold_capacity(const struct cl_state *st)
{
        return st->hold ? st->hold->cap : 0;
}

/* The warm-up rows are to be decided now. */
static bool warm_due(const struct cl_hold *h, const struct cl_state *st)
{
        return h->n_warm > 0 && (h->n_warm == h->warm_cap || total_warm(st));
}

/* Window rows beyond the newest delay_items. */
static size_t window_due(const struct cl_hold *h, const struct cl_state *st)
{
        size_t window = h->n - h->n_warm;

        return window > st->p.delay_items ? window - st->p.delay_items : 0;
}

bool cl_state_release_due(const struct cl_state *st)
{
        const struct cl_hold *h = st->hold;

        if (!h)
                return false;
        return warm_due(h, st) || (h->n_warm == 0 && window_due(h, st) > 0);
}

/* Short name of the filter in reasons, as the online verdicts use. */
static const char *filter_tag(enum cl_filter f)
{
        switch (f) {
        case CL_FILTER_PRUNE_BY_NOISE_RATE:
                return "pbnr";
        case CL_FILTER_PRUNE_BY_CLASS:
                return "pbc";
        case CL_FILTER_BOTH:
                return "both";
        case CL_FILTER_CONFIDENT_LEARNING:
                return "cl";
        case CL_FILTER_PREDICTED_NEQ_GIVEN:
                return "pred";
        case CL_FILTER_LOW_SELF_CONFIDENCE:
                return "low_sc";
        case CL_FILTER_LOW_NORMALIZED_MARGIN:
                return "low_nm";
        }
        return "?";
}

/* Lowest index of the largest p[j], j != label. */
static unsigned best_other(const double *p, unsigned k, unsigned label)
{
        unsigned best = label == 0 ? 1 : 0;

        for (unsigned j = best + 1; j < k; j++)
                if (j != label && p[j] > p[best])
                        best = j;
        return best;
}

/* The final argmax filter (cleanlab 4.10): true when label is the argmax
 * once p[label] is raised by CL_EPS (a lower index wins ties). */
static bool argmax_clears(const double *p, unsigned k, unsigned label)
{
        double lifted = p[label] + CL_EPS;

        for (unsigned j = 0; j < k; j++) {
                if (j == label)
                        continue;
                if (j < label ? p[j] >= lifted : p[j] > lifted)
                        return false;
        }
        return true;
}

/* Verdict of held row r from the batch mask. */
static void held_verdict(const struct cl_state *st, const struct cl_batch *b,
                         size_t r, struct cl_verdict *v)
{
        const struct cl_hold *h = st->hold;
        unsigned k = st->p.k, i = (unsigned)h->labels[r];
        const double *p = h->probs + r * k;
        int len;

        memset(v, 0, sizeof(*v));
        v->given = i;
        v->suggested = i;
        v->quality = p[i];
        v->threshold = cl_batch_thresholds(b)[i];
        v->hold_index = r;
        v->tag = h->mask[r] ? CL_TAG_SUSPECT : CL_TAG_CLEAN;
        if (h->mask[r]) {
                v->suggested = best_other(p, k, i);
                len = snprintf(v->reason, sizeof(v->reason),
                               "batch %s %u->%u", filter_tag(st->p.filter),
                               i, v->suggested);
        } else {
                len = snprintf(v->reason, sizeof(v->reason), "batch");
        }
        (void)len; /* the longest reason fits: "batch low_nm 65535->65535" */
}

/* Runs batch mode over the warm-up rows (slots 0 .. n_warm - 1) into
 * h->mask. */
static int decide_held(struct cl_state *st, struct cl_batch **ret_batch)
{
        struct cl_hold *h = st->hold;
        struct cl_batch_params bp;
        bool low = st->p.filter == CL_FILTER_LOW_SELF_CONFIDENCE ||
                   st->p.filter == CL_FILTER_LOW_NORMALIZED_MARGIN;
        int rc;

        cl_batch_params_init(&bp, st->p.k);
        /* Rows were validated by cl_observe(); cleanlab's min_examples is
         * an integer, ours a (decayed) count. */
        bp.sum_tol = 0.0;
        bp.min_examples_per_class = (long)st->p.min_examples;
        rc = cl_batch_new(&bp, h->labels, h->probs, h->n_warm, ret_batch);
        if (rc < 0)
                return rc;
        rc = cl_batch_find_issues(*ret_batch, st->p.filter, h->mask, NULL);
        if (rc < 0)
                return rc;
        /* Batch mode skips the argmax filter in the low_* modes, as
         * cleanlab; the online verdicts apply it on request. */
        if (low && st->p.low_final_filter) {
                for (size_t r = 0; r < h->n_warm; r++)
                        if (h->mask[r] &&
                            argmax_clears(h->probs + r * st->p.k, st->p.k,
                                          (unsigned)h->labels[r]))
                                h->mask[r] = 0;
        }
        return 0;
}

/* Decides the warm-up rows into out[0 .. n_warm - 1]. */
static int release_warm(struct cl_state *st, struct cl_verdict *out)
{
        struct cl_hold *h = st->hold;
        struct cl_batch *b = NULL;
        int rc;

        rc = decide_held(st, &b);
        if (rc == 0)
                for (size_t r = 0; r < h->n_warm; r++)
                        held_verdict(st, b, r, &out[r]);
        cl_batch_free(b);
        return rc;
}

/* Releases the warm-up rows (when warm is set) and the oldest `window`
 * window rows, in this order; returns their number. */
static int release_rows(struct cl_state *st, struct cl_verdict *out,
                        size_t cap, bool warm, size_t window)
{
        struct cl_hold *h = st->hold;
        size_t n = 0, k = st->p.k;
        int rc;

        if (!out || cap < h->n)
                return CL_E_PARAM;
        if (warm) {
                rc = release_warm(st, out);
                if (rc < 0)
                        return rc;
                n = h->n_warm;
                h->head = h->n_warm % h->cap;
                h->n -= h->n_warm;
                h->n_warm = 0;
        }
        for (size_t r = 0; r < window; r++, n++) {
                size_t slot = h->head;

                cl_observe_judge(st, (unsigned)h->labels[slot],
                                 h->probs + slot * k, &out[n]);
                out[n].hold_index = slot;
                h->head = (slot + 1) % h->cap;
                h->n--;
        }
        if (h->n == 0)
                h->head = 0;
        /* n <= cap <= budget_rows() < INT_MAX. */
        return (int)n;
}

int cl_state_release_force(struct cl_state *st, struct cl_verdict *out,
                           size_t cap)
{
        struct cl_hold *h = st->hold;

        if (!h || h->n == 0)
                return 0;
        return release_rows(st, out, cap, h->n_warm > 0, h->n - h->n_warm);
}

int cl_state_release(struct cl_state *st, struct cl_verdict *out,
                     size_t cap)
{
        struct cl_hold *h = st->hold;
        bool warm;

        if (!cl_state_release_due(st))
                return 0;
        warm = warm_due(h, st);
        /* Window rows wait behind warm-up rows not yet due. */
        return release_rows(st, out, cap, warm,
                            warm || h->n_warm == 0 ? window_due(h, st) : 0);
}
