/*
 * cli.c - table-driven long options.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_TOPIC_MAX 249 /* Kafka's longest topic name */

static int usage_error(const char *cmd, const char *name, const char *msg,
                       const char *value)
{
        if (value != NULL)
                fprintf(stderr, "confidentctl %s: --%s: %s, got '%s'\n", cmd,
                        name, msg, value);
        else
                fprintf(stderr, "confidentctl %s: --%s: %s\n", cmd, name, msg);
        return CLI_E_USAGE;
}

/* Finds the option named by arg ("--name" or "--name=value"). */
static const struct cli_opt *find_opt(const char *arg,
                                      const struct cli_opt *opts, size_t n,
                                      const char **ret_inline)
{
        const char *name = arg + 2;
        size_t len = strcspn(name, "=");
        size_t i;

        for (i = 0; i < n; i++) {
                if (strlen(opts[i].name) == len &&
                    memcmp(opts[i].name, name, len) == 0) {
                        *ret_inline = name[len] == '=' ? name + len + 1
                                                       : NULL;
                        return &opts[i];
                }
        }
        return NULL;
}

static int parse_unsigned(const char *cmd, const struct cli_opt *o,
                          const char *value)
{
        char msg[96];
        char *end;
        double v;

        snprintf(msg, sizeof(msg), "expected an integer from %.0f to %.0f",
                 o->min, o->max);
        if (value[0] < '0' || value[0] > '9')
                return usage_error(cmd, o->name, msg, value);
        errno = 0;
        v = (double)strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0' || v < o->min || v > o->max)
                return usage_error(cmd, o->name, msg, value);
        *(unsigned *)o->dest = (unsigned)v;
        return CLI_OK;
}

static int parse_u64(const char *cmd, const struct cli_opt *o,
                     const char *value)
{
        const char *msg = "expected an unsigned 64-bit integer";
        unsigned long long v;
        char *end;

        if (value[0] < '0' || value[0] > '9')
                return usage_error(cmd, o->name, msg, value);
        errno = 0;
        v = strtoull(value, &end, 10);
        if (errno != 0 || *end != '\0')
                return usage_error(cmd, o->name, msg, value);
        *(uint64_t *)o->dest = (uint64_t)v;
        return CLI_OK;
}

static int parse_double(const char *cmd, const struct cli_opt *o,
                        const char *value)
{
        char msg[96];
        char *end;
        double v;

        snprintf(msg, sizeof(msg), "expected a number from %g to %g", o->min,
                 o->max);
        errno = 0;
        v = strtod(value, &end);
        if (end == value || *end != '\0' || errno == ERANGE || !isfinite(v) ||
            v < o->min || v > o->max)
                return usage_error(cmd, o->name, msg, value);
        *(double *)o->dest = v;
        return CLI_OK;
}

static int set_value(const char *cmd, const struct cli_opt *o,
                     const char *value)
{
        switch (o->type) {
        case CLI_FLAG:
                *(bool *)o->dest = true;
                return CLI_OK;
        case CLI_STRING:
                if (value[0] == '\0')
                        return usage_error(cmd, o->name,
                                           "expected a non-empty value",
                                           NULL);
                *(const char **)o->dest = value;
                return CLI_OK;
        case CLI_UNSIGNED:
                return parse_unsigned(cmd, o, value);
        case CLI_U64:
                return parse_u64(cmd, o, value);
        case CLI_DOUBLE:
                return parse_double(cmd, o, value);
        }
        return CLI_E_USAGE;
}

/* Handles argv[*i], advancing *i past a separate value. */
static int parse_one(int argc, char **argv, int *i,
                     const struct cli_opt *opts, size_t n)
{
        const char *cmd = argv[0], *arg = argv[*i], *value;
        const struct cli_opt *o;
        int rc;

        if (arg[0] != '-' || arg[1] != '-' || arg[2] == '\0') {
                fprintf(stderr, "confidentctl %s: unexpected argument '%s'\n",
                        cmd, arg);
                return CLI_E_USAGE;
        }
        o = find_opt(arg, opts, n, &value);
        if (o == NULL) {
                fprintf(stderr, "confidentctl %s: unknown option '%s'\n", cmd,
                        arg);
                return CLI_E_USAGE;
        }
        if (o->type == CLI_FLAG && value != NULL)
                return usage_error(cmd, o->name, "takes no value", NULL);
        if (o->type != CLI_FLAG && value == NULL) {
                if (*i + 1 >= argc)
                        return usage_error(cmd, o->name, "needs a value",
                                           NULL);
                value = argv[++*i];
        }
        rc = set_value(cmd, o, value);
        if (rc == CLI_OK && o->given != NULL)
                *o->given = true;
        return rc;
}

int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t n)
{
        int i, rc;

        for (i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--help") == 0 ||
                    strcmp(argv[i], "-h") == 0)
                        return CLI_HELP;
        }
        for (i = 1; i < argc; i++) {
                rc = parse_one(argc, argv, &i, opts, n);
                if (rc != CLI_OK)
                        return rc;
        }
        return CLI_OK;
}

int cli_parse_command(int argc, char **argv, const struct cli_opt *opts,
                      size_t n, const char *usage)
{
        int rc = cli_parse(argc, argv, opts, n);

        if (rc == CLI_HELP) {
                fputs(usage, stdout);
                return 0;
        }
        return rc == CLI_OK ? -1 : 2;
}

int cli_check_topic(const char *cmd, const char *opt, const char *name)
{
        static const char allowed[] = "abcdefghijklmnopqrstuvwxyz"
                                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                      "0123456789._-";
        size_t len = strlen(name);

        if (len == 0 || len > CLI_TOPIC_MAX || strspn(name, allowed) != len ||
            strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return usage_error(cmd, opt,
                                   "invalid topic name (Kafka allows 1 to "
                                   "249 characters of A-Z a-z 0-9 . _ -, "
                                   "not '.' or '..')",
                                   name);
        return CLI_OK;
}

int cli_check_property(const char *cmd, const char *arg)
{
        static const char *const refused[] = {"bootstrap.servers",
                                              "metadata.broker.list"};
        const char *eq = strchr(arg, '=');
        size_t len, i;

        if (eq == NULL || eq == arg)
                return usage_error(cmd, "property", "expected NAME=VALUE",
                                   arg);
        len = (size_t)(eq - arg);
        for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
                if (strlen(refused[i]) == len &&
                    memcmp(refused[i], arg, len) == 0) {
                        fprintf(stderr,
                                "confidentctl %s: --property: %s is "
                                "refused here; use --brokers to choose "
                                "the brokers\n",
                                cmd, refused[i]);
                        return CLI_E_USAGE;
                }
        }
        return CLI_OK;
}
