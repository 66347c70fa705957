#include "cfd_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfd_kafka.h"
#include "cfd_metrics.h"

#define METADATA_TIMEOUT_MS 10000
#define TOPIC_NAME_MAX 256

struct cfd_routes {
        enum cfg_suspect_by by;
        char *const *annotators; /* the config's, for suspect_by annotator */
        size_t n;
        rd_kafka_topic_t **topic; /* n, by class index or annotator index */
        int *metric_id;
};

size_t cfd_routes_count(const struct cfg *cfg)
{
        switch (cfg->routing.suspect_by) {
        case CFG_SUSPECT_BY_CLASS:
                return cfg->classes.count;
        case CFG_SUSPECT_BY_ANNOTATOR:
                return cfg->routing.n_annotators;
        default:
                return 0;
        }
}

void cfd_routes_name(const struct cfg *cfg, size_t i, char *buf, size_t size)
{
        const char *suffix = cfg->routing.suspect_by == CFG_SUSPECT_BY_CLASS
                                     ? cfg->classes.names[i]
                                     : cfg->routing.annotators[i];

        snprintf(buf, size, "%s.%s", cfg->kafka.topic_suspect, suffix);
}

int cfd_routes_new(rd_kafka_t *producer, const struct cfg *cfg,
                   struct cfd_metrics *metrics, struct cfd_routes **ret,
                   char *errbuf, size_t errsize)
{
        struct cfd_routes *r = calloc(1, sizeof(*r));
        char name[TOPIC_NAME_MAX];

        if (!r)
                goto out_nomem;
        r->by = cfg->routing.suspect_by;
        r->annotators = cfg->routing.annotators;
        r->n = cfd_routes_count(cfg);
        r->topic = calloc(r->n ? r->n : 1, sizeof(*r->topic));
        r->metric_id = calloc(r->n ? r->n : 1, sizeof(*r->metric_id));
        if (!r->topic || !r->metric_id)
                goto out_nomem;
        for (size_t i = 0; i < r->n; i++) {
                cfd_routes_name(cfg, i, name, sizeof(name));
                r->topic[i] = rd_kafka_topic_new(producer, name, NULL);
                if (!r->topic[i]) {
                        snprintf(errbuf, errsize, "topic '%s': %s", name,
                                 rd_kafka_err2str(rd_kafka_last_error()));
                        goto out_free;
                }
                if (cfd_kafka_warm_topic(producer, name, METADATA_TIMEOUT_MS,
                                         errbuf, errsize) < 0)
                        goto out_free;
                r->metric_id[i] = cfd_metrics_topic(metrics, name);
        }
        *ret = r;
        return 0;

out_nomem:
        snprintf(errbuf, errsize, "out of memory for the suspect routes");
out_free:
        cfd_routes_free(r);
        return -1;
}

void cfd_routes_free(struct cfd_routes *r)
{
        if (!r)
                return;
        for (size_t i = 0; r->topic && i < r->n; i++)
                if (r->topic[i])
                        rd_kafka_topic_destroy(r->topic[i]);
        free(r->topic);
        free(r->metric_id);
        free(r);
}

static size_t annotator_index(const struct cfd_routes *r,
                              const struct msg_str *a)
{
        for (size_t i = 0; a->ptr && i < r->n; i++)
                if (strlen(r->annotators[i]) == a->len &&
                    !memcmp(r->annotators[i], a->ptr, a->len))
                        return i;
        return r->n;
}

rd_kafka_topic_t *cfd_routes_suspect(const struct cfd_routes *r,
                                     unsigned given,
                                     const struct msg_str *annotator,
                                     int *ret_metric_id)
{
        size_t i = r->n;

        if (r->by == CFG_SUSPECT_BY_CLASS)
                i = given;
        else if (r->by == CFG_SUSPECT_BY_ANNOTATOR)
                i = annotator_index(r, annotator);
        if (i >= r->n)
                return NULL;
        *ret_metric_id = r->metric_id[i];
        return r->topic[i];
}
