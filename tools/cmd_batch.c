/*
 * cmd_batch.c - `confidentctl batch`: the exact (cleanlab 2.9.0) batch
 * mode over files: labels from a CSV column or a .npy, probabilities from
 * a .npy; writes the flagged row indices like cleanlab's reference
 * issues_*.csv and, on request, a summary of the statistics.
 */
#include "cmds.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl.h"
#include "cl_batch.h"
#include "batch_state.h"
#include "cli.h"
#include "csvread.h"
#include "npy.h"

#define NAME "confidentctl batch"

struct batch_opts {
        const char *labels, *probs, *label_col, *row_col, *filter;
        const char *sort, *rank_by, *out;
        const char *config, *state_out; /* --state-out needs --config */
        enum cl_batch_score score; /* parsed --rank-by */
        bool summary;
        unsigned min_examples;
        double frac_noise, sum_tol;
};

/* The loaded input: n labels and an n x k matrix owned here. */
struct input {
        size_t n;
        unsigned k;
        long *labels;
        double *probs;
};

static void usage(FILE *out)
{
        fprintf(out,
                "usage: " NAME " --labels FILE --probs FILE.npy [options]\n"
                "\n"
                "  --labels FILE           .npy of labels, or .csv with "
                "--label-column\n"
                "  --label-column NAME     CSV column of the label "
                "(default label)\n"
                "  --row-column NAME       CSV column giving the .npy row "
                "(default: same row)\n"
                "  --probs FILE.npy        N x K model probabilities\n"
                "  --filter-by METHOD      prune_by_noise_rate (default), "
                "prune_by_class, both,\n"
                "                          confident_learning, "
                "predicted_neq_given,\n"
                "                          low_self_confidence, "
                "low_normalized_margin\n"
                "  --sort numpy|stable     order of ties (default numpy, as "
                "cleanlab)\n"
                "  --rank-by SCORE         write rows by ascending "
                "self_confidence,\n"
                "                          normalized_margin or "
                "confidence_weighted_entropy\n"
                "  --out FILE.csv          flagged rows, header 'index' "
                "(default stdout)\n"
                "  --summary               thresholds, joints and counts on "
                "stdout\n"
                "  --min-examples-per-class N, --frac-noise F  as cleanlab "
                "(1, 1.0)\n"
                "  --sum-tol T             reject rows whose sum is off by "
                "more (0: off)\n"
                "  --state-out FILE        also write the statistics the "
                "daemon would have after\n"
                "                          these rows, in order, for "
                "state.initial; needs\n"
                "  --config FILE           the daemon's configuration "
                "(classes, filter)\n"
                "\n"
                "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

static int parse_score(const char *s, enum cl_batch_score *ret)
{
        static const char *const names[] = {"self_confidence",
                                            "normalized_margin",
                                            "confidence_weighted_entropy"};
        size_t i;

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                if (strcmp(s, names[i]) == 0) {
                        *ret = (enum cl_batch_score)i;
                        return 0;
                }
        }
        fprintf(stderr, NAME ": --rank-by: unknown score '%s'\n", s);
        return -1;
}

static int parse_args(int argc, char **argv, struct batch_opts *o)
{
        const struct cli_opt opts[] = {
                {"labels", CLI_STRING, &o->labels, 0, 0, NULL},
                {"probs", CLI_STRING, &o->probs, 0, 0, NULL},
                {"label-column", CLI_STRING, &o->label_col, 0, 0, NULL},
                {"row-column", CLI_STRING, &o->row_col, 0, 0, NULL},
                {"filter-by", CLI_STRING, &o->filter, 0, 0, NULL},
                {"sort", CLI_STRING, &o->sort, 0, 0, NULL},
                {"rank-by", CLI_STRING, &o->rank_by, 0, 0, NULL},
                {"out", CLI_STRING, &o->out, 0, 0, NULL},
                {"summary", CLI_FLAG, &o->summary, 0, 0, NULL},
                {"min-examples-per-class", CLI_UNSIGNED, &o->min_examples, 0,
                 1e9, NULL},
                {"frac-noise", CLI_DOUBLE, &o->frac_noise, 1e-12, 1, NULL},
                {"sum-tol", CLI_DOUBLE, &o->sum_tol, 0, DBL_MAX, NULL},
                {"config", CLI_STRING, &o->config, 0, 0, NULL},
                {"state-out", CLI_STRING, &o->state_out, 0, 0, NULL},
        };
        int rc;

        memset(o, 0, sizeof(*o));
        o->label_col = "label";
        o->filter = "prune_by_noise_rate";
        o->sort = "numpy";
        o->min_examples = 1;
        o->frac_noise = 1.0;
        rc = cli_parse(argc, argv, opts, sizeof(opts) / sizeof(opts[0]));
        if (rc != CLI_OK)
                return rc;
        if (!o->labels || !o->probs) {
                fprintf(stderr, NAME ": --labels and --probs are required\n");
                return CLI_E_USAGE;
        }
        if (o->rank_by && parse_score(o->rank_by, &o->score) < 0)
                return CLI_E_USAGE;
        if (o->state_out && !o->config) {
                fprintf(stderr, NAME ": --state-out needs --config, the "
                                     "daemon's configuration\n");
                return CLI_E_USAGE;
        }
        return CLI_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t ls = strlen(s), lx = strlen(suffix);

        return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* A label value, or CL_BATCH_LABEL_INVALID when it is not an integer. */
static long label_of_double(double v)
{
        if (!(v == floor(v)) || fabs(v) > 1e15)
                return CL_BATCH_LABEL_INVALID;
        return (long)v;
}

static long label_of_field(const char *s)
{
        long long v;

        if (csv_parse_i64(s, &v) != 0 || v <= LONG_MIN || v > LONG_MAX)
                return CL_BATCH_LABEL_INVALID;
        return (long)v;
}

static int load_probs(const char *path, struct npy_array *a)
{
        char err[512];

        if (npy_load(path, a, err, sizeof(err)) != 0) {
                fprintf(stderr, NAME ": %s\n", err);
                return -1;
        }
        /* The classes the configuration allows; batch mode's own
         * limit is the core's to state (run()). */
        if (a->ndim != 2 || a->cols < 2 || a->cols > CL_K_MAX) {
                fprintf(stderr,
                        NAME ": %s: expected rows x K columns, "
                             "2 <= K <= %u\n",
                        path, CL_K_MAX);
                return -1;
        }
        return 0;
}

/* Copies npy row `src` into row `dst` of the input. */
static void copy_row(struct input *in, const struct npy_array *p, size_t dst,
                     size_t src)
{
        unsigned c;

        for (c = 0; c < in->k; c++)
                in->probs[dst * in->k + c] = npy_get(p, src, c);
}

static int input_alloc(struct input *in, size_t n, unsigned k)
{
        in->n = n;
        in->k = k;
        in->labels = malloc((n ? n : 1) * sizeof(*in->labels));
        in->probs = malloc((n ? n : 1) * k * sizeof(*in->probs));
        if (!in->labels || !in->probs) {
                fprintf(stderr, NAME ": out of memory\n");
                return -1;
        }
        return 0;
}

static int load_npy_labels(const struct batch_opts *o,
                           const struct npy_array *p, struct input *in)
{
        struct npy_array l;
        char err[512];
        size_t r;
        int rc = -1;

        if (npy_load(o->labels, &l, err, sizeof(err)) != 0) {
                fprintf(stderr, NAME ": %s\n", err);
                return -1;
        }
        if (l.cols != 1 || l.rows != p->rows) {
                fprintf(stderr,
                        NAME ": %s: expected %zu labels in one column\n",
                        o->labels, p->rows);
                goto out_free;
        }
        if (input_alloc(in, l.rows, (unsigned)p->cols) < 0)
                goto out_free;
        for (r = 0; r < l.rows; r++) {
                in->labels[r] = label_of_double(npy_get(&l, r, 0));
                copy_row(in, p, r, r);
        }
        rc = 0;
out_free:
        npy_array_free(&l);
        return rc;
}

/* One CSV record: its label and the npy row it names. */
static int csv_record(const struct batch_opts *o, struct csv_reader *csv,
                      int label_col, int row_col, const struct npy_array *p,
                      struct input *in, size_t r)
{
        long long row = (long long)r;

        if (row_col >= 0 &&
            csv_parse_i64(csv_field(csv, (size_t)row_col), &row) != 0)
                row = -1;
        if (row < 0 || (unsigned long long)row >= p->rows) {
                fprintf(stderr, NAME ": %s:%zu: no row %lld in %s\n",
                        o->labels, csv_line(csv), row, o->probs);
                return -1;
        }
        in->labels[r] = label_of_field(csv_field(csv, (size_t)label_col));
        copy_row(in, p, r, (size_t)row);
        return 0;
}

static int grow(struct input *in, size_t *cap)
{
        size_t c = *cap ? *cap * 2 : 4096;
        long *l = realloc(in->labels, c * sizeof(*l));
        double *p;

        if (!l)
                return -1;
        in->labels = l;
        p = realloc(in->probs, c * in->k * sizeof(*p));
        if (!p)
                return -1;
        in->probs = p;
        *cap = c;
        return 0;
}

static int load_csv_labels(const struct batch_opts *o,
                           const struct npy_array *p, struct input *in)
{
        struct csv_reader *csv;
        char err[512];
        int label_col, row_col = -1, rc;
        size_t cap = 0;

        csv = csv_open(o->labels, err, sizeof(err));
        if (!csv) {
                fprintf(stderr, NAME ": %s\n", err);
                return -1;
        }
        label_col = csv_column(csv, o->label_col);
        if (o->row_col)
                row_col = csv_column(csv, o->row_col);
        if (label_col < 0 || (o->row_col && row_col < 0)) {
                fprintf(stderr, NAME ": %s:1: no column '%s'\n", o->labels,
                        label_col < 0 ? o->label_col : o->row_col);
                rc = -1;
                goto out_close;
        }
        in->k = (unsigned)p->cols;
        while ((rc = csv_next(csv, err, sizeof(err))) == 1) {
                if (in->n == cap && grow(in, &cap) < 0) {
                        fprintf(stderr, NAME ": out of memory\n");
                        rc = -1;
                        goto out_close;
                }
                if (csv_record(o, csv, label_col, row_col, p, in, in->n) < 0) {
                        rc = -1;
                        goto out_close;
                }
                in->n++;
        }
        if (rc < 0)
                fprintf(stderr, NAME ": %s\n", err);
        else if (!o->row_col && in->n != p->rows) {
                fprintf(stderr, NAME ": %s has %zu rows, %s has %zu\n",
                        o->labels, in->n, o->probs, p->rows);
                rc = -1;
        }
out_close:
        csv_close(csv);
        return rc < 0 ? -1 : 0;
}

static int load_input(const struct batch_opts *o, struct input *in)
{
        struct npy_array p;
        int rc;

        if (load_probs(o->probs, &p) < 0)
                return -1;
        if (ends_with(o->labels, ".npy"))
                rc = load_npy_labels(o, &p, in);
        else
                rc = load_csv_labels(o, &p, in);
        npy_array_free(&p);
        if (rc == 0 && in->n == 0) {
                fprintf(stderr, NAME ": %s: no rows\n", o->labels);
                rc = -1;
        }
        return rc;
}

static int make_params(const struct batch_opts *o, unsigned k,
                       struct cl_batch_params *p, enum cl_filter *filter)
{
        cl_batch_params_init(p, k);
        if (cl_filter_parse(o->filter, filter) != 0) {
                fprintf(stderr, NAME ": --filter-by: unknown method '%s'\n",
                        o->filter);
                return -1;
        }
        if (strcmp(o->sort, "stable") == 0) {
                p->sort = CL_BATCH_SORT_STABLE;
        } else if (strcmp(o->sort, "numpy") != 0) {
                fprintf(stderr, NAME ": --sort: expected numpy or stable\n");
                return -1;
        }
        p->min_examples_per_class = (long)o->min_examples;
        p->frac_noise = o->frac_noise;
        p->sum_tol = o->sum_tol;
        return 0;
}

/* Index of the first value of row that fails ok(), or k. */
static unsigned first_bad(const double *row, unsigned k, bool (*ok)(double))
{
        unsigned j;

        for (j = 0; j < k && ok(row[j]); j++)
                ;
        return j;
}

static bool is_finite(double v)
{
        return isfinite(v);
}

static bool in_range(double v)
{
        return v >= -CL_EPS && v <= 1.0 + CL_EPS;
}

/* What is wrong with row r, rejected with code, in buf. */
static void describe_row(const struct input *in, const struct batch_opts *o,
                         size_t r, int code, char *buf, size_t size)
{
        const double *row = in->probs + r * in->k;
        double sum = 0.0;
        unsigned j;

        switch (code) {
        case CL_E_LABEL_TYPE:
                snprintf(buf, size, "label is not an integer");
                return;
        case CL_E_LABEL_RANGE:
                snprintf(buf, size, "label %ld is outside 0..%u",
                         in->labels[r], in->k - 1);
                return;
        case CL_E_NONFINITE:
                j = first_bad(row, in->k, is_finite);
                if (j < in->k) {
                        snprintf(buf, size, "pred_probs[%u] is %g", j,
                                 row[j]);
                        return;
                }
                break;
        case CL_E_RANGE:
                j = first_bad(row, in->k, in_range);
                if (j < in->k) {
                        snprintf(buf, size,
                                 "pred_probs[%u] is %.17g, outside [0, 1]",
                                 j, row[j]);
                        return;
                }
                break;
        case CL_E_ROW_SUM:
                for (j = 0; j < in->k; j++)
                        sum += row[j];
                snprintf(buf, size, "pred_probs sum to %.17g, not 1 within %g",
                         sum, o->sum_tol);
                return;
        }
        snprintf(buf, size, "%s", cl_strerror(code));
}

/* Rejections and parity notes on stderr. */
static void report_rows(const struct cl_batch *b, const struct input *in,
                        const struct batch_opts *o)
{
        struct cl_batch_info info;
        char detail[160];
        int code;

        cl_batch_info(b, &info);
        for (code = 1; code < 7; code++)
                if (info.rejected[code])
                        fprintf(stderr, NAME ": %zu rows rejected: %s\n",
                                info.rejected[code], cl_strerror(-code));
        if (info.accepted == 0) {
                /* Every row was rejected: the first is row 0. */
                describe_row(in, o, 0, cl_batch_row_status(b, 0), detail,
                             sizeof(detail));
                fprintf(stderr,
                        NAME ": all %zu rows rejected: first at row 0: "
                             "%s; nothing is flagged\n",
                        info.rows, detail);
                return;
        }
        if (info.cleanlab_refuses)
                fprintf(stderr, NAME ": note: cleanlab would refuse this "
                                    "input; results are not comparable\n");
        else if (!info.parity)
                fprintf(stderr, NAME ": note: cleanlab would use the "
                                    "rejected rows too; results differ\n");
        if (info.too_few_labels)
                fprintf(stderr, NAME ": warning: fewer than 2 distinct "
                                    "labels, nothing is flagged\n");
}

static void print_vector(FILE *f, const char *name, const double *v,
                         unsigned k)
{
        unsigned j;

        fprintf(f, "%s:", name);
        for (j = 0; j < k; j++)
                fprintf(f, " %.17g", v[j]);
        fputc('\n', f);
}

static void print_matrix_i(FILE *f, const char *name, const int64_t *m,
                           unsigned k)
{
        unsigned i, j;

        fprintf(f, "%s:\n", name);
        for (i = 0; i < k; i++) {
                for (j = 0; j < k; j++)
                        fprintf(f, "%s%lld", j ? " " : "  ",
                                (long long)m[i * k + j]);
                fputc('\n', f);
        }
}

static void print_matrix_d(FILE *f, const char *name, const double *m,
                           unsigned k)
{
        unsigned i, j;

        fprintf(f, "%s:\n", name);
        for (i = 0; i < k; i++) {
                for (j = 0; j < k; j++)
                        fprintf(f, "%s%.17g", j ? " " : "  ", m[i * k + j]);
                fputc('\n', f);
        }
}

static void print_summary(FILE *f, const struct cl_batch *b, unsigned k,
                          const char *filter, size_t flagged)
{
        struct cl_batch_info info;
        const double *py, *nm, *inv;
        const int64_t *counts = cl_batch_class_counts(b);
        unsigned j;

        cl_batch_info(b, &info);
        fprintf(f, "rows: %zu\naccepted: %zu\nclasses: %u\n", info.rows,
                info.accepted, k);
        fprintf(f, "class_counts:");
        for (j = 0; j < k; j++)
                fprintf(f, " %lld", (long long)counts[j]);
        fputc('\n', f);
        print_vector(f, "thresholds", cl_batch_thresholds(b), k);
        print_matrix_i(f, "confident_joint", cl_batch_joint(b), k);
        print_matrix_i(f, "confident_joint_calibrated",
                       cl_batch_joint_calibrated(b), k);
        cl_batch_latent(b, true, &py, &nm, &inv);
        print_vector(f, "py", py, k);
        print_matrix_d(f, "noise_matrix", nm, k);
        print_matrix_d(f, "inv_noise_matrix", inv, k);
        fprintf(f, "num_label_issues_off_diagonal: %zu\n",
                cl_batch_num_label_issues(b, CL_BATCH_COUNT_OFF_DIAGONAL));
        fprintf(f, "num_label_issues_off_diagonal_calibrated: %zu\n",
                cl_batch_num_label_issues(
                        b, CL_BATCH_COUNT_OFF_DIAGONAL_CALIBRATED));
        fprintf(f, "flagged_%s: %zu\n", filter, flagged);
}

static int write_rows(const char *path, const size_t *rows, size_t count)
{
        FILE *f = path ? fopen(path, "w") : stdout;
        size_t i;

        if (!f) {
                fprintf(stderr, NAME ": %s: %s\n", path, strerror(errno));
                return -1;
        }
        fprintf(f, "index\n");
        for (i = 0; i < count; i++)
                fprintf(f, "%zu\n", rows[i]);
        if (ferror(f) || (path ? fclose(f) : fflush(f)) != 0) {
                fprintf(stderr, NAME ": %s: write failed\n",
                        path ? path : "stdout");
                return -1;
        }
        return 0;
}

/* Flagged rows ascending, or ranked by --rank-by, into rows. */
static int collect_rows(struct cl_batch *b, const struct batch_opts *o,
                        const unsigned char *mask, size_t n, size_t *rows,
                        size_t *ret_count)
{
        size_t r, c = 0;

        if (o->rank_by)
                return cl_batch_rank(b, mask, o->score, rows, ret_count);
        for (r = 0; r < n; r++)
                if (mask[r])
                        rows[c++] = r;
        *ret_count = c;
        return 0;
}

static int run(const struct batch_opts *o, struct input *in)
{
        struct cl_batch_params p;
        struct cl_batch *b = NULL;
        enum cl_filter filter;
        unsigned char *mask = NULL;
        size_t *rows = NULL, flagged, count;
        int err, rc = 1;

        if (make_params(o, in->k, &p, &filter) < 0)
                return 2;
        err = cl_batch_new(&p, in->labels, in->probs, in->n, &b);
        if (err < 0 && in->k > CL_BATCH_K_MAX) {
                fprintf(stderr,
                        NAME ": %s: %u classes: %s (batch mode takes at "
                             "most %u classes)\n",
                        o->probs, in->k, cl_strerror(err), CL_BATCH_K_MAX);
                return 1;
        }
        if (err < 0) {
                fprintf(stderr, NAME ": %s\n", cl_strerror(err));
                return 1;
        }
        report_rows(b, in, o);
        mask = malloc(in->n);
        rows = malloc(in->n * sizeof(*rows));
        if (!mask || !rows) {
                fprintf(stderr, NAME ": out of memory\n");
                goto out_free;
        }
        err = cl_batch_find_issues(b, filter, mask, &flagged);
        if (err == 0)
                err = collect_rows(b, o, mask, in->n, rows, &count);
        if (err < 0)
                goto out_free;
        if (o->summary)
                print_summary(stdout, b, in->k, o->filter, flagged);
        if ((o->out || !o->summary) &&
            write_rows(o->out, rows, count) < 0)
                goto out_free;
        fprintf(stderr, NAME ": %s flagged %zu of %zu rows\n", o->filter,
                flagged, in->n);
        rc = 0;
out_free:
        free(rows);
        free(mask);
        cl_batch_free(b);
        return rc;
}

int cmd_batch(int argc, char **argv)
{
        struct batch_opts o;
        struct input in = {0};
        int rc;

        rc = parse_args(argc, argv, &o);
        if (rc == CLI_HELP) {
                usage(stdout);
                return 0;
        }
        if (rc != CLI_OK) {
                usage(stderr);
                return 2;
        }
        rc = load_input(&o, &in) < 0 ? 1 : run(&o, &in);
        if (rc == 0 && o.state_out)
                rc = batch_state_write(o.config, o.state_out, in.labels,
                                       in.probs, in.n, in.k);
        free(in.labels);
        free(in.probs);
        return rc;
}
