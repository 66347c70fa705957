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
 * renormalisation, and a snapshot restore plus a merge with a state of
 * other rows halfway; then, when
 * the data is there, the 511,000 CIFAR-10H annotations for every filter
 * with and without decay.  Besides the hashes, the shortcuts of the fast
 * paths are checked against their definitions on rows made to hit them.
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
                 {0xe9787f340dfd082cULL, 0x86610ef2f58637e7ULL},
                 {0x898d7f587649ca99ULL, 0xe4c435d66599357cULL},
                 {0xaf8883acad409d02ULL, 0x605cbb73bc85af61ULL},
                 {0x8d505c2ecd98855fULL, 0xfb760c84d64d784cULL},
                 {0x159dbd03e02148a3ULL, 0x91873e515585c31bULL},
                 {0x257d962bb74bd9bdULL, 0xc9afb1c5f51eb91eULL},
                 {0x67270982f4b09f28ULL, 0xf35c5dd12a24891eULL},
         }},
        {"k10", 10, 256, 0, 0, false, -1, 0, 0, 3000, 40000, {
                 {0x2de560bef13ff716ULL, 0x54f7a7c730f77979ULL},
                 {0xcd58f1af336c0723ULL, 0x346cfc085055bc1cULL},
                 {0x228e4ff033b73325ULL, 0xea06693b72360471ULL},
                 {0xb91245b890ecff6eULL, 0x7aee8df0712f1e1dULL},
                 {0xd49007febca6e64fULL, 0x3d51bdcb7f04d24fULL},
                 {0x7203d008978ce57cULL, 0x0f3636e4520effb1ULL},
                 {0xb1db59a6560e3e02ULL, 0x2489d6e0184ec0fbULL},
         }},
        {"k10-bins16", 10, 16, 0, 0, false, -1, 0, 0, 3000, 20000, {
                 {0x8c4a5c356aff991fULL, 0x96a596f014ec8cddULL},
                 {0x9b3c6cf2f913890dULL, 0xe289fed2bf150106ULL},
                 {0xa0a3a1d11d306cbaULL, 0x3b0f5bc8383a48b6ULL},
                 {0x2aaed00e6e0d8051ULL, 0x48cc873e6822daf7ULL},
                 {0x249e03ed487495a6ULL, 0x59fa5535973cd383ULL},
                 {0x223d4142d28fc40dULL, 0x8874ea94fbe823d1ULL},
                 {0x53af935e76badef5ULL, 0x7430fa3d3c4717fbULL},
         }},
        {"k10-bins100-window", 10, 100, 0, 500, false, -1, 0, 0, 3000, 20000,
         {
                 {0xca020597cde0d937ULL, 0xcd7625e2faca3326ULL},
                 {0x77265ff68602c112ULL, 0x248ae3eb77ef571bULL},
                 {0x4b942787783cf4fbULL, 0xda888cfb0365ed68ULL},
                 {0x8e841a91e954d33aULL, 0x0435502957dc5429ULL},
                 {0xd6efe160cd4211aaULL, 0xd5a655f7cbb7d87bULL},
                 {0x6d9675bb03fcfcffULL, 0xd02dfb917db67765ULL},
                 {0x91857a61b519f94fULL, 0x005544cd42bf9a58ULL},
         }},
        {"k10-bins4096-cells3", 10, 4096, 3, 0, false, -1, 0, 0, 3000, 20000,
         {
                 {0x15f26eaec03333a4ULL, 0x6257d8a83437f852ULL},
                 {0xfcc961e829b49eefULL, 0x41c5b8465a725c90ULL},
                 {0x0ab31b8ca39294dfULL, 0xc3cc0d2304d4c7faULL},
                 {0x1d6431d94f0b725aULL, 0xb8314ccad56316e9ULL},
                 {0x0edfcec0ae373572ULL, 0xf4a2ca43e3a7af4fULL},
                 {0xe27f962165041aa5ULL, 0xac2e8acca9c9ce88ULL},
                 {0x00ab98f744cc7274ULL, 0x460a36a3602b8745ULL},
         }},
        {"k10-pass-nosum", 10, 256, 0, 0, true, 0, 0, 0, 3000, 20000, {
                 {0xf11f32a233e198ecULL, 0xf29bb89f8924f735ULL},
                 {0x3cba69ade688dcbdULL, 0x37831a395845b427ULL},
                 {0xaf1c159359b17967ULL, 0xcfbb148fd4522dffULL},
                 {0x942d65c39bb67904ULL, 0x67be32b2af997098ULL},
                 {0xcec9cf038b0152ecULL, 0x3dd31cf5f34ce9e1ULL},
                 {0xe2cb63016e0ac830ULL, 0xbb31691c093dc4f9ULL},
                 {0x3313e2b1c9fabb97ULL, 0xf6286b4f3f6a1afdULL},
         }},
        {"k10-renorm", 10, 256, 0, 0, false, -1, 20, 2, 30, 40000, {
                 {0x03837928cb02293cULL, 0x5e6d866302b94963ULL},
                 {0x0bd5ebc09bc4bca8ULL, 0x11fac28f748d09f4ULL},
                 {0x50349ff0d4b0bfeaULL, 0xb9b288010a21d1d8ULL},
                 {0x4df60a793031080aULL, 0xf2517085425e64a7ULL},
                 {0xca06c022f9adef74ULL, 0x5080f2b780b1ebb9ULL},
                 {0xccabcc9e8f42071fULL, 0x03dc58dc7fb9fdf6ULL},
                 {0xaca43883e52ae591ULL, 0x21273ee764a2afb9ULL},
         }},
        {"k100", 100, 256, 0, 0, false, -1, 0, 0, 10000, 60000, {
                 {0x3deef0e70743e2f4ULL, 0xce9134fc63d5bc9dULL},
                 {0x71298ca24ab1205eULL, 0x0a7352ebbadd737fULL},
                 {0xe0f58d232a6d6170ULL, 0xf71e8dea6b76204dULL},
                 {0x0180f4c23dd17f08ULL, 0xdeb8ebca713ca242ULL},
                 {0x23c364795d72aa47ULL, 0xf5e84ae77220becdULL},
                 {0xff7604d842ed4103ULL, 0x76b298829ac9eff5ULL},
                 {0xbe4491e8a878ae77ULL, 0x250cbb967a3b51b2ULL},
         }},
        {"k100-exact", 100, 64, 99, 0, false, -1, 0, 0, 10000, 30000,
         {
                 {0xdf9071fdf503314fULL, 0x926eefc798a2eee1ULL},
                 {0x27374f950f18fbe1ULL, 0x04f49d07bc94f28bULL},
                 {0x0939deacaf6b6fbdULL, 0xb0ea65393debe0e9ULL},
                 {0x3c4d1180df482ea5ULL, 0x50589d3a87b6fb7bULL},
                 {0xe920d37d908b0105ULL, 0x51b0c521672fce6bULL},
                 {0x17f587ee22f099f9ULL, 0x2e0ffccc52aba8c4ULL},
                 {0x96b2075badccf4f3ULL, 0xf4a28102eb43a726ULL},
         }},
        {"k1000", 1000, 256, 0, 0, false, -1, 2000, 3, 10000, 30000, {
                 {0x50200662a2f72000ULL, 0xe4ba933dc42e753dULL},
                 {0x2c1ccb05d649245eULL, 0x82722e8c9c65ed67ULL},
                 {0xe24baeb555bca356ULL, 0x8ec79b7bda743c48ULL},
                 {0xcb7bb2b1703470a0ULL, 0x1f94ed62dd52bce1ULL},
                 {0xb2d2c31e9e4ae294ULL, 0x0cdc1b679835a012ULL},
                 {0xdf72ad14a9c4379fULL, 0x05a7dee1c9142aa7ULL},
                 {0xe3a150dc019111acULL, 0xe2ac39e3be2276a3ULL},
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

/* How often a generated label, and the model's peak, miss the truth, and
 * how high the peak rises (1: well above the rest; near 0: barely). */
struct noise {
        unsigned label_pct, model_pct;
        double peak;
};

static const struct noise main_noise = {15, 20, 1.0};
static const struct noise other_noise = {25, 30, 0.1};

/*
 * A generated row: true class t, label t or (nz->label_pct) another,
 * model peaked on t or (nz->model_pct) another.  Half the rows are
 * continuous; the others are multiples of 1/64 summing to exactly 1, so
 * that margins fall on bin edges.  About one row in 400 is invalid in one of the ways
 * cl_check_row() reports.  Returns the label; *ret_n is the width.
 */
static long make_row(uint64_t *s, const struct noise *nz, unsigned k,
                     double *p, size_t *ret_n)
{
        unsigned t = (unsigned)(next_u64(s) % k), m = t, bad;
        long label = t;
        double sum = 0.0;

        if (next_u64(s) % 100 < nz->label_pct)
                label = (long)(next_u64(s) % k);
        if (next_u64(s) % 100 < nz->model_pct)
                m = (unsigned)(next_u64(s) % k);
        *ret_n = k;
        if (next_u64(s) % 2) {
                for (unsigned j = 0; j < k; j++) {
                        double u = next_unit(s);

                        p[j] = u * u * u;
                }
                p[m] += (1.0 + 4.0 * next_unit(s)) * nz->peak;
                for (unsigned j = 0; j < k; j++)
                        sum += p[j];
                for (unsigned j = 0; j < k; j++)
                        p[j] /= sum;
        } else {
                unsigned left = 64, peak = 16 + (unsigned)(next_u64(s) % 49);

                if (nz->peak < 1.0)
                        peak = 4 + peak / 8;

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

/*
 * Halfway: whatever is held is released, the state goes through a
 * snapshot and takes in a state fed with other rows, noisier and with a
 * hesitant model: with decay, merging scales every raw sum of the state
 * down by its clock, and the distributions move.
 */
static void midway(struct tally *t, struct cl_state **st, size_t items,
                   struct cl_verdict *out, size_t cap, double *row)
{
        struct cl_state *back, *other;
        struct tally ignored;
        uint64_t seed = 0x2545f4914f6cdd1dULL ^ items;
        size_t n;
        char *buf;
        size_t len;

        release(t, *st, out, cap, true);
        assert_int_equal(cl_state_snapshot(*st, &buf, &len), 0);
        assert_int_equal(cl_state_restore(buf, len, &back), 0);
        free(buf);
        cl_state_free(*st);
        *st = back;
        assert_int_equal(cl_state_new(cl_state_params(back), &other), 0);
        memset(&ignored, 0, sizeof(ignored));
        for (size_t r = 0; r < items; r++) {
                long label = make_row(&seed, &other_noise,
                                      cl_state_params(back)->k, row, &n);

                feed_row(&ignored, other, label, row, n, out, cap);
        }
        release(&ignored, other, out, cap, true);
        assert_int_equal(cl_state_merge(back, other), 0);
        cl_state_free(other);
        hash_snapshot(t, back);
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
                long label = make_row(&seed, &main_noise, sh->k, row, &n);

                feed_row(t, st, label, row, n, out, cap);
                if (r == sh->items / 2)
                        midway(t, &st, sh->items / 4, out, cap, row);
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

/*
 * Row r of two hand-made K = 3 streams for low_self_confidence.  In A, a
 * tenth of the rows are flagged (confident for class 1, labelled 0) with
 * self-confidence 0.1, a fifth sit at 0.2, one in twenty at 0.3.  In B,
 * three fifths are flagged at 0.45.
 */
static long hand_row(bool b, size_t r, double *p)
{
        static const double a_rows[5][3] = {
                {0.1, 0.9, 0.0},   /* flagged */
                {0.2, 0.05, 0.75}, /* no confident class */
                {0.3, 0.05, 0.65}, /* likewise: the probe */
                {0.9, 0.1, 0.0},
                {0.1, 0.8, 0.1},   /* class 1 */
        };
        static const unsigned a_kind[20] = {0, 0, 1, 1, 1, 1, 2, 3, 3, 3,
                                            3, 3, 3, 3, 3, 4, 4, 4, 4, 4};
        unsigned x = a_kind[r % 20];

        if (b) {
                bool flagged = r % 5 < 3;

                p[0] = flagged ? 0.45 : 0.3;
                p[1] = flagged ? 0.55 : 0.5;
                p[2] = flagged ? 0.0 : 0.2;
                return flagged ? 0 : 1;
        }
        memcpy(p, a_rows[x], sizeof(a_rows[x]));
        return x == 4 ? 1 : 0;
}

/*
 * Merging divides the raw sums of a decayed state by its clock, so what
 * the decision path cached about them no longer holds: a state merged in
 * place must decide as its restored snapshot, which starts without any
 * cache.  The streams are made so that after the merge, the rows at 0.3
 * are in the flagged share, which before it they were far from.
 */
static void test_cl_observe_merge_decides_as_restored(void **state)
{
        struct cl_params p;
        struct cl_state *a, *b, *copy;
        struct cl_verdict va, vc;
        double row[3];
        size_t flagged = 0;
        char *buf;
        size_t len;

        (void)state;
        cl_params_init(&p, 3);
        p.filter = CL_FILTER_LOW_SELF_CONFIDENCE;
        p.half_life = 100.0;
        p.warmup_total = 20.0;
        p.warmup_class = 2.0;
        p.warmup_policy = CL_WARMUP_PASS;
        assert_int_equal(cl_state_new(&p, &a), 0);
        assert_int_equal(cl_state_new(&p, &b), 0);
        for (size_t r = 0; r < 2000; r++) {
                long la = hand_row(false, r, row);

                assert_int_equal(cl_observe(a, la, row, 3, &va, NULL), 0);
                la = hand_row(true, r, row);
                assert_int_equal(cl_observe(b, la, row, 3, &va, NULL), 0);
        }
        assert_int_equal(cl_state_merge(a, b), 0);
        assert_int_equal(cl_state_snapshot(a, &buf, &len), 0);
        assert_int_equal(cl_state_restore(buf, len, &copy), 0);
        free(buf);
        for (size_t r = 0; r < 200; r++) {
                long la = hand_row(false, r, row);

                assert_int_equal(cl_observe(a, la, row, 3, &va, NULL), 0);
                assert_int_equal(cl_observe(copy, la, row, 3, &vc, NULL), 0);
                assert_int_equal(va.tag, vc.tag);
                assert_int_equal(va.suggested, vc.suggested);
                assert_int_equal(va.borderline, vc.borderline);
                assert_string_equal(va.reason, vc.reason);
                flagged += row[0] == 0.3 && vc.tag == CL_TAG_SUSPECT;
        }
        /* The case the test is about happened. */
        assert_true(flagged > 0);
        cl_state_free(copy);
        cl_state_free(b);
        cl_state_free(a);
}

/*
 * The row scan of cl_observe() keeps, per value, only the sum, the
 * smallest value, the confident classes and the best value other than
 * the label, and derives the range check, the argmax and the final
 * argmax filter from those.  These rows are made of a few values with
 * ties at every place that matters (equal maxima on either side of the
 * label, a value of exactly p[label] + CL_EPS, bounds of the range and
 * just past them, NaN, infinities), and each outcome is compared with
 * the definition, value by value.
 */
static const double scan_values[] = {0.0, 0.1, 0.3, 0.3, 1.0};

/* Value v of a row whose label has own; past the table, the edges. */
static double scan_value(uint64_t *s, double own)
{
        unsigned n = sizeof(scan_values) / sizeof(scan_values[0]);
        unsigned x = (unsigned)(next_u64(s) % (n + 3));

        if (x < n)
                return scan_values[x];
        if (x == n)
                return own;
        if (x == n + 1)
                return own + CL_EPS;
        return nextafter(own + CL_EPS, 1.0);
}

static double scan_edge(uint64_t *s)
{
        static const double edges[] = {-CL_EPS, 1.0 + CL_EPS, -0.0,
                                       NAN, INFINITY, -INFINITY};
        unsigned x = (unsigned)(next_u64(s) % 9);

        switch (x) {
        case 6:
                return nextafter(-CL_EPS, -1.0);
        case 7:
                return nextafter(1.0 + CL_EPS, 2.0);
        case 8:
                return 0.5;
        default:
                return edges[x];
        }
}

/* The final filter and argmax as 4.10 defines them, value by value. */
static void scan_reference(const double *p, unsigned k, unsigned label,
                           bool *ret_cleared, unsigned *ret_argmax)
{
        double lifted = p[label] + CL_EPS;
        unsigned best = 0;

        *ret_cleared = true;
        for (unsigned j = 0; j < k; j++) {
                if (p[j] > p[best])
                        best = j;
                if (j != label && (j < label ? p[j] >= lifted
                                             : p[j] > lifted))
                        *ret_cleared = false;
        }
        *ret_argmax = best;
}

static void test_cl_observe_row_scan_matches_definition(void **state)
{
        static const unsigned ks[] = {2, 3, 4, 10};
        uint64_t seed = 0x5eed5ca4ULL;
        size_t cleared = 0, ties = 0, edges = 0;

        (void)state;
        for (size_t x = 0; x < sizeof(ks) / sizeof(ks[0]); x++) {
                unsigned k = ks[x];
                struct cl_params p;
                struct cl_state *st;
                double row[10];

                /* predicted_neq_given decides every row at once: clean
                 * "argmax" when the final filter clears it, else suspect
                 * of the argmax.  No sum check: the rows need not sum
                 * to 1. */
                cl_params_init(&p, k);
                p.filter = CL_FILTER_PREDICTED_NEQ_GIVEN;
                p.warmup_policy = CL_WARMUP_PASS;
                p.sum_tol = 0.0;
                assert_int_equal(cl_state_new(&p, &st), 0);
                for (size_t r = 0; r < 20000; r++) {
                        unsigned label = (unsigned)(next_u64(&seed) % k);
                        double own = next_u64(&seed) % 2 ? 0.3 : 0.1;
                        struct cl_verdict v;
                        size_t want_index = SIZE_MAX, index = SIZE_MAX;
                        unsigned argmax;
                        bool clear;
                        int want;

                        for (unsigned j = 0; j < k; j++)
                                row[j] = scan_value(&seed, own);
                        row[label] = own;
                        /* One row in four has an edge value somewhere. */
                        if (next_u64(&seed) % 4 == 0) {
                                row[next_u64(&seed) % k] = scan_edge(&seed);
                                edges++;
                        }
                        want = cl_check_row(st, label, row, k, &want_index);
                        assert_int_equal(cl_observe(st, label, row, k, &v,
                                                    &index),
                                         want);
                        assert_int_equal(index, want_index);
                        if (want < 0)
                                continue;
                        scan_reference(row, k, label, &clear, &argmax);
                        ties += !clear && argmax != label &&
                                row[argmax] == row[label] + CL_EPS;
                        if (clear) {
                                cleared++;
                                assert_int_equal(v.tag, CL_TAG_CLEAN);
                                assert_string_equal(v.reason, "argmax");
                        } else {
                                assert_int_equal(v.tag, CL_TAG_SUSPECT);
                                assert_int_equal(v.suggested, argmax);
                        }
                }
                cl_state_free(st);
        }
        /* The cases the test is about happened. */
        assert_true(cleared > 1000);
        assert_true(ties > 100);
        assert_true(edges > 1000);
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
                cmocka_unit_test(test_cl_observe_merge_decides_as_restored),
                cmocka_unit_test(test_cl_observe_row_scan_matches_definition),
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
