/*
 * cfd_reload.h - what a SIGHUP may change in a running daemon.
 *
 * Reloadable: the filter's warm-up, min_examples, sum_tolerance and
 * max_hold_ms, commit.max_items and interval_ms, routing, and log.  The
 * rest (Kafka connection and topics, classes, filter method, bins,
 * half-life, warm-up policy, delivery, state, metrics address) shapes
 * clients or statistics already in use and needs a restart.
 */
#ifndef CFD_DAEMON_CFD_RELOAD_H
#define CFD_DAEMON_CFD_RELOAD_H

#include "cfg.h"

/*
 * Compares a running configuration with a new one.  Returns NULL when
 * every difference is reloadable, else the first key that needs a
 * restart ("kafka.bootstrap", "classes", ...).
 */
const char *cfd_reload_restart_key(const struct cfg *old,
                                   const struct cfg *new);

#endif /* CFD_DAEMON_CFD_RELOAD_H */
