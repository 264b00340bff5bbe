#!/usr/bin/env python3
"""lrsa next to Hugging Face transformers (SDPA attention) on the same CPU: the same model (fp32),
the same prompt tokens, the same thread count, runs alternating between the two, medians.

Not part of CI. Needs torch (CPU) and transformers in the Python that runs it, and a Release
build of lrsa:

    OPENBLAS_NUM_THREADS is set per run from --threads; nothing else to set.
    python bench/vs_torch.py --threads 2 --reps 3               # the whole table
    python bench/vs_torch.py --cases prefill1k,decode1k --reps 1
    python bench/vs_torch.py --lrsa OTHER/build/lrsa ...        # another lrsa build

Each row gives wall seconds and CPU seconds (all threads of the process, for lrsa the
`cpu_seconds` of its result line, for transformers time.process_time()). Every measurement runs
in a fresh process (lrsa: `lrsa bench ...`; transformers: this script
with --worker), so each side's peak resident memory (VmHWM of that process image, which each side
reports: model, cache, activations, allocator) is measured on its own; ru_maxrss from wait4 would
not do, as Linux carries this script's own size into a child across fork and exec. Inside a process the timed part comes after one
warm-up run. Rows (speed ratio = transformers' time / lrsa's time, > 1 means lrsa is faster):

  train1k     training step incl. AdamW (zero grads, forward, backward, step), T = 1024, loss on
              every token (lrsa --loss all; transformers labels = input ids)
  fwdbwd1k    forward + backward only, T = 1024
  prefill1k/4k/16k  one forward of the prompt through a KV cache, logits of the last position
              only (transformers: use_cache=True, logits_to_keep=1)
  attn1k/4k/16k  the causal attention of one layer alone, the part of a prefill that grows with
              T squared: lrsa `bench --mode attention` (its cached-attention kernel) against
              torch.nn.functional.scaled_dot_product_attention (is_causal, enable_gqa: what
              transformers' SDPA path calls here), the model's head shapes, random q/k/v
  decode1k/8k greedy decoding after a prompt of 1K / 8K tokens, seconds per new token
  train8k     training step incl. AdamW at T = 8192 with per-layer recomputation on both sides
              (lrsa --recompute; transformers gradient checkpointing), dense attention
  train8k_lrsa  the same with lrsa's LRSA attention (S=16, L=128, keep 1/4) against
              transformers' dense step (transformers has no LRSA); with train8k in the same
              run, each repetition measures that dense step once and both rows use it
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# case -> (description, kind, T, extra)
CASES = {
    "train1k": ("training step incl. AdamW, T = 1024", "train", 1024, {"optim": True}),
    "fwdbwd1k": ("forward + backward, T = 1024", "train", 1024, {}),
    "prefill1k": ("prefill 1024 tokens (last logit)", "prefill", 1024, {}),
    "prefill4k": ("prefill 4096 tokens (last logit)", "prefill", 4096, {}),
    "prefill16k": ("prefill 16384 tokens (last logit)", "prefill", 16384, {}),
    "attn1k": ("attention of one layer alone, T = 1024", "attention", 1024, {}),
    "attn4k": ("attention of one layer alone, T = 4096", "attention", 4096, {}),
    "attn16k": ("attention of one layer alone, T = 16384", "attention", 16384, {}),
    "decode1k": ("greedy decode after 1024 tokens (s/token)", "decode", 1024, {}),
    "decode8k": ("greedy decode after 8192 tokens (s/token)", "decode", 8192, {}),
    "train8k": ("training step at T = 8192 (recompute), dense", "train", 8192,
                {"optim": True, "recompute": True}),
    "train8k_lrsa": ("training step at T = 8192 (recompute), lrsa LRSA r=1/4 vs torch dense",
                     "train", 8192, {"optim": True, "recompute": True, "lrsa_attn": True}),
}


def prompt_ids(model_dir, n_max):
    """Token ids of the essays in .cache/haystack (or a fixed text), with the model's tokenizer."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model_dir)
    hay = os.path.join(ROOT, ".cache", "haystack")
    text = ""
    if os.path.isdir(hay):
        for name in sorted(os.listdir(hay)):
            with open(os.path.join(hay, name), encoding="utf-8", errors="replace") as f:
                text += f.read() + "\n\n"
            if len(text) > 6 * n_max:
                break
    if not text:
        text = "The quick brown fox jumps over the lazy dog. " * 4000
    ids = tok(text)["input_ids"]
    while len(ids) < n_max:
        ids = ids + ids
    return ids[:n_max]


