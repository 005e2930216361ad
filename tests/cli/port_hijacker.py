"""A hostile local user's port hijacker, for tests/cli/ports.bats.

Watches /proc/net/unix for a tether port reservation (an abstract unix
socket @tether-port-...-N) that was not there when it started, binds
127.0.0.1:N before the service can, and answers every request on it with
REPLY.  Prints each port it took, one a line, on stdout.

    python3 port_hijacker.py REPLY COUNT SECONDS

REPLY takes the escapes \\r and \\n; COUNT is how many reservations to
hijack (0: every one); SECONDS bounds its life.  It never touches tether's
own sockets: it only does what any local user can.
"""
import re
import select
import socket
import sys
import time

reply = sys.argv[1].replace("\\r", "\r").replace("\\n", "\n").encode()
count = int(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
NAME = re.compile(r"^@tether-port-(?:\d+-)?(\d+)$")


def reservations():
    names = set()
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and NAME.match(parts[7]):
                names.add(parts[7])
    return names


seen = reservations()
print("watching", flush=True)
listeners, conns = [], []
taken = 0
while time.monotonic() < deadline:
    if count == 0 or taken < count:
        for name in sorted(reservations() - seen):
            seen.add(name)
            port = int(NAME.match(name).group(1))
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            s.listen(64)
            listeners.append(s)
            taken += 1
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
