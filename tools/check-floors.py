#!/usr/bin/env python3
"""Keeps the house the way docs/DESIGN.md draws it (standard library only; run by
tools/run-tests.sh, so CI fails when a change breaks it). Three checks:

1. Floors. Every `#include "..."` of ours and every call of a function defined in another file
   must run down the floors (or stay inside its own folder):
       base < kernels < autograd < model, data < eval/cache, convert < eval/press < eval/run
            < eval/report < train < cli
   Folders on the same floor stand side by side and may not include each other (model/ and
   data/; eval/cache/ and convert/). Nothing of the library includes tests/, bench/ or tools/.
2. No circles. No cycle of `#include`s between files, and no circle of calls between source
   files (a.c calls b.c calls ... calls a.c): calls are found from the functions each .c/.cu
   defines (non-static, at the start of a line) and the names the other files use.
3. Size. No .c/.cu outside tests/ over 800 lines.

Every failure names the file, the line and the fix. Exit status 0 when all is well, 1 otherwise.
usage: python3 tools/check-floors.py [REPO_ROOT]
"""
import os
import re
import subprocess
import sys

# Lowest floor first; folders in one entry share a floor and may not include each other.
FLOORS = [
    ["base"],
    ["kernels"],
    ["autograd"],
    ["model", "data"],
    ["eval/cache", "convert"],
    ["eval/press"],
    ["eval/run"],
    ["eval/report"],
    ["train"],
    ["cli"],
]
# Above the house: they may include any floor, and no floor may include them.
OUTSIDE = ["tests", "bench", "tools"]
MAX_LINES = 800
SOURCE_EXT = (".c", ".cu")
ALL_EXT = (".c", ".h", ".cu", ".cuh")

LEVEL = {folder: i for i, floor in enumerate(FLOORS) for folder in floor}
ORDER = " < ".join(", ".join(floor) for floor in FLOORS)


def repo_files(root):
    """Tracked files (a clean clone's view); every file under root when git is not there."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "--cached", "--others",
                              "--exclude-standard"], capture_output=True, text=True, check=True)
        files = [f for f in out.stdout.splitlines() if os.path.isfile(os.path.join(root, f))]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "build", "runs"))]
            files += [os.path.relpath(os.path.join(dirpath, f), root) for f in filenames]
    return sorted(f for f in files if f.endswith(ALL_EXT))


def folder_of(path):
    """The floor folder a file lives in, the OUTSIDE folder, or None."""
    best = None
    for folder in list(LEVEL) + OUTSIDE:
        if path.startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def strip_c(text):
    """Comments, string and character literals and preprocessor lines blanked out; line
    numbers kept."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])*'", "''", text)
    return re.sub(r"^[ \t]*#[^\n]*(\\\n[^\n]*)*", "", text, flags=re.M)


INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
# A function definition starting at column 0: qualifiers and type, the name, the parameters
# (one level of nested parentheses for function-pointer parameters), then the body.
DEFINITION = re.compile(
    r"^(?![ \t])([A-Za-z_][^;{}()=]*?)\b([A-Za-z_]\w*)\s*\(((?:[^;{}()]|\([^;{}()]*\))*)\)\s*\{",
    re.M)
IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def scc(nodes, edges):
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on.add(start)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(__file__), ".."))
    files = repo_files(root)
    errors = []

    def floor_name(folder):
        return folder if folder in LEVEL else folder + "/ (outside the house)"

    # ---- 1. includes against the floors; the include graph ----
    house = [f for f in files if folder_of(f) in LEVEL]
    for f in files:
        top = f.split("/")[0]
        if folder_of(f) is None and "/" in f and top not in OUTSIDE and \
                any(fl.split("/")[0] == top for fl in LEVEL):
            sub = ", ".join(fl for fl in LEVEL if fl.split("/")[0] == top)
            errors.append(f"{f}: lies on no floor; move it into one of {sub} (docs/DESIGN.md)")
    inc_edges, inc_line = {}, {}
    n_includes = 0
    for f in house:
        text = open(os.path.join(root, f), encoding="utf-8", errors="replace").read()
        src_folder = folder_of(f)
        for m in INCLUDE.finditer(text):
            name = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            local = os.path.normpath(os.path.join(os.path.dirname(f), name))
            if os.path.isfile(os.path.join(root, name)):
                target = os.path.normpath(name)
            elif os.path.isfile(os.path.join(root, local)):
                target = local
            else:
                errors.append(f'{f}:{line}: includes "{name}", which is not a file of the '
                              f"repository; include it by its path from the repository root")
                continue
            n_includes += 1
            inc_edges.setdefault(f, set()).add(target)
            inc_line[(f, target)] = (line, name)
            dst_folder = folder_of(target)
            if dst_folder == src_folder:
                continue
            if dst_folder in OUTSIDE or dst_folder is None:
                errors.append(f'{f}:{line}: includes "{name}" from {floor_name(dst_folder)}; '
                              f"the library may not depend on tests/, bench/ or tools/: move "
                              f"what it needs into the library")
            elif LEVEL[dst_folder] >= LEVEL[src_folder]:
                where = f"beside {src_folder}/ on the same floor" \
                    if LEVEL[dst_folder] == LEVEL[src_folder] else f"a floor above {src_folder}/"
                errors.append(f'{f}:{line}: includes "{name}", which is in {dst_folder}/, {where}; '
                              f"a floor includes only the floors below it: move the code it "
                              f"needs down, or this code up")
    for comp in scc(house, inc_edges):
        chain = "; ".join(f'{a}:{inc_line[(a, b)][0]} includes "{inc_line[(a, b)][1]}"'
                          for a in comp for b in sorted(inc_edges.get(a, ())) if b in comp)
        errors.append(f"include cycle between {', '.join(comp)}: {chain}; break it (a header "
                      f"includes only what its declarations need)")

    # ---- 2. circles of calls between source files (and calls up the floors) ----
    sources = [f for f in house if f.endswith(SOURCE_EXT)]
    defined, local, idents, def_line = {}, {}, {}, {}
    for f in sources:
        text = strip_c(open(os.path.join(root, f), encoding="utf-8", errors="replace").read())
        idents[f] = set(IDENT.findall(text))
        local[f] = set()
        for m in DEFINITION.finditer(text):
            quals, name = m.group(1), m.group(2)
            if name in ("if", "for", "while", "switch", "return", "sizeof"):
                continue
            local[f].add(name)
            if re.search(r"\b(static|__device__|__global__|inline)\b", quals):
                continue
            if name in defined and defined[name] != f:
                continue  # two definitions: the linker reports it, not this script
            defined[name] = f
            def_line[name] = text.count("\n", 0, m.start(2)) + 1
    call_edges, call_via = {}, {}
    for f in sources:
        for name in sorted(idents[f] - local[f]):
            g = defined.get(name)
            if g is None or g == f:
                continue
            call_edges.setdefault(f, set()).add(g)
            call_via.setdefault((f, g), name)
    for f in sources:
        for g in sorted(call_edges.get(f, ())):
            a, b = folder_of(f), folder_of(g)
            if a != b and LEVEL[b] >= LEVEL[a]:
                name = call_via[(f, g)]
                errors.append(f"{f}: uses {name}() of {g}:{def_line[name]} ({b}/), a floor not "
                              f"below {a}/; calls run down the floors")
    for comp in scc(sources, call_edges):
        chain = "; ".join(f"{a} uses {call_via[(a, b)]}() of {b}"
                          for a in comp for b in sorted(call_edges.get(a, ())) if b in comp)
        errors.append(f"circle of calls between {', '.join(comp)}: {chain}; make the arrows run "
                      f"one way (move the shared part into a file both use, or pass a callback)")

    # ---- 3. size ----
    n_sources = 0
    for f in files:
        if f.endswith(SOURCE_EXT) and not f.startswith("tests/"):
            n_sources += 1
            with open(os.path.join(root, f), "rb") as fh:
                n = fh.read().count(b"\n")
            if n > MAX_LINES:
                errors.append(f"{f}: {n} lines, over the limit of {MAX_LINES} for a .c/.cu "
                              f"outside tests/; split it by concern")

    for msg in errors:
        print(f"check-floors: {msg}", file=sys.stderr)
    if errors:
        print(f"check-floors: {len(errors)} problem(s); the floors are {ORDER} "
              f"(docs/DESIGN.md)", file=sys.stderr)
        return 1
    print(f"check-floors: {len(house)} files in {len(LEVEL)} folders on {len(FLOORS)} floors, {n_includes} includes, "
          f"{sum(len(v) for v in call_edges.values())} file-to-file calls: no include up a floor, "
          f"no circle; {n_sources} sources, none over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
