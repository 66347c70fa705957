/*
 * cmd_score.c - `confidentctl score`: runs the streaming filter of core/
 * offline over a labels CSV and a .npy of model probabilities, in file
 * order, as confidentd would over the same sequence of messages: the
 * same parameters (the daemon's own mapping from the configuration), one
 * cl_observe() per record, and the same rejections.
 */
#include "cmds.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfd_params.h"
#include "cfg.h"
#include "cl.h"
#include "cli.h"
#include "csvread.h"
#include "npy.h"

#define SHOWN_NAME_MAX 64 /* bytes of an unknown class name in a reason */

struct score_opts {
        const char *labels, *probs, *config, *out;
        const char *id_col, *label_col, *row_col, *truth_col;
        bool id_given, row_given;
        unsigned k;
        bool k_given;
        const char *filter;      /* NULL: from config or default */
        enum cl_filter filter_id;
        const char *policy;      /* NULL: from config or default */
        enum cl_warmup_policy policy_id;
        double half_life, warmup_total, warmup_class, sum_tol;
        unsigned bins, cells, delay_items;
        bool half_life_given, warmup_total_given, warmup_class_given;
        bool sum_tol_given, bins_given, cells_given, delay_items_given;
};

/* Column indices in the labels CSV; -1 when absent. */
struct score_columns {
        int id, label, row, truth;
};

/* A record whose verdict waits for cl_state_release(). */
struct held_record {
        char *id;      /* as written to --out */
        int is_error;  /* label != truth: 1 or 0; -1 without truth */
};

struct score_counts {
        size_t items, clean, suspect, rejected;
        size_t true_pos, false_pos, false_neg; /* with a truth column */
};

struct score_run {
        struct score_opts o;
        struct cfg *cfg;         /* NULL without --config */
        struct cl_params params;
        struct cl_state *state;
        struct npy_array probs;
        double *row;             /* one row of probs as doubles */
        struct csv_reader *csv;
        struct score_columns col;
        FILE *out;               /* NULL without --out */
        size_t record;           /* 0-based index of the current record */
        struct score_counts n;
        struct held_record *held; /* cl_state_hold_capacity() entries */
        struct cl_verdict *released; /* as many, for cl_state_release() */
};

static const char usage_text[] =
        "usage: confidentctl score --labels FILE.csv --probs FILE.npy "
        "[options]\n"
        "\n"
        "Runs the streaming filter over the records in file order, as\n"
        "confidentd would, and writes one verdict per record.\n"
        "\n"
        "  --labels FILE        CSV with a header line\n"
        "  --probs FILE         .npy, rows x K model probabilities\n"
        "  --id-column NAME     item id (default id; if the default is\n"
        "                       absent, the record number)\n"
        "  --label-column NAME  given label: class number, or class name\n"
        "                       with --config (default label)\n"
        "  --row-column NAME    row of --probs (default row; if the default\n"
        "                       is absent, record i uses row i)\n"
        "  --truth-column NAME  true class: adds precision, recall and F1\n"
        "                       of 'suspect' for label != truth\n"
        "  --config FILE        confidentd.yaml: classes and filter section\n"
        "  --classes K          classes (default: from --config, else the\n"
        "                       columns of --probs)\n"
        "  --filter METHOD      a cleanlab filter_by name\n"
        "  --half-life H        items; 0 = no decay\n"
        "  --bins B             histogram bins\n"
        "  --cells C            joint cells kept per class; K-1 = all\n"
        "  --warmup-total N     items before any decision\n"
        "  --warmup-class N     items of the item's class before a decision\n"
        "  --sum-tol X          row-sum tolerance; 0 = off\n"
        "  --warmup-policy P    hold (default: warm-up items are decided by\n"
        "                       batch mode once warm) or pass (they are\n"
        "                       clean)\n"
        "  --delay-items D      decide each item once D later items are\n"
        "                       counted (default 0: at once)\n"
        "  --out FILE           CSV id,verdict,given,suggested,quality,"
        "reason;\n"
        "                       - for stdout\n"
        "\n"
        "The filter options override --config.  Prints a last line\n"
        "items=N clean=N suspect=N rejected=N [precision=P recall=R f1=F]\n"
        "on stdout, or on stderr when --out is -.  Warm-up verdicts count\n"
        "as clean; rejected records are left out of precision and recall.\n"
        "Held records are written when released, in their order; the\n"
        "last ones are released at the end of the input.\n";

