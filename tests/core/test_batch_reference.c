/*
 * test_batch_reference.c - batch mode against cleanlab 2.9.0 on the five
 * reference inputs of ../shared/data/reference (see its README.md).
 *
 * Usage: test_batch_reference DATA_DIR (or CFD_SHARED_DATA in the
 * environment).  Exits 77 (skipped) when the data is absent.
 *
 * Per input: thresholds bit-exact, joints exactly equal, py / noise
 * matrices within 1e-12, self_confidence and normalized_margin bit-exact,
 * confidence_weighted_entropy within 1e-9, num_label_issues as in
 * summary.json, and every issues_<filter>.csv reproduced exactly with the
 * numpy sort; with the stable sort equal outside tie_ambiguous_*.csv and
 * with the counts of docs/batch.md inside.
 */
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
#include "cl_batch.h"
#include "csvread.h"
#include "npy.h"

#define SKIP_EXIT 77
#define LATENT_TOL 1e-12
#define ENTROPY_TOL 1e-9

static const char *data_dir;

/* How the rows of one input are built (reference/README.md). */
struct input {
        const char *name;
        const char *labels_npy; /* NULL: cifar10h annotations.csv */
        const char *probs_npy;
};

/* Stable-sort counts that differ from the reference (docs/batch.md). */
struct stable_count {
        const char *input;
        enum cl_filter filter;
        size_t count;
};

static const struct stable_count stable_counts[] = {
        {"20news", CL_FILTER_BOTH, 45},
        {"cifar10h", CL_FILTER_PRUNE_BY_NOISE_RATE, 33288},
        {"cifar10h", CL_FILTER_BOTH, 29225},
};

/* One loaded input and its batches; the state of a cmocka group. */
struct fixture {
        const struct input *in;
        size_t n;
        unsigned k;
        long *labels;
        double *probs;
        struct cl_batch *numpy, *stable;
        unsigned char *mask, *ref, *ties;
};

static void path_of(char *buf, size_t size, const char *in, const char *file)
{
        int len = snprintf(buf, size, "%s/reference/%s/%s", data_dir, in,
                           file);

        assert_true(len > 0 && (size_t)len < size);
}

static void load_npy(const char *path, struct npy_array *a)
{
        char err[512];

        if (npy_load(path, a, err, sizeof(err)) == 0)
                return;
        fail_msg("%s", err);
}

static void load_labelerrors(struct fixture *f)
{
        struct npy_array l, p;
        char path[4096];
        size_t r, c;

        snprintf(path, sizeof(path), "%s/%s", data_dir, f->in->labels_npy);
        load_npy(path, &l);
        snprintf(path, sizeof(path), "%s/%s", data_dir, f->in->probs_npy);
        load_npy(path, &p);
        assert_int_equal(l.rows, p.rows);
        f->n = p.rows;
        f->k = (unsigned)p.cols;
        f->labels = malloc(f->n * sizeof(*f->labels));
        f->probs = malloc(f->n * f->k * sizeof(*f->probs));
        assert_non_null(f->labels);
        assert_non_null(f->probs);
        for (r = 0; r < f->n; r++) {
                f->labels[r] = (long)npy_get(&l, r, 0);
                for (c = 0; c < f->k; c++)
                        f->probs[r * f->k + c] = npy_get(&p, r, c);
        }
        npy_array_free(&l);
        npy_array_free(&p);
}

/* cifar10h: label column of annotations.csv in seq order, probabilities
 * from row `item` of the cifar10 matrix. */
