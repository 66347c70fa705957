/*
 * cl.h - streaming confident learning: per-class thresholds, the confident
 * joint and an online suspect/clean decision per item.
 *
 * The statistics follow cleanlab 2.9.0 (Northcutt, Jiang, Chuang,
 * "Confident Learning: Estimating Uncertainty in Dataset Labels", JAIR
 * 2021); the streaming form (decayed sums, histogram quantile tests) is
 * described in docs/streaming.md.  No I/O, no global state: everything
 * lives in a struct cl_state, which the caller owns and which one thread at
 * a time may use.  Functions taking a const state may run concurrently
 * with each other, not with a function that changes the state.
 */
#ifndef CFD_CORE_CL_H
#define CFD_CORE_CL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: 0 is success, failures are negative.  The first six are
 * also the reasons a row is rejected (checked in this order). */
enum cl_err {
        CL_OK = 0,
        CL_E_WIDTH = -1,       /* number of probabilities != K */
        CL_E_LABEL_TYPE = -2,  /* label is not an integer */
        CL_E_LABEL_RANGE = -3, /* label < 0 or label >= K */
        CL_E_NONFINITE = -4,   /* a probability is NaN or infinite */
        CL_E_RANGE = -5,       /* a probability < -EPS or > 1 + EPS */
        CL_E_ROW_SUM = -6,     /* |sum - 1| > sum_tol (when sum_tol > 0) */
        CL_E_PARAM = -10,      /* invalid parameter or argument */
        CL_E_NOMEM = -11,      /* allocation failed */
        CL_E_SNAPSHOT = -12,   /* snapshot bytes are malformed */
        CL_E_VERSION = -13,    /* snapshot format version unknown */
        CL_E_MISMATCH = -14,   /* states differ in K, bins, half-life, filter
                                * or cells */
        CL_E_HELD = -15,       /* the state holds items: release them first */
};

/* Name of an error code ("CL_E_RANGE") and a short description; both
 * return a static string, "CL_E_UNKNOWN" / "unknown error" for other
 * values. */
const char *cl_err_name(int code);
const char *cl_strerror(int code);

/* Constants of cleanlab 2.9.0 (docs/streaming.md, section "Thresholds"). */
#define CL_EPS 1e-6      /* threshold slack, final argmax filter, range */
#define CL_T_FLOOR 2e-6  /* lower bound of every threshold */
#define CL_T_MISSING 2.0 /* threshold of a class never seen */

/* Limits checked by cl_params_check(). */
#define CL_K_MAX 65536u
#define CL_BINS_MIN 16u
#define CL_BINS_MAX 65536u
#define CL_HALF_LIFE_MAX 1e12
/* Default budget of confident-joint cells (and, for prune_by_noise_rate
 * and both, margin histograms) over all classes; see cl_params_init(). */
#define CL_CELLS_BUDGET 2048u
/* Largest state cl_state_new() will allocate: 1 GiB. */
#define CL_STATE_MAX_BYTES ((size_t)1 << 30)
/* Largest hold buffer (warm-up hold and decision window together, part
 * of the state above): 64 MiB.  The warm-up hold takes at most as many
 * rows as fit; a decision window that does not fit is refused. */
#define CL_HOLD_MAX_BYTES ((size_t)64 << 20)

/* Decision rule; names as cleanlab's filter_by values. */
enum cl_filter {
        CL_FILTER_PRUNE_BY_NOISE_RATE = 0,
        CL_FILTER_PRUNE_BY_CLASS,
        CL_FILTER_BOTH,
        CL_FILTER_CONFIDENT_LEARNING,
        CL_FILTER_PREDICTED_NEQ_GIVEN,
        CL_FILTER_LOW_SELF_CONFIDENCE,
        CL_FILTER_LOW_NORMALIZED_MARGIN,
};

/* "prune_by_noise_rate" etc.; NULL for an unknown value. */
const char *cl_filter_name(enum cl_filter f);
/* Parses a filter name.  Returns 0, or CL_E_PARAM for an unknown name. */
int cl_filter_parse(const char *name, enum cl_filter *ret_filter);

/* What happens to items that arrive before the state is warm
 * (docs/streaming.md, "Warm-up"). */
enum cl_warmup_policy {
        CL_WARMUP_PASS = 0, /* tag them CL_TAG_WARMUP (route as clean) */
        CL_WARMUP_HOLD,     /* hold them; decide them all with batch mode
                             * once warm (cl_state_release()) */
};

