/* pubsub.c - example of the Tern client library with its own network thread.
 *
 *   example_pubsub [host [port]]
 *
 * Subscribes to "tern/example/#", publishes three QoS 1 messages with an MQTT 5 user property
 * to "tern/example/hello", prints them as they come back, and disconnects. The main thread only
 * waits on a condition variable signalled from the callbacks (which run on the network thread). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tern/tern.h"

struct app {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int received;
    int subscribed; /* 1 ok, -1 refused */
    int failed;
};

static void on_connect(tern_client *c, const struct tern_connack *ack, void *user)
{
    if (ack->reason_code != 0)
        return; /* on_disconnect follows with the reason */
    struct tern_subscription sub = {"tern/example/#", 1, 0};
    if (tern_client_subscribe(c, &sub, 1, 0, NULL, 0, NULL) != 0)
        fprintf(stderr, "subscribe failed\n");
}

static void on_subscribe(tern_client *c, uint16_t id, const uint8_t *codes, size_t n, void *user)
{
    struct app *a = user;
    pthread_mutex_lock(&a->lock);
    a->subscribed = n == 1 && codes[0] < 0x80 ? 1 : -1;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void on_message(tern_client *c, const struct tern_message *m, void *user)
{
    struct app *a = user;
    printf("%s: %.*s", m->topic, (int)m->payload_len, (const char *)m->payload);
    for (size_t i = 0; i < m->props->n_user; i++)
        printf(" [%s=%s]", m->props->user[i].key, m->props->user[i].value);
    printf("\n");
    pthread_mutex_lock(&a->lock);
    a->received++;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

static void on_disconnect(tern_client *c, const struct tern_disconnect *why, void *user)
{
    struct app *a = user;
    if (why->error == 0)
        return;
    fprintf(stderr, "disconnected: %s\n", why->text);
    pthread_mutex_lock(&a->lock);
    a->failed = 1;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
}

/* Waits until *flag reaches want (or failure / 5 s). Returns 0 when it did. */
static int wait_for(struct app *a, const int *flag, int want)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&a->lock);
    int rc = 0;
    while (*flag < want && !a->failed && rc == 0)
        rc = pthread_cond_timedwait(&a->cond, &a->lock, &until);
    int ok = *flag >= want;
    pthread_mutex_unlock(&a->lock);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct app a = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.host = argc > 1 ? argv[1] : "localhost";
    o.port = (uint16_t)(argc > 2 ? strtoul(argv[2], NULL, 10) : 1883);
    o.auto_reconnect = true;
    o.cb = (struct tern_callbacks){.on_connect = on_connect,
                                   .on_subscribe = on_subscribe,
                                   .on_message = on_message,
                                   .on_disconnect = on_disconnect,
                                   .user = &a};
    tern_client *c;
    if (tern_client_new(&o, &c) != 0)
        return 1;
    int status = 1;
    if (tern_client_connect(c) != 0 || tern_client_start(c) != 0) {
        fprintf(stderr, "%s\n", tern_client_last_error(c));
        goto out;
    }
    if (wait_for(&a, &a.subscribed, 1) != 0) {
        fprintf(stderr, "not subscribed\n");
        goto out;
    }
    struct tern_user_property up = {"sender", "example"};
    struct tern_properties props = {.user = &up, .n_user = 1};
    for (int i = 0; i < 3; i++) {
        char text[32];
        int n = snprintf(text, sizeof text, "hello %d", i);
        (void)tern_client_publish(c, "tern/example/hello", text, (size_t)n, 1, false, &props, NULL);
    }
    status = wait_for(&a, &a.received, 3) == 0 ? 0 : 1;
    (void)tern_client_disconnect(c, 0);
out:
    tern_client_stop(c);
    tern_client_free(c);
    return status;
}
