"""The Python process holds the lease: SIGKILL in mid-test leaves nothing
within a second; 8 concurrent test processes never collide."""

import os
import signal
import subprocess
import sys
import textwrap
import time

from leftovers import leftovers, wait_clean


def test_sigkill_of_a_python_test_process_mid_test(tmp_path, tether_dir):
    marker = tmp_path / "marker"
    (tmp_path / "test_victim.py").write_text(textwrap.dedent("""
        import os, time
        from tether import ExternalService

        def test_blocks(tether_postgresql, tether_redis, tether_memcached):
            with ExternalService("redis") as own:
                with open(%r, "w") as f:
                    f.write(own.config_file_path)
                time.sleep(600)
        """ % str(marker)))
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "-p", "tether.pytest_plugin", str(tmp_path / "test_victim.py")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=str(tmp_path))
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None, "the test process died early"
        assert time.monotonic() < deadline, "the services did not start"
        time.sleep(0.01)
    assert len(os.listdir(tether_dir)) == 4  # postgresql, redis, memcached, own redis
    assert leftovers(tether_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    left = wait_clean(tether_dir, 1.0)
    assert not left, "1 s after SIGKILL:\n" + "\n".join(left)
    assert time.monotonic() - t0 <= 1.0


WORKER = """
import os, socket, sys
from tether import ExternalService
cfg = sys.argv[1]
redis = ExternalService("redis"); redis.setUp()
tcp = ExternalService("tcp", cfg); tcp.setUp()
port = int(tcp.service_config["PORT"])
assert socket.create_connection(("127.0.0.1", port)).recv(10) == b"pong\\n"
print(redis.config_file_path, tcp.config_file_path, port, flush=True)
sys.stdin.read()   # until everybody is up
redis.reset(); tcp.reset()
redis.cleanUp(); tcp.cleanUp()
print("done", flush=True)
"""


def test_eight_concurrent_test_processes(config, tether_dir):
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, config], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    lines = []
    for p in procs:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        lines.append(line.split())
    for column in range(3):
        values = [l[column] for l in lines]
        assert len(set(values)) == 8, values
    assert len(os.listdir(tether_dir)) == 16
    for p in procs:
        out, err = p.communicate("")
        assert p.returncode == 0, err
        assert out == "done\n"
