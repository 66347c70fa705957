#include "cfd_metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "cfd_log.h"

#define DEFAULT_WINDOW_S 300
#define DEFAULT_HEALTH_S 60
#define DEFAULT_PARTITIONS 1024
#define WINDOW_SLOTS 12      /* the flag window moves in 1/12 steps */
#define REASON_MAX 64
#define HTTP_CONN_LIMIT 8    /* scrapers are few */
#define HTTP_TIMEOUT_S 10
#define JSON_MAX_DEPTH 32

static const char *const verdict_names[CFD_METRICS_VERDICT_COUNT] = {
        "clean", "suspect", "warmup"};

/* Upper bounds of the consume-to-delivery latency buckets, seconds. */
static const double lat_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                    0.025,  0.05,  0.1,    0.25,  0.5,
                                    1,      2.5,   5,      10,    30};
#define N_LAT ((unsigned)(sizeof(lat_bounds) / sizeof(lat_bounds[0])))

struct topic_counts {
        char name[CFD_METRICS_TOPIC_MAX];
        uint64_t consumed, produced;
};

struct reason_count {
        char code[REASON_MAX];
        uint64_t n;
};

/* An annotator as scrapes see it: counts since it entered the top N. */
struct annot_pub {
        char name[CFD_METRICS_ANNOTATOR_MAX + 1];
        uint64_t n[CFD_METRICS_VERDICT_COUNT];
};

/*
 * A tracked annotator.  score ranks by volume as in the Space-Saving
 * algorithm (Metwally et al. 2005): a newcomer that takes the slot of the
 * least-seen untracked row inherits its score, so an annotator that is
 * frequent overall cannot be starved out by a stream of rare ones.
 */
struct annot_row {
        uint64_t hash;
        uint64_t score;
        uint64_t n[CFD_METRICS_VERDICT_COUNT]; /* since exported */
        bool exported;
        unsigned len;
        char name[CFD_METRICS_ANNOTATOR_MAX + 1];
};

/* Counters in the form a scrape reads; the loop keeps a second copy. */
struct counts {
        unsigned n_topics;
        struct topic_counts topics[CFD_METRICS_MAX_TOPICS];
        uint64_t *verdicts;  /* n_classes x CFD_METRICS_VERDICT_COUNT */
        double *thresholds;  /* n_classes */
        bool have_thresholds;
        double *flag_ratio;  /* n_classes + 1 (overall last); NaN: none */
        unsigned n_reasons;
        struct reason_count reasons[CFD_METRICS_MAX_REASONS];
        uint64_t reason_other;
        uint64_t txn_committed, txn_aborted;
        uint64_t commit_ok, commit_failed;
        uint64_t lat[N_LAT + 1]; /* per bucket, not cumulative; +Inf last */
        uint64_t lat_count;
        double lat_sum;
        struct cfd_metrics_lag *lag;
        size_t n_lag;
        struct annot_pub *annot; /* published copy only */
        unsigned n_annot;
        uint64_t annot_other[CFD_METRICS_VERDICT_COUNT];
};

/* Cumulative decided and suspect counts per class at one time. */
struct window_mark {
        int64_t ms;
        uint64_t *decided; /* n_classes + 1 */
        uint64_t *suspect;
};

struct cfd_metrics {
        unsigned k;
        char **class_names;
        char *version;
        unsigned top;
        int64_t window_ms;
        int64_t health_ms;
        size_t max_partitions;

        /* Loop thread only. */
        struct counts w;
        struct cfd_metrics_lag *lag_scratch;
        struct annot_row *rows;
        unsigned n_rows, cap_rows;
        unsigned *order; /* cap_rows, scratch for ranking */
        struct window_mark marks[WINDOW_SLOTS + 1];
        unsigned n_marks, mark_head; /* ring; head = oldest */

        /* Shared with the HTTP thread. */
        pthread_mutex_t lock;
        struct counts pub; /* under lock */
        _Atomic int64_t heartbeat_ms; /* 0: never */

        struct MHD_Daemon *httpd;
        unsigned port;
};

