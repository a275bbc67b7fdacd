"""MQTT 5.0 delivery flows and session rules, byte level (statement ids are MQTT 5.0's)."""
import struct

import pytest

from ternlib import (CONNACK, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                     UNSUBACK, RawClient, connect, disconnect, packet, pingreq, puback, pubcomp,
                     pubrec, pubrel, publish, subscribe, unsubscribe)
from test_v5 import expect_disconnect, parse_props, props, pub5, recv_pub, split_props, sub5, v5

pytestmark = pytest.mark.ternd_only


def test_v5_qos_flows_server_to_client(broker):
    """[MQTT-4.3.1-1] QoS 0 with DUP 0 and no packet id [MQTT-2.2.1-2]; [MQTT-4.3.2-1]
    [MQTT-4.3.2-2] [MQTT-4.3.3-1] [MQTT-2.2.1-4] unused non-zero ids, DUP 0 on first send
    [MQTT-3.3.1-3]; [MQTT-4.3.2-3] [MQTT-4.3.3-3] unacknowledged until PUBACK/PUBREC;
    [MQTT-4.3.3-5] [MQTT-4.3.3-6] after PUBREC only PUBREL is re-sent; [MQTT-2.2.1-5] ids echoed;
    [MQTT-4.5.0-1] [MQTT-4.6.0-6] in order; [MQTT-4.8.2-3] granted QoS respected. [MQTT-3.3.1-1] [MQTT-4.4.0-1] [MQTT-4.3.3-2] [MQTT-4.3.3-4] [MQTT-4.6.0-5] [MQTT-3.3.1-2]"""
    b = broker()
    s, _, _ = v5(b, "fl-s", cprops=props((0x11, 60)))
    sub5(s, "fl/#", opts=2)
    p, _, _ = v5(b, "fl-p")
    pub5(p, "fl/0", b"a", qos=0)
    pub5(p, "fl/1", b"b", qos=1, pid=1)
    pub5(p, "fl/2", b"c", qos=2, pid=2)
    m0, m1, m2 = recv_pub(s), recv_pub(s), recv_pub(s)
    assert (m0["qos"], m0["pid"], m0["dup"]) == (0, None, False)
    assert m1["qos"] == 1 and m1["pid"] and not m1["dup"]
    assert m2["qos"] == 2 and m2["pid"] and m2["pid"] != m1["pid"] and not m2["dup"]
    s.send(pubrec(m2["pid"]))
    _, body = s.expect(PUBREL)
    assert struct.unpack("!H", body[:2])[0] == m2["pid"]
    s.close()  # PUBACK for m1 and PUBCOMP for m2 never sent
    s, present, _ = v5(b, "fl-s", clean=False, cprops=props((0x11, 60)))
    assert present
    again = recv_pub(s)
    assert again["pid"] == m1["pid"] and again["dup"]
    _, body = s.expect(PUBREL)  # the PUBLISH of m2 is not re-sent [MQTT-4.3.3-6]
    assert struct.unpack("!H", body[:2])[0] == m2["pid"]
    s.send(puback(m1["pid"]))
    s.send(pubcomp(m2["pid"]))
    s.no_packet(0.5)


def test_v5_qos_flows_client_to_server(broker):
    """[MQTT-4.3.2-4] PUBACK with the packet id; [MQTT-4.3.2-5] the same id after PUBACK is a
    new message; [MQTT-4.3.3-8] PUBREC with the id; [MQTT-4.3.3-10] duplicates before PUBREL are
    acknowledged and not delivered twice; [MQTT-4.3.3-12] after PUBCOMP the id is new;
    [MQTT-3.3.4-1] responses follow the QoS. [MQTT-4.3.3-11] [MQTT-3.3.2-1]"""
    b = broker()
    s, _, _ = v5(b, "cf-s")
    sub5(s, "cf/#", opts=2)
    p, _, _ = v5(b, "cf-p")
    for _ in range(2):
        p.send(publish("cf/1", b"q1", qos=1, pid=9, props=b""))
        _, body = p.expect(PUBACK)
        assert struct.unpack("!H", body[:2])[0] == 9
        assert recv_pub(s)["payload"] == b"q1"
    p.send(publish("cf/2", b"q2", qos=2, pid=10, props=b""))
    _, body = p.expect(PUBREC)
    p.send(publish("cf/2", b"q2", qos=2, pid=10, dup=True, props=b""))
    p.expect(PUBREC)
    p.send(pubrel(10))
    p.expect(PUBCOMP)
    m = recv_pub(s)
    s.send(pubrec(m["pid"]))
    s.expect(PUBREL)
    s.send(pubcomp(m["pid"]))
    s.no_packet(0.5)
    p.send(publish("cf/2", b"again", qos=2, pid=10, props=b""))
    p.expect(PUBREC)
    p.send(pubrel(10))
    p.expect(PUBCOMP)
    assert recv_pub(s)["payload"] == b"again"


