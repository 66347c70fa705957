#include "cfd_state.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfd_kafka.h"
#include "cfd_offsets.h"

#define FETCH_TIMEOUT_MS 30000
#define POLL_SLICE_MS 200
/* Newest records looked at first; the window grows until it finds the
 * key or covers the partition. */
#define WINDOW_FIRST 256
#define WINDOW_GROWTH 16
/* A snapshot file larger than this is refused before reading it. */
#define SNAPSHOT_FILE_MAX (1024L * 1024 * 1024)

static const char *const origin_names[] = {"empty", "topic", "file"};

const char *cfd_state_origin_name(enum cfd_state_origin origin)
{
        if ((unsigned)origin > CFD_STATE_FILE)
                return "unknown";
        return origin_names[origin];
}

int32_t cfd_state_partition(rd_kafka_topic_t *rkt, const char *key,
                            int32_t partition_cnt)
{
        return rd_kafka_msg_partitioner_consistent(rkt, key, strlen(key),
                                                   partition_cnt, NULL, NULL);
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Fetching from the state topic.
 */

struct fetch {
        rd_kafka_t *rk;
        const char *topic;
        const char *key;
        int32_t partition;
        int64_t deadline_ms;
        struct cfd_state_record rec; /* newest matching snapshot so far */
};

static rd_kafka_t *fetch_consumer(const struct cfg *cfg, const char *bootstrap,
                                  char *errbuf, size_t errsize)
{
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;

        conf = cfd_kafka_conf_new(cfg, CFD_KAFKA_CONSUMER, bootstrap, NULL,
                                  errbuf, errsize);
        if (!conf)
                return NULL;
        /* Reaching the end is how the read knows it has seen the newest. */
        if (rd_kafka_conf_set(conf, "enable.partition.eof", "true", errbuf,
                              errsize) != RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                return NULL;
        }
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errsize);
        if (!rk)
                rd_kafka_conf_destroy(conf);
        return rk;
}

