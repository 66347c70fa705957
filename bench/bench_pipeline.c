/*
 * bench_pipeline.c - the daemon's per-message work without Kafka: decode
 * the msgpack value (msg_decode), decide (cl_observe), build the output
 * headers with the daemon's own cfd_headers_verdict(), free them.  Messages
 * are encoded in memory beforehand (K = 10, ~200 bytes, as
 * `confidentctl replay` sends with an annotator column).
 *
 *   bench_pipeline SECONDS
 *
 * Prints one line per stage alone and one for the whole, items per CPU
 * second of this thread and per wall second.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>
#include <msgpack.h>

#include "bench_common.h"
#include "cfd_headers.h"
#include "cl.h"
#include "msg.h"

#define K 10u
#define N_MSGS 65536u
#define CHUNK 4096u
#define WARM_ITEMS 100000u

enum stage {
        STAGE_DECODE = 1,
        STAGE_OBSERVE = 2,
        STAGE_HEADERS = 4,
        STAGE_ALL = 7,
};

struct bench {
        msgpack_sbuffer sbuf;
        size_t off[N_MSGS + 1]; /* message i: sbuf.data[off[i] .. off[i+1]) */
        long labels[N_MSGS];
        double probs[N_MSGS * K];
        struct msg_decoder *dec;
        struct cl_state *st;
        struct cl_verdict v;
        size_t bytes;
};

static int encode_all(struct bench *b)
{
        char annotator[32];

        bench_rows(11, K, N_MSGS, b->labels, b->probs);
        msgpack_sbuffer_init(&b->sbuf);
        for (size_t i = 0; i < N_MSGS; i++) {
                struct msg_encode_args a = {
                        .id_int = (int64_t)i,
                        .label = b->labels[i],
                        .probs = &b->probs[i * K],
                        .k = K,
                        .annotator = annotator,
                        .has_ts = true,
                        .ts = 1.7e9 + (double)i,
                };

                snprintf(annotator, sizeof(annotator), "annotator-%zu",
                         i % 50);
                b->off[i] = b->sbuf.size;
                if (msg_encode_label(&b->sbuf, &a) < 0)
                        return -1;
        }
        b->off[N_MSGS] = b->sbuf.size;
        b->bytes = b->sbuf.size;
        return 0;
}

/* One message through the chosen stages.  Returns 0 or -1. */
static int one(struct bench *b, size_t seq, unsigned stages)
{
        size_t i = seq % N_MSGS;
        double probs[K];
        struct msg_label m = {.probs = probs};
        const double *row = &b->probs[i * K];
        long label = b->labels[i];
        rd_kafka_headers_t *h;

        if (stages & STAGE_DECODE) {
                if (msg_decode(b->dec, b->sbuf.data + b->off[i],
                               b->off[i + 1] - b->off[i], &m, NULL) < 0)
                        return -1;
                row = probs;
                label = (long)m.label;
        }
        if ((stages & STAGE_OBSERVE) &&
            cl_observe(b->st, label, row, K, &b->v, NULL) < 0)
                return -1;
        if (stages & STAGE_HEADERS) {
                const struct cfd_source src = {"labels", (int32_t)(seq & 63),
                                               (int64_t)seq};

                h = cfd_headers_verdict(&b->v, b->v.tag == CL_TAG_SUSPECT,
                                        &src);
                if (!h)
                        return -1;
                rd_kafka_headers_destroy(h);
        }
        return 0;
}

static int run_stage(struct bench *b, const char *name, unsigned stages,
                     double seconds)
{
        double c0 = bench_clock(CLOCK_THREAD_CPUTIME_ID), cpu;
        double w0 = bench_clock(CLOCK_MONOTONIC), wall;
        size_t items = 0;

        do {
                for (size_t j = 0; j < CHUNK; j++)
                        if (one(b, items + j, stages) < 0) {
                                fprintf(stderr, "bench_pipeline: %s failed\n",
                                        name);
                                return -1;
                        }
                items += CHUNK;
                cpu = bench_clock(CLOCK_THREAD_CPUTIME_ID) - c0;
        } while (cpu < seconds);
        wall = bench_clock(CLOCK_MONOTONIC) - w0;
        printf("pipeline stage=%s items=%zu cpu_s=%.3f wall_s=%.3f "
               "items_per_cpu_s=%.0f items_per_s=%.0f\n",
               name, items, cpu, wall, (double)items / cpu,
               (double)items / wall);
        return 0;
}

/* A warm state with nothing held: as in a running daemon. */
static int warm_up(struct bench *b)
{
        struct cl_params p;
        struct cl_verdict *out;
        size_t cap;
        int rc = 0;

        cl_params_init(&p, K);
        if (cl_state_new(&p, &b->st) < 0)
                return -1;
        cap = cl_state_hold_capacity(b->st);
        out = malloc((cap ? cap : 1) * sizeof(*out));
        if (!out)
                return -1;
        for (size_t i = 0; i < WARM_ITEMS && rc == 0; i++) {
                rc = one(b, i, STAGE_DECODE | STAGE_OBSERVE);
                if (rc == 0 && cl_state_release_due(b->st) &&
                    cl_state_release(b->st, out, cap) < 0)
                        rc = -1;
        }
        if (rc == 0 && cl_state_release_force(b->st, out, cap) < 0)
                rc = -1;
        free(out);
        return rc;
}

int main(int argc, char **argv)
{
        struct msg_schema schema = {.k = K};
        struct bench *b = calloc(1, sizeof(*b));
        double seconds = argc > 1 ? strtod(argv[1], NULL) : 2.0;
        int rc = 1;

        if (!b || encode_all(b) < 0 || msg_decoder_new(&schema, &b->dec) < 0)
                goto out_free;
        if (warm_up(b) < 0)
                goto out_free;
        printf("pipeline messages=%u k=%u mean_bytes=%.0f\n", N_MSGS, K,
               (double)b->bytes / N_MSGS);
        if (run_stage(b, "decode", STAGE_DECODE, seconds / 4) < 0 ||
            run_stage(b, "observe", STAGE_OBSERVE, seconds / 4) < 0 ||
            run_stage(b, "headers", STAGE_HEADERS, seconds / 4) < 0 ||
            run_stage(b, "all", STAGE_ALL, seconds) < 0)
                goto out_free;
        rc = 0;
out_free:
        if (b) {
                msg_decoder_free(b->dec);
                cl_state_free(b->st);
                msgpack_sbuffer_destroy(&b->sbuf);
        }
        free(b);
        return rc;
}
