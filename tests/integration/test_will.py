"""Will messages: published when the network connection ends without DISCONNECT (dropped socket,
keep-alive timeout, takeover, protocol violation), never after DISCONNECT, with the will's
retain flag and QoS. Each test names in its docstring the [MQTT-x.y.z-n] statements it proves."""
import socket

import pytest

import ternlib as tl
from ternlib import (PINGRESP, SUBACK, connect_packet, disconnect, expect_publish,
                     parse_suback, pingreq, subscribe)

KEEPALIVE_CLOSE_BY = 7.0 if tl.MODE == "mosquitto" else 3.0  # mosquitto 2.0: 5 s scan


def watcher(b, filt="will/#", qos=2, cid="watcher"):
    w = tl.connect(b, cid)
    w.send(subscribe(1, [(filt, qos)]))
    _, body = w.expect(SUBACK)
    assert parse_suback(body) == (1, [qos])
    return w


def drop(c):
    """Ends the TCP connection abruptly (RST), without DISCONNECT."""
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()


def test_will_on_dropped_socket(broker):
    """A client with a will whose socket drops (no DISCONNECT): the will is published, as a
    non-retained QoS 0 message. [MQTT-3.1.2-8] [MQTT-3.1.2-16]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "dropper", will_topic="will/drop", will_payload=b"gone")
    drop(c)
    expect_publish(w, "will/drop", b"gone", 0, retain=False)


def test_will_on_plain_close(broker):
    """A FIN without DISCONNECT is also an abnormal end: the will is published. [MQTT-3.1.2-8]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "closer", will_topic="will/fin", will_payload=b"fin")
    c.close()
    expect_publish(w, "will/fin", b"fin", 0)


def test_will_on_keepalive_timeout(broker):
    """The server closing a silent keep-alive 1 connection publishes its will.
    [MQTT-3.1.2-8] [MQTT-3.1.2-24]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "sleepy", keepalive=1, will_topic="will/ka", will_payload=b"timed out")
    expect_publish(w, "will/ka", b"timed out", 0, timeout=KEEPALIVE_CLOSE_BY + 1)
    c.expect_closed(allow=())


def test_will_on_takeover(broker):
    """A takeover closes the old connection without a DISCONNECT from it: the old connection's
    will is published, and not the new one's. [MQTT-3.1.4-2] [MQTT-3.1.2-8]"""
    b = broker()
    w = watcher(b)
    old = tl.connect(b, "twin", will_topic="will/twin", will_payload=b"old will")
    new = tl.connect(b, "twin", will_topic="will/twin", will_payload=b"new will")
    old.expect_closed(allow=())
    expect_publish(w, "will/twin", b"old will", 0)
    new.send(disconnect())
    new.expect_closed(allow=())
    w.no_packet(0.3)


def test_will_on_protocol_violation(broker):
    """The server closing a connection for a protocol error (PUBLISH QoS 3) publishes the will.
    [MQTT-3.1.2-8] [MQTT-3.3.1-4]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "violator", will_topic="will/bad", will_payload=b"violated")
    c.send(tl.packet(0x36, tl.mqtt_str("x") + b"\x00\x01"))
    c.expect_closed(allow=())
    expect_publish(w, "will/bad", b"violated", 0)


def test_no_will_after_disconnect(broker):
    """After a DISCONNECT the will is discarded: nothing is published when the connection then
    closes (also when the socket is reset right after). [MQTT-3.1.2-10] [MQTT-3.14.4-3]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "polite", will_topic="will/polite", will_payload=b"must not appear")
    c.send(disconnect())
    c.expect_closed(allow=())
    c2 = tl.connect(b, "polite2", will_topic="will/polite", will_payload=b"must not appear")
    c2.send(disconnect())
    drop(c2)
    w.no_packet(0.5)


def test_no_will_without_will_flag(broker):
    """Will Flag 0: a dropped connection publishes nothing. [MQTT-3.1.2-12]"""
    b = broker()
    w = watcher(b, filt="#", qos=0)
    c = tl.connect(b, "nowill")
    drop(c)
    w.no_packet(0.5)


def test_will_retain_stored(broker):
    """Will Retain 1: the will is published as retained; a later subscriber receives it with
    RETAIN 1, while the live subscriber got it with RETAIN 0.
    [MQTT-3.1.2-17] [MQTT-3.3.1-9] [MQTT-3.3.1-6]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "rw", will_topic="will/retained", will_payload=b"last words",
                   will_retain=True)
    drop(c)
    expect_publish(w, "will/retained", b"last words", 0, retain=False)
    late = tl.connect(b, "late")
    late.send(subscribe(1, [("will/retained", 1)]))
    late.expect(SUBACK)
    expect_publish(late, "will/retained", b"last words", 0, retain=True)


def test_will_not_retained_without_flag(broker):
    """Will Retain 0: the will is not stored, a later subscriber gets nothing. [MQTT-3.1.2-16]"""
    b = broker()
    w = watcher(b)
    c = tl.connect(b, "nrw", will_topic="will/plain", will_payload=b"once")
    drop(c)
    expect_publish(w, "will/plain", b"once", 0, retain=False)
    late = tl.connect(b, "late")
    late.send(subscribe(1, [("will/plain", 1)]) + pingreq())
    late.expect(SUBACK)
    late.expect(PINGRESP)


@pytest.mark.parametrize("will_qos,sub_qos,got_qos", [(1, 1, 1), (2, 2, 2), (2, 1, 1), (1, 0, 0),
                                                      (0, 2, 0)])
def test_will_qos_honoured(broker, will_qos, sub_qos, got_qos):
    """The will is published at its Will QoS, delivered at min(Will QoS, subscription QoS),
    with the full QoS 1/2 flow. [MQTT-3.1.2-14] [MQTT-3.3.5-1]"""
    b = broker()
    w = watcher(b, qos=sub_qos)
    c = tl.connect(b, "wq", will_topic="will/q", will_payload=b"qos", will_qos=will_qos)
    drop(c)
    expect_publish(w, "will/q", b"qos", got_qos, ack=True)
    w.send(pingreq())
    w.expect(PINGRESP)


def test_will_of_refused_connect_not_published(broker):
    """A CONNECT refused with a return code never established a session: its will is not
    published. [MQTT-3.1.4-5] [MQTT-3.1.2-8]"""
    b = broker()
    w = watcher(b)
    c = tl.RawClient(b.host, b.port)
    c.send(connect_packet("", clean=False, will_topic="will/refused", will_payload=b"no"))
    c.expect_closed(allow=(tl.CONNACK,))
    w.no_packet(0.5)