static int64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *errbuf, size_t errsize, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *errbuf, size_t errsize, const char *fmt, ...)
{
        va_list ap;

        if (!errbuf || errsize == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(errbuf, errsize, fmt, ap);
        va_end(ap);
}

/*
 * Allocation of the per-class, per-partition and per-annotator arrays.
 */

static int counts_init(struct counts *c, unsigned k, size_t partitions,
                       unsigned top)
{
        c->verdicts = calloc((size_t)k * CFD_METRICS_VERDICT_COUNT,
                             sizeof(*c->verdicts));
        c->thresholds = calloc(k, sizeof(*c->thresholds));
        c->flag_ratio = calloc((size_t)k + 1, sizeof(*c->flag_ratio));
        c->lag = calloc(partitions ? partitions : 1, sizeof(*c->lag));
        c->annot = calloc(top, sizeof(*c->annot));
        if (!c->verdicts || !c->thresholds || !c->flag_ratio || !c->lag ||
            !c->annot)
                return CFD_METRICS_E_NOMEM;
        for (unsigned i = 0; i <= k; i++)
                c->flag_ratio[i] = NAN;
        return 0;
}

static void counts_release(struct counts *c)
{
        free(c->verdicts);
        free(c->thresholds);
        free(c->flag_ratio);
        free(c->lag);
        free(c->annot);
}

static int window_init(struct cfd_metrics *m)
{
        for (unsigned i = 0; i <= WINDOW_SLOTS; i++) {
                m->marks[i].decided = calloc((size_t)m->k + 1,
                                             sizeof(uint64_t));
                m->marks[i].suspect = calloc((size_t)m->k + 1,
                                             sizeof(uint64_t));
                if (!m->marks[i].decided || !m->marks[i].suspect)
                        return CFD_METRICS_E_NOMEM;
        }
        return 0;
}

static int copy_config(struct cfd_metrics *m,
                       const struct cfd_metrics_config *cfg)
{
        m->k = cfg->n_classes;
        m->top = cfg->top_annotators ? cfg->top_annotators
                                     : CFD_METRICS_TOP_ANNOTATORS;
        m->window_ms = 1000 * (int64_t)(cfg->flag_window_s
                                                ? cfg->flag_window_s
                                                : DEFAULT_WINDOW_S);
        m->health_ms = 1000 * (int64_t)(cfg->health_max_age_s
                                                ? cfg->health_max_age_s
                                                : DEFAULT_HEALTH_S);
        m->max_partitions = cfg->max_partitions ? cfg->max_partitions
                                                : DEFAULT_PARTITIONS;
        m->version = strdup(cfg->version ? cfg->version : "");
        m->class_names = calloc(m->k, sizeof(*m->class_names));
        if (!m->version || !m->class_names)
                return CFD_METRICS_E_NOMEM;
        for (unsigned i = 0; i < m->k; i++) {
                m->class_names[i] = strdup(cfg->class_names[i]);
                if (!m->class_names[i])
                        return CFD_METRICS_E_NOMEM;
        }
        return 0;
}

static int check_config(const struct cfd_metrics_config *cfg)
{
        if (!cfg || !cfg->class_names || cfg->n_classes == 0 ||
            cfg->top_annotators > CFD_METRICS_MAX_ANNOTATORS)
                return CFD_METRICS_E_PARAM;
        for (unsigned i = 0; i < cfg->n_classes; i++)
                if (!cfg->class_names[i])
                        return CFD_METRICS_E_PARAM;
        return 0;
}

static int alloc_state(struct cfd_metrics *m)
{
        int rc;

        /* Four candidates per exported annotator, as Space-Saving needs
         * slack to find the frequent ones; 16 more for small N. */
        m->cap_rows = 4 * m->top + 16;
        m->rows = calloc(m->cap_rows, sizeof(*m->rows));
        m->order = calloc(m->cap_rows, sizeof(*m->order));
        m->lag_scratch = calloc(m->max_partitions, sizeof(*m->lag_scratch));
        if (!m->rows || !m->order || !m->lag_scratch)
                return CFD_METRICS_E_NOMEM;
        rc = counts_init(&m->w, m->k, m->max_partitions, m->top);
        if (rc == 0)
                rc = counts_init(&m->pub, m->k, m->max_partitions, m->top);
        if (rc == 0)
                rc = window_init(m);
        return rc;
}

/*
 * The HTTP side.
 */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
                               const char *type, char *body, size_t len,
                               enum MHD_ResponseMemoryMode mode)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(len, body, mode);
        if (!resp) {
                if (mode == MHD_RESPMEM_MUST_FREE)
                        free(body);
                return MHD_NO;
        }
        if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    type) != MHD_YES ||
            (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                     "GET, HEAD") != MHD_YES)) {
                MHD_destroy_response(resp);
                return MHD_NO;
        }
        ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn,
                                    unsigned status, const char *text)
{
        return respond(conn, status, "text/plain; charset=utf-8",
                       (char *)text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version,
                                  const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        struct cfd_metrics *m = cls;
        char *body;
        size_t len;

        (void)version;
        (void)upload_data;
        (void)upload_data_size;
        (void)con_cls;
        if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
            strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
                return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                                    "method not allowed\n");
        if (strcmp(url, "/healthz") == 0) {
                if (cfd_metrics_healthy_at(m, mono_ms()))
                        return respond_text(conn, MHD_HTTP_OK, "ok\n");
                return respond_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                    "no progress\n");
        }
        if (strcmp(url, "/metrics") != 0)
                return respond_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
        if (cfd_metrics_render(m, &body, &len) < 0)
                return respond_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                    "out of memory\n");
        return respond(conn, MHD_HTTP_OK,
                       "text/plain; version=0.0.4; charset=utf-8", body, len,
                       MHD_RESPMEM_MUST_FREE);
}

/* libmicrohttpd's messages become log lines.  Its format strings are its
 * own literals, which the compiler cannot see through the callback. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void on_http_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512], quoted[600];
        size_t n;

        (void)cls;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
                msg[--n] = '\0';
        cfd_log(CFD_LOG_WARN, "http_error", "msg=%s",
                cfd_log_quote(quoted, sizeof(quoted), msg));
}
#pragma GCC diagnostic pop

/*
 * Splits "host:port" or "[v6]:port"; "localhost" means 127.0.0.1.
 * Writes NUL-terminated copies into host and port.
 */
static int split_listen(const char *addr, char *host, size_t hsize,
                        char *port, size_t psize)
{
        const char *colon, *h = addr;
        size_t hlen;

        if (addr[0] == '[') {
                const char *close = strchr(addr, ']');

                if (!close || close[1] != ':')
                        return CFD_METRICS_E_ADDR;
                h = addr + 1;
                hlen = (size_t)(close - h);
                colon = close + 1;
        } else {
                colon = strrchr(addr, ':');
                if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
                        return CFD_METRICS_E_ADDR;
                hlen = (size_t)(colon - addr);
        }
        if (hlen == 0 || hlen >= hsize || strlen(colon + 1) == 0 ||
            strlen(colon + 1) >= psize)
                return CFD_METRICS_E_ADDR;
        if (hlen == 9 && memcmp(h, "localhost", 9) == 0) {
                snprintf(host, hsize, "127.0.0.1");
        } else {
                memcpy(host, h, hlen);
                host[hlen] = '\0';
        }
        snprintf(port, psize, "%s", colon + 1);
        for (const char *p = port; *p; p++)
                if (*p < '0' || *p > '9')
                        return CFD_METRICS_E_ADDR;
        return atol(port) <= 65535 ? 0 : CFD_METRICS_E_ADDR;
}

/* Binds and listens; the port is read back for port 0. */
static int open_listener(struct cfd_metrics *m, const char *addr,
                         int *ret_fd, bool *ret_v6, char *errbuf,
                         size_t errsize)
{
        struct addrinfo hints = {0}, *ai = NULL;
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        char host[64], port[8];
        int fd = -1, one = 1, rc;

        if (split_listen(addr, host, sizeof(host), port, sizeof(port)) <
            0) {
                set_err(errbuf, errsize, "metrics.listen: '%s' is not "
                        "host:port", addr);
                return CFD_METRICS_E_ADDR;
        }
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
        rc = getaddrinfo(host, port, &hints, &ai);
        if (rc != 0) {
                set_err(errbuf, errsize, "metrics.listen: '%s': %s", addr,
                        gai_strerror(rc));
                return CFD_METRICS_E_ADDR;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0)
                goto out_errno;
        *ret_v6 = ai->ai_family == AF_INET6;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            (*ret_v6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
                                   sizeof(one)) < 0) ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
            listen(fd, 16) < 0 ||
            getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0)
                goto out_errno;
        m->port = ntohs(ss.ss_family == AF_INET6
                                ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                : ((struct sockaddr_in *)&ss)->sin_port);
        freeaddrinfo(ai);
        *ret_fd = fd;
        return 0;

