#!/usr/bin/python3
"""check_keys.py: every config key that tether knows is in both references.

The keys are read from the code, as the config loader and the drivers
compare them: in lib/config.c and lib/conf.c, `streq(k, "KEY")` /
`streq(kv->key, "KEY")` and `strncmp(k, "PREFIX.", N)` (export., env.); in lib/drivers/NAME.c (a
file with `.name = "NAME"`), the same comparisons and the strings of arrays
named `*_keys` (postgresql's known_keys); in a recipe, data/drivers/NAME.ini,
its [option NAME] sections and bin.  Each key must appear in
man/tether.ini.5 (as \\fBKEY or .B/.BI/.BR KEY) and in docs/config.md (as
`KEY...`); a driver's keys within its own section (`.SS NAME` in the man
page, "### `NAME`" in config.md).  A source file that yields no key at all
fails too: its comparisons were rewritten, and these patterns need to
follow them.  The man page must also render without a groff warning.
"""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYVAR = r'(?:k|key|kv->key|kv\.key|name)'
CMP = re.compile(r'\bstreq\(\s*' + KEYVAR + r'\s*,\s*"([a-z][a-z0-9_]*)"\s*\)')
PREFIX = re.compile(r'\bstrncmp\(\s*' + KEYVAR + r'\s*,\s*"([a-z][a-z0-9_]*\.)"')
ARRAY = re.compile(r'\b\w*_keys\s*\[\]\s*=\s*\{([^}]*)\}', re.S)


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def function(src, name):
    """the text of C function NAME (from its definition to the next one)"""
    m = re.search(r'^(?:static\s+)?int\s+' + name + r'\s*\(', src, re.M)
    if not m:
        return ""
    nxt = re.search(r'^\}\s*$', src[m.end():], re.M)
    return src[m.start():m.end() + (nxt.end() if nxt else len(src))]


def keys_in(text):
    keys = set(CMP.findall(text)) | {p + "NAME" for p in PREFIX.findall(text)}
    for body in ARRAY.findall(text):
        keys |= set(re.findall(r'"([a-z][a-z0-9_]*)"', body))
        keys |= {p + "NAME" for p in re.findall(r'"([a-z][a-z0-9_]*\.)"', body)}
    return keys


def code_keys():
    """{'tether': keys, 'service': keys, DRIVER: keys}"""
    cfg, conf = read("lib/config.c"), read("lib/conf.c")
    found = {"tether": keys_in(function(cfg, "tether_key")),
             "service": keys_in(function(conf, "svc_key")) | keys_in(function(cfg, "section_key"))}
    ddir = os.path.join(ROOT, "lib", "drivers")
    for f in sorted(os.listdir(ddir)):
        if not f.endswith(".c"):
            continue
        src = read(os.path.join("lib", "drivers", f))
        m = re.search(r'\.name\s*=\s*"([a-z0-9_]+)"', src)
        if m and m.group(1) != "command":  # command takes the generic keys only
            found[m.group(1)] = keys_in(src)
    # the recipes tether ships: their [option NAME] sections, and bin
    rdir = os.path.join(ROOT, "data", "drivers")
    for f in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        if f.endswith(".ini"):
            src = read(os.path.join("data", "drivers", f))
            found[f[:-4]] = set(re.findall(r'^\[option\s+([a-z][a-z0-9_]*)\s*\]', src, re.M)) | {"bin"}
    return found


def section(text, start, stop):
    """text from the first match of start to the next match of stop"""
    m = re.search(start, text, re.M)
    if not m:
        return None
    n = re.search(stop, text[m.end():], re.M)
    return text[m.end():m.end() + n.start()] if n else text[m.end():]


def in_man(text, key):
    k = re.escape(key.replace("NAME", ""))
    return re.search(r'(\\fB|^\.B[IR]?\s+"?)' + k, text, re.M) is not None


def in_md(text, key):
    k = re.escape(key.replace("NAME", ""))
    return re.search(r'`' + k + r'(?![a-z0-9_])', text) is not None


def groff_warnings():
    """groff's warnings about the man page (none without groff)"""
    if not shutil.which("groff"):
        return []
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", "man/tether.ini.5"], cwd=ROOT,
                       capture_output=True, text=True, check=False)
    return [ln for ln in p.stderr.splitlines() if ln.strip()]


def main():
    man, md = read("man/tether.ini.5"), read("docs/config.md")
    found = code_keys()
    problems = groff_warnings()
    for where, keys in found.items():
        if not keys:
            problems.append(f"no keys found for {where} in the code: update tests/docs/check_keys.py")
    n = 0
    for where, keys in sorted(found.items()):
        if where in ("tether", "service"):
            man_part, md_part = man, md
        else:
            man_part = section(man, r'^\.SS\s+"?' + where + r'"?\s*$', r'^\.S[SH]\b')
            md_part = section(md, r'^###\s+`' + where + r'`', r'^##')
            if man_part is None:
                problems.append(f"man/tether.ini.5: no section '.SS {where}' for the {where} driver")
                man_part = ""
            if md_part is None:
                problems.append(f"docs/config.md: no section '### `{where}`' for the {where} driver")
                md_part = ""
        for key in sorted(keys):
            n += 1
            label = f"[{where}] key '{key}'" if where != "service" else f"service key '{key}'"
            if not in_man(man_part, key):
                problems.append(f"man/tether.ini.5: {label} is missing")
            if not in_md(md_part, key):
                problems.append(f"docs/config.md: {label} is missing")
    for p in problems:
        print(f"check_keys: {p}")
    print(f"check_keys: {n} keys of {len(found)} sections checked in man/tether.ini.5 and "
          f"docs/config.md; {len(problems)} missing")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
