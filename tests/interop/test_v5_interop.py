"""MQTT 5 interoperability with real clients: paho-mqtt (MQTTv5), mosquitto_pub/sub/rr -V 5 and
MQTT.js (protocolVersion 5): properties, topic aliases, shared subscriptions, session expiry,
request/response. Every wait is on an event with a deadline."""
import json
import os
import queue
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, "/usr/lib/python3/dist-packages")
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def paho5(b, cid, clean=True, expiry=None, on_message=None):
    c = mqtt.Client(client_id=cid, protocol=mqtt.MQTTv5)
    connected = queue.Queue()
    c.on_connect = lambda cl, u, f, rc, p=None: connected.put((f, rc))
    inbox = queue.Queue()
    c.on_message = on_message or (lambda cl, u, m: inbox.put(m))
    props = None
    if expiry is not None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = expiry
    c.connect(b.host, b.port, clean_start=clean, properties=props)
    c.loop_start()
    flags, rc = connected.get(timeout=10)
    assert rc == 0
    c.inbox = inbox
    c.session_present = flags.get("session present", 0) if isinstance(flags, dict) else flags
    return c


def subscribe(c, flt, qos=1):
    done = queue.Queue()
    c.on_subscribe = lambda *a: done.put(a)
    c.subscribe(flt, qos)
    done.get(timeout=10)


def test_paho_v5_properties_forwarded(broker):
    """[MQTT-3.3.2-15] [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-20] through paho MQTTv5."""
    b = broker()
    s = paho5(b, "p5s")
    subscribe(s, "p5/#")
    p = paho5(b, "p5p")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k1", "v1"), ("k2", "v2")]
    props.ResponseTopic = "p5/reply"
    props.CorrelationData = b"xyz"
    props.ContentType = "text/plain"
    p.publish("p5/t", b"hello", qos=1, properties=props).wait_for_publish(10)
    m = s.inbox.get(timeout=10)
    assert m.payload == b"hello"
    assert m.properties.UserProperty == [("k1", "v1"), ("k2", "v2")]
    assert m.properties.ResponseTopic == "p5/reply"
    assert m.properties.CorrelationData == b"xyz"
    assert m.properties.ContentType == "text/plain"
    for c in (s, p):
        c.loop_stop()


def test_paho_v5_session_expiry_and_queue(broker):
    """Session Expiry Interval keeps the session and its queued QoS 1 message across a
    reconnect with Clean Start 0."""
    b = broker()
    s = paho5(b, "p5exp", clean=True, expiry=60)
    subscribe(s, "p5q/#")
    s.disconnect()
    s.loop_stop()
    p = paho5(b, "p5exp-pub")
    p.publish("p5q/t", b"queued", qos=1).wait_for_publish(10)
    s2 = paho5(b, "p5exp", clean=False, expiry=60)
    m = s2.inbox.get(timeout=10)
    assert m.payload == b"queued"
    for c in (s2, p):
        c.loop_stop()


def test_paho_v5_shared_subscription(broker):
    """$share/g/...: each message goes to exactly one of two paho v5 members."""
    b = broker()
    a = paho5(b, "shA")
    c = paho5(b, "shB")
    subscribe(a, "$share/grp/sh5/t")
    subscribe(c, "$share/grp/sh5/t")
    p = paho5(b, "shP")
    for i in range(10):
        p.publish("sh5/t", b"%d" % i, qos=1).wait_for_publish(10)
    got = []
    while len(got) < 10:
        for q in (a.inbox, c.inbox):
            try:
                got.append(q.get(timeout=0.2).payload)
            except queue.Empty:
                pass
    assert sorted(got) == sorted(b"%d" % i for i in range(10))
    assert a.inbox.qsize() == 0 and c.inbox.qsize() == 0
    for x in (a, c, p):
        x.loop_stop()


def test_mosquitto_clients_v5_user_property_and_rr(broker):
    """mosquitto_pub -V 5 -D user-property reaches a paho v5 subscriber; mosquitto_rr gets the
    reply of a paho responder through Response Topic / Correlation Data."""
    b = broker()
    s = paho5(b, "mq5s")
    subscribe(s, "mq5/#")
    subprocess.run(["mosquitto_pub", "-V", "5", "-p", str(b.port), "-t", "mq5/t", "-m", "hi",
                    "-q", "1", "-D", "PUBLISH", "user-property", "who", "mosquitto"],
                   check=True, timeout=20)
    m = s.inbox.get(timeout=10)
    assert m.properties.UserProperty == [("who", "mosquitto")]
    if not shutil.which("mosquitto_rr"):
        pytest.skip("mosquitto_rr not installed")

    def respond(cl, u, msg):
        if msg.topic == "mq5/req":
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = msg.properties.CorrelationData if hasattr(
                msg.properties, "CorrelationData") else b""
            cl.publish(msg.properties.ResponseTopic, b"pong:" + msg.payload, qos=1,
                       properties=props)

    r = paho5(b, "mq5responder", on_message=respond)
    subscribe(r, "mq5/req")
    out = subprocess.run(["mosquitto_rr", "-V", "5", "-p", str(b.port), "-t", "mq5/req", "-e",
                          "mq5/resp", "-m", "ping", "-W", "10"], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pong:ping"
    for x in (s, r):
        x.loop_stop()


def test_mosquitto_sub_v5_shared(broker):
    b = broker()
    sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-V", "5", "-p", str(b.port),
                            "-t", "$share/g/ms5/t", "-C", "3", "-W", "20", "-d"],
                           stdout=subprocess.PIPE, text=True)
    # wait for the SUBACK line (-d, line-buffered), then publish
    while True:
        line = sub.stdout.readline()
        assert line, "mosquitto_sub exited before its SUBACK"
        if "SUBACK" in line:
            break
    for i in range(3):
        subprocess.run(["mosquitto_pub", "-V", "5", "-p", str(b.port), "-t", "ms5/t", "-m",
                        f"m{i}"], check=True, timeout=20)
    out = sub.stdout.read()
    sub.wait(20)
    payloads = [l for l in out.splitlines() if l.startswith("m")]
    assert payloads == ["m0", "m1", "m2"]


def test_mqttjs_v5_properties_and_topic_alias(broker):
    """MQTT.js v5: user properties, response topic, correlation data, and a topic alias used by
    the publisher (the second message is sent by alias only)."""
    if not shutil.which("node") or not os.path.isdir(os.path.join(HERE, "node_modules", "mqtt")):
        if os.environ.get("CI"):
            pytest.fail("MQTT.js is not installed (scripts/deps.sh test installs it)")
        pytest.skip("MQTT.js not installed")
    b = broker()
    out = subprocess.run(["node", os.path.join(HERE, "js", "v5.js"),
                          json.dumps({"host": b.host, "port": b.port, "timeout": 20})],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert [g["payload"] for g in got] == ["one", "two"]
    assert all(g["topic"] == "js5/t" for g in got), "alias must resolve to the topic"
    assert got[0]["props"]["userProperties"] == {"a": "1", "b": "2"}
    assert got[0]["props"]["responseTopic"] == "js5/resp"
