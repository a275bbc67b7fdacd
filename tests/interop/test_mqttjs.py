"""MQTT.js (npm `mqtt`, version pinned in tests/interop/package.json) against the broker over
MQTT 3.1 and 3.1.1: QoS 0/1/2, retained messages, wills."""
import pytest

pytestmark = pytest.mark.usefixtures("mqttjs")

VERSIONS = [pytest.param(3, id="mqttv31"), pytest.param(4, id="mqttv311")]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_each_qos(clients, version, qos):
    sub = clients.mqttjs_sub(["js/qos/+"], qos=2, version=version, count=3).ready()
    msgs = [(f"js/qos/{qos}", f"js message {i}", qos, False) for i in range(3)]
    clients.mqttjs_pub(msgs, version=version)
    assert sub.all_until_exit() == [(t, p.encode(), q, False) for t, p, q, _ in msgs]


def test_subscription_qos_caps_delivery(clients):
    sub = clients.mqttjs_sub(["js/cap"], qos=1, count=1).ready()
    clients.mqttjs_pub([("js/cap", "qos 2 sent", 2, False)])
    assert sub.all_until_exit() == [("js/cap", b"qos 2 sent", 1, False)]


@pytest.mark.parametrize("version", VERSIONS)
def test_retained(clients, version):
    clients.mqttjs_pub([("js/ret/a", "old", 1, True), ("js/ret/a", "new", 2, True),
                        ("js/ret/b", "b", 0, True), ("js/ret/b", "", 1, True)], version=version)
    sub = clients.mqttjs_sub(["js/ret/#"], qos=2, version=version, count=2).ready()
    clients.mqttjs_pub([("js/ret/z", "marker", 1, False)], version=version)
    assert sub.all_until_exit() == [("js/ret/a", b"new", 2, True),
                                    ("js/ret/z", b"marker", 1, False)]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_on_killed_client(clients, version, will_qos):
    sub = clients.mqttjs_sub(["js/will/#"], qos=2, version=version, count=1).ready()
    holder = clients.mqttjs_will("js/will/gone", "js client died", will_qos=will_qos,
                                 version=version)
    holder.kill()
    assert sub.all_until_exit() == [("js/will/gone", b"js client died", will_qos, False)]


def test_no_will_after_clean_end(clients):
    sub = clients.mqttjs_sub(["js/will/#"], qos=1, count=1).ready()
    holder = clients.mqttjs_will("js/will/gone", "must not appear", will_qos=1)
    holder.send_line("bye")
    assert holder.finish() == 0 and "done" in holder.lines
    clients.mqttjs_pub([("js/will/marker", "marker", 1, False)])
    assert sub.all_until_exit() == [("js/will/marker", b"marker", 1, False)]
