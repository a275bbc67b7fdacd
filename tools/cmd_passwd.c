/* cmd_passwd.c - `tern passwd`: create, update and delete entries of a password file in the
 * format ternd and mosquitto_passwd share (PBKDF2-SHA512 "$7$"), or with SCRAM-SHA-256
 * verifiers (--scram) for MQTT 5 enhanced authentication. The password is read from the
 * terminal without echo (twice), or given with -b for scripts. The file is rewritten through a
 * temporary file and rename(), so a crash never leaves it half written. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "auth/auth.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "Usage: tern passwd [-c] [--scram] [-I ITERATIONS] FILE USER\n"
               "       tern passwd [-c] [--scram] [-I ITERATIONS] -b FILE USER PASSWORD\n"
               "       tern passwd -D FILE USER\n"
               "Creates or updates USER in the password file FILE (mosquitto_passwd format).\n"
               "  -c          create FILE (overwrites an existing one)\n"
               "  -b          batch mode: the password is the last argument\n"
               "  -D          delete USER\n"
               "  --scram     store a SCRAM-SHA-256 verifier (for MQTT 5 enhanced authentication;\n"
               "              it also checks plain MQTT passwords)\n"
               "  -I N        iterations (default 101 for PBKDF2-SHA512, 4096 for SCRAM)\n"
               "The password is never echoed. Exit codes: 0 done, 1 error, 2 usage.\n");
}

static int read_password(char *buf, size_t cap, const char *prompt)
{
    struct termios old, quiet;
    bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        fprintf(stderr, "%s", prompt);
    }
    char *r = fgets(buf, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (!r)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

/* Rewrites FILE without USER's line, then appends `line` (NULL: delete only). */
static int rewrite(const char *path, const char *user, const char *line, bool create)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *in = create ? NULL : fopen(path, "r");
    if (!create && !in) {
        fprintf(stderr, "tern passwd: %s: %s\n", path, strerror(errno));
        return 1;
    }
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fprintf(stderr, "tern passwd: %s: %s\n", tmp, strerror(errno));
        if (in)
            fclose(in);
        return 1;
    }
    fchmod(fileno(out), 0600);
    char buf[8192];
    size_t ul = strlen(user);
    bool found = false;
    while (in && fgets(buf, sizeof buf, in)) {
        if (strncmp(buf, user, ul) == 0 && buf[ul] == ':') {
            found = true;
            continue;
        }
        fputs(buf, out);
    }
    if (in)
        fclose(in);
    if (line)
        fprintf(out, "%s:%s\n", user, line);
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "tern passwd: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    if (!line && !found) {
        fprintf(stderr, "tern passwd: user '%s' not found in %s\n", user, path);
        return 1;
    }
    return 0;
}

int cmd_passwd(int argc, char **argv)
{
    bool create = false, batch = false, del = false, scram = false;
    int iterations = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "-c"))
            create = true;
        else if (!strcmp(argv[i], "-b"))
            batch = true;
        else if (!strcmp(argv[i], "-D"))
            del = true;
        else if (!strcmp(argv[i], "--scram"))
            scram = true;
        else if (!strcmp(argv[i], "-I") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 10000000) {
                fprintf(stderr, "tern passwd: -I: iterations must be 1..10000000\n");
                return 2;
            }
            iterations = (int)v;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    int rest = argc - i;
    if (rest != (batch ? 3 : 2) || (del && (batch || create))) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[i], *user = argv[i + 1];
    if (!*user || strchr(user, ':') || strchr(user, '\n')) {
        fprintf(stderr, "tern passwd: user names cannot be empty or contain ':'\n");
        return 2;
    }
    if (del)
        return rewrite(path, user, NULL, false);
    char pw[1024], again[1024];
    if (batch) {
        snprintf(pw, sizeof pw, "%s", argv[i + 2]);
    } else {
        if (read_password(pw, sizeof pw, "Password: ") ||
            read_password(again, sizeof again, "Reenter password: ")) {
            fprintf(stderr, "tern passwd: no password read\n");
            return 1;
        }
        if (strcmp(pw, again) != 0) {
            fprintf(stderr, "tern passwd: passwords do not match\n");
            return 1;
        }
    }
    char hash[512];
    if (!iterations)
        iterations = scram ? 4096 : 101;
    if (auth_hash_password((const uint8_t *)pw, strlen(pw), iterations, scram, hash,
                           sizeof hash)) {
        fprintf(stderr, "tern passwd: cannot hash the password\n");
        return 1;
    }
    memset(pw, 0, sizeof pw);
    memset(again, 0, sizeof again);
    return rewrite(path, user, hash, create);
}
