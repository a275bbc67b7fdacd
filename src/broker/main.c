/* main.c - ternd: command line, configuration, signals, startup and graceful shutdown.
 *
 * The main thread blocks SIGTERM/SIGINT/SIGHUP before starting the workers (which inherit the
 * mask) and then waits for them with sigwait(): handlers never run, so nothing here is
 * async-signal-unsafe. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"

int broker_init(struct broker *b, struct config *conf, char *err, size_t errlen);
void broker_fini(struct broker *b);
void broker_apply_log(struct broker *b, const struct config *c);
int broker_reload(struct broker *b, const char *path);

static void usage(FILE *f)
{
    fprintf(f, "usage: ternd [-c FILE] [-p PORT] [-v] [--ready-file PATH]\n"
               "  -c, --config FILE     configuration file (Mosquitto syntax; see --help-config)\n"
               "  -p, --port PORT       port of the default/first listener (0 = any free port)\n"
               "  -v, --verbose         log everything (log_type all)\n"
               "      --ready-file PATH when listening, write 'listen mqtt ADDR PORT' lines there\n"
               "      --help-config     list every configuration directive\n"
               "      --version         print the version\n"
               "Without -c, ternd listens on localhost:1883 and allows anonymous clients there.\n"
               "When all listeners are bound, ternd prints one 'listen mqtt ADDR PORT' line per\n"
               "listener and then 'ready' on standard output.\n");
}

static int write_ready_file(const char *path, const char *text);

static int write_ready(struct broker *b, const char *path)
{
    char text[CONF_MAX_LISTENERS * 96 + 8];
    size_t off = 0;
    for (int i = 0; i < b->n_listeners; i++) {
        const char *addr = b->listeners[i].conf->bind_address;
        off += (size_t)snprintf(text + off, sizeof text - off, "listen mqtt %s %d\n",
                                addr && *addr ? addr : "*", b->listeners[i].port);
    }
    int rc = 0;
    if (path) /* the file first: whoever reads "ready" on stdout may read the file at once */
        rc = write_ready_file(path, text);
    fputs(text, stdout);
    fputs("ready\n", stdout);
    fflush(stdout);
    return rc;
}

/* Writes the ready lines to path atomically (temporary file + rename). */
static int write_ready_file(const char *path, const char *text)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fputs(text, f);
    fputs("ready\n", f);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"port", required_argument, 0, 'p'},
        {"verbose", no_argument, 0, 'v'},      {"ready-file", required_argument, 0, 'r'},
        {"help-config", no_argument, 0, 'H'},  {"version", no_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0},
    };
    const char *conf_path = NULL, *ready_path = NULL;
    long port = -1;
    bool verbose = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:p:vhd", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': conf_path = optarg; break;
        case 'p': {
            char *end;
            errno = 0;
            port = strtol(optarg, &end, 10);
            if (errno || *end || port < 0 || port > 65535) {
                fprintf(stderr, "ternd: invalid port '%s' (0-65535)\n", optarg);
                return 2;
            }
            break;
        }
        case 'v': verbose = true; break;
        case 'r': ready_path = optarg; break;
        case 'H': conf_print_help(stdout); return 0;
        case 'V': printf("ternd %s\n", TERN_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        case 'd':
            fprintf(stderr, "ternd: -d (daemon) is not supported; use a service manager\n");
            return 2;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    static struct broker b; /* zeroed; the one broker of this process, passed down from here */
    mem_init(&b.mem);
    log_init(&b.log);
    struct config *conf = mem_calloc(&b.mem, MEM_CONFIG, sizeof *conf);
    if (!conf)
        return 1;
    conf_defaults(conf);
    char err[512];
    if (conf_path && conf_load_file(&b.mem, conf, conf_path, err, sizeof err)) {
        fprintf(stderr, "ternd: configuration error: %s\n", err);
        conf_free(&b.mem, conf);
        mem_free(&b.mem, MEM_CONFIG, conf);
        return 3;
    }
    conf_finish(&b.mem, conf);
    if (port >= 0)
        conf->listeners[0].port = (int)port;
    if (verbose)
        conf->log_type = LOG_ALL_LEVELS;
    broker_apply_log(&b, conf);

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    int status = 0;
    if (broker_init(&b, conf, err, sizeof err)) {
        log_write(&b.log, LOG_ERR, "cannot start: %s", err);
        status = 1;
        goto out;
    }
    if (worker_start_all(&b)) {
        status = 1;
        goto out;
    }
    for (int i = 0; i < b.n_listeners; i++)
        log_write(&b.log, LOG_NOTICE, "listening on %s port %d (anonymous %s)",
                  conf->listeners[i].bind_address ? conf->listeners[i].bind_address : "*",
                  b.listeners[i].port, b.listeners[i].anonymous ? "allowed" : "refused");
    if (conf->pid_file) {
        FILE *pf = fopen(conf->pid_file, "w");
        if (!pf || fprintf(pf, "%ld\n", (long)getpid()) < 0 || fclose(pf) != 0)
            log_write(&b.log, LOG_WARN, "cannot write pid_file %s", conf->pid_file);
    }
    if (write_ready(&b, ready_path))
        log_write(&b.log, LOG_WARN, "cannot write ready file %s", ready_path);
    for (;;) {
        int sig;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            (void)broker_reload(&b, conf_path);
            continue;
        }
        log_write(&b.log, LOG_NOTICE, "signal %d received, shutting down", sig);
        break;
    }
    worker_stop_all(&b);
    if (conf->pid_file)
        unlink(conf->pid_file);
out:
    broker_fini(&b);
    conf_free(&b.mem, conf);
    mem_free(&b.mem, MEM_CONFIG, conf);
    if (status == 0)
        log_write(&b.log, LOG_NOTICE, "stopped");
    log_close(&b.log);
    return status;
}
