/* fuzz_auth.c - libFuzzer target for the password-file and ACL parsers and the SCRAM server
 * messages: arbitrary text must parse or be refused with a message, never crash or leak; a
 * parsed ACL is queried with topics/filters taken from the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/acl.h"
#include "auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem mem;
    mem_init(&mem);
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char err[256];
    struct auth_db *db = NULL;
    if (auth_db_parse(&mem, "fuzz", text, &db, err, sizeof err) == 0) {
        (void)auth_check_password(db, (const uint8_t *)"u", 1, (const uint8_t *)"p", 1);
        struct scram *s = NULL;
        const uint8_t *out;
        size_t outlen;
        if (scram_start(&mem, db, data, size, &s, &out, &outlen) == 0) {
            (void)scram_finish(s, data, size, &out, &outlen);
            scram_free(s);
        }
        auth_db_free(db);
    }
    struct acl *acl = NULL;
    if (acl_parse(&mem, "fuzz", text, &acl, err, sizeof err) == 0) {
        /* the first line of the input doubles as a topic and a filter */
        size_t n = strcspn(text, "\n");
        (void)acl_allows(acl, "user", (const uint8_t *)"cid", 3, (const uint8_t *)text, n,
                         ACL_READ);
        (void)acl_allows(acl, NULL, (const uint8_t *)"%c", 2, (const uint8_t *)text, n,
                         ACL_WRITE);
        (void)acl_allows_subscribe(acl, "user", (const uint8_t *)"cid", 3,
                                   (const uint8_t *)text, n);
        acl_free(acl);
    }
    free(text);
    if (mem_total(&mem) != 0)
        abort(); /* every parse path must give back all it allocated */
    return 0;
}
