/*
 * test_cfg.c - config/cfg.h: valid files, defaults, and every error path
 * with its exact "file:line:col: msg".
 *
 * CFG_TEST_DATA (tests/data/config) and CFG_TEST_EXAMPLE (the shipped
 * example configuration) come from CMake.
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
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"

#define BAD "bad.yaml"

/* Valid kafka and classes sections on lines 1-2; tests append line 3+. */
#define HEAD                                                                  \
        "kafka: {bootstrap: b, topics: {input: in}}\n"                        \
        "classes: [a, b]\n"

static struct cfg *load_ok(const char *text)
{
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char msg[512];
        int rc;

        rc = cfg_load_string(text, strlen(text), BAD, &cfg, &err);
        cfg_error_format(&err, msg, sizeof(msg));
        if (rc != 0)
                fail_msg("unexpected error: %s", msg);
        assert_non_null(cfg);
        return cfg;
}

static struct cfg *load_file_ok(const char *path)
{
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char msg[512];
        int rc;

        rc = cfg_load_file(path, &cfg, &err);
        cfg_error_format(&err, msg, sizeof(msg));
        if (rc != 0)
                fail_msg("unexpected error: %s", msg);
        assert_non_null(cfg);
        return cfg;
}

static void check_error(int rc, const struct cfg_error *err,
                        const struct cfg *cfg, int code, const char *expect)
{
        char msg[512];

        cfg_error_format(err, msg, sizeof(msg));
        assert_string_equal(msg, expect);
        assert_int_equal(rc, code);
        assert_int_equal(err->code, code);
        assert_null(cfg);
}

/* Loads text as "bad.yaml" and checks the code and the formatted error. */
static void load_bad(const char *text, int code, const char *expect)
{
        struct cfg_error err;
        struct cfg *cfg = NULL;
        int rc;

        rc = cfg_load_string(text, strlen(text), BAD, &cfg, &err);
        check_error(rc, &err, cfg, code, expect);
}

/* Loads CFG_TEST_DATA/name; expect_tail follows "<path>" in the message. */
static void load_file_bad(const char *name, int code, const char *expect_tail)
{
        char path[512], expect[1024];
        struct cfg_error err;
        struct cfg *cfg = NULL;
        int rc;

        snprintf(path, sizeof(path), "%s/%s", CFG_TEST_DATA, name);
        snprintf(expect, sizeof(expect), "%s%s", path, expect_tail);
        rc = cfg_load_file(path, &cfg, &err);
        check_error(rc, &err, cfg, code, expect);
}

/* Loads HEAD + "filter: {<key>: <value>}" and checks the message. */
static void filter_bad(const char *key, const char *value, const char *msg)
{
        char text[512], expect[512];
        unsigned col = (unsigned)strlen("filter: {") + (unsigned)strlen(key) +
                       3;

        snprintf(text, sizeof(text), HEAD "filter: {%s: %s}\n", key, value);
        snprintf(expect, sizeof(expect), BAD ":3:%u: %s", col, msg);
        load_bad(text, CFG_E_VALUE, expect);
}

/* ---- valid configurations ---- */

static void test_cfg_load_file_full_sets_every_key(void **state)
{
        struct cfg *cfg = load_file_ok(CFG_TEST_DATA "/full.yaml");
        const struct cfg_props *p;

        (void)state;
        assert_string_equal(cfg->path, CFG_TEST_DATA "/full.yaml");
        assert_string_equal(cfg->kafka.bootstrap,
                            "broker-1:9092,broker-2:9092");
        assert_false(cfg->kafka.embedded);
        assert_int_equal(cfg->kafka.embedded_partitions, 3);
        assert_string_equal(cfg->kafka.group_id, "relabel-audit");
        assert_string_equal(cfg->kafka.topic_input, "votes");
        assert_string_equal(cfg->kafka.topic_clean, "votes.ok");
        assert_string_equal(cfg->kafka.topic_suspect, "votes.check");
        assert_string_equal(cfg->kafka.topic_dead_letter, "votes.bad");

        p = &cfg->kafka.common;
        assert_int_equal(p->n, 2);
        assert_string_equal(p->v[0].name, "client.id");
        assert_string_equal(p->v[0].value, "confidentd-test");
        assert_int_equal(p->v[0].line, 12);
        assert_int_equal(p->v[0].col, 5);
        assert_string_equal(p->v[1].name, "socket.keepalive.enable");
        assert_string_equal(p->v[1].value, "true");
        p = &cfg->kafka.consumer;
        assert_int_equal(p->n, 1);
        assert_string_equal(p->v[0].name, "fetch.wait.max.ms");
        assert_string_equal(p->v[0].value, "10");
        p = &cfg->kafka.producer;
        assert_int_equal(p->n, 2);
        assert_string_equal(p->v[1].name, "compression.type");
        assert_string_equal(p->v[1].value, "lz4");

        assert_int_equal(cfg->classes.count, 3);
        assert_string_equal(cfg->classes.names[0], "cat");
        assert_string_equal(cfg->classes.names[2], "bird");

        assert_string_equal(cfg->filter.method, "both");
        assert_int_equal(cfg->filter.method_line, 21);
        assert_int_equal(cfg->filter.method_col, 11);
        assert_true(cfg->filter.half_life == 25000.0);
        assert_int_equal(cfg->filter.bins, 512);
        assert_true(cfg->filter.warmup_total == 1500.0);
        assert_true(cfg->filter.warmup_class == 12.5);
        assert_true(cfg->filter.min_examples == 3.0);
        assert_true(cfg->filter.sum_tolerance == 0.0);
        assert_int_equal(cfg->commit.max_items, 500);
        assert_int_equal(cfg->commit.interval_ms, 250);
        assert_int_equal(cfg->log.level, CFG_LOG_DEBUG);
        assert_int_equal(cfg->log.progress_interval_s, 0);
        cfg_free(cfg);
}

static void test_cfg_load_file_minimal_gets_defaults(void **state)
{
        struct cfg *cfg = load_file_ok(CFG_TEST_DATA "/minimal.yaml");

        (void)state;
        assert_string_equal(cfg->kafka.bootstrap, "127.0.0.1:9092");
        assert_false(cfg->kafka.embedded);
        assert_int_equal(cfg->kafka.embedded_partitions, 8);
        assert_string_equal(cfg->kafka.group_id, "confidentd");
        assert_string_equal(cfg->kafka.topic_input, "labels");
        assert_string_equal(cfg->kafka.topic_clean, "labels.clean");
        assert_string_equal(cfg->kafka.topic_suspect, "labels.suspect");
        assert_string_equal(cfg->kafka.topic_dead_letter,
                            "labels.dead-letter");
        assert_int_equal(cfg->kafka.common.n, 0);
        assert_int_equal(cfg->kafka.consumer.n, 0);
        assert_int_equal(cfg->kafka.producer.n, 0);

        assert_int_equal(cfg->classes.count, 4);
        assert_string_equal(cfg->classes.names[0], "0");
        assert_string_equal(cfg->classes.names[3], "3");

        assert_string_equal(cfg->filter.method, "prune_by_noise_rate");
        assert_int_equal(cfg->filter.method_line, 0);
        assert_true(cfg->filter.half_life == 0.0);
        assert_int_equal(cfg->filter.bins, 256);
        assert_true(cfg->filter.warmup_total == -1.0);
        assert_true(cfg->filter.warmup_class == 30.0);
        assert_true(cfg->filter.min_examples == 1.0);
        assert_true(cfg->filter.sum_tolerance == 0.001);
        assert_int_equal(cfg->commit.max_items, 10000);
        assert_int_equal(cfg->commit.interval_ms, 100);
        assert_int_equal(cfg->log.level, CFG_LOG_INFO);
        assert_int_equal(cfg->log.progress_interval_s, 10);
        cfg_free(cfg);
}

