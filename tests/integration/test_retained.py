"""Retained messages of MQTT 3.1.1 through the real broker: stored and sent to new subscriptions
with RETAIN=1, replaced, cleared by an empty payload (which is still forwarded), RETAIN=0 on live
forwarding, QoS min(retained, granted), wildcard subscriptions, many retained topics,
re-sending on a repeated SUBSCRIBE, and retain_available false.

Every test starts its own broker; every wait is on a socket event with a deadline.
`no_packet(t)` is the only bounded wait, used where the test asserts that nothing arrives.
"""
import struct
import time

import ternlib as tl

T = 5.0  # deadline (seconds) for anything the broker must send


# ---- local helpers ----

def pid_of(body):
    return struct.unpack("!H", bytes(body[:2]))[0]


def client(broker, cid, **kw):
    c, _ = tl.connect_client(broker, cid, **kw)
    return c


def sub(c, pid, filters):
    c.send(tl.subscribe(pid, filters))
    flags, body = c.expect(tl.SUBACK, T)
    assert flags == 0 and pid_of(body) == pid
    return list(body[2:])


def pub(c, topic, payload, qos=0, pid=1, retain=True):
    """Publishes (retained by default) and completes the QoS flow, so that the broker has taken
    the message when this returns (for QoS 0, a PINGREQ/PINGRESP round trip stands in)."""
    c.send(tl.publish(topic, payload, qos, retain, False, pid if qos else None))
    if qos == 0:
        c.send(tl.pingreq())
        c.expect(tl.PINGRESP, T)
    elif qos == 1:
        f, body = c.expect(tl.PUBACK, T)
        assert pid_of(body) == pid
    else:
        f, body = c.expect(tl.PUBREC, T)
        assert pid_of(body) == pid
        c.send(tl.pubrel(pid))
        f, body = c.expect(tl.PUBCOMP, T)
        assert pid_of(body) == pid


def collect(c, n, timeout=T):
    """Receives n PUBLISHes, acknowledging each by its QoS (QoS 2 completed after the broker's
    PUBREL); returns them parsed, in arrival order."""
    got, awaiting_rel = [], set()
    deadline = time.monotonic() + timeout
    while len(got) < n or awaiting_rel:
        try:
            t, flags, body = c.recv_packet(deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"received {len(got)} of {n} PUBLISHes: "
                                 f"{[(p['topic'], p['payload']) for p in got][:20]}")
        if t == tl.PUBLISH:
            p = tl.parse_publish(flags, body)
            got.append(p)
            if p["qos"] == 1:
                c.send(tl.puback(p["pid"]))
            elif p["qos"] == 2:
                c.send(tl.pubrec(p["pid"]))
                awaiting_rel.add(p["pid"])
        elif t == tl.PUBREL:
            assert flags == 2
            awaiting_rel.discard(pid_of(body))
            c.send(tl.pubcomp(pid_of(body)))
        else:
            raise AssertionError(f"unexpected packet type {t}")
    return got


def summary(msgs):
    return sorted((m["topic"], bytes(m["payload"]), m["qos"], m["retain"]) for m in msgs)


# ---- tests ----

def test_retained_message_sent_to_new_subscription_with_retain_1(broker):
    """A retained QoS 1 message outlives its publisher's session and is sent to a later
    subscription with RETAIN=1, its payload and QoS [MQTT-3.3.1-5] [MQTT-3.3.1-6]
    [MQTT-3.3.1-8] [MQTT-3.1.2-7]."""
    b = broker()
    p = client(b, "ret-pub")
    pub(p, "ret/a", b"v1", 1)
    p.send(tl.disconnect())
    p.expect_closed(T)
    s = client(b, "ret-sub")
    assert sub(s, 1, [("ret/a", 1)]) == [1]
    assert summary(collect(s, 1)) == [("ret/a", b"v1", 1, True)]
    s.no_packet(0.3)


def test_live_forwarding_has_retain_0_and_is_stored(broker):
    """A retained message forwarded to an established subscription carries RETAIN=0; a
    subscription made afterwards gets it with RETAIN=1 [MQTT-3.3.1-9] [MQTT-3.3.1-8]
    [MQTT-3.3.1-5]."""
    b = broker()
    s = client(b, "live-sub")
    sub(s, 1, [("live/t", 1)])
    p = client(b, "live-pub")
    pub(p, "live/t", b"hot", 1)
    assert summary(collect(s, 1)) == [("live/t", b"hot", 1, False)]
    late = client(b, "live-late")
    sub(late, 1, [("live/t", 1)])
    assert summary(collect(late, 1)) == [("live/t", b"hot", 1, True)]


def test_retained_message_replaced_not_by_non_retained(broker):
    """A new retained message (here QoS 0) replaces the previous one; a PUBLISH with RETAIN=0
    neither replaces nor removes it [MQTT-3.3.1-7] [MQTT-3.3.1-12] [MQTT-3.3.1-5]."""
    b = broker()
    p = client(b, "repl-pub")
    pub(p, "repl/t", b"first", 1)
    pub(p, "repl/t", b"second", 0)
    pub(p, "repl/t", b"not retained", 1, pid=2, retain=False)
    s = client(b, "repl-sub")
    sub(s, 1, [("repl/t", 2)])
    assert summary(collect(s, 1)) == [("repl/t", b"second", 0, True)]
    s.no_packet(0.3)


