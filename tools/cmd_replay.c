/*
 * cmd_replay.c - `confidentctl replay`: turns a labels CSV and a matching
 * .npy of model probabilities into a stream of msgpack label messages on
 * a Kafka topic, optionally paced.
 *
 * Produces asynchronously; delivery reports are counted, and the command
 * fails when any message was not delivered.
 */
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <msgpack.h>

#include "cli.h"
#include "ctl_signal.h"
#include "csvread.h"
#include "ctl_kafka.h"
#include "msg.h"
#include "npy.h"

#define METADATA_TIMEOUT_MS 10000
#define STOP_FLUSH_MS      10000 /* flush budget after SIGINT/SIGTERM */
#define PROGRESS_EVERY_S   0.25

struct replay_opts {
        const char *labels, *probs, *brokers, *topic;
        const char *id_col, *label_col, *annotator_col, *row_col;
        bool annotator_given, row_given; /* named on the command line */
        double rate;                     /* items/s; 0: unlimited */
        bool float32;
        long long limit; /* -1: all */
        const char *props[CTL_KAFKA_MAX_PROPERTIES];
        size_t nprops;
};

/* Column indices in the labels CSV; -1 when absent. */
struct columns {
        int id, label, annotator, row;
};

/* Updated by the delivery report callback, on the polling thread. */
struct delivery {
        size_t delivered, failed;
        rd_kafka_resp_err_t first_err;
};

/* State of one run: inputs, producer and counters. */
struct replay {
        const struct replay_opts *o;
        struct csv_reader *csv;
        struct columns cols;
        struct npy_array probs;
        double *row_buf; /* probs.cols values */
        msgpack_sbuffer sbuf;
        rd_kafka_t *rk;
        struct delivery dr;
        size_t produced, total; /* total: for the progress bar, or 0 */
        double t_start, t_progress;
        bool progress;
};

static void usage(FILE *out) {
        fprintf(out,
                "usage: confidentctl replay --labels FILE.csv --probs "
                "FILE.npy --brokers ADDR\n"
                "                           --topic NAME [options]\n"
                "\n"
                "Sends one msgpack label message per CSV record; the key is "
                "the id text.\n"
                "The probabilities are row 'row' of the .npy (float32, "
                "float64 or integers,\n"
                "N x K), or row i for CSV record i when there is no row "
                "column.  Integer\n"
                "labels are sent as integers, others as class names.\n"
                "\n"
                "  --labels FILE.csv        columns id, label, optional "
                "annotator and row\n"
                "  --probs FILE.npy         model probabilities, one row "
                "per item\n"
                "  --brokers ADDR           bootstrap.servers\n"
                "  --topic NAME             topic to produce to\n"
                "  --id-column NAME         (default id)\n"
                "  --label-column NAME      (default label)\n"
                "  --annotator-column NAME  (default annotator, used if "
                "present)\n"
                "  --row-column NAME        (default row, used if "
                "present)\n"
                "  --rate N                 items per second (default "
                "unlimited)\n"
                "  --float32                send probabilities as "
                "float32\n"
                "  --limit N                send at most N items\n"
                "  --property NAME=VALUE    librdkafka producer property, "
                "repeatable (not\n"
                "                           bootstrap.servers or "
                "metadata.broker.list)\n"
                "\n"
                "Ends with an event=replay_done line on stderr; its "
                "items_per_s is the\n"
                "delivered items divided by elapsed_s, from the first item "
                "to the last\n"
                "acknowledgement.\n"
                "Exit status: 0 all delivered, 1 failure, 2 usage "
                "error.\n");
}

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_number(const char *opt, const char *s, double min,
                        double *ret) {
        char *end;
        double v;

        errno = 0;
        v = strtod(s, &end);
        if (errno || end == s || *end || !isfinite(v) || v < min) {
                fprintf(stderr,
                        "confidentctl replay: %s: '%s' is not a number "
                        ">= %g\n",
                        opt, s, min);
                return -1;
        }
        *ret = v;
        return 0;
}

