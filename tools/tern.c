/* tern.c - entry point of the `tern` command line tool: dispatches to the subcommands
 * (pub, sub, rr, bench), each of which parses its own options and prints its own --help. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *what;
} commands[] = {
    {"pub", cmd_pub, "publish a message (like mosquitto_pub)"},
    {"sub", cmd_sub, "subscribe and print messages (like mosquitto_sub)"},
    {"rr", cmd_rr, "MQTT 5 request/response: publish a request, print the response"},
    {"bench", cmd_bench, "load generator: pairs, fanout, fanin, latency, connections"},
    {"passwd", cmd_passwd, "manage a password file (mosquitto_passwd format, SCRAM verifiers)"},
};

static void usage(FILE *f)
{
    fprintf(f, "Usage: tern COMMAND [options]   (tern COMMAND --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].what);
    fprintf(f, "\nSee docs/CLI.md. Version " TERN_VERSION ".\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tern " TERN_VERSION "\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tern: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
