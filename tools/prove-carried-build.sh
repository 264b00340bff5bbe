#!/usr/bin/env bash
# Proves, on this Debian machine and before any device time is spent, that the carried prefix of
# tools/fetch-gpu-deps.sh is enough to build and run lrsa where our Debian packages are absent
# (issue 17 item 7; docs/CUDA.md, "Carried dependencies").
#
#   bash tools/prove-carried-build.sh [BUILD_DIR]     # default build-carried; needs root
#
# In a private mount namespace (unshare -m) every file of every carried package disappears from
# its system path: /usr/include, /usr/lib/x86_64-linux-gnu, /usr/bin and /usr/share become
# tmpfs copies of themselves (directories recreated, files as links to a hidden bind of the
# original, links copied as they are) without those files, and so do pkg-config and the CUDA
# toolkit's cuDNN and NCCL. Then, from the archive unpacked to a fresh folder (so nothing
# depends on where fetch-gpu-deps.sh put it): configure with LRSA_DEPS_PREFIX, build the
# command and a few tests, run them (HDF5, OpenBLAS, cJSON, PCRE2, utf8proc, libyaml, cmocka,
# one MPI test through the carried mpiexec), and check with ldd that every library resolves
# to the prefix or to the C runtime. With nvcc (LRSA_PROVE_CUDA=0 skips it): a second
# configure with CUDA that finds cuDNN and NCCL only through LRSA_CUDNN_ROOT / LRSA_NCCL_ROOT
# (the Python environment's wheels; the toolkit's copies are hidden), builds and runs
# test_dnn_versions (header = library, no GPU needed) and compiles the NCCL backend.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-carried}
ARCHIVE=${LRSA_GPU_DEPS_ARCHIVE:-.gpu-carry/gpu-deps.tar.gz}
PY=${LRSA_PROVE_PYTHON:-/work/venv/bin/python}

if [ -z "${LRSA_PROVE_INSIDE:-}" ]; then
  [ -f "$ARCHIVE" ] || { echo "prove-carried-build: no $ARCHIVE: run tools/fetch-gpu-deps.sh" >&2; exit 1; }
  rm -rf "$BUILD/prefix" && mkdir -p "$BUILD/prefix"
  tar -C "$BUILD/prefix" -xzf "$ARCHIVE"
  # The files to hide, as real paths: those of every carried package as installed here, and
  # pkg-config (the GPU machine may have none), and the toolkit's cuDNN and NCCL.
  hide=$BUILD/hidden-files.txt
  if [ "$hide" -nt "$ARCHIVE" ] && [ "$hide" -nt "$0" ]; then
    echo "prove-carried-build: reusing $hide"
    exec unshare -m --propagation private env LRSA_PROVE_INSIDE=1 bash "$0" "$@"
  fi
  cut -d' ' -f1 "$BUILD/prefix/.gpu-deps/MANIFEST" | xargs dpkg -L 2>/dev/null | while read -r f; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    [ -d "$f" ] && [ ! -L "$f" ] && continue
    d=$(realpath "$(dirname "$f")")
    [ "$d" = / ] && continue # /lib and the like: the merged-/usr links themselves
    echo "$d/$(basename "$f")"
  done >"$hide"
  for f in /usr/bin/pkg-config /usr/bin/pkgconf /usr/bin/x86_64-linux-gnu-pkg-config \
           /usr/local/cuda/targets/x86_64-linux/include/{cudnn,nccl}*.h \
           /usr/local/cuda/targets/x86_64-linux/lib/lib{cudnn,nccl}*; do
    [ -e "$f" ] && echo "$(realpath "$(dirname "$f")")/$(basename "$f")"
  done >>"$hide"
  sort -u -o "$hide" "$hide"
  # What this machine's own build tools load stays visible (the GPU machine has its own
  # compiler, CMake and Python with their own copies): zlib, zstd, gmp, libcurl and the like.
  # Our binaries must still take those from the prefix: the ldd check below says so.
  keep=$BUILD/kept-visible.txt
  for t in cmake ninja "$(gcc -print-prog-name=cc1)" "$(gcc -print-prog-name=cc1plus)" as ld \
           bash grep sed awk tar gzip readelf hostname git "$(realpath "$PY")" \
           /usr/local/cuda/bin/nvcc /usr/local/cuda/nvvm/bin/cicc /usr/local/cuda/bin/ptxas; do
    t=$(command -v "$t" || true)
    [ -n "$t" ] && ldd "$t" 2>/dev/null | awk '$3 ~ /^\// {print $3}'
  done | sort -u | while read -r l; do
    echo "$(realpath "$(dirname "$l")")/$(basename "$l")"
    realpath "$l"
  done | sort -u >"$keep"
  grep -vxFf "$keep" "$hide" >"$hide.tmp" || true
  mv "$hide.tmp" "$hide"
  echo "prove-carried-build: left visible for the build tools here (carried too):" \
    "$(grep -F -f <(sed 's|.*/||' "$keep") <(find "$BUILD/prefix/.gpu-deps" -name 'lib*.so.*' -printf '%f\n') | sort -u | tr '\n' ' ')"
  echo "prove-carried-build: hiding $(wc -l <"$hide") system files in a mount namespace"
  exec unshare -m --propagation private env LRSA_PROVE_INSIDE=1 bash "$0" "$@"
