/*
 * npy.c - NumPy .npy reader and float64 writer.
 *
 * Layout (numpy/lib/format.py): the magic "\x93NUMPY", one byte each of
 * major and minor version, the header length (uint16 LE for 1.0, uint32 LE
 * for 2.0 and 3.0), then the header: a Python dict literal with the keys
 * 'descr', 'fortran_order' and 'shape', padded with spaces and a '\n' so
 * that the data starts on a 64-byte boundary.  3.0 only allows UTF-8 in
 * the header, which the ASCII parser below treats like 2.0.
 */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC     "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* Longest header accepted.  numpy itself refuses headers above 10000
 * bytes by default; a larger limit costs nothing and stays far from the
 * 4 GiB a malformed 2.0 length field could ask for. */
#define NPY_HEADER_MAX 65536
#define NPY_ALIGN      64

#ifdef __GNUC__
#define NPY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NPY_PRINTF(f, a)
#endif

struct dtype_info {
        const char *descr;
        enum npy_dtype dtype;
        size_t size;
};

static const struct dtype_info dtypes[] = {
        {"<f4", NPY_F4, 4}, {"<f8", NPY_F8, 8}, {"<i8", NPY_I8, 8},
        {"<i4", NPY_I4, 4}, {"<u2", NPY_U2, 2}, {"<u8", NPY_U8, 8},
};

/* The parsed header dict. */
struct npy_header {
        const struct dtype_info *dtype;
        int fortran_order; /* -1 until seen */
        int ndim;          /* -1 until seen */
        size_t shape[2];
};

/* Parser over the header text; pos is an index into text. */
struct hdr_parser {
        const char *text;
        size_t len;
        size_t pos;
        size_t file_offset; /* offset of text[0] in the file */
        const char *path;
        char *errbuf;
        size_t errsize;
};

