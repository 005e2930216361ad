"""lined: a made-up line server for the recipe tests (tests/cli/recipes.bats).

usage: lined.py unix PATH | tcp PORT [--slow-start]
PING -> +PONG; FLUSH -> OK (and "flushed" in its log); GREETING -> the
greeting line of ./lined.conf (its working directory's); anything else is
echoed.  Says "lined ready" on stdout once it listens."""
import os
import socket
import sys
import threading


def serve(conn):
    f = conn.makefile("rwb")
    for line in f:
        word = line.strip()
        if word == b"PING":
            f.write(b"+PONG\r\n")
        elif word == b"FLUSH":
            print("flushed", flush=True)
            f.write(b"OK\r\n")
        elif word == b"GREETING":
            with open("lined.conf", "rb") as c:
                f.write(c.readline())
        else:
            f.write(line)
        f.flush()


def main():
    kind, where = sys.argv[1], sys.argv[2]
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX)
        s.bind(where)
    else:
        s = socket.socket(socket.AF_INET)
        s.bind(("127.0.0.1", int(where)))
    s.listen(16)
    print("lined ready in", os.getcwd(), "args", " ".join(sys.argv[3:]), flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


main()
