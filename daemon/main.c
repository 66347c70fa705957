/*
 * confidentd - finds wrong human labels while they are still flowing.
 *
 *   confidentd -c FILE [-b BOOTSTRAP]    run
 *   confidentd --check-config FILE       validate and exit
 *
 * Exit status: 0 after a requested stop with all work committed, 1 on a
 * runtime failure, 2 on a usage or configuration error.
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "cfd_kafka.h"
#include "cfd_log.h"
#include "cfd_loop.h"
#include "cfd_metrics.h"
#include "cfd_mock.h"
#include "cfd_notify.h"
#include "cfd_params.h"
#include "cfd_reload.h"
#include "cfd_route.h"
#include "cfg.h"
#include "cl.h"

#ifndef CFD_VERSION
#define CFD_VERSION "0.0.0"
#endif

#define EXIT_USAGE 2

static volatile sig_atomic_t stop_requested;
static volatile sig_atomic_t reload_requested;

struct options {
        const char *config_path;
        const char *bootstrap; /* overrides kafka.bootstrap */
        int check_only;
};

static void on_stop_signal(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static void on_reload_signal(int sig)
{
        (void)sig;
        reload_requested = 1;
}

static int install_signals(void)
{
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL) < 0 ||
            sigaction(SIGINT, &sa, NULL) < 0)
                return -1;
        sa.sa_handler = on_reload_signal;
        if (sigaction(SIGHUP, &sa, NULL) < 0)
                return -1;
        sa.sa_handler = SIG_IGN;
        return sigaction(SIGPIPE, &sa, NULL);
}

static void usage(FILE *out)
{
        fprintf(out,
                "usage: confidentd -c FILE [-b BOOTSTRAP]\n"
                "       confidentd --check-config FILE\n"
                "\n"
                "  -c, --config FILE       configuration (YAML)\n"
                "  -b, --bootstrap LIST    Kafka bootstrap servers, "
                "overriding kafka.bootstrap\n"
                "      --check-config FILE validate FILE and exit\n"
                "  -V, --version           print the version and exit\n"
                "  -h, --help              this text\n");
}

static int parse_args(int argc, char **argv, struct options *opt)
{
        static const struct option longopts[] = {
                {"config", required_argument, NULL, 'c'},
                {"bootstrap", required_argument, NULL, 'b'},
                {"check-config", required_argument, NULL, 'C'},
                {"version", no_argument, NULL, 'V'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:b:Vh", longopts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        opt->config_path = optarg;
                        break;
                case 'b':
                        opt->bootstrap = optarg;
                        break;
                case 'C':
                        opt->config_path = optarg;
                        opt->check_only = 1;
                        break;
                case 'V':
                        printf("confidentd %s (librdkafka %s)\n", CFD_VERSION,
                               rd_kafka_version_str());
                        exit(0);
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        return -1;
                }
        }
        if (opt->bootstrap && !*opt->bootstrap) {
                fprintf(stderr, "confidentd: -b/--bootstrap is empty\n");
                return -1;
        }
        if (optind != argc || !opt->config_path) {
                if (optind != argc)
                        fprintf(stderr, "confidentd: unexpected argument '%s'\n",
                                argv[optind]);
                else
                        fprintf(stderr, "confidentd: no configuration given "
                                        "(-c FILE)\n");
                usage(stderr);
                return -1;
        }
        return 0;
}

/* Loads and fully validates the config; prints the error and returns
 * NULL on failure. */
static struct cfg *load_config(const char *path, struct cl_params *params)
{
        struct cfg_error err;
        struct cfg *cfg = NULL;
        char msg[512];

        if (cfg_load_file(path, &cfg, &err) < 0) {
                cfg_error_format(&err, msg, sizeof(msg));
                fprintf(stderr, "confidentd: %s\n", msg);
                return NULL;
        }
        if (cfd_params_from_cfg(cfg, params, msg, sizeof(msg)) < 0 ||
            cfd_kafka_check_config(cfg, msg, sizeof(msg)) < 0) {
                fprintf(stderr, "confidentd: %s\n", msg);
                cfg_free(cfg);
                return NULL;
        }
        return cfg;
}

