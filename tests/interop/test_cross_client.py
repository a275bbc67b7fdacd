"""Different client implementations talking to each other through the broker: what one
publishes, every other one receives with the right QoS, RETAIN flag and payload."""
import pytest

from interop_clients import paho_abnormal_close_with_will


@pytest.mark.usefixtures("mqttjs")
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_publishes_mosquitto_sub_and_mqttjs_receive(clients, qos):
    mosq = clients.mosquitto_sub(["x/paho/#"], qos=2, count=3).ready()
    js = clients.mqttjs_sub(["x/paho/+"], qos=2, count=3).ready()
    pub = clients.paho("x-paho-pub")
    for i in range(3):
        pub.publish(f"x/paho/{i}", f"from paho {i}", qos=qos)
    expected = [(f"x/paho/{i}", f"from paho {i}".encode(), qos, False) for i in range(3)]
    assert mosq.all_until_exit() == expected
    assert js.all_until_exit() == expected


@pytest.mark.usefixtures("mqttjs")
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqttjs_publishes_paho_and_mosquitto_sub_receive(clients, qos):
    paho = clients.paho("x-paho-sub")
    paho.subscribe(["x/js/#"], qos=2)
    mosq = clients.mosquitto_sub(["x/js/#"], qos=2, version=3, count=3).ready()
    msgs = [(f"x/js/{i}", f"from MQTT.js {i}", qos, False) for i in range(3)]
    clients.mqttjs_pub(msgs)
    expected = [(t, p.encode(), q, False) for t, p, q, _ in msgs]
    assert paho.messages(3) == expected
    assert mosq.all_until_exit() == expected


@pytest.mark.usefixtures("mqttjs")
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_pub_31_publishes_paho_and_mqttjs_receive(clients, qos):
    paho = clients.paho("x-paho-sub")
    paho.subscribe(["x/mosq"], qos=2)
    js = clients.mqttjs_sub(["x/mosq"], qos=2, version=3, count=2).ready()
    clients.mosquitto_pub("x/mosq", ["one", "two"], qos=qos, version=3)
    expected = [("x/mosq", b"one", qos, False), ("x/mosq", b"two", qos, False)]
    assert paho.messages(2) == expected
    assert js.all_until_exit() == expected


@pytest.mark.usefixtures("mqttjs")
def test_retained_from_each_client_seen_by_the_others(clients):
    clients.mosquitto_pub("x/ret/mosq", ["by mosquitto_pub"], qos=1, retain=True)
    clients.mqttjs_pub([("x/ret/js", "by MQTT.js", 2, True)])
    clients.paho("x-paho-pub").publish("x/ret/paho", b"by paho", qos=0, retain=True)
    expected = sorted([("x/ret/mosq", b"by mosquitto_pub", 1, True),
                       ("x/ret/js", b"by MQTT.js", 2, True),
                       ("x/ret/paho", b"by paho", 0, True)])
    paho = clients.paho("x-paho-sub")
    paho.subscribe(["x/ret/#"], qos=2)
    assert sorted(paho.messages(3)) == expected
    assert sorted(clients.mosquitto_sub(["x/ret/#"], qos=2, count=3).all_until_exit()) == expected
    assert sorted(clients.mqttjs_sub(["x/ret/#"], qos=2, count=3).all_until_exit()) == expected


@pytest.mark.usefixtures("mqttjs")
def test_wills_cross_clients(clients):
    """Wills of a killed MQTT.js client, a killed mosquitto_sub and a paho client whose socket
    was closed all reach subscribers of the other two implementations."""
    paho = clients.paho("x-paho-sub")
    paho.subscribe(["x/will/#"], qos=2)
    mosq = clients.mosquitto_sub(["x/will/#"], qos=2, count=3).ready()
    js = clients.mqttjs_sub(["x/will/#"], qos=2, count=3).ready()

    clients.mqttjs_will("x/will/js", "js gone", will_qos=2).kill()
    clients.mosquitto_will("x/will/mosq", "mosq gone", will_qos=1).kill()
    paho_abnormal_close_with_will(clients.broker, "x-paho-will", ("x/will/paho", b"paho gone",
                                                                  0, False))
    expected = sorted([("x/will/js", b"js gone", 2, False),
                       ("x/will/mosq", b"mosq gone", 1, False),
                       ("x/will/paho", b"paho gone", 0, False)])
    assert sorted(paho.messages(3)) == expected
    assert sorted(mosq.all_until_exit()) == expected
    assert sorted(js.all_until_exit()) == expected
