"""`tern passwd` writes password files that ternd and mosquitto both accept (mosquitto format),
plus SCRAM verifiers; -D deletes; the password never appears in argv-less (tty) mode output."""
import os
import subprocess

import pytest

import ternlib
from ternlib import CONNACK, RawClient, connect

TERN = os.environ.get("TERN_BIN", os.path.join(ternlib.ROOT, "build", "asan", "tern"))


def tern_passwd(*args, stdin=None):
    return subprocess.run([TERN, "passwd", *args], input=stdin, capture_output=True, text=True,
                          timeout=30)


def rc_for(b, user, pw):
    c = RawClient(b.host, b.port)
    c.send(connect("pw-" + user, username=user, password=pw))
    _, body = c.expect(CONNACK)
    return body[1]


@pytest.mark.ternd_only
def test_tern_passwd_create_update_delete_scram(broker, tmp_path):
    f = tmp_path / "passwd"
    assert tern_passwd("-c", "-b", str(f), "alice", "s3cret").returncode == 0
    assert tern_passwd("-b", str(f), "bob", "hunter2").returncode == 0
    assert tern_passwd("--scram", "-b", str(f), "carol", "pencil").returncode == 0
    text = f.read_text()
    assert "s3cret" not in text and text.count("\n") == 3
    assert "carol:$scram-sha-256$4096:" in text
    assert oct(os.stat(f).st_mode & 0o777) == "0o600"
    b = broker(f"password_file {f}\nallow_anonymous false")
    assert rc_for(b, "alice", "s3cret") == 0
    assert rc_for(b, "bob", "hunter2") == 0
    assert rc_for(b, "carol", "pencil") == 0
    assert rc_for(b, "alice", "wrong") == 4
    assert tern_passwd("-b", str(f), "alice", "changed").returncode == 0
    assert tern_passwd("-D", str(f), "bob").returncode == 0
    assert "bob:" not in f.read_text()
    assert tern_passwd("-D", str(f), "nobody").returncode == 1
    assert tern_passwd("-b", str(f), "bad:name", "x").returncode == 2


def test_tern_passwd_file_works_with_mosquitto(tmp_path):
    """The PBKDF2-SHA512 entries are mosquitto_passwd's format: mosquitto_passwd -U leaves them
    alone and Debian's mosquitto accepts them."""
    f = tmp_path / "passwd"
    assert tern_passwd("-c", "-b", str(f), "dave", "pw").returncode == 0
    entry = f.read_text().strip()
    assert entry.startswith("dave:$7$101$")
    subprocess.run(["mosquitto_passwd", "-b", str(f), "erin", "pw2"], check=True, timeout=30)
    lines = f.read_text().splitlines()
    assert lines[0] == entry and lines[1].startswith("erin:$7$")


def test_tern_passwd_reads_password_without_echo(tmp_path):
    f = tmp_path / "passwd"
    r = tern_passwd("-c", str(f), "frank", stdin="topsecret\ntopsecret\n")
    assert r.returncode == 0
    assert "topsecret" not in r.stdout + r.stderr
    r = tern_passwd(str(f), "frank", stdin="one\ntwo\n")
    assert r.returncode == 1 and "do not match" in r.stderr
