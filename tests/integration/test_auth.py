"""Authentication: mosquitto_passwd-compatible password files, anonymous rules, and MQTT 5
enhanced authentication with SCRAM-SHA-256 (CONNECT exchange and re-authentication).
Password files are made at run time by Debian's mosquitto_passwd and, for SCRAM verifiers,
by the test (RFC 5802 arithmetic, independent of ternd's code)."""
import base64
import hashlib
import hmac
import os
import signal
import subprocess

import pytest

from ternlib import (AUTH, CONNACK, DISCONNECT, RawClient, connect, mqtt_str, packet,
                     varint)

pytestmark = pytest.mark.ternd_only


def scram_verifier(password, salt=b"0123456789abcdef", iterations=4096):
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    return f"$scram-sha-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


@pytest.fixture
def pwfile(tmp_path):
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "alice", "secret"], check=True)
    subprocess.run(["mosquitto_passwd", "-H", "sha512", "-b", str(path), "bob", "hunter2"],
                   check=True)
    with open(path, "a") as f:
        f.write(f"carol:{scram_verifier('pencil')}\n")
    return path


def connack_rc(b, **kw):
    c = RawClient(b.host, b.port)
    c.send(connect(**kw))
    _, body = c.expect(CONNACK)
    return c, body[1]


def test_password_file_pbkdf2_sha512_and_scram_entries(broker, pwfile):
    """mosquitto_passwd $7$ (PBKDF2-SHA512) and $6$ (SHA512) hashes and SCRAM verifiers all
    check plain MQTT passwords; a wrong password gets CONNACK 4 (v3) / 0x86 (v5)."""
    b = broker(f"password_file {pwfile}\nallow_anonymous false")
    for user, pw in (("alice", "secret"), ("bob", "hunter2"), ("carol", "pencil")):
        c, rc = connack_rc(b, client_id=f"ok-{user}", username=user, password=pw)
        assert rc == 0, user
    _, rc = connack_rc(b, client_id="bad1", username="alice", password="nope")
    assert rc == 4
    _, rc = connack_rc(b, client_id="bad2", username="nobody", password="x")
    assert rc == 4
    _, rc = connack_rc(b, client_id="bad3", username="alice", password="nope", proto_level=5)
    assert rc == 0x86
    assert "nope" not in b.stderr_text(), "passwords must never be logged"


def test_anonymous_refused_without_username(broker, pwfile):
    """allow_anonymous false: a client without user name gets CONNACK 5 (v3) / 0x87 (v5)."""
    b = broker(f"password_file {pwfile}\nallow_anonymous false")
    _, rc = connack_rc(b, client_id="anon")
    assert rc == 5
    _, rc = connack_rc(b, client_id="anon5", proto_level=5)
    assert rc == 0x87


def test_username_without_password_file_is_anonymous(broker):
    """With allow_anonymous false and no password file, a user name proves nothing."""
    b = broker("allow_anonymous false")
    _, rc = connack_rc(b, client_id="u", username="alice", password="whatever")
    assert rc == 5


def test_password_file_reload_on_sighup(broker, tmp_path, pwfile):
    """SIGHUP re-reads the password file; an invalid file keeps the old one."""
    conf_extra = f"password_file {pwfile}\nallow_anonymous false"
    b = broker(conf_extra)
    _, rc = connack_rc(b, client_id="d1", username="dave", password="pw")
    assert rc == 4
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "dave", "pw"], check=True)
    b.signal(signal.SIGHUP)
    # the reload is asynchronous: wait for its log line (an event), not for time
    deadline_text = "configuration reloaded"
    import time
    end = time.monotonic() + 5
    while deadline_text not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()  # a round trip through the broker per check
    _, rc = connack_rc(b, client_id="d2", username="dave", password="pw")
    assert rc == 0
    with open(pwfile, "a") as f:
        f.write("broken line without colon\n")
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "not reloaded" not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    assert "not reloaded" in b.stderr_text()
    _, rc = connack_rc(b, client_id="d3", username="dave", password="pw")
    assert rc == 0, "an invalid file must keep the previous users"


# ---- SCRAM-SHA-256 enhanced authentication ----

def _props(*items):
    out = b""
    for pid, val in items:
        out += bytes([pid]) + mqtt_str(val)
    return out


def _parse_auth(body):
    rc = body[0]
    n, plen, mult = 1, 0, 1
    while True:
        d = body[n]
        plen += (d & 127) * mult
        mult *= 128
        n += 1
        if not d & 128:
            break
    raw, i, props = body[n:n + plen], 0, {}
    while i < len(raw):
        pid = raw[i]
        ln = int.from_bytes(raw[i + 1:i + 3], "big")
        props[pid] = raw[i + 3:i + 3 + ln]
        i += 3 + ln
    return rc, props