def test_empty_retained_payload_clears_and_is_forwarded(broker):
    """A retained PUBLISH with an empty payload is forwarded to current subscribers (RETAIN=0,
    empty payload) and removes the retained message: later subscriptions get nothing; clearing a
    topic with nothing retained is harmless [MQTT-3.3.1-10] [MQTT-3.3.1-11] [MQTT-3.3.1-9]."""
    b = broker()
    p = client(b, "clr-pub")
    pub(p, "clr/t", b"keep me", 1)
    s = client(b, "clr-sub")
    sub(s, 1, [("clr/+", 1)])
    assert summary(collect(s, 1)) == [("clr/t", b"keep me", 1, True)]
    pub(p, "clr/t", b"", 1, pid=2)
    pub(p, "clr/none", b"", 0)
    got = collect(s, 2)
    assert summary(got) == [("clr/none", b"", 0, False), ("clr/t", b"", 1, False)]
    late = client(b, "clr-late")
    sub(late, 1, [("clr/#", 2)])
    late.no_packet(0.4)


def test_retained_sent_at_min_of_retained_and_granted_qos(broker):
    """Retained messages stored at QoS 0, 1 and 2 are sent to a new subscription at
    min(stored QoS, granted QoS), RETAIN=1 each [MQTT-3.8.4-6] [MQTT-3.3.1-5] [MQTT-3.3.1-8]."""
    b = broker()
    p = client(b, "rq-pub")
    for q in (0, 1, 2):
        pub(p, f"rq/{q}", b"q%d" % q, q, pid=q + 1)
    for g in (0, 1, 2):
        s = client(b, f"rq-sub{g}")
        assert sub(s, 1, [("rq/+", g)]) == [g]
        got = collect(s, 3)
        assert summary(got) == [(f"rq/{q}", b"q%d" % q, min(q, g), True) for q in (0, 1, 2)]
        for m in got:
            assert (m["pid"] is None) == (m["qos"] == 0) and m["pid"] != 0


def test_retained_messages_for_wildcard_subscriptions(broker):
    """A wildcard subscription gets every retained message whose topic it matches, and only
    those, each once with RETAIN=1 [MQTT-3.3.1-6] [MQTT-3.3.1-8] [MQTT-4.7.1-2]
    [MQTT-4.7.1-3]."""
    b = broker()
    p = client(b, "rw-pub")
    topics = ["rw", "rw/a", "rw/b/c", "rw/b/d", "rw/b/c/e", "other/b/c"]
    for i, t in enumerate(topics):
        pub(p, t, t.encode(), 1, pid=i + 1)
    cases = {
        "rw/+/c": {"rw/b/c"},
        "rw/#": {"rw", "rw/a", "rw/b/c", "rw/b/d", "rw/b/c/e"},
        "rw/b/#": {"rw/b/c", "rw/b/d", "rw/b/c/e"},
        "+/b/c": {"rw/b/c", "other/b/c"},
        "+": {"rw"},
        "#": set(topics),
    }
    subs = {}
    for i, (f, expected) in enumerate(cases.items()):
        subs[f] = client(b, f"rw-sub{i}")
        sub(subs[f], 1, [(f, 1)])
    for f, expected in cases.items():
        got = collect(subs[f], len(expected))
        assert summary(got) == sorted((t, t.encode(), 1, True) for t in expected), f
    for i, c in enumerate(subs.values()):
        c.no_packet(0.3 if i == 0 else 0.02)


def test_many_retained_topics(broker):
    """300 retained topics are all kept and sent, each exactly once with RETAIN=1, to a "#"
    subscription under their common prefix [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-8]."""
    b = broker()
    p = client(b, "many-pub")
    n = 300
    p.send(b"".join(tl.publish(f"many/{i // 10}/{i}", b"p%d" % i, 0, True) for i in range(n - 1)))
    pub(p, f"many/{(n - 1) // 10}/{n - 1}", b"p%d" % (n - 1), 1, pid=1)  # in order: all taken
    s = client(b, "many-sub")
    sub(s, 1, [("many/#", 1)])
    got = collect(s, n, timeout=10)
    assert all(m["retain"] for m in got)
    assert sorted((m["topic"], bytes(m["payload"])) for m in got) == \
        sorted((f"many/{i // 10}/{i}", b"p%d" % i) for i in range(n))
    s.no_packet(0.3)


def test_subscribing_again_resends_retained(broker):
    """Repeating a SUBSCRIBE with an identical filter re-sends the matching retained messages
    (RETAIN=1), once [MQTT-3.8.4-3] [MQTT-3.3.1-8]."""
    b = broker()
    p = client(b, "again-pub")
    pub(p, "again/t", b"r", 1)
    s = client(b, "again-sub")
    sub(s, 1, [("again/t", 1)])
    assert summary(collect(s, 1)) == [("again/t", b"r", 1, True)]
    sub(s, 2, [("again/t", 0)])
    assert summary(collect(s, 1)) == [("again/t", b"r", 0, True)]
    s.no_packet(0.3)


def test_retain_unavailable_stores_nothing(broker):
    """retain_available false: a retained PUBLISH is not stored (the broker may refuse it by
    closing the connection, as Mosquitto does, or deliver it as a plain message); a later
    subscription gets no retained message."""
    b = broker("retain_available false")
    p = client(b, "noret-pub")
    p.send(tl.publish("noret/t", b"x", 1, True, False, 1))
    try:
        p.expect(tl.PUBACK, T)
    except tl.ProtocolClosed:
        pass
    s = client(b, "noret-sub")
    sub(s, 1, [("noret/#", 1)])
    s.no_packet(0.4)
