#!/usr/bin/env python3
"""The report of tools/lrsa-vs-dense.sh: LRSA-tuned vs dense-tuned models under KV compression.

Reads the evaluation grid's results.jsonl (one row per model x press x budget x protocol cell,
each with its per-sample records), the training runs' metrics.jsonl, and writes into OUT_DIR:
  report.md        the tables (models x caches), LRSA minus dense with 95 % paired bootstrap
                   intervals over the held-out samples (seeds pooled), per task, where the
                   NLL difference comes from (by which arm answers right), further method
                   arms (models named ARM-sN, e.g. salience-s1) against LRSA and dense of the
                   same seeds, needle_kept from a diagnostic grid, run facts
  score_vs_keep_<protocol>.svg   string match and answer NLL vs LagKV keep, one line per model
  training_curves.svg            training loss (and held-out NLL) of every tuned run
  results.jsonl    the grid rows the tables were made from (for re-analysis)

Standard library only (CI machines and the device machine have python3 without numpy).

  python3 tools/lrsa_vs_dense_report.py --grid RUN/eval/results.jsonl [--grid MORE.jsonl ...] \
      --runs RUN/train --out docs/reports/lrsa-vs-dense [--facts RUN/facts.json] \
      [--needle-grid DIAG/results.jsonl]

Statistics: for a cell and an arm (dense or lrsa), the arm's answer NLL is the token-weighted
mean over its seeds and the held-out samples (nats per answer token), its match the mean over
seeds and samples. The difference LRSA minus dense is bootstrapped by resampling the held-out
samples with replacement (the same resample for both arms and all seeds: paired), 10,000
resamples from a fixed seed, 2.5/97.5 percentiles. Seeds are pooled, so the interval covers
sample-to-sample variation, not seed-to-seed variation; the per-seed differences are printed
beside it so the reader sees the latter too.
"""
import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lrsa_stats  # noqa: E402  (tools/lrsa_stats.py)

BOOT = lrsa_stats.RESAMPLES


def die(msg):
    sys.exit("lrsa_vs_dense_report: error: " + msg)


def read_jsonl(path):
    rows = []
    try:
        with open(path) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    print("lrsa_vs_dense_report: warning: %s:%d is not a complete JSON line "
                          "(skipped)" % (path, n), file=sys.stderr)
    except OSError as ex:
        die("cannot read %s: %s" % (path, ex))
    return rows


def model_arm(name):
    """'dense-s1' -> ('dense', 1); 'lrsa-s2' -> ('lrsa', 2); 'base' -> ('base', 0)."""
    if "-s" in name:
        arm, seed = name.rsplit("-s", 1)
        if seed.isdigit():
            return arm, int(seed)
    return name, 0


def cell_key(row):
    # The grid writes the full cache (press none) once per budget with the same answers: one cell.
    keep = 1.0 if row["press"] == "none" else row.get("keep", 1.0)
    return (row["press"], float(keep), row["protocol"])


def cell_label(key):
    press, keep, _ = key
    if press == "none":
        return "full cache (any protocol)"
    frac = "1" if keep >= 1 else "1/%d" % round(1 / keep)
    name = {"lagkv": "LagKV", "snapkv": "SnapKV", "streaming": "StreamingLLM"}.get(press, press)
    return "%s keep %s" % (name, frac)


def cell_order(key):
    press, keep, proto = key
    rank = {"none": 0, "lagkv": 1, "snapkv": 2, "streaming": 3}.get(press, 9)
    return (proto, rank, -keep)


class Cells:
    """Per-sample records of every (cell, model)."""

    def __init__(self, rows):
        self.data = {}  # (cell, model) -> {sample index: record}
        self.tasks = {}  # sample index -> task
        self.models = set()
        for r in rows:
            samples = r.get("samples")
            if samples is None:
                die("a results row (key %s) has no per-sample records; re-run the grid with an "
                    "lrsa that writes them" % r.get("key"))
            k = cell_key(r)
            m = r["model"]
            self.models.add(m)
            recs = {}
            for s in samples:
                recs[s["index"]] = s
                self.tasks[s["index"]] = s.get("task", r.get("task", "?"))
            self.data[(k, m)] = recs
        self.cells = sorted({k for (k, _) in self.data}, key=cell_order)

    def full_cell(self, protocol):
        """The full-cache cell of a protocol, or of any protocol (the full cache does not depend
        on it, so the script evaluates it once)."""
        cell = ("none", 1.0, protocol)
        if cell in self.cells:
            return cell
        return next((c for c in self.cells if c[0] == "none"), cell)

    def arm_models(self, arm):
        return sorted(m for m in self.models if model_arm(m)[0] == arm)

    def samples(self, cell, models, task=None):
        """Sample indices every model has in this cell (optionally of one task)."""
        common = None
        for m in models:
            idx = set(self.data.get((cell, m), {}).keys())
            common = idx if common is None else common & idx
        common = sorted(common or [])
        if task:
            common = [i for i in common if self.tasks.get(i) == task]
        return common


