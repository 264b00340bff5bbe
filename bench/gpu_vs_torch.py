#!/usr/bin/env python3
"""The PyTorch side of lrsa's GPU benchmarks (issue 17 item 7), in the units of ours, so the two
can be put side by side. Run by tools/gpu-check.sh in the same call as bench_gpu_attention and
the 1B step; NEVER RUN ON A GPU so far (written and checked with --device cpu --tiny only).

Not part of CI (CI has no torch). Needs torch (with FlexAttention, 2.5 or later) and
transformers in the Python that runs it:

    python bench/gpu_vs_torch.py                         # everything, on cuda
    python bench/gpu_vs_torch.py --only attention --max-t 8192
    python bench/gpu_vs_torch.py --device cpu --tiny     # tiny shapes on the CPU (a smoke test)

Sections (rows printed as `torch-...` lines plus a table each):

  llama1b   Hugging Face transformers' LlamaForCausalLM, random init from a LlamaConfig of
            Llama-3.2-1B's shape (hidden 2048, intermediate 8192, 16 layers, 32/8 heads of 64,
            vocabulary 128256, tied embeddings), one training step at T = 8192, batch 1:
            bf16 autocast over fp32 weights, SDPA attention, fused AdamW, loss on every token.
            Median step ms of --steps after 2 warm-ups (CUDA events around each step,
            zero_grad + forward + backward + optimizer step), tokens/s, model TFLOP/s and MFU
            against --peak-tflops. FLOPs: 6 * N * T (N the parameters that multiply: every
            weight matrix, the tied head once, no embedding lookup) plus causal attention
            6 * layers * T^2 * hidden (forward 2 * 2 * T^2/2 * hidden per layer, backward 2x).
  dense     causal GQA attention, bf16, [B=1, T, H, D] tensors, for SmolLM2's heads (9/3, D 64)
            and D 128 (16/4), T = 1024 .. --max-t: PyTorch SDPA with the Flash backend and with the
            cuDNN backend (each where it runs), fwd ms and bwd ms (median of --reps after a
            warm-up, CUDA events) and TFLOP/s counted as bench_gpu_attention counts them: forward
            4 * D per visible (query, key) pair and query head, backward 2.5x. K/V are expanded
            to Hq heads before the timed region (SDPA's backends take equal head counts).
  lrsa      the LRSA mask (sink S = 16, partitions L = 128, keep 1/2, 1/4, 1/8: each query sees
            the sink, the LagKV-selected k = keep * L tokens of every partition before the
            previous one, and the band from the start of the previous partition to itself;
            queries before S + 2L see everything causal) as a FlexAttention block mask, forward +
            backward ms against FlexAttention's dense causal mask, as bench_gpu_attention's LRSA
            rows (dense ms, lrsa ms, ratio, attended-pair fraction, effective TFLOP/s over the
            attended pairs). The selection is LagKV's (docs: score of each partition against its
            successor, per KV head, top k, ties to the lower position) computed here in torch from
            the same random K/V, so the mask has the scattered shape our kernel sees; the
            selection itself is not timed. FlexAttention is compiled (torch.compile) on cuda; the
            compile is outside the timed region. With --device cpu it runs eagerly.

With --tiny every section runs at toy shapes, and the script checks itself: the FlexAttention
LRSA output equals SDPA with the same mask as a dense boolean matrix, the number of visible
pairs of that matrix equals the closed formula bench_gpu_attention uses, and the selected
tokens lie in their partitions. Exit status 1 when a check fails.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

SINK, LAG = 16, 128
KEEPS = (0.5, 0.25, 0.125)
HEADS = ((9, 3, 64), (16, 4, 128))  # (Hq, Hkv, D) as in bench_gpu_attention


# ---- timing -------------------------------------------------------------------------------------
def timer(device):
    """Returns time_ms(fn, reps): median milliseconds of reps calls after one warm-up."""
    if device.type == "cuda":
        def time_ms(fn, reps):
            fn()
            torch.cuda.synchronize()
            ts = []
            for _ in range(reps):
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                fn()
                e1.record()
                e1.synchronize()
                ts.append(e0.elapsed_time(e1))
            return statistics.median(ts)
    else:
        def time_ms(fn, reps):
            fn()
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            return statistics.median(ts)
    return time_ms


# ---- the LRSA mask ------------------------------------------------------------------------------
def lagkv_k(keep, lag):
    return int(keep * lag)


def lagkv_select(k_bf, v_bf, sink, lag, keep, value_weight=1.0):
    """LagKV selection of every scored partition (docs: /work/shared/docs/lagkv-lrsa.md section 3),
    per KV head. k_bf, v_bf: [T, Hkv, D]. Returns a bool [Hkv, T]: True for the kept tokens of
    partitions 0 .. n-2 (each scored against its successor)."""
    T, hkv, d = k_bf.shape
    n_part = max((T - sink) // lag, 0)
    n_scored = max(n_part - 1, 0)
    kept = torch.zeros(hkv, T, dtype=torch.bool, device=k_bf.device)
    if n_scored == 0:
        return kept
    kk = lagkv_k(keep, lag)

    def probs(x):  # x: [n_part, lag, Hkv, D] fp32 -> softmax of the per-token std [n_scored, Hkv, lag]
        ref = x[1:]
        mn, mx = ref.amin(dim=1, keepdim=True), ref.amax(dim=1, keepdim=True)
        z = (x[:-1] - mn) / (mx - mn).clamp_min(1e-6)
        s = z.std(dim=3, unbiased=True)  # [n_scored, lag, Hkv]
        return torch.softmax(s.permute(0, 2, 1), dim=2)

    span = slice(sink, sink + n_part * lag)
    kx = k_bf[span].float().reshape(n_part, lag, hkv, d)
    vx = v_bf[span].float().reshape(n_part, lag, hkv, d)
    score = probs(kx) + value_weight * probs(vx)  # [n_scored, Hkv, lag]
    # Top k with ties to the lower position: a stable sort on the descending score.
    order = torch.sort(score, dim=2, descending=True, stable=True).indices[..., :kk]
    pos = sink + torch.arange(n_scored, device=k_bf.device).view(-1, 1, 1) * lag + order
    for h in range(hkv):
        kept[h, pos[:, h, :].reshape(-1)] = True
    return kept


def lrsa_visible(q_idx, kv_idx, kept_h, sink, lag):
    """The LRSA rule on index tensors (broadcast): causal and (early query or sink or band or
    kept). kept_h: the kept flags of the query's KV head, indexed by kv_idx."""
    causal = kv_idx <= q_idx
    early = q_idx < sink + 2 * lag
    c = torch.div(q_idx - sink, lag, rounding_mode="floor")
    band = kv_idx >= sink + (c - 1) * lag
    return causal & (early | (kv_idx < sink) | band | kept_h)