/* "pass", "hold"; NULL for an unknown value. */
const char *cl_warmup_policy_name(enum cl_warmup_policy w);
/* Parses a policy name.  Returns 0, or CL_E_PARAM for an unknown name. */
int cl_warmup_policy_parse(const char *name,
                           enum cl_warmup_policy *ret_policy);

/* Tuning.  Fill with cl_params_init(), then change what you need. */
struct cl_params {
        unsigned k;                /* classes, 2 .. CL_K_MAX */
        enum cl_filter filter;     /* default prune_by_noise_rate */
        double half_life;          /* in items; 0 = no decay (default 0) */
        unsigned bins;             /* histogram bins, 16 .. 65536 (256) */
        double warmup_total;       /* effective items before any decision */
        double warmup_class;       /* effective items of the item's class */
        double min_examples;       /* cleanlab min_examples_per_class (1) */
        double sum_tol;            /* row-sum tolerance, 0 = off (1e-3) */
        bool low_final_filter;     /* low_* modes: apply the argmax filter
                                    * too (default false, as cleanlab) */
        unsigned cells;            /* off-diagonal joint cells (and margin
                                    * histograms) kept per class, >= 1;
                                    * K - 1 or more keeps all: exact */
        enum cl_warmup_policy warmup_policy; /* default CL_WARMUP_HOLD */
        unsigned delay_items;      /* decision window: an item is decided
                                    * once this many later items are
                                    * counted (0 = at once, the default) */
};

/* Defaults for k classes: warmup_total = max(1000, 50 k), warmup_class 30,
 * cells = min(k - 1, max(4, CL_CELLS_BUDGET / k)): every cell up to
 * k = 45, four per class from k = 512 (docs/streaming.md, "Large K");
 * warmup_policy hold, delay_items 0. */
void cl_params_init(struct cl_params *p, unsigned k);

/*
 * Checks a parameter set: ranges above, every double finite and >= 0,
 * half_life 0 or in [1, CL_HALF_LIFE_MAX], warm-up reachable under decay
 * (warmup_total below the steady-state effective total, about
 * 1.44 * half_life), cells >= 1, a decision window of delay_items + 1
 * rows within CL_HOLD_MAX_BYTES, state no larger than
 * CL_STATE_MAX_BYTES.
 * Returns 0 or CL_E_PARAM.
 */
int cl_params_check(const struct cl_params *p);

/*
 * Bytes a state for these parameters would occupy (the histograms kept
 * depend on the filter, see docs/streaming.md), or SIZE_MAX when that
 * does not fit in a size_t.  Does not check the parameters otherwise.
 */
size_t cl_params_memory(const struct cl_params *p);

/*
 * For decoders that receive a label as a number: returns 0 and sets
 * *ret_label when x is finite and integral, else CL_E_LABEL_TYPE (and
 * *ret_label is untouched).  The range is checked by cl_check_row().
 */
int cl_label_from_double(double x, long *ret_label);

enum cl_tag {
        CL_TAG_CLEAN = 0,
        CL_TAG_SUSPECT,
        CL_TAG_WARMUP, /* not yet enough data to decide; route as clean */
        CL_TAG_HELD,   /* held (warm-up hold or decision window): the
                        * verdict comes later from cl_state_release() */
};

/* "clean", "suspect", "warmup", "held"; NULL for an unknown value. */
const char *cl_tag_name(enum cl_tag tag);

struct cl_verdict {
        enum cl_tag tag;
        unsigned given;     /* the item's label */
        unsigned suggested; /* suspect: the class blamed; else the label */
        double quality;     /* self-confidence p[given] */
        double threshold;   /* threshold of the given class after update */
        bool borderline;    /* a finer histogram could flip the verdict */
        char reason[40];    /* "pbnr 3->5", "pbc 3", "warmup", "argmax" */
        uint64_t hold_index; /* CL_TAG_HELD, and verdicts returned by
                              * cl_state_release(): the item's slot in
                              * the hold buffer, < cl_state_hold_capacity()
                              * and free again once released; else 0 */
};

struct cl_state;

/*
 * Allocates a state for the parameters (copied).  Returns 0 and sets
 * *ret_state, or CL_E_PARAM (cl_params_check() failed) / CL_E_NOMEM.
 * Free with cl_state_free().
 */
