#!/usr/bin/env bash
# Does LRSA training beat ordinary (dense) fine-tuning under LagKV compression? The control-arm
# experiment of issue 19, end to end, resumable:
#   1. installs the Debian packages, builds lrsa (Release), fetches SmolLM2-135M-Instruct and
#      the essays used as haystack;
#   2. writes a mixed synthetic QA training set (TRAIN_TASKS, lengths LENGTHS, essays of the
#      `train` split) and a held-out set (the same tasks plus HELDOUT_TASK, which no model
#      trains on, from the `heldout` essays: no essay appears in both sets);
#   3. fine-tunes the base model twice per seed, with configs/recipes/lrsa-vs-dense-dense.yaml
#      and configs/recipes/lrsa-vs-dense-lrsa.yaml (identical but for `attention`: same data
#      order, seed, steps and learning rate), and exports every run (f32);
#   4. evaluates base, dense-tuned and LRSA-tuned models in one grid (lrsa eval): full cache,
#      LagKV keep 1/2, 1/4, 1/8 (chunked prefill), SnapKV and StreamingLLM at keep 1/4, in
#      the protocols PROTOCOLS, answer NLL and string match, with per-sample records;
#   5. writes the report (tools/lrsa_vs_dense_report.py): tables, LRSA minus dense with 95 %
#      paired bootstrap intervals, pictures, training curves, run facts.
# Every step is skipped when its result exists (the grid resumes cell by cell), so re-running
# after an interruption continues; delete RUN_DIR to start again. Same seeds give the same
# numbers on the same machine and build.
#
#   bash tools/lrsa-vs-dense.sh [section.key=value ...]   # overrides for both training arms
#
# Environment (defaults in brackets):
#   LRSA_BUILD_DIR [build]   LRSA_RUN_DIR [runs/lrsa-vs-dense]
#   LRSA_REPORT_DIR [docs/reports/lrsa-vs-dense]   LRSA_SEEDS ["1"] ("1 2": a second seed per arm)
#   LRSA_TRAIN_TASKS [passkey,niah-multikey,niah-multivalue,vartrack,factqa]
#   LRSA_HELDOUT_TASK [niah-multiquery]   LRSA_LENGTHS [512:1024]
#   LRSA_N_TRAIN [400]  LRSA_N_EVAL_PER_TASK [8]   LRSA_PROTOCOLS ["query-agnostic"]
#   LRSA_RECIPE_PREFIX [configs/recipes/lrsa-vs-dense]  (…-dense.yaml and …-lrsa.yaml)
#   LRSA_ARMS ["dense lrsa"]  ("dense lrsa salience": also the salience-loss arm, …-salience.yaml)
#   OPENBLAS_NUM_THREADS [all cores]
# Sizing (2-core CPU): the defaults (one seed per arm, one protocol) are what fits about 2 hours on
# a quiet 2-core machine; see docs/reports/lrsa-vs-dense/README.md, "How it was sized".
set -euo pipefail

LRSA_JOB=lrsa-vs-dense
. "$(dirname "$0")/lib.sh" "$@" # REPO, --help, T0, elapsed, step, say, die, build_lrsa

BUILD=${LRSA_BUILD_DIR:-build}
RUN=${LRSA_RUN_DIR:-runs/lrsa-vs-dense}
OUT=${LRSA_REPORT_DIR:-docs/reports/lrsa-vs-dense}
SEEDS=${LRSA_SEEDS:-1}
TRAIN_TASKS=${LRSA_TRAIN_TASKS:-passkey,niah-multikey,niah-multivalue,vartrack,factqa}
HELDOUT_TASK=${LRSA_HELDOUT_TASK:-niah-multiquery}
LENGTHS=${LRSA_LENGTHS:-512:1024}
N_TRAIN=${LRSA_N_TRAIN:-400}
N_EVAL_PER_TASK=${LRSA_N_EVAL_PER_TASK:-8}
PROTOCOLS=${LRSA_PROTOCOLS:-query-agnostic}
RECIPE=${LRSA_RECIPE_PREFIX:-configs/recipes/lrsa-vs-dense}
# The tuned arms; dense and lrsa are the control experiment, any further arm ARM (its recipe
# $RECIPE-ARM.yaml, e.g. salience) is a variant of the method the report sets against both.
ARMS=${LRSA_ARMS:-dense lrsa}
case " $ARMS " in
*" dense "*" lrsa "*) ;;
*) die "LRSA_ARMS='$ARMS' must hold dense and lrsa (in that order), then any further arms" ;;
esac
MODEL=models/smollm2-135m-instruct
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
# LagKV as the LRSA arm trains it (S, L); the grid sweeps r.
SINK=16
LAG=64

for arm in $ARMS; do
    [ -f "$RECIPE-$arm.yaml" ] || die "missing recipe $RECIPE-$arm.yaml (LRSA_RECIPE_PREFIX)"
done
mkdir -p "$RUN"
# Wall time over all invocations (a resumed run adds to it).
record_time() { echo "$(($(date +%s) - T0))" >>"$RUN/wall_seconds"; }
trap record_time EXIT

step "1/6 dependencies and build ($BUILD/, Release)"
build_lrsa "$BUILD"
say "CPU: $(nproc) cores, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"
LRSA_BIN="$LRSA" bash tools/fetch-model.sh
sh tools/fetch-haystack.sh || die "no essays: the disjoint train/held-out split needs them"

