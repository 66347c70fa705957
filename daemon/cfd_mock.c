/*
 * cfd_mock.c - an embedded Kafka cluster on loopback (librdkafka's mock
 * cluster) with a small text language for fault injection.
 */
#include "cfd_mock.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#if defined(__GNUC__)
#define CFD_MOCK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CFD_MOCK_PRINTF(f, a)
#endif

#define MAX_WORDS      6   /* command and its arguments, one spare */
#define MAX_LINE       512 /* longest command accepted */
#define MAX_ERR_COUNT  100000
#define ERR_PREFIX     "RD_KAFKA_RESP_ERR_"

struct cfd_mock {
        rd_kafka_t *rk; /* owns nothing but the cluster's book keeping */
        rd_kafka_mock_cluster_t *mcluster;
        int broker_cnt;
};

/* Kafka protocol request names, indexed by ApiKey. */
static const char *const api_names[] = {
        "Produce", "Fetch", "ListOffsets", "Metadata", "LeaderAndIsr",
        "StopReplica", "UpdateMetadata", "ControlledShutdown",
        "OffsetCommit", "OffsetFetch", "FindCoordinator", "JoinGroup",
        "Heartbeat", "LeaveGroup", "SyncGroup", "DescribeGroups",
        "ListGroups", "SaslHandshake", "ApiVersions", "CreateTopics",
        "DeleteTopics", "DeleteRecords", "InitProducerId",
        "OffsetForLeaderEpoch", "AddPartitionsToTxn", "AddOffsetsToTxn",
        "EndTxn", "WriteTxnMarkers", "TxnOffsetCommit", "DescribeAcls",
        "CreateAcls", "DeleteAcls", "DescribeConfigs", "AlterConfigs",
        "AlterReplicaLogDirs", "DescribeLogDirs", "SaslAuthenticate",
        "CreatePartitions", "CreateDelegationToken",
        "RenewDelegationToken", "ExpireDelegationToken",
        "DescribeDelegationToken", "DeleteGroups", "ElectLeaders",
        "IncrementalAlterConfigs", "AlterPartitionReassignments",
        "ListPartitionReassignments", "OffsetDelete",
        "DescribeClientQuotas", "AlterClientQuotas",
        "DescribeUserScramCredentials", "AlterUserScramCredentials",
        "Vote", "BeginQuorumEpoch", "EndQuorumEpoch", "DescribeQuorum",
        "AlterPartition", "UpdateFeatures", "Envelope", "FetchSnapshot",
        "DescribeCluster", "DescribeProducers", "BrokerRegistration",
        "BrokerHeartbeat", "UnregisterBroker", "DescribeTransactions",
        "ListTransactions", "AllocateProducerIds",
};

#define API_COUNT ((int)(sizeof(api_names) / sizeof(api_names[0])))

CFD_MOCK_PRINTF(3, 4)
static int set_error(struct cfd_mock_error *err, int code, const char *fmt,
                     ...) {
        va_list ap;

        if (!err)
                return code;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        return code;
}

