/*
 * cfd_peers.h - the statistics of the other instances of a pipeline.
 *
 * Every instance writes a snapshot of its own statistics to the state
 * topic with each transaction, keyed by its transactional id.  With
 * state.share, an instance also reads the other keys of that topic and
 * decides with its own statistics plus the newest snapshot of every
 * peer, so several instances splitting the input partitions all decide
 * with statistics of the whole stream.  A peer's contribution is as old
 * as its last commit plus the time to read it: about two commit
 * intervals (docs/delivery.md).
 */
#ifndef CFD_DAEMON_CFD_PEERS_H
#define CFD_DAEMON_CFD_PEERS_H

#include <stddef.h>

#include "cfg.h"
#include "cl.h"

/* Most peers tracked; further keys are ignored (logged once). */
#define CFD_PEERS_MAX 64

struct cfd_peers;

/*
 * Starts reading the state topic of cfg, skipping own_key.  The newest
 * snapshot of each key is looked for among the last window records of
 * every partition, then followed as it arrives.  Returns 0 and sets
 * *ret, or -1 with errbuf filled.
 */
int cfd_peers_new(const struct cfg *cfg, const char *bootstrap,
                  const char *own_key, struct cfd_peers **ret, char *errbuf,
                  size_t errsize);

void cfd_peers_free(struct cfd_peers *p);

/*
 * Takes what arrived on the state topic, without waiting.  Returns 1 when
 * a peer's snapshot changed since the previous call, else 0.
 */
int cfd_peers_poll(struct cfd_peers *p);

/*
 * Merges the newest snapshot of every peer into st (cl_state_merge()).
 * A snapshot that cannot be restored or merged (another configuration)
 * is skipped and logged once per peer.  Returns the number merged.
 */
size_t cfd_peers_merge_into(struct cfd_peers *p, struct cl_state *st);

/* Peers known so far. */
size_t cfd_peers_count(const struct cfd_peers *p);

#endif /* CFD_DAEMON_CFD_PEERS_H */
