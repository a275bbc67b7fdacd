"""CONNECT validation and the CONNACK answer (MQTT 3.1.1 and 3.1), success and violation paths.
Each test names in its docstring the [MQTT-x.y.z-n] statements it proves."""
import subprocess

import pytest

import ternlib as tl
from ternlib import (CONNACK, PINGRESP, PUBACK, SUBACK, RawClient, connect_packet,
                     expect_publish, packet, parse_connack, parse_suback, pingreq, publish,
                     subscribe)


def raw(b):
    return RawClient(b.host, b.port)


def refused_then_closed(c, rc):
    """The broker answers CONNACK(session present 0, rc) and closes; nothing else arrives."""
    pkts = c.expect_closed(allow=(CONNACK,))
    assert len(pkts) == 1, f"expected exactly one CONNACK before the close, got {pkts}"
    assert parse_connack(pkts[0][2]) == (False, rc)


def closed_without_connack(c):
    c.expect_closed(allow=())


def accepted(c):
    flags, body = c.expect(CONNACK)
    assert flags == 0
    return parse_connack(body)


def ping_ok(c):
    c.send(pingreq())
    flags, body = c.expect(PINGRESP)
    assert (flags, body) == (0, b"")


def test_mqtt_311_accepted(broker):
    """"MQTT"/4 is accepted: the first packet back is CONNACK rc 0, session present 0, and the
    connection works. [MQTT-3.1.4-4] [MQTT-3.2.0-1] [MQTT-3.2.2-1] [MQTT-3.1.3-5]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("Az09azAZ0123456789abcde"))  # 23 bytes of the allowed characters
    assert accepted(c) == (False, 0)
    ping_ok(c)


def test_mqisdp_31_accepted_and_routes(broker):
    """"MQIsdp"/3 (MQTT 3.1) is accepted, and a 3.1 client subscribes and receives what a 3.1.1
    client publishes. [MQTT-3.1.4-4] [MQTT-3.2.0-1]"""
    b = broker()
    old = raw(b)
    old.send(connect_packet("v31", proto_name=b"MQIsdp", proto_level=3))
    assert accepted(old) == (False, 0)
    old.send(subscribe(7, [("v31/t", 1)]))
    _, body = old.expect(SUBACK)
    assert parse_suback(body) == (7, [1])
    new = tl.connect(b, "v311")
    new.send(publish("v31/t", b"hello", qos=1, pid=3))
    new.expect(PUBACK)
    expect_publish(old, "v31/t", b"hello", 1, ack=True)


@pytest.mark.parametrize("name,level", [(b"MQTT", 3), (b"MQTT", 6), (b"MQTT", 0), (b"MQTT", 127),
                                        (b"MQIsdp", 4)])
def test_unsupported_protocol_level(broker, name, level):
    """A protocol level the server does not support is answered with CONNACK 0x01 (session
    present 0) and the connection is closed. [MQTT-3.1.2-2] [MQTT-3.2.2-4] [MQTT-3.2.2-5]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("lvl", proto_name=name, proto_level=level))
    refused_then_closed(c, 0x01)


@pytest.mark.parametrize("name", [b"MQTX", b"mqtt", b"MQT", b"MQTTT", b"", b"MQ\x00T"])
def test_bad_protocol_name_closed(broker, name):
    """An incorrect protocol name closes the connection without a CONNACK.
    [MQTT-3.1.2-1] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("name", proto_name=name, proto_level=4))
    closed_without_connack(c)


def test_reserved_connect_flag_closed(broker):
    """The reserved bit 0 of the Connect Flags set: closed without CONNACK.
    [MQTT-3.1.2-3] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("rsv", flags_override=0x03))
    closed_without_connack(c)


@pytest.mark.parametrize("flags,ids", [
    (0x02 | 0x08, "will QoS 1 without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]"),
    (0x02 | 0x10, "will QoS 2 without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-13]"),
    (0x02 | 0x20, "will retain without will flag [MQTT-3.1.2-11] [MQTT-3.1.2-15]"),
])
def test_will_fields_without_will_flag_closed(broker, flags, ids):
    """Will Flag 0 with a non-zero Will QoS or Will Retain: closed without CONNACK.
    [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("wf", flags_override=flags))
    closed_without_connack(c)


def test_will_qos_3_closed(broker):
    """Will Flag 1 with Will QoS 3: closed without CONNACK. [MQTT-3.1.2-14] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("wq3", will_topic="w/t", will_payload=b"x",
                          flags_override=0x02 | 0x04 | 0x18))
    closed_without_connack(c)