def test_v5_error_ack_ends_the_flow(broker):
    """[MQTT-4.4.0-2] [MQTT-4.8.2-6] a PUBACK/PUBREC with a reason code >= 0x80 acknowledges the
    message: it is not re-sent on reconnect; [MQTT-4.3.3-13] the broker goes on with the next."""
    b = broker()
    s, _, _ = v5(b, "ea-s", cprops=props((0x11, 60)))
    sub5(s, "ea/#", opts=2)
    p, _, _ = v5(b, "ea-p")
    pub5(p, "ea/1", b"one", qos=1, pid=1)
    pub5(p, "ea/2", b"two", qos=2, pid=2)
    m1, m2 = recv_pub(s), recv_pub(s)
    s.send(packet(0x40, struct.pack("!H", m1["pid"]) + b"\x80\x00"))
    s.send(packet(0x50, struct.pack("!H", m2["pid"]) + b"\x80\x00"))
    s.send(disconnect())
    s.expect_closed()
    s, present, _ = v5(b, "ea-s", clean=False, cprops=props((0x11, 60)))
    assert present
    s.no_packet(0.5)


def test_v5_quota_zero_does_not_delay_other_packets(broker):
    """[MQTT-3.3.4-10] [MQTT-4.9.0-3] with the Receive Maximum used up, PINGRESP and SUBACK are
    still sent at once. [MQTT-3.12.4-1]"""
    b = broker()
    s, _, _ = v5(b, "qz", cprops=props((0x21, 1)))
    sub5(s, "qz/#", opts=1)
    p, _, _ = v5(b, "qz-p")
    pub5(p, "qz/a", b"1", qos=1, pid=1)
    pub5(p, "qz/a", b"2", qos=1, pid=2)
    recv_pub(s)
    s.send(pingreq())
    s.expect(PINGRESP)
    assert sub5(s, "qz/other", opts=0, pid=5) == [0]


def test_v5_retained_replace_clear_and_resubscribe(broker):
    """[MQTT-3.3.1-5] a retained PUBLISH replaces the stored one; [MQTT-3.3.1-7] an empty one is
    not stored; [MQTT-3.8.4-3] subscribing again replaces the subscription and [MQTT-3.8.4-4]
    with Retain Handling 0 re-sends the retained messages. [MQTT-3.3.1-6] [MQTT-3.3.1-9] [MQTT-3.8.4-2] [MQTT-3.8.4-8]"""
    b = broker()
    p, _, _ = v5(b, "rr-p")
    pub5(p, "rr5/t", b"old", qos=1, retain=True)
    pub5(p, "rr5/t", b"new", qos=1, pid=2, retain=True)
    s, _, _ = v5(b, "rr-s")
    sub5(s, "rr5/t", opts=1)
    assert recv_pub(s)["payload"] == b"new"
    assert sub5(s, "rr5/t", opts=1, pid=2) == [1]
    assert recv_pub(s)["payload"] == b"new"
    s.no_packet(0.3)
    pub5(p, "rr5/t", b"", qos=1, pid=3, retain=True)
    assert recv_pub(s)["payload"] == b""
    s2, _, _ = v5(b, "rr-s2")
    sub5(s2, "rr5/t", opts=1)
    s2.no_packet(0.5)


def test_v5_unsubscribe_stops_new_messages_and_compares_exactly(broker):
    """[MQTT-3.10.4-1] filters compared character by character; [MQTT-3.10.4-2] no new
    messages after UNSUBSCRIBE; [MQTT-3.10.4-3] a QoS 2 delivery already started completes. [MQTT-3.10.4-4]"""
    b = broker()
    s, _, _ = v5(b, "us")
    sub5(s, "us/+", opts=2)
    p, _, _ = v5(b, "us-p")
    pub5(p, "us/a", b"started", qos=2, pid=1)
    m = recv_pub(s)
    s.send(unsubscribe(2, ["us/#"], props=b""))  # not the same filter: nothing removed
    _, body = s.expect(UNSUBACK)
    assert body[-1] == 0x11
    s.send(unsubscribe(3, ["us/+"], props=b""))
    _, body = s.expect(UNSUBACK)
    assert body[-1] == 0x00
    s.send(pubrec(m["pid"]))
    s.expect(PUBREL)
    s.send(pubcomp(m["pid"]))
    pub5(p, "us/a", b"after", qos=1, pid=2)
    s.no_packet(0.5)


