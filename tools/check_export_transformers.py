#!/usr/bin/env python3
"""Loads a model directory written by lrsa (config.json + model.safetensors) in Hugging Face
transformers and compares its logits with ours.

usage: python3 tools/check_export_transformers.py DIR IDS [--lrsa PATH_TO_lrsa] [--tol 1e-4]

IDS is a text file of token ids (one sequence per line, as for `lrsa logits`). The script runs
`lrsa logits --model DIR --ids IDS` to get our logits, runs AutoModelForCausalLM in fp32 (eager
attention) on the same ids, and prints the relative error ||ours - theirs|| / ||theirs||.
Exit status 0 when it is within --tol, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("ids")
    ap.add_argument("--lrsa", default=os.environ.get("LRSA", "lrsa"))
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()

    rows = [[int(x) for x in line.split()] for line in open(a.ids) if line.strip()]
    ids = torch.tensor(rows, dtype=torch.long)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ours.safetensors")
        subprocess.run([a.lrsa, "logits", "--model", a.dir, "--ids", a.ids, "--out", out],
                       check=True)
        ours = load_file(out)["logits"].float()

    try:  # transformers >= 4.56 names it dtype; older versions only know torch_dtype
        model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=torch.float32,
                                                     attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(a.dir, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        theirs = model(input_ids=ids).logits.float()
    if ours.shape != theirs.shape:
        print(f"shape mismatch: ours {tuple(ours.shape)}, transformers {tuple(theirs.shape)}")
        return 1
    rel = (ours - theirs).norm().item() / max(theirs.norm().item(), 1e-30)
    mx = (ours - theirs).abs().max().item()
    print(f"{a.dir}: {type(model).__name__}, logits {tuple(ours.shape)}, relative error "
          f"{rel:.3g}, max abs diff {mx:.3g} (transformers loaded it with dtype "
          f"{next(model.parameters()).dtype})")
    return 0 if rel <= a.tol else 1


if __name__ == "__main__":
    sys.exit(main())