/* Returns -1 to go on, or the exit status (0 after --help, 2). */
static int parse_options(int argc, char **argv, struct score_opts *o)
{
        const struct cli_opt opts[] = {
                {"labels", CLI_STRING, &o->labels, 0, 0, NULL},
                {"probs", CLI_STRING, &o->probs, 0, 0, NULL},
                {"id-column", CLI_STRING, &o->id_col, 0, 0, &o->id_given},
                {"label-column", CLI_STRING, &o->label_col, 0, 0, NULL},
                {"row-column", CLI_STRING, &o->row_col, 0, 0, &o->row_given},
                {"truth-column", CLI_STRING, &o->truth_col, 0, 0, NULL},
                {"config", CLI_STRING, &o->config, 0, 0, NULL},
                {"classes", CLI_UNSIGNED, &o->k, 2, CL_K_MAX, &o->k_given},
                {"filter", CLI_STRING, &o->filter, 0, 0, NULL},
                {"half-life", CLI_DOUBLE, &o->half_life, 0, CL_HALF_LIFE_MAX,
                 &o->half_life_given},
                {"bins", CLI_UNSIGNED, &o->bins, CL_BINS_MIN, CL_BINS_MAX,
                 &o->bins_given},
                {"cells", CLI_UNSIGNED, &o->cells, 1, CL_K_MAX,
                 &o->cells_given},
                {"warmup-total", CLI_DOUBLE, &o->warmup_total, 0, 1e15,
                 &o->warmup_total_given},
                {"warmup-class", CLI_DOUBLE, &o->warmup_class, 0, 1e15,
                 &o->warmup_class_given},
                {"sum-tol", CLI_DOUBLE, &o->sum_tol, 0, DBL_MAX,
                 &o->sum_tol_given},
                {"warmup-policy", CLI_STRING, &o->policy, 0, 0, NULL},
                {"delay-items", CLI_UNSIGNED, &o->delay_items, 0,
                 UINT32_MAX, &o->delay_items_given},
                {"out", CLI_STRING, &o->out, 0, 0, NULL},
        };
        int rc;

        *o = (struct score_opts){.id_col = "id", .label_col = "label",
                                 .row_col = "row"};
        rc = cli_parse_command(argc, argv, opts,
                               sizeof(opts) / sizeof(opts[0]), usage_text);
        if (rc >= 0)
                return rc;
        if (o->labels == NULL || o->probs == NULL) {
                fprintf(stderr, "confidentctl score: --labels and --probs "
                                "are required\n");
                return 2;
        }
        if (o->filter != NULL &&
            cl_filter_parse(o->filter, &o->filter_id) < 0) {
                fprintf(stderr, "confidentctl score: --filter: unknown "
                                "method '%s'\n",
                        o->filter);
                return 2;
        }
        if (o->policy != NULL &&
            cl_warmup_policy_parse(o->policy, &o->policy_id) < 0) {
                fprintf(stderr, "confidentctl score: --warmup-policy: "
                                "expected pass or hold, not '%s'\n",
                        o->policy);
                return 2;
        }
        return -1;
}

/* ---- parameters ------------------------------------------------------ */

static int load_config(struct score_run *s)
{
        struct cfg_error err;
        char msg[512];

        if (cfg_load_file(s->o.config, &s->cfg, &err) < 0) {
                cfg_error_format(&err, msg, sizeof(msg));
                fprintf(stderr, "confidentctl score: %s\n", msg);
                return -1;
        }
        if (cfd_params_from_cfg(s->cfg, &s->params, msg, sizeof(msg)) < 0) {
                fprintf(stderr, "confidentctl score: %s\n", msg);
                return -1;
        }
        if (s->o.k_given && s->o.k != s->params.k) {
                fprintf(stderr, "confidentctl score: --classes %u "
                                "contradicts the %u classes of %s\n",
                        s->o.k, s->params.k, s->o.config);
                return -1;
        }
        return 0;
}