int cl_state_new(const struct cl_params *p, struct cl_state **ret_state);

/* Frees the state; NULL does nothing. */
void cl_state_free(struct cl_state *st);

/*
 * Changes the parameters of a live state where that needs no new layout:
 * warmup_total, warmup_class, min_examples, sum_tol and low_final_filter
 * (warmup_total only as far as the hold buffer allocated by
 * cl_state_new() still fits).  Returns 0, CL_E_PARAM when p is invalid,
 * or CL_E_MISMATCH when p differs in anything else (K, filter, bins,
 * half-life, cells, warm-up policy, decision window) or needs a larger
 * hold buffer; the state is then unchanged.
 */
int cl_state_set_params(struct cl_state *st, const struct cl_params *p);

/* The parameters the state was made with. */
const struct cl_params *cl_state_params(const struct cl_state *st);

/*
 * Validates one row without touching the state.  label is the given class,
 * probs holds n values.  Returns 0 or the first failing CL_E_* of the
 * table above (CL_E_LABEL_TYPE is cl_label_from_double()'s); for
 * probability errors *ret_index (if not NULL) is set to the index of the
 * offending value (for CL_E_ROW_SUM and CL_E_WIDTH, n; for
 * CL_E_LABEL_RANGE, 0).  NaN or infinity anywhere in the row is reported
 * before any range error.
 */
int cl_check_row(const struct cl_state *st, long label, const double *probs,
                 size_t n, size_t *ret_index);

/*
 * Validates the row, adds it to the statistics, and decides.  On a rejected
 * row the state is unchanged and the CL_E_* code is returned (with the
 * offending index in *ret_index when not NULL, as for cl_check_row()).
 * On success returns 0 and fills *ret_verdict (which may be NULL).
 * Allocates nothing; O(K log B) time.
 */
int cl_observe(struct cl_state *st, long label, const double *probs,
               size_t n, struct cl_verdict *ret_verdict, size_t *ret_index);

/*
 * Holding items (docs/streaming.md, "Warm-up" and "Decision window").
 * Two reasons make cl_observe() count an item at once but return
 * CL_TAG_HELD, with the item's slot as hold_index, instead of a verdict:
 *
 * - Warm-up hold (warmup_policy CL_WARMUP_HOLD): until the effective
 *   total reaches warmup_total, items are held; once the state is warm
 *   (or the warm-up rows fill their part of CL_HOLD_MAX_BYTES) they are
 *   all decided by batch mode (cl_batch.h, the same filter, cleanlab's
 *   numpy tie order) over those rows alone, so the verdicts depend only
 *   on the rows, whether released because warm or forced.  The item that
 *   makes the state warm is the last one held this way.
 * - Decision window (delay_items = D > 0): every later item is held
 *   until D more items have been counted, then decided online with the
 *   statistics of that moment, which include the D later items.
 *
 * predicted_neq_given holds nothing.  The hold buffer is allocated by
 * cl_state_new() (copies of label and probabilities, within
 * CL_HOLD_MAX_BYTES); nothing is allocated per item.
 *
 * The caller keeps each held item (e.g. its Kafka message) and, after
 * every cl_observe(), asks cl_state_release_due(); when true it calls
 * cl_state_release() and routes the verdicts it gets, oldest first:
 * together with the verdicts cl_observe() returns directly, items come
 * out in arrival order.  An item that arrives while the buffer is full
 * (the caller did not release when due) is decided at once, ahead of the
 * held ones.  To bound the wait, or before a snapshot or a commit that
 * needs every verdict, cl_state_release_force() decides everything held.
 * After a forced release during warm-up, items are held again until the
 * state is warm.
 */

/* Number of items held now. */
size_t cl_state_held(const struct cl_state *st);

/* Slots of the hold buffer: most items held at once (0 when nothing is
 * ever held).  An array of this many verdicts is always enough for
 * cl_state_release(). */
size_t cl_state_hold_capacity(const struct cl_state *st);

/* True when cl_state_release() would release something: warm-up rows
 * and the state warm (or their part of the buffer full), or more than
 * delay_items items in the window. */
bool cl_state_release_due(const struct cl_state *st);

