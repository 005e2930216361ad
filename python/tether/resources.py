"""A testresources resource manager for tether services.

    import testresources
    from tether.resources import ExternalServiceResource

    POSTGRESQL = ExternalServiceResource("postgresql")

    class TestDB(testresources.ResourcedTestCase):
        resources = [("db", POSTGRESQL)]

        def test_it(self):
            url = self.db.service_config["URL"]

    def load_tests(loader, tests, pattern):
        return testresources.OptimisingTestSuite(tests)

Under an OptimisingTestSuite the service starts once for all the tests that
use it, is reset before each of them, and is stopped after the last one.
"""

import fixtures
import testresources

from ._fixture import ExternalService

__all__ = ["ExternalServiceResource"]


def set_up(service, **kwargs):
    """service.setUp(), raising the first error rather than a
    fixtures.MultipleExceptions wrapper."""
    try:
        service.setUp(**kwargs)
    except fixtures.MultipleExceptions as e:
        raise e.args[0][1].with_traceback(e.args[0][2]) from None
    return service


class ExternalServiceResource(testresources.TestResourceManager):
    """Makes an ExternalService (started; reset() and cleanUp() on it), and
    resets it between the tests that share it: every test may have changed
    it, so it is always dirty, and a reset is cheap."""

    setUpCost = 10
    tearDownCost = 5

    def __init__(self, service, config_file=None, use_existing=False, unique_instance=True):
        super().__init__()
        self.service = service
        self.config_file = config_file
        self.use_existing = use_existing
        self.unique_instance = unique_instance

    def make(self, dependency_resources):
        return set_up(ExternalService(self.service, self.config_file,
                                      use_existing=self.use_existing,
                                      unique_instance=self.unique_instance))

    def clean(self, resource):
        resource.cleanUp()

    def isDirty(self):
        return True

    def _reset(self, resource, dependency_resources):
        resource.reset()
        self._dirty = False
        return resource