static int set_option(struct replay_opts *o, int c, const char *arg) {
        double v;

        switch (c) {
        case 'L': o->labels = arg; break;
        case 'P': o->probs = arg; break;
        case 'b': o->brokers = arg; break;
        case 't':
                if (cli_check_topic("replay", "topic", arg))
                        return -1;
                o->topic = arg;
                break;
        case 'i': o->id_col = arg; break;
        case 'l': o->label_col = arg; break;
        case 'a': o->annotator_col = arg; o->annotator_given = true; break;
        case 'r': o->row_col = arg; o->row_given = true; break;
        case 'f': o->float32 = true; break;
        case 'R':
                if (parse_number("--rate", arg, 0, &v))
                        return -1;
                o->rate = v;
                break;
        case 'n':
                if (csv_parse_i64(arg, &o->limit) || o->limit < 0) {
                        fprintf(stderr,
                                "confidentctl replay: --limit: '%s' is not "
                                "a whole number >= 0\n",
                                arg);
                        return -1;
                }
                break;
        case 'p':
                if (ctl_kafka_add_property("replay", arg, o->props,
                                           &o->nprops))
                        return -1;
                break;
        default:
                return -1;
        }
        return 0;
}

/* Returns 0, 1 for --help, or -1 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct replay_opts *o) {
        static const struct option longopts[] = {
                {"labels", required_argument, NULL, 'L'},
                {"probs", required_argument, NULL, 'P'},
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"id-column", required_argument, NULL, 'i'},
                {"label-column", required_argument, NULL, 'l'},
                {"annotator-column", required_argument, NULL, 'a'},
                {"row-column", required_argument, NULL, 'r'},
                {"rate", required_argument, NULL, 'R'},
                {"float32", no_argument, NULL, 'f'},
                {"limit", required_argument, NULL, 'n'},
                {"property", required_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        memset(o, 0, sizeof(*o));
        o->id_col = "id";
        o->label_col = "label";
        o->annotator_col = "annotator";
        o->row_col = "row";
        o->limit = -1;
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                if (c == 'h')
                        return 1;
                if (set_option(o, c, optarg))
                        return -1;
        }
        if (optind < argc) {
                fprintf(stderr,
                        "confidentctl replay: unexpected argument '%s'\n",
                        argv[optind]);
                return -1;
        }
        if (!o->labels || !o->probs || !o->brokers || !o->topic) {
                fprintf(stderr, "confidentctl replay: --labels, --probs, "
                                "--brokers and --topic are required\n");
                return -1;
        }
        return 0;
}

/* Finds a column; an absent optional column is -1 unless it was named. */
static int find_column(const struct replay *r, const char *name,
                       bool required, int *ret) {
        *ret = csv_column(r->csv, name);
        if (*ret >= 0 || !required)
                return 0;
        fprintf(stderr, "confidentctl replay: %s:1: no column '%s'\n",
                r->o->labels, name);
        return -1;
}

static int open_inputs(struct replay *r) {
        char errbuf[512];
        const struct replay_opts *o = r->o;

        if (npy_load(o->probs, &r->probs, errbuf, sizeof(errbuf))) {
                fprintf(stderr, "confidentctl replay: %s\n", errbuf);
                return -1;
        }
        /* Any dtype npy_load() reads, as `confidentctl score` takes. */
        if (r->probs.ndim != 2 || r->probs.cols < 2) {
                fprintf(stderr,
                        "confidentctl replay: %s: expected a 2-D array of "
                        "N rows x K >= 2 columns\n",
                        o->probs);
                return -1;
        }
        r->row_buf = calloc(r->probs.cols, sizeof(*r->row_buf));
        if (!r->row_buf) {
                fprintf(stderr, "confidentctl replay: out of memory\n");
                return -1;
        }
        r->csv = csv_open(o->labels, errbuf, sizeof(errbuf));
        if (!r->csv) {
                fprintf(stderr, "confidentctl replay: %s\n", errbuf);
                return -1;
        }
        if (find_column(r, o->id_col, true, &r->cols.id) ||
            find_column(r, o->label_col, true, &r->cols.label) ||
            find_column(r, o->annotator_col, o->annotator_given,
                        &r->cols.annotator) ||
            find_column(r, o->row_col, o->row_given, &r->cols.row))
                return -1;
        return 0;
}

