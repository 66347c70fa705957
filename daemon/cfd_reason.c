#include "cfd_reason.h"

#include <inttypes.h>
#include <stdio.h>

char *cfd_reason_decode(char *buf, size_t size,
                        const struct msg_error *merr)
{
        if (merr->field[0])
                snprintf(buf, size, "%s: %s (byte %zu)", merr->field,
                         merr->msg, merr->offset);
        else
                snprintf(buf, size, "%s (byte %zu)", merr->msg,
                         merr->offset);
        return buf;
}

static double row_sum(const double *p, unsigned k)
{
        double s = 0.0;

        for (unsigned i = 0; i < k; i++)
                s += p[i];
        return s;
}

/* %.17g where the reader must see the value as received: %g's six
 * digits print 1.0000001 as 1, which would read "1 is outside [0, 1]". */
char *cfd_reason_row(char *buf, size_t size, int code, int64_t label,
                     size_t index, const double *probs,
                     const struct cl_params *par)
{
        switch (code) {
        case CL_E_LABEL_RANGE:
                snprintf(buf, size, "label: %" PRId64 " is outside 0..%u",
                         label, par->k - 1);
                break;
        case CL_E_NONFINITE:
                snprintf(buf, size, "pred_probs[%zu]: %g is not finite",
                         index, probs[index]);
                break;
        case CL_E_RANGE:
                snprintf(buf, size, "pred_probs[%zu]: %.17g is outside [0, 1]",
                         index, probs[index]);
                break;
        case CL_E_ROW_SUM:
                snprintf(buf, size, "pred_probs: values sum to %.17g, not 1 "
                                    "within %g",
                         row_sum(probs, par->k), par->sum_tol);
                break;
        default:
                snprintf(buf, size, "%s", cl_strerror(code));
                break;
        }
        return buf;
}
