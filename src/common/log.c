/* log.c - leveled logging (see log.h). */
#include "common/log.h"

#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void log_init(struct log *l)
{
    atomic_store(&l->mask, LOG_ERR | LOG_WARN | LOG_NOTICE | LOG_INFO);
    atomic_store(&l->dests, LOG_DEST_STDERR);
    atomic_store(&l->fd, -1);
    atomic_store(&l->timestamps, true);
}

int log_open_file(struct log *l, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return TERN_EIO;
    int old = atomic_exchange(&l->fd, fd);
    if (old >= 0)
        close(old);
    return 0;
}

void log_close(struct log *l)
{
    int old = atomic_exchange(&l->fd, -1);
    if (old >= 0)
        close(old);
}

bool log_enabled(const struct log *l, enum log_level lvl)
{
    return (atomic_load_explicit(&l->mask, memory_order_relaxed) & (int)lvl) != 0;
}

static const char *level_name(enum log_level lvl)
{
    switch (lvl) {
    case LOG_ERR: return "error";
    case LOG_WARN: return "warning";
    case LOG_NOTICE: return "notice";
    case LOG_INFO: return "info";
    case LOG_DEBUG: return "debug";
    case LOG_SUB: return "subscribe";
    default: return "log";
    }
}

static int syslog_priority(enum log_level lvl)
{
    /* syslog.h's LOG_* names clash with ours, so use the numeric priorities. */
    switch (lvl) {
    case LOG_ERR: return 3;    /* LOG_ERR */
    case LOG_WARN: return 4;   /* LOG_WARNING */
    case LOG_NOTICE: return 5; /* LOG_NOTICE */
    case LOG_INFO: return 6;   /* LOG_INFO */
    default: return 7;         /* LOG_DEBUG */
    }
}

void syslog_line(int priority, const char *msg); /* syslog.c */

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

void log_vwrite(struct log *l, enum log_level lvl, const char *fmt, va_list ap)
{
    if (!log_enabled(l, lvl))
        return;
    char line[2048];
    size_t off = 0;
    if (atomic_load_explicit(&l->timestamps, memory_order_relaxed)) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        off = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        off += (size_t)snprintf(line + off, sizeof line - off, ".%03ldZ ", ts.tv_nsec / 1000000);
    }
    off += (size_t)snprintf(line + off, sizeof line - off, "%s: ", level_name(lvl));
    size_t msg_start = off;
    int n = vsnprintf(line + off, sizeof line - off, fmt, ap);
    if (n < 0)
        n = 0;
    off += (size_t)n;
    if (off > sizeof line - 2)
        off = sizeof line - 2;
    line[off++] = '\n';
    int dests = atomic_load_explicit(&l->dests, memory_order_relaxed);
    if (dests & LOG_DEST_STDERR)
        write_all(2, line, off);
    if (dests & LOG_DEST_STDOUT)
        write_all(1, line, off);
    if (dests & LOG_DEST_FILE) {
        int fd = atomic_load_explicit(&l->fd, memory_order_relaxed);
        if (fd >= 0)
            write_all(fd, line, off);
    }
    if (dests & LOG_DEST_SYSLOG) {
        line[off - 1] = '\0';
        syslog_line(syslog_priority(lvl), line + msg_start);
    }
}

void log_write(struct log *l, enum log_level lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(l, lvl, fmt, ap);
    va_end(ap);
}

int log_level_parse(const char *w)
{
    static const struct {
        const char *name;
        int bits;
    } t[] = {
        {"error", LOG_ERR},      {"warning", LOG_WARN},
        {"notice", LOG_NOTICE},  {"information", LOG_INFO},
        {"info", LOG_INFO},      {"debug", LOG_DEBUG},
        {"subscribe", LOG_SUB},  {"unsubscribe", LOG_SUB},
        {"all", LOG_ALL_LEVELS}, {"none", 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(w, t[i].name) == 0)
            return t[i].bits;
    return -1;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, long long now_s, unsigned burst,
                      unsigned *suppressed_out)
{
    *suppressed_out = 0;
    if (now_s != rl->window_start) {
        *suppressed_out = rl->suppressed;
        rl->window_start = now_s;
        rl->count = 0;
        rl->suppressed = 0;
    }
    if (rl->count < burst) {
        rl->count++;
        return true;
    }
    rl->suppressed++;
    return false;
}
