/*
 * test_msg_diff.c - msg_decode() and msg_decode_id() against the reference
 * decoder (msg_decode_ref.c: the decoder as it was before decoding became
 * a single pass), compared by msg_diff.h: every file of the fuzz corpus,
 * each cut at every byte and with each byte changed; then a few thousand
 * generated messages, valid or not in every way the contract names, each
 * with mutants (cut, a byte changed, inserted, deleted or appended).
 *
 *   test_msg_diff CORPUS_DIR
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "msg.h"
#include "msg_diff.h"

#define K 10
#define MSG_CAP 65536
#define N_GENERATED 3000
#define N_MUTANTS 12

static const char *const class_names[K] = {
        "airplane", "automobile", "bird",  "cat",  "deer",
        "dog",      "frog",       "horse", "ship", "truck",
};

static const char *const three_names[3] = {"cat", "dog", "fox"};

static const char *corpus_dir;

/* The schemas every message is decoded with. */
enum { SCHEMA_NAMED, SCHEMA_PLAIN, SCHEMA_THREE, SCHEMA_COUNT };

struct fixture {
        struct msg_diff diff[SCHEMA_COUNT];
        unsigned long seen[SCHEMA_COUNT][9]; /* by -code, SCHEMA_NAMED .. */
        unsigned long runs;
};

/* A message being generated, and the generator's state. */
struct gen {
        uint64_t rng;
        unsigned k;
        const char *const *names; /* k names */
        size_t len;
        unsigned char buf[MSG_CAP];
};

static int setup(void **state)
{
        const struct msg_schema schemas[SCHEMA_COUNT] = {
                [SCHEMA_NAMED] = {K, class_names},
                [SCHEMA_PLAIN] = {K, NULL},
                [SCHEMA_THREE] = {3, three_names},
        };
        struct fixture *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        for (int s = 0; s < SCHEMA_COUNT; s++)
                if (msg_diff_init(&f->diff[s], &schemas[s]) != 0)
                        return -1;
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        for (int s = 0; s < SCHEMA_COUNT; s++)
                msg_diff_release(&f->diff[s]);
        free(f);
        return 0;
}

/* Decodes buf with every schema both ways; fails the test on the first
 * difference, naming it and showing the message in hex. */
static void check(struct fixture *f, const void *buf, size_t len)
{
        for (int s = 0; s < SCHEMA_COUNT; s++) {
                char what[768];
                int rc;

                if (!msg_diff_run(&f->diff[s], buf, len, &rc, what,
                                  sizeof(what))) {
                        fprintf(stderr, "schema %d, %zu bytes:", s, len);
                        for (size_t i = 0; i < len && i < 512; i++)
                                fprintf(stderr, " %02x",
                                        ((const unsigned char *)buf)[i]);
                        fprintf(stderr, "\n");
                        fail_msg("%s", what);
                }
                if (rc <= 0 && rc >= -8)
                        f->seen[s][-rc]++;
        }
        f->runs++;
}

/* Every cut and every one-byte change of buf. */
static void check_mutations(struct fixture *f, const unsigned char *buf,
                            size_t len)
{
        static const unsigned char values[] = {0x00, 0x7f, 0x80, 0x8f, 0x90,
                                               0xa0, 0xc0, 0xc1, 0xca, 0xcb,
                                               0xcf, 0xd9, 0xdc, 0xdd, 0xde,
                                               0xff};
        unsigned char *copy = malloc(len + 1);

        assert_non_null(copy);
        memcpy(copy, buf, len);
        for (size_t cut = 0; cut < len; cut++)
                check(f, copy, cut);
        for (size_t i = 0; i < len; i++) {
                for (size_t v = 0; v < sizeof(values); v++) {
                        copy[i] = values[v];
                        check(f, copy, len);
                }
                copy[i] = (unsigned char)(buf[i] ^ 1);
                check(f, copy, len);
                copy[i] = buf[i];
        }
        copy[len] = 0xc0;
        check(f, copy, len + 1);
        free(copy);
}

