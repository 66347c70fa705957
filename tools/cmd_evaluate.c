/*
 * cmd_evaluate.c - `confidentctl evaluate`: reads the daemon's clean,
 * suspect and dead-letter topics back from the beginning and scores the
 * suspect route against ground truth.
 *
 * Every id seen is kept in a hash table (ids are compared as text: an
 * integer id as its decimal form), so memory grows with the number of
 * distinct ids, ~100 bytes each.
 */
#include "cmds.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "cli.h"
#include "ctl_signal.h"
#include "csvread.h"
#include "ctl_kafka.h"
#include "msg.h"

#define METADATA_TIMEOUT_MS 10000
#define POLL_MS             100
#define MAX_LISTED_IDS      10 /* ids printed per problem list */
#define ID_MAX_BYTES        511 /* longer ids are cut (see take_message) */

#define HDR_VERDICT "confidentd-verdict"
#define HDR_REASON  "confidentd-reason"

enum role { ROLE_CLEAN = 0, ROLE_SUSPECT, ROLE_DEAD_LETTER, ROLE_COUNT };

/* As the daemon names its routes; used in output and --verdicts-out. */
static const char *const role_names[ROLE_COUNT] = {"clean", "suspect",
                                                   "dead_letter"};

struct eval_opts {
        const char *brokers, *input_topic;
        const char *topics[ROLE_COUNT];
        long long expect; /* 0: none */
        long long idle_ms;
        const char *truth, *id_col, *label_col, *truth_col;
        const char *verdicts_out;
        const char *props[CTL_KAFKA_MAX_PROPERTIES];
        size_t nprops;
};

/* One distinct id: from the truth file, the topics, or both. */
struct id_entry {
        char *id;
        unsigned seen;   /* output messages carrying it */
        bool in_truth;   /* listed in --truth */
        bool is_error;   /* label != truth */
        bool flagged;    /* seen on the suspect topic */
};

/* Ids in first-seen order, indexed by an open-addressing hash table. */
struct id_table {
        struct id_entry *v;
        size_t n, cap;
        uint32_t *slots; /* entry index + 1; 0 is empty */
        size_t nslots;   /* power of two, at least 2 * n */
};

/* One output message, for --verdicts-out. */
struct verdict_row {
        int role;
        int32_t partition;
        int64_t offset;
        char *id, *verdict, *reason;
};

struct partition_state {
        bool eof;    /* at the end when last looked, no message since */
        int64_t low; /* first offset kept by the broker; -1 unknown */
};

struct evaluation {
        const struct eval_opts *o;
        struct id_table ids;
        struct msg_decoder *dec;
        rd_kafka_t *rk;
        struct partition_state *parts;
        size_t nparts, nparts_eof;
        size_t nparts_trimmed; /* partitions whose low watermark is > 0 */
        int part_base[ROLE_COUNT]; /* index of partition 0 in parts */
        int part_count[ROLE_COUNT];
        size_t count[ROLE_COUNT];
        size_t items, no_id, undecodable, verdict_mismatch;
        int64_t ts_first, ts_last; /* message timestamps, ms; -1 unset */
        struct verdict_row *rows;
        size_t nrows, caprows;
};

static void usage(FILE *out) {
        fprintf(out,
                "usage: confidentctl evaluate --brokers ADDR "
                "(--input-topic T | --clean T --suspect T\n"
                "                             --dead-letter T) [options]\n"
                "\n"
                "Reads the output topics from the beginning (assign(), "
                "read_committed) until\n"
                "--expect items were seen and every partition is at its "
                "end, or until no\n"
                "message arrived for --idle-ms.  Without --expect it stops "
                "as soon as every\n"
                "partition is at its end.  The id comes from the message "
                "(or, when it cannot\n"
                "be decoded, from the key); the verdict from the "
                "confidentd-verdict header.\n"
                "\n"
                "  --brokers ADDR         bootstrap.servers\n"
                "  --input-topic T        sets the defaults T.clean, "
                "T.suspect, T.dead-letter\n"
                "  --clean T, --suspect T, --dead-letter T\n"
                "  --expect N             items to wait for\n"
                "  --idle-ms MS           give up after MS without a "
                "message (default 5000)\n"
                "  --truth FILE.csv       ground truth: an item is a true "
                "label error iff\n"
                "                         its label column differs from "
                "its truth column\n"
                "  --id-column NAME       (default id)\n"
                "  --label-column NAME    (default label)\n"
                "  --truth-column NAME    (default true_label)\n"
                "  --verdicts-out FILE    write id,topic,verdict,reason per "
                "message, in\n"
                "                         topic (clean, suspect, "
                "dead_letter), partition,\n"
                "                         offset order; CSV quoting "
                "where needed\n"
                "  --property NAME=VALUE  librdkafka consumer property, "
                "repeatable (not\n"
                "                         bootstrap.servers or "
                "metadata.broker.list)\n"
                "\n"
                "Ids are compared and printed as text: bytes below 0x20, "
                "0x7f and '\\' are\n"
                "written \\xHH (an id of one NUL byte is \\x00, the empty "
                "id is empty).\n"
                "\n"
                "Prints counts per topic, missing, duplicated and unknown "
                "ids (unknown: not\n"
                "in --truth; n/a without it), partitions whose oldest "
                "messages the broker\n"
                "dropped (missing ids may then be retention, not loss), "
                "the flag rate,\n"
                "and precision, recall and F1 of the suspect topic against "
                "the truth (0 when\n"
                "undefined or without --truth).  items_per_s is the "
                "daemon's output rate:\n"
                "items divided by the time between the first and the last "
                "output message\n"
                "timestamps.  The last line is\n"
                "  items=N clean=N suspect=N dead_letter=N precision=P "
                "recall=R f1=F items_per_s=X\n"
                "Exit status: 0; 1 when an id is missing or duplicated, "
                "fewer than --expect\n"
                "items arrived, or on an error; 2 usage error.\n");
}

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the id table ---------------------------------------------------- */

