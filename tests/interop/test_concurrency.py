"""Concurrency: many clients spread over every I/O thread publish and subscribe at once at
QoS 1 and 2; nothing may be lost or duplicated and each publisher's order must hold
[MQTT-4.6.0-2] [MQTT-4.6.0-3] [MQTT-4.3.2-1] [MQTT-4.3.3-1] [MQTT-4.3.3-2].

Runs against whatever TERND points at; `make test` runs it against the ThreadSanitizer build
too (the fixture fails the test if TSan reports anything). Raw sockets with selectors keep it
fast enough under TSan; no sleeps: every wait is on socket readiness with a deadline."""
import selectors
import socket
import struct
import time

import pytest

PUBLISHERS = 8
SUBSCRIBERS = 8
MESSAGES = 300


def _varint(n):
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (128 if n else 0))
        if not n:
            return bytes(out)


def _pkt(first, body):
    return bytes([first]) + _varint(len(body)) + body


def _s(text):
    b = text.encode()
    return struct.pack("!H", len(b)) + b


class Conn:
    """A non-blocking MQTT 3.1.1 connection with an incremental packet parser."""

    def __init__(self, port, client_id):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        body = _s("MQTT") + bytes([4, 2]) + struct.pack("!H", 60) + _s(client_id)
        self.sock.sendall(_pkt(0x10, body))
        t, _, b = self.read_packet(10)
        assert t == 2 and b[1] == 0, "CONNACK refused"
        self.sock.setblocking(False)

    def read_packet(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.parse()
            if pkt:
                return pkt
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.sock.recv(65536)
            assert data, "connection closed"
            self.buf += data

    def parse(self):
        if len(self.buf) < 2:
            return None
        mult, rem, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            d = self.buf[i]
            rem += (d & 127) * mult
            mult *= 128
            i += 1
            if not d & 128:
                break
        if len(self.buf) < i + rem:
            return None
        first, body = self.buf[0], self.buf[i:i + rem]
        self.buf = self.buf[i + rem:]
        return first >> 4, first & 15, body


def _run(broker_port, qos):
    subs = [Conn(broker_port, f"csub-{qos}-{i}") for i in range(SUBSCRIBERS)]
    for i, c in enumerate(subs):
        c.sock.setblocking(True)
        flt = "load/#" if i % 2 else "load/+/data"
        c.sock.sendall(_pkt(0x82, struct.pack("!H", 1) + _s(flt) + bytes([qos])))
        t, _, b = c.read_packet(10)
        assert t == 9 and b[2] == qos
        c.sock.setblocking(False)
    pubs = [Conn(broker_port, f"cpub-{qos}-{i}") for i in range(PUBLISHERS)]
    sel = selectors.DefaultSelector()
    for c in subs + pubs:
        sel.register(c.sock, selectors.EVENT_READ, c)
    received = {i: {} for i in range(SUBSCRIBERS)}
    pending_pubrel = set()
    # publishers send everything at once (the broker's inbound side gets deep pipelining)
    for p, c in enumerate(pubs):
        out = bytearray()
        for k in range(MESSAGES):
            pid = k + 1
            out += _pkt(0x30 | (qos << 1), _s(f"load/{p}/data") + struct.pack("!H", pid) +
                        f"{p}:{k}".encode())
        c.sock.setblocking(True)
        c.sock.sendall(out)
        c.sock.setblocking(False)
    expected = PUBLISHERS * MESSAGES * SUBSCRIBERS
    acked = 0
    total = 0
    deadline = time.monotonic() + 25  # the whole test stays well under 30 s even under ASan
    while (total < expected or acked < PUBLISHERS * MESSAGES) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                continue
            assert data, "broker closed a connection"
            c.buf += data
            replies = bytearray()
            while (pkt := c.parse()) is not None:
                t, flags, body = pkt
                if t == 3:  # PUBLISH to a subscriber
                    tl = struct.unpack("!H", body[:2])[0]
                    pid = struct.unpack("!H", body[2 + tl:4 + tl])[0]
                    payload = body[4 + tl:].decode()
                    sub = subs.index(c)
                    if qos == 2 and (sub, pid) in pending_pubrel:
                        # a DUP resend before our PUBREC reached the broker is not a new message
                        assert flags & 8, "same packet id reused while still in flight"
                    else:
                        p_s, k_s = payload.split(":")
                        received[sub].setdefault(int(p_s), []).append(int(k_s))
                        total += 1
                    if qos == 1:
                        replies += _pkt(0x40, struct.pack("!H", pid))
                    else:
                        pending_pubrel.add((sub, pid))
                        replies += _pkt(0x50, struct.pack("!H", pid))
                elif t == 6:  # PUBREL from the broker
                    pid = struct.unpack("!H", body[:2])[0]
                    pending_pubrel.discard((subs.index(c), pid))
                    replies += _pkt(0x70, struct.pack("!H", pid))
                elif t == 4:  # PUBACK to a publisher
                    acked += 1
                elif t == 5:  # PUBREC to a publisher
                    replies += _pkt(0x62, body[:2])
                elif t == 7:  # PUBCOMP
                    acked += 1
            if replies:
                c.sock.setblocking(True)
                c.sock.sendall(replies)
                c.sock.setblocking(False)
    for c in subs + pubs:
        c.sock.close()
    assert acked == PUBLISHERS * MESSAGES, f"publishers got {acked} acks"
    for sub, per_pub in received.items():
        for p in range(PUBLISHERS):
            got = per_pub.get(p, [])
            assert got == list(range(MESSAGES)), (
                f"subscriber {sub} from publisher {p}: {len(got)} messages, "
                f"lost {sorted(set(range(MESSAGES)) - set(got))[:5]}, "
                f"duplicates {len(got) - len(set(got))}, in order {got == sorted(got)}")
    assert total == expected


@pytest.mark.ternd_only  # mosquitto 2.0 resets a publisher pipelining 300 QoS 2 messages
@pytest.mark.parametrize("qos", [1, 2])
def test_many_clients_all_threads_no_loss_no_duplicates_in_order(broker, qos):
    """8 publishers x 300 messages to 8 subscribers (two filters) over 4 I/O threads."""
    b = broker("max_queued_messages 0\nmax_inflight_messages 100\n", threads=4)
    _run(b.port, qos)
