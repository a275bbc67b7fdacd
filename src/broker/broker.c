/* broker.c - creating and destroying the broker: configuration in, listeners bound, workers
 * ready to start; reload of reloadable options. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "broker/broker.h"
#include "common/clock.h"
#include "net/sock.h"

int worker_init(struct broker *b, struct worker *w, uint32_t i, char *err, size_t errlen);
void worker_fini(struct worker *w);
int broker_init(struct broker *b, struct config *conf, char *err, size_t errlen);
void broker_fini(struct broker *b);
void broker_apply_log(struct broker *b, const struct config *c);
int broker_reload(struct broker *b, const char *path);

/* Builds the TLS context of listener l; NULL with "listener PORT: why" in err. */
static SSL_CTX *broker_tls_ctx(const struct conf_listener *l, char *err, size_t errlen)
{
    struct tls_opts o = {l->certfile, l->keyfile,      l->cafile,
                         l->capath,   l->crlfile,      l->tls_version,
                         l->ciphers,  l->ciphersuites, l->require_certificate};
    char why[400];
    SSL_CTX *ctx = tls_ctx_new(&o, why, sizeof why);
    if (!ctx)
        snprintf(err, errlen, "listener %d: %s", l->port, why);
    return ctx;
}

/* Applies log_dest/log_type/log_file of c to the logger. */
void broker_apply_log(struct broker *b, const struct config *c)
{
    atomic_store(&b->log.mask, c->log_type);
    atomic_store(&b->log.timestamps, c->log_timestamp);
    if ((c->log_dest & LOG_DEST_FILE) && c->log_file) {
        if (log_open_file(&b->log, c->log_file))
            log_write(&b->log, LOG_ERR, "cannot open log file %s", c->log_file);
    }
    atomic_store(&b->log.dests, (c->log_dest & LOG_DEST_NONE) ? 0 : c->log_dest);
}

