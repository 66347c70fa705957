/*
 * cmd_simulate.c - `confidentctl simulate`: a synthetic annotation stream
 * with known ground truth, for demos and tests on a machine without data.
 *
 * The world: N items with true classes drawn uniformly from K.  Each of A
 * annotators labels through an own noise matrix M_a (row t: the chance of
 * each label given true class t).  Its error rate e_a is spread evenly
 * around the requested average R, varies a little per class, and goes
 * mostly to one or two "confusable" classes per true class, shared by all
 * annotators, as cat/dog confusions are.  The model's logits are
 * z = mu * [true class] + 0.4 mu * [first confusable class] + N(0, 1)
 * noise, mu chosen so that argmax z is the true class with probability Q;
 * its probabilities are softmax(z).
 *
 * Random draws come from separate streams of one seed (see rng.h), so
 * --accuracy changes the probabilities only, never the labels.
 *
 * TODO: the labels CSV uses integer and IEEE arithmetic only and is the
 * same on every machine, but the probabilities go through libm (exp,
 * log, erfc, pow), which C does not require to round correctly: with a C
 * library other than glibc the .npy of a seed may differ in the last
 * bits, and a verdict near a threshold may then differ too.
 */
#include "cmds.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "npy.h"
#include "rng.h"

/* Independent random streams of the seed. */
enum sim_stream {
        STREAM_NOISE = 1, /* confusable classes and noise matrices */
        STREAM_ITEMS,     /* true classes, annotators, labels */
        STREAM_MODEL,     /* logit noise */
        STREAM_ORDER,     /* order of annotations when several per item */
};

/* The most classes, as the configuration allows (config/README.md). */
#define MAX_CLASSES 65536
/* The largest --noise; keeps every annotator's diagonal dominant (see
 * noise_row()). */
#define MAX_NOISE 0.25
/* sqrt(2 pi), for the normal density (M_PI is not ISO C). */
#define SQRT_2PI 2.5066282746310002
/* Share of the model's margin the first confusable class gets. */
#define CONFUSABLE_BOOST 0.4

struct sim_opts {
        unsigned k, items, annotators, per_item;
        double noise, accuracy;
        uint64_t seed;
        const char *out_labels, *out_probs, *out_noise;
};

struct annotation {
        uint32_t item;
        uint32_t annotator;
        uint32_t label;
};

struct sim {
        struct sim_opts o;
        unsigned *confusable;   /* 2 per class: most, then second most */
        double *noise;          /* A matrices of K x K, row-stochastic */
        uint32_t *truth;        /* N true classes */
        double *probs;          /* N x K model probabilities */
        struct annotation *ann; /* N * per_item, in stream order */
        size_t nann;
        uint32_t *pool;         /* A annotator ids, scratch */
};

static const char usage_text[] =
        "usage: confidentctl simulate --out-labels FILE.csv --out-probs "
        "FILE.npy [options]\n"
        "\n"
        "Writes a synthetic annotation stream with known truth.\n"
        "\n"
        "  --classes K          classes (default 10)\n"
        "  --items N            items (default 20000)\n"
        "  --annotators A       annotators (default 5)\n"
        "  --per-item L         annotations per item, by L different\n"
        "                       annotators (default 1)\n"
        "  --noise R            average annotator error rate, at most 0.25\n"
        "                       (default 0.1)\n"
        "  --accuracy Q         model top-1 accuracy, above 1/K (default "
        "0.9)\n"
        "  --seed S             random seed (default 1)\n"
        "  --out-labels FILE    CSV: id,label,true_label,annotator,row\n"
        "  --out-probs FILE     .npy, float64 N x K: row i is item i\n"
        "  --out-noise FILE     CSV: annotator,true_label,label,probability\n"
        "\n"
        "Prints one summary line: items, annotations, realised error rate\n"
        "and model accuracy.\n";