int cfd_mock_new(int broker_cnt, cfd_mock_log_fn *log_cb,
                 struct cfd_mock **ret, struct cfd_mock_error *err) {
        char errstr[512];
        rd_kafka_conf_t *conf;
        struct cfd_mock *m;
        int rc;

        if (broker_cnt < 1 || broker_cnt > CFD_MOCK_MAX_BROKERS)
                return set_error(err, CFD_MOCK_E_PARAM,
                                 "broker count %d out of range 1..%d",
                                 broker_cnt, CFD_MOCK_MAX_BROKERS);

        m = calloc(1, sizeof(*m));
        if (!m)
                return set_error(err, CFD_MOCK_E_NOMEM, "out of memory");
        m->broker_cnt = broker_cnt;

        conf = rd_kafka_conf_new();
        /* The handle never connects anywhere; its notice about a missing
         * bootstrap.servers would only be noise. */
        if (rd_kafka_conf_set(conf, "log_level", "4", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK ||
            rd_kafka_conf_set(conf, "client.id", "confidentd-mock", errstr,
                              sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                rd_kafka_conf_destroy(conf);
                rc = set_error(err, CFD_MOCK_E_KAFKA, "mock handle: %s",
                               errstr);
                goto out_free_m;
        }
        rd_kafka_conf_set_log_cb(conf, log_cb);

        /* rd_kafka_new() takes conf on success only. */
        m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!m->rk) {
                rd_kafka_conf_destroy(conf);
                rc = set_error(err, CFD_MOCK_E_KAFKA, "mock handle: %s",
                               errstr);
                goto out_free_m;
        }

        m->mcluster = rd_kafka_mock_cluster_new(m->rk, broker_cnt);
        if (!m->mcluster) {
                rc = set_error(err, CFD_MOCK_E_KAFKA,
                               "cannot start a mock cluster of %d brokers "
                               "(librdkafka logs the cause)",
                               broker_cnt);
                goto out_destroy_rk;
        }

        *ret = m;
        return 0;

out_destroy_rk:
        rd_kafka_destroy(m->rk);
out_free_m:
        free(m);
        return rc;
}

void cfd_mock_free(struct cfd_mock *m) {
        if (!m)
                return;
        /* The cluster's thread uses the handle: cluster first. */
        rd_kafka_mock_cluster_destroy(m->mcluster);
        rd_kafka_destroy(m->rk);
        free(m);
}

const char *cfd_mock_bootstraps(const struct cfd_mock *m) {
        return rd_kafka_mock_cluster_bootstraps(m->mcluster);
}

int cfd_mock_broker_count(const struct cfd_mock *m) {
        return m->broker_cnt;
}

/*
 * Reads the ports of the bootstrap list "host:port,host:port" into ports.
 * Returns their number, or -1 when one does not parse or there are more
 * than max.
 */
static int bootstrap_ports(const char *list, unsigned *ports, int max) {
        const char *p = list;
        int n = 0;

        while (*p) {
                const char *colon, *end = strchr(p, ',');
                char *num_end;
                unsigned long port;

                if (!end)
                        end = p + strlen(p);
                /* The port follows the last ':' of the entry. */
                for (colon = end; colon > p && colon[-1] != ':'; colon--)
                        ;
                if (colon == p || n == max)
                        return -1;
                errno = 0;
                port = strtoul(colon, &num_end, 10);
                if (errno || num_end != end || port == 0 || port > 65535)
                        return -1;
                ports[n++] = (unsigned)port;
                p = *end ? end + 1 : end;
        }
        return n;
}

/*
 * Returns the index in ports of fd's local port if fd is a listening IPv4
 * loopback TCP socket, else -1.
 */
static int listener_index(int fd, const unsigned *ports, int nports) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        int listening = 0;
        socklen_t optlen = sizeof(listening);
        int i;

        if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1 ||
            ss.ss_family != AF_INET ||
            sin->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
                return -1;
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
                       &optlen) == -1 ||
            !listening)
                return -1;
        for (i = 0; i < nports; i++)
                if (ntohs(sin->sin_port) == ports[i])
                        return i;
        return -1;
}

int cfd_mock_set_nodelay(struct cfd_mock *m, struct cfd_mock_error *err) {
        unsigned ports[CFD_MOCK_MAX_BROKERS];
        int found[CFD_MOCK_MAX_BROKERS] = {0};
        int nports, nfound = 0, i, rc = 0;
        struct dirent *de;
        DIR *dir;

        nports = bootstrap_ports(cfd_mock_bootstraps(m), ports,
                                 CFD_MOCK_MAX_BROKERS);
        if (nports < 0)
                return set_error(err, CFD_MOCK_E_SOCKET,
                                 "cannot parse bootstrap list '%s'",
                                 cfd_mock_bootstraps(m));

        dir = opendir("/proc/self/fd");
        if (!dir)
                return set_error(err, CFD_MOCK_E_SOCKET,
                                 "/proc/self/fd: %s", strerror(errno));

        while ((de = readdir(dir)) != NULL) {
                const int on = 1;
                char *end;
                long fd = strtol(de->d_name, &end, 10);

                if (*end || end == de->d_name || fd == dirfd(dir) ||
                    fd < 0 || fd > INT_MAX)
                        continue;
                i = listener_index((int)fd, ports, nports);
                if (i < 0 || found[i])
                        continue;
                if (setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &on,
                               sizeof(on)) == -1) {
                        rc = set_error(err, CFD_MOCK_E_SOCKET,
                                       "setsockopt TCP_NODELAY on port %u: "
                                       "%s",
                                       ports[i], strerror(errno));
                        goto out_closedir;
                }
                found[i] = 1;
                nfound++;
        }

        for (i = 0; i < nports; i++)
                if (!found[i]) {
                        rc = set_error(err, CFD_MOCK_E_SOCKET,
                                       "no listening socket for port %u "
                                       "in /proc/self/fd",
                                       ports[i]);
                        goto out_closedir;
                }
        rc = nfound;

