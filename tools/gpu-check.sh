#!/usr/bin/env bash
# Every GPU check of the project in one call, for a session that is lent a GPU for a few
# minutes: build for the local GPU only, run the GPU tests (label `gpu`: the kernels, a whole
# model step against the CPU, `lrsa train` device cuda vs cpu with checkpoints across devices,
# data-parallel `lrsa train` device cuda under mpirun against one GPU (issue 18),
# the GPU KV cache), two of them once more under compute-sanitizer, then every GPU benchmark,
# and keep all output in one folder; then the PyTorch side of the benchmarks
# (bench/gpu_vs_torch.py: transformers' 1B step, SDPA flash/cuDNN, FlexAttention on the LRSA
# mask). NEVER RUN ON A GPU so far, carried mode included (docs/CUDA.md).
#
#   bash tools/gpu-check.sh [--carried] [OUT_DIR]        # default OUT_DIR: runs/gpu-check
#
# Dependencies: on Debian the installed packages (tools/install-deps.sh). On a machine that is
# not Debian (the lent GPU machines) the carried prefix: .gpu-carry/gpu-deps.tar.gz, made here by
# tools/fetch-gpu-deps.sh, is unpacked into .gpu-deps/ and the build takes every library from it
# (LRSA_DEPS_PREFIX), cuDNN and NCCL from the Python environment's wheels (LRSA_CUDNN_ROOT,
# LRSA_NCCL_ROOT) and runs the prefix's mpirun. --carried forces that mode; without it, it is
# chosen when the archive or the folder is there and the system has no HDF5 headers.
#
# Environment: LRSA_CUDA_ARCH (default 90a: H100/H200), LRSA_GPU_BUILD (default build-gpu),
#              LRSA_SKIP_BENCH=1 runs the tests only, LRSA_SKIP_TORCH=1 skips the PyTorch side,
#              LRSA_PYTHON (default python3: the one with torch, and the cuDNN/NCCL wheels).
# nvcc must be on PATH (or at /usr/local/cuda/bin).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
CARRIED=auto
if [ "${1:-}" = --carried ]; then
  CARRIED=1
  shift
fi
OUT=${1:-runs/gpu-check}
BUILD=${LRSA_GPU_BUILD:-build-gpu}
ARCH=${LRSA_CUDA_ARCH:-90a}
PY=${LRSA_PYTHON:-python3}
mkdir -p "$OUT"
log() { echo "gpu-check: $*" | tee -a "$OUT/summary.txt"; }

log "$(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$OUT/summary.txt" 2>&1 ||
  log "nvidia-smi failed: is there a GPU?"
command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"

# ---- Carried dependencies (issue 17 item 7) ---------------------------------------------------
DEPS=.gpu-deps
ARCHIVE=.gpu-carry/gpu-deps.tar.gz
if [ "$CARRIED" = auto ]; then
  CARRIED=0
  if { [ -f "$ARCHIVE" ] || [ -f "$DEPS/MANIFEST" ]; } && [ ! -e /usr/include/hdf5/serial/hdf5.h ]; then
    CARRIED=1
  fi
fi
CMAKE_DEPS=()
MPIRUN=$(command -v mpirun || true)
if [ "$CARRIED" = 1 ]; then
  if [ -f "$ARCHIVE" ] && { [ ! -f "$DEPS/MANIFEST" ] || [ "$ARCHIVE" -nt "$DEPS/MANIFEST" ]; }; then
    rm -rf "$DEPS"
    # tar and gzip, or Python's tarfile where they are missing.
    tar -xzf "$ARCHIVE" 2>/dev/null ||
      "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall()' "$ARCHIVE" ||
      { log "cannot unpack $ARCHIVE"; exit 1; }
    touch "$DEPS/MANIFEST" # newer than the archive: not unpacked again by the next run
  fi
  [ -f "$DEPS/MANIFEST" ] ||
    { log "--carried: no $ARCHIVE or $DEPS: run tools/fetch-gpu-deps.sh on Debian and carry .gpu-carry"; exit 1; }
  need=$(cat "$DEPS/GLIBC_REQUIRED")
  have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
  log "carried dependencies: $(wc -l <"$DEPS/MANIFEST") Debian 12 packages in $DEPS; glibc here ${have:-?}, needed $need"
  if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1)" != "$need" ]; then
    log "glibc $have is older than the $need the carried libraries need: they cannot load here"
    exit 1
  fi
  CMAKE_DEPS=(-DLRSA_DEPS_PREFIX="$PWD/$DEPS")
  wheels=$("$PY" -c 'import nvidia.cudnn as c, nvidia.nccl as n; print(list(c.__path__)[0], list(n.__path__)[0])' 2>/dev/null)
  if [ -n "$wheels" ]; then
    read -r cudnn_root nccl_root <<<"$wheels"
    CMAKE_DEPS+=(-DLRSA_CUDNN_ROOT="$cudnn_root" -DLRSA_NCCL_ROOT="$nccl_root")
    log "cuDNN from $cudnn_root, NCCL from $nccl_root"
  else
    log "no nvidia.cudnn / nvidia.nccl wheels in $PY: cuDNN and NCCL from the CUDA toolkit, if any"
  fi
  MPIRUN=$PWD/$DEPS/bin/mpirun