static void NPY_PRINTF(3, 4)
set_error(char *errbuf, size_t errsize, const char *fmt, ...)
{
        va_list ap;

        if (errbuf == NULL || errsize == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
}

static int host_is_little_endian(void)
{
        uint16_t one = 1;
        unsigned char first;

        memcpy(&first, &one, 1);
        return first == 1;
}

/* Reverses the bytes of each of n items of size bytes, in place. */
static void swap_items(void *data, size_t n, size_t size)
{
        unsigned char *p = data;
        size_t i, j;

        for (i = 0; i < n; i++, p += size) {
                for (j = 0; j < size / 2; j++) {
                        unsigned char t = p[j];

                        p[j] = p[size - 1 - j];
                        p[size - 1 - j] = t;
                }
        }
}

/* ---- header dict parser ---------------------------------------------- */

static int NPY_PRINTF(2, 3)
hdr_fail(struct hdr_parser *p, const char *fmt, ...)
{
        char msg[160];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        set_error(p->errbuf, p->errsize, "%s: header at byte %zu: %s",
                  p->path, p->file_offset + p->pos, msg);
        return -1;
}

static void hdr_skip_space(struct hdr_parser *p)
{
        while (p->pos < p->len &&
               (p->text[p->pos] == ' ' || p->text[p->pos] == '\n' ||
                p->text[p->pos] == '\t' || p->text[p->pos] == '\r'))
                p->pos++;
}

/* Skips blanks and consumes c if it is next.  Returns 1 if consumed. */
static int hdr_accept(struct hdr_parser *p, char c)
{
        hdr_skip_space(p);
        if (p->pos < p->len && p->text[p->pos] == c) {
                p->pos++;
                return 1;
        }
        return 0;
}

static int hdr_expect(struct hdr_parser *p, char c)
{
        if (hdr_accept(p, c))
                return 0;
        return hdr_fail(p, "expected '%c'", c);
}

/* A Python string literal in ' or " quotes, without escapes. */
static int hdr_string(struct hdr_parser *p, const char **ret_s,
                      size_t *ret_len)
{
        size_t start;
        char quote;

        hdr_skip_space(p);
        if (p->pos >= p->len ||
            (p->text[p->pos] != '\'' && p->text[p->pos] != '"'))
                return hdr_fail(p, "expected a quoted string");
        quote = p->text[p->pos++];
        start = p->pos;
        while (p->pos < p->len && p->text[p->pos] != quote) {
                if (p->text[p->pos] == '\\')
                        return hdr_fail(p, "escapes are not supported");
                p->pos++;
        }
        if (p->pos >= p->len)
                return hdr_fail(p, "unterminated string");
        *ret_s = p->text + start;
        *ret_len = p->pos - start;
        p->pos++;
        return 0;
}

static int hdr_word(struct hdr_parser *p, const char *word)
{
        size_t n = strlen(word);

        if (p->len - p->pos >= n && memcmp(p->text + p->pos, word, n) == 0) {
                p->pos += n;
                return 1;
        }
        return 0;
}

static int hdr_bool(struct hdr_parser *p, int *ret)
{
        hdr_skip_space(p);
        if (hdr_word(p, "True"))
                *ret = 1;
        else if (hdr_word(p, "False"))
                *ret = 0;
        else
                return hdr_fail(p, "expected True or False");
        return 0;
}

static int hdr_size(struct hdr_parser *p, size_t *ret)
{
        size_t v = 0;
        size_t start;

        hdr_skip_space(p);
        start = p->pos;
        while (p->pos < p->len && p->text[p->pos] >= '0' &&
               p->text[p->pos] <= '9') {
                size_t d = (size_t)(p->text[p->pos] - '0');

                if (v > (SIZE_MAX - d) / 10)
                        return hdr_fail(p, "dimension too large");
                v = v * 10 + d;
                p->pos++;
        }
        if (p->pos == start)
                return hdr_fail(p, "expected a dimension");
        *ret = v;
        return 0;
}

/* A tuple of sizes: "()", "(n,)", "(n, m)", with an optional final ','. */
static int hdr_shape(struct hdr_parser *p, struct npy_header *h)
{
        size_t dims[2];
        int n = 0;

        if (hdr_expect(p, '(') < 0)
                return -1;
        while (!hdr_accept(p, ')')) {
                if (n == 2)
                        return hdr_fail(p, "more than 2 dimensions");
                if (hdr_size(p, &dims[n]) < 0)
                        return -1;
                n++;
                if (!hdr_accept(p, ',')) {
                        if (hdr_expect(p, ')') < 0)
                                return -1;
                        break;
                }
        }
        if (n == 0)
                return hdr_fail(p, "0-dimensional arrays are not supported");
        h->ndim = n;
        h->shape[0] = dims[0];
        h->shape[1] = n == 2 ? dims[1] : 1;
        return 0;
}

static int hdr_descr(struct hdr_parser *p, struct npy_header *h)
{
        const char *s;
        size_t len, i, start;

        hdr_skip_space(p);
        start = p->pos;
        if (hdr_string(p, &s, &len) < 0)
                return -1;
        for (i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
                if (strlen(dtypes[i].descr) == len &&
                    memcmp(dtypes[i].descr, s, len) == 0) {
                        h->dtype = &dtypes[i];
                        return 0;
                }
        }
        p->pos = start;
        return hdr_fail(p, "unsupported dtype '%.*s'",
                        (int)(len > 32 ? 32 : len), s);
}

static int hdr_entry(struct hdr_parser *p, struct npy_header *h)
{
        size_t key_pos, len;
        const char *key;

        hdr_skip_space(p);
        key_pos = p->pos;
        if (hdr_string(p, &key, &len) < 0 || hdr_expect(p, ':') < 0)
                return -1;
        if (len == 5 && memcmp(key, "descr", 5) == 0 && h->dtype == NULL)
                return hdr_descr(p, h);
        if (len == 13 && memcmp(key, "fortran_order", 13) == 0 &&
            h->fortran_order < 0)
                return hdr_bool(p, &h->fortran_order);
        if (len == 5 && memcmp(key, "shape", 5) == 0 && h->ndim < 0)
                return hdr_shape(p, h);
        p->pos = key_pos;
        return hdr_fail(p, "unknown or repeated key '%.*s'",
                        (int)(len > 32 ? 32 : len), key);
}

static int hdr_parse(struct hdr_parser *p, struct npy_header *h)
{
        h->dtype = NULL;
        h->fortran_order = -1;
        h->ndim = -1;
        if (hdr_expect(p, '{') < 0)
                return -1;
        while (!hdr_accept(p, '}')) {
                if (hdr_entry(p, h) < 0)
                        return -1;
                if (!hdr_accept(p, ',')) {
                        if (hdr_expect(p, '}') < 0)
                                return -1;
                        break;
                }
        }
        hdr_skip_space(p);
        if (p->pos != p->len)
                return hdr_fail(p, "unexpected text after the dict");
        if (h->dtype == NULL || h->fortran_order < 0 || h->ndim < 0)
                return hdr_fail(p, "missing key '%s'",
                                h->dtype == NULL          ? "descr"
                                : h->fortran_order < 0 ? "fortran_order"
                                                       : "shape");
        return 0;
}

/* ---- reading --------------------------------------------------------- */

/*
 * Reads magic, version and header length.  Sets *ret_len and
 * *ret_offset (file offset of the header text).
 */
static int read_preamble(FILE *f, const char *path, size_t *ret_len,
                         size_t *ret_offset, char *errbuf, size_t errsize)
{
        unsigned char pre[NPY_MAGIC_LEN + 2 + 4];
        size_t len;

        if (fread(pre, 1, NPY_MAGIC_LEN + 4, f) != NPY_MAGIC_LEN + 4 ||
            memcmp(pre, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
                set_error(errbuf, errsize, "%s: not a .npy file (bad magic)",
                          path);
                return -1;
        }
        if (pre[6] < 1 || pre[6] > 3 || pre[7] != 0) {
                set_error(errbuf, errsize,
                          "%s: unsupported format version %u.%u", path,
                          pre[6], pre[7]);
                return -1;
        }
        len = (size_t)pre[8] | (size_t)pre[9] << 8;
        *ret_offset = NPY_MAGIC_LEN + 4;
        if (pre[6] >= 2) {
                if (fread(pre + 10, 1, 2, f) != 2) {
                        set_error(errbuf, errsize,
                                  "%s: truncated header length", path);
                        return -1;
                }
                len |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
                *ret_offset = NPY_MAGIC_LEN + 6;
        }
        if (len > NPY_HEADER_MAX) {
                set_error(errbuf, errsize,
                          "%s: header length %zu exceeds the limit of %d",
                          path, len, NPY_HEADER_MAX);
                return -1;
        }
        *ret_len = len;
        return 0;
}

static int read_header(FILE *f, const char *path, struct npy_header *h,
                       char *errbuf, size_t errsize)
{
        struct hdr_parser p;
        size_t len, offset;
        char *text;
        int rc = -1;

        if (read_preamble(f, path, &len, &offset, errbuf, errsize) < 0)
                return -1;
        text = malloc(len + 1);
        if (text == NULL) {
                set_error(errbuf, errsize, "%s: out of memory", path);
                return -1;
        }
        if (fread(text, 1, len, f) != len) {
                set_error(errbuf, errsize,
                          "%s: truncated header (expected %zu bytes)", path,
                          len);
                goto out_free_text;
        }
        text[len] = '\0';
        p = (struct hdr_parser){.text = text, .len = len, .pos = 0,
                                .file_offset = offset, .path = path,
                                .errbuf = errbuf, .errsize = errsize};
        rc = hdr_parse(&p, h);
out_free_text:
        free(text);
        return rc;
}

/*
 * Reorders a column-major (fortran_order) rows x cols array in place of
 * *data into row-major order.  Returns 0, or -1 when out of memory.
 */
static int to_row_major(void **data, size_t rows, size_t cols, size_t size)
{
        const unsigned char *src = *data;
        unsigned char *dst;

        if (rows < 2 || cols < 2)
                return 0; /* one row or one column: same bytes */
        dst = malloc(rows * cols * size);
        if (dst == NULL)
                return -1;
        for (size_t c = 0; c < cols; c++)
                for (size_t r = 0; r < rows; r++)
                        memcpy(dst + (r * cols + c) * size,
                               src + (c * rows + r) * size, size);
        free(*data);
        *data = dst;
        return 0;
}

/* Reads exactly nbytes of array data and checks nothing follows. */
static int read_data(FILE *f, const char *path, void *data, size_t nbytes,
                     char *errbuf, size_t errsize)
{
        size_t got = fread(data, 1, nbytes, f);

        if (got != nbytes) {
                if (ferror(f))
                        set_error(errbuf, errsize, "%s: read error: %s",
                                  path, strerror(errno));
                else
                        set_error(errbuf, errsize,
                                  "%s: truncated data: %zu of %zu bytes",
                                  path, got, nbytes);
                return -1;
        }
        if (fgetc(f) != EOF) {
                set_error(errbuf, errsize,
                          "%s: unexpected bytes after %zu bytes of data",
                          path, nbytes);
                return -1;
        }
        return 0;
}

int npy_load(const char *path, struct npy_array *ret, char *errbuf,
             size_t errsize)
{
        struct npy_header h = {0};
        size_t items, nbytes;
        void *data = NULL;
        FILE *f;
        int rc = -1;

        f = fopen(path, "rb");
        if (f == NULL) {
                set_error(errbuf, errsize, "%s: %s", path, strerror(errno));
                return -1;
        }
        if (read_header(f, path, &h, errbuf, errsize) < 0)
                goto out_close;
        if ((h.shape[1] != 0 && h.shape[0] > SIZE_MAX / h.shape[1]) ||
            h.shape[0] * h.shape[1] > SIZE_MAX / h.dtype->size) {
                set_error(errbuf, errsize, "%s: shape %zu x %zu too large",
                          path, h.shape[0], h.shape[1]);
                goto out_close;
        }
        items = h.shape[0] * h.shape[1];
        nbytes = items * h.dtype->size;
        /* malloc(0) may return NULL; keep data non-NULL for empty arrays. */
        data = malloc(nbytes > 0 ? nbytes : 1);
        if (data == NULL) {
                set_error(errbuf, errsize, "%s: out of memory for %zu bytes",
                          path, nbytes);
                goto out_close;
        }
        if (read_data(f, path, data, nbytes, errbuf, errsize) < 0)
                goto out_free_data;
        if (!host_is_little_endian())
                swap_items(data, items, h.dtype->size);
        if (h.fortran_order &&
            to_row_major(&data, h.shape[0], h.shape[1], h.dtype->size) < 0) {
                set_error(errbuf, errsize, "%s: out of memory for %zu bytes",
                          path, nbytes);
                goto out_free_data;
        }
        *ret = (struct npy_array){.dtype = h.dtype->dtype,
                                  .rows = h.shape[0], .cols = h.shape[1],
                                  .ndim = h.ndim, .data = data};
        data = NULL;
        rc = 0;
out_free_data:
        free(data);
out_close:
        fclose(f);
        return rc;
}

double npy_get(const struct npy_array *a, size_t r, size_t c)
{
        size_t i = r * a->cols + c;

        switch (a->dtype) {
        case NPY_F4:
                return (double)((const float *)a->data)[i];
        case NPY_F8:
                return ((const double *)a->data)[i];
        case NPY_I8:
                return (double)((const int64_t *)a->data)[i];
        case NPY_I4:
                return (double)((const int32_t *)a->data)[i];
        case NPY_U2:
                return (double)((const uint16_t *)a->data)[i];
        case NPY_U8:
                return (double)((const uint64_t *)a->data)[i];
        }
        return 0.0;
}

void npy_array_free(struct npy_array *a)
{
        if (a == NULL)
                return;
        free(a->data);
        a->data = NULL;
        a->rows = 0;
        a->cols = 0;
}

/* ---- writing --------------------------------------------------------- */

/*
 * Formats a 1.0 header (preamble + dict + padding) into buf, padded so
 * that the data starts on a 64-byte boundary.  Returns its length.
 */
static size_t format_header(char *buf, size_t size, size_t rows, size_t cols)
{
        char dict[128];
        size_t len, total;
        int n;

        if (cols == 0)
                n = snprintf(dict, sizeof(dict),
                             "{'descr': '<f8', 'fortran_order': False, "
                             "'shape': (%zu,), }",
                             rows);
        else
                n = snprintf(dict, sizeof(dict),
                             "{'descr': '<f8', 'fortran_order': False, "
                             "'shape': (%zu, %zu), }",
                             rows, cols);
        len = (size_t)n;
        /* preamble 10 bytes + dict + padding spaces + '\n' */
        total = (NPY_MAGIC_LEN + 4 + len + 1 + NPY_ALIGN - 1) / NPY_ALIGN *
                NPY_ALIGN;
        if (total > size)
                return 0;
        memcpy(buf, NPY_MAGIC "\x01\x00", NPY_MAGIC_LEN + 2);
        buf[8] = (char)((total - 10) & 0xff);
        buf[9] = (char)((total - 10) >> 8);
        memcpy(buf + 10, dict, len);
        memset(buf + 10 + len, ' ', total - 10 - len - 1);
        buf[total - 1] = '\n';
        return total;
}

static int write_values(FILE *f, const double *data, size_t n)
{
        size_t i;

        if (host_is_little_endian())
                return fwrite(data, sizeof(double), n, f) == n ? 0 : -1;
        for (i = 0; i < n; i++) {
                double v = data[i];

                swap_items(&v, 1, sizeof(v));
                if (fwrite(&v, sizeof(v), 1, f) != 1)
                        return -1;
        }
        return 0;
}

int npy_save_f8(const char *path, const double *data, size_t rows,
                size_t cols, char *errbuf, size_t errsize)
{
        size_t items = cols == 0 ? rows : rows * cols;
        char header[256];
        size_t hlen;
        FILE *f;

        if (cols != 0 && rows > SIZE_MAX / sizeof(double) / cols) {
                set_error(errbuf, errsize, "%s: shape %zu x %zu too large",
                          path, rows, cols);
                return -1;
        }
        hlen = format_header(header, sizeof(header), rows, cols);
        f = fopen(path, "wb");
        if (f == NULL) {
                set_error(errbuf, errsize, "%s: %s", path, strerror(errno));
                return -1;
        }
        if (fwrite(header, 1, hlen, f) != hlen ||
            write_values(f, data, items) < 0) {
                set_error(errbuf, errsize, "%s: write error: %s", path,
                          strerror(errno));
                fclose(f);
                remove(path);
                return -1;
        }
        if (fclose(f) != 0) {
                set_error(errbuf, errsize, "%s: write error: %s", path,
                          strerror(errno));
                remove(path);
                return -1;
        }
        return 0;
}