/* Counts the records of the labels file, for the progress bar. */
static size_t count_records(const char *path, long long limit) {
        char errbuf[256];
        struct csv_reader *c = csv_open(path, errbuf, sizeof(errbuf));
        size_t n = 0;

        if (!c)
                return 0;
        while (csv_next(c, errbuf, sizeof(errbuf)) == 1 &&
               (limit < 0 || n < (size_t)limit))
                n++;
        csv_close(c);
        return n;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m,
                        void *opaque) {
        struct delivery *dr = opaque;

        (void)rk;
        if (!m->err) {
                dr->delivered++;
                return;
        }
        if (!dr->failed)
                dr->first_err = m->err;
        dr->failed++;
}

/*
 * Fetches the topic's metadata once, so that the first message does not
 * wait for the periodic refresh, and fails early when the brokers or the
 * topic are not there.
 */
static int warm_up(struct replay *r) {
        const struct rd_kafka_metadata *md;
        rd_kafka_topic_t *rkt;
        rd_kafka_resp_err_t err;

        rkt = rd_kafka_topic_new(r->rk, r->o->topic, NULL);
        if (!rkt) {
                fprintf(stderr, "confidentctl replay: topic '%s': %s\n",
                        r->o->topic,
                        rd_kafka_err2str(rd_kafka_last_error()));
                return -1;
        }
        err = rd_kafka_metadata(r->rk, 0, rkt, &md, METADATA_TIMEOUT_MS);
        rd_kafka_topic_destroy(rkt);
        if (err) {
                fprintf(stderr,
                        "confidentctl replay: metadata from %s: %s\n",
                        r->o->brokers, rd_kafka_err2str(err));
                return -1;
        }
        err = md->topic_cnt == 1 ? md->topics[0].err
                                 : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
        rd_kafka_metadata_destroy(md);
        if (err) {
                fprintf(stderr, "confidentctl replay: topic '%s': %s\n",
                        r->o->topic, rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

static int open_producer(struct replay *r) {
        static const char *const defaults[][2] = {{"linger.ms", "5"}};
        char errstr[512];
        rd_kafka_conf_t *conf;

        conf = ctl_kafka_conf("confidentctl replay", r->o->brokers,
                              defaults, 1, r->o->props, r->o->nprops);
        if (!conf)
                return -1;
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, &r->dr);
        /* rd_kafka_new() takes conf on success only. */
        r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!r->rk) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, "confidentctl replay: producer: %s\n",
                        errstr);
                return -1;
        }
        return warm_up(r);
}

/* Whether s is exactly the decimal form of an int64 (so "007" is not). */
static bool is_canonical_int(const char *s, long long *ret) {
        char buf[32];

        if (csv_parse_i64(s, ret))
                return false;
        snprintf(buf, sizeof(buf), "%lld", *ret);
        return !strcmp(buf, s);
}