/* Returns -1 to go on, or the exit status (0 after --help, 2). */
static int parse_options(int argc, char **argv, struct sim_opts *o)
{
        const struct cli_opt opts[] = {
                {"classes", CLI_UNSIGNED, &o->k, 2, MAX_CLASSES, NULL},
                {"items", CLI_UNSIGNED, &o->items, 1, 50000000, NULL},
                {"annotators", CLI_UNSIGNED, &o->annotators, 1, 10000, NULL},
                {"per-item", CLI_UNSIGNED, &o->per_item, 1, 100, NULL},
                {"noise", CLI_DOUBLE, &o->noise, 0, MAX_NOISE, NULL},
                {"accuracy", CLI_DOUBLE, &o->accuracy, 0, 0.999, NULL},
                {"seed", CLI_U64, &o->seed, 0, 0, NULL},
                {"out-labels", CLI_STRING, &o->out_labels, 0, 0, NULL},
                {"out-probs", CLI_STRING, &o->out_probs, 0, 0, NULL},
                {"out-noise", CLI_STRING, &o->out_noise, 0, 0, NULL},
        };
        int rc;

        *o = (struct sim_opts){.k = 10, .items = 20000, .annotators = 5,
                               .per_item = 1, .noise = 0.1, .accuracy = 0.9,
                               .seed = 1};
        rc = cli_parse_command(argc, argv, opts,
                               sizeof(opts) / sizeof(opts[0]), usage_text);
        if (rc >= 0)
                return rc;
        if (o->out_labels == NULL || o->out_probs == NULL) {
                fprintf(stderr, "confidentctl simulate: --out-labels and "
                                "--out-probs are required\n");
                return 2;
        }
        if (o->accuracy <= 1.0 / o->k) {
                fprintf(stderr, "confidentctl simulate: --accuracy: must be "
                                "above chance (1/K = %g), got %g\n",
                        1.0 / o->k, o->accuracy);
                return 2;
        }
        if (o->per_item > o->annotators) {
                fprintf(stderr, "confidentctl simulate: --per-item: %u is "
                                "more than the %u annotators\n",
                        o->per_item, o->annotators);
                return 2;
        }
        return -1;
}

/* ---- the world ------------------------------------------------------- */

/*
 * For each class, two other classes it is most often mistaken for (the
 * same twice when K = 2).
 */
static void make_confusions(struct sim *s, struct rng *r)
{
        unsigned k = s->o.k, t, a, b;

        for (t = 0; t < k; t++) {
                a = (t + 1 + (unsigned)rng_below(r, k - 1)) % k;
                b = a;
                while (k > 2 && (b == a || b == t))
                        b = (unsigned)rng_below(r, k);
                s->confusable[2 * t] = a;
                s->confusable[2 * t + 1] = b;
        }
}

/*
 * Fills row t of a noise matrix for error rate e: 1 - e on the diagonal;
 * of e, a share of 0.5-0.7 to the first confusable class, 0.25 to the
 * second, the rest spread over all K - 1 wrong classes.  e stays below
 * 1.5 * 1.25 * MAX_NOISE < 0.47 (make_noise_matrices()), so every wrong
 * entry, at most e, is below 1 - e: the diagonal dominates, as the
 * confident-learning estimates assume.
 */
static void noise_row(const struct sim *s, struct rng *r, double e,
                      unsigned t, double *row)
{
        unsigned k = s->o.k, j;
        double first = 0.5 + 0.2 * rng_uniform(r);
        double second = k > 2 ? 0.25 : 0.0;
        double rest = (1.0 - first - second) / (k - 1);

        for (j = 0; j < k; j++)
                row[j] = j == t ? 1.0 - e : rest * e;
        row[s->confusable[2 * t]] += first * e;
        row[s->confusable[2 * t + 1]] += second * e;
}

/*
 * Annotator a's base error rate is R * (0.5 + (a + 0.5) / A), which
 * averages exactly R over the annotators; each class then scales it by
 * a factor from [0.75, 1.25).
 */
static void make_noise_matrices(struct sim *s, struct rng *r)
{
        unsigned k = s->o.k, a, t;
        double base, e;

        for (a = 0; a < s->o.annotators; a++) {
                base = s->o.noise * (0.5 + (a + 0.5) / s->o.annotators);
                for (t = 0; t < k; t++) {
                        e = base * (0.75 + 0.5 * rng_uniform(r));
                        noise_row(s, r, e, t,
                                  s->noise + ((size_t)a * k + t) * k);
                }
        }
}

/* Draws a label from a row of K probabilities. */
static uint32_t draw_label(struct rng *r, const double *row, unsigned k)
{
        double u = rng_uniform(r), acc = 0.0;
        unsigned j;

        for (j = 0; j + 1 < k; j++) {
                acc += row[j];
                if (u < acc)
                        return j;
        }
        return k - 1;
}

/*
 * True classes, then per item per_item distinct annotators (a partial
 * Fisher-Yates shuffle of pool) and their labels, in item order.
 */
