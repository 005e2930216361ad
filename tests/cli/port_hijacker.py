"""A hostile local user's port hijacker, for tests/cli/ports.bats.

Binds 127.0.0.1:PORT before the service can, for each port appended to
PORTFILE (the test's wrapper writes the service's port there just before it
waits for the hijacker and runs the server: a real attacker learns the port
from /proc/net/unix, where the reservation's name shows it, but watching
that would also catch other people's instances), and answers every request
on it with REPLY.  Prints "watching", then each port it took, one a line.

    python3 port_hijacker.py REPLY PORTFILE SECONDS

REPLY takes the escapes \\r and \\n; SECONDS bounds its life.  It only does
what any local user can.
"""
import select
import socket
import sys
import time

reply = sys.argv[1].replace("\\r", "\r").replace("\\n", "\n").encode()
portfile = sys.argv[2]
deadline = time.monotonic() + float(sys.argv[3])
print("watching", flush=True)
done = 0
listeners, conns = [], []
while time.monotonic() < deadline:
    try:
        with open(portfile) as f:
            ports = [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        ports = []
    for port in ports[done:]:
        done += 1
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            s.close()
            continue
        s.listen(64)
        listeners.append(s)
        print(port, flush=True)
    ready, _, _ = select.select(listeners + conns, [], [], 0.002)
    for s in ready:
        if s in listeners:
            c, _ = s.accept()
            conns.append(c)
            continue
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if data:
            try:
                s.sendall(reply)
            except OSError:
                pass
        else:
            conns.remove(s)
            s.close()
