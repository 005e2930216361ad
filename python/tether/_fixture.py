"""ExternalService: a tether Service as a fixtures.Fixture.

A module of its own so that only the suites that use the fixtures API pay
for importing `fixtures` (and the testtools it loads)."""

import fixtures

from ._service import Service

__all__ = ["ExternalService"]


class ExternalService(Service, fixtures.Fixture):
    """A tether.Service that is also a fixtures.Fixture, for useFixture():

        self.db = self.useFixture(ExternalService("postgresql"))

    setUp(use_existing=None, unique_instance=None) is Service.setup() (None:
    as given to the constructor), cleanUp() is Service.cleanup(), and
    reset() resets the service, as Service.reset() does.  A failing setUp()
    raises fixtures.MultipleExceptions with the TetherError first, as every
    Fixture does; Service.setup() raises the TetherError itself."""

    def setUp(self, use_existing=None, unique_instance=None):
        if use_existing is not None:
            self.use_existing = use_existing
        if unique_instance is not None:
            self.unique_instance = unique_instance
        fixtures.Fixture.setUp(self)

    def _setUp(self):
        self._open()
        self.addCleanup(self._release)

    # `with ExternalService(...)` keeps the Fixture meaning (setUp/cleanUp)
    __enter__ = fixtures.Fixture.__enter__
    __exit__ = fixtures.Fixture.__exit__
