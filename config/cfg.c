/*
 * cfg.c - the schema of confidentd.yaml: checks the node tree that
 * cfg_yaml.c builds and fills struct cfg (see README.md for every key).
 *
 * Each section is read in two steps: map_fields() sorts a map's pairs
 * into the section's known keys (refusing unknown and repeated ones),
 * then one small function per key converts and range-checks its value.
 * Everything loaded hangs off struct cfg, so error paths free it whole.
 */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfg_yaml.h"

#define CFG_FILE_MAX_BYTES (1024u * 1024u)
#define CFG_CLASSES_MAX    65536u
#define CFG_TOPIC_MAX      249u
#define CFG_SHOW_MAX       32u /* bytes of a bad value quoted in a message */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *const filter_methods[] = {
        "prune_by_noise_rate", "prune_by_class",      "both",
        "confident_learning",  "predicted_neq_given", "low_self_confidence",
        "low_normalized_margin",
};

static const char *const log_levels[] = {"error", "warn", "info", "debug"};

/* A known key of a map and the value it was given; NULLs when absent. */
struct field {
        const struct cfg_node *key;
        const struct cfg_node *value;
};

const char *cfg_err_name(int code)
{
        switch (code) {
        case CFG_OK:
                return "ok";
        case CFG_E_IO:
                return "io";
        case CFG_E_SYNTAX:
                return "syntax";
        case CFG_E_UNKNOWN:
                return "unknown_key";
        case CFG_E_TYPE:
                return "type";
        case CFG_E_VALUE:
                return "value";
        case CFG_E_MISSING:
                return "missing";
        case CFG_E_DUPLICATE:
                return "duplicate";
        case CFG_E_NOMEM:
                return "nomem";
        default:
                return "unknown_error";
        }
}

void cfg_error_format(const struct cfg_error *err, char *buf, size_t size)
{
        if (!buf || size == 0)
                return;
        if (err->line > 0)
                snprintf(buf, size, "%s:%u:%u: %s", err->file, err->line,
                         err->col, err->msg);
        else if (err->file[0])
                snprintf(buf, size, "%s: %s", err->file, err->msg);
        else
                snprintf(buf, size, "%s", err->msg);
}

/*
 * Quotes text for a message: cut to CFG_SHOW_MAX bytes on a UTF-8
 * boundary (then "..."), control characters shown as '?', so that a
 * value can neither flood nor break a log line.  buf needs
 * CFG_QUOTE_SIZE bytes.
 */
#define CFG_QUOTE_SIZE (CFG_SHOW_MAX + 6)

static const char *quote(const char *text, size_t len, char *buf,
                         size_t size)
{
        size_t n = len, i;

        if (n > CFG_SHOW_MAX) {
                n = CFG_SHOW_MAX;
                while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80)
                        n--;
        }
        snprintf(buf, size, "'%.*s%s'", (int)n, text, n < len ? "..." : "");
        for (i = 1; buf[i]; i++)
                if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
                        buf[i] = '?';
        return buf;
}

static const char *quote_node(const struct cfg_node *node, char *buf,
                              size_t size)
{
        return quote(node->text, node->len, buf, size);
}

/* A node for "got ...": a quoted scalar, "no value", "a map", ... */
static const char *describe(const struct cfg_node *node, char *buf,
                            size_t size)
{
        if (node->kind == CFG_NODE_MAP)
                return "a map";
        if (node->kind == CFG_NODE_SEQ)
                return "a sequence";
        if (cfg_yaml_is_null(node))
                return "no value";
        return quote_node(node, buf, size);
}

/* Where a scalar is wanted: a bad scalar is a value, a map is a type. */
static int scalar_code(const struct cfg_node *node)
{
        return node->kind == CFG_NODE_SCALAR ? CFG_E_VALUE : CFG_E_TYPE;
}

/* "'key' must be <expect>, got <node>", for a key that takes a scalar. */
static int fail_expect(struct cfg_error *err, const struct cfg_node *node,
                       const char *key, const char *expect)
{
        char shown[CFG_QUOTE_SIZE];

        return cfg_error_set(err, scalar_code(node), node->line, node->col,
                             "'%s' must be %s, got %s", key, expect,
                             describe(node, shown, sizeof(shown)));
}

/* "'key' must be a map, got <node>": always CFG_E_TYPE. */
static int fail_not_map(struct cfg_error *err, const struct cfg_node *node,
                        const char *key)
{
        char shown[CFG_QUOTE_SIZE];

        return cfg_error_set(err, CFG_E_TYPE, node->line, node->col,
                             "'%s' must be a map, got %s", key,
                             describe(node, shown, sizeof(shown)));
}

static int fail_nomem(struct cfg_error *err, const struct cfg_node *node)
{
        return cfg_error_set(err, CFG_E_NOMEM, node->line, node->col,
                             "out of memory");
}

static int dup_string(struct cfg_error *err, const struct cfg_node *node,
                      const char *text, char **ret)
{
        char *copy = strdup(text);

        if (!copy)
                return fail_nomem(err, node);
        *ret = copy;
        return 0;
}

/* A scalar that is not null; its text may be empty if quoted. */
static bool is_value(const struct cfg_node *node)
{
        return node->kind == CFG_NODE_SCALAR && !cfg_yaml_is_null(node);
}

/* Digits only: no sign, space, base prefix or separator. */
static bool parse_uint(const struct cfg_node *node, unsigned min,
                       unsigned max, unsigned *ret)
{
        unsigned long long v;
        char *end;

        if (!is_value(node) || node->text[0] < '0' || node->text[0] > '9')
                return false;
        errno = 0;
        v = strtoull(node->text, &end, 10);
        if (*end != '\0' || errno == ERANGE || v < min || v > max)
                return false;
        *ret = (unsigned)v;
        return true;
}

static int get_uint(struct cfg_error *err, const struct cfg_node *node,
                    const char *key, unsigned min, unsigned max,
                    unsigned *ret)
{
        char expect[64];

        if (parse_uint(node, min, max, ret))
                return 0;
        snprintf(expect, sizeof(expect), "an integer between %u and %u", min,
                 max);
        return fail_expect(err, node, key, expect);
}

