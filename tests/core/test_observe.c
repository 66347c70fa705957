/*
 * test_observe.c - cmocka regression test of the per-item path: every
 * output of cl_observe() and cl_state_release() (return code, offending
 * index, tag, given and suggested class, quality and threshold bits,
 * borderline flag, reason, hold slot) and snapshots along the way are
 * folded into one FNV-1a hash per stream, which must equal the hash the
 * straightforward implementation (exact quota test for every cell,
 * separate row check and row scan) gave.  Any change of a verdict,
 * however rare, changes the hash.
 *
 * Streams: generated rows for every filter, with and without decay, over
 * tree shapes of one, two and three levels, exact and pooled cells, K = 2
 * to 1000, rows with bin-edge margins (dyadic probabilities), rejected
 * rows of every kind, a decision window, warm-up pass, decay with
 * renormalisation, and a snapshot restore plus a merge halfway; then, when
 * the data is there, the 511,000 CIFAR-10H annotations for every filter
 * with and without decay.
 *
 * Usage: test_observe [--print] [DATA_DIR]  (DATA_DIR or CFD_SHARED_DATA:
 * ../shared/data; the CIFAR-10H group is skipped without it).  --print
 * writes the hashes in the form of the tables below instead of checking.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "cl.h"
#include "csvread.h"
#include "npy.h"

#define N_FILTERS 7u
#define SNAP_EVERY 8192u

/* A generated stream: parameters, then the hash of each filter (the
 * order of enum cl_filter), without and with decay. */
struct shape {
        const char *name;
        unsigned k;
        unsigned bins;
        unsigned cells;       /* 0: cl_params_init() default */
        unsigned delay_items;
        bool pass;            /* warm-up policy pass instead of hold */
        double sum_tol;       /* < 0: default */
        double warmup_total;  /* 0: default */
        double warmup_class;  /* 0: default */
        double half_life;     /* of the decayed run */
        size_t items;
        uint64_t hash[N_FILTERS][2];
};