/* Takes ownership of conf (heap-allocated with b->mem... by the caller's mem). */
int broker_init(struct broker *b, struct config *conf, char *err, size_t errlen)
{
    atomic_store(&b->conf, conf);
    b->start_s = clock_mono_ms() / 1000;
    atomic_store(&b->next_session_id, 1);
    b->store = store_mem_create(&b->mem);
    b->subs = trie_create(&b->mem);
    if (!b->store || !b->subs) {
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    pthread_mutex_init(&b->ip_lock, NULL);
    hmap_init(&b->ips, &b->mem);
    b->mem.limit = conf->memory_limit > 0 ? (size_t)conf->memory_limit : 0;
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* writers first: batches of readers must not starve a SUBSCRIBE */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&b->subs_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (conf->password_file) {
        struct auth_db *db;
        char aerr[512];
        if (auth_db_load(&b->mem, conf->password_file, &db, aerr, sizeof aerr)) {
            snprintf(err, errlen, "password_file: %s", aerr);
            return TERN_EINVAL;
        }
        atomic_store(&b->auth, db);
        log_write(&b->log, LOG_NOTICE, "password file %s: %zu users", conf->password_file,
                  auth_db_count(db));
    }
    if (conf->acl_file) {
        struct acl *acl;
        char aerr[512];
        if (acl_load(&b->mem, conf->acl_file, &acl, aerr, sizeof aerr)) {
            snprintf(err, errlen, "acl_file: %s", aerr);
            return TERN_EINVAL;
        }
        atomic_store(&b->acl, acl);
        log_write(&b->log, LOG_NOTICE, "ACL file %s loaded", conf->acl_file);
    }
    b->fd_limit = sock_raise_nofile();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    b->nworkers = conf->threads > 0 ? (uint32_t)conf->threads : (uint32_t)(cores > 0 ? cores : 1);
    b->n_listeners = conf->n_listeners;
    for (int i = 0; i < conf->n_listeners; i++) {
        b->listeners[i].port = conf->listeners[i].port;
        b->listeners[i].conf = &conf->listeners[i];
        b->listeners[i].anonymous = conf_listener_anonymous(conf, i);
    }
    /* accepted by the parser for compatibility, but not implemented: refusing them is safer
     * than silently not isolating tenants or not persisting */
    for (int i = 0; i < conf->n_listeners; i++) {
        if (conf->listeners[i].mount_point) {
            snprintf(err, errlen, "listener %d: mount_point is not supported yet",
                     conf->listeners[i].port);
            return TERN_EINVAL;
        }
    }
    if (conf->persistence) {
        snprintf(err, errlen, "persistence true is not supported yet (sessions are in memory)");
        return TERN_EINVAL;
    }
    for (int i = 0; i < conf->n_listeners; i++) {
        const struct conf_listener *l = &conf->listeners[i];
        if (!l->certfile && !l->keyfile)
            continue;
        SSL_CTX *ctx = broker_tls_ctx(l, err, errlen);
        if (!ctx)
            return TERN_EINVAL;
        atomic_store(&b->listeners[i].tls, ctx);
    }
    b->workers = mem_calloc(&b->mem, MEM_MISC, b->nworkers * sizeof *b->workers);
    if (!b->workers) {
        snprintf(err, errlen, "out of memory");
        return TERN_ENOMEM;
    }
    for (uint32_t i = 0; i < b->nworkers; i++) {
        int rc = worker_init(b, &b->workers[i], i, err, errlen);
        if (rc)
            return rc;
    }
    log_write(&b->log, LOG_NOTICE,
              "tern %s starting: %u I/O threads, file descriptor limit %ld (about %ld connections;"
              " raise the hard limit with ulimit -Hn / LimitNOFILE= to go beyond)",
              TERN_VERSION, b->nworkers, b->fd_limit, b->fd_limit > 64 ? b->fd_limit - 32 : 0);
    return 0;
}

void broker_fini(struct broker *b)
{
    /* order matters: messages (in sessions, inboxes, the retained store) go back to the
     * workers' pools, so the pools are freed last */
    for (uint32_t i = 0; b->workers && i < b->nworkers; i++)
        if (b->workers[i].b)
            client_free_sessions(&b->workers[i]);
    for (uint32_t i = 0; b->workers && i < b->nworkers; i++)
        if (b->workers[i].b)
            worker_fini(&b->workers[i]);
    if (b->subs) {
        trie_destroy(b->subs);
        pthread_rwlock_destroy(&b->subs_lock);
    }
    store_destroy(b->store);
    b->store = NULL;
    if (b->workers) {
        for (uint32_t i = 0; i < b->nworkers; i++)
            if (b->workers[i].b)
                msg_pool_fini(&b->workers[i].pool);
        mem_free(&b->mem, MEM_MISC, b->workers);
    }
    for (int i = 0; i < b->n_listeners; i++) {
        tls_ctx_free(atomic_load(&b->listeners[i].tls));
        for (int k = 0; k < b->listeners[i].n_old_tls; k++)
            tls_ctx_free(b->listeners[i].old_tls[k]);
    }
    for (size_t i = 0; i < b->ips.cap; i++)
        if (b->ips.slots[i].hash)
            mem_free(&b->mem, MEM_CONN, b->ips.slots[i].value);
    hmap_free(&b->ips);
    pthread_mutex_destroy(&b->ip_lock);
    auth_db_free(atomic_load(&b->auth));
    acl_free(atomic_load(&b->acl));
    for (int i = 0; i < b->n_old_auth; i++) {
        auth_db_free(b->old_auth[i]);
        acl_free(b->old_acl[i]);
    }
    for (int i = 0; i < b->n_reloads; i++) {
        conf_free(&b->mem, b->reload_parsed[i]);
        mem_free(&b->mem, MEM_CONFIG, b->reload_parsed[i]);
        mem_free(&b->mem, MEM_CONFIG, b->reload_published[i]);
    }
}

/* SIGHUP: parse the file again; on success publish a new config whose reloadable fields come
 * from the file and the rest (listeners, threads) from the running one. The old struct stays
 * allocated until exit because workers may still read it. */
int broker_reload(struct broker *b, const char *path)
{
    if (!path) {
        log_write(&b->log, LOG_NOTICE, "SIGHUP: no configuration file to reload");
        return 0;
    }
    if (b->n_reloads >= (int)(sizeof b->reload_parsed / sizeof b->reload_parsed[0])) {
        log_write(&b->log, LOG_WARN, "SIGHUP: too many reloads, restart to reload again");
        return TERN_ELIMIT;
    }
    if (b->n_old_auth >= (int)(sizeof b->old_auth / sizeof b->old_auth[0])) {
        log_write(&b->log, LOG_WARN, "SIGHUP: too many reloads, restart to reload again");
        return TERN_ELIMIT;
    }
    struct config *fresh = mem_calloc(&b->mem, MEM_CONFIG, sizeof *fresh);
    struct config *next = mem_calloc(&b->mem, MEM_CONFIG, sizeof *next);
    char err[512];
    if (!fresh || !next) {
        mem_free(&b->mem, MEM_CONFIG, fresh);
        mem_free(&b->mem, MEM_CONFIG, next);
        return TERN_ENOMEM;
    }
    conf_defaults(fresh);
    if (conf_load_file(&b->mem, fresh, path, err, sizeof err)) {
        log_write(&b->log, LOG_ERR, "SIGHUP: configuration not reloaded: %s", err);
        conf_free(&b->mem, fresh);
        mem_free(&b->mem, MEM_CONFIG, fresh);
        mem_free(&b->mem, MEM_CONFIG, next);
        return TERN_EINVAL;
    }
    struct config *cur = broker_conf(b);
    /* the password file is parsed completely before anything changes: a bad one keeps the old */
    struct auth_db *db = NULL;
    if (fresh->password_file) {
        if (auth_db_load(&b->mem, fresh->password_file, &db, err, sizeof err)) {
            log_write(&b->log, LOG_ERR, "SIGHUP: configuration not reloaded: password_file: %s",
                      err);
            conf_free(&b->mem, fresh);
            mem_free(&b->mem, MEM_CONFIG, fresh);
            mem_free(&b->mem, MEM_CONFIG, next);
            return TERN_EINVAL;
        }
    }
    struct acl *acl = NULL;
    if (fresh->acl_file && acl_load(&b->mem, fresh->acl_file, &acl, err, sizeof err)) {
        log_write(&b->log, LOG_ERR, "SIGHUP: configuration not reloaded: acl_file: %s", err);
        auth_db_free(db);
        conf_free(&b->mem, fresh);
        mem_free(&b->mem, MEM_CONFIG, fresh);
        mem_free(&b->mem, MEM_CONFIG, next);
        return TERN_EINVAL;
    }
    /* certificates: reloaded from the running listeners' files (a listener's files are fixed
     * at start; their contents may change, e.g. renewed certificates) */
    SSL_CTX *ctxs[CONF_MAX_LISTENERS] = {0};
    for (int i = 0; i < b->n_listeners; i++) {
        const struct conf_listener *l = b->listeners[i].conf;
        if (!atomic_load(&b->listeners[i].tls))
            continue;
        if (b->listeners[i].n_old_tls >= 32 || !(ctxs[i] = broker_tls_ctx(l, err, sizeof err))) {
            log_write(&b->log, LOG_ERR, "SIGHUP: configuration not reloaded: %s",
                      b->listeners[i].n_old_tls >= 32 ? "too many reloads" : err);
            for (int k = 0; k < i; k++)
                tls_ctx_free(ctxs[k]);
            auth_db_free(db);
            acl_free(acl);
            conf_free(&b->mem, fresh);
            mem_free(&b->mem, MEM_CONFIG, fresh);
            mem_free(&b->mem, MEM_CONFIG, next);
            return TERN_EINVAL;
        }
    }
    for (int i = 0; i < b->n_listeners; i++) {
        if (!ctxs[i])
            continue;
        struct listener_info *li = &b->listeners[i];
        li->old_tls[li->n_old_tls++] = atomic_exchange(&li->tls, ctxs[i]);
    }
    /* everything parsed: swap; workers may still read the old ones until exit */
    b->old_auth[b->n_old_auth] = atomic_exchange(&b->auth, db);
    b->old_acl[b->n_old_auth] = atomic_exchange(&b->acl, acl);
    b->n_old_auth++;
    *next = *cur; /* shares cur's strings: only the first config's strings are freed at exit */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->reloadable || d->per_listener)
            continue;
        size_t sz = d->type == CONF_INT      ? sizeof(int)
                    : d->type == CONF_LLONG  ? sizeof(long long)
                    : d->type == CONF_BOOL   ? sizeof(bool)
                    : d->type == CONF_STRING ? sizeof(char *)
                                             : 0;
        if (d->type == CONF_SPECIAL)
            continue;
        memcpy((char *)next + d->offset, (char *)fresh + d->offset, sz);
    }
    next->server_redirect = fresh->server_redirect;
    next->shared_policy = fresh->shared_policy;
    next->max_connections = fresh->max_connections;
    next->allow_anonymous = fresh->allow_anonymous;
    next->persistent_client_expiration = fresh->persistent_client_expiration;
    next->log_type = fresh->log_type;
    next->log_dest = fresh->log_dest;
    next->log_file = fresh->log_file;
    b->reload_parsed[b->n_reloads] = fresh;
    b->reload_published[b->n_reloads] = next;
    b->n_reloads++;
    atomic_store_explicit(&b->conf, next, memory_order_release);
    b->mem.limit = next->memory_limit > 0 ? (size_t)next->memory_limit : 0;
    broker_apply_log(b, next);
    log_write(&b->log, LOG_NOTICE, "configuration reloaded from %s", path);
    return 0;
}
