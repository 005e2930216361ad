#!/usr/bin/python3
"""filegraph.py: the graph of which .c file uses which, and its cycles.

    filegraph.py [--build DIR] [--root DIR] [--allow FILE] [--layers] [--symbols FILE]

A file uses another when its object file leaves undefined a global symbol
that the other's object defines: `nm` on the objects meson compiled
(compile_commands.json says which object came from which source), so the
graph is the linker's, not a guess from #includes (a header that declares
everything would tie every file to every other).  Static and inline helpers
are local symbols, and do not count.  Files: the .c files under lib/
(lib/drivers/ too) and src/.

It fails (exit 1) on a cycle between files, printing each one with the
symbols that close it:

    cycle: lib/gc.c -> lib/state.c (state_read, state_root) -> lib/gc.c (gc_reap_instance)

where "A -> B (s)" reads "A uses s, defined in B".  The uses named in the
allow-list (--allow, default filegraph-allow.txt beside this file) are left
out first: cycles that someone is removing.  An entry that no longer closes
a cycle fails too, so that the list only ever shrinks.  --layers prints a
topological order: layer 0 uses no other file, layer N only files below N.
--symbols reads `nm -P -A` lines whose file names are the sources instead
of running nm (the checker's own tests).
"""
import argparse
import collections
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRS = ("lib/", "src/")
UNDEFINED = {"U", "w", "v"}  # w, v: a weak reference, satisfied elsewhere if at all


def sources(build, root=ROOT):
    """{source: object} for our .c files (source relative to root), from
    meson's compile_commands.json (a file compiled into two targets, as
    lib/public.c is, counts once)."""
    with open(os.path.join(build, "compile_commands.json")) as f:
        commands = json.load(f)
    objects = {}
    for c in sorted(commands, key=lambda c: c["output"]):
        src = os.path.relpath(os.path.normpath(os.path.join(c["directory"], c["file"])), root)
        if src.endswith(".c") and src.startswith(DIRS):
            objects.setdefault(src, os.path.join(c["directory"], c["output"]))
    return objects


def run_nm(objects):
    """`nm -P -A` over the objects, each line's file name put back to its source."""
    by_object = {os.path.normpath(o): s for s, o in objects.items()}
    nm = subprocess.run(["nm", "-P", "-A", *sorted(objects.values())],
                        capture_output=True, text=True)
    if nm.returncode != 0:
        sys.exit(f"filegraph: nm failed ({nm.stderr.strip()}): run `make` first")
    lines = []
    for line in nm.stdout.splitlines():
        obj, _, rest = line.partition(": ")
        lines.append(f"{by_object[os.path.normpath(obj)]}: {rest}")
    return lines


def graph(nm_lines):
    """{file: {used file: {symbol}}} from `FILE: SYMBOL TYPE ...` lines."""
    defined, undefined = collections.defaultdict(set), collections.defaultdict(set)
    files = set()
    for line in nm_lines:
        src, _, rest = line.partition(": ")
        files.add(src)
        fields = rest.split()
        if len(fields) < 2:
            continue
        name, kind = fields[0], fields[1]
        if kind in UNDEFINED:
            undefined[src].add(name)
        elif kind.isupper():  # lower case: local to its file
            defined[name].add(src)
    uses = {src: collections.defaultdict(set) for src in files}
    for src, names in undefined.items():
        for name in names:
            for other in defined.get(name, ()):
                if other != src:
                    uses[src][other].add(name)
    return uses


def read_allow(path):
    """{(from, to): {symbol}} from lines `FROM -> TO: SYMBOL...` (# comments)."""
    allow = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            edge, _, names = line.partition(":")
            a, arrow, b = edge.partition("->")
            if not arrow or not names.split():
                sys.exit(f"{path}:{n}: expected `FROM -> TO: SYMBOL...`, got {line!r}")
            allow.setdefault((a.strip(), b.strip()), set()).update(names.split())
    return allow


def without(uses, allow):
    """The graph less the allowed uses."""
    left = {}
    for a, targets in uses.items():
        left[a] = {b: names - allow.get((a, b), set()) for b, names in targets.items()}
        left[a] = {b: names for b, names in left[a].items() if names}
    return left


