/* err.h - the one error enum of Tern.
 *
 * Fallible functions return int: 0 on success or one of these negative values.
 * MQTT reason codes are data (enum mqtt_rc in codec/codec.h), never returned as errors. */
#ifndef TERN_COMMON_ERR_H
#define TERN_COMMON_ERR_H

enum tern_err {
    TERN_OK = 0,
    TERN_EAGAIN = -1,     /* need more input (codec), or try again later (I/O) */
    TERN_EMALFORMED = -2, /* bytes do not form a valid packet/record (MQTT v5 0x81) */
    TERN_EPROTO = -3,     /* well-formed but violates the protocol (MQTT v5 0x82) */
    TERN_ETOOBIG = -4,    /* over a configured or absolute size limit */
    TERN_ENOMEM = -5,     /* allocation failed or memory limit reached */
    TERN_EPERM = -6,      /* not authorised */
    TERN_EINVAL = -7,     /* invalid argument / value */
    TERN_EIO = -8,        /* system call failed (errno tells) */
    TERN_ENOTFOUND = -9,  /* no such item */
    TERN_EEXIST = -10,    /* item already exists */
    TERN_ELIMIT = -11,    /* a count limit (queue, inflight, connections) is reached */
    TERN_ECLOSED = -12,   /* peer closed the connection */
};

/* Returns a static English description of a TERN_E* value. */
const char *tern_strerror(int err);

#define TERN_MUST_CHECK __attribute__((warn_unused_result))

#endif
