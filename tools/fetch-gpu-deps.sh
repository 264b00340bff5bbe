#!/usr/bin/env bash
# Fetches our Debian 12 dependencies as .deb files and unpacks them into one prefix folder in the
# repo (default .gpu-deps/, git-ignored) that travels with the tree to a GPU machine that is not
# Debian and cannot install packages (issue 17 item 7; docs/CUDA.md, "Carried dependencies").
#
#   bash tools/fetch-gpu-deps.sh [PREFIX]      # run on Debian 12 after tools/install-deps.sh
#
# What goes in: the -dev packages (headers, the unversioned .so links), openmpi-bin (mpirun)
# and every runtime library their ELF files need, found by reading the DT_NEEDED entries of
# what is already unpacked until nothing is missing (each soname mapped to its package with
# dpkg -S, which is why the packages must be installed here). What stays out: the C and C++
# runtime (glibc, libgcc_s, libstdc++, libgomp) that must be the target's own; documentation,
# man pages, static libraries, libtool archives; the Open MPI components for network fabrics
# (UCX, libfabric, verbs, PSM) that a one-node run does not use and that would drag in tens
# of MiB. The .debs are kept in PREFIX-debs/ (git-ignored, not carried) so a rerun is offline.
#
# Written into the prefix: bin/mpirun and bin/mpiexec (wrappers that set OPAL_PREFIX, the PMIx
# prefix and LD_LIBRARY_PATH from their own location, so the folder may move), MANIFEST (the
# packages and versions) and GLIBC_REQUIRED (the newest glibc symbol version any carried ELF
# file needs: tools/gpu-check.sh compares it with the target's glibc before it builds).
# Ends by printing the prefix size plus the tracked tree and failing above the carry budget
# (LRSA_CARRY_BUDGET_MIB, default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${1:-.gpu-deps}
DEBS=${PREFIX%/}-debs
ARCHIVE=${LRSA_GPU_DEPS_ARCHIVE:-.gpu-carry/gpu-deps.tar.gz}
BUDGET_MIB=${LRSA_CARRY_BUDGET_MIB:-64}
ARCH_LIB=usr/lib/x86_64-linux-gnu

# Headers and link names; the runtime libraries follow from the ELF closure below.
# The runtime packages are named too: a -dev package's libfoo.so is only a link to them.
SEED_PKGS=(libhdf5-dev libhdf5-103-1 libopenblas-pthread-dev libopenblas0-pthread libopenmpi-dev
           libopenmpi3 openmpi-bin openmpi-common libcjson-dev libcjson1 libpcre2-dev libpcre2-8-0
           libutf8proc-dev libutf8proc2 libyaml-dev libyaml-0-2 libcmocka-dev libcmocka0)
# Sonames the target provides itself (its glibc and compiler runtime: ours would not match them).
BASE_SONAMES='^(libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|ld-linux-x86-64|libgcc_s|libstdc\+\+|libgomp|libatomic)\.so'

[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] ||
  { echo "fetch-gpu-deps: needs Debian on amd64 (the GPU machine is x86-64)" >&2; exit 1; }
for p in "${SEED_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "fetch-gpu-deps: $p is not installed here: run tools/install-deps.sh first" >&2; exit 1; }
done

rm -rf "$PREFIX"
mkdir -p "$PREFIX" "$DEBS"
declare -A have_pkg=()

fetch_pkgs() { # download (once, all in one apt-get call) and unpack packages
  local p deb get=()
  for p in "$@"; do
    [ -n "$(find_deb "$p")" ] || get+=("$p")
  done
  if [ "${#get[@]}" -gt 0 ]; then
    (cd "$DEBS" && { apt-get download -qq "${get[@]}" 2>&1 | grep -v "unsandboxed as root" || true; })
  fi
  for p in "$@"; do
    deb=$(find_deb "$p")
    [ -n "$deb" ] || { echo "fetch-gpu-deps: apt-get download $p failed" >&2; exit 1; }
    dpkg-deb -x "$deb" "$PREFIX"
    have_pkg[$p]=1
    echo "$p $(dpkg-deb -f "$deb" Version) $(stat -c %s "$deb")" >>"$PREFIX/MANIFEST.tmp"
  done
}
find_deb() { find "$DEBS" -maxdepth 1 \( -name "${1}_*_amd64.deb" -o -name "${1}_*_all.deb" \) | head -1; }

