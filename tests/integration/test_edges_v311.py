"""MQTT 3.1.1 edge cases not covered by the per-area files: strings kept byte for byte (BOM,
case, longest topic), packets with bytes beyond their last field, UNSUBSCRIBE filter encoding,
and what follows a DISCONNECT in the same write.
Each test names in its docstring the [MQTT-x.y.z-n] statements it proves."""
import struct

import pytest

import ternlib as tl
from ternlib import (PUBACK, PUBLISH, SUBACK, UNSUBACK, RawClient, connect_packet,
                     expect_publish, mqtt_str, packet, parse_publish, publish, subscribe,
                     unsubscribe)


def subscribed(b, cid, filters):
    """A client subscribed to filters and to its own sentinel topic "end/<cid>"."""
    c = tl.connect(b, cid)
    filters = filters + [("end/" + cid, 1)]
    c.send(subscribe(1, filters))
    _, body = c.expect(SUBACK)
    assert list(body[2:]) == [q for _, q in filters]
    c.cid = cid
    return c


def published(p, topic, payload, pid):
    p.send(publish(topic, payload, qos=1, pid=pid))
    _, body = p.expect(PUBACK)
    assert struct.unpack("!H", body)[0] == pid


def quiet(c, p):
    """Asserts c (made by subscribed()) got nothing that p published before: p now publishes
    to c's sentinel topic, which must be the next PUBLISH c receives; then nothing else for a
    short while (so a stray message is caught whether it comes before or after the sentinel).
    A PINGREQ round trip would not do: with several I/O threads, routing from another
    connection is not ordered with the subscriber's own packets."""
    p.send(publish("end/" + c.cid, b"end", qos=1, pid=999))
    p.expect(PUBACK)
    t, flags, body = c.recv_packet()
    assert t == PUBLISH, f"unexpected packet {t} {body!r}"
    m = parse_publish(flags, body)
    assert m["topic"] == "end/" + c.cid, f"unexpected PUBLISH before the sentinel: {m}"
    c.send(tl.puback(m["pid"]))
    c.no_packet(0.2)


def test_bom_and_case_are_not_normalised(broker):
    """A topic starting with U+FEFF (EF BB BF) keeps it: "#" receives it byte for byte, the
    filter with the BOM matches, the same topic without it does not; topics differing only in
    case or a trailing "/" are different. [MQTT-1.5.3-3] [MQTT-4.7.3-4]"""
    b = broker()
    bom = "\ufeffbom/t"
    everything = subscribed(b, "e-all", [("#", 1)])
    with_bom = subscribed(b, "e-bom", [(bom, 1)])
    plain = subscribed(b, "e-plain", [("bom/t", 1), ("Case/T", 1)])
    p = tl.connect(b, "e-pub")
    for i, topic in enumerate([bom, "case/t", "Case/T/"]):
        published(p, topic, b"x", i + 1)
    got = [expect_publish(everything, t, b"x", 1, ack=True)["topic"]
           for t in (bom, "case/t", "Case/T/")]
    assert got[0].encode() == b"\xef\xbb\xbfbom/t"
    expect_publish(with_bom, bom, b"x", 1, ack=True)
    quiet(with_bom, p)
    quiet(plain, p)


def test_longest_topic_name(broker):
    """A 65535-byte topic name (the most a UTF-8 string can encode) is routed whole, to an exact
    filter and to "#", with RETAIN stored and resent whole too (66 levels: under both brokers'
    default level limits, 128 for ternd's max_topic_levels). [MQTT-4.7.3-3] [MQTT-1.5.3-1]"""
    b = broker()
    topic = "/".join(["L" * 999] * 66)[:65535]
    assert len(topic.encode()) == 65535
    exact = subscribed(b, "long-exact", [(topic, 1)])
    p = tl.connect(b, "long-pub")
    p.send(publish(topic, b"long", qos=1, pid=1, retain=True))
    p.expect(PUBACK)
    expect_publish(exact, topic, b"long", 1, ack=True, retain=False)
    late = tl.connect(b, "long-late")
    late.send(subscribe(2, [("#", 0)]))
    late.expect(SUBACK)
    m = expect_publish(late, topic, b"long", 0, retain=True)
    assert len(m["topic"]) == 65535


