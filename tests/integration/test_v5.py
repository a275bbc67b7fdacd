"""MQTT 5.0 behaviour of ternd, byte level: properties, reason codes, session and message
expiry, topic aliases, flow control, subscription options and identifiers, shared
subscriptions, request/response, will delay, mixed protocol versions, server DISCONNECTs.
Statement ids in docstrings are MQTT 5.0's."""
import signal
import struct
import time

import pytest

from ternlib import (CONNACK, DISCONNECT, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
                     UNSUBACK, RawClient, connect, disconnect, mqtt_str, packet, parse_publish,
                     puback, pubrec, pubrel, publish, subscribe, unsubscribe, varint)

pytestmark = pytest.mark.ternd_only

# ---- v5 property helpers ----

BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
TWO = {0x13, 0x21, 0x22, 0x23}
FOUR = {0x02, 0x11, 0x18, 0x27}
VARINT = {0x0B}
BINARY = {0x09, 0x16}


def prop(pid, value):
    if pid in BYTE:
        return bytes([pid, value])
    if pid in TWO:
        return bytes([pid]) + struct.pack("!H", value)
    if pid in FOUR:
        return bytes([pid]) + struct.pack("!I", value)
    if pid in VARINT:
        return bytes([pid]) + varint(value)
    if pid == 0x26:
        return bytes([pid]) + mqtt_str(value[0]) + mqtt_str(value[1])
    return bytes([pid]) + mqtt_str(value)


def props(*pairs):
    return b"".join(prop(p, v) for p, v in pairs)


def parse_props(raw):
    """Returns {id: value or [values]} (user properties and subscription ids as lists)."""
    out, i = {}, 0
    while i < len(raw):
        pid = raw[i]
        i += 1
        if pid in BYTE:
            v, i = raw[i], i + 1
        elif pid in TWO:
            v, i = struct.unpack("!H", raw[i:i + 2])[0], i + 2
        elif pid in FOUR:
            v, i = struct.unpack("!I", raw[i:i + 4])[0], i + 4
        elif pid in VARINT:
            v, mult = 0, 1
            while True:
                d = raw[i]
                i += 1
                v += (d & 127) * mult
                mult *= 128
                if not d & 128:
                    break
        elif pid == 0x26:
            kl = struct.unpack("!H", raw[i:i + 2])[0]
            k = raw[i + 2:i + 2 + kl].decode()
            i += 2 + kl
            vl = struct.unpack("!H", raw[i:i + 2])[0]
            v = (k, raw[i + 2:i + 2 + vl].decode())
            i += 2 + vl
        else:
            ln = struct.unpack("!H", raw[i:i + 2])[0]
            v = raw[i + 2:i + 2 + ln]
            i += 2 + ln
            if pid not in BINARY:
                v = v.decode()
        if pid in (0x26, 0x0B):
            out.setdefault(pid, []).append(v)
        else:
            out[pid] = v
    return out


def split_props(body, off):
    plen, mult, n = 0, 1, 0
    while True:
        d = body[off + n]
        plen += (d & 127) * mult
        mult *= 128
        n += 1
        if not d & 128:
            break
    return parse_props(body[off + n:off + n + plen]), off + n + plen


def v5(broker, cid, clean=True, cprops=b"", **kw):
    """Connected v5 RawClient; returns (client, session_present, connack properties)."""
    c = RawClient(broker.host, broker.port)
    c.send(connect(cid, clean=clean, proto_level=5, props=cprops, **kw))
    _, body = c.expect(CONNACK)
    assert body[1] == 0, f"CONNACK {body[1]:#x}"
    p, _ = split_props(body, 2)
    return c, bool(body[0] & 1), p


def sub5(c, flt, opts=1, pid=1, sprops=b""):
    c.send(subscribe(pid, [(flt, opts)], props=sprops))
    _, body = c.expect(SUBACK)
    _, off = split_props(body, 2)
    return list(body[off:])


def pub5(c, topic, payload, qos=0, pid=1, pprops=b"", retain=False):
    c.send(publish(topic, payload, qos=qos, pid=pid, props=pprops, retain=retain))
    if qos == 1:
        _, body = c.expect(PUBACK)
        return body[2] if len(body) > 2 else 0
    if qos == 2:
        _, body = c.expect(PUBREC)
        rc = body[2] if len(body) > 2 else 0
        if rc < 0x80:
            c.send(pubrel(pid))
            c.expect(PUBCOMP)
        return rc
    return None


