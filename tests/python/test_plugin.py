"""tether.pytest_plugin and tether.resources, through the examples and
small generated suites run by a pytest or unittest of their own."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples", "python")


def run(args, cwd, env=None):
    r = subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def pytest_proc(*args, cwd=EXAMPLES, env=None):
    """A pytest run with the plugin, which may fail."""
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "tether.pytest_plugin"] + list(args), cwd=cwd, env=env,
                          capture_output=True, text=True)


def pytest_run(*args, cwd=EXAMPLES, env=None):
    return run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tether.pytest_plugin"]
               + list(args), cwd, env)


def test_pytest_example():
    out = pytest_run("test_pytest_example.py")
    assert "4 passed" in out


def test_unittest_example_under_unittest():
    run(["-m", "unittest", "-q", "test_unittest_example"], EXAMPLES)


def test_testresources_example_shares_and_resets(tmp_path):
    # under an OptimisingTestSuite: one instance, reset between the tests
    (tmp_path / "test_count.py").write_text(textwrap.dedent("""
        import os, testresources
        from test_testresources_example import *   # noqa
        from test_testresources_example import load_tests  # noqa

        class TestSame(testresources.ResourcedTestCase):
            resources = [("db", POSTGRESQL)]
            def test_record(self):
                with open(os.environ["RECORD"], "a") as f:
                    f.write(self.db.config_file_path + "\\n")
            test_record_again = test_record
        """))
    env = dict(os.environ, RECORD=str(tmp_path / "record"),
               PYTHONPATH=os.pathsep.join([EXAMPLES, os.environ["PYTHONPATH"]]))
    r = subprocess.run([sys.executable, "-m", "unittest", "-v", "test_count"],
                       cwd=str(tmp_path), env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "Ran 4 tests" in r.stderr
    paths = (tmp_path / "record").read_text().split()
    assert len(paths) == 2 and paths[0] == paths[1], paths


SUITE = """
import os

def _record(svc):
    with open(os.path.join(os.environ["RECORD"], os.environ.get("PYTEST_XDIST_WORKER", "main")), "a") as f:
        f.write(svc.config_file_path + "\\n")

def test_a(tether_redis):
    _record(tether_redis)

def test_b(tether_redis):
    _record(tether_redis)

def test_c(tether_redis):
    _record(tether_redis)

def test_d(tether_redis):
    _record(tether_redis)
"""


def test_xdist_workers_get_their_own_instance(tmp_path):
    pytest.importorskip("xdist")
    (tmp_path / "test_x.py").write_text(SUITE)
    record = tmp_path / "record"
    record.mkdir()
    env = dict(os.environ, RECORD=str(record))
    out = pytest_run("-n", "2", "test_x.py", cwd=str(tmp_path), env=env)
    assert "4 passed" in out
    workers = sorted(os.listdir(str(record)))
    assert workers == ["gw0", "gw1"], workers
    per_worker = [set((record / w).read_text().split()) for w in workers]
    assert all(len(p) == 1 for p in per_worker), per_worker  # one instance per worker...
    assert per_worker[0] != per_worker[1]                     # ...each its own


def test_use_existing_option(tmp_path):
    (tmp_path / "test_x.py").write_text(SUITE)
    record = tmp_path / "record"
    record.mkdir()
    script = """
