/*
 * msg_decode_ref.c - the reference decoder (see msg_decode_ref.h): the
 * schemas/ code of msg_scan.c and msg_decode.c before the single-pass
 * decoder, with its functions made static or renamed ref_*, and
 * msg_err_name() and msg_strerror() left out.  Do not improve it: its
 * purpose is to stay what it was.
 */
#include "msg_decode_ref.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void error_set(struct msg_error *err, int code, size_t offset,
                      const char *field, const char *fmt, ...);

#define SCAN_DEPTH_MAX 32

enum scan_kind {
        SCAN_SCALAR = 0, /* anything but an array or a map */
        SCAN_ARRAY,
        SCAN_MAP,
};

/* One value's header as read from the wire. */
struct scan_head {
        enum scan_kind kind;
        uint32_t count; /* elements of an array, pairs of a map */
        size_t size;    /* header bytes, plus the payload of a scalar */
};

enum wide_kind {
        WIDE_FIXED = 0, /* fixed-size scalar: nil, bool, number, fixext */
        WIDE_PAYLOAD,   /* length field, then that many bytes: str, bin, ext */
        WIDE_ARRAY,     /* count field of elements */
        WIDE_MAP,       /* count field of key/value pairs */
        WIDE_INVALID,   /* 0xc1, never used */
};

/* Type bytes 0xc0-0xdf: bytes of the length or count field (width), other
 * bytes after the type byte (fixed: the number itself, or ext's type). */
struct wide_format {
        unsigned char width;
        unsigned char fixed;
        unsigned char kind; /* enum wide_kind */
};

#define WIDE(byte) [(byte) - 0xc0]

static const struct wide_format wide_formats[32] = {
        WIDE(0xc0) = {0, 0, WIDE_FIXED},   /* nil */
        WIDE(0xc1) = {0, 0, WIDE_INVALID}, /* reserved */
        WIDE(0xc2) = {0, 0, WIDE_FIXED},   /* false */
        WIDE(0xc3) = {0, 0, WIDE_FIXED},   /* true */
        WIDE(0xc4) = {1, 0, WIDE_PAYLOAD}, /* bin 8 */
        WIDE(0xc5) = {2, 0, WIDE_PAYLOAD}, /* bin 16 */
        WIDE(0xc6) = {4, 0, WIDE_PAYLOAD}, /* bin 32 */
        WIDE(0xc7) = {1, 1, WIDE_PAYLOAD}, /* ext 8 */
        WIDE(0xc8) = {2, 1, WIDE_PAYLOAD}, /* ext 16 */
        WIDE(0xc9) = {4, 1, WIDE_PAYLOAD}, /* ext 32 */
        WIDE(0xca) = {0, 4, WIDE_FIXED},   /* float 32 */
        WIDE(0xcb) = {0, 8, WIDE_FIXED},   /* float 64 */
        WIDE(0xcc) = {0, 1, WIDE_FIXED},   /* uint 8 */
        WIDE(0xcd) = {0, 2, WIDE_FIXED},   /* uint 16 */
        WIDE(0xce) = {0, 4, WIDE_FIXED},   /* uint 32 */
        WIDE(0xcf) = {0, 8, WIDE_FIXED},   /* uint 64 */
        WIDE(0xd0) = {0, 1, WIDE_FIXED},   /* int 8 */
        WIDE(0xd1) = {0, 2, WIDE_FIXED},   /* int 16 */
        WIDE(0xd2) = {0, 4, WIDE_FIXED},   /* int 32 */
        WIDE(0xd3) = {0, 8, WIDE_FIXED},   /* int 64 */
        WIDE(0xd4) = {0, 2, WIDE_FIXED},   /* fixext 1 */
        WIDE(0xd5) = {0, 3, WIDE_FIXED},   /* fixext 2 */
        WIDE(0xd6) = {0, 5, WIDE_FIXED},   /* fixext 4 */
        WIDE(0xd7) = {0, 9, WIDE_FIXED},   /* fixext 8 */
        WIDE(0xd8) = {0, 17, WIDE_FIXED},  /* fixext 16 */
        WIDE(0xd9) = {1, 0, WIDE_PAYLOAD}, /* str 8 */
        WIDE(0xda) = {2, 0, WIDE_PAYLOAD}, /* str 16 */
        WIDE(0xdb) = {4, 0, WIDE_PAYLOAD}, /* str 32 */
        WIDE(0xdc) = {2, 0, WIDE_ARRAY},   /* array 16 */
        WIDE(0xdd) = {4, 0, WIDE_ARRAY},   /* array 32 */
        WIDE(0xde) = {2, 0, WIDE_MAP},     /* map 16 */
        WIDE(0xdf) = {4, 0, WIDE_MAP},     /* map 32 */
};

