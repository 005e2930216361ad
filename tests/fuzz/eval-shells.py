#!/usr/bin/python3
"""Replay the eval_sh fuzz corpus through real shells.

    eval-shells.py QUOTE_EMIT CORPUS_DIR_OR_FILE...

Each corpus file is split at NUL bytes into values (as fuzz_eval_sh.c does,
at most 16), QUOTE_EMIT (tests/tools/quote-emit) prints the `tether start`
sh assignments for them, and every shell found among sh, dash, bash and
bash --posix (bash under LC_ALL=C and C.UTF-8) evaluates that output with
xtrace on.  The property, for every value and shell:

  * printf '%s' "$V<i>" gives the value back byte for byte;
  * nothing else runs: the only commands traced are the eval itself, the
    assignments V<i>=... and `export V<i>`, one of each per value;
  * no output on stdout, exit status 0.

The xtrace prefix carries a random nonce, so a value cannot fake a trace
line.  Exit status 1 on any failure, with the file and shell named.
"""
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile

MAX_VALUES = 16

SCRIPT = r'''
code=$(cat "$1")
PS4="+$3+ "
set -x
eval "$code"
{ set +x; } 2>/dev/null
i=0
while [ "$i" -lt "$4" ]; do
    eval "printf '%s' \"\${V$i}\"" >"$2/got$i" || exit 3
    i=$((i + 1))
done
'''


def shells():
    found = []
    seen = set()
    for name, extra, locales in (("sh", [], ["C"]), ("dash", [], ["C"]),
                                 ("bash", [], ["C", "C.UTF-8"]),
                                 ("bash", ["--posix"], ["C.UTF-8"])):
        path = shutil.which(name)
        if not path:
            continue
        real = os.path.realpath(path)
        for loc in locales:
            key = (real, tuple(extra), loc)
            if key in seen:
                continue
            seen.add(key)
            found.append(([path] + extra, loc))
    return found


def values_of(data):
    vals = data.split(b"\0")
    return vals[:MAX_VALUES]


def check(quote_emit, path, data, sh, loc, tmp):
    vals = values_of(data)
    args = [quote_emit, "sh"]
    for i, v in enumerate(vals):
        f = os.path.join(tmp, "val%d" % i)
        with open(f, "wb") as fh:
            fh.write(v)
        args += ["V%d" % i, f]
    out = subprocess.run(args, stdout=subprocess.PIPE, check=True).stdout
    code = os.path.join(tmp, "code")
    with open(code, "wb") as fh:
        fh.write(out)
    nonce = "N" + secrets.token_hex(8)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": loc}
    p = subprocess.run(sh + ["-c", SCRIPT, "eval-shells", code, tmp, nonce, str(len(vals))],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=60)
    problems = []
    if p.returncode != 0:
        problems.append("exit status %d" % p.returncode)
    if p.stdout:
        problems.append("stdout: %r" % p.stdout[:200])
    trace = re.compile(rb"^\++" + nonce.encode() + rb"\+ (.*)$")
    exports = 0
    for line in p.stderr.split(b"\n"):
        m = trace.match(line)
        if not m:
            continue
        cmd = m.group(1)
        if cmd.startswith(b"eval ") or re.match(rb"V\d+=", cmd):
            continue
        if re.fullmatch(rb"export V\d+", cmd):
            exports += 1
            continue
        problems.append("ran: %r" % cmd[:200])
    if exports != len(vals):
        problems.append("%d exports traced, expected %d" % (exports, len(vals)))
    for i, v in enumerate(vals):
        try:
            with open(os.path.join(tmp, "got%d" % i), "rb") as fh:
                got = fh.read()
        except FileNotFoundError:
            got = None
        if got != v:
            problems.append("V%d: got %r, want %r" % (i, (got or b"")[:100], v[:100]))
    return problems


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    quote_emit = sys.argv[1]
    files = []
    for a in sys.argv[2:]:
        if os.path.isdir(a):
            files += sorted(os.path.join(a, n) for n in os.listdir(a)
                            if os.path.isfile(os.path.join(a, n)))
        else:
            files.append(a)
    sh_list = shells()
    if not files or not sh_list:
        print("eval-shells: no inputs or no shells", file=sys.stderr)
        return 1
    failed = 0
    with tempfile.TemporaryDirectory(prefix="eval-shells.") as tmp:
        for path in files:
            with open(path, "rb") as fh:
                data = fh.read()
            for sh, loc in sh_list:
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
                problems = check(quote_emit, path, data, sh, loc, tmp)
                if problems:
                    failed += 1
                    print("FAIL %s with %s (LC_ALL=%s):" % (path, " ".join(sh), loc))
                    for pr in problems:
                        print("    " + pr)
    print("eval-shells: %d inputs x %d shells: %d failures (%s)"
          % (len(files), len(sh_list), failed,
             ", ".join("%s/%s" % (" ".join(s), l) for s, l in sh_list)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
