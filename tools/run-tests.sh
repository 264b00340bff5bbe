#!/usr/bin/env bash
# The test command of the README: installs dependencies, builds lrsa, runs the whole ctest
# suite, then rebuilds with AddressSanitizer + UndefinedBehaviorSanitizer and runs it again.
#   bash tools/run-tests.sh            # both builds
#   LRSA_SKIP_SANITIZE=1 bash tools/run-tests.sh   # release build only
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
JOBS=$(nproc)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

echo "== release build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure -j "$JOBS")

if [ -z "${LRSA_SKIP_SANITIZE:-}" ]; then
  echo "== ASan + UBSan build (build-asan/)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLRSA_SANITIZE=ON -DLRSA_CUDA=OFF >/dev/null
  cmake --build build-asan -j "$JOBS"
  # Open MPI's own allocations are reported as leaks by LeakSanitizer: leaks are not checked.
  # Tests labelled `slow` are skipped here (they ran above).
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j "$JOBS" -LE slow)
fi
