"""Fixtures of the interoperability tests: `clients` starts a broker (the shared `broker`
fixture of tests/conftest.py) and hands out real clients bound to it, all closed at teardown
before the broker is stopped and checked for sanitizer reports."""
import os

import pytest

import interop_clients


@pytest.fixture
def clients(broker):
    c = interop_clients.Clients(broker())
    yield c
    c.close()


@pytest.fixture
def mqttjs():
    """Tests using MQTT.js need `npm install` in tests/interop (scripts/deps.sh test does it):
    skipped without it, except under CI=true where that is a failure."""
    if not interop_clients.mqttjs_available():
        why = "MQTT.js missing: run scripts/deps.sh test (npm install in tests/interop)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
