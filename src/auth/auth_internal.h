/* auth_internal.h - shared between passwd.c and scram.c (not part of the module API). */
#ifndef TERN_AUTH_INTERNAL_H
#define TERN_AUTH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"

#define AUTH_MAX_USER 256

enum auth_type { AUTH_PBKDF2_SHA512 = 1, AUTH_SHA512, AUTH_SCRAM_SHA256 };

struct auth_entry {
    char user[AUTH_MAX_USER + 1];
    size_t user_len;
    enum auth_type type;
    int iterations;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t hash[64];
    size_t hash_len;
    uint8_t stored_key[32]; /* SCRAM */
    uint8_t server_key[32];
};

/* Writes "NAME:LINE: message" into err and returns TERN_EINVAL (password and ACL parsers). */
int auth_perr(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const struct auth_entry *auth_db_find(const struct auth_db *db, const uint8_t *u, size_t n);
size_t auth_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap);
size_t auth_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap);
void auth_scram_keys(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen, int iter,
                     uint8_t stored[32], uint8_t server[32]);

#endif
