"""PUBLISH flows of MQTT 3.1.1 through the real broker, byte for byte: QoS 0/1/2 from a client
to the broker and from the broker to a subscriber, exactly-once inbound QoS 2, QoS downgrade to
the granted QoS, per-topic ordering, redelivery with DUP=1 when a persistent session
reconnects, message_size_limit, protocol violations in PUBLISH/PUBREL, and many clients on
several I/O threads cross-publishing.

Every test starts its own broker (the `broker` fixture); every wait is on a socket event with a
deadline. `no_packet(t)` is the only bounded wait, and only where the test asserts an absence.
"""
import struct
import threading
import time

import pytest

import ternlib as tl

T = 5.0  # deadline (seconds) for anything the broker must send


# ---- local helpers (kept here so the shared ternlib stays small) ----

def pid_of(body):
    return struct.unpack("!H", bytes(body[:2]))[0]


def sub(c, pid, filters):
    """SUBSCRIBE [(filter, qos)] and return the granted return codes after checking the id."""
    c.send(tl.subscribe(pid, filters))
    flags, body = c.expect(tl.SUBACK, T)
    assert flags == 0 and pid_of(body) == pid  # [MQTT-3.8.4-2]
    return list(body[2:])


def recv_publish(c, timeout=T):
    flags, body = c.expect(tl.PUBLISH, timeout)
    return tl.parse_publish(flags, body)


def expect_ack(c, kind, pid, flags=0):
    f, body = c.expect(kind, T)
    assert f == flags, f"packet type {kind}: flags {f:#x}, expected {flags:#x}"
    assert bytes(body) == struct.pack("!H", pid), f"type {kind}: body {bytes(body)!r}, pid {pid}"


def pub(c, topic, payload, qos=0, pid=None, retain=False, dup=False):
    """Publishes and completes the client->broker flow of the QoS (PUBACK, or PUBREC/PUBREL/
    PUBCOMP), checking that every acknowledgement echoes the packet id [MQTT-2.3.1-6]."""
    c.send(tl.publish(topic, payload, qos, retain, dup, pid))
    if qos == 1:
        expect_ack(c, tl.PUBACK, pid)
    elif qos == 2:
        expect_ack(c, tl.PUBREC, pid)
        c.send(tl.pubrel(pid))
        expect_ack(c, tl.PUBCOMP, pid)


def collect(c, n, timeout=T, ack=True):
    """Receives n PUBLISHes, acknowledging each by its QoS (QoS 2 completed with PUBCOMP after
    the broker's PUBREL) when ack is true. Returns the parsed PUBLISHes in arrival order."""
    got, awaiting_rel = [], set()
    deadline = time.monotonic() + timeout
    while len(got) < n or awaiting_rel:
        try:
            t, flags, body = c.recv_packet(deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"received {len(got)} of {n} PUBLISHes before the deadline: "
                                 f"{[(p['topic'], p['payload']) for p in got]}")
        if t == tl.PUBLISH:
            p = tl.parse_publish(flags, body)
            got.append(p)
            if ack and p["qos"] == 1:
                c.send(tl.puback(p["pid"]))
            elif ack and p["qos"] == 2:
                c.send(tl.pubrec(p["pid"]))
                awaiting_rel.add(p["pid"])
        elif t == tl.PUBREL:
            assert flags == 2, "PUBREL fixed-header flags must be 0010 [MQTT-3.6.1-1]"
            assert pid_of(body) in awaiting_rel, "PUBREL for an id never PUBREC'd"
            awaiting_rel.discard(pid_of(body))
            c.send(tl.pubcomp(pid_of(body)))
        else:
            raise AssertionError(f"unexpected packet type {t} while collecting PUBLISHes")
    return got


def client(broker, cid, **kw):
    c, _ = tl.connect_client(broker, cid, **kw)
    return c


# ---- QoS 0 ----

