"""Paired bootstrap of "LRSA-tuned minus dense-tuned" over the same held-out samples, shared by
tools/lrsa_vs_dense_report.py and the main job's table (standard library only).

A sample is a tuple (answer NLL sum, answer tokens, match in [0, 1]); with several seeds per arm
the sums and token counts are added over seeds and the match averaged (seeds pooled). An arm's
NLL over a set of samples is sum(NLL) / sum(tokens) (nats per answer token), its match the mean.
"""
import random

RESAMPLES = 10000
SEED = 20261206


def arm_nll(samples, sel):
    s = sum(samples[j][0] for j in sel)
    t = sum(samples[j][1] for j in sel)
    return s / t if t else float("nan")


def arm_match(samples, sel):
    return sum(samples[j][2] for j in sel) / len(sel) if sel else float("nan")


def percentile(sorted_values, q):
    i = int(round(q * (len(sorted_values) - 1)))
    return sorted_values[min(len(sorted_values) - 1, max(0, i))]


def paired_bootstrap(lrsa, dense, resamples=RESAMPLES, seed=SEED):
    """lrsa[j], dense[j]: sample j of each arm. Returns {"nll": (diff, lo, hi), "match": (...),
    "n": n}: LRSA minus dense, point estimate and 95 % percentile interval from resampling the
    samples with replacement (the same resample for both arms: paired)."""
    n = len(lrsa)
    if n == 0 or n != len(dense):
        raise ValueError("paired_bootstrap needs the same, non-empty sample list for both arms")
    full = range(n)
    point = (arm_nll(lrsa, full) - arm_nll(dense, full), arm_match(lrsa, full) - arm_match(dense, full))
    rng = random.Random(seed)
    dn, dm = [], []
    for _ in range(resamples):
        sel = [rng.randrange(n) for _ in range(n)]
        dn.append(arm_nll(lrsa, sel) - arm_nll(dense, sel))
        dm.append(arm_match(lrsa, sel) - arm_match(dense, sel))
    dn.sort()
    dm.sort()
    return {
        "nll": (point[0], percentile(dn, 0.025), percentile(dn, 0.975)),
        "match": (point[1], percentile(dm, 0.025), percentile(dm, 0.975)),
        "n": n,
    }


def reading(ci, lower_is_better):
    """Which arm the interval favours, or that it does not exclude zero."""
    lo, hi = ci[1], ci[2]
    if lo > 0:
        return "dense better" if lower_is_better else "LRSA better"
    if hi < 0:
        return "LRSA better" if lower_is_better else "dense better"
    return "no difference shown"