fi

# ---- inside the namespace ---------------------------------------------------------------------
hide=$BUILD/hidden-files.txt
ORIG=/run/lrsa-prove-orig
# copy_tree SRC DST REAL: DST (to be mounted at REAL) mirrors SRC without the hidden files:
# directories that hold hidden files recreated, links copied as they are (so a relative target
# resolves inside the copy, where a hidden one fails), every other file and directory bound
# from SRC, so that it keeps its path (gcc finds cc1 and Python its library from where their
# executable is). Python: thousands of mounts, and a fork per entry is slow on a loaded VM.
copy_tree() {
  python3 - "$1" "$2" "$3" "$hide" <<'PY'
import ctypes, os, sys
src, dst, real, hide = sys.argv[1:5]
libc = ctypes.CDLL(None, use_errno=True)
MS_BIND, MS_REC = 4096, 16384
def bind(a, b):
    if libc.mount(a.encode(), b.encode(), None, MS_BIND | MS_REC, None) != 0:
        err = ctypes.get_errno()
        sys.exit(f"mount --bind {a} {b}: {os.strerror(err)}")
hidden = {os.path.normpath("/" + h.lstrip("/")) for h in open(hide).read().split()}
hidden_dirs = set()
for h in hidden:
    h = os.path.dirname(h)
    while h != "/" and h not in hidden_dirs:
        hidden_dirs.add(h)
        h = os.path.dirname(h)
def copy(s, d, r):
    for name in os.listdir(s):
        e, rr = os.path.join(s, name), os.path.join(r, name)
        if rr in hidden:
            continue
        if os.path.islink(e):
            os.symlink(os.readlink(e), os.path.join(d, name))
        elif os.path.isdir(e) and rr in hidden_dirs:
            os.mkdir(os.path.join(d, name))
            copy(e, os.path.join(d, name), rr)
        elif os.path.isdir(e):
            os.mkdir(os.path.join(d, name))
            bind(e, os.path.join(d, name))
        else:
            open(os.path.join(d, name), "w").close()
            bind(e, os.path.join(d, name))
copy(src, dst, real)
PY
}
# Each copy is made on a tmpfs beside the original and then bound over it (ln itself needs the
# libraries of /usr/lib/x86_64-linux-gnu while the copy is made).
NEW=/run/lrsa-prove-new
for top in /usr/include /usr/lib/x86_64-linux-gnu /usr/bin /usr/share /etc \
           "$(realpath /usr/local/cuda/include)" "$(realpath /usr/local/cuda/lib64)"; do
  if [ ! -d "$top" ] || ! grep -q "^$top/" "$hide"; then continue; fi
  mkdir -p "$ORIG$top" "$NEW$top"
  mount --bind "$top" "$ORIG$top"
  mount -t tmpfs none "$NEW$top"
  copy_tree "$ORIG$top" "$NEW$top" "$top"
  mount --rbind "$NEW$top" "$top"
done
left=$(while read -r f; do if [ -e "$f" ]; then echo "$f"; fi; done <"$hide")
[ -z "$left" ] || { echo "prove-carried-build: still visible: $(echo "$left" | head -5)" >&2; exit 1; }
echo "prove-carried-build: hidden; e.g. /usr/include/hdf5/serial/hdf5.h exists: $([ -e /usr/include/hdf5/serial/hdf5.h ] && echo yes || echo no)," \
  "pkg-config: $(command -v pkg-config || echo none), mpirun: $(command -v mpirun || echo none)"

