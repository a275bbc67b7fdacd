"""Real MQTT clients for the interoperability tests: paho-mqtt (Debian's python3-paho-mqtt, 1.6 on
Debian 12; 2.x works too), mosquitto_pub / mosquitto_sub (mosquitto-clients) and MQTT.js (npm
package `mqtt`, pinned in tests/interop/package.json, driven through the scripts in js/).

Every wait is on an event with a deadline: a paho callback, a line on a child's standard output
(mosquitto_sub runs line-buffered under stdbuf and with -d, so its "Subscribed" line tells us the
SUBACK arrived) or a child's exit. Nothing sleeps to synchronise.

A message is the tuple (topic, payload, qos, retain) whichever client received it."""
import itertools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import threading
import time

import paho.mqtt.client as paho

HERE = os.path.dirname(os.path.abspath(__file__))
JS_DIR = os.path.join(HERE, "js")
NODE_MODULES = os.path.join(HERE, "node_modules")
TIMEOUT = 20  # seconds; generous for ASan/TSan builds on a 2-core machine
_ids = itertools.count(1)


def _client_id(prefix, given):
    """Short (MQTT 3.1 allows 23 characters) and unique within the test run."""
    return given or f"{prefix}-{next(_ids)}"


def mqttjs_available():
    return shutil.which("node") is not None and os.path.isdir(os.path.join(NODE_MODULES, "mqtt"))


# ---------------------------------------------------------------------------------------------
# child processes