def recv_pub(c, timeout=5):
    flags, body = c.expect(PUBLISH, timeout)
    m = parse_publish(flags, body, v5=True)
    m["p"] = parse_props(m["props"])
    return m


def expect_disconnect(c, rc, timeout=5):
    """The broker sends DISCONNECT with reason rc, then closes."""
    seen = c.expect_closed(timeout)
    assert seen and seen[-1][0] == DISCONNECT, f"no DISCONNECT before close: {seen}"
    body = seen[-1][2]
    got = body[0] if body else 0
    assert got == rc, f"DISCONNECT reason {got:#x}, expected {rc:#x}"


# ---- CONNECT / CONNACK ----

def test_v5_connack_properties_and_assigned_id(broker):
    """[MQTT-3.1.3-6] [MQTT-3.2.2-16] empty client id: CONNACK carries Assigned Client
    Identifier; Topic Alias Maximum offered. [MQTT-3.1.4-5] [MQTT-3.2.0-1] [MQTT-3.2.0-2] [MQTT-4.12.0-6]"""
    b = broker()
    c, present, p = v5(b, "")
    assert not present
    assert p[0x12].startswith("auto-")
    assert p[0x22] == 10
    c.send(disconnect())


def test_v5_server_keep_alive_lowered(broker):
    """[MQTT-3.2.2-21] Server Keep Alive tells the client the keep-alive the server uses."""
    b = broker("max_keepalive 30")
    c, _, p = v5(b, "ka", keepalive=300)
    assert p[0x13] == 30


def test_v5_unknown_auth_method_refused(broker):
    """[MQTT-4.12.0-1] an unsupported Authentication Method: CONNACK 0x8C, then close."""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(connect("am", proto_level=5, props=props((0x15, "NOPE"))))
    _, body = c.expect(CONNACK)
    assert body[1] == 0x8C
    c.expect_closed()


def test_v5_server_redirect(broker):
    """[MQTT-4.11] server_redirect moved: CONNACK 0x9D with Server Reference."""
    b = broker("server_redirect moved\nserver_reference other.example:1883")
    c = RawClient(b.host, b.port)
    c.send(connect("rd", proto_level=5))
    _, body = c.expect(CONNACK)
    assert body[1] == 0x9D
    p, _ = split_props(body, 2)
    assert p[0x1C] == "other.example:1883"


def test_v5_unsupported_protocol_version(broker):
    """[MQTT-3.1.2-2] unsupported level: CONNACK 0x84 (v5 form) then close. [MQTT-3.2.2-7] [MQTT-3.1.4-6] [MQTT-3.2.2-8]"""
    b = broker()
    c = RawClient(b.host, b.port)
    c.send(connect("lv", proto_level=6))
    seen = c.expect_closed()
    assert seen and seen[0][0] == CONNACK


# ---- session expiry ----

def test_v5_session_expiry_keeps_then_expires(broker):
    """[MQTT-3.1.2-23] a session with Session Expiry Interval survives the connection, and is
    gone after the interval [MQTT-4.1.0-2]. [MQTT-3.1.2-5] [MQTT-3.2.2-3] [MQTT-4.1.0-1]"""
    b = broker()
    c, _, _ = v5(b, "exp", cprops=props((0x11, 1)))
    sub5(c, "e/t")
    c.send(disconnect())
    c.expect_closed()
    c, present, _ = v5(b, "exp", clean=False, cprops=props((0x11, 1)))
    assert present, "session must be resumed within its expiry"
    c.send(disconnect())
    c.expect_closed()
    time.sleep(2.2)  # the point of the test: time passing
    c, present, _ = v5(b, "exp", clean=False, cprops=props((0x11, 1)))
    assert not present, "session must have expired"


def test_v5_disconnect_cannot_set_expiry_after_zero(broker):
    """[MQTT-3.14.2-2] Session Expiry set at DISCONNECT when CONNECT had 0: protocol error."""
    b = broker()
    c, _, _ = v5(b, "dz")
    c.send(packet(0xE0, bytes([0]) + varint(5) + props((0x11, 60))))
    expect_disconnect(c, 0x82)


