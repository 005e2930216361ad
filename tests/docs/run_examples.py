#!/usr/bin/python3
"""run_examples.py [--build DIR] [FILE.md...]: the docs' examples, run as typed.

Every fenced block of README.md and docs/*.md (or the files given) is either
run, checked, or marked as not runnable: none is skipped silently.  Blocks of
one file run in order, in a fresh temporary directory of that file's own,
with the just-built tether first on PATH and a private TETHER_DIR and
TETHER_CACHE_DIR; files a block writes stay there for the next blocks.

The fence's info string says what happens to a block:

  ```sh                  run with `sh -e` in the file's directory; it fails
                         when it exits non-zero or is still running after
                         TIMEOUT seconds (a `tether run` waiting for Ctrl-C)
  ```sh checkout         run in the source tree instead, with PATH as the
                         caller had it (for `export PATH=$PWD/build:$PATH`)
  ```sh no-test          not run: it waits for Ctrl-C, installs, needs what
                         a test cannot have, or is a transcript (`$ ...`)
  ```ini file=NAME       written to NAME in the file's directory (the tour's
                         tether.ini), for the blocks after it
  ```ini no-test         a fragment, not a whole file
  ```yaml                parsed with python3-yaml (when it is installed)
  ```yaml no-test        not parsed
  ```c                   a whole program (with main) is compiled, with
                         -fsyntax-only against include/; a fragment is
                         counted as not shell
  any other language     not shell (C, Python...: tested as examples/ by the
                         fixtures and python suites); counted, not run

An unmarked ```ini block is an error: say what it is.

Setup that a reader need not see (the stub test scripts that the tour's
commands run) goes in an HTML comment, run like an ```sh block:

  <!-- docs-test setup
  printf '#!/bin/sh\\ncurl -fsS "$APP_FILES_URL" >/dev/null\\n' >test_upload.sh
  chmod +x test_upload.sh
  -->

Output is TAP-like ("ok N FILE:LINE", "not ok N FILE:LINE" with the block's
output), then one line with the counts.  After each file, anything its
blocks left behind (an instance in TETHER_DIR, a process started under it)
fails the file, and is killed.
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT = 120
FENCE = re.compile(r'^(\s*)(`{3,}|~{3,})\s*([^\s`]*)\s*(.*?)\s*$')
SETUP_OPEN = re.compile(r'^\s*<!--\s*docs-test\s+setup\s*$')


class Block:
    def __init__(self, path, line, lang, info, text):
        self.path, self.line, self.lang, self.text = path, line, lang, text
        self.words = info.split()

    @property
    def where(self):
        return f"{os.path.relpath(self.path, ROOT)}:{self.line}"

    def opt(self, name):
        """value of NAME=VALUE in the info string, True for a bare NAME, else None"""
        for w in self.words:
            if w == name:
                return True
            if w.startswith(name + "="):
                return w[len(name) + 1:]
        return None


def blocks_of(path):
    """the fenced blocks and hidden setup comments of a Markdown file, in order"""
    out = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if SETUP_OPEN.match(lines[i]):
            start, body = i + 1, []
            i += 1
            while i < len(lines) and lines[i].strip() != "-->":
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise SystemExit(f"{path}:{start}: docs-test setup comment without -->")
            out.append(Block(path, start, "setup", "", "\n".join(body) + "\n"))
        elif m:
            indent, marker, lang, info = m.groups()
            start, body = i + 1, []
            i += 1
            while i < len(lines):
                c = re.match(r'^\s*(`{3,}|~{3,})\s*$', lines[i])
                if c and c.group(1)[0] == marker[0] and len(c.group(1)) >= len(marker):
                    break
                ln = lines[i]
                body.append(ln[len(indent):] if ln.startswith(indent) else ln.lstrip())
                i += 1
            if i == len(lines):
                raise SystemExit(f"{path}:{start}: a fence that is never closed")
            out.append(Block(path, start, lang, info, "\n".join(body) + "\n"))
        i += 1
    return out


class Run:
    def __init__(self, build):
        self.build = build
        self.n = 0
        self.counts = {"ran": 0, "failed": 0, "no-test": 0, "setup": 0, "written": 0,
                       "parsed": 0, "compiled": 0, "not shell": 0}
        self.marked = []

    def tap(self, ok, where, what, output=""):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} {where} {what}", flush=True)
        if not ok:
            self.counts["failed"] += 1
            for ln in output.rstrip("\n").split("\n")[-40:]:
                print(f"#   {ln}", flush=True)

    def env(self, state, cache):
        env = {k: v for k, v in os.environ.items()
               if not (k.endswith("_CONTROL_PID") or k.endswith("_CONFIGFILE"))}
        for k in ("TETHER_CONFIG", "XDG_RUNTIME_DIR", "TETHER_BIN"):
            env.pop(k, None)
        env["TETHER_DIR"], env["TETHER_CACHE_DIR"] = state, cache
        env["PATH"] = self.build + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
        return env

    def shell(self, b, cwd, env):
        """run a block with sh -e in its own process group; (ok, output)"""
        p = subprocess.Popen(["/bin/sh", "-e", "-c", b.text, f"{b.where}"], cwd=cwd, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)  # tether run stops its services on SIGTERM
            try:
                out, _ = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, _ = p.communicate()
            return False, (out.decode(errors="replace") +
                           f"\nstill running after {TIMEOUT} s: a command that waits for "
                           "Ctrl-C? mark the block ```sh no-test")
        text = out.decode(errors="replace")
        if p.returncode != 0:
            text += f"\nthe block exited with status {p.returncode}"
        return p.returncode == 0, text

    def yaml(self, b):
        try:
            import yaml  # python3-yaml; without it YAML blocks are counted, not parsed
        except ImportError:
            self.counts["not shell"] += 1
            print(f"# {b.where} yaml: python3-yaml is not installed, not parsed")
            return
        try:
            yaml.safe_load(b.text)
        except yaml.YAMLError as e:
            self.tap(False, b.where, "yaml", str(e))
            return
        self.counts["parsed"] += 1
        self.tap(True, b.where, "yaml parses")

    def compile(self, b):
        """a C program of the docs: does it still compile against tether.h?"""
        flags = subprocess.run(["pkg-config", "--cflags", "cmocka", "libpq", "hiredis"],
                               capture_output=True, text=True, check=False).stdout.split()
        p = subprocess.run(["cc", "-std=gnu17", "-Wall", "-Werror", "-Wno-unused-parameter",
                            "-fsyntax-only", "-I", os.path.join(ROOT, "include"), *flags,
                            "-x", "c", "-"], input=b.text, capture_output=True, text=True,
                           check=False)
        self.counts["compiled"] += 1
        self.tap(p.returncode == 0, b.where, "c compiles", p.stderr)

    def block(self, b, work, env):
        lang = b.lang
        if b.opt("no-test"):
            self.counts["no-test"] += 1
            self.marked.append(b.where)
            print(f"# {b.where} {lang} no-test", flush=True)
        elif lang in ("sh", "setup"):
            checkout = b.opt("checkout")
            benv = dict(env, PATH=os.environ.get("PATH", "/usr/bin:/bin")) if checkout else env
            ok, out = self.shell(b, ROOT if checkout else work, benv)
            self.counts["setup" if lang == "setup" else "ran"] += 1
            self.tap(ok, b.where, "setup" if lang == "setup" else "sh", out)
        elif lang == "ini":
            name = b.opt("file")
            if not isinstance(name, str) or "/" in name:
                self.tap(False, b.where, "ini",
                         "an ```ini block must say what it is: ```ini file=NAME (written "
                         "for the blocks after it) or ```ini no-test (a fragment)")
                return
            with open(os.path.join(work, name), "w", encoding="utf-8") as f:
                f.write(b.text)
            self.counts["written"] += 1
            self.tap(True, b.where, f"ini written as {name}")
        elif lang in ("yaml", "yml"):
            self.yaml(b)
        elif lang == "c" and re.search(r'^int main\(', b.text, re.M):
            self.compile(b)
        else:
            self.counts["not shell"] += 1

    def file(self, path):
        top = tempfile.mkdtemp(prefix="tether-docs.")
        state, cache, work = (os.path.join(top, d) for d in ("state", "cache", "work"))
        for d in (state, work):
            os.mkdir(d)
        # PostgreSQL runs as `postgres` when we are root: it must reach the state directory
        os.chmod(top, 0o711)
        env = self.env(state, cache)
        try:
            for b in blocks_of(path):
                self.block(b, work, env)
        finally:
            left = leftovers(state)
            if left:
                kill(state, self.build)
                self.tap(False, os.path.relpath(path, ROOT), "left nothing behind", "\n".join(left))
            shutil.rmtree(top, ignore_errors=True)


def pids_under(state):
    """processes whose environment has our TETHER_DIR (every tether process and service)"""
    want = f"TETHER_DIR={state}".encode()
    pids = []
    for e in glob.glob("/proc/[0-9]*/environ"):
        try:
            with open(e, "rb") as f:
                if want in f.read().split(b"\0"):
                    pids.append(int(e.split("/")[2]))
        except OSError:
            pass
    return [p for p in pids if p != os.getpid()]


def leftovers(state):
    # a helper that is stopping its instance may still be at work for a moment: wait for it
    deadline = time.monotonic() + 10
    while True:
        left = [f"in TETHER_DIR: {e}" for e in sorted(os.listdir(state))] if os.path.isdir(state) else []
        left += [f"process {p}" for p in pids_under(state)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def kill(state, build):
    for p in pids_under(state):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    # what the dead instances recorded (a SIGKILLed postmaster's segment) goes with gc
    subprocess.run([os.path.join(build, "tether"), "gc"], env=dict(os.environ, TETHER_DIR=state),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    if not os.access(os.path.join(build, "tether"), os.X_OK):
        sys.exit(f"run_examples: no {build}/tether: build first (make)")
    files = a.files or [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    r = Run(build)
    for f in files:
        r.file(os.path.abspath(f))
    c = r.counts
    print(f"docs-check: {c['ran']} sh blocks ran and {c['setup']} setup blocks, "
          f"{c['written']} ini files written, {c['parsed']} yaml blocks parsed, "
          f"{c['compiled']} C programs compiled; "
          f"{c['no-test']} marked no-test, {c['not shell']} not shell; "
          f"{c['failed']} not ok")
    return 1 if c["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