prune() { # what a build and a run there never read
  rm -rf "$PREFIX"/usr/share/{doc,man,info,lintian,bug,locale,gdb,bash-completion} "$PREFIX"/etc/openmpi
  find "$PREFIX" \( -name '*.a' -o -name '*.la' -o -name '*.mod' \) -delete
  # Open MPI's fabric components (UCX, libfabric, verbs, PSM, Portals, uGNI, usNIC), its Fortran,
  # Java and OpenSHMEM layers, and the HDF5 tools: one node needs vader/self/tcp and C only.
  find "$PREFIX" \( -name 'mca_*ucx*' -o -name 'mca_*ofi*' -o -name 'mca_*openib*' \
      -o -name 'mca_*psm*' -o -name 'mca_*verbs*' -o -name 'mca_*portals*' -o -name 'mca_*ugni*' \
      -o -name 'mca_*usnic*' -o -name 'mca_*ucc*' -o -name 'mca_*hcoll*' -o -name 'mca_*fca*' \
      -o -name 'mca_*mxm*' -o -name 'mca_*_oshmem*' -o -name 'mca_spml_*' -o -name 'mca_sshmem_*' \
      -o -name 'mca_scoll_*' -o -name 'mca_atomic_*' -o -name 'mca_memheap_*' \
      -o -name 'libmpi_mpifh*' -o -name 'libmpi_usempi*' -o -name 'libmpi_java*' \
      -o -name 'liboshmem*' -o -name 'libompitrace*' -o -name 'mpi.jar' -o -name 'libmca_common_ucx*' \
      -o -name 'libmca_common_ofi*' -o -name 'libmca_common_verbs*' \) -exec rm -rf {} +
  # OpenBLAS's reference-named BLAS/LAPACK copies (libopenblas holds both), Open MPI's internal
  # and OpenSHMEM headers (mpi.h needs neither).
  local ob=$PREFIX/$ARCH_LIB/openblas-pthread omi=$PREFIX/$ARCH_LIB/openmpi/include
  rm -rf "$ob"/libblas.so* "$ob"/liblapack.so* "$omi"/*shmem* "$omi"/pshmem*.h
  rm -rf "$PREFIX/$ARCH_LIB/fortran" "$omi"/openshmem "$omi"/openmpi/{opal,orte,oshmem}
  find "$omi/openmpi/ompi" -mindepth 1 -maxdepth 1 ! -name mpi -exec rm -rf {} + 2>/dev/null || true
  find "$omi/openmpi/ompi/mpi" -mindepth 1 -maxdepth 1 ! -name cxx -exec rm -rf {} + 2>/dev/null || true
  find "$PREFIX/usr/bin" -type f \( -name 'h5*' -o -name 'shmem*' -o -name 'osh*' \
      -o -name '*fort*' -o -name '*f77*' -o -name '*f90*' -o -name 'mpijava*' \) -delete 2>/dev/null || true
}

needed_sonames() { # every DT_NEEDED of every ELF file in the prefix
  find "$PREFIX" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
    xargs -0 -r sh -c 'readelf -d "$@" 2>/dev/null; exit 0' _ | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u
}

fetch_pkgs "${SEED_PKGS[@]}"
prune
owners=$(mktemp)
trap 'rm -f "$owners"' EXIT
while :; do
  mapfile -t missing < <(comm -23 <(needed_sonames | grep -Ev "$BASE_SONAMES") \
    <(find "$PREFIX" \( -type f -o -type l \) -name '*.so*' -printf '%f\n' | sort -u))
  [ "${#missing[@]}" -eq 0 ] && break
  # One dpkg -S for the whole round (it reads every package's file list each time).
  dpkg -S "${missing[@]/#/*/x86_64-linux-gnu/}" >"$owners" 2>/dev/null || true
  declare -A round=()
  for so in "${missing[@]}"; do
    pkg=$(grep -m1 "/$so\$" "$owners" | cut -d: -f1)
    [ -n "$pkg" ] || { echo "fetch-gpu-deps: no installed package provides $so" >&2; exit 1; }
    [ -z "${have_pkg[$pkg]:-}" ] ||
      { echo "fetch-gpu-deps: $so (from $pkg) was pruned but is needed" >&2; exit 1; }
    echo "fetch-gpu-deps: $so -> $pkg"
    round[$pkg]=1
  done
  fetch_pkgs "${!round[@]}"
  unset round
  prune
done
sort "$PREFIX/MANIFEST.tmp" >"$PREFIX/MANIFEST" && rm "$PREFIX/MANIFEST.tmp"
# Merged /usr as on Debian 12 (zlib, libnl, libudev ... ship in /lib): one library folder, so
# the $ORIGIN run paths below and the wrappers' library path reach every library.
if [ -d "$PREFIX/lib" ] && [ ! -L "$PREFIX/lib" ]; then
  cp -a "$PREFIX/lib/." "$PREFIX/usr/lib/"
  rm -rf "${PREFIX:?}/lib"
  ln -s usr/lib "$PREFIX/lib"
