/* acl.h - topic access control lists in Mosquitto's acl_file format.
 *
 *   # rules before any `user` line apply to anonymous clients
 *   topic read $SYS/#
 *   user device1
 *   topic write sensors/device1/data
 *   topic read commands/device1/#
 *   pattern readwrite clients/%c/#          (every client; %c client id, %u user name)
 *   topic deny secret/#                     (deny wins over any grant)
 *
 * Access is `read`, `write`, `readwrite` (the default when omitted) or `deny`. With an ACL
 * loaded, everything not granted is refused. A loaded ACL is immutable and shared by all
 * threads; reload builds a new one and swaps the pointer. */
#ifndef TERN_AUTH_ACL_H
#define TERN_AUTH_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

enum acl_access { ACL_READ = 1, ACL_WRITE = 2 };

struct acl;

/* Parses the ACL file at path / in text. Errors: TERN_EINVAL with "FILE:LINE: ..." in err,
 * TERN_EIO when unreadable. */
int acl_load(struct mem *mem, const char *path, struct acl **out, char *err,
             size_t errlen) TERN_MUST_CHECK;
int acl_parse(struct mem *mem, const char *name, const char *text, struct acl **out, char *err,
              size_t errlen) TERN_MUST_CHECK;
void acl_free(struct acl *a);

/* True when the client (user NULL = anonymous) may `access` the topic name t (publish: WRITE,
 * receive: READ). */
bool acl_allows(const struct acl *a, const char *user, const uint8_t *cid, size_t cidlen,
                const uint8_t *t, size_t tn, enum acl_access access);
/* True when the client may subscribe to filter f: some read grant covers every topic f can
 * match and no deny rule covers f entirely (messages under a partial deny are filtered at
 * delivery by acl_allows). A "$share/g/" prefix is ignored. */
bool acl_allows_subscribe(const struct acl *a, const char *user, const uint8_t *cid, size_t cidlen,
                          const uint8_t *f, size_t fn);

#endif
