"""tether.ExternalService: use cases 1, 2 and 5, forks, crashes, errors."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import fixtures
import pytest
import testtools

from leftovers import leftovers, wait_clean
from tether import ExternalService, Service, TetherError


def redis(svc, *words):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(svc.service_config["SOCKET"])
    s.sendall(("*%d\r\n" % len(words) + "".join(
        "$%d\r\n%s\r\n" % (len(w.encode()), w) for w in words)).encode())
    reply = s.recv(4096).decode()
    s.close()
    return reply.split("\r\n")[0]


def set_up(svc, **kw):
    """setUp, raising the TetherError itself (not MultipleExceptions)."""
    try:
        svc.setUp(**kw)
    except fixtures.MultipleExceptions as e:
        raise e.args[0][1]
    return svc


def tether(*args, env=None):
    return subprocess.run([os.environ["TETHER_BIN"]] + list(args), env=env,
                          capture_output=True, text=True)


class TestPerTestFixture(testtools.TestCase):
    """Use case 1 with testtools' useFixture: a fresh instance per test,
    gone after it."""

    seen = []

    def _check(self):
        svc = self.useFixture(ExternalService("redis"))
        self.assertEqual("redis", svc.service_label)
        self.assertFalse(svc.attached)
        self.assertNotIn(svc.config_file_path, self.seen)
        self.seen.append(svc.config_file_path)
        self.assertEqual(":0", redis(svc, "DBSIZE"))
        self.assertEqual("+OK", redis(svc, "SET", "k", "v"))
        self.assertTrue(os.path.exists(svc.config_file_path))
        self.assertEqual(svc.service_env["TETHER_REDIS_SOCKET"], svc.service_config["SOCKET"])
        self.assertIn("REDIS_URL", svc.service_config)  # an unprefixed variable

    def test_first(self):
        self._check()

    def test_second(self):
        self._check()


class TestShared(unittest.TestCase):
    """Use case 2 with plain unittest: one instance for the class, reset
    before each test hides test 1's data from test 2."""

    @classmethod
    def setUpClass(cls):
        # (class set-up runs before the per-test TETHER_DIR: a dir of its own)
        cls.dir = tempfile.mkdtemp(prefix="tether-py.")
        old, os.environ["TETHER_DIR"] = os.environ.get("TETHER_DIR"), cls.dir
        try:
            cls.svc = set_up(ExternalService("redis"))
        finally:
            if old is None:
                del os.environ["TETHER_DIR"]
            else:
                os.environ["TETHER_DIR"] = old

    @classmethod
    def tearDownClass(cls):
        path = cls.svc.config_file_path
        cls.svc.cleanUp()
        assert not os.path.exists(path)
        left = wait_clean(cls.dir)
        os.rmdir(cls.dir)
        assert not left, left

    def setUp(self):
        self.svc.reset()

    def test_1_writes(self):
        self.assertEqual("+OK", redis(self.svc, "SET", "k", "v"))
        self.assertEqual(":1", redis(self.svc, "DBSIZE"))

    def test_2_sees_nothing(self):
        self.assertEqual(":0", redis(self.svc, "DBSIZE"))


def test_config_file_service(config):
    with ExternalService("tcp", config) as svc:
        port = int(svc.service_config["PORT"])
        assert svc.service_env["PYT_TCP_PORT"] == str(port)
        assert socket.create_connection(("127.0.0.1", port)).recv(10) == b"pong\n"
        svc.reset()
        with open(os.path.join(svc.service_config["DIR"], "resets")) as f:
            assert f.read() == "reset\n"
        instdir = os.path.dirname(svc.config_file_path)
    assert not os.path.exists(instdir)


