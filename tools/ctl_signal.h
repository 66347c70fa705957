/*
 * ctl_signal.h - SIGTERM and SIGINT for confidentctl's long-running
 * commands (broker, replay, evaluate): the handler only records the
 * signal; the command's loop looks at ctl_stop_signal and winds down.
 */
#ifndef CFD_TOOLS_CTL_SIGNAL_H
#define CFD_TOOLS_CTL_SIGNAL_H

#include <signal.h>

/* The stop signal received (SIGTERM or SIGINT), or 0. */
extern volatile sig_atomic_t ctl_stop_signal;

/*
 * Clears ctl_stop_signal and catches SIGTERM and SIGINT without
 * SA_RESTART (so a blocking poll() returns EINTR).
 * Returns 0, or -1 after printing "confidentctl <command>: sigaction: ...".
 */
int ctl_catch_stop_signals(const char *command);

#endif /* CFD_TOOLS_CTL_SIGNAL_H */
