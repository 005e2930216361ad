"""pytest fixtures for tether services.

Enable it in conftest.py (installing the package with pip enables it by
itself):

    pytest_plugins = ["tether.pytest_plugin"]

Fixtures (each service starts once per session -- under pytest-xdist once
per worker, each worker its own instance -- and is reset before each test
that asks for it):

    tether_postgresql, tether_redis, tether_memcached
        the ExternalService, reset for this test:
        tether_postgresql.service_config["URL"]
    tether_postgresql_session, tether_redis_session, tether_memcached_session
        the same without the per-test reset, for session-scoped fixtures
    tether_service
        a factory for the services of a config file:
        tether_service("files", "tether.ini") (relative to pytest's rootdir,
        default: the ini option tether_config), reset for this test

    from tether.pytest_plugin import service_fixture
    files = service_fixture("files", "tether.ini")
        a named fixture, the same way (in conftest.py)

Options: --tether-use-existing attaches to the services the environment
names (eval "$(tether start ...)"), for fast iteration; it cannot be
combined with several xdist workers, which would reset one another's data.
"""

import os

import pytest

from ._service import Service

__all__ = ["service_fixture"]


def pytest_addoption(parser):
    group = parser.getgroup("tether", "tether services")
    group.addoption("--tether-use-existing", action="store_true", default=False,
                    help="attach to the services that the environment names "
                         "(eval \"$(tether start ...)\") instead of starting new ones")
    parser.addini("tether_config", "the tether config file for tether_service() and "
                  "service_fixture(), relative to the rootdir", default="")


class _Services:
    """The session's services, started on first use, stopped at the end."""

    def __init__(self, config):
        self.rootdir = str(config.rootpath)
        self.default_config = config.getini("tether_config") or None
        self.use_existing = config.getoption("tether_use_existing")
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
        if self.use_existing and workers > 1:
            raise pytest.UsageError(
                "--tether-use-existing with %d xdist workers: they would share one instance "
                "and reset each other's data; run with -n 0 or without the option" % workers)
        self._started = {}

    def get(self, name, config_file=None, builtin=False):
        """The started service; builtin: a built-in driver, never the
        default config file."""
        if not builtin:
            config_file = config_file or self.default_config
        if config_file:
            config_file = os.path.join(self.rootdir, config_file)
        key = (name, config_file)
        svc = self._started.get(key)
        if svc is None:
            svc = Service(name, config_file, use_existing=self.use_existing).setup()
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


@pytest.fixture(scope="session")
def tether_services(pytestconfig):
    """The session's service cache (see tether_service for the usual way)."""
    services = _Services(pytestconfig)
    yield services
    services.close()


@pytest.fixture
def tether_service(tether_services):
    """A factory: tether_service(name, config_file=None) -> ExternalService,
    started once per session and reset for this test."""
    done = set()

    def get(name, config_file=None):
        svc = tether_services.get(name, config_file)
        if id(svc) not in done:
            svc.reset()
            done.add(id(svc))
        return svc

    return get


def service_fixture(name, config_file=None, reset=True):
    """A pytest fixture for one service: session-wide instance, reset before
    each test (unless reset=False).  Assign it to a name in conftest.py."""

    @pytest.fixture
    def fixture(tether_services):
        svc = tether_services.get(name, config_file)
        if reset:
            svc.reset()
        return svc

    return fixture


def _session_fixture(name):
    @pytest.fixture(scope="session")
    def fixture(tether_services):
        return tether_services.get(name, builtin=True)

    fixture.__doc__ = "The session's %s (not reset between tests)." % name
    return fixture


def _test_fixture(name):
    @pytest.fixture
    def fixture(tether_services):
        svc = tether_services.get(name, builtin=True)
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
