"""Smoke check of `bench_comm --device --step` (issue 18): runs the command given after `--`
(the emulated benchmark under mpiexec) and checks that what it prints is complete and sane:
the three collectives' bandwidth tables for the expected rank count, and the GPU step's
weak-scaling table with the one-GPU trainer rows (with CUDA graphs and without: the same loss)
and, for each k = 1 .. N, an overlap and a
no-overlap row with positive times and tokens/s, an efficiency that is tokens/s / (k * the
one-GPU tokens/s), and a finite loss near ln(vocab) (random weights). Timings are not pass
criteria: emulated kernels say nothing about speed.
With --shared-gpu the ranks share one (emulated) device, which NCCL (and its stand-in) refuses
for a communicator of several ranks: the benchmark must say so in a note, print no bandwidth
table, give the one-GPU and 1-rank rows, a `refused by NCCL` row for the larger counts, and
exit 0.

usage: check_bench_comm.py RANKS VOCAB [--shared-gpu] -- mpiexec ... emu_bench_comm --device
       --step ..."""
import math
import re
import subprocess
import sys


def fail(msg, out):
    sys.stderr.write(out)
    sys.stderr.write(f"\ncheck_bench_comm: FAIL: {msg}\n")
    sys.exit(1)


def main():
    ranks, vocab = int(sys.argv[1]), int(sys.argv[2])
    shared = "--shared-gpu" in sys.argv[:sys.argv.index("--")]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=600)
    out = run.stdout
    if run.returncode != 0:
        fail(f"exit code {run.returncode}", out)
    print(out)

    # bandwidth: a header and at least one row per collective, busbw = algbw * factor
    factor = {"all-reduce": 2.0, "reduce-scatter": 1.0, "all-gather": 1.0}
    if shared:
        if not re.search(rf"^note: {ranks} rank\(s\) with some sharing one GPU: NCCL refused",
                         out, re.M) or not re.search(r"^note: NCCL's message on rank 0: .*"
                                                     r"Duplicate GPU", out, re.M):
            fail("no note that NCCL refused the ranks sharing a GPU", out)
        if re.search(r"^all-reduce ", out, re.M):
            fail("a bandwidth table although NCCL refused the communicator", out)
        factor = {}
    for name, f in factor.items():
        if not re.search(rf"^{name} \(NCCL, device buffers, fp32, in place\), {ranks} rank\(s\)$",
                         out, re.M):
            fail(f"no {name} table for {ranks} ranks", out)
        rows = re.findall(rf"^{name}\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
        if len(rows) < 2:
            fail(f"{name}: fewer than 2 size rows", out)
        for b, t, alg, bus in rows:
            b, t, alg, bus = float(b), float(t), float(alg), float(bus)
            # a stalled rank on a loaded machine may print 0.000 GB/s: timings are no criterion
            if b <= 0 or t <= 0 or alg < 0:
                fail(f"{name}: a negative or zero size or time in row {b} {t} {alg}", out)
            want = alg * f * (ranks - 1) / ranks
            if abs(bus - want) > 0.002 + 0.01 * want:
                fail(f"{name}: busbw {bus} is not algbw {alg} * {f}(n-1)/n = {want}", out)
            # time_us is printed to 0.001 us
            lo, hi = b / ((t + 0.0005) * 1e-6) / 1e9, b / (max(t - 0.0005, 1e-9) * 1e-6) / 1e9
            if not lo * 0.999 - 0.002 <= alg <= hi * 1.001 + 0.002:
                fail(f"{name}: algbw {alg} is not bytes / time ({b} / {t} us)", out)

    # the step table
    head = re.search(r"^GPU training step, weak scaling: .*?(\d+) sample\(s\) of (\d+) tokens "
                     r"per rank", out, re.M)
    if not head:
        fail("no GPU step table", out)
    samples, seq = int(head.group(1)), int(head.group(2))
    row = re.compile(r"^\s*(\d+) (one-gpu|no-graphs|overlap|no-overlap)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)%\s+"
                     r"([-\d.naif]+)$", re.M)
    rows = [(int(k), what, float(s), float(tps), float(eff), float(loss))
            for k, what, s, tps, eff, loss in row.findall(out)]
    counts = sorted({min(2**i, ranks) for i in range(8)})
    measured = [1] if shared else counts
    want = [(1, "one-gpu"), (1, "no-graphs")] + [(k, w) for k in measured for w in ("overlap", "no-overlap")]
    if [(k, w) for k, w, *_ in rows] != want:
        fail(f"step rows {[(k, w) for k, w, *_ in rows]}, expected {want}", out)
    base_sec = rows[0][2]
    if rows[0][5] != rows[1][5]:
        fail(f"one GPU: loss {rows[0][5]} with CUDA graphs, {rows[1][5]} without", out)
    for k, what, sec, tps, eff, loss in rows:
        if sec <= 0 or tps < 0:
            fail(f"{k} {what}: a zero step time or negative tokens/s", out)
        if abs(tps - k * samples * seq / sec) > 0.1 + 0.01 * tps:
            fail(f"{k} {what}: tokens/s {tps} is not {k}*{samples}*{seq}/{sec}", out)
        # tokens/s / (k * one-GPU tokens/s) = one-GPU step time / this step time
        if abs(eff - 100.0 * base_sec / sec) > 0.2 + 0.01 * eff:
            fail(f"{k} {what}: efficiency {eff}% is not tokens/s / (k * one-GPU tokens/s)", out)
        if not math.isfinite(loss) or abs(loss - math.log(vocab)) > 0.5:
            fail(f"{k} {what}: loss {loss} is not near ln({vocab}) = {math.log(vocab):.3f}", out)
    if not re.search(r"^# one GPU: CUDA graphs are [-+][\d.]+ % tokens/s against none", out, re.M):
        fail("no CUDA graphs comparison line", out)
    for k in sorted({r[0] for r in rows[2:]}):
        if not re.search(rf"^# {k} rank\(s\): comm.overlap on is [-+][\d.]+ % tokens/s", out, re.M):
            fail(f"no overlap comparison line for {k} ranks", out)
    for k in counts:
        refused = re.search(rf"^\s*{k} overlap\s+refused by NCCL", out, re.M)
        if bool(refused) != (shared and k > 1):
            fail(f"{k} ranks: {'a' if refused else 'no'} 'refused by NCCL' row", out)
    print("check_bench_comm: ok")


if __name__ == "__main__":
    main()
