/*
 * test_hot_path.c - the daemon's own per-item work allocates nothing and
 * makes no system call once the statistics are warm.
 *
 * Allocations are counted by defining malloc, calloc, realloc,
 * reallocarray, free, posix_memalign, aligned_alloc, memalign, valloc and
 * pvalloc in this executable; each counts and forwards to glibc's
 * __libc_* entry points.  Being in the executable, the definitions
 * interpose for everyone in the process: our static libraries linked here
 * (cfd_core, cfd_schemas, cfd_daemon), shared libraries (msgpack-c) and
 * glibc itself (snprintf, strdup).  test_counting_sees_every_caller
 * proves that for each kind of caller.  Counts are kept per step of an
 * item, on the test's thread only.  System calls are caught in a forked
 * child under a seccomp filter that traps every call but exit_group and
 * exit; the SIGSYS handler reports the call and the step (where seccomp
 * filters cannot be installed, those tests are skipped, saying so).
 *
 * Per item, as daemon/cfd_loop.c's score(), make_headers() and
 * account_slot() do it, with the loop's reused probability row, calling
 * the daemon's own functions:
 *
 * - msg_decode() of msgpack values made beforehand by msg_encode_label()
 *   (ids as integers and strings, labels as integers and class names,
 *   float64 and float32 probabilities, with and without annotator, model
 *   and ts);
 * - cl_observe() on a warm state with cl_params_init() defaults (warm-up
 *   hold, prune_by_noise_rate, 256 bins; for K = 100 only 20 of the 99
 *   off-diagonal joint cells per class are kept), nothing held;
 * - the header values of a decided item: cfd_headers_values() of
 *   daemon/cfd_headers.c, which cfd_headers_verdict() uses (given and
 *   suggested labels, quality and threshold through
 *   cfd_headers_format_g6(), including values outside [1e-4, 10) that
 *   take its snprintf() fallback, and the source);
 * - the dead-letter text of a bad item: a decode error (MSG_E_PARSE for
 *   truncated, empty and trailing bytes, _TYPE, _WIDTH, _MISSING,
 *   _DUPLICATE, _LABEL) through cfd_reason_decode(), and a row that
 *   cl_observe() rejects (NaN, infinity, out of range, 1e300, a sum off
 *   the tolerance, a label out of range) through cfd_reason_row(), both of
 *   daemon/cfd_reason.c, which reject_decode() and reject_row() call; the
 *   error names; the source through cfd_headers_format_source(), which
 *   cfd_headers_dead_letter() uses;
 * - the metrics of the item: cfd_metrics_consumed(), _verdict() (top
 *   annotators), _dead_letter() and _delivered(), without an HTTP server.
 *
 * The figures: 100,000 items for K = 2, 10 and 100, one in sixteen of
 * them bad, after the warm-up and one unmeasured pass over every message
 * (so that once-only work, such as a first annotator or a first dead-letter
 * reason in the metrics, is not counted).
 *
 * Not covered:
 *
 * - librdkafka's per-message allocations: rd_kafka_headers_new() and one
 *   per rd_kafka_header_add() in cfd_headers_verdict() and
 *   cfd_headers_dead_letter(), the produced message itself, the consumed
 *   messages.  librdkafka is not called here, so neither are those two
 *   functions themselves, only the formatting they start with.
 * - The glue in daemon/cfd_loop.c: score(), reject_decode(), reject_row()
 *   and make_headers() are static and reached only from a consumed Kafka
 *   message.  What they add to the functions above is assignments to the
 *   slot and the cfd_source taken from the message; this test builds the
 *   same calls itself, so a new call added there is not seen here.
 * - The warm-up hold.  core/cl_hold.c does not grow its buffer: it is
 *   allocated whole by cl_state_new() (cl_hold_init(): one calloc and
 *   three mallocs for cl_hold_capacity() rows, the larger of the warm-up
 *   rows, ceil(warmup_total) or under decay the items that reach it plus
 *   one, and delay_items + 1, cut to what fits in CL_HOLD_MAX_BYTES), and
 *   cl_observe() copies a held item into a free slot (cl_hold_push()).
 *   What allocates during warm-up is the release: cl_state_release() and
 *   cl_state_release_force() run batch mode over the held rows
 *   (cl_batch_new(), about n (K + 8) doubles, freed before they return),
 *   once per release, not per item.  The warm-up runs here unmeasured;
 *   its counts are printed, not checked.
 * - Per-batch work (transactions, snapshots, cfd_metrics_publish()),
 *   suspect routing (cfd_routes_suspect() needs a producer) and the
 *   clock read once per consume call.
 */
