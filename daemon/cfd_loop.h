/*
 * cfd_loop.h - the consume, decide, produce, commit loop.
 *
 * Messages are taken from the input topic in batches (commit.max_items or
 * commit.interval_ms, whichever comes first).  Each message is decoded,
 * scored by core and produced, unchanged, to the clean, suspect or
 * dead-letter topic with the verdict in headers.  A batch ends in one
 * Kafka transaction holding its outputs, its input offsets and a
 * snapshot of the statistics (exactly-once), or, for brokers without
 * transactions, in an offset commit once every output is acknowledged
 * (at-least-once).  Nothing new is consumed before a batch is finished,
 * so memory stays bounded by one batch.
 *
 * All functions must be called from one thread.
 */
#ifndef CFD_DAEMON_CFD_LOOP_H
#define CFD_DAEMON_CFD_LOOP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "cl.h"

struct cfd_loop_stats {
        uint64_t consumed;    /* input messages taken */
        uint64_t clean;       /* routed clean, warm-up excluded */
        uint64_t warmup;      /* routed clean while warming up */
        uint64_t suspect;
        uint64_t dead_letter;
        uint64_t delivery_retries;
        uint64_t commits;         /* offset commits or transactions */
        uint64_t commit_failures; /* at-least-once offset commits */
        uint64_t aborts;          /* aborted transactions */
};

struct cfd_loop;
struct cfd_metrics;
struct cfd_notify;

/* Who watches the loop; both may be NULL. */
struct cfd_loop_observers {
        struct cfd_metrics *metrics; /* counters for /metrics */
        struct cfd_notify *notify;   /* systemd watchdog and status */
};

/*
 * Creates the producer (and, for exactly-once, initialises transactions,
 * which fences an older instance with the same transactional id), loads
 * the statistics to start from (cfd_state.h), creates the consumer and
 * subscribes to the input topic.  cfg and the observers are borrowed and
 * must outlive the loop; params are copied.  Returns 0 and sets *ret_loop, or -1 with
 * errbuf filled.
 */
int cfd_loop_new(const struct cfg *cfg, const char *bootstrap,
                 const struct cl_params *params,
                 const struct cfd_loop_observers *obs,
                 struct cfd_loop **ret_loop, char *errbuf, size_t errsize);

/*
 * Runs until *stop becomes non-zero, *reload does, or a fatal client
 * error occurs.  On return the current batch is finished: committed, or
 * (when that was impossible before the shutdown grace period ended) left
 * uncommitted so that it is consumed again after a restart.  Returns 0 on
 * a requested stop with everything committed, CFD_LOOP_RELOAD on a reload
 * request, -1 otherwise.
 */
int cfd_loop_run(struct cfd_loop *loop, volatile sig_atomic_t *stop,
                 volatile sig_atomic_t *reload);

/* cfd_loop_run() returns this when *reload was set: the batch in hand is
 * committed and the caller may call cfd_loop_reconfigure(). */
#define CFD_LOOP_RELOAD 1

/*
 * Applies a new configuration between batches: filter warm-up and
 * thresholds of cl_state_set_params(), commit cadence, routing.  cfg is
 * borrowed from now on (the caller frees the old one on success); it must
 * differ only in what cfd_reload_restart_key() allows.  Returns 0, or -1
 * with errbuf filled and the loop unchanged.
 */
int cfd_loop_reconfigure(struct cfd_loop *loop, const struct cfg *cfg,
                         const struct cl_params *params, char *errbuf,
                         size_t errsize);

/*
 * Leaves the consumer group, flushes the producer and frees everything.
 * NULL does nothing.
 */
void cfd_loop_free(struct cfd_loop *loop);

const struct cfd_loop_stats *cfd_loop_stats(const struct cfd_loop *loop);

#endif /* CFD_DAEMON_CFD_LOOP_H */
