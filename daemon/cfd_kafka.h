/*
 * cfd_kafka.h - building the daemon's librdkafka clients from the config.
 *
 * Properties are applied in this order, later ones winning: our defaults
 * for the role, the embedded-broker tuning (bootstrap: embedded only),
 * kafka.properties, then kafka.consumer_properties or
 * kafka.producer_properties.  What we must own (offset handling, delivery
 * reports) is applied last and cannot be overridden.
 */
#ifndef CFD_DAEMON_CFD_KAFKA_H
#define CFD_DAEMON_CFD_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "cfg.h"

enum cfd_kafka_role {
        CFD_KAFKA_CONSUMER = 0,
        CFD_KAFKA_PRODUCER,
};

/*
 * Builds a configuration for role, connecting to bootstrap.  opaque is
 * passed to the callbacks.  Returns NULL with a message in errbuf naming
 * the config file, line and property that librdkafka refused.
 */
rd_kafka_conf_t *cfd_kafka_conf_new(const struct cfg *cfg,
                                    enum cfd_kafka_role role,
                                    const char *bootstrap, void *opaque,
                                    char *errbuf, size_t errsize);

/*
 * Checks that librdkafka accepts every property of the config for both
 * roles, without creating a client.  Returns 0, or -1 with errbuf filled.
 */
int cfd_kafka_check_config(const struct cfg *cfg, char *errbuf,
                           size_t errsize);

/*
 * Fetches metadata for topic so that the first produce does not wait for
 * the periodic refresh, and reports whether the broker knows the topic.
 * Returns 0, or -1 with errbuf filled.
 */
int cfd_kafka_warm_topic(rd_kafka_t *rk, const char *topic, int timeout_ms,
                         char *errbuf, size_t errsize);

#endif /* CFD_DAEMON_CFD_KAFKA_H */
