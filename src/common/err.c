/* err.c - descriptions of TERN_E* values. */
#include "common/err.h"

const char *tern_strerror(int err)
{
    switch (err) {
    case TERN_OK: return "success";
    case TERN_EAGAIN: return "need more data";
    case TERN_EMALFORMED: return "malformed packet";
    case TERN_EPROTO: return "protocol error";
    case TERN_ETOOBIG: return "too large";
    case TERN_ENOMEM: return "out of memory";
    case TERN_EPERM: return "not authorised";
    case TERN_EINVAL: return "invalid value";
    case TERN_EIO: return "I/O error";
    case TERN_ENOTFOUND: return "not found";
    case TERN_EEXIST: return "already exists";
    case TERN_ELIMIT: return "limit reached";
    case TERN_ECLOSED: return "connection closed";
    }
    return "unknown error";
}