def test_v5_clean_start_discards_session(broker):
    """[MQTT-3.1.2-4] Clean Start 1 discards an existing session: Session Present 0. [MQTT-3.1.4-4]"""
    b = broker()
    c, _, _ = v5(b, "cs", cprops=props((0x11, 60)))
    sub5(c, "cs/t")
    c.send(disconnect())
    c.expect_closed()
    c, present, _ = v5(b, "cs", clean=True, cprops=props((0x11, 60)))
    assert not present


# ---- message expiry ----

def test_v5_message_expiry_decremented_and_expired_not_sent(broker):
    """[MQTT-3.3.2-5] expired messages are not sent; [MQTT-3.3.2-6] the interval forwarded
    is reduced by the time the message waited."""
    b = broker()
    s, _, _ = v5(b, "mexs", cprops=props((0x11, 60)))
    sub5(s, "mx/#", opts=1)
    s.send(disconnect())
    s.expect_closed()
    p, _, _ = v5(b, "mexp")
    pub5(p, "mx/long", b"keep", qos=1, pprops=props((0x02, 30)))
    pub5(p, "mx/short", b"drop", qos=1, pprops=props((0x02, 1)))
    time.sleep(2.1)  # the point of the test: time passing
    s, present, _ = v5(b, "mexs", clean=False, cprops=props((0x11, 60)))
    assert present
    m = recv_pub(s)
    assert m["topic"] == "mx/long" and m["payload"] == b"keep"
    assert m["p"][0x02] <= 28
    s.send(puback(m["pid"]))
    s.no_packet(0.5)


def test_v5_retained_message_expires(broker):
    """[MQTT-3.3.2-5] a retained message whose expiry passed is not sent on subscribe."""
    b = broker()
    p, _, _ = v5(b, "rexp")
    pub5(p, "rx/t", b"old", qos=1, retain=True, pprops=props((0x02, 1)))
    time.sleep(2.1)
    s, _, _ = v5(b, "rexs")
    sub5(s, "rx/t")
    s.no_packet(0.5)


# ---- topic aliases ----

def test_v5_inbound_topic_alias(broker):
    """[MQTT-3.3.2-12] a topic alias set by the client maps later empty-topic PUBLISHes."""
    b = broker()
    s, _, _ = v5(b, "tas")
    sub5(s, "al/#", opts=0)
    p, _, _ = v5(b, "tap")
    p.send(publish("al/one", b"1", props=props((0x23, 1))))
    p.send(publish("", b"2", props=props((0x23, 1))))
    assert recv_pub(s)["topic"] == "al/one"
    m = recv_pub(s)
    assert m["topic"] == "al/one" and m["payload"] == b"2"


def test_v5_topic_alias_over_maximum_disconnects(broker):
    """[MQTT-3.3.2-10] alias above Topic Alias Maximum: DISCONNECT 0x94."""
    b = broker()
    p, _, _ = v5(b, "tax")
    p.send(publish("al/x", b"1", props=props((0x23, 11))))
    expect_disconnect(p, 0x94)


def test_v5_unknown_topic_alias_is_protocol_error(broker):
    """An empty topic with an alias never set: DISCONNECT 0x82."""
    b = broker()
    p, _, _ = v5(b, "tau")
    p.send(publish("", b"1", props=props((0x23, 3))))
    expect_disconnect(p, 0x82)


def test_v5_outbound_topic_alias(broker):
    """[MQTT-3.3.2-12] server-to-client aliases within the client's Topic Alias Maximum. [MQTT-3.1.2-26] [MQTT-3.3.2-11]"""
    b = broker()
    s, _, _ = v5(b, "tao", cprops=props((0x22, 5)))
    sub5(s, "ob/#", opts=0)
    p, _, _ = v5(b, "taop")
    pub5(p, "ob/t", b"1")
    pub5(p, "ob/t", b"2")
    m1, m2 = recv_pub(s), recv_pub(s)
    assert m1["topic"] == "ob/t" and 1 <= m1["p"][0x23] <= 5
    assert m2["topic"] == "" and m2["p"][0x23] == m1["p"][0x23] and m2["payload"] == b"2"


# ---- flow control and sizes ----