/* Hashes recorded with the implementation before the fast paths. */
static const struct shape shapes[] = {
        {"k2", 2, 256, 0, 0, false, -1, 0, 0, 3000, 20000, {
                 {0x9173a071d7174afcULL, 0x7f4ead09df4e21ceULL},
                 {0x38281b067688d76dULL, 0x6e137e7d932ae5c3ULL},
                 {0x2dbfbaf9b3f421ebULL, 0xe21078c663efd5d1ULL},
                 {0x504046faf276fabeULL, 0x87aca377d4a8dfcdULL},
                 {0xeba1bc090d4749e9ULL, 0xdf73a66a4e07c2e4ULL},
                 {0x3f78f813c5f01b08ULL, 0xcbc857a8f032bf47ULL},
                 {0xd884d28b615b55caULL, 0x70c6f7c40df685eeULL},
         }},
        {"k10", 10, 256, 0, 0, false, -1, 0, 0, 3000, 40000, {
                 {0x3dcd190d8feac205ULL, 0xa0a3675e6b569263ULL},
                 {0x6e4940c71ee15e51ULL, 0x61db0fb44b8eb7a4ULL},
                 {0xd6288d7182eda6a5ULL, 0xa14a41bfce0f6986ULL},
                 {0x325585b165f11a50ULL, 0x60121dc8ee4eea25ULL},
                 {0x4238ba09e8ed378cULL, 0xb6bfcd2f3593e120ULL},
                 {0x05fa33cbc5de061fULL, 0x941def2dffe81982ULL},
                 {0x308467536c748de9ULL, 0x756c222cbebef56bULL},
         }},
        {"k10-bins16", 10, 16, 0, 0, false, -1, 0, 0, 3000, 20000, {
                 {0xbde987949309220aULL, 0x2dae58ae9798f6bcULL},
                 {0xf3e9ced8e34c05c4ULL, 0xf2b3b0dbd54a7467ULL},
                 {0x3bdc2450da4066ddULL, 0xf04c5dc93d45304bULL},
                 {0x20315d17fd9edf7dULL, 0x801a929bedd2a9c6ULL},
                 {0x3fea252c3da4ccf5ULL, 0x1a565e4cf365350fULL},
                 {0x8fa73f471a1ea2fcULL, 0xb257f43c64777218ULL},
                 {0x49f8cd58d2ce45b2ULL, 0xbd74019d30af4932ULL},
         }},
        {"k10-bins100-window", 10, 100, 0, 500, false, -1, 0, 0, 3000, 20000,
         {
                 {0x386a6447d1939259ULL, 0x7b81ccde4aab4fcdULL},
                 {0x86195a32c0385e47ULL, 0xee182fda86b727f8ULL},
                 {0x4e0fa3a63ba1a475ULL, 0x1a35c8858658b770ULL},
                 {0x101e24ebafe60825ULL, 0x7edeb551e80616c0ULL},
                 {0xd4837748d555a28dULL, 0xc40bfe616265f277ULL},
                 {0x2d810a8b1f4e64caULL, 0x127e27eb0dc25163ULL},
                 {0x0d180a940dcae5d3ULL, 0x5a22f8519152b035ULL},
         }},
        {"k10-bins4096-cells3", 10, 4096, 3, 0, false, -1, 0, 0, 3000, 20000,
         {
                 {0xa646967fd423900fULL, 0xa30418184152ff7bULL},
                 {0xe30f04b75485ddcdULL, 0x491fdfdc6e3ac3feULL},
                 {0xf9f2d1734fdbb037ULL, 0x4ccf7688ea055989ULL},
                 {0xf12169ce2f6e6261ULL, 0x4ad7f46b7785e352ULL},
                 {0x2ce8dfc003349dbdULL, 0x8683bbb2f1aa7644ULL},
                 {0xaf6538d499affe1dULL, 0xeb6776698fa0dcdcULL},
                 {0x80c3225082063628ULL, 0x51a042dae5cf4a69ULL},
         }},
        {"k10-pass-nosum", 10, 256, 0, 0, true, 0, 0, 0, 3000, 20000, {
                 {0x94036ee11b7f37fdULL, 0x641774adcb3d1151ULL},
                 {0xc917de71fc3c3e1dULL, 0xa9d94dea81c9fc4bULL},
                 {0xf05bf557ac5c52bfULL, 0xc219c784ed5f1e6bULL},
                 {0x162f42ee794a8d6bULL, 0x569ac1cb8f93ec49ULL},
                 {0x99ac5c5d5885331aULL, 0xabfa97a661bb704bULL},
                 {0x35874440e7ba11f1ULL, 0xa0056827572a2c8fULL},
                 {0xc8c7058296bada21ULL, 0xa2754517eefc220fULL},
         }},
        {"k10-renorm", 10, 256, 0, 0, false, -1, 20, 2, 30, 40000, {
                 {0xa39b4ea7e50e2845ULL, 0x0e33782cfdbf3e25ULL},
                 {0xf8a4e99185cf63b6ULL, 0x6b94d3f41aaf5732ULL},
                 {0x5590b848d9c1aafaULL, 0x42fbcdc8b6fda08aULL},
                 {0x46585c2f1f1db2e0ULL, 0xc399a82ac6b0cd26ULL},
                 {0xbca13c7c1c41e64fULL, 0xfa417db09c2447c5ULL},
                 {0x712cf794ec8ee170ULL, 0xff1374a10653847fULL},
                 {0x693c2420c9bcede2ULL, 0x8419ec49f13139a6ULL},
         }},
        {"k100", 100, 256, 0, 0, false, -1, 0, 0, 10000, 60000, {
                 {0x0f566a42a46c004dULL, 0xf1ac318582de0191ULL},
                 {0xc82d3d55ab36a6f5ULL, 0x515b0c97c15d340aULL},
                 {0x8e753d43d25fe034ULL, 0x3e488a480a1c7fb5ULL},
                 {0x6843d79e1e806329ULL, 0x408bd08243074e29ULL},
                 {0xaae3fd1963819bd2ULL, 0x13fd32a90f5fbdefULL},
                 {0xc080e39f6daa6e2aULL, 0xe2697882f5fc24a5ULL},
                 {0xb5be212edfb4414cULL, 0xef5d914196cd8c13ULL},
         }},
        {"k100-exact", 100, 64, 99, 0, false, -1, 0, 0, 10000, 30000,
         {
                 {0x8ac05a96d757806eULL, 0xce8ce38544734459ULL},
                 {0xa5ceb9f632a51e1bULL, 0x331744a1ca50c55dULL},
                 {0xda8de6867e606b21ULL, 0xb5c75ea09f9ab174ULL},
                 {0x403187a6aaf78fc3ULL, 0x53c5c78bb78a8b66ULL},
                 {0x98f2a8fcb80dc2e9ULL, 0xb9fcbcc2b247b453ULL},
                 {0x0da087ced4c3c8b7ULL, 0xfde23e5e83b7ad77ULL},
                 {0x028fea4488ed7a0fULL, 0xc7acd7f94df6ca06ULL},
         }},
        {"k1000", 1000, 256, 0, 0, false, -1, 2000, 3, 10000, 30000, {
                 {0xc55645ebc3aebf51ULL, 0x8937311fc4ad5cafULL},
                 {0x466467e57c2ba3b4ULL, 0x0ecb1e6d735eb416ULL},
                 {0xd3dfe0d8a3b1c9b6ULL, 0x679a2beadd43b227ULL},
                 {0x23485aaa05cb218eULL, 0xca4414f42681e4f5ULL},
                 {0xc14c7fda746fd5a2ULL, 0xf1ba0f6a31e1f980ULL},
                 {0x64543d8e6bc0d4a1ULL, 0x88996b1b0cb8beb4ULL},
                 {0xed10f3bafc753192ULL, 0xf1d38986ed377ec1ULL},
         }},
};

