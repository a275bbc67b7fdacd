/* tls.h - TLS for listeners with OpenSSL 3: contexts built from plain options, non-blocking
 * handshakes driven by the event loop, record I/O, peer identity.
 *
 * A context is immutable once built and shared by the workers (OpenSSL contexts are
 * thread-safe for SSL_new); SIGHUP builds a new one and swaps it in: existing connections keep
 * a reference to theirs. Only net/ and broker/ use this. */
#ifndef TERN_NET_TLS_H
#define TERN_NET_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

struct tls_opts {
    const char *certfile, *keyfile, *cafile, *capath, *crlfile;
    const char *min_version; /* "tlsv1.2" or "tlsv1.3"; NULL = tlsv1.2 */
    const char *ciphers, *ciphersuites;
    bool require_certificate;
};

/* Builds a server context. On error returns NULL with a description (OpenSSL's reason
 * included) in err. */
SSL_CTX *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX *ctx);
/* A server-side connection on fd (takes nothing: fd stays the caller's). NULL on ENOMEM. */
SSL *tls_new(SSL_CTX *ctx, int fd);
void tls_free(SSL *ssl);

enum tls_want { TLS_DONE = 0, TLS_WANT_READ = 1, TLS_WANT_WRITE = 2, TLS_FAILED = -1 };
/* Advances the handshake; TLS_FAILED with a reason in err. */
enum tls_want tls_handshake(SSL *ssl, char *err, size_t errlen);
/* Reads decrypted bytes: > 0 bytes, 0 peer closed, TERN_EAGAIN (wait for readable),
 * TERN_EIO on error. */
ssize_t tls_read(SSL *ssl, void *buf, size_t n);
/* Writes: > 0 bytes accepted, TERN_EAGAIN (wait for writable), TERN_EIO. */
ssize_t tls_write(SSL *ssl, const void *buf, size_t n);
/* Decrypted bytes already buffered inside OpenSSL (read them before waiting on the socket). */
bool tls_pending(SSL *ssl);
/* The verified peer certificate's CN, else its first DNS SAN, into out; false when none. */
bool tls_peer_identity(SSL *ssl, char *out, size_t outlen);
/* Negotiated protocol version text ("TLSv1.3"). */
const char *tls_version_name(SSL *ssl);

#endif