out_closedir:
        closedir(dir);
        return rc;
}

int cfd_mock_topic_create(struct cfd_mock *m, const char *topic,
                          int partition_cnt, struct cfd_mock_error *err) {
        rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR;

        if (!topic || !*topic || strlen(topic) > 249)
                return set_error(err, CFD_MOCK_E_PARAM,
                                 "topic name '%s' empty or longer than 249",
                                 topic ? topic : "");
        if (partition_cnt < 1 || partition_cnt > CFD_MOCK_MAX_PARTITIONS)
                return set_error(err, CFD_MOCK_E_PARAM,
                                 "topic '%s': partition count %d out of "
                                 "range 1..%d",
                                 topic, partition_cnt,
                                 CFD_MOCK_MAX_PARTITIONS);

        kerr = rd_kafka_mock_topic_create(m->mcluster, topic, partition_cnt,
                                          m->broker_cnt < 3 ? m->broker_cnt
                                                            : 3);
        if (kerr)
                return set_error(err, CFD_MOCK_E_KAFKA,
                                 "topic '%s': %s (%s)", topic,
                                 rd_kafka_err2str(kerr),
                                 rd_kafka_err2name(kerr));
        return 0;
}

/* Parses a whole decimal integer in min..max. */
static int parse_long(const char *word, long min, long max, long *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(word, &end, 10);
        if (errno || end == word || *end || v < min || v > max)
                return -1;
        *ret = v;
        return 0;
}

static int parse_broker(const struct cfd_mock *m, const char *cmd,
                        const char *word, int32_t *ret,
                        struct cfd_mock_error *err) {
        long id;

        if (parse_long(word, -1, m->broker_cnt, &id) == -1 || id == 0)
                return set_error(err, CFD_MOCK_E_ARGUMENT,
                                 "%s: bad broker id '%s' (expected 1..%d, "
                                 "or -1 for all)",
                                 cmd, word, m->broker_cnt);
        *ret = (int32_t)id;
        return 0;
}

static int parse_api(const char *cmd, const char *word, int16_t *ret,
                     struct cfd_mock_error *err) {
        long key;
        int i;

        if (parse_long(word, 0, API_COUNT - 1, &key) == 0) {
                *ret = (int16_t)key;
                return 0;
        }
        for (i = 0; i < API_COUNT; i++)
                if (!strcasecmp(word, api_names[i])) {
                        *ret = (int16_t)i;
                        return 0;
                }
        return set_error(err, CFD_MOCK_E_ARGUMENT,
                         "%s: unknown api '%s' (expected a name like "
                         "Produce, Fetch, EndTxn or a number 0..%d)",
                         cmd, word, API_COUNT - 1);
}

static int parse_resp_err(const char *cmd, const char *word,
                          rd_kafka_resp_err_t *ret,
                          struct cfd_mock_error *err) {
        const struct rd_kafka_err_desc *descs;
        const char *name = word;
        size_t cnt, i;
        long num;
        int numeric;

        rd_kafka_get_err_descs(&descs, &cnt);
        numeric = parse_long(word, INT_MIN, INT_MAX, &num) == 0;
        if (!strncasecmp(name, ERR_PREFIX, strlen(ERR_PREFIX)))
                name += strlen(ERR_PREFIX);
        /* Kafka renamed error 6 in 2.x; librdkafka keeps the old name. */
        if (!strcasecmp(name, "NOT_LEADER_OR_FOLLOWER"))
                name = "NOT_LEADER_FOR_PARTITION";

        for (i = 0; i < cnt; i++) {
                if (!descs[i].name)
                        continue;
                if ((numeric && (long)descs[i].code == num) ||
                    (!numeric && !strcasecmp(name, descs[i].name))) {
                        *ret = descs[i].code;
                        return 0;
                }
        }
        return set_error(err, CFD_MOCK_E_ARGUMENT,
                         "%s: unknown error '%s' (expected a librdkafka "
                         "error name like NOT_LEADER_FOR_PARTITION or "
                         "_TRANSPORT, or its number)",
                         cmd, word);
}

