/*
 * cli: the `dlpgate` command line. Every problem a user can cause is one
 * line on stderr naming the thing and the fix, and exit code 2.
 */
#ifndef DLPGATE_CLI_H
#define DLPGATE_CLI_H

#include <stdbool.h>

#define CLI_EXIT_USAGE 2

void cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* argv[*i] is "--name" or "--name=value": returns the value (advancing *i
 * for the separate form) or fails naming the flag. */
const char *cli_value(int argc, char **argv, int *i, const char *name);
bool cli_is(const char *arg, const char *name);
/* A readable regular file, or fail naming the flag. */
void cli_check_readable(const char *flag, const char *path);
/* The --state-dir DIR of a command that takes nothing else (from argv[first]
 * on), or fail naming cmd. */
const char *cli_state_dir_only(int argc, char **argv, int first, const char *cmd);

int cli_run(int argc, char **argv);
int cli_ca(int argc, char **argv);
int cli_check(int argc, char **argv);
int cli_test(int argc, char **argv);
int cli_scan(int argc, char **argv);
int cli_import(int argc, char **argv);
int cli_edm(int argc, char **argv);
int cli_redirect(int argc, char **argv);
int cli_spool(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_pinned(int argc, char **argv);
int cli_policy(int argc, char **argv);
void cli_usage(void);

#endif