def run_lrsa(args, case, ids_file):
    desc, kind, T, extra = CASES[case]
    cmd = [args.lrsa, "bench", "--model", args.model, "--T", str(T), "--ids", ids_file]
    if kind == "train":
        cmd += ["--steps", str(args.steps), "--loss", "all"]
        if extra.get("optim"):
            cmd.append("--optim")
        if extra.get("recompute"):
            cmd.append("--recompute")
        if extra.get("lrsa_attn"):
            cmd += ["--attn", "lrsa", "--sink", "16", "--lag", "128", "--keep", "0.25"]
    elif kind in ("prefill", "attention"):
        cmd += ["--mode", kind, "--steps", str(args.steps)]
    else:
        cmd += ["--mode", "decode", "--new", str(args.new)]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads))
    return run_child(cmd, env, lambda out: parse_lrsa(out))


def parse_lrsa(out):
    """(seconds, CPU seconds, peak RSS MiB or None) from the `result ... seconds S cpu_seconds C
    [peak_rss_mib R]` line."""
    for line in out.splitlines():
        if line.startswith("result "):
            w = line.split()
            rss = float(w[w.index("peak_rss_mib") + 1]) if "peak_rss_mib" in w else None
            return float(w[w.index("seconds") + 1]), float(w[w.index("cpu_seconds") + 1]), rss
    raise RuntimeError("no result line in lrsa's output:\n" + out)


def run_child(cmd, env, parse):
    """Runs cmd, returns ((seconds, CPU seconds), peak RSS MiB of that process): the peak the
    child reports, else (an older lrsa) wait4's ru_maxrss, which is at least this script's."""
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), text[-3000:]))
    t, cpu, rss = parse(text)
    return (t, cpu), rss if rss is not None else ru.ru_maxrss / 1024.0


