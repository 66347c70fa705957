#include "cfd_headers.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HDR_VERDICT "confidentd-verdict"
#define HDR_GIVEN "confidentd-given"
#define HDR_SUGGESTED "confidentd-suggested"
#define HDR_QUALITY "confidentd-quality"
#define HDR_THRESHOLD "confidentd-threshold"
#define HDR_REASON "confidentd-reason"
#define HDR_SOURCE "confidentd-source"
#define HDR_ERROR "confidentd-error"

static int add(rd_kafka_headers_t *h, const char *name, const char *value)
{
        return rd_kafka_header_add(h, name, -1, value, -1) ? -1 : 0;
}

/* Writes the decimal digits of x ending just before end; returns the
 * first digit.  (snprintf's format parsing showed in profiles.) */
static char *put_digits(char *end, uint64_t x)
{
        do {
                *--end = (char)('0' + x % 10);
                x /= 10;
        } while (x);
        return end;
}

const char *cfd_headers_format_source(char *buf, size_t size,
                                      const struct cfd_source *src)
{
        char digits[48], *end = digits + sizeof(digits), *p;
        size_t len = strlen(src->topic), tail;

        p = put_digits(end, src->offset >= 0 ? (uint64_t)src->offset : 0);
        *--p = '/';
        p = put_digits(p, src->partition >= 0 ? (uint64_t)src->partition
                                              : 0);
        *--p = '/';
        tail = (size_t)(end - p);
        if (tail >= size) /* below 32 bytes: no topic, the offset cut */
                tail = size - 1;
        if (len + tail + 1 > size)
                len = size - tail - 1;
        memcpy(buf, src->topic, len);
        memcpy(buf + len, p, tail);
        buf[len + tail] = '\0';
        return buf;
}

/*
 * printf's "%.6g" for the values the headers carry (quality in [0, 1],
 * thresholds up to 2), without printf's format parsing and arbitrary
 * precision conversion: 6 significant digits, fixed notation, trailing
 * zeros dropped.  Where the product v * 10^n lies too close to a rounding
 * tie for double arithmetic to decide it, and outside [1e-4, 10), it
 * falls back to snprintf, so the text is always exactly printf's.
 */
const char *cfd_headers_format_g6(char *buf, size_t size, double v)
{
        /* v in [floor[z], 10 floor[z]) has z zeros after the point. */
        static const double floor_of[] = {1.0, 0.1, 0.01, 0.001, 0.0001};
        static const double scale[] = {1e5, 1e6, 1e7, 1e8, 1e9};
        char digits[24], *end = digits + sizeof(digits), *p, *q = buf;
        int z = 0, decimals;
        size_t len;
        uint64_t n;
        double x, r;

        if (size < 16 || !(v >= 1e-4 && v < 10.0))
                goto slow;
        while (v < floor_of[z])
                z++;
        x = v * scale[z]; /* 6 significant digits before the point */
        r = nearbyint(x);
        if (fabs(x - floor(x) - 0.5) < 1e-6 || r < 1e5 || r >= 1e6)
                goto slow; /* a tie to settle exactly, or a carry to 10^k */
        n = (uint64_t)r;
        decimals = 5 + z;
        while (decimals > 0 && n % 10 == 0) {
                n /= 10;
                decimals--;
        }
        p = put_digits(end, n);
        len = (size_t)(end - p);
        if (len > (size_t)decimals) {
                memcpy(q, p, len - (size_t)decimals);
                q += len - (size_t)decimals;
                p += len - (size_t)decimals;
                len = (size_t)decimals;
        } else {
                *q++ = '0';
        }
        if (decimals > 0) {
                *q++ = '.';
                for (size_t lead = (size_t)decimals - len; lead > 0; lead--)
                        *q++ = '0';
                memcpy(q, p, len);
                q += len;
        }
        *q = '\0';
        return buf;
slow:
        snprintf(buf, size, "%.6g", v);
        return buf;
}

/* x in decimal at the start of buf, which holds at least 11 bytes. */
static void format_uint(char *buf, unsigned x)
{
        char digits[16], *end = digits + sizeof(digits), *p;

        p = put_digits(end, x);
        memcpy(buf, p, (size_t)(end - p));
        buf[end - p] = '\0';
}

void cfd_headers_values(struct cfd_header_values *ret,
                        const struct cl_verdict *v,
                        const struct cfd_source *src)
{
        format_uint(ret->given, v->given);
        format_uint(ret->suggested, v->suggested);
        cfd_headers_format_g6(ret->quality, sizeof(ret->quality), v->quality);
        cfd_headers_format_g6(ret->threshold, sizeof(ret->threshold),
                              v->threshold);
        cfd_headers_format_source(ret->source, sizeof(ret->source), src);
}

rd_kafka_headers_t *cfd_headers_verdict(const struct cl_verdict *v,
                                        bool suspect,
                                        const struct cfd_source *src)
{
        struct cfd_header_values val;
        rd_kafka_headers_t *h;
        int rc = 0;

        cfd_headers_values(&val, v, src);
        h = rd_kafka_headers_new(8);
        rc |= add(h, HDR_VERDICT, suspect ? "suspect" : "clean");
        rc |= add(h, HDR_GIVEN, val.given);
        rc |= add(h, HDR_SUGGESTED, val.suggested);
        rc |= add(h, HDR_QUALITY, val.quality);
        rc |= add(h, HDR_THRESHOLD, val.threshold);
        rc |= add(h, HDR_REASON, v->reason);
        rc |= add(h, HDR_SOURCE, val.source);
        if (rc) {
                rd_kafka_headers_destroy(h);
                return NULL;
        }
        return h;
}

rd_kafka_headers_t *cfd_headers_dead_letter(const char *code,
                                            const char *reason,
                                            const struct cfd_source *src)
{
        char source[CFD_HEADERS_SOURCE_MAX];
        rd_kafka_headers_t *h;
        int rc = 0;

        cfd_headers_format_source(source, sizeof(source), src);
        h = rd_kafka_headers_new(4);
        rc |= add(h, HDR_ERROR, code);
        rc |= add(h, HDR_REASON, reason);
        rc |= add(h, HDR_SOURCE, source);
        if (rc) {
                rd_kafka_headers_destroy(h);
                return NULL;
        }
        return h;
}
