/* fuzz_config.c - libFuzzer target for the configuration parser.
 *
 * The input, as a NUL-terminated copy (an embedded NUL ends the text), goes through
 * conf_defaults, conf_load_string, conf_finish, conf_listener_anonymous for each listener and
 * conf_apply_reloadable into a second config, then both are freed; every byte allocated must
 * come back (mem_total 0) and ASan reports leaks. An input starting with byte 0x01 makes
 * allocation number input[1] fail, to walk the out-of-memory paths.
 * Seeds: tests/fuzz/corpus/config (realistic configuration files). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "config/config.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mem m;
    mem_init(&m);
    if (size >= 2 && data[0] == 1) {
        atomic_store(&m.fail_after, data[1]);
        data += 2;
        size -= 2;
    }
    char *text = malloc(size + 1);
    ASSERT(text);
    memcpy(text, data, size);
    text[size] = '\0';

    static struct config c, live; /* large: keep them off the stack */
    char err[128];
    conf_defaults(&c);
    int rc = conf_load_string(&m, &c, "fuzz.conf", text, err, sizeof err);
    ASSERT(rc == 0 || rc == TERN_EINVAL || rc == TERN_ENOMEM);
    if (rc) /* every message names the file and line */
        ASSERT(strncmp(err, "fuzz.conf:", 10) == 0 && strlen(err) > 12);
    if (rc == TERN_ENOMEM)
        ASSERT(data[-2] == 1 || size == 0); /* only when an allocation was made to fail */
    atomic_store(&m.fail_after, -1);
    conf_finish(&m, &c);
    ASSERT(c.n_listeners >= 1 && c.n_listeners <= CONF_MAX_LISTENERS);
    for (int i = 0; i < c.n_listeners; i++) {
        ASSERT(c.listeners[i].port >= 0 && c.listeners[i].port <= 65535);
        (void)conf_listener_anonymous(&c, i);
    }
    conf_defaults(&live);
    conf_apply_reloadable(&m, &live, &c);
    conf_free(&m, &live);
    conf_free(&m, &c);
    ASSERT(mem_total(&m) == 0);
    free(text);
    return 0;
}