def test_v5_topic_alias_not_carried_across_connections(broker):
    """[MQTT-3.3.2-7] an alias set on one connection is unknown on the next."""
    b = broker()
    c, _, _ = v5(b, "tal", cprops=props((0x11, 60)))
    c.send(publish("tal/t", b"1", props=props((0x23, 1))))
    c.send(disconnect())
    c.expect_closed()
    c, _, _ = v5(b, "tal", clean=False, cprops=props((0x11, 60)))
    c.send(publish("", b"2", props=props((0x23, 1))))
    expect_disconnect(c, 0x82)


def test_v5_maximum_qos_and_subscribe_above_it(broker):
    """[MQTT-3.2.2-9] Maximum QoS sent when QoS 2 is not supported; [MQTT-3.2.2-10] SUBSCRIBE
    at QoS 2 still accepted (granted 1); a PUBLISH above it: DISCONNECT 0x9B."""
    b = broker("max_qos 1")
    c, _, cp = v5(b, "mq")
    assert cp[0x24] == 1
    assert sub5(c, "mq/t", opts=2) == [1]
    c.send(publish("mq/t", b"x", qos=2, pid=1, props=b""))
    expect_disconnect(c, 0x9B)


def test_v5_retained_will_refused_without_retain_support(broker):
    """[MQTT-3.2.2-13] Will Retain 1 with retain_available false: CONNACK 0x9A."""
    b = broker("retain_available false")
    c = RawClient(b.host, b.port)
    c.send(connect("rw5", proto_level=5, will_topic="w/t", will_payload=b"x", will_retain=True))
    _, body = c.expect(CONNACK)
    assert body[1] == 0x9A
    c.expect_closed()


def test_v5_will_stored_with_user_property_order(broker):
    """[MQTT-3.1.2-7] the will is stored with the session; [MQTT-3.1.3-10] its User Properties
    keep their order; [MQTT-3.1.3-5] 1-23 character ids of [0-9a-zA-Z] are accepted."""
    b = broker()
    s, _, _ = v5(b, "wo")
    sub5(s, "wo/#", opts=0)
    w = RawClient(b.host, b.port)
    up = props((0x26, ("z", "1")), (0x26, ("a", "2")), (0x26, ("z", "3")))
    w.send(connect("Abc123xyz0987654321ABCD", proto_level=5, will_topic="wo/t",
                   will_payload=b"bye", will_props=up))
    _, body = w.expect(CONNACK)
    assert body[1] == 0
    w.close()
    assert recv_pub(s)["p"][0x26] == [("z", "1"), ("a", "2"), ("z", "3")]


@pytest.mark.parametrize("name,raw", [
    ("reserved_auth_flags", packet(0xF1, b"\x18\x00")),
    ("username_flag_without_username", None),
    ("response_topic_with_wildcard", None),
    ("response_topic_bad_utf8", None),
])
def test_v5_malformed_connect_and_publish_fields(broker, name, raw):
    """[MQTT-2.1.3-1] [MQTT-3.15.1-1] reserved flags; [MQTT-3.1.2-17] [MQTT-3.1.3-12]
    [MQTT-3.1.4-1] a CONNECT that does not match its flags is closed without CONNACK;
    [MQTT-3.3.2-13] [MQTT-3.3.2-14] [MQTT-3.3.2-19] Response Topic must be UTF-8 without
    wildcards."""
    b = broker()
    if name == "username_flag_without_username":
        c = RawClient(b.host, b.port)
        body = (b"\x00\x04MQTT\x05" + bytes([0x82]) + b"\x00\x3c\x00" + b"\x00\x02id")
        c.send(packet(0x10, body))
        assert c.expect_closed() == []
        return
    c, _, _ = v5(b, "mal")
    if name == "response_topic_with_wildcard":
        c.send(publish("x/y", b"1", props=props((0x08, "r/#"))))
        expect_disconnect(c, 0x82)
        return
    if name == "response_topic_bad_utf8":
        c.send(publish("x/y", b"1", props=bytes([0x08, 0, 2, 0xC3, 0x28])))
        expect_disconnect(c, 0x81)
        return
    c.send(raw)
    expect_disconnect(c, 0x81)


