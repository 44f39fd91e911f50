"""The trust calibration on synthetic episode scores: how often it splits, and what it cuts.

Every set is drawn on the attribution score's scale: chance is 0, the good episodes sit at a
centre ``G`` drawn in [0.8, 1.5] with a spread of 8-15 % of it, 40 or 80 episodes. Wrong labels
come in three severities (random labels far below chance, shuffled about chance, delayed a
little above it). These are the dev sets the calibration's defaults were chosen on; the rates
before and after are in docs/results/2026-12-06-trust-calibration.md (``case_rates`` printed
them). The rate tests draw 200 sets each and are ``slow``; the default run checks one seeded set
of each case.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

from ptr_core.weighting.trust.calibrate import fit_calibration
from ptr_core.weighting.trust.config import TrustConfig

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]


class ScoreSet(NamedTuple):
    scores: Array
    good: Mask  # what the set's episodes are, by construction


def wrong_labels(rng: np.random.Generator, n: int, g: float) -> Array:
    """Random labels (-3G, spread G), shuffled (about chance), delayed (up to 0.25G above)."""
    kind = rng.integers(0, 3, n)
    centre = np.asarray([-3.0 * g, rng.uniform(-0.3, 0.1) * g, rng.uniform(0.0, 0.25) * g])
    spread = np.asarray([1.0 * g, 0.12 * g, 0.12 * g])
    out: Array = centre[kind] + spread[kind] * rng.standard_normal(n)
    return out


def draw(case: str, rng: np.random.Generator) -> ScoreSet:
    """One synthetic set of ``case`` (``CASES``)."""
    n = int(rng.choice([40, 80]))
    g = float(rng.uniform(0.8, 1.5))
    sd = float(rng.uniform(0.08, 0.15)) * g

    def good(k: int) -> Array:
        out: Array = g + sd * rng.standard_normal(k)
        return out

    def labels(k: int) -> Mask:
        return np.r_[np.ones(k, bool), np.zeros(n - k, bool)]

    if case in ('half', 'minority10', 'minority5'):
        k = {'half': n // 2, 'minority10': n // 10, 'minority5': n // 20}[case]
        return ScoreSet(np.r_[good(k), wrong_labels(rng, n - k, g)], labels(k))
    if case == 'three_levels':  # 10 % experts, 70 % poorer operators, 20 % wrong labels
        k, m = n // 10, (7 * n) // 10
        middle = rng.uniform(0.15, 0.3) * g + 0.12 * g * rng.standard_normal(m)
        return ScoreSet(np.r_[good(k), middle, wrong_labels(rng, n - k - m, g)], labels(k))
    if case == 'second_style':  # a good second style at 0.65 against 1.4, 20-50 % of the set
        k = int(rng.uniform(0.2, 0.5) * n)
        return ScoreSet(np.r_[good(n - k), 0.46 * g + sd * rng.standard_normal(k)], labels(n))
    if case == 'all_good':
        return ScoreSet(good(n), labels(n))
    if case in ('all_good_tail', 'all_good_long_tail'):  # skewed: a lognormal low tail
        median, width = (0.08, 0.8) if case == 'all_good_tail' else (0.1, 1.0)
        tail = rng.lognormal(np.log(median), width, n) * g
        return ScoreSet(g + 0.5 * sd * rng.standard_normal(n) - tail, labels(n))
    if case == 'all_good_t2':  # heavy tails both ways (Student t, 2 degrees of freedom)
        return ScoreSet(g + 0.7 * sd * rng.standard_t(2, n), labels(n))
    msg = f'unknown synthetic case {case!r}'
    raise ValueError(msg)


CASES = ('half', 'minority10', 'minority5', 'three_levels', 'second_style', 'all_good',
         'all_good_tail', 'all_good_long_tail', 'all_good_t2')


def trust_of(scores: Array) -> Array:
    """The shipped calibration's P(good) (``ptr score``'s options, chance anchor 0)."""
    cfg = TrustConfig()
    cal = fit_calibration(scores, separation=cfg.separation, min_share=cfg.min_share,
                          anchor=0.0, anchor_fraction=cfg.anchor_fraction)
    return cal.posterior_good(scores)


class Rates(NamedTuple):
    split: float  # sets where some episode gets trust < 0.5
    right: float  # sets keeping >= 90 % of the good episodes and cutting >= 90 % of the bad


def case_rates(case: str, draws: int, seed: int = 12345) -> Rates:
    rng = np.random.default_rng(seed)
    split = right = 0
    for _ in range(draws):
        s = draw(case, rng)
        p = trust_of(s.scores)
        split += bool((p < 0.5).any())
        cut = float((p[~s.good] < 0.5).mean()) if (~s.good).any() else 1.0
        right += float((p[s.good] >= 0.5).mean()) >= 0.9 and cut >= 0.9
    return Rates(split / draws, right / draws)


# measured before (two Gaussians, one EM start, anchor 0.5) and now, 200 draws each
EXPECT = {
    'half': ('right', 0.95),  # before 1.00, now 1.00
    'minority10': ('right', 0.90),  # before 0.655, now 0.945
    'three_levels': ('right', 0.75),  # before 0.01, now 0.79
    'second_style': ('no_split', 0.95),  # before 0.115, now 0.965
    'all_good': ('no_split', 0.95),  # before 1.00, now 1.00
    'all_good_tail': ('no_split', 0.95),  # before 0.96, now 0.985
    'all_good_t2': ('no_split', 0.95),  # before 0.985, now 0.985
}
# not asserted: 'minority5' (2-4 experts: before 0.655, now 0.58) and 'all_good_long_tail'
# (before 0.75, now 0.835 unsplit: a few good episodes at chance look like bad ones)


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(EXPECT))
def test_split_rates_over_200_synthetic_sets(case: str) -> None:
    what, bound = EXPECT[case]
    rates = case_rates(case, 200)
    got = rates.right if what == 'right' else 1.0 - rates.split
    assert got >= bound, (case, rates)


def test_a_minority_of_experts_among_wrong_labels_is_split() -> None:
    """10 % experts among wrong labels of three severities: two Gaussians took the random
    labels alone (shuffled and delayed kept trust 1 in a third of such sets)."""
    rng = np.random.default_rng(3)
    for _ in range(3):
        s = draw('minority10', rng)
        p = trust_of(s.scores)
        assert p[s.good].min() > 0.8
        assert float((p[~s.good] < 0.5).mean()) >= 0.9


def test_three_quality_levels_keep_only_the_top_one() -> None:
    s = draw('three_levels', np.random.default_rng(0))
    p = trust_of(s.scores)
    assert p[s.good].min() > 0.9
    assert p[~s.good].max() < 0.5


def test_a_good_second_style_and_skewed_good_sets_are_not_cut() -> None:
    rng = np.random.default_rng(1)
    for case in ('second_style', 'all_good', 'all_good_tail', 'all_good_t2'):
        s = draw(case, rng)
        assert trust_of(s.scores).min() == 1.0, case


def core_and_others(seed: int) -> tuple[Array, dict[str, Array]]:
    """8 experts and 8 delayed-label episodes (0.2 of the way from chance), and three sets of
    24 unrelated episodes to score them beside: experts, random labels, shuffled labels."""
    rng = np.random.default_rng(seed)
    core = np.r_[1.0 + 0.1 * rng.standard_normal(8), 0.2 + 0.1 * rng.standard_normal(8)]
    return core, {'experts': 1.0 + 0.1 * rng.standard_normal(24),
                  'random': -3.0 + 1.0 * rng.standard_normal(24),
                  'shuffled': -0.1 + 0.1 * rng.standard_normal(24)}


def test_an_episodes_trust_does_not_depend_on_the_unrelated_episodes_beside_it() -> None:
    """The same 16 episodes scored in three sets: each episode's trust moves by at most 0.1
    between them (before, with two Gaussians: see the results file)."""
    for seed in range(10):
        core, others = core_and_others(seed)
        trust = np.stack([trust_of(np.r_[core, o])[:16] for o in others.values()])
        assert float((trust.max(axis=0) - trust.min(axis=0)).max()) <= 0.1, seed
        assert trust[:, :8].min() > 0.9, seed
        assert trust[:, 8:].mean() < 0.2, seed