def nll_tok(rec):
    return rec["answer_nll_sum"], rec["answer_tokens"]


def arm_stats(cells, cell, models, idx):
    """Token-weighted NLL and mean match of one arm (its seeds pooled) over samples idx."""
    s = t = 0.0
    m = 0.0
    for model in models:
        recs = cells.data[(cell, model)]
        for i in idx:
            a, b = nll_tok(recs[i])
            s += a
            t += b
            m += recs[i]["string_match_all"]
    n = len(models) * len(idx)
    return (s / t if t else float("nan")), (m / n if n else float("nan"))


def paired_boot(cells, cell, lrsa, dense, idx):
    """LRSA minus dense over samples idx (seeds pooled): lrsa_stats.paired_bootstrap."""
    if not idx:
        return None

    def per_sample(models):
        out = []
        for i in idx:
            s = t = m = 0.0
            for model in models:
                rec = cells.data[(cell, model)][i]
                a, b = nll_tok(rec)
                s += a
                t += b
                m += rec["string_match_all"]
            out.append((s, t, m / len(models)))
        return out

    return lrsa_stats.paired_bootstrap(per_sample(lrsa), per_sample(dense))


OUTCOMES = (("both", "both right"), ("dense", "dense only right"), ("lrsa", "LRSA only right"),
            ("neither", "neither right"))


def outcome_split(cells, cell, lrsa, dense, idx):
    """Splits the per-sample NLL difference (LRSA minus dense, nats per answer token, unweighted
    by tokens) by which arm's greedy answer is right (string match of every part), one pair per
    sample and seed (dense-sN with lrsa-sN). Each outcome gets its count, its mean difference
    and its contribution to the overall mean (count x mean / all pairs: the contributions add up
    to the overall mean). Shows whether a lower NLL comes from samples the model answers or from
    ones it fails anyway."""
    pairs = []
    for d in dense:
        seed = model_arm(d)[1]
        lm = next((m for m in lrsa if model_arm(m)[1] == seed), None)
        if lm is None:
            continue
        for i in idx:
            dr, lr = cells.data[(cell, d)][i], cells.data[(cell, lm)][i]
            dn, ln = dr["answer_nll_sum"] / max(dr["answer_tokens"], 1), \
                lr["answer_nll_sum"] / max(lr["answer_tokens"], 1)
            dok, lok = dr["string_match_all"] >= 1, lr["string_match_all"] >= 1
            kind = "both" if dok and lok else "dense" if dok else "lrsa" if lok else "neither"
            pairs.append((kind, ln - dn))
    if not pairs:
        return None
    out = {"pairs": len(pairs), "mean": sum(v for _, v in pairs) / len(pairs)}
    for kind, _ in OUTCOMES:
        vals = [v for k, v in pairs if k == kind]
        out[kind] = {"n": len(vals), "mean": sum(vals) / len(vals) if vals else None,
                     "contribution": sum(vals) / len(pairs)}
    return out


def mean_of(recs, key):
    """The mean of a per-sample field over the records that carry it, or '-'."""
    vals = [r[key] for r in recs if key in r]
    return "%.3f" % (sum(vals) / len(vals)) if vals else "-"


def method_arms(cells):
    """Arms other than base, dense and lrsa (e.g. salience-s1): variants of the method."""
    return sorted({model_arm(m)[0] for m in cells.models} - {"base", "dense", "lrsa"})