def test_v5_receive_maximum_respected(broker):
    """[MQTT-3.3.4-9] never more unacknowledged QoS 1 PUBLISHes than the Receive Maximum. [MQTT-4.9.0-1] [MQTT-4.9.0-2]"""
    b = broker()
    s, _, _ = v5(b, "rm", cprops=props((0x21, 2)))
    sub5(s, "rm/t", opts=1)
    p, _, _ = v5(b, "rmp")
    for i in range(4):
        pub5(p, "rm/t", str(i).encode(), qos=1, pid=i + 1)
    m1, m2 = recv_pub(s), recv_pub(s)
    s.no_packet(0.5)
    s.send(puback(m1["pid"]))
    assert recv_pub(s)["payload"] == b"2"


def test_v5_receive_maximum_exceeded_disconnects(broker):
    """[MQTT-3.3.4-7] more unreleased QoS 2 messages than our Receive Maximum: 0x93."""
    b = broker("receive_maximum 2")
    p, _, cp = v5(b, "rmx")
    assert cp[0x21] == 2
    for i in range(3):
        p.send(publish("rmx/t", b"x", qos=2, pid=i + 1, props=b""))
    expect_disconnect(p, 0x93)


def test_v5_maximum_packet_size_outbound(broker):
    """[MQTT-3.1.2-25] a message larger than a subscriber's Maximum Packet Size is dropped
    for that subscriber only."""
    b = broker()
    small, _, _ = v5(b, "mps", cprops=props((0x27, 64)))
    sub5(small, "mp/t", opts=0)
    big, _, _ = v5(b, "mpb")
    sub5(big, "mp/t", opts=0)
    p, _, _ = v5(b, "mpp")
    pub5(p, "mp/t", b"x" * 200)
    pub5(p, "mp/t", b"tiny")
    assert recv_pub(big)["payload"] == b"x" * 200
    assert recv_pub(small)["payload"] == b"tiny"


def test_v5_packet_too_large_inbound(broker):
    """[MQTT-3.2.2-15] packet over the advertised Maximum Packet Size: DISCONNECT 0x95."""
    b = broker("max_packet_size 100")
    p, _, cp = v5(b, "ptl")
    assert cp[0x27] == 100
    p.send(publish("pt/t", b"x" * 200))
    expect_disconnect(p, 0x95)


# ---- subscriptions ----

def test_v5_no_local(broker):
    """[MQTT-3.8.3-3] No Local: own messages are not sent back."""
    b = broker()
    c, _, _ = v5(b, "nl")
    sub5(c, "nl/t", opts=0x04)
    pub5(c, "nl/t", b"mine")
    c.no_packet(0.5)


def test_v5_retain_as_published_and_handling(broker):
    """[MQTT-3.3.1-12] [MQTT-3.3.1-13] Retain As Published keeps RETAIN on live messages;
    Retain Handling 1 sends retained only for a new subscription, 2 never [MQTT-3.3.1-10]
    [MQTT-3.3.1-11]."""
    b = broker()
    p, _, _ = v5(b, "rap")
    pub5(p, "ra/t", b"ret", qos=1, retain=True)
    s, _, _ = v5(b, "ras")
    assert sub5(s, "ra/t", opts=0x08 | 0x10) == [0]
    m = recv_pub(s)
    assert m["retain"]
    assert sub5(s, "ra/t", opts=0x08 | 0x10, pid=2) == [0]  # existing: no retained again
    pub5(p, "ra/t", b"live", retain=True)
    m = recv_pub(s)
    assert m["payload"] == b"live" and m["retain"], "Retain As Published"
    s2, _, _ = v5(b, "ras2")
    sub5(s2, "ra/t", opts=0x20)
    s2.no_packet(0.5)


def test_v5_subscription_identifiers(broker):
    """[MQTT-3.3.4-3] every matching subscription's identifier is sent. [MQTT-3.3.4-4]"""
    b = broker()
    s, _, _ = v5(b, "sid")
    sub5(s, "si/#", sprops=props((0x0B, 7)))
    sub5(s, "si/+", pid=2, sprops=props((0x0B, 9)))
    p, _, _ = v5(b, "sidp")
    pub5(p, "si/x", b"1")
    m = recv_pub(s)
    assert sorted(m["p"][0x0B]) == [7, 9]
    s.no_packet(0.3)  # one copy only [MQTT-3.3.4-2]


def test_v5_client_must_not_send_subscription_identifier(broker):
    """[MQTT-3.3.4-6] a PUBLISH from a client with a Subscription Identifier: 0x82."""
    b = broker()
    p, _, _ = v5(b, "csi")
    p.send(publish("x/y", b"1", props=props((0x0B, 3))))
    expect_disconnect(p, 0x82)


