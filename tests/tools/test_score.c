/*
 * test_score.c - tests of `confidentctl score` (tools/cmd_score.c) on a
 * hand-made CSV and .npy whose verdicts follow from the filter rules.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cmds.h"
#include "npy.h"
#include "tooltest.h"

/*
 * Eight probability rows for K = 2.  Rows 5-7 are each refused by core:
 * the sum is 1.4, a value is NaN, a value is negative.
 */
static void write_probs(const char *path)
{
        const double p[8][2] = {
                {0.9, 0.1}, {0.8, 0.2}, {0.3, 0.7},   {0.6, 0.4},
                {0.2, 0.8}, {0.7, 0.7}, {NAN, 1.0}, {-0.5, 1.5},
        };
        char err[256];

        assert_int_equal(npy_save_f8(path, &p[0][0], 8, 2, err, sizeof(err)),
                         0);
}

/*
 * Records a-e are decided, f-j rejected.  Truth: b is a label error the
 * rule catches, d one it misses, e a false alarm.
 */
static const char labels_csv[] = "id,label,truth,row\n"
                                 "a,0,0,0\n"
                                 "b,1,0,1\n"
                                 "c,1,1,2\n"
                                 "\"d,1\",0,1,3\n"
                                 "e,0,0,4\n"
                                 "f,5,0,0\n"
                                 "g,cat,0,0\n"
                                 "h,0,0,5\n"
                                 "i,0,0,6\n"
                                 "j,0,0,7\n";

/* predicted_neq_given: suspect exactly when argmax p != label. */
static const char expected_pred[] =
        "id,verdict,given,suggested,quality,reason\n"
        "a,clean,0,0,0.9,argmax\n"
        "b,suspect,1,0,0.2,pred 1->0\n"
        "c,clean,1,1,0.7,argmax\n"
        "\"d,1\",clean,0,0,0.6,argmax\n"
        "e,suspect,0,1,0.2,pred 0->1\n"
        "f,rejected,5,,,CL_E_LABEL_RANGE\n"
        "g,rejected,cat,,,CL_E_LABEL_TYPE: class name 'cat' given but "
        "there are no class names (give --config)\n"
        "h,rejected,0,,,CL_E_ROW_SUM\n"
        "i,rejected,0,,,CL_E_NONFINITE\n"
        "j,rejected,0,,,CL_E_RANGE\n";

struct score_files {
        char labels[128], probs[128], out[128], stdout_path[128];
};

static void make_inputs(struct score_files *f, const char *csv)
{
        tooltest_path(f->labels, sizeof(f->labels), "labels.csv");
        tooltest_path(f->probs, sizeof(f->probs), "probs.npy");
        tooltest_path(f->out, sizeof(f->out), "verdicts.csv");
        tooltest_path(f->stdout_path, sizeof(f->stdout_path), "stdout.txt");
        tooltest_write(f->labels, csv, strlen(csv));
        write_probs(f->probs);
}

/* Runs score on f's inputs with extra options (NULL terminated). */
static int run_score(struct score_files *f, ...)
{
        const char *args[32];
        const char *a;
        va_list ap;
        int n = 0;

        args[n++] = "score";
        args[n++] = "--labels";
        args[n++] = f->labels;
        args[n++] = "--probs";
        args[n++] = f->probs;
        va_start(ap, f);
        while ((a = va_arg(ap, const char *)) != NULL && n < 31)
                args[n++] = a;
        va_end(ap);
        args[n] = NULL;
        return tooltest_run(cmd_score, f->stdout_path, args);
}

static void assert_file_text(const char *path, const char *want)
{
        char *got = tooltest_read(path, NULL);

        assert_string_equal(got, want);
        free(got);
}

static void test_cmd_score_predicted_neq_given_verdicts(void **state)
{
        struct score_files f;

        (void)state;
        make_inputs(&f, labels_csv);
        assert_int_equal(run_score(&f, "--filter", "predicted_neq_given",
                                   "--truth-column", "truth", "--out", f.out,
                                   NULL),
                         0);
        assert_file_text(f.out, expected_pred);
        /* tp = b, fp = e, fn = d: precision = recall = 1/2. */
        assert_file_text(f.stdout_path,
                         "items=10 clean=3 suspect=2 rejected=5 "
                         "precision=0.500 recall=0.500 f1=0.500\n");
}