static void load_cifar10h(struct fixture *f)
{
        struct csv_reader *csv;
        struct npy_array p;
        char path[4096], err[512];
        long long seq, item, label;
        int cs, ci, cl, rc;
        size_t c, cap = 1 << 19;

        snprintf(path, sizeof(path), "%s/%s", data_dir, f->in->probs_npy);
        load_npy(path, &p);
        snprintf(path, sizeof(path), "%s/cifar10h/annotations.csv", data_dir);
        csv = csv_open(path, err, sizeof(err));
        if (!csv)
                fail_msg("%s", err);
        cs = csv_column(csv, "seq");
        ci = csv_column(csv, "item");
        cl = csv_column(csv, "label");
        assert_true(cs >= 0 && ci >= 0 && cl >= 0);
        f->k = (unsigned)p.cols;
        f->labels = malloc(cap * sizeof(*f->labels));
        f->probs = malloc(cap * f->k * sizeof(*f->probs));
        assert_non_null(f->labels);
        assert_non_null(f->probs);
        while ((rc = csv_next(csv, err, sizeof(err))) == 1) {
                assert_int_equal(csv_parse_i64(csv_field(csv, (size_t)cs),
                                               &seq), 0);
                assert_int_equal(csv_parse_i64(csv_field(csv, (size_t)ci),
                                               &item), 0);
                assert_int_equal(csv_parse_i64(csv_field(csv, (size_t)cl),
                                               &label), 0);
                /* The file is written in seq order. */
                assert_int_equal(seq, f->n);
                assert_true(f->n < cap && item >= 0 &&
                            (size_t)item < p.rows);
                f->labels[f->n] = (long)label;
                for (c = 0; c < f->k; c++)
                        f->probs[f->n * f->k + c] =
                                npy_get(&p, (size_t)item, c);
                f->n++;
        }
        if (rc < 0)
                fail_msg("%s", err);
        csv_close(csv);
        npy_array_free(&p);
}

/* Sets mask[r] for every index of an issues / tie CSV; returns false when
 * the file does not exist. */
static bool load_index_csv(const char *path, size_t n, unsigned char *mask)
{
        struct csv_reader *csv;
        struct stat st;
        char err[512];
        long long idx;
        int rc;

        memset(mask, 0, n);
        if (stat(path, &st) != 0)
                return false;
        csv = csv_open(path, err, sizeof(err));
        if (!csv)
                fail_msg("%s", err);
        assert_int_equal(csv_column(csv, "index"), 0);
        while ((rc = csv_next(csv, err, sizeof(err))) == 1) {
                assert_int_equal(csv_parse_i64(csv_field(csv, 0), &idx), 0);
                assert_true(idx >= 0 && (size_t)idx < n);
                mask[idx] = 1;
        }
        if (rc < 0)
                fail_msg("%s", err);
        csv_close(csv);
        return true;
}

/* The input of the group being run. */
static struct fixture current;

static int group_setup(void **state)
{
        struct fixture *f = &current;
        struct cl_batch_params p;

        if (f->in->labels_npy)
                load_labelerrors(f);
        else
                load_cifar10h(f);
        cl_batch_params_init(&p, f->k);
        assert_int_equal(cl_batch_new(&p, f->labels, f->probs, f->n,
                                      &f->numpy), 0);
        p.sort = CL_BATCH_SORT_STABLE;
        assert_int_equal(cl_batch_new(&p, f->labels, f->probs, f->n,
                                      &f->stable), 0);
        f->mask = malloc(f->n);
        f->ref = malloc(f->n);
        f->ties = malloc(f->n);
        assert_true(f->mask && f->ref && f->ties);
        *state = f;
        return 0;
}

static int group_teardown(void **state)
{
        struct fixture *f = *state;

        cl_batch_free(f->numpy);
        cl_batch_free(f->stable);
        free(f->labels);
        free(f->probs);
        free(f->mask);
        free(f->ref);
        free(f->ties);
        f->numpy = f->stable = NULL;
        f->labels = NULL;
        f->probs = NULL;
        f->mask = f->ref = f->ties = NULL;
        return 0;
}

static void test_cl_batch_info_accepts_every_row(void **state)
{
        struct fixture *f = *state;
        struct cl_batch_info info;

        cl_batch_info(f->numpy, &info);
        assert_int_equal(info.accepted, f->n);
        assert_true(info.parity);
        assert_false(info.cleanlab_refuses);
        assert_int_equal(info.distinct_labels, f->k);
}

