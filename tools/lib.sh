# The preamble shared by the long job scripts (tools/main-job.sh, tools/lrsa-vs-dense.sh), so the
# two say, time and build the same way. A script sets LRSA_JOB (the name its messages start
# with) and `set -euo pipefail`, then sources this file with its own arguments:
#   LRSA_JOB=main-job
#   . "$(dirname "$0")/lib.sh" "$@"
# It moves into the repository root (REPO), answers -h/--help with the calling script's header
# comment (the lines after the #! line up to the first non-comment line) and exits, starts the
# clock (T0) and defines elapsed, step, say, die and build_lrsa.
# shellcheck shell=bash

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
case "${1:-}" in -h | --help)
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" # the header comment
    exit 0
    ;;
esac

T0=$(date +%s)
# elapsed: the wall time since T0 as 12m05s.
elapsed() {
    local s=$(($(date +%s) - T0))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}
step() { printf '\n== [%s] %s\n' "$(elapsed)" "$*"; }
say() { echo "$LRSA_JOB: $*"; }
die() {
    echo "$LRSA_JOB: error: $*" >&2
    exit 1
}

# build_lrsa BUILD_DIR: installs the Debian packages, builds the lrsa binary (Release) in
# BUILD_DIR and sets LRSA to its absolute path.
build_lrsa() {
    bash tools/install-deps.sh
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$1" --target lrsa -j "$(nproc)"
    LRSA="$REPO/$1/lrsa"
    [ -x "$LRSA" ] || die "the build did not produce $LRSA"
}