def test_will_flag_without_will_fields_closed(broker):
    """Will Flag 1 but the payload ends after the client id (no Will Topic/Message): closed
    without CONNACK. [MQTT-3.1.2-9] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("wnf", flags_override=0x02 | 0x04))
    closed_without_connack(c)


def test_will_flags_valid_accepted(broker):
    """Will Flag 1, Will QoS 2, Will Retain 1 with both will fields present is accepted.
    [MQTT-3.1.2-9] [MQTT-3.1.2-14] [MQTT-3.1.4-4]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("wok", will_topic="w/ok", will_payload=b"bye", will_qos=2,
                          will_retain=True))
    assert accepted(c) == (False, 0)
    ping_ok(c)


def test_password_without_username_closed(broker):
    """Password Flag 1 with User Name Flag 0: closed without CONNACK.
    [MQTT-3.1.2-22] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("pw", password=b"secret"))
    closed_without_connack(c)


def test_username_flag_without_username_closed(broker):
    """User Name Flag 1 but no user name in the payload: closed without CONNACK.
    [MQTT-3.1.2-19] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("un", flags_override=0x82))
    closed_without_connack(c)


def test_username_and_password_accepted(broker):
    """User name and password present with their flags: accepted (anonymous broker).
    [MQTT-3.1.2-19] [MQTT-3.1.2-21] [MQTT-3.1.3-1]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("up", username="user", password=b"pass"))
    assert accepted(c) == (False, 0)
    ping_ok(c)


def test_empty_client_id_clean_gets_unique_id(broker):
    """A zero-length client id with clean session 1 is accepted and given a unique id: two such
    clients are both connected at once (neither takes the other over).
    [MQTT-3.1.3-6] [MQTT-3.1.3-2]"""
    b = broker()
    a, c = raw(b), raw(b)
    a.send(connect_packet(""))
    assert accepted(a) == (False, 0)
    c.send(connect_packet(""))
    assert accepted(c) == (False, 0)
    ping_ok(a)
    ping_ok(c)


def test_empty_client_id_persistent_rejected(broker):
    """A zero-length client id with clean session 0: CONNACK 0x02 then close.
    [MQTT-3.1.3-8] [MQTT-3.1.3-9] [MQTT-3.2.2-4] [MQTT-3.2.2-5]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("", clean=False))
    refused_then_closed(c, 0x02)


def test_rejected_connect_data_not_processed(broker):
    """Data sent after a refused CONNECT (in the same write) is not processed: the retained
    PUBLISH that followed it is not stored. [MQTT-3.1.4-5]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("", clean=False) + publish("rej/t", b"must not exist", retain=True))
    refused_then_closed(c, 0x02)
    s = tl.connect(b, "rej-check")
    s.send(subscribe(1, [("rej/#", 0)]) + pingreq())
    s.expect(SUBACK)
    s.expect(PINGRESP)  # a retained message would have come before the PINGRESP


@pytest.mark.ternd_only  # mosquitto 2.0 accepts long 3.1 ids
def test_mqtt31_client_id_over_23_rejected(broker):
    """MQTT 3.1 allows client ids of 1..23 bytes (3.1 spec: longer gets return code 2): 23 is
    accepted, 24 gets CONNACK 0x02 and a close. [MQTT-3.1.3-9] [MQTT-3.2.2-5]"""
    b = broker()
    ok = raw(b)
    ok.send(connect_packet("a" * 23, proto_name=b"MQIsdp", proto_level=3))
    assert accepted(ok) == (False, 0)
    c = raw(b)
    c.send(connect_packet("b" * 24, proto_name=b"MQIsdp", proto_level=3))
    refused_then_closed(c, 0x02)


def test_mqtt311_long_client_id_accepted(broker):
    """MQTT 3.1.1 lets the server accept ids over 23 bytes; a 200-byte id is accepted.
    [MQTT-3.1.3-5] [MQTT-3.1.4-4]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("L" * 200))
    assert accepted(c) == (False, 0)
    ping_ok(c)


@pytest.mark.parametrize("first", [
    pytest.param(publish("a/b", b"x"), id="publish"),
    pytest.param(pingreq(), id="pingreq"),
    pytest.param(subscribe(1, [("a/#", 0)]), id="subscribe"),
    pytest.param(packet(0xE0), id="disconnect"),
    pytest.param(packet(0x20, b"\x00\x00"), id="connack"),
])
def test_first_packet_not_connect_closed(broker, first):
    """Anything but CONNECT as the first packet closes the connection, with no answer.
    [MQTT-3.1.0-1] [MQTT-4.8.0-1]"""
    b = broker()
    c = raw(b)
    c.send(first)
    closed_without_connack(c)


