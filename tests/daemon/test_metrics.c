/*
 * test_metrics.c - daemon/cfd_metrics.h: the text rendering, annotator
 * top-N, flag window, health, the statistics JSON scanner, and the HTTP
 * server on 127.0.0.1 with an ephemeral port, whose /metrics output is
 * checked by the real `promtool check metrics` (PROMTOOL from CMake).
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cfd_metrics.h"

static const char *const classes[] = {"cat", "dog", "say \"hi\"\\\n"};

static struct cfd_metrics *new_metrics(const char *listen, unsigned top)
{
        struct cfd_metrics_config cfg = {
                .listen = listen,
                .class_names = classes,
                .n_classes = 3,
                .top_annotators = top,
                .flag_window_s = 120,
                .health_max_age_s = 30,
                .max_partitions = 4,
                .version = "1.2.3",
        };
        struct cfd_metrics *m = NULL;
        char err[256] = "";

        if (cfd_metrics_new(&cfg, &m, err, sizeof(err)) != 0)
                fail_msg("cfd_metrics_new: %s", err);
        return m;
}

static char *render(struct cfd_metrics *m)
{
        char *buf = NULL, *text;
        size_t len = 0;

        assert_int_equal(cfd_metrics_render(m, &buf, &len), 0);
        assert_non_null(buf);
        assert_int_equal(strlen(buf), len);
        /* A copy: gcc 12 at -O3 takes pointers into the rendered text for
         * pointers to the local variable buf (-Wdangling-pointer). */
        text = strdup(buf);
        assert_non_null(text);
        free(buf);
        return text;
}

/* The text holds line as a whole line. */
static void assert_line(const char *text, const char *line)
{
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        fail_msg("line not found: %s\n--- in ---\n%s", line, text);
}

/* The value after the given series name and labels. */
static double series_value(const char *text, const char *series)
{
        const char *p = strstr(text, series);

        if (!p)
                fail_msg("no %s in\n%s", series, text);
        return strtod(p + strlen(series), NULL);
}

static void assert_no_line_with(const char *text, const char *part)
{
        if (strstr(text, part))
                fail_msg("unexpected text: %s\n--- in ---\n%s", part, text);
}

