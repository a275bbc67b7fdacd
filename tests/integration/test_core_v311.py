"""MQTT 3.1 / 3.1.1 core behaviour, byte level: CONNECT validation and every reachable CONNACK
code, sessions (clean, persistent, takeover, expiry), keep-alive and CONNECT timeout, wills,
and bad input that must close only the offending connection. Statement ids are MQTT 3.1.1's."""
import re
import socket
import struct
import threading
import time

import pytest

import ternlib as tl
from ternlib import (CONNACK, PINGRESP, PUBACK, PUBLISH, SUBACK, RawClient, connect,
                     connect_client, packet, parse_publish, publish, subscribe)


def connack(b, data, timeout=5):
    c = RawClient(b.host, b.port)
    c.send(data)
    _, body = c.expect(CONNACK, timeout)
    return c, body[0], body[1]


# ---- CONNECT ----

def test_mqtt311_and_mqtt31_accepted(broker):
    """[MQTT-3.1.2-2] levels 4 ("MQTT") and 3 ("MQIsdp") are supported; a valid CONNECT
    (fields in order [MQTT-3.1.3-1], client id identifying the session [MQTT-3.1.3-2]) gets
    CONNACK 0 [MQTT-3.1.4-4] as the first packet from the server [MQTT-3.2.0-1]."""
    b = broker()
    _, _, rc = connack(b, connect("v4"))
    assert rc == 0
    _, _, rc = connack(b, connect("v3", proto_level=3, proto_name=b"MQIsdp"))
    assert rc == 0


@pytest.mark.parametrize("name,level", [(b"MQTT", 3), (b"MQTT", 6), (b"MQIsdp", 4)])
def test_unsupported_level_gets_0x01_then_close(broker, name, level):
    """[MQTT-3.1.2-2] unacceptable protocol level: CONNACK 0x01, then the connection closes
    [MQTT-3.2.2-5]; nothing after the refused CONNECT is processed [MQTT-3.1.4-5]."""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(connect("lvl", proto_level=level, proto_name=name))
    seen = c.expect_closed()
    assert seen and seen[0][0] == CONNACK and seen[0][2][1] == 1


def test_bad_protocol_name_closes(broker):
    """[MQTT-3.1.2-1] an unknown protocol name: disconnect."""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(connect("pn", proto_name=b"MQTX"))
    assert c.expect_closed() == []


@pytest.mark.parametrize("flags", [0x03, 0x02 | 0x08, 0x02 | 0x20, 0x02 | 0x04 | 0x18, 0x42])
def test_invalid_connect_flags_close(broker, flags):
    """[MQTT-3.1.2-3] reserved bit; [MQTT-3.1.2-11] [MQTT-3.1.2-13] will QoS/retain without will;
    [MQTT-3.1.2-14] will QoS 3; [MQTT-3.1.2-22] [MQTT-3.1.2-20] password without user name: all
    close without a CONNACK [MQTT-3.1.4-1]."""
    b = broker()
    c = RawClient(b.host, b.port)
    body = (tl.mqtt_str("MQTT") + bytes([4, flags]) + struct.pack("!H", 60) + tl.mqtt_str("f")
            + (tl.mqtt_str("w/t") + tl.mqtt_str("x") if flags & 0x04 else b"")
            + (tl.mqtt_str("pw") if flags & 0x40 else b""))
    c.send(packet(0x10, body))
    assert c.expect_closed() == []


@pytest.mark.ternd_only  # mosquitto 2 accepts 3.1 client ids longer than 23 bytes
def test_client_id_rules(broker):
    """[MQTT-3.1.3-6] empty id + clean session: accepted with an assigned id; [MQTT-3.1.3-8]
    empty id + clean session 0: CONNACK 0x02 and close [MQTT-3.1.3-9] [MQTT-3.1.3-7]; 3.1 ids
    longer than 23: 0x02."""
    b = broker()
    _, _, rc = connack(b, connect("", clean=True))
    assert rc == 0
    c, _, rc = connack(b, connect("", clean=False))
    assert rc == 2
    c.expect_closed()
    c, _, rc = connack(b, connect("x" * 24, proto_level=3, proto_name=b"MQIsdp"))
    assert rc == 2
    _, _, rc = connack(b, connect("x" * 23, proto_level=3, proto_name=b"MQIsdp"))
    assert rc == 0
    _, _, rc = connack(b, connect("y" * 200))  # 3.1.1 allows longer ids [MQTT-3.1.3-5]
    assert rc == 0


