"""The connection details as the usual client libraries take them: each
client is handed the variable as it is (`_URL`, `REDIS_URL`, `_ADDRESS`),
for the unix-socket default and for `tcp = yes` (with its password), and
must reach the service that tether started.  These are the lines that
docs/config.md gives under "Connecting"."""

import asyncio
import hashlib
import os
import shutil
import subprocess
import tempfile
import urllib.parse

# the Debian packages that `make deps-check` installs
import asyncpg
import psycopg
import psycopg2
import pymemcache.client.base
import pytest
import redis
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

from leftovers import wait_clean
from tether import ExternalService

SQL = "SELECT current_database(), current_user, inet_server_addr() IS NOT NULL"


def start(directory, driver, tcp=False, label=None, **keys):
    """A started service of that driver, with a config file in directory."""
    label = label or driver
    path = os.path.join(str(directory), "%s.ini" % label)
    lines = ["[%s]" % label, "driver = %s" % driver]
    lines += ["tcp = yes"] if tcp else []
    lines += ["%s = %s" % kv for kv in keys.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    svc = ExternalService(label, config_file=path)
    svc.setUp()
    return svc


@pytest.fixture
def service(tmp_path):
    """service(driver, tcp=False, label=None, **keys): a service of the
    test's own, stopped at the end of the test."""
    started = []

    def get(*args, **kw):
        started.append(start(tmp_path, *args, **kw))
        return started[-1]
    yield get
    for svc in reversed(started):
        svc.cleanUp()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """shared(driver, tcp=False): one service for the module's tests that
    only connect (a PostgreSQL start costs seconds on a loaded machine),
    started on first use in a TETHER_DIR of its own, which holds nothing
    once they are stopped."""
    state = tempfile.mkdtemp(prefix="tether-py.")
    configs = tmp_path_factory.mktemp("shared")
    started = {}

    def get(driver, tcp=False):
        if (driver, tcp) not in started:
            old = os.environ["TETHER_DIR"]
            os.environ["TETHER_DIR"] = state
            try:
                started[driver, tcp] = start(configs, driver, tcp,
                                             label="%s-%s" % (driver, "tcp" if tcp else "unix"))
            finally:
                os.environ["TETHER_DIR"] = old
        return started[driver, tcp]
    yield get
    for svc in started.values():
        svc.cleanUp()
    left = wait_clean(state, 1.0)
    shutil.rmtree(state, ignore_errors=True)
    assert not left, "LEFT BEHIND:\n" + "\n".join(left)


def expect(svc, tcp):
    """What SQL returns on the service's database."""
    c = svc.service_config
    return (c["DBNAME"], c["USER"], tcp)


def with_scheme(url, scheme):
    assert url.startswith("postgresql://"), url
    return scheme + url[len("postgresql"):]


def sqlalchemy_row(url):
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(conn.execute(sqlalchemy.text(SQL)).one())
    finally:
        engine.dispose()


def sqlalchemy_asyncpg_row(url):
    async def query():
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return tuple((await conn.execute(sqlalchemy.text(SQL))).one())
        finally:
            await engine.dispose()
    return asyncio.run(query())


def asyncpg_row(url):
    async def query():
        conn = await asyncpg.connect(url)
        try:
            return tuple(await conn.fetchrow(SQL))
        finally:
            await conn.close()
    return asyncio.run(query())


def psycopg2_row(url):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(SQL)
            return cur.fetchone()
    finally:
        conn.close()


def psycopg_row(url):
    with psycopg.connect(url) as conn:
        return conn.execute(SQL).fetchone()


def psql_row(url):
    out = subprocess.run(["psql", "-X", "-qAt", "-F", " ", "-c", SQL, url], check=True,
                         capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
    db, user, tcp = out.split()
    return (db, user, tcp == "t")


PG_CLIENTS = {
    "psql": psql_row,
    "psycopg2": psycopg2_row,
    "psycopg": psycopg_row,
    "sqlalchemy": sqlalchemy_row,
    "sqlalchemy+psycopg2": lambda u: sqlalchemy_row(with_scheme(u, "postgresql+psycopg2")),
    "sqlalchemy+asyncpg": lambda u: sqlalchemy_asyncpg_row(with_scheme(u, "postgresql+asyncpg")),
    "asyncpg": asyncpg_row,
}


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
@pytest.mark.parametrize("client", sorted(PG_CLIENTS))
def test_postgresql_url(shared, client, tcp):
    svc = shared("postgresql", tcp)
    url = svc.service_config["URL"]
    assert PG_CLIENTS[client](url) == expect(svc, tcp), url
    if tcp:
        assert svc.service_config["PASSWORD"] in url
    else:
        # the socket directory goes in the query, where every client looks
        assert urllib.parse.urlsplit(url).hostname is None, url


@pytest.fixture
def odd_dir(tether_dir, monkeypatch):
    """TETHER_DIR with a space, '+', '&' and '%' in its path (removed after
    the services that live in it)."""
    odd = os.path.join(tether_dir, "a b+c&d%e")
    os.mkdir(odd, 0o700)
    os.chmod(tether_dir, 0o711)  # as root, the server's user walks through it
    monkeypatch.setenv("TETHER_DIR", odd)
    yield odd
    os.rmdir(odd)


def test_postgresql_url_quotes_the_socket_directory(odd_dir, service):
    """The socket directory is query-encoded, so that Python's parsers
    (which read '+' as a space) and libpq find the same directory."""
    svc = service("postgresql")
    url = svc.service_config["URL"]
    assert "a%20b%2Bc%26d%25e" in url, url
    for client in sorted(PG_CLIENTS):
        assert PG_CLIENTS[client](url) == expect(svc, False), (client, url)


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
@pytest.mark.parametrize("client", ["psql", "sqlalchemy", "asyncpg"])
def test_postgresql_server_url(shared, service, client, tcp):
    """server = URL on a server reached through its socket directory (or
    over TCP with a password): the unique database's URL is one that
    SQLAlchemy takes too."""
    server = shared("postgresql", tcp)
    # after a reset and a health check, which once left tether's own
    # connection on template1, the default template
    server.reset()
    db = service("postgresql", label="app", server=server.service_config["URL"])
    url = db.service_config["URL"]
    assert db.service_config["DBNAME"] != server.service_config["DBNAME"]
    assert PG_CLIENTS[client](url) == expect(db, tcp), url


@pytest.mark.parametrize("reset", ["template", "truncate"])
def test_postgresql_create_database_after_reset(service, reset):
    """A suite that makes its own database, as Django's and pytest-django's
    test runners do (CREATE DATABASE copies template1), after tether's
    resets and health checks: template1 has no connection of tether's."""
    svc = service("postgresql", reset=reset)
    svc.reset()
    svc.reset()
    subprocess.run([os.environ["TETHER_BIN"], "status"], env=dict(os.environ, **svc.service_env), check=True)
    conn = psycopg2.connect(svc.service_config["URL"])
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE test_made_by_the_suite")
            cur.execute("DROP DATABASE test_made_by_the_suite")
    finally:
        conn.close()


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
@pytest.mark.parametrize("name", ["URL", "REDIS_URL"])
def test_redis_from_url(shared, tcp, name):
    svc = shared("redis", tcp)
    url = svc.service_config[name]
    assert url.startswith("redis://" if tcp else "unix://"), url
    r = redis.from_url(url)
    try:
        assert r.ping()
        r.set("k", "v")
        where = r.connection_pool.connection_kwargs
        if tcp:
            assert (where["host"], where["port"]) == ("127.0.0.1", int(svc.service_config["PORT"]))
        else:
            assert where["path"] == svc.service_config["SOCKET"]
        assert where["db"] == 0
    finally:
        r.close()


def test_redis_url_quotes_the_socket_path(odd_dir, service):
    svc = service("redis")
    url = svc.service_config["URL"]
    assert "a%20b%2Bc%26d%25e" in url, url
    r = redis.from_url(url)
    try:
        assert r.ping()
        assert r.connection_pool.connection_kwargs["path"] == svc.service_config["SOCKET"]
    finally:
        r.close()


def redis_cli(svc, *words, env=None):
    c = svc.service_config
    where = ["-s", c["SOCKET"]] if "SOCKET" in c else ["-p", c["PORT"]]
    return subprocess.run(["redis-cli"] + where + list(words), env=env, check=True,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout.strip()


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_redis_cli(shared, tcp):
    svc = shared("redis", tcp)
    env = dict(os.environ, REDISCLI_AUTH=svc.service_config["PASSWORD"]) if tcp else None
    assert redis_cli(svc, "PING", env=env) == "PONG"
    if tcp:  # -u takes redis:// only (redis-cli 7.0 says "Invalid URI scheme" to unix://)
        out = subprocess.run(["redis-cli", "-u", svc.service_config["URL"], "PING"], check=True,
                             capture_output=True, text=True, stdin=subprocess.DEVNULL).stdout
        assert out.strip() == "PONG"


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
def test_pymemcache_address(shared, tcp):
    svc = shared("memcached", tcp)
    address = svc.service_config["ADDRESS"]
    client = pymemcache.client.base.Client(address)
    try:
        client.set("k", b"v")
        assert client.get("k") == b"v"
    finally:
        client.close()
    assert address == ("127.0.0.1:" + svc.service_config["PORT"] if tcp
                       else svc.service_config["SOCKET"])


@pytest.mark.parametrize("tcp", [False, True], ids=["unix", "tcp"])
@pytest.mark.parametrize("how", ["option", "environment"])
def test_libmemcached_tools_address(shared, tcp, how):
    svc = shared("memcached", tcp)
    address = svc.service_config["ADDRESS"]
    client = pymemcache.client.base.Client(address)
    try:
        client.set("tools", b"hello " + how.encode())
    finally:
        client.close()
    args, env = ["memccat"], dict(os.environ)
    if how == "option":
        args.append("--servers=" + address)
    else:
        env["MEMCACHED_SERVERS"] = address
    out = subprocess.run(args + ["tools"], env=env, check=True, capture_output=True, text=True,
                         stdin=subprocess.DEVNULL).stdout
    assert out == "hello %s\n" % how


LUA_LIBRARY = "#!lua name=testlib\nredis.register_function('one', function() return 1 end)"


def flushes(r):
    """How many SCRIPT FLUSH and FUNCTION FLUSH the server ran."""
    stats = r.info("commandstats")
    return tuple(stats.get("cmdstat_%s|flush" % kind, {}).get("calls", 0)
                 for kind in ("script", "function"))


def test_redis_reset_clears_scripts_and_functions(service):
    """FLUSHALL leaves scripts (SCRIPT LOAD, EVAL) and functions: a reset
    takes them too, and flushes them only when there are some (SCRIPT
    FLUSH costs 150 us even with nothing to flush)."""
    svc = service("redis")
    r = redis.from_url(svc.service_config["URL"])
    try:
        svc.reset()
        assert flushes(r) == (0, 0)
        sha = r.script_load("return 1")
        assert r.eval("return 2", 0) == 2  # EVAL caches its script too
        evaled = hashlib.sha1(b"return 2").hexdigest()
        r.function_load(LUA_LIBRARY)
        r.set("k", "v")
        assert r.script_exists(sha, evaled) == [True, True]
        svc.reset()
        assert r.dbsize() == 0
        assert r.script_exists(sha, evaled) == [False, False]
        assert r.function_list() == []
        assert flushes(r) == (1, 1)
    finally:
        r.close()


def test_redis_reset_keeps_what_docs_say(service):
    """What docs/config.md says survives a reset: ACL users, CONFIG SET
    values, the test's connections with their names, selected database and
    subscriptions."""
    svc = service("redis")
    r = redis.Redis(unix_socket_path=svc.service_config["SOCKET"], single_connection_client=True)
    sub = redis.from_url(svc.service_config["URL"]).pubsub()
    try:
        r.select(3)
        r.client_setname("held")
        r.acl_setuser("alice", enabled=True, passwords=["+pw"], commands=["+get"], keys=["*"])
        r.config_set("maxmemory", "12345678")
        sub.subscribe("news")
        assert sub.get_message(timeout=10)["type"] == "subscribe"
        svc.reset()
        assert r.client_getname() == "held"  # the same connection, still open
        assert r.client_info()["db"] == 3
        assert "alice" in r.acl_users()
        assert r.config_get("maxmemory") == {"maxmemory": "12345678"}
        assert r.publish("news", "x") == 1
    finally:
        sub.close()
        r.close()


@pytest.mark.parametrize("renamed", ["FUNCTION", "INFO"])
def test_redis_reset_without(service, renamed):
    """A server without FUNCTION (redis before 7; here: renamed away), or
    whose INFO does not tell what it holds, is reset all the same."""
    svc = service("redis", **{"setting.rename-command": '%s ""' % renamed})
    r = redis.from_url(svc.service_config["URL"])
    try:
        with pytest.raises(redis.ResponseError, match="unknown command"):
            r.function_list() if renamed == "FUNCTION" else r.info()
        sha = r.script_load("return 1")
        if renamed != "FUNCTION":
            r.function_load(LUA_LIBRARY)
        r.set("k", "v")
        svc.reset()
        svc.reset()  # twice: nothing left is no error either
        assert r.dbsize() == 0
        assert r.script_exists(sha) == [False]
        if renamed != "FUNCTION":
            assert r.function_list() == []
    finally:
        r.close()