#define _GNU_SOURCE /* reallocarray, valloc, MAP_ANONYMOUS, si_syscall */

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cmocka.h>
#include <msgpack.h>

#include "cfd_headers.h"
#include "cfd_metrics.h"
#include "cfd_reason.h"
#include "cl.h"
#include "msg.h"

#define N_MSGS 4096u      /* messages made beforehand, used in turn */
#define BAD_EVERY 16u     /* message i is bad when i % BAD_EVERY == 7 */
#define ITEMS 100000u     /* measured items of steady state */
#define REASON_SIZE 256u  /* CFD_REASON_MAX, daemon/cfd_loop_priv.h */

/*
 * Counting allocations.
 */

enum step {
        STEP_NONE = 0, /* not counted */
        STEP_PROBE,    /* test_counting_sees_every_caller */
        STEP_WARMUP,   /* cl_observe() during warm-up: printed only */
        STEP_RELEASE,  /* cl_state_release*() during warm-up: printed */
        STEP_DECODE,
        STEP_OBSERVE,
        STEP_FORMAT,
        STEP_DEAD_LETTER,
        STEP_METRICS,
        STEP_COUNT,
};

static const char *const step_names[STEP_COUNT] = {
        "none", "probe", "warm-up cl_observe", "warm-up release",
        "msg_decode", "cl_observe", "header values", "dead-letter text",
        "metrics",
};

struct heap_count {
        unsigned long allocs; /* calls that return memory */
        unsigned long frees;  /* free() of a non-NULL pointer */
        size_t first_size;
        void *first_caller;
};

/* The step of the test's thread; other threads stay at STEP_NONE.  Read
 * by the SIGSYS handler too. */
static _Thread_local volatile sig_atomic_t cur_step;
static struct heap_count heap[STEP_COUNT];

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);
void *__libc_memalign(size_t align, size_t size);
void *__libc_valloc(size_t size);
void *__libc_pvalloc(size_t size);

static void count_alloc(size_t size, void *caller)
{
        struct heap_count *c;

        if (cur_step == STEP_NONE)
                return;
        c = &heap[cur_step];
        if (c->allocs++ == 0) {
                c->first_size = size;
                c->first_caller = caller;
        }
}

void *malloc(size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
        count_alloc(n * size, __builtin_return_address(0));
        return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_realloc(p, size);
}

void *reallocarray(void *p, size_t n, size_t size)
{
        count_alloc(n * size, __builtin_return_address(0));
        if (size && n > SIZE_MAX / size) {
                errno = ENOMEM;
                return NULL;
        }
        return __libc_realloc(p, n * size);
}

void free(void *p)
{
        if (p && cur_step != STEP_NONE)
                heap[cur_step].frees++;
        __libc_free(p);
}

void *memalign(size_t align, size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_memalign(align, size);
}

void *aligned_alloc(size_t align, size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_memalign(align, size);
}

int posix_memalign(void **ret, size_t align, size_t size)
{
        void *p;

        count_alloc(size, __builtin_return_address(0));
        if (align < sizeof(void *) || (align & (align - 1)) != 0)
                return EINVAL;
        p = __libc_memalign(align, size);
        if (!p)
                return ENOMEM;
        *ret = p;
        return 0;
}

void *valloc(size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_valloc(size);
}

void *pvalloc(size_t size)
{
        count_alloc(size, __builtin_return_address(0));
        return __libc_pvalloc(size);
}

static void heap_reset(void)
{
        memset(heap, 0, sizeof(heap));
}

/* Fails naming every measured step that allocated or freed. */
static void expect_no_heap_calls(unsigned k, unsigned long items)
{
        char msg[1024];
        size_t n = 0;

        for (int s = STEP_DECODE; s < STEP_COUNT; s++) {
                const struct heap_count *c = &heap[s];
                Dl_info info = {0};

                if (c->allocs == 0 && c->frees == 0)
                        continue;
                if (c->first_caller)
                        dladdr(c->first_caller, &info);
                n += (size_t)snprintf(
                        msg + n, sizeof(msg) - n,
                        "%s: %lu allocations, %lu frees over %lu items "
                        "(first: %zu bytes, called from %s+%#tx %s); ",
                        step_names[s], c->allocs, c->frees, items,
                        c->first_size,
                        info.dli_fname ? info.dli_fname : "?",
                        (const char *)c->first_caller -
                                (const char *)info.dli_fbase,
                        info.dli_sname ? info.dli_sname : "");
                if (n >= sizeof(msg))
                        break;
        }
        if (n > 0)
                fail_msg("K = %u: %s", k, msg);
}

