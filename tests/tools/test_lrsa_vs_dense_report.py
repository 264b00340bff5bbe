"""tools/lrsa_vs_dense_report.py on a made-up grid whose answers are known."""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SRC = os.environ.get("LRSA_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(SRC, "tools", "lrsa_vs_dense_report.py")
sys.path.insert(0, os.path.join(SRC, "tools"))
import lrsa_stats  # noqa: E402

MODELS = ["base", "dense-s1", "lrsa-s1", "dense-s2", "lrsa-s2"]
CELLS = [("none", 1.0), ("lagkv", 0.5), ("lagkv", 0.25), ("snapkv", 0.25)]
N = 12  # samples 0-5 task "passkey", 6-11 task "niah-multiquery" (the kept-out one)


def record(model, press, keep, i):
    """A deterministic made-up sample: LRSA arms lose 0.5 nats per token less under LagKV and
    match on even samples where dense does not."""
    rng = random.Random("%s|%s|%g|%d" % (model, press, keep, i))
    tokens = 2 + i % 5
    nll = 0.2 + rng.random() * 0.1
    match = 1
    if press == "lagkv":
        nll += 1.0 - (0.5 if model.startswith("lrsa") else 0.0)
        match = 1 if (model.startswith("lrsa") and i % 2 == 0) else 0
    return {"index": i, "task": "passkey" if i < 6 else "niah-multiquery",
            "answer_tokens": tokens, "answer_nll_sum": nll * tokens,
            "answer_nll": nll, "string_match_all": match, "string_match_part": match,
            "match": match}


def grid_rows():
    rows = []
    for m in MODELS:
        for press, keep in CELLS:
            rows.append({"key": "%s|%s|%g" % (m, press, keep), "model": m, "press": press,
                         "keep": keep, "protocol": "query-agnostic", "task": "heldout",
                         "samples": [record(m, press, keep, i) for i in range(N)]})
    return rows


def write_runs(root):
    for name in MODELS[1:]:
        d = os.path.join(root, name)
        os.makedirs(d)
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            for step in range(1, 6):
                f.write(json.dumps({"step": step, "loss": 2.0 / step}) + "\n")
            f.write(json.dumps({"step": 5, "eval_nll_lagkv": 0.9}) + "\n")


class Report(unittest.TestCase):
    def setUp(self):
        base = os.environ.get("LRSA_TEST_TMP")
        if base:
            os.makedirs(base, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=base)
        self.grid = os.path.join(self.tmp, "results.jsonl")
        self.runs = os.path.join(self.tmp, "train")
        self.out = os.path.join(self.tmp, "report")
        write_runs(self.runs)

    def run_report(self, rows, extra_text=""):
        with open(self.grid, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows) + extra_text)
        facts = os.path.join(self.tmp, "facts.json")
        with open(facts, "w") as f:
            json.dump({"date": "2026-12-06", "commit": "abc1234", "heldout_task": "niah-multiquery"}, f)
        return subprocess.run([sys.executable, SCRIPT, "--grid", self.grid, "--runs", self.runs,
                               "--out", self.out, "--facts", facts],
                              capture_output=True, text=True)

    def test_tables_differences_and_pictures(self):
        rows = grid_rows()
        p = self.run_report(rows, extra_text='{"truncated": ')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("not a complete JSON line", p.stderr)
        with open(os.path.join(self.out, "report.md")) as f:
            md = f.read()
        with open(os.path.join(self.out, "summary.json")) as f:
            summary = json.load(f)
        cells = {(c["press"], c["keep"]): c for c in summary["cells"]}
        self.assertEqual(set(cells), {(p_, k) for p_, k in CELLS})
        # The LagKV 1/4 cell, computed here from the records with seeds pooled.
        by = {r["model"]: r for r in rows if r["press"] == "lagkv" and r["keep"] == 0.25}

        def pooled(arm):
            out = []
            for i in range(N):
                recs = [by["%s-s%d" % (arm, s)]["samples"][i] for s in (1, 2)]
                out.append((sum(r["answer_nll_sum"] for r in recs),
                            sum(r["answer_tokens"] for r in recs),
                            sum(r["string_match_all"] for r in recs) / 2))
            return out
        want = lrsa_stats.paired_bootstrap(pooled("lrsa"), pooled("dense"))
        got = cells[("lagkv", 0.25)]
        for a, b in zip(got["nll_diff"], want["nll"]):
            self.assertAlmostEqual(a, b, places=12)
        self.assertAlmostEqual(got["match_diff"][0], 0.5)  # LRSA matches even samples, dense none
        self.assertLess(got["nll_diff"][2], -0.3)  # the made-up -0.5 shift is found, interval < 0
        self.assertEqual(got["n"], N)
        # The full cache: the arms are made alike, so no difference may be claimed.
        self.assertIn("no difference shown", md)
        self.assertIn("NLL: LRSA better; match: LRSA better", md)
        self.assertIn("niah-multiquery (kept out)", md)
        self.assertIn("abc1234", md)
        for name in ("score_vs_keep_query-agnostic.svg", "training_curves.svg"):
            ET.parse(os.path.join(self.out, name))  # well-formed SVG
            self.assertIn("](%s)" % name, md)
        # Where the NLL difference comes from: under LagKV LRSA is right on even samples and
        # dense never, so the pairs split into "LRSA only" (even) and "neither" (odd), per seed.
        o = got["outcomes"]
        self.assertEqual(o["pairs"], 2 * N)
        self.assertEqual((o["both"]["n"], o["dense"]["n"], o["lrsa"]["n"], o["neither"]["n"]),
                         (0, 0, N, N))
        diffs = {"lrsa": [], "neither": []}
        for s in (1, 2):
            for i in range(N):
                d, l_ = (by["%s-s%d" % (arm, s)]["samples"][i] for arm in ("dense", "lrsa"))
                diffs["lrsa" if i % 2 == 0 else "neither"].append(l_["answer_nll"] - d["answer_nll"])
        for kind, vals in diffs.items():
            self.assertAlmostEqual(o[kind]["mean"], sum(vals) / len(vals), places=12)
            self.assertAlmostEqual(o[kind]["contribution"], sum(vals) / (2 * N), places=12)
        self.assertAlmostEqual(o["mean"], o["lrsa"]["contribution"] + o["neither"]["contribution"],
                               places=12)
        full = cells[("none", 1.0)]["outcomes"]
        self.assertEqual(full["both"]["n"], 2 * N)  # everyone right with the full cache
        self.assertIn("## Where the NLL difference comes from", md)
        with open(os.path.join(self.out, "results.jsonl")) as f:
            self.assertEqual(sum(1 for line in f if line.strip().endswith("}")), len(rows))

    def test_a_method_arm_from_a_second_grid_and_a_needle_grid(self):
        rows = grid_rows()
        # salience-s1, evaluated apart: lrsa-s1's records with 0.2 nats less per token and a
        # needle_kept; only the LagKV cells (so cells it lacks are left out of its table).
        by = {(r["model"], r["press"], r["keep"]): r for r in rows}
        extra, needle = [], []
        for press, keep in CELLS:
            if press != "lagkv":
                continue
            samples = []
            for rec in by[("lrsa-s1", press, keep)]["samples"]:
                rec = dict(rec)
                rec["answer_nll_sum"] -= 0.2 * rec["answer_tokens"]
                rec["needle_kept"] = 0.5 + 0.25 * (rec["index"] % 2)
                rec["needle_tokens_kept"] = 0.25
                samples.append(rec)
            extra.append({"model": "salience-s1", "press": press, "keep": keep,
                          "protocol": "query-agnostic", "samples": samples})
            # the diagnostic grid re-evaluates lrsa-s1 (same records plus needle_kept)
            again = [dict(r, needle_kept=1.0,
                          needle_tokens_kept=0.8 if r["string_match_all"] else 0.2)
                     for r in by[("lrsa-s1", press, keep)]["samples"]]
            needle.append({"model": "lrsa-s1", "press": press, "keep": keep,
                           "protocol": "query-agnostic", "samples": again})
        second = os.path.join(self.tmp, "salience.jsonl")
        diag = os.path.join(self.tmp, "needle.jsonl")
        for path, part in ((second, extra), (diag, needle)):
            with open(path, "w") as f:
                f.write("".join(json.dumps(r) + "\n" for r in part))
        with open(self.grid, "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in rows))
        p = subprocess.run([sys.executable, SCRIPT, "--grid", self.grid, "--grid", second,
                            "--runs", self.runs, "--out", self.out, "--needle-grid", diag],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.out, "report.md")) as f:
            md = f.read()
        self.assertIn("## Method arm `salience` (seeds 1)", md)
        table = md.split("## Method arm `salience`")[1].split("\n## ")[0]
        lines = [ln for ln in table.splitlines() if ln.startswith("| query-agnostic")]
        self.assertEqual(len(lines), 2)  # the two LagKV cells only
        # minus LRSA: against lrsa-s1 only (seed 1), computed here.
        b = by[("lrsa-s1", "lagkv", 0.25)]["samples"]
        x = [e for e in extra if e["keep"] == 0.25][0]["samples"]
        tup = lambda recs: [(r["answer_nll_sum"], r["answer_tokens"], r["string_match_all"])
                            for r in recs]
        want = lrsa_stats.paired_bootstrap(tup(x), tup(b))
        self.assertAlmostEqual(want["nll"][0], -0.2, places=12)
        row = [ln for ln in lines if "keep 1/4" in ln][0]
        cols = [c.strip() for c in row.split("|")[1:-1]]
        self.assertTrue(cols[5].startswith("%+.3f [%+.3f, %+.3f]" % want["nll"]), cols[5])
        self.assertEqual(cols[-1], "0.625 / 0.250")  # mean needle_kept (0.5, 0.75 alternating)
        # The diagnostic grid: needle_kept 1 and the same NLL as the main grid's lrsa-s1.
        diag_md = md.split("## Needle kept (diagnostic grid)")[1].split("\n## ")[0]
        drow = [ln for ln in diag_md.splitlines() if ln.startswith("| lrsa-s1") and "1/4" in ln][0]
        dcols = [c.strip() for c in drow.split("|")[1:-1]]
        # lrsa-s1 answers the even samples right under LagKV: token rates split 0.8 / 0.2
        self.assertEqual((dcols[4], dcols[5], dcols[6]), ("1.000", "0.500", "0.800 / 0.200"))
        self.assertEqual(dcols[8], dcols[9])
        # the picture has a line for the new arm; the joined grids are kept for re-analysis
        with open(os.path.join(self.out, "score_vs_keep_query-agnostic.svg")) as f:
            self.assertIn("salience-tuned", f.read())
        with open(os.path.join(self.out, "results.jsonl")) as f:
            self.assertEqual(sum(1 for line in f if line.strip()), len(rows) + len(extra))

    def test_rows_without_per_sample_records_are_refused(self):
        rows = grid_rows()
        del rows[3]["samples"]
        p = self.run_report(rows)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("no per-sample records", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.out, "report.md")))

    def test_a_grid_without_both_arms_is_refused(self):
        rows = [r for r in grid_rows() if not r["model"].startswith("dense")]
        p = self.run_report(rows)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("dense-sN and lrsa-sN", p.stderr)


if __name__ == "__main__":
    unittest.main()