class Child:
    """A client process whose stdout (stderr merged) is read line by line with deadlines."""

    def __init__(self, argv, stdin=False):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        self.buf = b""
        self.lines = []  # every line read so far, for failure messages
        self.eof = False

    def readline(self, deadline):
        """Next line (without newline), or None at EOF; raises TimeoutError at the deadline."""
        while b"\n" not in self.buf:
            if self.eof:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return self._keep(line)
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.argv[0]}: no output before the deadline; "
                                   f"output so far: {self.output()}")
            r, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if chunk:
                    self.buf += chunk
                else:
                    self.eof = True
        line, self.buf = self.buf.split(b"\n", 1)
        return self._keep(line)

    def _keep(self, raw):
        line = raw.decode(errors="replace")
        self.lines.append(line)
        return line

    def wait_line(self, predicate, timeout=TIMEOUT):
        """Reads until a line satisfies predicate and returns it; fails on EOF or deadline."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(deadline)
            if line is None:
                raise AssertionError(f"{self.argv[0]} exited ({self.proc.wait(5)}) before the "
                                     f"expected line; output: {self.output()}")
            if predicate(line):
                return line

    def finish(self, timeout=TIMEOUT):
        """Reads everything until EOF, waits for the exit and returns the exit code."""
        deadline = time.monotonic() + timeout
        while self.readline(deadline) is not None:
            pass
        return self.proc.wait(max(0.1, deadline - time.monotonic()))

    def kill(self):
        """SIGKILL: the kernel closes the socket without a DISCONNECT (an abnormal close)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(TIMEOUT)

    def send_line(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def output(self):
        return "\n".join(self.lines + [self.buf.decode(errors="replace")])[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)
        for f in (self.proc.stdout, self.proc.stdin):
            if f:
                f.close()


# ---------------------------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub

MOSQ_VERSIONS = {3: "mqttv31", 4: "mqttv311"}
MSG_PREFIX = "MSG "  # -F format of mosquitto_sub; '@' and '%' are its escape characters


class MosquittoSub(Child):
    """mosquitto_sub -d: ready() waits for its SUBACK; messages() parses its -F lines."""

    def __init__(self, broker, topics, qos=2, version=4, client_id=None, count=None, extra=()):
        argv = ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port),
                "-V", MOSQ_VERSIONS[version], "-q", str(qos), "-d", "-W", str(TIMEOUT),
                "-F", MSG_PREFIX + "%t|%q|%r|%p"]
        if client_id:
            argv += ["-i", client_id]
        for t in topics:
            argv += ["-t", t]
        if count is not None:
            argv += ["-C", str(count)]
        super().__init__(argv + list(extra))
        self.received = []

    def ready(self):
        self.wait_line(lambda line: line.startswith("Subscribed (mid:"))
        return self

    def _next_message(self, deadline):
        while True:
            line = self.readline(deadline)
            if line is None:
                return None
            if line.startswith(MSG_PREFIX):
                topic, qos, retain, payload = line[len(MSG_PREFIX):].split("|", 3)
                return (topic, payload.encode(), int(qos), retain == "1")

    def messages(self, n, timeout=TIMEOUT):
        """The next n messages; fails if the process ends or the deadline passes first."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            m = self._next_message(deadline)
            if m is None:
                raise AssertionError(f"mosquitto_sub ended after {got}; output: {self.output()}")
            got.append(m)
        return got

    def all_until_exit(self, timeout=TIMEOUT):
        """Messages printed until mosquitto_sub exits (use with count=N); asserts exit code 0."""
        deadline = time.monotonic() + timeout
        got = []
        while (m := self._next_message(deadline)) is not None:
            got.append(m)
        code = self.proc.wait(max(0.1, deadline - time.monotonic()))
        assert code == 0, f"mosquitto_sub exited with {code}; output: {self.output()}"
        return got


def mosquitto_pub(broker, topic, payloads, qos=0, retain=False, version=4, client_id=None,
                  extra=()):
    """Publishes each payload (a list of str; None = zero-length) with one mosquitto_pub run
    (-l reads one message per stdin line) and asserts it exits 0 after the QoS flows."""
    argv = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port),
            "-V", MOSQ_VERSIONS[version], "-q", str(qos), "-t", topic]
    if retain:
        argv.append("-r")
    if client_id:
        argv += ["-i", client_id]
    argv += list(extra)
    if payloads == [None]:
        argv.append("-n")
        stdin = b""
    elif len(payloads) == 1:
        argv += ["-m", payloads[0]]
        stdin = b""
    else:
        argv.append("-l")
        stdin = "".join(p + "\n" for p in payloads).encode()
    r = subprocess.run(argv, input=stdin, capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, f"{argv} exited with {r.returncode}: {r.stdout!r} {r.stderr!r}"


def mosquitto_will_client(broker, will_topic, will_payload, will_qos=0, will_retain=False,
                          version=4, client_id=None):
    """A mosquitto_sub holding a will; returned once subscribed (so CONNECT was accepted).
    .kill() it for an abnormal close."""
    extra = ["--will-topic", will_topic, "--will-payload", will_payload,
             "--will-qos", str(will_qos)]
    if will_retain:
        extra.append("--will-retain")
    return MosquittoSub(broker, ["interop/will-holder/unused"], qos=0, version=version,
                        client_id=client_id, extra=extra).ready()


# ---------------------------------------------------------------------------------------------
# MQTT.js


def _js(script, opts, stdin=False):
    opts = dict(opts, timeout=TIMEOUT)
    return Child(["node", os.path.join(JS_DIR, script), json.dumps(opts)], stdin=stdin)


class MqttJsSub(Child):
    """js/sub.js: ready() waits for its SUBACK; messages come as JSON lines."""

    def __init__(self, broker, topics, qos=2, version=4, client_id=None, count=1):
        Child.__init__(self, ["node", os.path.join(JS_DIR, "sub.js"), json.dumps({
            "host": broker.host, "port": broker.port, "clientId": _client_id("js-sub", client_id),
            "version": version, "topics": list(topics), "qos": qos, "count": count, "timeout": TIMEOUT})])
        self.count = count

    def ready(self):
        self.wait_line(lambda line: line == '"ready"')
        return self

    def all_until_exit(self, timeout=TIMEOUT):
        """The `count` messages, after sub.js exited 0."""
        deadline = time.monotonic() + timeout
        got = []
        while (line := self.readline(deadline)) is not None:
            if line.startswith("{"):
                m = json.loads(line)
                got.append((m["topic"], m["payload"].encode(), m["qos"], m["retain"]))
        code = self.proc.wait(max(0.1, deadline - time.monotonic()))
        assert code == 0, f"sub.js exited with {code} after {got}; output: {self.output()}"
        return got

    def messages(self, n, timeout=TIMEOUT):
        assert n == self.count, "sub.js exits after `count` messages; ask for all of them"
        return self.all_until_exit(timeout)


def mqttjs_pub(broker, messages, version=4, client_id=None):
    """Publishes [(topic, payload str, qos, retain)] in order, each flow completed, then
    disconnects; asserts pub.js exits 0."""
    c = _js("pub.js", {"host": broker.host, "port": broker.port,
                       "clientId": _client_id("js-pub", client_id),
                       "version": version,
                       "messages": [{"topic": t, "payload": p, "qos": q, "retain": r}
                                    for t, p, q, r in messages]})
    try:
        code = c.finish()
        assert code == 0 and "done" in c.lines, f"pub.js exited with {code}: {c.output()}"
    finally:
        c.close()


def mqttjs_will_client(broker, will_topic, will_payload, will_qos=0, will_retain=False,
                       version=4, client_id=None):
    """js/will.js connected with a will; .kill() for an abnormal close, or
    .send_line("bye") + .finish() for a clean DISCONNECT."""
    c = _js("will.js", {"host": broker.host, "port": broker.port,
                        "clientId": _client_id("js-will", client_id),
                        "version": version, "will": {"topic": will_topic, "payload": will_payload,
                                                     "qos": will_qos, "retain": will_retain}},
            stdin=True)
    c.wait_line(lambda line: line == "connected")
    return c


# ---------------------------------------------------------------------------------------------
# paho-mqtt


def _paho_client(client_id, version, clean):
    kw = {}
    if hasattr(paho, "CallbackAPIVersion"):  # paho-mqtt 2.x (Debian 13)
        kw["callback_api_version"] = paho.CallbackAPIVersion.VERSION1
    proto = paho.MQTTv311 if version == 4 else paho.MQTTv31
    return paho.Client(client_id=client_id, clean_session=clean, protocol=proto, **kw)


class Paho:
    """A paho-mqtt client on its network thread; callbacks feed events and a message queue."""

    def __init__(self, broker, client_id, version=4, clean=True, will=None):
        self.client = _paho_client(client_id, version, clean)
        self.queue = queue.Queue()
        self.connected = threading.Event()
        self.connack = None
        self.subacks = {}
        self.suback_cond = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        if will:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.client.connect(broker.host, broker.port, keepalive=60)
        self.client.loop_start()
        assert self.connected.wait(TIMEOUT), "paho: no CONNACK"
        assert self.connack[1] == 0, f"paho: CONNACK refused with {self.connack[1]}"

    @property
    def session_present(self):
        return bool(self.connack[0].get("session present"))

    def _on_connect(self, client, userdata, flags, rc):
        self.connack = (flags, rc)
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.queue.put((msg.topic, msg.payload, msg.qos, bool(msg.retain)))

    def _on_subscribe(self, client, userdata, mid, granted):
        with self.suback_cond:
            self.subacks[mid] = granted
            self.suback_cond.notify_all()

    def subscribe(self, topics, qos=2):
        """Subscribes and waits for the SUBACK; returns the granted QoS list."""
        rc, mid = self.client.subscribe([(t, qos) for t in topics])
        assert rc == paho.MQTT_ERR_SUCCESS
        with self.suback_cond:
            assert self.suback_cond.wait_for(lambda: mid in self.subacks, TIMEOUT), "no SUBACK"
            granted = list(self.subacks[mid])
        assert all(g == qos for g in granted), f"granted {granted}, asked {qos}"
        return granted

    def publish(self, topic, payload, qos=0, retain=False):
        """Publishes and waits until the QoS flow completed (PUBACK / PUBCOMP)."""
        info = self.client.publish(topic, payload, qos, retain)
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"paho: publish to {topic} not completed"

    def messages(self, n, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            try:
                got.append(self.queue.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"paho: {len(got)} of {n} messages before the deadline: "
                                     f"{got}")
        return got

    def pending(self):
        """Messages already received and not yet taken (no waiting)."""
        got = []
        while not self.queue.empty():
            got.append(self.queue.get_nowait())
        return got

    def close(self):
        """Clean DISCONNECT, then the network thread stops."""
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


def paho_abnormal_close_with_will(broker, client_id, will, version=4):
    """Connects a paho client with a will and closes its socket without a DISCONNECT.
    Runs paho's loop by hand (no thread) so the close is immediate."""
    c = _paho_client(client_id, version, True)
    state = {}
    c.on_connect = lambda client, userdata, flags, rc: state.setdefault("rc", rc)
    c.will_set(*will)
    c.connect(broker.host, broker.port, keepalive=60)
    deadline = time.monotonic() + TIMEOUT
    while "rc" not in state and time.monotonic() < deadline:
        assert c.loop(timeout=0.05) == paho.MQTT_ERR_SUCCESS
    assert state.get("rc") == 0, f"paho will client: CONNACK {state}"
    c.socket().close()


class Clients:
    """Per-test registry: every client made through it is closed at teardown."""

    def __init__(self, broker):
        self.broker = broker
        self._open = []

    def _track(self, c):
        self._open.append(c)
        return c

    def paho(self, client_id, **kw):
        return self._track(Paho(self.broker, client_id, **kw))

    def mosquitto_sub(self, topics, **kw):
        return self._track(MosquittoSub(self.broker, topics, **kw))

    def mosquitto_will(self, *args, **kw):
        return self._track(mosquitto_will_client(self.broker, *args, **kw))

    def mqttjs_sub(self, topics, **kw):
        return self._track(MqttJsSub(self.broker, topics, **kw))

    def mqttjs_will(self, *args, **kw):
        return self._track(mqttjs_will_client(self.broker, *args, **kw))

    def mosquitto_pub(self, *args, **kw):
        mosquitto_pub(self.broker, *args, **kw)

    def mqttjs_pub(self, *args, **kw):
        mqttjs_pub(self.broker, *args, **kw)

    def close(self):
        for c in reversed(self._open):
            c.close()
