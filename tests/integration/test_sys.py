"""$SYS/broker/... topics (sys_interval 1) through the real broker: every documented topic is
published, the version text, counters that grow with traffic, clients/connected|disconnected|
total|maximum following connections, subscriptions/count and "retained messages/count"
following subscriptions and retained messages.

Every test starts its own broker; every wait is on a socket event with a deadline (the broker
publishes $SYS once a second, so waits are for the next round, never for a fixed time).
"""
import re
import struct
import time

import ternlib as tl

T = 5.0  # deadline (seconds) for anything the broker must send
SYS_DEADLINE = 10  # a changed $SYS value must show within a few rounds (Mosquitto: every 2 s)

SYS = "$SYS/broker/"
NUMERIC = [
    "clients/connected", "clients/disconnected", "clients/total", "clients/maximum",
    "clients/expired", "messages/received", "messages/sent", "publish/messages/received",
    "publish/messages/sent", "publish/messages/dropped", "bytes/received", "bytes/sent",
    "subscriptions/count", "retained messages/count", "heap/current", "heap/maximum",
    "store/messages/count",
]
if tl.MODE != "mosquitto":
    NUMERIC.append("messages/dropped")  # Tern's name; Mosquitto only has publish/messages/dropped


def pid_of(body):
    return struct.unpack("!H", bytes(body[:2]))[0]


def client(broker, cid, **kw):
    c, _ = tl.connect_client(broker, cid, **kw)
    return c


def sub(c, pid, filters):
    c.send(tl.subscribe(pid, filters))
    flags, body = c.expect(tl.SUBACK, T)
    assert flags == 0 and pid_of(body) == pid
    return list(body[2:])


def pub(c, topic, payload, qos=1, pid=1, retain=False):
    c.send(tl.publish(topic, payload, qos, retain, False, pid if qos else None))
    if qos == 1:
        assert pid_of(c.expect(tl.PUBACK, T)[1]) == pid


class SysWatch:
    """A client subscribed to $SYS/broker/#, remembering each topic's latest value and how many
    times $SYS/broker/uptime was published (one per round)."""

    def __init__(self, broker, cid="sys-watch"):
        self.c = client(broker, cid)
        assert sub(self.c, 1, [(SYS + "#", 0)]) == [0]
        self.values = {}
        self.rounds = 0

    def read_one(self, deadline):
        t, f, body = self.c.recv_packet(deadline - time.monotonic())
        assert t == tl.PUBLISH, f"unexpected packet type {t}"
        m = tl.parse_publish(f, body)
        assert m["topic"].startswith(SYS) and m["qos"] == 0
        self.values[m["topic"][len(SYS):]] = m["payload"].decode()
        if m["topic"] == SYS + "uptime":
            self.rounds += 1

    def wait(self, pred, what, timeout=SYS_DEADLINE):
        """Reads $SYS updates until pred(self) holds."""
        deadline = time.monotonic() + timeout
        while not pred(self):
            try:
                self.read_one(deadline)
            except TimeoutError:
                raise AssertionError(f"$SYS never showed {what}; last values: {self.values}")

    def num(self, name):
        return int(self.values[name])

    def until(self, name, pred, what=""):
        """Waits for topic `name` to have an integer value satisfying pred; returns it."""
        self.wait(lambda w: name in w.values and pred(w.num(name)), f"{name} {what}")
        return self.num(name)

    def settle(self):
        """Waits until a whole $SYS round published after this call has been read. Uptime opens
        each round; the first one read may still be the retained copy sent on subscribing, the
        second opens a fresh round and the third closes it."""
        target = self.rounds + 3
        self.wait(lambda w: w.rounds >= target, "a complete fresh round")


# ---- tests ----

def test_every_sys_topic_is_published(broker):
    """With sys_interval 1 every documented $SYS/broker topic is published with a sane value:
    version text, "N seconds" uptime, non-negative integers, maxima at least the current
    values."""
    b = broker("sys_interval 1")
    w = SysWatch(b)
    wanted = set(NUMERIC) | {"version", "uptime"}
    w.wait(lambda w: wanted <= set(w.values), f"all of {sorted(wanted)}")
    w.settle()  # values current (Mosquitto republishes only what changed)
    assert re.fullmatch(r"\S+ version \d+\.\d+\.\d+\S*", w.values["version"]), w.values["version"]
    if tl.MODE != "mosquitto":
        assert w.values["version"].startswith("tern version ")
    assert re.fullmatch(r"\d+ seconds", w.values["uptime"]), w.values["uptime"]
    for name in NUMERIC:
        assert re.fullmatch(r"\d+", w.values[name]), f"{name} = {w.values[name]!r}"
    assert w.num("clients/connected") >= 1  # the watcher itself
    assert w.num("clients/maximum") >= w.num("clients/connected")
    assert w.num("clients/total") >= w.num("clients/connected")
    assert w.num("subscriptions/count") >= 1  # the watcher's $SYS/broker/#
    assert w.num("heap/current") > 0 and w.num("heap/maximum") >= w.num("heap/current")