PREFIX=$(cd "$BUILD/prefix/.gpu-deps" && pwd)
log() { echo "prove-carried-build: $*"; }
log "CPU build (LRSA_CUDA=OFF) from $PREFIX"
cmake -S . -B "$BUILD/cpu" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLRSA_CUDA=OFF \
  -DLRSA_DEPS_PREFIX="$PREFIX" >"$BUILD/cpu-configure.log" 2>&1 ||
  { tail -30 "$BUILD/cpu-configure.log"; exit 1; }
TESTS=(test_ckpt_faults test_tokenizer_chat test_grid_config test_attention test_comm_mpi)
nice -n 10 ninja -C "$BUILD/cpu" -j "${LRSA_JOBS:-2}" lrsa "${TESTS[@]}" >"$BUILD/cpu-build.log" 2>&1 ||
  { tail -30 "$BUILD/cpu-build.log"; exit 1; }
(cd "$BUILD/cpu" && ctest -R "^($(IFS='|'; echo "${TESTS[*]}"))\$" --output-on-failure --timeout 600)

log "ldd of the command (every library must come from the prefix or the C runtime):"
bad=$(ldd "$BUILD/cpu/lrsa" | awk '{print $1, $3}' | grep -v -e "$PREFIX" \
  -e '^linux-vdso' -e '^/lib64/ld-linux' -e '^lib\(c\|m\|mvec\|gcc_s\|stdc++\|gomp\|pthread\|dl\|rt\|resolv\|util\|anl\)\.so' || true)
ldd "$BUILD/cpu/lrsa" | sed "s|$PREFIX|<prefix>|"
readelf -d "$BUILD/cpu/lrsa" | grep -E 'RPATH|RUNPATH' | sed "s|$PREFIX|<prefix>|g"
[ -z "$bad" ] || { echo "prove-carried-build: resolved outside the prefix: $bad" >&2; exit 1; }
log "carried mpiexec: $("$PREFIX/bin/mpiexec" --allow-run-as-root -n 2 hostname | wc -l) ranks ran hostname"

if [ "${LRSA_PROVE_CUDA:-1}" = 1 ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  wheels=$("$PY" -c 'import nvidia.cudnn as c, nvidia.nccl as n; print(list(c.__path__)[0], list(n.__path__)[0])')
  read -r cudnn_root nccl_root <<<"$wheels"
  log "CUDA configure: cuDNN from $cudnn_root, NCCL from $nccl_root (the toolkit's copies hidden)"
  cmake -S . -B "$BUILD/cuda" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLRSA_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DLRSA_DEPS_PREFIX="$PREFIX" -DLRSA_CUDNN_ROOT="$cudnn_root" -DLRSA_NCCL_ROOT="$nccl_root" \
    >"$BUILD/cuda-configure.log" 2>&1 || { tail -30 "$BUILD/cuda-configure.log"; exit 1; }
  grep -E "lrsa: (cuDNN|NCCL|CUDA)" "$BUILD/cuda-configure.log"
  nice -n 10 ninja -C "$BUILD/cuda" -j "${LRSA_JOBS:-2}" test_dnn_versions \
    CMakeFiles/lrsa_core.dir/train/comm_nccl.c.o >"$BUILD/cuda-build.log" 2>&1 ||
    { tail -30 "$BUILD/cuda-build.log"; exit 1; }
  "$BUILD/cuda/tests/gpu/test_dnn_versions"
  ldd "$BUILD/cuda/tests/gpu/test_dnn_versions" | grep -E 'cudnn|nccl'
  # Without the hints: found through python3's wheels (as gpu-check's machine has them).
  log "CUDA configure without LRSA_CUDNN_ROOT / LRSA_NCCL_ROOT, python3 from $(dirname "$PY")"
  PATH="$(dirname "$PY"):$PATH" cmake -S . -B "$BUILD/cuda-auto" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLRSA_CUDA=ON -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90a \
    -DLRSA_DEPS_PREFIX="$PREFIX" >"$BUILD/cuda-auto-configure.log" 2>&1 ||
    { tail -30 "$BUILD/cuda-auto-configure.log"; exit 1; }
  grep -E "lrsa: (cuDNN|NCCL) " "$BUILD/cuda-auto-configure.log"
  if ! grep -q "lrsa: cuDNN $cudnn_root" "$BUILD/cuda-auto-configure.log" ||
     ! grep -q "lrsa: NCCL $nccl_root" "$BUILD/cuda-auto-configure.log"; then
    echo "prove-carried-build: the wheels were not found without hints" >&2
    exit 1
  fi
fi
log "all passed"