def test_use_existing_after_eval_start(config, tmp_path):
    """Use case 5: eval "$(tether start)", then tests attach, reset, and
    leave the instance running."""
    child = tmp_path / "child.py"
    child.write_text("""
import os, socket, subprocess, sys
from tether import ExternalService
svc = ExternalService("tcp", sys.argv[1])
svc.setUp(use_existing=True)
assert svc.attached
assert svc.service_config["PORT"] == os.environ["PYT_TCP_PORT"], svc.service_config
assert svc.config_file_path == os.environ["PYT_TCP_CONFIGFILE"]
svc.reset()
svc.cleanUp()
assert os.path.exists(os.environ["PYT_TCP_CONFIGFILE"])
print("attached and reset")
""")
    script = """
set -e
eval "$("$TETHER_BIN" -q -f "$1" start tcp)"
"$2" "$3" "$1"
cat "$PYT_TCP_DIR/resets"
"$TETHER_BIN" -q status
eval "$("$TETHER_BIN" stop)"
"""
    r = subprocess.run(["sh", "-c", script, "sh", config, sys.executable, str(child)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "attached and reset\nreset\n"


def test_use_existing_dead_instance(config, tether_dir):
    svc = set_up(ExternalService("tcp", config))
    env = dict(svc.service_env)
    svc.cleanUp()
    os.environ.update(env)
    try:
        e = None
        try:
            set_up(ExternalService("tcp", config, use_existing=True))
        except TetherError as err:
            e = err
        assert e is not None
        assert "[tcp] is not running" in str(e)
        assert "PYT_TCP_CONTROL_PID=" + env["PYT_TCP_CONTROL_PID"] in str(e)
        assert os.listdir(tether_dir) == []  # never a silent new instance
        # half set
        del os.environ["PYT_TCP_CONFIGFILE"]
        try:
            set_up(ExternalService("tcp", config), use_existing=True)
            assert False, "attached with half the variables"
        except TetherError as err:
            assert "PYT_TCP_CONFIGFILE is not" in str(err)
    finally:
        for k in env:
            os.environ.pop(k, None)
    # not set: a new private instance
    with ExternalService("tcp", config, use_existing=True) as svc:
        assert not svc.attached


def test_fork_child_exit_keeps_parent_service(config):
    with ExternalService("tcp", config) as svc:
        for how in ("cleanup", "exit"):
            pid = os.fork()
            if pid == 0:
                try:
                    if how == "cleanup":
                        svc.cleanUp()
                finally:
                    os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            svc.reset()
            assert os.path.exists(svc.config_file_path)
        port = int(svc.service_config["PORT"])
        assert socket.create_connection(("127.0.0.1", port)).recv(10) == b"pong\n"


def test_service_crash_is_an_error(config):
    with ExternalService("tcp", config) as svc:
        with open(svc.service_config["PIDFILE"]) as f:
            os.kill(int(f.read()), signal.SIGKILL)
        deadline = time.monotonic() + 5
        while True:
            try:
                svc.reset()
            except TetherError as e:
                assert "[tcp]" in str(e) and "not running" in str(e), str(e)
                break
            assert time.monotonic() < deadline, "reset kept working"
            time.sleep(0.01)


def test_stopped_helper_reset_is_an_error_in_time(config, monkeypatch):
    """reset() on a helper that does not answer (SIGSTOP) raises within
    TETHER_HELPER_TIMEOUT instead of hanging; after SIGCONT all is well."""
    monkeypatch.setenv("TETHER_HELPER_TIMEOUT", "500ms")
    with ExternalService("tcp", config) as svc:
        helper = int(svc.service_config["CONTROL_PID"])
        os.kill(helper, signal.SIGSTOP)
        try:
            with pytest.raises(TetherError) as e:
                svc.reset()
        finally:
            os.kill(helper, signal.SIGCONT)
        assert "helper %d of instance" % helper in str(e.value), str(e.value)
        assert "does not answer" in str(e.value), str(e.value)
        svc.reset()


def test_fixed_instance(config):
    first = set_up(ExternalService("fixed", config, unique_instance=False))
    try:
        assert int(first.service_config["PORT"]) == 32380 + os.getpid() % 380
        assert "/fixed-" in first.config_file_path
        try:
            set_up(ExternalService("fixed", config), unique_instance=False)
            assert False, "a second user got the fixed instance"
        except TetherError as e:
            assert "in use by pid %s" % first.service_config["CONTROL_PID"] in str(e), str(e)
    finally:
        path = first.config_file_path
        first.cleanUp()
    with ExternalService("fixed", config, unique_instance=False) as again:
        assert again.config_file_path == path


def test_errors(monkeypatch):
    try:
        set_up(ExternalService("nosuch"))
        assert False
    except TetherError as e:
        assert "nosuch" in str(e)
    svc = ExternalService("redis")
    try:
        svc.reset()
        assert False
    except TetherError as e:
        assert "not set up" in str(e)
    monkeypatch.setenv("TETHER_BIN", "/nonexistent/tether")
    try:
        set_up(ExternalService("redis"))
        assert False
    except TetherError as e:
        assert "TETHER_BIN=/nonexistent/tether" in str(e)


def test_service_without_the_fixtures_library(config):
    """tether.Service: setup/reset/cleanup and `with`, with TetherError
    itself (no MultipleExceptions); ExternalService is one, and a Fixture."""
    svc = Service("tcp", config)
    assert svc.setup() is svc
    try:
        with pytest.raises(TetherError, match=r"\[tcp\] is already set up"):
            svc.setup()
        svc.reset()
        instdir = os.path.dirname(svc.config_file_path)
    finally:
        svc.cleanup()
    assert not os.path.exists(instdir) and svc.service_env == {}
    svc.cleanup()  # twice is harmless
    with Service("tcp", config) as again:
        assert again.service_env["PYT_TCP_PORT"]
    assert issubclass(ExternalService, Service) and issubclass(ExternalService, fixtures.Fixture)
    with pytest.raises(TetherError, match=r"\[nosuch\] cannot start"):
        Service("nosuch").setup()


def test_log(tmp_path):
    """log() is what the service wrote to stdout and stderr."""
    tserver = os.path.join(os.path.dirname(os.environ["TETHER_BIN"]), "tests", "servers",
                           "tserver")
    config = tmp_path / "tether.ini"
    config.write_text("[tcp]\ncommand = %s --tcp ${port} --say 'up and running'\n"
                      "port = auto\n" % tserver)
    with ExternalService("tcp", str(config)) as svc:
        assert svc.log() == "up and running\n"
    with pytest.raises(TetherError, match=r"\[tcp\] is not set up"):
        svc.log()


def test_missing_config_file_is_a_tether_error(tmp_path):
    """tether's own message (the binding reads no config itself)."""
    path = str(tmp_path / "nope.ini")
    with pytest.raises(TetherError, match=r"\[tcp\] cannot start: cannot read config "
                       "file %s: No such file" % path):
        Service("tcp", path).setup()


def test_keep_failed_env_keeps_a_failed_start(tmp_path, tether_dir, monkeypatch):
    """TETHER_KEEP_FAILED=1 reaches the tether start that ExternalService
    runs: the failed instance stays, stopped, with its log; the error says
    where; `tether gc --kept` removes it."""
    cfg = tmp_path / "bad.ini"
    cfg.write_text("[bad]\ncommand = sh -c 'echo fatal: no luck; exit 3'\n"
                   "ready = log:listening\n")
    monkeypatch.setenv("TETHER_KEEP_FAILED", "1")
    with pytest.raises(TetherError) as e:
        set_up(ExternalService("bad", str(cfg)))
    names = os.listdir(tether_dir)
    assert len(names) == 1
    kept = os.path.join(tether_dir, names[0])
    assert "kept instance %s" % kept in str(e.value)
    with open(os.path.join(kept, "bad.log")) as f:
        assert "fatal: no luck" in f.read()
    # nothing runs: the kept directory is all that is left
    assert leftovers(tether_dir) == ["in TETHER_DIR: %s" % names[0]]
    assert tether("gc", "--kept").returncode == 0
    assert os.listdir(tether_dir) == []


# ---- the names are tether's: prefixes in any case (issue 11) ----

def prefixed_config(tmp_path, prefix_line):
    tserver = os.path.join(os.path.dirname(os.environ["TETHER_BIN"]), "tests", "servers",
                           "tserver")
    path = tmp_path / "tether.ini"
    path.write_text("[tether]\n%s\n\n[web]\ncommand = %s --tcp ${port}\nport = auto\n"
                    % (prefix_line, tserver))
    return str(path)


@pytest.mark.parametrize("prefix", ["myapp", "MyApp"])
def test_prefix_in_any_case(tmp_path, prefix):
    """prefix = myapp names the variables MYAPP_WEB_* (tether upper-cases
    it): ExternalService and Service take the names tether hands back, for a
    start, for a label spelt otherwise (Web), and to attach (use_existing)."""
    cfg = prefixed_config(tmp_path, "prefix = " + prefix)
    with ExternalService("web", cfg) as svc:
        assert sorted(svc.service_env) == ["MYAPP_WEB_" + k for k in sorted(svc.service_config)]
        port = int(svc.service_config["PORT"])
        assert socket.create_connection(("127.0.0.1", port)).recv(10) == b"pong\n"
        svc.reset()
        os.environ.update(svc.service_env)
        try:
            with Service("Web", cfg, use_existing=True) as again:
                assert again.attached
                assert again.service_config["CONTROL_PID"] == svc.service_config["CONTROL_PID"]
                again.reset()
        finally:
            for k in svc.service_env:
                del os.environ[k]
        assert os.path.exists(svc.config_file_path)  # the attached one left it running
    with Service("Web", cfg) as svc:
        assert svc.service_env["MYAPP_WEB_PORT"] == svc.service_config["PORT"]


def test_prefix_as_tether_reads_it(tmp_path):
    """A config tether reads differently from a naive reading: `prefix:`
    with an '=' in its comment.  The binding does not read the file."""
    cfg = prefixed_config(tmp_path, "prefix: myapp  ; variables: MYAPP_<LABEL>_<NAME>=value")
    with Service("web", cfg) as svc:
        assert "MYAPP_WEB_CONTROL_PID" in svc.service_env
        assert svc.service_config["CONTROL_PID"] == svc.service_env["MYAPP_WEB_CONTROL_PID"]


def test_builtin_beside_a_prefixed_config(tmp_path):
    """A built-in driver the config has no section for starts as the built-in
    (TETHER_REDIS_*), as `tether -f FILE start redis` does, and the binding
    says so (config_file None)."""
    cfg = prefixed_config(tmp_path, "prefix = myapp")
    with Service("redis", cfg) as svc:
        assert svc.config_file is None
        assert svc.service_config["SOCKET"] == svc.service_env["TETHER_REDIS_SOCKET"]
        svc.reset()