def visible_pairs(T, sink, lag, keep):
    """bench_gpu_attention's closed formula for one head (keep None: dense causal)."""
    n = 0
    for i in range(T):
        if keep is None or i < sink + 2 * lag:
            n += i + 1
            continue
        c = (i - sink) // lag
        n += sink + lagkv_k(keep, lag) * (c - 1) + (i - (sink + (c - 1) * lag) + 1)
    return n


# ---- sections -----------------------------------------------------------------------------------
def bench_llama(args, device, time_ms, out):
    from transformers import LlamaConfig, LlamaForCausalLM

    if args.tiny:
        cfg = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, head_dim=16, vocab_size=512)
        T = 128
    else:
        cfg = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                   vocab_size=128256)
        T = args.llama_t
    config = LlamaConfig(**cfg, max_position_embeddings=max(T, 8192), rope_theta=500000.0,
                         tie_word_embeddings=True, rms_norm_eps=1e-5,
                         attn_implementation="sdpa", use_cache=False)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config)
    model.train()
    if args.grad_ckpt:
        model.gradient_checkpointing_enable()
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1, fused=fused)
    ids = torch.randint(0, config.vocab_size, (1, T), device=device)
    amp = torch.bfloat16

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=amp):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        return loss

    step()  # first warm-up (the timer adds a second)
    ms = time_ms(step, args.steps)
    h, L, V = config.hidden_size, config.num_hidden_layers, config.vocab_size
    n_mm = sum(p.numel() for n, p in model.named_parameters()
               if p.dim() == 2 and "embed_tokens" not in n)
    if config.tie_word_embeddings:
        n_mm += V * h  # the head multiplies with the embedding matrix
    flops = 6.0 * n_mm * T + 6.0 * L * T * T * h
    tflops = flops / (ms * 1e-3) / 1e12
    row = dict(section="llama1b", T=T, step_ms=ms, tokens_per_s=T / (ms * 1e-3),
               tflops=tflops, mfu=tflops / args.peak_tflops, params_matmul=n_mm,
               grad_ckpt=bool(args.grad_ckpt), fused_adamw=fused,
               peak_mem_gib=(torch.cuda.max_memory_allocated() / 2**30
                             if device.type == "cuda" else None))
    out.append(row)
    print(f"\ntransformers {getattr(sys.modules.get('transformers'), '__version__', '?')} "
          f"LlamaForCausalLM, Llama-3.2-1B shape{' (tiny)' if args.tiny else ''}, T = {T}, "
          f"bf16 autocast, SDPA, AdamW fused={fused}, grad ckpt={bool(args.grad_ckpt)}")
    print(f"torch-llama1b T={T} step_ms={ms:.1f} tokens/s={row['tokens_per_s']:.0f} "
          f"TFLOP/s={tflops:.1f} MFU={100 * row['mfu']:.1f}% (peak {args.peak_tflops:g})"
          + (f" peak_mem={row['peak_mem_gib']:.1f}GiB" if row["peak_mem_gib"] else ""))
    del model, opt
    if device.type == "cuda":
        torch.cuda.empty_cache()