#undef WIDE

static void error_set(struct msg_error *err, int code, size_t offset,
                   const char *field, const char *fmt, ...)
{
        va_list ap;

        if (!err)
                return;
        err->code = code;
        err->offset = offset;
        snprintf(err->field, sizeof(err->field), "%s", field);
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
}

/* Big-endian unsigned integer of width 1, 2 or 4 bytes at p. */
static uint32_t load_be(const unsigned char *p, unsigned width)
{
        uint32_t v = 0;

        for (unsigned i = 0; i < width; i++)
                v = v << 8 | p[i];
        return v;
}

static int cut_value(struct msg_error *err, size_t pos, uint64_t need,
                     size_t left)
{
        error_set(err, MSG_E_PARSE, pos, "",
                  "message truncated: the value at offset %zu needs "
                  "%llu bytes, %zu remain",
                  pos, (unsigned long long)need, left);
        return MSG_E_PARSE;
}

/* Header of a value whose type byte b is 0xc0-0xdf. */
static int head_wide(const unsigned char *buf, size_t len, size_t pos,
                     struct scan_head *h, struct msg_error *err)
{
        const struct wide_format *f = &wide_formats[buf[pos] - 0xc0];
        size_t left = len - pos;
        size_t hsize = 1u + f->width + f->fixed;
        uint32_t n;

        if (f->kind == WIDE_INVALID) {
                error_set(err, MSG_E_PARSE, pos, "",
                          "not msgpack: reserved byte 0x%02x at offset "
                          "%zu",
                          buf[pos], pos);
                return MSG_E_PARSE;
        }
        if (hsize > left)
                return cut_value(err, pos, hsize, left);
        n = load_be(buf + pos + 1, f->width);
        h->size = hsize;
        h->count = 0;
        h->kind = SCAN_SCALAR;
        if (f->kind == WIDE_PAYLOAD) {
                if (n > left - hsize)
                        return cut_value(err, pos, (uint64_t)hsize + n, left);
                h->size += n;
        } else if (f->kind == WIDE_ARRAY || f->kind == WIDE_MAP) {
                h->kind = f->kind == WIDE_ARRAY ? SCAN_ARRAY
                                                : SCAN_MAP;
                h->count = n;
        }
        return 0;
}

static int scan_head(const unsigned char *buf, size_t len, size_t pos,
                  struct scan_head *ret_head, struct msg_error *err)
{
        struct scan_head h = {SCAN_SCALAR, 0, 1};
        unsigned char b;
        int rc;

        if (pos >= len) {
                error_set(err, MSG_E_PARSE, len, "",
                          "message truncated: it ends at offset %zu "
                          "where a value should start",
                          len);
                return MSG_E_PARSE;
        }
        b = buf[pos];
        if (b <= 0x7f || b >= 0xe0) {
                /* positive or negative fixint: h as initialised */
        } else if (b <= 0x8f) {
                h.kind = SCAN_MAP;
                h.count = b & 0x0fu;
        } else if (b <= 0x9f) {
                h.kind = SCAN_ARRAY;
                h.count = b & 0x0fu;
        } else if (b <= 0xbf) {
                h.size += b & 0x1fu; /* fixstr */
                if (h.size > len - pos)
                        return cut_value(err, pos, h.size, len - pos);
        } else {
                rc = head_wide(buf, len, pos, &h, err);
                if (rc < 0)
                        return rc;
        }
        *ret_head = h;
        return 0;
}

