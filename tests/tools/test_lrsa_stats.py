"""tools/lrsa_stats.py: the paired bootstrap behind the issue-19 report and the main job."""
import os
import random
import sys
import unittest

sys.path.insert(0, os.path.join(os.environ.get("LRSA_SOURCE_DIR",
                                               os.path.join(os.path.dirname(__file__), "..", "..")),
                                "tools"))
import lrsa_stats  # noqa: E402


def arm(rng, n, per_token_shift=0.0, match_p=0.5):
    out = []
    for _ in range(n):
        tokens = rng.randint(2, 12)
        out.append((tokens * (rng.random() + per_token_shift), tokens, float(rng.random() < match_p)))
    return out


class PairedBootstrap(unittest.TestCase):
    def test_identical_arms_give_zero_and_a_zero_interval(self):
        a = arm(random.Random(1), 30)
        r = lrsa_stats.paired_bootstrap(a, list(a), resamples=500)
        self.assertEqual(r["n"], 30)
        self.assertEqual(r["nll"], (0.0, 0.0, 0.0))
        self.assertEqual(r["match"], (0.0, 0.0, 0.0))

    def test_a_constant_per_token_shift_is_recovered_exactly_in_every_resample(self):
        # lrsa = dense - 0.3 nats on every answer token: the token-weighted difference is -0.3
        # in every resample, so a correct pairing collapses the interval onto it. An unpaired
        # bootstrap (independent resamples per arm) would give a wide interval.
        dense = arm(random.Random(2), 40)
        lrsa = [(s - 0.3 * t, t, m) for (s, t, m) in dense]
        r = lrsa_stats.paired_bootstrap(lrsa, dense, resamples=500)
        for v in r["nll"]:
            self.assertAlmostEqual(v, -0.3, places=12)

    def test_nll_is_token_weighted_not_a_mean_of_per_sample_means(self):
        # sample 0: 1 token of NLL 4; sample 1: 3 tokens of NLL 0 -> 4 / 4 = 1.0 (a mean of
        # per-sample means would say 2.0).
        self.assertAlmostEqual(lrsa_stats.arm_nll([(4.0, 1, 0), (0.0, 3, 0)], [0, 1]), 1.0)

    def test_match_difference_and_reading(self):
        n = 50
        dense = [(1.0, 1, 0.0)] * n
        lrsa = [(1.0, 1, 1.0 if j < 40 else 0.0) for j in range(n)]
        r = lrsa_stats.paired_bootstrap(lrsa, dense, resamples=2000)
        point, lo, hi = r["match"]
        self.assertAlmostEqual(point, 0.8)
        self.assertTrue(0.6 < lo < point < hi <= 0.95, r["match"])
        self.assertEqual(lrsa_stats.reading(r["match"], lower_is_better=False), "LRSA better")
        self.assertEqual(lrsa_stats.reading((-0.5, -0.7, -0.1), lower_is_better=True), "LRSA better")
        self.assertEqual(lrsa_stats.reading((0.5, 0.1, 0.7), lower_is_better=True), "dense better")
        self.assertEqual(lrsa_stats.reading((0.1, -0.1, 0.3), lower_is_better=True),
                         "no difference shown")

    def test_interval_covers_the_true_difference_in_most_repetitions(self):
        # 30 repetitions of a noisy shift of -0.2 nats/token: a 95 % interval that misses the
        # truth in more than 5 of them (p < 0.02 for a correct 95 % interval) is broken.
        misses = 0
        for rep in range(30):
            rng = random.Random(100 + rep)
            dense = arm(rng, 48)
            lrsa = [(s + t * (-0.2 + rng.gauss(0, 0.3)), t, m) for (s, t, m) in dense]
            _, lo, hi = lrsa_stats.paired_bootstrap(lrsa, dense, resamples=300, seed=rep)["nll"]
            misses += not (lo <= -0.2 <= hi)
        self.assertLessEqual(misses, 5)

    def test_same_seed_same_interval(self):
        a, b = arm(random.Random(3), 20), arm(random.Random(4), 20)
        self.assertEqual(lrsa_stats.paired_bootstrap(a, b, resamples=300),
                         lrsa_stats.paired_bootstrap(a, b, resamples=300))

    def test_unpaired_or_empty_input_is_refused(self):
        with self.assertRaises(ValueError):
            lrsa_stats.paired_bootstrap([], [])
        with self.assertRaises(ValueError):
            lrsa_stats.paired_bootstrap([(1.0, 1, 1.0)], [(1.0, 1, 1.0), (2.0, 1, 0.0)])


if __name__ == "__main__":
    unittest.main()