fi
# The libraries the build links must resolve; links left dangling by the pruning (the HDF5 C++,
# Fortran and high-level libraries, PCRE2's other widths, alternatives) go.
for l in hdf5/serial/libhdf5.so openblas-pthread/libopenblas.so openmpi/lib/libmpi.so libcjson.so \
         libpcre2-8.so libutf8proc.so libyaml.so libcmocka.so; do
  [ -e "$PREFIX/$ARCH_LIB/$l" ] || { echo "fetch-gpu-deps: $ARCH_LIB/$l does not resolve" >&2; exit 1; }
done
find "$PREFIX" -xtype l -delete

# Debian's Open MPI libraries carry DT_RUNPATH /usr/lib/x86_64-linux-gnu/openmpi/lib, which
# makes the loader ignore our binaries' DT_RPATH for their dependencies (libmpi -> libopen-rte
# was "not found" where the system copy is absent). The string is rewritten in place, padded
# with NULs, to the same folder relative to the library: $ORIGIN for the libraries, and
# $ORIGIN/../../.. for the components three folders down.
python3 - "$PREFIX" <<'PY'
import os, sys
old = b"/usr/lib/x86_64-linux-gnu/openmpi/lib\0"
new = b"$ORIGIN:$ORIGIN/../../..\0"
new += b"\0" * (len(old) - len(new))
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        path = os.path.join(root, f)
        if os.path.islink(path) or ".so" not in f:
            continue
        data = open(path, "rb").read()
        if data[:4] != b"\x7fELF" or data.count(old) == 0:
            continue
        if data.count(old) != 1:
            sys.exit(f"fetch-gpu-deps: {path}: the Open MPI run path occurs {data.count(old)} times")
        open(path, "wb").write(data.replace(old, new))
PY

# mpirun/mpiexec that work from wherever the folder lands: Open MPI and PMIx relocate their
# install paths from OPAL_PREFIX / PMIX_PREFIX; the library path reaches orterun's own
# libraries and the components it dlopens (the launched ranks inherit it).
mkdir -p "$PREFIX/bin"
for w in mpirun mpiexec; do
  cat >"$PREFIX/bin/$w" <<'EOF'
#!/bin/sh
# Carried Open MPI (tools/fetch-gpu-deps.sh): relocated to this folder's usr/.
p=$(cd "$(dirname "$0")/.." && pwd)
l=$p/usr/lib/x86_64-linux-gnu
export OPAL_PREFIX="$p/usr" PMIX_PREFIX="$l/pmix2" PMIX_INSTALL_PREFIX="$l/pmix2"
export PMIX_MCA_mca_base_component_path="$l/pmix2/lib/pmix"
export LD_LIBRARY_PATH="$l:$l/openmpi/lib:$l/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$p/usr/bin:$PATH"
exec "$p/usr/bin/orterun" "$@"
EOF
  chmod +x "$PREFIX/bin/$w"
done

# The newest GLIBC_x.y symbol version any carried ELF file asks for.
find "$PREFIX" -type f \( -name '*.so*' -o -perm -u+x \) -print0 |
  xargs -0 -r sh -c 'readelf -V "$@" 2>/dev/null; exit 0' _ | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV |
  tail -1 >"$PREFIX/GLIBC_REQUIRED"

# What travels: the prefix as one gzip archive (OpenBLAS's every-CPU library alone is 36 MiB
# unpacked, 10 MiB packed); tools/gpu-check.sh unpacks it there when the folder is missing.
mkdir -p "$(dirname "$ARCHIVE")"
tar -C "$(dirname "$PREFIX")" -cf - "$(basename "$PREFIX")" | gzip -6 >"$ARCHIVE.tmp"
mv "$ARCHIVE.tmp" "$ARCHIVE"

mib() { awk -v a="$1" 'BEGIN {printf "%.1f", a / 1048576}'; }
prefix_b=$(du -sb "$PREFIX" | cut -f1)
archive_b=$(stat -c %s "$ARCHIVE")
tree_b=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
other_b=$(git ls-files -z --others --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null |
  awk '{s += $1} END {print s + 0}')
total_b=$((archive_b + tree_b + other_b))
echo "fetch-gpu-deps: $(wc -l <"$PREFIX/MANIFEST") packages; $PREFIX $(mib "$prefix_b") MiB unpacked," \
  "$ARCHIVE $(mib "$archive_b") MiB; carried with the tracked tree ($(mib "$tree_b") MiB) and" \
  "untracked files ($(mib "$other_b") MiB): $(mib "$total_b") MiB of $BUDGET_MIB MiB;" \
  "needs glibc >= $(cat "$PREFIX/GLIBC_REQUIRED") there"
[ "$total_b" -le $((BUDGET_MIB * 1048576)) ] || { echo "fetch-gpu-deps: over the carry budget" >&2; exit 1; }