# Each is a well-formed packet plus bytes its remaining length covers but no field accounts
# for: a protocol violation to close on [MQTT-4.8.0-1].
TRAILING = {
    "puback": packet(0x40, struct.pack("!H", 1) + b"\x00"),
    "pingreq": packet(0xC0, b"\x00"),
    "disconnect": packet(0xE0, b"\x00"),
    "unsubscribe_half_filter": packet(0xA2, struct.pack("!H", 1) + mqtt_str("a") + b"\x00"),
    "subscribe_half_filter": packet(0x82, struct.pack("!H", 1) + mqtt_str("a") + b"\x00\x00"),
}
MOSQUITTO_LENIENT = {"pingreq", "puback"}  # answers PINGRESP, ignores the extra byte


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.xfail(
        tl.MODE == "mosquitto" and n in MOSQUITTO_LENIENT, strict=True,
        reason="Mosquitto 2.0.11 ignores bytes after a PINGREQ or a PUBACK's id"))
    for n in sorted(TRAILING)])
def test_bytes_beyond_the_last_field_close(broker, name):
    """A packet whose remaining length holds more than its fields is malformed: the connection
    is closed and nothing more is answered. [MQTT-4.8.0-1] [MQTT-3.10.3-1] [MQTT-3.8.3-1]"""
    b = broker()
    c = tl.connect(b, "trail")
    c.send(TRAILING[name])
    c.expect_closed(allow=())


def test_connect_with_bytes_beyond_the_password_closed(broker):
    """A CONNECT whose remaining length goes past its last present field (here the password) is
    not a valid CONNECT: closed without CONNACK. [MQTT-3.1.4-1] [MQTT-3.1.3-1]"""
    b = broker()
    good = connect_packet("extra", username="u", password=b"p")
    body = good[2:] + b"\x00\x01z"  # a short CONNECT: one remaining-length byte
    c = RawClient(b.host, b.port)
    c.send(packet(0x10, body))
    c.expect_closed(allow=())


@pytest.mark.parametrize("filt", [b"a/\xc3\x28", b"a/\x00", b"\xed\xa0\x80"],
                         ids=["invalid_utf8", "nul", "surrogate"])
def test_unsubscribe_filter_must_be_utf8(broker, filt):
    """An UNSUBSCRIBE filter with ill-formed UTF-8, U+0000 or a surrogate closes the connection
    without an UNSUBACK; another client is unaffected. [MQTT-3.10.3-1] [MQTT-1.5.3-1]
    [MQTT-1.5.3-2]"""
    b = broker()
    other = subscribed(b, "un-other", [("un/t", 0)])
    c = tl.connect(b, "un-bad")
    c.send(packet(0xA2, struct.pack("!H", 5) + struct.pack("!H", len(filt)) + filt))
    c.expect_closed(allow=())
    p = tl.connect(b, "un-pub")
    p.send(publish("un/t", b"ok"))
    expect_publish(other, "un/t", b"ok", 0)


def test_nothing_after_disconnect_is_processed(broker):
    """DISCONNECT ends the connection: a retained PUBLISH and a SUBSCRIBE written right after it
    in the same segment are not processed (nothing stored, nothing answered), and the will is
    discarded. [MQTT-3.14.4-3] [MQTT-3.1.2-10]"""
    b = broker()
    watch = subscribed(b, "dc-watch", [("dc/#", 0)])
    c = RawClient(b.host, b.port)
    c.send(connect_packet("dc", will=("dc/will", b"no")))
    c.expect(tl.CONNACK)
    c.send(tl.disconnect() + publish("dc/after", b"late", retain=True) +
           subscribe(1, [("x", 0)]))
    c.expect_closed(allow=())
    p = tl.connect(b, "dc-pub")
    late = subscribed(b, "dc-late", [("dc/#", 0)])
    quiet(late, p)   # no retained message was stored
    quiet(watch, p)  # neither the will nor the late PUBLISH was routed


