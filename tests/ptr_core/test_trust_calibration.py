"""The trust calibration on synthetic episode scores: how often it splits, and what it cuts.

The sets are ``bench/bench_calibration.py``'s cases (its docstring describes each one's score
distributions: chance 0, the good episodes at G in [0.8, 1.5], 20-400 episodes). The default run
checks each case on its first 40 dev sets with bounds looser than the rates measured there; the
``slow`` test holds the 200 dev sets to the issue's targets. The test sets (seeds 1000-1199) are
the bench's alone: the numbers reported in docs/results/2026-12-07-calibration.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'bench'))

from bench_calibration import TARGETS, Row, case_row, coupling, draw

from ptr_core.weighting.trust.calibrate import fit_mixture

Array = npt.NDArray[np.float64]

SETS = range(40)  # dev seeds


def test_half_good_half_wrong_labels_is_split_right() -> None:
    row = case_row('half', SETS)
    assert row.right >= 0.95, row
    assert row.trust[0] > 0.95 > 0.05 > row.trust[2], row


def test_a_ten_percent_minority_of_experts_among_wrong_labels_is_split() -> None:
    """10 % experts among wrong labels of three severities (the issue: accepted in 45 % of sets,
    wrong labels kept 0.56 trust); 2 experts of 20 are the hardest sets."""
    row = case_row('minority10', SETS)
    assert row.accepted >= 0.85, row
    assert row.right >= 0.85, row
    assert row.trust[0] > 0.95, row
    assert row.trust[2] < 0.1, row


def test_three_quality_levels_keep_only_the_top_one() -> None:
    """10 % experts, 70 % poorer operators a fifth of the way from chance, 20 % wrong labels."""
    row = case_row('three_levels', SETS)
    assert row.right >= 0.8, row
    assert row.trust[0] > 0.95, row
    assert max(row.trust[1], row.trust[2]) < 0.1, row


def test_a_mild_bad_group_a_third_of_the_way_from_chance_is_split() -> None:
    row = case_row('mild', SETS)
    assert row.accepted >= 0.7, row
    assert row.trust[2] < 0.5 < 0.9 < row.trust[0], row


@pytest.mark.parametrize('case', ['second_style', 'all_good', 'all_good_tail',
                                  'all_good_long_tail', 'all_good_t2'])
def test_good_sets_are_not_cut(case: str) -> None:
    """A good second style at 0.46 of the way, and all-good sets: normal, skewed by a lognormal
    low tail (a long one reaches chance), heavy-tailed both ways."""
    row = case_row(case, SETS)
    assert row.cut <= 0.1, row
    assert row.trust[0] > 0.97, row


def test_a_long_low_tail_has_no_dip_and_a_bad_group_has_one() -> None:
    """The acceptance reads the fitted density between the sides: two groups apart dip deep; a
    good group with a long low tail (dev set 7: 400 episodes, 18 below half the median) only
    climbs, and that alone refuses a split every other test would accept."""
    rng = np.random.default_rng(0)
    two = fit_mixture(np.r_[rng.normal(1.0, 0.1, 80), rng.normal(0.0, 0.1, 20)], anchor=0.0)
    assert two.accepted
    assert two.dip < 0.1
    tail = fit_mixture(draw('all_good_long_tail', 7).scores, anchor=0.0)
    assert tail.dip > 0.9
    assert tail.separation >= 1.5
    assert tail.bic_gain > 0
    assert 0.05 <= tail.share_lo < 0.5
    assert not tail.accepted


def test_an_episodes_trust_does_not_depend_on_the_unrelated_episodes_beside_it() -> None:
    """The same 16 episodes (8 experts, 8 delayed labels) beside 24 more experts, random labels
    or shuffled ones: an episode's trust moves by more than 0.1 in few seeds."""
    share, p95 = coupling(range(20))
    assert share <= 0.1, (share, p95)
    assert p95 <= 0.1, (share, p95)


@pytest.mark.slow
@pytest.mark.parametrize('case', sorted(TARGETS))
def test_the_issues_targets_on_the_200_dev_sets(case: str) -> None:
    column, bound = TARGETS[case]
    row: Row = case_row(case, range(200))
    got = getattr(row, column)
    assert (got <= bound) if column == 'cut' else (got >= bound), (case, row)