static void test_cfg_load_file_example_loads(void **state)
{
        struct cfg *cfg = load_file_ok(CFG_TEST_EXAMPLE);

        (void)state;
        assert_string_equal(cfg->kafka.bootstrap, "127.0.0.1:9092");
        assert_string_equal(cfg->kafka.topic_input, "labels");
        assert_int_equal(cfg->classes.count, 3);
        assert_string_equal(cfg->filter.method, "prune_by_noise_rate");
        assert_true(cfg->filter.warmup_total == -1.0);
        cfg_free(cfg);
}

static void test_cfg_load_string_embedded_bootstrap(void **state)
{
        struct cfg *cfg = load_ok("kafka:\n"
                                  "  bootstrap: embedded\n"
                                  "  embedded_partitions: 1024\n"
                                  "  topics: {input: in}\n"
                                  "classes: [a, b]\n");

        (void)state;
        assert_true(cfg->kafka.embedded);
        assert_int_equal(cfg->kafka.embedded_partitions, 1024);
        cfg_free(cfg);
}

static void test_cfg_load_string_empty_sections_keep_defaults(void **state)
{
        struct cfg *cfg = load_ok(HEAD "filter:\n"
                                       "commit: {}\n"
                                       "log: ~\n");

        (void)state;
        assert_int_equal(cfg->filter.bins, 256);
        assert_int_equal(cfg->commit.max_items, 10000);
        assert_int_equal(cfg->log.level, CFG_LOG_INFO);
        cfg_free(cfg);
}

static void test_cfg_load_string_accepts_number_forms(void **state)
{
        struct cfg *cfg = load_ok(HEAD "filter:\n"
                                       "  half_life: 1.\n"
                                       "  warmup_total: .5\n"
                                       "  warmup_class: +2E1\n"
                                       "  min_examples: -0\n"
                                       "  sum_tolerance: 1e-400\n"
                                       "  bins: \"0064\"\n"
                                       "commit: {max_items: 10000000}\n"
                                       "log: {progress_interval_s: 86400}\n");

        (void)state;
        assert_true(cfg->filter.half_life == 1.0);
        assert_true(cfg->filter.warmup_total == 0.5);
        assert_true(cfg->filter.warmup_class == 20.0);
        assert_true(cfg->filter.min_examples == 0.0);
        assert_false(signbit(cfg->filter.min_examples));
        assert_true(cfg->filter.sum_tolerance >= 0.0);
        assert_true(cfg->filter.sum_tolerance < 1e-300);
        assert_int_equal(cfg->filter.bins, 64);
        assert_int_equal(cfg->commit.max_items, 10000000);
        assert_int_equal(cfg->log.progress_interval_s, 86400);
        cfg_free(cfg);
}

static void test_cfg_load_string_every_method_and_level(void **state)
{
        static const char *const methods[] = {
                "prune_by_noise_rate", "prune_by_class",
                "both",                "confident_learning",
                "predicted_neq_given", "low_self_confidence",
                "low_normalized_margin",
        };
        static const char *const levels[] = {"error", "warn", "info",
                                             "debug"};
        char text[256];
        struct cfg *cfg;
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
                snprintf(text, sizeof(text), HEAD "filter: {method: %s}\n",
                         methods[i]);
                cfg = load_ok(text);
                assert_string_equal(cfg->filter.method, methods[i]);
                cfg_free(cfg);
        }
        for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
                snprintf(text, sizeof(text), HEAD "log: {level: %s}\n",
                         levels[i]);
                cfg = load_ok(text);
                assert_int_equal(cfg->log.level, (int)i);
                cfg_free(cfg);
        }
}

static void test_cfg_load_string_topic_name_limits(void **state)
{
        char text[1024], name[250];
        struct cfg *cfg;

        (void)state;
        memset(name, 'x', 249);
        name[249] = '\0';
        snprintf(text, sizeof(text),
                 "kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: %s, clean: c, suspect: s,"
                 " dead_letter: ..., state: st}\n"
                 "classes: [a, b]\n",
                 name);
        cfg = load_ok(text);
        assert_string_equal(cfg->kafka.topic_input, name);
        assert_string_equal(cfg->kafka.topic_dead_letter, "...");
        cfg_free(cfg);
}

static void test_cfg_load_string_null_error_and_name(void **state)
{
        const char text[] = "- a\n";
        struct cfg *cfg = NULL;
        struct cfg_error err;

        (void)state;
        assert_int_equal(cfg_load_string(text, strlen(text), NULL, &cfg,
                                         NULL),
                         CFG_E_TYPE);
        assert_null(cfg);
        assert_int_equal(cfg_load_string(NULL, 0, NULL, &cfg, &err),
                         CFG_E_MISSING);
        assert_string_equal(err.file, "<string>");
        assert_null(cfg);
}

static void test_cfg_load_string_not_nul_terminated(void **state)
{
        /* Only the first len bytes count: "classes: [a, b]" stops at ']'. */
        const char text[] = HEAD "junk";
        struct cfg_error err;
        struct cfg *cfg = NULL;

        (void)state;
        assert_int_equal(cfg_load_string(text, strlen(HEAD), BAD, &cfg, &err),
                         0);
        assert_int_equal(cfg->classes.count, 2);
        cfg_free(cfg);
}

static void test_cfg_class_index_finds_names(void **state)
{
        struct cfg *cfg = load_ok(
                "kafka: {bootstrap: b, topics: {input: in}}\n"
                "classes: [cat, dog, bird]\n");

        (void)state;
        assert_int_equal(cfg_class_index(cfg, "cat"), 0);
        assert_int_equal(cfg_class_index(cfg, "bird"), 2);
        assert_int_equal(cfg_class_index(cfg, "Cat"), -1);
        assert_int_equal(cfg_class_index(cfg, ""), -1);
        assert_int_equal(cfg_class_index(cfg, NULL), -1);
        cfg_free(cfg);
}

static void test_cfg_class_index_numbered_classes(void **state)
{
        struct cfg *cfg = load_ok("kafka: {bootstrap: b, topics: {input: in}}\n"
                                  "classes: 65536\n");

        (void)state;
        assert_int_equal(cfg->classes.count, 65536);
        assert_int_equal(cfg_class_index(cfg, "0"), 0);
        assert_int_equal(cfg_class_index(cfg, "65535"), 65535);
        assert_int_equal(cfg_class_index(cfg, "65536"), -1);
        cfg_free(cfg);
}