static void test_cl_batch_thresholds_bit_exact(void **state)
{
        struct fixture *f = *state;
        const double *t = cl_batch_thresholds(f->numpy);
        struct npy_array a;
        char path[4096];
        unsigned k;

        path_of(path, sizeof(path), f->in->name, "thresholds.npy");
        load_npy(path, &a);
        assert_int_equal(a.rows, f->k);
        for (k = 0; k < f->k; k++)
                if (t[k] != npy_get(&a, k, 0))
                        fail_msg("%s threshold %u: %.17g != %.17g",
                                 f->in->name, k, t[k], npy_get(&a, k, 0));
        npy_array_free(&a);
}

static void expect_joint(const struct fixture *f, const char *file,
                         const int64_t *got)
{
        struct npy_array a;
        char path[4096];
        size_t i, j;

        path_of(path, sizeof(path), f->in->name, file);
        load_npy(path, &a);
        assert_int_equal(a.rows, f->k);
        assert_int_equal(a.cols, f->k);
        for (i = 0; i < f->k; i++)
                for (j = 0; j < f->k; j++)
                        if ((double)got[i * f->k + j] != npy_get(&a, i, j))
                                fail_msg("%s %s[%zu][%zu]: %lld != %g",
                                         f->in->name, file, i, j,
                                         (long long)got[i * f->k + j],
                                         npy_get(&a, i, j));
        npy_array_free(&a);
}

static void test_cl_batch_joint_exact(void **state)
{
        struct fixture *f = *state;

        expect_joint(f, "confident_joint.npy", cl_batch_joint(f->numpy));
        expect_joint(f, "confident_joint_calibrated.npy",
                     cl_batch_joint_calibrated(f->numpy));
        /* With the stable sort only equal residuals could differ: the
         * reference joints have none at a rounding cut-off. */
        expect_joint(f, "confident_joint_calibrated.npy",
                     cl_batch_joint_calibrated(f->stable));
}

/* Largest absolute difference between got and an .npy file. */
static double max_diff(const struct fixture *f, const char *file,
                       const double *got, size_t count)
{
        struct npy_array a;
        char path[4096];
        double d, worst = 0.0;
        size_t i;

        path_of(path, sizeof(path), f->in->name, file);
        load_npy(path, &a);
        assert_int_equal(a.rows * a.cols, count);
        for (i = 0; i < count; i++) {
                d = got[i] - npy_get(&a, i / a.cols, i % a.cols);
                if (d < 0)
                        d = -d;
                if (!(d <= worst))
                        worst = d;
        }
        npy_array_free(&a);
        return worst;
}

static void expect_latent(const struct fixture *f, bool calibrated)
{
        const char *files[2][3] = {
                {"py_from_uncalibrated_cj.npy",
                 "noise_matrix_from_uncalibrated_cj.npy",
                 "inv_noise_matrix_from_uncalibrated_cj.npy"},
                {"py.npy", "noise_matrix.npy", "inv_noise_matrix.npy"},
        };
        const double *v[3];
        size_t sizes[3] = {f->k, (size_t)f->k * f->k, (size_t)f->k * f->k};
        double d;
        int i;

        cl_batch_latent(f->numpy, calibrated, &v[0], &v[1], &v[2]);
        for (i = 0; i < 3; i++) {
                d = max_diff(f, files[calibrated][i], v[i], sizes[i]);
                print_message("%s %s: max abs diff %.3g\n", f->in->name,
                              files[calibrated][i], d);
                if (!(d <= LATENT_TOL))
                        fail_msg("%s %s: max diff %g", f->in->name,
                                 files[calibrated][i], d);
        }
}

static void test_cl_batch_latent_within_tolerance(void **state)
{
        expect_latent(*state, true);
        expect_latent(*state, false);
}

static void test_cl_batch_quality_matches_reference(void **state)
{
        static const char *const files[] = {
                "quality_self_confidence.npy",
                "quality_normalized_margin.npy",
                "quality_confidence_weighted_entropy.npy",
        };
        static const double tol[] = {0.0, 0.0, ENTROPY_TOL};
        struct fixture *f = *state;
        double *scores = malloc(f->n * sizeof(*scores)), d;
        int s;

        assert_non_null(scores);
        for (s = 0; s < 3; s++) {
                assert_int_equal(cl_batch_quality(f->numpy,
                                                  (enum cl_batch_score)s,
                                                  scores), 0);
                d = max_diff(f, files[s], scores, f->n);
                print_message("%s %s: max abs diff %.3g\n", f->in->name,
                              files[s], d);
                if (!(d <= tol[s]))
                        fail_msg("%s %s: max diff %g", f->in->name, files[s],
                                 d);
        }
        free(scores);
}

