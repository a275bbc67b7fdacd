/* cli.h - shared parts of the `tern` command line tool: the subcommands, the options common to
 * pub/sub/rr (parsed once into struct cli), connection helpers and exit codes.
 * A struct cli is owned by its subcommand's main function; strings point into argv. */
#ifndef TERN_TOOLS_CLI_H
#define TERN_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tern/tern.h"

/* Exit codes, documented in docs/CLI.md. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_CONN = 1,    /* could not connect, connection refused or lost, protocol error */
    CLI_EXIT_USAGE = 2,   /* bad command line */
    CLI_EXIT_TIMEOUT = 3, /* -W elapsed before the work was done */
    CLI_EXIT_REFUSED = 4, /* a PUBLISH or SUBSCRIBE was refused by the broker (reason >= 0x80) */
    CLI_EXIT_IO = 5,      /* local I/O failure (reading -f file, stdin) */
};

#define CLI_MAX_TOPICS 64
#define CLI_MAX_PROPS  64

enum cli_cmd { CLI_PUB, CLI_SUB, CLI_RR };

struct cli {
    enum cli_cmd cmd;
    const char *name; /* "pub", "sub", "rr" */
    struct tern_client_options o;
    char client_id_buf[64];

    const char *topics[CLI_MAX_TOPICS];
    size_t n_topics;
    const char *message; /* -m */
    size_t message_len;
    const char *file;  /* -f */
    bool stdin_lines;  /* -l */
    bool stdin_whole;  /* -s */
    bool null_message; /* -n */
    int qos;
    bool retain;
    bool clean_given;           /* -c seen */
    bool expiry_given;          /* -x seen */
    long count;                 /* -C, 0 = unlimited */
    double timeout_s;           /* -W, 0 = none */
    bool verbose;               /* -v */
    const char *format;         /* -F */
    bool no_newline;            /* -N */
    bool quiet;                 /* --quiet: no error messages */
    bool debug;                 /* -d: progress lines on stderr (connected, subscribed) */
    const char *response_topic; /* -e (rr) */
    const char *correlation;    /* --correlation-data */
    bool no_retained;           /* -R (sub): do not print messages with the retain flag */

    /* v5 properties */
    struct tern_properties pub_props; /* PUBLISH (pub, rr) */
    struct tern_user_property pub_user[CLI_MAX_PROPS];
    struct tern_user_property connect_user[CLI_MAX_PROPS];
    struct tern_user_property sub_user[CLI_MAX_PROPS];
    size_t n_sub_user;
    uint32_t sub_id;
    struct tern_properties will_props;
    struct tern_user_property will_user[CLI_MAX_PROPS];
};

/* Parses argv (argv[0] is the subcommand name) into a. Returns -1 when parsing succeeded, or an
 * exit code to return at once (0 after --help, CLI_EXIT_USAGE after printing the problem). */
int cli_parse(struct cli *a, int argc, char **argv);

/* Prints "tern <cmd>: " + message to stderr (unless --quiet). */
void cli_error(const struct cli *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates the client from a->o, connects and steps until CONNACK (or failure, reported).
 * Returns 0 with *out set, or an exit code. The callbacks in a->o.cb are installed. */
int cli_connect(struct cli *a, tern_client **out);

/* Milliseconds of wall time left until deadline_ms (monotonic), or -1 when deadline_ms < 0. */
int cli_left_ms(int64_t deadline_ms);
int64_t cli_now_ms(void);

/* Blocks SIGINT, SIGTERM and SIGHUP and returns a signalfd for them (-1 on failure). */
int cli_signal_fd(void);
#define CLI_WAIT_SIGNAL 1
#define CLI_WAIT_INPUT  2
/* Caller's-loop round: polls the client's socket, sig_fd and in_fd (either may be -1) for at
 * most timeout_ms (-1: until the client's next timer), then runs tern_client_step(c, 0).
 * Returns CLI_WAIT_* bits for sig_fd / in_fd readiness. */
int cli_wait(tern_client *c, int sig_fd, int in_fd, int timeout_ms);

/* Prints one received message as selected by -v / -F / -N. */
void cli_print_message(const struct cli *a, const struct tern_message *m);

int cmd_pub(int argc, char **argv);
int cmd_sub(int argc, char **argv);
int cmd_rr(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_passwd(int argc, char **argv);

#endif
