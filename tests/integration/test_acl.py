"""ACLs in Mosquitto's acl_file format: checked on SUBSCRIBE (v5 0x87, v3 0x80), on PUBLISH
(v5 0x87 in PUBACK/PUBREC; v3 acknowledged but not delivered) and on delivery (wildcards and
retained messages included); %c / %u patterns; anonymous rules; SIGHUP reload."""
import signal
import subprocess
import time

import pytest

from ternlib import (CONNACK, PUBACK, PUBLISH, SUBACK, RawClient, connect, parse_publish,
                     publish, subscribe)

pytestmark = pytest.mark.ternd_only

ACL = """
# anonymous clients: may only read the public tree
topic read public/#

user device1
topic write sensors/device1/data
topic read commands/device1/#

user admin
topic readwrite #
topic deny admin/secret

pattern readwrite clients/%c/#
pattern read users/%u/inbox
"""


@pytest.fixture
def secured(broker, tmp_path):
    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "device1", "d1"], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "admin", "ad"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    b = broker(f"password_file {pw}\nacl_file {acl}\nallow_anonymous true")
    b.acl_path = acl
    return b


def client(b, cid, user=None, pw=None, level=4):
    c = RawClient(b.host, b.port)
    c.send(connect(cid, username=user, password=pw, proto_level=level,
                   props=b"" if level == 5 else b""))
    _, body = c.expect(CONNACK)
    assert body[1] == 0
    return c


def suback_codes(c, flt, qos=0, level=4, pid=1):
    c.send(subscribe(pid, [(flt, qos)], props=b"" if level == 5 else None))
    _, body = c.expect(SUBACK)
    return list(body[3:] if level == 5 else body[2:])


def test_device_example_exactly(secured):
    """device1 may publish only sensors/device1/data and read only commands/device1/#; a
    denied 3.1.1 PUBLISH is acknowledged and not delivered [MQTT-3.3.5-2]."""
    b = secured
    admin = client(b, "adm", "admin", "ad")
    assert suback_codes(admin, "#") == [0]
    d = client(b, "dev1", "device1", "d1")
    assert suback_codes(d, "commands/device1/#", pid=1) == [0]
    assert suback_codes(d, "commands/#", pid=2) == [0x80]
    assert suback_codes(d, "sensors/device1/data", pid=3) == [0x80]
    d.send(publish("sensors/device1/data", b"ok", qos=1, pid=5))
    d.expect(PUBACK)
    flags, body = admin.expect(PUBLISH)
    assert parse_publish(flags, body)["topic"] == "sensors/device1/data"
    # v3.1.1: a forbidden QoS 1 publish is acknowledged but not delivered
    d.send(publish("sensors/device2/data", b"no", qos=1, pid=6))
    d.expect(PUBACK)
    admin.no_packet(0.5)
    admin.send(publish("commands/device1/reboot", b"now"))
    admin.send(publish("commands/device2/reboot", b"not for you"))
    flags, body = d.expect(PUBLISH)
    assert parse_publish(flags, body)["topic"] == "commands/device1/reboot"
    d.no_packet(0.5)


def test_v5_reason_codes(secured):
    """v5: SUBACK 0x87 and PUBACK 0x87 for denied operations."""
    b = secured
    d = client(b, "dev5", "device1", "d1", level=5)
    assert suback_codes(d, "other/#", level=5) == [0x87]
    d.send(publish("sensors/x", b"no", qos=1, pid=2, props=b""))
    _, body = d.expect(PUBACK)
    assert body[2] == 0x87


def test_delivery_filtered_through_wildcards_and_retained(secured):
    """A subscriber never receives a message it may not read: deny rules inside a granted
    wildcard, and retained messages too."""
    b = secured
    admin = client(b, "adm2", "admin", "ad")
    admin.send(publish("admin/secret", b"s", retain=True))
    admin.send(publish("admin/open", b"o", retain=True))
    sub = client(b, "adm3", "admin", "ad")
    assert suback_codes(sub, "admin/#") == [0]
    flags, body = sub.expect(PUBLISH)
    assert parse_publish(flags, body)["topic"] == "admin/open"
    sub.no_packet(0.5)
    admin.send(publish("admin/secret", b"live"))
    admin.send(publish("admin/open", b"live"))
    flags, body = sub.expect(PUBLISH)
    assert parse_publish(flags, body)["payload"] == b"live"
    assert parse_publish(flags, body)["topic"] == "admin/open"
    sub.no_packet(0.5)


def test_patterns_and_anonymous(secured):
    """%c and %u patterns; anonymous clients only get the anonymous section (no %u)."""
    b = secured
    admin = client(b, "adm4", "admin", "ad")
    anon = client(b, "anon1")
    assert suback_codes(anon, "public/#", pid=1) == [0]
    assert suback_codes(anon, "clients/anon1/#", pid=2) == [0]
    assert suback_codes(anon, "clients/other/#", pid=3) == [0x80]
    assert suback_codes(anon, "users/anon1/inbox", pid=4) == [0x80]
    d = client(b, "dev7", "device1", "d1")
    assert suback_codes(d, "users/device1/inbox") == [0]
    admin.send(publish("public/news", b"n"))
    flags, body = anon.expect(PUBLISH)
    assert parse_publish(flags, body)["topic"] == "public/news"


def test_wildcard_client_id_cannot_widen_pattern(broker, tmp_path):
    """A client id containing '+' or '#' must not turn clients/%c/# into a wildcard."""
    acl = tmp_path / "acl"
    acl.write_text("pattern readwrite clients/%c/#\n")
    b = broker(f"acl_file {acl}\nallow_anonymous true")
    c = client(b, "+")
    assert suback_codes(c, "clients/+/#") == [0x80]


def test_acl_reload_is_transactional(secured):
    """SIGHUP applies a new ACL to new operations; an invalid file keeps the old rules and
    nobody is disconnected."""
    b = secured
    d = client(b, "dev8", "device1", "d1")
    assert suback_codes(d, "extra/#", pid=1) == [0x80]
    b.acl_path.write_text(ACL + "\nuser device1\ntopic read extra/#\n")
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "configuration reloaded" not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    assert suback_codes(d, "extra/#", pid=2) == [0]
    b.acl_path.write_text("topic bogus-access x\n")
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "acl_file" not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    assert "not reloaded" in b.stderr_text()
    assert suback_codes(d, "extra/#", pid=3) == [0], "old rules stay after an invalid reload"