/* Under warmup_policy pass the default filter waits for 1000 items:
 * every decided row warms up. */
static void test_cmd_score_pass_policy_warms_up(void **state)
{
        struct score_files f;
        char *got;

        (void)state;
        make_inputs(&f, labels_csv);
        assert_int_equal(run_score(&f, "--warmup-policy", "pass", "--out",
                                   f.out, NULL),
                         0);
        got = tooltest_read(f.out, NULL);
        assert_non_null(strstr(got, "\na,warmup,0,0,0.9,warmup\n"));
        assert_non_null(strstr(got, "\nb,warmup,1,1,0.2,warmup\n"));
        assert_non_null(strstr(got, "\nj,rejected,0,,,CL_E_RANGE\n"));
        free(got);
        assert_file_text(f.stdout_path,
                         "items=10 clean=5 suspect=0 rejected=5\n");
}

/* By default (warmup_policy hold) the five accepted records are held,
 * then decided by batch mode when the input ends: they come after the
 * rejected ones, in their own order. */
static void test_cmd_score_default_holds_then_batch(void **state)
{
        static const char tail[] =
                "\nj,rejected,0,,,CL_E_RANGE\n"
                "a,clean,0,0,0.9,batch\n"
                "b,suspect,1,0,0.2,batch pbnr 1->0\n"
                "c,clean,1,1,0.7,batch\n"
                "\"d,1\",clean,0,0,0.6,batch\n"
                "e,suspect,0,1,0.2,batch pbnr 0->1\n";
        struct score_files f;
        char *got, *at;

        (void)state;
        make_inputs(&f, labels_csv);
        assert_int_equal(run_score(&f, "--out", f.out, NULL), 0);
        got = tooltest_read(f.out, NULL);
        at = strstr(got, tail);
        assert_non_null(at);
        assert_string_equal(at, tail);
        free(got);
        assert_file_text(f.stdout_path,
                         "items=10 clean=3 suspect=2 rejected=5\n");
}

/* A decision window of two items, no warm-up: each record is written
 * once two later ones are counted, the last two at the end; the order
 * of the accepted records is kept. */
static void test_cmd_score_delay_items_keeps_order(void **state)
{
        struct score_files f;
        char *got, *a, *b, *e;

        (void)state;
        make_inputs(&f, labels_csv);
        assert_int_equal(run_score(&f, "--warmup-total", "0",
                                   "--warmup-class", "0", "--delay-items",
                                   "2", "--out", f.out, NULL),
                         0);
        got = tooltest_read(f.out, NULL);
        a = strstr(got, "\na,");
        b = strstr(got, "\nb,");
        e = strstr(got, "\ne,");
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(e);
        assert_true(a < b && b < e);
        assert_null(strstr(got, ",held,"));
        assert_null(strstr(got, "warmup"));
        free(got);
}

/* Without a row column, record i uses row i; the id may be absent too. */
static void test_cmd_score_record_order_rows(void **state)
{
        struct score_files f;

        (void)state;
        make_inputs(&f, "label\n0\n0\n1\n");
        assert_int_equal(run_score(&f, "--filter", "predicted_neq_given",
                                   "--out", f.out, NULL),
                         0);
        assert_file_text(f.out, "id,verdict,given,suggested,quality,reason\n"
                                "0,clean,0,0,0.9,argmax\n"
                                "1,clean,0,0,0.8,argmax\n"
                                "2,clean,1,1,0.7,argmax\n");
}

