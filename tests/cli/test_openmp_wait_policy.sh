#!/bin/sh
# lrsa runs its OpenMP threads with the passive wait policy and OpenBLAS's idle workers with the
# shortest spin (OPENBLAS_THREAD_TIMEOUT=4) unless the user chose otherwise (cli/main.c: a
# spinning idle thread of either pool starves the other pool's threads on a small machine).
# `lrsa bench --mode decode` prints the values its process runs with.
set -eu
LRSA=$1
MODEL=$2
value() { # value NAME command...: the value of NAME in the bench's header line
    name=$1
    shift
    "$@" "$LRSA" bench --mode decode --model "$MODEL" --T 8 --steps 1 --new 1 2>&1 |
        sed -n "s/.* $name \([^ ]*\).*/\1/p" | head -n1
}
got=$(value OMP_WAIT_POLICY env -u OMP_WAIT_POLICY)
[ "$got" = passive ] || { echo "unset policy: expected passive, got '$got'"; exit 1; }
got=$(value OMP_WAIT_POLICY env OMP_WAIT_POLICY=active)
[ "$got" = active ] || { echo "user policy: expected active kept, got '$got'"; exit 1; }
got=$(value OPENBLAS_THREAD_TIMEOUT env -u OPENBLAS_THREAD_TIMEOUT -u GOTO_THREAD_TIMEOUT)
[ "$got" = 4 ] || { echo "unset OpenBLAS timeout: expected 4, got '$got'"; exit 1; }
got=$(value OPENBLAS_THREAD_TIMEOUT env OPENBLAS_THREAD_TIMEOUT=12)
[ "$got" = 12 ] || { echo "user OpenBLAS timeout: expected 12 kept, got '$got'"; exit 1; }
got=$(value OPENBLAS_THREAD_TIMEOUT env -u OPENBLAS_THREAD_TIMEOUT GOTO_THREAD_TIMEOUT=12)
[ "$got" = "(unset)" ] || { echo "user GOTO_THREAD_TIMEOUT: expected ours unset, got '$got'"; exit 1; }
echo "ok: passive OpenMP waits and sleeping OpenBLAS workers by default, the user's choice kept"