static void test_cfd_metrics_render_counts_after_publish(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        int in, clean, dl;
        char *text;

        (void)state;
        in = cfd_metrics_topic(m, "labels");
        clean = cfd_metrics_topic(m, "labels.clean");
        dl = cfd_metrics_topic(m, "labels.dead-letter");
        assert_int_equal(in, 0);
        assert_int_equal(cfd_metrics_topic(m, "labels"), 0);
        for (int i = 0; i < 5; i++)
                cfd_metrics_consumed(m, in);
        cfd_metrics_delivered(m, clean, 0.003);
        cfd_metrics_delivered(m, dl, 0.0001);
        cfd_metrics_delivered(m, clean, 100.0);
        cfd_metrics_verdict(m, 0, CFD_METRICS_CLEAN, NULL, 0);
        cfd_metrics_verdict(m, 2, CFD_METRICS_SUSPECT, NULL, 0);
        cfd_metrics_dead_letter(m, "CL_E_RANGE");
        cfd_metrics_dead_letter(m, "CL_E_RANGE");
        cfd_metrics_dead_letter(m, "MSG_E_PARSE");
        cfd_metrics_transaction(m, true);
        cfd_metrics_transaction(m, false);
        cfd_metrics_transaction(m, true);
        cfd_metrics_offset_commit(m, true);
        cfd_metrics_offset_commit(m, false);

        /* Nothing is visible before the loop publishes. */
        text = render(m);
        assert_line(text, "confidentd_verdicts_total{class=\"cat\","
                          "verdict=\"clean\"} 0");
        assert_no_line_with(text, "confidentd_messages_consumed_total{");
        free(text);

        cfd_metrics_publish_at(m, 1000);
        text = render(m);
        assert_line(text, "# TYPE confidentd_messages_consumed_total counter");
        assert_line(text, "confidentd_messages_consumed_total{topic=\"labels\"}"
                          " 5");
        assert_line(text, "confidentd_messages_produced_total{topic=\"labels."
                          "clean\"} 2");
        assert_line(text, "confidentd_messages_produced_total{topic=\"labels."
                          "dead-letter\"} 1");
        assert_line(text, "confidentd_verdicts_total{class=\"cat\","
                          "verdict=\"clean\"} 1");
        /* Quote, backslash and line feed of a label value are escaped. */
        assert_line(text, "confidentd_verdicts_total{class=\"say \\\"hi\\\""
                          "\\\\\\n\",verdict=\"suspect\"} 1");
        assert_line(text, "confidentd_dead_letters_total{reason=\"CL_E_RANGE\"}"
                          " 2");
        assert_line(text, "confidentd_dead_letters_total{reason=\"MSG_E_PARSE"
                          "\"} 1");
        assert_line(text, "confidentd_dead_letters_total{reason=\"other\"} 0");
        assert_line(text, "confidentd_transactions_total{result=\"committed\"}"
                          " 2");
        assert_line(text, "confidentd_transactions_total{result=\"aborted\"} 1");
        assert_line(text, "confidentd_offset_commits_total{result=\"failed\"} 1");
        assert_line(text, "confidentd_build_info{version=\"1.2.3\"} 1");
        assert_line(text, "confidentd_heartbeat_age_seconds +Inf");
        /* No thresholds and no lag were given: no such families. */
        assert_no_line_with(text, "confidentd_class_threshold");
        assert_no_line_with(text, "confidentd_consumer_lag_messages");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_render_histogram_is_cumulative(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        char *text;

        (void)state;
        cfd_metrics_delivered(m, -1, 0.0001);
        cfd_metrics_delivered(m, -1, 0.003);
        cfd_metrics_delivered(m, -1, 0.005); /* a bound is inclusive */
        cfd_metrics_delivered(m, -1, -2.0);  /* counts as 0 */
        cfd_metrics_delivered(m, -1, 100.0);
        cfd_metrics_publish_at(m, 1);
        text = render(m);
        assert_line(text, "# TYPE confidentd_delivery_latency_seconds "
                          "histogram");
        assert_line(text, "confidentd_delivery_latency_seconds_bucket"
                          "{le=\"0.0005\"} 2");
        assert_line(text, "confidentd_delivery_latency_seconds_bucket"
                          "{le=\"0.0025\"} 2");
        assert_line(text, "confidentd_delivery_latency_seconds_bucket"
                          "{le=\"0.005\"} 4");
        assert_line(text, "confidentd_delivery_latency_seconds_bucket"
                          "{le=\"30\"} 4");
        assert_line(text, "confidentd_delivery_latency_seconds_bucket"
                          "{le=\"+Inf\"} 5");
        assert_line(text, "confidentd_delivery_latency_seconds_count 5");
        assert_float_equal(series_value(text, "confidentd_delivery_latency_"
                                              "seconds_sum "),
                           100.0081, 1e-9);
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_thresholds_render_per_class(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        const double t[4] = {0.5, 0.25, 2.0, 9.0};
        char *text;

        (void)state;
        cfd_metrics_thresholds(m, t, 4); /* the extra value is ignored */
        cfd_metrics_publish_at(m, 1);
        text = render(m);
        assert_line(text, "confidentd_class_threshold{class=\"cat\"} 0.5");
        assert_line(text, "confidentd_class_threshold{class=\"dog\"} 0.25");
        assert_no_line_with(text, "} 9\n");
        free(text);
        cfd_metrics_free(m);
}

static void verdicts(struct cfd_metrics *m, const char *who, int n,
                     enum cfd_metrics_verdict v)
{
        for (int i = 0; i < n; i++)
                cfd_metrics_verdict(m, 0, v, who, who ? strlen(who) : 0);
}

static void test_cfd_metrics_verdict_top_annotators_and_other(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 2);
        char *text;

        (void)state;
        verdicts(m, "alice", 10, CFD_METRICS_CLEAN);
        verdicts(m, "bob", 5, CFD_METRICS_CLEAN);
        verdicts(m, "carol", 1, CFD_METRICS_CLEAN);
        /* Before a publish nobody is exported: all count as other. */
        cfd_metrics_publish_at(m, 1);
        text = render(m);
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"other\",verdict=\"clean\"} 16");
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"alice\",verdict=\"clean\"} 0");
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"bob\",verdict=\"suspect\"} 0");
        assert_no_line_with(text, "carol");
        free(text);

        verdicts(m, "alice", 3, CFD_METRICS_SUSPECT);
        verdicts(m, "carol", 2, CFD_METRICS_CLEAN);
        verdicts(m, "other", 1, CFD_METRICS_WARMUP);   /* reserved name */
        verdicts(m, NULL, 1, CFD_METRICS_WARMUP);      /* absent */
        verdicts(m, "\xff\xfe", 1, CFD_METRICS_WARMUP); /* not UTF-8 */
        cfd_metrics_publish_at(m, 2);
        text = render(m);
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"alice\",verdict=\"suspect\"} 3");
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"other\",verdict=\"clean\"} 18");
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"other\",verdict=\"warmup\"} 3");
        assert_no_line_with(text, "carol");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_verdict_overtaken_annotator_leaves(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 1);
        char *text;

        (void)state;
        verdicts(m, "alice", 10, CFD_METRICS_CLEAN);
        cfd_metrics_publish_at(m, 1);
        /* bob at 11 leads alice by less than 1/8 + 1: no swap. */
        verdicts(m, "bob", 11, CFD_METRICS_CLEAN);
        cfd_metrics_publish_at(m, 2);
        text = render(m);
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"alice\",verdict=\"clean\"} 0");
        assert_no_line_with(text, "bob");
        free(text);
        /* bob at 20 leads clearly: he takes the place, from 0. */
        verdicts(m, "bob", 9, CFD_METRICS_CLEAN);
        cfd_metrics_publish_at(m, 3);
        verdicts(m, "bob", 4, CFD_METRICS_SUSPECT);
        cfd_metrics_publish_at(m, 4);
        text = render(m);
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"bob\",verdict=\"suspect\"} 4");
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"other\",verdict=\"clean\"} 30");
        assert_no_line_with(text, "alice");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_verdict_frequent_survives_churn(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 1);
        char who[32], *text;

        (void)state;
        /* One frequent annotator among 2000 one-off ones, interleaved:
         * the 20 tracking rows keep being recycled, yet the frequent
         * one must end up exported. */
        for (int i = 0; i < 2000; i++) {
                snprintf(who, sizeof(who), "once-%d", i);
                verdicts(m, who, 1, CFD_METRICS_CLEAN);
                if (i % 4 == 0)
                        verdicts(m, "steady", 1, CFD_METRICS_CLEAN);
        }
        cfd_metrics_publish_at(m, 1);
        verdicts(m, "steady", 1, CFD_METRICS_SUSPECT);
        cfd_metrics_publish_at(m, 2);
        text = render(m);
        assert_line(text, "confidentd_annotator_verdicts_total{annotator="
                          "\"steady\",verdict=\"suspect\"} 1");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_dead_letter_table_bounded(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        char code[32], *text;

        (void)state;
        for (int i = 0; i < CFD_METRICS_MAX_REASONS + 3; i++) {
                snprintf(code, sizeof(code), "E_%d", i);
                cfd_metrics_dead_letter(m, code);
        }
        cfd_metrics_dead_letter(m, NULL);
        cfd_metrics_dead_letter(m, "");
        cfd_metrics_publish_at(m, 1);
        text = render(m);
        assert_line(text, "confidentd_dead_letters_total{reason=\"E_0\"} 1");
        assert_line(text, "confidentd_dead_letters_total{reason=\"E_31\"} 1");
        assert_no_line_with(text, "E_32");
        assert_line(text, "confidentd_dead_letters_total{reason=\"other\"} 5");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_topic_table_bounded(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        char name[32], longname[CFD_METRICS_TOPIC_MAX + 1];

        (void)state;
        for (int i = 0; i < CFD_METRICS_MAX_TOPICS; i++) {
                snprintf(name, sizeof(name), "t%d", i);
                assert_int_equal(cfd_metrics_topic(m, name), i);
        }
        assert_int_equal(cfd_metrics_topic(m, "one-more"),
                         CFD_METRICS_E_FULL);
        assert_int_equal(cfd_metrics_topic(m, ""), CFD_METRICS_E_PARAM);
        assert_int_equal(cfd_metrics_topic(m, NULL), CFD_METRICS_E_PARAM);
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = '\0';
        assert_int_equal(cfd_metrics_topic(m, longname), CFD_METRICS_E_PARAM);
        cfd_metrics_free(m);
}

static double flag_ratio(struct cfd_metrics *m, const char *series)
{
        char *text = render(m);
        double v = series_value(text, series);

        free(text);
        return v;
}

static void test_cfd_metrics_publish_flag_window_moves(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        const char *cat = "confidentd_flag_ratio{class=\"cat\"} ";
        const char *dog = "confidentd_flag_ratio{class=\"dog\"} ";
        const char *all = "\nconfidentd_flag_overall_ratio ";
        int64_t t = 1000000;

        (void)state;
        /* First minute: cat 1 of 4 suspect; warm-up does not count. */
        cfd_metrics_verdict(m, 0, CFD_METRICS_SUSPECT, NULL, 0);
        for (int i = 0; i < 3; i++)
                cfd_metrics_verdict(m, 0, CFD_METRICS_CLEAN, NULL, 0);
        cfd_metrics_verdict(m, 0, CFD_METRICS_WARMUP, NULL, 0);
        cfd_metrics_publish_at(m, t);
        assert_float_equal(flag_ratio(m, cat), 0.25, 1e-12);
        assert_true(isnan(flag_ratio(m, dog)));
        assert_float_equal(flag_ratio(m, all), 0.25, 1e-12);
        /* Second minute: cat 4 clean more, dog 1 suspect. */
        for (int i = 0; i < 4; i++)
                cfd_metrics_verdict(m, 0, CFD_METRICS_CLEAN, NULL, 0);
        cfd_metrics_verdict(m, 1, CFD_METRICS_SUSPECT, NULL, 0);
        cfd_metrics_publish_at(m, t + 60000);
        assert_float_equal(flag_ratio(m, cat), 1.0 / 8, 1e-12);
        assert_float_equal(flag_ratio(m, dog), 1.0, 1e-12);
        assert_float_equal(flag_ratio(m, all), 2.0 / 9, 1e-12);
        /* The 120 s window has passed the first publish: only what came
         * after it counts. */
        cfd_metrics_publish_at(m, t + 125000);
        assert_float_equal(flag_ratio(m, cat), 0.0, 1e-12);
        assert_float_equal(flag_ratio(m, dog), 1.0, 1e-12);
        /* And later nothing is left in the window. */
        cfd_metrics_publish_at(m, t + 250000);
        assert_true(isnan(flag_ratio(m, cat)));
        assert_true(isnan(flag_ratio(m, all)));
        cfd_metrics_free(m);
}

static void test_cfd_metrics_healthy_at_follows_heartbeat(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);

        (void)state;
        assert_false(cfd_metrics_healthy_at(m, 5000));
        cfd_metrics_heartbeat_at(m, 5000);
        assert_true(cfd_metrics_healthy_at(m, 5000));
        assert_true(cfd_metrics_healthy_at(m, 35000));
        assert_false(cfd_metrics_healthy_at(m, 35001));
        assert_false(cfd_metrics_healthy_at(NULL, 5000));
        cfd_metrics_free(m);
}

