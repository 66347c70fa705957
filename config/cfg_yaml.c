/*
 * cfg_yaml.c - libyaml events to a tree of positioned nodes (cfg_yaml.h).
 *
 * The event API rather than yaml_parser_load(): the loader would resolve
 * aliases into shared or even cyclic nodes, and it keeps no way to tell
 * where an alias was written.  Here every node is owned by its parent and
 * each unsupported construct is refused where it appears.
 */
#include "cfg_yaml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

struct builder {
        yaml_parser_t parser;
        const char *text; /* the input, to place reader errors */
        size_t len;
        struct cfg_error *err;
};

int cfg_error_set(struct cfg_error *err, int code, unsigned line, unsigned col,
                  const char *fmt, ...)
{
        va_list ap;

        err->code = code;
        err->line = line;
        err->col = col;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        return code;
}

bool cfg_yaml_is_null(const struct cfg_node *node)
{
        static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
        size_t i;

        if (node->kind != CFG_NODE_SCALAR || !node->plain)
                return false;
        for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
                if (strcmp(node->text, nulls[i]) == 0)
                        return true;
        return false;
}

void cfg_yaml_free(struct cfg_node *node)
{
        size_t i;

        if (!node)
                return;
        for (i = 0; i < node->n_kids; i++)
                cfg_yaml_free(node->kids[i]);
        free(node->kids);
        free(node->text);
        free(node);
}

static unsigned mark_line(const yaml_mark_t *mark)
{
        return (unsigned)mark->line + 1;
}

static unsigned mark_col(const yaml_mark_t *mark)
{
        return (unsigned)mark->column + 1;
}

/*
 * Reader errors (bad UTF-8, control characters) carry a byte offset only;
 * the column is counted in bytes here, in characters everywhere else.
 */
static int reader_error(struct builder *b)
{
        const yaml_parser_t *p = &b->parser;
        size_t end = p->problem_offset < b->len ? p->problem_offset : b->len;
        unsigned line = 1, col = 1;
        size_t i;

        for (i = 0; i < end; i++) {
                if (b->text[i] == '\n') {
                        line++;
                        col = 1;
                } else {
                        col++;
                }
        }
        if (p->problem_value != -1)
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                                     "%s (byte 0x%02x)", p->problem,
                                     (unsigned)p->problem_value & 0xffu);
        return cfg_error_set(b->err, CFG_E_SYNTAX, line, col, "%s",
                             p->problem);
}

static int parser_error(struct builder *b)
{
        const yaml_parser_t *p = &b->parser;
        const char *problem = p->problem ? p->problem : "malformed yaml";
        unsigned line = mark_line(&p->problem_mark);
        unsigned col = mark_col(&p->problem_mark);

        if (p->error == YAML_MEMORY_ERROR)
                return cfg_error_set(b->err, CFG_E_NOMEM, 0, 0,
                                     "out of memory while parsing yaml");
        if (p->error == YAML_READER_ERROR && p->problem)
                return reader_error(b);
        if (!p->context)
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col, "%s",
                                     problem);
        return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                             "%s (%s at %u:%u)", problem, p->context,
                             mark_line(&p->context_mark),
                             mark_col(&p->context_mark));
}

static int next_event(struct builder *b, yaml_event_t *ev)
{
        if (!yaml_parser_parse(&b->parser, ev))
                return parser_error(b);
        return 0;
}

