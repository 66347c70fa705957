/*
 * msg_decode.c - label messages from msgpack bytes in one pass: the
 * top-level map is walked pair by pair, the values of the known keys are
 * checked and read where they lie, and every other value is checked and
 * skipped by msg_scan_value().  Nothing is built or allocated per message.
 */
#include "msg.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msg_scan.h"

/* Known keys of the top-level map; all others are ignored. */
enum field {
        FIELD_ID = 0,
        FIELD_LABEL,
        FIELD_PROBS,
        FIELD_ANNOTATOR,
        FIELD_MODEL,
        FIELD_TS,
        FIELD_COUNT,
};

#define FIELD_BIT(f) (1u << (f))
#define FIELDS_ALL (FIELD_BIT(FIELD_COUNT) - 1u)
#define FIELDS_REQUIRED \
        (FIELD_BIT(FIELD_ID) | FIELD_BIT(FIELD_LABEL) | FIELD_BIT(FIELD_PROBS))
#define KEY_NONE SIZE_MAX

static const struct {
        const char *name;
        size_t len;
} fields[FIELD_COUNT] = {
        [FIELD_ID] = {"id", 2},
        [FIELD_LABEL] = {"label", 5},
        [FIELD_PROBS] = {"pred_probs", 10},
        [FIELD_ANNOTATOR] = {"annotator", 9},
        [FIELD_MODEL] = {"model", 5},
        [FIELD_TS] = {"ts", 2},
};

/* One class name of the schema; the index is sorted by (len, bytes). */
struct class_name {
        const char *name;
        size_t len;
        unsigned index;
};

struct msg_decoder {
        unsigned k;
        struct class_name *names; /* k entries, or NULL: integers only */
        char *name_bytes;         /* the copied names, NUL-terminated */
};

/*
 * Errors are met in the order of the bytes but reported in the order that
 * schemas/README.md gives: bytes, top-level type and keys, required
 * fields, then each field in the order of enum field.  A parse error ends
 * the walk at once.  Any other error is recorded only if it ranks before
 * the one recorded so far, so that the first of the key errors (in the
 * order of the pairs) and the first error of each field win.
 */
enum rank {
        RANK_KEY = 0, /* a key not a string, or a known key repeated */
        RANK_MISSING,
        RANK_FIELD,   /* RANK_FIELD + enum field */
        RANK_NONE = RANK_FIELD + FIELD_COUNT,
};

/* One message being walked. */
struct walk {
        const struct msg_decoder *dec;
        const unsigned char *buf;
        size_t len;
        size_t pos;                 /* the next byte to read */
        unsigned want;              /* FIELD_BIT mask of the fields to read */
        int rank;                   /* of the error recorded, or RANK_NONE */
        int rc;                     /* the code of that error */
        struct msg_error *err;      /* may be NULL */
        size_t key_at[FIELD_COUNT]; /* offset of each key met, or KEY_NONE */
        struct msg_label *lab;
};

/* An integer as msgpack-c reads it: the uint64 of an unsigned format, or
 * the int64 of a signed one (bits holds its two's complement). */
struct wire_int {
        uint64_t bits;
        bool is_signed;
};

const char *msg_err_name(int code)
{
        switch (code) {
        case MSG_OK: return "MSG_OK";
        case MSG_E_PARSE: return "MSG_E_PARSE";
        case MSG_E_TYPE: return "MSG_E_TYPE";
        case MSG_E_MISSING: return "MSG_E_MISSING";
        case MSG_E_DUPLICATE: return "MSG_E_DUPLICATE";
        case MSG_E_WIDTH: return "MSG_E_WIDTH";
        case MSG_E_LABEL: return "MSG_E_LABEL";
        case MSG_E_NOMEM: return "MSG_E_NOMEM";
        case MSG_E_PARAM: return "MSG_E_PARAM";
        }
        return "MSG_E_UNKNOWN";
}