fi

log "configure + build ($BUILD, CUDA arch $ARCH)"
if ! { cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
         -DCMAKE_CUDA_ARCHITECTURES="$ARCH" "${CMAKE_DEPS[@]}" && ninja -C "$BUILD"; } >"$OUT/build.log" 2>&1; then
  log "build FAILED: see $OUT/build.log"; tail -30 "$OUT/build.log"; exit 1
fi
grep -E "^-- lrsa: " "$OUT/build.log" | tee -a "$OUT/summary.txt"
if [ "$CARRIED" = 1 ]; then
  # Every library of the command must resolve (the prefix's by DT_RPATH, no LD_LIBRARY_PATH).
  ldd "$BUILD/lrsa" >"$OUT/ldd_lrsa.txt" 2>&1
  log "ldd lrsa: $(grep -c "$PWD/$DEPS" "$OUT/ldd_lrsa.txt") libraries from $DEPS, $(grep -c 'not found' "$OUT/ldd_lrsa.txt") not found"
fi

log "GPU tests (ctest -L gpu)"
(cd "$BUILD" && ctest -L gpu --output-on-failure --timeout 300) >"$OUT/tests.log" 2>&1
log "tests rc=$?: $(grep -E 'tests passed|tests failed' "$OUT/tests.log" | tail -1)"
grep -E "\*\*\*|Failed|Skipped" "$OUT/tests.log" | tee -a "$OUT/summary.txt"

# The attention tests once more with the fp32 CUDA-core forward, and once with the fp32 backward
# (the defaults are tensor cores): both kernels of each must pass against the same CPU references.
for t in test_gpu_attention test_gpu_lrsa_attention; do
  LRSA_ATTN_FP32_FORWARD=1 timeout 300 "$BUILD/tests/gpu/$t" >"$OUT/${t}_fp32_forward.log" 2>&1
  log "$t with LRSA_ATTN_FP32_FORWARD=1 rc=$?"
  LRSA_ATTN_FP32_BACKWARD=1 timeout 300 "$BUILD/tests/gpu/$t" >"$OUT/${t}_fp32_backward.log" 2>&1
  log "$t with LRSA_ATTN_FP32_BACKWARD=1 rc=$?"
done

# cuDNN's fused attention (attention.impl: cudnn) against the CPU and our kernel, its lines kept
# (ctest ran it and test_gpu_train_cudnn above; 77: the build found no cuDNN).
timeout 300 "$BUILD/tests/gpu/test_gpu_attention_cudnn" >"$OUT/test_gpu_attention_cudnn.log" 2>&1
log "test_gpu_attention_cudnn rc=$?: $(grep -c '^ok' "$OUT/test_gpu_attention_cudnn.log") ok, $(grep -c '^FAIL' "$OUT/test_gpu_attention_cudnn.log") FAIL"

# Once under compute-sanitizer (memcheck): the whole-model step and the GPU KV cache exercise
# every kernel of training and inference.
if command -v compute-sanitizer >/dev/null; then
  for t in test_gpu_model_step test_gpu_kv_cache; do
    log "compute-sanitizer memcheck $t"
    compute-sanitizer --tool memcheck --error-exitcode 99 "$BUILD/tests/gpu/$t" \
      >"$OUT/sanitizer_$t.log" 2>&1
    log "$t under compute-sanitizer rc=$?: $(grep -E 'ERROR SUMMARY' "$OUT/sanitizer_$t.log" | tail -1)"
  done
else
  log "compute-sanitizer not found: skipped"
fi

if [ -z "${LRSA_SKIP_BENCH:-}" ]; then
  for b in "$BUILD"/bench/bench_gpu_*; do
    [ -x "$b" ] || continue
    name=$(basename "$b")
    log "benchmark $name"
    timeout 300 "$b" >"$OUT/$name.txt" 2>&1
    log "$name rc=$?"
  done
