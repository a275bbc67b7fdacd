"""paho-mqtt (Debian's python3-paho-mqtt) against the broker: QoS 0/1/2 both ways over MQTT 3.1
and 3.1.1, retained messages, wills, persistent sessions."""
import pytest

from interop_clients import paho_abnormal_close_with_will

VERSIONS = [pytest.param(3, id="mqttv31"), pytest.param(4, id="mqttv311")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_each_qos_in_order(clients, version, qos):
    """Messages arrive once, in publish order, at the publish QoS [MQTT-4.6.0-2]."""
    sub = clients.paho("paho-sub", version=version)
    sub.subscribe(["paho/qos/#"], qos=2)
    pub = clients.paho("paho-pub", version=version)
    for i in range(5):
        pub.publish(f"paho/qos/{qos}", f"message {i}", qos=qos)
    assert sub.messages(5) == [(f"paho/qos/{qos}", f"message {i}".encode(), qos, False)
                               for i in range(5)]


@pytest.mark.parametrize("sub_qos", [0, 1])
def test_delivery_qos_is_the_minimum_of_publish_and_subscription(clients, sub_qos):
    """[MQTT-3.8.4-6]: a QoS 2 publish reaches a QoS 0/1 subscription at that QoS."""
    sub = clients.paho("paho-sub")
    sub.subscribe(["paho/min"], qos=sub_qos)
    clients.paho("paho-pub").publish("paho/min", b"x", qos=2)
    assert sub.messages(1) == [("paho/min", b"x", sub_qos, False)]


def test_binary_and_empty_payloads(clients):
    sub = clients.paho("paho-sub")
    sub.subscribe(["paho/bin"], qos=1)
    pub = clients.paho("paho-pub")
    blob = bytes(range(256)) * 256  # 64 KiB, every byte value
    pub.publish("paho/bin", blob, qos=1)
    pub.publish("paho/bin", b"", qos=1)
    assert sub.messages(2) == [("paho/bin", blob, 1, False), ("paho/bin", b"", 1, False)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_message_replaced_and_cleared(clients, version):
    """A new subscription gets the last retained message with RETAIN set [MQTT-3.3.1-6]; a
    live delivery to an existing subscription has RETAIN clear [MQTT-3.3.1-9]; an empty
    retained message clears it [MQTT-3.3.1-10]."""
    pub = clients.paho("paho-pub", version=version)
    live = clients.paho("paho-live", version=version)
    live.subscribe(["paho/ret/#"], qos=1)
    pub.publish("paho/ret/a", b"first", qos=1, retain=True)
    pub.publish("paho/ret/a", b"second", qos=1, retain=True)
    assert live.messages(2) == [("paho/ret/a", b"first", 1, False),
                                ("paho/ret/a", b"second", 1, False)]

    late = clients.paho("paho-late", version=version)
    late.subscribe(["paho/ret/a"], qos=2)
    assert late.messages(1) == [("paho/ret/a", b"second", 1, True)]

    pub.publish("paho/ret/a", b"", qos=1, retain=True)
    pub.publish("paho/ret/b", b"other", qos=1, retain=True)
    later = clients.paho("paho-later", version=version)
    later.subscribe(["paho/ret/#"], qos=1)
    # retained messages are queued when the SUBSCRIBE is handled, so a marker published after
    # the SUBACK comes after all of them on this connection: "a" must not be among them
    pub.publish("paho/ret/z", b"marker", qos=1)
    assert later.messages(2) == [("paho/ret/b", b"other", 1, True),
                                 ("paho/ret/z", b"marker", 1, False)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_published_on_abnormal_close(clients, version, will_qos):
    """[MQTT-3.1.2-8]: the will is published when the network connection closes without a
    DISCONNECT."""
    sub = clients.paho("paho-sub", version=version)
    sub.subscribe(["paho/will/#"], qos=2)
    paho_abnormal_close_with_will(clients.broker, "paho-will",
                                  ("paho/will/gone", b"client died", will_qos, False), version)
    assert sub.messages(1) == [("paho/will/gone", b"client died", will_qos, False)]


def test_retained_will_reaches_later_subscribers(clients):
    paho_abnormal_close_with_will(clients.broker, "paho-will",
                                  ("paho/will/status", b"offline", 1, True))
    # the will is published when the broker notices the close; a subscriber made afterwards
    # must see it retained (wait for it rather than assuming it is already there)
    watcher = clients.paho("paho-watch")
    watcher.subscribe(["paho/will/status"], qos=1)
    got = watcher.messages(1)
    assert got[0][:3] == ("paho/will/status", b"offline", 1)
    late = clients.paho("paho-late")
    late.subscribe(["paho/will/status"], qos=1)
    assert late.messages(1) == [("paho/will/status", b"offline", 1, True)]


def test_no_will_after_clean_disconnect(clients):
    """[MQTT-3.14.4-3]: DISCONNECT discards the will."""
    sub = clients.paho("paho-sub")
    sub.subscribe(["paho/will/#"], qos=1)
    leaver = clients.paho("paho-leaver", will=("paho/will/leaver", b"should not appear", 1, False))
    leaver.close()
    # once paho's close() returned, the DISCONNECT was written; a later publish on another
    # connection is the marker: only it may arrive
    clients.paho("paho-pub").publish("paho/will/marker", b"marker", qos=1)
    assert sub.messages(1) == [("paho/will/marker", b"marker", 1, False)]


def test_persistent_session_receives_what_was_published_while_offline(clients):
    """clean_session=False: subscriptions and QoS 1/2 messages survive the disconnection
    [MQTT-3.1.2-4] [MQTT-3.1.2-5]; CONNACK says session present [MQTT-3.2.2-2]."""
    first = clients.paho("paho-durable", clean=False)
    assert not first.session_present
    first.subscribe(["paho/offline/#"], qos=2)
    first.close()
    pub = clients.paho("paho-pub")
    for i in range(3):
        pub.publish("paho/offline/x", f"while away {i}", qos=1 + i % 2)
    again = clients.paho("paho-durable", clean=False)
    assert again.session_present
    # paho hands a QoS 2 message over at PUBREL, so across QoS levels the order is paho's
    got = sorted(again.messages(3))
    assert [(t, p, q) for t, p, q, _ in got] == [("paho/offline/x", f"while away {i}".encode(),
                                                  1 + i % 2) for i in range(3)]