static void test_cfg_free_null(void **state)
{
        (void)state;
        cfg_free(NULL);
}

/* ---- error reporting helpers ---- */

static void test_cfg_error_format_forms(void **state)
{
        struct cfg_error err = {.code = CFG_E_VALUE, .line = 3, .col = 12};
        char buf[64];

        (void)state;
        snprintf(err.file, sizeof(err.file), "a.yaml");
        snprintf(err.msg, sizeof(err.msg), "bad thing");
        cfg_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "a.yaml:3:12: bad thing");

        err.line = 0;
        cfg_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "a.yaml: bad thing");

        err.file[0] = '\0';
        cfg_error_format(&err, buf, sizeof(buf));
        assert_string_equal(buf, "bad thing");

        cfg_error_format(&err, buf, 4);
        assert_string_equal(buf, "bad");
        cfg_error_format(&err, buf, 0);
        cfg_error_format(&err, NULL, 10);
}

static void test_cfg_err_name_every_code(void **state)
{
        (void)state;
        assert_string_equal(cfg_err_name(CFG_OK), "ok");
        assert_string_equal(cfg_err_name(CFG_E_IO), "io");
        assert_string_equal(cfg_err_name(CFG_E_SYNTAX), "syntax");
        assert_string_equal(cfg_err_name(CFG_E_UNKNOWN), "unknown_key");
        assert_string_equal(cfg_err_name(CFG_E_TYPE), "type");
        assert_string_equal(cfg_err_name(CFG_E_VALUE), "value");
        assert_string_equal(cfg_err_name(CFG_E_MISSING), "missing");
        assert_string_equal(cfg_err_name(CFG_E_DUPLICATE), "duplicate");
        assert_string_equal(cfg_err_name(CFG_E_NOMEM), "nomem");
        assert_string_equal(cfg_err_name(-99), "unknown_error");
}

/* ---- files ---- */

static void test_cfg_load_file_not_found(void **state)
{
        (void)state;
        load_file_bad("missing.yaml", CFG_E_IO,
                      ": cannot open file: No such file or directory");
}

static void test_cfg_load_file_directory(void **state)
{
        (void)state;
        load_file_bad(".", CFG_E_IO, ": not a regular file");
}

/* A FIFO is refused at once: reading it would wait for a writer. */
static void test_cfg_load_file_fifo_refused(void **state)
{
        char path[] = "cfg_fifo_XXXXXX";
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char expect[256];
        int fd, rc;

        (void)state;
        fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkfifo(path, 0600), 0);
        rc = cfg_load_file(path, &cfg, &err);
        assert_int_equal(unlink(path), 0);
        snprintf(expect, sizeof(expect), "%s: not a regular file", path);
        check_error(rc, &err, cfg, CFG_E_IO, expect);
}

/*
 * Writes HEAD padded with comment lines to size bytes into a new file in
 * the working directory (CTest runs tests in the build tree).
 */
static void write_padded(char *path, size_t size)
{
        static const char line[] = "# padding\n";
        size_t left = size - strlen(HEAD);
        FILE *fp;
        int fd;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        fp = fdopen(fd, "wb");
        assert_non_null(fp);
        fputs(HEAD, fp);
        for (; left >= sizeof(line) - 1; left -= sizeof(line) - 1)
                fputs(line, fp);
        for (; left > 0; left--)
                fputc('#', fp);
        assert_int_equal(fclose(fp), 0);
}

static void test_cfg_load_file_size_limit(void **state)
{
        char path[] = "cfg_large_XXXXXX";
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char expect[256];
        int rc;

        (void)state;
        write_padded(path, 1024 * 1024);
        cfg = load_file_ok(path);
        cfg_free(cfg);
        cfg = NULL;
        assert_int_equal(unlink(path), 0);

        strcpy(path, "cfg_large_XXXXXX");
        write_padded(path, 1024 * 1024 + 1);
        rc = cfg_load_file(path, &cfg, &err);
        assert_int_equal(unlink(path), 0);
        snprintf(expect, sizeof(expect), "%s: file is larger than 1048576 bytes",
                 path);
        check_error(rc, &err, cfg, CFG_E_IO, expect);
}

static void test_cfg_load_file_empty(void **state)
{
        (void)state;
        load_file_bad("empty.yaml", CFG_E_MISSING,
                      ":1:1: configuration is empty, expected a map with "
                      "'kafka' and 'classes'");
}

static void test_cfg_load_file_comments_only(void **state)
{
        (void)state;
        load_file_bad("comments_only.yaml", CFG_E_MISSING,
                      ":1:1: configuration is empty, expected a map with "
                      "'kafka' and 'classes'");
}

static void test_cfg_load_file_syntax_error(void **state)
{
        (void)state;
        load_file_bad("syntax.yaml", CFG_E_SYNTAX,
                      ":4:8: did not find expected ',' or '}' "
                      "(while parsing a flow mapping at 3:11)");
}

static void test_cfg_load_file_not_a_map(void **state)
{
        (void)state;
        load_file_bad("not_a_map.yaml", CFG_E_TYPE,
                      ":1:1: the top level must be a map, got a sequence");
}

/* ---- YAML structure ---- */

static void test_cfg_load_string_empty_document(void **state)
{
        (void)state;
        load_bad("---\n", CFG_E_MISSING,
                 BAD ":2:1: configuration is empty, expected a map with "
                     "'kafka' and 'classes'");
}

static void test_cfg_load_string_top_level_scalar(void **state)
{
        (void)state;
        load_bad("hello\n", CFG_E_TYPE,
                 BAD ":1:1: the top level must be a map, got 'hello'");
}

static void test_cfg_load_string_several_documents(void **state)
{
        (void)state;
        load_bad(HEAD "---\nkafka: {}\n", CFG_E_SYNTAX,
                 BAD ":3:1: more than one yaml document, expected one");
}

static void test_cfg_load_string_syntax_error(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n  bins: 32\n bins: 64\n", CFG_E_SYNTAX,
                 BAD ":5:2: did not find expected key "
                     "(while parsing a block mapping at 1:1)");
}

static void test_cfg_load_string_tab_indent(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n\tbins: 32\n", CFG_E_SYNTAX,
                 BAD ":4:1: found character that cannot start any token "
                     "(while scanning for the next token at 4:1)");
}

static void test_cfg_load_string_invalid_utf8(void **state)
{
        (void)state;
        load_bad(HEAD "log: {level: \xff}\n", CFG_E_SYNTAX,
                 BAD ":3:14: invalid leading UTF-8 octet (byte 0xff)");
}

static void test_cfg_load_string_anchor_rejected(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: &names [a, b]\n",
                 CFG_E_SYNTAX,
                 BAD ":2:10: yaml anchors are not supported, got '&names'");
}

static void test_cfg_load_string_alias_rejected(void **state)
{
        (void)state;
        load_bad(HEAD "filter: {bins: *b}\n", CFG_E_SYNTAX,
                 BAD ":3:16: yaml aliases are not supported, got '*b'");
}

