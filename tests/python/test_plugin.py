"""tether.pytest_plugin and tether.resources, through the examples and
small generated suites run by a pytest or unittest of their own."""

import os
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
    # and with several xdist workers it is refused
    pytest.importorskip("xdist")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
                        "tether.pytest_plugin", "--tether-use-existing", "-n", "2", "test_x.py"],
                       cwd=str(tmp_path), capture_output=True, text=True)
    assert r.returncode != 0
    assert "xdist workers" in r.stdout + r.stderr


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
