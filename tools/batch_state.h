/*
 * batch_state.h - the starting statistics for the daemon, from history.
 */
#ifndef CFD_TOOLS_BATCH_STATE_H
#define CFD_TOOLS_BATCH_STATE_H

#include <stddef.h>

/*
 * Feeds n rows (labels, n x k probabilities, row-major) in order through
 * a streaming state made with the filter parameters of the daemon
 * configuration at config_path, decides every held item, and writes the
 * state's snapshot to out_path: the statistics a daemon would have after
 * consuming these rows, which it loads at start with state.initial (so it
 * needs no warm-up).  Rejected rows are counted and skipped.  Prints a
 * summary line on stderr.  Returns the exit status: 0, 1 on failure,
 * 2 on a configuration error.
 */
int batch_state_write(const char *config_path, const char *out_path,
                      const long *labels, const double *probs, size_t n,
                      unsigned k);

#endif /* CFD_TOOLS_BATCH_STATE_H */