/* [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)? */
static bool is_decimal(const char *s)
{
        size_t digits = 0;

        if (*s == '+' || *s == '-')
                s++;
        for (; *s >= '0' && *s <= '9'; s++)
                digits++;
        if (*s == '.')
                for (s++; *s >= '0' && *s <= '9'; s++)
                        digits++;
        if (digits == 0)
                return false;
        if (*s == 'e' || *s == 'E') {
                s++;
                if (*s == '+' || *s == '-')
                        s++;
                if (*s < '0' || *s > '9')
                        return false;
                while (*s >= '0' && *s <= '9')
                        s++;
        }
        return *s == '\0';
}

/*
 * A finite decimal >= 0; strtod() alone would take "inf", "nan" and hex.
 * Overflow gives HUGE_VAL, refused as not finite; an underflow to 0 or a
 * subnormal is kept, as it is the nearest double to what was written.
 */
static int get_nonneg(struct cfg_error *err, const struct cfg_node *node,
                      const char *key, double *ret)
{
        const char *expect = "a number >= 0";
        double v;

        if (!is_value(node) || !is_decimal(node->text))
                return fail_expect(err, node, key, expect);
        v = strtod(node->text, NULL);
        if (!isfinite(v) || v < 0)
                return fail_expect(err, node, key, expect);
        *ret = v == 0 ? 0 : v; /* no -0 */
        return 0;
}

static int get_string(struct cfg_error *err, const struct cfg_node *node,
                      const char *key, char **ret)
{
        if (!is_value(node) || node->len == 0)
                return fail_expect(err, node, key, "a non-empty string");
        return dup_string(err, node, node->text, ret);
}

