"""Sessions: Session Present, clean session 0 (subscriptions and queued QoS 1/2 messages kept),
clean session 1 (state discarded), takeover, and persistent_client_expiration.
Each test names in its docstring the [MQTT-x.y.z-n] statements it proves."""
import pytest

import ternlib as tl
from ternlib import (PINGRESP, PUBACK, PUBCOMP, PUBREC, SUBACK, disconnect, expect_publish,
                     parse_suback, pingreq, publish, pubrel, subscribe)


def sub(c, filt, qos, pid=1):
    c.send(subscribe(pid, [(filt, qos)]))
    _, body = c.expect(SUBACK)
    assert parse_suback(body) == (pid, [qos])


def pub(b, topic, payload, qos=1, retain=False):
    """Publishes from a fresh client and waits for the QoS flow to complete."""
    p = tl.connect(b, "pub-" + topic.replace("/", "-"))
    p.send(publish(topic, payload, qos=qos, pid=5, retain=retain))
    if qos == 1:
        p.expect(PUBACK)
    elif qos == 2:
        p.expect(PUBREC)
        p.send(pubrel(5))
        p.expect(PUBCOMP)
    else:
        p.send(pingreq())
        p.expect(PINGRESP)
    p.send(disconnect())
    p.close()


def leave(c):
    """Clean DISCONNECT, then wait until the broker has closed the connection."""
    c.send(disconnect())
    c.expect_closed(allow=())


def nothing_routed(c):
    """A PINGREQ round trip: anything routed to c would have arrived before the PINGRESP."""
    c.send(pingreq())
    c.expect(PINGRESP)


def test_clean_session_present_zero(broker):
    """Clean session 1 always gets Session Present 0, even when a persistent session for the id
    exists. [MQTT-3.2.2-1] [MQTT-3.1.2-6]"""
    b = broker()
    c = tl.connect(b, "cs", clean=False)
    sub(c, "cs/#", 1)
    leave(c)
    c = tl.connect(b, "cs", clean=True)
    assert c.session_present is False


def test_persistent_session_present_and_subscription_kept(broker):
    """Clean session 0: the first connect has no stored session (Session Present 0); after a
    DISCONNECT the reconnect gets Session Present 1 and the old subscription still delivers,
    without subscribing again. [MQTT-3.2.2-2] [MQTT-3.2.2-3] [MQTT-3.1.2-4] [MQTT-3.1.4-3]"""
    b = broker()
    c = tl.connect(b, "keep", clean=False)
    assert c.session_present is False
    sub(c, "keep/#", 1)
    leave(c)
    c = tl.connect(b, "keep", clean=False)
    assert c.session_present is True
    pub(b, "keep/a", b"still subscribed", qos=1)
    expect_publish(c, "keep/a", b"still subscribed", 1, ack=True)


def test_offline_qos1_and_qos2_queued(broker):
    """While a clean-session-0 client is offline, QoS 1 and QoS 2 messages matching its
    subscription are stored and delivered in order on reconnect, at their QoS.
    [MQTT-3.1.2-5] [MQTT-3.1.2-4] [MQTT-3.2.2-2]"""
    b = broker()
    c = tl.connect(b, "off", clean=False)
    sub(c, "off/#", 2)
    leave(c)
    pub(b, "off/1", b"one", qos=1)
    pub(b, "off/2", b"two", qos=2)
    pub(b, "off/3", b"three", qos=1)
    c = tl.connect(b, "off", clean=False)
    assert c.session_present is True
    expect_publish(c, "off/1", b"one", 1, ack=True)
    expect_publish(c, "off/2", b"two", 2, ack=True)
    expect_publish(c, "off/3", b"three", 1, ack=True)
    nothing_routed(c)


def test_unacked_qos1_redelivered_with_dup(broker):
    """A QoS 1 message sent but not acknowledged before the connection dropped is sent again on
    a clean-session-0 reconnect, with DUP 1 and the same packet id.
    [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-3.1.2-4]"""
    b = broker()
    c = tl.connect(b, "redo", clean=False)
    sub(c, "redo/#", 1)
    pub(b, "redo/x", b"unacked", qos=1)
    first = expect_publish(c, "redo/x", b"unacked", 1)  # no PUBACK
    c.close()
    c = tl.connect(b, "redo", clean=False)
    assert c.session_present is True
    again = expect_publish(c, "redo/x", b"unacked", 1, ack=True)
    assert again["dup"] is True and again["pid"] == first["pid"]
    nothing_routed(c)