static void test_cfg_load_string_tag_rejected(void **state)
{
        (void)state;
        load_bad(HEAD "filter: {bins: !!int 32}\n", CFG_E_SYNTAX,
                 BAD ":3:16: yaml tags are not supported, "
                     "got 'tag:yaml.org,2002:int'");
}

static void test_cfg_load_string_deep_nesting(void **state)
{
        char text[128];

        (void)state;
        memset(text, '[', 40);
        text[40] = '\0';
        load_bad(text, CFG_E_SYNTAX,
                 BAD ":1:33: yaml nested deeper than 32 levels");
}

static void test_cfg_load_string_nul_in_scalar(void **state)
{
        (void)state;
        load_bad(HEAD "log: {level: \"in\\0fo\"}\n", CFG_E_SYNTAX,
                 BAD ":3:14: scalar contains a nul character");
}

/* ---- delivery, state, metrics ---- */

static void test_cfg_load_string_delivery_state_metrics_defaults(void **state)
{
        struct cfg *cfg = load_ok(HEAD);

        (void)state;
        assert_int_equal(cfg->delivery.mode, CFG_DELIVERY_EXACTLY_ONCE);
        assert_string_equal(cfg->delivery.transactional_id,
                            "confidentd-confidentd");
        assert_string_equal(cfg->kafka.topic_state, "in.state");
        assert_null(cfg->state.initial);
        assert_false(cfg->state.share);
        assert_null(cfg->metrics.listen);
        cfg_free(cfg);
}

static void test_cfg_load_string_delivery_state_metrics_set(void **state)
{
        struct cfg *cfg = load_ok(
                HEAD "delivery: {mode: at_least_once, transactional_id: t1}\n"
                     "state: {initial: /var/lib/confidentd/seed.state, "
                     "share: true}\n"
                     "metrics: {listen: \"127.0.0.1:9464\"}\n");

        (void)state;
        assert_int_equal(cfg->delivery.mode, CFG_DELIVERY_AT_LEAST_ONCE);
        assert_string_equal(cfg->delivery.transactional_id, "t1");
        assert_string_equal(cfg->state.initial,
                            "/var/lib/confidentd/seed.state");
        assert_true(cfg->state.share);
        assert_string_equal(cfg->metrics.listen, "127.0.0.1:9464");
        cfg_free(cfg);
}

static void test_cfg_load_string_warmup_policy(void **state)
{
        struct cfg *cfg = load_ok(HEAD);

        (void)state;
        assert_int_equal(cfg->filter.warmup_policy, CFG_WARMUP_HOLD);
        assert_int_equal(cfg->filter.max_hold_ms, 10000);
        cfg_free(cfg);
        cfg = load_ok(HEAD "filter: {warmup_policy: pass, max_hold_ms: 250}\n");
        assert_int_equal(cfg->filter.warmup_policy, CFG_WARMUP_PASS);
        assert_int_equal(cfg->filter.max_hold_ms, 250);
        cfg_free(cfg);
}

static void test_cfg_load_string_warmup_policy_invalid(void **state)
{
        (void)state;
        load_bad(HEAD "filter: {warmup_policy: wait}\n", CFG_E_VALUE,
                 BAD ":3:25: 'warmup_policy' must be one of pass, hold, "
                     "got 'wait'");
        filter_bad("max_hold_ms", "0",
                   "'max_hold_ms' must be an integer between 1 and "
                   "3600000, got '0'");
}

static void test_cfg_load_string_delivery_mode_unknown(void **state)
{
        (void)state;
        load_bad(HEAD "delivery: {mode: twice}\n", CFG_E_VALUE,
                 BAD ":3:18: 'mode' must be one of exactly_once, "
                     "at_least_once, got 'twice'");
}

static void test_cfg_load_string_delivery_unknown_key(void **state)
{
        (void)state;
        load_bad(HEAD "delivery: {retries: 3}\n", CFG_E_UNKNOWN,
                 BAD ":3:12: unknown key 'retries' in 'delivery'");
}

static void test_cfg_load_string_metrics_listen_invalid(void **state)
{
        (void)state;
        load_bad(HEAD "metrics: {listen: 9464}\n", CFG_E_VALUE,
                 BAD ":3:19: 'listen' must be host:port, got '9464'");
        load_bad(HEAD "metrics: {listen: \"localhost:70000\"}\n",
                 CFG_E_VALUE,
                 BAD ":3:19: 'listen' must be host:port, got "
                     "'localhost:70000'");
}

static void test_cfg_load_string_state_topic_not_distinct(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in, state: in.clean}}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":1:50: 'clean' and 'state' must name different "
                     "topics, both are 'in.clean'");
}

static void test_cfg_load_string_state_share_not_boolean(void **state)
{
        (void)state;
        load_bad(HEAD "state: {share: yes}\n", CFG_E_VALUE,
                 BAD ":3:16: 'share' must be one of false, true, got 'yes'");
}

static void test_cfg_load_string_routing(void **state)
{
        struct cfg *cfg = load_ok(HEAD "routing: {suspect_by: class}\n");

        (void)state;
        assert_int_equal(cfg->routing.suspect_by, CFG_SUSPECT_BY_CLASS);
        cfg_free(cfg);
        cfg = load_ok(HEAD "routing: {suspect_by: annotator, "
                           "annotators: [ann-1, ann.2]}\n");
        assert_int_equal(cfg->routing.suspect_by, CFG_SUSPECT_BY_ANNOTATOR);
        assert_int_equal(cfg->routing.n_annotators, 2);
        assert_string_equal(cfg->routing.annotators[1], "ann.2");
        cfg_free(cfg);
        cfg = load_ok(HEAD);
        assert_int_equal(cfg->routing.suspect_by, CFG_SUSPECT_BY_NONE);
        cfg_free(cfg);
}

static void test_cfg_load_string_routing_class_names_not_topics(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [a, \"b c\"]\n"
                 "routing: {suspect_by: class}\n",
                 CFG_E_VALUE,
                 BAD ":3:23: 'suspect_by: class' needs class names that fit "
                     "in topic names ([A-Za-z0-9._-]); 'b c' does not");
}

static void test_cfg_load_string_routing_annotator_invalid(void **state)
{
        (void)state;
        load_bad(HEAD "routing: {suspect_by: annotator, annotators: [ok, "
                      "\"no/slash\"]}\n",
                 CFG_E_VALUE,
                 BAD ":3:51: annotator 'no/slash' does not fit in a topic "
                     "name ([A-Za-z0-9._-])");
        load_bad(HEAD "routing: {suspect_by: annotator}\n", CFG_E_MISSING,
                 BAD ":3:10: missing required key 'annotators' in "
                     "'routing'");
}

static void test_cfg_load_string_state_unknown_key(void **state)
{
        (void)state;
        load_bad(HEAD "state: {topic: x}\n", CFG_E_UNKNOWN,
                 BAD ":3:9: unknown key 'topic' in 'state'");
}

/* ---- unknown keys, one per level ---- */

static void test_cfg_load_string_unknown_key_top(void **state)
{
        (void)state;
        load_bad(HEAD "treshold: 1\n", CFG_E_UNKNOWN,
                 BAD ":3:1: unknown key 'treshold'");
}

