/* tls_openssl.c - the OpenSSL backend of tls.h. */
#include "net/tls.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

static void ossl_err(char *err, size_t errlen, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", reason);
    ERR_clear_error();
}

SSL_CTX *tls_ctx_new(const struct tls_opts *o, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ossl_err(err, errlen, "cannot create TLS context", NULL);
        return NULL;
    }
    int minv = TLS1_2_VERSION;
    if (o->min_version && strcmp(o->min_version, "tlsv1.3") == 0)
        minv = TLS1_3_VERSION;
    else if (o->min_version && strcmp(o->min_version, "tlsv1.2") != 0) {
        snprintf(err, errlen, "tls_version '%s' is not tlsv1.2 or tlsv1.3", o->min_version);
        goto fail;
    }
    SSL_CTX_set_min_proto_version(ctx, minv);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (!o->certfile || !o->keyfile) {
        snprintf(err, errlen, "a TLS listener needs both certfile and keyfile");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, o->certfile) != 1) {
        ossl_err(err, errlen, "cannot load certfile", o->certfile);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->keyfile, SSL_FILETYPE_PEM) != 1) {
        ossl_err(err, errlen, "cannot load keyfile", o->keyfile);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ossl_err(err, errlen, "keyfile does not match certfile", o->keyfile);
        goto fail;
    }
    if (o->ciphers && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1) {
        ossl_err(err, errlen, "invalid ciphers", o->ciphers);
        goto fail;
    }
    if (o->ciphersuites && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1) {
        ossl_err(err, errlen, "invalid ciphersuites", o->ciphersuites);
        goto fail;
    }
    if (o->cafile || o->capath) {
        if (SSL_CTX_load_verify_locations(ctx, o->cafile, o->capath) != 1) {
            ossl_err(err, errlen, "cannot load cafile/capath", o->cafile ? o->cafile : o->capath);
            goto fail;
        }
        if (o->cafile)
            SSL_CTX_set_client_CA_list(ctx, SSL_load_client_CA_file(o->cafile));
    }
    if (o->require_certificate) {
        if (!o->cafile && !o->capath) {
            snprintf(err, errlen, "require_certificate needs cafile or capath");
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    } else if (o->cafile || o->capath) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); /* optional client certificates */
    }
    if (o->crlfile) {
        X509_STORE *store = SSL_CTX_get_cert_store(ctx);
        X509_LOOKUP *lk = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (!lk || X509_load_crl_file(lk, o->crlfile, X509_FILETYPE_PEM) <= 0) {
            ossl_err(err, errlen, "cannot load crlfile", o->crlfile);
            goto fail;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

void tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}

SSL *tls_new(SSL_CTX *ctx, int fd)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void tls_free(SSL *ssl)
{
    if (!ssl)
        return;
    SSL_shutdown(ssl); /* best effort close_notify; never waits */
    SSL_free(ssl);
    ERR_clear_error();
}

enum tls_want tls_handshake(SSL *ssl, char *err, size_t errlen)
{
    int r = SSL_do_handshake(ssl);
    if (r == 1)
        return TLS_DONE;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return TLS_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE)
        return TLS_WANT_WRITE;
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
        snprintf(err, errlen, "TLS handshake failed: certificate: %s",
                 X509_verify_cert_error_string(v));
    else
        ossl_err(err, errlen, "TLS handshake failed", NULL);
    ERR_clear_error();
    return TLS_FAILED;
}

ssize_t tls_read(SSL *ssl, void *buf, size_t n)
{
    size_t got = 0;
    int r = SSL_read_ex(ssl, buf, n, &got);
    if (r == 1)
        return (ssize_t)got;
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TERN_EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    return TERN_EIO;
}

ssize_t tls_write(SSL *ssl, const void *buf, size_t n)
{
    size_t put = 0;
    int r = SSL_write_ex(ssl, buf, n, &put);
    if (r == 1)
        return (ssize_t)put;
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return TERN_EAGAIN;
    return TERN_EIO;
}

bool tls_pending(SSL *ssl)
{
    return SSL_pending(ssl) > 0;
}

bool tls_peer_identity(SSL *ssl, char *out, size_t outlen)
{
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) {
        X509_free(cert);
        return false;
    }
    bool ok = false;
    int len =
        X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out, (int)outlen);
    if (len > 0 && (size_t)len < outlen && strlen(out) == (size_t)len) {
        ok = true;
    } else {
        GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
        for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !ok; i++) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type != GEN_DNS)
                continue;
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int dl = ASN1_STRING_length(g->d.dNSName);
            if (dl > 0 && (size_t)dl < outlen && !memchr(d, 0, (size_t)dl)) {
                memcpy(out, d, (size_t)dl);
                out[dl] = '\0';
                ok = true;
            }
        }
        GENERAL_NAMES_free(sans);
    }
    X509_free(cert);
    return ok;
}

const char *tls_version_name(SSL *ssl)
{
    return SSL_get_version(ssl);
}