def test_anonymous_refused_on_non_anonymous_listener(broker):
    """CONNACK 0x05 (not authorised) when anonymous clients are not allowed."""
    b = broker("allow_anonymous false")
    c, _, rc = connack(b, connect("anon"))
    assert rc == 5
    c.expect_closed()


def test_invalid_utf8_will_topic_closes(broker):
    """[MQTT-3.1.3-10] the Will Topic must be UTF-8: ill-formed UTF-8 closes the connection."""
    b = broker()
    c = RawClient(b.host, b.port)
    body = (tl.mqtt_str("MQTT") + bytes([4, 0x06]) + struct.pack("!H", 60) + tl.mqtt_str("wu")
            + struct.pack("!H", 2) + b"\xc3\x28" + tl.mqtt_str("x"))
    c.send(packet(0x10, body))
    assert c.expect_closed() == []


@pytest.mark.parametrize("will_topic", ["will/+", "will/#", ""])
def test_invalid_will_topic_refused(broker, will_topic):
    """[MQTT-3.1.3-10] [MQTT-3.3.2-2] [MQTT-4.7.3-1] a Will Topic that could not be PUBLISHed
    (wildcard, empty) is refused: the connection is closed, and a CONNACK sent before the close
    carries a non-zero code [MQTT-3.2.2-4] [MQTT-3.2.2-5]."""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(connect("wt", will_topic=will_topic, will_payload=b"x"))
    seen = c.expect_closed(allow=(CONNACK,))
    assert all(body[1] != 0 and body[0] == 0 for _, _, body in seen), seen


@pytest.mark.ternd_only  # mosquitto closes without a CONNACK, which the standard also allows
@pytest.mark.parametrize("will", [dict(will_qos=2), dict(will_retain=True)], ids=["qos", "retain"])
def test_will_beyond_server_capabilities_gets_0x03(broker, will):
    """CONNACK 0x03 (server unavailable) then close when the will asks for what this server is
    configured not to do: will QoS 2 with max_qos 1, will retain with retain_available false
    [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-3.1.4-1]."""
    b = broker("max_qos 1\nretain_available false")
    c, present, rc = connack(b, connect("cap", will_topic="w/t", will_payload=b"x", **will))
    assert (present, rc) == (0, 3)
    assert c.expect_closed() == []


def test_first_packet_must_be_connect(broker):
    """[MQTT-3.1.0-1] anything before CONNECT closes the connection."""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(tl.pingreq())
    assert c.expect_closed() == []


def test_second_connect_is_a_protocol_violation(broker):
    """[MQTT-3.1.0-2] a second CONNECT closes the connection."""
    b = broker()
    c, _ = connect_client(b, "twice")
    c.send(connect("twice"))
    assert c.expect_closed() == []


# ---- sessions ----

def test_session_present_and_persistent_subscriptions(broker):
    """[MQTT-3.2.2-1] clean session: present 0; [MQTT-3.2.2-2] resumed: present 1 and the
    subscription still delivers [MQTT-3.1.2-4] [MQTT-3.1.2-5]; [MQTT-3.1.2-6] clean session
    discards it; CleanSession processing on a valid CONNECT [MQTT-3.1.4-3], Session Present 0
    without stored state [MQTT-3.2.2-3], the session lasts while connected [MQTT-4.1.0-2]."""
    b = broker()
    c, present = connect_client(b, "sess", clean=False)
    assert not present
    c.send(subscribe(1, [("s/t", 1)]))
    c.expect(SUBACK)
    c.send(tl.disconnect())
    c.expect_closed()
    p, _ = connect_client(b, "sess-pub")
    p.send(publish("s/t", b"while away", qos=1, pid=1))
    p.expect(PUBACK)
    c, present = connect_client(b, "sess", clean=False)
    assert present
    flags, body = c.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"while away"
    c.send(tl.puback(parse_publish(flags, body)["pid"]))
    c.send(tl.disconnect())
    c.expect_closed()
    c, present = connect_client(b, "sess", clean=True)
    assert not present
    c.send(tl.disconnect())
    c.expect_closed()
    c, present = connect_client(b, "sess", clean=False)
    assert not present, "clean session must have discarded the state"