def test_qos0_flow_has_no_packet_id_no_dup_and_no_acknowledgement(broker):
    """QoS 0 both ways: the publisher gets no response, the subscriber gets QoS=0, DUP=0 and no
    packet id, RETAIN=0 [MQTT-4.3.1-1] [MQTT-3.3.1-2] [MQTT-2.3.1-5] [MQTT-3.3.4-1]
    [MQTT-3.3.1-9] [MQTT-3.3.2-3]."""
    b = broker()
    s = client(b, "q0sub")
    assert sub(s, 1, [("q0/t", 2)]) == [2]
    p = client(b, "q0pub")
    p.send(tl.publish("q0/t", b"hello", 0))
    flags, body = s.expect(tl.PUBLISH, T)
    assert flags == 0
    # exactly topic + payload: no packet identifier in a QoS 0 PUBLISH
    assert bytes(body) == struct.pack("!H", 4) + b"q0/t" + b"hello"
    p.no_packet(0.3)  # nothing acknowledges QoS 0
    p.send(tl.pingreq())
    p.expect(tl.PINGRESP, T)


# ---- QoS 1 ----

def test_qos1_flow_both_directions(broker):
    """Client->broker QoS 1 gets a PUBACK echoing the id; broker->client QoS 1 carries a
    non-zero id, DUP=0, and two unacknowledged messages get distinct ids; once acknowledged it is
    not sent again [MQTT-2.3.1-1] [MQTT-2.3.1-2] [MQTT-2.3.1-4] [MQTT-2.3.1-6] [MQTT-4.3.2-1]
    [MQTT-4.3.2-2] [MQTT-3.3.4-1]."""
    b = broker()
    s = client(b, "q1sub")
    assert sub(s, 1, [("q1/t", 1)]) == [1]
    p = client(b, "q1pub")
    pub(p, "q1/t", b"one", 1, pid=0x1234)
    pub(p, "q1/t", b"two", 1, pid=0xFFFF)
    m1, m2 = recv_publish(s), recv_publish(s)
    for m, payload in ((m1, b"one"), (m2, b"two")):
        assert (m["topic"], m["payload"], m["qos"], m["dup"], m["retain"]) == \
            ("q1/t", payload, 1, False, False)
        assert m["pid"] != 0
    assert m1["pid"] != m2["pid"]
    s.send(tl.puback(m1["pid"]) + tl.puback(m2["pid"]))
    s.no_packet(0.3)


def test_qos1_same_packet_id_after_puback_is_a_new_message(broker):
    """After the broker's PUBACK, a PUBLISH reusing the id (even with DUP=1) is a new
    publication and is delivered again; the incoming DUP flag is not propagated
    [MQTT-4.3.2-2] [MQTT-3.3.1-3]."""
    b = broker()
    s = client(b, "reuse-sub")
    sub(s, 1, [("reuse", 1)])
    p = client(b, "reuse-pub")
    pub(p, "reuse", b"A", 1, pid=7)
    pub(p, "reuse", b"B", 1, pid=7, dup=True)
    got = collect(s, 2)
    assert [m["payload"] for m in got] == [b"A", b"B"]
    assert [m["dup"] for m in got] == [False, False]
    s.no_packet(0.3)


# ---- QoS 2 ----

def test_qos2_inbound_flow_and_exactly_once(broker):
    """Client->broker QoS 2: PUBREC echoes the id; a resent PUBLISH (DUP=1) before PUBREL gets
    another PUBREC and is not delivered twice; PUBREL gets a PUBCOMP echoing the id; after the
    PUBCOMP the same id is a new message [MQTT-4.3.3-2] [MQTT-2.3.1-6] [MQTT-3.3.4-1]
    [MQTT-3.3.1-3]."""
    b = broker()
    s = client(b, "eo-sub")
    sub(s, 1, [("eo", 0)])
    p = client(b, "eo-pub")
    p.send(tl.publish("eo", b"first", 2, pid=42))
    expect_ack(p, tl.PUBREC, 42)
    p.send(tl.publish("eo", b"first", 2, dup=True, pid=42))
    expect_ack(p, tl.PUBREC, 42)
    p.send(tl.pubrel(42))
    expect_ack(p, tl.PUBCOMP, 42)
    m = recv_publish(s)
    assert (m["payload"], m["qos"], m["dup"]) == (b"first", 0, False)
    s.no_packet(0.4)  # the resent PUBLISH produced no second copy
    pub(p, "eo", b"second", 2, pid=42)
    m = recv_publish(s)
    assert m["payload"] == b"second"
    s.no_packet(0.2)