def test_clean_session_discards_state(broker):
    """Clean session 1 discards the previous session: no Session Present, the queued message is
    gone, the old subscription no longer routes; and the clean session is itself not kept
    (a later clean-0 connect gets Session Present 0). [MQTT-3.1.2-6] [MQTT-3.2.2-1]
    [MQTT-3.2.2-3]"""
    b = broker()
    c = tl.connect(b, "gone", clean=False)
    sub(c, "gone/#", 1)
    leave(c)
    pub(b, "gone/q", b"queued while offline", qos=1)
    c = tl.connect(b, "gone", clean=True)
    assert c.session_present is False
    nothing_routed(c)
    pub(b, "gone/q", b"after clean start", qos=1)
    nothing_routed(c)
    leave(c)
    c = tl.connect(b, "gone", clean=False)
    assert c.session_present is False
    pub(b, "gone/q", b"no subscription", qos=1)
    nothing_routed(c)


def test_takeover_with_clean_session_discards(broker):
    """A takeover with clean session 1 closes the old connection and starts a fresh session:
    Session Present 0 and the old subscription does not route. [MQTT-3.1.4-2] [MQTT-3.1.2-6]"""
    b = broker()
    old = tl.connect(b, "tko", clean=False)
    sub(old, "tko/#", 1)
    new = tl.connect(b, "tko", clean=True)
    assert new.session_present is False
    old.expect_closed(allow=())
    pub(b, "tko/x", b"nobody", qos=1)
    nothing_routed(new)


def test_takeover_keeps_queued_messages(broker):
    """Takeover of a persistent session while a message is unacknowledged: the new connection
    gets Session Present 1 and the message again. [MQTT-3.1.4-2] [MQTT-4.4.0-1]
    [MQTT-3.2.2-2]"""
    b = broker()
    old = tl.connect(b, "tkq", clean=False)
    sub(old, "tkq/#", 1)
    pub(b, "tkq/m", b"in flight", qos=1)
    expect_publish(old, "tkq/m", b"in flight", 1)  # not acknowledged
    new = tl.connect(b, "tkq", clean=False)
    assert new.session_present is True
    old.expect_closed(allow=())
    expect_publish(new, "tkq/m", b"in flight", 1, ack=True)


@pytest.mark.ternd_only  # mosquitto's persistent_client_expiration has no seconds unit
def test_persistent_session_expires(broker):
    """persistent_client_expiration 1: an abandoned clean-session-0 session is removed after
    about a second ($SYS/broker/clients/expired reports it); the reconnect gets Session
    Present 0 and the subscription is gone. [MQTT-3.2.2-3]"""
    b = broker("persistent_client_expiration 1\nsys_interval 1")
    c = tl.connect(b, "exp", clean=False)
    sub(c, "exp/#", 1)
    leave(c)
    watch = tl.connect(b, "exp-watch")
    sub(watch, "$SYS/broker/clients/expired", 0)
    deadline_hits = 0
    while True:  # $SYS arrives every second; the wait is on those packets, with a deadline
        p = expect_any_publish(watch, timeout=6)
        deadline_hits += 1
        if p["payload"].strip() not in (b"0", b""):
            assert int(p["payload"]) >= 1
            break
        assert deadline_hits < 8, "session never reported expired"
    c = tl.connect(b, "exp", clean=False)
    assert c.session_present is False
    pub(b, "exp/x", b"after expiry", qos=1)
    nothing_routed(c)


def expect_any_publish(c, timeout):
    flags, body = c.expect(tl.PUBLISH, timeout)
    return tl.parse_publish(flags, body)


def test_takeover_storm_keeps_one_consistent_session(broker):
    """8 threads connect the same client id (clean session 0) 10 times each, at once: every
    CONNECT is either accepted (CONNACK 0, Session Present 1) or its connection is closed by a
    later takeover; afterwards one connection gets the session with its subscription intact.
    [MQTT-3.1.4-2] [MQTT-3.2.2-2] [MQTT-3.1.2-4]"""
    import threading
    b = broker(threads=4)
    c = tl.connect(b, "hot", clean=False)
    sub(c, "hot/#", 1)
    leave(c)
    errors, conns, lock = [], [], threading.Lock()

    def worker():
        for _ in range(10):
            try:
                r = tl.RawClient(b.host, b.port)
                r.send(tl.connect_packet("hot", clean=False))
                t, _, body = r.recv_packet(5)
                assert t == tl.CONNACK and tl.parse_connack(body) == (True, 0), (t, body)
                with lock:
                    conns.append(r)
            except tl.ProtocolClosed:
                pass  # taken over before its CONNACK was read: allowed
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:5]
    final = tl.connect(b, "hot", clean=False)
    assert final.session_present is True
    for r in conns:  # every earlier connection has been taken over
        r.expect_closed(allow=())
    pub(b, "hot/x", b"survived", qos=1)
    expect_publish(final, "hot/x", b"survived", 1, ack=True)
