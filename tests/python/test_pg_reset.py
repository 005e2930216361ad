"""PostgreSQL's resets as applications see them: reset = truncate keeps the
connections they hold; both resets roll back a test's prepared transactions."""

import psycopg2
import pytest

from tether import ExternalService, TetherError

SCHEMA = """
CREATE TABLE author (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE book (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                   author int NOT NULL REFERENCES author, title text,
                   slug text GENERATED ALWAYS AS (lower(title)) STORED);
CREATE TABLE audit (what text);
CREATE FUNCTION audit_book() RETURNS trigger LANGUAGE plpgsql AS
  $$BEGIN INSERT INTO audit VALUES (NEW.title); RETURN NEW; END$$;
CREATE TRIGGER audit_book AFTER INSERT ON book FOR EACH ROW EXECUTE FUNCTION audit_book();
CREATE TABLE empty_at_init (x int);
CREATE SEQUENCE ticket START 100;
INSERT INTO author (name) VALUES ('Le Guin'), ('Borges');
INSERT INTO book (author, title) VALUES (1, 'Earthsea'), (2, 'Ficciones');
TRUNCATE audit;
SELECT nextval('ticket');
"""


@pytest.fixture
def pg(tmp_path):
    def start(reset):
        (tmp_path / "schema.sql").write_text(SCHEMA)
        lines = ["[postgresql]", "init_sql = schema.sql",
                 "setting.max_prepared_transactions = 4"]
        if reset:
            lines.append("reset = " + reset)
        (tmp_path / "tether.ini").write_text("\n".join(lines) + "\n")
        svc = ExternalService("postgresql", str(tmp_path / "tether.ini"))
        svc.setUp()
        return svc
    made = []
    yield lambda reset=None: made.append(start(reset)) or made[-1]
    for svc in made:
        svc.cleanUp()


def connect(svc, autocommit=True):
    c = psycopg2.connect(svc.service_config["URL"])
    c.autocommit = autocommit
    return c