/* --- the fuzz corpus ------------------------------------------------ */

static unsigned char *read_file(const char *path, size_t *ret_len)
{
        FILE *fp = fopen(path, "rb");
        unsigned char *buf = malloc(MSG_CAP);
        size_t len;

        assert_non_null(fp);
        assert_non_null(buf);
        len = fread(buf, 1, MSG_CAP, fp);
        assert_false(ferror(fp));
        fclose(fp);
        *ret_len = len;
        return buf;
}

static void test_msg_diff_fuzz_corpus(void **state)
{
        struct fixture *f = *state;
        struct dirent *de;
        unsigned files = 0;
        DIR *d;

        assert_non_null(corpus_dir);
        d = opendir(corpus_dir);
        assert_non_null(d);
        while ((de = readdir(d)) != NULL) {
                char path[4096];
                unsigned char *buf;
                size_t len;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", corpus_dir, de->d_name);
                buf = read_file(path, &len);
                check(f, buf, len);
                check_mutations(f, buf, len);
                free(buf);
                files++;
        }
        closedir(d);
        assert_true(files >= 20);
        print_message("%u corpus files, %lu messages compared\n", files,
                      f->runs);
}

/* --- generated messages --------------------------------------------- */

static uint64_t rnd(struct gen *g)
{
        g->rng ^= g->rng >> 12;
        g->rng ^= g->rng << 25;
        g->rng ^= g->rng >> 27;
        return g->rng * 2685821657736338717ull;
}

static unsigned pick(struct gen *g, unsigned n)
{
        return (unsigned)(rnd(g) >> 33) % n;
}

static bool chance(struct gen *g, unsigned percent)
{
        return pick(g, 100) < percent;
}

static void put_byte(struct gen *g, unsigned b)
{
        if (g->len < MSG_CAP)
                g->buf[g->len++] = (unsigned char)b;
}

static void put_be(struct gen *g, uint64_t v, unsigned width)
{
        for (unsigned i = width; i > 0; i--)
                put_byte(g, (unsigned)(v >> (8 * (i - 1))) & 0xffu);
}

static void put_bytes(struct gen *g, const void *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                put_byte(g, ((const unsigned char *)p)[i]);
}

/* A container header of n elements (a map: pairs) in a format that fits,
 * chosen at random. */
static void put_container(struct gen *g, bool map, uint32_t n)
{
        unsigned form = pick(g, 3);

        if (form == 0 && n < 16)
                put_byte(g, (map ? 0x80u : 0x90u) | n);
        else if (form <= 1 && n < 65536)
                put_byte(g, map ? 0xde : 0xdc), put_be(g, n, 2);
        else
                put_byte(g, map ? 0xdf : 0xdd), put_be(g, n, 4);
}

/* A string in a format that fits, at random: fixstr most often. */
static void put_str(struct gen *g, const char *s, size_t n)
{
        unsigned form = chance(g, 60) ? 0 : 1 + pick(g, 3);

        if (form == 0 && n >= 32)
                form = 1;
        if (form == 1 && n >= 256)
                form = 2;
        if (form == 0)
                put_byte(g, 0xa0u | (unsigned)n);
        else
                put_byte(g, 0xd8u + form), put_be(g, n, 1u << (form - 1));
        put_bytes(g, s, n);
}

static void put_cstr(struct gen *g, const char *s)
{
        put_str(g, s, strlen(s));
}

/* Some bytes: printable mostly, any byte sometimes, empty sometimes. */
static void put_random_str(struct gen *g)
{
        char s[300];
        size_t n = chance(g, 10) ? 0 : pick(g, chance(g, 5) ? 300 : 24);

        for (size_t i = 0; i < n; i++)
                s[i] = (char)(chance(g, 95) ? 'a' + pick(g, 26) : pick(g, 256));
        put_str(g, s, n);
}