/*
 * Writes the len bytes of id into buf as text: bytes below 0x20, 0x7f and
 * '\\' become \xHH, so that every id has one printable form and an id of
 * one NUL byte ("\x00") differs from the empty id.  size must be at
 * least 4 * len + 1.  Returns the length written.
 */
static size_t escape_id(const char *id, size_t len, char *buf, size_t size) {
        static const char hex[] = "0123456789abcdef";
        size_t i, n = 0;

        for (i = 0; i < len && n + 5 <= size; i++) {
                unsigned char c = (unsigned char)id[i];

                if (c >= 0x20 && c != 0x7f && c != '\\') {
                        buf[n++] = (char)c;
                        continue;
                }
                buf[n++] = '\\';
                buf[n++] = 'x';
                buf[n++] = hex[c >> 4];
                buf[n++] = hex[c & 15];
        }
        buf[n] = '\0';
        return n;
}

static uint32_t hash_bytes(const char *s, size_t len) {
        uint32_t h = 2166136261u; /* FNV-1a */
        size_t i;

        for (i = 0; i < len; i++) {
                h ^= (unsigned char)s[i];
                h *= 16777619u;
        }
        return h;
}

static size_t slot_of(const struct id_table *t, const char *id, size_t len,
                      bool *found) {
        size_t mask = t->nslots - 1;
        size_t i = hash_bytes(id, len) & mask;

        /* Terminates: the table is never more than half full. */
        while (t->slots[i]) {
                const char *e = t->v[t->slots[i] - 1].id;

                if (!strncmp(e, id, len) && e[len] == '\0') {
                        *found = true;
                        return i;
                }
                i = (i + 1) & mask;
        }
        *found = false;
        return i;
}

static int table_grow(struct id_table *t) {
        size_t nslots = t->nslots ? t->nslots * 2 : 1024;
        uint32_t *slots = calloc(nslots, sizeof(*slots));
        size_t i;

        if (!slots)
                return -1;
        free(t->slots);
        t->slots = slots;
        t->nslots = nslots;
        for (i = 0; i < t->n; i++) {
                bool found;
                size_t s = slot_of(t, t->v[i].id, strlen(t->v[i].id),
                                   &found);

                t->slots[s] = (uint32_t)(i + 1);
        }
        return 0;
}

/* Finds id (len bytes, not NUL-terminated) or adds it.  NULL: no memory. */
static struct id_entry *table_get(struct id_table *t, const char *id,
                                  size_t len, bool *ret_added) {
        struct id_entry *e;
        bool found;
        size_t s;

        if ((t->n + 1) * 2 > t->nslots &&
            (t->n + 1 >= UINT32_MAX || table_grow(t)))
                return NULL;
        s = slot_of(t, id, len, &found);
        *ret_added = !found;
        if (found)
                return &t->v[t->slots[s] - 1];
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 1024;
                struct id_entry *v = realloc(t->v, cap * sizeof(*v));

                if (!v)
                        return NULL;
                t->v = v;
                t->cap = cap;
        }
        e = &t->v[t->n];
        memset(e, 0, sizeof(*e));
        e->id = malloc(len + 1);
        if (!e->id)
                return NULL;
        memcpy(e->id, id, len);
        e->id[len] = '\0';
        t->slots[s] = (uint32_t)(++t->n);
        return e;
}

