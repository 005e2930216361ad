"""`pip install ./python` works (offline: no build requirements) and the
installed package registers the pytest plugin by itself."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pip_install(tmp_path):
    if subprocess.run([sys.executable, "-m", "pip", "--version"],
                      capture_output=True).returncode != 0:
        pytest.skip("no pip for %s" % sys.executable)
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-cache-dir", "--target", str(target), os.path.join(ROOT, "python")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (target / "tether" / "_service.py").exists()
    assert "[pytest11]" in (target / "tether-0.1.0.dist-info" / "entry_points.txt").read_text()
    (tmp_path / "test_auto.py").write_text(
        "import tether\n"
        "def test_plugin_is_there(tether_redis):\n"
        "    assert tether.__file__.startswith(%r)\n"
        "    assert tether_redis.service_config['SOCKET']\n" % str(target))
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(tmp_path / "test_auto.py")], cwd=str(tmp_path), env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _exe(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def test_find_tether_order(tmp_path, monkeypatch):
    """$TETHER_BIN, then the program a wheel installs beside the module,
    then $PATH: the bundled one was built for this very module."""
    import tether._service as s
    pkg = tmp_path / "site" / "tether"
    monkeypatch.setattr(s, "__file__", str(pkg / "_service.py"))
    on_path = _exe(tmp_path / "bin" / "tether")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("TETHER_BIN", raising=False)
    assert s.find_tether() == on_path
    bundled = _exe(pkg / "_bin" / "tether")
    assert s.find_tether() == bundled
    mine = _exe(tmp_path / "mine" / "tether")
    monkeypatch.setenv("TETHER_BIN", mine)
    assert s.find_tether() == mine