def test_takeover_closes_the_old_connection(broker):
    """[MQTT-3.1.4-2] a second connection with the same id closes the first; the session goes on
    (subscriptions kept with clean session 0)."""
    b = broker()
    old, _ = connect_client(b, "dup", clean=False)
    old.send(subscribe(1, [("tk/#", 0)]))
    old.expect(SUBACK)
    new, present = connect_client(b, "dup", clean=False)
    assert present
    assert old.expect_closed() == []
    p, _ = connect_client(b, "tk-pub")
    p.send(publish("tk/x", b"to the new one"))
    flags, body = new.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"to the new one"


def test_takeover_across_threads(broker):
    """Many ids (sessions homed on different I/O threads) taken over by connections that arrive
    on other threads: each old connection is closed, each new one works."""
    b = broker(threads=4)
    olds = [connect_client(b, f"xt{i}", clean=False)[0] for i in range(12)]
    news = [connect_client(b, f"xt{i}", clean=False) for i in range(12)]
    assert all(present for _, present in news)
    for o in olds:
        assert o.expect_closed() == []


@pytest.mark.ternd_only  # mosquitto expires sessions on a slower schedule
def test_abandoned_persistent_session_expires(broker):
    """persistent_client_expiration: a session offline longer than it is removed (logged)."""
    b = broker("persistent_client_expiration 1")
    c, _ = connect_client(b, "old", clean=False)
    c.send(subscribe(1, [("e/#", 1)]))
    c.expect(SUBACK)
    c.send(tl.disconnect())
    c.expect_closed()
    time.sleep(2.5)  # the point of the test: time passing
    c, present = connect_client(b, "old", clean=False)
    assert not present
    assert "expired" in b.stderr_text()
    p, _ = connect_client(b, "old-pub")
    p.send(publish("e/x", b"to nobody", qos=1, pid=1))
    p.expect(PUBACK)
    c.no_packet(0.3)  # the expired session's subscription is gone: resubscribing is needed
    c.send(subscribe(2, [("e/#", 1)]))
    c.expect(SUBACK)
    p.send(publish("e/x", b"again", qos=1, pid=2))
    p.expect(PUBACK)
    flags, body = c.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"again"


# ---- keep-alive ----

@pytest.mark.ternd_only  # mosquitto checks keep-alive less often than 1.5 s
def test_keepalive_timeout_closes(broker):
    """[MQTT-3.1.2-24] no packet for 1.5 x keep-alive: the server disconnects."""
    b = broker()
    c, _ = connect_client(b, "ka", keepalive=1)
    t0 = time.monotonic()
    assert c.expect_closed(timeout=5) == []
    assert 1.4 <= time.monotonic() - t0 <= 3.5


def test_pingreq_keeps_alive(broker):
    """[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP and keeps the connection open."""
    b = broker()
    c, _ = connect_client(b, "ping", keepalive=1)
    end = time.monotonic() + 2.2  # beyond 1.5 x keep-alive
    while time.monotonic() < end:
        c.send(tl.pingreq())
        c.expect(PINGRESP)
        c.no_packet(0.5)  # paced below the keep-alive on purpose
    c.send(tl.pingreq())
    c.expect(PINGRESP)


@pytest.mark.ternd_only  # connect_timeout is a ternd directive
def test_connect_timeout(broker):
    """A socket that never sends CONNECT is closed after connect_timeout."""
    b = broker("connect_timeout 1")
    s = socket.create_connection((b.host, b.port))
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(10) == b""
    assert time.monotonic() - t0 <= 3.5


# ---- wills ----

def will_watcher(b, cid="watch"):
    w, _ = connect_client(b, cid)
    w.send(subscribe(1, [("will/#", 1)]))
    w.expect(SUBACK)
    return w


def test_will_on_abnormal_close(broker):
    """[MQTT-3.1.2-8] the will is published when the connection is lost; QoS honoured; will
    retain 0 publishes it non-retained [MQTT-3.1.2-16]."""
    b = broker()
    w = will_watcher(b)
    c, _ = connect_client(b, "dies", will_topic="will/dies", will_payload=b"gone", will_qos=1)
    c.close()
    flags, body = w.expect(PUBLISH)
    m = parse_publish(flags, body)
    assert (m["topic"], m["payload"], m["qos"]) == ("will/dies", b"gone", 1)
    assert not m["retain"]


def test_no_will_after_disconnect(broker):
    """[MQTT-3.1.2-10] DISCONNECT deletes the will; [MQTT-3.1.2-12] without the Will Flag
    nothing is published when the connection is lost."""
    b = broker()
    w = will_watcher(b)
    nowill, _ = connect_client(b, "nowill")
    nowill.close()
    c, _ = connect_client(b, "polite", will_topic="will/polite", will_payload=b"no")
    c.send(tl.disconnect())
    c.expect_closed()
    w.no_packet(0.5)