/* An unsigned integer in a format that fits, at random. */
static void put_uint(struct gen *g, uint64_t u)
{
        unsigned w = pick(g, 4);

        if (u < 128 && chance(g, 50)) {
                put_byte(g, (unsigned)u);
                return;
        }
        while (w < 3 && u >> (8u << w) != 0)
                w++;
        put_byte(g, 0xccu + w);
        put_be(g, u, 1u << w);
}

static void put_sint(struct gen *g, int64_t i)
{
        unsigned w = pick(g, 4);

        if (i >= -32 && i < 0 && chance(g, 50)) {
                put_byte(g, (unsigned)(i & 0xff));
                return;
        }
        while (w < 3 && (i < -(INT64_C(1) << (8 * (1u << w) - 1)) ||
                         i >= INT64_C(1) << (8 * (1u << w) - 1)))
                w++;
        put_byte(g, 0xd0u + w);
        put_be(g, (uint64_t)i, 1u << w);
}

static void put_int(struct gen *g)
{
        static const int64_t edges[] = {0, 1, -1, 127, 128, -32, -33,
                                        255, 256, 65535, 65536, -129,
                                        INT64_MAX, INT64_MIN};

        switch (pick(g, 5)) {
        case 0: put_uint(g, pick(g, 200)); break;
        case 1: put_sint(g, -(int64_t)pick(g, 200)); break;
        case 2: put_sint(g, edges[pick(g, 14)]); break;
        case 3: put_uint(g, (uint64_t)edges[pick(g, 13)]); break;
        default: put_uint(g, (uint64_t)INT64_MAX + 1 + pick(g, 3) +
                                     (chance(g, 50) ? 0 : rnd(g) >> 1));
        }
}

static void put_float(struct gen *g)
{
        static const double specials[] = {0.0, -0.0, 0.1, 0.5, 1.0, 3.0,
                                          1e300, -1e-310, 1.0 / 3.0};
        uint64_t bits;
        double d;

        if (chance(g, 10)) { /* any bits: NaNs with payloads, infinities */
                bits = rnd(g);
                if (chance(g, 50))
                        bits |= UINT64_C(0x7ff) << 52;
        } else {
                d = chance(g, 30) ? specials[pick(g, 9)]
                                  : (double)pick(g, 1000000) / 1e6;
                memcpy(&bits, &d, sizeof(bits));
        }
        if (chance(g, 50)) {
                float fl;
                uint32_t b32;

                memcpy(&d, &bits, sizeof(d));
                fl = (float)d;
                memcpy(&b32, &fl, sizeof(b32));
                if (chance(g, 10))
                        b32 = (uint32_t)(rnd(g) >> 32);
                put_byte(g, 0xca);
                put_be(g, b32, 4);
        } else {
                put_byte(g, 0xcb);
                put_be(g, bits, 8);
        }
}

static void put_number(struct gen *g)
{
        if (chance(g, 30))
                put_int(g);
        else
                put_float(g);
}

static void put_any(struct gen *g, unsigned depth);

/* n arrays or maps inside each other around a nil: n open at once. */
static void put_deep(struct gen *g, unsigned n)
{
        for (unsigned i = 0; i < n; i++) {
                if (chance(g, 70)) {
                        put_container(g, false, 1);
                } else {
                        put_container(g, true, 1);
                        put_cstr(g, "k");
                }
        }
        if (chance(g, 20))
                put_container(g, chance(g, 50), 0);
        else
                put_byte(g, 0xc0);
}