/* A consumer's statistics as librdkafka 2.0 writes them, shortened. */
static const char stats_consumer[] =
        "{ \"name\": \"rdkafka#consumer-1\", \"type\": \"consumer\", "
        "\"ts\":123456789, \"brokers\":{\"localhost:9092/1\":{\"name\":"
        "\"localhost:9092/1\",\"rtt\":{\"min\":1,\"avg\":1.5e3,\"p99\":-0.5},"
        "\"toppars\":{\"labels-0\":{\"topic\":\"labels\",\"partition\":0}}}},"
        "\"topics\":{\"labels\":{\"topic\":\"labels\",\"age\":10,"
        "\"batchsize\":{\"min\":0,\"max\":0},\"partitions\":{"
        "\"0\":{\"partition\":0,\"fetch_state\":\"active\","
        "\"hi_offset\":100,\"ls_offset\":98,\"committed_offset\":90,"
        "\"stored_offset\":95,\"consumer_lag\":8,\"consumer_lag_stored\":3,"
        "\"msgq\":[1,2,{\"x\":null}],\"desired\":true},"
        "\"1\":{\"partition\":1,\"hi_offset\":50,\"ls_offset\":50,"
        "\"committed_offset\":-1001,\"stored_offset\":40,"
        "\"consumer_lag\":-1,\"consumer_lag_stored\":10},"
        "\"2\":{\"partition\":2,\"fetch_state\":\"none\","
        "\"consumer_lag\":-1,\"consumer_lag_stored\":-1},"
        "\"-1\":{\"partition\":-1,\"consumer_lag\":0,"
        "\"consumer_lag_stored\":0}}},"
        "\"odd\\\"name\":{\"partitions\":{\"0\":{\"consumer_lag\":1}}}},"
        "\"cgrp\":{\"state\":\"up\",\"rebalance_reason\":\"a \\\"b\\\" \\u00e9\"}"
        "}";