/* Checks that the elements a container header declares can be present:
 * each takes at least one byte, so there are no more than bytes left. */
static int check_container(size_t len, size_t pos,
                           const struct scan_head *h, uint64_t values,
                           struct msg_error *err)
{
        size_t left = len - pos - h->size;

        if (values <= left)
                return 0;
        error_set(err, MSG_E_PARSE, pos, "",
                  "message truncated: the %s at offset %zu has %lu "
                  "%s, %zu bytes follow",
                  h->kind == SCAN_MAP ? "map" : "array", pos,
                  (unsigned long)h->count,
                  h->kind == SCAN_MAP ? "pairs" : "elements", left);
        return MSG_E_PARSE;
}

static int scan_value(const unsigned char *buf, size_t len, size_t *pos,
                   struct msg_error *err)
{
        size_t left[SCAN_DEPTH_MAX]; /* values still due, per level */
        unsigned depth = 0;
        size_t p = *pos;
        struct scan_head h;
        uint64_t values;
        int rc;

        for (;;) {
                rc = scan_head(buf, len, p, &h, err);
                if (rc < 0)
                        return rc;
                if (h.kind != SCAN_SCALAR) {
                        if (depth == SCAN_DEPTH_MAX) {
                                error_set(err, MSG_E_PARSE, p, "",
                                          "containers nested deeper "
                                          "than %d at offset %zu",
                                          SCAN_DEPTH_MAX, p);
                                return MSG_E_PARSE;
                        }
                        values = h.count;
                        if (h.kind == SCAN_MAP)
                                values *= 2;
                        rc = check_container(len, p, &h, values, err);
                        if (rc < 0)
                                return rc;
                        p += h.size;
                        if (values > 0) {
                                /* values <= len - p, checked above */
                                left[depth++] = (size_t)values;
                                continue;
                        }
                } else {
                        p += h.size;
                }
                /* A value is complete: count it in its container, and so
                 * on up for each container that this completes. */
                while (depth > 0 && --left[depth - 1] == 0)
                        depth--;
                if (depth == 0)
                        break;
        }
        *pos = p;
        return 0;
}

/* Offset after n values from pos, or len if they are not all there. */
static size_t skip_values(const unsigned char *buf, size_t len, size_t pos,
                          uint64_t n)
{
        for (; n > 0; n--) {
                if (scan_value(buf, len, &pos, NULL) < 0)
                        return len;
        }
        return pos;
}

static size_t scan_pair_offset(const unsigned char *buf, size_t len,
                            uint32_t pair, int want_value)
{
        struct scan_head h;
        uint64_t skip = 2 * (uint64_t)pair + (want_value ? 1 : 0);

        if (scan_head(buf, len, 0, &h, NULL) < 0 ||
            h.kind != SCAN_MAP || pair >= h.count)
                return len;
        return skip_values(buf, len, h.size, skip);
}

static size_t scan_element_offset(const unsigned char *buf, size_t len,
                               size_t pos, uint32_t index)
{
        struct scan_head h;

        if (scan_head(buf, len, pos, &h, NULL) < 0 ||
            h.kind != SCAN_ARRAY || index >= h.count)
                return len;
        return skip_values(buf, len, pos + h.size, index);
}

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
#define PAIR_NONE UINT32_MAX

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

struct ref_decoder {
        unsigned k;
        struct class_name *names; /* k entries, or NULL: integers only */
        char *name_bytes;         /* the copied names, NUL-terminated */
        msgpack_zone zone;        /* cleared before each message */
};

/* The message being decoded, for error reports. */
struct decode_ctx {
        const unsigned char *buf;
        size_t len;
        struct msg_error *err;
};

/* Where each known key sits in the top-level map. */
struct field_index {
        uint32_t pair[FIELD_COUNT]; /* pair number, or PAIR_NONE */
};

/* The first zone chunk, which msgpack_zone_clear() keeps, holds a map of
 * ZONE_PAIRS pairs and pred_probs, and as much again for extra keys; a
 * larger message takes a malloc() and free() each.  Sized for at most
 * ZONE_K_MAX classes so that the product cannot overflow. */
