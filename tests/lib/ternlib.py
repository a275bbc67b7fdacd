"""Test helpers: start ternd on port 0 and learn its port from its "ready" line; a raw MQTT
client for byte-level protocol tests. Every wait is on an event (pipe or socket readiness)
with a deadline; nothing sleeps to synchronise."""
import ctypes
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERND = os.environ.get("TERND", os.path.join(ROOT, "build", "asan", "ternd"))
MODE = os.environ.get("TERN_TEST_BROKER", "ternd")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")


class Broker:
    """A running broker: .host, .port, .proc, .stderr_text(), .signal(sig), .terminate()."""

    def __init__(self, workdir, config_extra="", threads=2):
        os.makedirs(workdir, exist_ok=True)
        self.workdir = str(workdir)
        self.host = "127.0.0.1"
        self.stderr_path = os.path.join(self.workdir, "stderr.log")
        self.conf_path = os.path.join(self.workdir, "broker.conf")
        self.stopped = False
        self.exit_code = None
        if MODE == "mosquitto":
            self._start_mosquitto(config_extra)
        else:
            self._start_ternd(config_extra, threads)

    def _start_ternd(self, extra, threads):
        with open(self.conf_path, "w") as f:
            f.write(f"listener 0 127.0.0.1\nthreads {threads}\n{extra}\n")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([TERND, "-c", self.conf_path], stdout=subprocess.PIPE,
                                     stderr=self._err, stdin=subprocess.DEVNULL)
        self.port = None
        deadline = time.monotonic() + 10
        buf = b""
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], deadline - time.monotonic())
            if not r:
                break
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("listen mqtt") and self.port is None:
                    self.port = int(line.split()[3])
                if line == "ready" and self.port:
                    return
        self.proc.kill()
        raise RuntimeError(f"ternd did not become ready: {buf!r}\n{self.stderr_text()[-3000:]}")

    def _start_mosquitto(self, extra):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto" and cannot read tmp_path
        for line in extra.splitlines():
            word = line.split()[0] if line.split() else ""
            if word in ("threads", "connect_timeout", "listener"):
                continue  # ternd-only or replaced
            lines.append(line)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", self.conf_path, "-v"],
                                     stdout=self._err, stderr=self._err)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                select.select([], [], [], 0.02)  # retry connect: mosquitto prints no ready line
        raise RuntimeError("mosquitto did not start")

    @property
    def pid(self):
        """Process id of the running broker (ternd, or mosquitto in validation mode)."""
        return self.proc.pid

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_stderr(self, pattern, timeout=5):
        """Waits (on inotify events for the log file, with a deadline) until stderr matches
        pattern (a substring, or a compiled regex) and returns the whole stderr text."""
        def found(text):
            return pattern.search(text) if isinstance(pattern, re.Pattern) else pattern in text
        deadline = time.monotonic() + timeout
        fd = _inotify_watch(self.stderr_path)
        try:
            while True:
                text = self.stderr_text()
                if found(text):
                    return text
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"{pattern!r} not logged within {timeout}s; stderr ends:\n"
                                         f"{text[-2000:]}")
                if fd is None:
                    select.select([], [], [], min(remaining, 0.05))  # no inotify: bounded re-read
                    continue
                if select.select([fd], [], [], remaining)[0]:
                    try:
                        os.read(fd, 65536)
                    except BlockingIOError:
                        pass
        finally:
            if fd is not None:
                os.close(fd)

    def terminate(self, timeout=10):
        if self.stopped:
            return self.exit_code
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
            self.exit_code = "hung on SIGTERM"
        self._err.close()
        return self.exit_code

    def stop_and_check(self):
        code = self.terminate()
        problems = []
        if MODE != "mosquitto" and code != 0:
            problems.append(f"ternd exited with {code}")
        text = self.stderr_text()
        for mark in SANITIZER_MARKS:
            if mark in text:
                i = text.index(mark)
                problems.append("sanitizer report in ternd stderr:\n"
                                f"{text[max(0, i - 200):i + 4000]}")
                break
        return problems