/* Row of the .npy for the current record (record index rec). */
static int record_row(const struct replay *r, size_t rec, size_t *ret) {
        long long v;

        if (r->cols.row < 0) {
                v = (long long)rec;
        } else if (csv_parse_i64(csv_field(r->csv, (size_t)r->cols.row),
                                 &v)) {
                fprintf(stderr,
                        "confidentctl replay: %s:%zu: column '%s': '%s' is "
                        "not an integer\n",
                        r->o->labels, csv_line(r->csv), r->o->row_col,
                        csv_field(r->csv, (size_t)r->cols.row));
                return -1;
        }
        if (v < 0 || (unsigned long long)v >= r->probs.rows) {
                fprintf(stderr,
                        "confidentctl replay: %s:%zu: row %lld outside %s "
                        "(%zu rows)\n",
                        r->o->labels, csv_line(r->csv), v, r->o->probs,
                        r->probs.rows);
                return -1;
        }
        *ret = (size_t)v;
        return 0;
}

/* Encodes the current record into r->sbuf.  Returns 0 or -1 (printed). */
static int encode_record(struct replay *r, size_t rec) {
        struct msg_encode_args a = {0};
        const char *id = csv_field(r->csv, (size_t)r->cols.id);
        const char *label = csv_field(r->csv, (size_t)r->cols.label);
        long long v;
        size_t row, c;
        int rc;

        if (!*id || !*label) {
                fprintf(stderr, "confidentctl replay: %s:%zu: empty %s\n",
                        r->o->labels, csv_line(r->csv),
                        !*id ? r->o->id_col : r->o->label_col);
                return -1;
        }
        if (record_row(r, rec, &row))
                return -1;
        for (c = 0; c < r->probs.cols; c++)
                r->row_buf[c] = npy_get(&r->probs, row, c);

        if (is_canonical_int(id, &v))
                a.id_int = v;
        else
                a.id_str = id;
        if (csv_parse_i64(label, &v) == 0)
                a.label = v;
        else
                a.label_name = label;
        if (r->cols.annotator >= 0 &&
            *csv_field(r->csv, (size_t)r->cols.annotator))
                a.annotator = csv_field(r->csv, (size_t)r->cols.annotator);
        a.probs = r->row_buf;
        a.k = (unsigned)r->probs.cols;
        a.use_float32 = r->o->float32;

        msgpack_sbuffer_clear(&r->sbuf);
        rc = msg_encode_label(&r->sbuf, &a);
        if (rc) {
                fprintf(stderr, "confidentctl replay: %s:%zu: encoding: %s\n",
                        r->o->labels, csv_line(r->csv), msg_strerror(rc));
                return -1;
        }
        return 0;
}

/* Queues the encoded message, waiting while the local queue is full. */
static int produce_record(struct replay *r) {
        const char *id = csv_field(r->csv, (size_t)r->cols.id);
        rd_kafka_resp_err_t err;

        for (;;) {
                err = rd_kafka_producev(
                        r->rk, RD_KAFKA_V_TOPIC(r->o->topic),
                        RD_KAFKA_V_KEY(id, strlen(id)),
                        RD_KAFKA_V_VALUE(r->sbuf.data, r->sbuf.size),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_END);
                if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || ctl_stop_signal)
                        break;
                /* Serving delivery reports makes room. */
                rd_kafka_poll(r->rk, 100);
        }
        if (err) {
                fprintf(stderr, "confidentctl replay: %s:%zu: produce: %s\n",
                        r->o->labels, csv_line(r->csv),
                        rd_kafka_err2str(err));
                return -1;
        }
        r->produced++;
        return 0;
}

/* Sleeps (serving callbacks) until item r->produced is due. */
static void pace(struct replay *r) {
        double due, wait_s;

        if (r->o->rate <= 0) {
                if (r->produced % 1024 == 0)
                        rd_kafka_poll(r->rk, 0);
                return;
        }
        due = r->t_start + (double)r->produced / r->o->rate;
        while (!ctl_stop_signal && (wait_s = due - now_s()) > 0.001)
                rd_kafka_poll(r->rk, (int)(wait_s * 1000));
        rd_kafka_poll(r->rk, 0);
}

