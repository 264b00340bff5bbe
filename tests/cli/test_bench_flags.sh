#!/bin/sh
# `lrsa bench`: whole-string integer flags (a typo is named, never read as 0), the attention
# mode's result line, and a peak resident memory that is lrsa's own: the figure comes from
# VmHWM, not from ru_maxrss, which Linux carries over from a big parent (bench/vs_torch.py is a
# ~600 MiB Python process) across fork and exec.
set -u
LRSA=$1
MODEL=$2
fail() { echo "FAIL: $*"; exit 1; }
expect_error() { # expect_error TEXT args...: non-zero exit and TEXT in the message
    text=$1
    shift
    out=$("$LRSA" "$@" 2>&1) && fail "lrsa $* exited 0"
    case $out in *"$text"*) ;; *) fail "lrsa $*: expected '$text' in: $out" ;; esac
}
expect_error "--T: 'abc' is not an integer" bench --T abc
expect_error "--steps: '2x' is not an integer" bench --config small --steps 2x
expect_error "--T: '12x' is not an integer" bench --mode prefill --model "$MODEL" --T 12x
expect_error "--new: '0' is not an integer in [1," bench --mode decode --model "$MODEL" --new 0
expect_error "train, prefill, decode or attention" bench --mode bogus
expect_error "config.json" bench --mode attention --model /nonexistent-dir --T 8

out=$("$LRSA" bench --mode attention --model "$MODEL" --T 40 --steps 1 2>&1) || fail "attention: $out"
line=$(echo "$out" | grep '^result attention T 40 seconds ')
[ -n "$line" ] || fail "no result line in: $out"

# a parent holding 700 MiB of touched memory runs lrsa; lrsa's reported peak must be its own
big=$(python3 -c '
import subprocess, sys
hold = b"\1" * (700 << 20)
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(r.stdout)
' "$LRSA" bench --mode attention --model "$MODEL" --T 40 --steps 1) || fail "run under python"
rss=$(echo "$big" | sed -n 's/^result attention .* peak_rss_mib \([0-9.]*\).*/\1/p')
[ -n "$rss" ] || fail "no peak_rss_mib in: $big"
awk -v r="$rss" 'BEGIN { exit !(r > 1 && r < 600) }' ||
    fail "peak RSS $rss MiB is not lrsa's own (the parent held 700 MiB)"
echo "ok: bench flags checked, attention mode runs, peak RSS $rss MiB is lrsa's own"