fi
# ---- Issue 18 (NCCL) -------------------------------------------------------------------------
# ctest -L gpu above ran the NCCL tests: test_gpu_nccl, test_gpu_zero and the data-parallel
# trainer test_gpu_train_dp as one rank (one GPU), and their _2ranks twins under mpiexec (they
# exit 77 with fewer than 2 GPUs). The trainer's per-step comparison is kept in its own log:
if [ -n "$MPIRUN" ] && [ -x "$BUILD/tests/gpu/test_gpu_train_dp_2ranks" ]; then
  NP=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$NP" -gt 2 ] && NP=2
  [ "$NP" -lt 1 ] && NP=1
  timeout 600 "$MPIRUN" --allow-run-as-root -np "$NP" "$BUILD/tests/gpu/test_gpu_train_dp_2ranks" \
    >"$OUT/train_dp_${NP}ranks.log" 2>&1
  log "test_gpu_train_dp on $NP rank(s) rc=$? (77: skipped): $(grep -c '^ok' "$OUT/train_dp_${NP}ranks.log") ok, $(grep -c '^FAIL' "$OUT/train_dp_${NP}ranks.log") FAIL"
fi
# The collectives' bus bandwidth and the GPU step's weak scaling (bench_comm --device --step: the
# GPU trainer's step, Llama-3.2-1B shape, T = 8192, comm.overlap on and off, against the one-GPU
# trainer, itself with and without CUDA graphs: the `no-graphs` row and the '# one GPU: CUDA graphs'
# line say what graphs save) on every GPU of the machine, one rank each. NCCL comes from NCCL_ROOT, the CUDA
# toolkit or the Python environment's nvidia-nccl wheel (CMakeLists.txt).
if [ -z "${LRSA_SKIP_BENCH:-}" ] && [ -x "$BUILD/bench/bench_comm" ] && [ -n "$MPIRUN" ]; then
  NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$NGPU" -lt 1 ] && NGPU=1
  log "benchmark bench_comm --device --step on $NGPU rank(s), one GPU each"
  timeout 240 "$MPIRUN" --allow-run-as-root -np "$NGPU" "$BUILD/bench/bench_comm" --device --step \
    --max-mb 256 >"$OUT/bench_comm_${NGPU}ranks.txt" 2>&1
  log "bench_comm on $NGPU rank(s) rc=$?"
  grep -E "^ +[0-9]+ (one-gpu|no-graphs|overlap|no-overlap) |^# " "$OUT/bench_comm_${NGPU}ranks.txt" |
    tee -a "$OUT/summary.txt"
  if [ "$NGPU" -eq 1 ]; then
    # Two ranks on the one GPU: NCCL usually refuses two ranks of one communicator on one
    # device; the benchmark then prints a note with NCCL's message and a 'refused by NCCL' row
    # and exits 0. The tiny shape: this records whether NCCL allows the sharing, not a scaling.
    timeout 300 "$MPIRUN" --allow-run-as-root --oversubscribe -np 2 "$BUILD/bench/bench_comm" \
      --device --step --max-mb 64 --config configs/tiny/config-d64.json --seq 256 \
      >"$OUT/bench_comm_2ranks_1gpu.txt" 2>&1
    log "bench_comm, 2 ranks sharing the GPU, rc=$?: $(grep -E '^note|refused' \
      "$OUT/bench_comm_2ranks_1gpu.txt" | head -2 | tr '\n' ' ')"
  fi
fi
# ---- end of issue 18 --------------------------------------------------------------------------
# ---- The PyTorch side (issue 17 item 7): the same shapes through torch, in our units ---------
# transformers' Llama-1B-shaped step at T = 8192, SDPA flash and cuDNN, FlexAttention on the LRSA
# mask (bench/gpu_vs_torch.py; about 2 minutes by design: a FlexAttention compile per head shape).
# It gets what is left of LRSA_TIME_BUDGET_S (default 540 s since the start: one device call
# is 600 s) and at most 300 s; with under 60 s left it is skipped, saying so.
left=$((${LRSA_TIME_BUDGET_S:-540} - SECONDS))
[ "$left" -gt 300 ] && left=300
if [ -z "${LRSA_SKIP_BENCH:-}" ] && [ -z "${LRSA_SKIP_TORCH:-}" ] && [ "$left" -lt 60 ]; then
  log "gpu_vs_torch.py skipped: only ${left} s of the time budget left after ${SECONDS} s"
elif [ -z "${LRSA_SKIP_BENCH:-}" ] && [ -z "${LRSA_SKIP_TORCH:-}" ]; then
  if "$PY" -c 'import torch, transformers; assert torch.cuda.is_available()' 2>/dev/null; then
    log "benchmark gpu_vs_torch.py ($PY, at most $left s)"
    PYTHONUNBUFFERED=1 timeout "$left" "$PY" bench/gpu_vs_torch.py --json "$OUT/gpu_vs_torch.json" \
      >"$OUT/gpu_vs_torch.txt" 2>&1
    log "gpu_vs_torch rc=$?: $(grep -E '^torch-llama1b|^gpu_vs_torch:' "$OUT/gpu_vs_torch.txt" | tr '\n' ' ')"
  else
    log "gpu_vs_torch.py skipped: $PY has no torch with CUDA or no transformers"
  fi
fi
log "done after ${SECONDS} s: outputs in $OUT"