static void show_progress(struct replay *r, bool final) {
        double t = now_s(), elapsed = t - r->t_start;

        if (!r->progress || (!final && t - r->t_progress < PROGRESS_EVERY_S))
                return;
        r->t_progress = t;
        fprintf(stderr, "\r%zu items  %.0f items/s", r->produced,
                elapsed > 0 ? (double)r->produced / elapsed : 0.0);
        if (r->total)
                fprintf(stderr, "  %5.1f%%",
                        100.0 * (double)r->produced / (double)r->total);
        fputs(final ? "\n" : "   ", stderr);
}

/* Reads, encodes and queues every record.  Returns 0 or -1 (printed). */
static int produce_all(struct replay *r) {
        char errbuf[512];
        size_t rec;
        int rc;

        for (rec = 0; !ctl_stop_signal; rec++) {
                if (r->o->limit >= 0 && rec >= (size_t)r->o->limit)
                        break;
                rc = csv_next(r->csv, errbuf, sizeof(errbuf));
                if (rc == 0)
                        break;
                if (rc < 0) {
                        fprintf(stderr, "confidentctl replay: %s\n", errbuf);
                        return -1;
                }
                if (encode_record(r, rec) || produce_record(r))
                        return -1;
                pace(r);
                show_progress(r, false);
        }
        return 0;
}

/* Waits for outstanding deliveries; after a signal, for a bounded time. */
static void flush_all(struct replay *r) {
        double give_up = now_s() + STOP_FLUSH_MS / 1000.0;

        while (rd_kafka_outq_len(r->rk) > 0) {
                /* Without a signal, message.timeout.ms bounds this. */
                if (ctl_stop_signal && now_s() > give_up)
                        break;
                rd_kafka_flush(r->rk, 500);
        }
}

/* The summary line; failed: the run stopped on an input error. */
static void report(const struct replay *r, double elapsed, bool failed) {
        size_t lost = r->produced - r->dr.delivered - r->dr.failed;

        fprintf(stderr,
                "level=%s event=replay_done topic=%s items=%zu "
                "delivered=%zu failed=%zu undelivered=%zu elapsed_s=%.3f "
                "items_per_s=%.2f",
                failed || r->dr.failed || lost || ctl_stop_signal ? "error"
                                                              : "info",
                r->o->topic, r->produced, r->dr.delivered, r->dr.failed,
                lost, elapsed,
                elapsed > 0 ? (double)r->dr.delivered / elapsed : 0.0);
        if (r->dr.failed)
                fprintf(stderr, " first_err=%s",
                        rd_kafka_err2name(r->dr.first_err));
        if (ctl_stop_signal)
                fprintf(stderr, " interrupted=%s",
                        ctl_stop_signal == SIGINT ? "INT" : "TERM");
        fputc('\n', stderr);
}

static void replay_release(struct replay *r) {
        if (r->rk)
                rd_kafka_destroy(r->rk);
        msgpack_sbuffer_destroy(&r->sbuf);
        csv_close(r->csv);
        free(r->row_buf);
        npy_array_free(&r->probs);
}

int cmd_replay(int argc, char **argv) {
        struct replay_opts o;
        struct replay r = {.o = &o};
        int rc;

        rc = parse_args(argc, argv, &o);
        if (rc) {
                usage(rc > 0 ? stdout : stderr);
                return rc > 0 ? 0 : 2;
        }
        msgpack_sbuffer_init(&r.sbuf);
        if (ctl_catch_stop_signals("replay") || open_inputs(&r) ||
            open_producer(&r)) {
                rc = 1;
                goto out_release;
        }

        r.progress = isatty(STDERR_FILENO);
        if (r.progress)
                r.total = count_records(o.labels, o.limit);
        r.t_start = now_s();
        rc = produce_all(&r) ? 1 : 0;
        flush_all(&r);
        show_progress(&r, true);
        report(&r, now_s() - r.t_start, rc != 0);
        if (r.dr.failed || r.dr.delivered != r.produced || ctl_stop_signal)
                rc = 1;

out_release:
        replay_release(&r);
        return rc;
}
