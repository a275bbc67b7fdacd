/* file.c - whole-file reads (see file.h). */
#include "common/file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int file_read_text(struct mem *mem, enum mem_cat cat, const char *path, size_t max, char **text,
                   char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return TERN_EIO;
    }
    size_t cap = 8192, len = 0;
    char *buf = mem_alloc(mem, cat, cap + 1);
    int rc = buf ? 0 : TERN_ENOMEM;
    while (!rc) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        if (cap >= max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            rc = TERN_EINVAL;
            break;
        }
        char *nb = mem_realloc(mem, cat, buf, cap * 2 + 1);
        if (!nb) {
            rc = TERN_ENOMEM;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = TERN_EIO;
    }
    fclose(f);
    if (!rc) {
        buf[len] = '\0';
        if (strlen(buf) != len) {
            snprintf(err, errlen, "%s: NUL byte in file", path);
            rc = TERN_EINVAL;
        }
    }
    if (rc) {
        if (rc == TERN_ENOMEM)
            snprintf(err, errlen, "%s: out of memory", path);
        mem_free(mem, cat, buf);
        return rc;
    }
    *text = buf;
    return 0;
}