def method_section(L, cells, dense, lrsa):
    """One table per further method arm X: its NLL and match, X minus LRSA and X minus dense
    with paired bootstrap intervals, each against the other arm's runs of the seeds X has (same
    data order), and X's mean needle_kept where its records carry it."""
    for arm in method_arms(cells):
        xs = cells.arm_models(arm)
        seeds = sorted({model_arm(m)[1] for m in xs})
        ls = [m for m in lrsa if model_arm(m)[1] in seeds]
        ds = [m for m in dense if model_arm(m)[1] in seeds]
        if not ls or not ds:
            continue
        L += ["## Method arm `%s` (seeds %s)" % (arm, ", ".join(map(str, seeds))), "",
              "Against the LRSA and dense runs of the same seeds (%s; same data order), 95 %% "
              "paired bootstrap over the held-out samples. Negative NLL and positive match "
              "differences favour `%s`. needle kept: the fraction of (layer, KV head, needle "
              "span) where the answer's first query still sees a token of the needle (any), "
              "and the fraction of the needles' tokens it sees (tokens)." %
              (", ".join(ls + ds), arm), ""]
        head = ("| protocol | cache | n | %s NLL | %s match | minus LRSA: NLL [95 %% CI] | "
                "match, points | minus dense: NLL [95 %% CI] | match, points | needle kept: any / "
                "tokens |"
                % (arm, arm))
        L += [head, "|" + "---|" * (head.count("|") - 1)]
        for cell in cells.cells:
            idx = cells.samples(cell, xs + ls + ds)
            if not idx:
                continue
            xn, xm = arm_stats(cells, cell, xs, idx)
            vl = paired_boot(cells, cell, xs, ls, idx)
            vd = paired_boot(cells, cell, xs, ds, idx)
            recs = [cells.data[(cell, m)][i] for m in xs for i in idx]
            L.append("| %s | %s | %d | %.4f | %.3f | %s | %s | %s | %s | %s / %s |" %
                     (cell[2], cell_label(cell), len(idx), xn, xm, fmt_ci(vl["nll"]),
                      fmt_ci(vl["match"], pct=True), fmt_ci(vd["nll"]),
                      fmt_ci(vd["match"], pct=True), mean_of(recs, "needle_kept"),
                      mean_of(recs, "needle_tokens_kept")))
        L.append("")


def needle_section(L, cells, path):
    """needle_kept of the models of a diagnostic grid, and its NLL beside the same model and
    cell in the main grid (equal up to the build's floating-point order if both are the same
    model and data)."""
    diag = Cells(read_jsonl(path))
    L += ["## Needle kept (diagnostic grid)", "",
          "needle kept: the fraction of (layer, KV head, needle span) where the answer's first "
          "query still sees at least one token of an answer-bearing needle, and the fraction "
          "of the needles' tokens it sees, means over samples. "
          "The last columns compare the diagnostic run's NLL with the same model and cell in "
          "the tables above (a re-evaluation: a difference shows the two builds' arithmetic, "
          "not the model).", ""]
    head = "| model | protocol | cache | n | needle kept (any) | needle tokens kept | tokens " \
           "kept: answer right / wrong | match | NLL here | NLL above |"
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    for model in sorted(diag.models, key=lambda m: (model_arm(m)[0] != "base", m)):
        for cell in diag.cells:
            recs = diag.data.get((cell, model))
            if not recs:
                continue
            idx = sorted(recs)
            here = arm_stats(diag, cell, [model], idx)[0]
            above = "-"
            if (cell, model) in cells.data and all(i in cells.data[(cell, model)] for i in idx):
                above = "%.4f" % arm_stats(cells, cell, [model], idx)[0]
            right = [recs[i] for i in idx if recs[i]["string_match_all"] >= 1]
            wrong = [recs[i] for i in idx if recs[i]["string_match_all"] < 1]
            L.append("| %s | %s | %s | %d | %s | %s | %s / %s | %.3f | %.4f | %s |" %
                     (model, cell[2], cell_label(cell), len(idx),
                      mean_of([recs[i] for i in idx], "needle_kept"),
                      mean_of([recs[i] for i in idx], "needle_tokens_kept"),
                      mean_of(right, "needle_tokens_kept"), mean_of(wrong, "needle_tokens_kept"),
                      arm_stats(diag, cell, [model], idx)[1], here, above))
    L.append("")


def fmt_ci(t, digits=3, pct=False):
    if pct:
        return "%+.1f [%+.1f, %+.1f]" % (100 * t[0], 100 * t[1], 100 * t[2])
    f = "%+." + str(digits) + "f"
    return (f + " [" + f + ", " + f + "]") % t