static void table_release(struct id_table *t) {
        size_t i;

        for (i = 0; i < t->n; i++)
                free(t->v[i].id);
        free(t->v);
        free(t->slots);
}

/* ---- options --------------------------------------------------------- */

static int parse_count(const char *opt, const char *s, long long *ret) {
        if (csv_parse_i64(s, ret) == 0 && *ret >= 0)
                return 0;
        fprintf(stderr,
                "confidentctl evaluate: %s: '%s' is not a whole number "
                ">= 0\n",
                opt, s);
        return -1;
}

static int set_option(struct eval_opts *o, int c, const char *arg) {
        switch (c) {
        case 'b': o->brokers = arg; break;
        case 'I': o->input_topic = arg; break;
        case 'c': o->topics[ROLE_CLEAN] = arg; break;
        case 's': o->topics[ROLE_SUSPECT] = arg; break;
        case 'd': o->topics[ROLE_DEAD_LETTER] = arg; break;
        case 'e': return parse_count("--expect", arg, &o->expect);
        case 'w': return parse_count("--idle-ms", arg, &o->idle_ms);
        case 'T': o->truth = arg; break;
        case 'i': o->id_col = arg; break;
        case 'l': o->label_col = arg; break;
        case 't': o->truth_col = arg; break;
        case 'V': o->verdicts_out = arg; break;
        case 'p':
                if (ctl_kafka_add_property("evaluate", arg, o->props,
                                           &o->nprops))
                        return -1;
                break;
        default:
                return -1;
        }
        return 0;
}

/* Fills unset topics from --input-topic.  names: storage for them. */
static int default_topics(struct eval_opts *o,
                          char names[ROLE_COUNT][256]) {
        static const char *const suffix[ROLE_COUNT] = {".clean", ".suspect",
                                                       ".dead-letter"};
        int r;

        for (r = 0; r < ROLE_COUNT; r++) {
                if (o->topics[r])
                        continue;
                if (!o->input_topic) {
                        fprintf(stderr,
                                "confidentctl evaluate: no %s topic: give "
                                "--input-topic or --clean, --suspect and "
                                "--dead-letter\n",
                                role_names[r]);
                        return -1;
                }
                snprintf(names[r], sizeof(names[r]), "%s%s",
                         o->input_topic, suffix[r]);
                o->topics[r] = names[r];
        }
        return 0;
}

/* Returns 0, 1 for --help, or -1 on a usage error (message printed). */
static int parse_args(int argc, char **argv, struct eval_opts *o,
                      char names[ROLE_COUNT][256]) {
        static const struct option longopts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"input-topic", required_argument, NULL, 'I'},
                {"clean", required_argument, NULL, 'c'},
                {"suspect", required_argument, NULL, 's'},
                {"dead-letter", required_argument, NULL, 'd'},
                {"expect", required_argument, NULL, 'e'},
                {"idle-ms", required_argument, NULL, 'w'},
                {"truth", required_argument, NULL, 'T'},
                {"id-column", required_argument, NULL, 'i'},
                {"label-column", required_argument, NULL, 'l'},
                {"truth-column", required_argument, NULL, 't'},
                {"verdicts-out", required_argument, NULL, 'V'},
                {"property", required_argument, NULL, 'p'},
                {"help", no_argument, NULL, 'h'},
                {NULL, 0, NULL, 0},
        };
        int c;

        memset(o, 0, sizeof(*o));
        o->idle_ms = 5000;
        o->id_col = "id";
        o->label_col = "label";
        o->truth_col = "true_label";
        optind = 1;
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
                if (c == 'h')
                        return 1;
                if (set_option(o, c, optarg))
                        return -1;
        }
        if (optind < argc) {
                fprintf(stderr,
                        "confidentctl evaluate: unexpected argument '%s'\n",
                        argv[optind]);
                return -1;
        }
        if (!o->brokers) {
                fprintf(stderr, "confidentctl evaluate: --brokers is "
                                "required\n");
                return -1;
        }
        return default_topics(o, names);
}

/* ---- ground truth ---------------------------------------------------- */

static int truth_columns(struct csv_reader *csv, const struct eval_opts *o,
                         int col[3]) {
        const char *names[3] = {o->id_col, o->label_col, o->truth_col};
        int i;

        for (i = 0; i < 3; i++) {
                col[i] = csv_column(csv, names[i]);
                if (col[i] < 0) {
                        fprintf(stderr,
                                "confidentctl evaluate: %s:1: no column "
                                "'%s'\n",
                                o->truth, names[i]);
                        return -1;
                }
        }
        return 0;
}

