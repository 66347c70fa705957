/*
 * cfg.h - the daemon's YAML configuration (see config/README.md).
 *
 * cfg_load_file() reads and validates the whole file; every error carries
 * the file, line and column where it was found.  Unknown keys are errors.
 * The library keeps no global state: any thread may load and free its
 * own struct cfg; a loaded struct cfg is read-only and may be shared.
 */
#ifndef CFD_CONFIG_CFG_H
#define CFD_CONFIG_CFG_H

#include <stdbool.h>
#include <stddef.h>

enum cfg_err {
        CFG_OK = 0,
        CFG_E_IO = -1,      /* file cannot be opened or read */
        CFG_E_SYNTAX = -2,  /* not well-formed YAML */
        CFG_E_UNKNOWN = -3, /* unknown key */
        CFG_E_TYPE = -4,    /* wrong kind of node (map, list, scalar) */
        CFG_E_VALUE = -5,   /* scalar cannot be parsed or is out of range */
        CFG_E_MISSING = -6, /* required key absent */
        CFG_E_DUPLICATE = -7, /* key given twice, or class name repeated */
        CFG_E_NOMEM = -8,
};

/*
 * Short name of a CFG_E_* code for logs ("io", "syntax", "unknown_key",
 * "type", "value", "missing", "duplicate", "nomem"; "ok" for 0), or
 * "unknown_error".  The string is static.
 */
const char *cfg_err_name(int code);

/* Where loading failed.  Printed as "file:line:col: msg". */
struct cfg_error {
        int code;           /* CFG_E_* */
        unsigned line, col; /* 1-based; 0 when not tied to a position */
        char file[256];
        char msg[200];      /* lower case, no final period */
};

/*
 * Formats err as "file:line:col: msg", or "file: msg" when line is 0, into
 * buf (always NUL-terminated, cut to size; nothing when size is 0).
 */
void cfg_error_format(const struct cfg_error *err, char *buf, size_t size);

/* A librdkafka property passed through untouched. */
struct cfg_prop {
        char *name;    /* non-empty; never bootstrap.servers or group.id */
        char *value;   /* the scalar as written */
        unsigned line; /* where the name was written, for error messages */
        unsigned col;
};

/* Properties in file order; names unique within one map. */
struct cfg_props {
        struct cfg_prop *v;
        size_t n;
};

enum cfg_warmup_policy {
        CFG_WARMUP_PASS = 0, /* warm-up items go to clean at once */
        CFG_WARMUP_HOLD,     /* held, then decided together in batch */
};

enum cfg_suspect_by {
        CFG_SUSPECT_BY_NONE = 0,  /* every suspect to kafka.topics.suspect */
        CFG_SUSPECT_BY_CLASS,     /* to <suspect>.<given class name> */
        CFG_SUSPECT_BY_ANNOTATOR, /* to <suspect>.<annotator> if listed */
};

enum cfg_delivery {
        CFG_DELIVERY_EXACTLY_ONCE = 0, /* Kafka transactions */
        CFG_DELIVERY_AT_LEAST_ONCE,    /* commit after delivery */
};

enum cfg_log_level {
        CFG_LOG_ERROR = 0,
        CFG_LOG_WARN,
        CFG_LOG_INFO,
        CFG_LOG_DEBUG,
};

/* A loaded configuration; every pointer is owned and freed by cfg_free(). */
struct cfg {
        char *path; /* the file loaded, or the name given to load_string */

        struct {
                char *bootstrap;   /* "host:port,..." or "embedded" */
                bool embedded;     /* bootstrap == "embedded" */
                unsigned embedded_partitions; /* topics made in embedded */
                char *group_id;
                char *topic_input;       /* the five topics differ */
                char *topic_clean;       /* default <input>.clean */
                char *topic_suspect;     /* default <input>.suspect */
                char *topic_dead_letter; /* default <input>.dead-letter */
                char *topic_state;       /* default <input>.state */
                struct cfg_props common;   /* kafka.properties */
                struct cfg_props consumer; /* kafka.consumer_properties */
                struct cfg_props producer; /* kafka.producer_properties */
        } kafka;

        struct {
                char **names; /* count names, unique, non-empty */
                unsigned count; /* 2..65536 */
        } classes;

        struct {
                char *method;        /* a cleanlab filter_by name */
                unsigned method_line, method_col; /* 0 when defaulted */
                double half_life;    /* items, >= 0; 0 = no decay */
                unsigned bins;       /* 16..65536 */
                double warmup_total; /* >= 0; -1 = default for K */
                double warmup_class; /* >= 0 */
                double min_examples; /* >= 0 */
                double sum_tolerance; /* >= 0; 0 = off */
                enum cfg_warmup_policy warmup_policy; /* default hold */
                unsigned max_hold_ms; /* 1..3600000, default 10000 */
        } filter;

        struct {
                unsigned max_items;   /* 1..10000000 items per commit */
                unsigned interval_ms; /* 1..60000 between commits */
        } commit;

        struct {
                enum cfg_delivery mode;  /* default exactly_once */
                char *transactional_id;  /* default "confidentd-<group_id>" */
        } delivery;

        struct {
                char *initial; /* snapshot file to start from, or NULL */
                bool share;    /* decide with the other instances' too */
        } state;

        struct {
                enum cfg_suspect_by suspect_by; /* default none */
                char **annotators; /* n_annotators names, topic-safe */
                size_t n_annotators;
        } routing;

        struct {
                char *listen; /* "host:port" of /metrics, or NULL: off */
        } metrics;

        struct {
                enum cfg_log_level level;
                unsigned progress_interval_s; /* <= 86400; 0 = none */
        } log;
};

/*
 * Loads and validates the file at path (at most 1 MiB).  Returns 0 and
 * sets *ret_cfg (the caller owns it: free with cfg_free()), or a negative
 * CFG_E_* code with *err filled and *ret_cfg untouched.  err may be NULL;
 * err->file is path, cut to its size.
 */
int cfg_load_file(const char *path, struct cfg **ret_cfg,
                  struct cfg_error *err);

/*
 * Same, from len bytes at text (no NUL needed; text may be NULL when len
 * is 0).  name stands for the file in errors and in cfg->path; NULL gives
 * "<string>".  text and name are only borrowed.
 */
int cfg_load_string(const char *text, size_t len, const char *name,
                    struct cfg **ret_cfg, struct cfg_error *err);

/* Frees cfg and every string it holds; NULL does nothing. */
void cfg_free(struct cfg *cfg);

/* Index 0..count-1 of the class called name (exact match), or -1. */
int cfg_class_index(const struct cfg *cfg, const char *name);

#endif /* CFD_CONFIG_CFG_H */
