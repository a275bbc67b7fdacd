/* passwd.c - the password database (see auth.h): parsing mosquitto_passwd files, checking
 * passwords, hashing new ones. */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"
#include "common/file.h"
#include "common/hmap.h"

int auth_perr(char *err, size_t errlen, const char *name, int line, const char *fmt, ...)
{
    int n = snprintf(err, errlen, "%s:%d: ", name, line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < errlen)
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return TERN_EINVAL;
}

size_t auth_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    if (n == 0 || n % 4 || n / 4 * 3 > cap + 2)
        return 0;
    uint8_t tmp[512];
    if (n / 4 * 3 > sizeof tmp)
        return 0;
    int r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)n);
    if (r < 0)
        return 0;
    size_t len = (size_t)r;
    if (in[n - 1] == '=')
        len--;
    if (in[n - 2] == '=')
        len--;
    if (len > cap)
        return 0;
    memcpy(out, tmp, len);
    return len;
}

size_t auth_b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    if ((n + 2) / 3 * 4 + 1 > cap)
        return 0;
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

struct auth_db {
    struct mem *mem;
    struct hmap users; /* name -> struct auth_entry* */
};

/* Splits s[0..n) at each sep into at most max fields; returns the count. */
static int fields(const char *s, size_t n, char sep, const char **f, size_t *fl, int max)
{
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == sep) {
            if (k == max)
                return max + 1;
            f[k] = s + start;
            fl[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    return k;
}

static bool parse_int(const char *s, size_t n, int *out)
{
    if (n == 0 || n > 9)
        return false;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v > 0;
}

/* Parses HASH (after "user:") into e. Returns NULL or an error text. */
static const char *parse_hash(const char *h, size_t n, struct auth_entry *e)
{
    const char *f[6];
    size_t fl[6];
    int k = fields(h, n, '$', f, fl, 5);
    if (k < 2 || fl[0] != 0)
        return "hash must start with $7$, $6$ or $scram-sha-256$ (plain-text passwords are not "
               "accepted: hash them with tern passwd or mosquitto_passwd)";
    if (fl[1] == 1 && f[1][0] == '7') {
        if (k != 5 || !parse_int(f[2], fl[2], &e->iterations))
            return "malformed $7$ (PBKDF2-SHA512) hash: expected $7$ITERATIONS$SALT$HASH";
        e->type = AUTH_PBKDF2_SHA512;
        e->salt_len = auth_b64_decode(f[3], fl[3], e->salt, sizeof e->salt);
        e->hash_len = auth_b64_decode(f[4], fl[4], e->hash, sizeof e->hash);
        if (!e->salt_len || e->hash_len != 64)
            return "malformed $7$ hash: bad base64 salt or hash";
        return NULL;
    }
    if (fl[1] == 1 && f[1][0] == '6') {
        if (k != 4)
            return "malformed $6$ (SHA512) hash: expected $6$SALT$HASH";
        e->type = AUTH_SHA512;
        e->salt_len = auth_b64_decode(f[2], fl[2], e->salt, sizeof e->salt);
        e->hash_len = auth_b64_decode(f[3], fl[3], e->hash, sizeof e->hash);
        if (!e->salt_len || e->hash_len != 64)
            return "malformed $6$ hash: bad base64 salt or hash";
        return NULL;
    }
    if (fl[1] == 13 && memcmp(f[1], "scram-sha-256", 13) == 0) {
        const char *a[3], *b[3];
        size_t al[3], bl[3];
        if (k != 4 || fields(f[2], fl[2], ':', a, al, 2) != 2 ||
            fields(f[3], fl[3], ':', b, bl, 2) != 2 || !parse_int(a[0], al[0], &e->iterations))
            return "malformed $scram-sha-256$ verifier: expected "
                   "$scram-sha-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY";
        e->type = AUTH_SCRAM_SHA256;
        e->salt_len = auth_b64_decode(a[1], al[1], e->salt, sizeof e->salt);
        size_t sk = auth_b64_decode(b[0], bl[0], e->stored_key, sizeof e->stored_key);
        size_t vk = auth_b64_decode(b[1], bl[1], e->server_key, sizeof e->server_key);
        if (!e->salt_len || sk != 32 || vk != 32)
            return "malformed $scram-sha-256$ verifier: bad base64 field";
        return NULL;
    }
    return "unknown hash type (supported: $7$, $6$, $scram-sha-256$)";
}

static void free_entries(struct auth_db *db)
{
    for (size_t i = 0; i < db->users.cap; i++)
        if (db->users.slots[i].hash)
            mem_free(db->mem, MEM_AUTH, db->users.slots[i].value);
    hmap_free(&db->users);
}

void auth_db_free(struct auth_db *db)
{
    if (!db)
        return;
    free_entries(db);
    mem_free(db->mem, MEM_AUTH, db);
}

size_t auth_db_count(const struct auth_db *db)
{
    return db ? db->users.count : 0;
}

const struct auth_entry *auth_db_find(const struct auth_db *db, const uint8_t *u, size_t n)
{
    return db ? hmap_get(&db->users, u, n) : NULL;
}

int auth_db_parse(struct mem *mem, const char *name, const char *text, struct auth_db **out,
                  char *err, size_t errlen)
{
    struct auth_db *db = mem_calloc(mem, MEM_AUTH, sizeof *db);
    if (!db)
        return TERN_ENOMEM;
    db->mem = mem;
    hmap_init(&db->users, mem);
    int line = 0, rc = 0;
    const char *s = text;
    while (*s) {
        line++;
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const char *next = e ? e + 1 : s + n;
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n == 0 || s[0] == '#') {
            s = next;
            continue;
        }
        const char *colon = memchr(s, ':', n);
        if (!colon || colon == s) {
            rc = auth_perr(err, errlen, name, line, "expected username:hash");
            break;
        }
        size_t ul = (size_t)(colon - s);
        if (ul > AUTH_MAX_USER) {
            rc =
                auth_perr(err, errlen, name, line, "user name longer than %d bytes", AUTH_MAX_USER);
            break;
        }
        struct auth_entry *ent = mem_calloc(mem, MEM_AUTH, sizeof *ent);
        if (!ent) {
            rc = TERN_ENOMEM;
            break;
        }
        memcpy(ent->user, s, ul);
        ent->user_len = ul;
        const char *why = parse_hash(colon + 1, n - ul - 1, ent);
        if (why) {
            mem_free(mem, MEM_AUTH, ent);
            rc = auth_perr(err, errlen, name, line, "user '%.*s': %s", (int)ul, s, why);
            break;
        }
        struct auth_entry *old = hmap_get(&db->users, ent->user, ent->user_len);
        if (old) {
            mem_free(mem, MEM_AUTH, ent);
            rc = auth_perr(err, errlen, name, line, "user '%.*s' appears twice", (int)ul, s);
            break;
        }
        if (hmap_put(&db->users, ent->user, ent->user_len, ent)) {
            mem_free(mem, MEM_AUTH, ent);
            rc = TERN_ENOMEM;
            break;
        }
        s = next;
    }
    if (rc) {
        auth_db_free(db);
        return rc;
    }
    *out = db;
    return 0;
}

