#!/usr/bin/env python3
"""Writes tests/fixtures/kernels/rope_hf.json: RoPE inverse frequencies and rotated vectors as
Hugging Face transformers computes them (LlamaRotaryEmbedding + apply_rotary_pos_emb, fp32, CPU),
for the default, linear and llama3 rope types. Floats are stored as their IEEE-754 bit patterns
(uint32) so the C test compares exact values.

Usage: python3 tools/make_rope_fixtures.py [out.json]   (needs torch and transformers)
"""
import json
import struct
import sys

import torch
import transformers
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

HEAD_DIM = 64
HEADS = 2
POSITIONS = [0, 1, 7, 100, 2047, 4095, 8191, 30000]

CASES = [
    # name, rope_theta, rope_scaling (None = default)
    ("default_smollm2", 100000.0, None),
    ("default_qwen25", 1000000.0, None),
    ("linear", 10000.0, {"rope_type": "linear", "factor": 4.0}),
    ("llama3", 500000.0, {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
]


def bits(t):
    return [struct.unpack("<I", struct.pack("<f", float(v)))[0] for v in t.reshape(-1).tolist()]


def make_config(theta, scaling):
    params = {"rope_type": "default", "rope_theta": theta}
    if scaling:
        params.update(scaling)
    return LlamaConfig(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS,
                       num_key_value_heads=HEADS, head_dim=HEAD_DIM, max_position_embeddings=131072,
                       rope_parameters=params)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/kernels/rope_hf.json"
    gen = torch.Generator().manual_seed(0)
    T = len(POSITIONS)
    # x as Hugging Face lays it out: [batch 1, heads, T, head_dim]
    x = torch.randn(1, HEADS, T, HEAD_DIM, generator=gen, dtype=torch.float32)
    pos = torch.tensor([POSITIONS], dtype=torch.int64)
    cases = []
    for name, theta, scaling in CASES:
        rope = LlamaRotaryEmbedding(make_config(theta, scaling))
        cos, sin = rope(x, pos)
        rotated, _ = apply_rotary_pos_emb(x, x, cos, sin)
        # token-major rows [T, heads * head_dim], as the C kernel stores them
        rows = rotated[0].transpose(0, 1).reshape(T, HEADS * HEAD_DIM)
        case = {"name": name, "theta": theta, "type": scaling["rope_type"] if scaling else "default",
                "inv_freq": bits(rope.inv_freq), "rotated": bits(rows)}
        if scaling:
            case.update({k: v for k, v in scaling.items() if k != "rope_type"})
        cases.append(case)
    doc = {"generator": "tools/make_rope_fixtures.py", "torch": torch.__version__,
           "transformers": transformers.__version__, "head_dim": HEAD_DIM, "heads": HEADS,
           "positions": POSITIONS, "x": bits(x[0].transpose(0, 1).reshape(T, HEADS * HEAD_DIM)),
           "cases": cases}
    with open(out, "w") as f:
        json.dump(doc, f)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
