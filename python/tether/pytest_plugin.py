"""pytest fixtures for tether services.

Enable it in conftest.py (installing the package with pip enables it by
itself):

    pytest_plugins = ["tether.pytest_plugin"]

Fixtures (each service starts once per session -- under pytest-xdist once
per worker, each worker its own instance -- and is reset before each test
that asks for it; each is a tether.Service):

    tether_postgresql, tether_redis, tether_memcached
        the Service, reset for this test:
        tether_postgresql.service_config["URL"]
        When the project's config file (below) has a [postgresql] section,
        tether_postgresql is that service (its init_sql...), and so on.
    tether_postgresql_session, tether_redis_session, tether_memcached_session
        the same without the per-test reset, for session-scoped fixtures
    tether_service
        a factory for the services of a config file:
        tether_service("files", "tether.ini") (relative to pytest's rootdir,
        default: the project's config file), reset for this test

    from tether.pytest_plugin import service_fixture
    files = service_fixture("files", "tether.ini")
        a named fixture, the same way (in conftest.py)

The project's config file: --tether-config FILE, else $TETHER_CONFIG (both
relative to the current directory), else the ini option tether_config
(relative to the ini file).  A missing file is a usage error, at once.

A failing test's report shows the last lines of the log of each service it
used (ini option tether_log_lines, default 20; 0: none).

Options: --tether-use-existing attaches to the services the environment
names (eval "$(tether start ...)"), for fast iteration; it cannot be
combined with several xdist workers, which would reset one another's data.
"""

import os

import pytest

from ._service import Service, TetherError

__all__ = ["service_fixture"]

_LOG_LINES = "20"


def _log_lines(config):
    """The ini option tether_log_lines: a number, 0 or more."""
    value = config.getini("tether_log_lines")
    try:
        lines = int(value)
    except ValueError:
        lines = -1
    if lines < 0:
        raise pytest.UsageError("tether: tether_log_lines = %s: not a number of lines (0 or more; "
                                "0 shows no log)" % value)
    return lines


def pytest_addoption(parser):
    group = parser.getgroup("tether", "tether services")
    group.addoption("--tether-use-existing", action="store_true", default=False,
                    help="attach to the services that the environment names "
                         "(eval \"$(tether start ...)\") instead of starting new ones")
    group.addoption("--tether-config", metavar="FILE", default=None,
                    help="the project's tether config file, for the fixtures (default: "
                         "$TETHER_CONFIG, else the ini option tether_config)")
    parser.addini("tether_config", "the project's tether config file, for the fixtures, "
                  "relative to the ini file", default="")
    parser.addini("tether_log_lines", "how many of the last lines of each service's log a "
                  "failing test's report shows (0: none)", default=_LOG_LINES)


def _xdist_workers(config):
    """How many xdist workers this run starts (0: none, or this is one)."""
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return 0
    if config.getoption("dist", "no") == "no":
        return 0
    n = 0
    for spec in config.getoption("tx", None) or ():  # -n N is N times "popen"
        count, star, _ = spec.partition("*")
        n += int(count) if star and count.isdigit() else 1
    return n


def _project_config(config):
    """The project's config file (absolute), or None; a usage error that
    says where it looked when the file is not there."""
    cwd = str(config.invocation_params.dir)
    name = config.getoption("tether_config")
    if name:
        base, how = cwd, "--tether-config %s, relative to the current directory" % name
    elif os.environ.get("TETHER_CONFIG"):
        name = os.environ["TETHER_CONFIG"]
        base, how = cwd, "TETHER_CONFIG=%s, relative to the current directory" % name
    else:
        name = config.getini("tether_config")
        if not name:
            return None
        if config.inipath:
            base = str(config.inipath.parent)
            how = "tether_config = %s in %s, relative to that file" % (name, config.inipath)
        else:
            base, how = cwd, "tether_config = %s, relative to the current directory " \
                             "(there is no ini file)" % name
    path = os.path.normpath(os.path.join(base, os.path.expanduser(name)))
    if not os.path.isfile(path):
        raise pytest.UsageError("tether: the config file %s does not exist (%s)" % (path, how))
    return path


def pytest_configure(config):
    if config.getoption("help", False):
        return
    workers = _xdist_workers(config)
    if config.getoption("tether_use_existing") and workers > 1:
        raise pytest.UsageError(
            "--tether-use-existing with %d xdist workers: they would share one instance "
            "and reset each other's data; run with -n 0 or without the option" % workers)
    _project_config(config)  # a missing file fails the run once, here
    _log_lines(config)


