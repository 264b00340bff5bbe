#!/usr/bin/env bash
# Batched evaluation's speed-up (docs/EVAL.md "Batched evaluation"; not in CI): the same small
# grid (SmolLM2-135M-Instruct, passkey, full cache / SnapKV / LagKV at keep 1/2) with batch: 1
# and batch: N, alternating, REPEAT times each, into fresh run folders; prints the wall and CPU
# (user + sys) time of every run, the medians and the ratios, and checks that both wrote the same
# cells and predictions. On a shared machine the CPU time is the steadier figure.
#   bash bench/eval_batch.sh [N=4] [REPEAT=2]      (needs tools/fetch-model.sh, fetch-haystack.sh)
# Environment: LRSA (default build/lrsa), LENGTH (default 512), SAMPLES (default 8),
# PROTOCOLS (default "query-agnostic, query-aware").
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
REPEAT=${2:-2}
LRSA=${LRSA:-build/lrsa}
LENGTH=${LENGTH:-512}
SAMPLES=${SAMPLES:-8}
PROTOCOLS=${PROTOCOLS:-query-agnostic, query-aware}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/grid.yaml" <<YAML
run_dir: $work/unused
models: [models/smollm2-135m-instruct]
methods: [none, {name: snapkv, window: 32}, {name: lagkv, sink: 16, lag: 64}]
budgets: [1/2]
tasks: [{synthetic: passkey, lengths: [$LENGTH], depths: [0.5], n: $SAMPLES, max_new: 12}]
protocols: [$PROTOCOLS]
YAML
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
declare -A wall cpu
TIMEFORMAT='%R %U %S'
for r in $(seq 1 "$REPEAT"); do
  for b in 1 "$N"; do
    t=$( { time "$LRSA" eval "$work/grid.yaml" run_dir="$work/b$b-$r" batch="$b" --quiet \
            >/dev/null 2>&1; } 2>&1 )
    read -r w u s <<<"$t"
    c=$(echo "$u + $s" | bc)
    wall[$b]="${wall[$b]:-} $w"
    cpu[$b]="${cpu[$b]:-} $c"
    printf 'batch %-3s run %d: wall %.1f s, cpu %.1f s (load %s)\n' "$b" "$r" "$w" "$c" \
      "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for k in wall cpu; do
  declare -n tk=$k
  m1=$(echo "${tk[1]}" | median)
  mn=$(echo "${tk[$N]}" | median)
  printf 'median %s: batch 1 %.1f s, batch %s %.1f s, speed-up %.2fx\n' "$k" "$m1" "$N" "$mn" \
    "$(echo "$m1 / $mn" | bc -l)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
# same cells, same predictions (NLLs agree up to float rounding: tests/grid/test_run.c)
python3 - "$work/b1-1/results.jsonl" "$work/b$N-1/results.jsonl" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert [r["key"] for r in a] == [r["key"] for r in b], "different cells"
worst = 0.0
for x, y in zip(a, b):
    for s, t in zip(x["samples"], y["samples"]):
        assert s["prediction"] == t["prediction"], (x["key"], s["index"])
        worst = max(worst, abs(s["answer_nll_sum"] - t["answer_nll_sum"]) / abs(s["answer_nll_sum"]))
print(f"{len(a)} cells: same predictions; largest relative NLL difference {worst:.2g}")
PY