const char *msg_strerror(int code)
{
        switch (code) {
        case MSG_OK: return "success";
        case MSG_E_PARSE: return "not msgpack, truncated, or trailing bytes";
        case MSG_E_TYPE: return "not a map, or a field of the wrong type";
        case MSG_E_MISSING: return "a required field is missing";
        case MSG_E_DUPLICATE: return "a key appears twice";
        case MSG_E_WIDTH: return "pred_probs has the wrong number of values";
        case MSG_E_LABEL: return "label is not a known class";
        case MSG_E_NOMEM: return "out of memory";
        case MSG_E_PARAM: return "invalid argument";
        }
        return "unknown error";
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
        if (alen != blen)
                return alen < blen ? -1 : 1;
        return memcmp(a, b, alen);
}

static int class_name_cmp(const void *pa, const void *pb)
{
        const struct class_name *a = pa, *b = pb;

        return name_cmp(a->name, a->len, b->name, b->len);
}

/* Copies the k names into dec and sorts an index of them.  Returns 0, or
 * MSG_E_PARAM for a NULL, empty or repeated name, or MSG_E_NOMEM; on
 * failure dec is unchanged. */
static int names_build(struct msg_decoder *dec, const char *const *names)
{
        struct class_name *index;
        size_t total = 0, off = 0;
        char *bytes;

        for (unsigned i = 0; i < dec->k; i++) {
                if (!names[i] || !names[i][0])
                        return MSG_E_PARAM;
                total += strlen(names[i]) + 1;
        }
        index = calloc(dec->k, sizeof(*index));
        bytes = malloc(total);
        if (!index || !bytes)
                goto out_nomem;
        for (unsigned i = 0; i < dec->k; i++) {
                size_t len = strlen(names[i]);

                memcpy(bytes + off, names[i], len + 1);
                index[i] = (struct class_name){bytes + off, len, i};
                off += len + 1;
        }
        qsort(index, dec->k, sizeof(*index), class_name_cmp);
        for (unsigned i = 1; i < dec->k; i++) {
                if (class_name_cmp(&index[i - 1], &index[i]) == 0) {
                        free(index);
                        free(bytes);
                        return MSG_E_PARAM;
                }
        }
        dec->names = index;
        dec->name_bytes = bytes;
        return 0;

out_nomem:
        free(index);
        free(bytes);
        return MSG_E_NOMEM;
}

/* Class index of a name, or -1; a binary search, no allocation. */
static long names_find(const struct msg_decoder *dec, const char *name,
                       size_t len)
{
        size_t lo = 0, hi = dec->k;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct class_name *c = &dec->names[mid];
                int cmp = name_cmp(name, len, c->name, c->len);

                if (cmp == 0)
                        return (long)c->index;
                if (cmp < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -1;
}

int msg_decoder_new(const struct msg_schema *schema, struct msg_decoder **ret)
{
        struct msg_decoder *dec;
        int rc;

        if (!schema || !ret || schema->k < 2)
                return MSG_E_PARAM;
        dec = calloc(1, sizeof(*dec));
        if (!dec)
                return MSG_E_NOMEM;
        dec->k = schema->k;
        if (schema->class_names) {
                rc = names_build(dec, schema->class_names);
                if (rc < 0)
                        goto out_free_dec;
        }
        *ret = dec;
        return 0;

out_free_dec:
        free(dec);
        return rc;
}

void msg_decoder_free(struct msg_decoder *dec)
{
        if (!dec)
                return;
        free(dec->names);
        free(dec->name_bytes);
        free(dec);
}

/* msgpack-c's name of the type whose first byte is b (0xc1 excluded). */
static const char *type_name(unsigned char b)
{
        if (b <= 0x7f || b >= 0xe0)
                return "integer";
        if (b <= 0x8f)
                return "map";
        if (b <= 0x9f)
                return "array";
        if (b <= 0xbf)
                return "string";
        switch (b) {
        case 0xc0: return "nil";
        case 0xc2: case 0xc3: return "boolean";
        case 0xc4: case 0xc5: case 0xc6: return "bin";
        case 0xca: return "float32";
        case 0xcb: return "float64";
        case 0xd9: case 0xda: case 0xdb: return "string";
        case 0xdc: case 0xdd: return "array";
        case 0xde: case 0xdf: return "map";
        }
        if (b >= 0xcc && b <= 0xd3)
                return "integer";
        return "ext"; /* 0xc7-0xc9, 0xd4-0xd8 */
}

/* Copies at most cap - 1 bytes of untrusted text for an error message,
 * '?' for each byte outside printable ASCII, "..." when cut. */
static void quote_bytes(char *dst, size_t cap, const char *src, size_t len)
{
        size_t n = len < cap - 1 ? len : cap - 1;

        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)src[i];

                dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        dst[n] = '\0';
        if (n < len && cap >= 4)
                memcpy(dst + cap - 4, "...", 4);
}

