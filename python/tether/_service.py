"""Service: a tether service over the CLI, without the fixtures library.

ExternalService (tether._fixture) adds the fixtures.Fixture API on top; this
module stays light because the pytest plugin imports it in every process
and xdist worker, and `fixtures` alone costs more than starting a Redis."""

import json
import os
import shutil
import subprocess

__all__ = ["Service", "TetherError", "find_tether"]


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


def _unlabeled(text, label):
    """text without its own leading "[label] ": the message that quotes it
    names the service first, once."""
    head = "[%s]" % label
    if text[:len(head)].lower() == head.lower():
        text = text[len(head):]
        text = text[1:] if text.startswith(":") else text
        text = text[1:] if text.startswith(" ") else text
    return text


class Service:
    """A private, disposable server for tests, run by tether.

    Service("postgresql") uses a built-in driver (postgresql, redis,
    memcached); Service("files", config_file="tether.ini") a service of a
    config file.  tether.ExternalService is the same as a fixtures.Fixture
    (setUp/cleanUp, useFixture); this class needs no library.

        svc = Service("redis").setup()     # or: with Service("redis") as svc:
        svc.reset()
        svc.cleanup()

    setup(use_existing=False, unique_instance=True):
      - use_existing: attach to the instance that <PREFIX>_<LABEL>_CONTROL_PID
        and <PREFIX>_<LABEL>_CONFIGFILE in the environment name (as
        `eval "$(tether start ...)"` sets them).  If they are set and it is
        not running, TetherError: it is never replaced silently.  If they are
        not set, a new instance is made.  cleanup leaves an attached
        instance running.
      - unique_instance: a fresh private instance (the default); False uses
        the config's fixed definition (fixed port and directory), and a
        second concurrent user gets an "in use by pid N" TetherError.
    Both can also be given to the constructor.

    After setup:
      service_label   the section name ("postgresql")
      service_config  its variables by short name ({"URL": ..., "PORT": ...}),
                      plus any unprefixed ones the driver sets (REDIS_URL)
      service_env     the same by full name, as `tether start` prints them
                      (TETHER_POSTGRESQL_URL...), for a child's environment
      config_file_path  the CONFIGFILE other processes can read
      log()           what the service wrote to stdout and stderr

    The Python process holds the lease: when it dies, however it dies, the
    service is stopped and its state removed.  A forked child's cleanup
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
        self._names = None  # what `tether _names` handed back for this service

    def setup(self, use_existing=None, unique_instance=None):
        """Start the service, or attach to it (use_existing); returns self."""
        if use_existing is not None:
            self.use_existing = use_existing
        if unique_instance is not None:
            self.unique_instance = unique_instance
        if self.service_env:
            raise TetherError("[%s] is already set up (its CONFIGFILE is %s)"
                              % (self.service_label, self.config_file_path))
        self._open()
        return self

    def cleanup(self):
        """Stop the service and remove all it made, and return when that is
        done; an attached instance is left running."""
        self._release()

    def __repr__(self):
        state = self.config_file_path or "not set up"
        return "<%s %s: %s>" % (type(self).__name__, self.service_label, state)

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def _open(self):
        if not self._tether:
            self._tether = find_tether()
        self._owner = os.getpid()
        self._names = self._ask_names()
        pid = os.environ.get(self._var("CONTROL_PID"))
        cfg = os.environ.get(self._var("CONFIGFILE"))
        if self.use_existing and (pid or cfg):
            self._attach(pid, cfg)
        else:
            self._start()

    def reset(self):
        """Check that the service is alive and ready, then discard what the
        last test did.  A service that died is a TetherError."""
        if not self.service_env:
            raise TetherError("[%s] is not set up" % self.service_label)
        proc = self._run(["reset", self.service_label], self._instance_env())
        if proc.returncode != 0:
            raise TetherError(_error_text(proc))

    def log(self):
        """What the service has written to stdout and stderr so far (its log,
        as `tether logs LABEL` prints it)."""
        if not self.service_env:
            raise TetherError("[%s] is not set up" % self.service_label)
        proc = self._run(["logs", self.service_label], self._instance_env())
        if proc.returncode != 0:
            raise TetherError("[%s] cannot read its log: %s"
                              % (self.service_label,
                                 _unlabeled(_error_text(proc), self.service_label)))
        return proc.stdout.decode("utf-8", "replace")

    # -- internals --

    def _run(self, args, env, cwd=None):
        cmd = [self._tether, "-q"]
        if self.config_file:
            cmd += ["-f", self.config_file]
        return subprocess.run(cmd + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, cwd=cwd, close_fds=True)

    def _run_config(self, args):
        """Run tether on this service's config: the file, else the built-in
        drivers from / (so that no ./tether.ini is picked up)."""
        return self._run(args, self._clean_env(), cwd=None if self.config_file else "/")

    def _json(self, proc, command):
        try:
            return json.loads(proc.stdout.decode("utf-8", "surrogateescape"))
        except ValueError as e:
            raise TetherError("[%s] cannot start: bad output from tether %s: %s"
                              % (self.service_label, command, e))

    def _ask_names(self):
        """The names tether gives this service's variables, from tether
        itself (`tether _names`, as `tether start` would name them): the
        prefix, the label's spelling and whether the config file or the
        built-in driver serves it are tether's to say, never guessed here."""
        proc = self._run_config(["_names", "--json", self.service_label])
        if proc.returncode != 0:
            raise TetherError("[%s] cannot start: %s"
                              % (self.service_label,
                                 _unlabeled(_error_text(proc), self.service_label)))
        names = self._json(proc, "_names")[0]
        if names["config_file"] is None:
            self.config_file = None  # the built-in driver: the file has no such service
        return names

    def _var(self, name):
        """The full name of this service's variable `name` (CONTROL_PID)."""
        return self._names["vars"][name]

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
        for name in (self._var("CONTROL_PID"), self._var("CONFIGFILE")):
            env[name] = self.service_env[name]
        return env

    def _take(self, variables):
        pid, cfg = self._var("CONTROL_PID"), self._var("CONFIGFILE")
        if cfg not in variables or pid not in variables:
            raise TetherError("[%s] tether did not hand back %s and %s"
                              % (self.service_label, pid, cfg))
        self.service_env = dict(variables)
        self.service_config = {}
        stem = self._names["stem"] + "_"
        for k, v in variables.items():
            self.service_config[k[len(stem):] if k.startswith(stem) else k] = v
        self.config_file_path = variables[cfg]

    def _start(self):
        args = ["start", "--json", "--watch-pid", str(os.getpid())]
        if not self.unique_instance:
            args.append("--fixed")
        args.append(self.service_label)
        proc = self._run_config(args)
        if proc.returncode != 0:
            raise TetherError("[%s] cannot start: %s"
                              % (self.service_label,
                                 _unlabeled(_error_text(proc), self.service_label)))
        variables = self._json(proc, "start")
        self.attached = False
        self._take(variables)

    def _attach(self, pid, cfg):
        pid_name, cfg_name = self._var("CONTROL_PID"), self._var("CONFIGFILE")
        if not pid or not cfg:
            raise TetherError(
                "[%s] %s is set but %s is not, so the environment does not say "
                "which instance to use (eval \"$(tether start ...)\" sets both)"
                % (self.service_label, pid_name if pid else cfg_name,
                   cfg_name if pid else pid_name))
        env = self._clean_env()
        env[pid_name] = pid
        env[cfg_name] = cfg
        proc = self._run(["status"], env)
        if proc.returncode != 0:
            raise TetherError(
                "[%s] cannot attach (%s=%s, %s=%s): %s"
                % (self.service_label, pid_name, pid, cfg_name, cfg, _error_text(proc)))
        try:
            variables = _read_configfile(cfg)
        except OSError as e:
            raise TetherError("[%s] cannot attach: %s" % (self.service_label, e))
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
                raise TetherError("[%s] cannot stop: %s"
                                  % (self.service_label,
                                     _unlabeled(_error_text(proc), self.service_label)))
        finally:
            self.service_env = {}
            self.service_config = {}
            self.config_file_path = None
            self.attached = False