static void test_cfg_load_string_unknown_key_quoted_safely(void **state)
{
        (void)state;
        load_bad(HEAD "\"a\\nb\": 1\n", CFG_E_UNKNOWN,
                 BAD ":3:1: unknown key 'a?b'");
        load_bad(HEAD "abcdefghijklmnopqrstuvwxyz0123456789: 1\n",
                 CFG_E_UNKNOWN,
                 BAD ":3:1: unknown key 'abcdefghijklmnopqrstuvwxyz012345...'");
}

static void test_cfg_load_string_unknown_key_kafka(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  brokers: x\n"
                 "classes: [a, b]\n",
                 CFG_E_UNKNOWN, BAD ":4:3: unknown key 'brokers' in 'kafka'");
}

static void test_cfg_load_string_unknown_key_topics(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics:\n"
                 "    input: in\n"
                 "    output: out\n"
                 "classes: [a, b]\n",
                 CFG_E_UNKNOWN,
                 BAD ":5:5: unknown key 'output' in 'kafka.topics'");
}

static void test_cfg_load_string_unknown_key_filter(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n  treshold: 0.5\n", CFG_E_UNKNOWN,
                 BAD ":4:3: unknown key 'treshold' in 'filter'");
}

static void test_cfg_load_string_unknown_key_commit(void **state)
{
        (void)state;
        load_bad(HEAD "commit: {max_item: 5}\n", CFG_E_UNKNOWN,
                 BAD ":3:10: unknown key 'max_item' in 'commit'");
}

static void test_cfg_load_string_unknown_key_log(void **state)
{
        (void)state;
        load_bad(HEAD "log:\n  levle: info\n", CFG_E_UNKNOWN,
                 BAD ":4:3: unknown key 'levle' in 'log'");
}

/* ---- wrong node types, one per level ---- */

static void test_cfg_load_string_type_key_not_scalar(void **state)
{
        (void)state;
        load_bad(HEAD "? [x]\n: 1\n", CFG_E_TYPE,
                 BAD ":3:3: keys must be scalars, got a sequence");
}

static void test_cfg_load_string_type_kafka(void **state)
{
        (void)state;
        load_bad("kafka: [a]\nclasses: [a, b]\n", CFG_E_TYPE,
                 BAD ":1:8: 'kafka' must be a map, got a sequence");
}

static void test_cfg_load_string_type_kafka_key(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, {x: y}: 1, topics: {input: in}}\n"
                 "classes: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":1:23: keys in 'kafka' must be scalars, got a map");
}

static void test_cfg_load_string_type_bootstrap(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: [a], topics: {input: in}}\n"
                 "classes: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":1:20: 'bootstrap' must be a non-empty string, "
                     "got a sequence");
}

static void test_cfg_load_string_type_topics(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: in}\nclasses: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":1:31: 'kafka.topics' must be a map, got 'in'");
}

static void test_cfg_load_string_type_topic_name(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: {a: b}}}\n"
                 "classes: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":1:39: 'input' must be a kafka topic name (1 to 249 "
                     "of [A-Za-z0-9._-], not '.' or '..'), got a map");
}

static void test_cfg_load_string_type_properties(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  properties: [a]\n"
                 "classes: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":4:15: 'kafka.properties' must be a map, "
                     "got a sequence");
}

static void test_cfg_load_string_type_property_value(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  properties:\n"
                 "    debug: {a: b}\n"
                 "classes: [a, b]\n",
                 CFG_E_TYPE,
                 BAD ":5:12: 'debug' in 'kafka.properties' must be a "
                     "scalar value, got a map");
}

static void test_cfg_load_string_type_classes(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: {a: 1}\n",
                 CFG_E_TYPE,
                 BAD ":2:10: 'classes' must be a list of names or an "
                     "integer between 2 and 65536, got a map");
}

static void test_cfg_load_string_type_class_name(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [a, [b]]\n",
                 CFG_E_TYPE,
                 BAD ":2:14: class names must be non-empty strings, "
                     "got a sequence");
}

static void test_cfg_load_string_type_filter(void **state)
{
        (void)state;
        load_bad(HEAD "filter: fast\n", CFG_E_TYPE,
                 BAD ":3:9: 'filter' must be a map, got 'fast'");
}

static void test_cfg_load_string_type_filter_value(void **state)
{
        (void)state;
        load_bad(HEAD "filter: {bins: {a: 1}}\n", CFG_E_TYPE,
                 BAD ":3:16: 'bins' must be an integer between 16 and "
                     "65536, got a map");
}

static void test_cfg_load_string_type_commit(void **state)
{
        (void)state;
        load_bad(HEAD "commit: [1]\n", CFG_E_TYPE,
                 BAD ":3:9: 'commit' must be a map, got a sequence");
}

static void test_cfg_load_string_type_log(void **state)
{
        (void)state;
        load_bad(HEAD "log: [info]\n", CFG_E_TYPE,
                 BAD ":3:6: 'log' must be a map, got a sequence");
}

static void test_cfg_load_string_type_log_level(void **state)
{
        (void)state;
        load_bad(HEAD "log: {level: [info]}\n", CFG_E_TYPE,
                 BAD ":3:14: 'level' must be one of error, warn, info, "
                     "debug, got a sequence");
}

/* ---- values out of range or malformed ---- */

static void test_cfg_load_string_embedded_partitions_range(void **state)
{
        static const char *const values[] = {"0", "1025"};
        char text[256], expect[256];
        size_t i;

        (void)state;
        for (i = 0; i < 2; i++) {
                snprintf(text, sizeof(text),
                         "kafka:\n"
                         "  bootstrap: embedded\n"
                         "  embedded_partitions: %s\n"
                         "  topics: {input: in}\n"
                         "classes: [a, b]\n",
                         values[i]);
                snprintf(expect, sizeof(expect),
                         BAD ":3:24: 'embedded_partitions' must be an "
                             "integer between 1 and 1024, got '%s'",
                         values[i]);
                load_bad(text, CFG_E_VALUE, expect);
        }
}

static void test_cfg_load_string_bins_range(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n  bins: 8\n", CFG_E_VALUE,
                 BAD ":4:9: 'bins' must be an integer between 16 and "
                     "65536, got '8'");
        filter_bad("bins", "65537",
                   "'bins' must be an integer between 16 and 65536, "
                   "got '65537'");
}

static void test_cfg_load_string_integer_malformed(void **state)
{
        static const char *const values[] = {
                "-16",  "+256", "0x100", "256.0", "1e3", "2 56",
                "''",   "99999999999999999999999",
        };
        static const char *const shown[] = {
                "'-16'", "'+256'", "'0x100'", "'256.0'", "'1e3'", "'2 56'",
                "''",    "'99999999999999999999999'",
        };
        char msg[256];
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                snprintf(msg, sizeof(msg),
                         "'bins' must be an integer between 16 and 65536, "
                         "got %s",
                         shown[i]);
                filter_bad("bins", values[i], msg);
        }
        filter_bad("bins", "",
                   "'bins' must be an integer between 16 and 65536, "
                   "got no value");
}