static void apply_log_config(const struct cfg *cfg)
{
        static const enum cfd_log_level levels[] = {
                [CFG_LOG_ERROR] = CFD_LOG_ERROR,
                [CFG_LOG_WARN] = CFD_LOG_WARN,
                [CFG_LOG_INFO] = CFD_LOG_INFO,
                [CFG_LOG_DEBUG] = CFD_LOG_DEBUG,
        };

        cfd_log_set_level(levels[cfg->log.level]);
}

/* Starts the in-process broker for `bootstrap: embedded`. */
static struct cfd_mock *start_embedded(const struct cfg *cfg)
{
        const char *topics[] = {cfg->kafka.topic_input, cfg->kafka.topic_clean,
                                cfg->kafka.topic_suspect,
                                cfg->kafka.topic_dead_letter,
                                cfg->kafka.topic_state};
        struct cfd_mock_error err;
        struct cfd_mock *mock = NULL;
        int partitions = (int)cfg->kafka.embedded_partitions;
        char routed[256];

        if (cfd_mock_new(1, NULL, &mock, &err) < 0)
                goto fail;
        if (cfd_mock_set_nodelay(mock, &err) < 0)
                cfd_log(CFD_LOG_WARN, "embedded_nodelay_failed",
                        "err=\"%s\" action=continue", err.msg);
        for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
                if (cfd_mock_topic_create(mock, topics[i], partitions,
                                          &err) < 0)
                        goto fail;
        for (size_t i = 0; i < cfd_routes_count(cfg); i++) {
                cfd_routes_name(cfg, i, routed, sizeof(routed));
                if (cfd_mock_topic_create(mock, routed, partitions, &err) < 0)
                        goto fail;
        }
        cfd_log(CFD_LOG_INFO, "embedded_broker", "bootstrap=%s partitions=%d",
                cfd_mock_bootstraps(mock), partitions);
        return mock;

fail:
        cfd_log(CFD_LOG_ERROR, "embedded_broker_failed", "err=\"%s\"", err.msg);
        cfd_mock_free(mock);
        return NULL;
}

static const char *pick_bootstrap(const struct options *opt,
                                  const struct cfg *cfg, struct cfd_mock *mock)
{
        if (opt->bootstrap)
                return opt->bootstrap;
        if (mock)
                return cfd_mock_bootstraps(mock);
        return cfg->kafka.bootstrap;
}

static void log_stopped(const struct cfd_loop *loop, int status)
{
        const struct cfd_loop_stats *s = cfd_loop_stats(loop);

        cfd_log(CFD_LOG_INFO, "stopped",
                "items=%" PRIu64 " clean=%" PRIu64 " warmup=%" PRIu64
                " suspect=%" PRIu64 " dead_letter=%" PRIu64
                " commits=%" PRIu64 " aborts=%" PRIu64 " status=%d",
                s->consumed, s->clean, s->warmup, s->suspect, s->dead_letter,
                s->commits, s->aborts, status);
}

static struct cfd_metrics *start_metrics(const struct cfg *cfg)
{
        struct cfd_metrics_config mc = {
                .listen = cfg->metrics.listen,
                .class_names = (const char *const *)cfg->classes.names,
                .n_classes = cfg->classes.count,
                .version = CFD_VERSION,
        };
        struct cfd_metrics *m = NULL;
        char err[256];

        if (cfd_metrics_new(&mc, &m, err, sizeof(err)) < 0) {
                cfd_log(CFD_LOG_ERROR, "metrics_failed",
                        "listen=%s err=\"%s\"",
                        cfg->metrics.listen ? cfg->metrics.listen : "-", err);
                return NULL;
        }
        if (cfg->metrics.listen)
                cfd_log(CFD_LOG_INFO, "metrics_listening", "listen=%s port=%u",
                        cfg->metrics.listen, cfd_metrics_port(m));
        return m;
}

/*
 * SIGHUP: loads the configuration file again and applies what may change
 * while running.  On any error the running configuration stays and the
 * error is logged.  Returns the configuration now in force.
 */
static struct cfg *reload(const struct options *opt, struct cfg *cfg,
                          struct cfd_loop *loop)
{
        struct cl_params params;
        struct cfg_error cerr;
        struct cfg *fresh = NULL;
        const char *key;
        char err[512];

