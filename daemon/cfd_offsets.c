#include "cfd_offsets.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Partition numbers above this are refused as malformed. */
#define PARTITION_MAX 1000000

void cfd_offsets_release(struct cfd_offsets *o)
{
        free(o->next);
        o->next = NULL;
        o->n = 0;
}

int64_t cfd_offsets_get(const struct cfd_offsets *o, int32_t p)
{
        if (p < 0 || (size_t)p >= o->n)
                return -1;
        return o->next[p];
}

static int grow(struct cfd_offsets *o, size_t n)
{
        int64_t *next;

        if (n <= o->n)
                return 0;
        next = realloc(o->next, n * sizeof(*next));
        if (!next)
                return -1;
        for (size_t i = o->n; i < n; i++)
                next[i] = -1;
        o->next = next;
        o->n = n;
        return 0;
}

static int set_one(struct cfd_offsets *o, int32_t p, int64_t offset)
{
        if (p < 0 || p > PARTITION_MAX || offset < 0)
                return 0;
        if (grow(o, (size_t)p + 1) < 0)
                return -1;
        o->next[p] = offset;
        return 0;
}

int cfd_offsets_set(struct cfd_offsets *o,
                    const rd_kafka_topic_partition_list_t *list)
{
        for (int i = 0; i < list->cnt; i++)
                if (set_one(o, list->elems[i].partition,
                            list->elems[i].offset) < 0)
                        return -1;
        return 0;
}

char *cfd_offsets_format(const struct cfd_offsets *o,
                         const rd_kafka_topic_partition_list_t *list)
{
        struct cfd_offsets all = {NULL, 0};
        size_t cap, len = 0;
        char *s = NULL;

        if (grow(&all, o->n) < 0)
                goto out;
        if (o->n)
                memcpy(all.next, o->next, o->n * sizeof(*o->next));
        if (cfd_offsets_set(&all, list) < 0)
                goto out;
        /* "2147483647:9223372036854775807," is 31 bytes. */
        cap = all.n * 32 + 1;
        s = malloc(cap);
        if (!s)
                goto out;
        s[0] = '\0';
        for (size_t p = 0; p < all.n; p++)
                if (all.next[p] >= 0)
                        len += (size_t)snprintf(s + len, cap - len,
                                                "%s%zu:%" PRId64,
                                                len ? "," : "", p,
                                                all.next[p]);
out:
        cfd_offsets_release(&all);
        return s;
}

int cfd_offsets_parse(struct cfd_offsets *o, const char *s, size_t len)
{
        char buf[64];
        size_t i = 0;

        cfd_offsets_release(o);
        while (i < len) {
                size_t j = i;
                long long p, off;
                int used = 0;

                while (j < len && s[j] != ',')
                        j++;
                if (j - i >= sizeof(buf))
                        goto bad;
                memcpy(buf, s + i, j - i);
                buf[j - i] = '\0';
                if (sscanf(buf, "%lld:%lld%n", &p, &off, &used) != 2 ||
                    (size_t)used != j - i || p < 0 || p > PARTITION_MAX ||
                    off < 0 || set_one(o, (int32_t)p, off) < 0)
                        goto bad;
                i = j + 1;
        }
        return 0;
bad:
        cfd_offsets_release(o);
        return -1;
}