static void test_cfg_load_string_number_malformed(void **state)
{
        static const char *const values[] = {
                "nan", "inf", ".inf", "0x1p3", "1e999", ".", "1e", "1e+",
                "1_000", "--1", "1.2.3", "e5",
        };
        char msg[256];
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                snprintf(msg, sizeof(msg),
                         "'half_life' must be a number >= 0, got '%s'",
                         values[i]);
                filter_bad("half_life", values[i], msg);
        }
}

static void test_cfg_load_string_negative_numbers(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n  half_life: -1\n", CFG_E_VALUE,
                 BAD ":4:14: 'half_life' must be a number >= 0, got '-1'");
        filter_bad("warmup_total", "-1",
                   "'warmup_total' must be a number >= 0, got '-1'");
        filter_bad("warmup_class", "-0.5",
                   "'warmup_class' must be a number >= 0, got '-0.5'");
        filter_bad("min_examples", "-1e-9",
                   "'min_examples' must be a number >= 0, got '-1e-9'");
        filter_bad("sum_tolerance", "-0.001",
                   "'sum_tolerance' must be a number >= 0, got '-0.001'");
}

static void test_cfg_load_string_commit_range(void **state)
{
        (void)state;
        load_bad(HEAD "commit:\n  max_items: 0\n", CFG_E_VALUE,
                 BAD ":4:14: 'max_items' must be an integer between 1 and "
                     "10000000, got '0'");
        load_bad(HEAD "commit:\n  max_items: 10000001\n", CFG_E_VALUE,
                 BAD ":4:14: 'max_items' must be an integer between 1 and "
                     "10000000, got '10000001'");
        load_bad(HEAD "commit:\n  interval_ms: 0\n", CFG_E_VALUE,
                 BAD ":4:16: 'interval_ms' must be an integer between 1 "
                     "and 60000, got '0'");
        load_bad(HEAD "commit:\n  interval_ms: 60001\n", CFG_E_VALUE,
                 BAD ":4:16: 'interval_ms' must be an integer between 1 "
                     "and 60000, got '60001'");
}

static void test_cfg_load_string_progress_interval_range(void **state)
{
        (void)state;
        load_bad(HEAD "log:\n  progress_interval_s: 86401\n", CFG_E_VALUE,
                 BAD ":4:24: 'progress_interval_s' must be an integer "
                     "between 0 and 86400, got '86401'");
}

static void test_cfg_load_string_method_unknown(void **state)
{
        (void)state;
        filter_bad("method", "fastest",
                   "'method' must be one of prune_by_noise_rate, "
                   "prune_by_class, both, confident_learning, "
                   "predicted_neq_given, low_self_confidence, "
                   "low_normalized_margin, got 'fastest'");
}

static void test_cfg_load_string_long_value_is_cut(void **state)
{
        (void)state;
        filter_bad("method", "prune_by_noise_rate_and_then_some_more",
                   "'method' must be one of prune_by_noise_rate, "
                   "prune_by_class, both, confident_learning, "
                   "predicted_neq_given, low_self_confidence, "
                   "low_normalized_margin, got "
                   "'prune_by_noise_rate_and_then_som...'");
}

static void test_cfg_load_string_level_unknown(void **state)
{
        (void)state;
        load_bad(HEAD "log: {level: verbose}\n", CFG_E_VALUE,
                 BAD ":3:14: 'level' must be one of error, warn, info, "
                     "debug, got 'verbose'");
}

static void test_cfg_load_string_classes_count_range(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: 1\n",
                 CFG_E_VALUE,
                 BAD ":2:10: 'classes' must be a list of names or an "
                     "integer between 2 and 65536, got '1'");
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: 65537\n",
                 CFG_E_VALUE,
                 BAD ":2:10: 'classes' must be a list of names or an "
                     "integer between 2 and 65536, got '65537'");
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: cat, dog\n",
                 CFG_E_VALUE,
                 BAD ":2:10: 'classes' must be a list of names or an "
                     "integer between 2 and 65536, got 'cat, dog'");
}

static void test_cfg_load_string_classes_list_too_short(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [cat]\n",
                 CFG_E_VALUE,
                 BAD ":2:10: 'classes' must list between 2 and 65536 "
                     "names, got 1");
}

static void test_cfg_load_string_class_name_empty(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes:\n"
                 "  - cat\n"
                 "  - ''\n",
                 CFG_E_VALUE,
                 BAD ":4:5: class names must be non-empty strings, got ''");
}

static void test_cfg_load_string_bootstrap_empty(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: '', topics: {input: in}}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":1:20: 'bootstrap' must be a non-empty string, "
                     "got ''");
}

static void test_cfg_load_string_group_id_null(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, group_id: ~, topics: {input: in}}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":1:33: 'group_id' must be a non-empty string, "
                     "got no value");
}

static void test_cfg_load_string_property_reserved(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  consumer_properties: {group.id: other}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":4:25: 'group.id' in 'kafka.consumer_properties' is "
                     "set by 'kafka.group_id'");
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  properties: {bootstrap.servers: h:1}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":4:16: 'bootstrap.servers' in 'kafka.properties' is "
                     "set by 'kafka.bootstrap'");
}

static void test_cfg_load_string_property_without_value(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  producer_properties:\n"
                 "    linger.ms:\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":5:15: 'linger.ms' in 'kafka.producer_properties' "
                     "must be a scalar value, got no value");
}

static void test_cfg_load_string_property_name_empty(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  properties: {'': x}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":4:16: property names in 'kafka.properties' must not "
                     "be empty");
}

/* ---- topics ---- */

static void test_cfg_load_string_topic_name_invalid(void **state)
{
        static const char *const names[] = {"'my labels'", "'.'", "'..'",
                                            "''", "labels/x", "caf\xc3\xa9"};
        static const char *const shown[] = {"'my labels'", "'.'", "'..'",
                                            "''", "'labels/x'",
                                            "'caf\xc3\xa9'"};
        char text[256], expect[256];
        size_t i;

        (void)state;
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(text, sizeof(text),
                         "kafka: {bootstrap: b, topics: {input: %s}}\n"
                         "classes: [a, b]\n",
                         names[i]);
                snprintf(expect, sizeof(expect),
                         BAD ":1:39: 'input' must be a kafka topic name (1 "
                             "to 249 of [A-Za-z0-9._-], not '.' or '..'), "
                             "got %s",
                         shown[i]);
                load_bad(text, CFG_E_VALUE, expect);
        }
}

static void test_cfg_load_string_topic_name_too_long(void **state)
{
        char text[1024], name[251];

        (void)state;
        memset(name, 'x', 250);
        name[250] = '\0';
        snprintf(text, sizeof(text),
                 "kafka: {bootstrap: b, topics: {input: in, clean: %s}}\n"
                 "classes: [a, b]\n",
                 name);
        load_bad(text, CFG_E_VALUE,
                 BAD ":1:50: 'clean' must be a kafka topic name (1 to 249 "
                     "of [A-Za-z0-9._-], not '.' or '..'), got "
                     "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'");
}

