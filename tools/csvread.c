/*
 * csvread.c - buffered RFC 4180 reader.
 *
 * Input is read in blocks into r->in; a record's fields are copied, each
 * NUL-terminated, into r->rec, and r->off[i] is where field i starts.
 * Offsets rather than pointers because r->rec grows by realloc while a
 * record is parsed.
 */
#include "csvread.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CSV_BLOCK 65536
#define CSV_EOF   (-1)

#ifdef __GNUC__
#define CSV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CSV_PRINTF(f, a)
#endif

struct csv_reader {
        FILE *f;
        char *path;

        unsigned char in[CSV_BLOCK];
        size_t in_len, in_pos;
        int read_errno; /* errno of a failed read, 0 if none */

        char *rec;       /* fields of the current record, NUL-terminated */
        size_t rec_len, rec_cap;
        size_t *off;     /* off[i]: start of field i in rec */
        size_t nfields, off_cap;
        int saw_quote;   /* the record had a quoted field */

        char *names;     /* header fields, NUL-terminated, back to back */
        size_t *name_off;
        size_t ncols;

        size_t line;     /* line of the next input byte, 1-based */
        size_t rec_line; /* line where the current record starts */
        char error[256]; /* set once a read failed; later calls repeat it */
};

static void CSV_PRINTF(3, 4)
set_error(char *errbuf, size_t errsize, const char *fmt, ...)
{
        va_list ap;

        if (errbuf == NULL || errsize == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
}

/* Records "file:line: msg" in r->error.  Returns -1. */
static int CSV_PRINTF(3, 4)
fail(struct csv_reader *r, size_t line, const char *fmt, ...)
{
        char msg[160];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(r->error, sizeof(r->error), "%s:%zu: %s", r->path, line,
                 msg);
        return -1;
}

static int refill(struct csv_reader *r)
{
        r->in_pos = 0;
        r->in_len = fread(r->in, 1, sizeof(r->in), r->f);
        if (r->in_len == 0 && ferror(r->f))
                r->read_errno = errno != 0 ? errno : EIO;
        return r->in_len > 0;
}

/* Next input byte, or CSV_EOF at end of file or on a read error. */
static inline int get(struct csv_reader *r)
{
        int c;

        if (r->in_pos == r->in_len && !refill(r))
                return CSV_EOF;
        c = r->in[r->in_pos++];
        if (c == '\n')
                r->line++;
        return c;
}

static int grow(void **p, size_t *cap, size_t need, size_t item)
{
        size_t n = *cap ? *cap : 64;
        void *q;

        while (n < need) {
                if (n > SIZE_MAX / 2 / item)
                        return -1;
                n *= 2;
        }
        q = realloc(*p, n * item);
        if (q == NULL)
                return -1;
        *p = q;
        *cap = n;
        return 0;
}

static inline int push(struct csv_reader *r, int c)
{
        if (r->rec_len == r->rec_cap &&
            grow((void **)&r->rec, &r->rec_cap, r->rec_len + 1, 1) < 0)
                return fail(r, r->line, "out of memory");
        r->rec[r->rec_len++] = (char)c;
        return 0;
}

static int start_field(struct csv_reader *r)
{
        if (r->nfields == r->off_cap &&
            grow((void **)&r->off, &r->off_cap, r->nfields + 1,
                 sizeof(size_t)) < 0)
                return fail(r, r->line, "out of memory");
        r->off[r->nfields++] = r->rec_len;
        return 0;
}

/*
 * Handles a '\r' outside quotes: only "\r\n" (or "\r" at end of file)
 * ends a line.  Returns the terminator ('\n' or CSV_EOF), or -2 on error.
 */
static int carriage_return(struct csv_reader *r)
{
        int c = get(r);

        if (c == '\n' || c == CSV_EOF)
                return c;
        fail(r, r->line, "carriage return not followed by a line feed");
        return -2;
}

/*
 * Reads an unquoted field starting with byte c.  Returns the byte that
 * ended it (',', '\n' or CSV_EOF), or -2 on error.
 */
static int unquoted_field(struct csv_reader *r, int c)
{
        for (;;) {
                switch (c) {
                case ',':
                case '\n':
                case CSV_EOF:
                        return c;
                case '\r':
                        return carriage_return(r);
                case '"':
                        fail(r, r->line, "quote inside an unquoted field");
                        return -2;
                case '\0':
                        fail(r, r->line, "NUL byte in field");
                        return -2;
                }
                if (push(r, c) < 0)
                        return -2;
                c = get(r);
        }
}

/* Reads a field after its opening quote; returns as unquoted_field(). */
static int quoted_field(struct csv_reader *r)
{
        size_t open_line = r->line;
        int c;

        r->saw_quote = 1;
        for (;;) {
                c = get(r);
                if (c == CSV_EOF) {
                        fail(r, open_line, "unterminated quoted field");
                        return -2;
                }
                if (c == '"') {
                        c = get(r);
                        if (c != '"')
                                break;
                } else if (c == '\0') {
                        fail(r, r->line, "NUL byte in field");
                        return -2;
                }
                if (push(r, c) < 0)
                        return -2;
        }
        if (c == ',' || c == '\n' || c == CSV_EOF)
                return c;
        if (c == '\r')
                return carriage_return(r);
        fail(r, r->line, "unexpected character after a closing quote");
        return -2;
}

/* Reads one record into r->rec.  Returns 1, 0 at end of input, or -1. */
static int read_record(struct csv_reader *r)
{
        int c;

        r->rec_len = 0;
        r->nfields = 0;
        r->saw_quote = 0;
        r->rec_line = r->line;
        c = get(r);
        if (c == CSV_EOF)
                return 0;
        for (;;) {
                if (start_field(r) < 0)
                        return -1;
                c = c == '"' ? quoted_field(r) : unquoted_field(r, c);
                if (c == -2 || push(r, '\0') < 0)
                        return -1;
                if (c != ',')
                        return 1;
                c = get(r);
        }
}

/* A line with nothing on it: one empty, unquoted field. */
static int record_is_blank(const struct csv_reader *r)
{
        return r->nfields == 1 && r->rec_len == 1 && !r->saw_quote;
}

/* Reads records until one is not blank.  Returns as read_record(). */
static int read_nonblank(struct csv_reader *r)
{
        int rc;

        do
                rc = read_record(r);
        while (rc == 1 && record_is_blank(r));
        if (rc >= 0 && r->read_errno != 0)
                return fail(r, r->line, "read error: %s",
                            strerror(r->read_errno));
        return rc;
}

static void skip_bom(struct csv_reader *r)
{
        if (r->in_len == 0)
                refill(r);
        if (r->in_len >= 3 && memcmp(r->in, "\xef\xbb\xbf", 3) == 0)
                r->in_pos = 3;
}

/* Moves the current record into the header; checks names are unique. */
static int take_header(struct csv_reader *r)
{
        size_t i, j;

        r->names = r->rec;
        r->name_off = r->off;
        r->ncols = r->nfields;
        r->rec = NULL;
        r->rec_cap = 0;
        r->off = NULL;
        r->off_cap = 0;
        for (i = 0; i < r->ncols; i++)
                for (j = 0; j < i; j++)
                        if (strcmp(r->names + r->name_off[i],
                                   r->names + r->name_off[j]) == 0)
                                return fail(r, r->rec_line,
                                            "duplicate column '%s'",
                                            r->names + r->name_off[i]);
        return 0;
}

struct csv_reader *csv_open(const char *path, char *errbuf, size_t errsize)
{
        struct csv_reader *r;
        int rc;

        r = calloc(1, sizeof(*r));
        if (r == NULL || (r->path = strdup(path)) == NULL) {
                set_error(errbuf, errsize, "%s: out of memory", path);
                free(r);
                return NULL;
        }
        r->line = 1;
        r->f = fopen(path, "rb");
        if (r->f == NULL) {
                set_error(errbuf, errsize, "%s: %s", path, strerror(errno));
                goto out_free;
        }
        skip_bom(r);
        rc = read_nonblank(r);
        if (rc == 0)
                fail(r, r->line, "empty file, expected a header line");
        if (rc != 1 || take_header(r) < 0) {
                set_error(errbuf, errsize, "%s", r->error);
                goto out_free;
        }
        return r;
out_free:
        csv_close(r);
        return NULL;
}

void csv_close(struct csv_reader *r)
{
        if (r == NULL)
                return;
        if (r->f != NULL)
                fclose(r->f);
        free(r->path);
        free(r->rec);
        free(r->off);
        free(r->names);
        free(r->name_off);
        free(r);
}

int csv_column(const struct csv_reader *r, const char *name)
{
        size_t i;

        for (i = 0; i < r->ncols && i <= INT_MAX; i++)
                if (strcmp(r->names + r->name_off[i], name) == 0)
                        return (int)i;
        return -1;
}

size_t csv_columns(const struct csv_reader *r)
{
        return r->ncols;
}

int csv_next(struct csv_reader *r, char *errbuf, size_t errsize)
{
        int rc;

        if (r->error[0] == '\0') {
                rc = read_nonblank(r);
                if (rc == 1 && r->nfields != r->ncols)
                        rc = fail(r, r->rec_line,
                                  "%zu fields, but the header has %zu",
                                  r->nfields, r->ncols);
                if (rc >= 0)
                        return rc;
        }
        r->nfields = 0;
        set_error(errbuf, errsize, "%s", r->error);
        return -1;
}

const char *csv_field(const struct csv_reader *r, size_t i)
{
        return i < r->nfields ? r->rec + r->off[i] : NULL;
}

size_t csv_line(const struct csv_reader *r)
{
        return r->rec_line;
}

int csv_parse_i64(const char *s, long long *ret)
{
        char *end;
        long long v;

        /* strtoll() would skip leading blanks; a field must not have any. */
        if (*s != '-' && *s != '+' && (*s < '0' || *s > '9'))
                return -1;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0 || *end != '\0')
                return -1;
        *ret = v;
        return 0;
}

int csv_parse_f64(const char *s, double *ret)
{
        char *end;
        double v;

        if (*s == '\0' || isspace((unsigned char)*s))
                return -1;
        errno = 0;
        v = strtod(s, &end);
        if (*end != '\0' || end == s)
                return -1;
        /* ERANGE on underflow still gives a usable (tiny) value. */
        if (errno == ERANGE && isinf(v))
                return -1;
        *ret = v;
        return 0;
}
