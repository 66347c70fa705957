/*
 * cl_hold.c - warmup_policy hold: keep the items that arrive before the
 * state is warm, then decide them all at once with the exact batch
 * algorithm (cl_batch.h) over exactly those items.
 *
 * Why: an item decided online during warm-up can only be passed as clean
 * (the statistics are too young), so every label error among the first
 * warmup_total items is missed.  Once warmup_total items are known, batch
 * mode ranks them among each other as cleanlab would, which is as good as
 * a decision about them can be with the data seen so far.
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
/* A capacity above this is refused through the memory check (a buffer
 * that large would pass CL_STATE_MAX_BYTES anyway); it keeps the count
 * cl_state_release() returns within an int. */
#define HOLD_ROWS_MAX 0x1p30

struct cl_hold {
        size_t cap;           /* rows the buffer takes */
        size_t n;             /* rows held now */
        double *probs;        /* cap * K, row-major */
        long *labels;         /* cap (cl_batch_new() takes long) */
        unsigned char *mask;  /* cap, batch verdicts at release */
};

static bool policy_holds(const struct cl_params *p)
{
        return p->warmup_policy == CL_WARMUP_HOLD &&
               p->filter != CL_FILTER_PREDICTED_NEQ_GIVEN &&
               p->warmup_total > 0.0;
}

size_t cl_hold_capacity(const struct cl_params *p)
{
        double rows, lambda;

        if (!policy_holds(p))
                return 0;
        if (p->half_life == 0.0) {
                rows = ceil(p->warmup_total);
        } else {
                /* n items of weights 1, l, l^2, ... (l = 2^(-1/h)) sum to
                 * (1 - l^n) / (1 - l); solve for the first n >= T. */
                lambda = exp2(-1.0 / p->half_life);
                rows = ceil(-p->half_life *
                            log2(1.0 - p->warmup_total * (1.0 - lambda))) +
                       HOLD_ROUNDING_ROWS;
        }
        if (!(rows <= HOLD_ROWS_MAX))
                return SIZE_MAX;
        return (size_t)rows;
}

size_t cl_hold_memory(const struct cl_params *p)
{
        size_t cap = cl_hold_capacity(p);
        size_t row = (size_t)p->k * sizeof(double) + sizeof(long) + 1;

        if (cap == 0)
                return 0;
        if (cap == SIZE_MAX || p->k > CL_K_MAX ||
            cap > (SIZE_MAX - sizeof(struct cl_hold)) / row)
                return SIZE_MAX;
        return sizeof(struct cl_hold) + cap * row;
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
        h->probs = malloc(cap * k * sizeof(double));
        h->labels = malloc(cap * sizeof(long));
        h->mask = malloc(cap);
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

bool cl_hold_wants(const struct cl_state *st)
{
        const struct cl_hold *h = st->hold;

        return h && h->n < h->cap && !total_warm(st);
}

uint64_t cl_hold_push(struct cl_state *st, unsigned label, const double *p)
{
        struct cl_hold *h = st->hold;
        size_t k = st->p.k;

        memcpy(h->probs + h->n * k, p, k * sizeof(double));
        h->labels[h->n] = label;
        return h->n++;
}

size_t cl_state_held(const struct cl_state *st)
{
        return st->hold ? st->hold->n : 0;
}

size_t cl_state_hold_capacity(const struct cl_state *st)
{
        return st->hold ? st->hold->cap : 0;
}

bool cl_state_release_due(const struct cl_state *st)
{
        const struct cl_hold *h = st->hold;

        return h && h->n > 0 && (h->n == h->cap || total_warm(st));
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

/* Runs batch mode over the held rows into h->mask. */
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
        rc = cl_batch_new(&bp, h->labels, h->probs, h->n, ret_batch);
        if (rc < 0)
                return rc;
        rc = cl_batch_find_issues(*ret_batch, st->p.filter, h->mask, NULL);
        if (rc < 0)
                return rc;
        /* Batch mode skips the argmax filter in the low_* modes, as
         * cleanlab; the online verdicts apply it on request. */
        if (low && st->p.low_final_filter) {
                for (size_t r = 0; r < h->n; r++)
                        if (h->mask[r] &&
                            argmax_clears(h->probs + r * st->p.k, st->p.k,
                                          (unsigned)h->labels[r]))
                                h->mask[r] = 0;
        }
        return 0;
}

int cl_state_release_force(struct cl_state *st, struct cl_verdict *out,
                           size_t cap)
{
        struct cl_hold *h = st->hold;
        struct cl_batch *b = NULL;
        size_t n;
        int rc;

        if (!h || h->n == 0)
                return 0;
        if (!out || cap < h->n)
                return CL_E_PARAM;
        rc = decide_held(st, &b);
        if (rc < 0)
                goto out_free_batch;
        n = h->n;
        for (size_t r = 0; r < n; r++)
                held_verdict(st, b, r, &out[r]);
        h->n = 0;
        /* n <= cap <= HOLD_ROWS_MAX < INT_MAX. */
        rc = (int)n;
out_free_batch:
        cl_batch_free(b);
        return rc;
}

int cl_state_release(struct cl_state *st, struct cl_verdict *out,
                     size_t cap)
{
        if (!cl_state_release_due(st))
                return 0;
        return cl_state_release_force(st, out, cap);
}
