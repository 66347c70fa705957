/*
 * cfg.h - the daemon's YAML configuration (see config/README.md).
 *
 * cfg_load_file() reads and validates the whole file; every error carries
 * the file, line and column where it was found.  Unknown keys are errors.
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

const char *cfg_err_name(int code);

/* Where loading failed.  Printed as "file:line:col: msg". */
struct cfg_error {
        int code;           /* CFG_E_* */
        unsigned line, col; /* 1-based; 0 when not tied to a position */
        char file[256];
        char msg[200];      /* lower case, no final period */
};

/* Formats err as "file:line:col: msg" (or "file: msg") into buf. */
void cfg_error_format(const struct cfg_error *err, char *buf, size_t size);

/* A librdkafka property passed through untouched. */
struct cfg_prop {
        char *name;
        char *value;
        unsigned line; /* where it was set, for error messages */
        unsigned col;
};

struct cfg_props {
        struct cfg_prop *v;
        size_t n;
};

enum cfg_log_level {
        CFG_LOG_ERROR = 0,
        CFG_LOG_WARN,
        CFG_LOG_INFO,
        CFG_LOG_DEBUG,
};

struct cfg {
        char *path;

        struct {
                char *bootstrap;   /* "host:port,..." or "embedded" */
                bool embedded;     /* bootstrap == "embedded" */
                unsigned embedded_partitions; /* topics made in embedded */
                char *group_id;
                char *topic_input;
                char *topic_clean;
                char *topic_suspect;
                char *topic_dead_letter;
                struct cfg_props common;   /* kafka.properties */
                struct cfg_props consumer; /* kafka.consumer_properties */
                struct cfg_props producer; /* kafka.producer_properties */
        } kafka;

        struct {
                char **names; /* count names, unique, non-empty */
                unsigned count;
        } classes;

        struct {
                char *method;        /* a cleanlab filter_by name */
                unsigned method_line, method_col;
                double half_life;    /* items, >= 0; 0 = no decay */
                unsigned bins;       /* 16..65536 */
                double warmup_total; /* < 0 means: default for K */
                double warmup_class;
                double min_examples;
                double sum_tolerance; /* >= 0; 0 = off */
        } filter;

        struct {
                unsigned max_items;   /* items per batch before a commit */
                unsigned interval_ms; /* at most this long between commits */
        } commit;

        struct {
                enum cfg_log_level level;
                unsigned progress_interval_s; /* 0 = no progress lines */
        } log;
};

/*
 * Loads and validates path.  Returns 0 and sets *ret_cfg (free with
 * cfg_free()), or a CFG_E_* code with *err filled (err may be NULL).
 */
int cfg_load_file(const char *path, struct cfg **ret_cfg,
                  struct cfg_error *err);

/* Same, from a string in memory; name is used as the file in errors. */
int cfg_load_string(const char *text, size_t len, const char *name,
                    struct cfg **ret_cfg, struct cfg_error *err);

void cfg_free(struct cfg *cfg);

/* Index of a class name, or -1. */
int cfg_class_index(const struct cfg *cfg, const char *name);

#endif /* CFD_CONFIG_CFG_H */