/* Reads "key": value inside the "num_label_issues" object of summary.json. */
static size_t summary_count(const struct fixture *f, const char *key)
{
        char path[4096], buf[16384], needle[64];
        const char *obj, *at;
        size_t len;
        FILE *fp;

        path_of(path, sizeof(path), f->in->name, "summary.json");
        fp = fopen(path, "r");
        assert_non_null(fp);
        len = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        obj = strstr(buf, "\"num_label_issues\"");
        assert_non_null(obj);
        snprintf(needle, sizeof(needle), "\"%s\":", key);
        at = strstr(obj, needle);
        assert_non_null(at);
        return (size_t)strtoul(at + strlen(needle), NULL, 10);
}

static void test_cl_batch_num_label_issues_matches_summary(void **state)
{
        struct fixture *f = *state;

        assert_int_equal(cl_batch_num_label_issues(
                                 f->numpy, CL_BATCH_COUNT_OFF_DIAGONAL),
                         summary_count(f, "off_diagonal"));
        assert_int_equal(cl_batch_num_label_issues(
                                 f->numpy,
                                 CL_BATCH_COUNT_OFF_DIAGONAL_CALIBRATED),
                         summary_count(f, "off_diagonal_calibrated"));
}

/* The reference file of a filter; low_self_confidence equals the batched
 * set on all five inputs (docs/batch.md). */
static const char *issues_file(enum cl_filter filter)
{
        if (filter == CL_FILTER_LOW_SELF_CONFIDENCE)
                return "batched";
        return cl_filter_name(filter);
}

static void load_reference(struct fixture *f, enum cl_filter filter)
{
        char file[128], path[4096];

        snprintf(file, sizeof(file), "issues_%s.csv", issues_file(filter));
        path_of(path, sizeof(path), f->in->name, file);
        assert_true(load_index_csv(path, f->n, f->ref));
        snprintf(file, sizeof(file), "tie_ambiguous_%s.csv",
                 issues_file(filter));
        path_of(path, sizeof(path), f->in->name, file);
        load_index_csv(path, f->n, f->ties);
}

static size_t count_set(const unsigned char *m, size_t n)
{
        size_t r, c = 0;

        for (r = 0; r < n; r++)
                c += m[r] != 0;
        return c;
}

static const enum cl_filter set_filters[] = {
        CL_FILTER_PRUNE_BY_NOISE_RATE, CL_FILTER_PRUNE_BY_CLASS,
        CL_FILTER_BOTH,                CL_FILTER_CONFIDENT_LEARNING,
        CL_FILTER_PREDICTED_NEQ_GIVEN, CL_FILTER_LOW_SELF_CONFIDENCE,
};

static void test_cl_batch_find_issues_numpy_sort_exact(void **state)
{
        struct fixture *f = *state;
        size_t i, r, count;

        for (i = 0; i < sizeof(set_filters) / sizeof(set_filters[0]); i++) {
                load_reference(f, set_filters[i]);
                assert_int_equal(cl_batch_find_issues(f->numpy,
                                                      set_filters[i],
                                                      f->mask, &count),
                                 0);
                for (r = 0; r < f->n; r++)
                        if (f->mask[r] != f->ref[r])
                                fail_msg("%s %s: row %zu flagged %d, "
                                         "reference %d",
                                         f->in->name,
                                         cl_filter_name(set_filters[i]), r,
                                         f->mask[r], f->ref[r]);
                assert_int_equal(count, count_set(f->ref, f->n));
        }
}

static size_t expected_stable_count(const struct fixture *f,
                                    enum cl_filter filter)
{
        size_t i;