/* CIFAR-10H, per filter: without decay, half-life 100,000. */
static const uint64_t cifar_hash[N_FILTERS][2] = {
        {0xb98c33b23ac1e4dbULL, 0xf24ee43fbb4aee1fULL},
        {0x515569c5aafb5636ULL, 0x3f7eb7dcc9d47939ULL},
        {0x14f4e0081c795639ULL, 0xe9ce066ec51cf601ULL},
        {0x36d35411a4ae3244ULL, 0x3f8ccafdf2b40814ULL},
        {0x8a94fb84f495c020ULL, 0xd9cb27491d562e54ULL},
        {0xe874001d3809cec1ULL, 0x7701e2e91728a50cULL},
        {0xc91304465a94c103ULL, 0xa7f50d649135f70bULL},
};

static bool print_mode;
static const char *data_dir; /* NULL: the CIFAR-10H group is skipped */
static bool cifar_broken;    /* the files are there but do not load */

static uint64_t next_u64(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545f4914f6cdd1dULL;
}

/* Uniform in [0, 1). */
static double next_unit(uint64_t *s)
{
        return (double)(next_u64(s) >> 11) * 0x1p-53;
}

static void hash_bytes(uint64_t *h, const void *data, size_t n)
{
        const unsigned char *b = data;

        for (size_t x = 0; x < n; x++) {
                *h ^= b[x];
                *h *= 0x100000001b3ULL;
        }
}

static void hash_u64(uint64_t *h, uint64_t v)
{
        hash_bytes(h, &v, sizeof(v));
}

static void hash_double(uint64_t *h, double x)
{
        uint64_t v;

        memcpy(&v, &x, sizeof(v));
        hash_u64(h, v);
}

/* What a stream produced, besides the hash: to show it is not trivial. */
struct tally {
        uint64_t hash;
        size_t suspect, borderline, rejected, released, snapshots;
};

static void hash_verdict(struct tally *t, const struct cl_verdict *v)
{
        hash_u64(&t->hash, (uint64_t)v->tag);
        hash_u64(&t->hash, v->given);
        hash_u64(&t->hash, v->suggested);
        hash_double(&t->hash, v->quality);
        hash_double(&t->hash, v->threshold);
        hash_u64(&t->hash, v->borderline);
        hash_bytes(&t->hash, v->reason, strlen(v->reason) + 1);
        hash_u64(&t->hash, v->hold_index);
        t->suspect += v->tag == CL_TAG_SUSPECT;
        t->borderline += v->borderline;
}

