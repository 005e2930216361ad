#!/usr/bin/python3
"""tether's chaos harness: randomised, seeded fault injection.

Each trial starts an instance (tether run -- CMD, or tether start), injects
one fault at a random moment -- SIGKILL, SIGTERM or SIGINT to the owner,
the helper or a service process, while starting, while ready, during a
reset or during the stop -- with services that may crash, hang on stop,
double-fork, ignore SIGTERM, flood their log, or find their port taken.
Then it counts what is left: processes carrying the trial's cookie,
instance directories, port reservations, databases made on a `server =`
server and PostgreSQL shared memory segments.  Every count must be zero
(after one `tether gc` when the helper itself was SIGKILLed, as the
contract says).

    tests/chaos/chaos.py [--trials N] [--seed S] [--seconds T] [--build DIR]

The seed is printed first; rerun with --seed to reproduce a trial sequence.
Exit status 1 if anything leaked.
"""

import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def pids_with_env(entry_prefix):
    """pids whose environment has an entry starting with entry_prefix"""
    out = []
    want = entry_prefix.encode()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if any(e.startswith(want) for e in env.split(b"\0")):
            out.append(int(d))
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def port_locks():
    locks = set()
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7].startswith("@tether-port-"):
                locks.add(parts[7])
    return locks


def socket_holders(names):
    """pids holding the abstract unix sockets named (e.g. @tether-port-N)"""
    inodes = {}
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] in names:
                inodes[f"socket:[{parts[6]}]"] = parts[7]
    holders = collections.defaultdict(set)
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                link = os.readlink(f"/proc/{d}/fd/{fd}")
                if link in inodes:
                    holders[inodes[link]].add(int(d))
        except OSError:
            continue
    return holders


def orphan_shm():
    """System V segments with nothing attached: {id: creator pid}"""
    ids = {}
    try:
        with open("/proc/sysvipc/shm") as f:
            next(f)
            for line in f:
                p = line.split()
                if p[6] == "0":  # nattch
                    ids[int(p[1])] = int(p[4])
    except OSError:
        pass
    return ids


def wait_until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.005)
    return pred()