/* Index of the node's text in names[], or an error that lists them. */
static int get_choice(struct cfg_error *err, const struct cfg_node *node,
                      const char *key, const char *const *names, size_t n,
                      size_t *ret)
{
        char expect[160] = "one of ";
        size_t i = 0;

        for (i = 0; is_value(node) && i < n; i++) {
                if (strcmp(node->text, names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        }
        for (i = 0; i < n; i++) {
                strncat(expect, names[i], sizeof(expect) - strlen(expect) - 1);
                if (i + 1 < n)
                        strncat(expect, ", ",
                                sizeof(expect) - strlen(expect) - 1);
        }
        return fail_expect(err, node, key, expect);
}

/* Kafka's rule: 1..249 of [A-Za-z0-9._-], and not "." or "..". */
static bool is_topic_name(const char *s)
{
        size_t len = strlen(s);

        if (len == 0 || len > CFG_TOPIC_MAX)
                return false;
        if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789._-") == len;
}

static int get_topic(struct cfg_error *err, const struct cfg_node *node,
                     const char *key, char **ret)
{
        if (!is_value(node) || !is_topic_name(node->text))
                return fail_expect(err, node, key,
                                   "a kafka topic name (1 to 249 of "
                                   "[A-Za-z0-9._-], not '.' or '..')");
        return dup_string(err, node, node->text, ret);
}

/* A section is a map; a key given no value (`filter:`) is an empty one. */
static bool is_map_or_null(const struct cfg_node *node)
{
        return node->kind == CFG_NODE_MAP || cfg_yaml_is_null(node);
}

static size_t map_len(const struct cfg_node *map)
{
        return map->kind == CFG_NODE_MAP ? map->n_kids / 2 : 0;
}

/* " in 'kafka'", or "" for the top level (where == NULL). */
static const char *in_where(const char *where, char *buf, size_t size)
{
        if (!where)
                return "";
        snprintf(buf, size, " in '%s'", where);
        return buf;
}

static int check_key_scalar(struct cfg_error *err, const struct cfg_node *key,
                            const char *where)
{
        char in[64];

        if (key->kind == CFG_NODE_SCALAR)
                return 0;
        return cfg_error_set(err, CFG_E_TYPE, key->line, key->col,
                             "keys%s must be scalars, got %s",
                             in_where(where, in, sizeof(in)),
                             key->kind == CFG_NODE_MAP ? "a map" :
                                                         "a sequence");
}

/*
 * Sorts map's pairs into fields[i] by names[i], in document order, so the
 * first unknown or repeated key is the one reported.  map is a map or a
 * null scalar (no pairs); where names it in messages, NULL at top level.
 */
static int map_fields(struct cfg_error *err, const struct cfg_node *map,
                      const char *where, const char *const *names,
                      struct field *fields, size_t n)
{
        char in[64], shown[CFG_QUOTE_SIZE];
        const struct cfg_node *key;
        size_t p, i;
        int rc;

        memset(fields, 0, n * sizeof(*fields));
        for (p = 0; p < map_len(map); p++) {
                key = map->kids[2 * p];
                rc = check_key_scalar(err, key, where);
                if (rc < 0)
                        return rc;
                for (i = 0; i < n && strcmp(key->text, names[i]) != 0; i++)
                        ;
                if (i == n)
                        return cfg_error_set(err, CFG_E_UNKNOWN, key->line,
                                             key->col, "unknown key %s%s",
                                             quote_node(key, shown,
                                                        sizeof(shown)),
                                             in_where(where, in, sizeof(in)));
                if (fields[i].key)
                        return cfg_error_set(err, CFG_E_DUPLICATE, key->line,
                                             key->col, "duplicate key '%s'%s",
                                             names[i],
                                             in_where(where, in, sizeof(in)));
                fields[i].key = key;
                fields[i].value = map->kids[2 * p + 1];
        }
        return 0;
}

static int fail_missing(struct cfg_error *err, const struct cfg_node *map,
                        const char *key, const char *where)
{
        char in[64];

        return cfg_error_set(err, CFG_E_MISSING, map->line, map->col,
                             "missing required key '%s'%s", key,
                             in_where(where, in, sizeof(in)));
}

/* For a section: map_fields() after checking that it is a map. */
static int section_fields(struct cfg_error *err, const struct cfg_node *map,
                          const char *where, const char *const *names,
                          struct field *fields, size_t n)
{
        if (!is_map_or_null(map))
                return fail_not_map(err, map, where);
        return map_fields(err, map, where, names, fields, n);
}

static int compare_nodes(const void *a, const void *b)
{
        const struct cfg_node *x = *(const struct cfg_node *const *)a;
        const struct cfg_node *y = *(const struct cfg_node *const *)b;
        int c = strcmp(x->text, y->text);

        if (c != 0)
                return c;
        if (x->line != y->line)
                return x->line < y->line ? -1 : 1;
        return x->col < y->col ? -1 : (x->col > y->col);
}

static bool before(const struct cfg_node *x, const struct cfg_node *y)
{
        return x->line < y->line || (x->line == y->line && x->col < y->col);
}

/*
 * Among n scalars nodes[0], nodes[stride], ..., the first in document
 * order whose text came earlier; sorting keeps long property maps and
 * class lists O(n log n).  Returns 0 and sets *ret_dup (NULL if all
 * differ), or CFG_E_NOMEM.
 */
static int find_repeat(struct cfg_error *err, const struct cfg_node *parent,
                       struct cfg_node *const *nodes, size_t n, size_t stride,
                       const struct cfg_node **ret_dup)
{
        const struct cfg_node **sorted, *dup = NULL;
        size_t i = 0;

        *ret_dup = NULL;
        if (n < 2)
                return 0;
        sorted = malloc(n * sizeof(*sorted));
        if (!sorted)
                return fail_nomem(err, parent);
        for (i = 0; i < n; i++)
                sorted[i] = nodes[i * stride];
        qsort(sorted, n, sizeof(*sorted), compare_nodes);
        for (i = 1; i < n; i++) {
                if (strcmp(sorted[i - 1]->text, sorted[i]->text) != 0)
                        continue;
                if (!dup || before(sorted[i], dup))
                        dup = sorted[i];
        }
        free(sorted);
        *ret_dup = dup;
        return 0;
}

/* Optional keys: an absent field (value NULL) keeps the default. */
static int opt_uint(struct cfg_error *err, const struct field *f,
                    unsigned min, unsigned max, unsigned *ret)
{
        if (!f->value)
                return 0;
        return get_uint(err, f->value, f->key->text, min, max, ret);
}

static int opt_nonneg(struct cfg_error *err, const struct field *f,
                      double *ret)
{
        if (!f->value)
                return 0;
        return get_nonneg(err, f->value, f->key->text, ret);
}

/* ---- kafka.properties, kafka.consumer_properties, ... ---- */

/* Properties that kafka.bootstrap and kafka.group_id already set. */
static const struct {
        const char *name;
        const char *owner;
} owned_props[] = {
        {"bootstrap.servers", "kafka.bootstrap"},
        {"metadata.broker.list", "kafka.bootstrap"},
        {"group.id", "kafka.group_id"},
};

static int check_prop(struct cfg_error *err, const struct cfg_node *key,
                      const struct cfg_node *value, const char *where)
{
        char name[CFG_QUOTE_SIZE], shown[CFG_QUOTE_SIZE];
        size_t i = 0;

        if (!is_value(key) || key->len == 0)
                return cfg_error_set(err, CFG_E_VALUE, key->line, key->col,
                                     "property names in '%s' must not be empty",
                                     where);
        for (i = 0; i < ARRAY_SIZE(owned_props); i++)
                if (strcmp(key->text, owned_props[i].name) == 0)
                        return cfg_error_set(err, CFG_E_VALUE, key->line,
                                             key->col,
                                             "'%s' in '%s' is set by '%s'",
                                             key->text, where,
                                             owned_props[i].owner);
        if (!is_value(value))
                return cfg_error_set(err, scalar_code(value), value->line,
                                     value->col,
                                     "%s in '%s' must be a scalar value, got %s",
                                     quote_node(key, name, sizeof(name)),
                                     where,
                                     describe(value, shown, sizeof(shown)));
        return 0;
}

static int copy_prop(struct cfg_error *err, const struct cfg_node *key,
                     const struct cfg_node *value, struct cfg_prop *prop)
{
        int rc;

        rc = dup_string(err, key, key->text, &prop->name);
        if (rc < 0)
                return rc;
        rc = dup_string(err, value, value->text, &prop->value);
        if (rc < 0)
                return rc; /* cfg_free() releases the name */
        prop->line = key->line;
        prop->col = key->col;
        return 0;
}

/* where: "kafka.properties" etc.; values are kept as written. */
static int load_props(struct cfg_error *err, const struct cfg_node *map,
                      const char *where, struct cfg_props *props)
{
        char in[64], shown[CFG_QUOTE_SIZE];
        const struct cfg_node *dup;
        size_t i, n = map_len(map);
        int rc;

        if (!is_map_or_null(map))
                return fail_not_map(err, map, where);
        for (i = 0; i < n; i++) {
                rc = check_key_scalar(err, map->kids[2 * i], where);
                if (rc < 0)
                        return rc;
        }
        rc = find_repeat(err, map, map->kids, n, 2, &dup);
        if (rc < 0)
                return rc;
        if (dup)
                return cfg_error_set(err, CFG_E_DUPLICATE, dup->line,
                                     dup->col, "duplicate key %s%s",
                                     quote_node(dup, shown, sizeof(shown)),
                                     in_where(where, in, sizeof(in)));
        if (n == 0)
                return 0;

        props->v = calloc(n, sizeof(*props->v));
        if (!props->v)
                return fail_nomem(err, map);
        props->n = n;
        for (i = 0; i < n; i++) {
                rc = check_prop(err, map->kids[2 * i], map->kids[2 * i + 1],
                                where);
                if (rc == 0)
                        rc = copy_prop(err, map->kids[2 * i],
                                       map->kids[2 * i + 1], &props->v[i]);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/* ---- kafka.topics ---- */

enum { T_INPUT, T_CLEAN, T_SUSPECT, T_DEAD_LETTER, T_STATE, T_N };

static const char *const topic_keys[T_N] = {"input", "clean", "suspect",
                                            "dead_letter", "state"};

/* Default name of each output: the input topic and this suffix. */
static const char *const topic_suffixes[T_N] = {"", ".clean", ".suspect",
                                                ".dead-letter", ".state"};

static int default_topic(struct cfg_error *err, const struct cfg_node *input,
                         size_t t, char **ret)
{
        size_t len = input->len + strlen(topic_suffixes[t]);
        char *name;

        if (len > CFG_TOPIC_MAX)
                return cfg_error_set(err, CFG_E_VALUE, input->line,
                                     input->col,
                                     "'input' is too long to derive the '%s' "
                                     "topic (max %u characters)",
                                     topic_keys[t], CFG_TOPIC_MAX);
        name = malloc(len + 1);
        if (!name)
                return fail_nomem(err, input);
        snprintf(name, len + 1, "%s%s", input->text, topic_suffixes[t]);
        *ret = name;
        return 0;
}

/* Of two topic fields, the value written later; at least one was. */
static const struct cfg_node *later_value(const struct field *a,
                                          const struct field *b)
{
        if (!a->value)
                return b->value;
        if (!b->value)
                return a->value;
        return before(a->value, b->value) ? b->value : a->value;
}

/* Two roles on one topic would loop items or mix clean and suspect. */
static int check_topics_distinct(struct cfg_error *err,
                                 const struct field *f,
                                 char **const names[T_N])
{
        const struct cfg_node *at;
        size_t i, j;

        for (j = 1; j < T_N; j++) {
                for (i = 0; i < j; i++) {
                        if (strcmp(*names[i], *names[j]) != 0)
                                continue;
                        at = later_value(&f[i], &f[j]);
                        return cfg_error_set(err, CFG_E_VALUE, at->line,
                                at->col,
                                "'%s' and '%s' must name different topics, both are '%s'",
                                topic_keys[i], topic_keys[j], *names[j]);
                }
        }
        return 0;
}

static int load_topics(struct cfg_error *err, const struct cfg_node *map,
                       struct cfg *cfg)
{
        char **names[T_N] = {
                &cfg->kafka.topic_input,
                &cfg->kafka.topic_clean,
                &cfg->kafka.topic_suspect,
                &cfg->kafka.topic_dead_letter,
                &cfg->kafka.topic_state,
        };
        struct field f[T_N];
        size_t t;
        int rc;

        rc = section_fields(err, map, "kafka.topics", topic_keys, f, T_N);
        if (rc < 0)
                return rc;
        if (!f[T_INPUT].value)
                return fail_missing(err, map, "input", "kafka.topics");
        for (t = 0; t < T_N; t++) {
                if (f[t].value)
                        rc = get_topic(err, f[t].value, topic_keys[t],
                                       names[t]);
                else
                        rc = default_topic(err, f[T_INPUT].value, t,
                                           names[t]);
                if (rc < 0)
                        return rc;
        }
        return check_topics_distinct(err, f, names);
}

/* ---- kafka ---- */

enum {
        K_BOOTSTRAP,
        K_PARTITIONS,
        K_GROUP_ID,
        K_TOPICS,
        K_PROPERTIES,
        K_CONSUMER,
        K_PRODUCER,
        K_N
};

static const char *const kafka_keys[K_N] = {
        "bootstrap",  "embedded_partitions", "group_id",
        "topics",     "properties",          "consumer_properties",
        "producer_properties",
};

static int load_kafka_props(struct cfg_error *err, const struct field *f,
                            struct cfg *cfg)
{
        int rc = 0;

        if (f[K_PROPERTIES].value)
                rc = load_props(err, f[K_PROPERTIES].value, "kafka.properties",
                                &cfg->kafka.common);
        if (rc == 0 && f[K_CONSUMER].value)
                rc = load_props(err, f[K_CONSUMER].value,
                                "kafka.consumer_properties",
                                &cfg->kafka.consumer);
        if (rc == 0 && f[K_PRODUCER].value)
                rc = load_props(err, f[K_PRODUCER].value,
                                "kafka.producer_properties",
                                &cfg->kafka.producer);
        return rc;
}

static int load_kafka(struct cfg_error *err, const struct cfg_node *map,
                      struct cfg *cfg)
{
        struct field f[K_N];
        int rc;

        rc = section_fields(err, map, "kafka", kafka_keys, f, K_N);
        if (rc < 0)
                return rc;
        if (!f[K_BOOTSTRAP].value)
                return fail_missing(err, map, "bootstrap", "kafka");
        if (!f[K_TOPICS].value)
                return fail_missing(err, map, "topics", "kafka");

        rc = get_string(err, f[K_BOOTSTRAP].value, "bootstrap",
                        &cfg->kafka.bootstrap);
        if (rc < 0)
                return rc;
        cfg->kafka.embedded = strcmp(cfg->kafka.bootstrap, "embedded") == 0;
        rc = opt_uint(err, &f[K_PARTITIONS], 1, 1024,
                      &cfg->kafka.embedded_partitions);
        if (rc < 0)
                return rc;
        if (f[K_GROUP_ID].value)
                rc = get_string(err, f[K_GROUP_ID].value, "group_id",
                                &cfg->kafka.group_id);
        else
                rc = dup_string(err, map, "confidentd", &cfg->kafka.group_id);
        if (rc < 0)
                return rc;
        rc = load_topics(err, f[K_TOPICS].value, cfg);
        if (rc < 0)
                return rc;
        return load_kafka_props(err, f, cfg);
}

/* ---- classes ---- */

#define CLASSES_EXPECT "a list of names or an integer between 2 and 65536"

/* classes: K, named "0" .. "K-1". */
static int classes_from_count(struct cfg_error *err,
                              const struct cfg_node *node, struct cfg *cfg)
{
        char name[16];
        unsigned k, i;
        int rc;

        if (!parse_uint(node, 2, CFG_CLASSES_MAX, &k))
                return fail_expect(err, node, "classes", CLASSES_EXPECT);
        cfg->classes.names = calloc(k, sizeof(*cfg->classes.names));
        if (!cfg->classes.names)
                return fail_nomem(err, node);
        cfg->classes.count = k;
        for (i = 0; i < k; i++) {
                snprintf(name, sizeof(name), "%u", i);
                rc = dup_string(err, node, name, &cfg->classes.names[i]);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/*
 * A class name that reads as an integer other than its own index: the
 * integer label of that value means another class (or none), so a label
 * written as "1" would change meaning with the way it is sent.  Sets
 * *ret_label to the label's text ("+1" reads as 1).
 */
static bool confusing_number(const char *name, size_t index,
                             char *ret_label, size_t size)
{
        const char *digits = name + (*name == '+' || *name == '-');
        long long v;

        if (*digits == '\0' || strspn(digits, "0123456789") != strlen(digits))
                return false;
        errno = 0;
        v = strtoll(name, NULL, 10);
        if (errno == 0 && v >= 0 && (unsigned long long)v == index)
                return false;
        if (errno == 0)
                snprintf(ret_label, size, "%lld", v);
        else
                snprintf(ret_label, size, "%.*s", (int)CFG_SHOW_MAX, name);
        return true;
}

static int check_class_names(struct cfg_error *err,
                             const struct cfg_node *seq)
{
        char label[CFG_SHOW_MAX + 1];
        char shown[CFG_QUOTE_SIZE];
        const struct cfg_node *item, *dup;
        size_t i = 0;
        int rc;

        if (seq->n_kids < 2 || seq->n_kids > CFG_CLASSES_MAX)
                return cfg_error_set(err, CFG_E_VALUE, seq->line, seq->col,
                                     "'classes' must list between 2 and %u names, got %zu",
                                     CFG_CLASSES_MAX, seq->n_kids);
        for (i = 0; i < seq->n_kids; i++) {
                item = seq->kids[i];
                if (!is_value(item) || item->len == 0)
                        return cfg_error_set(err, scalar_code(item),
                                             item->line, item->col,
                                             "class names must be non-empty strings, got %s",
                                             describe(item, shown,
                                                      sizeof(shown)));
                if (confusing_number(item->text, i, label, sizeof(label)))
                        return cfg_error_set(err, CFG_E_VALUE, item->line,
                                             item->col,
                                             "class name %s at index %zu would be "
                                             "confused with the integer label %s; "
                                             "use names that are not numbers, or "
                                             "0..K-1 in order",
                                             quote_node(item, shown,
                                                        sizeof(shown)),
                                             i, label);
        }
        rc = find_repeat(err, seq, seq->kids, seq->n_kids, 1, &dup);
        if (rc < 0)
                return rc;
        if (dup)
                return cfg_error_set(err, CFG_E_DUPLICATE, dup->line,
                                     dup->col, "duplicate class name %s",
                                     quote_node(dup, shown, sizeof(shown)));
        return 0;
}

static int classes_from_list(struct cfg_error *err,
                             const struct cfg_node *seq, struct cfg *cfg)
{
        size_t i = 0;
        int rc;

        rc = check_class_names(err, seq);
        if (rc < 0)
                return rc;
        cfg->classes.names = calloc(seq->n_kids, sizeof(*cfg->classes.names));
        if (!cfg->classes.names)
                return fail_nomem(err, seq);
        cfg->classes.count = (unsigned)seq->n_kids;
        for (i = 0; i < seq->n_kids; i++) {
                rc = dup_string(err, seq->kids[i], seq->kids[i]->text,
                                &cfg->classes.names[i]);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int load_classes(struct cfg_error *err, const struct cfg_node *node,
                        struct cfg *cfg)
{
        if (node->kind == CFG_NODE_SEQ)
                return classes_from_list(err, node, cfg);
        if (node->kind == CFG_NODE_SCALAR)
                return classes_from_count(err, node, cfg);
        return fail_expect(err, node, "classes", CLASSES_EXPECT);
}

/* ---- filter, commit, log ---- */

enum {
        F_METHOD,
        F_HALF_LIFE,
        F_BINS,
        F_WARMUP_TOTAL,
        F_WARMUP_CLASS,
        F_MIN_EXAMPLES,
        F_SUM_TOLERANCE,
        F_WARMUP_POLICY,
        F_MAX_HOLD_MS,
        F_N
};

static const char *const filter_keys[F_N] = {
        "method",        "half_life",     "bins",
        "warmup_total",  "warmup_class",  "min_examples",
        "sum_tolerance", "warmup_policy", "max_hold_ms",
};

static const char *const warmup_policies[] = {"pass", "hold"};

static int load_warmup_policy(struct cfg_error *err,
                              const struct cfg_node *node, struct cfg *cfg)
{
        size_t i = 0;
        int rc = get_choice(err, node, "warmup_policy", warmup_policies,
                            ARRAY_SIZE(warmup_policies), &i);

        if (rc == 0)
                cfg->filter.warmup_policy = (enum cfg_warmup_policy)i;
        return rc;
}

static int load_method(struct cfg_error *err, const struct cfg_node *node,
                       struct cfg *cfg)
{
        size_t i = 0;
        int rc;

        rc = get_choice(err, node, "method", filter_methods,
                        ARRAY_SIZE(filter_methods), &i);
        if (rc < 0)
                return rc;
        cfg->filter.method_line = node->line;
        cfg->filter.method_col = node->col;
        return dup_string(err, node, filter_methods[i], &cfg->filter.method);
}

static int load_filter(struct cfg_error *err, const struct cfg_node *map,
                       struct cfg *cfg)
{
        struct field f[F_N];
        int rc;

        rc = section_fields(err, map, "filter", filter_keys, f, F_N);
        if (rc == 0 && f[F_METHOD].value)
                rc = load_method(err, f[F_METHOD].value, cfg);
        if (rc == 0)
                rc = opt_nonneg(err, &f[F_HALF_LIFE], &cfg->filter.half_life);
        if (rc == 0)
                rc = opt_uint(err, &f[F_BINS], 16, 65536, &cfg->filter.bins);
        if (rc == 0)
                rc = opt_nonneg(err, &f[F_WARMUP_TOTAL],
                                &cfg->filter.warmup_total);
        if (rc == 0)
                rc = opt_nonneg(err, &f[F_WARMUP_CLASS],
                                &cfg->filter.warmup_class);
        if (rc == 0)
                rc = opt_nonneg(err, &f[F_MIN_EXAMPLES],
                                &cfg->filter.min_examples);
        if (rc == 0)
                rc = opt_nonneg(err, &f[F_SUM_TOLERANCE],
                                &cfg->filter.sum_tolerance);
        if (rc == 0 && f[F_WARMUP_POLICY].value)
                rc = load_warmup_policy(err, f[F_WARMUP_POLICY].value, cfg);
        if (rc == 0)
                rc = opt_uint(err, &f[F_MAX_HOLD_MS], 1, 3600000,
                              &cfg->filter.max_hold_ms);
        return rc;
}

enum { C_MAX_ITEMS, C_INTERVAL_MS, C_N };

static const char *const commit_keys[C_N] = {"max_items", "interval_ms"};

static int load_commit(struct cfg_error *err, const struct cfg_node *map,
                       struct cfg *cfg)
{
        struct field f[C_N];
        int rc;

        rc = section_fields(err, map, "commit", commit_keys, f, C_N);
        if (rc == 0)
                rc = opt_uint(err, &f[C_MAX_ITEMS], 1, 10000000,
                              &cfg->commit.max_items);
        if (rc == 0)
                rc = opt_uint(err, &f[C_INTERVAL_MS], 1, 60000,
                              &cfg->commit.interval_ms);
        return rc;
}

enum { L_LEVEL, L_PROGRESS, L_N };

static const char *const log_keys[L_N] = {"level", "progress_interval_s"};

static int load_log(struct cfg_error *err, const struct cfg_node *map,
                    struct cfg *cfg)
{
        struct field f[L_N];
        size_t level = 0;
        int rc;

        rc = section_fields(err, map, "log", log_keys, f, L_N);
        if (rc == 0 && f[L_LEVEL].value) {
                rc = get_choice(err, f[L_LEVEL].value, "level", log_levels,
                                ARRAY_SIZE(log_levels), &level);
                if (rc == 0)
                        cfg->log.level = (enum cfg_log_level)level;
        }
        if (rc == 0)
                rc = opt_uint(err, &f[L_PROGRESS], 0, 86400,
                              &cfg->log.progress_interval_s);
        return rc;
}

static const char *const delivery_modes[] = {"exactly_once",
                                             "at_least_once"};

enum { D_MODE, D_TXN_ID, D_N };

static const char *const delivery_keys[D_N] = {"mode", "transactional_id"};

static int load_delivery(struct cfg_error *err, const struct cfg_node *map,
                         struct cfg *cfg)
{
        struct field f[D_N];
        size_t mode = 0;
        int rc;

        rc = section_fields(err, map, "delivery", delivery_keys, f, D_N);
        if (rc == 0 && f[D_MODE].value) {
                rc = get_choice(err, f[D_MODE].value, "mode", delivery_modes,
                                ARRAY_SIZE(delivery_modes), &mode);
                if (rc == 0)
                        cfg->delivery.mode = (enum cfg_delivery)mode;
        }
        if (rc == 0 && f[D_TXN_ID].value)
                rc = get_string(err, f[D_TXN_ID].value, "transactional_id",
                                &cfg->delivery.transactional_id);
        return rc;
}

/* "confidentd-<group_id>" unless the config names one. */
static int default_transactional_id(struct cfg_error *err,
                                    const struct cfg_node *root,
                                    struct cfg *cfg)
{
        size_t len = strlen(cfg->kafka.group_id) + sizeof("confidentd-");

        if (cfg->delivery.transactional_id)
                return 0;
        cfg->delivery.transactional_id = malloc(len);
        if (!cfg->delivery.transactional_id)
                return fail_nomem(err, root);
        snprintf(cfg->delivery.transactional_id, len, "confidentd-%s",
                 cfg->kafka.group_id);
        return 0;
}

enum { S_INITIAL, S_SHARE, S_N };

static const char *const state_keys[S_N] = {"initial", "share"};

static const char *const booleans[] = {"false", "true"};

static int load_state(struct cfg_error *err, const struct cfg_node *map,
                      struct cfg *cfg)
{
        struct field f[S_N];
        size_t share = 0;
        int rc;

        rc = section_fields(err, map, "state", state_keys, f, S_N);
        if (rc == 0 && f[S_INITIAL].value)
                rc = get_string(err, f[S_INITIAL].value, "initial",
                                &cfg->state.initial);
        if (rc == 0 && f[S_SHARE].value) {
                rc = get_choice(err, f[S_SHARE].value, "share", booleans,
                                ARRAY_SIZE(booleans), &share);
                if (rc == 0)
                        cfg->state.share = share == 1;
        }
        return rc;
}

static const char *const suspect_by_names[] = {"none", "class",
                                               "annotator"};

enum { RT_SUSPECT_BY, RT_ANNOTATORS, RT_N };

static const char *const routing_keys[RT_N] = {"suspect_by", "annotators"};

/* <suspect topic>.<name> must be a valid topic name. */
static bool is_topic_suffix(const struct cfg *cfg, const char *name)
{
        size_t len = strlen(cfg->kafka.topic_suspect) + 1 + strlen(name);

        return len <= CFG_TOPIC_MAX && is_topic_name(name);
}

static int check_class_topics(struct cfg_error *err,
                              const struct cfg_node *at, const struct cfg *cfg)
{
        char shown[CFG_QUOTE_SIZE];

        for (unsigned i = 0; i < cfg->classes.count; i++) {
                const char *name = cfg->classes.names[i];

                if (is_topic_suffix(cfg, name))
                        continue;
                return cfg_error_set(err, CFG_E_VALUE, at->line, at->col,
                                     "'suspect_by: class' needs class names "
                                     "that fit in topic names ([A-Za-z0-9._-]); "
                                     "%s does not",
                                     quote(name, strlen(name), shown,
                                           sizeof(shown)));
        }
        return 0;
}

static int load_annotators(struct cfg_error *err, const struct cfg_node *seq,
                           struct cfg *cfg)
{
        char shown[CFG_QUOTE_SIZE];

        if (seq->kind != CFG_NODE_SEQ)
                return fail_expect(err, seq, "annotators", "a list of names");
        cfg->routing.annotators = calloc(seq->n_kids ? seq->n_kids : 1,
                                         sizeof(*cfg->routing.annotators));
        if (!cfg->routing.annotators)
                return fail_nomem(err, seq);
        for (size_t i = 0; i < seq->n_kids; i++) {
                const struct cfg_node *node = seq->kids[i];
                int rc = get_string(err, node, "annotators",
                                    &cfg->routing.annotators[i]);

                if (rc < 0)
                        return rc;
                cfg->routing.n_annotators++;
                if (!is_topic_suffix(cfg, node->text))
                        return cfg_error_set(err, CFG_E_VALUE, node->line,
                                             node->col,
                                             "annotator %s does not fit in a "
                                             "topic name ([A-Za-z0-9._-])",
                                             quote_node(node, shown,
                                                        sizeof(shown)));
        }
        return 0;
}

static int load_routing(struct cfg_error *err, const struct cfg_node *map,
                        struct cfg *cfg)
{
        struct field f[RT_N];
        size_t by = 0;
        int rc;

        rc = section_fields(err, map, "routing", routing_keys, f, RT_N);
        if (rc == 0 && f[RT_SUSPECT_BY].value) {
                rc = get_choice(err, f[RT_SUSPECT_BY].value, "suspect_by",
                                suspect_by_names, ARRAY_SIZE(suspect_by_names),
                                &by);
                if (rc == 0)
                        cfg->routing.suspect_by = (enum cfg_suspect_by)by;
        }
        if (rc == 0 && f[RT_ANNOTATORS].value)
                rc = load_annotators(err, f[RT_ANNOTATORS].value, cfg);
        if (rc < 0)
                return rc;
        if (cfg->routing.suspect_by == CFG_SUSPECT_BY_CLASS)
                return check_class_topics(err, f[RT_SUSPECT_BY].value, cfg);
        if (cfg->routing.suspect_by == CFG_SUSPECT_BY_ANNOTATOR &&
            !cfg->routing.n_annotators)
                return fail_missing(err, map, "annotators", "routing");
        return 0;
}

enum { M_LISTEN, M_N };

static const char *const metrics_keys[M_N] = {"listen"};

/* "host:port" with a port in 0..65535 (0: any free port). */
static bool is_listen_address(const char *s)
{
        const char *colon = strrchr(s, ':');
        unsigned long port;
        char *end;

        if (!colon || colon == s || !colon[1])
                return false;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        return !errno && !*end && port <= 65535 &&
               isdigit((unsigned char)colon[1]);
}

static int load_metrics(struct cfg_error *err, const struct cfg_node *map,
                        struct cfg *cfg)
{
        const struct cfg_node *node;
        char shown[CFG_QUOTE_SIZE];
        struct field f[M_N];
        int rc;

        rc = section_fields(err, map, "metrics", metrics_keys, f, M_N);
        if (rc < 0 || !f[M_LISTEN].value)
                return rc;
        node = f[M_LISTEN].value;
        rc = get_string(err, node, "listen", &cfg->metrics.listen);
        if (rc == 0 && !is_listen_address(cfg->metrics.listen))
                return cfg_error_set(err, CFG_E_VALUE, node->line, node->col,
                                     "'listen' must be host:port, got %s",
                                     quote_node(node, shown, sizeof(shown)));
        return rc;
}

/* ---- top level ---- */

enum {
        R_KAFKA,
        R_CLASSES,
        R_FILTER,
        R_COMMIT,
        R_DELIVERY,
        R_STATE,
        R_ROUTING,
        R_METRICS,
        R_LOG,
        R_N
};

static const char *const root_keys[R_N] = {
        "kafka", "classes", "filter", "commit", "delivery",
        "state", "routing", "metrics", "log",
};

static int load_root(struct cfg_error *err, const struct cfg_node *root,
                     struct cfg *cfg)
{
        char shown[CFG_QUOTE_SIZE];
        struct field f[R_N];
        int rc;

        if (cfg_yaml_is_null(root))
                return cfg_error_set(err, CFG_E_MISSING, root->line,
                                     root->col, CFG_MSG_EMPTY);
        if (root->kind != CFG_NODE_MAP)
                return cfg_error_set(err, CFG_E_TYPE, root->line, root->col,
                                     "the top level must be a map, got %s",
                                     describe(root, shown, sizeof(shown)));
        rc = map_fields(err, root, NULL, root_keys, f, R_N);
        if (rc < 0)
                return rc;
        if (!f[R_KAFKA].value)
                return fail_missing(err, root, "kafka", NULL);
        if (!f[R_CLASSES].value)
                return fail_missing(err, root, "classes", NULL);

        rc = load_kafka(err, f[R_KAFKA].value, cfg);
        if (rc == 0)
                rc = load_classes(err, f[R_CLASSES].value, cfg);
        if (rc == 0 && f[R_FILTER].value)
                rc = load_filter(err, f[R_FILTER].value, cfg);
        if (rc == 0 && f[R_COMMIT].value)
                rc = load_commit(err, f[R_COMMIT].value, cfg);
        if (rc == 0 && f[R_DELIVERY].value)
                rc = load_delivery(err, f[R_DELIVERY].value, cfg);
        if (rc == 0 && f[R_STATE].value)
                rc = load_state(err, f[R_STATE].value, cfg);
        if (rc == 0 && f[R_ROUTING].value)
                rc = load_routing(err, f[R_ROUTING].value, cfg);
        if (rc == 0 && f[R_METRICS].value)
                rc = load_metrics(err, f[R_METRICS].value, cfg);
        if (rc == 0 && f[R_LOG].value)
                rc = load_log(err, f[R_LOG].value, cfg);
        if (rc == 0)
                rc = default_transactional_id(err, root, cfg);
        if (rc == 0 && !cfg->filter.method)
                rc = dup_string(err, root, filter_methods[0],
                                &cfg->filter.method);
        return rc;
}

/* ---- public ---- */

static void set_defaults(struct cfg *cfg)
{
        cfg->kafka.embedded_partitions = 8;
        cfg->filter.half_life = 0;
        cfg->filter.bins = 256;
        cfg->filter.warmup_total = -1; /* the core picks max(1000, 50 K) */
        cfg->filter.warmup_class = 30;
        cfg->filter.min_examples = 1;
        cfg->filter.sum_tolerance = 0.001;
        cfg->filter.warmup_policy = CFG_WARMUP_HOLD;
        cfg->filter.max_hold_ms = 10000;
        cfg->commit.max_items = 10000;
        cfg->commit.interval_ms = 100;
        cfg->log.level = CFG_LOG_INFO;
        cfg->log.progress_interval_s = 10;
}

static void error_init(struct cfg_error *err, const char *name)
{
        memset(err, 0, sizeof(*err));
        snprintf(err->file, sizeof(err->file), "%s", name);
}

int cfg_load_string(const char *text, size_t len, const char *name,
                    struct cfg **ret_cfg, struct cfg_error *err)
{
        struct cfg_node *root = NULL;
        struct cfg_error local;
        struct cfg *cfg;
        int rc;

        if (!err)
                err = &local;
        if (!name)
                name = "<string>";
        error_init(err, name);
        cfg = calloc(1, sizeof(*cfg));
        if (!cfg)
                return cfg_error_set(err, CFG_E_NOMEM, 0, 0, "out of memory");
        set_defaults(cfg);
        cfg->path = strdup(name);
        if (!cfg->path) {
                rc = cfg_error_set(err, CFG_E_NOMEM, 0, 0, "out of memory");
                goto out_free_cfg;
        }

        rc = cfg_yaml_parse(text ? text : "", text ? len : 0, &root, err);
        if (rc < 0)
                goto out_free_cfg;
        rc = load_root(err, root, cfg);
        cfg_yaml_free(root);
        if (rc < 0)
                goto out_free_cfg;
        *ret_cfg = cfg;
        return 0;

out_free_cfg:
        cfg_free(cfg);
        return rc;
}

static int fail_errno(struct cfg_error *err, const char *what, int errnum)
{
        char reason[128];

        if (strerror_r(errnum, reason, sizeof(reason)) != 0)
                snprintf(reason, sizeof(reason), "error %d", errnum);
        return cfg_error_set(err, CFG_E_IO, 0, 0, "%s: %s", what, reason);
}

/*
 * Reads all of fp into a malloc'd buffer.  The buffer stops one byte past
 * CFG_FILE_MAX_BYTES: filling that byte tells a larger file from one at
 * the limit without reading the rest.
 */
static int read_all(FILE *fp, char **ret_text, size_t *ret_len,
                    struct cfg_error *err)
{
        size_t len = 0, cap = 0;
        char *text = NULL, *grown;
        int rc;

        for (;;) {
                if (len == cap && cap > CFG_FILE_MAX_BYTES) {
                        rc = cfg_error_set(err, CFG_E_IO, 0, 0,
                                           "file is larger than %u bytes",
                                           CFG_FILE_MAX_BYTES);
                        goto out_free_text;
                }
                if (len == cap) {
                        cap = cap ? 2 * cap : 4096;
                        if (cap > CFG_FILE_MAX_BYTES)
                                cap = CFG_FILE_MAX_BYTES + 1;
                        grown = realloc(text, cap);
                        if (!grown) {
                                rc = cfg_error_set(err, CFG_E_NOMEM, 0, 0,
                                                   "out of memory");
                                goto out_free_text;
                        }
                        text = grown;
                }
                len += fread(text + len, 1, cap - len, fp);
                if (len < cap)
                        break;
        }
        if (ferror(fp)) {
                rc = fail_errno(err, "cannot read file", errno);
                goto out_free_text;
        }
        *ret_text = text;
        *ret_len = len;
        return 0;

out_free_text:
        free(text);
        return rc;
}

/*
 * Opens a regular file for reading.  O_NONBLOCK keeps open() from waiting
 * for a writer when path is a FIFO, which fstat() then refuses along with
 * directories and devices; it changes nothing for a regular file.
 */
static int open_regular(const char *path, FILE **ret_fp,
                        struct cfg_error *err)
{
        struct stat st;
        FILE *fp;
        int fd;

        fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(err, "cannot open file", errno);
        if (fstat(fd, &st) < 0) {
                int errnum = errno;

                close(fd);
                return fail_errno(err, "cannot open file", errnum);
        }
        if (!S_ISREG(st.st_mode)) {
                close(fd);
                return cfg_error_set(err, CFG_E_IO, 0, 0,
                                     "not a regular file");
        }
        fp = fdopen(fd, "rb");
        if (!fp) {
                int errnum = errno;

                close(fd);
                return fail_errno(err, "cannot open file", errnum);
        }
        *ret_fp = fp;
        return 0;
}

int cfg_load_file(const char *path, struct cfg **ret_cfg,
                  struct cfg_error *err)
{
        struct cfg_error local;
        char *text = NULL;
        size_t len = 0;
        FILE *fp = NULL;
        int rc;

        if (!err)
                err = &local;
        error_init(err, path);
        rc = open_regular(path, &fp, err);
        if (rc < 0)
                return rc;
        rc = read_all(fp, &text, &len, err);
        fclose(fp);
        if (rc < 0)
                return rc;
        rc = cfg_load_string(text, len, path, ret_cfg, err);
        free(text);
        return rc;
}

static void props_release(struct cfg_props *props)
{
        size_t i = 0;

        for (i = 0; i < props->n; i++) {
                free(props->v[i].name);
                free(props->v[i].value);
        }
        free(props->v);
}

void cfg_free(struct cfg *cfg)
{
        unsigned i;

        if (!cfg)
                return;
        free(cfg->path);
        free(cfg->kafka.bootstrap);
        free(cfg->kafka.group_id);
        free(cfg->kafka.topic_input);
        free(cfg->kafka.topic_clean);
        free(cfg->kafka.topic_suspect);
        free(cfg->kafka.topic_dead_letter);
        free(cfg->kafka.topic_state);
        props_release(&cfg->kafka.common);
        props_release(&cfg->kafka.consumer);
        props_release(&cfg->kafka.producer);
        for (i = 0; i < cfg->classes.count; i++)
                free(cfg->classes.names[i]);
        free(cfg->classes.names);
        free(cfg->filter.method);
        free(cfg->delivery.transactional_id);
        free(cfg->state.initial);
        free(cfg->metrics.listen);
        for (size_t a = 0; a < cfg->routing.n_annotators; a++)
                free(cfg->routing.annotators[a]);
        free(cfg->routing.annotators);
        free(cfg);
}

int cfg_class_index(const struct cfg *cfg, const char *name)
{
        unsigned i;

        if (!name)
                return -1;
        for (i = 0; i < cfg->classes.count; i++)
                if (strcmp(cfg->classes.names[i], name) == 0)
                        return (int)i;
        return -1;
}