static void test_cfg_load_string_default_topic_too_long(void **state)
{
        char text[1024], name[241];

        (void)state;
        memset(name, 'x', 240);
        name[240] = '\0';
        snprintf(text, sizeof(text),
                 "kafka: {bootstrap: b, topics: {input: %s}}\n"
                 "classes: [a, b]\n",
                 name);
        load_bad(text, CFG_E_VALUE,
                 BAD ":1:39: 'input' is too long to derive the "
                     "'dead_letter' topic (max 249 characters)");
}

static void test_cfg_load_string_topics_not_distinct(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics:\n"
                 "    suspect: out\n"
                 "    input: in\n"
                 "    clean: out\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":6:12: 'clean' and 'suspect' must name different "
                     "topics, both are 'out'");
        load_bad("kafka: {bootstrap: b, topics: {input: in, clean: in}}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":1:50: 'input' and 'clean' must name different "
                     "topics, both are 'in'");
}

static void test_cfg_load_string_topic_equals_default(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in,"
                 " dead_letter: in.clean}}\n"
                 "classes: [a, b]\n",
                 CFG_E_VALUE,
                 BAD ":1:56: 'clean' and 'dead_letter' must name different "
                     "topics, both are 'in.clean'");
}

/* ---- missing keys ---- */

static void test_cfg_load_string_missing_kafka(void **state)
{
        (void)state;
        load_bad("classes: [a, b]\n", CFG_E_MISSING,
                 BAD ":1:1: missing required key 'kafka'");
}

static void test_cfg_load_string_missing_classes(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n",
                 CFG_E_MISSING, BAD ":1:1: missing required key 'classes'");
}

static void test_cfg_load_string_missing_bootstrap(void **state)
{
        (void)state;
        load_bad("kafka:\n  topics: {input: in}\nclasses: [a, b]\n",
                 CFG_E_MISSING,
                 BAD ":2:3: missing required key 'bootstrap' in 'kafka'");
}

static void test_cfg_load_string_missing_kafka_body(void **state)
{
        (void)state;
        load_bad("kafka:\nclasses: [a, b]\n", CFG_E_MISSING,
                 BAD ":1:7: missing required key 'bootstrap' in 'kafka'");
}

static void test_cfg_load_string_missing_topics(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b}\nclasses: [a, b]\n", CFG_E_MISSING,
                 BAD ":1:8: missing required key 'topics' in 'kafka'");
}

static void test_cfg_load_string_missing_input(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {clean: c}}\n"
                 "classes: [a, b]\n",
                 CFG_E_MISSING,
                 BAD ":1:31: missing required key 'input' in "
                     "'kafka.topics'");
}

/* ---- duplicates ---- */

static void test_cfg_load_string_duplicate_top(void **state)
{
        (void)state;
        load_bad(HEAD "kafka: {}\n", CFG_E_DUPLICATE,
                 BAD ":3:1: duplicate key 'kafka'");
}

static void test_cfg_load_string_duplicate_kafka(void **state)
{
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  group_id: a\n"
                 "  group_id: b\n"
                 "classes: [a, b]\n",
                 CFG_E_DUPLICATE,
                 BAD ":5:3: duplicate key 'group_id' in 'kafka'");
}

static void test_cfg_load_string_duplicate_topics(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: a, input: b}}\n"
                 "classes: [a, b]\n",
                 CFG_E_DUPLICATE,
                 BAD ":1:42: duplicate key 'input' in 'kafka.topics'");
}

static void test_cfg_load_string_duplicate_filter(void **state)
{
        (void)state;
        load_bad(HEAD "filter:\n  bins: 32\n  bins: 64\n", CFG_E_DUPLICATE,
                 BAD ":5:3: duplicate key 'bins' in 'filter'");
}

static void test_cfg_load_string_duplicate_commit_and_log(void **state)
{
        (void)state;
        load_bad(HEAD "commit: {max_items: 1, max_items: 2}\n",
                 CFG_E_DUPLICATE,
                 BAD ":3:24: duplicate key 'max_items' in 'commit'");
        load_bad(HEAD "log: {level: info, level: warn}\n", CFG_E_DUPLICATE,
                 BAD ":3:20: duplicate key 'level' in 'log'");
}

static void test_cfg_load_string_duplicate_property(void **state)
{
        /* 'b' repeats before 'a' does, although 'a' sorts first. */
        (void)state;
        load_bad("kafka:\n"
                 "  bootstrap: b\n"
                 "  topics: {input: in}\n"
                 "  properties:\n"
                 "    b: 1\n"
                 "    a: 1\n"
                 "    b: 2\n"
                 "    a: 2\n"
                 "classes: [a, b]\n",
                 CFG_E_DUPLICATE,
                 BAD ":7:5: duplicate key 'b' in 'kafka.properties'");
}

static void test_cfg_load_string_duplicate_class_name(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [dog, cat, bird, cat, dog]\n",
                 CFG_E_DUPLICATE, BAD ":2:27: duplicate class name 'cat'");
}

/* An integer label 1 means index 1: a class named "1" elsewhere lies. */
static void test_cfg_load_string_class_name_number_refused(void **state)
{
        (void)state;
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [1, 2, 3]\n",
                 CFG_E_VALUE,
                 BAD ":2:11: class name '1' at index 0 would be confused "
                     "with the integer label 1; use names that are not "
                     "numbers, or 0..K-1 in order");
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [cat, '-1']\n",
                 CFG_E_VALUE,
                 BAD ":2:16: class name '-1' at index 1 would be confused "
                     "with the integer label -1; use names that are not "
                     "numbers, or 0..K-1 in order");
        load_bad("kafka: {bootstrap: b, topics: {input: in}}\n"
                 "classes: [cat, dog, +7]\n",
                 CFG_E_VALUE,
                 BAD ":2:21: class name '+7' at index 2 would be confused "
                     "with the integer label 7; use names that are not "
                     "numbers, or 0..K-1 in order");
}

