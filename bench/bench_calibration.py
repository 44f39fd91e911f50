"""The trust calibration on synthetic episode scores: how often it splits, and what it cuts.

Each set is one seeded draw of a *case*: episode scores on the attribution score's scale as
the real scorer produces them (``docs/results/2026-12-06-trust-calibration.md``): chance is 0,
the good episodes sit at a centre ``G`` drawn in [0.8, 1.5] with a spread of 8-15 % of ``G``,
and a set holds 20, 40, 80, 160 or 400 episodes. Wrong labels come in three severities, dealt
at random: random labels far below chance (-3G, spread G), shuffled labels about it (centre in
[-0.3, 0.1] G) and delayed ones a little above (centre in [0, 0.25] G), both with spread 0.12 G.

Cases (``CASES``; the group listed first is the one that should keep trust 1):

- ``half``: 50 % good, 50 % wrong labels;
- ``minority10``: 10 % experts among 90 % wrong labels (the issue's "experts as a minority");
- ``minority5``: 5 % experts (1-20 episodes), reported, not a target;
- ``mild``: 50-70 % good, the rest a mild bad group a quarter to a third of the way from
  chance (centre in [0.25, 0.35] G, spread 0.3-0.5 G: small noise, short delays and recoveries
  after one scoring round, docs/results/2026-12-06-anchor-half-mild.md): should be cut; not
  one of the issue's cases, a guard on the line between it and the second style;
- ``three_levels``: 10 % experts, 70 % poorer operators (centre in [0.15, 0.3] G, spread
  0.12 G), 20 % wrong labels: only the experts should keep trust;
- ``second_style``: a good second style at 0.46 G (0.65 against 1.4), 20-50 % of the set,
  same spread as the main style: nothing should be cut;
- ``all_good``: one normal group;
- ``all_good_tail``: skewed: G + N(0, (sd/2)^2) - a lognormal tail (median 0.08 G, sigma 0.8);
- ``all_good_long_tail``: the same with median 0.1 G and sigma 1.0 (a few good episodes reach
  chance);
- ``all_good_t2``: heavy tails both ways (Student t, 2 degrees of freedom, scale 0.7 sd).

Set ``i`` of a case is drawn from ``numpy.random.default_rng((i, case index))``. Seeds 0-199
are the **dev** sets: every choice of method or default was made on them. Seeds 1000-1199 are
the **test** sets, run once with the frozen defaults for the reported tables.

Columns: *accepted* -- sets where the calibration accepted a split; *cut* -- sets where some
episode gets trust < 0.5 (for the all-good cases and the second style: the false-split rate);
*right* -- sets that keep >= 90 % of the first group (trust >= 0.5) and cut >= 90 % of the
others (- for the cases without others); *trust* -- mean trust per group (good / middle /
wrong). The coupling row scores the same 16 episodes (8 experts at 1.0 +- 0.1, 8 delayed labels
at 0.2 +- 0.1) beside 24 more experts, 24 random labels (-3 +- 1) or 24 shuffled ones
(-0.1 +- 0.1): the share of seeds where some episode's trust moves by more than 0.1 between
the three sets.

``--rule combined`` scores each set as ``ptr score``'s default rule does: the attribution's
P(good) times that of the behaviour-cloning second signal, whose scores are an independent
draw of the same case mapped onto a loss scale (``as_loss``) and calibrated with that signal's
own anchor (none). Only the all-good cases and the second style mean something there (how
often two chances to split add up); the cases with bad groups are drawn for the attribution
only. Usage::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_calibration.py --split dev
    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_calibration.py --rule combined \
        --cases all_good all_good_tail all_good_long_tail all_good_t2 second_style
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ptr_core.weighting.trust.calibrate import fit_calibration  # noqa: E402
from ptr_core.weighting.trust.config import TrustConfig  # noqa: E402
from ptr_core.weighting.trust.crossfit import ANCHORS, FRACTIONS  # noqa: E402

Array = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]  # 0: good (should keep trust), 1: middle, 2: wrong labels

CASES = ('half', 'minority10', 'minority5', 'mild', 'three_levels', 'second_style', 'all_good',
         'all_good_tail', 'all_good_long_tail', 'all_good_t2')
SIZES = (20, 40, 80, 160, 400)
SPLITS = {'dev': range(200), 'test': range(1000, 1200)}
# what the issue asks of each case: (column, bound); 'cut' is an upper bound
TARGETS = {'half': ('right', 0.95), 'minority10': ('right', 0.9),
           'three_levels': ('right', 0.9), 'second_style': ('cut', 0.05),
           'all_good': ('cut', 0.05), 'all_good_tail': ('cut', 0.05),
           'all_good_long_tail': ('cut', 0.05), 'all_good_t2': ('cut', 0.05)}


class ScoreSet(NamedTuple):
    scores: Array
    group: Labels  # what each episode is, by construction


def wrong_labels(rng: np.random.Generator, n: int, g: float) -> Array:
    """Random labels (-3G, spread G), shuffled (about chance), delayed (up to 0.25G above)."""
    kind = rng.integers(0, 3, n)
    centre = np.asarray([-3.0 * g, rng.uniform(-0.3, 0.1) * g, rng.uniform(0.0, 0.25) * g])
    spread = np.asarray([1.0 * g, 0.12 * g, 0.12 * g])
    out: Array = centre[kind] + spread[kind] * rng.standard_normal(n)
    return out


def _groups(*counts: int) -> Labels:
    return np.repeat(np.arange(len(counts)), counts).astype(np.int64)


def draw(case: str, seed: int, *, second: int | None = None) -> ScoreSet:
    """Set ``seed`` of ``case`` (module docstring); ``second=n``: the second signal's scores
    of the same ``n`` episodes, an independent draw of the same shape."""
    key = (seed, CASES.index(case)) if second is None else (seed, CASES.index(case), 1)
    rng = np.random.default_rng(key)
    n = int(rng.choice(SIZES)) if second is None else second
    g = float(rng.uniform(0.8, 1.5))
    sd = float(rng.uniform(0.08, 0.15)) * g

    def good(k: int) -> Array:
        out: Array = g + sd * rng.standard_normal(k)
        return out

    if case in ('half', 'minority10', 'minority5'):
        k = max(1, round(n * {'half': 0.5, 'minority10': 0.1, 'minority5': 0.05}[case]))
        return ScoreSet(np.r_[good(k), wrong_labels(rng, n - k, g)], _groups(k, 0, n - k))
    if case == 'mild':
        k = int(rng.uniform(0.3, 0.5) * n)
        bad = rng.uniform(0.25, 0.35) * g + rng.uniform(0.3, 0.5) * g * rng.standard_normal(k)
        return ScoreSet(np.r_[good(n - k), bad], _groups(n - k, 0, k))
    if case == 'three_levels':
        k, m = round(0.1 * n), round(0.7 * n)
        middle = rng.uniform(0.15, 0.3) * g + 0.12 * g * rng.standard_normal(m)
        return ScoreSet(np.r_[good(k), middle, wrong_labels(rng, n - k - m, g)],
                        _groups(k, m, n - k - m))
    if case == 'second_style':
        k = int(rng.uniform(0.2, 0.5) * n)
        return ScoreSet(np.r_[good(n - k), 0.46 * g + sd * rng.standard_normal(k)],
                        _groups(n))
    if case == 'all_good':
        return ScoreSet(good(n), _groups(n))
    if case in ('all_good_tail', 'all_good_long_tail'):
        median, width = (0.08, 0.8) if case == 'all_good_tail' else (0.1, 1.0)
        tail = rng.lognormal(np.log(median), width, n) * g
        return ScoreSet(g + 0.5 * sd * rng.standard_normal(n) - tail, _groups(n))
    if case == 'all_good_t2':
        return ScoreSet(g + 0.7 * sd * rng.standard_t(2, n), _groups(n))
    msg = f'unknown synthetic case {case!r}; one of {CASES}'
    raise ValueError(msg)


def trust_of(scores: Array, *, signal: str = 'attribution') -> tuple[bool, Array]:
    """(split accepted, P(good)) of the shipped calibration of ``signal`` (``ptr score``'s
    options and the signal's anchor and fraction)."""
    cfg = TrustConfig()
    cal = fit_calibration(scores, separation=cfg.separation, min_share=cfg.min_share,
                          anchor=ANCHORS.get(signal),
                          anchor_fraction=FRACTIONS.get(signal, cfg.anchor_fraction))
    return cal.accepted, cal.posterior_good(scores)


def as_loss(s: ScoreSet) -> Array:
    """A draw mapped onto the behaviour-cloning signal's scale (minus a loss, 0 = perfect): the
    good centre at loss 1, ``loss = exp(3 (1 - x / G))`` -- the experts' losses spread with a
    log-sd of about 0.33, as on the dev expert-only sets (0.32 push, 0.36 pick-place)."""
    g = float(np.median(s.scores[s.group == 0]))
    out: Array = -np.exp(np.clip(3.0 * (1.0 - s.scores / g), -20.0, 20.0))
    return out


def rule_trust(case: str, seed: int, rule: str) -> tuple[ScoreSet, bool, Array]:
    """Set ``seed`` of ``case`` and its (accepted, P(good)) under ``rule``: ``attribution``
    alone, or ``combined``, ``ptr score``'s default: times the P(good) of an independent
    second-signal draw of the same shape calibrated without an anchor (the all-good cases:
    how often two chances to split add up)."""
    s = draw(case, seed)
    acc, p = trust_of(s.scores)
    if rule == 'combined':
        acc_b, p_b = trust_of(as_loss(draw(case, seed, second=len(s.scores))),
                              signal='bc_loss')
        acc, p = acc or acc_b, p * p_b
    return s, acc, p


class Row(NamedTuple):
    accepted: float
    cut: float
    right: float
    trust: tuple[float, float, float]  # mean per group (NaN: none in the case)


def case_row(case: str, seeds: range | list[int], rule: str = 'attribution') -> Row:
    """The table row of ``case`` over the sets ``seeds``."""
    accepted = cut = right = 0.0
    sums, counts = np.zeros(3), np.zeros(3)
    for seed in seeds:
        s, acc, p = rule_trust(case, seed, rule)
        accepted += acc
        cut += bool((p < 0.5).any())
        first, rest = s.group == 0, s.group > 0
        kept = float((p[first] >= 0.5).mean())
        dropped = float((p[rest] < 0.5).mean()) if rest.any() else 1.0
        right += kept >= 0.9 and dropped >= 0.9 if rest.any() else math.nan
        sums += np.bincount(s.group, p, minlength=3)
        counts += np.bincount(s.group, minlength=3)
    k = len(seeds)
    mean = sums / np.where(counts > 0, counts, np.nan)
    return Row(accepted / k, cut / k, right / k, (mean[0], mean[1], mean[2]))


def coupling(seeds: range | list[int]) -> tuple[float, float]:
    """(share of seeds where some episode's trust moves by > 0.1 between the three sets, the
    95th percentile of the largest move) -- module docstring."""
    moves = []
    for seed in seeds:
        rng = np.random.default_rng((seed, 99))
        core = np.r_[1.0 + 0.1 * rng.standard_normal(8), 0.2 + 0.1 * rng.standard_normal(8)]
        others = (1.0 + 0.1 * rng.standard_normal(24), -3.0 + rng.standard_normal(24),
                  -0.1 + 0.1 * rng.standard_normal(24))
        trust = np.stack([trust_of(np.r_[core, o])[1][:16] for o in others])
        moves.append(float((trust.max(axis=0) - trust.min(axis=0)).max()))
    arr = np.asarray(moves)
    return float((arr > 0.1).mean()), float(np.quantile(arr, 0.95))


def _pct(x: float) -> str:
    return '-' if np.isnan(x) else f'{100 * x:.1f} %'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--split', choices=sorted(SPLITS), default='dev')
    parser.add_argument('--sets', type=int, default=200, help='sets per case (from the first)')
    parser.add_argument('--cases', nargs='*', default=list(CASES))
    parser.add_argument('--rule', choices=['attribution', 'combined'], default='attribution',
                        help='combined: times an independent second-signal draw (no anchor); '
                        'meaningful for the all-good cases only')
    args = parser.parse_args()
    seeds = list(SPLITS[args.split])[: args.sets]
    start = time.perf_counter()
    print(f'split {args.split}: seeds {seeds[0]}-{seeds[-1]} ({len(seeds)} sets per case), '
          f'rule {args.rule}\n')
    print('| case | accepted | cut | right | trust good / middle / wrong | target |')
    print('|---|---|---|---|---|---|')
    for case in args.cases:
        row = case_row(case, seeds, args.rule)
        trust = ' / '.join('-' if np.isnan(t) else f'{t:.2f}' for t in row.trust)
        col, bound = TARGETS.get(case, ('', float('nan')))
        if col:
            got = getattr(row, col)
            ok = got <= bound if col == 'cut' else got >= bound
            target = f'{col} {"<=" if col == "cut" else ">="} {bound:.2f}: ' \
                f'{"met" if ok else "NOT met"}'
        else:
            target = 'not a target'
        print(f'| {case} | {_pct(row.accepted)} | {_pct(row.cut)} | {_pct(row.right)} | '
              f'{trust} | {target} |', flush=True)
    share, p95 = coupling(seeds)
    print(f'\ncoupling: seeds with an episode moving > 0.1: {_pct(share)}; '
          f'95th percentile of the largest move {p95:.3f}')
    print(f'\n{time.perf_counter() - start:.0f} s')


if __name__ == '__main__':
    main()