        if (cfg_load_file(opt->config_path, &fresh, &cerr) < 0) {
                cfg_error_format(&cerr, err, sizeof(err));
                goto fail;
        }
        if (cfd_params_from_cfg(fresh, &params, err, sizeof(err)) < 0 ||
            cfd_kafka_check_config(fresh, err, sizeof(err)) < 0)
                goto fail;
        key = cfd_reload_restart_key(cfg, fresh);
        if (key) {
                snprintf(err, sizeof(err), "'%s' changed: that needs a restart",
                         key);
                goto fail;
        }
        if (cfd_loop_reconfigure(loop, fresh, &params, err, sizeof(err)) < 0)
                goto fail;
        apply_log_config(fresh);
        cfd_log(CFD_LOG_INFO, "reloaded",
                "config=%s filter=%s suspect_by=%d level=%s",
                opt->config_path, cl_filter_name(params.filter),
                (int)fresh->routing.suspect_by,
                cfd_log_level_name(cfd_log_get_level()));
        cfg_free(cfg);
        return fresh;

fail:
        cfd_log(CFD_LOG_ERROR, "reload_failed",
                "config=%s err=\"%s\" action=keep_running_config",
                opt->config_path, err);
        cfg_free(fresh);
        return cfg;
}

/* Runs the daemon; takes ownership of cfg (replaced by reloads). */
static int run(const struct options *opt, struct cfg *cfg,
               const struct cl_params *params)
{
        struct cfd_loop_observers obs = {NULL, NULL};
        struct cfd_mock *mock = NULL;
        struct cfd_loop *loop = NULL;
        char err[512];
        int status = 1;

        if (cfd_notify_new(&obs.notify) < 0)
                cfd_log(CFD_LOG_WARN, "notify_failed", "action=continue");
        obs.metrics = start_metrics(cfg);
        if (!obs.metrics)
                goto out;
        if (cfg->kafka.embedded && !opt->bootstrap) {
                mock = start_embedded(cfg);
                if (!mock)
                        goto out;
        }
        if (cfd_loop_new(cfg, pick_bootstrap(opt, cfg, mock), params, &obs,
                         &loop, err, sizeof(err)) < 0) {
                cfd_log(CFD_LOG_ERROR, "start_failed", "err=\"%s\"", err);
                goto out;
        }
        cfd_log(CFD_LOG_INFO, "ready",
                "input=%s classes=%u filter=%s delivery=%s",
                cfg->kafka.topic_input, params->k,
                cl_filter_name(params->filter),
                cfg->delivery.mode == CFG_DELIVERY_EXACTLY_ONCE
                        ? "exactly_once"
                        : "at_least_once");
        cfd_notify_ready(obs.notify);

        for (;;) {
                int rc = cfd_loop_run(loop, &stop_requested,
                                      &reload_requested);

                if (rc != CFD_LOOP_RELOAD) {
                        status = rc == 0 ? 0 : 1;
                        break;
                }
                reload_requested = 0;
                cfg = reload(opt, cfg, loop);
        }
        log_stopped(loop, status);
out:
        /* Clients first, then the cluster they talk to. */
        cfd_loop_free(loop);
        cfd_mock_free(mock);
        cfd_metrics_free(obs.metrics);
        cfd_notify_free(obs.notify);
        cfg_free(cfg);
        return status;
}

int main(int argc, char **argv)
{
        struct options opt = {0};
        struct cl_params params;
        struct cfg *cfg;
        int status;

        cfd_log_init();
        if (parse_args(argc, argv, &opt) < 0)
                return EXIT_USAGE;

        cfg = load_config(opt.config_path, &params);
        if (!cfg)
                return EXIT_USAGE;
        if (opt.check_only) {
                printf("%s: ok (%u classes, filter %s, input topic '%s')\n",
                       opt.config_path, params.k,
                       cl_filter_name(params.filter), cfg->kafka.topic_input);
                cfg_free(cfg);
                return 0;
        }

        apply_log_config(cfg);
        if (install_signals() < 0) {
                perror("confidentd: sigaction");
                cfg_free(cfg);
                return 1;
        }
        cfd_log(CFD_LOG_INFO, "start", "version=%s config=%s", CFD_VERSION,
                opt.config_path);
        status = run(&opt, cfg, &params);
        return status;
}