/*
 * Messages.
 */

/* What message i is made to be. */
enum kind {
        GOOD = 0,
        /* Decode errors. */
        BAD_TRUNCATED,
        BAD_EMPTY,
        BAD_TRAILING,
        BAD_NOT_MAP,
        BAD_WIDTH,
        BAD_MISSING,
        BAD_DUPLICATE,
        BAD_LABEL_NAME,
        BAD_LABEL_FLOAT,
        /* Rows cl_observe() rejects. */
        BAD_NAN,
        BAD_INF,
        BAD_ABOVE_ONE,
        BAD_HUGE,
        BAD_NEGATIVE,
        BAD_SUM,
        BAD_LABEL_K,
        BAD_LABEL_NEG,
        BAD_LABEL_MAX,
        KIND_COUNT,
};

static const struct {
        int decode; /* MSG_E_* expected from msg_decode(), or 0 */
        int row;    /* CL_E_* expected from cl_observe(), or 0 */
} expected[KIND_COUNT] = {
        [GOOD] = {0, 0},
        [BAD_TRUNCATED] = {MSG_E_PARSE, 0},
        [BAD_EMPTY] = {MSG_E_PARSE, 0},
        [BAD_TRAILING] = {MSG_E_PARSE, 0},
        [BAD_NOT_MAP] = {MSG_E_TYPE, 0},
        [BAD_WIDTH] = {MSG_E_WIDTH, 0},
        [BAD_MISSING] = {MSG_E_MISSING, 0},
        [BAD_DUPLICATE] = {MSG_E_DUPLICATE, 0},
        [BAD_LABEL_NAME] = {MSG_E_LABEL, 0},
        [BAD_LABEL_FLOAT] = {MSG_E_TYPE, 0},
        [BAD_NAN] = {0, CL_E_NONFINITE},
        [BAD_INF] = {0, CL_E_NONFINITE},
        [BAD_ABOVE_ONE] = {0, CL_E_RANGE},
        [BAD_HUGE] = {0, CL_E_RANGE},
        [BAD_NEGATIVE] = {0, CL_E_RANGE},
        [BAD_SUM] = {0, CL_E_ROW_SUM},
        [BAD_LABEL_K] = {0, CL_E_LABEL_RANGE},
        [BAD_LABEL_NEG] = {0, CL_E_LABEL_RANGE},
        [BAD_LABEL_MAX] = {0, CL_E_LABEL_RANGE},
};

struct fixture {
        unsigned k;
        char **names;           /* class names "class-0" ... */
        msgpack_sbuffer sbuf;   /* every message, back to back */
        size_t off[N_MSGS + 1]; /* message i: sbuf.data[off[i] .. off[i+1]) */
        unsigned char kind[N_MSGS];
        struct msg_decoder *dec;
        struct cl_state *st;
        struct cfd_metrics *metrics;
        int topic_in, topic_out[3]; /* clean, suspect, dead letter */
        double *probs;              /* K values, reused, as loop->probs */
        double *row;                /* K + 1 values, for making messages */
};

/* xorshift64*: the same messages on every run. */
static uint64_t next_u64(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 2685821657736338717ull;
}

static double next_unit(uint64_t *s)
{
        return (double)(next_u64(s) >> 11) * 0x1p-53;
}

/* A row of K probabilities peaked on a random true class; returns the
 * given label, the true class with 10 % noise.  One row in sixteen gives
 * the label almost nothing (a quality below 1e-4). */
