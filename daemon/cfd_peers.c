#include "cfd_peers.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cfd_kafka.h"
#include "cfd_log.h"

#define METADATA_TIMEOUT_MS 10000
/* Records per partition looked at, backwards from the end, at start. */
#define START_WINDOW 1000

struct peer {
        char *key;
        char *snapshot; /* newest committed snapshot */
        size_t len;
        bool refused;   /* logged once: cannot be merged */
};

struct cfd_peers {
        rd_kafka_t *rk;
        char *own_key;
        struct peer peer[CFD_PEERS_MAX];
        size_t n;
        bool changed;
        bool full_logged;
};

static struct peer *find_or_add(struct cfd_peers *p, const void *key,
                                size_t key_len)
{
        struct peer *peer;

        for (size_t i = 0; i < p->n; i++)
                if (strlen(p->peer[i].key) == key_len &&
                    !memcmp(p->peer[i].key, key, key_len))
                        return &p->peer[i];
        if (p->n == CFD_PEERS_MAX) {
                if (!p->full_logged)
                        cfd_log(CFD_LOG_WARN, "peers_full",
                                "max=%d action=ignore_new_keys",
                                CFD_PEERS_MAX);
                p->full_logged = true;
                return NULL;
        }
        peer = &p->peer[p->n];
        peer->key = malloc(key_len + 1);
        if (!peer->key)
                return NULL;
        memcpy(peer->key, key, key_len);
        peer->key[key_len] = '\0';
        p->n++;
        cfd_log(CFD_LOG_INFO, "peer_found", "key=%s peers=%zu", peer->key,
                p->n);
        return peer;
}

/* Keeps m as the newest snapshot of its key, unless the key is ours. */
static void take_record(struct cfd_peers *p, const rd_kafka_message_t *m)
{
        struct peer *peer;
        char *copy;

        if (!m->key || !m->payload || m->len == 0)
                return;
        if (m->key_len == strlen(p->own_key) &&
            !memcmp(m->key, p->own_key, m->key_len))
                return;
        peer = find_or_add(p, m->key, m->key_len);
        copy = peer ? malloc(m->len) : NULL;
        if (!copy)
                return;
        memcpy(copy, m->payload, m->len);
        free(peer->snapshot);
        peer->snapshot = copy;
        peer->len = m->len;
        p->changed = true;
}

int cfd_peers_poll(struct cfd_peers *p)
{
        rd_kafka_message_t *m;
        int changed;

        while ((m = rd_kafka_consumer_poll(p->rk, 0)) != NULL) {
                if (m->err)
                        cfd_log(CFD_LOG_WARN, "peers_error", "err=\"%s\"",
                                rd_kafka_message_errstr(m));
                else
                        take_record(p, m);
                rd_kafka_message_destroy(m);
        }
        changed = p->changed;
        p->changed = false;
        return changed;
}

size_t cfd_peers_merge_into(struct cfd_peers *p, struct cl_state *st)
{
        size_t merged = 0;

        for (size_t i = 0; i < p->n; i++) {
                struct peer *peer = &p->peer[i];
                struct cl_state *other = NULL;
                int rc;

                if (!peer->snapshot)
                        continue;
                rc = cl_state_restore(peer->snapshot, peer->len, &other);
                if (rc == 0)
                        rc = cl_state_merge(st, other);
                cl_state_free(other);
                if (rc == 0) {
                        merged++;
                        peer->refused = false;
                } else if (!peer->refused) {
                        cfd_log(CFD_LOG_WARN, "peer_refused",
                                "key=%s err=\"%s\" action=ignore", peer->key,
                                cl_strerror(rc));
                        peer->refused = true;
                }
        }
        return merged;
}

size_t cfd_peers_count(const struct cfd_peers *p)
{
        return p->n;
}

/* Assigns every partition of the state topic from START_WINDOW records
 * before its end. */
static int assign_window(struct cfd_peers *p, const char *topic,
                         char *errbuf, size_t errsize)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_partition_list_t *parts = NULL;
        rd_kafka_resp_err_t err;
        int n;

        err = rd_kafka_metadata(p->rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
        for (int t = 0; !err && t < md->topic_cnt; t++) {
                if (strcmp(md->topics[t].topic, topic))
                        continue;
                n = md->topics[t].partition_cnt;
                parts = rd_kafka_topic_partition_list_new(n);
                for (int i = 0; i < n; i++)
                        rd_kafka_topic_partition_list_add(parts, topic, i)
                                ->offset = RD_KAFKA_OFFSET_TAIL(START_WINDOW);
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        if (!err && !parts)
                err = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        if (!err)
                err = rd_kafka_assign(p->rk, parts);
        if (parts)
                rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                snprintf(errbuf, errsize, "state topic '%s' for peers: %s",
                         topic, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

int cfd_peers_new(const struct cfg *cfg, const char *bootstrap,
                  const char *own_key, struct cfd_peers **ret, char *errbuf,
                  size_t errsize)
{
        struct cfd_peers *p = calloc(1, sizeof(*p));
        rd_kafka_conf_t *conf;

        if (!p || !(p->own_key = strdup(own_key))) {
                snprintf(errbuf, errsize, "out of memory");
                goto out_free;
        }
        conf = cfd_kafka_conf_new(cfg, CFD_KAFKA_CONSUMER, bootstrap, NULL,
                                  errbuf, errsize);
        if (!conf)
                goto out_free;
        p->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errsize);
        if (!p->rk) {
                rd_kafka_conf_destroy(conf);
                goto out_free;
        }
        if (assign_window(p, cfg->kafka.topic_state, errbuf, errsize) < 0)
                goto out_free;
        *ret = p;
        return 0;

out_free:
        cfd_peers_free(p);
        return -1;
}

void cfd_peers_free(struct cfd_peers *p)
{
        if (!p)
                return;
        if (p->rk) {
                rd_kafka_consumer_close(p->rk);
                rd_kafka_destroy(p->rk);
        }
        for (size_t i = 0; i < p->n; i++) {
                free(p->peer[i].key);
                free(p->peer[i].snapshot);
        }
        free(p->own_key);
        free(p);
}
