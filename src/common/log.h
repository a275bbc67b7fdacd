/* log.h - leveled logging with timestamps to stderr, a file or syslog.
 *
 * A struct log lives in struct broker; every thread logs through it. Each line is formatted into
 * a stack buffer and written with one write(2), so lines from threads never interleave.
 * Configuration (mask, destinations) is set before threads start or swapped atomically on reload.
 */
#ifndef TERN_COMMON_LOG_H
#define TERN_COMMON_LOG_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

enum log_level {
    LOG_ERR = 1 << 0,
    LOG_WARN = 1 << 1,
    LOG_NOTICE = 1 << 2,
    LOG_INFO = 1 << 3,
    LOG_DEBUG = 1 << 4,
    LOG_SUB = 1 << 5, /* subscribe/unsubscribe events (mosquitto "subscribe") */
    LOG_ALL_LEVELS = 0x3F,
};

enum log_dest {
    LOG_DEST_STDERR = 1 << 0,
    LOG_DEST_STDOUT = 1 << 1,
    LOG_DEST_FILE = 1 << 2,
    LOG_DEST_SYSLOG = 1 << 3,
    LOG_DEST_NONE = 1 << 4,
};

struct log {
    _Atomic int mask;  /* enabled levels */
    _Atomic int dests; /* enum log_dest bits */
    _Atomic int fd;    /* file destination, -1 when none */
    _Atomic bool timestamps;
};

/* Defaults: errors, warnings, notices and info to stderr with timestamps. */
void log_init(struct log *l);
/* Opens (append) path as the file destination; returns 0 or TERN_EIO. */
int log_open_file(struct log *l, const char *path);
/* Closes a file destination if one is open. */
void log_close(struct log *l);
/* True when lines of this level would be written (check before formatting costly args). */
bool log_enabled(const struct log *l, enum log_level lvl);
/* Writes one line. fmt is printf-style; no trailing newline needed. */
void log_write(struct log *l, enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(struct log *l, enum log_level lvl, const char *fmt, va_list ap);
/* Parses a mosquitto log_type word ("error", "warning", "notice", "information", "debug",
 * "subscribe", "all", "none") into level bits; returns -1 when unknown. */
int log_level_parse(const char *word);

/* Rate limiter for repeated warnings: allows `burst` lines per `period_s` seconds per limiter,
 * counts the rest. Owned by one thread. */
struct log_ratelimit {
    long long window_start;
    unsigned count;
    unsigned suppressed;
};
/* Returns true when a line may be written now (now_s: monotonic seconds). When a window closes
 * with suppressed lines, *suppressed_out receives their count (else 0). */
bool log_ratelimit_ok(struct log_ratelimit *rl, long long now_s, unsigned burst,
                      unsigned *suppressed_out);

#endif