static void put_any(struct gen *g, unsigned depth)
{
        static const unsigned char fixext[] = {0xd4, 0xd5, 0xd6, 0xd7, 0xd8};
        unsigned n;

        switch (pick(g, depth < 3 ? 12 : 9)) {
        case 0: put_byte(g, 0xc0); break;
        case 1: put_byte(g, 0xc2 + pick(g, 2)); break;
        case 2: put_int(g); break;
        case 3: put_float(g); break;
        case 4: put_random_str(g); break;
        case 5:
                n = pick(g, 5);
                put_byte(g, 0xc4); /* bin 8 */
                put_be(g, n, 1);
                while (n--)
                        put_byte(g, pick(g, 256));
                break;
        case 6:
                n = pick(g, 5);
                put_byte(g, 0xc7);
                put_be(g, n, 1);
                put_byte(g, pick(g, 256));
                while (n--)
                        put_byte(g, pick(g, 256));
                break;
        case 7:
                n = pick(g, 5);
                put_byte(g, fixext[n]);
                put_byte(g, pick(g, 256));
                for (unsigned i = 0; i < 1u << n; i++)
                        put_byte(g, pick(g, 256));
                break;
        case 8:
                put_deep(g, 1 + pick(g, 3));
                break;
        case 9:
        case 10:
                n = pick(g, 4);
                put_container(g, false, n);
                while (n--)
                        put_any(g, depth + 1);
                break;
        default:
                n = pick(g, 3);
                put_container(g, true, n);
                while (n--) {
                        put_any(g, depth + 1);
                        put_any(g, depth + 1);
                }
        }
}

/* The keys a generated message may hold: the six fields and others. */
enum key {
        KEY_ID,
        KEY_LABEL,
        KEY_PROBS,
        KEY_ANNOTATOR,
        KEY_MODEL,
        KEY_TS,
        KEY_EXTRA,
        KEY_DEEP,
        KEY_NOT_STRING,
};

static const char *const key_names[] = {"id",        "label", "pred_probs",
                                        "annotator", "model", "ts"};

static void put_id(struct gen *g)
{
        unsigned r = pick(g, 100);

        if (r < 55)
                put_int(g);
        else if (r < 95)
                put_random_str(g);
        else
                put_any(g, 1);
}

static void put_label(struct gen *g)
{
        unsigned r = pick(g, 100);
        char name[32];

        if (r < 45) {
                put_uint(g, pick(g, g->k));
        } else if (r < 55) {
                put_int(g);
        } else if (r < 80) {
                put_cstr(g, g->names[pick(g, g->k)]);
        } else if (r < 90) {
                snprintf(name, sizeof(name), "%s", g->names[pick(g, g->k)]);
                name[pick(g, (unsigned)strlen(name))] ^= 0x20;
                put_cstr(g, name);
        } else {
                put_any(g, 1);
        }
}

static void put_probs(struct gen *g)
{
        unsigned r = pick(g, 100), n = g->k;

        if (r < 8)
                n = chance(g, 50) ? n + 1 + pick(g, 3) : pick(g, n);
        if (r >= 93) {
                put_any(g, 1);
                return;
        }
        put_container(g, false, n);
        for (unsigned i = 0; i < n; i++) {
                if (chance(g, 2))
                        put_any(g, 2);
                else
                        put_number(g);
        }
}

static void put_value(struct gen *g, enum key key)
{
        switch (key) {
        case KEY_ID: put_id(g); break;
        case KEY_LABEL: put_label(g); break;
        case KEY_PROBS: put_probs(g); break;
        case KEY_ANNOTATOR:
        case KEY_MODEL:
                if (chance(g, 92))
                        put_random_str(g);
                else
                        put_any(g, 1);
                break;
        case KEY_TS:
                if (chance(g, 88))
                        put_number(g);
                else
                        put_any(g, 1);
                break;
        case KEY_DEEP: put_deep(g, 28 + pick(g, 6)); break;
        default: put_any(g, 1);
        }
}

static void put_key(struct gen *g, enum key key)
{
        static const char *const extras[] = {"source", "x", "",
                                             "ID", "labels", "pred_prob"};

        if (key <= KEY_TS)
                put_cstr(g, key_names[key]);
        else if (key == KEY_NOT_STRING)
                put_any(g, 1 + (chance(g, 50) ? 0 : 2));
        else
                put_cstr(g, extras[pick(g, 6)]);
}