static void draw_items(struct sim *s, struct rng *r)
{
        unsigned k = s->o.k, na = s->o.annotators, i, j, a;
        struct annotation *out = s->ann;
        uint32_t *pool = s->pool;
        const double *row;

        for (a = 0; a < na; a++)
                pool[a] = a;
        for (i = 0; i < s->o.items; i++) {
                s->truth[i] = (uint32_t)rng_below(r, k);
                for (j = 0; j < s->o.per_item; j++) {
                        uint32_t pick = j + (uint32_t)rng_below(r, na - j);
                        uint32_t tmp = pool[j];

                        pool[j] = pool[pick];
                        pool[pick] = tmp;
                        a = pool[j];
                        row = s->noise + ((size_t)a * k + s->truth[i]) * k;
                        *out++ = (struct annotation){
                                .item = i, .annotator = a,
                                .label = draw_label(r, row, k)};
                }
        }
}

/* With several annotations per item, mixes them through the stream. */
static void shuffle_annotations(struct sim *s, struct rng *r)
{
        size_t i, j;

        for (i = s->nann; i > 1; i--) {
                struct annotation tmp;

                j = (size_t)rng_below(r, i);
                tmp = s->ann[i - 1];
                s->ann[i - 1] = s->ann[j];
                s->ann[j] = tmp;
        }
}

/* ---- the model ------------------------------------------------------- */

static double std_normal_cdf(double x)
{
        return 0.5 * erfc(-x / sqrt(2.0));
}

/*
 * P(argmax z = true class) for margin mu: given the true class's noise x,
 * the confusable class must stay below x + (1 - boost) mu and the other
 * K - 2 below x + mu.  Trapezoid rule over x in [-9, 9].
 */
static double model_accuracy(double mu, unsigned k)
{
        const double lo = -9.0, hi = 9.0, h = 0.005;
        double sum = 0.0, x, f;
        int i, n = (int)((hi - lo) / h);

        for (i = 0; i <= n; i++) {
                x = lo + i * h;
                f = exp(-0.5 * x * x) / SQRT_2PI *
                    std_normal_cdf(x + (1.0 - CONFUSABLE_BOOST) * mu) *
                    pow(std_normal_cdf(x + mu), (double)(k - 2));
                sum += (i == 0 || i == n) ? 0.5 * f : f;
        }
        return sum * h;
}

/* The margin mu giving accuracy q, by bisection (accuracy rises with mu). */
static double margin_for_accuracy(double q, unsigned k)
{
        double lo = 0.0, hi = 40.0, mid;
        int i;

        for (i = 0; i < 60; i++) {
                mid = 0.5 * (lo + hi);
                if (model_accuracy(mid, k) < q)
                        lo = mid;
                else
                        hi = mid;
        }
        return 0.5 * (lo + hi);
}

/* Softmax of the noisy logits of one item into p (K values). */
static void model_row(const struct sim *s, struct rng *r, double mu,
                      uint32_t truth, double *p)
{
        unsigned k = s->o.k, j;
        double max = -HUGE_VAL, sum = 0.0;

        for (j = 0; j < k; j++) {
                p[j] = rng_normal(r);
                if (j == truth)
                        p[j] += mu;
                else if (j == s->confusable[2 * truth])
                        p[j] += CONFUSABLE_BOOST * mu;
                if (p[j] > max)
                        max = p[j];
        }
        for (j = 0; j < k; j++) {
                p[j] = exp(p[j] - max);
                sum += p[j];
        }
        for (j = 0; j < k; j++)
                p[j] /= sum;
}

static void make_model(struct sim *s, struct rng *r)
{
        double mu = margin_for_accuracy(s->o.accuracy, s->o.k);
        size_t i;

        for (i = 0; i < s->o.items; i++)
                model_row(s, r, mu, s->truth[i], s->probs + i * s->o.k);
}

/* ---- output ---------------------------------------------------------- */

static int close_output(FILE *f, const char *path)
{
        int failed = ferror(f);

        if (fclose(f) != 0 || failed) {
                fprintf(stderr, "confidentctl simulate: %s: write error: %s\n",
                        path, strerror(errno));
                return -1;
        }
        return 0;
}

static FILE *open_output(const char *path)
{
        FILE *f = fopen(path, "w");

        if (f == NULL)
                fprintf(stderr, "confidentctl simulate: %s: %s\n", path,
                        strerror(errno));
        return f;
}