def components(uses):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for root in sorted(uses):
        if root in index:
            continue
        work = [(root, iter(sorted(uses[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        comp.append(n)
                        if n == node:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(uses.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def path(uses, start, goal, inside):
    """A shortest path start .. goal within the files `inside` (breadth first)."""
    before, queue = {start: None}, collections.deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            out = []
            while node is not None:
                out.append(node)
                node = before[node]
            return out[::-1]
        for nxt in sorted(uses.get(node, ())):
            if nxt in inside and nxt not in before:
                before[nxt] = node
                queue.append(nxt)
    return None


def cycles(uses):
    """For each use inside a component, the shortest cycle through it: every
    use that ties files together shows in one printed cycle at least."""
    seen, out = set(), []
    for comp in components(uses):
        inside = set(comp)
        for a in comp:
            for b in sorted(uses[a]):
                if b not in inside:
                    continue
                ring = [a] + path(uses, b, a, inside)[:-1]
                first = ring.index(min(ring))
                ring = tuple(ring[first:] + ring[:first])
                if ring not in seen:
                    seen.add(ring)
                    out.append(ring)
    return out


def show(uses, ring):
    steps = [ring[0]]
    for a, b in zip(ring, ring[1:] + ring[:1]):
        steps.append(f"{b} ({', '.join(sorted(uses[a][b]))})")
    return " -> ".join(steps)


def stale(uses, allow):
    """Allow-list entries that no longer name a use closing a cycle."""
    tied = {f: i for i, comp in enumerate(components(uses)) for f in comp}
    out = []
    for (a, b), names in sorted(allow.items()):
        for name in sorted(names):
            if name not in uses.get(a, {}).get(b, ()):
                out.append(f"{a} -> {b}: {name}: {a} no longer uses {name} from {b}")
            elif a not in tied or tied.get(a) != tied.get(b):
                out.append(f"{a} -> {b}: {name}: no longer closes a cycle")
    return out


def layers(uses):
    """Layer of each file: 0 if it uses no other, else one above its highest use."""
    level = {}

    def of(f):
        if f not in level:
            level[f] = 1 + max((of(g) for g in uses.get(f, ())), default=-1)
        return level[f]

    by = collections.defaultdict(list)
    for f in sorted(uses):
        by[of(f)].append(f)
    return [by[n] for n in sorted(by)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--root", default=ROOT, help="the source tree (default: this one)")
    ap.add_argument("--allow", default=os.path.join(os.path.dirname(__file__), "filegraph-allow.txt"))
    ap.add_argument("--symbols", help="nm -P -A lines, by source file, instead of running nm")
    ap.add_argument("--layers", action="store_true", help="print the files layer by layer")
    args = ap.parse_args()

    if args.symbols:
        with open(args.symbols) as f:
            lines = f.read().splitlines()
    else:
        objects = sources(args.build, args.root)
        if not objects:
            sys.exit(f"filegraph: no lib/ or src/ object in {args.build}/compile_commands.json: "
                     "run `make` first")
        lines = run_nm(objects)
    uses = graph(lines)
    if not args.symbols and not any(uses.values()):
        # objects that nm cannot read (LTO without its plugin) would pass
        sys.exit(f"filegraph: nm found no file using another among {len(uses)} in {args.build}")
    allow = read_allow(args.allow) if os.path.exists(args.allow) else {}
    left = without(uses, allow)

    bad = 0
    for ring in cycles(left):
        print(f"cycle: {show(left, ring)}")
        bad += 1
    for entry in stale(uses, allow):
        print(f"stale allow-list entry ({args.allow}): {entry}: delete it")
        bad += 1
    if bad:
        print(f"filegraph: {bad} problem(s) among {len(uses)} files: a file above must not "
              "use one below it in a cycle; move the function down a layer (see "
              "docs/ARCHITECTURE.md)")
        return 1
    if args.layers:
        for n, files in reversed(list(enumerate(layers(left)))):
            print(f"{n:2}  {' '.join(files)}")
    print(f"filegraph: {len(uses)} files, no cycle"
          + (f" ({sum(map(len, allow.values()))} allowed uses)" if allow else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