def test_qos2_outbound_flow(broker):
    """Broker->client QoS 2: PUBLISH with a non-zero id and DUP=0; the client's PUBREC brings a
    PUBREL (flags 0010) with the same id; after the PUBCOMP nothing is resent, and the PUBLISH
    is never resent after the PUBREL [MQTT-4.3.3-1] [MQTT-2.3.1-1] [MQTT-2.3.1-6]
    [MQTT-3.6.1-1]."""
    b = broker()
    s = client(b, "q2sub")
    assert sub(s, 1, [("q2/t", 2)]) == [2]
    p = client(b, "q2pub")
    pub(p, "q2/t", b"exactly", 2, pid=9)
    m = recv_publish(s)
    assert (m["topic"], m["payload"], m["qos"], m["dup"], m["retain"]) == \
        ("q2/t", b"exactly", 2, False, False)
    assert m["pid"] != 0
    s.send(tl.pubrec(m["pid"]))
    expect_ack(s, tl.PUBREL, m["pid"], flags=2)
    s.send(tl.pubcomp(m["pid"]))
    s.no_packet(0.3)
    pub(p, "q2/t", b"again", 2, pid=10)
    assert collect(s, 1)[0]["payload"] == b"again"


def test_qos_downgraded_to_granted_qos(broker):
    """Each subscriber receives min(published QoS, granted QoS) [MQTT-3.8.4-6] [MQTT-3.3.5-1]."""
    b = broker()
    subs = {}
    for q in (0, 1, 2):
        subs[q] = client(b, f"dg{q}")
        assert sub(subs[q], 1, [("dg", q)]) == [q]
    p = client(b, "dgpub")
    for pq in (0, 1, 2):
        pub(p, "dg", b"pub%d" % pq, pq, pid=pq or None)
    for gq, c in subs.items():
        got = collect(c, 3)
        assert [(m["payload"], m["qos"]) for m in got] == \
            [(b"pub%d" % pq, min(pq, gq)) for pq in (0, 1, 2)]
        for m in got:
            assert (m["pid"] is None) == (m["qos"] == 0)


# ---- ordering ----

def test_messages_on_a_topic_arrive_in_publish_order(broker):
    """A publisher pipelines 40 QoS 1 then 15 QoS 2 messages on one topic without waiting for
    acknowledgements; a QoS 2 subscriber receives each QoS's messages in publish order, none lost
    or duplicated [MQTT-4.6.0-5] [MQTT-4.6.0-6] [MQTT-4.3.2-2] [MQTT-4.3.3-2].
    (Mosquitto 2.0.11 strands queued QoS 2 messages when more than its inflight window of 20 are
    pipelined, hence only 15 QoS 2.)"""
    b = broker()
    s = client(b, "ord-sub")
    sub(s, 1, [("ord/t", 2)])
    p = client(b, "ord-pub")
    n, n2 = 40, 15
    p.send(b"".join(tl.publish("ord/t", b"1-%03d" % i, 1, pid=1 + i) for i in range(n)) +
           b"".join(tl.publish("ord/t", b"2-%03d" % i, 2, pid=1000 + i) for i in range(n2)))
    # the publisher's side: every id acknowledged once (QoS 2 completed)
    acked, completed = set(), set()
    deadline = time.monotonic() + T
    while len(acked) < n or len(completed) < n2:
        t, flags, body = p.recv_packet(deadline - time.monotonic())
        pid = pid_of(body)
        if t == tl.PUBACK:
            acked.add(pid)
        elif t == tl.PUBREC:
            p.send(tl.pubrel(pid))
        elif t == tl.PUBCOMP:
            completed.add(pid)
        else:
            raise AssertionError(f"unexpected packet type {t}")
    assert acked == set(range(1, n + 1)) and completed == set(range(1000, 1000 + n2))
    got = collect(s, n + n2)
    q1 = [m["payload"] for m in got if m["qos"] == 1]
    q2 = [m["payload"] for m in got if m["qos"] == 2]
    assert q1 == [b"1-%03d" % i for i in range(n)]
    assert q2 == [b"2-%03d" % i for i in range(n2)]
    s.no_packet(0.2)