/* id is the position in the stream, row the item (its .npy row). */
static int write_labels(const struct sim *s, const char *path)
{
        FILE *f = open_output(path);
        size_t i;

        if (f == NULL)
                return -1;
        fputs("id,label,true_label,annotator,row\n", f);
        for (i = 0; i < s->nann; i++) {
                const struct annotation *a = &s->ann[i];

                fprintf(f, "%zu,%u,%u,%u,%u\n", i, (unsigned)a->label,
                        (unsigned)s->truth[a->item], (unsigned)a->annotator,
                        (unsigned)a->item);
        }
        return close_output(f, path);
}

/* Each matrix in long form; %.17g gives back the exact doubles. */
static int write_noise(const struct sim *s, const char *path)
{
        unsigned k = s->o.k, a, t, j;
        FILE *f = open_output(path);

        if (f == NULL)
                return -1;
        fputs("annotator,true_label,label,probability\n", f);
        for (a = 0; a < s->o.annotators; a++)
                for (t = 0; t < k; t++)
                        for (j = 0; j < k; j++)
                                fprintf(f, "%u,%u,%u,%.17g\n", a, t, j,
                                        s->noise[((size_t)a * k + t) * k + j]);
        return close_output(f, path);
}

static int write_outputs(const struct sim *s)
{
        char err[512];

        if (write_labels(s, s->o.out_labels) < 0)
                return -1;
        if (npy_save_f8(s->o.out_probs, s->probs, s->o.items, s->o.k, err,
                        sizeof(err)) < 0) {
                fprintf(stderr, "confidentctl simulate: %s\n", err);
                return -1;
        }
        if (s->o.out_noise != NULL && write_noise(s, s->o.out_noise) < 0)
                return -1;
        return 0;
}

static unsigned argmax(const double *p, unsigned k)
{
        unsigned j, best = 0;

        for (j = 1; j < k; j++)
                if (p[j] > p[best])
                        best = j;
        return best;
}

static void print_summary(const struct sim *s)
{
        size_t i, wrong = 0, right = 0;

        for (i = 0; i < s->nann; i++)
                wrong += s->ann[i].label != s->truth[s->ann[i].item];
        for (i = 0; i < s->o.items; i++)
                right += argmax(s->probs + i * s->o.k, s->o.k) == s->truth[i];
        printf("items=%u annotations=%zu classes=%u annotators=%u "
               "label_error_rate=%.4f model_accuracy=%.4f\n",
               s->o.items, s->nann, s->o.k, s->o.annotators,
               (double)wrong / (double)s->nann,
               (double)right / (double)s->o.items);
}

/* ---- driver ---------------------------------------------------------- */

static void sim_release(struct sim *s)
{
        free(s->confusable);
        free(s->noise);
        free(s->truth);
        free(s->probs);
        free(s->ann);
        free(s->pool);
}

static int sim_alloc(struct sim *s)
{
        size_t k = s->o.k;

        s->nann = (size_t)s->o.items * s->o.per_item;
        s->confusable = calloc(2 * k, sizeof(*s->confusable));
        s->noise = calloc((size_t)s->o.annotators * k * k, sizeof(double));
        s->truth = calloc(s->o.items, sizeof(*s->truth));
        s->probs = calloc((size_t)s->o.items * k, sizeof(double));
        s->ann = calloc(s->nann, sizeof(*s->ann));
        s->pool = calloc(s->o.annotators, sizeof(*s->pool));
        if (s->confusable == NULL || s->noise == NULL || s->truth == NULL ||
            s->probs == NULL || s->ann == NULL || s->pool == NULL) {
                fprintf(stderr, "confidentctl simulate: out of memory for "
                                "%u items x %zu classes\n",
                        s->o.items, k);
                return -1;
        }
        return 0;
}

static void simulate(struct sim *s)
{
        struct rng r;

        rng_init(&r, s->o.seed, STREAM_NOISE);
        make_confusions(s, &r);
        make_noise_matrices(s, &r);
        rng_init(&r, s->o.seed, STREAM_ITEMS);
        draw_items(s, &r);
        if (s->o.per_item > 1) {
                rng_init(&r, s->o.seed, STREAM_ORDER);
                shuffle_annotations(s, &r);
        }
        rng_init(&r, s->o.seed, STREAM_MODEL);
        make_model(s, &r);
}

int cmd_simulate(int argc, char **argv)
{
        struct sim s = {0};
        int rc;

        rc = parse_options(argc, argv, &s.o);
        if (rc >= 0)
                return rc;
        rc = 1;
        if (sim_alloc(&s) < 0)
                goto out_release;
        simulate(&s);
        if (write_outputs(&s) < 0)
                goto out_release;
        print_summary(&s);
        rc = 0;
out_release:
        sim_release(&s);
        return rc;
}
