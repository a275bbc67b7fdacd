"""TLS listeners with real OpenSSL: certificates made by the test at run time with the openssl
command; clients are mosquitto_pub/mosquitto_sub, paho-mqtt and openssl s_client."""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

import pytest

from ternlib import CONNACK, PUBLISH, SUBACK, RawClient, connect, parse_publish, publish, subscribe

sys.path.insert(0, "/usr/lib/python3/dist-packages")

pytestmark = pytest.mark.ternd_only


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, timeout=30, **kw)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    def run_here(*args):
        return run(*args, cwd=d)

    run_here("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
        "ca.pem", "-days", "2", "-subj", "/CN=Tern Test CA")
    (d / "index.txt").write_text("")
    (d / "ca.cnf").write_text(
        "[ca]\ndefault_ca=c\n[c]\ndatabase=index.txt\ncrlnumber=crlnumber\n"
        "default_md=sha256\ndefault_crl_days=2\n")
    (d / "crlnumber").write_text("01\n")

    def issue(name, cn, san=None):
        run_here("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}")
        ext = []
        if san:
            (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
            ext = ["-extfile", f"{name}.ext"]
        run_here("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *ext)

    issue("server", "localhost", "DNS:localhost,IP:127.0.0.1")
    issue("server2", "localhost", "DNS:localhost,IP:127.0.0.1")
    issue("device1", "device1")
    issue("revoked", "revoked")
    run_here("openssl", "ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-revoke",
        "revoked.pem")
    run_here("openssl", "ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.pem", "-gencrl",
        "-out", "crl.pem")
    return d


def tls_conf(pki, extra=""):
    return (f"certfile {pki}/server.pem\nkeyfile {pki}/server.key\ncafile {pki}/ca.pem\n"
            + extra)


def tls_socket(b, pki, cert=None, min_version=None, max_version=None):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if cert:
        ctx.load_cert_chain(str(pki / f"{cert}.pem"), str(pki / f"{cert}.key"))
    if min_version:
        ctx.minimum_version = min_version
    if max_version:
        ctx.maximum_version = max_version
    raw = socket.create_connection((b.host, b.port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


class TlsClient(RawClient):
    """RawClient over an already connected TLS socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.pending = []


def mqtt_over(sock, cid, **kw):
    c = TlsClient(sock)
    c.send(connect(cid, **kw))
    _, body = c.expect(CONNACK)
    return c, body[1]


def test_mosquitto_clients_over_tls(broker, pki):
    """mosquitto_pub/mosquitto_sub with --cafile exchange QoS 1 messages over TLS."""
    b = broker(tls_conf(pki))
    sub = subprocess.Popen(["mosquitto_sub", "-h", "localhost", "-p", str(b.port), "--cafile",
                            str(pki / "ca.pem"), "-t", "tls/#", "-q", "1", "-C", "1", "-v",
                            "-W", "10"], stdout=subprocess.PIPE, text=True)
    # the subscription is in place once the $SYS-free topic shows up: publish until received
    end = time.monotonic() + 10
    while sub.poll() is None and time.monotonic() < end:
        run("mosquitto_pub", "-h", "localhost", "-p", str(b.port), "--cafile",
            str(pki / "ca.pem"), "-t", "tls/x", "-m", "secure", "-q", "1")
        try:
            sub.wait(0.2)
        except subprocess.TimeoutExpired:
            pass
    out, _ = sub.communicate(timeout=10)
    assert "tls/x secure" in out


def test_paho_over_tls(broker, pki):
    import paho.mqtt.client as mqtt
    b = broker(tls_conf(pki))
    got = []
    c = mqtt.Client(client_id="paho-tls")
    c.tls_set(ca_certs=str(pki / "ca.pem"))
    c.on_message = lambda *a: got.append(a[2].payload)
    c.connect("localhost", b.port)
    c.subscribe("p/t", 1)
    c.loop_start()
    try:
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            c.publish("p/t", b"hello", 1).wait_for_publish(5)
        assert got and got[0] == b"hello"
    finally:
        c.loop_stop()


def test_tls_minimum_version(broker, pki):
    """tls_version tlsv1.3 refuses a TLS 1.2-only client."""
    b = broker(tls_conf(pki, "tls_version tlsv1.3"))
    with pytest.raises(ssl.SSLError):
        tls_socket(b, pki, max_version=ssl.TLSVersion.TLSv1_2)
    s = tls_socket(b, pki)
    assert s.version() == "TLSv1.3"


def test_require_certificate(broker, pki):
    """require_certificate: no certificate, no connection; a CA-signed one is accepted."""
    b = broker(tls_conf(pki, "require_certificate true"))
    try:
        s = tls_socket(b, pki)
        # TLS 1.3 reports the refusal on the first read
        c, _ = mqtt_over(s, "nocert")
        raise AssertionError("connected without a certificate")
    except (ssl.SSLError, ConnectionError, AssertionError) as e:
        assert "without a certificate" not in str(e)
    c, rc = mqtt_over(tls_socket(b, pki, cert="device1"), "withcert")
    assert rc == 0


def test_identity_as_username_drives_acl(broker, pki, tmp_path):
    """use_identity_as_username: the certificate CN is the user for ACLs."""
    acl = tmp_path / "acl"
    acl.write_text("user device1\ntopic read commands/device1/#\n")
    b = broker(tls_conf(pki, f"require_certificate true\nuse_identity_as_username true\n"
                             f"acl_file {acl}"))
    c, rc = mqtt_over(tls_socket(b, pki, cert="device1"), "dev", username="admin",
                      password="ignored")
    assert rc == 0
    c.send(subscribe(1, [("commands/device1/#", 0), ("commands/other/#", 0)]))
    _, body = c.expect(SUBACK)
    assert list(body[2:]) == [0, 0x80]


def test_crl_rejects_revoked_certificate(broker, pki):
    b = broker(tls_conf(pki, f"require_certificate true\ncrlfile {pki}/crl.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError, AssertionError)):
        s = tls_socket(b, pki, cert="revoked")
        mqtt_over(s, "rev")
    c, rc = mqtt_over(tls_socket(b, pki, cert="device1"), "good")
    assert rc == 0
    assert "certificate revoked" in b.stderr_text()


def test_stalled_handshake_times_out_without_blocking_others(broker, pki):
    """A TCP connection that never sends a ClientHello is closed after connect_timeout, and
    meanwhile other TLS clients are served."""
    b = broker(tls_conf(pki, "connect_timeout 1"))
    stalled = socket.create_connection((b.host, b.port))
    c, rc = mqtt_over(tls_socket(b, pki), "served")
    assert rc == 0
    stalled.settimeout(5)
    assert stalled.recv(10) == b""


def test_garbage_on_tls_port(broker, pki):
    b = broker(tls_conf(pki))
    g = socket.create_connection((b.host, b.port))
    g.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" * 10)
    g.settimeout(5)
    try:
        while g.recv(100):
            pass
    except ConnectionResetError:
        pass
    c, rc = mqtt_over(tls_socket(b, pki), "after-garbage")
    assert rc == 0


def test_certificate_reload_on_sighup_keeps_connections(broker, pki, tmp_path):
    """SIGHUP reloads the certificate files: new connections get the new certificate, existing
    ones stay connected."""
    cert = tmp_path / "cert.pem"
    key = tmp_path / "key.pem"
    cert.write_bytes((pki / "server.pem").read_bytes())
    key.write_bytes((pki / "server.key").read_bytes())
    b = broker(f"certfile {cert}\nkeyfile {key}\ncafile {pki}/ca.pem")
    s1 = tls_socket(b, pki)
    old_serial = s1.getpeercert()["serialNumber"]
    c1, rc = mqtt_over(s1, "before")
    assert rc == 0
    cert.write_bytes((pki / "server2.pem").read_bytes())
    key.write_bytes((pki / "server2.key").read_bytes())
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "configuration reloaded" not in b.stderr_text() and time.monotonic() < end:
        socket.create_connection((b.host, b.port)).close()
    s2 = tls_socket(b, pki)
    assert s2.getpeercert()["serialNumber"] != old_serial
    c1.send(subscribe(1, [("still/here", 0)]))
    c1.expect(SUBACK)