static int truth_record(struct evaluation *ev, struct csv_reader *csv,
                        const int col[3]) {
        const char *raw = csv_field(csv, (size_t)col[0]);
        char id[4 * ID_MAX_BYTES + 1];
        struct id_entry *e;
        bool added;
        size_t len = strlen(raw);

        if (len > ID_MAX_BYTES) {
                fprintf(stderr,
                        "confidentctl evaluate: %s:%zu: id longer than %d "
                        "bytes\n",
                        ev->o->truth, csv_line(csv), ID_MAX_BYTES);
                return -1;
        }
        len = escape_id(raw, len, id, sizeof(id));
        e = table_get(&ev->ids, id, len, &added);
        if (!e) {
                fprintf(stderr, "confidentctl evaluate: out of memory\n");
                return -1;
        }
        if (!added || !*id) {
                fprintf(stderr,
                        "confidentctl evaluate: %s:%zu: %s id '%s'\n",
                        ev->o->truth, csv_line(csv),
                        *id ? "repeated" : "empty", id);
                return -1;
        }
        e->in_truth = true;
        e->is_error = strcmp(csv_field(csv, (size_t)col[1]),
                             csv_field(csv, (size_t)col[2])) != 0;
        return 0;
}

static int load_truth(struct evaluation *ev) {
        char errbuf[512];
        struct csv_reader *csv;
        int col[3], rc;

        if (!ev->o->truth)
                return 0;
        csv = csv_open(ev->o->truth, errbuf, sizeof(errbuf));
        if (!csv) {
                fprintf(stderr, "confidentctl evaluate: %s\n", errbuf);
                return -1;
        }
        rc = truth_columns(csv, ev->o, col);
        while (rc == 0) {
                rc = csv_next(csv, errbuf, sizeof(errbuf));
                if (rc < 0)
                        fprintf(stderr, "confidentctl evaluate: %s\n",
                                errbuf);
                if (rc <= 0)
                        break;
                rc = truth_record(ev, csv, col);
        }
        csv_close(csv);
        return rc;
}

/* ---- the consumer ---------------------------------------------------- */

/*
 * group.id is required by rd_kafka_consumer_poll() but never joined:
 * partitions are assigned.  The fetch settings keep the mock broker fast
 * (empty fetches are held fetch.wait.max.ms; a full queue is looked at
 * again only every second).
 */
static int open_consumer(struct evaluation *ev) {
        static const char *const defaults[][2] = {
                {"group.id", "confidentctl-evaluate"},
                {"enable.auto.commit", "false"},
                {"enable.partition.eof", "true"},
                {"isolation.level", "read_committed"},
                {"fetch.wait.max.ms", "10"},
                {"queued.min.messages", "1000000"},
        };
        char errstr[512];
        rd_kafka_conf_t *conf;

        conf = ctl_kafka_conf("confidentctl evaluate", ev->o->brokers,
                              defaults, sizeof(defaults) / sizeof(defaults[0]),
                              ev->o->props, ev->o->nprops);
        if (!conf)
                return -1;
        /* rd_kafka_new() takes conf on success only. */
        ev->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr,
                              sizeof(errstr));
        if (!ev->rk) {
                rd_kafka_conf_destroy(conf);
                fprintf(stderr, "confidentctl evaluate: consumer: %s\n",
                        errstr);
                return -1;
        }
        return 0;
}

/*
 * Partition count of a topic in md; 0, with a warning, when it is not
 * there.  All topics are listed rather than asked for by name, because a
 * request by name may auto-create the topic (the mock broker does).
 */
static int topic_partitions(const struct rd_kafka_metadata *md,
                            const char *topic) {
        int i;

        for (i = 0; i < md->topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *t = &md->topics[i];

                if (strcmp(t->topic, topic))
                        continue;
                if (!t->err)
                        return t->partition_cnt;
                fprintf(stderr,
                        "level=warn event=topic_error topic=%s err=%s "
                        "action=count_as_empty\n",
                        topic, rd_kafka_err2name(t->err));
                return 0;
        }
        fprintf(stderr,
                "level=warn event=topic_missing topic=%s "
                "action=count_as_empty\n",
                topic);
        return 0;
}