static long make_row(uint64_t *s, unsigned k, double *p)
{
        unsigned truth = (unsigned)(next_u64(s) % k);
        long given = truth;
        double sum = 0.0, u;

        for (unsigned j = 0; j < k; j++) {
                u = next_unit(s);
                p[j] = u * u * u * u;
        }
        p[truth] += 0.5 + 3.0 * next_unit(s);
        if (next_unit(s) < 0.1)
                given = (long)((truth + 1 + next_u64(s) % (k - 1)) % k);
        if (next_u64(s) % 16 == 0)
                p[given] = 1e-6 * next_unit(s);
        for (unsigned j = 0; j < k; j++)
                sum += p[j];
        for (unsigned j = 0; j < k; j++)
                p[j] /= sum;
        return given;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
        size_t len = strlen(s);

        assert_int_equal(msgpack_pack_str(pk, len), 0);
        assert_int_equal(msgpack_pack_str_body(pk, s, len), 0);
}

static void pack_probs(msgpack_packer *pk, const double *p, unsigned k)
{
        assert_int_equal(msgpack_pack_array(pk, k), 0);
        for (unsigned j = 0; j < k; j++)
                assert_int_equal(msgpack_pack_double(pk, p[j]), 0);
}

/* Appends message i of the given kind to f->sbuf. */
static void make_message(struct fixture *f, uint64_t *s, size_t i,
                         enum kind kind)
{
        char id[32], annotator[32];
        unsigned k = f->k;
        long given = make_row(s, k, f->row);
        struct msg_encode_args a = {
                .id_str = i % 3 == 0 ? id : NULL,
                .id_int = (int64_t)i,
                .label = given,
                .label_name = i % 4 == 1 ? f->names[given] : NULL,
                .probs = f->row,
                .k = k,
                .use_float32 = i % 5 == 2,
                .annotator = i % 8 != 5 ? annotator : NULL,
                .model = i % 7 == 0 ? "model-a" : NULL,
                .has_ts = i % 3 != 2,
                .ts = 1.7e9 + (double)i,
        };
        msgpack_sbuffer tmp;
        msgpack_packer pk;
        size_t cut;

        snprintf(id, sizeof(id), "item-%zu", i);
        snprintf(annotator, sizeof(annotator), "annotator-%zu", i % 40);
        msgpack_packer_init(&pk, &f->sbuf, msgpack_sbuffer_write);
        switch (kind) {
        case GOOD:
                break;
        case BAD_TRUNCATED:
        case BAD_TRAILING:
                msgpack_sbuffer_init(&tmp);
                assert_int_equal(msg_encode_label(&tmp, &a), 0);
                cut = kind == BAD_TRUNCATED ? tmp.size / 2 : tmp.size;
                assert_int_equal(msgpack_sbuffer_write(&f->sbuf, tmp.data,
                                                       cut), 0);
                if (kind == BAD_TRAILING)
                        assert_int_equal(msgpack_pack_nil(&pk), 0);
                msgpack_sbuffer_destroy(&tmp);
                return;
        case BAD_EMPTY:
                return;
        case BAD_NOT_MAP:
                pack_probs(&pk, f->row, k);
                return;
        case BAD_WIDTH:
                a.k = k + 1;
                f->row[k] = 0.0;
                break;
        case BAD_MISSING:
                assert_int_equal(msgpack_pack_map(&pk, 2), 0);
                pack_str(&pk, "id");
                assert_int_equal(msgpack_pack_int64(&pk, (int64_t)i), 0);
                pack_str(&pk, "pred_probs");
                pack_probs(&pk, f->row, k);
                return;
        case BAD_DUPLICATE:
                assert_int_equal(msgpack_pack_map(&pk, 4), 0);
                pack_str(&pk, "id");
                assert_int_equal(msgpack_pack_int64(&pk, (int64_t)i), 0);
                pack_str(&pk, "label");
                assert_int_equal(msgpack_pack_int64(&pk, given), 0);
                pack_str(&pk, "label");
                assert_int_equal(msgpack_pack_int64(&pk, given), 0);
                pack_str(&pk, "pred_probs");
                pack_probs(&pk, f->row, k);
                return;
        case BAD_LABEL_NAME:
                a.label_name = "no-such-class";
                break;
        case BAD_LABEL_FLOAT:
                assert_int_equal(msgpack_pack_map(&pk, 3), 0);
                pack_str(&pk, "id");
                assert_int_equal(msgpack_pack_int64(&pk, (int64_t)i), 0);
                pack_str(&pk, "label");
                assert_int_equal(msgpack_pack_double(&pk, (double)given),
                                 0);
                pack_str(&pk, "pred_probs");
                pack_probs(&pk, f->row, k);
                return;
        case BAD_NAN:
                f->row[i % k] = NAN;
                break;
        case BAD_INF:
                f->row[i % k] = INFINITY;
                break;
        case BAD_ABOVE_ONE:
                f->row[i % k] = 1.5;
                break;
        case BAD_HUGE:
                f->row[i % k] = 1e300;
                a.use_float32 = false; /* float32 would make it infinite */
                break;
        case BAD_NEGATIVE:
                f->row[i % k] = -0.25;
                break;
        case BAD_SUM:
                for (unsigned j = 0; j < k; j++)
                        f->row[j] *= 0.9;
                break;
        case BAD_LABEL_K:
                a.label = k;
                a.label_name = NULL;
                break;
        case BAD_LABEL_NEG:
                a.label = -1;
                a.label_name = NULL;
                break;
        case BAD_LABEL_MAX:
                a.label = INT64_MAX;
                a.label_name = NULL;
                break;
        case KIND_COUNT:
                fail();
        }
        assert_int_equal(msg_encode_label(&f->sbuf, &a), 0);
}