def _scram_client(user, password):
    cnonce = base64.b64encode(os.urandom(12)).decode()
    first_bare = f"n={user},r={cnonce}"
    state = {"first_bare": first_bare, "password": password, "cnonce": cnonce}
    return ("n,," + first_bare).encode(), state


def _scram_final(state, server_first):
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    assert attrs["r"].startswith(state["cnonce"])
    salted = hashlib.pbkdf2_hmac("sha256", state["password"].encode(),
                                 base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_msg = f"{state['first_bare']},{server_first},{without_proof}".encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    state["expect_v"] = base64.b64encode(hmac.new(server_key, auth_msg, "sha256").digest())
    return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def _auth_packet(rc, data):
    props = _props((0x15, "SCRAM-SHA-256"), (0x16, data))
    return packet(0xF0, bytes([rc]) + varint(len(props)) + props)


def test_v5_scram_sha256_connect_and_reauthenticate(broker, pwfile):
    """[MQTT-4.12.0-2] [MQTT-4.12.0-3] AUTH 0x18 continues the exchange; CONNACK 0 carries the server-final
    message (verified by the client); [MQTT-4.12.1-1] re-authentication with AUTH 0x19 ends in
    AUTH 0x00."""
    b = broker(f"password_file {pwfile}\nallow_anonymous false")
    first, st = _scram_client("carol", "pencil")
    c = RawClient(b.host, b.port)
    c.send(connect("scram1", proto_level=5, props=_props((0x15, "SCRAM-SHA-256"), (0x16, first))))
    _, body = c.expect(AUTH)
    rc, p = _parse_auth(body)
    assert rc == 0x18 and p[0x15] == b"SCRAM-SHA-256"
    c.send(_auth_packet(0x18, _scram_final(st, p[0x16].decode())))
    _, body = c.expect(CONNACK)
    assert body[1] == 0
    _, cp = _parse_auth(body[1:])
    assert cp[0x16] == b"v=" + st["expect_v"], "server signature must prove the server"
    # re-authentication
    first, st = _scram_client("carol", "pencil")
    c.send(_auth_packet(0x19, first))
    _, body = c.expect(AUTH)
    rc, p = _parse_auth(body)
    assert rc == 0x18
    c.send(_auth_packet(0x18, _scram_final(st, p[0x16].decode())))
    _, body = c.expect(AUTH)
    rc, p = _parse_auth(body)
    assert rc == 0x00 and p[0x16] == b"v=" + st["expect_v"]


def test_v5_scram_wrong_password_refused(broker, pwfile):
    """A wrong SCRAM proof: CONNACK 0x86 and close [MQTT-4.12.0-4]; unknown users look the
    same."""
    b = broker(f"password_file {pwfile}")
    for user in ("carol", "nobody"):
        first, st = _scram_client(user, "wrong")
        c = RawClient(b.host, b.port)
        c.send(connect("scram2", proto_level=5,
                       props=_props((0x15, "SCRAM-SHA-256"), (0x16, first))))
        _, body = c.expect(AUTH)
        _, p = _parse_auth(body)
        c.send(_auth_packet(0x18, _scram_final(st, p[0x16].decode())))
        seen = c.expect_closed()
        assert seen[0][0] == CONNACK and seen[0][2][1] == 0x86


def test_v5_unknown_auth_method_0x8c(broker, pwfile):
    """[MQTT-4.12.0-1] an authentication method the server does not support: 0x8C."""
    b = broker(f"password_file {pwfile}")
    c = RawClient(b.host, b.port)
    c.send(connect("m", proto_level=5, props=_props((0x15, "KERBEROS"))))
    _, body = c.expect(CONNACK)
    assert body[1] == 0x8C


def test_v5_non_auth_packet_during_exchange_is_protocol_error(broker, pwfile):
    """During the AUTH exchange only AUTH (or DISCONNECT) may come."""
    b = broker(f"password_file {pwfile}")
    first, _ = _scram_client("carol", "pencil")
    c = RawClient(b.host, b.port)
    c.send(connect("x", proto_level=5, props=_props((0x15, "SCRAM-SHA-256"), (0x16, first))))
    c.expect(AUTH)
    c.send(packet(0xC0))
    seen = c.expect_closed()
    assert seen[0][0] == CONNACK and seen[0][2][1] == 0x82