#define ZONE_PAIRS 16
#define ZONE_K_MAX 65536u

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
static int names_build(struct ref_decoder *dec, const char *const *names)
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
static long names_find(const struct ref_decoder *dec, const char *name,
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

static size_t zone_chunk_size(unsigned k)
{
        size_t classes = k < ZONE_K_MAX ? k : ZONE_K_MAX;
        size_t chunk = 2 * (ZONE_PAIRS * sizeof(msgpack_object_kv) +
                            classes * sizeof(msgpack_object));

        return chunk > MSGPACK_ZONE_CHUNK_SIZE ? chunk
                                               : MSGPACK_ZONE_CHUNK_SIZE;
}

int ref_decoder_new(const struct msg_schema *schema, struct ref_decoder **ret)
{
        struct ref_decoder *dec;
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
        if (!msgpack_zone_init(&dec->zone, zone_chunk_size(dec->k))) {
                rc = MSG_E_NOMEM;
                goto out_free_names;
        }
        *ret = dec;
        return 0;

out_free_names:
        free(dec->names);
        free(dec->name_bytes);
out_free_dec:
        free(dec);
        return rc;
}

void ref_decoder_free(struct ref_decoder *dec)
{
        if (!dec)
                return;
        msgpack_zone_destroy(&dec->zone);
        free(dec->names);
        free(dec->name_bytes);
        free(dec);
}

static const char *type_name(msgpack_object_type type)
{
        switch (type) {
        case MSGPACK_OBJECT_NIL: return "nil";
        case MSGPACK_OBJECT_BOOLEAN: return "boolean";
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return "integer";
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
        case MSGPACK_OBJECT_FLOAT32: return "float32";
        case MSGPACK_OBJECT_FLOAT64: return "float64";
        case MSGPACK_OBJECT_STR: return "string";
        case MSGPACK_OBJECT_ARRAY: return "array";
        case MSGPACK_OBJECT_MAP: return "map";
        case MSGPACK_OBJECT_BIN: return "bin";
        case MSGPACK_OBJECT_EXT: return "ext";
        }
        return "unknown type";
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

static size_t value_offset(const struct decode_ctx *c, uint32_t pair)
{
        return scan_pair_offset(c->buf, c->len, pair, 1);
}

static int type_error(const struct decode_ctx *c, uint32_t pair,
                      const char *field, const char *expected,
                      const msgpack_object *obj)
{
        error_set(c->err, MSG_E_TYPE, value_offset(c, pair), field,
                  "expected %s, got %s", expected, type_name(obj->type));
        return MSG_E_TYPE;
}

static bool is_number(const msgpack_object *obj)
{
        return obj->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
               obj->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
               obj->type == MSGPACK_OBJECT_FLOAT32 ||
               obj->type == MSGPACK_OBJECT_FLOAT64;
}

/* A number object as double; integers above 2^53 are rounded. */
static double number_value(const msgpack_object *obj)
{
        switch (obj->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: return (double)obj->via.u64;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return (double)obj->via.i64;
        default: return obj->via.f64;
        }
}

/*
 * Checks the raw bytes, unpacks them into the zone and checks that the top
 * level is a map.  The scan runs first so that msgpack_unpack() neither
 * allocates for elements that are not there nor fails without an offset.
 */
static int unpack_map(struct ref_decoder *dec, const struct decode_ctx *c,
                      msgpack_object *ret_map)
{
        msgpack_unpack_return ur;
        msgpack_object obj;
        size_t end = 0;
        int rc;

        if (c->len == 0) {
                error_set(c->err, MSG_E_PARSE, 0, "", "empty message");
                return MSG_E_PARSE;
        }
        rc = scan_value(c->buf, c->len, &end, c->err);
        if (rc == 0 && end != c->len) {
                error_set(c->err, MSG_E_PARSE, end, "",
                          "trailing bytes: the top-level value ends at "
                          "offset %zu of %zu",
                          end, c->len);
                rc = MSG_E_PARSE;
        }
        if (rc < 0) {
                if (c->buf[0] == '{' || c->buf[0] == '[')
                        error_set(c->err, MSG_E_PARSE, 0, "",
                                  "not msgpack: starts with '%c', "
                                  "JSON perhaps",
                                  c->buf[0]);
                return rc;
        }

        msgpack_zone_clear(&dec->zone);
        ur = msgpack_unpack((const char *)c->buf, c->len, NULL, &dec->zone,
                            &obj);
        if (ur != MSGPACK_UNPACK_SUCCESS) {
                /* The scan accepted the bytes: only the zone can fail. */
                error_set(c->err, MSG_E_NOMEM, c->len, "",
                          "msgpack_unpack failed (%d) on %zu bytes",
                          (int)ur, c->len);
                return MSG_E_NOMEM;
        }
        if (obj.type != MSGPACK_OBJECT_MAP) {
                error_set(c->err, MSG_E_TYPE, 0, "",
                          "expected a map at the top level, got %s",
                          type_name(obj.type));
                return MSG_E_TYPE;
        }
        *ret_map = obj;
        return 0;
}

static int field_find(const msgpack_object_str *key)
{
        for (int f = 0; f < FIELD_COUNT; f++) {
                if (key->size == fields[f].len &&
                    memcmp(key->ptr, fields[f].name, key->size) == 0)
                        return f;
        }
        return -1;
}

/*
 * Records the pair number of each field in want (FIELD_BIT mask) found in
 * the map.  Every key must be a string; a field of want must not repeat.
 */
static int index_fields(const struct decode_ctx *c,
                        const msgpack_object_map *map, unsigned want,
                        struct field_index *idx)
{
        for (int f = 0; f < FIELD_COUNT; f++)
                idx->pair[f] = PAIR_NONE;
        for (uint32_t i = 0; i < map->size; i++) {
                const msgpack_object *key = &map->ptr[i].key;
                int f;

                if (key->type != MSGPACK_OBJECT_STR) {
                        error_set(c->err, MSG_E_TYPE,
                                  scan_pair_offset(c->buf, c->len,
                                                           i, 0),
                                  "", "expected a string key, got %s",
                                  type_name(key->type));
                        return MSG_E_TYPE;
                }
                f = field_find(&key->via.str);
                if (f < 0 || !(want & FIELD_BIT(f)))
                        continue;
                if (idx->pair[f] != PAIR_NONE) {
                        error_set(c->err, MSG_E_DUPLICATE,
                                  scan_pair_offset(c->buf, c->len,
                                                           i, 0),
                                  fields[f].name,
                                  "duplicate key '%s', first at offset "
                                  "%zu",
                                  fields[f].name,
                                  scan_pair_offset(c->buf, c->len,
                                                           idx->pair[f], 0));
                        return MSG_E_DUPLICATE;
                }
                idx->pair[f] = i;
        }
        return 0;
}

static int check_required(const struct decode_ctx *c,
                          const struct field_index *idx, unsigned required)
{
        for (int f = 0; f < FIELD_COUNT; f++) {
                if ((required & FIELD_BIT(f)) && idx->pair[f] == PAIR_NONE) {
                        error_set(c->err, MSG_E_MISSING, c->len,
                                  fields[f].name,
                                  "required field '%s' is missing",
                                  fields[f].name);
                        return MSG_E_MISSING;
                }
        }
        return 0;
}

static int decode_id(const struct decode_ctx *c, uint32_t pair,
                     const msgpack_object *obj, struct msg_label *lab)
{
        switch (obj->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (obj->via.u64 > INT64_MAX) {
                        error_set(c->err, MSG_E_TYPE,
                                  value_offset(c, pair), "id",
                                  "integer id %llu is above the int64 "
                                  "range",
                                  (unsigned long long)obj->via.u64);
                        return MSG_E_TYPE;
                }
                lab->id_kind = MSG_ID_INT;
                lab->id_int = (int64_t)obj->via.u64;
                lab->id = (struct msg_str){NULL, 0};
                return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                lab->id_kind = MSG_ID_INT;
                lab->id_int = obj->via.i64;
                lab->id = (struct msg_str){NULL, 0};
                return 0;
        case MSGPACK_OBJECT_STR:
                lab->id_kind = MSG_ID_STR;
                lab->id_int = 0;
                lab->id = (struct msg_str){obj->via.str.ptr, obj->via.str.size};
                return 0;
        default:
                return type_error(c, pair, "id", "an integer or a string", obj);
        }
}

static int decode_label_name(const struct ref_decoder *dec,
                             const struct decode_ctx *c, uint32_t pair,
                             const msgpack_object_str *str, int64_t *label)
{
        char shown[48];
        long index = -1;

        if (dec->names)
                index = names_find(dec, str->ptr, str->size);
        if (index >= 0) {
                *label = index;
                return 0;
        }
        quote_bytes(shown, sizeof(shown), str->ptr, str->size);
        error_set(c->err, MSG_E_LABEL, value_offset(c, pair), "label",
                  dec->names ? "unknown class name '%s'"
                                 : "class name '%s' given, but the schema "
                                   "has no class names",
                  shown);
        return MSG_E_LABEL;
}

static int decode_label(const struct ref_decoder *dec,
                        const struct decode_ctx *c, uint32_t pair,
                        const msgpack_object *obj, int64_t *label)
{
        switch (obj->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
                if (obj->via.u64 > INT64_MAX) {
                        error_set(c->err, MSG_E_LABEL,
                                  value_offset(c, pair), "label",
                                  "label %llu is above the int64 range",
                                  (unsigned long long)obj->via.u64);
                        return MSG_E_LABEL;
                }
                *label = (int64_t)obj->via.u64;
                return 0;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
                *label = obj->via.i64;
                return 0;
        case MSGPACK_OBJECT_STR:
                return decode_label_name(dec, c, pair, &obj->via.str, label);
        default:
                return type_error(c, pair, "label",
                                  "an integer class index or a class name",
                                  obj);
        }
}

static int decode_probs(const struct ref_decoder *dec,
                        const struct decode_ctx *c, uint32_t pair,
                        const msgpack_object *obj, double *probs)
{
        const msgpack_object_array *arr = &obj->via.array;

        if (obj->type != MSGPACK_OBJECT_ARRAY)
                return type_error(c, pair, "pred_probs", "an array", obj);
        if (arr->size != dec->k) {
                error_set(c->err, MSG_E_WIDTH, value_offset(c, pair),
                          "pred_probs",
                          "pred_probs has %lu values, expected %u",
                          (unsigned long)arr->size, dec->k);
                return MSG_E_WIDTH;
        }
        for (uint32_t i = 0; i < arr->size; i++) {
                const msgpack_object *v = &arr->ptr[i];
                char field[sizeof(((struct msg_error *)0)->field)];

                if (is_number(v)) {
                        probs[i] = number_value(v);
                        continue;
                }
                snprintf(field, sizeof(field), "pred_probs[%lu]",
                         (unsigned long)i);
                error_set(c->err, MSG_E_TYPE,
                          scan_element_offset(c->buf, c->len,
                                                      value_offset(c, pair),
                                                      i),
                          field, "expected a number, got %s",
                          type_name(v->type));
                return MSG_E_TYPE;
        }
        return 0;
}

static int decode_str(const struct decode_ctx *c, uint32_t pair,
                      enum field f, const msgpack_object *obj,
                      struct msg_str *str)
{
        if (obj->type != MSGPACK_OBJECT_STR)
                return type_error(c, pair, fields[f].name, "a string", obj);
        *str = (struct msg_str){obj->via.str.ptr, obj->via.str.size};
        return 0;
}

static int decode_ts(const struct decode_ctx *c, uint32_t pair,
                     const msgpack_object *obj, double *ts)
{
        if (!is_number(obj))
                return type_error(c, pair, "ts", "a number", obj);
        *ts = number_value(obj);
        return 0;
}

/* Decodes the optional fields found in idx into lab. */
static int decode_optional(const struct decode_ctx *c,
                           const msgpack_object_map *map,
                           const struct field_index *idx,
                           struct msg_label *lab)
{
        uint32_t p;
        int rc;

        p = idx->pair[FIELD_ANNOTATOR];
        if (p != PAIR_NONE) {
                rc = decode_str(c, p, FIELD_ANNOTATOR, &map->ptr[p].val,
                                &lab->annotator);
                if (rc < 0)
                        return rc;
        }
        p = idx->pair[FIELD_MODEL];
        if (p != PAIR_NONE) {
                rc = decode_str(c, p, FIELD_MODEL, &map->ptr[p].val,
                                &lab->model);
                if (rc < 0)
                        return rc;
        }
        p = idx->pair[FIELD_TS];
        if (p != PAIR_NONE) {
                rc = decode_ts(c, p, &map->ptr[p].val, &lab->ts);
                if (rc < 0)
                        return rc;
                lab->has_ts = true;
        }
        return 0;
}

static int decode_fields(const struct ref_decoder *dec,
                         const struct decode_ctx *c,
                         const msgpack_object_map *map,
                         const struct field_index *idx, struct msg_label *lab)
{
        uint32_t p;
        int rc;

        p = idx->pair[FIELD_ID];
        rc = decode_id(c, p, &map->ptr[p].val, lab);
        if (rc < 0)
                return rc;
        p = idx->pair[FIELD_LABEL];
        rc = decode_label(dec, c, p, &map->ptr[p].val, &lab->label);
        if (rc < 0)
                return rc;
        p = idx->pair[FIELD_PROBS];
        rc = decode_probs(dec, c, p, &map->ptr[p].val, lab->probs);
        if (rc < 0)
                return rc;
        return decode_optional(c, map, idx, lab);
}

/* Rejects NULL arguments: buf may be NULL only when len is 0, probs is
 * needed by msg_decode() alone. */
static int check_args(const struct ref_decoder *dec, const void *buf,
                      size_t len, const struct msg_label *out,
                      bool need_probs, struct msg_error *err)
{
        if (dec && out && (buf || len == 0) && (out->probs || !need_probs))
                return 0;
        error_set(err, MSG_E_PARAM, len, "",
                  "NULL decoder, buffer, label or label probs");
        return MSG_E_PARAM;
}

/*
 * The steps that msg_decode() and msg_decode_id() share: the bytes, the
 * top-level map, and the pair of each field in want (FIELD_BIT mask), of
 * which the required ones must be present.
 */
static int index_message(struct ref_decoder *dec, const struct decode_ctx *c,
                         unsigned want, msgpack_object *map,
                         struct field_index *idx)
{
        int rc;

        rc = unpack_map(dec, c, map);
        if (rc < 0)
                return rc;
        rc = index_fields(c, &map->via.map, want, idx);
        if (rc < 0)
                return rc;
        return check_required(c, idx, want & FIELDS_REQUIRED);
}

int ref_decode(struct ref_decoder *dec, const void *buf, size_t len,
               struct msg_label *out, struct msg_error *err)
{
        struct decode_ctx c = {buf, len, err};
        struct msg_label lab = {0};
        struct field_index idx;
        msgpack_object map;
        int rc;

        rc = check_args(dec, buf, len, out, true, err);
        if (rc < 0)
                return rc;
        rc = index_message(dec, &c, FIELDS_ALL, &map, &idx);
        if (rc < 0)
                return rc;

        lab.probs = out->probs;
        rc = decode_fields(dec, &c, &map.via.map, &idx, &lab);
        if (rc < 0)
                return rc;
        *out = lab;
        return 0;
}

int ref_decode_id(struct ref_decoder *dec, const void *buf, size_t len,
                  struct msg_label *out, struct msg_error *err)
{
        struct decode_ctx c = {buf, len, err};
        struct msg_label lab = {0};
        struct field_index idx;
        msgpack_object map;
        uint32_t p;
        int rc;

        rc = check_args(dec, buf, len, out, false, err);
        if (rc < 0)
                return rc;
        rc = index_message(dec, &c, FIELD_BIT(FIELD_ID), &map, &idx);
        if (rc < 0)
                return rc;

        p = idx.pair[FIELD_ID];
        rc = decode_id(&c, p, &map.via.map.ptr[p].val, &lab);
        if (rc < 0)
                return rc;
        out->id_kind = lab.id_kind;
        out->id_int = lab.id_int;
        out->id = lab.id;
        return 0;
}
