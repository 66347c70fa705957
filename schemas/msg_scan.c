/*
 * msg_scan.c - checks raw msgpack bytes for the single-pass decoder
 * (msg_decode.c).  Formats as in the msgpack specification (spec.md,
 * "Formats"); 0xc1 is the one reserved byte.
 */
#include "msg_scan.h"

#include <stdarg.h>
#include <stdio.h>

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

void msg_error_set(struct msg_error *err, int code, size_t offset,
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
        msg_error_set(err, MSG_E_PARSE, pos, "",
                      "message truncated: the value at offset %zu needs "
                      "%llu bytes, %zu remain",
                      pos, (unsigned long long)need, left);
        return MSG_E_PARSE;
}

/* Header of a value whose type byte b is 0xc0-0xdf. */
static int head_wide(const unsigned char *buf, size_t len, size_t pos,
                     struct msg_scan_head *h, struct msg_error *err)
{
        const struct wide_format *f = &wide_formats[buf[pos] - 0xc0];
        size_t left = len - pos;
        size_t hsize = 1u + f->width + f->fixed;
        uint32_t n;

        if (f->kind == WIDE_INVALID) {
                msg_error_set(err, MSG_E_PARSE, pos, "",
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
        h->kind = MSG_SCAN_SCALAR;
        if (f->kind == WIDE_PAYLOAD) {
                if (n > left - hsize)
                        return cut_value(err, pos, (uint64_t)hsize + n, left);
                h->size += n;
        } else if (f->kind == WIDE_ARRAY || f->kind == WIDE_MAP) {
                h->kind = f->kind == WIDE_ARRAY ? MSG_SCAN_ARRAY
                                                : MSG_SCAN_MAP;
                h->count = n;
        }
        return 0;
}

int msg_scan_head(const unsigned char *buf, size_t len, size_t pos,
                  struct msg_scan_head *ret_head, struct msg_error *err)
{
        struct msg_scan_head h = {MSG_SCAN_SCALAR, 0, 1};
        unsigned char b;
        int rc;

        if (pos >= len) {
                msg_error_set(err, MSG_E_PARSE, len, "",
                              "message truncated: it ends at offset %zu "
                              "where a value should start",
                              len);
                return MSG_E_PARSE;
        }
        b = buf[pos];
        if (b <= 0x7f || b >= 0xe0) {
                /* positive or negative fixint: h as initialised */
        } else if (b <= 0x8f) {
                h.kind = MSG_SCAN_MAP;
                h.count = b & 0x0fu;
        } else if (b <= 0x9f) {
                h.kind = MSG_SCAN_ARRAY;
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

int msg_scan_check_count(size_t len, size_t pos,
                         const struct msg_scan_head *h, struct msg_error *err)
{
        size_t left = len - pos - h->size;
        uint64_t values = h->count;

        if (h->kind == MSG_SCAN_MAP)
                values *= 2;
        if (values <= left)
                return 0;
        msg_error_set(err, MSG_E_PARSE, pos, "",
                      "message truncated: the %s at offset %zu has %lu "
                      "%s, %zu bytes follow",
                      h->kind == MSG_SCAN_MAP ? "map" : "array", pos,
                      (unsigned long)h->count,
                      h->kind == MSG_SCAN_MAP ? "pairs" : "elements", left);
        return MSG_E_PARSE;
}

int msg_scan_value(const unsigned char *buf, size_t len, size_t *pos,
                   unsigned open, struct msg_error *err)
{
        size_t left[MSG_SCAN_DEPTH_MAX]; /* values still due, per level */
        unsigned depth = open;
        size_t p = *pos;
        struct msg_scan_head h;
        int rc;

        for (;;) {
                rc = msg_scan_head(buf, len, p, &h, err);
                if (rc < 0)
                        return rc;
                if (h.kind != MSG_SCAN_SCALAR) {
                        if (depth >= MSG_SCAN_DEPTH_MAX) {
                                msg_error_set(err, MSG_E_PARSE, p, "",
                                              "containers nested deeper "
                                              "than %d at offset %zu",
                                              MSG_SCAN_DEPTH_MAX, p);
                                return MSG_E_PARSE;
                        }
                        rc = msg_scan_check_count(len, p, &h, err);
                        if (rc < 0)
                                return rc;
                        p += h.size;
                        if (h.count > 0) {
                                /* 2 * count <= len - p, checked above */
                                left[depth++] = h.kind == MSG_SCAN_MAP
                                                        ? 2 * (size_t)h.count
                                                        : h.count;
                                continue;
                        }
                } else {
                        p += h.size;
                }
                /* A value is complete: count it in its container, and so
                 * on up for each container that this completes. */
                while (depth > open && --left[depth - 1] == 0)
                        depth--;
                if (depth == open)
                        break;
        }
        *pos = p;
        return 0;
}