def test_pubrel_for_unknown_id_gets_pubcomp(broker):
    """A PUBREL for an id the broker holds no QoS 2 state for is still answered with a PUBCOMP
    echoing it (a repeated PUBREL after a reconnect looks like this) [MQTT-4.3.3-2]
    [MQTT-2.3.1-6]."""
    b = broker()
    p = client(b, "lonely-rel")
    p.send(tl.pubrel(77))
    expect_ack(p, tl.PUBCOMP, 77)


def test_qos2_inbound_state_survives_reconnect(broker):
    """A clean-session-0 publisher whose QoS 2 PUBLISH got a PUBREC loses its connection; on
    reconnect it resends the PUBLISH (DUP=1, same id) and then PUBRELs: the broker answers PUBREC
    and PUBCOMP and the message is delivered once. Another one reconnects and sends only the
    PUBREL: one delivery too [MQTT-4.3.3-2] [MQTT-4.4.0-1] [MQTT-3.1.2-4]."""
    b = broker()
    s = client(b, "q2rc-sub")
    sub(s, 1, [("q2rc/#", 1)])
    for cid, resend in (("q2rc-resend", True), ("q2rc-relonly", False)):
        p, _ = tl.connect_client(b, cid, clean=False)
        p.send(tl.publish(f"q2rc/{cid}", b"once", 2, pid=300))
        expect_ack(p, tl.PUBREC, 300)
        p.close()
        p, present = tl.connect_client(b, cid, clean=False)
        assert present
        if resend:
            p.send(tl.publish(f"q2rc/{cid}", b"once", 2, dup=True, pid=300))
            expect_ack(p, tl.PUBREC, 300)
        p.send(tl.pubrel(300))
        expect_ack(p, tl.PUBCOMP, 300)
    got = collect(s, 2)
    assert sorted(m["topic"] for m in got) == ["q2rc/q2rc-relonly", "q2rc/q2rc-resend"]
    s.no_packet(0.4)


def test_large_messages_to_a_slow_reader_arrive_whole_and_in_order(broker):
    """Forty 256 KiB QoS 1 messages published while the subscriber does not read (the broker
    must buffer or hold them back) all arrive intact, in order, once it reads; a QoS 0
    subscriber of the same topic gets a 1 MiB message intact [MQTT-4.6.0-6] [MQTT-4.3.2-1]."""
    b = broker()
    slow = client(b, "slow-reader")
    sub(slow, 1, [("big/t", 1)])
    q0 = client(b, "big-q0")
    sub(q0, 1, [("big/one", 0)])
    p = client(b, "big-pub")
    payloads = [bytes([i]) * (256 * 1024) for i in range(40)]
    for i, data in enumerate(payloads):
        pub(p, "big/t", data, 1, pid=i + 1)
    huge = bytes(range(256)) * 4096
    pub(p, "big/one", huge, 1, pid=100)
    m = collect(q0, 1)[0]
    assert m["qos"] == 0 and bytes(m["payload"]) == huge
    got = collect(slow, 40, timeout=20)
    assert [bytes(m["payload"]) == data for m, data in zip(got, payloads)] == [True] * 40


# ---- redelivery ----

