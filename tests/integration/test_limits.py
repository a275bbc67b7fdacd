"""Quotas and flood protection: every limit refuses with the right code, is counted in
$SYS/broker/limits/<name>, and leaves well-behaved clients unaffected."""
import socket
import struct
import time

import pytest

from ternlib import (CONNACK, DISCONNECT, PUBACK, PUBLISH, SUBACK, RawClient, connect,
                     connect_client, parse_publish, publish, subscribe)

pytestmark = pytest.mark.ternd_only


def v5_connect(b, cid):
    c = RawClient(b.host, b.port)
    c.send(connect(cid, proto_level=5))
    _, body = c.expect(CONNACK)
    assert body[1] == 0
    return c


def sys_value(b, name, at_least=1, timeout=5):
    """The value of $SYS/broker/limits/<name> once it reaches at_least (updates arrive every
    sys_interval), or the last value seen at the deadline."""
    c, _ = connect_client(b, "sysreader-" + name)
    c.send(subscribe(1, [(f"$SYS/broker/limits/{name}", 0)]))
    c.expect(SUBACK)
    end = time.monotonic() + timeout
    value = -1
    while time.monotonic() < end and value < at_least:
        try:
            flags, body = c.expect(PUBLISH, timeout=end - time.monotonic())
        except TimeoutError:
            break
        value = int(parse_publish(flags, body)["payload"])
    c.close()
    return value


def test_max_connections_per_ip(broker):
    b = broker("max_connections_per_ip 3\nsys_interval 1")
    keep = [connect_client(b, f"ip{i}")[0] for i in range(3)]
    extra = RawClient(b.host, b.port)
    extra.expect_closed()
    assert "max_connections_per_ip" in b.stderr_text()
    for k in keep:
        k.close()
    # the broker sees the closes asynchronously: each retry is a fresh connection attempt
    end = time.monotonic() + 5
    while True:
        c = RawClient(b.host, b.port)
        c.send(connect("ip-again"))
        try:
            c.expect(CONNACK, timeout=1)
            break
        except AssertionError:
            assert time.monotonic() < end, "slots never freed after the clients left"
    c.close()
    assert sys_value(b, "connections_per_ip") >= 1


def test_connection_rate_per_ip(broker):
    b = broker("connection_rate_per_ip 5")
    closed = 0
    for i in range(12):
        c = RawClient(b.host, b.port)
        c.send(connect(f"rate{i}"))
        try:
            c.expect(CONNACK, timeout=2)
        except AssertionError:
            closed += 1
    assert closed >= 1, "connections beyond the per-second rate must be closed"
    assert "connection_rate" in b.stderr_text()


def test_max_subscriptions_per_client(broker):
    b = broker("max_subscriptions_per_client 2")
    c, _ = connect_client(b, "subs")
    c.send(subscribe(1, [("a", 0), ("b", 0), ("c", 0), ("a", 1)]))
    _, body = c.expect(SUBACK)
    assert list(body[2:]) == [0, 0, 0x80, 1], "third refused, re-subscribing allowed"


def test_topic_levels_and_length(broker):
    b = broker("max_topic_levels 3\nmax_topic_length 20")
    s, _ = connect_client(b, "tl-sub")
    s.send(subscribe(1, [("a/b/c/d", 0), ("a/#", 0), ("x" * 21, 0)]))
    _, body = s.expect(SUBACK)
    assert list(body[2:]) == [0x80, 0, 0x80]
    p = v5_connect(b, "tl-pub")
    p.send(publish("a/b/c/d", b"deep", qos=1, pid=1, props=b""))
    _, body = p.expect(PUBACK)
    assert body[2] == 0x90
    p.send(publish("a/b", b"ok", qos=1, pid=2, props=b""))
    p.expect(PUBACK)
    flags, body = s.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"ok"


def test_publish_rate_v5_and_v3(broker):
    b = broker("publish_rate_messages 5")
    p5 = v5_connect(b, "rate5")
    codes = []
    for i in range(12):
        p5.send(publish("r/t", b"x", qos=1, pid=i + 1, props=b""))
        _, body = p5.expect(PUBACK)
        codes.append(body[2] if len(body) > 2 else 0)
    assert 0x96 in codes and codes.count(0x96) >= 5
    p3, _ = connect_client(b, "rate3")
    for i in range(12):
        try:
            p3.send(publish("r/t", b"x"))
        except OSError:
            break
    p3.expect_closed()


def test_retained_limit(broker):
    b = broker("max_retained_messages 2")
    p = v5_connect(b, "ret")
    rcs = []
    for i in range(3):
        p.send(publish(f"rt/{i}", b"v", qos=1, retain=True, pid=i + 1, props=b""))
        _, body = p.expect(PUBACK)
        rcs.append(body[2] if len(body) > 2 else 0)
    assert rcs[2] == 0x97
    p.send(publish("rt/0", b"", qos=1, retain=True, pid=9, props=b""))  # clearing always works
    _, body = p.expect(PUBACK)
    assert (body[2] if len(body) > 2 else 0) in (0, 0x10)


def test_memory_limit_refuses_publishes_not_the_broker(broker):
    b = broker("memory_limit 1000")  # below what the broker itself uses: every publish refused
    p = v5_connect(b, "mem")
    p.send(publish("m/t", b"x", qos=1, pid=1, props=b""))
    _, body = p.expect(PUBACK)
    assert body[2] == 0x97
    assert "memory_limit" in b.stderr_text()


def test_slow_consumer_does_not_hurt_others(broker):
    """A subscriber to '#' that never reads: its QoS 0 is dropped past its output bound while a
    well-behaved client keeps exchanging QoS 1 messages."""
    b = broker("sys_interval 1")
    slow = socket.create_connection((b.host, b.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(connect("slow"))
    slow.recv(4)
    slow.sendall(subscribe(1, [("#", 0)]))
    good_sub, _ = connect_client(b, "good-sub")
    good_sub.send(subscribe(1, [("good/t", 1)]))
    good_sub.expect(SUBACK)
    flood, _ = connect_client(b, "flood")
    good, _ = connect_client(b, "good-pub")
    blob = publish("flood/t", b"z" * 4000) * 64
    for round_ in range(30):
        flood.send(blob)
        good.send(publish("good/t", b"%d" % round_, qos=1, pid=round_ + 1))
        good.expect(PUBACK)
        flags, body = good_sub.expect(PUBLISH)
        m = parse_publish(flags, body)
        assert m["payload"] == b"%d" % round_
        good_sub.send(struct.pack("!BBH", 0x40, 2, m["pid"]))
    assert sys_value(b, "slow_consumer") > 0
    slow.close()