/* A message: each field present or not, sometimes twice, extra keys,
 * sometimes a key that is not a string, in random order. */
static void put_message(struct gen *g)
{
        enum key keys[16];
        unsigned n = 0;

        for (int f = KEY_ID; f <= KEY_TS; f++) {
                if (chance(g, f <= KEY_PROBS ? 96 : 50))
                        keys[n++] = (enum key)f;
                if (chance(g, 2))
                        keys[n++] = (enum key)f;
        }
        for (unsigned e = pick(g, 4); e > 0; e--)
                keys[n++] = KEY_EXTRA;
        if (chance(g, 4))
                keys[n++] = KEY_DEEP;
        if (chance(g, 3))
                keys[n++] = KEY_NOT_STRING;
        for (unsigned i = n; i > 1; i--) {
                unsigned j = pick(g, i);
                enum key t = keys[i - 1];

                keys[i - 1] = keys[j];
                keys[j] = t;
        }
        g->len = 0;
        put_container(g, true, n);
        for (unsigned i = 0; i < n; i++) {
                put_key(g, keys[i]);
                put_value(g, keys[i]);
        }
}

/* One mutant of the message in g into m; returns its length. */
static size_t mutate(struct gen *g, unsigned char *m)
{
        size_t len = g->len, at = pick(g, (unsigned)len);

        memcpy(m, g->buf, len);
        switch (pick(g, 6)) {
        case 0: return at; /* cut */
        case 1: m[at] = (unsigned char)pick(g, 256); return len;
        case 2: m[at] ^= (unsigned char)(1u << pick(g, 8)); return len;
        case 3: /* a byte inserted */
                memmove(m + at + 1, m + at, len - at);
                m[at] = (unsigned char)pick(g, 256);
                return len + 1;
        case 4: /* a byte deleted */
                memmove(m + at, m + at + 1, len - at - 1);
                return len - 1;
        default: /* one appended */
                m[len] = (unsigned char)pick(g, 256);
                return len + 1;
        }
}

static void generate(struct fixture *f, uint64_t seed, unsigned k,
                     const char *const *names, unsigned count)
{
        struct gen *g = calloc(1, sizeof(*g));
        unsigned char *m = malloc(MSG_CAP + 1);

        assert_non_null(g);
        assert_non_null(m);
        g->rng = seed;
        g->k = k;
        g->names = names;
        for (unsigned i = 0; i < count; i++) {
                put_message(g);
                assert_true(g->len > 0 && g->len < MSG_CAP);
                check(f, g->buf, g->len);
                for (unsigned j = 0; j < N_MUTANTS; j++)
                        check(f, m, mutate(g, m));
        }
        free(m);
        free(g);
}

static void test_msg_diff_generated(void **state)
{
        static const int codes[] = {MSG_OK,        MSG_E_PARSE,
                                    MSG_E_TYPE,    MSG_E_MISSING,
                                    MSG_E_DUPLICATE, MSG_E_WIDTH,
                                    MSG_E_LABEL};
        struct fixture *f = *state;

        generate(f, 0x9e3779b97f4a7c15u, K, class_names, N_GENERATED);
        generate(f, 0x2545f4914f6cdd1du, 3, three_names, N_GENERATED / 3);
        print_message("%lu messages compared\n", f->runs);
        /* Every outcome of the contract came up, with every schema. */
        for (int s = 0; s < SCHEMA_COUNT; s++) {
                for (size_t c = 0; c < sizeof(codes) / sizeof(codes[0]);
                     c++) {
                        unsigned long n = f->seen[s][-codes[c]];

                        if (n < 50)
                                fail_msg("schema %d: %s only %lu times", s,
                                         msg_err_name(codes[c]), n);
                }
        }
}

/* --- nesting around the limit, everywhere a value can be ------------ */