class _Services:
    """The session's services, started on first use, stopped at the end."""

    def __init__(self, config):
        self.rootdir = str(config.rootpath)
        self.default_config = _project_config(config)
        self.use_existing = config.getoption("tether_use_existing")
        self._started = {}
        self._failed = {}  # a start that failed is not retried for every test

    def _config_file(self, config_file):
        path = os.path.join(self.rootdir, os.path.expanduser(config_file))
        if not os.path.isfile(path):
            raise TetherError("the config file %s does not exist (%s, relative to pytest's "
                              "rootdir %s)" % (path, config_file, self.rootdir))
        return path

    def get(self, name, config_file=None):
        """The started service: the project config's (or config_file's) of
        that name, else the built-in driver, as `tether -f FILE start NAME`
        decides (tether says which: Service.config_file is then None)."""
        if config_file:
            config_file = self._config_file(config_file)
        else:
            config_file = self.default_config
        key = (name, config_file)
        svc = self._started.get(key)
        if svc is None:
            if key in self._failed:
                raise TetherError("[%s] failed to start earlier in this session and is "
                                  "not tried again: %s" % (name, self._failed[key]))
            try:
                svc = Service(name, config_file, use_existing=self.use_existing).setup()
            except TetherError as e:
                self._failed[key] = e
                raise
            self._started[key] = svc
        return svc

    def close(self):
        errors = []
        for svc in reversed(list(self._started.values())):
            try:
                svc.cleanup()
            except Exception as e:  # stop the others all the same
                errors.append(e)
        self._started.clear()
        if errors:
            raise errors[0]


# -- which services a test used, for its report --

_USED = "_tether_used"


def _used_by(node, svc):
    """Record that the test `node` uses svc (before its reset, so that a
    reset that fails shows the log too)."""
    used = getattr(node, _USED, None)
    if used is None:
        used = []
        setattr(node, _USED, used)
    if svc not in used:
        used.append(svc)


def _services_of(item):
    found = list(getattr(item, _USED, ()))
    for value in getattr(item, "funcargs", {}).values():  # session fixtures too
        if isinstance(value, Service) and value not in found:
            found.append(value)
    return found


def _log_section(svc, lines):
    try:
        text = svc.log()
    except TetherError as e:
        return "tether: %s log" % svc.service_label, "(%s)" % e
    tail = text.splitlines()[-lines:]
    if not tail:
        return "tether: %s log (empty)" % svc.service_label, ""
    return ("tether: %s log (last %d lines)" % (svc.service_label, len(tail)),
            "\n".join(tail))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    lines = _log_lines(item.config)
    if lines == 0:
        return
    for svc in _services_of(item):
        if svc.service_env:  # still set up
            report.sections.append(_log_section(svc, lines))


# -- fixtures --

@pytest.fixture(scope="session")
def tether_services(pytestconfig):
    """The session's service cache (see tether_service for the usual way)."""
    services = _Services(pytestconfig)
    yield services
    services.close()


@pytest.fixture
def tether_service(tether_services, request):
    """A factory: tether_service(name, config_file=None) -> Service,
    started once per session and reset for this test."""
    done = set()

    def get(name, config_file=None):
        svc = tether_services.get(name, config_file)
        if id(svc) not in done:
            _used_by(request.node, svc)
            svc.reset()
            done.add(id(svc))
        return svc

    return get


def service_fixture(name, config_file=None, reset=True):
    """A pytest fixture for one service: session-wide instance, reset before
    each test (unless reset=False).  Assign it to a name in conftest.py."""

    @pytest.fixture
    def fixture(tether_services, request):
        svc = tether_services.get(name, config_file)
        _used_by(request.node, svc)
        if reset:
            svc.reset()
        return svc

    return fixture


def _session_fixture(name):
    @pytest.fixture(scope="session")
    def fixture(tether_services):
        return tether_services.get(name)

    fixture.__doc__ = "The session's %s (not reset between tests)." % name
    return fixture


def _test_fixture(name):
    @pytest.fixture
    def fixture(tether_services, request):
        svc = tether_services.get(name)
        _used_by(request.node, svc)
        svc.reset()
        return svc

    fixture.__doc__ = "The session's %s, reset for this test." % name
    return fixture


tether_postgresql_session = _session_fixture("postgresql")
tether_redis_session = _session_fixture("redis")
tether_memcached_session = _session_fixture("memcached")
tether_postgresql = _test_fixture("postgresql")
tether_redis = _test_fixture("redis")
tether_memcached = _test_fixture("memcached")