/* Reads the partition counts of the three topics. */
static int count_partitions(struct evaluation *ev) {
        const struct rd_kafka_metadata *md;
        rd_kafka_resp_err_t err;
        int r;

        err = rd_kafka_metadata(ev->rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
        if (err) {
                fprintf(stderr,
                        "confidentctl evaluate: metadata from %s: %s\n",
                        ev->o->brokers, rd_kafka_err2str(err));
                return -1;
        }
        for (r = 0; r < ROLE_COUNT; r++) {
                ev->part_count[r] = topic_partitions(md, ev->o->topics[r]);
                ev->part_base[r] = (int)ev->nparts;
                ev->nparts += (size_t)ev->part_count[r];
        }
        rd_kafka_metadata_destroy(md);
        return 0;
}

/* The warning about a partition that starts after offset 0. */
static void print_trimmed(FILE *f, const char *topic, int partition,
                          int64_t low) {
        fprintf(f,
                "warning: topic %s partition %d starts at offset %" PRId64
                ": the broker dropped older messages; missing ids may be "
                "retention, not loss\n",
                topic, partition, low);
}

/*
 * Reads the low watermark of every partition: one above 0 means the
 * broker no longer has the oldest messages (retention, or the mock
 * broker's 5 MiB per partition), which evaluate must not call lost.
 */
static void read_low_watermarks(struct evaluation *ev) {
        int64_t low, high;
        int r, p;

        for (r = 0; r < ROLE_COUNT; r++) {
                for (p = 0; p < ev->part_count[r]; p++) {
                        struct partition_state *ps =
                                &ev->parts[ev->part_base[r] + p];
                        rd_kafka_resp_err_t err =
                                rd_kafka_query_watermark_offsets(
                                        ev->rk, ev->o->topics[r], p, &low,
                                        &high, METADATA_TIMEOUT_MS);

                        ps->low = err ? -1 : low;
                        if (err)
                                fprintf(stderr,
                                        "level=warn event=watermark_failed "
                                        "topic=%s partition=%d err=%s "
                                        "action=continue\n",
                                        ev->o->topics[r], p,
                                        rd_kafka_err2name(err));
                        if (err || low <= 0)
                                continue;
                        ev->nparts_trimmed++;
                        print_trimmed(stderr, ev->o->topics[r], p, low);
                }
        }
}

/* Assigns every partition of the three topics from the beginning. */
static int assign_all(struct evaluation *ev) {
        rd_kafka_topic_partition_list_t *list;
        rd_kafka_resp_err_t err;
        int r, p;

        if (count_partitions(ev))
                return -1;
        ev->parts = calloc(ev->nparts ? ev->nparts : 1, sizeof(*ev->parts));
        list = rd_kafka_topic_partition_list_new((int)ev->nparts);
        if (!ev->parts || !list) {
                fprintf(stderr, "confidentctl evaluate: out of memory\n");
                if (list)
                        rd_kafka_topic_partition_list_destroy(list);
                return -1;
        }
        for (r = 0; r < ROLE_COUNT; r++)
                for (p = 0; p < ev->part_count[r]; p++)
                        rd_kafka_topic_partition_list_add(
                                list, ev->o->topics[r], p)
                                ->offset = RD_KAFKA_OFFSET_BEGINNING;
        read_low_watermarks(ev);
        err = rd_kafka_assign(ev->rk, list);
        rd_kafka_topic_partition_list_destroy(list);
        if (err) {
                fprintf(stderr, "confidentctl evaluate: assign: %s\n",
                        rd_kafka_err2str(err));
                return -1;
        }
        return 0;
}

/* ---- messages -------------------------------------------------------- */

static int role_of(const struct evaluation *ev, const char *topic) {
        int r;

        for (r = 0; r < ROLE_COUNT; r++)
                if (!strcmp(topic, ev->o->topics[r]))
                        return r;
        return -1;
}

static struct partition_state *part_of(struct evaluation *ev, int role,
                                       int32_t partition) {
        if (role < 0 || partition < 0 || partition >= ev->part_count[role])
                return NULL;
        return &ev->parts[ev->part_base[role] + partition];
}

static void set_eof(struct evaluation *ev, struct partition_state *ps,
                    bool eof) {
        if (!ps || ps->eof == eof)
                return;
        ps->eof = eof;
        if (eof)
                ev->nparts_eof++;
        else
                ev->nparts_eof--;
}

/*
 * Writes the message's id as text into buf.  From the payload when it
 * decodes, else from the key.  Returns its length, or -1 when neither.
 */
static int message_id(struct evaluation *ev, const rd_kafka_message_t *m,
                      char *buf, size_t size, bool *ret_from_key) {
        struct msg_label lab = {0};
        size_t len;

        *ret_from_key = false;
        if (m->payload &&
            msg_decode_id(ev->dec, m->payload, m->len, &lab, NULL) == 0) {
                if (lab.id_kind == MSG_ID_INT)
                        return snprintf(buf, size, "%" PRId64, lab.id_int);
                len = lab.id.len < size - 1 ? lab.id.len : size - 1;
                memcpy(buf, lab.id.ptr, len);
                buf[len] = '\0';
                return (int)len;
        }
        if (!m->key || m->key_len == 0)
                return -1;
        *ret_from_key = true;
        len = m->key_len < size - 1 ? m->key_len : size - 1;
        memcpy(buf, m->key, len);
        buf[len] = '\0';
        return (int)len;
}

/* A header's value as a new string ("" when absent); NULL: no memory. */
static char *header_dup(const rd_kafka_message_t *m, const char *name) {
        rd_kafka_headers_t *hdrs;
        const void *val = NULL;
        size_t size = 0;
        char *s;

        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_header_get_last(hdrs, name, &val, &size);
        s = malloc(size + 1);
        if (!s)
                return NULL;
        if (size)
                memcpy(s, val, size);
        s[size] = '\0';
        return s;
}

static int add_row(struct evaluation *ev, int role,
                   const rd_kafka_message_t *m, const char *id,
                   const char *verdict) {
        struct verdict_row *row;

        if (ev->nrows == ev->caprows) {
                size_t cap = ev->caprows ? ev->caprows * 2 : 4096;
                struct verdict_row *v = realloc(ev->rows, cap * sizeof(*v));

                if (!v)
                        return -1;
                ev->rows = v;
                ev->caprows = cap;
        }
        row = &ev->rows[ev->nrows];
        row->role = role;
        row->partition = m->partition;
        row->offset = m->offset;
        row->id = strdup(id);
        row->verdict = strdup(verdict);
        row->reason = header_dup(m, HDR_REASON);
        if (!row->id || !row->verdict || !row->reason) {
                free(row->id);
                free(row->verdict);
                free(row->reason);
                return -1;
        }
        ev->nrows++;
        return 0;
}

static void note_timestamp(struct evaluation *ev,
                           const rd_kafka_message_t *m) {
        int64_t ts = rd_kafka_message_timestamp(m, NULL);

        if (ts < 0)
                return;
        if (ev->ts_first < 0 || ts < ev->ts_first)
                ev->ts_first = ts;
        if (ts > ev->ts_last)
                ev->ts_last = ts;
}

/* Counts one output message.  Returns 0, or -1 when out of memory. */
static int take_message(struct evaluation *ev, int role,
                        const rd_kafka_message_t *m) {
        /* TODO: ids longer than ID_MAX_BYTES are cut there; two such ids
         * with the same first bytes count as one (duplicated) id. */
        char raw[ID_MAX_BYTES + 1], id[4 * ID_MAX_BYTES + 1];
        char *verdict;
        struct id_entry *e;
        bool from_key, added;
        int len = message_id(ev, m, raw, sizeof(raw), &from_key);

        ev->items++;
        ev->count[role]++;
        note_timestamp(ev, m);
        if (from_key && role != ROLE_DEAD_LETTER)
                ev->undecodable++;
        if (len < 0) {
                ev->no_id++;
                return 0;
        }
        len = (int)escape_id(raw, (size_t)len, id, sizeof(id));
        e = table_get(&ev->ids, id, (size_t)len, &added);
        verdict = header_dup(m, HDR_VERDICT);
        if (!e || !verdict) {
                free(verdict);
                return -1;
        }
        e->seen++;
        if (role == ROLE_SUSPECT)
                e->flagged = true;
        if (role != ROLE_DEAD_LETTER && strcmp(verdict, role_names[role]))
                ev->verdict_mismatch++;
        if (ev->o->verdicts_out && add_row(ev, role, m, id, verdict)) {
                free(verdict);
                return -1;
        }
        free(verdict);
        return 0;
}

static bool finished(const struct evaluation *ev) {
        return ev->items >= (size_t)ev->o->expect &&
               ev->nparts_eof == ev->nparts;
}

/* Handles one event from the consumer.  Returns 0, or -1 (printed). */
static int handle(struct evaluation *ev, rd_kafka_message_t *m,
                  double *last_message) {
        const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
        int role = role_of(ev, topic);
        struct partition_state *ps = part_of(ev, role, m->partition);

        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                set_eof(ev, ps, true);
                return 0;
        }
        if (m->err) {
                fprintf(stderr,
                        "level=warn event=consume_error topic=%s "
                        "partition=%" PRId32 " err=\"%s\" action=continue\n",
                        topic, m->partition, rd_kafka_message_errstr(m));
                return 0;
        }
        if (!ps)
                return 0; /* not assigned by us: cannot happen */
        set_eof(ev, ps, false);
        *last_message = now_s();
        if (take_message(ev, role, m)) {
                fprintf(stderr, "confidentctl evaluate: out of memory\n");
                return -1;
        }
        return 0;
}