def test_v5_unsubscribe_reason_codes(broker):
    """[MQTT-3.11.3-1] UNSUBACK: 0x00 for a removed subscription, 0x11 when none existed. [MQTT-3.11.3-2] [MQTT-3.10.4-5] [MQTT-3.10.4-6]"""
    b = broker()
    c, _, _ = v5(b, "uns")
    sub5(c, "u/a")
    c.send(unsubscribe(3, ["u/a", "u/none"], props=b""))
    _, body = c.expect(UNSUBACK)
    assert struct.unpack("!H", body[:2])[0] == 3  # [MQTT-2.2.1-6]
    _, off = split_props(body, 2)
    assert list(body[off:]) == [0x00, 0x11]


def test_v5_invalid_filter_reason_code(broker):
    """[MQTT-3.9.3-1] SUBACK 0x8F for an invalid topic filter. [MQTT-3.8.4-1] [MQTT-3.8.4-6] [MQTT-3.8.4-7]"""
    b = broker()
    c, _, _ = v5(b, "inv")
    assert sub5(c, "a/#/b") == [0x8F]


def test_v5_no_matching_subscribers_puback(broker):
    """PUBACK reason 0x10 when no subscription matched. [MQTT-3.4.2-1]"""
    b = broker()
    p, _, _ = v5(b, "nms")
    assert pub5(p, "nobody/here", b"1", qos=1) == 0x10


# ---- shared subscriptions ----

def test_v5_shared_subscription_round_robin_no_retained(broker):
    """[MQTT-4.8.2-?] each message to one member per group; retained messages are not sent
    for a shared subscription [MQTT-3.8.4-?]."""
    b = broker()
    p, _, _ = v5(b, "shp")
    pub5(p, "sh/t", b"retained", qos=1, retain=True)
    a, _, _ = v5(b, "sha")
    c, _, _ = v5(b, "shc")
    sub5(a, "$share/g/sh/t", opts=0)
    sub5(c, "$share/g/sh/t", opts=0)
    a.no_packet(0.3)
    for i in range(4):
        pub5(p, "sh/t", str(i).encode())
    got_a = [recv_pub(a)["payload"] for _ in range(2)]
    got_c = [recv_pub(c)["payload"] for _ in range(2)]
    assert sorted(got_a + got_c) == [b"0", b"1", b"2", b"3"]


def test_v5_shared_subscription_redelivers_when_member_leaves(broker):
    """QoS 1 messages in flight to a member that disconnects go to another member (allowed for
    QoS 1 by 4.8.2; QoS 2 is the other test)."""
    b = broker()
    a, _, _ = v5(b, "shra")
    c, _, _ = v5(b, "shrc")
    sub5(a, "$share/g/shr/t", opts=1)
    sub5(c, "$share/g/shr/t", opts=1)
    p, _, _ = v5(b, "shrp")
    for i in range(4):
        pub5(p, "shr/t", str(i).encode(), qos=1, pid=i + 1)
    to_a = [recv_pub(a)["payload"] for _ in range(2)]
    a.close()  # never acknowledged
    got = []
    for _ in range(4):
        m = recv_pub(c)
        got.append(m["payload"])
        c.send(puback(m["pid"]))
    assert sorted(got) == [b"0", b"1", b"2", b"3"]
    assert set(to_a) <= set(got)


def test_v5_shared_qos2_in_flight_stays_with_its_member(broker):
    """[MQTT-4.8.2-4] [MQTT-4.8.2-5] a QoS 2 message already sent to a member is completed with
    that member when it reconnects, never sent to another member."""
    b = broker()
    a, _, _ = v5(b, "sq2a", clean=True, cprops=props((0x11, 60)))
    c, _, _ = v5(b, "sq2c")
    sub5(a, "$share/g/sq2/t", opts=2)
    sub5(c, "$share/g/sq2/t", opts=2)
    p, _, _ = v5(b, "sq2p")
    for i in range(2):
        pub5(p, "sq2/t", str(i).encode(), qos=2, pid=i + 1)
    m_a = recv_pub(a)
    m_c = recv_pub(c)
    c.send(pubrec(m_c["pid"]))
    a.close()  # holds one QoS 2 message, unacknowledged
    c.expect(PUBREL)
    c.no_packet(0.7)  # A's message must not come here
    a, present, _ = v5(b, "sq2a", clean=False, cprops=props((0x11, 60)))
    assert present
    again = recv_pub(a)
    assert again["payload"] == m_a["payload"] and again["dup"]