/* Numbers equal to their index, and names that merely hold digits. */
static void test_cfg_load_string_class_name_number_at_its_index(void **state)
{
        struct cfg *cfg;

        (void)state;
        cfg = load_ok("kafka: {bootstrap: b, topics: {input: in}}\n"
                      "classes: [0, '1', cat2, 3x, 1.5]\n");
        assert_int_equal(cfg->classes.count, 5);
        assert_int_equal(cfg_class_index(cfg, "1"), 1);
        assert_int_equal(cfg_class_index(cfg, "1.5"), 4);
        cfg_free(cfg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cfg_load_file_full_sets_every_key),
                cmocka_unit_test(test_cfg_load_file_minimal_gets_defaults),
                cmocka_unit_test(test_cfg_load_file_example_loads),
                cmocka_unit_test(test_cfg_load_string_embedded_bootstrap),
                cmocka_unit_test(
                        test_cfg_load_string_empty_sections_keep_defaults),
                cmocka_unit_test(test_cfg_load_string_accepts_number_forms),
                cmocka_unit_test(test_cfg_load_string_every_method_and_level),
                cmocka_unit_test(test_cfg_load_string_topic_name_limits),
                cmocka_unit_test(
                        test_cfg_load_string_delivery_state_metrics_defaults),
                cmocka_unit_test(
                        test_cfg_load_string_delivery_state_metrics_set),
                cmocka_unit_test(test_cfg_load_string_warmup_policy),
                cmocka_unit_test(test_cfg_load_string_warmup_policy_invalid),
                cmocka_unit_test(test_cfg_load_string_delivery_mode_unknown),
                cmocka_unit_test(test_cfg_load_string_delivery_unknown_key),
                cmocka_unit_test(test_cfg_load_string_metrics_listen_invalid),
                cmocka_unit_test(
                        test_cfg_load_string_state_topic_not_distinct),
                cmocka_unit_test(test_cfg_load_string_state_unknown_key),
                cmocka_unit_test(test_cfg_load_string_routing),
                cmocka_unit_test(
                        test_cfg_load_string_routing_class_names_not_topics),
                cmocka_unit_test(
                        test_cfg_load_string_routing_annotator_invalid),
                cmocka_unit_test(
                        test_cfg_load_string_state_share_not_boolean),
                cmocka_unit_test(test_cfg_load_string_null_error_and_name),
                cmocka_unit_test(test_cfg_load_string_not_nul_terminated),
                cmocka_unit_test(test_cfg_class_index_finds_names),
                cmocka_unit_test(test_cfg_class_index_numbered_classes),
                cmocka_unit_test(test_cfg_free_null),
                cmocka_unit_test(test_cfg_error_format_forms),
                cmocka_unit_test(test_cfg_err_name_every_code),
                cmocka_unit_test(test_cfg_load_file_not_found),
                cmocka_unit_test(test_cfg_load_file_directory),
                cmocka_unit_test(test_cfg_load_file_fifo_refused),
                cmocka_unit_test(
                        test_cfg_load_string_class_name_number_refused),
                cmocka_unit_test(
                        test_cfg_load_string_class_name_number_at_its_index),
                cmocka_unit_test(test_cfg_load_file_size_limit),
                cmocka_unit_test(test_cfg_load_file_empty),
                cmocka_unit_test(test_cfg_load_file_comments_only),
                cmocka_unit_test(test_cfg_load_file_syntax_error),
                cmocka_unit_test(test_cfg_load_file_not_a_map),
                cmocka_unit_test(test_cfg_load_string_empty_document),
                cmocka_unit_test(test_cfg_load_string_top_level_scalar),
                cmocka_unit_test(test_cfg_load_string_several_documents),
                cmocka_unit_test(test_cfg_load_string_syntax_error),
                cmocka_unit_test(test_cfg_load_string_tab_indent),
                cmocka_unit_test(test_cfg_load_string_invalid_utf8),
                cmocka_unit_test(test_cfg_load_string_anchor_rejected),
                cmocka_unit_test(test_cfg_load_string_alias_rejected),
                cmocka_unit_test(test_cfg_load_string_tag_rejected),
                cmocka_unit_test(test_cfg_load_string_deep_nesting),
                cmocka_unit_test(test_cfg_load_string_nul_in_scalar),
                cmocka_unit_test(test_cfg_load_string_unknown_key_top),
                cmocka_unit_test(
                        test_cfg_load_string_unknown_key_quoted_safely),
                cmocka_unit_test(test_cfg_load_string_unknown_key_kafka),
                cmocka_unit_test(test_cfg_load_string_unknown_key_topics),
                cmocka_unit_test(test_cfg_load_string_unknown_key_filter),
                cmocka_unit_test(test_cfg_load_string_unknown_key_commit),
                cmocka_unit_test(test_cfg_load_string_unknown_key_log),
                cmocka_unit_test(test_cfg_load_string_type_key_not_scalar),
                cmocka_unit_test(test_cfg_load_string_type_kafka),
                cmocka_unit_test(test_cfg_load_string_type_kafka_key),
                cmocka_unit_test(test_cfg_load_string_type_bootstrap),
                cmocka_unit_test(test_cfg_load_string_type_topics),
                cmocka_unit_test(test_cfg_load_string_type_topic_name),
                cmocka_unit_test(test_cfg_load_string_type_properties),
                cmocka_unit_test(test_cfg_load_string_type_property_value),
                cmocka_unit_test(test_cfg_load_string_type_classes),
                cmocka_unit_test(test_cfg_load_string_type_class_name),
                cmocka_unit_test(test_cfg_load_string_type_filter),
                cmocka_unit_test(test_cfg_load_string_type_filter_value),
                cmocka_unit_test(test_cfg_load_string_type_commit),
                cmocka_unit_test(test_cfg_load_string_type_log),
                cmocka_unit_test(test_cfg_load_string_type_log_level),
                cmocka_unit_test(
                        test_cfg_load_string_embedded_partitions_range),
                cmocka_unit_test(test_cfg_load_string_bins_range),
                cmocka_unit_test(test_cfg_load_string_integer_malformed),
                cmocka_unit_test(test_cfg_load_string_number_malformed),
                cmocka_unit_test(test_cfg_load_string_negative_numbers),
                cmocka_unit_test(test_cfg_load_string_commit_range),
                cmocka_unit_test(
                        test_cfg_load_string_progress_interval_range),
                cmocka_unit_test(test_cfg_load_string_method_unknown),
                cmocka_unit_test(test_cfg_load_string_long_value_is_cut),
                cmocka_unit_test(test_cfg_load_string_level_unknown),
                cmocka_unit_test(test_cfg_load_string_classes_count_range),
                cmocka_unit_test(test_cfg_load_string_classes_list_too_short),
                cmocka_unit_test(test_cfg_load_string_class_name_empty),
                cmocka_unit_test(test_cfg_load_string_bootstrap_empty),
                cmocka_unit_test(test_cfg_load_string_group_id_null),
                cmocka_unit_test(test_cfg_load_string_property_reserved),
                cmocka_unit_test(
                        test_cfg_load_string_property_without_value),
                cmocka_unit_test(test_cfg_load_string_property_name_empty),
                cmocka_unit_test(test_cfg_load_string_topic_name_invalid),
                cmocka_unit_test(test_cfg_load_string_topic_name_too_long),
                cmocka_unit_test(test_cfg_load_string_default_topic_too_long),
                cmocka_unit_test(test_cfg_load_string_topics_not_distinct),
                cmocka_unit_test(test_cfg_load_string_topic_equals_default),
                cmocka_unit_test(test_cfg_load_string_missing_kafka),
                cmocka_unit_test(test_cfg_load_string_missing_classes),
                cmocka_unit_test(test_cfg_load_string_missing_bootstrap),
                cmocka_unit_test(test_cfg_load_string_missing_kafka_body),
                cmocka_unit_test(test_cfg_load_string_missing_topics),
                cmocka_unit_test(test_cfg_load_string_missing_input),
                cmocka_unit_test(test_cfg_load_string_duplicate_top),
                cmocka_unit_test(test_cfg_load_string_duplicate_kafka),
                cmocka_unit_test(test_cfg_load_string_duplicate_topics),
                cmocka_unit_test(test_cfg_load_string_duplicate_filter),
                cmocka_unit_test(
                        test_cfg_load_string_duplicate_commit_and_log),
                cmocka_unit_test(test_cfg_load_string_duplicate_property),
                cmocka_unit_test(test_cfg_load_string_duplicate_class_name),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
