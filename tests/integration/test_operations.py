"""Operations: command line, configuration errors with file and line, --help-config, the ready
line, SIGHUP reload of reloadable options, graceful SIGTERM, pid_file, log destinations."""
import os
import signal
import subprocess
import time

import pytest

import ternlib
from ternlib import CONNACK, PUBLISH, SUBACK, RawClient, connect, connect_client, parse_publish, publish, subscribe

pytestmark = pytest.mark.ternd_only


def ternd(*args, timeout=10):
    return subprocess.run([ternlib.TERND, *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("text,fragment", [
    ("bogus 1\n", ":1: unknown directive 'bogus'"),
    ("\nmax_inflight_messages 0\n", ":2: max_inflight_messages: 0 is out of range (1..65535)"),
    ("retain_available maybe\n", ":1: retain_available: 'maybe' is not a boolean"),
    ("listener 99999\n", ":1: listener: 99999 is out of range (0..65535)"),
    ("persistent_client_expiration 3x\n", ":1: persistent_client_expiration: '3x' is not a duration"),
])
def test_config_errors_name_file_and_line(tmp_path, text, fragment):
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    r = ternd("-c", str(conf))
    assert r.returncode == 3
    assert f"{conf}{fragment}" in r.stderr
    assert "LeakSanitizer" not in r.stderr


def test_help_config_lists_every_directive_with_defaults():
    r = ternd("--help-config")
    assert r.returncode == 0
    for name in ("listener", "max_inflight_messages", "persistent_client_expiration",
                 "sys_interval", "threads", "password_file", "acl_file", "certfile",
                 "memory_limit", "publish_rate_messages"):
        assert f"`{name}`" in r.stdout
    assert "| `max_queued_messages` | number | 1000 |" in r.stdout


def test_version_and_bad_arguments():
    assert ternd("--version").stdout.startswith("ternd ")
    assert ternd("-p", "70000").returncode == 2
    assert ternd("--no-such-flag").returncode == 2


def test_port_flag_and_ready_file(tmp_path):
    """-p 0 overrides the default listener; --ready-file gets the same lines as stdout."""
    ready = tmp_path / "ready"
    p = subprocess.Popen([ternlib.TERND, "-p", "0", "--ready-file", str(ready)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline().strip(), p.stdout.readline().strip()]
        assert lines[0].startswith("listen mqtt 127.0.0.1 ") and lines[1] == "ready"
        port = int(lines[0].split()[3])
        assert port != 1883 and port > 0
        assert ready.read_text().splitlines() == lines
        c = RawClient("127.0.0.1", port)
        c.send(connect("portflag"))
        c.expect(CONNACK)
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0


def test_sighup_reloads_reloadable_options(broker):
    """max_qos is reloadable: after SIGHUP a new SUBSCRIBE is granted the new maximum."""
    b = broker("max_qos 2")
    c, _ = connect_client(b, "reload")
    c.send(subscribe(1, [("r/a", 2)]))
    _, body = c.expect(SUBACK)
    assert body[2] == 2
    with open(b.conf_path, "a") as f:
        f.write("max_qos 1\n")
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "configuration reloaded" not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    c.send(subscribe(2, [("r/b", 2)]))
    _, body = c.expect(SUBACK)
    assert body[2] == 1, "reloaded max_qos applies to new operations"
    with open(b.conf_path, "a") as f:
        f.write("max_qos seven\n")
    b.signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while "not reloaded" not in b.stderr_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    assert "max_qos: 'seven' is not a number" in b.stderr_text()
    c.send(subscribe(3, [("r/c", 2)]))
    _, body = c.expect(SUBACK)
    assert body[2] == 1, "an invalid file keeps the running configuration"


def test_sigterm_flushes_queued_output_and_exits_zero(broker):
    """Graceful stop: what was queued for a connected client is delivered before exit."""
    b = broker()
    s, _ = connect_client(b, "flushsub")
    s.send(subscribe(1, [("f/#", 0)]))
    s.expect(SUBACK)
    p, _ = connect_client(b, "flushpub")
    p.send(b"".join(publish(f"f/{i}", b"x" * 100) for i in range(200)))
    p.send(ternlib.pingreq())
    p.expect(ternlib.PINGRESP)  # all 200 were routed before this answer
    assert b.terminate() == 0
    got = 0
    try:
        while True:
            t, _, _ = s.recv_packet(5)
            got += t == PUBLISH
    except (AssertionError, TimeoutError):
        pass
    assert got == 200


def test_pid_file_and_log_file(broker, tmp_path):
    pid = tmp_path / "ternd.pid"
    log = tmp_path / "ternd.log"
    b = broker(f"pid_file {pid}\nlog_dest file {log}\nlog_type all")
    assert int(pid.read_text()) == b.proc.pid
    c, _ = connect_client(b, "logme")
    c.send(ternlib.disconnect())
    c.expect_closed()
    end = time.monotonic() + 5
    while "logme" not in log.read_text() and time.monotonic() < end:
        RawClient(b.host, b.port).close()
    assert "client 'logme'" in log.read_text()
    b.terminate()
    assert not pid.exists()


@pytest.mark.parametrize("text,fragment", [
    ("listener 0 127.0.0.1\nmount_point tenant/\n", "mount_point is not supported yet"),
    ("persistence true\n", "persistence true is not supported yet"),
])
def test_unimplemented_options_are_refused_not_ignored(tmp_path, text, fragment):
    """Options accepted for Mosquitto compatibility but not implemented stop ternd with a clear
    error instead of silently doing nothing (no false tenant isolation or durability)."""
    conf = tmp_path / "c.conf"
    conf.write_text(text)
    r = ternd("-c", str(conf))
    assert r.returncode == 1
    assert fragment in r.stderr