set -e
eval "$("$TETHER_BIN" -q start redis)"
"$1" -m pytest -q -p no:cacheprovider -p tether.pytest_plugin --tether-use-existing test_x.py
"$TETHER_BIN" -q status
echo "$TETHER_REDIS_CONFIGFILE"
eval "$("$TETHER_BIN" stop)"
"""
    r = subprocess.run(["sh", "-c", script, "sh", sys.executable], cwd=str(tmp_path),
                       env=dict(os.environ, RECORD=str(record)), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    configfile = r.stdout.strip().splitlines()[-1]
    assert set((record / "main").read_text().split()) == {configfile}
    # and with several xdist workers it is refused: once, before any test
    pytest.importorskip("xdist")
    r = pytest_proc("--tether-use-existing", "-n", "2", "test_x.py", cwd=str(tmp_path))
    assert r.returncode == 4, r.stdout + r.stderr  # pytest's usage error
    assert r.stderr.count("--tether-use-existing with 2 xdist workers") == 1, r.stderr
    assert "passed" not in r.stdout and "error" not in r.stdout, r.stdout
    assert not os.listdir(os.environ["TETHER_DIR"])  # no worker started anything


def test_service_fixture_and_factory_with_the_ini_config(config, tmp_path):
    # config is tmp_path/tether.ini: make tmp_path the rootdir
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = tether.ini\n")
    (tmp_path / "conftest.py").write_text(textwrap.dedent("""
        pytest_plugins = ["tether.pytest_plugin"]
        from tether.pytest_plugin import service_fixture
        tcp = service_fixture("tcp")
        """))
    (tmp_path / "test_cfg.py").write_text(textwrap.dedent("""
        import os

        def resets(svc):
            with open(os.path.join(svc.service_config["DIR"], "resets")) as f:
                return len(f.read().split())

        def test_a(tcp):
            assert resets(tcp) == 1

        def test_b(tcp, tether_service):
            assert resets(tcp) == 2
            same = tether_service("tcp")
            assert same is tcp and resets(tcp) == 3   # reset once more, for this test
            assert tether_service("tcp") is tcp and resets(tcp) == 3
        """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                       cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout


def test_builtin_fixtures_use_the_project_config(tmp_path):
    """tether_config = tether.ini with a [postgresql] section: tether_postgresql
    is that service, with its init_sql, reset to it for each test; a built-in
    the file does not name (redis) stays the plain driver."""
    (tmp_path / "schema.sql").write_text(
        "create table orders (id int primary key);\ninsert into orders values (7);\n")
    (tmp_path / "tether.ini").write_text(
        "[tether]\nprefix = APP\n\n[postgresql]\ninit_sql = %s\n" % (tmp_path / "schema.sql"))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = tether.ini\n")
    (tmp_path / "test_db.py").write_text(textwrap.dedent("""
        import subprocess

        def psql(svc, query):
            return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1",
                                   svc.service_config["URL"], "-c", query],
                                  check=True, capture_output=True, text=True).stdout.strip()

        def test_a_schema(tether_postgresql, tether_service):
            assert "APP_POSTGRESQL_URL" in tether_postgresql.service_env
            assert psql(tether_postgresql, "select id from orders") == "7"
            psql(tether_postgresql, "delete from orders")
            assert tether_service("postgresql") is tether_postgresql  # one instance

        def test_b_reset_to_the_schema(tether_postgresql):
            assert psql(tether_postgresql, "select id from orders") == "7"

        def test_redis_is_the_driver(tether_redis):
            assert tether_redis.config_file is None
            assert "TETHER_REDIS_SOCKET" in tether_redis.service_env
        """))
    r = pytest_proc("test_db.py", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "3 passed" in r.stdout


RECORD_TCP = """
def test_tcp(tether_service):
    assert tether_service("tcp").service_env["PYT_TCP_PORT"]