def test_unacknowledged_messages_resent_with_dup_on_reconnect(broker):
    """A clean-session-0 subscriber drops its connection holding an unacknowledged QoS 1
    PUBLISH, an unacknowledged QoS 2 PUBLISH and a QoS 2 message it PUBREC'd. On reconnect the
    broker reports the session, resends both PUBLISHes with DUP=1 and their original ids in the
    original order, and resends the PUBREL; new messages then flow with DUP=0 [MQTT-4.4.0-1]
    [MQTT-3.3.1-1] [MQTT-4.6.0-1] [MQTT-2.3.1-4] [MQTT-3.1.2-4] [MQTT-3.2.2-2] [MQTT-4.1.0-1]."""
    b = broker()
    s, present = tl.connect_client(b, "redeliver", clean=False)
    assert not present
    sub(s, 1, [("rd", 2)])
    p = client(b, "rd-pub")
    pub(p, "rd", b"m1", 1, pid=1)
    pub(p, "rd", b"m2", 2, pid=2)
    pub(p, "rd", b"m3", 2, pid=3)
    m1, m2, m3 = recv_publish(s), recv_publish(s), recv_publish(s)
    assert [(m["payload"], m["qos"]) for m in (m1, m2, m3)] == [(b"m1", 1), (b"m2", 2), (b"m3", 2)]
    s.send(tl.pubrec(m3["pid"]))
    expect_ack(s, tl.PUBREL, m3["pid"], flags=2)
    s.close()  # network failure: no DISCONNECT, nothing acknowledged further

    s, present = tl.connect_client(b, "redeliver", clean=False)
    assert present
    seen = [s.recv_packet(T) for _ in range(3)]
    pubs = [tl.parse_publish(f, body) for t, f, body in seen if t == tl.PUBLISH]
    rels = [(f, pid_of(body)) for t, f, body in seen if t == tl.PUBREL]
    assert [(m["payload"], m["qos"], m["dup"], m["pid"]) for m in pubs] == \
        [(b"m1", 1, True, m1["pid"]), (b"m2", 2, True, m2["pid"])]
    assert rels == [(2, m3["pid"])]
    s.send(tl.puback(m1["pid"]) + tl.pubrec(m2["pid"]) + tl.pubcomp(m3["pid"]))
    expect_ack(s, tl.PUBREL, m2["pid"], flags=2)
    s.send(tl.pubcomp(m2["pid"]))
    s.no_packet(0.3)
    pub(p, "rd", b"m4", 1, pid=4)
    m4 = collect(s, 1)[0]
    assert (m4["payload"], m4["dup"]) == (b"m4", False)


# ---- limits ----

def test_message_size_limit_acknowledged_but_not_delivered(broker):
    """message_size_limit 100: a 101-byte payload is acknowledged by its QoS (PUBACK, or
    PUBREC/PUBCOMP) but delivered to nobody, QoS 0 too, and the connection stays up; a 100-byte
    payload is delivered [MQTT-3.3.4-1] [MQTT-2.3.1-6]."""
    b = broker("message_size_limit 100")
    s = client(b, "msl-sub")
    sub(s, 1, [("msl", 1)])
    p = client(b, "msl-pub")
    p.send(tl.publish("msl", b"x" * 101, 0))
    pub(p, "msl", b"y" * 101, 1, pid=1)
    pub(p, "msl", b"z" * 101, 2, pid=2)
    pub(p, "msl", b"k" * 100, 1, pid=3)
    got = collect(s, 1)
    assert got[0]["payload"] == b"k" * 100
    s.no_packet(0.3)
    p.send(tl.pingreq())
    p.expect(tl.PINGRESP, T)


# ---- violations ----

VIOLATIONS = [  # raw bytes sent after CONNECT, and the statement each one breaks
    pytest.param(tl.packet(0x36, tl.mqtt_str("v/t") + b"\x00\x01x"), id="qos3"),  # [MQTT-3.3.1-4]
    pytest.param(tl.packet(0x38, tl.mqtt_str("v/t") + b"x"), id="qos0-dup",  # [MQTT-3.3.1-2]
                 marks=pytest.mark.xfail(tl.MODE == "mosquitto", strict=True,
                                         reason="Mosquitto 2.0.11 accepts DUP=1 with QoS 0")),
    pytest.param(tl.publish("v/+", b"x", 1, pid=1), id="plus-in-topic"),  # [MQTT-3.3.2-2]
    pytest.param(tl.publish("v/#", b"x", 0), id="hash-in-topic"),  # [MQTT-4.7.1-1]
    pytest.param(tl.publish("v/t", b"x", 1, pid=0), id="qos1-pid0"),  # [MQTT-2.3.1-1]
    pytest.param(tl.publish("v/t", b"x", 2, pid=0), id="qos2-pid0"),  # [MQTT-2.3.1-1]
    pytest.param(tl.publish("", b"x", 0), id="empty-topic"),  # [MQTT-4.7.3-1]
    pytest.param(tl.publish("v/\x00t", b"x", 0), id="nul-in-topic"),  # [MQTT-4.7.3-2]
    pytest.param(tl.packet(0x60, b"\x00\x01"), id="pubrel-flags-0"),  # [MQTT-3.6.1-1]
]