class Harness:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.tether = os.path.join(args.build, "tether")
        self.tserver = os.path.join(args.build, "tests", "servers", "tserver")
        self.work = tempfile.mkdtemp(prefix="tether-chaos.", dir="/dev/shm")
        os.chmod(self.work, 0o711)  # root's postgres must reach its dirs
        self.counts = collections.Counter()
        self.leaks = []
        self.server_env = None
        self.seen_pids = set()  # of every process started under self.work
        self.done = threading.Event()
        self.drivers = ["command"] + self.usable_drivers()

    def usable_drivers(self):
        """Every driver and recipe `tether drivers` lists whose server runs
        here (a `tether run NAME -- true` succeeds), or those of --drivers:
        a new recipe is in the trials without an edit here."""
        names = self.args.drivers.split(",") if self.args.drivers else None
        if names is None:
            out = subprocess.run([self.tether, "drivers"], capture_output=True, text=True,
                                 timeout=30)
            names = [ln.split()[0] for ln in out.stdout.splitlines() if ln.split()]
        usable = []
        env = dict(os.environ, TETHER_DIR=os.path.join(self.work, "probe-state"))
        for name in names:
            if name == "command":
                continue
            if name == "container":  # needs an image: one of our own
                if self.make_image():
                    usable.append(name)
                continue
            try:
                r = subprocess.run([self.tether, "-q", "run", name, "--", "true"], env=env,
                                   capture_output=True, text=True, timeout=120)
                ok = r.returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if ok:
                usable.append(name)
            else:
                log(f"chaos: no {name} trials: its server does not run here")
        return usable

    # ---- container trials: a local busybox image, no registry ----

    def make_image(self):
        """Imports busybox-static as an image (podman, as root: CI's round)."""
        self.image = None
        if not shutil.which("podman") or not os.path.exists("/bin/busybox") or os.geteuid():
            log("chaos: no container trials: they need podman, busybox-static and root")
            return False
        root = os.path.join(self.work, "image")
        os.makedirs(os.path.join(root, "bin"))
        os.makedirs(os.path.join(root, "www"))
        shutil.copy("/bin/busybox", os.path.join(root, "bin", "busybox"))
        with open(os.path.join(root, "www", "index.html"), "w") as f:
            f.write("hello\n")
        tar = os.path.join(self.work, "image.tar")
        subprocess.run(["tar", "-C", root, "-cf", tar, "."], check=True)
        image = f"localhost/tether-chaos-bb:{os.getpid()}"
        r = subprocess.run(["podman", "import", tar, image], capture_output=True, text=True,
                           timeout=120)
        shutil.rmtree(root, ignore_errors=True)
        os.unlink(tar)
        if r.returncode != 0:
            log("chaos: no container trials: podman import failed:", r.stderr.strip())
            return False
        self.image = image
        return True

    def drop_image(self):
        if getattr(self, "image", None):
            subprocess.run(["podman", "rmi", "-f", self.image], capture_output=True, timeout=120)

    def containers(self):
        """tether's containers on the machine (any state), by id."""
        if not getattr(self, "image", None):
            return set()
        r = subprocess.run(["podman", "ps", "-a", "-q", "--filter", "label=tether.instance"],
                           capture_output=True, text=True, timeout=60)
        return set(r.stdout.split())

    # ---- a long-lived server for the server = URL mode ----

    def start_pg_server(self):
        env = dict(os.environ, TETHER_DIR=os.path.join(self.work, "server-state"))
        os.makedirs(env["TETHER_DIR"])
        out = subprocess.run([self.tether, "-q", "start", "--json", "postgresql"], env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            log("chaos: no postgresql server for server = URL trials:", out.stderr.strip())
            return
        self.server_vars = json.loads(out.stdout)
        self.server_env = env
        self.server_url = self.server_vars["TETHER_POSTGRESQL_URL"]

    def stop_pg_server(self):
        if self.server_env:
            env = dict(self.server_env, **self.server_vars)
            subprocess.run([self.tether, "-q", "stop"], env=env, capture_output=True, timeout=60)

    def server_dbs(self):
        if not self.server_env:
            return []
        out = subprocess.run(["psql", "-X", "-qAt", "-c",
                              "select datname from pg_database where datname like 'chaos%'",
                              self.server_url], capture_output=True, text=True, timeout=30)
        return out.stdout.split()

    # ---- whose segments ----

    def watch_our_pids(self):
        """Notes every process started under our work directory while it
        lives: a postmaster is gone by the time its segment is judged, and
        only the segments our processes made are ours to count."""
        prefix = f"TETHER_DIR={self.work}/"
        while not self.done.is_set():
            self.seen_pids.update(pids_with_env(prefix))
            self.done.wait(0.1)

    # ---- one trial ----

    def config(self, tdir, driver, misbehave):
        lines = ["[tether]", "prefix = CH"]
        if driver == "command":
            cmd = f"{self.tserver} --tcp ${{port}}"
            extra = {"crash": " --crash-after 30", "hang": " --ignore-term",
                     "escape": " --escape ${dir}/escaper.pid", "flood": " --flood",
                     "slow": " --delay 40"}.get(misbehave, "")
            port = "auto"
            if misbehave == "port-taken":
                port = str(self.taken_port)
            lines += ["[svc]", f"command = {cmd}{extra}", f"port = {port}", "timeout = 3",
                      "stop_timeout = 0.3", "reset = true"]
        elif driver == "server":
            lines += ["[svc]", "driver = postgresql", f"server = {self.server_url}",
                      "dbname = chaos"]
        elif driver == "container":
            lines += ["[svc]", f"image = {self.image}",
                      "command = /bin/busybox httpd -f -h /www -p 127.0.0.1:${port}",
                      "port = auto", "ready = http:/index.html",
                      "reset = exec:/bin/busybox true", "timeout = 20"]
        else:
            lines += ["[svc]", f"driver = {driver}", "timeout = 20"]
        path = os.path.join(tdir, "tether.ini")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def trial(self, n):
        rng = self.rng
        choices = list(self.drivers)
        if self.server_env:
            choices.append("server")
        driver = rng.choice(choices)
        misbehave = "none"
        if driver == "command":
            misbehave = rng.choice(["none", "crash", "hang", "escape", "flood", "slow",
                                    "port-taken", "none"])
        target = rng.choice(["owner", "helper", "service", "none"])
        if driver == "server" and target == "service":
            target = "helper"
        sig = rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
        moment = rng.choice(["starting", "ready", "reset", "stopping"])
        mode = rng.choice(["run", "start"])
        self.desc = (f"mode={mode} driver={driver} misbehave={misbehave} "
                     f"fault={target}:{signal.Signals(sig).name}@{moment}")
        if self.args.verbose:
            log(f"chaos: trial {n}: {self.desc}")
        self.counts[f"driver={driver}"] += 1
        self.counts[f"fault={target}:{signal.Signals(sig).name}@{moment}"] += 1
        self.counts[f"misbehave={misbehave}"] += 1

        tdir = tempfile.mkdtemp(prefix=f"t{n}.", dir=self.work)
        os.chmod(tdir, 0o711)
        state = os.path.join(tdir, "state")
        os.mkdir(state)
        env = dict(os.environ, TETHER_DIR=state)
        for k in list(env):
            if k.endswith("_CONTROL_PID") or k.endswith("_CONFIGFILE"):
                del env[k]
        taken = None
        if misbehave == "port-taken":
            taken = socket.socket()
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            self.taken_port = taken.getsockname()[1]
        cfg = self.config(tdir, driver, misbehave)
        containers_before = self.containers() if driver == "container" else set()
        ready_file = os.path.join(tdir, "ready")
        helper_killed = False
        delay = rng.uniform(0, 0.05)
        try:
            if mode == "run":
                script = (f"env > {tdir}/env; echo > {ready_file}; "
                          + (f"{self.tether} -q reset svc; " if moment == "reset" else "")
                          + "sleep 30")
                owner = subprocess.Popen([self.tether, "-q", "-f", cfg, "run", "--", "sh", "-c",
                                          script], env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, start_new_session=True)
                if moment != "starting":
                    wait_until(lambda: os.path.exists(ready_file) or owner.poll() is not None, 30)
                time.sleep(delay)
                helper = self.find_helper(state)
                if moment == "stopping" and target != "owner":
                    # stop by ending the command, then strike during the stop
                    wait_until(lambda: os.path.exists(ready_file) or owner.poll() is not None, 30)
                    self.kill_tree(owner.pid, signal.SIGKILL)
                    time.sleep(delay / 5)
                helper_killed = self.strike(target, sig, owner.pid, helper, state)
                # end the test command (once it runs) so that the run finishes
                wait_until(lambda: os.path.exists(ready_file) or owner.poll() is not None, 30)
                self.kill_tree(owner.pid, signal.SIGKILL)
                try:
                    owner.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self.leaks.append((n, "tether run did not finish within 30 s"))
                    owner.kill()
                    owner.wait()
                # a test command orphaned by an owner killed outright is the
                # harness's own (run passes it no death signal, like any
                # parent): still in the owner's process group, unlike the
                # helper, which has its own session
                try:
                    os.killpg(owner.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                starter = subprocess.Popen([self.tether, "-q", "-f", cfg, "start", "--json"],
                                           env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.DEVNULL, start_new_session=True)
                if moment == "starting":
                    time.sleep(delay)
                    helper = self.find_helper(state)
                    if target == "owner":
                        self.send(starter.pid, sig)
                    else:
                        helper_killed = self.strike(target, sig, None, helper, state)
                out, _ = starter.communicate(timeout=60)
                # complete variables are a started instance, even if the
                # starter was killed right after it handed them on (ssh-agent
                # style: from then on the instance is the reader's to stop)
                try:
                    vars_ = json.loads(out) if out.strip() else {}
                except ValueError:
                    vars_ = {}
                senv = dict(env, **vars_)
                if vars_ and moment == "reset":
                    r = subprocess.Popen([self.tether, "-q", "reset"], env=senv,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(delay)
                    helper_killed |= self.strike(target, sig, None, self.find_helper(state),
                                                 state)
                    r.wait(timeout=30)
                elif vars_ and moment == "ready":
                    helper_killed |= self.strike(target, sig, None, self.find_helper(state),
                                                 state)
                if vars_:
                    stopper = subprocess.Popen([self.tether, "-q", "stop"], env=senv,
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
                    if moment == "stopping":
                        time.sleep(delay / 5)
                        helper_killed |= self.strike(target, sig, None, self.find_helper(state),
                                                     state)
                    stopper.wait(timeout=60)
        finally:
            if taken:
                taken.close()
        # a container dies with its helper by the lease, with no gc: 2 s
        if driver == "container" and helper_killed and sig == signal.SIGKILL:
            left = lambda: self.containers() - containers_before
            if not wait_until(lambda: not left(), 2):
                self.leaks.append((n, f"containers 2 s after the helper's SIGKILL, "
                                      f"before gc: {sorted(left())}"))
        # the contract: after a SIGKILLed helper, one gc reaps the rest
        if not self.args.no_gc:
            subprocess.run([self.tether, "-q", "gc"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        self.check(n, state, tdir)
        if driver == "container":
            left = self.containers() - containers_before
            if left and not wait_until(lambda: not (self.containers() - containers_before), 5):
                self.leaks.append((n, f"containers: {sorted(left)}"))
                for c in left:
                    subprocess.run(["podman", "rm", "-f", c], capture_output=True, timeout=60)
        shutil.rmtree(tdir, ignore_errors=True)

    def children_of(self, pid):
        kids = []
        try:
            for t in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{t}/children") as f:
                    kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
        return kids

    def kill_tree(self, pid, sig):
        """signal the descendants of pid (the test command), not pid itself"""
        for kid in self.children_of(pid):
            try:
                with open(f"/proc/{kid}/comm") as f:
                    if f.read().strip() == "tether-helper":
                        continue
            except OSError:  # it exited meanwhile
                continue
            self.kill_tree(kid, sig)
            self.send(kid, sig)

    def find_helper(self, state):
        for d in os.listdir(state) if os.path.isdir(state) else []:
            try:
                with open(os.path.join(state, d, "state")) as f:
                    for line in f:
                        if line.startswith("helper "):
                            return int(line.split()[1])
            except OSError:
                continue
        return None

    def service_pids(self, state):
        pids = []
        for d in os.listdir(state) if os.path.isdir(state) else []:
            try:
                with open(os.path.join(state, d, "state")) as f:
                    for line in f:
                        p = line.split()
                        if p and p[0] == "service" and int(p[2]) > 0:
                            pids.append(int(p[2]))
            except (OSError, ValueError, IndexError):
                continue
        return pids

    def send(self, pid, sig):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, TypeError):
            pass

    def strike(self, target, sig, owner, helper, state):
        """inject the fault; True if the helper got a SIGKILL"""
        if target == "owner" and owner:
            self.send(owner, sig)
        elif target == "helper" and helper:
            self.send(helper, sig)
            return sig == signal.SIGKILL
        elif target == "service":
            for p in self.service_pids(state):
                self.send(p, sig)
        return False

    def check(self, n, state, tdir):
        cookie_env = f"TETHER_DIR={state}"

        def ours():
            return [p for p in pids_with_env("TETHER_COOKIE=")
                    if p in set(pids_with_env(cookie_env))]

        # the helper cleans up asynchronously after its owner died: "within
        # a second" is the contract; allow 5 s on a loaded machine
        gone = wait_until(lambda: not ours() and not os.listdir(state), 5)
        if not gone:
            left = ours()
            if left:
                self.leaks.append((n, f"processes with the cookie: {left}"))
                for p in left:
                    self.send(p, signal.SIGKILL)
            if os.listdir(state):
                self.leaks.append((n, f"instance directories: {os.listdir(state)}"))
        # port reservations held by this trial's processes (other tether
        # users on the machine may hold their own)
        mine = set(pids_with_env(cookie_env))
        def my_locks():
            new = port_locks() - self.locks_before
            return {name for name, pids in socket_holders(new).items() if pids & mine}
        if my_locks() and not wait_until(lambda: not my_locks(), 2):
            self.leaks.append((n, f"port reservations: {sorted(my_locks())}"))
        self.locks_before = port_locks()
        # only segments our processes made: the machine's own PostgreSQL,
        # or another suite's, may leave some meanwhile
        self.seen_pids.update(pids_with_env(f"TETHER_DIR={self.work}/"))
        shm = {i for i, cpid in orphan_shm().items()
               if i not in self.shm_before and cpid in self.seen_pids}
        if shm:
            self.leaks.append((n, f"shared memory segments: {sorted(shm)}"))
            for i in shm:  # so that later trials are judged on their own
                subprocess.run(["ipcrm", "-m", str(i)], capture_output=True)
        dbs = self.server_dbs()
        if dbs:
            self.leaks.append((n, f"databases on the server: {dbs}"))
            for db in dbs:
                subprocess.run(["psql", "-X", "-qAt", "-c", f'DROP DATABASE "{db}" WITH (FORCE)',
                                self.server_url], capture_output=True, timeout=30)

    def run(self):
        log(f"chaos: seed {self.args.seed}, up to {self.args.trials} trials or "
            f"{self.args.seconds} s, drivers: {', '.join(self.drivers)}")
        self.shm_before = set(orphan_shm())
        threading.Thread(target=self.watch_our_pids, daemon=True).start()
        if "postgresql" in self.drivers and shutil.which("psql"):
            self.start_pg_server()
        self.locks_before = port_locks()
        start = time.monotonic()
        done = 0
        try:
            for n in range(self.args.trials):
                if time.monotonic() - start > self.args.seconds:
                    break
                before = len(self.leaks)
                self.trial(n)
                done += 1
                if len(self.leaks) > before:
                    for t, what in self.leaks[before:]:
                        log(f"chaos: trial {t} (seed {self.args.seed}; {self.desc}) LEAKED {what}")
        finally:
            # interrupted in mid trial (Ctrl-C, SIGTERM): its instance too
            for d in os.listdir(self.work):
                state = os.path.join(self.work, d, "state")
                if os.path.isdir(state):
                    subprocess.run([self.tether, "stop", "--all"], capture_output=True,
                                   env=dict(os.environ, TETHER_DIR=state), timeout=60)
            self.stop_pg_server()
            self.drop_image()
            self.done.set()
            shutil.rmtree(self.work, ignore_errors=True)
        elapsed = time.monotonic() - start
        log(f"chaos: {done} trials in {elapsed:.1f} s, seed {self.args.seed}")
        for k, v in sorted(self.counts.items()):
            log(f"chaos:   {k}: {v}")
        # the same faults by target, by signal and by moment
        agg = collections.Counter()
        for k, v in self.counts.items():
            if k.startswith("fault="):
                target, rest = k[6:].split(":")
                sig, moment = rest.split("@")
                agg[f"target={target}"] += v
                agg[f"signal={sig}"] += v
                agg[f"moment={moment}"] += v
        log("chaos: by " + ", ".join(f"{k} {v}" for k, v in sorted(agg.items())))
        # again at the end, where a CI log's tail shows them
        for t, what in self.leaks:
            log(f"chaos: trial {t} (seed {self.args.seed}) LEAKED {what}")
        print(f"chaos: {done - len({t for t, _ in self.leaks})} passed, "
              f"{len({t for t, _ in self.leaks})} failed")
        return 1 if self.leaks else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=170)
    ap.add_argument("--drivers", default=None,
                    help="comma-separated drivers to try (default: every one that runs here)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--no-gc", action="store_true",
                    help="skip the gc after each trial (shows that the harness sees leaks)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    args.build = os.path.abspath(args.build)
    # a SIGTERM (make, a CI timeout) runs the clean-up in run() too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(Harness(args).run())


if __name__ == "__main__":
    main()