static int cmd_updown(struct cfd_mock *m, char **argv,
                      struct cfd_mock_error *err) {
        rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR;
        int32_t id = 0;
        int up = !strcmp(argv[0], "up");
        int rc;

        rc = parse_broker(m, argv[0], argv[1], &id, err);
        if (rc)
                return rc;
        kerr = up ? rd_kafka_mock_broker_set_up(m->mcluster, id)
                  : rd_kafka_mock_broker_set_down(m->mcluster, id);
        if (kerr)
                return set_error(err, CFD_MOCK_E_KAFKA, "%s %s: %s",
                                 argv[0], argv[1], rd_kafka_err2str(kerr));
        return 0;
}

static int cmd_rtt(struct cfd_mock *m, char **argv,
                   struct cfd_mock_error *err) {
        rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR;
        int32_t id = 0;
        long ms;
        int rc;

        rc = parse_broker(m, argv[0], argv[1], &id, err);
        if (rc)
                return rc;
        if (parse_long(argv[2], 0, 3600 * 1000, &ms) == -1)
                return set_error(err, CFD_MOCK_E_ARGUMENT,
                                 "rtt: bad delay '%s' (expected 0..3600000 "
                                 "ms)",
                                 argv[2]);
        kerr = rd_kafka_mock_broker_set_rtt(m->mcluster, id, (int)ms);
        if (kerr)
                return set_error(err, CFD_MOCK_E_KAFKA, "rtt %s: %s",
                                 argv[1], rd_kafka_err2str(kerr));
        return 0;
}

static int cmd_err(struct cfd_mock *m, char **argv,
                   struct cfd_mock_error *err) {
        rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR_NO_ERROR, *errs;
        int16_t api = 0;
        long count = 1, i;
        int rc;

        rc = parse_api(argv[0], argv[1], &api, err);
        if (!rc)
                rc = parse_resp_err(argv[0], argv[2], &kerr, err);
        if (rc)
                return rc;
        if (argv[3] && parse_long(argv[3], 1, MAX_ERR_COUNT, &count) == -1)
                return set_error(err, CFD_MOCK_E_ARGUMENT,
                                 "err: bad count '%s' (expected 1..%d)",
                                 argv[3], MAX_ERR_COUNT);

        errs = malloc((size_t)count * sizeof(*errs));
        if (!errs)
                return set_error(err, CFD_MOCK_E_NOMEM, "out of memory");
        for (i = 0; i < count; i++)
                errs[i] = kerr;
        rd_kafka_mock_push_request_errors_array(m->mcluster, api,
                                                (size_t)count, errs);
        free(errs);
        return 0;
}

static int cmd_clear(struct cfd_mock *m, char **argv,
                     struct cfd_mock_error *err) {
        int16_t api = 0;
        int rc;

        rc = parse_api(argv[0], argv[1], &api, err);
        if (rc)
                return rc;
        rd_kafka_mock_clear_request_errors(m->mcluster, api);
        return 0;
}

static int cmd_topic(struct cfd_mock *m, char **argv,
                     struct cfd_mock_error *err) {
        long parts;

        if (parse_long(argv[2], 1, CFD_MOCK_MAX_PARTITIONS, &parts) == -1)
                return set_error(err, CFD_MOCK_E_ARGUMENT,
                                 "topic: bad partition count '%s' "
                                 "(expected 1..%d)",
                                 argv[2], CFD_MOCK_MAX_PARTITIONS);
        return cfd_mock_topic_create(m, argv[1], (int)parts, err);
}

