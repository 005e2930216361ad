"""tether with testresources: the service starts once for all the tests
that use it, and is reset before each one.

    python3 -m unittest test_testresources_example   (uses load_tests)
"""

import subprocess
import unittest

import testresources

from tether.resources import ExternalServiceResource

POSTGRESQL = ExternalServiceResource("postgresql")


def psql(service, query):
    return subprocess.run(
        ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", service.service_config["URL"],
         "-c", query],
        check=True, capture_output=True, text=True).stdout.strip()


class TestOrders(testresources.ResourcedTestCase):
    resources = [("db", POSTGRESQL)]

    def test_1_writes(self):
        psql(self.db, "create table orders (id int); insert into orders values (1)")

    def test_2_sees_a_clean_slate(self):
        self.assertEqual("0", psql(self.db, "select count(*) from pg_tables "
                                            "where tablename = 'orders'"))


def load_tests(loader, tests, pattern):
    return testresources.OptimisingTestSuite(tests)


if __name__ == "__main__":
    unittest.main()