# ------------------------------------------------------------------------------------------
# SVG (hand-written: a few polylines, axes and a legend)
# ------------------------------------------------------------------------------------------
COLORS = {"base": "#777777", "dense": "#1f77b4", "lrsa": "#d62728"}
EXTRA_COLORS = ["#2ca02c", "#9467bd", "#ff7f0e"]  # further method arms, in name order
DASHES = ["", "6,3", "2,2", "8,3,2,3"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg_chart(title, xlabel, ylabel, series, xticks, w=440, h=300, ylim=None, logx=False):
    """series: [(label, color, dash, [(x, y), ...])]. Returns the SVG fragment of one panel."""
    ml, mr, mt, mb = 58, 12, 28, 42
    xs = [x for _, _, _, pts in series for x, _ in pts]
    ys = [y for _, _, _, pts in series for _, y in pts if y == y]
    if not xs or not ys:
        return '<text x="10" y="20">%s: no data</text>' % esc(title)
    fx = (lambda v: math.log2(v)) if logx else (lambda v: v)
    x0, x1 = min(fx(x) for x in xs), max(fx(x) for x in xs)
    if x1 == x0:
        x1 = x0 + 1
    # Non-negative quantities (losses, NLLs, rates) start the axis at 0.
    y0, y1 = (0.0 if min(ys) >= 0 else min(ys), max(ys)) if ylim is None else ylim
    if y1 == y0:
        y1 = y0 + 1
    if ylim is None:
        y1 += 0.05 * (y1 - y0)

    def px(x):
        return ml + (fx(x) - x0) / (x1 - x0) * (w - ml - mr)

    def py(y):
        return h - mb - (y - y0) / (y1 - y0) * (h - mt - mb)

    out = ['<rect x="0" y="0" width="%d" height="%d" fill="white"/>' % (w, h),
           '<text x="%d" y="16" font-size="13" text-anchor="middle">%s</text>' % (w // 2,
                                                                                  esc(title))]
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' %
               (ml, h - mb, w - mr, h - mb))
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>' % (ml, mt, ml, h - mb))
    for xv, lab in xticks:
        X = px(xv)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black"/>' %
                   (X, h - mb, X, h - mb + 4))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>' %
                   (X, h - mb + 16, esc(lab)))
    for j in range(5):
        yv = y0 + j * (y1 - y0) / 4
        Y = py(yv)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#dddddd"/>' %
                   (ml, Y, w - mr, Y))
        out.append('<text x="%d" y="%.1f" font-size="11" text-anchor="end">%.3g</text>' %
                   (ml - 4, Y + 4, yv))
    out.append('<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>' %
               ((ml + w - mr) // 2, h - 6, esc(xlabel)))
    out.append('<text x="14" y="%d" font-size="12" text-anchor="middle" '
               'transform="rotate(-90 14 %d)">%s</text>' % ((mt + h - mb) // 2,
                                                          (mt + h - mb) // 2, esc(ylabel)))
    for k, (label, color, dash, pts) in enumerate(series):
        pts = [(x, y) for x, y in pts if y == y]
        if not pts:
            continue
        d = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in pts)
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" %s points="%s"/>' %
                   (color, ('stroke-dasharray="%s"' % dash) if dash else "", d))
        for x, y in pts:
            out.append('<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>' % (px(x), py(y), color))
        ly = mt + 4 + 14 * k
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" %s/>' %
                   (w - mr - 120, ly, w - mr - 100, ly, color,
                    ('stroke-dasharray="%s"' % dash) if dash else ""))
        out.append('<text x="%d" y="%d" font-size="11">%s</text>' % (w - mr - 96, ly + 4,
                                                                      esc(label)))
    return "\n".join(out)


def svg_page(panels, w=440, h=300):
    cols = len(panels)
    body = []
    for j, p in enumerate(panels):
        body.append('<g transform="translate(%d,0)">%s</g>' % (j * w, p))
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
            'font-family="sans-serif">\n%s\n</svg>\n' % (cols * w, h, "\n".join(body)))


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------
def score_vs_keep(cells, protocol, out_dir):
    lag = [c for c in cells.cells if c[2] == protocol and c[0] == "lagkv"]
    if not lag:
        return None
    keeps = sorted({c[1] for c in lag} | {1.0}, reverse=True)
    groups = [("base", cells.arm_models("base")), ("dense-tuned", cells.arm_models("dense")),
              ("LRSA-tuned", cells.arm_models("lrsa"))]
    colors = [COLORS["base"], COLORS["dense"], COLORS["lrsa"]]
    for k, arm in enumerate(method_arms(cells)):
        groups.append(("%s-tuned" % arm, cells.arm_models(arm)))
        colors.append(EXTRA_COLORS[k % len(EXTRA_COLORS)])
    panels = []
    for metric, ylabel in (("match", "string match (all parts)"),
                           ("nll", "answer NLL (nats/token)")):
        series = []
        for (name, models), color in zip(groups, colors):
            if not models:
                continue
            pts = []
            for kp in keeps:
                cell = cells.full_cell(protocol) if kp == 1.0 else ("lagkv", kp, protocol)
                if any((cell, m) not in cells.data for m in models):
                    continue  # e.g. an arm evaluated on part of the grid only
                idx = cells.samples(cell, models)
                nll, match = arm_stats(cells, cell, models, idx)
                pts.append((kp, match if metric == "match" else nll))
            series.append((name, color, "", pts))
        ticks = [(k, "1" if k == 1 else "1/%d" % round(1 / k)) for k in keeps]
        panels.append(svg_chart("LagKV, %s: %s" % (protocol, metric), "keep fraction r", ylabel,
                                series, ticks, logx=True,
                                ylim=(0, 1) if metric == "match" else None))
    name = "score_vs_keep_%s.svg" % protocol
    write_atomic(os.path.join(out_dir, name), svg_page(panels))
    return name


