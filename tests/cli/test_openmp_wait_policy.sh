#!/bin/sh
# lrsa runs its OpenMP threads with the passive wait policy unless the user chose one
# (cli/main.c: spinning OpenMP threads starve OpenBLAS's threads on a small machine).
# `lrsa bench --mode decode` prints the policy its process runs with.
set -eu
LRSA=$1
MODEL=$2
policy() {
    "$@" "$LRSA" bench --mode decode --model "$MODEL" --T 8 --steps 1 --new 1 2>&1 |
        sed -n 's/.*OMP_WAIT_POLICY \([^ ]*\).*/\1/p' | head -n1
}
got=$(policy env -u OMP_WAIT_POLICY)
[ "$got" = passive ] || { echo "unset policy: expected passive, got '$got'"; exit 1; }
got=$(policy env OMP_WAIT_POLICY=active)
[ "$got" = active ] || { echo "user policy: expected active kept, got '$got'"; exit 1; }
echo "ok: passive by default, the user's choice kept"
