/*
 * cmds.h - subcommands of confidentctl.  Each takes the arguments after
 * its name (argv[0] is the subcommand name) and returns the process exit
 * status: 0 success, 1 failure, 2 usage error.
 */
#ifndef CFD_TOOLS_CMDS_H
#define CFD_TOOLS_CMDS_H

int cmd_broker(int argc, char **argv);   /* embedded (mock) Kafka broker */
int cmd_replay(int argc, char **argv);   /* CSV + .npy -> input topic */
int cmd_evaluate(int argc, char **argv); /* output topics -> P, R, F1 */
int cmd_simulate(int argc, char **argv); /* synthetic labels + probs */
int cmd_score(int argc, char **argv);    /* core, offline, in order */
int cmd_batch(int argc, char **argv);    /* exact cleanlab batch mode */

#endif /* CFD_TOOLS_CMDS_H */