/* Big-endian unsigned integers at p; written out so that the compiler
 * turns each into one load and a byte swap. */
static uint32_t load_be32(const unsigned char *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
               (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load_be64(const unsigned char *p)
{
        return (uint64_t)load_be32(p) << 32 | load_be32(p + 4);
}

/* Of 1, 2, 4 or 8 bytes. */
static uint64_t load_be(const unsigned char *p, unsigned width)
{
        switch (width) {
        case 1: return p[0];
        case 2: return (uint64_t)p[0] << 8 | p[1];
        case 4: return load_be32(p);
        default: return load_be64(p);
        }
}

/* The integer at v, whose header msg_scan_head() accepted; false when the
 * value is not an integer. */
static bool int_read(const unsigned char *v, struct wire_int *ret)
{
        unsigned char b = v[0];

        if (b <= 0x7f || b >= 0xe0) {
                ret->bits = (uint64_t)(int64_t)(int8_t)b;
                ret->is_signed = b >= 0xe0;
                return true;
        }
        if (b >= 0xcc && b <= 0xcf) { /* uint 8, 16, 32, 64 */
                ret->bits = load_be(v + 1, 1u << (b - 0xcc));
                ret->is_signed = false;
                return true;
        }
        if (b >= 0xd0 && b <= 0xd3) { /* int 8, 16, 32, 64 */
                unsigned width = 1u << (b - 0xd0);
                uint64_t raw = load_be(v + 1, width);
                unsigned shift = 64 - 8 * width;

                /* sign-extend from width bytes */
                ret->bits = (uint64_t)((int64_t)(raw << shift) >> shift);
                ret->is_signed = true;
                return true;
        }
        return false;
}

/* The number at v as a double, as msgpack-c widens it (an integer above
 * 2^53 is rounded); false when the value is not a number. */
static bool number_read(const unsigned char *v, double *ret)
{
        struct wire_int n;

        if (v[0] == 0xcb) {
                uint64_t bits = load_be64(v + 1);

                memcpy(ret, &bits, sizeof(*ret));
                return true;
        }
        if (v[0] == 0xca) {
                uint32_t bits = load_be32(v + 1);
                float f;

                memcpy(&f, &bits, sizeof(f));
                *ret = (double)f;
                return true;
        }
        if (!int_read(v, &n))
                return false;
        *ret = n.is_signed ? (double)(int64_t)n.bits : (double)n.bits;
        return true;
}

/* The string at v, whose header h msg_scan_head() accepted: borrowed from
 * the message.  False when the value is not a string. */
static bool str_read(const unsigned char *v, const struct msg_scan_head *h,
                     struct msg_str *ret)
{
        size_t head;

        if (v[0] >= 0xa0 && v[0] <= 0xbf)
                head = 1;
        else if (v[0] >= 0xd9 && v[0] <= 0xdb)
                head = 1 + (1u << (v[0] - 0xd9));
        else
                return false;
        ret->ptr = (const char *)v + head;
        ret->len = h->size - head;
        return true;
}

/* msg_scan_head() for the value at offset at.  The formats that labels
 * use most (fixint, fixstr, float32, float64, fixarray) are read here
 * when all their bytes are present; the others, and every error, are left
 * to msg_scan_head(), so that the checks and their messages stay its own. */
static int head_at(const struct walk *w, size_t at, struct msg_scan_head *h)
{
        unsigned char b;
        size_t size = 0;

        if (at >= w->len)
                return msg_scan_head(w->buf, w->len, at, h, w->err);
        b = w->buf[at];
        h->kind = MSG_SCAN_SCALAR;
        h->count = 0;
        if (b <= 0x7f || b >= 0xe0) {
                size = 1;
        } else if (b >= 0xa0 && b <= 0xbf) {
                size = 1u + (b & 0x1fu);
        } else if (b == 0xcb) {
                size = 9;
        } else if (b == 0xca) {
                size = 5;
        } else if (b >= 0x90 && b <= 0x9f) {
                h->kind = MSG_SCAN_ARRAY;
                h->count = b & 0x0fu;
                size = 1;
        }
        if (size == 0 || size > w->len - at)
                return msg_scan_head(w->buf, w->len, at, h, w->err);
        h->size = size;
        return 0;
}

/* Whether an error of this rank is to be recorded (see enum rank); if so,
 * it becomes the one recorded, and the caller fills w->err. */
static bool walk_takes(struct walk *w, int rank, int code)
{
        if (rank >= w->rank)
                return false;
        w->rank = rank;
        w->rc = code;
        return true;
}

static void type_error(struct walk *w, enum field f, size_t at,
                       const char *expected)
{
        if (walk_takes(w, RANK_FIELD + (int)f, MSG_E_TYPE))
                msg_error_set(w->err, MSG_E_TYPE, at, fields[f].name,
                              "expected %s, got %s", expected,
                              type_name(w->buf[at]));
}

/* Checks the value at w->pos, moves past it and gives its offset and
 * header.  Inside it, msg_scan_value() counts the top-level map open. */
static int value_next(struct walk *w, size_t *ret_at,
                      struct msg_scan_head *ret_h)
{
        size_t at = w->pos;
        int rc;

        rc = head_at(w, at, ret_h);
        if (rc < 0)
                return rc;
        if (ret_h->kind == MSG_SCAN_SCALAR) {
                w->pos = at + ret_h->size;
        } else {
                rc = msg_scan_value(w->buf, w->len, &w->pos, 1, w->err);
                if (rc < 0)
                        return rc;
        }
        *ret_at = at;
        return 0;
}

static int read_id(struct walk *w)
{
        struct msg_label *lab = w->lab;
        struct msg_scan_head h;
        struct wire_int n;
        size_t at;
        int rc;

        rc = value_next(w, &at, &h);
        if (rc < 0)
                return rc;
        if (str_read(w->buf + at, &h, &lab->id)) {
                lab->id_kind = MSG_ID_STR;
                lab->id_int = 0;
        } else if (!int_read(w->buf + at, &n)) {
                type_error(w, FIELD_ID, at, "an integer or a string");
        } else if (!n.is_signed && n.bits > INT64_MAX) {
                if (walk_takes(w, RANK_FIELD + FIELD_ID, MSG_E_TYPE))
                        msg_error_set(w->err, MSG_E_TYPE, at, "id",
                                      "integer id %llu is above the int64 "
                                      "range",
                                      (unsigned long long)n.bits);
        } else {
                lab->id_kind = MSG_ID_INT;
                lab->id_int = (int64_t)n.bits;
                lab->id = (struct msg_str){NULL, 0};
        }
        return 0;
}

static void read_label_name(struct walk *w, size_t at,
                            const struct msg_str *name)
{
        const struct msg_decoder *dec = w->dec;
        char shown[48];
        long index = -1;

        if (dec->names)
                index = names_find(dec, name->ptr, name->len);
        if (index >= 0) {
                w->lab->label = index;
                return;
        }
        if (!walk_takes(w, RANK_FIELD + FIELD_LABEL, MSG_E_LABEL))
                return;
        quote_bytes(shown, sizeof(shown), name->ptr, name->len);
        msg_error_set(w->err, MSG_E_LABEL, at, "label",
                      dec->names ? "unknown class name '%s'"
                                 : "class name '%s' given, but the schema "
                                   "has no class names",
                      shown);
}

static int read_label(struct walk *w)
{
        struct msg_scan_head h;
        struct wire_int n;
        struct msg_str name;
        size_t at;
        int rc;

        rc = value_next(w, &at, &h);
        if (rc < 0)
                return rc;
        if (str_read(w->buf + at, &h, &name)) {
                read_label_name(w, at, &name);
        } else if (!int_read(w->buf + at, &n)) {
                type_error(w, FIELD_LABEL, at,
                           "an integer class index or a class name");
        } else if (!n.is_signed && n.bits > INT64_MAX) {
                if (walk_takes(w, RANK_FIELD + FIELD_LABEL, MSG_E_LABEL))
                        msg_error_set(w->err, MSG_E_LABEL, at, "label",
                                      "label %llu is above the int64 range",
                                      (unsigned long long)n.bits);
        } else {
                w->lab->label = (int64_t)n.bits;
        }
        return 0;
}

/* Element i of pred_probs, at w->pos; the array and the map are open. */
static int read_prob(struct walk *w, uint32_t i)
{
        char field[sizeof(((struct msg_error *)0)->field)];
        size_t at = w->pos;
        struct msg_scan_head h;
        int rc;

        rc = head_at(w, at, &h);
        if (rc < 0)
                return rc;
        if (h.kind == MSG_SCAN_SCALAR) {
                w->pos = at + h.size;
                if (number_read(w->buf + at, &w->lab->probs[i]))
                        return 0;
        } else {
                rc = msg_scan_value(w->buf, w->len, &w->pos, 2, w->err);
                if (rc < 0)
                        return rc;
        }
        if (walk_takes(w, RANK_FIELD + FIELD_PROBS, MSG_E_TYPE)) {
                snprintf(field, sizeof(field), "pred_probs[%lu]",
                         (unsigned long)i);
                msg_error_set(w->err, MSG_E_TYPE, at, field,
                              "expected a number, got %s",
                              type_name(w->buf[at]));
        }
        return 0;
}

/*
 * pred_probs: an array of K numbers, read into lab->probs.  The array is
 * opened here, as the second open container after the top-level map, so
 * its checks are msg_scan_value()'s: the count against the bytes left
 * (nesting cannot exceed the limit at this depth).
 */
static int read_probs(struct walk *w)
{
        size_t at = w->pos;
        struct msg_scan_head h;
        int rc;

        rc = head_at(w, at, &h);
        if (rc < 0)
                return rc;
        if (h.kind != MSG_SCAN_ARRAY || h.count != w->dec->k) {
                if (h.kind != MSG_SCAN_ARRAY)
                        type_error(w, FIELD_PROBS, at, "an array");
                else if (walk_takes(w, RANK_FIELD + FIELD_PROBS, MSG_E_WIDTH))
                        msg_error_set(w->err, MSG_E_WIDTH, at, "pred_probs",
                                      "pred_probs has %lu values, expected "
                                      "%u",
                                      (unsigned long)h.count, w->dec->k);
                return msg_scan_value(w->buf, w->len, &w->pos, 1, w->err);
        }
        rc = msg_scan_check_count(w->len, at, &h, w->err);
        if (rc < 0)
                return rc;
        w->pos = at + h.size;
        for (uint32_t i = 0; i < h.count; i++) {
                rc = read_prob(w, i);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/* annotator or model */
static int read_str(struct walk *w, enum field f, struct msg_str *ret)
{
        struct msg_scan_head h;
        size_t at;
        int rc;

        rc = value_next(w, &at, &h);
        if (rc < 0)
                return rc;
        if (!str_read(w->buf + at, &h, ret))
                type_error(w, f, at, "a string");
        return 0;
}

static int read_ts(struct walk *w)
{
        struct msg_scan_head h;
        size_t at;
        int rc;

        rc = value_next(w, &at, &h);
        if (rc < 0)
                return rc;
        if (number_read(w->buf + at, &w->lab->ts))
                w->lab->has_ts = true;
        else
                type_error(w, FIELD_TS, at, "a number");
        return 0;
}

/* Reads the value of field f at w->pos and moves past it.  Returns 0 or
 * a parse error; a field error is recorded in w. */
static int read_field(struct walk *w, enum field f)
{
        switch (f) {
        case FIELD_ID: return read_id(w);
        case FIELD_LABEL: return read_label(w);
        case FIELD_PROBS: return read_probs(w);
        case FIELD_ANNOTATOR: return read_str(w, f, &w->lab->annotator);
        case FIELD_MODEL: return read_str(w, f, &w->lab->model);
        case FIELD_TS: return read_ts(w);
        case FIELD_COUNT: break;
        }
        return msg_scan_value(w->buf, w->len, &w->pos, 1, w->err);
}

/* The known field named by a key, or FIELD_COUNT. */
static enum field field_find(const struct msg_str *key)
{
        for (int f = 0; f < FIELD_COUNT; f++) {
                if (key->len == fields[f].len &&
                    memcmp(key->ptr, fields[f].name, key->len) == 0)
                        return (enum field)f;
        }
        return FIELD_COUNT;
}

/* The key of the next pair: which field of w->want it names (FIELD_COUNT
 * for none).  A non-string key or a repeated field is recorded in w. */
static int read_key(struct walk *w, enum field *ret_f)
{
        size_t at;
        struct msg_scan_head h;
        struct msg_str key;
        enum field f = FIELD_COUNT;
        int rc;

        rc = value_next(w, &at, &h);
        if (rc < 0)
                return rc;
        if (!str_read(w->buf + at, &h, &key)) {
                if (walk_takes(w, RANK_KEY, MSG_E_TYPE))
                        msg_error_set(w->err, MSG_E_TYPE, at, "",
                                      "expected a string key, got %s",
                                      type_name(w->buf[at]));
        } else {
                f = field_find(&key);
        }
        if (f == FIELD_COUNT || !(w->want & FIELD_BIT(f))) {
                *ret_f = FIELD_COUNT;
                return 0;
        }
        if (w->key_at[f] != KEY_NONE) {
                if (walk_takes(w, RANK_KEY, MSG_E_DUPLICATE))
                        msg_error_set(w->err, MSG_E_DUPLICATE, at,
                                      fields[f].name,
                                      "duplicate key '%s', first at offset "
                                      "%zu",
                                      fields[f].name, w->key_at[f]);
                *ret_f = FIELD_COUNT;
                return 0;
        }
        w->key_at[f] = at;
        *ret_f = f;
        return 0;
}

/* The pairs of the top-level map, whose header h was read at offset 0. */
static int walk_map(struct walk *w, const struct msg_scan_head *h)
{
        int rc;

        rc = msg_scan_check_count(w->len, 0, h, w->err);
        if (rc < 0)
                return rc;
        w->pos = h->size;
        for (uint32_t i = 0; i < h->count; i++) {
                enum field f;

                rc = read_key(w, &f);
                if (rc == 0)
                        rc = read_field(w, f);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

static int parse_error(struct walk *w, int rc)
{
        if (w->buf[0] == '{' || w->buf[0] == '[')
                msg_error_set(w->err, MSG_E_PARSE, 0, "",
                              "not msgpack: starts with '%c', JSON perhaps",
                              w->buf[0]);
        return rc;
}

/*
 * Walks the message: the bytes, the top-level map and its keys, and the
 * fields of w->want, each read into w->lab.  Returns a parse error or a
 * top-level type error at once; any other error is left recorded in w.
 */
static int walk_message(struct walk *w)
{
        struct msg_scan_head h;
        int rc;

        if (w->len == 0) {
                msg_error_set(w->err, MSG_E_PARSE, 0, "", "empty message");
                return MSG_E_PARSE;
        }
        rc = msg_scan_head(w->buf, w->len, 0, &h, w->err);
        if (rc < 0)
                return parse_error(w, rc);
        if (h.kind == MSG_SCAN_MAP)
                rc = walk_map(w, &h);
        else
                rc = msg_scan_value(w->buf, w->len, &w->pos, 0, w->err);
        if (rc == 0 && w->pos != w->len) {
                msg_error_set(w->err, MSG_E_PARSE, w->pos, "",
                              "trailing bytes: the top-level value ends at "
                              "offset %zu of %zu",
                              w->pos, w->len);
                rc = MSG_E_PARSE;
        }
        if (rc < 0)
                return parse_error(w, rc);
        if (h.kind != MSG_SCAN_MAP) {
                msg_error_set(w->err, MSG_E_TYPE, 0, "",
                              "expected a map at the top level, got %s",
                              type_name(w->buf[0]));
                return MSG_E_TYPE;
        }
        return 0;
}

/* The result of a walk: its error by rank, a missing field before any
 * field error. */
static int walk_result(struct walk *w)
{
        unsigned required = w->want & FIELDS_REQUIRED;

        if (w->rank == RANK_KEY)
                return w->rc;
        for (int f = 0; f < FIELD_COUNT; f++) {
                if ((required & FIELD_BIT(f)) && w->key_at[f] == KEY_NONE) {
                        msg_error_set(w->err, MSG_E_MISSING, w->len,
                                      fields[f].name,
                                      "required field '%s' is missing",
                                      fields[f].name);
                        return MSG_E_MISSING;
                }
        }
        return w->rank == RANK_NONE ? 0 : w->rc;
}

/* Rejects NULL arguments: buf may be NULL only when len is 0, probs is
 * needed by msg_decode() alone. */
static int check_args(const struct msg_decoder *dec, const void *buf,
                      size_t len, const struct msg_label *out,
                      bool need_probs, struct msg_error *err)
{
        if (dec && out && (buf || len == 0) && (out->probs || !need_probs))
                return 0;
        msg_error_set(err, MSG_E_PARAM, len, "",
                      "NULL decoder, buffer, label or label probs");
        return MSG_E_PARAM;
}

/* Walks the message for the fields of want, read into *lab. */
static int decode_walk(const struct msg_decoder *dec, const void *buf,
                       size_t len, unsigned want, struct msg_label *lab,
                       struct msg_error *err)
{
        struct walk w = {
                .dec = dec,
                .buf = buf,
                .len = len,
                .want = want,
                .rank = RANK_NONE,
                .err = err,
                .lab = lab,
        };
        int rc;

        for (int f = 0; f < FIELD_COUNT; f++)
                w.key_at[f] = KEY_NONE;
        rc = walk_message(&w);
        if (rc < 0)
                return rc;
        return walk_result(&w);
}

int msg_decode(struct msg_decoder *dec, const void *buf, size_t len,
               struct msg_label *out, struct msg_error *err)
{
        struct msg_label lab = {0};
        int rc;

        rc = check_args(dec, buf, len, out, true, err);
        if (rc < 0)
                return rc;
        lab.probs = out->probs;
        rc = decode_walk(dec, buf, len, FIELDS_ALL, &lab, err);
        if (rc < 0)
                return rc;
        *out = lab;
        return 0;
}

int msg_decode_id(struct msg_decoder *dec, const void *buf, size_t len,
                  struct msg_label *out, struct msg_error *err)
{
        struct msg_label lab = {0};
        int rc;

        rc = check_args(dec, buf, len, out, false, err);
        if (rc < 0)
                return rc;
        rc = decode_walk(dec, buf, len, FIELD_BIT(FIELD_ID), &lab, err);
        if (rc < 0)
                return rc;
        out->id_kind = lab.id_kind;
        out->id_int = lab.id_int;
        out->id = lab.id;
        return 0;
}
