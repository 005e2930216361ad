"""tether: private, disposable servers for test suites.

    from tether import ExternalService

    class TestDB(testtools.TestCase):
        def setUp(self):
            super().setUp()
            self.db = self.useFixture(ExternalService("postgresql"))
            self.url = self.db.service_config["URL"]

See docs/fixtures.md; tether.Service is the same without the fixtures
library; tether.pytest_plugin for pytest, and
tether.resources.ExternalServiceResource for testresources.
"""

from ._service import Service, TetherError, find_tether

__all__ = ["Service", "ExternalService", "TetherError", "find_tether", "ExternalServiceResource"]
__version__ = "0.1.0"


def __getattr__(name):
    # imported only when asked for: `fixtures` (with testtools) costs more
    # than a Redis start, and testresources is optional
    if name == "ExternalService":
        from ._fixture import ExternalService
        return ExternalService
    if name == "ExternalServiceResource":
        from .resources import ExternalServiceResource
        return ExternalServiceResource
    raise AttributeError("module 'tether' has no attribute %r" % name)