def test_uptime_advances(broker):
    """$SYS/broker/uptime is republished and grows while the broker runs."""
    b = broker("sys_interval 1")
    w = SysWatch(b)
    w.wait(lambda w: "uptime" in w.values, "uptime")
    first = int(w.values["uptime"].split()[0])
    w.wait(lambda w: int(w.values["uptime"].split()[0]) > first, "a larger uptime")


def test_traffic_counters_increase(broker):
    """After 10 QoS 1 messages of 500 bytes from one client to two subscribers, the received and
    sent counters (messages, PUBLISH messages, bytes) have grown at least by that traffic."""
    b = broker("sys_interval 1")
    w = SysWatch(b)
    names = ["messages/received", "messages/sent", "publish/messages/received",
             "publish/messages/sent", "bytes/received", "bytes/sent"]
    w.wait(lambda w: all(n in w.values for n in names), "the traffic counters")
    base = {n: w.num(n) for n in names}
    subs = [client(b, f"traffic-sub{i}") for i in range(2)]
    for s in subs:
        sub(s, 1, [("traffic/t", 1)])
    p = client(b, "traffic-pub")
    for i in range(10):
        pub(p, "traffic/t", bytes([i]) * 500, 1, pid=i + 1)
    for s in subs:
        for _ in range(10):
            f, body = s.expect(tl.PUBLISH, T)
            s.send(tl.puback(tl.parse_publish(f, body)["pid"]))
    grow = {"messages/received": 10, "messages/sent": 20, "publish/messages/received": 10,
            "publish/messages/sent": 20, "bytes/received": 5000, "bytes/sent": 10000}
    for n, g in grow.items():
        w.until(n, lambda v, n=n, g=g: v >= base[n] + g, f"grown by {g} from {base[n]}")


def test_clients_counters_follow_connections(broker):
    """clients/connected counts open connections (up when clients connect, down when they send
    DISCONNECT or just drop the connection); clients/maximum and clients/total keep up; a
    persistent session going offline counts in clients/disconnected."""
    b = broker("sys_interval 1")
    w = SysWatch(b)
    c0 = w.until("clients/connected", lambda v: v >= 1)
    d0 = w.until("clients/disconnected", lambda v: True)
    extra = [client(b, f"cc{i}") for i in range(3)]
    w.until("clients/connected", lambda v: v == c0 + 3, f"== {c0 + 3}")
    w.until("clients/maximum", lambda v: v >= c0 + 3, f">= {c0 + 3}")
    w.until("clients/total", lambda v: v >= c0 + 3, f">= {c0 + 3}")
    for c in extra[:2]:
        c.send(tl.disconnect())
        c.expect_closed(T)
    extra[2].close()
    w.until("clients/connected", lambda v: v == c0, f"back to {c0}")
    assert w.until("clients/maximum", lambda v: True) >= c0 + 3
    persistent = client(b, "cc-persistent", clean=False)
    w.until("clients/connected", lambda v: v == c0 + 1, f"== {c0 + 1}")
    persistent.send(tl.disconnect())
    persistent.expect_closed(T)
    w.until("clients/disconnected", lambda v: v == d0 + 1, f"== {d0 + 1}")
    w.until("clients/connected", lambda v: v == c0, f"back to {c0}")


def test_subscription_and_retained_counts(broker):
    """subscriptions/count follows SUBSCRIBE and UNSUBSCRIBE; "retained messages/count" follows
    retained messages being stored and cleared by an empty payload; store/messages/count stays a
    sane number."""
    b = broker("sys_interval 1")
    w = SysWatch(b)
    w.wait(lambda w: "subscriptions/count" in w.values and "retained messages/count" in w.values,
           "the counts")
    w.settle()  # every $SYS topic has now been retained once: its own count is stable
    s0, r0 = w.num("subscriptions/count"), w.num("retained messages/count")
    c = client(b, "counts")
    sub(c, 1, [("cnt/a", 0), ("cnt/b", 1), ("cnt/+/c", 2), ("cnt/#", 0)])
    w.until("subscriptions/count", lambda v: v == s0 + 4, f"== {s0 + 4}")
    p = client(b, "counts-pub")
    for i in range(3):
        pub(p, f"cnt/r{i}", b"kept", 1, pid=i + 1, retain=True)
    w.until("retained messages/count", lambda v: v == r0 + 3, f"== {r0 + 3}")
    pub(p, "cnt/r0", b"", 0, retain=True)
    w.until("retained messages/count", lambda v: v == r0 + 2, f"== {r0 + 2}")
    c.send(tl.unsubscribe(2, ["cnt/a", "cnt/#"]))
    deadline = time.monotonic() + T
    while True:  # skip the messages forwarded to cnt/# before the UNSUBACK
        t, f, body = c.recv_packet(deadline - time.monotonic())
        if t == tl.UNSUBACK:
            break
    w.until("subscriptions/count", lambda v: v == s0 + 2, f"== {s0 + 2}")
    assert w.until("store/messages/count", lambda v: True) >= 0