/* Consumes until finished, idle or a signal.  Returns 0 or -1. */
static int consume(struct evaluation *ev, bool *ret_idle) {
        double last_message = now_s();
        double idle_s = (double)ev->o->idle_ms / 1000.0;

        *ret_idle = false;
        while (!ctl_stop_signal && !finished(ev)) {
                rd_kafka_message_t *m;
                int rc;

                if (now_s() - last_message > idle_s) {
                        *ret_idle = true;
                        break;
                }
                m = rd_kafka_consumer_poll(ev->rk, POLL_MS);
                if (!m)
                        continue;
                rc = handle(ev, m, &last_message);
                rd_kafka_message_destroy(m);
                if (rc)
                        return -1;
        }
        return 0;
}

/* ---- results --------------------------------------------------------- */

static int row_cmp(const void *a, const void *b) {
        const struct verdict_row *x = a, *y = b;

        if (x->role != y->role)
                return x->role < y->role ? -1 : 1;
        if (x->partition != y->partition)
                return x->partition < y->partition ? -1 : 1;
        if (x->offset != y->offset)
                return x->offset < y->offset ? -1 : 1;
        return 0;
}

/* Writes s as a CSV field, quoted when it holds ',', '"' or a line end. */
static void csv_put(FILE *f, const char *s) {
        if (!strpbrk(s, ",\"\r\n")) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"')
                        fputc('"', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

static int write_verdicts(struct evaluation *ev) {
        const char *path = ev->o->verdicts_out;
        FILE *f;
        size_t i;

        if (!path)
                return 0;
        f = fopen(path, "w");
        if (!f) {
                fprintf(stderr, "confidentctl evaluate: %s: %s\n", path,
                        strerror(errno));
                return -1;
        }
        qsort(ev->rows, ev->nrows, sizeof(*ev->rows), row_cmp);
        fputs("id,topic,verdict,reason\n", f);
        for (i = 0; i < ev->nrows; i++) {
                const struct verdict_row *r = &ev->rows[i];

                csv_put(f, r->id);
                fprintf(f, ",%s,", role_names[r->role]);
                csv_put(f, r->verdict);
                fputc(',', f);
                csv_put(f, r->reason);
                fputc('\n', f);
        }
        if (fclose(f)) {
                fprintf(stderr, "confidentctl evaluate: %s: %s\n", path,
                        strerror(errno));
                return -1;
        }
        return 0;
}

enum id_problem { PROBLEM_MISSING, PROBLEM_DUPLICATED, PROBLEM_UNKNOWN };

static bool has_problem(const struct id_entry *e, enum id_problem p) {
        switch (p) {
        case PROBLEM_MISSING:
                return e->in_truth && e->seen == 0;
        case PROBLEM_DUPLICATED:
                return e->seen > 1;
        case PROBLEM_UNKNOWN: /* asked only with --truth */
                return !e->in_truth && e->seen > 0;
        }
        return false;
}

/* Prints "name=N" and the first ids with the problem.  Returns N. */
static size_t print_problem(const struct id_table *t, enum id_problem p,
                            const char *name) {
        size_t i, n = 0;

        for (i = 0; i < t->n; i++)
                n += has_problem(&t->v[i], p);
        printf("%s=%zu", name, n);
        if (n) {
                size_t listed = 0;

                printf(" first_ids=");
                for (i = 0; i < t->n && listed < MAX_LISTED_IDS; i++)
                        if (has_problem(&t->v[i], p))
                                printf("%s%s", listed++ ? "," : "",
                                       t->v[i].id);
        }
        putchar('\n');
        return n;
}

struct scores {
        size_t truth_errors, flagged, true_pos;
        double precision, recall, f1;
};

static void score(const struct id_table *t, struct scores *s) {
        size_t i;

        memset(s, 0, sizeof(*s));
        for (i = 0; i < t->n; i++) {
                const struct id_entry *e = &t->v[i];

                if (!e->in_truth)
                        continue;
                s->truth_errors += e->is_error;
                s->flagged += e->flagged;
                s->true_pos += e->flagged && e->is_error;
        }
        if (s->flagged)
                s->precision = (double)s->true_pos / (double)s->flagged;
        if (s->truth_errors)
                s->recall = (double)s->true_pos / (double)s->truth_errors;
        if (s->precision + s->recall > 0)
                s->f1 = 2 * s->precision * s->recall /
                        (s->precision + s->recall);
}

/* Repeats the low watermark warnings in the report, on stdout. */
static void print_trimmed_partitions(const struct evaluation *ev) {
        int r, p;

        printf("trimmed_partitions=%zu\n", ev->nparts_trimmed);
        for (r = 0; r < ROLE_COUNT; r++) {
                for (p = 0; p < ev->part_count[r]; p++) {
                        const struct partition_state *ps =
                                &ev->parts[ev->part_base[r] + p];

                        if (ps->low > 0)
                                print_trimmed(stdout, ev->o->topics[r], p,
                                              ps->low);
                }
        }
}

/* Prints the report.  Returns the exit status. */
static int report(const struct evaluation *ev, bool idle) {
        const struct eval_opts *o = ev->o;
        double span_s = (double)(ev->ts_last - ev->ts_first) / 1000.0;
        struct scores s;
        size_t missing, duplicated;
        int r;

        for (r = 0; r < ROLE_COUNT; r++)
                printf("topic=%s role=%s partitions=%d messages=%zu\n",
                       o->topics[r], role_names[r], ev->part_count[r],
                       ev->count[r]);
        printf("ended=%s undecodable=%zu no_id=%zu verdict_mismatch=%zu\n",
               ctl_stop_signal ? "signal" : idle ? "idle" : "complete",
               ev->undecodable, ev->no_id, ev->verdict_mismatch);
        missing = print_problem(&ev->ids, PROBLEM_MISSING, "missing");
        duplicated = print_problem(&ev->ids, PROBLEM_DUPLICATED,
                                   "duplicated");
        if (o->truth)
                print_problem(&ev->ids, PROBLEM_UNKNOWN, "unknown");
        else
                printf("unknown=n/a\n"); /* no list to compare with */
        print_trimmed_partitions(ev);
        score(&ev->ids, &s);
        printf("flag_rate=%.4f truth=%s truth_errors=%zu flagged=%zu "
               "true_positives=%zu\n",
               ev->items ? (double)ev->count[ROLE_SUSPECT] /
                                   (double)ev->items
                         : 0.0,
               o->truth ? o->truth : "none", s.truth_errors, s.flagged,
               s.true_pos);
        printf("items=%zu clean=%zu suspect=%zu dead_letter=%zu "
               "precision=%.3f recall=%.3f f1=%.3f items_per_s=%.0f\n",
               ev->items, ev->count[ROLE_CLEAN], ev->count[ROLE_SUSPECT],
               ev->count[ROLE_DEAD_LETTER], s.precision, s.recall, s.f1,
               ev->ts_first >= 0 && span_s > 0 ? (double)ev->items / span_s
                                               : 0.0);
        fflush(stdout);
        if (missing || duplicated || ctl_stop_signal ||
            ev->items < (size_t)o->expect)
                return 1;
        return 0;
}

/* ---- the command ----------------------------------------------------- */

/* msg_decode_id() looks at the id alone; any schema will do. */
static int open_decoder(struct evaluation *ev) {
        const struct msg_schema schema = {.k = 2, .class_names = NULL};
        int rc = msg_decoder_new(&schema, &ev->dec);

        if (rc)
                fprintf(stderr, "confidentctl evaluate: decoder: %s\n",
                        msg_strerror(rc));
        return rc ? -1 : 0;
}

static void close_consumer(struct evaluation *ev) {
        rd_kafka_resp_err_t err;

        if (!ev->rk)
                return;
        err = rd_kafka_consumer_close(ev->rk);
        if (err)
                fprintf(stderr,
                        "level=warn event=consumer_close_failed err=\"%s\"\n",
                        rd_kafka_err2str(err));
        rd_kafka_destroy(ev->rk);
}

static void evaluation_release(struct evaluation *ev) {
        size_t i;

        close_consumer(ev);
        msg_decoder_free(ev->dec);
        for (i = 0; i < ev->nrows; i++) {
                free(ev->rows[i].id);
                free(ev->rows[i].verdict);
                free(ev->rows[i].reason);
        }
        free(ev->rows);
        free(ev->parts);
        table_release(&ev->ids);
}

int cmd_evaluate(int argc, char **argv) {
        char names[ROLE_COUNT][256];
        struct eval_opts o;
        struct evaluation ev = {.o = &o, .ts_first = -1, .ts_last = -1};
        bool idle;
        int rc;

        rc = parse_args(argc, argv, &o, names);
        if (rc) {
                usage(rc > 0 ? stdout : stderr);
                return rc > 0 ? 0 : 2;
        }
        if (ctl_catch_stop_signals("evaluate") || open_decoder(&ev) ||
            load_truth(&ev) || open_consumer(&ev) || assign_all(&ev) ||
            consume(&ev, &idle) || write_verdicts(&ev)) {
                rc = 1;
                goto out_release;
        }
        rc = report(&ev, idle);

out_release:
        evaluation_release(&ev);
        return rc;
}