def test_unsuback_for_each_unsubscribe_even_when_repeated(broker):
    """Repeating the same UNSUBSCRIBE gets an UNSUBACK each time, echoing each id, and the
    subscription stays gone. [MQTT-3.10.4-4] [MQTT-3.10.4-5] [MQTT-2.3.1-7]"""
    b = broker()
    c = subscribed(b, "rep", [("rep/t", 1)])
    for pid in (7, 8, 9):
        c.send(unsubscribe(pid, ["rep/t"]))
        flags, body = c.expect(UNSUBACK)
        assert (flags, body) == (0, struct.pack("!H", pid))
    p = tl.connect(b, "rep-pub")
    published(p, "rep/t", b"gone", 1)
    quiet(c, p)


def test_subscriber_gets_dup_0_and_own_packet_ids(broker):
    """The broker's PUBLISH to a subscriber carries DUP=0 on first delivery whatever the
    publisher sent, and a packet id of the broker's choosing, non-zero and unique among the
    subscriber's unacknowledged messages. [MQTT-3.3.1-3] [MQTT-2.3.1-1] [MQTT-2.3.1-2]
    [MQTT-2.3.1-4]"""
    b = broker()
    s = subscribed(b, "ids-sub", [("ids/t", 2)])
    p = tl.connect(b, "ids-pub")
    for i in range(6):  # the same publisher id each time, DUP=1 on every other one
        p.send(publish("ids/t", b"%d" % i, qos=1, pid=42, dup=bool(i % 2)))
        p.expect(PUBACK)
    got = []
    for _ in range(6):
        flags, body = s.expect(PUBLISH)
        got.append(parse_publish(flags, body))
    assert [m["payload"] for m in got] == [b"%d" % i for i in range(6)]
    assert not any(m["dup"] for m in got)
    pids = [m["pid"] for m in got]
    assert 0 not in pids and len(set(pids)) == 6, pids


def test_same_filter_twice_in_one_subscribe(broker):
    """The same filter twice in one SUBSCRIBE: one return code each, the second replaces the
    first (one subscription, at the second QoS), so a message is delivered once.
    [MQTT-3.8.4-3] [MQTT-3.8.4-4] [MQTT-3.8.4-5] [MQTT-3.9.3-1]"""
    b = broker()
    c = tl.connect(b, "twice-sub")
    c.send(subscribe(3, [("tw/t", 0), ("tw/t", 2)]))
    _, body = c.expect(SUBACK)
    assert body == struct.pack("!H", 3) + bytes([0, 2])
    p = tl.connect(b, "twice-pub")
    p.send(publish("tw/t", b"once", qos=1, pid=1))
    p.expect(PUBACK)
    expect_publish(c, "tw/t", b"once", 1, ack=True)
    c.no_packet(0.3)


def test_suback_for_a_thousand_filters(broker):
    """One SUBSCRIBE with 1000 filters (a SUBACK body of 1002 bytes, two remaining-length
    bytes) gets one SUBACK with the id and 1000 return codes in order, and each filter routes.
    [MQTT-3.8.4-1] [MQTT-3.8.4-4] [MQTT-3.9.3-1] [MQTT-2.3.1-7]"""
    b = broker()
    c = tl.connect(b, "many-sub")
    filters = [(f"many/{i}", i % 3) for i in range(1000)]
    c.send(subscribe(77, filters))
    _, body = c.expect(SUBACK)
    assert body == struct.pack("!H", 77) + bytes(q for _, q in filters)
    p = tl.connect(b, "many-pub")
    for i in (0, 499, 999):
        p.send(publish(f"many/{i}", b"%d" % i, qos=1, pid=i + 1))
        p.expect(PUBACK)
        expect_publish(c, f"many/{i}", b"%d" % i, min(1, i % 3), ack=True)
