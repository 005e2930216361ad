"""ExternalService: a tether service as a fixtures.Fixture, over the CLI."""

import json
import os
import shutil
import subprocess

import fixtures

__all__ = ["ExternalService", "TetherError", "find_tether"]


class TetherError(Exception):
    """A service could not be started, reset, attached to or stopped.

    The message says which service, why, and what to do about it."""


def find_tether():
    """The tether program: $TETHER_BIN, else the one a wheel bundles with this
    module (made for this very module: `make wheel`), else `tether` on $PATH."""
    env = os.environ.get("TETHER_BIN")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise TetherError("TETHER_BIN=%s is not an executable file" % env)
        return env
    bundled = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "tether")
    if os.access(bundled, os.X_OK):
        return bundled
    found = shutil.which("tether")
    if not found:
        raise TetherError(
            "cannot find the tether program: put it on $PATH or set TETHER_BIN to its path"
        )
    return found


def _config_prefix(path):
    """The [tether] prefix = of a config file (default TETHER).

    Only this one key is read here; tether itself validates the file."""
    if path is None:
        return "TETHER"
    section = None
    prefix = "TETHER"
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
                continue
            if section == "tether" and "=" in line:
                key, value = line.split("=", 1)
                if key.strip() == "prefix":
                    prefix = value.strip()
    return prefix


def _stem(prefix, label):
    return "%s_%s" % (prefix, label.upper().replace("-", "_"))


def _read_configfile(path):
    """Parse a CONFIGFILE: NAME='value' lines, as tether writes them (a
    quote inside a value is written '\\''; a value may span lines)."""
    with open(path, "rb") as f:
        data = f.read()
    out = {}
    i, n = 0, len(data)
    while i < n:
        eq = data.find(b"=", i)
        if eq < 0:
            break
        name = data[i:eq].decode("ascii", "replace")
        i = eq + 1
        value = bytearray()
        while i < n and data[i:i + 1] not in (b"\n", b" ", b"\t"):
            c = data[i:i + 1]
            if c == b"'":
                end = data.find(b"'", i + 1)
                if end < 0:
                    raise TetherError("%s is not a tether CONFIGFILE (unterminated quote)" % path)
                value += data[i + 1:end]
                i = end + 1
            elif c == b"\\" and i + 1 < n:
                value += data[i + 1:i + 2]
                i += 2
            else:
                value += c
                i += 1
        out[name] = os.fsdecode(bytes(value))
        while i < n and data[i:i + 1] == b"\n":
            i += 1
    return out


def _error_text(proc):
    err = os.fsdecode(proc.stderr or b"").strip()
    lines = [l[len("tether: "):] if l.startswith("tether: ") else l for l in err.splitlines()]
    return "\n".join(lines) or "tether exited with status %d" % proc.returncode


