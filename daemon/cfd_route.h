/*
 * cfd_route.h - re-review topics for suspect items (routing.suspect_by):
 * one per class, <suspect>.<class name>, or one per listed annotator,
 * <suspect>.<annotator>; everything else goes to kafka.topics.suspect.
 */
#ifndef CFD_DAEMON_CFD_ROUTE_H
#define CFD_DAEMON_CFD_ROUTE_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "cfg.h"
#include "msg.h"

struct cfd_metrics;
struct cfd_routes;

/* Number of extra suspect topics cfg's routing needs. */
size_t cfd_routes_count(const struct cfg *cfg);

/* Writes the name of extra suspect topic i (< cfd_routes_count()). */
void cfd_routes_name(const struct cfg *cfg, size_t i, char *buf,
                     size_t size);

/*
 * Opens the extra suspect topics on producer and checks that the broker
 * knows them; registers each with the metrics (may be NULL).  With
 * suspect_by none, *ret is an empty table.  Returns 0, or -1 with errbuf
 * naming the first topic that is missing.
 */
int cfd_routes_new(rd_kafka_t *producer, const struct cfg *cfg,
                   struct cfd_metrics *metrics, struct cfd_routes **ret,
                   char *errbuf, size_t errsize);

void cfd_routes_free(struct cfd_routes *r);

/*
 * The topic of a suspect item of class given (and annotator, possibly
 * absent), with its metrics id; NULL when it goes to the suspect topic.
 */
rd_kafka_topic_t *cfd_routes_suspect(const struct cfd_routes *r,
                                     unsigned given,
                                     const struct msg_str *annotator,
                                     int *ret_metric_id);

#endif /* CFD_DAEMON_CFD_ROUTE_H */
