"""What a test left behind under its TETHER_DIR: entries in it, and
processes started under it that carry TETHER_COOKIE (every service does)
or are tether helpers."""

import os
import time


def _environ(pid):
    try:
        with open("/proc/%s/environ" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def leftovers(tether_dir):
    found = ["in TETHER_DIR: %s" % e for e in sorted(os.listdir(tether_dir))] \
        if os.path.isdir(tether_dir) else []
    want = b"TETHER_DIR=" + os.fsencode(tether_dir)
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        env = _environ(pid)
        if want not in env:
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if any(e.startswith(b"TETHER_COOKIE=") for e in env):
            found.append("process %s (%s) carries TETHER_COOKIE" % (pid, comm))
        elif comm in ("tether-helper", "tether"):
            found.append("tether process %s (%s) still running" % (pid, comm))
    return found


def wait_clean(tether_dir, seconds=1.0):
    """Leftovers that are still there after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        left = leftovers(tether_dir)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)