def test_second_connect_closed(broker):
    """A second CONNECT on a connection is a protocol violation: the connection is closed and
    nothing answers it. [MQTT-3.1.0-2]"""
    b = broker()
    c = tl.connect(b, "twice")
    c.send(connect_packet("twice"))
    c.expect_closed(allow=())


def test_takeover_closes_first_and_session_continues(broker):
    """A second connection with the same client id closes the first; with clean session 0 it
    gets session present 1 and the subscription made on the first connection still routes.
    [MQTT-3.1.4-2] [MQTT-3.1.4-3] [MQTT-3.2.2-2] [MQTT-3.1.2-4]"""
    b = broker()
    first = tl.connect(b, "dup", clean=False)
    first.send(subscribe(1, [("tk/#", 1)]))
    first.expect(SUBACK)
    second = tl.connect(b, "dup", clean=False)
    assert second.session_present
    first.expect_closed(allow=())
    pub = tl.connect(b, "tk-pub")
    pub.send(publish("tk/x", b"after takeover", qos=1, pid=9))
    pub.expect(PUBACK)
    expect_publish(second, "tk/x", b"after takeover", 1, ack=True)


def test_anonymous_refused_when_not_allowed(broker, tmp_path):
    """allow_anonymous false: a CONNECT without a user name gets CONNACK 0x05 (not authorised)
    and a close; with a user name and its password (mosquitto_passwd file) it is accepted.
    [MQTT-3.2.2-4] [MQTT-3.2.2-5] [MQTT-3.1.4-4]"""
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "alice", "secret"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = broker(f"allow_anonymous false\npassword_file {pw}")
    c = raw(b)
    c.send(connect_packet("anon"))
    refused_then_closed(c, 0x05)
    u = raw(b)
    u.send(connect_packet("named", username="alice", password=b"secret"))
    assert accepted(u) == (False, 0)
    ping_ok(u)


def test_connect_split_across_writes(broker):
    """A CONNECT delivered one byte per write is assembled and accepted. [MQTT-3.1.4-4]"""
    b = broker()
    c = raw(b)
    for byte in connect_packet("split"):  # RawClient sets TCP_NODELAY: one segment per byte
        c.send(bytes([byte]))
    assert accepted(c) == (False, 0)


def _raw_connect(cid_bytes, flags=0x02, rest=b""):
    body = tl.mqtt_str("MQTT") + bytes([4, flags]) + b"\x00\x3c" + tl.mqtt_str(cid_bytes) + rest
    return packet(0x10, body)


@pytest.mark.parametrize("data", [
    pytest.param(_raw_connect(b"id\xff"), id="client_id_invalid_utf8"),
    pytest.param(_raw_connect(b"id\xed\xa0\x80"), id="client_id_surrogate"),
    pytest.param(_raw_connect(b"id\x00x"), id="client_id_nul"),
    pytest.param(_raw_connect(b"w", 0x06, tl.mqtt_str(b"w/\xc3\x28") + tl.mqtt_str(b"x")),
                 id="will_topic_invalid_utf8"),
    pytest.param(_raw_connect(b"u", 0x82, tl.mqtt_str(b"\xc3\x28")), id="username_invalid_utf8"),
    pytest.param(packet(0x10, tl.mqtt_str("MQTT") + b"\x04"), id="truncated_variable_header"),
    pytest.param(packet(0x10, tl.mqtt_str("MQTT") + b"\x04\x02\x00\x3c"), id="no_client_id"),
])
def test_malformed_connect_payload_closed(broker, data):
    """A CONNECT with malformed UTF-8 or U+0000 in the client id, will topic or user name, or
    with fields missing, is closed without a CONNACK.
    [MQTT-3.1.3-4] [MQTT-3.1.3-10] [MQTT-3.1.3-11] [MQTT-1.5.3-1] [MQTT-1.5.3-2]
    [MQTT-3.1.3-3] [MQTT-3.1.4-1]"""
    b = broker()
    c = raw(b)
    c.send(data)
    closed_without_connack(c)


@pytest.mark.parametrize("will_topic", ["will/#", "will/+/x", "#", ""])
def test_will_topic_not_a_topic_name_closed(broker, will_topic):
    """A will topic that is not a valid Topic Name (a wildcard, or empty) makes the CONNECT
    non-conforming: the connection is closed without a CONNACK (in particular not accepted,
    and not refused with 0x02, which is about the client identifier), and no will is ever
    published. [MQTT-3.1.4-1] [MQTT-4.7.1-1] [MQTT-4.7.3-1] [MQTT-3.1.2-9]"""
    b = broker()
    c = raw(b)
    c.send(connect_packet("badwill", will_topic=will_topic, will_payload=b"x"))
    closed_without_connack(c)
