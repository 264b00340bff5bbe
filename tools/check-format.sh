#!/usr/bin/env bash
# Fails (exit 1) when a tracked C/CUDA source differs from what clang-format makes of it with the
# committed .clang-format. Fix with: git ls-files '*.c' '*.h' '*.cu' '*.cuh' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format is not installed (apt-get install clang-format)"; exit 1; }
files=$(git ls-files '*.c' '*.h' '*.cu' '*.cuh')
if ! out=$(echo "$files" | xargs clang-format --dry-run --Werror 2>&1); then
  echo "$out" | grep -E "error:" | cut -d: -f1 | sort -u | sed 's/^/check-format: not formatted: /'
  echo "check-format: run  git ls-files '*.c' '*.h' '*.cu' '*.cuh' | xargs clang-format -i"
  exit 1
fi
echo "check-format: $(echo "$files" | wc -l) files formatted"
