/*
 * ctl_kafka.h - the librdkafka configuration shared by confidentctl's
 * Kafka clients (replay, evaluate): key=value log lines on stderr, the
 * bootstrap address, defaults, then the user's --property NAME=VALUE.
 */
#ifndef CFD_TOOLS_CTL_KAFKA_H
#define CFD_TOOLS_CTL_KAFKA_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

/*
 * Builds a configuration for command (e.g. "confidentctl replay"):
 * bootstrap.servers = brokers, the n_defaults name/value pairs of
 * defaults, then each of the n_props "NAME=VALUE" strings of props (their
 * syntax already checked by the command line).  librdkafka's errors and
 * log lines go to stderr as key=value lines.  Returns the configuration,
 * or NULL after printing what librdkafka refused.
 */
rd_kafka_conf_t *ctl_kafka_conf(const char *command, const char *brokers,
                                const char *const (*defaults)[2],
                                size_t n_defaults,
                                const char *const *props, size_t n_props);

/* Most --property options a command takes. */
#define CTL_KAFKA_MAX_PROPERTIES 64

/*
 * Adds one --property argument of command (e.g. "replay") to props
 * (*n_props of CTL_KAFKA_MAX_PROPERTIES used), after checking it with
 * cli_check_property().  Returns 0, or -1 after printing what is wrong.
 */
int ctl_kafka_add_property(const char *command, const char *arg,
                           const char **props, size_t *n_props);

#endif /* CFD_TOOLS_CTL_KAFKA_H */