int auth_db_load(struct mem *mem, const char *path, struct auth_db **out, char *err, size_t errlen)
{
    char *text;
    int rc = file_read_text(mem, MEM_AUTH, path, 64u << 20, &text, err, errlen);
    if (rc)
        return rc;
    rc = auth_db_parse(mem, path, text, out, err, errlen);
    mem_free(mem, MEM_AUTH, text);
    return rc;
}

void auth_scram_keys(const uint8_t *pass, size_t plen, const uint8_t *salt, size_t slen, int iter,
                     uint8_t stored[32], uint8_t server[32])
{
    uint8_t salted[32], client_key[32];
    unsigned int l = 32;
    PKCS5_PBKDF2_HMAC((const char *)pass, (int)plen, salt, (int)slen, iter, EVP_sha256(), 32,
                      salted);
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Client Key", 10, client_key, &l);
    SHA256(client_key, 32, stored);
    l = 32;
    HMAC(EVP_sha256(), salted, 32, (const unsigned char *)"Server Key", 10, server, &l);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
}

bool auth_check_password(const struct auth_db *db, const uint8_t *user, size_t ulen,
                         const uint8_t *pass, size_t plen)
{
    static const uint8_t dummy_salt[16] = {0};
    const struct auth_entry *e = auth_db_find(db, user, ulen);
    uint8_t out[64];
    if (!e) {
        /* same work as a real check: no timing oracle on user names */
        PKCS5_PBKDF2_HMAC((const char *)pass, (int)plen, dummy_salt, 16, 101, EVP_sha512(), 64,
                          out);
        return false;
    }
    bool ok = false;
    switch (e->type) {
    case AUTH_PBKDF2_SHA512:
        PKCS5_PBKDF2_HMAC((const char *)pass, (int)plen, e->salt, (int)e->salt_len, e->iterations,
                          EVP_sha512(), 64, out);
        ok = CRYPTO_memcmp(out, e->hash, 64) == 0;
        break;
    case AUTH_SHA512: {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        unsigned int l = 0;
        if (ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL) &&
            EVP_DigestUpdate(ctx, pass, plen) && EVP_DigestUpdate(ctx, e->salt, e->salt_len) &&
            EVP_DigestFinal_ex(ctx, out, &l) && l == 64)
            ok = CRYPTO_memcmp(out, e->hash, 64) == 0;
        EVP_MD_CTX_free(ctx);
        break;
    }
    case AUTH_SCRAM_SHA256: {
        uint8_t stored[32], server[32];
        auth_scram_keys(pass, plen, e->salt, e->salt_len, e->iterations, stored, server);
        ok = CRYPTO_memcmp(stored, e->stored_key, 32) == 0;
        break;
    }
    }
    OPENSSL_cleanse(out, sizeof out);
    return ok;
}

int auth_hash_password(const uint8_t *pass, size_t plen, int iterations, bool scram, char *out,
                       size_t outlen)
{
    uint8_t salt[16];
    char s64[32], a64[64], b64[100];
    if (iterations < 1 || RAND_bytes(salt, sizeof salt) != 1)
        return TERN_EINVAL;
    int n;
    if (scram) {
        uint8_t stored[32], server[32];
        auth_scram_keys(pass, plen, salt, sizeof salt, iterations, stored, server);
        auth_b64_encode(salt, sizeof salt, s64, sizeof s64);
        auth_b64_encode(stored, 32, a64, sizeof a64);
        auth_b64_encode(server, 32, b64, sizeof b64);
        n = snprintf(out, outlen, "$scram-sha-256$%d:%s$%s:%s", iterations, s64, a64, b64);
    } else {
        uint8_t h[64];
        PKCS5_PBKDF2_HMAC((const char *)pass, (int)plen, salt, 12, iterations, EVP_sha512(), 64, h);
        auth_b64_encode(salt, 12, s64, sizeof s64);
        auth_b64_encode(h, 64, b64, sizeof b64);
        n = snprintf(out, outlen, "$7$%d$%s$%s", iterations, s64, b64);
    }
    return n > 0 && (size_t)n < outlen ? 0 : TERN_EINVAL;
}