struct command {
        const char *name;
        int min_args, max_args;
        const char *usage;
        int (*run)(struct cfd_mock *m, char **argv,
                   struct cfd_mock_error *err);
};

static const struct command commands[] = {
        {"down", 1, 1, "down <broker_id>", cmd_updown},
        {"up", 1, 1, "up <broker_id>", cmd_updown},
        {"rtt", 2, 2, "rtt <broker_id> <ms>", cmd_rtt},
        {"err", 2, 3, "err <api> <error> [count]", cmd_err},
        {"clear", 1, 1, "clear <api>", cmd_clear},
        {"topic", 2, 2, "topic <name> <partitions>", cmd_topic},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

/*
 * Splits buf in place at blanks into argv[0..max-1] followed by NULL.
 * Returns the number of words, which may exceed max (the rest are not
 * stored).
 */
static int split_words(char *buf, char **argv, int max) {
        int argc = 0;
        char *save = NULL, *w;

        for (w = strtok_r(buf, " \t\r\n", &save); w;
             w = strtok_r(NULL, " \t\r\n", &save)) {
                if (argc < max)
                        argv[argc] = w;
                argc++;
        }
        argv[argc < max ? argc : max] = NULL;
        return argc;
}

int cfd_mock_command(struct cfd_mock *m, const char *line,
                     struct cfd_mock_error *err) {
        char buf[MAX_LINE + 1];
        char *argv[MAX_WORDS + 1];
        size_t i, len = strlen(line);
        int argc;

        if (len > MAX_LINE)
                return set_error(err, CFD_MOCK_E_ARGUMENT,
                                 "command longer than %d bytes", MAX_LINE);
        memcpy(buf, line, len + 1);
        argc = split_words(buf, argv, MAX_WORDS);
        if (argc == 0)
                return set_error(err, CFD_MOCK_E_COMMAND, "empty command");

        for (i = 0; i < COMMAND_COUNT; i++) {
                const struct command *c = &commands[i];

                if (strcmp(argv[0], c->name))
                        continue;
                if (argc - 1 < c->min_args)
                        return set_error(err, CFD_MOCK_E_ARGUMENT,
                                         "%s: missing argument (usage: %s)",
                                         c->name, c->usage);
                if (argc - 1 > c->max_args)
                        return set_error(err, CFD_MOCK_E_ARGUMENT,
                                         "%s: unexpected argument '%s' "
                                         "(usage: %s)",
                                         c->name, argv[c->max_args + 1],
                                         c->usage);
                return c->run(m, argv, err);
        }
        return set_error(err, CFD_MOCK_E_COMMAND,
                         "unknown command '%s' (expected down, up, rtt, "
                         "err, clear or topic)",
                         argv[0]);
}

const char *cfd_mock_err_name(int code) {
        switch (code) {
        case CFD_MOCK_OK:
                return "CFD_MOCK_OK";
        case CFD_MOCK_E_PARAM:
                return "CFD_MOCK_E_PARAM";
        case CFD_MOCK_E_NOMEM:
                return "CFD_MOCK_E_NOMEM";
        case CFD_MOCK_E_KAFKA:
                return "CFD_MOCK_E_KAFKA";
        case CFD_MOCK_E_SOCKET:
                return "CFD_MOCK_E_SOCKET";
        case CFD_MOCK_E_COMMAND:
                return "CFD_MOCK_E_COMMAND";
        case CFD_MOCK_E_ARGUMENT:
                return "CFD_MOCK_E_ARGUMENT";
        }
        return "CFD_MOCK_E_UNKNOWN";
}

const char *cfd_mock_strerror(int code) {
        switch (code) {
        case CFD_MOCK_OK:
                return "success";
        case CFD_MOCK_E_PARAM:
                return "argument out of range";
        case CFD_MOCK_E_NOMEM:
                return "out of memory";
        case CFD_MOCK_E_KAFKA:
                return "librdkafka refused the operation";
        case CFD_MOCK_E_SOCKET:
                return "listening sockets not found or not tuned";
        case CFD_MOCK_E_COMMAND:
                return "unknown command";
        case CFD_MOCK_E_ARGUMENT:
                return "bad or missing command argument";
        }
        return "unknown error";
}