static void hash_snapshot(struct tally *t, const struct cl_state *st)
{
        char *buf;
        size_t len;

        assert_int_equal(cl_state_snapshot(st, &buf, &len), 0);
        hash_u64(&t->hash, len);
        hash_bytes(&t->hash, buf, len);
        free(buf);
        t->snapshots++;
}

static void release(struct tally *t, struct cl_state *st,
                    struct cl_verdict *out, size_t cap, bool force)
{
        int n = force ? cl_state_release_force(st, out, cap)
                      : cl_state_release(st, out, cap);

        assert_true(n >= 0);
        for (int x = 0; x < n; x++)
                hash_verdict(t, &out[x]);
        t->released += (size_t)n;
}

/* One row: its outcome, then what is due. */
static void feed_row(struct tally *t, struct cl_state *st, long label,
                     const double *p, size_t n, struct cl_verdict *out,
                     size_t cap)
{
        struct cl_verdict v;
        size_t index = SIZE_MAX;
        int rc;

        memset(&v, 0, sizeof(v));
        rc = cl_observe(st, label, p, n, &v, &index);
        hash_u64(&t->hash, (uint64_t)(int64_t)rc);
        if (rc < 0) {
                hash_u64(&t->hash, index);
                t->rejected++;
                return;
        }
        hash_verdict(t, &v);
        if (cl_state_release_due(st))
                release(t, st, out, cap, false);
}

/* Halfway: whatever is held is released, then the state goes through a
 * snapshot and is merged with itself, which scales every raw sum. */
static void midway(struct tally *t, struct cl_state **st,
                   struct cl_verdict *out, size_t cap)
{
        struct cl_state *back;
        char *buf;
        size_t len;

        release(t, *st, out, cap, true);
        assert_int_equal(cl_state_snapshot(*st, &buf, &len), 0);
        assert_int_equal(cl_state_restore(buf, len, &back), 0);
        free(buf);
        cl_state_free(*st);
        *st = back;
        assert_int_equal(cl_state_merge(*st, *st), 0);
        hash_snapshot(t, *st);
}

/*
 * Row r of a generated stream: true class t, label t or (15 %) another,
 * model peaked on t or (20 %) another.  Half the rows are continuous;
 * the others are multiples of 1/64 summing to exactly 1, so that margins
 * fall on bin edges.  About one row in 400 is invalid in one of the ways
 * cl_check_row() reports.  Returns the label; *ret_n is the width.
 */
static long make_row(uint64_t *s, unsigned k, double *p, size_t *ret_n)
{
        unsigned t = (unsigned)(next_u64(s) % k), m = t, bad;
        long label = t;
        double sum = 0.0;

        if (next_u64(s) % 100 < 15)
                label = (long)(next_u64(s) % k);
        if (next_u64(s) % 100 < 20)
                m = (unsigned)(next_u64(s) % k);
        *ret_n = k;
        if (next_u64(s) % 2) {
                for (unsigned j = 0; j < k; j++) {
                        double u = next_unit(s);

                        p[j] = u * u * u;
                }
                p[m] += 1.0 + 4.0 * next_unit(s);
                for (unsigned j = 0; j < k; j++)
                        sum += p[j];
                for (unsigned j = 0; j < k; j++)
                        p[j] /= sum;
        } else {
                unsigned left = 64, peak = 16 + (unsigned)(next_u64(s) % 49);

                memset(p, 0, k * sizeof(*p));
                p[m] = peak / 64.0;
                left -= peak;
                while (left > 0) {
                        unsigned j = (unsigned)(next_u64(s) % k);
                        unsigned c = 1 + (unsigned)(next_u64(s) % left);

                        /* Runners-up mostly among a few classes. */
                        if (next_u64(s) % 2)
                                j = (m + 1 + j % 3) % k;
                        p[j] += c / 64.0;
                        left -= c;
                }
        }
        bad = (unsigned)(next_u64(s) % 2400);
        switch (bad) {
        case 0:
                p[next_u64(s) % k] = NAN;
                break;
        case 1:
                p[next_u64(s) % k] = -INFINITY;
                p[next_u64(s) % k] = 1.5;
                break;
        case 2:
                p[next_u64(s) % k] = 1.0 + 1e-5;
                break;
        case 3:
                p[next_u64(s) % k] = -1e-5;
                break;
        case 4:
                p[next_u64(s) % k] += 0.01;
                break;
        case 5:
                label = next_u64(s) % 2 ? -1 : (long)k;
                break;
        case 6:
                *ret_n = k - 1;
                break;
        }
        return label;
}