static void test_cfd_metrics_parse_lag_reads_partitions(void **state)
{
        struct cfd_metrics_lag out[4];
        bool consumer = false;

        (void)state;
        assert_int_equal(cfd_metrics_parse_lag(stats_consumer,
                                                sizeof(stats_consumer) - 1,
                                                out, 4, &consumer),
                         2);
        assert_true(consumer);
        assert_string_equal(out[0].topic, "labels");
        assert_int_equal(out[0].partition, 0);
        assert_int_equal(out[0].hi_offset, 100);
        assert_int_equal(out[0].ls_offset, 98);
        assert_int_equal(out[0].committed_offset, 90);
        assert_int_equal(out[0].stored_offset, 95);
        assert_int_equal(out[0].consumer_lag, 8);
        assert_int_equal(out[0].consumer_lag_stored, 3);
        /* The further along: the stored offset (the daemon stores what
         * its transactions commit). */
        assert_int_equal(out[0].lag, 3);
        assert_int_equal(out[1].partition, 1);
        assert_int_equal(out[1].committed_offset, -1001);
        assert_int_equal(out[1].lag, 10); /* nothing committed yet */
}

static void test_cfd_metrics_parse_lag_counts_past_cap(void **state)
{
        struct cfd_metrics_lag out[1];

        (void)state;
        /* A trailing NUL, as stats_cb may pass, is accepted. */
        assert_int_equal(cfd_metrics_parse_lag(stats_consumer,
                                                sizeof(stats_consumer), out, 1,
                                                NULL),
                         2);
        assert_int_equal(out[0].partition, 0);
        assert_int_equal(cfd_metrics_parse_lag(stats_consumer,
                                                sizeof(stats_consumer) - 1,
                                                NULL, 0, NULL),
                         2);
}