@pytest.mark.ternd_only  # mosquitto checks keep-alive less often than 1.5 s
def test_will_on_keepalive_timeout(broker):
    """[MQTT-3.1.2-8] [MQTT-3.1.2-24] the server closes a silent keep-alive-1 connection and
    publishes its will; a connection kept alive by PINGREQ publishes nothing."""
    b = broker()
    w = will_watcher(b)
    alive, _ = connect_client(b, "chatty", keepalive=1, will_topic="will/alive",
                              will_payload=b"no")
    c, _ = connect_client(b, "silent", keepalive=1, will_topic="will/ka", will_payload=b"ka")
    end = time.monotonic() + 3
    got = None
    while got is None and time.monotonic() < end:
        alive.send(tl.pingreq())
        alive.expect(PINGRESP)
        try:
            got = w.expect(PUBLISH, timeout=0.4)  # paced below the keep-alive on purpose
        except TimeoutError:
            pass
    assert got is not None, "no will within 3 s of a keep-alive of 1 s"
    assert parse_publish(*got)["payload"] == b"ka"
    assert c.expect_closed(timeout=1) == []


def test_will_on_takeover(broker):
    """[MQTT-3.1.4-2] [MQTT-3.1.2-8] the connection closed by a takeover did not send
    DISCONNECT: its will is published (once), and the new connection works."""
    b = broker()
    w = will_watcher(b)
    old, _ = connect_client(b, "twin", will_topic="will/twin", will_payload=b"replaced")
    new, _ = connect_client(b, "twin")
    flags, body = w.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"replaced"
    assert old.expect_closed() == []
    new.send(tl.pingreq())
    new.expect(PINGRESP)
    w.no_packet(0.3)


def test_retained_will(broker):
    """[MQTT-3.1.2-17] a will with retain is stored as a retained message."""
    b = broker()
    c, _ = connect_client(b, "rw", will_topic="will/retained", will_payload=b"last",
                          will_retain=True)
    c.close()
    w = will_watcher(b, "late")
    flags, body = w.expect(PUBLISH)
    m = parse_publish(flags, body)
    assert m["payload"] == b"last" and m["retain"]


# ---- bad input ----

BAD_INPUTS = {
    "remaining_length_5_bytes": b"\x30\xff\xff\xff\xff\x01",
    "subscribe_reserved_flags": packet(0x80, struct.pack("!H", 1) + tl.mqtt_str("a") + b"\x00"),
    "pubrel_reserved_flags": packet(0x60, struct.pack("!H", 1)),
    "invalid_utf8_topic": packet(0x30, struct.pack("!H", 2) + b"\xc3\x28"),
    "nul_in_topic": packet(0x30, struct.pack("!H", 3) + b"a\x00b"),
    "wildcard_in_publish_topic": publish("a/+/b", b"x"),
    "hash_in_publish_topic": publish("a/#", b"x"),
    "publish_qos3": packet(0x36, tl.mqtt_str("a") + struct.pack("!H", 1)),
    "packet_type_0": packet(0x00, b""),
    "packet_type_15_auth_in_311": packet(0xF0, b"\x00"),
    "subscribe_no_filters": packet(0x82, struct.pack("!H", 1)),
    "unsubscribe_no_filters": packet(0xA2, struct.pack("!H", 1)),
    "garbage": bytes(range(0x10, 0x60)),
    "empty_topic": publish("", b"x"),
    "topic_length_past_packet_end": packet(0x30, struct.pack("!H", 10) + b"ab"),
    "subscribe_missing_qos_byte": packet(0x82, struct.pack("!H", 1) + tl.mqtt_str("a/b")),
    "subscribe_requested_qos_3": packet(0x82, struct.pack("!H", 1) + tl.mqtt_str("a") + b"\x03"),
    "puback_too_short": packet(0x40, b"\x00"),
    "pingreq_with_body": packet(0xC0, b"\x00"),
    "pingreq_reserved_flags": packet(0xC1),
    "disconnect_reserved_flags": packet(0xE2),
    "publish_qos1_packet_id_0": packet(0x32, tl.mqtt_str("a") + b"\x00\x00x"),
    "connack_from_client": packet(0x20, b"\x00\x00"),
    "unicode_surrogate_in_topic": packet(0x30, struct.pack("!H", 3) + b"\xed\xa0\x80"),
}


