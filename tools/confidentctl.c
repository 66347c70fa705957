/*
 * confidentctl.c - the command-line companion of confidentd: dispatches
 * to the subcommands of cmds.h.
 */
#include "cmds.h"

#include <stdio.h>
#include <string.h>

#ifndef CFD_VERSION
#define CFD_VERSION "unknown"
#endif

struct command {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
};

static const struct command commands[] = {
        {"broker", cmd_broker, "run an embedded (mock) Kafka broker"},
        {"replay", cmd_replay, "send a labels CSV + .npy to a Kafka topic"},
        {"evaluate", cmd_evaluate,
         "read the output topics, report precision and recall"},
        {"simulate", cmd_simulate,
         "write a synthetic annotation stream and model probabilities"},
        {"score", cmd_score, "run the streaming filter offline over files"},
        {"batch", cmd_batch, "exact batch confident learning over files"},
        {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
        const struct command *c;

        fprintf(out, "usage: confidentctl <command> [options]\n"
                     "       confidentctl <command> --help\n"
                     "       confidentctl help [command]\n"
                     "       confidentctl --version\n"
                     "\n"
                     "commands:\n");
        for (c = commands; c->name != NULL; c++)
                fprintf(out, "  %-10s %s\n", c->name, c->summary);
        if (commands[0].name == NULL)
                fprintf(out, "  (none in this build)\n");
}

static const struct command *find_command(const char *name)
{
        const struct command *c;

        for (c = commands; c->name != NULL; c++)
                if (strcmp(c->name, name) == 0)
                        return c;
        return NULL;
}

static int unknown_command(const char *name)
{
        fprintf(stderr, "confidentctl: unknown command '%s'\n\n", name);
        usage(stderr);
        return 2;
}

/* "help" alone lists the commands; "help CMD" runs "CMD --help". */
static int help(int argc, char **argv)
{
        const struct command *c;
        char *args[3];

        if (argc < 2) {
                usage(stdout);
                return 0;
        }
        c = find_command(argv[1]);
        if (c == NULL)
                return unknown_command(argv[1]);
        args[0] = argv[1];
        args[1] = "--help";
        args[2] = NULL;
        return c->run(2, args);
}

int main(int argc, char **argv)
{
        const struct command *c;

        if (argc < 2) {
                usage(stderr);
                return 2;
        }
        if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
            strcmp(argv[1], "-h") == 0)
                return help(argc - 1, argv + 1);
        if (strcmp(argv[1], "--version") == 0) {
                printf("confidentctl %s\n", CFD_VERSION);
                return 0;
        }
        c = find_command(argv[1]);
        if (c == NULL)
                return unknown_command(argv[1]);
        return c->run(argc - 1, argv + 1);
}
