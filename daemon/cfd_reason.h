/*
 * cfd_reason.h - the text of a dead letter's confidentd-reason header:
 * which field of the input is wrong, and how (schemas/README.md).
 *
 * Kept apart from the Kafka loop so that it can be tested alone; both
 * functions run once per bad item, allocate nothing and make no system
 * call (tests/daemon/test_hot_path.c), and may be called from any thread.
 */
#ifndef CFD_DAEMON_CFD_REASON_H
#define CFD_DAEMON_CFD_REASON_H

#include <stddef.h>
#include <stdint.h>

#include "cl.h"
#include "msg.h"

/*
 * Writes the reason of a msg_decode() failure into buf of size bytes
 * (cut to fit, always terminated): "field: msg (byte N)", or
 * "msg (byte N)" when merr names no field.  Returns buf.
 */
char *cfd_reason_decode(char *buf, size_t size,
                        const struct msg_error *merr);

/*
 * Writes the reason of a cl_observe() refusal (code, a CL_E_*) into buf
 * of size bytes (cut to fit, always terminated) and returns buf:
 *
 *   CL_E_LABEL_RANGE  "label: -1 is outside 0..9"
 *   CL_E_NONFINITE    "pred_probs[3]: nan is not finite"
 *   CL_E_RANGE        "pred_probs[3]: 1.5 is outside [0, 1]"
 *   CL_E_ROW_SUM      "pred_probs: values sum to 0.9..., not 1 within 0.001"
 *   other codes       cl_strerror(code)
 *
 * label is the given label as decoded; index the offending column that
 * cl_observe() reported (below par->k for CL_E_NONFINITE and CL_E_RANGE);
 * probs the par->k probabilities of the item.
 */
char *cfd_reason_row(char *buf, size_t size, int code, int64_t label,
                     size_t index, const double *probs,
                     const struct cl_params *par);

#endif /* CFD_DAEMON_CFD_REASON_H */