out_errno:
        set_err(errbuf, errsize, "metrics.listen: '%s': %s", addr,
                strerror(errno));
        if (fd >= 0)
                close(fd);
        freeaddrinfo(ai);
        return CFD_METRICS_E_LISTEN;
}

static int start_http(struct cfd_metrics *m, const char *addr,
                      char *errbuf, size_t errsize)
{
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                         MHD_USE_ERROR_LOG;
        bool v6 = false;
        int fd, rc;

        rc = open_listener(m, addr, &fd, &v6, errbuf, errsize);
        if (rc < 0)
                return rc;
        if (v6)
                flags |= MHD_USE_IPv6;
        /* On success libmicrohttpd owns fd and closes it when stopped. */
        m->httpd = MHD_start_daemon(
                flags, 0, NULL, NULL, on_request, m,
                MHD_OPTION_EXTERNAL_LOGGER, on_http_log, (void *)NULL,
                MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONN_LIMIT,
                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
                MHD_OPTION_END);
        if (!m->httpd) {
                close(fd);
                m->port = 0;
                set_err(errbuf, errsize, "metrics.listen: '%s': the HTTP "
                        "server did not start", addr);
                return CFD_METRICS_E_HTTP;
        }
        return 0;
}

int cfd_metrics_new(const struct cfd_metrics_config *cfg,
                    struct cfd_metrics **ret_m, char *errbuf, size_t errsize)
{
        struct cfd_metrics *m;
        int rc;

        if (check_config(cfg) < 0 || !ret_m) {
                set_err(errbuf, errsize, "metrics: invalid configuration");
                return CFD_METRICS_E_PARAM;
        }
        m = calloc(1, sizeof(*m));
        if (!m) {
                set_err(errbuf, errsize, "metrics: out of memory");
                return CFD_METRICS_E_NOMEM;
        }
        atomic_init(&m->heartbeat_ms, 0);
        if (pthread_mutex_init(&m->lock, NULL) != 0) {
                free(m);
                set_err(errbuf, errsize, "metrics: cannot create a mutex");
                return CFD_METRICS_E_NOMEM;
        }
        rc = copy_config(m, cfg);
        if (rc == 0)
                rc = alloc_state(m);
        if (rc < 0) {
                set_err(errbuf, errsize, "metrics: out of memory");
                goto out_free;
        }
        if (cfg->listen && cfg->listen[0]) {
                rc = start_http(m, cfg->listen, errbuf, errsize);
                if (rc < 0)
                        goto out_free;
        }
        *ret_m = m;
        return 0;

out_free:
        cfd_metrics_free(m);
        return rc;
}

void cfd_metrics_free(struct cfd_metrics *m)
{
        if (!m)
                return;
        if (m->httpd)
                MHD_stop_daemon(m->httpd);
        pthread_mutex_destroy(&m->lock);
        for (unsigned i = 0; i <= WINDOW_SLOTS; i++) {
                free(m->marks[i].decided);
                free(m->marks[i].suspect);
        }
        counts_release(&m->w);
        counts_release(&m->pub);
        free(m->lag_scratch);
        free(m->rows);
        free(m->order);
        if (m->class_names)
                for (unsigned i = 0; i < m->k; i++)
                        free(m->class_names[i]);
        free(m->class_names);
        free(m->version);
        free(m);
}

unsigned cfd_metrics_port(const struct cfd_metrics *m)
{
        return m ? m->port : 0;
}

/*
 * Writer side.
 */

int cfd_metrics_topic(struct cfd_metrics *m, const char *name)
{
        struct counts *w;
        size_t len;

        if (!m || !name)
                return CFD_METRICS_E_PARAM;
        len = strlen(name);
        if (len == 0 || len >= CFD_METRICS_TOPIC_MAX)
                return CFD_METRICS_E_PARAM;
        w = &m->w;
        for (unsigned i = 0; i < w->n_topics; i++)
                if (strcmp(w->topics[i].name, name) == 0)
                        return (int)i;
        if (w->n_topics == CFD_METRICS_MAX_TOPICS)
                return CFD_METRICS_E_FULL;
        memcpy(w->topics[w->n_topics].name, name, len + 1);
        return (int)w->n_topics++;
}

void cfd_metrics_consumed(struct cfd_metrics *m, int topic)
{
        if (m && topic >= 0 && (unsigned)topic < m->w.n_topics)
                m->w.topics[topic].consumed++;
}

void cfd_metrics_delivered(struct cfd_metrics *m, int topic,
                           double latency_s)
{
        unsigned b = 0;

        if (!m)
                return;
        if (topic >= 0 && (unsigned)topic < m->w.n_topics)
                m->w.topics[topic].produced++;
        if (!(latency_s > 0)) /* negative or NaN */
                latency_s = 0;
        while (b < N_LAT && latency_s > lat_bounds[b])
                b++;
        m->w.lat[b]++;
        m->w.lat_count++;
        m->w.lat_sum += latency_s;
}

void cfd_metrics_transaction(struct cfd_metrics *m, bool committed)
{
        if (!m)
                return;
        if (committed)
                m->w.txn_committed++;
        else
                m->w.txn_aborted++;
}

void cfd_metrics_offset_commit(struct cfd_metrics *m, bool ok)
{
        if (!m)
                return;
        if (ok)
                m->w.commit_ok++;
        else
                m->w.commit_failed++;
}

void cfd_metrics_thresholds(struct cfd_metrics *m, const double *t,
                            unsigned k)
{
        if (!m || !t)
                return;
        if (k > m->k)
                k = m->k;
        memcpy(m->w.thresholds, t, k * sizeof(*t));
        m->w.have_thresholds = true;
}

void cfd_metrics_dead_letter(struct cfd_metrics *m, const char *reason)
{
        struct counts *w;
        size_t len;

        if (!m)
                return;
        w = &m->w;
        len = reason ? strlen(reason) : 0;
        if (len == 0 || len >= REASON_MAX || strcmp(reason, "other") == 0) {
                w->reason_other++;
                return;
        }
        for (unsigned i = 0; i < w->n_reasons; i++) {
                if (strcmp(w->reasons[i].code, reason) == 0) {
                        w->reasons[i].n++;
                        return;
                }
        }
        if (w->n_reasons == CFD_METRICS_MAX_REASONS) {
                w->reason_other++;
                return;
        }
        memcpy(w->reasons[w->n_reasons].code, reason, len + 1);
        w->reasons[w->n_reasons++].n = 1;
}

/* Strict UTF-8 (no overlongs, surrogates or values past U+10FFFF):
 * Prometheus rejects label values that are not valid UTF-8. */