/* Applies the command-line filter options over the defaults or config. */
static int apply_overrides(struct score_run *s)
{
        struct cl_params *p = &s->params;
        const struct score_opts *o = &s->o;

        if (o->filter != NULL)
                p->filter = o->filter_id;
        if (o->policy != NULL)
                p->warmup_policy = o->policy_id;
        if (o->half_life_given)
                p->half_life = o->half_life;
        if (o->bins_given)
                p->bins = o->bins;
        if (o->cells_given)
                p->cells = o->cells;
        if (o->warmup_total_given)
                p->warmup_total = o->warmup_total;
        if (o->warmup_class_given)
                p->warmup_class = o->warmup_class;
        if (o->sum_tol_given)
                p->sum_tol = o->sum_tol;
        if (o->delay_items_given)
                p->delay_items = o->delay_items;
        if (cl_params_check(p) < 0) {
                fprintf(stderr, "confidentctl score: the filter parameters "
                                "are refused: K=%u bins=%u half_life=%g "
                                "warmup_total=%g warmup_class=%g "
                                "delay_items=%u (core checks ranges, "
                                "memory and that warm-up ends under "
                                "decay)\n",
                        p->k, p->bins, p->half_life, p->warmup_total,
                        p->warmup_class, p->delay_items);
                return -1;
        }
        return 0;
}

/* K from --config, else --classes, else the columns of the .npy. */
static int make_params(struct score_run *s)
{
        if (s->o.config != NULL) {
                if (load_config(s) < 0)
                        return -1;
        } else {
                cl_params_init(&s->params,
                               s->o.k_given ? s->o.k
                                            : (unsigned)s->probs.cols);
        }
        if (apply_overrides(s) < 0)
                return -1;
        if (s->probs.cols != s->params.k)
                fprintf(stderr, "confidentctl score: warning: %s has %zu "
                                "columns and K is %u: every record will be "
                                "rejected with CL_E_WIDTH\n",
                        s->o.probs, s->probs.cols, s->params.k);
        return 0;
}

/* ---- inputs ---------------------------------------------------------- */

static int load_probs(struct score_run *s)
{
        char err[512];

        if (npy_load(s->o.probs, &s->probs, err, sizeof(err)) < 0) {
                fprintf(stderr, "confidentctl score: %s\n", err);
                return -1;
        }
        if (s->probs.ndim != 2 || s->probs.cols > CL_K_MAX) {
                fprintf(stderr, "confidentctl score: %s: expected a 2-D "
                                "array of at most %u columns\n",
                        s->o.probs, CL_K_MAX);
                return -1;
        }
        s->row = malloc((s->probs.cols > 0 ? s->probs.cols : 1) *
                        sizeof(double));
        if (s->row == NULL) {
                fprintf(stderr, "confidentctl score: out of memory\n");
                return -1;
        }
        return 0;
}

/*
 * Index of a column: one named on the command line must exist; a default
 * name may be absent (-1).
 */
static int find_column(const struct score_run *s, const char *name,
                       bool required, int *ret)
{
        *ret = name != NULL ? csv_column(s->csv, name) : -1;
        if (*ret < 0 && required) {
                fprintf(stderr, "confidentctl score: %s:1: no column '%s'\n",
                        s->o.labels, name);
                return -1;
        }
        return 0;
}

static int open_labels(struct score_run *s)
{
        char err[512];

        s->csv = csv_open(s->o.labels, err, sizeof(err));
        if (s->csv == NULL) {
                fprintf(stderr, "confidentctl score: %s\n", err);
                return -1;
        }
        if (find_column(s, s->o.id_col, s->o.id_given, &s->col.id) < 0 ||
            find_column(s, s->o.label_col, true, &s->col.label) < 0 ||
            find_column(s, s->o.row_col, s->o.row_given, &s->col.row) < 0 ||
            find_column(s, s->o.truth_col, s->o.truth_col != NULL,
                        &s->col.truth) < 0)
                return -1;
        return 0;
}

