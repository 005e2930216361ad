"""tether with pytest: the plugin's fixtures start each service once per
session (per xdist worker) and reset it before each test.

    python3 -m pytest -p tether.pytest_plugin test_pytest_example.py
(or pytest_plugins = ["tether.pytest_plugin"] in conftest.py; a pip
install of tether enables the plugin by itself)."""

import os
import socket
import subprocess
import urllib.request


def psql(url, query):
    return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", query],
                          check=True, capture_output=True, text=True).stdout.strip()


def redis(sock_path, *words):
    """One command over RESP, without a client library."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    s.sendall(("*%d\r\n" % len(words) + "".join(
        "$%d\r\n%s\r\n" % (len(w.encode()), w) for w in words)).encode())
    reply = s.recv(4096).decode()
    s.close()
    return reply.split("\r\n")[0]


def test_1_writes(tether_postgresql, tether_redis):
    url = tether_postgresql.service_config["URL"]
    psql(url, "create table orders (id int); insert into orders values (1)")
    assert redis(tether_redis.service_config["SOCKET"], "SET", "k", "v") == "+OK"


def test_2_sees_a_clean_slate(tether_postgresql, tether_redis):
    url = tether_postgresql.service_config["URL"]
    assert psql(url, "select count(*) from pg_tables where tablename = 'orders'") == "0"
    assert redis(tether_redis.service_config["SOCKET"], "DBSIZE") == ":0"


def test_memcached(tether_memcached):
    assert "SOCKET" in tether_memcached.service_config or "PORT" in tether_memcached.service_config


# A service of the project's own config file, through the factory:
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tether.ini")


def test_config_file_service(tether_service):
    files = tether_service("files", CONFIG)   # examples/tether.ini [files]
    with urllib.request.urlopen(files.service_config["URL"]) as r:
        assert r.status == 200