static void make_messages(struct fixture *f)
{
        uint64_t s = 0x9e3779b97f4a7c15ull ^ f->k;

        msgpack_sbuffer_init(&f->sbuf);
        for (size_t i = 0; i < N_MSGS; i++) {
                enum kind kind = GOOD;

                if (i % BAD_EVERY == 7)
                        kind = (enum kind)(1 + (i / BAD_EVERY) %
                                                   (KIND_COUNT - 1));
                f->kind[i] = (unsigned char)kind;
                f->off[i] = f->sbuf.size;
                make_message(f, &s, i, kind);
        }
        f->off[N_MSGS] = f->sbuf.size;
}

/*
 * One item, as the daemon handles it.
 */

struct tally {
        unsigned long items;
        unsigned long decided;      /* clean or suspect */
        unsigned long dead_letters;
        unsigned long unexpected;   /* outcome other than the kind's */
        unsigned long held;         /* CL_TAG_HELD: must not happen */
        unsigned long g6_fallback;  /* values outside [1e-4, 10) */
        unsigned long text_bytes;   /* keeps the formatted text used */
        unsigned long empty_text;   /* a header value or reason left empty */
        unsigned decode_seen;       /* bit -code per MSG_E_* seen */
        unsigned row_seen;          /* bit -code per CL_E_* seen */
};

/* Where item seq comes from, as make_headers() takes it from the
 * consumed message. */
static struct cfd_source item_source(size_t seq)
{
        struct cfd_source src = {"labels", (int32_t)(seq % 64),
                                 (int64_t)seq};

        return src;
}

/* A dead letter's source text, as cfd_headers_dead_letter() makes it,
 * and its metrics. */
static void dead_letter(struct fixture *f, struct tally *t,
                        const char *code, const char *reason, size_t seq)
{
        const struct cfd_source src = item_source(seq);
        char source[CFD_HEADERS_SOURCE_MAX];

        cfd_headers_format_source(source, sizeof(source), &src);
        cfd_metrics_dead_letter(f->metrics, code);
        cfd_metrics_delivered(f->metrics, f->topic_out[2],
                              0.001 * (double)(seq % 300));
        t->dead_letters++;
        t->empty_text += !reason[0] || !source[0];
        t->text_bytes += strlen(code) + strlen(reason) + strlen(source);
}

/* The header values of a decided item, as cfd_headers_verdict() makes
 * them. */
static void header_values(struct tally *t, const struct cl_verdict *v,
                          size_t seq)
{
        const struct cfd_source src = item_source(seq);
        struct cfd_header_values val;

        cfd_headers_values(&val, v, &src);
        t->g6_fallback += !(v->quality >= 1e-4 && v->quality < 10.0);
        t->g6_fallback += !(v->threshold >= 1e-4 && v->threshold < 10.0);
        t->empty_text += !val.given[0] || !val.suggested[0] ||
                         !val.quality[0] || !val.threshold[0] ||
                         !val.source[0];
        t->text_bytes += strlen(val.quality) + strlen(val.threshold) +
                         strlen(val.source) + strlen(v->reason);
}