static int open_out(struct score_run *s)
{
        if (s->o.out == NULL)
                return 0;
        if (strcmp(s->o.out, "-") == 0) {
                s->out = stdout;
        } else {
                s->out = fopen(s->o.out, "w");
                if (s->out == NULL) {
                        fprintf(stderr, "confidentctl score: %s: %s\n",
                                s->o.out, strerror(errno));
                        return -1;
                }
        }
        fputs("id,verdict,given,suggested,quality,reason\n", s->out);
        return 0;
}

/* ---- one record ------------------------------------------------------ */

/*
 * A label field: an integer, or with --config a class name.  Returns 0
 * and sets *ret, or CL_E_LABEL_TYPE.  An integer beyond long is mapped to
 * LONG_MAX, which core rejects as out of range.
 */
static int parse_label(const struct score_run *s, const char *text,
                       long *ret)
{
        long long v;
        int idx;

        if (csv_parse_i64(text, &v) == 0) {
                *ret = v < LONG_MIN || v > LONG_MAX ? LONG_MAX : (long)v;
                return 0;
        }
        if (s->cfg != NULL && (idx = cfg_class_index(s->cfg, text)) >= 0) {
                *ret = idx;
                return 0;
        }
        return CL_E_LABEL_TYPE;
}

/* The .npy row of the current record, as doubles. */
static int record_probs(struct score_run *s, const double **ret)
{
        size_t cols = s->probs.cols, r = s->record, c;
        long long v;

        if (s->col.row >= 0) {
                const char *text = csv_field(s->csv, (size_t)s->col.row);

                if (csv_parse_i64(text, &v) < 0 || v < 0) {
                        fprintf(stderr, "confidentctl score: %s:%zu: row "
                                        "'%s' is not a row number\n",
                                s->o.labels, csv_line(s->csv), text);
                        return -1;
                }
                r = (size_t)v;
        }
        if (r >= s->probs.rows) {
                fprintf(stderr, "confidentctl score: %s:%zu: row %zu is "
                                "beyond the %zu rows of %s\n",
                        s->o.labels, csv_line(s->csv), r, s->probs.rows,
                        s->o.probs);
                return -1;
        }
        if (s->probs.dtype == NPY_F8) {
                *ret = (const double *)s->probs.data + r * cols;
                return 0;
        }
        for (c = 0; c < cols; c++)
                s->row[c] = npy_get(&s->probs, r, c);
        *ret = s->row;
        return 0;
}

/* Writes text as a CSV field, quoted when it holds , " CR or LF. */
static void put_field(FILE *f, const char *text)
{
        const char *p;

        if (strpbrk(text, ",\"\r\n") == NULL) {
                fputs(text, f);
                return;
        }
        putc('"', f);
        for (p = text; *p != '\0'; p++) {
                if (*p == '"')
                        putc('"', f);
                putc(*p, f);
        }
        putc('"', f);
}

static void put_id(const struct score_run *s)
{
        if (s->col.id >= 0)
                put_field(s->out, csv_field(s->csv, (size_t)s->col.id));
        else
                fprintf(s->out, "%zu", s->record);
}

/* id NULL: the current record's. */
static void write_verdict(const struct score_run *s, const char *id,
                          const struct cl_verdict *v)
{
        if (id != NULL)
                put_field(s->out, id);
        else
                put_id(s);
        fprintf(s->out, ",%s,%u,%u,%.9g,", cl_tag_name(v->tag), v->given,
                v->suggested, v->quality);
        put_field(s->out, v->reason);
        putc('\n', s->out);
}

/*
 * The reason of a rejected record: the CL_E_* name; for a label that is
 * neither an integer nor a known class, followed by the class name as the
 * daemon's dead-letter reason gives it.
 */