        for (i = 0; i < sizeof(stable_counts) / sizeof(stable_counts[0]); i++)
                if (strcmp(stable_counts[i].input, f->in->name) == 0 &&
                    stable_counts[i].filter == filter)
                        return stable_counts[i].count;
        return count_set(f->ref, f->n);
}

static void test_cl_batch_find_issues_stable_sort_outside_ties(void **state)
{
        struct fixture *f = *state;
        size_t i, r, count;

        for (i = 0; i < sizeof(set_filters) / sizeof(set_filters[0]); i++) {
                load_reference(f, set_filters[i]);
                assert_int_equal(cl_batch_find_issues(f->stable,
                                                      set_filters[i],
                                                      f->mask, &count),
                                 0);
                for (r = 0; r < f->n; r++)
                        if (!f->ties[r] && f->mask[r] != f->ref[r])
                                fail_msg("%s %s stable: row %zu outside "
                                         "the ties differs",
                                         f->in->name,
                                         cl_filter_name(set_filters[i]), r);
                assert_int_equal(count,
                                 expected_stable_count(f, set_filters[i]));
        }
}

/* low_normalized_margin has no reference file: its count equals the
 * confident_learning count on every input (docs/batch.md). */
static void test_cl_batch_find_issues_low_margin_count(void **state)
{
        struct fixture *f = *state;
        size_t count, expect;

        expect = cl_batch_num_label_issues(f->numpy,
                                           CL_BATCH_COUNT_OFF_DIAGONAL);
        assert_int_equal(cl_batch_find_issues(f->numpy,
                                              CL_FILTER_LOW_NORMALIZED_MARGIN,
                                              f->mask, &count),
                         0);
        assert_int_equal(count, expect);
        assert_int_equal(cl_batch_find_issues(f->stable,
                                              CL_FILTER_LOW_NORMALIZED_MARGIN,
                                              f->mask, &count),
                         0);
        assert_int_equal(count, expect);
}

static const struct input inputs[] = {
        {"mnist", "labelerrors/mnist/labels.npy",
         "labelerrors/mnist/pred_probs.npy"},
        {"cifar10", "labelerrors/cifar10/labels.npy",
         "labelerrors/cifar10/pred_probs.npy"},
        {"20news", "labelerrors/20news/labels.npy",
         "labelerrors/20news/pred_probs.npy"},
        {"imdb", "labelerrors/imdb/labels.npy",
         "labelerrors/imdb/pred_probs_rownorm.npy"},
        {"cifar10h", NULL, "labelerrors/cifar10/pred_probs.npy"},
};

static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cl_batch_info_accepts_every_row),
        cmocka_unit_test(test_cl_batch_thresholds_bit_exact),
        cmocka_unit_test(test_cl_batch_joint_exact),
        cmocka_unit_test(test_cl_batch_latent_within_tolerance),
        cmocka_unit_test(test_cl_batch_quality_matches_reference),
        cmocka_unit_test(test_cl_batch_num_label_issues_matches_summary),
        cmocka_unit_test(test_cl_batch_find_issues_numpy_sort_exact),
        cmocka_unit_test(test_cl_batch_find_issues_stable_sort_outside_ties),
        cmocka_unit_test(test_cl_batch_find_issues_low_margin_count),
};

int main(int argc, char **argv)
{
        char probe[4096];
        struct stat st;
        size_t i;
        int failed = 0;

        data_dir = argc > 1 ? argv[1] : getenv("CFD_SHARED_DATA");
        if (!data_dir || !*data_dir) {
                printf("skip: no data folder (argument or CFD_SHARED_DATA)\n");
                return SKIP_EXIT;
        }
        snprintf(probe, sizeof(probe), "%s/reference/README.md", data_dir);
        if (stat(probe, &st) != 0) {
                printf("skip: %s not found\n", probe);
                return SKIP_EXIT;
        }
        for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
                current = (struct fixture){.in = &inputs[i]};
                failed += cmocka_run_group_tests_name(inputs[i].name, tests,
                                                      group_setup,
                                                      group_teardown);
        }
        return failed ? 1 : 0;
}