static bool utf8_valid(const unsigned char *s, size_t len)
{
        size_t i = 0;

        while (i < len) {
                unsigned c = s[i], n, cp;

                if (c < 0x80) {
                        i++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf) {
                        n = 1;
                        cp = c & 0x1f;
                } else if (c >= 0xe0 && c <= 0xef) {
                        n = 2;
                        cp = c & 0x0f;
                } else if (c >= 0xf0 && c <= 0xf4) {
                        n = 3;
                        cp = c & 0x07;
                } else {
                        return false;
                }
                if (len - i <= n)
                        return false;
                for (unsigned j = 1; j <= n; j++) {
                        if ((s[i + j] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (s[i + j] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
                    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += n + 1;
        }
        return true;
}

static uint64_t fnv1a(const char *s, size_t len)
{
        uint64_t h = 14695981039346656037u;

        for (size_t i = 0; i < len; i++) {
                h ^= (unsigned char)s[i];
                h *= 1099511628211u;
        }
        return h;
}

/* Finds the row of an annotator, or makes one (Space-Saving eviction). */
static struct annot_row *annot_row(struct cfd_metrics *m, const char *s,
                                   size_t len)
{
        uint64_t h = fnv1a(s, len);
        struct annot_row *r, *victim = NULL;

        for (unsigned i = 0; i < m->n_rows; i++) {
                r = &m->rows[i];
                if (r->hash == h && r->len == len &&
                    memcmp(r->name, s, len) == 0)
                        return r;
        }
        if (!utf8_valid((const unsigned char *)s, len))
                return NULL;
        if (m->n_rows < m->cap_rows) {
                victim = &m->rows[m->n_rows++];
                victim->score = 0;
        } else {
                /* At most top rows are exported and cap_rows > top, so
                 * an unexported row always exists. */
                for (unsigned i = 0; i < m->n_rows; i++) {
                        r = &m->rows[i];
                        if (!r->exported &&
                            (!victim || r->score < victim->score))
                                victim = r;
                }
        }
        victim->hash = h;
        victim->len = (unsigned)len;
        memcpy(victim->name, s, len);
        victim->name[len] = '\0';
        victim->exported = false;
        memset(victim->n, 0, sizeof(victim->n));
        return victim;
}

void cfd_metrics_verdict(struct cfd_metrics *m, unsigned cls,
                         enum cfd_metrics_verdict verdict,
                         const char *annotator, size_t len)
{
        struct annot_row *r = NULL;

        if (!m || cls >= m->k || (unsigned)verdict >= CFD_METRICS_VERDICT_COUNT)
                return;
        m->w.verdicts[(size_t)cls * CFD_METRICS_VERDICT_COUNT + verdict]++;
        if (annotator && len > 0 && len <= CFD_METRICS_ANNOTATOR_MAX &&
            !(len == 5 && memcmp(annotator, "other", 5) == 0))
                r = annot_row(m, annotator, len);
        if (r)
                r->score++;
        if (r && r->exported)
                r->n[verdict]++;
        else
                m->w.annot_other[verdict]++;
}

/*
 * The statistics JSON scanner: just enough JSON to walk
 * topics -> partitions and skip everything else.  Input is len bytes,
 * not NUL-terminated; depth is bounded.
 */

struct jscan {
        const char *p, *end;
};

static void js_ws(struct jscan *s)
{
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
                                 *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static bool js_eat(struct jscan *s, char c)
{
        js_ws(s);
        if (s->p < s->end && *s->p == c) {
                s->p++;
                return true;
        }
        return false;
}

/*
 * Reads a string; *ret_s and *ret_len give its raw bytes between the
 * quotes (escapes left as they are; *ret_esc says whether there were
 * any).
 */
static int js_string(struct jscan *s, const char **ret_s, size_t *ret_len,
                     bool *ret_esc)
{
        const char *start;
        bool esc = false;

        if (!js_eat(s, '"'))
                return CFD_METRICS_E_PARSE;
        start = s->p;
        while (s->p < s->end && *s->p != '"') {
                if ((unsigned char)*s->p < 0x20)
                        return CFD_METRICS_E_PARSE;
                if (*s->p == '\\') {
                        esc = true;
                        if (++s->p == s->end)
                                return CFD_METRICS_E_PARSE;
                }
                s->p++;
        }
        if (s->p == s->end)
                return CFD_METRICS_E_PARSE;
        *ret_s = start;
        *ret_len = (size_t)(s->p - start);
        *ret_esc = esc;
        s->p++;
        return 0;
}

static int js_skip(struct jscan *s, int depth);

static int js_skip_container(struct jscan *s, char close, int depth)
{
        const char *str;
        size_t len;
        bool esc;

        if (js_eat(s, close))
                return 0;
        do {
                if (close == '}' &&
                    (js_string(s, &str, &len, &esc) < 0 || !js_eat(s, ':')))
                        return CFD_METRICS_E_PARSE;
                if (js_skip(s, depth + 1) < 0)
                        return CFD_METRICS_E_PARSE;
        } while (js_eat(s, ','));
        return js_eat(s, close) ? 0 : CFD_METRICS_E_PARSE;
}

/* Skips one value of any kind. */
static int js_skip(struct jscan *s, int depth)
{
        const char *str;
        size_t len;
        bool esc;

        if (depth > JSON_MAX_DEPTH)
                return CFD_METRICS_E_PARSE;
        js_ws(s);
        if (s->p == s->end)
                return CFD_METRICS_E_PARSE;
        switch (*s->p) {
        case '{':
                s->p++;
                return js_skip_container(s, '}', depth);
        case '[':
                s->p++;
                return js_skip_container(s, ']', depth);
        case '"':
                return js_string(s, &str, &len, &esc);
        default:
                break;
        }
        /* A number or a literal: up to the next delimiter. */
        str = s->p;
        while (s->p < s->end && !strchr(",}] \t\r\n", *s->p))
                s->p++;
        return s->p > str ? 0 : CFD_METRICS_E_PARSE;
}

/* Reads an integer value; a value of another kind is an error. */
static int js_int(struct jscan *s, int64_t *ret)
{
        bool neg = false;
        uint64_t v = 0;
        const char *start;

        js_ws(s);
        if (s->p < s->end && *s->p == '-') {
                neg = true;
                s->p++;
        }
        start = s->p;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
                if (v > (INT64_MAX - 9) / 10)
                        return CFD_METRICS_E_PARSE;
                v = v * 10 + (uint64_t)(*s->p - '0');
                s->p++;
        }
        if (s->p == start ||
            (s->p < s->end && !strchr(",}] \t\r\n", *s->p)))
                return CFD_METRICS_E_PARSE;
        *ret = neg ? -(int64_t)v : (int64_t)v;
        return 0;
}

static bool key_is(const char *k, size_t len, const char *name)
{
        return strlen(name) == len && memcmp(k, name, len) == 0;
}

/* Iterates the members of an object: fn(s, key, len, arg) per member. */
typedef int (*js_member_fn)(struct jscan *s, const char *key, size_t len,
                            bool esc, void *arg);

static int js_object(struct jscan *s, js_member_fn fn, void *arg)
{
        const char *key;
        size_t len;
        bool esc;

        if (!js_eat(s, '{'))
                return CFD_METRICS_E_PARSE;
        if (js_eat(s, '}'))
                return 0;
        do {
                if (js_string(s, &key, &len, &esc) < 0 || !js_eat(s, ':') ||
                    fn(s, key, len, esc, arg) < 0)
                        return CFD_METRICS_E_PARSE;
        } while (js_eat(s, ','));
        return js_eat(s, '}') ? 0 : CFD_METRICS_E_PARSE;
}

struct lag_walk {
        struct cfd_metrics_lag *out;
        size_t cap, found;
        bool consumer;
        const char *topic; /* raw name, no escapes */
        size_t topic_len;
        struct cfd_metrics_lag cur;
};

static int on_partition_field(struct jscan *s, const char *key, size_t len,
                              bool esc, void *arg)
{
        struct cfd_metrics_lag *l = &((struct lag_walk *)arg)->cur;
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
                {"hi_offset", offsetof(struct cfd_metrics_lag, hi_offset)},
                {"ls_offset", offsetof(struct cfd_metrics_lag, ls_offset)},
                {"committed_offset",
                 offsetof(struct cfd_metrics_lag, committed_offset)},
                {"stored_offset",
                 offsetof(struct cfd_metrics_lag, stored_offset)},
                {"consumer_lag", offsetof(struct cfd_metrics_lag,
                                          consumer_lag)},
                {"consumer_lag_stored",
                 offsetof(struct cfd_metrics_lag, consumer_lag_stored)},
        };

        (void)esc;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
                if (key_is(key, len, fields[i].name))
                        return js_int(s, (int64_t *)((char *)l +
                                                     fields[i].off));
        return js_skip(s, 4);
}

static int on_partition(struct jscan *s, const char *key, size_t len,
                        bool esc, void *arg)
{
        struct lag_walk *lw = arg;
        struct cfd_metrics_lag *l = &lw->cur;
        struct jscan ks = {key, key + len};
        int64_t id;

        if (esc || js_int(&ks, &id) < 0 || ks.p != ks.end ||
            id < INT32_MIN || id > INT32_MAX)
                return CFD_METRICS_E_PARSE;
        memset(l, 0, sizeof(*l));
        l->hi_offset = l->ls_offset = l->committed_offset = -1;
        l->stored_offset = l->consumer_lag = l->consumer_lag_stored = -1;
        if (js_object(s, on_partition_field, lw) < 0)
                return CFD_METRICS_E_PARSE;
        if (id < 0 || !lw->topic)
                return 0; /* the unassigned queue, or a topic we skip */
        l->partition = (int32_t)id;
        /* The further along of the two: with transactions the offsets
         * are committed by the producer, which the consumer's committed
         * offset does not see, and the daemon stores them instead. */
        if (l->consumer_lag >= 0 && l->consumer_lag_stored >= 0)
                l->lag = l->consumer_lag < l->consumer_lag_stored
                                 ? l->consumer_lag
                                 : l->consumer_lag_stored;
        else
                l->lag = l->consumer_lag >= 0 ? l->consumer_lag
                                              : l->consumer_lag_stored;
        if (l->lag < 0)
                return 0;
        if (lw->found < lw->cap) {
                memcpy(l->topic, lw->topic, lw->topic_len);
                l->topic[lw->topic_len] = '\0';
                lw->out[lw->found] = *l;
        }
        lw->found++;
        return 0;
}

static int on_topic_field(struct jscan *s, const char *key, size_t len,
                          bool esc, void *arg)
{
        (void)esc;
        if (key_is(key, len, "partitions"))
                return js_object(s, on_partition, arg);
        return js_skip(s, 3);
}

static int on_topic(struct jscan *s, const char *key, size_t len, bool esc,
                    void *arg)
{
        struct lag_walk *lw = arg;

        /* Kafka topic names are [A-Za-z0-9._-]; a name with escapes or
         * of excess length cannot be one, and is walked but not kept. */
        lw->topic = esc || len == 0 || len >= CFD_METRICS_TOPIC_MAX ? NULL
                                                                    : key;
        lw->topic_len = len;
        return js_object(s, on_topic_field, lw);
}

static int on_top_field(struct jscan *s, const char *key, size_t len,
                        bool esc, void *arg)
{
        struct lag_walk *lw = arg;
        const char *v;
        size_t vlen;
        bool vesc;

        (void)esc;
        if (key_is(key, len, "topics"))
                return js_object(s, on_topic, arg);
        if (key_is(key, len, "type")) {
                if (js_string(s, &v, &vlen, &vesc) < 0)
                        return CFD_METRICS_E_PARSE;
                lw->consumer = key_is(v, vlen, "consumer");
                return 0;
        }
        return js_skip(s, 1);
}

int cfd_metrics_parse_lag(const char *json, size_t len,
                          struct cfd_metrics_lag *out, size_t cap,
                          bool *ret_consumer)
{
        struct lag_walk lw = {.out = out, .cap = out ? cap : 0};
        struct jscan s = {json, json + len};

        if (!json || js_object(&s, on_top_field, &lw) < 0)
                return CFD_METRICS_E_PARSE;
        js_ws(&s);
        /* librdkafka's document may end in a NUL inside len. */
        while (s.p < s.end && *s.p == '\0')
                s.p++;
        if (s.p != s.end)
                return CFD_METRICS_E_PARSE;
        if (ret_consumer)
                *ret_consumer = lw.consumer;
        return lw.found > INT32_MAX ? INT32_MAX : (int)lw.found;
}

int cfd_metrics_stats_json(struct cfd_metrics *m, const char *json,
                           size_t len)
{
        struct cfd_metrics_lag *tmp;
        bool consumer = false;
        int n;

        if (!m)
                return 0;
        n = cfd_metrics_parse_lag(json, len, m->lag_scratch,
                                  m->max_partitions, &consumer);
        if (n < 0)
                return n;
        if (!consumer)
                return 0;
        tmp = m->w.lag;
        m->w.lag = m->lag_scratch;
        m->lag_scratch = tmp;
        m->w.n_lag = (size_t)n < m->max_partitions ? (size_t)n
                                                   : m->max_partitions;
        return (size_t)n > m->max_partitions ? CFD_METRICS_E_FULL : 0;
}

/*
 * Publishing.
 */

/* Ranks rows by score, highest first: an insertion sort, fine for the
 * at most 4 * CFD_METRICS_MAX_ANNOTATORS + 16 rows, and nearly sorted
 * from one publish to the next. */
static void rank_rows(struct cfd_metrics *m)
{
        for (unsigned i = 0; i < m->n_rows; i++) {
                uint64_t score = m->rows[i].score;
                unsigned j = i;

                while (j > 0 && m->rows[m->order[j - 1]].score < score) {
                        m->order[j] = m->order[j - 1];
                        j--;
                }
                m->order[j] = i;
        }
}

static void export_row(struct annot_row *r, bool on)
{
        r->exported = on;
        memset(r->n, 0, sizeof(r->n));
}

/*
 * Chooses the exported annotators: fill up to top from the best ranked,
 * then swap the weakest exported for the strongest unexported while the
 * latter leads by more than 1/8 (hysteresis: two annotators of nearly
 * equal volume must not trade places, and reset their series, at every
 * publish).  A series starts at 0 when its annotator is exported; what
 * it sent before counted in "other".
 */
static void select_annotators(struct cfd_metrics *m)
{
        unsigned n_exp = 0, i, j;
        struct annot_row *best, *worst;

        rank_rows(m);
        for (i = 0; i < m->n_rows; i++)
                n_exp += m->rows[i].exported;
        for (i = 0; i < m->n_rows && n_exp < m->top; i++) {
                if (!m->rows[m->order[i]].exported) {
                        export_row(&m->rows[m->order[i]], true);
                        n_exp++;
                }
        }
        i = 0;
        j = m->n_rows;
        for (;;) {
                while (i < m->n_rows && m->rows[m->order[i]].exported)
                        i++;
                while (j > 0 && !m->rows[m->order[j - 1]].exported)
                        j--;
                if (i >= m->n_rows || j == 0 || i > j - 1)
                        break;
                best = &m->rows[m->order[i]];
                worst = &m->rows[m->order[j - 1]];
                if (best->score <= worst->score + worst->score / 8 + 1)
                        break;
                export_row(worst, false);
                export_row(best, true);
        }
}

/* Appends a mark at ms with the current counts (zero when empty). */
static void window_push(struct cfd_metrics *m, int64_t ms, bool empty)
{
        const unsigned slots = WINDOW_SLOTS + 1;
        unsigned at = (m->mark_head + m->n_marks) % slots;
        struct window_mark *mk = &m->marks[at];
        uint64_t dec_all = 0, sus_all = 0;

        if (m->n_marks == slots)
                m->mark_head = (m->mark_head + 1) % slots;
        else
                m->n_marks++;
        mk->ms = ms;
        for (unsigned c = 0; c < m->k; c++) {
                const uint64_t *v =
                        &m->w.verdicts[(size_t)c * CFD_METRICS_VERDICT_COUNT];

                mk->decided[c] = empty ? 0
                                       : v[CFD_METRICS_CLEAN] +
                                                 v[CFD_METRICS_SUSPECT];
                mk->suspect[c] = empty ? 0 : v[CFD_METRICS_SUSPECT];
                dec_all += mk->decided[c];
                sus_all += mk->suspect[c];
        }
        mk->decided[m->k] = dec_all;
        mk->suspect[m->k] = sus_all;
}

/*
 * Moves the flag window on and computes the ratios into w.flag_ratio.
 * A mark of the counts is kept every window/WINDOW_SLOTS; the ratio is
 * taken against the newest mark at least a window old, so it covers
 * between one window and one window plus the publish spacing.
 */
static void window_update(struct cfd_metrics *m, int64_t now_ms)
{
        const unsigned slots = WINDOW_SLOTS + 1;
        struct window_mark *mk, *base = NULL;
        uint64_t dec_all = 0, sus_all = 0;
        unsigned newest;

        /* The start, as if a window ago: until a window has passed the
         * ratio covers everything since start. */
        if (m->n_marks == 0)
                window_push(m, now_ms - m->window_ms, true);
        newest = (m->mark_head + m->n_marks + slots - 1) % slots;
        if (now_ms - m->marks[newest].ms >= m->window_ms / WINDOW_SLOTS)
                window_push(m, now_ms, false);
        for (unsigned i = 0; i < m->n_marks; i++) {
                mk = &m->marks[(m->mark_head + i) % slots];
                if (!base || now_ms - mk->ms >= m->window_ms)
                        base = mk;
        }
        for (unsigned c = 0; c <= m->k; c++) {
                uint64_t dec, sus;

                if (c < m->k) {
                        const uint64_t *v =
                                &m->w.verdicts[(size_t)c *
                                               CFD_METRICS_VERDICT_COUNT];

                        dec = v[CFD_METRICS_CLEAN] + v[CFD_METRICS_SUSPECT];
                        sus = v[CFD_METRICS_SUSPECT];
                        dec_all += dec;
                        sus_all += sus;
                } else {
                        dec = dec_all;
                        sus = sus_all;
                }
                dec -= base->decided[c];
                sus -= base->suspect[c];
                m->w.flag_ratio[c] = dec ? (double)sus / (double)dec : NAN;
        }
}

static void copy_counts(struct cfd_metrics *m, struct counts *dst)
{
        const struct counts *src = &m->w;
        size_t k = m->k;

        dst->n_topics = src->n_topics;
        memcpy(dst->topics, src->topics,
               src->n_topics * sizeof(src->topics[0]));
        memcpy(dst->verdicts, src->verdicts,
               k * CFD_METRICS_VERDICT_COUNT * sizeof(*src->verdicts));
        memcpy(dst->thresholds, src->thresholds, k * sizeof(double));
        dst->have_thresholds = src->have_thresholds;
        memcpy(dst->flag_ratio, src->flag_ratio, (k + 1) * sizeof(double));
        dst->n_reasons = src->n_reasons;
        memcpy(dst->reasons, src->reasons,
               src->n_reasons * sizeof(src->reasons[0]));
        dst->reason_other = src->reason_other;
        dst->txn_committed = src->txn_committed;
        dst->txn_aborted = src->txn_aborted;
        dst->commit_ok = src->commit_ok;
        dst->commit_failed = src->commit_failed;
        memcpy(dst->lat, src->lat, sizeof(src->lat));
        dst->lat_count = src->lat_count;
        dst->lat_sum = src->lat_sum;
        memcpy(dst->lag, src->lag, src->n_lag * sizeof(*src->lag));
        dst->n_lag = src->n_lag;
        memcpy(dst->annot_other, src->annot_other, sizeof(src->annot_other));
        dst->n_annot = 0;
        for (unsigned i = 0; i < m->n_rows; i++) {
                const struct annot_row *r = &m->rows[m->order[i]];

                if (!r->exported)
                        continue;
                memcpy(dst->annot[dst->n_annot].name, r->name, r->len + 1);
                memcpy(dst->annot[dst->n_annot].n, r->n, sizeof(r->n));
                dst->n_annot++;
        }
}

void cfd_metrics_publish_at(struct cfd_metrics *m, int64_t now_ms)
{
        if (!m)
                return;
        select_annotators(m);
        window_update(m, now_ms);
        pthread_mutex_lock(&m->lock);
        copy_counts(m, &m->pub);
        pthread_mutex_unlock(&m->lock);
}

void cfd_metrics_publish(struct cfd_metrics *m)
{
        cfd_metrics_publish_at(m, mono_ms());
}

void cfd_metrics_heartbeat_at(struct cfd_metrics *m, int64_t now_ms)
{
        if (m)
                atomic_store(&m->heartbeat_ms, now_ms > 0 ? now_ms : 1);
}

void cfd_metrics_heartbeat(struct cfd_metrics *m)
{
        cfd_metrics_heartbeat_at(m, mono_ms());
}

bool cfd_metrics_healthy_at(const struct cfd_metrics *m, int64_t now_ms)
{
        int64_t hb;

        if (!m)
                return false;
        hb = atomic_load(&((struct cfd_metrics *)m)->heartbeat_ms);
        return hb != 0 && now_ms - hb <= m->health_ms;
}

/*
 * Rendering.
 */

struct sbuf {
        char *p;
        size_t len, cap;
        bool oom;
};

static void sb_grow(struct sbuf *b, size_t need)
{
        size_t cap = b->cap ? b->cap : 8192;
        char *p;

        while (cap - b->len <= need)
                cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
                b->oom = true;
                return;
        }
        b->p = p;
        b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (b->oom)
                return;
        for (int pass = 0; pass < 2; pass++) {
                size_t room = b->cap - b->len;

                va_start(ap, fmt);
                n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->oom = true;
                        return;
                }
                if ((size_t)n < room) {
                        b->len += (size_t)n;
                        return;
                }
                sb_grow(b, (size_t)n);
                if (b->oom)
                        return;
        }
}

/* A label value: backslash, double quote and line feed escaped. */
static void sb_label(struct sbuf *b, const char *s)
{
        for (; *s && !b->oom; s++) {
                if (b->cap - b->len <= 2)
                        sb_grow(b, 2);
                if (b->oom)
                        return;
                if (*s == '\\' || *s == '"') {
                        b->p[b->len++] = '\\';
                        b->p[b->len++] = *s;
                } else if (*s == '\n') {
                        b->p[b->len++] = '\\';
                        b->p[b->len++] = 'n';
                } else {
                        b->p[b->len++] = *s;
                }
                b->p[b->len] = '\0';
        }
}

/* A sample value as Go's ParseFloat reads it. */
static void sb_double(struct sbuf *b, double v)
{
        if (isnan(v))
                sb_printf(b, "NaN");
        else if (isinf(v))
                sb_printf(b, v > 0 ? "+Inf" : "-Inf");
        else
                sb_printf(b, "%.17g", v);
}

static void sb_family(struct sbuf *b, const char *name, const char *type,
                      const char *help)
{
        sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_topics(struct sbuf *b, const struct counts *c)
{
        static const char *const names[2] = {
                "confidentd_messages_consumed_total",
                "confidentd_messages_produced_total"};
        static const char *const helps[2] = {
                "Messages taken from each input topic.",
                "Output messages acknowledged by the broker, by topic."};

        if (c->n_topics == 0)
                return;
        for (int f = 0; f < 2; f++) {
                sb_family(b, names[f], "counter", helps[f]);
                for (unsigned i = 0; i < c->n_topics; i++) {
                        sb_printf(b, "%s{topic=\"", names[f]);
                        sb_label(b, c->topics[i].name);
                        sb_printf(b, "\"} %" PRIu64 "\n",
                                  f == 0 ? c->topics[i].consumed
                                         : c->topics[i].produced);
                }
        }
}

static void render_classes(struct sbuf *b, const struct cfd_metrics *m,
                           const struct counts *c)
{
        sb_family(b, "confidentd_verdicts_total", "counter",
                  "Scored items by given class and verdict.");
        for (unsigned i = 0; i < m->k; i++) {
                for (unsigned v = 0; v < CFD_METRICS_VERDICT_COUNT; v++) {
                        sb_printf(b, "confidentd_verdicts_total{class=\"");
                        sb_label(b, m->class_names[i]);
                        sb_printf(b, "\",verdict=\"%s\"} %" PRIu64 "\n",
                                  verdict_names[v],
                                  c->verdicts[(size_t)i *
                                                      CFD_METRICS_VERDICT_COUNT +
                                              v]);
                }
        }
        sb_printf(b, "# HELP confidentd_flag_ratio Share of suspect among "
                     "clean and suspect verdicts of each given class over "
                     "the last %" PRId64 " s (warm-up excluded; NaN: no "
                     "verdicts).\n# TYPE confidentd_flag_ratio gauge\n",
                  m->window_ms / 1000);
        for (unsigned i = 0; i < m->k; i++) {
                sb_printf(b, "confidentd_flag_ratio{class=\"");
                sb_label(b, m->class_names[i]);
                sb_printf(b, "\"} ");
                sb_double(b, c->flag_ratio[i]);
                sb_printf(b, "\n");
        }
        sb_printf(b, "# HELP confidentd_flag_overall_ratio Share of suspect "
                     "among clean and suspect verdicts over the last %" PRId64
                     " s.\n# TYPE confidentd_flag_overall_ratio gauge\n"
                     "confidentd_flag_overall_ratio ",
                  m->window_ms / 1000);
        sb_double(b, c->flag_ratio[m->k]);
        sb_printf(b, "\n");
        if (!c->have_thresholds)
                return;
        sb_family(b, "confidentd_class_threshold", "gauge",
                  "Per-class confidence threshold: the mean self-confidence "
                  "of items given that class (2 until the class is seen).");
        for (unsigned i = 0; i < m->k; i++) {
                sb_printf(b, "confidentd_class_threshold{class=\"");
                sb_label(b, m->class_names[i]);
                sb_printf(b, "\"} ");
                sb_double(b, c->thresholds[i]);
                sb_printf(b, "\n");
        }
}

static void render_annotators(struct sbuf *b, const struct counts *c)
{
        static const char *name = "confidentd_annotator_verdicts_total";

        sb_family(b, name, "counter",
                  "Scored items by annotator and verdict: the top annotators "
                  "by volume since start (counted from when they entered "
                  "the top), all others as \"other\".");
        for (unsigned i = 0; i < c->n_annot; i++) {
                for (unsigned v = 0; v < CFD_METRICS_VERDICT_COUNT; v++) {
                        sb_printf(b, "%s{annotator=\"", name);
                        sb_label(b, c->annot[i].name);
                        sb_printf(b, "\",verdict=\"%s\"} %" PRIu64 "\n",
                                  verdict_names[v], c->annot[i].n[v]);
                }
        }
        for (unsigned v = 0; v < CFD_METRICS_VERDICT_COUNT; v++)
                sb_printf(b, "%s{annotator=\"other\",verdict=\"%s\"} %" PRIu64
                             "\n",
                          name, verdict_names[v], c->annot_other[v]);
}

static void render_dead_letters(struct sbuf *b, const struct counts *c)
{
        sb_family(b, "confidentd_dead_letters_total", "counter",
                  "Items sent to the dead-letter topic, by reason code.");
        for (unsigned i = 0; i < c->n_reasons; i++) {
                sb_printf(b, "confidentd_dead_letters_total{reason=\"");
                sb_label(b, c->reasons[i].code);
                sb_printf(b, "\"} %" PRIu64 "\n", c->reasons[i].n);
        }
        sb_printf(b, "confidentd_dead_letters_total{reason=\"other\"} %" PRIu64
                     "\n",
                  c->reason_other);
}

static void render_kafka(struct sbuf *b, const struct counts *c)
{
        if (c->n_lag > 0) {
                sb_family(b, "confidentd_consumer_lag_messages", "gauge",
                          "Messages of each assigned partition not yet "
                          "committed: end offset (last stable offset under "
                          "read_committed) minus committed offset.");
                for (size_t i = 0; i < c->n_lag; i++) {
                        sb_printf(b, "confidentd_consumer_lag_messages"
                                     "{topic=\"");
                        sb_label(b, c->lag[i].topic);
                        sb_printf(b, "\",partition=\"%" PRId32 "\"} %" PRId64
                                     "\n",
                                  c->lag[i].partition, c->lag[i].lag);
                }
        }
        sb_family(b, "confidentd_transactions_total", "counter",
                  "Producer transactions by result.");
        sb_printf(b, "confidentd_transactions_total{result=\"committed\"} "
                     "%" PRIu64 "\n"
                     "confidentd_transactions_total{result=\"aborted\"} "
                     "%" PRIu64 "\n",
                  c->txn_committed, c->txn_aborted);
        sb_family(b, "confidentd_offset_commits_total", "counter",
                  "Consumer offset commits by result.");
        sb_printf(b, "confidentd_offset_commits_total{result=\"ok\"} %" PRIu64
                     "\nconfidentd_offset_commits_total{result=\"failed\"} "
                     "%" PRIu64 "\n",
                  c->commit_ok, c->commit_failed);
}

static void render_latency(struct sbuf *b, const struct counts *c)
{
        static const char *name = "confidentd_delivery_latency_seconds";
        uint64_t cum = 0;

        sb_family(b, name, "histogram",
                  "Time from consuming an input to the broker's "
                  "acknowledgement of its output.");
        for (unsigned i = 0; i < N_LAT; i++) {
                cum += c->lat[i];
                sb_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                          lat_bounds[i], cum);
        }
        cum += c->lat[N_LAT];
        sb_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum ", name, cum,
                  name);
        sb_double(b, c->lat_sum);
        sb_printf(b, "\n%s_count %" PRIu64 "\n", name, c->lat_count);
}

