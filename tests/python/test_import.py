"""`import tether` and the pytest plugin stay light: they never load the
fixtures library (and the testtools and pkg_resources it loads), which
costs more than starting a Redis; ExternalService loads it when asked for."""

import subprocess
import sys

HEAVY = ("fixtures", "testtools")


def loaded_after(code):
    probe = code + "\nimport sys\nprint(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_import_tether_is_light():
    assert loaded_after("import tether; tether.Service; tether.TetherError") == []


def test_import_pytest_plugin_is_light():
    assert loaded_after("import tether.pytest_plugin") == []


def test_external_service_is_still_a_fixture():
    assert loaded_after("from tether import ExternalService\n"
                        "import fixtures\n"
                        "assert issubclass(ExternalService, fixtures.Fixture)") == list(HEAVY)