MOSQUITTO_ANSWERS = {"pingreq_with_body", "pingreq_reserved_flags"}  # it sends PINGRESP


def bad_input_logged(cid):
    """The log line that names a client disconnected for bad input, with a reason."""
    if tl.MODE == "mosquitto":
        return re.compile(rf"({re.escape(cid)} disconnected due to \w|"
                          rf"Bad socket read/write on client {re.escape(cid)}:)")
    return re.compile(rf"'{re.escape(cid)}'.* disconnected: (?!connection closed by peer)\w")


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(
        tl.MODE == "mosquitto" and n in MOSQUITTO_ANSWERS, strict=True,
        reason="Mosquitto 2.0.11 answers a PINGREQ with reserved flags or a body"))
    for n in sorted(BAD_INPUTS)])
def test_bad_input_closes_only_that_connection(broker, name):
    """[MQTT-4.8.0-1] [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-2.2.2-2] [MQTT-3.3.2-2]
    [MQTT-3.8.3-3] [MQTT-3.10.3-2] [MQTT-3.8.3-4] [MQTT-2.3.1-1] [MQTT-3.3.1-4]: the offending
    connection is closed and logged with its client id and the reason (protocol error or
    malformed packet); another client keeps publishing and receiving."""
    b = broker()
    good, _ = connect_client(b, "good")
    good.send(subscribe(1, [("ok/t", 1)]))
    good.expect(SUBACK)
    bad, _ = connect_client(b, f"bad-{name}")
    bad.send(BAD_INPUTS[name])
    assert bad.expect_closed() == []
    good.send(publish("ok/t", b"still fine", qos=1, pid=7))
    seen = {good.recv_packet()[0], good.recv_packet()[0]}
    assert seen == {PUBACK, PUBLISH}
    b.wait_stderr(bad_input_logged(f"bad-{name}"))


def test_oversized_packet_closed_from_its_header(broker):
    """A packet announcing more than max_packet_size is refused from the fixed header alone."""
    b = broker("max_packet_size 1000")
    c, _ = connect_client(b, "big")
    c.send(b"\x30" + tl.varint(10_000_000) + b"\x00\x01a")  # body never sent
    assert c.expect_closed(timeout=3) == []


@pytest.mark.parametrize("cut", [1, 2, 20])
def test_truncated_packet_then_close_is_harmless(broker, cut):
    """A connection lost in the middle of a packet (after the first byte, inside the remaining
    length, inside the body) is an abnormal close: the partial PUBLISH is not delivered, the
    will is published [MQTT-3.1.2-8], and the broker keeps serving others."""
    b = broker()
    w = will_watcher(b)
    c, _ = connect_client(b, "trunc", will_topic="will/trunc", will_payload=b"cut")
    c.send(publish("will/partial", b"y" * 200)[:cut])
    c.close()
    flags, body = w.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"cut"
    w.no_packet(0.2)
    good, _ = connect_client(b, "after")
    good.send(tl.pingreq())
    good.expect(PINGRESP)


def test_bad_inputs_concurrently_while_a_client_exchanges_200_qos1(broker):
    """Many bad sockets at once; a good client loses none of 200 QoS 1 messages."""
    b = broker(threads=2)
    sub, _ = connect_client(b, "c-sub")
    sub.send(subscribe(1, [("c/t", 1)]))
    sub.expect(SUBACK)
    pub, _ = connect_client(b, "c-pub")
    stop = threading.Event()

    def attacker(i):
        while not stop.is_set():
            try:
                s = socket.create_connection((b.host, b.port), timeout=2)
                s.sendall(connect(f"att{i}") + BAD_INPUTS[sorted(BAD_INPUTS)[i % len(BAD_INPUTS)]])
                s.recv(100)
                s.close()
            except OSError:
                pass

    threads = [threading.Thread(target=attacker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    try:
        got = []
        for i in range(200):
            pub.send(publish("c/t", b"%d" % i, qos=1, pid=i % 60000 + 1))
            pub.expect(PUBACK)
            flags, body = sub.expect(PUBLISH)
            m = parse_publish(flags, body)
            sub.send(tl.puback(m["pid"]))
            got.append(int(m["payload"]))
        assert got == list(range(200))
    finally:
        stop.set()
        for t in threads:
            t.join()