def own_peak_rss_mib():
    """VmHWM of this process (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def torch_key(case):
    """What the transformers side of a case depends on: cases with the same key run the same
    transformers measurement (lrsa_attn changes only lrsa's side)."""
    desc, kind, T, extra = CASES[case]
    return (kind, T, tuple(sorted((k, v) for k, v in extra.items() if k != "lrsa_attn")))


def run_torch(args, case, ids_file):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", case, "--ids", ids_file,
           "--model", args.model, "--threads", str(args.threads), "--steps", str(args.steps),
           "--new", str(args.new)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    def parse(out):
        r = json.loads(out.strip().splitlines()[-1])
        return r["seconds"], r["cpu_seconds"], r.get("peak_rss_mib")
    return run_child(cmd, env, parse)


def worker(args):
    """One transformers measurement in this process; prints {"seconds": s} last."""
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(args.threads)
    desc, kind, T, extra = CASES[args.worker]
    with open(args.ids) as f:
        base = [int(x) for x in f.read().split()]
    ids = torch.tensor([(base * (T // len(base) + 1))[:T]], dtype=torch.long)
    if kind == "attention":
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(args.model)
        hq, hkv = cfg.num_attention_heads, cfg.num_key_value_heads
        d = getattr(cfg, "head_dim", None) or cfg.hidden_size // hq
        gen = torch.Generator().manual_seed(5)
        q = torch.randn(1, hq, T, d, generator=gen)
        k, v = (torch.randn(1, hkv, T, d, generator=gen) for _ in range(2))
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def step():
            with torch.no_grad():
                sdpa(q, k, v, is_causal=True, enable_gqa=hq != hkv)
        return timed_steps(step, args.steps)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation="sdpa")
    if kind == "train":
        model.train()
        if extra.get("recompute"):
            model.gradient_checkpointing_enable()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5) if extra.get("optim") else None

        def step():
            if opt is not None:
                opt.zero_grad(set_to_none=False)
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            if opt is not None:
                opt.step()
        reps = args.steps
    elif kind == "prefill":
        model.eval()

        def step():
            with torch.no_grad():
                model(input_ids=ids, use_cache=True, logits_to_keep=1)
        reps = args.steps
    else:
        model.eval()
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        state = {"pkv": out.past_key_values, "tok": out.logits[:, -1:].argmax(-1)}

        def step():
            with torch.no_grad():
                o = model(input_ids=state["tok"], past_key_values=state["pkv"], use_cache=True)
            state["pkv"], state["tok"] = o.past_key_values, o.logits[:, -1:].argmax(-1)
        step()  # (the warm-up below is a second one)
        reps = args.new
    timed_steps(step, reps)


def timed_steps(step, reps):
    """One warm-up step, then reps timed ones; prints {"seconds", "cpu_seconds", "peak_rss_mib"}
    (per step) as the worker's last line."""
    step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(reps):
        step()
    print(json.dumps({"seconds": (time.perf_counter() - t0) / reps,
                      "cpu_seconds": (time.process_time() - c0) / reps,
                      "peak_rss_mib": own_peak_rss_mib()}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lrsa", default=os.path.join(ROOT, "build", "lrsa"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2-135m-instruct"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3, help="alternating runs per case (median)")
    ap.add_argument("--steps", type=int, default=2, help="timed repetitions inside each run")
    ap.add_argument("--new", type=int, default=16, help="decoded tokens per decode run")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    cases = args.cases.split(",")
    for c in cases:
        if c not in CASES:
            sys.exit("vs_torch: unknown case %s; known: %s" % (c, ", ".join(CASES)))
    if not (os.path.isfile(args.lrsa) and os.access(args.lrsa, os.X_OK)):
        sys.exit("vs_torch: no lrsa binary at %s; build it (cmake -S . -B build -DLRSA_CUDA=OFF "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build --target lrsa) or pass "
                 "--lrsa PATH" % args.lrsa)
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit("vs_torch: %s is not a model directory (no config.json); fetch the default "
                 "model with tools/fetch-model.sh or pass --model DIR" % args.model)
    ids_fd, ids_file = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(ids_fd, "w") as f:
        f.write(" ".join(map(str, prompt_ids(args.model, 4096))) + "\n")
    results = {c: {"lrsa": [], "torch": []} for c in cases}
    print("threads %d, reps %d, load average at start %.2f %.2f %.2f" %
          ((args.threads, args.reps) + os.getloadavg()), flush=True)
    try:
        for rep in range(args.reps):
            torch_done = {}  # torch_key -> (case, result) measured in this repetition
            for c in cases:
                sides = [("lrsa", run_lrsa), ("torch", run_torch)]
                if rep % 2:
                    sides.reverse()  # alternate which side goes first
                for name, fn in sides:
                    same = torch_done.get(torch_key(c)) if name == "torch" else None
                    if same:
                        results[c][name].append(same[1])
                        print("rep %d %-13s %-5s the same measurement as %s" %
                              (rep, c, name, same[0]), flush=True)
                        continue
                    (t, cpu), rss = fn(args, c, ids_file)
                    results[c][name].append((t, cpu, rss))
                    if name == "torch":
                        torch_done[torch_key(c)] = (c, (t, cpu, rss))
                    print("%s rep %d %-13s %-5s %9.4f s  CPU %9.4f s  peak RSS %7.1f MiB  "
                          "load %.2f" % (time.strftime("%H:%M:%S"), rep, c, name, t, cpu, rss,
                                         os.getloadavg()[0]), flush=True)
    finally:
        os.unlink(ids_file)
    print("\nload average at end %.2f %.2f %.2f" % os.getloadavg())
    print("\nmedians; speed = transformers' time / lrsa's time (> 1: lrsa faster); CPU seconds "
          "count every thread's time (spinning included), the steadier figure on a shared machine")
    print("\n| path | lrsa (s) | transformers (s) | speed | lrsa CPU (s) | transformers CPU (s) | "
          "CPU ratio | peak RSS lrsa (MiB) | peak RSS transformers (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    med = {}
    for c in cases:
        lt, lc = (statistics.median(r[i] for r in results[c]["lrsa"]) for i in (0, 1))
        tt, tc = (statistics.median(r[i] for r in results[c]["torch"]) for i in (0, 1))
        lr = max(r[2] for r in results[c]["lrsa"])
        tr = max(r[2] for r in results[c]["torch"])
        med[c] = (lt, tt)
        print("| %s | %.4f | %.4f | %.2f | %.4f | %.4f | %.2f | %.0f | %.0f |" %
              (CASES[c][0], lt, tt, tt / lt, lc, tc, tc / lc, lr, tr))
    growth = []
    for kind in ("prefill", "attn"):
        for big in ("4k", "16k"):
            a, b = med.get(kind + "1k"), med.get(kind + big)
            if a and b:
                growth.append("%s 1K -> %s: lrsa %.2fx, transformers %.2fx" %
                              (kind, big.upper(), b[0] / a[0], b[1] / a[1]))
    if growth:
        print("\ntime growth: " + "; ".join(growth))
    # prefill = layers x attention + the rest (GEMMs, norms, RoPE, ...): what each side's
    # growth is made of, where both rows of a length were measured
    layers = None
    for T in ("1k", "4k", "16k"):
        p, a = med.get("prefill" + T), med.get("attn" + T)
        if p and a:
            if layers is None:
                with open(os.path.join(args.model, "config.json")) as f:
                    layers = json.load(f)["num_hidden_layers"]
            print("prefill %s = %d x attention + rest: lrsa %.3f = %.3f + %.3f s, transformers "
                  "%.3f = %.3f + %.3f s" % (T.upper(), layers, p[0], layers * a[0],
                                          p[0] - layers * a[0], p[1], layers * a[1],
                                          p[1] - layers * a[1]))

if __name__ == "__main__":
    main()
