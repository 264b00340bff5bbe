#!/usr/bin/env python3
"""LoRA parity with Hugging Face PEFT.

Fixture mode (default):
    python3 tools/make_lora_fixtures.py [OUT_DIR]       (default tests/fixtures/lora)
takes the tiny Llama of tests/fixtures/parity/llama_gqa (made by make_parity_fixtures.py) as the
base, wraps it with a PEFT LoRA adapter (rank 4, alpha 8, all seven projections) whose A and B are
both random (B = 0 would hide half of the gradient), and writes
    OUT_DIR/adapter/            the adapter as PEFT saves it (adapter_config.json,
                                adapter_model.safetensors)
    OUT_DIR/expected.safetensors
        input_ids  I32 [B, T];  loss_mask U8 [B, T] (target side, 1 = predicted)
        logits     F32 [B, T, V] of the adapted model
        loss       F32 []  mean NLL over the masked targets
        grad.<PEFT tensor name>  F32, the gradient of that loss for every lora_A / lora_B
A few tens of KB: the base model is not copied.

Check mode (needs a built lrsa):
    python3 tools/make_lora_fixtures.py --check-export LRSA BASE_DIR ADAPTER_DIR [MERGED_DIR]
loads ADAPTER_DIR (e.g. written by `lrsa export CKPT OUT --adapter`) on BASE_DIR with PEFT, and
compares its logits on fixed token ids with `lrsa logits --model BASE_DIR --adapter ADAPTER_DIR`;
with MERGED_DIR (from `lrsa export CKPT OUT`) also the logits transformers computes from the
merged model. Prints the relative errors and exits non-zero above 1e-4.
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BASE = os.path.join(ROOT, "tests", "fixtures", "parity", "llama_gqa")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
B, T = 2, 16


def load_base(path):
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                     attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
    return model.eval()


def make_fixture(out_root):
    torch.manual_seed(4321)
    base = load_base(BASE)
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS,
                     task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(0.2 * torch.randn_like(p))
    adapter_dir = os.path.join(out_root, "adapter")
    model.save_pretrained(adapter_dir, safe_serialization=True)
    # the base's path as recorded is this machine's; name the fixture instead
    cpath = os.path.join(adapter_dir, "adapter_config.json")
    c = json.load(open(cpath))
    c["base_model_name_or_path"] = "tests/fixtures/parity/llama_gqa"
    json.dump(c, open(cpath, "w"), indent=2, sort_keys=True)
    readme = os.path.join(adapter_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)

    g = torch.Generator().manual_seed(99)
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.7).to(torch.uint8)
    mask[:, 0] = 0
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    model.train(False)
    res = model(input_ids=ids, labels=labels)
    res.loss.backward()
    tensors = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "loss_mask": mask.contiguous(),
        "logits": res.logits.detach().float().contiguous(),
        "loss": res.loss.detach().float().reshape(()),
    }
    n = 0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        assert "lora_" in name, name  # only the adapters train
        tensors["grad." + name.replace(".default", "")] = p.grad.detach().float().contiguous()
        n += 1
    save_file(tensors, os.path.join(out_root, "expected.safetensors"), metadata={"format": "pt"})
    print(f"lora fixture: loss {res.loss.item():.6f}, {n} adapter gradients, in {out_root}")


def lrsa_logits(lrsa, base_dir, adapter_dir, ids):
    with tempfile.TemporaryDirectory() as tmp:
        ids_path = os.path.join(tmp, "ids.txt")
        with open(ids_path, "w") as f:
            for row in ids.tolist():
                f.write(" ".join(str(x) for x in row) + "\n")
        out = os.path.join(tmp, "logits.safetensors")
        subprocess.run([lrsa, "logits", "--model", base_dir, "--adapter", adapter_dir, "--ids",
                        ids_path, "--out", out], check=True)
        return load_file(out)["logits"]


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def check_export(lrsa, base_dir, adapter_dir, merged_dir=None):
    base = load_base(base_dir)
    vocab = base.config.vocab_size
    ids = torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(5))
    model = PeftModel.from_pretrained(base, adapter_dir).eval()
    with torch.no_grad():
        ref = model(input_ids=ids).logits.float()
        plain = model.get_base_model()
        with model.disable_adapter():
            no_adapter = plain(input_ids=ids).logits.float()
    cfg = model.peft_config["default"]
    print(f"PEFT loaded {adapter_dir}: r={cfg.r} lora_alpha={cfg.lora_alpha} "
          f"targets={sorted(cfg.target_modules)}")
    print(f"adapter effect on the logits (PEFT, relative): {rel(ref, no_adapter):.3e}")
    ours = lrsa_logits(lrsa, base_dir, adapter_dir, ids)
    e1 = rel(ours, ref)
    print(f"lrsa logits --adapter vs PEFT: relative error {e1:.3e}")
    worst = e1
    if merged_dir:
        merged = load_base(merged_dir)
        with torch.no_grad():
            m = merged(input_ids=ids).logits.float()
        e2 = rel(m, ref)
        print(f"lrsa export (merged) in transformers vs PEFT: relative error {e2:.3e}")
        worst = max(worst, e2)
    print("PASS" if worst <= 1e-4 else "FAIL")
    return 0 if worst <= 1e-4 else 1


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--check-export":
        if len(sys.argv) not in (5, 6):
            sys.exit(__doc__)
        sys.exit(check_export(*sys.argv[2:]))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "fixtures", "lora")
    torch.use_deterministic_algorithms(True)
    make_fixture(out)


if __name__ == "__main__":
    main()
