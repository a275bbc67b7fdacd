"""Shared pytest fixtures: start the real ternd (or Debian's mosquitto, to validate the tests
themselves) on a free port and tear it down, failing the test on sanitizer reports."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import ternlib  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "ternd_only: behaviour specific to ternd (skipped when "
                            "TERN_TEST_BROKER=mosquitto)")


def pytest_collection_modifyitems(config, items):
    if ternlib.MODE != "mosquitto":
        return
    skip = pytest.mark.skip(reason="ternd-only behaviour (TERN_TEST_BROKER=mosquitto)")
    for item in items:
        if "ternd_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def broker(tmp_path):
    """Factory: broker(config_extra="", threads=2) -> ternlib.Broker, stopped at teardown."""
    started = []

    def start(config_extra="", threads=2):
        b = ternlib.Broker(tmp_path / f"broker{len(started)}", config_extra, threads)
        started.append(b)
        return b

    yield start
    problems = []
    for b in started:
        problems += b.stop_and_check()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)
