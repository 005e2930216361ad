"""A hostile local user who squats tether's port reservation names, for
tests/cli/ports.bats.

Binds every abstract unix socket name that tether could use to reserve a
port from 20000 to 31999: with UID "-", the old global names
@tether-port-N; else the per-uid names @tether-port-UID-N of the victim's
uid.  A third of them only bound, a third listening, a third listening with
a full queue, so that every kind of holder is seen.  Prints "ready" once
all are held, then holds them until killed or SECONDS pass.

    python3 port_squatter.py UID SECONDS
"""
import resource
import socket
import sys
import time

uid, seconds = sys.argv[1], float(sys.argv[2])
prefix = "tether-port-" if uid == "-" else f"tether-port-{uid}-"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held = []
for p in range(20000, 32000):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(f"\0{prefix}{p}")
    except OSError:  # a real reservation, held right now
        s.close()
        continue
    held.append(s)
    if p % 3 == 1:
        s.listen(16)
    elif p % 3 == 2:
        s.listen(0)  # and one connection queued: the queue is full
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        c.connect(f"\0{prefix}{p}")
        held.append(c)
print("ready", flush=True)
time.sleep(seconds)
