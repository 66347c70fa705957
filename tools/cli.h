/*
 * cli.h - long options for confidentctl subcommands, table driven.
 *
 * Accepts "--name value", "--name=value" and, for flags, "--name".  No
 * global state (unlike getopt), so a command can be run several times in
 * one process, as the tests do.  Errors go to stderr as
 * "confidentctl CMD: --name: msg" and are usage errors (exit status 2).
 */
#ifndef CFD_TOOLS_CLI_H
#define CFD_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>

enum cli_type {
        CLI_FLAG = 0, /* bool *: set to true, takes no value */
        CLI_STRING,   /* const char **: points into argv */
        CLI_UNSIGNED, /* unsigned *: integer in [min, max] */
        CLI_U64,      /* uint64_t *: any unsigned 64-bit integer */
        CLI_DOUBLE,   /* double *: finite number in [min, max] */
};

struct cli_opt {
        const char *name;   /* "classes" for --classes */
        enum cli_type type;
        void *dest;         /* filled when the option is given */
        double min, max;    /* CLI_UNSIGNED and CLI_DOUBLE only */
        bool *given;        /* if not NULL, set to true when given */
};

enum cli_result {
        CLI_OK = 0,
        CLI_HELP = 1,       /* --help or -h was given */
        CLI_E_USAGE = -1,   /* message printed to stderr */
};

/*
 * Parses argv[1..argc-1] (argv[0] is the subcommand name, used in error
 * messages) against n options.  Returns CLI_OK, CLI_HELP, or CLI_E_USAGE
 * after printing what is wrong.  A later option overrides an earlier one.
 */
int cli_parse(int argc, char **argv, const struct cli_opt *opts, size_t n);

/*
 * cli_parse() for a command's entry point: prints usage on stdout for
 * --help.  Returns -1 when the command should go on, else its exit
 * status: 0 after --help, 2 after a usage error.
 */
int cli_parse_command(int argc, char **argv, const struct cli_opt *opts,
                      size_t n, const char *usage);

/*
 * Checks a Kafka topic name given to option opt (without "--"): 1 to 249
 * characters of A-Z a-z 0-9 . _ -, and neither "." nor "..".  Returns
 * CLI_OK, or CLI_E_USAGE after printing what is wrong.
 */
int cli_check_topic(const char *cmd, const char *opt, const char *name);

/*
 * Checks a --property NAME=VALUE argument: NAME non-empty and not one of
 * the properties that choose the brokers (bootstrap.servers,
 * metadata.broker.list), which --brokers sets.  Returns CLI_OK, or
 * CLI_E_USAGE after printing what is wrong.
 */
int cli_check_property(const char *cmd, const char *arg);

#endif /* CFD_TOOLS_CLI_H */
