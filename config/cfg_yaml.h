/*
 * cfg_yaml.h - private to config/: YAML text to a tree of nodes that keep
 * their position, so that cfg.c can check the schema and name the line
 * and column of every mistake.
 *
 * Only plain YAML is accepted: one document, no anchors, aliases or tags.
 */
#ifndef CFD_CONFIG_CFG_YAML_H
#define CFD_CONFIG_CFG_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"

#if defined(__GNUC__)
#define CFG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define CFG_PRINTF(fmt, args)
#endif

/* Deepest nesting of maps and sequences accepted; the schema needs 3. */
#define CFG_YAML_MAX_DEPTH 32

enum cfg_node_kind {
        CFG_NODE_SCALAR,
        CFG_NODE_MAP,
        CFG_NODE_SEQ,
};

struct cfg_node {
        enum cfg_node_kind kind;
        unsigned line, col;     /* 1-based start of the node */
        char *text;             /* scalar only; no NUL inside */
        size_t len;             /* strlen(text) */
        bool plain;             /* scalar written without quotes */
        struct cfg_node **kids; /* seq: items; map: key, value, key, ... */
        size_t n_kids;
        size_t cap_kids;
};

/*
 * Parses text (len bytes, need not be NUL-terminated) into a tree.
 * Returns 0 and sets *ret_root (free with cfg_yaml_free()), or
 * CFG_E_SYNTAX (malformed YAML, anchors, aliases, tags, several
 * documents, nesting past CFG_YAML_MAX_DEPTH), CFG_E_MISSING (no
 * document) or CFG_E_NOMEM, with err's code, position and msg set;
 * err->file is left to the caller.
 */
int cfg_yaml_parse(const char *text, size_t len, struct cfg_node **ret_root,
                   struct cfg_error *err);

/* Frees node and everything below it; NULL does nothing. */
void cfg_yaml_free(struct cfg_node *node);

/* True for a scalar that YAML reads as null: empty, ~, null, Null, NULL. */
bool cfg_yaml_is_null(const struct cfg_node *node);

/*
 * Sets err's code, position and message (printf format); err->file is
 * kept.  Returns code, so that callers can `return cfg_error_set(...)`.
 */
int cfg_error_set(struct cfg_error *err, int code, unsigned line, unsigned col,
                  const char *fmt, ...) CFG_PRINTF(5, 6);

/* Message for a stream without any document, shared with cfg.c. */
#define CFG_MSG_EMPTY \
        "configuration is empty, expected a map with 'kafka' and 'classes'"

#endif /* CFD_CONFIG_CFG_YAML_H */