/* Anchors, aliases and tags are refused: the schema has no use for them. */
static int check_plain_yaml(struct builder *b, const yaml_event_t *ev)
{
        unsigned line = mark_line(&ev->start_mark);
        unsigned col = mark_col(&ev->start_mark);
        const yaml_char_t *anchor = NULL, *tag = NULL;

        switch (ev->type) {
        case YAML_ALIAS_EVENT:
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                                     "yaml aliases are not supported, got '*%s'",
                                     (const char *)ev->data.alias.anchor);
        case YAML_SCALAR_EVENT:
                anchor = ev->data.scalar.anchor;
                tag = ev->data.scalar.tag;
                break;
        case YAML_SEQUENCE_START_EVENT:
                anchor = ev->data.sequence_start.anchor;
                tag = ev->data.sequence_start.tag;
                break;
        case YAML_MAPPING_START_EVENT:
                anchor = ev->data.mapping_start.anchor;
                tag = ev->data.mapping_start.tag;
                break;
        default:
                /* libyaml emits only nodes between document start and end. */
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                                     "unexpected yaml event %d", ev->type);
        }
        if (anchor)
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                                     "yaml anchors are not supported, got '&%s'",
                                     (const char *)anchor);
        if (tag)
                return cfg_error_set(b->err, CFG_E_SYNTAX, line, col,
                                     "yaml tags are not supported, got '%s'",
                                     (const char *)tag);
        return 0;
}

static int node_set_text(struct builder *b, struct cfg_node *node,
                         const yaml_event_t *ev)
{
        const char *value = (const char *)ev->data.scalar.value;
        size_t len = ev->data.scalar.length;

        /* A "\0" escape would cut every C string made from the value. */
        if (memchr(value, '\0', len))
                return cfg_error_set(b->err, CFG_E_SYNTAX, node->line,
                                     node->col,
                                     "scalar contains a nul character");
        node->text = malloc(len + 1);
        if (!node->text)
                return cfg_error_set(b->err, CFG_E_NOMEM, node->line,
                                     node->col, "out of memory");
        memcpy(node->text, value, len);
        node->text[len] = '\0';
        node->len = len;
        node->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return 0;
}

/* Makes the node an event starts; takes nothing from ev. */
static int node_from_event(struct builder *b, const yaml_event_t *ev,
                           struct cfg_node **ret_node)
{
        struct cfg_node *node;
        int rc;

        node = calloc(1, sizeof(*node));
        if (!node)
                return cfg_error_set(b->err, CFG_E_NOMEM, 0, 0,
                                     "out of memory");
        node->line = mark_line(&ev->start_mark);
        node->col = mark_col(&ev->start_mark);
        if (ev->type == YAML_SCALAR_EVENT) {
                node->kind = CFG_NODE_SCALAR;
                rc = node_set_text(b, node, ev);
                if (rc < 0) {
                        cfg_yaml_free(node);
                        return rc;
                }
        } else {
                node->kind = ev->type == YAML_MAPPING_START_EVENT ?
                                     CFG_NODE_MAP :
                                     CFG_NODE_SEQ;
        }
        *ret_node = node;
        return 0;
}

static int node_append(struct builder *b, struct cfg_node *parent,
                       struct cfg_node *kid)
{
        struct cfg_node **kids;
        size_t cap;

        if (parent->n_kids == parent->cap_kids) {
                cap = parent->cap_kids ? 2 * parent->cap_kids : 8;
                kids = realloc(parent->kids, cap * sizeof(*kids));
                if (!kids)
                        return cfg_error_set(b->err, CFG_E_NOMEM, kid->line,
                                             kid->col, "out of memory");
                parent->kids = kids;
                parent->cap_kids = cap;
        }
        parent->kids[parent->n_kids++] = kid;
        return 0;
}

static int load_node(struct builder *b, yaml_event_t *ev, unsigned depth,
                     struct cfg_node **ret_node);

/* Reads the items or key/value pairs of parent up to its end event. */
static int load_kids(struct builder *b, struct cfg_node *parent,
                     unsigned depth)
{
        struct cfg_node *kid;
        yaml_event_t ev;
        int rc;

        for (;;) {
                rc = next_event(b, &ev);
                if (rc < 0)
                        return rc;
                if (ev.type == YAML_SEQUENCE_END_EVENT ||
                    ev.type == YAML_MAPPING_END_EVENT) {
                        yaml_event_delete(&ev);
                        return 0;
                }
                rc = load_node(b, &ev, depth, &kid);
                if (rc < 0)
                        return rc;
                rc = node_append(b, parent, kid);
                if (rc < 0) {
                        cfg_yaml_free(kid);
                        return rc;
                }
        }
}

