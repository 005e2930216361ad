"""filegraph.py, the file-graph check of `make graph-check`: on symbol
tables made up here, on objects compiled here, and on the real tree.

    TETHER_BUILD=$PWD/build python3 -m pytest -p no:cacheprovider -q tests/tools/test_filegraph.py
"""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(HERE, "filegraph.py")
BUILD = os.environ.get("TETHER_BUILD", os.path.join(HERE, "..", "..", "build"))
sys.path.insert(0, HERE)
import filegraph  # noqa: E402


def check(tmp_path, symbols, allow="", *flags):
    """Run the tool on `nm -P -A` lines by source file; (exit status, stdout)."""
    (tmp_path / "nm.txt").write_text("".join(line + "\n" for line in symbols))
    (tmp_path / "allow.txt").write_text(allow)
    r = subprocess.run([sys.executable, TOOL, "--symbols", str(tmp_path / "nm.txt"),
                        "--allow", str(tmp_path / "allow.txt"), *flags],
                       capture_output=True, text=True)
    assert r.stderr == ""
    return r.returncode, r.stdout


def uses(f, *names):
    return [f"{f}: {n} U" for n in names]


def defines(f, *names):
    return [f"{f}: {n} T 0 10" for n in names]


CHAIN = (defines("lib/a.c", "a_fn") + uses("lib/a.c", "b_fn", "printf")
         + defines("lib/b.c", "b_fn") + uses("lib/b.c", "c_fn")
         + defines("lib/c.c", "c_fn") + uses("lib/c.c", "malloc"))


def test_no_cycle_passes_and_prints_the_layers(tmp_path):
    rc, out = check(tmp_path, CHAIN, "", "--layers")
    assert rc == 0, out
    assert out.splitlines() == [" 2  lib/a.c", " 1  lib/b.c", " 0  lib/c.c",
                                "filegraph: 3 files, no cycle"]


def test_two_file_cycle_fails_naming_both_files_and_symbols(tmp_path):
    rc, out = check(tmp_path, CHAIN + uses("lib/b.c", "a_fn"))
    assert rc == 1
    assert "cycle: lib/a.c -> lib/b.c (b_fn) -> lib/a.c (a_fn)\n" in out
    assert "lib/c.c" not in out  # b uses c, but c is in no cycle
    assert "filegraph: 1 problem(s)" in out


def test_three_file_cycle_fails_naming_the_three_files_and_symbols(tmp_path):
    rc, out = check(tmp_path, CHAIN + uses("lib/c.c", "a_fn", "a_var") + ["lib/a.c: a_var D 0 4"])
    assert rc == 1
    assert out.startswith(
        "cycle: lib/a.c -> lib/b.c (b_fn) -> lib/c.c (c_fn) -> lib/a.c (a_fn, a_var)\n"), out


def test_every_use_that_ties_files_shows_in_a_cycle(tmp_path):
    # a <-> b and b <-> c: one component, two cycles; each is printed
    rc, out = check(tmp_path, CHAIN + uses("lib/b.c", "a_fn") + uses("lib/c.c", "b_fn"))
    assert rc == 1
    assert sorted(l for l in out.splitlines() if l.startswith("cycle:")) == [
        "cycle: lib/a.c -> lib/b.c (b_fn) -> lib/a.c (a_fn)",
        "cycle: lib/b.c -> lib/c.c (c_fn) -> lib/b.c (b_fn)"]


def test_local_symbols_and_libc_tie_nothing(tmp_path):
    # both files have a static `helper` (t), both call libc's printf
    rc, out = check(tmp_path, defines("lib/a.c", "a_fn") + ["lib/a.c: helper t 0 4"]
                    + uses("lib/a.c", "printf") + ["lib/b.c: helper t 0 4"]
                    + uses("lib/b.c", "printf", "a_fn"))
    assert rc == 0, out


def test_allowed_uses_pass_others_on_the_same_edge_do_not(tmp_path):
    tables = CHAIN + uses("lib/c.c", "a_fn")
    rc, out = check(tmp_path, tables, "# being removed\nlib/c.c -> lib/a.c: a_fn\n")
    assert rc == 0, out
    assert "(1 allowed uses)" in out
    rc, out = check(tmp_path, tables + uses("lib/c.c", "a_new"), "lib/c.c -> lib/a.c: a_fn\n")
    assert rc == 0, out  # a_new is defined nowhere: no use of a file
    rc, out = check(tmp_path, tables + uses("lib/c.c", "a_new") + defines("lib/a.c", "a_new"),
                    "lib/c.c -> lib/a.c: a_fn\n")
    assert rc == 1
    assert "cycle: lib/a.c -> lib/b.c (b_fn) -> lib/c.c (c_fn) -> lib/a.c (a_new)\n" in out


