#include "cfd_kafka.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cfd_log.h"

struct kv {
        const char *name;
        const char *value;
};

/* Safe defaults for any broker. */
static const struct kv consumer_defaults[] = {
        {"auto.offset.reset", "earliest"},
        {"isolation.level", "read_committed"},
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "500"},
};

static const struct kv producer_defaults[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", "5"},
};

/* The mock broker needs these to be fast (docs/embedded-broker.md). */
static const struct kv consumer_embedded[] = {
        {"fetch.wait.max.ms", "10"},
        {"queued.min.messages", "1000000"},
};

/* Offsets are ours: stored and committed only after delivery. */
static const struct kv consumer_owned[] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Properties the delivery guarantee rests on: the config may not set
 * them (kafka.bootstrap and kafka.group_id are refused by config/). */
static const struct kv reserved[] = {
        {"acks", "acks=all"},
        {"request.required.acks", "acks=all"},
        {"enable.idempotence", "an idempotent producer"},
        {"transactional.id", "delivery.transactional_id"},
        {"enable.auto.commit", "commits after delivery"},
        {"enable.auto.offset.store", "commits after delivery"},
        {"isolation.level", "isolation.level=read_committed"},
        {"enable.partition.eof", "its own consumer events"},
};

static const struct kv *find_reserved(const char *name)
{
        for (size_t i = 0; i < N_OF(reserved); i++)
                if (!strcmp(reserved[i].name, name))
                        return &reserved[i];
        return NULL;
}

static int set_kv(rd_kafka_conf_t *conf, const struct kv *kv, size_t n,
                  char *errbuf, size_t errsize)
{
        char err[256];

        for (size_t i = 0; i < n; i++) {
                if (rd_kafka_conf_set(conf, kv[i].name, kv[i].value, err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK) {
                        snprintf(errbuf, errsize, "property '%s': %s",
                                 kv[i].name, err);
                        return -1;
                }
        }
        return 0;
}

static int set_props(rd_kafka_conf_t *conf, const struct cfg *cfg,
                     const struct cfg_props *props, char *errbuf,
                     size_t errsize)
{
        char err[256];

        for (size_t i = 0; i < props->n; i++) {
                const struct cfg_prop *p = &props->v[i];
                const struct kv *r = find_reserved(p->name);

                if (r) {
                        snprintf(errbuf, errsize,
                                 "%s:%u:%u: property '%s' is set by "
                                 "confidentd (%s) for its delivery guarantee",
                                 cfg->path ? cfg->path : "config", p->line,
                                 p->col, p->name, r->value);
                        return -1;
                }
                if (rd_kafka_conf_set(conf, p->name, p->value, err,
                                      sizeof(err)) != RD_KAFKA_CONF_OK) {
                        snprintf(errbuf, errsize, "%s:%u:%u: property '%s': %s",
                                 cfg->path ? cfg->path : "config", p->line,
                                 p->col, p->name, err);
                        return -1;
                }
        }
        return 0;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
        enum cfd_log_level our;
        char quoted[1024];

        (void)rk;
        if (level <= 3)
                our = CFD_LOG_ERROR;
        else if (level == 4)
                our = CFD_LOG_WARN;
        else if (level <= 6)
                our = CFD_LOG_INFO;
        else
                our = CFD_LOG_DEBUG;
        cfd_log(our, "rdkafka", "src=rdkafka fac=%s msg=%s", fac,
                cfd_log_quote(quoted, sizeof(quoted), buf));
}

static int set_role_defaults(rd_kafka_conf_t *conf, const struct cfg *cfg,
                             enum cfd_kafka_role role, char *errbuf,
                             size_t errsize)
{
        if (role == CFD_KAFKA_PRODUCER)
                return set_kv(conf, producer_defaults, N_OF(producer_defaults),
                              errbuf, errsize);

        if (set_kv(conf, consumer_defaults, N_OF(consumer_defaults), errbuf,
                   errsize) < 0)
                return -1;
        if (rd_kafka_conf_set(conf, "group.id", cfg->kafka.group_id, errbuf,
                              errsize) != RD_KAFKA_CONF_OK)
                return -1;
        if (cfg->kafka.embedded)
                return set_kv(conf, consumer_embedded, N_OF(consumer_embedded),
                              errbuf, errsize);
        return 0;
}

rd_kafka_conf_t *cfd_kafka_conf_new(const struct cfg *cfg,
                                    enum cfd_kafka_role role,
                                    const char *bootstrap, void *opaque,
                                    char *errbuf, size_t errsize)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        const struct cfg_props *own = role == CFD_KAFKA_PRODUCER
                                              ? &cfg->kafka.producer
                                              : &cfg->kafka.consumer;

        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errbuf,
                              errsize) != RD_KAFKA_CONF_OK)
                goto out_destroy;
        if (set_role_defaults(conf, cfg, role, errbuf, errsize) < 0)
                goto out_destroy;
        if (set_props(conf, cfg, &cfg->kafka.common, errbuf, errsize) < 0)
                goto out_destroy;
        if (set_props(conf, cfg, own, errbuf, errsize) < 0)
                goto out_destroy;
        if (role == CFD_KAFKA_CONSUMER &&
            set_kv(conf, consumer_owned, N_OF(consumer_owned), errbuf,
                   errsize) < 0)
                goto out_destroy;
        if (role == CFD_KAFKA_PRODUCER &&
            cfg->delivery.mode == CFG_DELIVERY_EXACTLY_ONCE &&
            rd_kafka_conf_set(conf, "transactional.id",
                              cfg->delivery.transactional_id, errbuf,
                              errsize) != RD_KAFKA_CONF_OK)
                goto out_destroy;

        rd_kafka_conf_set_log_cb(conf, on_log);
        rd_kafka_conf_set_opaque(conf, opaque);
        return conf;

out_destroy:
        rd_kafka_conf_destroy(conf);
        return NULL;
}

int cfd_kafka_check_config(const struct cfg *cfg, char *errbuf,
                           size_t errsize)
{
        static const enum cfd_kafka_role roles[] = {CFD_KAFKA_CONSUMER,
                                                    CFD_KAFKA_PRODUCER};
        const char *bootstrap =
                cfg->kafka.embedded ? "127.0.0.1:9" : cfg->kafka.bootstrap;

        for (size_t i = 0; i < N_OF(roles); i++) {
                rd_kafka_conf_t *conf = cfd_kafka_conf_new(
                        cfg, roles[i], bootstrap, NULL, errbuf, errsize);

                if (!conf)
                        return -1;
                rd_kafka_conf_destroy(conf);
        }
        return 0;
}

int cfd_kafka_warm_topic(rd_kafka_t *rk, const char *topic, int timeout_ms,
                         char *errbuf, size_t errsize)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        rd_kafka_resp_err_t err;
        int rc = 0;

        if (!rkt) {
                snprintf(errbuf, errsize, "topic '%s': %s", topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        if (err) {
                snprintf(errbuf, errsize, "metadata for topic '%s': %s",
                         topic, rd_kafka_err2str(err));
                rc = -1;
        } else if (md->topic_cnt != 1 || md->topics[0].err) {
                snprintf(errbuf, errsize, "topic '%s': %s", topic,
                         rd_kafka_err2str(md->topic_cnt
                                                  ? md->topics[0].err
                                                  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
                rc = -1;
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return rc;
}