static void test_cfd_metrics_parse_lag_rejects_malformed(void **state)
{
        static const char *const bad[] = {
                "",
                "[]",
                "{",
                "{\"topics\":}",
                "{\"topics\":{\"t\":{\"partitions\":{\"x\":{}}}}}",
                "{\"topics\":{\"t\":{\"partitions\":{\"0\":"
                "{\"consumer_lag\":1.5}}}}}",
                "{\"topics\":{\"t\":{\"partitions\":{\"0\":"
                "{\"consumer_lag\":99999999999999999999}}}}}",
                "{\"a\":\"unterminated}",
                "{\"a\":1} trailing",
                "{\"a\":1,}",
                "{\"a\":\"ctl\x01\"}",
        };
        struct cfd_metrics_lag out[2];
        char deep[200];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (cfd_metrics_parse_lag(bad[i], strlen(bad[i]), out, 2,
                                          NULL) != CFD_METRICS_E_PARSE)
                        fail_msg("accepted: %s", bad[i]);
        /* Nesting past the bound is refused, not recursed into. */
        memset(deep, '[', sizeof(deep));
        memcpy(deep, "{\"a\":", 5);
        assert_int_equal(cfd_metrics_parse_lag(deep, sizeof(deep), out, 2,
                                               NULL),
                         CFD_METRICS_E_PARSE);
        assert_int_equal(cfd_metrics_parse_lag(NULL, 0, out, 2, NULL),
                         CFD_METRICS_E_PARSE);
}

