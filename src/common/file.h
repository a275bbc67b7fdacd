/* file.h - reading a whole text file (configuration, password and ACL files). */
#ifndef TERN_COMMON_FILE_H
#define TERN_COMMON_FILE_H

#include <stddef.h>

#include "common/alloc.h"
#include "common/err.h"

/* Reads the file at path into a new NUL-terminated buffer (*text, freed by the caller with
 * mem_free(mem, cat, ...)). Refuses files larger than max bytes or containing a NUL byte.
 * Errors: TERN_EIO (cannot open/read), TERN_EINVAL (too large, NUL), TERN_ENOMEM; a message
 * starting with the path is written to err. */
int file_read_text(struct mem *mem, enum mem_cat cat, const char *path, size_t max, char **text,
                   char *err, size_t errlen) TERN_MUST_CHECK;

#endif
