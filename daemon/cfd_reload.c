#include "cfd_reload.h"

#include <stdbool.h>
#include <string.h>

static bool same_str(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool same_props(const struct cfg_props *a, const struct cfg_props *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!same_str(a->v[i].name, b->v[i].name) ||
                    !same_str(a->v[i].value, b->v[i].value))
                        return false;
        return true;
}

static const char *kafka_key(const struct cfg *a, const struct cfg *b)
{
        if (!same_str(a->kafka.bootstrap, b->kafka.bootstrap) ||
            a->kafka.embedded_partitions != b->kafka.embedded_partitions)
                return "kafka.bootstrap";
        if (!same_str(a->kafka.group_id, b->kafka.group_id))
                return "kafka.group_id";
        if (!same_str(a->kafka.topic_input, b->kafka.topic_input) ||
            !same_str(a->kafka.topic_clean, b->kafka.topic_clean) ||
            !same_str(a->kafka.topic_suspect, b->kafka.topic_suspect) ||
            !same_str(a->kafka.topic_dead_letter, b->kafka.topic_dead_letter) ||
            !same_str(a->kafka.topic_state, b->kafka.topic_state))
                return "kafka.topics";
        if (!same_props(&a->kafka.common, &b->kafka.common))
                return "kafka.properties";
        if (!same_props(&a->kafka.consumer, &b->kafka.consumer))
                return "kafka.consumer_properties";
        if (!same_props(&a->kafka.producer, &b->kafka.producer))
                return "kafka.producer_properties";
        return NULL;
}

static bool same_classes(const struct cfg *a, const struct cfg *b)
{
        if (a->classes.count != b->classes.count)
                return false;
        for (unsigned i = 0; i < a->classes.count; i++)
                if (!same_str(a->classes.names[i], b->classes.names[i]))
                        return false;
        return true;
}

/* Filter keys that shape the statistics' memory or weights. */
static const char *filter_key(const struct cfg *a, const struct cfg *b)
{
        if (!same_str(a->filter.method, b->filter.method))
                return "filter.method";
        if (a->filter.half_life != b->filter.half_life)
                return "filter.half_life";
        if (a->filter.bins != b->filter.bins)
                return "filter.bins";
        if (a->filter.warmup_policy != b->filter.warmup_policy)
                return "filter.warmup_policy";
        return NULL;
}

const char *cfd_reload_restart_key(const struct cfg *old,
                                   const struct cfg *new)
{
        const char *key = kafka_key(old, new);

        if (key)
                return key;
        if (!same_classes(old, new))
                return "classes";
        key = filter_key(old, new);
        if (key)
                return key;
        if (old->delivery.mode != new->delivery.mode ||
            !same_str(old->delivery.transactional_id,
                      new->delivery.transactional_id))
                return "delivery";
        if (!same_str(old->state.initial, new->state.initial) ||
            old->state.share != new->state.share)
                return "state";
        if (!same_str(old->metrics.listen, new->metrics.listen))
                return "metrics.listen";
        return NULL;
}
