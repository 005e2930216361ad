"""Every test runs with a TETHER_DIR of its own, without instance variables
from the caller, and fails if anything is left behind under it."""

import os
import shutil
import signal
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

BUILD = os.path.abspath(os.environ.get("TETHER_BUILD", os.path.join(ROOT, "build")))
os.environ.setdefault("TETHER_BIN", os.path.join(BUILD, "tether"))
os.environ["TETHER_BIN"] = os.path.abspath(os.environ["TETHER_BIN"])
# children (python3 -c, pytest runs) import this tree's tether
os.environ["PYTHONPATH"] = os.pathsep.join(
    [os.path.join(ROOT, "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
TSERVER = os.path.join(BUILD, "tests", "servers", "tserver")

from leftovers import wait_clean  # noqa: E402


@pytest.fixture(autouse=True)
def tether_dir(monkeypatch):
    for k in list(os.environ):
        if k.endswith("_CONTROL_PID") or k.endswith("_CONFIGFILE") or k == "TETHER_CONFIG":
            monkeypatch.delenv(k)
    d = tempfile.mkdtemp(prefix="tether-py.")
    monkeypatch.setenv("TETHER_DIR", d)
    # the pytest runs a test starts keep their temporary directories in
    # /tmp/pytest-of-$USER; give them one that goes with the test
    inner = tempfile.mkdtemp(prefix="tether-tmp.")
    monkeypatch.setenv("TMPDIR", inner)
    yield d
    shutil.rmtree(inner, ignore_errors=True)
    left = wait_clean(d, 1.0)
    if left:
        for line in left:
            if line.startswith(("process ", "tether process ")):
                try:
                    os.kill(int(line.split()[1 if line.startswith("process") else 2]),
                            signal.SIGKILL)
                except (OSError, ValueError):
                    pass
    shutil.rmtree(d, ignore_errors=True)
    assert not left, "LEFT BEHIND:\n" + "\n".join(left)


@pytest.fixture
def config(tmp_path):
    """A config file with a TCP service (auto port) and a fixed-port one."""
    path = tmp_path / "tether.ini"
    path.write_text(
        "[tether]\nprefix = PYT\n\n"
        "[tcp]\ncommand = %s --tcp ${port}\nport = auto\n"
        "reset = sh -c 'echo reset >> \"$0\"/resets' ${dir}\n\n"
        "[fixed]\ncommand = %s --tcp ${port}\nport = %d\n"
        % (TSERVER, TSERVER, 32380 + os.getpid() % 380))
    return str(path)