static int find_partition(struct fetch *f, char *errbuf, size_t errsize)
{
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(f->rk, f->topic, NULL);
        rd_kafka_resp_err_t err;
        int rc = -1;

        if (!rkt) {
                snprintf(errbuf, errsize, "state topic '%s': %s", f->topic,
                         rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        err = rd_kafka_metadata(f->rk, 0, rkt, &md, FETCH_TIMEOUT_MS);
        if (err)
                snprintf(errbuf, errsize, "state topic '%s': metadata: %s",
                         f->topic, rd_kafka_err2str(err));
        else if (md->topic_cnt != 1 || md->topics[0].err ||
                 md->topics[0].partition_cnt < 1)
                snprintf(errbuf, errsize,
                         "state topic '%s': %s (create it with "
                         "cleanup.policy=compact)",
                         f->topic,
                         rd_kafka_err2str(md->topic_cnt && md->topics[0].err
                                                  ? md->topics[0].err
                                                  : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        else {
                f->partition = cfd_state_partition(
                        rkt, f->key, md->topics[0].partition_cnt);
                rc = 0;
        }
        if (md)
                rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        return rc;
}

/* A NUL-terminated copy of the record's input offsets header, or NULL. */
static char *copy_inputs(const rd_kafka_message_t *m, int *ret_err)
{
        rd_kafka_headers_t *hdrs = NULL;
        const void *value;
        size_t size;
        char *copy;

        *ret_err = 0;
        if (rd_kafka_message_headers(m, &hdrs) ||
            rd_kafka_header_get_last(hdrs, CFD_OFFSETS_HEADER, &value,
                                     &size))
                return NULL;
        copy = malloc(size + 1);
        if (!copy) {
                *ret_err = -1;
                return NULL;
        }
        memcpy(copy, value, size);
        copy[size] = '\0';
        return copy;
}

static int keep_if_ours(struct fetch *f, const rd_kafka_message_t *m)
{
        size_t key_len = strlen(f->key);
        char *copy, *inputs;
        int err;

        if (m->key_len != key_len || memcmp(m->key, f->key, key_len))
                return 0;
        if (!m->payload || m->len == 0)
                return 0; /* a tombstone: the key was deleted */
        copy = malloc(m->len);
        inputs = copy_inputs(m, &err);
        if (!copy || err) {
                free(copy);
                free(inputs);
                return -1;
        }
        memcpy(copy, m->payload, m->len);
        free(f->rec.buf);
        free(f->rec.inputs);
        f->rec = (struct cfd_state_record){copy, m->len, m->offset, inputs};
        return 0;
}

/* Reads from start to the end of the partition; keeps the newest record
 * of the key.  Returns 0 or -1 with errbuf filled. */
static int read_from(struct fetch *f, int64_t start, char *errbuf,
                     size_t errsize)
{
        rd_kafka_topic_partition_list_t *parts =
                rd_kafka_topic_partition_list_new(1);
        rd_kafka_resp_err_t err;
        int rc = -1;

        rd_kafka_topic_partition_list_add(parts, f->topic, f->partition)
                ->offset = start;
        err = rd_kafka_assign(f->rk, parts);
        rd_kafka_topic_partition_list_destroy(parts);
        if (err) {
                snprintf(errbuf, errsize, "state topic '%s': assign: %s",
                         f->topic, rd_kafka_err2str(err));
                return -1;
        }
        while (now_ms() < f->deadline_ms) {
                rd_kafka_message_t *m =
                        rd_kafka_consumer_poll(f->rk, POLL_SLICE_MS);

                if (!m)
                        continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        rd_kafka_message_destroy(m);
                        rc = 0;
                        break;
                }
                if (m->err) {
                        snprintf(errbuf, errsize, "state topic '%s': %s",
                                 f->topic, rd_kafka_message_errstr(m));
                        rd_kafka_message_destroy(m);
                        break;
                }
                if (keep_if_ours(f, m) < 0) {
                        snprintf(errbuf, errsize, "out of memory for a "
                                                  "snapshot of %zu bytes",
                                 m->len);
                        rd_kafka_message_destroy(m);
                        break;
                }
                rd_kafka_message_destroy(m);
        }
        if (rc < 0 && now_ms() >= f->deadline_ms)
                snprintf(errbuf, errsize,
                         "state topic '%s': no end of partition %d within "
                         "%d ms",
                         f->topic, (int)f->partition, FETCH_TIMEOUT_MS);
        rd_kafka_assign(f->rk, NULL);
        return rc;
}

static int fetch_newest(struct fetch *f, char *errbuf, size_t errsize)
{
        int64_t lo, hi, window = WINDOW_FIRST;
        rd_kafka_resp_err_t err;

        err = rd_kafka_query_watermark_offsets(f->rk, f->topic, f->partition,
                                               &lo, &hi, FETCH_TIMEOUT_MS);
        if (err) {
                snprintf(errbuf, errsize, "state topic '%s': offsets: %s",
                         f->topic, rd_kafka_err2str(err));
                return -1;
        }
        while (hi > lo) {
                int64_t start = hi - window > lo ? hi - window : lo;

                if (read_from(f, start, errbuf, errsize) < 0)
                        return -1;
                if (f->rec.buf || start == lo)
                        break;
                window *= WINDOW_GROWTH;
        }
        return f->rec.buf ? 1 : 0;
}

int cfd_state_fetch(const struct cfg *cfg, const char *bootstrap,
                    const char *topic, const char *key,
                    struct cfd_state_record *ret, char *errbuf,
                    size_t errsize)
{
        struct fetch f = {.topic = topic, .key = key, .rec.offset = -1};
        int rc = -1;

        f.deadline_ms = now_ms() + FETCH_TIMEOUT_MS;
        f.rk = fetch_consumer(cfg, bootstrap, errbuf, errsize);
        if (!f.rk)
                return -1;
        if (find_partition(&f, errbuf, errsize) == 0)
                rc = fetch_newest(&f, errbuf, errsize);
        rd_kafka_consumer_close(f.rk);
        rd_kafka_destroy(f.rk);

        if (rc == 1) {
                *ret = f.rec;
                return 1;
        }
        free(f.rec.buf);
        free(f.rec.inputs);
        return rc;
}

/*
 * Building the start state.
 */

static int read_file(const char *path, char **ret_buf, size_t *ret_len,
                     char *errbuf, size_t errsize)
{
        FILE *fp = fopen(path, "rb");
        char *buf = NULL;
        long size;

        if (!fp) {
                snprintf(errbuf, errsize, "%s: %s", path, strerror(errno));
                return -1;
        }
        if (fseek(fp, 0, SEEK_END) < 0 || (size = ftell(fp)) < 0 ||
            fseek(fp, 0, SEEK_SET) < 0) {
                snprintf(errbuf, errsize, "%s: %s", path, strerror(errno));
                goto out_close;
        }
        if (size == 0 || size > SNAPSHOT_FILE_MAX) {
                snprintf(errbuf, errsize, "%s: size %ld is not that of a "
                                          "snapshot",
                         path, size);
                goto out_close;
        }
        buf = malloc((size_t)size);
        if (!buf || fread(buf, 1, (size_t)size, fp) != (size_t)size) {
                snprintf(errbuf, errsize, "%s: %s", path,
                         buf ? "short read" : "out of memory");
                free(buf);
                buf = NULL;
                goto out_close;
        }
        *ret_buf = buf;
        *ret_len = (size_t)size;
out_close:
        fclose(fp);
        return buf ? 0 : -1;
}

/* Names the first parameter in which have differs from want, or NULL. */
static const char *params_differ(const struct cl_params *have,
                                 const struct cl_params *want)
{
        if (have->k != want->k)
                return "classes";
        if (have->filter != want->filter)
                return "filter.method";
        if (have->bins != want->bins)
                return "filter.bins";
        if (have->half_life != want->half_life)
                return "filter.half_life";
        if (have->warmup_total != want->warmup_total)
                return "filter.warmup_total";
        if (have->warmup_class != want->warmup_class)
                return "filter.warmup_class";
        if (have->min_examples != want->min_examples)
                return "filter.min_examples";
        if (have->sum_tol != want->sum_tol)
                return "filter.sum_tolerance";
        return NULL;
}

static int restore(const char *what, const char *buf, size_t len,
                   const struct cl_params *params, struct cl_state **ret,
                   char *errbuf, size_t errsize)
{
        struct cl_state *st = NULL;
        const char *field;
        int rc = cl_state_restore(buf, len, &st);

        if (rc < 0) {
                snprintf(errbuf, errsize, "%s: %s", what, cl_strerror(rc));
                return -1;
        }
        field = params_differ(cl_state_params(st), params);
        if (field) {
                snprintf(errbuf, errsize,
                         "%s was made with another '%s' than the "
                         "configuration; start from it with the old value, "
                         "or from scratch with a new delivery."
                         "transactional_id",
                         what, field);
                cl_state_free(st);
                return -1;
        }
        *ret = st;
        return 0;
}

int cfd_state_build(const struct cfg *cfg, const struct cl_params *params,
                    const char *buf, size_t len, struct cl_state **ret_state,
                    enum cfd_state_origin *ret_origin, char *errbuf,
                    size_t errsize)
{
        char *file = NULL;
        size_t file_len = 0;
        int rc;

        if (buf) {
                *ret_origin = CFD_STATE_TOPIC;
                return restore("the state topic's snapshot", buf, len, params,
                               ret_state, errbuf, errsize);
        }
        if (cfg->state.initial) {
                if (read_file(cfg->state.initial, &file, &file_len, errbuf,
                              errsize) < 0)
                        return -1;
                rc = restore(cfg->state.initial, file, file_len, params,
                             ret_state, errbuf, errsize);
                free(file);
                *ret_origin = CFD_STATE_FILE;
                return rc;
        }
        rc = cl_state_new(params, ret_state);
        if (rc < 0) {
                snprintf(errbuf, errsize, "new state: %s", cl_strerror(rc));
                return -1;
        }
        *ret_origin = CFD_STATE_EMPTY;
        return 0;
}
