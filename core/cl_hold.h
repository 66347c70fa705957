/*
 * cl_hold.h - private to core/: the hold buffer (cl.h, docs/streaming.md).
 * Items that arrive before the state is warm (warmup_policy hold) are
 * copied here and decided together with batch mode when released; items
 * of the decision window (delay_items) wait here for delay_items later
 * items and are then decided online.
 */
#ifndef CFD_CORE_CL_HOLD_H
#define CFD_CORE_CL_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl.h"

struct cl_state;

/* Why an item is held. */
enum cl_hold_kind {
        CL_HOLD_NONE = 0, /* not held: decided at once */
        CL_HOLD_WARMUP,   /* warm-up hold: batch mode at release */
        CL_HOLD_WINDOW,   /* decision window: online at release */
};

/* Rows of the buffer, for parameters already checked otherwise (K within
 * limits): 0 when nothing is held (predicted_neq_given, or neither
 * warm-up hold nor a window), else the larger of the warm-up rows (the
 * items that bring the effective total to warmup_total, plus one for
 * rounding under decay, cut to what fits in CL_HOLD_MAX_BYTES) and
 * delay_items + 1; SIZE_MAX when the window does not fit in
 * CL_HOLD_MAX_BYTES (the memory check refuses it). */
size_t cl_hold_capacity(const struct cl_params *p);

/* Bytes of the buffer of cl_hold_capacity(p) rows; SIZE_MAX on overflow. */
size_t cl_hold_memory(const struct cl_params *p);

/* Allocates the buffer of st (st->p set); nothing under CL_WARMUP_PASS.
 * Returns 0 or CL_E_NOMEM. */
int cl_hold_init(struct cl_state *st);

/* Frees the buffer of st (st->hold may be NULL). */
void cl_hold_release(struct cl_state *st);

/* Whether, and why, the next item is to be held: asked before the item
 * moves the clock or any sum. */
enum cl_hold_kind cl_hold_wants(const struct cl_state *st);

/* Copies a validated row into the buffer (room checked by
 * cl_hold_wants(), kind as it answered) and returns its slot. */
uint64_t cl_hold_push(struct cl_state *st, unsigned label, const double *p,
                      enum cl_hold_kind kind);

#endif /* CFD_CORE_CL_HOLD_H */
