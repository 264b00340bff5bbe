#!/usr/bin/env python3
"""Builds the parity fixtures in tests/fixtures/parity/<name>/: tiny random Hugging Face
Llama / Qwen2 models (fp32, fixed seeds) saved with save_pretrained, plus expected.safetensors
holding the reference outputs of transformers:

  input_ids  I32 [B, T]
  loss_mask  U8  [B, T]   target side: 1 = this token is predicted by the loss
  logits     F32 [B, T, V]
  loss       F32 []       mean NLL over masked targets (labels = ids where mask else -100)
  grad.<hf parameter name> F32, the gradient of that loss

Usage: python3 tools/make_parity_fixtures.py [OUT_DIR]   (default tests/fixtures/parity)
The models are kept tiny so the whole directory stays well under 1 MB.

       python3 tools/make_parity_fixtures.py --real MODEL_DIR [OUT_DIR]
writes OUT_DIR/real_<name>_topk.safetensors for a downloaded checkpoint (e.g.
models/smollm2-135m-instruct): fixed input_ids [1, T] and transformers' top-8 logits per
position (topk_ids I32 [T, 8], topk_logits F32 [T, 8]), with the checkpoint's torch_dtype in
the metadata: a few KB instead of the full [T, vocab] logits.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

B, T = 2, 16

COMMON = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=40,
    num_hidden_layers=2,
    max_position_embeddings=256,
    rms_norm_eps=1e-5,
    bos_token_id=1,
    eos_token_id=2,
)

FIXTURES = {
    # GQA (4 query heads, 2 KV heads), untied LM head
    "llama_gqa": (LlamaConfig, LlamaForCausalLM,
                  dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False,
                       rope_theta=10000.0)),
    # tied embeddings, attention_bias (q/k/v/o biases)
    "llama_tied_bias": (LlamaConfig, LlamaForCausalLM,
                        dict(num_attention_heads=4, num_key_value_heads=4,
                             tie_word_embeddings=True, attention_bias=True, rope_theta=500.0)),
    # llama3 rope scaling chosen so that all three frequency bands occur at head_dim 16
    "llama3_rope": (LlamaConfig, LlamaForCausalLM,
                    dict(num_attention_heads=2, num_key_value_heads=1, tie_word_embeddings=True,
                         rope_theta=10000.0,
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                           high_freq_factor=4.0,
                                           original_max_position_embeddings=64))),
    # head_dim (24) != hidden / heads (16)
    "llama_headdim": (LlamaConfig, LlamaForCausalLM,
                      dict(num_attention_heads=2, num_key_value_heads=1, head_dim=24,
                           tie_word_embeddings=False, rope_theta=10000.0)),
    # Qwen2: q/k/v biases, no o_proj bias, tied
    "qwen2_bias": (Qwen2Config, Qwen2ForCausalLM,
                   dict(num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                        rope_theta=1000000.0, rms_norm_eps=1e-6)),
}


def build(name, cfg_cls, model_cls, extra, out_root, seed):
    torch.manual_seed(seed)
    kw = dict(COMMON)
    kw.update(extra)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"
    model = model_cls(cfg).float().eval()
    # Non-trivial norms and biases (the default init makes them 1 and 0, which hides bugs).
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for junk in ("generation_config.json",):
        p = os.path.join(out, junk)
        if os.path.exists(p):
            os.remove(p)

    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
    mask = (torch.rand(B, T, generator=g) < 0.7).to(torch.uint8)
    mask[:, 0] = 0  # the first token is never predicted
    mask[0, T - 3:] = 1
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    model.zero_grad()
    res = model(input_ids=ids, labels=labels)
    res.loss.backward()
    tensors = {
        "input_ids": ids.to(torch.int32).contiguous(),
        "loss_mask": mask.contiguous(),
        "logits": res.logits.detach().float().contiguous(),
        "loss": res.loss.detach().float().reshape(()),
    }
    for pname, p in model.named_parameters():
        tensors["grad." + pname] = p.grad.detach().float().contiguous()
    save_file(tensors, os.path.join(out, "expected.safetensors"), metadata={"format": "pt"})
    print(f"{name}: loss {res.loss.item():.6f}, {sum(p.numel() for p in model.parameters())} "
          f"params")


def build_real(model_dir, out_root, T=32, K=8):
    from transformers import AutoModelForCausalLM
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32,
                                                     attn_implementation="eager")
    except TypeError:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                                     attn_implementation="eager")
    model.eval()
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, model.config.vocab_size, (1, T), generator=g)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    vals, idx = logits.topk(K, dim=-1)
    import json
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    name = os.path.basename(os.path.normpath(model_dir))
    path = os.path.join(out_root, f"real_{name}_topk.safetensors")
    save_file({"input_ids": ids.to(torch.int32).contiguous(),
               "topk_ids": idx.to(torch.int32).contiguous(),
               "topk_logits": vals.contiguous()}, path,
              metadata={"format": "pt", "torch_dtype": str(cfg.get("torch_dtype", "")),
                        "vocab_size": str(cfg["vocab_size"])})
    print(f"wrote {path}")


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--real":
        out = sys.argv[3] if len(sys.argv) > 3 else os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "parity")
        build_real(sys.argv[2], out)
        return
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "parity")
    torch.use_deterministic_algorithms(True)
    for i, (name, (cc, mc, extra)) in enumerate(FIXTURES.items()):
        build(name, cc, mc, extra, out_root, 1234 + 17 * i)


if __name__ == "__main__":
    main()