static uint64_t run_shape(const struct shape *sh, enum cl_filter f,
                          bool decay, struct tally *t)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict *out;
        double *row;
        size_t cap, n;
        uint64_t seed = 0x9e3779b97f4a7c15ULL ^ sh->k ^ (uint64_t)f << 32;

        cl_params_init(&p, sh->k);
        p.filter = f;
        p.bins = sh->bins;
        if (sh->cells)
                p.cells = sh->cells;
        p.delay_items = sh->delay_items;
        if (sh->pass)
                p.warmup_policy = CL_WARMUP_PASS;
        if (sh->sum_tol >= 0.0)
                p.sum_tol = sh->sum_tol;
        if (sh->warmup_total > 0.0)
                p.warmup_total = sh->warmup_total;
        if (sh->warmup_class > 0.0)
                p.warmup_class = sh->warmup_class;
        if (decay)
                p.half_life = sh->half_life;
        assert_int_equal(cl_state_new(&p, &st), 0);
        cap = cl_state_hold_capacity(st);
        out = malloc((cap ? cap : 1) * sizeof(*out));
        row = malloc(sh->k * sizeof(*row));
        assert_non_null(out);
        assert_non_null(row);

        memset(t, 0, sizeof(*t));
        t->hash = 0xcbf29ce484222325ULL;
        for (size_t r = 0; r < sh->items; r++) {
                long label = make_row(&seed, sh->k, row, &n);

                feed_row(t, st, label, row, n, out, cap);
                if (r == sh->items / 2)
                        midway(t, &st, out, cap);
                if (r % SNAP_EVERY == 0 && cl_state_held(st) == 0)
                        hash_snapshot(t, st);
        }
        release(t, st, out, cap, true);
        hash_snapshot(t, st);
        cl_state_free(st);
        free(row);
        free(out);
        return t->hash;
}

static void check_hash(const char *name, enum cl_filter f, bool decay,
                       uint64_t want, const struct tally *t)
{
        if (print_mode) {
                printf("%s %s %s: 0x%016llxULL suspect=%zu borderline=%zu "
                       "rejected=%zu released=%zu snapshots=%zu\n",
                       name, cl_filter_name(f), decay ? "decay" : "plain",
                       (unsigned long long)t->hash, t->suspect,
                       t->borderline, t->rejected, t->released,
                       t->snapshots);
                return;
        }
        if (t->hash != want)
                fail_msg("%s %s %s: hash 0x%016llx, want 0x%016llx "
                         "(suspect=%zu borderline=%zu)",
                         name, cl_filter_name(f), decay ? "decay" : "plain",
                         (unsigned long long)t->hash,
                         (unsigned long long)want, t->suspect,
                         t->borderline);
}

static void test_cl_observe_generated_streams_unchanged(void **state)
{
        struct tally t;

        (void)state;
        for (size_t x = 0; x < sizeof(shapes) / sizeof(shapes[0]); x++) {
                const struct shape *sh = &shapes[x];

                for (unsigned f = 0; f < N_FILTERS; f++) {
                        for (unsigned d = 0; d < 2; d++) {
                                run_shape(sh, (enum cl_filter)f, d, &t);
                                check_hash(sh->name, (enum cl_filter)f, d,
                                           sh->hash[f][d], &t);
                                /* Every stream decides, rejects and
                                 * snapshots; quota filters flag. */
                                assert_true(t.rejected > 0);
                                assert_true(t.snapshots >= 2);
                                assert_true(t.suspect > 0);
                        }
                }
        }
}

/* The CIFAR-10H stream, as confidentctl score reads it. */
struct cifar {
        size_t n;
        unsigned k;
        long *labels;
        double *probs;
};

static struct cifar cifar;

