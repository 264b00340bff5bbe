#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined) and fuzzes one of
# them for N seconds, starting from seeds written by make_seeds (synthetic GGUF models, their
# converted safetensors and tokenizer.json, QA JSONL records), make_dataset_seeds (small HDF5
# QA datasets, for the `dataset` target) or, for yaml, the shipped configs. Not part of CI.
#
#   tools/fuzz/run.sh [gguf|safetensors|tokenizer|jsonl|dataset|yaml] [SECONDS]   (default: gguf 180)
#
# LRSA_FUZZ_ARGS adds libFuzzer flags, e.g. LRSA_FUZZ_ARGS="-fork=1 -ignore_timeouts=1" to go
# on past a known hang inside libhdf5 (the dataset target; docs/DATA.md).
#
# Needs clang and libFuzzer (Debian: clang-14 with libclang-rt-14-dev). Builds in
# build-fuzz/ (the library, with fuzzer-no-link instrumentation) and keeps the corpus and any
# crash files in build-fuzz/fuzz-<target>/. Objects are rebuilt when their .c file changes;
# after a header change, rm -rf build-fuzz/obj.
set -euo pipefail
TARGET=${1:-gguf}
SECONDS_TO_RUN=${2:-180}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$REPO/build-fuzz
case "$TARGET" in gguf|safetensors|tokenizer|jsonl|dataset|yaml) ;; *) echo "run.sh: unknown target '$TARGET'" >&2; exit 2 ;; esac
command -v clang >/dev/null || { echo "run.sh: clang not found (apt-get install clang)" >&2; exit 1; }

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
CFLAGS="-std=c11 -D_DEFAULT_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -I$REPO $(pkg-config --cflags hdf5 openblas)"
# The library is compiled here rather than through CMake: the project's -Werror flags are
# gcc's, and a clang-only warning in any file must not stop the fuzzing. Files that fail to
# compile with clang are skipped (reported); the linker says if a target needed one of them.
echo "run.sh: compiling the library with clang into $BUILD/obj"
mkdir -p "$BUILD/obj"
objs=()
while IFS= read -r src; do
  obj=$BUILD/obj/$(echo "${src#"$REPO"/}" | tr / _).o
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
    # shellcheck disable=SC2086
    clang $CFLAGS $SAN -fsanitize=fuzzer-no-link -w -c "$src" -o "$obj" 2>/dev/null \
      || { echo "run.sh: skipped $src (does not compile with clang)"; rm -f "$obj"; continue; }
  fi
  objs+=("$obj")
done < <(find "$REPO"/{base,kernels,autograd,model,data,convert,eval,train} -name '*.c' | sort)
rm -f "$BUILD/liblrsa_fuzz.a"
ar rcs "$BUILD/liblrsa_fuzz.a" "${objs[@]}"

LIBS="$BUILD/liblrsa_fuzz.a $(pkg-config --libs hdf5 openblas libcjson libpcre2-8 libutf8proc yaml-0.1) -lm -lpthread"
INC="$CFLAGS -I$REPO/tests/gguf"
case "$TARGET" in
  gguf) SRC=$REPO/tools/fuzz/fuzz_gguf.c; DEF= ;;
  safetensors) SRC=$REPO/tools/fuzz/fuzz_file_reader.c; DEF=-DFUZZ_SAFETENSORS ;;
  tokenizer) SRC=$REPO/tools/fuzz/fuzz_file_reader.c; DEF=-DFUZZ_TOKENIZER ;;
  jsonl) SRC=$REPO/tools/fuzz/fuzz_jsonl.c; DEF= ;;
  dataset) SRC=$REPO/tools/fuzz/fuzz_dataset.c; DEF= ;;
  yaml) SRC=$REPO/tools/fuzz/fuzz_yaml.c; DEF= ;;
esac
# shellcheck disable=SC2086
clang $SAN -fsanitize=fuzzer $DEF $INC "$SRC" $LIBS -o "$BUILD/fuzz_$TARGET"
# shellcheck disable=SC2086
clang $SAN $INC "$REPO/tools/fuzz/make_seeds.c" "$REPO/tests/gguf/gguf_fixture.c" $LIBS \
  -o "$BUILD/make_seeds"

WORK=$BUILD/fuzz-$TARGET
mkdir -p "$WORK/corpus" "$WORK/seeds"
if [ "$TARGET" = dataset ]; then
  # shellcheck disable=SC2086
  clang $SAN $INC "$REPO/tools/fuzz/make_dataset_seeds.c" $LIBS -o "$BUILD/make_dataset_seeds"
  "$BUILD/make_dataset_seeds" "$WORK/seeds/dataset"
else
  "$BUILD/make_seeds" "$WORK/seeds" >/dev/null
  if [ "$TARGET" = yaml ]; then  # the shipped configs, training and evaluation grids
    mkdir -p "$WORK/seeds/yaml"
    find "$REPO/configs" -name '*.yaml' -exec cp {} "$WORK/seeds/yaml/" \;
  fi
fi
echo "run.sh: fuzzing $TARGET for $SECONDS_TO_RUN s (corpus $WORK/corpus, crashes in $WORK)"
cd "$WORK"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
# shellcheck disable=SC2086
"$BUILD/fuzz_$TARGET" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -rss_limit_mb=2048 \
  -timeout=10 -print_final_stats=1 ${LRSA_FUZZ_ARGS:-} "$WORK/corpus" "$WORK/seeds/$TARGET" 2>&1 | tail -n 25