static void one_item(struct fixture *f, size_t seq, struct tally *t)
{
        static const enum cfd_metrics_verdict kinds[] = {
                [CL_TAG_CLEAN] = CFD_METRICS_CLEAN,
                [CL_TAG_SUSPECT] = CFD_METRICS_SUSPECT,
                [CL_TAG_WARMUP] = CFD_METRICS_WARMUP,
                [CL_TAG_HELD] = CFD_METRICS_WARMUP,
        };
        size_t i = seq % N_MSGS, len = f->off[i + 1] - f->off[i];
        const char *buf = len ? f->sbuf.data + f->off[i] : NULL;
        struct msg_label label = {.probs = f->probs};
        struct msg_error merr;
        struct cl_verdict v;
        char reason[REASON_SIZE];
        size_t index = 0;
        int rc;

        t->items++;
        cur_step = STEP_DECODE;
        rc = msg_decode(f->dec, buf, len, &label, &merr);
        if (rc != expected[f->kind[i]].decode)
                t->unexpected++;
        if (rc < 0) {
                cur_step = STEP_DEAD_LETTER;
                t->decode_seen |= 1u << -rc;
                cfd_reason_decode(reason, sizeof(reason), &merr);
                dead_letter(f, t, msg_err_name(rc), reason, seq);
                cur_step = STEP_NONE;
                return;
        }
        cur_step = STEP_OBSERVE;
        rc = cl_observe(f->st, (long)label.label, f->probs, f->k, &v, &index);
        if (rc != expected[f->kind[i]].row)
                t->unexpected++;
        if (rc < 0) {
                cur_step = STEP_DEAD_LETTER;
                t->row_seen |= 1u << -rc;
                cfd_reason_row(reason, sizeof(reason), rc, label.label, index,
                               f->probs, cl_state_params(f->st));
                dead_letter(f, t, cl_err_name(rc), reason, seq);
                cur_step = STEP_NONE;
                return;
        }
        if (v.tag == CL_TAG_HELD || cl_state_release_due(f->st))
                t->held++;
        cur_step = STEP_FORMAT;
        header_values(t, &v, seq);
        t->decided++;
        cur_step = STEP_METRICS;
        cfd_metrics_consumed(f->metrics, f->topic_in);
        cfd_metrics_verdict(f->metrics, v.given, kinds[v.tag],
                            label.annotator.ptr, label.annotator.len);
        cfd_metrics_delivered(f->metrics,
                              f->topic_out[v.tag == CL_TAG_SUSPECT],
                              0.001 * (double)(i % 300));
        cur_step = STEP_NONE;
}

/* Items first .. first + n - 1: nothing here may allocate, nor call
 * cmocka (this also runs under seccomp). */
static void run_items(struct fixture *f, size_t first, size_t n,
                      struct tally *t)
{
        for (size_t j = 0; j < n; j++)
                one_item(f, first + j, t);
}

/* What a run of n items from 0 .. must have met. */
static void check_tally(const struct fixture *f, const struct tally *t,
                        unsigned long n)
{
        unsigned long bad = 0;
        unsigned decode_want = 0, row_want = 0;

        for (size_t j = 0; j < n; j++) {
                enum kind kind = f->kind[j % N_MSGS];

                bad += kind != GOOD;
                if (expected[kind].decode)
                        decode_want |= 1u << -expected[kind].decode;
                if (expected[kind].row)
                        row_want |= 1u << -expected[kind].row;
        }
        assert_int_equal(t->items, n);
        assert_int_equal(t->unexpected, 0);
        assert_int_equal(t->empty_text, 0);
        assert_int_equal(t->held, 0);
        assert_int_equal(t->dead_letters, bad);
        assert_int_equal(t->decided, n - bad);
        assert_int_equal(t->decode_seen, decode_want);
        assert_int_equal(t->row_seen, row_want);
        assert_true(t->g6_fallback > 0);
        assert_true(t->text_bytes > 0);
}

/*
 * Set-up: messages, decoder, a warm state with nothing held, metrics.
 */