def test_v5_shared_policy_hash_topic(broker):
    """shared_subscription_policy hash_topic: every message of one topic goes to the same
    member (per-topic order kept), different topics spread."""
    b = broker("shared_subscription_policy hash_topic")
    a, _, _ = v5(b, "hta")
    c, _, _ = v5(b, "htc")
    sub5(a, "$share/g/ht/#", opts=0)
    sub5(c, "$share/g/ht/#", opts=0)
    p, _, _ = v5(b, "htp")
    for t in range(8):
        for i in range(3):
            pub5(p, f"ht/{t}", b"%d" % i)
    by_member = {}
    for name, cl in (("a", a), ("c", c)):
        while True:
            try:
                m = recv_pub(cl, timeout=0.5)
            except TimeoutError:
                break
            by_member.setdefault(m["topic"], set()).add(name)
    assert len(by_member) == 8
    assert all(len(v) == 1 for v in by_member.values()), by_member


def test_v5_shared_no_local_is_protocol_error(broker):
    """[MQTT-3.8.3-4] No Local on a shared subscription: protocol error."""
    b = broker()
    c, _, _ = v5(b, "shnl")
    c.send(subscribe(1, [("$share/g/x", 0x04)], props=b""))
    expect_disconnect(c, 0x82)


# ---- request / response, properties ----

def test_v5_request_response_and_user_properties_forwarded(broker):
    """[MQTT-3.3.2-15] [MQTT-3.3.2-16] Response Topic and Correlation Data forwarded unchanged;
    [MQTT-3.3.2-17] [MQTT-3.3.2-18] User Properties unchanged and in order; Content Type and
    Payload Format Indicator forwarded [MQTT-3.3.2-4] [MQTT-3.3.2-20]."""
    b = broker()
    s, _, _ = v5(b, "rrs")
    sub5(s, "rr/req", opts=0)
    p, _, _ = v5(b, "rrp")
    pp = props((0x08, "rr/resp"), (0x09, "corr-1"), (0x26, ("z", "1")), (0x26, ("a", "2")),
               (0x26, ("z", "3")), (0x03, "text/plain"), (0x01, 1))
    pub5(p, "rr/req", "héllo".encode(), pprops=pp)
    m = recv_pub(s)
    assert m["p"][0x08] == "rr/resp"
    assert m["p"][0x09] == b"corr-1"
    assert m["p"][0x26] == [("z", "1"), ("a", "2"), ("z", "3")]
    assert m["p"][0x03] == "text/plain" and m["p"][0x01] == 1


def test_v5_response_information(broker):
    """[MQTT-3.1.2-28] Request Response Information 1: CONNACK has Response Information."""
    b = broker()
    c, _, p = v5(b, "rinfo", cprops=props((0x19, 1)))
    assert p[0x1A] == "responses/rinfo"


def test_v5_payload_format_invalid(broker):
    """[MQTT-3.3.2-4] Payload Format Indicator 1 with a non-UTF-8 payload: PUBACK 0x99."""
    b = broker()
    p, _, _ = v5(b, "pfi")
    assert pub5(p, "pf/t", b"\xff\xfe", qos=1, pprops=props((0x01, 1))) == 0x99


# ---- wills ----

def test_v5_will_delay_cancelled_by_reconnect(broker):
    """[MQTT-3.1.3-9] the will is not sent when the session resumes within the delay."""
    b = broker()
    s, _, _ = v5(b, "wds")
    sub5(s, "wd/#", opts=0)
    w = RawClient(b.host, b.port)
    w.send(connect("wdc", proto_level=5, props=props((0x11, 60)), will_topic="wd/will",
                   will_payload=b"gone", will_props=props((0x18, 3))))
    w.expect(CONNACK)
    w.close()
    c, present, _ = v5(b, "wdc", clean=False, cprops=props((0x11, 60)))
    assert present
    s.no_packet(3.5)


