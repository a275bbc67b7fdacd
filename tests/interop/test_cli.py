"""The `tern` command line tool against the real broker (the shared `broker` fixture): pub -> sub
at QoS 0/1/2, retained messages, -C, -F json with MQTT 5 properties, rr against a responder made
of two more tern processes, error text and exit code for an unreachable port, --help, and a
`tern bench pairs` smoke run. Every wait is on a child's output line or exit, with a deadline:
`tern sub -d` prints "subscribed to ..." on stderr once the SUBACK has arrived."""
import json
import os
import re
import select
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TERN = os.environ.get("TERN", os.path.join(ROOT, "build", "asan", "tern"))
TIMEOUT = 20  # seconds, generous for sanitizer builds on small machines

pytestmark = pytest.mark.skipif(not os.path.exists(TERN), reason=f"{TERN} not built")


def run(*args, timeout=TIMEOUT, stdin=None):
    return subprocess.run([TERN, *args], capture_output=True, timeout=timeout, input=stdin)


class Child:
    """A tern process whose stderr is read line by line to wait for events."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([TERN, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.err = b""

    def wait_stderr(self, text, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        fd = self.proc.stderr.fileno()
        while text.encode() not in self.err:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise AssertionError(f"no {text!r} from tern; stderr: {self.err!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"tern exited before {text!r}; stderr: {self.err!r}")
            self.err += chunk

    def finish(self, timeout=TIMEOUT):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"tern did not exit; stderr: {self.err + err!r}")
        self.err += err
        return self.proc.returncode, out.decode(errors="replace"), self.err.decode(errors="replace")


def start_sub(b, *args):
    c = Child("sub", "-h", b.host, "-p", str(b.port), "-d", *args)
    c.wait_stderr("subscribed to")
    return c


def pub(b, *args, **kw):
    r = run("pub", "-h", b.host, "-p", str(b.port), *args, **kw)
    assert r.returncode == 0, r.stderr.decode()
    return r


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("version", ["311", "5"])
def test_pub_to_sub(broker, qos, version):
    b = broker()
    sub = start_sub(b, "-t", "cli/q", "-q", str(qos), "-C", "1", "-v", "-V", version)
    pub(b, "-t", "cli/q", "-m", f"hello {qos}", "-q", str(qos), "-V", version)
    rc, out, err = sub.finish()
    assert rc == 0, err
    assert out == f"cli/q hello {qos}\n"


def test_retained_and_json(broker):
    b = broker()
    pub(b, "-t", "cli/ret", "-m", "kept", "-r", "-q", "1")
    r = run("sub", "-h", b.host, "-p", str(b.port), "-t", "cli/ret", "-C", "1", "-F", "json")
    assert r.returncode == 0, r.stderr.decode()
    m = json.loads(r.stdout)
    assert m["topic"] == "cli/ret" and m["payload"] == "kept" and m["retain"] is True
    assert m["qos"] == 0
    pub(b, "-t", "cli/ret", "-n", "-r")  # an empty retained message clears it


def test_count_and_stdin_lines(broker):
    b = broker()
    sub = start_sub(b, "-t", "cli/lines/#", "-C", "3", "-q", "1")
    pub(b, "-t", "cli/lines/x", "-l", "-q", "1", stdin=b"one\ntwo\nthree\nfour\nfive\n")
    rc, out, err = sub.finish()
    assert rc == 0, err
    assert out.splitlines() == ["one", "two", "three"]


def test_v5_properties_in_json(broker):
    b = broker()
    sub = start_sub(b, "-t", "cli/props", "-C", "1", "-F", "json")
    pub(b, "-t", "cli/props", "-m", "p", "-D", "publish", "user-property", "k1", "v1",
        "--property", "k2=v2", "--content-type", "text/plain", "--message-expiry", "60")
    rc, out, err = sub.finish()
    assert rc == 0, err
    props = json.loads(out)["properties"]
    assert props["user_properties"] == [["k1", "v1"], ["k2", "v2"]]
    assert props["content_type"] == "text/plain"
    assert 0 < props["message_expiry_interval"] <= 60


def test_request_response(broker):
    b = broker()
    # the responder: a sub that prints the request as JSON, then a pub answering it
    responder = start_sub(b, "-t", "cli/req", "-C", "1", "-F", "json")
    rr = Child("rr", "-h", b.host, "-p", str(b.port), "-t", "cli/req", "-e", "cli/resp",
               "-m", "question", "--correlation-data", "c-42", "-d", "-W", str(TIMEOUT))
    rc, out, err = responder.finish()
    assert rc == 0, err
    req = json.loads(out)
    assert req["payload"] == "question"
    assert req["properties"]["response_topic"] == "cli/resp"
    assert req["properties"]["correlation_data"] == "c-42"
    pub(b, "-t", req["properties"]["response_topic"], "-m", "answer",
        "-D", "publish", "correlation-data", req["properties"]["correlation_data"])
    rc, out, err = rr.finish()
    assert rc == 0, err
    assert out == "answer\n"


def test_rr_times_out(broker):
    b = broker()
    r = run("rr", "-h", b.host, "-p", str(b.port), "-t", "cli/nobody", "-e", "cli/never",
            "-m", "x", "-W", "0.5")
    assert r.returncode == 3
    assert "no response" in r.stderr.decode()


def test_unreachable_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # bound, not listening: connections are refused
    try:
        r = run("pub", "-h", "127.0.0.1", "-p", str(port), "-t", "x", "-m", "y")
    finally:
        s.close()
    assert r.returncode == 1
    assert f"connect to 127.0.0.1:{port}: Connection refused" in r.stderr.decode()


def test_refused_subscription_shows_reason(broker):
    b = broker()
    r = run("sub", "-h", b.host, "-p", str(b.port), "-t", "a/#/b", "-C", "1", "-W", "5")
    assert r.returncode != 0
    err = r.stderr.decode()
    # a v5 broker answers an invalid filter with SUBACK 0x8F or closes with a DISCONNECT reason
    # (ternd, mosquitto: 0x81): either way the reason code name and value are shown
    m = re.search(r"(refused|disconnected by the broker): [A-Za-z ]+ \(0x([0-9a-f]{2})\)", err)
    assert m and int(m.group(2), 16) >= 0x80, err


@pytest.mark.parametrize("cmd", ["pub", "sub", "rr", "bench"])
def test_help(cmd):
    r = run(cmd, "--help")
    assert r.returncode == 0
    assert b"Usage: tern " + cmd.encode() in r.stdout


def test_usage_errors():
    assert run("pub", "-t", "x").returncode == 2  # no message source
    assert run("sub").returncode == 2  # no topic
    assert run("pub", "-t", "x", "-m", "y", "-q", "3").returncode == 2
    assert run("nonsense").returncode == 2


def test_bench_pairs_smoke(broker):
    b = broker()
    r = run("bench", "pairs", "-h", b.host, "-p", str(b.port), "-d", "2", "-P", "5", "-T", "2",
            "--json", timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    res = json.loads(r.stdout)
    assert res["lost"] == 0 and res["duplicates"] == 0 and res["out_of_order"] == 0
    assert res["received"] == res["sent"] > 0


def test_bench_qos2_fanout_smoke(broker):
    b = broker()
    r = run("bench", "fanout", "-h", b.host, "-p", str(b.port), "-d", "1", "-S", "5", "-q", "2",
            "--json", timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    res = json.loads(r.stdout)
    assert res["lost"] == 0 and res["duplicates"] == 0 and res["out_of_order"] == 0
    assert res["received"] == 5 * res["sent"] > 0