static void warm_up(struct fixture *f)
{
        const struct cl_params *p = cl_state_params(f->st);
        size_t cap = cl_state_hold_capacity(f->st);
        size_t n = (size_t)(3.0 * p->warmup_total) + N_MSGS;
        struct cl_verdict *out = calloc(cap ? cap : 1, sizeof(*out));
        unsigned long releases = 0;

        assert_non_null(out);
        heap_reset();
        for (size_t seq = 0; seq < n; seq++) {
                size_t i = seq % N_MSGS;
                struct msg_label label = {.probs = f->probs};

                if (f->kind[i] != GOOD)
                        continue;
                assert_int_equal(msg_decode(f->dec, f->sbuf.data + f->off[i],
                                            f->off[i + 1] - f->off[i],
                                            &label, NULL), 0);
                cur_step = STEP_WARMUP;
                assert_int_equal(cl_observe(f->st, (long)label.label,
                                            f->probs, f->k, NULL, NULL), 0);
                cur_step = STEP_RELEASE;
                if (cl_state_release_due(f->st)) {
                        assert_true(cl_state_release(f->st, out, cap) >= 0);
                        releases++;
                }
                cur_step = STEP_NONE;
        }
        cur_step = STEP_RELEASE;
        assert_true(cl_state_release_force(f->st, out, cap) >= 0);
        cur_step = STEP_NONE;
        free(out);
        assert_int_equal(cl_state_held(f->st), 0);
        assert_false(cl_state_release_due(f->st));
        print_message("K = %u: hold buffer of %zu rows; warm-up: "
                      "cl_observe %lu allocations, %lu releases %lu "
                      "allocations and %lu frees (not checked)\n",
                      f->k, cap, heap[STEP_WARMUP].allocs, releases,
                      heap[STEP_RELEASE].allocs, heap[STEP_RELEASE].frees);
}

static int setup(void **state)
{
        unsigned k = *(const unsigned *)*state;
        struct fixture *f = calloc(1, sizeof(*f));
        struct msg_schema schema = {.k = k};
        struct cfd_metrics_config mc = {.n_classes = k};
        struct cl_params p;
        char err[256];
        struct tally t = {0};

        assert_non_null(f);
        f->k = k;
        f->names = calloc(k, sizeof(*f->names));
        f->probs = calloc(k, sizeof(double));
        f->row = calloc(k + 1, sizeof(double));
        assert_non_null(f->names);
        assert_non_null(f->probs);
        assert_non_null(f->row);
        for (unsigned c = 0; c < k; c++) {
                char name[32];

                snprintf(name, sizeof(name), "class-%u", c);
                f->names[c] = strdup(name);
                assert_non_null(f->names[c]);
        }
        schema.class_names = (const char *const *)f->names;
        mc.class_names = (const char *const *)f->names;
        make_messages(f);
        assert_int_equal(msg_decoder_new(&schema, &f->dec), 0);
        assert_int_equal(cfd_metrics_new(&mc, &f->metrics, err, sizeof(err)),
                         0);
        f->topic_in = cfd_metrics_topic(f->metrics, "labels");
        f->topic_out[0] = cfd_metrics_topic(f->metrics, "labels.clean");
        f->topic_out[1] = cfd_metrics_topic(f->metrics, "labels.suspect");
        f->topic_out[2] = cfd_metrics_topic(f->metrics, "labels.dead-letter");
        cl_params_init(&p, k);
        assert_int_equal(p.warmup_policy, CL_WARMUP_HOLD);
        assert_int_equal(cl_state_new(&p, &f->st), 0);
        warm_up(f);
        /* Once over every message: first-use work is not per item. */
        run_items(f, 0, N_MSGS, &t);
        assert_int_equal(t.unexpected, 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        cfd_metrics_free(f->metrics);
        cl_state_free(f->st);
        msg_decoder_free(f->dec);
        msgpack_sbuffer_destroy(&f->sbuf);
        for (unsigned c = 0; c < f->k; c++)
                free(f->names[c]);
        free(f->names);
        free(f->probs);
        free(f->row);
        free(f);
        return 0;
}

/*
 * Tests.
 */

/* The counters see allocations made in this executable's static
 * libraries, in a shared library and inside glibc. */
static void *volatile sink; /* keeps the compiler from eliding a pair */

static void test_counting_sees_every_caller(void **state)
{
        char *(*volatile dup)(const char *) = strdup; /* not folded */
        struct cl_params p;
        struct cl_state *st = NULL;
        msgpack_zone *zone;
        char *s;
        void *q = NULL;

        (void)state;
        heap_reset();
        cur_step = STEP_PROBE;
        cl_params_init(&p, 2);
        assert_int_equal(cl_state_new(&p, &st), 0); /* cfd_core */
        cur_step = STEP_NONE;
        assert_true(heap[STEP_PROBE].allocs > 0);

        heap_reset();
        cur_step = STEP_PROBE;
        cl_state_free(st);
        cur_step = STEP_NONE;
        assert_true(heap[STEP_PROBE].frees > 0);

        heap_reset();
        cur_step = STEP_PROBE;
        zone = msgpack_zone_new(4096); /* libmsgpackc.so */
        cur_step = STEP_NONE;
        assert_non_null(zone);
        assert_true(heap[STEP_PROBE].allocs > 0);
        msgpack_zone_free(zone);

        heap_reset();
        cur_step = STEP_PROBE;
        s = dup("counted"); /* malloc called inside glibc */
        cur_step = STEP_NONE;
        assert_non_null(s);
        assert_int_equal(heap[STEP_PROBE].allocs, 1);
        free(s);

        heap_reset();
        cur_step = STEP_PROBE;
        assert_int_equal(posix_memalign(&q, 64, 100), 0);
        sink = q;
        free(sink);
        sink = aligned_alloc(64, 128);
        free(sink);
        sink = reallocarray(NULL, 4, 8);
        free(sink);
        cur_step = STEP_NONE;
        assert_int_equal(heap[STEP_PROBE].allocs, 3);
        assert_int_equal(heap[STEP_PROBE].frees, 3);
}

static void test_hot_path_allocates_nothing(void **state)
{
        struct fixture *f = *state;
        struct tally t = {0};

        heap_reset();
        run_items(f, 0, ITEMS, &t);
        expect_no_heap_calls(f->k, ITEMS);
        check_tally(f, &t, ITEMS);
}

/* Shared with the child: where it stopped. */
struct sys_report {
        volatile sig_atomic_t step; /* step of the trapped call */
        volatile long nr;           /* the system call, <sys/syscall.h> */
        struct tally tally;
};

static struct sys_report *sys_report;

enum {
        CHILD_DONE = 0,
        CHILD_TRAPPED = 3,
        CHILD_NO_SECCOMP = 4,
};

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
        (void)sig;
        (void)uc;
        sys_report->step = cur_step;
        sys_report->nr = si->si_syscall;
        _exit(CHILD_TRAPPED);
}

