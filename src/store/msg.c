/* msg.c - refcounted message allocation (see msg.h). */
#include "store/msg.h"

#include <string.h>

struct msg *msg_new(struct mem *mem, const uint8_t *topic, uint16_t topic_len, const uint8_t *props,
                    uint32_t props_len, const uint8_t *payload, uint32_t payload_len, uint8_t qos,
                    bool retain)
{
    struct msg *m =
        mem_alloc(mem, MEM_MSG, sizeof *m + (size_t)topic_len + props_len + payload_len);
    if (!m)
        return NULL;
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = topic_len;
    m->props_len = props_len;
    m->payload_len = payload_len;
    m->expiry_at_ms = 0;
    m->origin_session = 0;
    m->mem = mem;
    if (topic_len)
        memcpy(m->data, topic, topic_len);
    if (props_len)
        memcpy(m->data + topic_len, props, props_len);
    if (payload_len)
        memcpy(m->data + topic_len + props_len, payload, payload_len);
    return m;
}

void msg_unref(struct msg *m)
{
    if (!m)
        return;
    /* acq_rel: the freeing thread must see every write made before other threads' unref */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        mem_free(m->mem, MEM_MSG, m);
}

void msg_unref_void(void *m)
{
    msg_unref(m);
}
