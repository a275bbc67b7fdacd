"""mosquitto_pub / mosquitto_sub (Debian's mosquitto-clients) against the broker, speaking
MQTT 3.1 (-V mqttv31) and 3.1.1 (-V mqttv311): QoS 0/1/2, retained (-r), wills, -C."""
import pytest

VERSIONS = [pytest.param(3, id="mqttv31"), pytest.param(4, id="mqttv311")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_each_qos(clients, version, qos):
    """mosquitto_sub -C 4 exits 0 after exactly the four messages mosquitto_pub -l sent, in
    order, at the publish QoS."""
    sub = clients.mosquitto_sub(["mosq/qos/#"], qos=2, version=version, count=4).ready()
    payloads = [f"line {i} with spaces" for i in range(4)]
    clients.mosquitto_pub(f"mosq/qos/{qos}", payloads, qos=qos, version=version)
    assert sub.all_until_exit() == [(f"mosq/qos/{qos}", p.encode(), qos, False)
                                    for p in payloads]


@pytest.mark.parametrize("pub_version,sub_version", [(3, 4), (4, 3)], ids=["31to311", "311to31"])
def test_between_protocol_versions(clients, pub_version, sub_version):
    sub = clients.mosquitto_sub(["mosq/mixed"], qos=1, version=sub_version, count=1).ready()
    clients.mosquitto_pub("mosq/mixed", ["across versions"], qos=2, version=pub_version)
    assert sub.all_until_exit() == [("mosq/mixed", b"across versions", 1, False)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained_delivered_to_new_subscriber_and_cleared(clients, version):
    clients.mosquitto_pub("mosq/ret/a", ["kept"], qos=1, retain=True, version=version)
    first = clients.mosquitto_sub(["mosq/ret/+"], qos=2, version=version, count=1)
    assert first.all_until_exit() == [("mosq/ret/a", b"kept", 1, True)]

    clients.mosquitto_pub("mosq/ret/a", [None], qos=1, retain=True, version=version)  # clear
    clients.mosquitto_pub("mosq/ret/b", ["still here"], qos=0, retain=True, version=version)
    second = clients.mosquitto_sub(["mosq/ret/+"], qos=2, version=version, count=2).ready()
    # a live marker after the SUBACK comes after every retained message of the subscription
    clients.mosquitto_pub("mosq/ret/z", ["marker"], qos=0, version=version)
    assert second.all_until_exit() == [("mosq/ret/b", b"still here", 0, True),
                                       ("mosq/ret/z", b"marker", 0, False)]


def test_retained_with_wildcard_subscription_gets_every_topic(clients):
    topics = ["mosq/tree/a", "mosq/tree/a/b", "mosq/tree/c/d/e"]
    for t in topics:
        clients.mosquitto_pub(t, [t.upper()], qos=1, retain=True)
    sub = clients.mosquitto_sub(["mosq/tree/#"], qos=1, count=3)
    got = sub.all_until_exit()
    assert sorted(got) == sorted((t, t.upper().encode(), 1, True) for t in topics)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_on_killed_client(clients, version, will_qos):
    """The will of a client killed with SIGKILL (no DISCONNECT) reaches a subscriber."""
    sub = clients.mosquitto_sub(["mosq/will/#"], qos=2, version=version).ready()
    holder = clients.mosquitto_will("mosq/will/holder", "holder vanished", will_qos=will_qos,
                                    version=version)
    holder.kill()
    assert sub.messages(1) == [("mosq/will/holder", b"holder vanished", will_qos, False)]


def test_retained_will(clients):
    holder = clients.mosquitto_will("mosq/will/state", "dead", will_qos=1, will_retain=True)
    watcher = clients.mosquitto_sub(["mosq/will/state"], qos=1).ready()
    holder.kill()
    assert watcher.messages(1)[0][:3] == ("mosq/will/state", b"dead", 1)
    late = clients.mosquitto_sub(["mosq/will/state"], qos=1, count=1)
    assert late.all_until_exit() == [("mosq/will/state", b"dead", 1, True)]


def test_subscriber_count_and_many_messages(clients):
    """-C 200 at QoS 1: 200 messages from one mosquitto_pub -l, nothing lost, in order."""
    sub = clients.mosquitto_sub(["mosq/many"], qos=1, count=200).ready()
    payloads = [f"m{i:04d}" for i in range(200)]
    clients.mosquitto_pub("mosq/many", payloads, qos=1)
    assert [p for _, p, _, _ in sub.all_until_exit()] == [p.encode() for p in payloads]
