"""Abuse, bounded and on loopback only: slowloris, half-open sockets, a connection flood, a
publish flood, a subscriber to '#' that never reads. During each, a well-behaved client keeps
publishing and receiving with no loss, and the broker's memory stays bounded."""
import socket
import threading
import time

import pytest

import ternlib as tl
from ternlib import PUBACK, PUBLISH, SUBACK, connect, connect_client, parse_publish, publish, subscribe

pytestmark = pytest.mark.ternd_only


class Watchdog:
    """A subscriber and a publisher exchanging QoS 1 messages; check() sends one more and
    asserts it arrives, in order."""

    def __init__(self, b):
        self.sub, _ = connect_client(b, "wd-sub")
        self.sub.send(subscribe(1, [("wd/t", 1)]))
        self.sub.expect(SUBACK)
        self.pub, _ = connect_client(b, "wd-pub")
        self.n = 0

    def check(self):
        self.n += 1
        self.pub.send(publish("wd/t", b"%d" % self.n, qos=1, pid=self.n % 65000 + 1))
        self.pub.expect(PUBACK, timeout=10)
        flags, body = self.sub.expect(PUBLISH, timeout=10)
        m = parse_publish(flags, body)
        assert m["payload"] == b"%d" % self.n
        self.sub.send(tl.puback(m["pid"]))


def heap(b):
    c, _ = connect_client(b, "heapreader")
    c.send(subscribe(1, [("$SYS/broker/heap/current", 0)]))
    c.expect(SUBACK)
    flags, body = c.expect(PUBLISH, timeout=5)
    c.close()
    return int(parse_publish(flags, body)["payload"])


def test_slowloris_one_byte_at_a_time(broker):
    """Sockets dribbling a CONNECT one byte at a time are closed at connect_timeout; others are
    served meanwhile."""
    b = broker("connect_timeout 2")
    wd = Watchdog(b)
    slow = [socket.create_connection((b.host, b.port)) for _ in range(20)]
    data = connect("slowloris")
    t0 = time.monotonic()
    closed = set()
    i = 0
    while len(closed) < len(slow) and time.monotonic() - t0 < 8:
        for k, s in enumerate(slow):
            if k in closed:
                continue
            try:
                s.send(data[i % len(data):i % len(data) + 1])
            except OSError:
                closed.add(k)
        i = min(i + 1, len(data) - 2)  # never complete the CONNECT
        wd.check()
    assert len(closed) == len(slow), "dribbling sockets must be closed by connect_timeout"


def test_half_open_and_connection_flood(broker):
    """Hundreds of sockets that connect and never speak, plus a flood of connect/close: the
    broker keeps serving and frees them."""
    b = broker("connect_timeout 1\nsys_interval 1")
    wd = Watchdog(b)
    before = heap(b)
    idle = [socket.create_connection((b.host, b.port)) for _ in range(300)]
    for _ in range(300):
        s = socket.create_connection((b.host, b.port))
        s.sendall(connect("flood"))
        s.close()
    wd.check()
    for s in idle:
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    wd.check()
    # memory back near where it started once the sockets are gone (one $SYS round later)
    end = time.monotonic() + 5
    after = heap(b)
    while after > before + 2_000_000 and time.monotonic() < end:
        after = heap(b)
    assert after <= before + 2_000_000, f"heap grew from {before} to {after}"


def test_publish_flood_is_rate_limited(broker):
    """A publisher blasting QoS 0 over publish_rate_messages is disconnected (v3); the watchdog
    is unaffected."""
    b = broker("publish_rate_messages 200")
    wd = Watchdog(b)
    f, _ = connect_client(b, "flooder")
    blob = publish("flood/x", b"y" * 100) * 1000
    try:
        for _ in range(20):
            f.send(blob)
    except OSError:
        pass
    f.expect_closed(timeout=5)
    wd.check()
    assert "publish_rate" in b.stderr_text()


def test_subscriber_to_everything_that_never_reads(broker):
    """A '#' subscriber that never reads while 20 MB flow: its backlog is bounded (QoS 0 dropped
    for it), the broker heap stays bounded, the watchdog loses nothing."""
    b = broker("sys_interval 1")
    wd = Watchdog(b)
    lazy = socket.create_connection((b.host, b.port))
    lazy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lazy.sendall(connect("lazy") + subscribe(1, [("#", 0)]))
    p, _ = connect_client(b, "big-pub")
    chunk = publish("bulk/x", b"z" * 10_000) * 100  # 1 MB
    for _ in range(20):
        p.send(chunk)
        wd.check()
    assert heap(b) < 64_000_000
    lazy.close()


def test_garbage_storm_from_many_sockets(broker):
    """Random bytes from many sockets in parallel; the watchdog keeps working throughout."""
    import random
    b = broker()
    wd = Watchdog(b)
    stop = threading.Event()
    rnd = random.Random(1234)
    blobs = [bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 300))) for _ in range(64)]

    def storm(k):
        i = k
        while not stop.is_set():
            try:
                s = socket.create_connection((b.host, b.port), timeout=2)
                s.sendall(blobs[i % len(blobs)])
                s.close()
            except OSError:
                pass
            i += 7

    ts = [threading.Thread(target=storm, args=(k,)) for k in range(6)]
    for t in ts:
        t.start()
    try:
        for _ in range(100):
            wd.check()
    finally:
        stop.set()
        for t in ts:
            t.join()