@pytest.mark.parametrize("raw", VIOLATIONS)
def test_publish_violation_closes_connection_and_delivers_nothing(broker, raw):
    """A malformed PUBLISH (QoS 3, DUP with QoS 0, wildcard / empty / NUL topic, packet id 0) or a
    PUBREL with reserved flags other than 0010 closes the connection without an acknowledgement
    and nothing is delivered [MQTT-3.3.1-4] [MQTT-3.3.1-2] [MQTT-3.3.2-2] [MQTT-4.7.1-1]
    [MQTT-2.3.1-1] [MQTT-4.7.3-1] [MQTT-4.7.3-2] [MQTT-3.6.1-1] [MQTT-2.2.2-2] [MQTT-4.8.0-1]."""
    b = broker()
    s = client(b, "viol-sub")
    sub(s, 1, [("#", 1)])
    c = client(b, "viol")
    c.send(raw)
    assert c.expect_closed(T) == []
    s.no_packet(0.3)


# ---- many clients over several I/O threads ----

def test_twenty_clients_on_four_threads_cross_publish_qos1_exactly_once(broker):
    """threads 4: 20 clients with distinct ids (spread over the I/O threads) each subscribe to
    mt/# at QoS 1 and publish 10 QoS 1 messages; every client receives all 200 messages exactly
    once, each publisher's messages in order, and every PUBLISH is acknowledged once
    [MQTT-4.3.2-1] [MQTT-4.3.2-2] [MQTT-4.6.0-6] [MQTT-4.5.0-1]."""
    b = broker(threads=4)
    nclients, nmsgs = 20, 10
    clients = [client(b, f"mt-client-{i:02d}") for i in range(nclients)]
    for c in clients:
        assert sub(c, 1, [("mt/#", 1)]) == [1]
    results, errors = {}, []

    def run(i, c):
        acks, got = [], []
        try:
            c.send(b"".join(tl.publish(f"mt/{i}", b"%d:%d" % (i, k), 1, pid=k + 1)
                            for k in range(nmsgs)))
            deadline = time.monotonic() + 20
            while len(acks) < nmsgs or len(got) < nclients * nmsgs:
                t, flags, body = c.recv_packet(deadline - time.monotonic())
                if t == tl.PUBACK:
                    acks.append(pid_of(body))
                elif t == tl.PUBLISH:
                    m = tl.parse_publish(flags, body)
                    c.send(tl.puback(m["pid"]))
                    got.append(m["payload"])
                else:
                    raise AssertionError(f"unexpected packet type {t}")
            results[i] = (acks, got)
        except Exception as e:  # reported by the main thread
            errors.append(f"client {i}: {e!r} (got {len(got)} messages, {len(acks)} acks)")

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, "\n".join(errors)
    expected = {b"%d:%d" % (i, k) for i in range(nclients) for k in range(nmsgs)}
    for i, (acks, got) in results.items():
        assert sorted(acks) == list(range(1, nmsgs + 1)), f"client {i} acks {acks}"
        assert len(got) == len(expected) and set(got) == expected, f"client {i}"
        for sender in range(nclients):
            mine = [g for g in got if g.startswith(b"%d:" % sender)]
            assert mine == [b"%d:%d" % (sender, k) for k in range(nmsgs)], \
                f"client {i}: messages of client {sender} out of order: {mine}"
    for c in clients:
        c.no_packet(0.05)