def test_v5_will_above_max_qos(broker):
    """[MQTT-3.2.2-12] a Will QoS above the server's Maximum QoS: CONNACK 0x9B."""
    b = broker("max_qos 1")
    c = RawClient(b.host, b.port)
    c.send(connect("wq5", proto_level=5, will_topic="w/t", will_payload=b"x", will_qos=2))
    _, body = c.expect(CONNACK)
    assert body[1] == 0x9B


@pytest.mark.parametrize("topic,ok", [
    ("a/b", True), ("", False), ("a/+", False), ("a/#", False), ("a\x00b", False),
])
def test_v5_topic_name_rules(broker, topic, ok):
    """[MQTT-4.7.0-1] no wildcards in topic names [MQTT-3.3.2-2]; [MQTT-4.7.3-1] at least one
    character; [MQTT-4.7.3-2] no U+0000 [MQTT-1.5.4-2]; violations: DISCONNECT [MQTT-4.13.1-1]."""
    b = broker()
    c, _, _ = v5(b, "tn")
    c.send(publish(topic.replace("\\x00", "\x00"), b"1", qos=1, pid=1, props=b""))
    if ok:
        c.expect(PUBACK)
    else:
        seen = c.expect_closed()
        assert seen and seen[-1][0] == 14


@pytest.mark.parametrize("flt,code", [
    ("a/#", 1), ("+/b/+", 1), ("#", 1), ("a/#/b", 0x8F), ("a+", 0x8F), ("$share/g/x/#", 1),
    ("$share/g+/x", 0x8F), ("$share//x", 0x8F), ("$share/g", 0x8F),
])
def test_v5_topic_filter_rules(broker, flt, code):
    """[MQTT-4.7.1-1] '#' alone and last; [MQTT-4.7.1-2] '+' a whole level; [MQTT-4.8.2-1]
    [MQTT-4.8.2-2] $share/{ShareName}/{filter} with a non-empty name without '/', '+', '#';
    [MQTT-3.8.3-1] UTF-8 filters; [MQTT-3.9.3-2] one reason code each; [MQTT-3.8.4-5]."""
    b = broker()
    c, _, _ = v5(b, "tf")
    assert sub5(c, flt, opts=1) == [code]


def test_v5_dollar_topics_and_no_normalisation(broker):
    """[MQTT-4.7.2-1] '#' and '+/...' do not match '$' topics; [MQTT-4.7.3-4] no normalisation:
    'Café' with a precomposed é does not match a decomposed one; [MQTT-4.7.3-3] long names."""
    b = broker()
    s, _, _ = v5(b, "dl")
    sub5(s, "#", opts=0)
    sub5(s, "+/x", opts=0, pid=2)
    sub5(s, "Caf\u00e9/t", opts=0, pid=3)
    p, _, _ = v5(b, "dlp")
    pub5(p, "$dollar/x", b"no")
    pub5(p, "Cafe\u0301/t".encode().decode(), b"decomposed")
    m = recv_pub(s)
    assert m["payload"] == b"decomposed" and m["topic"] == "Cafe\u0301/t"  # via '#' only
    s.no_packet(0.3)
    long_topic = "l/" + "x" * 60000
    pub5(p, long_topic, b"long")
    assert recv_pub(s)["topic"] == long_topic


def test_v5_ids_and_disconnect_semantics(broker):
    """[MQTT-3.1.0-1] CONNECT first; [MQTT-3.1.2-6] Clean Start 0 without a session: new
    session; [MQTT-3.2.2-2] Clean Start 1: Session Present 0; [MQTT-3.1.3-4] [MQTT-3.1.3-11]
    UTF-8 client id and will topic accepted; [MQTT-3.14.4-3] DISCONNECT 0x00 discards the will
    [MQTT-3.1.2-10]; [MQTT-3.3.1-8] a non-retained PUBLISH is not stored."""
    b = broker()
    c, present, _ = v5(b, "ünïcode-id", clean=False)
    assert not present
    c, present, _ = v5(b, "clean5", clean=True)
    assert not present
    w, _, _ = v5(b, "watch5")
    sub5(w, "will5/#", opts=0)
    x = RawClient(b.host, b.port)
    x.send(connect("wd5", proto_level=5, will_topic="will5/é", will_payload=b"w"))
    x.expect(CONNACK)
    x.send(packet(0xE0, b"\x00\x00"))
    x.expect_closed()
    w.no_packet(0.5)
    pub5(w, "nr/t", b"not retained")
    late, _, _ = v5(b, "late5")
    sub5(late, "nr/t", opts=0)
    late.no_packet(0.3)