static void test_msg_diff_nesting_limit(void **state)
{
        struct fixture *f = *state;
        struct gen *g = calloc(1, sizeof(*g));

        assert_non_null(g);
        g->rng = 7;
        g->k = K;
        g->names = class_names;
        for (unsigned depth = 28; depth <= 34; depth++) {
                for (int where = 0; where < 5; where++) {
                        g->len = 0;
                        put_container(g, true, where == 4 ? 4 : 3);
                        put_cstr(g, "id");
                        if (where == 0)
                                put_deep(g, depth);
                        else
                                put_uint(g, 1);
                        put_cstr(g, "label");
                        put_uint(g, 2);
                        put_cstr(g, "pred_probs");
                        put_container(g, false, K);
                        for (unsigned i = 0; i < K; i++) {
                                if (where == 1 && i == 4)
                                        put_deep(g, depth);
                                else
                                        put_number(g);
                        }
                        if (where == 2 || where == 3) {
                                /* replaces nothing: a fourth pair */
                                g->buf[0] = 0x84;
                                if (where == 2)
                                        put_deep(g, depth); /* a key */
                                else
                                        put_cstr(g, "extra");
                                put_deep(g, depth);
                        }
                        if (where == 4) {
                                put_cstr(g, "ts");
                                put_deep(g, depth);
                        }
                        check(f, g->buf, g->len);
                        check_mutations(f, g->buf, g->len);
                }
        }
        free(g);
}

/* --- the comparison itself ------------------------------------------ */

static void test_msg_diff_detects_differences(void **state)
{
        static const unsigned char one[] = {
                0x83, 0xa2, 'i', 'd', 0x01, 0xa5, 'l', 'a', 'b', 'e', 'l',
                0x02, 0xaa, 'p', 'r', 'e', 'd', '_', 'p', 'r', 'o', 'b', 's',
                0x93, 0x00, 0x01, 0x00};
        struct fixture *f = *state;
        const struct msg_diff *d = &f->diff[SCHEMA_THREE];
        struct msg_diff_result a, b;
        unsigned char other[sizeof(one)];
        char what[512];

        memcpy(other, one, sizeof(one));
        msg_diff_decode(d, false, false, one, sizeof(one), &a);
        msg_diff_decode(d, true, false, one, sizeof(one), &b);
        assert_int_equal(a.rc, 0);
        assert_true(msg_diff_same(&a, &b, 3, what, sizeof(what)));

        other[4] = 0x02; /* another id */
        msg_diff_decode(d, true, false, other, sizeof(other), &b);
        assert_false(msg_diff_same(&a, &b, 3, what, sizeof(what)));
        assert_string_equal(what, "label field id_kind or id_int differs "
                                  "(returned 0)");

        other[4] = 0x01;
        other[26] = 0x02; /* another probability */
        msg_diff_decode(d, true, false, other, sizeof(other), &b);
        assert_false(msg_diff_same(&a, &b, 3, what, sizeof(what)));

        /* the same code at another offset */
        msg_diff_decode(d, false, false, one, 20, &a);
        msg_diff_decode(d, true, false, one, 21, &b);
        assert_int_equal(a.rc, MSG_E_PARSE);
        assert_int_equal(b.rc, MSG_E_PARSE);
        assert_false(msg_diff_same(&a, &b, 3, what, sizeof(what)));

        /* msg_decode_id against msg_decode: another label left behind */
        msg_diff_decode(d, false, true, one, sizeof(one), &a);
        msg_diff_decode(d, true, false, one, sizeof(one), &b);
        assert_false(msg_diff_same(&a, &b, 3, what, sizeof(what)));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                T(test_msg_diff_detects_differences),
                T(test_msg_diff_fuzz_corpus),
                T(test_msg_diff_nesting_limit),
                T(test_msg_diff_generated),
        };

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
                return 2;
        }
        corpus_dir = argv[1];
        return cmocka_run_group_tests(tests, NULL, NULL);
}