/* Builds the node that ev starts, and all below it; deletes ev. */
static int load_node(struct builder *b, yaml_event_t *ev, unsigned depth,
                     struct cfg_node **ret_node)
{
        struct cfg_node *node = NULL;
        int rc;

        rc = check_plain_yaml(b, ev);
        if (rc == 0 && ev->type != YAML_SCALAR_EVENT &&
            depth >= CFG_YAML_MAX_DEPTH)
                rc = cfg_error_set(b->err, CFG_E_SYNTAX,
                                   mark_line(&ev->start_mark),
                                   mark_col(&ev->start_mark),
                                   "yaml nested deeper than %d levels",
                                   CFG_YAML_MAX_DEPTH);
        if (rc == 0)
                rc = node_from_event(b, ev, &node);
        yaml_event_delete(ev);
        if (rc < 0)
                return rc;

        if (node->kind != CFG_NODE_SCALAR) {
                rc = load_kids(b, node, depth + 1);
                if (rc < 0) {
                        cfg_yaml_free(node);
                        return rc;
                }
        }
        *ret_node = node;
        return 0;
}

/*
 * Reads the next event, which must be of type want, and drops it; else
 * problem is the error.  Only a second document can break the order:
 * libyaml itself emits stream and document events in sequence.
 */
static int expect_event(struct builder *b, yaml_event_type_t want,
                        const char *problem)
{
        yaml_event_t ev;
        int rc;

        rc = next_event(b, &ev);
        if (rc < 0)
                return rc;
        if (ev.type != want)
                rc = cfg_error_set(b->err, CFG_E_SYNTAX,
                                   mark_line(&ev.start_mark),
                                   mark_col(&ev.start_mark), "%s", problem);
        yaml_event_delete(&ev);
        return rc;
}

static int load_stream(struct builder *b, struct cfg_node **ret_root)
{
        struct cfg_node *root = NULL;
        yaml_event_t ev;
        int rc;

        rc = expect_event(b, YAML_STREAM_START_EVENT,
                          "yaml stream does not start");
        if (rc < 0)
                return rc;
        rc = next_event(b, &ev);
        if (rc < 0)
                return rc;
        if (ev.type == YAML_STREAM_END_EVENT) {
                yaml_event_delete(&ev);
                return cfg_error_set(b->err, CFG_E_MISSING, 1, 1,
                                     CFG_MSG_EMPTY);
        }
        yaml_event_delete(&ev); /* the document start */

        rc = next_event(b, &ev);
        if (rc < 0)
                return rc;
        rc = load_node(b, &ev, 0, &root);
        if (rc < 0)
                return rc;
        rc = expect_event(b, YAML_DOCUMENT_END_EVENT,
                          "yaml document does not end");
        if (rc == 0)
                rc = expect_event(b, YAML_STREAM_END_EVENT,
                                  "more than one yaml document, expected one");
        if (rc < 0) {
                cfg_yaml_free(root);
                return rc;
        }
        *ret_root = root;
        return 0;
}

int cfg_yaml_parse(const char *text, size_t len, struct cfg_node **ret_root,
                   struct cfg_error *err)
{
        struct builder b = {.text = text, .len = len, .err = err};
        int rc;

        if (!yaml_parser_initialize(&b.parser))
                return cfg_error_set(err, CFG_E_NOMEM, 0, 0, "out of memory");
        yaml_parser_set_input_string(&b.parser, (const unsigned char *)text,
                                     len);
        rc = load_stream(&b, ret_root);
        yaml_parser_delete(&b.parser);
        return rc;
}