def test_v5_will_sent_after_delay(broker):
    """[MQTT-3.1.2-8] the will is published after the Will Delay Interval."""
    b = broker()
    s, _, _ = v5(b, "wds2")
    sub5(s, "wd2/#", opts=0)
    w = RawClient(b.host, b.port)
    w.send(connect("wdc2", proto_level=5, props=props((0x11, 60)), will_topic="wd2/will",
                   will_payload=b"gone", will_props=props((0x18, 1), (0x26, ("k", "v")))))
    w.expect(CONNACK)
    t0 = time.monotonic()
    w.close()
    m = recv_pub(s, timeout=5)
    assert m["payload"] == b"gone" and m["p"][0x26] == [("k", "v")]
    assert time.monotonic() - t0 >= 0.5


def test_v5_disconnect_with_will_message(broker):
    """DISCONNECT reason 0x04 asks for the will to be published."""
    b = broker()
    s, _, _ = v5(b, "dww")
    sub5(s, "dw/#", opts=0)
    w = RawClient(b.host, b.port)
    w.send(connect("dwc", proto_level=5, will_topic="dw/will", will_payload=b"bye"))
    w.expect(CONNACK)
    w.send(packet(0xE0, bytes([0x04, 0])))
    assert recv_pub(s)["payload"] == b"bye"


# ---- server DISCONNECTs ----

def test_v5_takeover_disconnect_reason(broker):
    """[MQTT-3.1.4-3] the older connection gets DISCONNECT 0x8E. [MQTT-3.14.0-1] [MQTT-3.14.2-1] [MQTT-3.14.4-1] [MQTT-3.14.4-2]"""
    b = broker()
    old, _, _ = v5(b, "to5")
    new, _, _ = v5(b, "to5")
    expect_disconnect(old, 0x8E)


def test_v5_keep_alive_timeout_reason(broker):
    """[MQTT-3.1.2-22] 1.5 x keep-alive of silence: DISCONNECT 0x8D. [MQTT-3.2.2-22]"""
    b = broker()
    c, _, _ = v5(b, "ka5", keepalive=1)
    expect_disconnect(c, 0x8D, timeout=5)


def test_v5_second_connect_protocol_error(broker):
    """[MQTT-3.1.0-2] a second CONNECT: DISCONNECT 0x82."""
    b = broker()
    c, _, _ = v5(b, "sc5")
    c.send(connect("sc5", proto_level=5))
    expect_disconnect(c, 0x82)


def test_v5_malformed_packet_reason(broker):
    """[MQTT-1.5.4-1] ill-formed UTF-8 in a topic: DISCONNECT 0x81."""
    b = broker()
    c, _, _ = v5(b, "mf5")
    c.send(packet(0x30, struct.pack("!H", 2) + b"\xc3\x28" + b"\x00"))
    expect_disconnect(c, 0x81)


def test_v5_shutdown_reason(broker):
    """SIGTERM: connected v5 clients get DISCONNECT 0x8B."""
    b = broker()
    c, _, _ = v5(b, "sd5")
    b.signal(signal.SIGTERM)
    expect_disconnect(c, 0x8B)


# ---- mixed protocol versions ----

def test_v5_and_v311_interoperate(broker):
    """A v3.1.1 subscriber receives a v5 publisher's message without properties, and a v5
    subscriber receives a v3.1.1 publisher's message. [MQTT-3.3.2-3]; no Topic Alias is sent to a client that set no Topic Alias Maximum [MQTT-3.1.2-27]"""
    b = broker()
    s3 = RawClient(b.host, b.port)
    s3.send(connect("mix3"))
    s3.expect(CONNACK)
    s3.send(subscribe(1, [("mix/#", 0)]))
    s3.expect(SUBACK)
    s5, _, _ = v5(b, "mix5")
    sub5(s5, "mix/#", opts=0)
    p5, _, _ = v5(b, "mixp5")
    pub5(p5, "mix/a", b"from5", pprops=props((0x26, ("k", "v"))))
    flags, body = s3.expect(PUBLISH)
    m = parse_publish(flags, body)
    assert m["topic"] == "mix/a" and m["payload"] == b"from5"
    assert recv_pub(s5)["p"][0x26] == [("k", "v")]
    p3 = RawClient(b.host, b.port)
    p3.send(connect("mixp3"))
    p3.expect(CONNACK)
    p3.send(publish("mix/b", b"from3"))
    m = recv_pub(s5)
    assert m["topic"] == "mix/b" and m["payload"] == b"from3" and m["p"] == {}