step "2/6 data: $TRAIN_TASKS ($N_TRAIN training samples, train essays) + held-out with $HELDOUT_TASK"
TRAIN_H5=$RUN/data/train.h5
EVAL_H5=$RUN/data/heldout.h5
IFS=, read -r -a train_tasks <<<"$TRAIN_TASKS"
N_EVAL=$(((${#train_tasks[@]} + 1) * N_EVAL_PER_TASK))
mkdir -p "$RUN/data"
[ -f "$TRAIN_H5" ] || "$LRSA" prepare --model "$MODEL" --synthetic "$TRAIN_TASKS" --n "$N_TRAIN" \
    --length "$LENGTHS" --essays train --seed 1 --out "$TRAIN_H5"
[ -f "$EVAL_H5" ] || "$LRSA" prepare --model "$MODEL" --synthetic "$TRAIN_TASKS,$HELDOUT_TASK" \
    --n "$N_EVAL" --length "$LENGTHS" --essays heldout --seed 2 --out "$EVAL_H5"

step "3/6 fine-tunes: seeds $SEEDS x {$ARMS}"
for seed in $SEEDS; do
    for arm in $ARMS; do
        dir=$RUN/train/$arm-s$seed
        if [ -f "$dir/done" ]; then
            say "have $dir"
            continue
        fi
        say "training $arm, seed $seed -> $dir"
        "$LRSA" train "$RECIPE-$arm.yaml" model.path="$MODEL" data.train="$TRAIN_H5" \
            data.eval="$EVAL_H5" run_dir="$dir" seed="$seed" resume=true "$@"
        touch "$dir/done"
    done
done

step "4/6 export (f32)"
MODELS_YAML="  - {name: base, path: $MODEL}"
for seed in $SEEDS; do
    for arm in $ARMS; do
        dir=$RUN/train/$arm-s$seed
        exp=$RUN/models/$arm-s$seed
        ckpt=$(ls "$dir"/ckpt/step_*.h5 | sort | tail -n1)
        [ -n "$ckpt" ] || die "no checkpoint in $dir/ckpt"
        if [ -f "$exp/model.safetensors" ]; then
            say "have $exp"
        else
            # --force: a directory without its weights is left from an older, interrupted job
            # (lrsa export itself writes under a temporary name and renames it into place)
            "$LRSA" export "$ckpt" "$exp" --dtype f32 --force
        fi
        MODELS_YAML+=$'\n'"  - {name: $arm-s$seed, path: $exp}"
    done
done

step "5/6 evaluation grid ($N_EVAL held-out samples; protocols: $PROTOCOLS)"
grid() { # NAME PROTOCOL METHODS BUDGETS
    cat >"$RUN/eval-$1.yaml" <<EOF
# Written by tools/lrsa-vs-dense.sh: the $1 part of the evaluation grid.
run_dir: $RUN/eval
models:
$MODELS_YAML
methods: $3
budgets: {keep: $4}
tasks:
  - {file: $EVAL_H5, name: heldout, n: 0, answer_sep: ", "}
protocols: [$2]
prefill: [chunked]
EOF
    "$LRSA" eval "$RUN/eval-$1.yaml"
}
# One protocol at a time (the first is the one the budget is sized for); the full cache does
# not depend on the protocol, so only the first protocol evaluates it.
first=1
for proto in $PROTOCOLS; do
    full=""
    [ $first = 1 ] && full="none, "
    grid "lagkv-$proto" "$proto" "[${full}{name: lagkv, sink: $SINK, lag: $LAG}]" \
        "[1/2, 1/4, 1/8]"
    grid "others-$proto" "$proto" "[{name: snapkv, window: 64, kernel: 5}, {name: streaming, sink: 4}]" \
        "[1/4]"
    first=0
done

step "6/6 report -> $OUT"
record_time
trap - EXIT
wall=$(awk '{s += $1} END {print s}' "$RUN/wall_seconds")
python3 - "$RUN/facts.json" "$wall" "$TRAIN_TASKS" "$HELDOUT_TASK" "$LENGTHS" "$N_TRAIN" \
    "$N_EVAL" "$RECIPE" "$SEEDS" "$PROTOCOLS" "$*" "$ARMS" <<'PY'
import json, os, platform, subprocess, sys, time
out, wall, tasks, held, lengths, ntr, nev, recipe, seeds, protos, extra, arms = sys.argv[1:]
def sh(c):
    return subprocess.run(["sh", "-c", c], capture_output=True, text=True).stdout.strip()
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
w = int(float(wall))
facts = {
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()) + " (report written)",
    "machine": "%s, %s cores, %s" % (cpu or platform.machine(), sh("nproc"), platform.platform()),
    "commit": sh("git rev-parse --short HEAD") + (" (uncommitted changes)" if sh("git status --porcelain -uno") else ""),
    "command": "`bash tools/lrsa-vs-dense.sh%s` (OPENBLAS_NUM_THREADS=%s)" % (
        (" " + extra) if extra else "", os.environ.get("OPENBLAS_NUM_THREADS", "")),
    "wall_time": "%dh%02dm over all invocations (load average now %s)" % (
        w // 3600, w % 3600 // 60, sh("cut -d' ' -f1-3 /proc/loadavg")),
    "train_data": "%s training samples, tasks %s, lengths %s tokens, `train` essays, seed 1" % (ntr, tasks, lengths),
    "eval_data": "%s held-out samples (tasks %s + %s, equal counts), `heldout` essays, seed 2" % (nev, tasks, held),
    "recipes": "%s, seeds %s; protocols %s" % (
        " / ".join("`%s-%s.yaml`" % (recipe, a) for a in arms.split()), seeds, protos),
    "heldout_task": held,
}
tmp = out + ".tmp"
open(tmp, "w").write(json.dumps(facts, indent=1) + "\n")
os.replace(tmp, out)
PY
python3 tools/lrsa_vs_dense_report.py --grid "$RUN/eval/results.jsonl" --runs "$RUN/train" \
    --out "$OUT" --facts "$RUN/facts.json"
step "done: $OUT/report.md"
