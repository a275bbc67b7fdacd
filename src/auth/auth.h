/* auth.h - authentication: the password file (mosquitto_passwd compatible) and the SCRAM-SHA-256
 * enhanced-authentication method (MQTT 5 AUTH).
 *
 * Password file lines: `username:HASH`, where HASH is one of
 *   $7$ITERATIONS$SALT$HASH       PBKDF2-HMAC-SHA512, 64-byte hash (mosquitto_passwd default)
 *   $6$SALT$HASH                  SHA-512(password || salt) (mosquitto 1.x)
 *   $scram-sha-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY
 *                                 SCRAM-SHA-256 verifier (RFC 5802/7677; also checks plain
 *                                 passwords), written by `tern passwd --scram`
 * (base64 fields). Comments (#) and blank lines are ignored. A loaded database is immutable and
 * may be read by every thread; reload builds a new one and swaps the pointer.
 *
 * Timing: a password check costs the same for unknown users (a dummy derivation runs) and
 * comparisons are constant-time, so there is no oracle on user names or hash prefixes. */
#ifndef TERN_AUTH_AUTH_H
#define TERN_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

struct auth_db;

/* Loads the password file at path. On error returns TERN_EINVAL with "FILE:LINE: ..." in err
 * (or TERN_EIO when unreadable). Returns the database in *out (owned by the caller). */
int auth_db_load(struct mem *mem, const char *path, struct auth_db **out, char *err,
                 size_t errlen) TERN_MUST_CHECK;
/* Parses a password file held in text (name is used in messages). */
int auth_db_parse(struct mem *mem, const char *name, const char *text, struct auth_db **out,
                  char *err, size_t errlen) TERN_MUST_CHECK;
void auth_db_free(struct auth_db *db);
/* Number of users. */
size_t auth_db_count(const struct auth_db *db);
/* True when user/password match an entry. Constant time with respect to the stored hash and
 * runs a dummy derivation for unknown users. */
bool auth_check_password(const struct auth_db *db, const uint8_t *user, size_t ulen,
                         const uint8_t *pass, size_t plen);

/* Builds a password-file hash for password: "$7$..." (PBKDF2-SHA512, iterations >= 1) or, with
 * scram, "$scram-sha-256$...". Writes a NUL-terminated string to out. 0 or TERN_EINVAL. */
int auth_hash_password(const uint8_t *pass, size_t plen, int iterations, bool scram, char *out,
                       size_t outlen) TERN_MUST_CHECK;

/* ---- SCRAM-SHA-256 (server side) ---- */

#define AUTH_SCRAM_METHOD "SCRAM-SHA-256"

struct scram;

/* Starts an exchange from the client-first-message (the CONNECT's or AUTH's Authentication
 * Data). On 0, *out and *outlen give the server-first-message to send in AUTH 0x18 (valid until the
 * next call on s) and *s the state (free with scram_free). TERN_EPERM when the user has no SCRAM
 * verifier (answer 0x86/0x87 as for a bad password, after the same work), TERN_EPROTO for a
 * malformed message. user_out receives a view of the user name (valid while s lives). */
int scram_start(struct mem *mem, const struct auth_db *db, const uint8_t *msg, size_t len,
                struct scram **s, const uint8_t **out, size_t *outlen) TERN_MUST_CHECK;
/* Verifies the client-final-message. On 0 the client proved the password; *out is the
 * server-final-message (for CONNACK/AUTH Authentication Data). TERN_EPERM on a wrong proof,
 * TERN_EPROTO on a malformed message. */
int scram_finish(struct scram *s, const uint8_t *msg, size_t len, const uint8_t **out,
                 size_t *outlen) TERN_MUST_CHECK;
/* The authenticated (or claimed) user name. */
const char *scram_user(const struct scram *s);
void scram_free(struct scram *s);

#endif