def _inotify_watch(path):
    """A non-blocking inotify fd that becomes readable when path is modified (None if absent)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(path), 0x2 | 0x8) < 0:  # MODIFY | CLOSE_WRITE
            os.close(fd)
            return None
        return fd
    except (OSError, AttributeError):
        return None


# ---- raw MQTT 3.1.1 / 5.0 packets ----

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)


def varint(n):
    out = bytearray()
    while True:
        d = n % 128
        n //= 128
        out.append(d | (128 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def packet(first_byte, body=b""):
    return bytes([first_byte]) + varint(len(body)) + body


def connect(*args, **kw):
    """connect(client_id, ...) -> CONNECT packet bytes (see connect_packet);
    connect(broker, client_id, **kw) -> a RawClient connected with CONNACK rc 0 asserted."""
    if args and isinstance(args[0], Broker):
        return connected(*args, **kw)
    return connect_packet(*args, **kw)


def connect_packet(client_id="", clean=True, keepalive=60, will_topic=None, will_payload=b"",
                   will_qos=0, will_retain=False, username=None, password=None, proto_level=4,
                   proto_name=b"MQTT", flags_override=None, props=b"", will_props=b"",
                   will=None):
    """The CONNECT packet bytes (3.1 with proto_name=b"MQIsdp", proto_level=3; 5.0 with 5).
    will=(topic, payload[, qos[, retain]]) is shorthand for the will_* arguments."""
    if will is not None:
        will_topic, will_payload = will[0], will[1]
        will_qos = will[2] if len(will) > 2 else will_qos
        will_retain = will[3] if len(will) > 3 else will_retain
    flags = (2 if clean else 0)
    payload = mqtt_str(client_id)
    v5 = proto_level == 5
    if will_topic is not None:
        flags |= 4 | (will_qos << 3) | (32 if will_retain else 0)
        payload += (varint(len(will_props)) + will_props if v5 else b"")
        payload += mqtt_str(will_topic) + mqtt_str(will_payload)
    if username is not None:
        flags |= 128
        payload += mqtt_str(username)
    if password is not None:
        flags |= 64
        payload += mqtt_str(password)
    if flags_override is not None:
        flags = flags_override
    body = mqtt_str(proto_name) + bytes([proto_level, flags]) + struct.pack("!H", keepalive)
    if v5:
        body += varint(len(props)) + props
    return packet(0x10, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None):
    if isinstance(payload, str):
        payload = payload.encode()
    body = mqtt_str(topic)
    if qos:
        body += struct.pack("!H", pid if pid is not None else 1)
    if props is not None:
        body += varint(len(props)) + props
    return packet(0x30 | (8 if dup else 0) | (qos << 1) | (1 if retain else 0), body + payload)


def ack(kind, pid):
    first = {PUBACK: 0x40, PUBREC: 0x50, PUBREL: 0x62, PUBCOMP: 0x70}[kind]
    return packet(first, struct.pack("!H", pid))


def puback(pid): return ack(PUBACK, pid)
def pubrec(pid): return ack(PUBREC, pid)
def pubrel(pid): return ack(PUBREL, pid)
def pubcomp(pid): return ack(PUBCOMP, pid)


def subscribe(pid, filters, props=None):
    body = struct.pack("!H", pid) + (varint(len(props)) + props if props is not None else b"")
    for f, opts in filters:
        body += mqtt_str(f) + bytes([opts])
    return packet(0x82, body)


def unsubscribe(pid, filters, props=None):
    body = struct.pack("!H", pid) + (varint(len(props)) + props if props is not None else b"")
    for f in filters:
        body += mqtt_str(f)
    return packet(0xA2, body)


def pingreq(): return packet(0xC0)
def disconnect(): return packet(0xE0)


class ProtocolClosed(AssertionError):
    pass


class RawClient:
    """A blocking socket speaking raw MQTT bytes with a fixed-header parser."""

    def __init__(self, host, port, timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        # No Nagle: a small write after an unacknowledged one would otherwise wait ~40 ms for
        # the peer's delayed ACK, which makes request/response loops crawl.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pending = []  # packets put back by expect_publish, returned first by recv_packet

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet before the deadline")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet before the deadline")
        except ConnectionResetError:
            data = b""
        if not data:
            raise ProtocolClosed("connection closed by the broker")
        self.buf += data

    def recv_packet(self, timeout=5):
        """Returns (type, flags, body) of the next packet."""
        if getattr(self, "pending", None):  # subclasses (TlsClient) may skip __init__
            return self.pending.pop(0)
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, rem, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    d = self.buf[i]
                    rem += (d & 127) * mult
                    mult *= 128
                    i += 1
                    if not d & 128:
                        complete = True
                        break
                if complete and len(self.buf) >= i + rem:
                    first, body = self.buf[0], self.buf[i:i + rem]
                    self.buf = self.buf[i + rem:]
                    return first >> 4, first & 15, body
            self._fill(deadline)

    def expect(self, ptype, timeout=5):
        t, flags, body = self.recv_packet(timeout)
        assert t == ptype, f"expected packet type {ptype}, got {t} ({body!r})"
        return flags, body

    def expect_closed(self, timeout=5, allow=None):
        """Asserts the broker closes the connection (EOF or reset) before the deadline and returns
        the packets received before the close. allow=None accepts any packet first; otherwise it
        is a collection of packet types that may arrive (allow=() : nothing may arrive)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                p = self.recv_packet(deadline - time.monotonic())
            except ProtocolClosed:
                return seen
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; got {seen}")
            if allow is not None and p[0] not in allow:
                raise AssertionError(f"expected the connection to close, got packet {p}")
            seen.append(p)

    def no_packet(self, timeout=0.5):
        """Asserts nothing arrives within timeout (a bounded wait is the point here)."""
        try:
            p = self.recv_packet(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {p}")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_publish(flags, body, v5=False):
    tl = struct.unpack("!H", body[:2])[0]
    topic = body[2:2 + tl].decode()
    off = 2 + tl
    qos = (flags >> 1) & 3
    pid = None
    if qos:
        pid = struct.unpack("!H", body[off:off + 2])[0]
        off += 2
    props = b""
    if v5:
        n, mult, plen = 0, 1, 0
        while True:
            d = body[off + n]
            plen += (d & 127) * mult
            mult *= 128
            n += 1
            if not d & 128:
                break
        props = body[off + n:off + n + plen]
        off += n + plen
    return {"topic": topic, "payload": body[off:], "qos": qos, "retain": bool(flags & 1),
            "dup": bool(flags & 8), "pid": pid, "props": props}


def connect_client(broker, client_id, **kw):
    """A RawClient connected with CONNACK accepted; returns (client, session_present)."""
    c = RawClient(broker.host, broker.port)
    c.send(connect_packet(client_id, **kw))
    flags, body = c.expect(CONNACK)
    rc = body[1]
    assert rc == 0, f"CONNACK refused with {rc:#x}"
    return c, bool(body[0] & 1)


def parse_connack(body):
    """CONNACK body -> (session_present, return_code)."""
    assert len(body) == 2, f"CONNACK remaining length {len(body)} != 2"
    return bool(body[0] & 1), body[1]


def parse_suback(body):
    """SUBACK body -> (packet_id, [return codes])."""
    return struct.unpack("!H", body[:2])[0], list(body[2:])


def parse_unsuback(body):
    """UNSUBACK body (3.1.1) -> packet_id."""
    return struct.unpack("!H", body[:2])[0]


def connected(broker, client_id, **kw):
    """A RawClient connected to broker with CONNACK rc 0 asserted; .session_present is set."""
    c, sp = connect_client(broker, client_id, **kw)
    c.session_present = sp
    return c


def expect_publish(client, topic, payload, qos=0, ack=False, retain=None, timeout=5):
    """Waits for the next packet, asserts it is PUBLISH(topic, payload, qos) and returns it as a
    dict; with ack=True completes the QoS 1 (PUBACK) or QoS 2 (PUBREC, PUBREL, PUBCOMP) flow."""
    if isinstance(payload, str):
        payload = payload.encode()
    flags, body = client.expect(PUBLISH, timeout)
    p = parse_publish(flags, body)
    assert (p["topic"], p["payload"], p["qos"]) == (topic, payload, qos), \
        f"expected PUBLISH {topic!r} {payload!r} qos {qos}, got {p}"
    if retain is not None:
        assert p["retain"] == retain, f"retain flag {p['retain']} != {retain}: {p}"
    if ack and qos == 1:
        client.send(puback(p["pid"]))
    elif ack and qos == 2:
        client.send(pubrec(p["pid"]))
        later = []  # other packets (the next PUBLISH) may come before this PUBREL
        while True:
            t2, f2, b2 = client.recv_packet(timeout)
            if t2 == PUBREL and struct.unpack("!H", b2[:2])[0] == p["pid"]:
                assert f2 == 2, f"PUBREL flags {f2}"
                break
            later.append((t2, f2, b2))
        client.pending = later + getattr(client, "pending", [])
        client.send(pubcomp(p["pid"]))
    return p


# The builders and parsers are also reachable from RawClient: RawClient.publish(...), etc.
for _f in (connect_packet, publish, puback, pubrec, pubrel, pubcomp, subscribe, unsubscribe,
           pingreq, disconnect, parse_connack, parse_publish, parse_suback, parse_unsuback):
    setattr(RawClient, _f.__name__, staticmethod(_f))
del _f