def training_curves(runs_dirs, out_dir):
    runs = sorted((name, d) for d in runs_dirs or [] if os.path.isdir(d) for name in os.listdir(d))
    if not runs:
        return None, {}
    loss_series, eval_series, finals = [], [], {}
    for name, runs_dir in runs:
        path = os.path.join(runs_dir, name, "metrics.jsonl")
        if not os.path.isfile(path):
            continue
        arm, seed = model_arm(name)
        color = COLORS.get(arm, "#2ca02c")
        dash = DASHES[(seed - 1) % len(DASHES)] if seed else ""
        rows = read_jsonl(path)
        loss = [(r["step"], r["loss"]) for r in rows if "loss" in r and r["loss"] == r["loss"]]
        ev = [(r["step"], r["eval_nll_lagkv"]) for r in rows if "eval_nll_lagkv" in r]
        if loss:
            loss_series.append((name, color, dash, loss))
            finals[name] = loss[-1]
        if ev:
            eval_series.append((name + " LagKV", color, dash, ev))
    if not loss_series:
        return None, {}
    steps = max(s for _, _, _, pts in loss_series for s, _ in pts)
    ticks = [(int(round(steps * j / 4)), str(int(round(steps * j / 4)))) for j in range(5)]
    panels = [svg_chart("training loss (answer tokens)", "step", "loss (nats/token)",
                        loss_series, ticks)]
    if eval_series:
        panels.append(svg_chart("held-out answer NLL, LagKV (trainer's eval)", "step",
                                "NLL (nats/token)", eval_series, ticks))
    write_atomic(os.path.join(out_dir, "training_curves.svg"), svg_page(panels))
    return "training_curves.svg", finals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", required=True, action="append",
                    help="an evaluation grid's results.jsonl (repeat to join grids run apart, "
                    "e.g. a method arm evaluated later; cells are matched by press, budget and "
                    "protocol, models by name)")
    ap.add_argument("--needle-grid", help="a diagnostic grid (results.jsonl) whose records carry "
                    "needle_kept (held-out data with needle spans): its models' needle_kept and "
                    "their NLL against the same model's row in --grid (a reproduction check)")
    ap.add_argument("--runs", action="append",
                    help="a directory holding training runs (dense-s1, ...; repeatable)")
    ap.add_argument("--out", required=True, help="report directory (created)")
    ap.add_argument("--facts", help="JSON with run facts (date, machine, commit, wall time, ...)")
    ap.add_argument("--title", default="LRSA-tuned vs dense-tuned under KV compression")
    a = ap.parse_args()

    rows = []
    for g in a.grid:
        part = read_jsonl(g)
        if not part:
            die("%s holds no results" % g)
        rows += part
    cells = Cells(rows)
    dense, lrsa, base = cells.arm_models("dense"), cells.arm_models("lrsa"), cells.arm_models("base")
    if not dense or not lrsa:
        die("the grid needs models named dense-sN and lrsa-sN (found: %s)" %
            ", ".join(sorted(cells.models)))
    os.makedirs(a.out, exist_ok=True)
    facts = {}
    if a.facts:
        with open(a.facts) as f:
            facts = json.load(f)
    tasks = sorted(set(cells.tasks.values()))
    heldout_task = facts.get("heldout_task")

    L = ["# " + a.title, ""]
    if facts:
        L.append("## The run")
        L.append("")
        for k in ("date", "machine", "commit", "command", "wall_time", "cpu_time", "load",
                  "train_data", "eval_data", "recipes", "notes"):
            if k in facts:
                L.append("- **%s**: %s" % (k.replace("_", " "), facts[k]))
        L.append("")

    # Table 1: models x caches
    L += ["## Answer NLL and string match, models x caches", "",
          "NLL in nats per answer token (teacher forcing through the compressed cache), match = "
          "the greedy answer contains every part of the reference. Tuned arms pool their seeds "
          "(per-seed figures in the last columns).", ""]
    seeds = sorted({model_arm(m)[1] for m in dense + lrsa})
    head = "| protocol | cache | n | base NLL | dense NLL | LRSA NLL | base match | dense match " \
           "| LRSA match |" + "".join(" dense s%d / LRSA s%d match |" % (s, s) for s in seeds)
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    summary = {}
    for cell in cells.cells:
        models = base + dense + lrsa
        idx = cells.samples(cell, models)
        if not idx:
            continue
        bn, bm = arm_stats(cells, cell, base, idx) if base else (float("nan"),) * 2
        dn, dm = arm_stats(cells, cell, dense, idx)
        ln, lm = arm_stats(cells, cell, lrsa, idx)
        per_seed = ""
        for s in seeds:
            ds = [m for m in dense if model_arm(m)[1] == s]
            ls = [m for m in lrsa if model_arm(m)[1] == s]
            if ds and ls:
                per_seed += " %.3f / %.3f |" % (arm_stats(cells, cell, ds, idx)[1],
                                                arm_stats(cells, cell, ls, idx)[1])
            else:
                per_seed += " |"
        L.append("| %s | %s | %d | %.4f | %.4f | %.4f | %.3f | %.3f | %.3f |%s" %
                 (cell[2], cell_label(cell), len(idx), bn, dn, ln, bm, dm, lm, per_seed))
        summary[cell] = (bn, dn, ln, bm, dm, lm)
    L.append("")

    # Table 2: differences with intervals
    L += ["## LRSA-tuned minus dense-tuned, 95 % paired bootstrap intervals", "",
          "Over the same held-out samples (resampled with replacement, %d resamples, seeds "
          "pooled). Negative NLL difference and positive match difference favour LRSA. "
          "The per-seed columns are the point differences of each seed pair." % BOOT, ""]
    head = "| protocol | cache | n | NLL diff [95 % CI] | match diff, points [95 % CI] | " \
           "reading |" + "".join(" seed %d NLL / match |" % s for s in seeds)
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    diffs = {}
    for cell in cells.cells:
        idx = cells.samples(cell, dense + lrsa)
        b = paired_boot(cells, cell, lrsa, dense, idx)
        if not b:
            continue
        diffs[cell] = b
        per_seed = ""
        for s in seeds:
            ds = [m for m in dense if model_arm(m)[1] == s]
            ls = [m for m in lrsa if model_arm(m)[1] == s]
            if ds and ls:
                dn, dm = arm_stats(cells, cell, ds, idx)
                ln, lm = arm_stats(cells, cell, ls, idx)
                per_seed += " %+.3f / %+.1f |" % (ln - dn, 100 * (lm - dm))
            else:
                per_seed += " |"
        read = "NLL: %s; match: %s" % (lrsa_stats.reading(b["nll"], True), lrsa_stats.reading(b["match"], False))
        L.append("| %s | %s | %d | %s | %s | %s |%s" %
                 (cell[2], cell_label(cell), b["n"], fmt_ci(b["nll"]),
                  fmt_ci(b["match"], pct=True), read, per_seed))
    L.append("")

    # Table 3: per task
    if len(tasks) > 1:
        L += ["## Per task (LRSA minus dense, 95 % paired bootstrap)", ""]
        if heldout_task:
            L.append("`%s` was kept out of training entirely (transfer)." % heldout_task)
            L.append("")
        head = "| task | protocol | cache | n | dense match | LRSA match | NLL diff [95 % CI] | " \
               "match diff, points [95 % CI] |"
        L += [head, "|" + "---|" * (head.count("|") - 1)]
        for task in tasks:
            for cell in cells.cells:
                idx = cells.samples(cell, dense + lrsa, task)
                b = paired_boot(cells, cell, lrsa, dense, idx)
                if not b:
                    continue
                _, dm = arm_stats(cells, cell, dense, idx)
                _, lm = arm_stats(cells, cell, lrsa, idx)
                L.append("| %s%s | %s | %s | %d | %.3f | %.3f | %s | %s |" %
                         (task, " (kept out)" if task == heldout_task else "", cell[2],
                          cell_label(cell), b["n"], dm, lm, fmt_ci(b["nll"]),
                          fmt_ci(b["match"], pct=True)))
        L.append("")

    # Table 4: where the NLL difference comes from
    L += ["## Where the NLL difference comes from", "",
          "Each held-out sample and seed pair (dense-sN with lrsa-sN) is put in one group by "
          "which greedy answer is right; per group: pairs, mean LRSA minus dense NLL (nats per "
          "answer token, per sample, unweighted by tokens) and its contribution to the overall "
          "mean (pairs x mean / all pairs; the contributions add up to the overall mean). A "
          "lower LRSA NLL that sits in *neither right* is better-spread probability on answers "
          "both models get wrong, not more retrieval.", ""]
    head = "| protocol | cache | pairs | mean diff |" + "".join(
        " %s: n, mean, contribution |" % label for _, label in OUTCOMES)
    L += [head, "|" + "---|" * (head.count("|") - 1)]
    outcomes = {}
    for cell in cells.cells:
        o = outcome_split(cells, cell, lrsa, dense, cells.samples(cell, dense + lrsa))
        if not o:
            continue
        outcomes[cell] = o
        parts = ""
        for kind, _ in OUTCOMES:
            g = o[kind]
            parts += (" %d, %+.3f, %+.3f |" % (g["n"], g["mean"], g["contribution"])
                      if g["n"] else " 0 |")
        L.append("| %s | %s | %d | %+.3f |%s" % (cell[2], cell_label(cell), o["pairs"],
                                                   o["mean"], parts))
    L.append("")

    method_section(L, cells, dense, lrsa)
    if a.needle_grid:
        needle_section(L, cells, a.needle_grid)

    # Pictures
    pics = []
    for proto in sorted({c[2] for c in cells.cells}):
        name = score_vs_keep(cells, proto, a.out)
        if name:
            pics.append(name)
    curves, finals = training_curves(a.runs, a.out)
    if pics or curves:
        L += ["## Pictures", ""]
        for p in pics:
            L += ["![%s](%s)" % (p, p), ""]
        if curves:
            L += ["Training curves of every tuned run (loss on the answer tokens of each step's "
                  "batch; dense arms blue, LRSA arms red, seeds by dash):", "",
                  "![training curves](%s)" % curves, ""]
            L.append("Final-step training loss: " + ", ".join(
                "%s %.4f (step %d)" % (k, v[1], v[0]) for k, v in sorted(finals.items())) + ".")
            L.append("")

    write_atomic(os.path.join(a.out, "report.md"), "\n".join(L) + "\n")
    write_atomic(os.path.join(a.out, "results.jsonl"),
                 "".join(json.dumps(r) + "\n" for r in rows))
    # The machine-readable summary the README sentence and the main job quote.
    js = {"cells": [{"protocol": c[2], "cache": cell_label(c), "press": c[0], "keep": c[1],
                     "n": d["n"], "nll_diff": d["nll"], "match_diff": d["match"],
                     "dense_nll": summary[c][1], "lrsa_nll": summary[c][2],
                     "dense_match": summary[c][4], "lrsa_match": summary[c][5],
                     "outcomes": outcomes.get(c)}
                    for c, d in diffs.items() if c in summary]}
    write_atomic(os.path.join(a.out, "summary.json"), json.dumps(js, indent=1) + "\n")
    print("lrsa_vs_dense_report: wrote %s" % os.path.join(a.out, "report.md"))


if __name__ == "__main__":
    main()