def test_a_stale_allowance_fails(tmp_path):
    rc, out = check(tmp_path, CHAIN, "lib/c.c -> lib/a.c: a_fn\n")
    assert rc == 1
    assert "stale allow-list entry" in out and "lib/c.c no longer uses a_fn from lib/a.c" in out
    # still used, but the cycle is gone (b no longer uses c)
    tables = [l for l in CHAIN if l != "lib/b.c: c_fn U"] + uses("lib/c.c", "a_fn")
    rc, out = check(tmp_path, tables, "lib/c.c -> lib/a.c: a_fn\n")
    assert rc == 1
    assert "lib/c.c -> lib/a.c: a_fn: no longer closes a cycle: delete it" in out


def test_a_bad_allow_line_says_where(tmp_path):
    (tmp_path / "nm.txt").write_text("")
    (tmp_path / "allow.txt").write_text("\nlib/c.c lib/a.c a_fn\n")
    r = subprocess.run([sys.executable, TOOL, "--symbols", str(tmp_path / "nm.txt"),
                        "--allow", str(tmp_path / "allow.txt")], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{tmp_path}/allow.txt:2: expected `FROM -> TO: SYMBOL...`" in r.stderr


def test_objects_compiled_here(tmp_path):
    """nm on real objects, found through compile_commands.json."""
    src, build = tmp_path / "src", tmp_path / "build"
    (src / "lib").mkdir(parents=True)
    build.mkdir()
    (src / "lib/a.c").write_text("int b(void);\nstatic int s(void) { return 1; }\n"
                                 "int a(void) { return b() + s(); }\n")
    (src / "lib/b.c").write_text("int a(void);\nstatic int s(void) { return 2; }\n"
                                 "int b(void) { return s(); }\nint c(void) { return a(); }\n")
    commands = []
    for f in ("a", "b"):
        subprocess.run(["cc", "-c", "-o", f"{f}.o", f"../src/lib/{f}.c"], cwd=build, check=True)
        commands.append({"directory": str(build), "file": f"../src/lib/{f}.c", "output": f"{f}.o"})
    (build / "compile_commands.json").write_text(json.dumps(commands))
    r = subprocess.run([sys.executable, TOOL, "--build", str(build), "--root", str(src),
                        "--allow", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode == 1, r.stdout
    assert r.stdout.startswith("cycle: lib/a.c -> lib/b.c (b) -> lib/a.c (a)\n"), r.stdout


@pytest.fixture(scope="module")
def real():
    """The real tree's graph, from the build's objects."""
    assert os.path.exists(os.path.join(BUILD, "compile_commands.json")), \
        f"no build in {BUILD}: run `make` (or set TETHER_BUILD)"
    return filegraph.graph(filegraph.run_nm(filegraph.sources(BUILD)))


def test_the_real_tree_has_no_cycle_but_the_allowed(real):
    r = subprocess.run([sys.executable, TOOL, "--build", BUILD], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # the graph is the real one: files of lib/, lib/drivers/ and src/, known uses
    assert {"lib/gc.c", "lib/drivers/registry.c", "src/main.c"} <= set(real)
    assert "state_read" in real["lib/gc.c"]["lib/state.c"]


@pytest.mark.parametrize("extra, files, name", [
    # state below gc: gc reads the records; state.c must not reap
    (["lib/state.c: gc_reap_instance U"], ["lib/gc.c", "lib/state.c"], "gc_reap_instance"),
    # CLI helpers in the CLI: no command calls back into main.c
    (["src/main.c: cli_new T 0 10", "src/cmd_run.c: cli_new U"],
     ["src/cmd_run.c", "src/main.c"], "cli_new"),
])
def test_a_new_use_against_the_layers_fails(real, extra, files, name):
    allow = filegraph.read_allow(os.path.join(HERE, "filegraph-allow.txt"))
    left = filegraph.without(filegraph.graph(filegraph.run_nm(filegraph.sources(BUILD)) + extra),
                             allow)
    shown = [filegraph.show(left, ring) for ring in filegraph.cycles(left)]
    assert any(f"({name})" in s and all(f in s for f in files) for s in shown), shown