"""


def test_tether_config_is_relative_to_the_ini_file(config, tmp_path):
    """The ini option names a file next to the ini file, wherever pytest's
    rootdir is (here: the tests' directory)."""
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = tether.ini\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_tcp.py").write_text(RECORD_TCP + textwrap.dedent("""
        def test_rootdir(pytestconfig):
            assert pytestconfig.rootpath.name == "tests"
        """))
    r = pytest_proc("--rootdir", str(tests), "test_tcp.py", cwd=str(tests))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout, r.stdout


def test_missing_tether_config_is_one_usage_error(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = nope.ini\n")
    (tmp_path / "test_x.py").write_text(SUITE + RECORD_TCP)
    r = pytest_proc("test_x.py", cwd=str(tmp_path))
    assert r.returncode == 4, r.stdout + r.stderr
    want = ("tether: the config file %s/nope.ini does not exist (tether_config = nope.ini in "
            "%s/pytest.ini, relative to that file)" % (tmp_path, tmp_path))
    assert r.stderr.count(want) == 1, r.stderr
    assert "FileNotFoundError" not in r.stdout + r.stderr
    assert not os.listdir(os.environ["TETHER_DIR"])


def test_tether_config_option_and_environment(config, tmp_path):
    """--tether-config and $TETHER_CONFIG are relative to the current
    directory, and take precedence over the ini option."""
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = nope.ini\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "test_tcp.py").write_text(RECORD_TCP)
    r = pytest_proc("--tether-config", "../tether.ini", "test_tcp.py", cwd=str(sub))
    assert r.returncode == 0, r.stdout + r.stderr
    env = dict(os.environ, TETHER_CONFIG="../tether.ini")
    r = pytest_proc("test_tcp.py", cwd=str(sub), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    env["TETHER_CONFIG"] = "missing.ini"
    r = pytest_proc("test_tcp.py", cwd=str(sub), env=env)
    assert r.returncode == 4, r.stdout + r.stderr
    assert ("tether: the config file %s/missing.ini does not exist (TETHER_CONFIG=missing.ini, "
            "relative to the current directory)" % sub) in r.stderr, r.stderr


LOG_SUITE = """
def test_1_fails_with_redis(tether_redis):
    assert False, "the test's own failure"

def test_2_passes_with_redis(tether_redis):
    pass

def test_3_fails_without_redis():
    assert False
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["", "xdist"])
def test_failing_test_report_has_the_service_log(tmp_path, workers):
    if workers:
        pytest.importorskip("xdist")
    (tmp_path / "test_log.py").write_text(LOG_SUITE)
    r = pytest_proc("-p", "no:randomly", "test_log.py", *workers, cwd=str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "2 failed, 1 passed" in r.stdout, r.stdout
    out = r.stdout
    title = re.search(r"-+ tether: redis log \(last (\d+) lines\) -+\n", out)
    assert title and out.count("tether: redis log") == 1, out
    # under the test that used redis, with the server's own words
    assert out.index("test_1_fails_with_redis") < title.start() \
        < out.index("_ test_3_fails_without_redis _"), out
    shown = out[title.end():].split("\n_")[0].split("\n=")[0].splitlines()
    assert 0 < len(shown) == int(title.group(1)) <= 20, shown
    assert "ready to accept connections" in shown[-1].lower(), shown
    # tether_log_lines = 0: none
    r = pytest_proc("-o", "tether_log_lines=0", "test_log.py", *workers, cwd=str(tmp_path))
    assert r.returncode == 1 and "tether: redis log" not in r.stdout, r.stdout
    if not workers:
        r = pytest_proc("-o", "tether_log_lines=many", "test_log.py", cwd=str(tmp_path))
        assert r.returncode == 4, r.stdout + r.stderr
        assert "tether: tether_log_lines = many: not a number of lines" in r.stderr, r.stderr


def test_a_failed_start_is_not_retried_for_every_test(tmp_path):
    starts = tmp_path / "starts"
    (tmp_path / "tether.ini").write_text(
        "[broken]\ncommand = sh -c 'echo started >> \"$0\"; echo cannot go on; exit 3' %s\n"
        "ready = log:^ready\n"
        % starts)
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = tether.ini\n")
    (tmp_path / "test_b.py").write_text(textwrap.dedent("""
        import pytest
        @pytest.mark.parametrize("n", range(3))
        def test_it(tether_service, n):
            tether_service("broken")
        """))
    r = pytest_proc("test_b.py", cwd=str(tmp_path))
    assert r.returncode == 1 and "3 failed" in r.stdout, r.stdout + r.stderr
    assert starts.read_text() == "started\n"
    # the errors raised, each once ("E" lines): the short summary repeats
    # them, cut to the terminal's width, but whole where $CI is set
    raised = [line for line in r.stdout.splitlines() if line.startswith("E ")]
    assert sum("TetherError: [broken] cannot start" in line for line in raised) == 1, \
        r.stdout
    assert sum("TetherError: [broken] failed to start earlier in this session and is "
               "not tried again: [broken] cannot start" in line for line in raised) == 2, \
        r.stdout


@pytest.mark.parametrize("prefix", ["myapp", "MyApp"])
def test_fixtures_with_a_prefix_in_any_case(tmp_path, prefix):
    """prefix = myapp (or MyApp) in the project config: the config's service
    has MYAPP_WEB_* (tether_service and a service_fixture alike); a built-in
    it has no section for is the plain driver (TETHER_REDIS_*), the same
    instance whether asked for by tether_redis or tether_service("redis")."""
    tserver = os.path.join(os.path.dirname(os.environ["TETHER_BIN"]), "tests", "servers",
                           "tserver")
    (tmp_path / "tether.ini").write_text(
        "[tether]\nprefix = %s\n\n[web]\ncommand = %s --tcp ${port}\nport = auto\n"
        % (prefix, tserver))
    (tmp_path / "pytest.ini").write_text("[pytest]\ntether_config = tether.ini\n")
    (tmp_path / "conftest.py").write_text(
        "from tether.pytest_plugin import service_fixture\nweb = service_fixture('web')\n")
    (tmp_path / "test_names.py").write_text(textwrap.dedent("""
        def test_web(tether_service, web):
            svc = tether_service("web")
            assert svc is web
            assert svc.service_env["MYAPP_WEB_PORT"] == svc.service_config["PORT"]

        def test_redis(tether_redis, tether_service):
            assert tether_redis.config_file is None
            assert "TETHER_REDIS_SOCKET" in tether_redis.service_env
            assert tether_service("redis") is tether_redis
        """))
    r = pytest_proc("test_names.py", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