static void test_cfd_metrics_stats_json_replaces_lag(void **state)
{
        static const char producer[] =
                "{\"type\":\"producer\",\"topics\":{\"out\":{\"partitions\":"
                "{\"0\":{\"consumer_lag\":5}}}}}";
        static const char many[] =
                "{\"type\":\"consumer\",\"topics\":{\"t\":{\"partitions\":{"
                "\"0\":{\"consumer_lag\":0},\"1\":{\"consumer_lag\":1},"
                "\"2\":{\"consumer_lag\":2},\"3\":{\"consumer_lag\":3},"
                "\"4\":{\"consumer_lag\":4}}}}}";
        struct cfd_metrics *m = new_metrics(NULL, 0);
        char *text;

        (void)state;
        assert_int_equal(cfd_metrics_stats_json(m, stats_consumer,
                                                sizeof(stats_consumer) - 1),
                         0);
        /* A producer's statistics leave the table alone, as does junk. */
        assert_int_equal(cfd_metrics_stats_json(m, producer,
                                                sizeof(producer) - 1),
                         0);
        assert_int_equal(cfd_metrics_stats_json(m, "{", 1),
                         CFD_METRICS_E_PARSE);
        cfd_metrics_publish_at(m, 1);
        text = render(m);
        assert_line(text, "# TYPE confidentd_consumer_lag_messages gauge");
        assert_line(text, "confidentd_consumer_lag_messages{topic=\"labels\","
                          "partition=\"0\"} 3");
        assert_line(text, "confidentd_consumer_lag_messages{topic=\"labels\","
                          "partition=\"1\"} 10");
        assert_no_line_with(text, "partition=\"-1\"");
        assert_no_line_with(text, "partition=\"2\"");
        assert_no_line_with(text, "odd");
        free(text);
        /* Five partitions, room for four (max_partitions). */
        assert_int_equal(cfd_metrics_stats_json(m, many, sizeof(many) - 1),
                         CFD_METRICS_E_FULL);
        cfd_metrics_publish_at(m, 2);
        text = render(m);
        assert_line(text, "confidentd_consumer_lag_messages{topic=\"t\","
                          "partition=\"3\"} 3");
        assert_no_line_with(text, "partition=\"4\"");
        assert_no_line_with(text, "labels");
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_new_rejects_bad_config(void **state)
{
        struct cfd_metrics_config cfg = {.class_names = classes,
                                         .n_classes = 0};
        struct cfd_metrics *m = NULL;
        char err[128];

        (void)state;
        assert_int_equal(cfd_metrics_new(&cfg, &m, err, sizeof(err)),
                         CFD_METRICS_E_PARAM);
        assert_string_equal(err, "metrics: invalid configuration");
        cfg.n_classes = 3;
        cfg.top_annotators = CFD_METRICS_MAX_ANNOTATORS + 1;
        assert_int_equal(cfd_metrics_new(&cfg, &m, NULL, 0),
                         CFD_METRICS_E_PARAM);
        assert_int_equal(cfd_metrics_new(NULL, &m, NULL, 0),
                         CFD_METRICS_E_PARAM);
        assert_null(m);
        assert_int_equal(cfd_metrics_render(NULL, NULL, NULL),
                         CFD_METRICS_E_PARAM);
}

static void test_cfd_metrics_new_rejects_bad_address(void **state)
{
        static const char *const bad[] = {
                "9464",      ":9464",        "127.0.0.1:",
                "127.0.0.1:x", "[::1]9464",  "::1:9464",
                "example.org:9464", "127.0.0.1:99999",
        };
        struct cfd_metrics_config cfg = {.class_names = classes,
                                         .n_classes = 3};
        struct cfd_metrics *m = NULL;
        char err[160];

        (void)state;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cfg.listen = bad[i];
                if (cfd_metrics_new(&cfg, &m, err, sizeof(err)) !=
                    CFD_METRICS_E_ADDR)
                        fail_msg("accepted listen address '%s'", bad[i]);
                assert_non_null(strstr(err, bad[i]));
        }
        assert_null(m);
}

