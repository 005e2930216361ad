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
