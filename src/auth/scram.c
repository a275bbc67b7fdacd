/* scram.c - SCRAM-SHA-256 server side (RFC 5802, RFC 7677) for MQTT 5 enhanced
 * authentication. Messages are the SASL SCRAM strings carried in Authentication Data:
 *   client-first  "n,,n=USER,r=CNONCE"
 *   server-first  "r=CNONCE SNONCE,s=SALT,i=ITERATIONS"
 *   client-final  "c=biws,r=NONCE,p=PROOF"
 *   server-final  "v=SERVERSIGNATURE"
 * Unknown users get a made-up salt and fail at the proof, like a wrong password, so the
 * exchange does not reveal which user names exist. Channel binding is not supported. */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "auth/auth_internal.h"

#define SCRAM_MAX 1024

struct scram {
    struct mem *mem;
    char user[AUTH_MAX_USER + 1];
    bool known;
    uint8_t stored_key[32], server_key[32];
    char client_first_bare[SCRAM_MAX];
    char server_first[SCRAM_MAX];
    char nonce[SCRAM_MAX];
    char out[SCRAM_MAX];
};

/* Decodes a SASL name (=2C is ',', =3D is '='); false when malformed or too long. */
static bool sasl_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '=') {
            if (n - i >= 3 && s[i + 1] == '2' && s[i + 2] == 'C')
                c = ',';
            else if (n - i >= 3 && s[i + 1] == '3' && s[i + 2] == 'D')
                c = '=';
            else
                return false;
            i += 2;
        } else if (c == ',' || c == '\0') {
            return false;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    return o > 0;
}

int scram_start(struct mem *mem, const struct auth_db *db, const uint8_t *msg, size_t len,
                struct scram **sp, const uint8_t **out, size_t *outlen)
{
    const char *m = (const char *)msg;
    if (len < 3 || len >= SCRAM_MAX || memchr(msg, 0, len))
        return TERN_EPROTO;
    /* gs2 header: "n,," (no channel binding) or "y,," (client supports it, we do not) */
    if (!((m[0] == 'n' || m[0] == 'y') && m[1] == ',' && m[2] == ','))
        return TERN_EPROTO;
    const char *bare = m + 3;
    size_t bl = len - 3;
    if (bl < 2 || memcmp(bare, "n=", 2) != 0)
        return TERN_EPROTO;
    const char *comma = memchr(bare, ',', bl);
    if (!comma || (size_t)(bare + bl - comma) < 4 || memcmp(comma, ",r=", 3) != 0)
        return TERN_EPROTO;
    const char *cnonce = comma + 3;
    size_t cnl = (size_t)(bare + bl - cnonce);
    if (cnl == 0 || memchr(cnonce, ',', cnl))
        return TERN_EPROTO; /* extensions are not supported */
    struct scram *s = mem_calloc(mem, MEM_AUTH, sizeof *s);
    if (!s)
        return TERN_ENOMEM;
    s->mem = mem;
    if (!sasl_name(bare + 2, (size_t)(comma - bare - 2), s->user, sizeof s->user)) {
        scram_free(s);
        return TERN_EPROTO;
    }
    memcpy(s->client_first_bare, bare, bl);
    s->client_first_bare[bl] = '\0';
    const struct auth_entry *e = auth_db_find(db, (const uint8_t *)s->user, strlen(s->user));
    uint8_t salt[32];
    size_t slen = 16;
    int iter = 4096;
    if (e && e->type == AUTH_SCRAM_SHA256) {
        s->known = true;
        memcpy(s->stored_key, e->stored_key, 32);
        memcpy(s->server_key, e->server_key, 32);
        memcpy(salt, e->salt, e->salt_len);
        slen = e->salt_len;
        iter = e->iterations;
    } else {
        /* a believable salt for a user that has no verifier: fails at the proof */
        unsigned int l = 32;
        static const uint8_t key[] = "tern-scram-unknown-user";
        HMAC(EVP_sha256(), key, sizeof key, (const uint8_t *)s->user, strlen(s->user), salt, &l);
    }
    uint8_t rnd[18];
    char r64[32], s64[64];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        scram_free(s);
        return TERN_EIO;
    }
    auth_b64_encode(rnd, sizeof rnd, r64, sizeof r64);
    auth_b64_encode(salt, slen, s64, sizeof s64);
    int n = snprintf(s->nonce, sizeof s->nonce, "%.*s%s", (int)cnl, cnonce, r64);
    int k =
        snprintf(s->server_first, sizeof s->server_first, "r=%s,s=%s,i=%d", s->nonce, s64, iter);
    if (n <= 0 || (size_t)n >= sizeof s->nonce || k <= 0 || (size_t)k >= sizeof s->server_first) {
        scram_free(s);
        return TERN_EPROTO;
    }
    *sp = s;
    *out = (const uint8_t *)s->server_first;
    *outlen = (size_t)k;
    return 0;
}

int scram_finish(struct scram *s, const uint8_t *msg, size_t len, const uint8_t **out,
                 size_t *outlen)
{
    const char *m = (const char *)msg;
    if (len >= SCRAM_MAX || memchr(msg, 0, len))
        return TERN_EPROTO;
    /* "c=biws,r=NONCE,p=PROOF": c= is base64("n,,") or base64("y,,") */
    if (len < 8 || (memcmp(m, "c=biws,", 7) != 0 && memcmp(m, "c=eSws,", 7) != 0))
        return TERN_EPROTO;
    const char *p = NULL;
    for (size_t i = 7; i + 3 <= len; i++)
        if (memcmp(m + i, ",p=", 3) == 0)
            p = m + i;
    if (!p || memcmp(m + 7, "r=", 2) != 0)
        return TERN_EPROTO;
    size_t nl = (size_t)(p - (m + 9));
    if (nl != strlen(s->nonce) || memcmp(m + 9, s->nonce, nl) != 0)
        return TERN_EPERM; /* nonce mismatch: not our exchange */
    uint8_t proof[64];
    size_t pl = auth_b64_decode(p + 3, len - (size_t)(p + 3 - m), proof, sizeof proof);
    if (pl != 32)
        return TERN_EPROTO;
    char auth_msg[3 * SCRAM_MAX];
    int al = snprintf(auth_msg, sizeof auth_msg, "%s,%s,%.*s", s->client_first_bare,
                      s->server_first, (int)(p - m), m);
    if (al <= 0 || (size_t)al >= sizeof auth_msg)
        return TERN_EPROTO;
    uint8_t sig[32], client_key[32], check[32];
    unsigned int l = 32;
    HMAC(EVP_sha256(), s->stored_key, 32, (const uint8_t *)auth_msg, (size_t)al, sig, &l);
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ sig[i];
    SHA256(client_key, 32, check);
    bool ok = CRYPTO_memcmp(check, s->stored_key, 32) == 0 && s->known;
    if (!ok)
        return TERN_EPERM;
    uint8_t server_sig[32];
    l = 32;
    HMAC(EVP_sha256(), s->server_key, 32, (const uint8_t *)auth_msg, (size_t)al, server_sig, &l);
    char v64[64];
    auth_b64_encode(server_sig, 32, v64, sizeof v64);
    int n = snprintf(s->out, sizeof s->out, "v=%s", v64);
    *out = (const uint8_t *)s->out;
    *outlen = (size_t)n;
    return 0;
}

const char *scram_user(const struct scram *s)
{
    return s->user;
}

void scram_free(struct scram *s)
{
    if (!s)
        return;
    struct mem *mem = s->mem;
    OPENSSL_cleanse(s, sizeof *s);
    mem_free(mem, MEM_AUTH, s);
}
