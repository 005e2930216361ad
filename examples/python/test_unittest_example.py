"""tether with unittest and testtools: run with `python3 -m pytest` or
`python3 -m unittest`.  Needs psql (postgresql-client) for the queries."""

import subprocess
import unittest

import testtools

from tether import ExternalService, Service


def psql(service, query):
    return subprocess.run(
        ["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", service.service_config["URL"],
         "-c", query],
        check=True, capture_output=True, text=True).stdout.strip()


class TestPerTest(testtools.TestCase):
    """Use case 1: every test gets a PostgreSQL of its own."""

    def setUp(self):
        super().setUp()
        self.db = self.useFixture(ExternalService("postgresql"))

    def test_empty_and_private(self):
        self.assertEqual("0", psql(self.db, "select count(*) from pg_tables "
                                            "where tablename = 'orders'"))
        psql(self.db, "create table orders (id int)")


class TestShared(unittest.TestCase):
    """Use case 2, plain unittest: one PostgreSQL for the class, reset
    before each test; tether.Service needs no fixtures library."""

    @classmethod
    def setUpClass(cls):
        cls.db = Service("postgresql").setup()
        cls.addClassCleanup(cls.db.cleanup)

    def setUp(self):
        self.db.reset()

    def test_1_writes(self):
        psql(self.db, "create table orders (id int); insert into orders values (1)")
        self.assertEqual("1", psql(self.db, "select count(*) from orders"))

    def test_2_sees_a_clean_slate(self):
        self.assertEqual("0", psql(self.db, "select count(*) from pg_tables "
                                            "where tablename = 'orders'"))


if __name__ == "__main__":
    unittest.main()
