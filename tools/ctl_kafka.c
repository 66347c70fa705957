#include "ctl_kafka.h"

#include <stdio.h>
#include <string.h>

#include "cfd_log.h"
#include "cli.h"

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
        char quoted[512];

        (void)rk;
        (void)opaque;
        fprintf(stderr, "level=warn event=kafka_error src=rdkafka err=%s "
                        "reason=%s\n",
                rd_kafka_err2name((rd_kafka_resp_err_t)err),
                cfd_log_quote(quoted, sizeof(quoted), reason));
}

/* librdkafka's own log lines, from its threads, as key=value lines. */
static void on_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
                           const char *buf)
{
        char quoted[1024];

        (void)rk;
        fprintf(stderr, "level=%s event=rdkafka_log src=rdkafka fac=%s "
                        "msg=%s\n",
                level <= 3 ? "error" : level <= 4 ? "warn" : "info", fac,
                cfd_log_quote(quoted, sizeof(quoted), buf));
}

static int set(rd_kafka_conf_t *conf, const char *command, const char *name,
               const char *value)
{
        char errstr[512];

        if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) ==
            RD_KAFKA_CONF_OK)
                return 0;
        fprintf(stderr, "%s: property %s=%s: %s\n", command, name, value,
                errstr);
        return -1;
}

/* Sets one "NAME=VALUE" property. */
static int set_property(rd_kafka_conf_t *conf, const char *command,
                        const char *prop)
{
        const char *eq = strchr(prop, '=');
        char name[256];
        size_t len = eq ? (size_t)(eq - prop) : 0;

        if (len == 0 || len >= sizeof(name)) {
                fprintf(stderr, "%s: --property '%s': bad name\n", command,
                        prop);
                return -1;
        }
        memcpy(name, prop, len);
        name[len] = '\0';
        return set(conf, command, name, eq + 1);
}

rd_kafka_conf_t *ctl_kafka_conf(const char *command, const char *brokers,
                                const char *const (*defaults)[2],
                                size_t n_defaults,
                                const char *const *props, size_t n_props)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        size_t i;

        rd_kafka_conf_set_error_cb(conf, on_kafka_error);
        rd_kafka_conf_set_log_cb(conf, on_rdkafka_log);
        if (set(conf, command, "bootstrap.servers", brokers))
                goto fail;
        for (i = 0; i < n_defaults; i++)
                if (set(conf, command, defaults[i][0], defaults[i][1]))
                        goto fail;
        for (i = 0; i < n_props; i++)
                if (set_property(conf, command, props[i]))
                        goto fail;
        return conf;
fail:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

int ctl_kafka_add_property(const char *command, const char *arg,
                           const char **props, size_t *n_props)
{
        if (cli_check_property(command, arg) != CLI_OK)
                return -1;
        if (*n_props == CTL_KAFKA_MAX_PROPERTIES) {
                fprintf(stderr,
                        "confidentctl %s: --property '%s': at most %d "
                        "properties\n",
                        command, arg, CTL_KAFKA_MAX_PROPERTIES);
                return -1;
        }
        props[(*n_props)++] = arg;
        return 0;
}
