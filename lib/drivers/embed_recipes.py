#!/usr/bin/env python3
"""Compile data/drivers/*.ini into builtin_recipes.c: the recipes tether
ships work from the build tree and from a binary without its data files
(lib/drivers/registry.c, "built-in").  Usage: embed_recipes.py OUT.c IN.ini..."""
import os
import sys


def c_string(text):
    out = []
    for line in text.splitlines(keepends=True):
        esc = line.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        out.append('    "%s"' % esc)
    return "\n".join(out) if out else '    ""'


def main():
    out, inputs = sys.argv[1], sorted(sys.argv[2:], key=os.path.basename)
    with open(out, "w", encoding="utf-8") as f:
        f.write("/* made by lib/drivers/embed_recipes.py from data/drivers: do not edit */\n")
        f.write('#include "recipe.h"\n\nconst struct builtin_recipe builtin_recipes[] = {\n')
        for path in inputs:
            with open(path, encoding="utf-8") as g:
                text = g.read()
            name = os.path.basename(path)[: -len(".ini")]
            f.write('    {"%s",\n%s},\n' % (name, c_string(text)))
        f.write("    {0},\n};\n")
        f.write("const size_t n_builtin_recipes = %d;\n" % len(inputs))


main()