/* Traps every system call but exit_group and exit, for good. */
static int trap_system_calls(void)
{
        struct sock_filter code[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                         offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 2, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof(code) / sizeof(code[0]), code};
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0 ||
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
                return -1;
        return 0;
}

static void test_hot_path_makes_no_system_call(void **state)
{
        struct fixture *f = *state;
        int status;
        pid_t pid;

        sys_report = mmap(NULL, sizeof(*sys_report), PROT_READ | PROT_WRITE,
                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(sys_report != MAP_FAILED);
        memset(sys_report, 0, sizeof(*sys_report));
        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (trap_system_calls() < 0)
                        _exit(CHILD_NO_SECCOMP);
                run_items(f, 0, ITEMS, &sys_report->tally);
                _exit(CHILD_DONE);
        }
        while (waitpid(pid, &status, 0) < 0)
                assert_int_equal(errno, EINTR);
        if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_NO_SECCOMP) {
                print_message("seccomp filters unavailable here: skipped\n");
                munmap(sys_report, sizeof(*sys_report));
                skip();
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_TRAPPED)
                fail_msg("K = %u: %s made system call %ld after %lu items",
                         f->k, step_names[sys_report->step], sys_report->nr,
                         sys_report->tally.items);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_DONE)
                fail_msg("K = %u: child ended with status %#x", f->k, status);
        check_tally(f, &sys_report->tally, ITEMS);
        munmap(sys_report, sizeof(*sys_report));
}

/* One entry per K, named after it. */
#define PER_K(f, k, v) {#f "_k" #k, f, setup, teardown, v}

int main(void)
{
        static unsigned k2 = 2, k10 = 10, k100 = 100;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counting_sees_every_caller),
                PER_K(test_hot_path_allocates_nothing, 2, &k2),
                PER_K(test_hot_path_allocates_nothing, 10, &k10),
                PER_K(test_hot_path_allocates_nothing, 100, &k100),
                PER_K(test_hot_path_makes_no_system_call, 2, &k2),
                PER_K(test_hot_path_makes_no_system_call, 10, &k10),
                PER_K(test_hot_path_makes_no_system_call, 100, &k100),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