/* Class names from the configuration, for labels and truth. */
static void test_cmd_score_config_class_names(void **state)
{
        static const char yaml[] = "kafka:\n"
                                   "  bootstrap: \"127.0.0.1:9092\"\n"
                                   "  topics:\n"
                                   "    input: labels\n"
                                   "classes: [cat, dog]\n"
                                   "filter:\n"
                                   "  method: predicted_neq_given\n";
        struct score_files f;
        char config[128];

        (void)state;
        make_inputs(&f, "id,label,truth,row\n"
                        "a,cat,cat,0\n"
                        "b,dog,cat,1\n"
                        "c,bird,dog,2\n");
        tooltest_path(config, sizeof(config), "score.yaml");
        tooltest_write(config, yaml, strlen(yaml));
        assert_int_equal(run_score(&f, "--config", config, "--truth-column",
                                   "truth", "--out", f.out, NULL),
                         0);
        assert_file_text(f.out, "id,verdict,given,suggested,quality,reason\n"
                                "a,clean,0,0,0.9,argmax\n"
                                "b,suspect,1,0,0.2,pred 1->0\n"
                                "c,rejected,bird,,,CL_E_LABEL_TYPE: "
                                "unknown class name 'bird'\n");
        assert_file_text(f.stdout_path,
                         "items=3 clean=1 suspect=1 rejected=1 "
                         "precision=1.000 recall=1.000 f1=1.000\n");
        /* --classes must agree with the configuration. */
        assert_int_equal(run_score(&f, "--config", config, "--classes", "3",
                                   NULL),
                         1);
}

/* --classes other than the .npy width: core refuses every row. */
static void test_cmd_score_width_mismatch_rejects(void **state)
{
        struct score_files f;

        (void)state;
        make_inputs(&f, "id,label,row\na,0,0\n");
        assert_int_equal(run_score(&f, "--classes", "3", "--out", f.out,
                                   NULL),
                         0);
        assert_file_text(f.out, "id,verdict,given,suggested,quality,reason\n"
                                "a,rejected,0,,,CL_E_WIDTH\n");
}

static void test_cmd_score_bad_inputs_fail(void **state)
{
        struct score_files f;

        (void)state;
        make_inputs(&f, "id,label,row\na,0,8\n");
        assert_int_equal(run_score(&f, NULL), 1); /* row beyond the .npy */
        make_inputs(&f, "id,label,row\na,0,x\n");
        assert_int_equal(run_score(&f, NULL), 1); /* row not a number */
        make_inputs(&f, "id,label,row\na,0\n");
        assert_int_equal(run_score(&f, NULL), 1); /* CSV field count */
        make_inputs(&f, "id,lbl,row\na,0,0\n");
        assert_int_equal(run_score(&f, NULL), 1); /* no label column */
        make_inputs(&f, labels_csv);
        assert_int_equal(run_score(&f, "--id-column", "key", NULL), 1);
        assert_int_equal(run_score(&f, "--truth-column", "label2", NULL), 1);
        make_inputs(&f, "id,label,truth\na,0,zebra\n");
        assert_int_equal(run_score(&f, "--truth-column", "truth", NULL), 1);
}

static void test_cmd_score_usage_errors(void **state)
{
        static const char *const no_probs[] = {"score", "--labels", "x.csv",
                                               NULL};
        struct score_files f;

        (void)state;
        make_inputs(&f, labels_csv);
        assert_int_equal(tooltest_run(cmd_score, f.stdout_path, no_probs), 2);
        assert_int_equal(run_score(&f, "--filter", "prune_by_luck", NULL), 2);
        assert_int_equal(run_score(&f, "--bins", "3", NULL), 2);
        assert_int_equal(run_score(&f, "--half-life", "-1", NULL), 2);
        assert_int_equal(run_score(&f, "--what", NULL), 2);
        assert_int_equal(run_score(&f, "--help", NULL), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cmd_score_predicted_neq_given_verdicts),
                cmocka_unit_test(test_cmd_score_pass_policy_warms_up),
                cmocka_unit_test(test_cmd_score_default_holds_then_batch),
                cmocka_unit_test(test_cmd_score_delay_items_keeps_order),
                cmocka_unit_test(test_cmd_score_record_order_rows),
                cmocka_unit_test(test_cmd_score_config_class_names),
                cmocka_unit_test(test_cmd_score_width_mismatch_rejects),
                cmocka_unit_test(test_cmd_score_bad_inputs_fail),
                cmocka_unit_test(test_cmd_score_usage_errors),
        };

        return cmocka_run_group_tests(tests, tooltest_make_scratch,
                                      tooltest_remove_scratch);
}
