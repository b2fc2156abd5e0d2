/* commands.h - the evograd subcommands. Each returns the process exit status:
 * 0 success, 1 bad input, 2 usage, 3 the run failed, 130/143 stopped by SIGINT/SIGTERM. */
#ifndef EG_COMMANDS_H
#define EG_COMMANDS_H

#include <stdbool.h>
#include <stdio.h>

enum { EXIT_USAGE = 2, EXIT_RUN_FAILED = 3 };

// What a command's argument parser returns to go on (else it returns the exit status).
enum { ARGS_PARSED = -1 };

// mkdir -p path. False with errno set on failure.
bool make_dirs(const char *path);

// name, argv[0..argc-1], NULL: a command's arguments as getopt wants them (it permutes them).
// Caller frees the vector.
char **getopt_vector(int argc, char **argv, const char *name);

// The usage error of getopt_long's return c (':' a missing value, else an unknown option) for
// the option word opt, in "evograd CMD: ..." form.
void option_error(const char *cmd, int c, const char *opt);

// Writes w as one shell word: as it is when plain, else in single quotes.
void print_shell_word(FILE *f, const char *w);

// evograd run CONFIG [key=value ...] [--out DIR] [--resume] [--quiet]
int cmd_run(int argc, char **argv);
// evograd check CONFIG [key=value ...]
int cmd_check(int argc, char **argv);
// evograd sweep CONFIG [key=AXIS ...] [-j N | --slurm FILE ...]; argv0 names this program (for the runs)
int cmd_sweep(int argc, char **argv, const char *argv0);
// evograd table RUNS.csv|FOLDER [--where KEY=VALUE] [--metric COLUMN ...] [--format md|csv]
//     [--x KEY] | --curve COLUMN | --keys all|numeric
int cmd_table(int argc, char **argv);

#endif // EG_COMMANDS_H
