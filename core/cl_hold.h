/*
 * cl_hold.h - private to core/: the hold buffer of warmup_policy hold
 * (cl.h, docs/streaming.md).  Items that arrive before the state is warm
 * are copied here, and decided together with batch mode when released.
 */
#ifndef CFD_CORE_CL_HOLD_H
#define CFD_CORE_CL_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cl.h"

struct cl_state;

/* Rows of the buffer, for parameters already checked otherwise: 0 under
 * CL_WARMUP_PASS or predicted_neq_given, else the items that bring the
 * effective total to warmup_total (plus one for rounding under decay), or
 * SIZE_MAX when that count is absurd (memory check refuses it). */
size_t cl_hold_capacity(const struct cl_params *p);

/* Bytes of the buffer of cl_hold_capacity(p) rows; SIZE_MAX on overflow. */
size_t cl_hold_memory(const struct cl_params *p);

/* Allocates the buffer of st (st->p set); nothing under CL_WARMUP_PASS.
 * Returns 0 or CL_E_NOMEM. */
int cl_hold_init(struct cl_state *st);

/* Frees the buffer of st (st->hold may be NULL). */
void cl_hold_release(struct cl_state *st);

/* Whether the next item is to be held: asked before the item moves the
 * clock or any sum. */
bool cl_hold_wants(const struct cl_state *st);

/* Copies a validated row into the buffer (room checked by
 * cl_hold_wants()) and returns its hold index. */
uint64_t cl_hold_push(struct cl_state *st, unsigned label, const double *p);

#endif /* CFD_CORE_CL_HOLD_H */