static void write_rejected(const struct score_run *s, int code)
{
        const char *label = csv_field(s->csv, (size_t)s->col.label);
        char reason[160];

        if (code == CL_E_LABEL_TYPE && s->cfg != NULL)
                snprintf(reason, sizeof(reason),
                         "%s: unknown class name '%.*s'", cl_err_name(code),
                         SHOWN_NAME_MAX, label);
        else if (code == CL_E_LABEL_TYPE)
                snprintf(reason, sizeof(reason),
                         "%s: class name '%.*s' given but there are no "
                         "class names (give --config)",
                         cl_err_name(code), SHOWN_NAME_MAX, label);
        else
                snprintf(reason, sizeof(reason), "%s", cl_err_name(code));
        put_id(s);
        fputs(",rejected,", s->out);
        put_field(s->out, label);
        fputs(",,,", s->out);
        put_field(s->out, reason);
        putc('\n', s->out);
}

/* Whether the current record's label is wrong, from the truth field:
 * sets *ret_error to 1 or 0 (-1 without a truth column). */
static int record_error(const struct score_run *s, long label,
                        int *ret_error)
{
        const char *text;
        long truth;

        *ret_error = -1;
        if (s->col.truth < 0)
                return 0;
        text = csv_field(s->csv, (size_t)s->col.truth);
        if (parse_label(s, text, &truth) < 0) {
                fprintf(stderr, "confidentctl score: %s:%zu: truth '%s' is "
                                "not a class\n",
                        s->o.labels, csv_line(s->csv), text);
                return -1;
        }
        *ret_error = label != truth;
        return 0;
}

/* Counts a decided record (is_error -1: no truth) and writes it. */
static void count_verdict(struct score_run *s, const char *id,
                          const struct cl_verdict *v, int is_error)
{
        bool suspect = v->tag == CL_TAG_SUSPECT;

        if (suspect)
                s->n.suspect++;
        else
                s->n.clean++;
        if (s->out != NULL)
                write_verdict(s, id, v);
        if (is_error < 0)
                return;
        s->n.true_pos += is_error && suspect;
        s->n.false_pos += !is_error && suspect;
        s->n.false_neg += is_error && !suspect;
}

/* Keeps what the verdict of a held record will need. */
static int keep_held(struct score_run *s, const struct cl_verdict *v,
                     int is_error)
{
        struct held_record *h = &s->held[v->hold_index];
        char number[24];
        const char *id = number;

        if (s->col.id >= 0)
                id = csv_field(s->csv, (size_t)s->col.id);
        else
                snprintf(number, sizeof(number), "%zu", s->record);
        h->id = strdup(id);
        if (h->id == NULL) {
                fprintf(stderr, "confidentctl score: out of memory\n");
                return -1;
        }
        h->is_error = is_error;
        return 0;
}

/* Releases the held records (force: whether or not the state is warm). */
static int release_held(struct score_run *s, bool force)
{
        size_t cap = cl_state_hold_capacity(s->state);
        int n;

        n = force ? cl_state_release_force(s->state, s->released, cap)
                  : cl_state_release(s->state, s->released, cap);
        if (n < 0) {
                fprintf(stderr, "confidentctl score: cannot release the "
                                "held records: %s\n",
                        cl_strerror(n));
                return -1;
        }
        for (int r = 0; r < n; r++) {
                struct held_record *h = &s->held[s->released[r].hold_index];

                count_verdict(s, h->id, &s->released[r], h->is_error);
                free(h->id);
                h->id = NULL;
        }
        return 0;
}

static int score_record(struct score_run *s)
{
        const char *text = csv_field(s->csv, (size_t)s->col.label);
        const double *probs;
        struct cl_verdict v;
        long label = 0;
        int rc, is_error;

        if (record_probs(s, &probs) < 0)
                return -1;
        s->n.items++;
        rc = parse_label(s, text, &label);
        if (rc == 0)
                rc = cl_observe(s->state, label, probs, s->probs.cols, &v,
                                NULL);
        if (rc < 0) {
                s->n.rejected++;
                if (s->out != NULL)
                        write_rejected(s, rc);
                return 0;
        }
        if (record_error(s, label, &is_error) < 0)
                return -1;
        if (v.tag == CL_TAG_HELD) {
                if (keep_held(s, &v, is_error) < 0)
                        return -1;
        } else {
                count_verdict(s, NULL, &v, is_error);
        }
        return release_held(s, false);
}