def one(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def mess_up(conn):
    """What a test does: rows everywhere, sequences used, a table of its own."""
    for sql in ["INSERT INTO author (id, name) VALUES (30, 'Calvino')",
                "INSERT INTO book (author, title) VALUES (30, 'Cosmicomics')",
                "UPDATE author SET name = 'X' WHERE id = 1",
                "DELETE FROM book WHERE id = 2",
                "INSERT INTO empty_at_init VALUES (1)",
                "SELECT nextval('ticket'), nextval('ticket')",
                "CREATE TABLE IF NOT EXISTS made_by_test (id serial, v int)",
                "INSERT INTO made_by_test (v) VALUES (1), (2)"]:
        with conn.cursor() as cur:
            cur.execute(sql)


def assert_init_state(conn):
    assert one(conn, "SELECT id, name FROM author ORDER BY id") == [(1, "Le Guin"), (2, "Borges")]
    assert one(conn, "SELECT id, author, title, slug FROM book ORDER BY id") == [
        (1, 1, "Earthsea", "earthsea"), (2, 2, "Ficciones", "ficciones")]
    # the init rows went back without firing the test's triggers again
    assert one(conn, "SELECT count(*) FROM audit") == [(0,)]
    assert one(conn, "SELECT count(*) FROM empty_at_init") == [(0,)]
    # sequences continue from their init values
    assert one(conn, "SELECT nextval('ticket'), nextval('author_id_seq')") == [(101, 3)]
    assert one(conn, "INSERT INTO book (author, title) VALUES (1, 'Lathe') RETURNING id") == [(3,)]


def test_truncate_reset_keeps_a_session_wide_connection(pg):
    svc = pg("truncate")
    held = connect(svc)
    pid = one(held, "SELECT pg_backend_pid()")[0][0]
    for _ in range(3):
        mess_up(held)
        svc.reset()
        # the same session, still there, sees the init state
        assert one(held, "SELECT pg_backend_pid()") == [(pid,)]
        assert_init_state(held)
    # a table a test made stays, emptied; its sequence restarts
    assert one(held, "SELECT count(*) FROM made_by_test") == [(0,)]
    assert one(held, "SELECT nextval('made_by_test_id_seq')") == [(1,)]
    held.close()


def test_truncate_reset_ends_only_the_sessions_that_hold_locks(pg):
    svc = pg("truncate")
    idle = connect(svc)
    # psycopg2's default: a transaction stays open after a SELECT, holding
    # its lock on the table, which TRUNCATE would wait for
    in_tx = connect(svc, autocommit=False)
    one(in_tx, "SELECT count(*) FROM book")
    mess_up(idle)
    svc.reset()
    assert_init_state(idle)
    with pytest.raises(psycopg2.OperationalError):
        one(in_tx, "SELECT 1")
    in_tx.close()
    idle.close()


@pytest.mark.parametrize("reset", [None, "template", "truncate"])
def test_reset_rolls_back_prepared_transactions(pg, reset):
    svc = pg(reset)
    c = connect(svc, autocommit=False)
    c.tpc_begin(c.xid(1, "left-by-a-test", "tether"))
    with c.cursor() as cur:
        cur.execute("INSERT INTO author (name) VALUES ('in 2pc')")
    c.tpc_prepare()
    c.close()
    svc.reset()
    check = connect(svc)
    assert one(check, "SELECT count(*) FROM pg_prepared_xacts") == [(0,)]
    assert one(check, "SELECT name FROM author ORDER BY id") == [("Le Guin",), ("Borges",)]
    check.close()


def test_template_reset_still_ends_connections(pg):
    svc = pg(None)
    held = connect(svc)
    mess_up(held)
    svc.reset()
    with pytest.raises(psycopg2.OperationalError):
        one(held, "SELECT 1")
    held.close()
    c = connect(svc)
    assert_init_state(c)
    c.close()


def test_truncate_reset_on_a_server_url_goes_back_to_its_template(tmp_path):
    with ExternalService("postgresql") as server:
        url = server.service_config["URL"]
        c = psycopg2.connect(url)
        c.autocommit = True
        for sql in ["CREATE TABLE item (id serial PRIMARY KEY, name text)",
                    "INSERT INTO item (name) VALUES ('a'), ('b')",
                    "CREATE DATABASE src TEMPLATE tether"]:
            c.cursor().execute(sql)
        c.close()
        (tmp_path / "srv.ini").write_text(
            "[tether]\nprefix = SRV\n[app]\ndriver = postgresql\nserver = %s\n"
            "template = src\nreset = truncate\n" % url)
        with ExternalService("app", str(tmp_path / "srv.ini")) as app:
            held = connect(app)
            pid = one(held, "SELECT pg_backend_pid()")
            one(held, "INSERT INTO item (name) VALUES ('c') RETURNING id")
            app.reset()
            assert one(held, "SELECT pg_backend_pid()") == pid
            assert one(held, "SELECT string_agg(name, ',' ORDER BY id), max(id) FROM item") == [
                ("a,b", 2)]
            assert one(held, "INSERT INTO item (name) VALUES ('d') RETURNING id") == [(3,)]
            held.close()


def test_truncate_reset_of_a_schema_a_test_changed_fails_and_says_why(pg):
    svc = pg("truncate")
    c = connect(svc)
    one(c, "SELECT count(*) FROM book")
    c.cursor().execute("DROP TABLE book")
    with pytest.raises(TetherError) as err:
        svc.reset()
    msg = str(err.value)
    assert msg.startswith("[postgresql] reset failed: reset = truncate: ")
    assert 'does not exist' in msg and "reset = template resets the schema too" in msg
    # nothing half done: the rest of the data is as the test left it
    c.cursor().execute("INSERT INTO author (name) VALUES ('kept')")
    assert one(c, "SELECT count(*) FROM author") == [(3,)]
    c.close()