static void test_cfd_metrics_new_reports_port_in_use(void **state)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        socklen_t len = sizeof(sa);
        struct cfd_metrics_config cfg = {.class_names = classes,
                                         .n_classes = 3};
        struct cfd_metrics *m = NULL;
        char addr[64], err[160];
        int fd;

        (void)state;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 1), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
        cfg.listen = addr;
        assert_int_equal(cfd_metrics_new(&cfg, &m, err, sizeof(err)),
                         CFD_METRICS_E_LISTEN);
        assert_non_null(strstr(err, strerror(EADDRINUSE)));
        assert_null(m);
        close(fd);
}

/*
 * The server: plain HTTP/1.0 requests over a socket to 127.0.0.1.
 */

static char *http(unsigned port, const char *method, const char *path)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        struct timeval tv = {.tv_sec = 10};
        size_t len = 0, cap = 1 << 16;
        char req[256], *buf = malloc(cap);
        ssize_t n;
        int fd;

        assert_non_null(buf);
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
                                    sizeof(tv)),
                         0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: test\r\n\r\n",
                     method, path);
        assert_int_equal(write(fd, req, (size_t)n), n);
        while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
                len += (size_t)n;
                if (cap - len < 1024) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                        assert_non_null(buf);
                }
        }
        assert_int_equal(n, 0); /* closed by the server, not timed out */
        buf[len] = '\0';
        close(fd);
        return buf;
}

static const char *body_of(const char *resp)
{
        const char *p = strstr(resp, "\r\n\r\n");

        assert_non_null(p);
        return p + 4;
}