class ExternalService(fixtures.Fixture):
    """A private, disposable server for tests, run by tether.

    ExternalService("postgresql") uses a built-in driver (postgresql, redis,
    memcached); ExternalService("files", config_file="tether.ini") a service
    of a config file.

    setUp(use_existing=False, unique_instance=True):
      - use_existing: attach to the instance that <PREFIX>_<LABEL>_CONTROL_PID
        and <PREFIX>_<LABEL>_CONFIGFILE in the environment name (as
        `eval "$(tether start ...)"` sets them).  If they are set and it is
        not running, TetherError: it is never replaced silently.  If they are
        not set, a new instance is made.  cleanUp leaves an attached
        instance running.
      - unique_instance: a fresh private instance (the default); False uses
        the config's fixed definition (fixed port and directory), and a
        second concurrent user gets an "in use by pid N" TetherError.
    Both can also be given to the constructor (for useFixture()).

    After setUp:
      service_label   the section name ("postgresql")
      service_config  its variables by short name ({"URL": ..., "PORT": ...}),
                      plus any unprefixed ones the driver sets (REDIS_URL)
      service_env     the same by full name, as `tether start` prints them
                      (TETHER_POSTGRESQL_URL...), for a child's environment
      config_file_path  the CONFIGFILE other processes can read

    The Python process holds the lease: when it dies, however it dies, the
    service is stopped and its state removed.  A forked child's cleanUp
    never stops its parent's service.
    """

    def __init__(self, service, config_file=None, use_existing=False, unique_instance=True,
                 tether=None):
        super().__init__()
        self.service_label = service
        self.config_file = os.path.abspath(config_file) if config_file else None
        self.use_existing = use_existing
        self.unique_instance = unique_instance
        self._tether = tether
        self.service_config = {}
        self.service_env = {}
        self.config_file_path = None
        self.attached = False
        self._owner = None
        self._stem = None

    # -- fixtures.Fixture --

    def setUp(self, use_existing=None, unique_instance=None):
        if use_existing is not None:
            self.use_existing = use_existing
        if unique_instance is not None:
            self.unique_instance = unique_instance
        super().setUp()

    def _setUp(self):
        self._stem = _stem(_config_prefix(self.config_file), self.service_label)
        if not self._tether:
            self._tether = find_tether()
        self._owner = os.getpid()
        pid = os.environ.get(self._stem + "_CONTROL_PID")
        cfg = os.environ.get(self._stem + "_CONFIGFILE")
        if self.use_existing and (pid or cfg):
            self._attach(pid, cfg)
        else:
            self._start()
        self.addCleanup(self._release)

    def reset(self):
        """Check that the service is alive and ready, then discard what the
        last test did.  A service that died is a TetherError."""
        if not self.service_env:
            raise TetherError("service '%s' is not set up" % self.service_label)
        proc = self._run(["reset", self.service_label], self._instance_env())
        if proc.returncode != 0:
            raise TetherError(_error_text(proc))

    # -- internals --

    def _run(self, args, env, cwd=None):
        cmd = [self._tether, "-q"]
        if self.config_file:
            cmd += ["-f", self.config_file]
        return subprocess.run(cmd + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=cwd, close_fds=True)

    def _clean_env(self):
        """The environment without any instance's variables."""
        env = dict(os.environ)
        for k in list(env):
            if k.endswith("_CONTROL_PID") or k.endswith("_CONFIGFILE"):
                del env[k]
        if not self.config_file:
            env.pop("TETHER_CONFIG", None)
        return env

    def _instance_env(self):
        env = self._clean_env()
        for suffix in ("_CONTROL_PID", "_CONFIGFILE"):
            env[self._stem + suffix] = self.service_env[self._stem + suffix]
        return env

    def _take(self, variables):
        prefix = self._stem + "_"
        if prefix + "CONFIGFILE" not in variables or prefix + "CONTROL_PID" not in variables:
            raise TetherError("service '%s': tether did not hand back %sCONTROL_PID and "
                              "%sCONFIGFILE" % (self.service_label, prefix, prefix))
        self.service_env = dict(variables)
        self.service_config = {}
        for k, v in variables.items():
            self.service_config[k[len(prefix):] if k.startswith(prefix) else k] = v
        self.config_file_path = variables[prefix + "CONFIGFILE"]

    def _start(self):
        args = ["start", "--json", "--watch-pid", str(os.getpid())]
        if not self.unique_instance:
            args.append("--fixed")
        args.append(self.service_label)
        # without a config file: cwd / so that no ./tether.ini is picked up
        proc = self._run(args, self._clean_env(), cwd=None if self.config_file else "/")
        if proc.returncode != 0:
            raise TetherError("cannot start service '%s': %s"
                              % (self.service_label, _error_text(proc)))
        try:
            variables = json.loads(proc.stdout.decode("utf-8", "surrogateescape"))
        except ValueError as e:
            raise TetherError("cannot start service '%s': bad output from tether start: %s"
                              % (self.service_label, e))
        self.attached = False
        self._take(variables)

    def _attach(self, pid, cfg):
        stem = self._stem
        if not pid or not cfg:
            raise TetherError(
                "service '%s': %s is set but %s is not, so the environment does not say "
                "which instance to use (eval \"$(tether start ...)\" sets both)"
                % (self.service_label, stem + ("_CONTROL_PID" if pid else "_CONFIGFILE"),
                   stem + ("_CONFIGFILE" if pid else "_CONTROL_PID")))
        env = self._clean_env()
        env[stem + "_CONTROL_PID"] = pid
        env[stem + "_CONFIGFILE"] = cfg
        proc = self._run(["status"], env)
        if proc.returncode != 0:
            raise TetherError(
                "cannot attach to service '%s' (%s_CONTROL_PID=%s, %s_CONFIGFILE=%s): %s"
                % (self.service_label, stem, pid, stem, cfg, _error_text(proc)))
        try:
            variables = _read_configfile(cfg)
        except OSError as e:
            raise TetherError("cannot attach to service '%s': %s" % (self.service_label, e))
        self.attached = True
        self._take(variables)

    def _release(self):
        env_vars, attached = self.service_env, self.attached
        if not env_vars:
            return
        try:
            if attached or os.getpid() != self._owner:
                return  # not ours to stop: an attached instance, or a forked child
            proc = self._run(["stop"], self._instance_env())
            if proc.returncode != 0:
                raise TetherError("cannot stop service '%s': %s"
                                  % (self.service_label, _error_text(proc)))
        finally:
            self.service_env = {}
            self.service_config = {}
            self.config_file_path = None
            self.attached = False