static void render_process(struct sbuf *b, struct cfd_metrics *m)
{
        int64_t hb = atomic_load(&m->heartbeat_ms);

        sb_family(b, "confidentd_build_info", "gauge",
                  "Always 1; the version is a label.");
        sb_printf(b, "confidentd_build_info{version=\"");
        sb_label(b, m->version);
        sb_printf(b, "\"} 1\n");
        sb_family(b, "confidentd_heartbeat_age_seconds", "gauge",
                  "Seconds since the loop last made progress or polled "
                  "while connected (+Inf before the first time).");
        sb_printf(b, "confidentd_heartbeat_age_seconds ");
        sb_double(b, hb ? (double)(mono_ms() - hb) / 1000.0 : INFINITY);
        sb_printf(b, "\n");
}

int cfd_metrics_render(struct cfd_metrics *m, char **ret_buf,
                       size_t *ret_len)
{
        struct sbuf b = {0};

        if (!m || !ret_buf || !ret_len)
                return CFD_METRICS_E_PARAM;
        sb_grow(&b, 0);
        render_process(&b, m);
        pthread_mutex_lock(&m->lock);
        render_topics(&b, &m->pub);
        render_classes(&b, m, &m->pub);
        render_annotators(&b, &m->pub);
        render_dead_letters(&b, &m->pub);
        render_kafka(&b, &m->pub);
        render_latency(&b, &m->pub);
        pthread_mutex_unlock(&m->lock);
        if (b.oom) {
                free(b.p);
                return CFD_METRICS_E_NOMEM;
        }
        *ret_buf = b.p;
        *ret_len = b.len;
        return 0;
}

const char *cfd_metrics_strerror(int code)
{
        switch (code) {
        case CFD_METRICS_E_PARAM:
                return "invalid argument";
        case CFD_METRICS_E_NOMEM:
                return "out of memory";
        case CFD_METRICS_E_ADDR:
                return "listen address is not host:port";
        case CFD_METRICS_E_LISTEN:
                return "cannot listen on the address";
        case CFD_METRICS_E_HTTP:
                return "the HTTP server did not start";
        case CFD_METRICS_E_PARSE:
                return "malformed statistics JSON";
        case CFD_METRICS_E_FULL:
                return "table full";
        default:
                return "unknown error";
        }
}