static void promtool_check(const char *text)
{
        char path[] = "/tmp/cfd-metrics-XXXXXX", cmd[512];
        FILE *f;
        int fd, rc;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        f = fdopen(fd, "w");
        assert_non_null(f);
        assert_int_equal(fputs(text, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
        snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s'", PROMTOOL,
                 path);
        rc = system(cmd);
        unlink(path);
        if (rc != 0)
                fail_msg("promtool check metrics failed (status %d) on\n%s",
                         rc, text);
}

static void test_cfd_metrics_server_serves_metrics_and_healthz(void **state)
{
        struct cfd_metrics *m = new_metrics("127.0.0.1:0", 2);
        const double t[3] = {0.6, 0.7, 2.0};
        unsigned port = cfd_metrics_port(m);
        int in, out;
        char *resp;

        (void)state;
        assert_true(port > 0);
        in = cfd_metrics_topic(m, "labels");
        out = cfd_metrics_topic(m, "labels.suspect");
        cfd_metrics_consumed(m, in);
        cfd_metrics_delivered(m, out, 0.02);
        verdicts(m, "alice", 3, CFD_METRICS_SUSPECT);
        verdicts(m, "b\"o\\b\n", 1, CFD_METRICS_CLEAN);
        cfd_metrics_dead_letter(m, "MSG_E_TYPE");
        cfd_metrics_thresholds(m, t, 3);
        assert_int_equal(cfd_metrics_stats_json(m, stats_consumer,
                                                sizeof(stats_consumer) - 1),
                         0);
        cfd_metrics_publish(m);
        cfd_metrics_publish(m);

        resp = http(port, "GET", "/healthz");
        assert_true(strncmp(resp + 9, "503", 3) == 0);
        free(resp);
        cfd_metrics_heartbeat(m);
        resp = http(port, "GET", "/healthz");
        assert_true(strncmp(resp, "HTTP/1.", 7) == 0 &&
                    strncmp(resp + 9, "200", 3) == 0);
        assert_string_equal(body_of(resp), "ok\n");
        free(resp);

        resp = http(port, "GET", "/metrics");
        assert_true(strncmp(resp + 9, "200", 3) == 0);
        assert_non_null(strstr(resp, "text/plain; version=0.0.4"));
        assert_line(body_of(resp), "confidentd_messages_consumed_total"
                                   "{topic=\"labels\"} 1");
        assert_line(body_of(resp), "confidentd_annotator_verdicts_total"
                                   "{annotator=\"b\\\"o\\\\b\\n\","
                                   "verdict=\"clean\"} 0");
        promtool_check(body_of(resp));
        free(resp);

        resp = http(port, "GET", "/nothing");
        assert_true(strncmp(resp + 9, "404", 3) == 0);
        free(resp);
        resp = http(port, "POST", "/metrics");
        assert_true(strncmp(resp + 9, "405", 3) == 0);
        assert_non_null(strstr(resp, "GET, HEAD"));
        free(resp);
        resp = http(port, "HEAD", "/metrics");
        assert_true(strncmp(resp + 9, "200", 3) == 0);
        assert_string_equal(body_of(resp), "");
        free(resp);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_render_empty_passes_promtool(void **state)
{
        struct cfd_metrics *m = new_metrics(NULL, 0);
        char *text;

        (void)state;
        text = render(m);
        promtool_check(text);
        free(text);
        cfd_metrics_free(m);
}

static void test_cfd_metrics_null_handle_is_noop(void **state)
{
        (void)state;
        assert_int_equal(cfd_metrics_port(NULL), 0);
        assert_int_equal(cfd_metrics_topic(NULL, "t"), CFD_METRICS_E_PARAM);
        cfd_metrics_consumed(NULL, 0);
        cfd_metrics_verdict(NULL, 0, CFD_METRICS_CLEAN, "a", 1);
        cfd_metrics_dead_letter(NULL, "x");
        cfd_metrics_delivered(NULL, 0, 1.0);
        cfd_metrics_transaction(NULL, true);
        cfd_metrics_offset_commit(NULL, true);
        cfd_metrics_thresholds(NULL, NULL, 0);
        assert_int_equal(cfd_metrics_stats_json(NULL, "{", 1), 0);
        cfd_metrics_publish(NULL);
        cfd_metrics_heartbeat(NULL);
        cfd_metrics_free(NULL);
        assert_string_equal(cfd_metrics_strerror(CFD_METRICS_E_FULL),
                            "table full");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cfd_metrics_render_counts_after_publish),
                cmocka_unit_test(
                        test_cfd_metrics_render_histogram_is_cumulative),
                cmocka_unit_test(test_cfd_metrics_thresholds_render_per_class),
                cmocka_unit_test(
                        test_cfd_metrics_verdict_top_annotators_and_other),
                cmocka_unit_test(
                        test_cfd_metrics_verdict_overtaken_annotator_leaves),
                cmocka_unit_test(
                        test_cfd_metrics_verdict_frequent_survives_churn),
                cmocka_unit_test(test_cfd_metrics_dead_letter_table_bounded),
                cmocka_unit_test(test_cfd_metrics_topic_table_bounded),
                cmocka_unit_test(test_cfd_metrics_publish_flag_window_moves),
                cmocka_unit_test(
                        test_cfd_metrics_healthy_at_follows_heartbeat),
                cmocka_unit_test(test_cfd_metrics_parse_lag_reads_partitions),
                cmocka_unit_test(test_cfd_metrics_parse_lag_counts_past_cap),
                cmocka_unit_test(test_cfd_metrics_parse_lag_rejects_malformed),
                cmocka_unit_test(test_cfd_metrics_stats_json_replaces_lag),
                cmocka_unit_test(test_cfd_metrics_new_rejects_bad_config),
                cmocka_unit_test(test_cfd_metrics_new_rejects_bad_address),
                cmocka_unit_test(test_cfd_metrics_new_reports_port_in_use),
                cmocka_unit_test(
                        test_cfd_metrics_server_serves_metrics_and_healthz),
                cmocka_unit_test(
                        test_cfd_metrics_render_empty_passes_promtool),
                cmocka_unit_test(test_cfd_metrics_null_handle_is_noop),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
