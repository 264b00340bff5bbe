#!/usr/bin/env bash
# Runs the CUDA attention and LagKV kernels on the CPU (each block as 256 OpenMP threads) against
# the CPU references: a logic check for machines without a GPU. It proves nothing about GPU
# behaviour; the GPU tests (tests/gpu/) remain the real check.
# usage: tools/cuda-emulate/run.sh BUILD_DIR   (a CPU build: cmake ... -DLRSA_CUDA=OFF; ninja lrsa_core)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:?usage: $0 BUILD_DIR (configured with -DLRSA_CUDA=OFF, lrsa_core built)}
lib="$build/liblrsa_core.a"
[ -f "$lib" ] || { echo "error: $lib not found: build lrsa_core in $build first" >&2; exit 2; }
cuda_inc=${CUDA_HOME:-/usr/local/cuda}/include
[ -f "$cuda_inc/cuda_bf16.h" ] || { echo "error: $cuda_inc/cuda_bf16.h not found: set CUDA_HOME" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# kern.h: the shared attention kernels without the host launch helpers and the (shuffle-based)
# delta kernel; lagkern.h: the LagKV kernel file's unnamed-namespace device part.
sed -e '/^\/\/ Checks the shapes the kernels support/,/^} \/\/ namespace lrsa_attn_cuda/{/^} \/\/ namespace lrsa_attn_cuda/!d}' \
    -e '/^\/\/ delta\[(b\*Hq + h)\*T + t\] = sum_c/,/^}$/d' \
    -e 's|#include "kernels/device/cuda_check.h"||' \
    "$root/kernels/attention/attention_kernels_cuda.cuh" > "$work/kern.h"
python3 - "$root/kernels/lagkv/lagkv_cuda.cu" "$work/lagkern.h" <<'PY'
import sys
s = open(sys.argv[1]).read()
a = s.index('namespace {') + len('namespace {')
b = s.index('template <typename T>\nvoid select_launch')
open(sys.argv[2], 'w').write(s[a:b])
PY
flags=(-std=c++17 -O1 -fopenmp -w -I"$root" -I"$work" -I"$cuda_inc")
g++ "${flags[@]}" "$here/emulate_attention.cpp" -o "$work/emulate_attention" "$lib" -lopenblas -lm -lpthread
g++ "${flags[@]}" "$here/emulate_lagkv.cpp" -o "$work/emulate_lagkv" "$lib" -lm -lpthread
export OMP_WAIT_POLICY=passive OPENBLAS_NUM_THREADS=1
"$work/emulate_lagkv"
"$work/emulate_attention"
