"""tether: private, disposable servers for test suites.

    from tether import ExternalService

    class TestDB(testtools.TestCase):
        def setUp(self):
            super().setUp()
            self.db = self.useFixture(ExternalService("postgresql"))
            self.url = self.db.service_config["URL"]

See docs/fixtures.md; tether.pytest_plugin for pytest, and
tether.resources.ExternalServiceResource for testresources.
"""

from ._service import ExternalService, TetherError, find_tether

__all__ = ["ExternalService", "TetherError", "find_tether", "ExternalServiceResource"]
__version__ = "0.1.0"


def __getattr__(name):
    # testresources is optional: imported only when asked for
    if name == "ExternalServiceResource":
        from .resources import ExternalServiceResource
        return ExternalServiceResource
    raise AttributeError("module 'tether' has no attribute %r" % name)