/*
 * Releases what is due, oldest first: the warm-up rows (batch mode) and
 * the window items beyond the newest delay_items (online, current
 * statistics).  Writes their verdicts into out[0 .. n-1] and returns n
 * (0 when nothing is due).  cap is the room in out: cap <
 * cl_state_held() gives CL_E_PARAM and nothing is released.  Batch mode
 * allocates its work space here (about n (K + 8) doubles, freed before
 * returning): on CL_E_NOMEM nothing is released and the call may be
 * retried.  The statistics are not changed.
 */
int cl_state_release(struct cl_state *st, struct cl_verdict *out,
                     size_t cap);

/* As cl_state_release(), but releases every held item; returns 0 when
 * nothing is held. */
int cl_state_release_force(struct cl_state *st, struct cl_verdict *out,
                           size_t cap);

/* Number of items accepted so far (not decayed). */
uint64_t cl_state_items(const struct cl_state *st);

/* Effective (decayed) number of items accepted: equals cl_state_items()
 * without decay, tends to 1.44 * half_life with it. */
double cl_state_total(const struct cl_state *st);

/* Current threshold of class k (CL_T_MISSING for a class never seen or
 * k >= K). */
double cl_state_threshold(const struct cl_state *st, unsigned k);

/* Effective (decayed) number of items labelled k; 0 for k >= K. */
double cl_state_class_count(const struct cl_state *st, unsigned k);

/* Effective (decayed) confident-joint cell, given i, likely-true j, as
 * counted (no diagonal fix-up, no calibration); 0 outside K x K.  With
 * fewer than K - 1 cells per class, an off-diagonal cell not kept reads 0
 * and a kept one is an upper bound (docs/streaming.md, "Large K"). */
double cl_state_joint(const struct cl_state *st, unsigned i, unsigned j);

/* Histograms a state may keep (which ones depends on the filter). */
enum cl_hist {
        CL_HIST_SELF_CONF = 0, /* class i: p[i] of items labelled i */
        CL_HIST_MARGIN,        /* cell (i, j): p[i] - p[j], items labelled i
                                * since the cell got its histogram */
        CL_HIST_LOW_SC,        /* all items: self-confidence */
        CL_HIST_LOW_NM,        /* all items: normalized margin */
};

/*
 * Copies the effective mass of each of the B bins of one histogram into
 * ret_bins (caller storage of B doubles).  i and j select the class and
 * cell where the histogram has them, else they are ignored.  Bin b covers
 * [b / B, (b + 1) / B) for scores in [0, 1] and [2b / B - 1, 2(b + 1) / B
 * - 1) for margins.  Returns 0, or CL_E_PARAM when the state does not keep
 * that histogram (or, for a margin, not for cell (i, j) at the moment) or
 * i, j are out of range (i == j for margins).
 */
int cl_state_hist(const struct cl_state *st, enum cl_hist h, unsigned i,
                  unsigned j, double *ret_bins);

/* Bytes the state occupies in memory, for metrics and tests. */
size_t cl_state_memory(const struct cl_state *st);

/*
 * Serialises the state as msgpack into a new buffer (format in
 * docs/streaming.md).  Returns 0 and sets *ret_buf (free with free()) and
 * *ret_len, CL_E_HELD when items are held (a snapshot carries no hold
 * buffer: release first, e.g. with cl_state_release_force()) or
 * CL_E_NOMEM.
 */
int cl_state_snapshot(const struct cl_state *st, char **ret_buf,
                      size_t *ret_len);

/*
 * Rebuilds a state from cl_state_snapshot() bytes; the restored state
 * decides exactly as the saved one did.  Every length, type and value is
 * checked; nothing is sized from the bytes beyond what len allows.
 * Returns 0 and sets *ret_state, or CL_E_VERSION (format version unknown),
 * CL_E_SNAPSHOT (anything else malformed) or CL_E_NOMEM.
 */
int cl_state_restore(const char *buf, size_t len, struct cl_state **ret_state);

/*
 * Adds src into dst, as if dst had also seen src's items (each state's
 * newest items are taken as simultaneous; the merged state restarts its
 * decay clock).  Both must share K, bins, half-life, filter and the
 * effective cells per class: else CL_E_MISMATCH and dst is unchanged.
 * With fewer cells than K - 1, each class keeps the cells of the two
 * states with the most joint weight (docs/streaming.md, "Large K").  dst keeps its own warm-up,
 * min_examples and sum_tol.  src may be dst (doubles every weight).
 */
int cl_state_merge(struct cl_state *dst, const struct cl_state *src);

#endif /* CFD_CORE_CL_H */