static int cifar_load(void)
{
        struct csv_reader *csv;
        struct npy_array a;
        char path[4096], err[512];
        long long item, label;
        int ci, cl, rc;
        size_t cap = 1u << 19;

        snprintf(path, sizeof(path),
                 "%s/labelerrors/cifar10/pred_probs.npy", data_dir);
        if (npy_load(path, &a, err, sizeof(err)) != 0)
                return -1;
        snprintf(path, sizeof(path), "%s/cifar10h/annotations.csv", data_dir);
        csv = csv_open(path, err, sizeof(err));
        if (!csv) {
                npy_array_free(&a);
                return -1;
        }
        ci = csv_column(csv, "item");
        cl = csv_column(csv, "label");
        cifar.k = (unsigned)a.cols;
        cifar.labels = malloc(cap * sizeof(*cifar.labels));
        cifar.probs = malloc(cap * cifar.k * sizeof(*cifar.probs));
        if (ci < 0 || cl < 0 || !cifar.labels || !cifar.probs)
                return -1;
        while ((rc = csv_next(csv, err, sizeof(err))) == 1) {
                if (cifar.n == cap ||
                    csv_parse_i64(csv_field(csv, (size_t)ci), &item) != 0 ||
                    csv_parse_i64(csv_field(csv, (size_t)cl), &label) != 0 ||
                    item < 0 || (size_t)item >= a.rows)
                        return -1;
                cifar.labels[cifar.n] = (long)label;
                for (size_t c = 0; c < cifar.k; c++)
                        cifar.probs[cifar.n * cifar.k + c] =
                                npy_get(&a, (size_t)item, c);
                cifar.n++;
        }
        csv_close(csv);
        npy_array_free(&a);
        return rc;
}

static void test_cl_observe_cifar10h_unchanged(void **state)
{
        struct cl_params p;
        struct cl_state *st;
        struct cl_verdict *out;
        struct tally t;
        size_t cap;

        (void)state;
        if (cifar_broken)
                fail_msg("%s: CIFAR-10H files do not load", data_dir);
        if (!data_dir)
                skip();
        assert_int_equal(cifar.n, 511000);
        for (unsigned f = 0; f < N_FILTERS; f++) {
                for (unsigned d = 0; d < 2; d++) {
                        cl_params_init(&p, cifar.k);
                        p.filter = (enum cl_filter)f;
                        p.half_life = d ? 100000.0 : 0.0;
                        assert_int_equal(cl_state_new(&p, &st), 0);
                        cap = cl_state_hold_capacity(st);
                        out = malloc(cap * sizeof(*out));
                        assert_non_null(out);
                        memset(&t, 0, sizeof(t));
                        t.hash = 0xcbf29ce484222325ULL;
                        for (size_t r = 0; r < cifar.n; r++) {
                                feed_row(&t, st, cifar.labels[r],
                                         cifar.probs + r * cifar.k, cifar.k,
                                         out, cap);
                                if (r % (8 * SNAP_EVERY) == 0 &&
                                    cl_state_held(st) == 0)
                                        hash_snapshot(&t, st);
                        }
                        release(&t, st, out, cap, true);
                        hash_snapshot(&t, st);
                        check_hash("cifar10h", (enum cl_filter)f, d,
                                   cifar_hash[f][d], &t);
                        assert_true(t.suspect > 0);
                        cl_state_free(st);
                        free(out);
                }
        }
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cl_observe_generated_streams_unchanged),
                cmocka_unit_test(test_cl_observe_cifar10h_unchanged),
        };
        struct stat sb;
        char probe[4096];
        int a = 1, rc;

        if (a < argc && strcmp(argv[a], "--print") == 0) {
                print_mode = true;
                a++;
        }
        data_dir = a < argc ? argv[a] : getenv("CFD_SHARED_DATA");
        if (data_dir) {
                snprintf(probe, sizeof(probe), "%s/cifar10h/annotations.csv",
                         data_dir);
                if (stat(probe, &sb) != 0)
                        data_dir = NULL;
                else
                        cifar_broken = cifar_load() < 0;
        }
        rc = cmocka_run_group_tests(tests, NULL, NULL);
        free(cifar.labels);
        free(cifar.probs);
        return rc;
}