static int score_all(struct score_run *s)
{
        char err[512];
        int rc;

        for (s->record = 0; (rc = csv_next(s->csv, err, sizeof(err))) == 1;
             s->record++)
                if (score_record(s) < 0)
                        return -1;
        if (rc < 0) {
                fprintf(stderr, "confidentctl score: %s\n", err);
                return -1;
        }
        /* The input ends before the state is warm: decide what is held. */
        return release_held(s, true);
}

/* ---- results --------------------------------------------------------- */

static double ratio(size_t num, size_t den)
{
        return den > 0 ? (double)num / (double)den : 0.0;
}

static void print_summary(const struct score_run *s)
{
        bool csv_on_stdout = s->o.out != NULL && strcmp(s->o.out, "-") == 0;
        FILE *f = csv_on_stdout ? stderr : stdout;
        const struct score_counts *n = &s->n;
        double p, r;

        fprintf(f, "items=%zu clean=%zu suspect=%zu rejected=%zu", n->items,
                n->clean, n->suspect, n->rejected);
        if (s->col.truth >= 0) {
                p = ratio(n->true_pos, n->true_pos + n->false_pos);
                r = ratio(n->true_pos, n->true_pos + n->false_neg);
                fprintf(f, " precision=%.3f recall=%.3f f1=%.3f", p, r,
                        p + r > 0.0 ? 2.0 * p * r / (p + r) : 0.0);
        }
        putc('\n', f);
}

static int close_out(struct score_run *s)
{
        FILE *f = s->out;
        int failed;

        s->out = NULL;
        if (f == NULL)
                return 0;
        failed = ferror(f);
        if ((f == stdout ? fflush(f) : fclose(f)) != 0 || failed) {
                fprintf(stderr, "confidentctl score: %s: write error: %s\n",
                        s->o.out, strerror(errno));
                return -1;
        }
        return 0;
}

static void score_release(struct score_run *s)
{
        size_t cap = s->state ? cl_state_hold_capacity(s->state) : 0;

        for (size_t r = 0; s->held != NULL && r < cap; r++)
                free(s->held[r].id);
        free(s->held);
        free(s->released);
        if (s->out != NULL && s->out != stdout)
                fclose(s->out);
        csv_close(s->csv);
        free(s->row);
        npy_array_free(&s->probs);
        cl_state_free(s->state);
        cfg_free(s->cfg);
}

static int make_state(struct score_run *s)
{
        int rc = cl_state_new(&s->params, &s->state);

        size_t cap;

        if (rc < 0) {
                fprintf(stderr, "confidentctl score: cannot create the "
                                "filter state: %s\n",
                        cl_strerror(rc));
                return -1;
        }
        cap = cl_state_hold_capacity(s->state);
        if (cap == 0)
                return 0;
        s->held = calloc(cap, sizeof(*s->held));
        s->released = calloc(cap, sizeof(*s->released));
        if (s->held == NULL || s->released == NULL) {
                fprintf(stderr, "confidentctl score: out of memory\n");
                return -1;
        }
        return 0;
}

int cmd_score(int argc, char **argv)
{
        struct score_run s = {0};
        int rc;

        rc = parse_options(argc, argv, &s.o);
        if (rc >= 0)
                return rc;
        rc = 1;
        if (load_probs(&s) < 0 || make_params(&s) < 0 || make_state(&s) < 0 ||
            open_labels(&s) < 0 || open_out(&s) < 0)
                goto out_release;
        if (score_all(&s) < 0 || close_out(&s) < 0)
                goto out_release;
        print_summary(&s);
        rc = 0;
out_release:
        score_release(&s);
        return rc;
}