def qkv(T, hq, hkv, d, device, gen):
    def r(h):
        return torch.randn(1, T, h, d, device=device, dtype=torch.bfloat16, generator=gen)
    return r(hq), r(hkv), r(hkv), r(hq)


def bench_dense(args, device, time_ms, out):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    if device.type != "cuda":
        backends = [("math", SDPBackend.MATH)]
    gen = torch.Generator(device=device).manual_seed(1)
    print("\nPyTorch SDPA dense causal GQA attention, bf16 (fwd 4*D per visible pair and query "
          "head, bwd 2.5x)")
    print(f"{'backend':<8} {'D':<5} {'Hq/Hkv':<7} {'T':<6} {'fwd ms':>9} {'bwd ms':>9} "
          f"{'fwd TF/s':>8} {'bwd TF/s':>8}")
    for hq, hkv, d in HEADS:
        t_list = [256] if args.tiny else [t for t in (1024, 2048, 4096, 8192, 16384)
                                         if t <= args.max_t]
        for T in t_list:
            q, k, v, dout = qkv(T, hq, hkv, d, device, gen)
            # [B, H, T, D] views, K/V expanded to Hq heads outside the timed region.
            qt = q.transpose(1, 2).requires_grad_()
            kt = k.repeat_interleave(hq // hkv, dim=2).transpose(1, 2).requires_grad_()
            vt = v.repeat_interleave(hq // hkv, dim=2).transpose(1, 2).requires_grad_()
            do = dout.transpose(1, 2)
            pairs = visible_pairs(T, SINK, LAG, None) * hq
            for name, be in backends:
                try:
                    with sdpa_kernel([be]):
                        fwd = time_ms(lambda: F.scaled_dot_product_attention(qt, kt, vt,
                                                                             is_causal=True),
                                      args.reps)
                        o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
                        bwd = time_ms(lambda: torch.autograd.grad(o, (qt, kt, vt), do,
                                                                  retain_graph=True), args.reps)
                except RuntimeError as e:  # the backend refuses this shape or device
                    print(f"{name:<8} {d:<5} {hq:>2}/{hkv:<4} {T:<6} not available: "
                          f"{str(e).splitlines()[0][:80]}")
                    continue
                f_tf = 4.0 * d * pairs / (fwd * 1e-3) / 1e12
                b_tf = 2.5 * 4.0 * d * pairs / (bwd * 1e-3) / 1e12
                print(f"{name:<8} {d:<5} {hq:>2}/{hkv:<4} {T:<6} {fwd:9.3f} {bwd:9.3f} "
                      f"{f_tf:8.2f} {b_tf:8.2f}")
                out.append(dict(section="dense", backend=name, D=d, Hq=hq, Hkv=hkv, T=T,
                                fwd_ms=fwd, bwd_ms=bwd, fwd_tflops=f_tf, bwd_tflops=b_tf))
            del q, k, v, dout, qt, kt, vt, do


def bench_lrsa(args, device, time_ms, out):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    flex = torch.compile(flex_attention) if device.type == "cuda" else flex_attention
    sink, lag = (4, 16) if args.tiny else (SINK, LAG)
    t_list = [200] if args.tiny else [t for t in args.flex_t if t <= args.max_t]
    gen = torch.Generator(device=device).manual_seed(2)
    failures = 0
    backward = device.type == "cuda"
    print(f"\nFlexAttention, LRSA mask (S {sink}, L {lag}) vs its dense causal mask, "
          f"{'forward+backward' if backward else 'FORWARD ONLY (no backward on the CPU)'}, bf16")
    print(f"{'D':<5} {'T':<6} {'keep':<6} {'dense ms':>9} {'lrsa ms':>9} {'ratio':>7} "
          f"{'pairs':>7} {'dense TF/s':>10} {'lrsa TF/s':>9}")
    for hq, hkv, d in HEADS:
        for T in t_list:
            q, k, v, dout = qkv(T, hq, hkv, d, device, gen)
            qt, kt, vt = (x.transpose(1, 2).detach().requires_grad_() for x in (q, k, v))
            do = dout.transpose(1, 2)
            group = hq // hkv

            def causal(b, h, q_idx, kv_idx):
                return kv_idx <= q_idx

            # Per head like the LRSA masks, so the compiled kernels serve both (one compile).
            dense_mask = create_block_mask(causal, 1, hq, T, T, device=device.type)

            def fwd_bwd(mask):
                if not backward:  # FlexAttention has no backward on the CPU
                    return flex(qt.detach(), kt.detach(), vt.detach(), block_mask=mask,
                                enable_gqa=True)
                o = flex(qt, kt, vt, block_mask=mask, enable_gqa=True)
                torch.autograd.grad(o, (qt, kt, vt), do)

            dense = time_ms(lambda: fwd_bwd(dense_mask), args.reps)
            dpairs = visible_pairs(T, sink, lag, None)
            for keep in KEEPS:
                kept = lagkv_select(k[0], v[0], sink, lag, keep)  # [Hkv, T]

                def lrsa(b, h, q_idx, kv_idx):
                    return lrsa_visible(q_idx, kv_idx, kept[h // group, kv_idx], sink, lag)

                mask = create_block_mask(lrsa, 1, hq, T, T, device=device.type)
                ms = time_ms(lambda: fwd_bwd(mask), args.reps)
                lpairs = visible_pairs(T, sink, lag, keep)
                mult = 3.5 if backward else 1.0  # forward 4*D per pair, backward 2.5x that
                flops_l = mult * 4.0 * d * lpairs * hq
                flops_d = mult * 4.0 * d * dpairs * hq
                print(f"{d:<5} {T:<6} {keep:<6g} {dense:9.3f} {ms:9.3f} {ms / dense:7.3f} "
                      f"{lpairs / dpairs:7.3f} {flops_d / (dense * 1e-3) / 1e12:10.2f} "
                      f"{flops_l / (ms * 1e-3) / 1e12:9.2f}")
                out.append(dict(section="lrsa", D=d, Hq=hq, Hkv=hkv, T=T, keep=keep, sink=sink,
                                lag=lag, flex_dense_ms=dense, flex_lrsa_ms=ms, backward=backward,
                                pair_fraction=lpairs / dpairs))
                if args.tiny:
                    failures += check_lrsa(q, k, v, kept, sink, lag, keep, flex, mask, group)
            del q, k, v, dout, qt, kt, vt, do
    return failures


def check_lrsa(q, k, v, kept, sink, lag, keep, flex, mask, group):
    """--tiny: the mask, the selection and FlexAttention against a dense boolean reference."""
    T, hkv = q.shape[1], k.shape[2]
    fails = 0
    idx = torch.arange(T, device=q.device)
    dense = torch.stack([lrsa_visible(idx.view(-1, 1), idx.view(1, -1), kept[h].view(1, -1),
                                      sink, lag) for h in range(hkv)])  # [Hkv, T, T]
    want = visible_pairs(T, sink, lag, keep)
    for h in range(hkv):
        got = int(dense[h].sum())
        if got != want:
            print(f"FAIL: KV head {h}: the mask has {got} visible pairs, the formula {want}")
            fails += 1
    n_scored = max((T - sink) // lag - 1, 0)
    for h in range(hkv):
        for j in range(n_scored):
            lo = sink + j * lag
            n = int(kept[h, lo:lo + lag].sum())
            if n != lagkv_k(keep, lag):
                print(f"FAIL: KV head {h} partition {j}: {n} kept, want {lagkv_k(keep, lag)}")
                fails += 1
    if int(kept[:, :sink].sum()) or int(kept[:, sink + n_scored * lag:].sum()):
        print("FAIL: tokens kept outside the scored partitions")
        fails += 1
    qt, kt, vt = (x.transpose(1, 2).float() for x in (q, k, v))
    ref = F.scaled_dot_product_attention(
        qt, kt.repeat_interleave(group, 1), vt.repeat_interleave(group, 1),
        attn_mask=dense.repeat_interleave(group, 0).unsqueeze(0))
    got = flex(qt, kt, vt, block_mask=mask, enable_gqa=True)
    err = (got - ref).abs().max().item()
    if not err < 1e-4:
        print(f"FAIL: FlexAttention with the LRSA mask vs SDPA with the dense mask: {err:.3g}")
        fails += 1
    print(f"check keep {keep:g}: {want} visible pairs per head, flex vs dense-mask SDPA max "
          f"error {err:.2e}")
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="toy shapes plus self-checks")
    ap.add_argument("--only", default="llama1b,dense,lrsa")
    ap.add_argument("--max-t", type=int, default=16384)
    ap.add_argument("--flex-t", default="8192", help="T values of the FlexAttention rows")
    ap.add_argument("--llama-t", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--grad-ckpt", action="store_true", help="transformers gradient checkpointing")
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="dense bf16 peak for the MFU (H100 SXM: 989)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    args.flex_t = [int(t) for t in args.flex_t.split(",")]
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to time (use --device cpu --tiny for a smoke test)")
        return 77
    if device.type == "cuda":
        print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}")
    time_ms = timer(device)
    out, failures = [], 0
    sections = set(args.only.split(","))
    t0 = time.time()
    if "dense" in sections:
        bench_dense(args, device, time_ms, out)
    if "lrsa" in sections:
        failures += bench_lrsa(args, device, time_ms, out)
    if "llama1b" in sections:
        bench_llama(args, device, time_ms, out)
    print(f"\ngpu_vs_torch: {len(out)} rows in {time.time() - t0:.0f} s, {failures} failed checks")
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(dict(device=str(device), torch=torch.__version__, rows=out), f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
