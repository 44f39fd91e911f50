"""Scores to trust: a Gaussian-mixture posterior, and the AUROCs that check it.

``fit_mixture(scores)`` fits mixtures of 1 to ``MAX_COMPONENTS`` Gaussians, each with its own
variance, by EM from several starts each (evenly spread quantiles, a centre in one tail or both,
seeded random draws; the best likelihood wins), and keeps the number of components BIC prefers
(its penalty scaled by ``BIC_PENALTY``: full BIC merged 4 experts into 28 poorer operators).
Bad demonstrations come in severities — random labels far below chance, shuffled labels about
it, delayed ones a little above — and good ones in styles, so two Gaussians were too few: a
10 % minority of experts among wrong labels of three severities was split right in 66 % of
synthetic sets, three quality levels in 1 %, and a good second style scoring 0.65 against 1.4
was cut in 82 % (docs/results/2026-12-06-trust-calibration.md). The components are then dealt
into a good and a bad side by what the score means, not by size: the *reference* is the highest
component holding ``min_share`` and two episodes (``MIN_REFERENCE``: 10 % experts of 20 are
two); with a chance level (``anchor``: 0 for the attribution score ``T``) a component is bad when
its centre is closer to chance than ``anchor_fraction`` (``ANCHOR_FRACTION``) of the way to the
reference's by at least ``CENTRE_SE`` standard errors of that centre (a good second style of
4-10 episodes at 0.46 of the way was cut when its centre's noise crossed the line), without one
when it lies ``separation`` (Ashman's D) below it; every component below a bad one is bad too.
No share of good episodes is assumed anywhere.
``P(good)`` is the posterior of the good components, clamped to [the lowest bad centre, the
highest good one] and made monotone (a running maximum) in the score.

The split is *accepted* only when the data show a distinct bad group: the two sides are
separated (Ashman's ``D = |mu_hi - mu_lo| / sqrt((s_lo² + s_hi²) / 2) >= separation``, each
spread ``s`` measured on the side of its group that faces the other: see
``Mixture.separation``), BIC prefers the mixture to one Gaussian, the smaller side holds at
least ``min_share`` of the episodes and the bad side more than two (``MIN_BAD``), and the fitted
density dips between the sides (``Mixture.dip <= MAX_DIP``). Otherwise every episode keeps
trust 1: a skewed but unimodal spread of good demonstrations (expert-only data, a long low tail
of good episodes that reaches chance) is not reweighted. Two or three stragglers at chance
below a good group cannot be told from two or three bad episodes by their scores; they are
left whole. The dev and test rates of every case: bench/bench_calibration.py,
docs/results/2026-12-07-calibration.md.

``fit_calibration`` fits the episodes that the good side claims again, and so on while a split
is accepted (at most ``max_splits``); ``P(good)`` is the product of the accepted splits'
posteriors. With one component per severity a single fit usually takes every bad group.

**No signal, no split.** Every test above reads only the episode scores, and with a dozen
episodes, or a scorer that learned nothing (every score within a hundredth of a nat of
chance), two groups are "found" in noise. So a split is also refused when the episodes' scores
differ no more than their own noise (``episode_noise_p``): each episode's window scores are
averaged over consecutive blocks of ``block`` windows (the chunk length: overlapping chunks
make neighbouring windows move together), and a permutation test asks whether the block
means' one-way F (between episodes over within) beats the same F with the blocks dealt to the
episodes at random. ``fit_calibration`` refuses (``Calibration.refused``) when the p-value
exceeds ``alpha``: every episode keeps trust 1, and ``ptr score`` says so. Neighbouring blocks
still correlate a little, so the test leans towards finding signal: it refuses only where the
evidence is plainly absent. Simulated (2026-12-07; windows at chance, sigma 0.005 averaged over
8, 39 per episode, 300 sets): splits of 12 / 40 / 80 episodes 22 / 2.7 / 1.7 % -> 1.7 / 0.7 /
0.3 % (an accepted split of 12 dropped 6.6 on average); half the episodes one nat better (100
sets): 41 / 40 / 65 % -> 38 / 40 / 65 %, three nats: 100 % either way (p = 0.001, the floor of
999 permutations). ``ptr score`` on 12 expert-only episodes with a 40-step base: 5 episodes at
trust ~0 before, p 0.80 and all at trust 1 now; the mixed 12 (6 experts): p 0.001, unchanged.

``trust = w_min + (1 - w_min) · P(good)``; with several signals ``P(good)`` is the product of
their posteriors (an episode must look good on every count).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = ['ANCHOR_FRACTION', 'CALIBRATION_VERSION', 'Calibration', 'Component', 'Mixture',
           'auroc', 'auroc_length_controlled', 'episode_noise_p', 'fit_calibration',
           'fit_mixture']

Array = npt.NDArray[np.float64]

# Raised whenever a rule or constant here changes what a set of scores calibrates to: the trust
# file's scorer record and the benchmark's trust-cell keys carry it, so a resumed benchmark never
# reuses trust calibrated by older rules (2: 2026-12-07, the reference by meaning, the dip, ...;
# 3: the second signal's consensus learnt from the episodes the attribution keeps, and its guard)
CALIBRATION_VERSION = 3
MAX_COMPONENTS = 4  # bad groups come in severities: random, shuffled, delayed labels
ANCHOR_FRACTION = 0.4
_RANDOM_STARTS = 3
# fit on at most this many scores (a seeded sample): the frame-level mixture took 18.6 s on
# 100k frames (linear in them: 1000 episodes x 500 steps would take ~90 s, with 112 MB in each
# [starts, components, frames] array of the EM); on a sample of 4000, 0.7 s at 500k
FIT_SAMPLE = 4000
# The choices below were made on the dev score sets of bench/bench_calibration.py (seeds 0-199)
# and frozen before its test sets ran (docs/results/2026-12-07-calibration.md).
BIC_PENALTY = 0.75  # BIC's log(n) per parameter, scaled: at 20-40 episodes full BIC merged
#                     4 experts into 28 poorer operators (three quality levels: 87 -> 92 % right)
MIN_REFERENCE = 1.5  # episodes' weight of the reference component: two experts' summed
#                      responsibilities fall a hair under 2 (10 % experts: 82 -> 93.5 % right)
CENTRE_SE = 1.0  # a component is bad only when its centre is this many standard errors below
#                  the anchor line (a good second style at 0.46 of the way, 4-10 episodes)
MIN_BAD = 2.5  # episodes' weight the bad side must hold: two episodes make no group
MAX_DIP = 0.9  # the mixture density must dip between the sides (a long low tail does not)


class Component(NamedTuple):
    """One Gaussian of the fitted mixture: its weight, centre and spread, and its side."""

    weight: float
    mu: float
    sigma: float
    good: bool


@dataclass(frozen=True)
class Mixture:
    """The fitted mixture seen as two groups: the bad components (``lo``) and the good ones
    (``hi``), each group's centre, spread and share from the components' responsibilities."""

    mu_lo: float
    mu_hi: float
    sigma_lo: float
    sigma_hi: float
    share_lo: float  # weight of the bad ("low") group
    accepted: bool
    bic_gain: float = 0.0  # BIC(one Gaussian) - BIC(the chosen mixture); > 0 favours the mixture
    # Each group's spread on its side that faces the other (None: its sigma).
    inner_lo: float | None = None
    inner_hi: float | None = None
    components: tuple[Component, ...] = ()  # sorted by centre

    @property
    def separation(self) -> float:
        """Ashman's D, the mean gap over the root mean variance (> 2: clearly bimodal), with
        each group's spread taken on the side facing the other group.

        The bad group is a mixture of severities: random labels far below chance, shuffled
        or delayed ones near it. Its full sigma is set by the far group, and the better the
        scorer pushes that group down, the wider the group and the smaller the plain D —
        measured: D 1.58-1.87 for clearly separate groups on push and pick-place, against a
        threshold of 1.5. How far the bad group reaches toward the good one is what
        decides whether the two overlap, so that is the spread D uses here."""
        s_lo = self.sigma_lo if self.inner_lo is None else self.inner_lo
        s_hi = self.sigma_hi if self.inner_hi is None else self.inner_hi
        pooled = math.sqrt(0.5 * (s_lo**2 + s_hi**2))
        return (self.mu_hi - self.mu_lo) / max(pooled, 1e-12)

    @property
    def dip(self) -> float:
        """The fitted density's lowest point between the highest bad centre and the lowest good
        one, over the lower of its values at those two centres: 1 when the density only climbs
        from the bad side to the good one (a shoulder: a long low tail of good episodes), near 0
        when a gap parts them (1.0 without two sides)."""
        bad = [c for c in self.components if not c.good]
        good = [c for c in self.components if c.good]
        if not bad or not good:
            return 1.0
        w, mu, sd = (np.asarray([getattr(c, f) for c in self.components])
                     for f in ('weight', 'mu', 'sigma'))
        grid = np.linspace(max(c.mu for c in bad), min(c.mu for c in good), 257)
        f = (w / sd * np.exp(-0.5 * ((grid[:, None] - mu) / sd) ** 2)).sum(axis=1)
        return float(f.min() / max(min(f[0], f[-1]), 1e-300))

    def _raw_good(self, x: Array) -> Array:
        """P(a good component | x) under the fitted mixture."""
        comps = self.components
        w = np.asarray([c.weight for c in comps])
        mu = np.asarray([c.mu for c in comps])
        sd = np.asarray([c.sigma for c in comps])
        logp = np.log(w) - np.log(sd) - 0.5 * ((x[:, None] - mu) / sd) ** 2
        p = np.exp(logp - logp.max(axis=1, keepdims=True))
        good = np.asarray([c.good for c in comps])
        out: Array = p[:, good].sum(axis=1) / p.sum(axis=1)
        return out

    def posterior_good(self, x: npt.ArrayLike) -> Array:
        """P(a good component | x), made monotone in x; 1 everywhere when not accepted.

        Components of unequal spread cross more than once (past the good group a broad bad
        component would win again), so x is clamped to [the lowest bad centre, the highest
        good one] and the posterior is the running maximum from below on that interval."""
        arr = np.asarray(x, np.float64)
        if not self.accepted or not self.components:
            return np.ones_like(arr)
        lo = min(c.mu for c in self.components if not c.good)
        hi = max(c.mu for c in self.components if c.good)
        grid = np.linspace(lo, hi, 1025)
        p = np.maximum.accumulate(self._raw_good(grid))
        out: Array = np.interp(np.clip(arr, lo, hi), grid, p)
        return out

    def to_json(self) -> dict[str, Any]:
        return {'mu_lo': self.mu_lo, 'mu_hi': self.mu_hi, 'sigma_lo': self.sigma_lo,
                'sigma_hi': self.sigma_hi, 'share_lo': self.share_lo,
                'inner_lo': self.sigma_lo if self.inner_lo is None else self.inner_lo,
                'inner_hi': self.sigma_hi if self.inner_hi is None else self.inner_hi,
                'separation': self.separation, 'bic_gain': self.bic_gain, 'dip': self.dip,
                'accepted': self.accepted,
                'components': [c._asdict() for c in self.components]}


def _normal_logpdf(x: Array, mu: float, var: float) -> Array:
    out: Array = -0.5 * ((x - mu) ** 2 / var + math.log(2 * math.pi * var))
    return out


def _side_sigma(x: Array, resp: Array, mu: float, side: npt.NDArray[np.bool_],
                var: float) -> float:
    """The root mean square distance from ``mu`` of the points on one ``side`` of it, weighted
    by the group's responsibilities (its full sigma when that side holds no weight)."""
    w = resp * side
    total = float(w.sum())
    if total < 1.0:
        return math.sqrt(var)
    return math.sqrt(float((w * (x - mu) ** 2).sum()) / total)


def _starts(x: Array, k: int) -> Array:
    """Initial centres of ``k`` components, one row per EM start: evenly spread quantiles,
    rows that put a centre in one tail or in both (a small group of experts above, random
    labels far below), and seeded random quantile draws."""
    rows = [np.arange(1, k + 1) / (k + 1)]
    inner = np.linspace(0.3, 0.7, max(k - 2, 1))[: k - 2]
    for lo, hi in ((0.02, 0.98), (0.05, 0.95), (0.1, 0.9)):
        rows.append(np.r_[lo, inner, hi] if k > 2 else np.r_[lo, 0.6])
        rows.append(np.r_[lo, inner, hi] if k > 2 else np.r_[0.4, hi])
    rng = np.random.default_rng(k)
    rows += [np.sort(rng.uniform(0.01, 0.99, k)) for _ in range(_RANDOM_STARTS)]
    out: Array = np.quantile(x, np.unique(np.stack(rows), axis=0))
    return out


def _responsibilities(x: Array, w: Array, mu: Array, var: Array) -> tuple[Array, Array]:
    """EM's E step for every start at once (``w``, ``mu``, ``var``: [S, k]): the
    responsibilities [S, k, n] and each start's log likelihood [S]."""
    logp = (np.log(w) - 0.5 * np.log(2 * math.pi * var))[:, :, None] \
        - 0.5 * (x[None, None, :] - mu[:, :, None]) ** 2 / var[:, :, None]
    top = logp.max(axis=1, keepdims=True)
    p = np.exp(logp - top)
    total = p.sum(axis=1, keepdims=True)
    ll: Array = (np.log(total) + top).sum(axis=(1, 2))
    out: Array = p / total
    return out, ll


def _em(x: Array, k: int, iters: int) -> tuple[float, Array, Array, Array]:
    """The best of several EM starts for ``k`` Gaussians with their own variances: (log
    likelihood, weights, centres, variances), centres ascending. A start whose fit leaves a
    component less than one episode's weight counts only when every start does."""
    n, total = len(x), float(np.var(x))
    floor = 1e-3 * total + 1e-12
    if k == 1:
        return float(np.sum(_normal_logpdf(x, float(np.mean(x)), total))), np.ones(1), \
            np.asarray([float(np.mean(x))]), np.asarray([total])
    mu = _starts(x, k)
    var = np.full_like(mu, total / k)
    w = np.full_like(mu, 1.0 / k)
    last = np.full(len(mu), -np.inf)
    for _ in range(iters):
        r, ll = _responsibilities(x, w, mu, var)
        if float(np.max(ll - last)) < 1e-5 * n:  # every start has converged
            break
        last = ll
        nk = r.sum(axis=2) + 1e-12
        new_mu = (r * x).sum(axis=2) / nk
        var = np.maximum((r * (x - new_mu[:, :, None]) ** 2).sum(axis=2) / nk, floor)
        w = np.clip(nk / n, 1e-6, 1.0)
        w = w / w.sum(axis=1, keepdims=True)
        mu = new_mu
    _, ll = _responsibilities(x, w, mu, var)
    valid = (w * n >= 1.0).all(axis=1)
    best = int(np.argmax(np.where(valid, ll, -np.inf) if valid.any() else ll))
    order = np.argsort(mu[best])
    return float(ll[best]), w[best][order], mu[best][order], var[best][order]


def _good_side(mu: Array, w: Array, var: Array, n: int, *, min_share: float,
               separation: float, anchor: float | None, anchor_fraction: float,
               ) -> npt.NDArray[np.bool_]:
    """Which components (centres ascending) are good. The reference is the highest component
    holding at least ``min_share`` and ``MIN_REFERENCE`` episodes; with an ``anchor`` (chance),
    a component is bad when its centre is closer to chance than ``anchor_fraction`` of the way
    to the reference's by ``CENTRE_SE`` standard errors, without one when it lies
    ``separation`` (Ashman's D) below the reference. Everything up to the highest bad component
    is bad."""
    big = np.flatnonzero((w >= min_share) & (w * n >= MIN_REFERENCE))
    ref = int(big[-1]) if len(big) else int(np.argmax(w))
    if anchor is not None:
        se = np.sqrt(var / np.maximum(w * n, 1.0))  # of each centre
        bad = mu + CENTRE_SE * se < anchor + anchor_fraction * (mu[ref] - anchor)
    else:
        d = (mu[ref] - mu) / np.sqrt(0.5 * (var + var[ref]))
        bad = d >= separation
    bad[ref:] = False
    good = np.ones(len(mu), bool)
    if bad.any():
        good[: int(np.flatnonzero(bad)[-1]) + 1] = False
    return good


def fit_mixture(
    scores: npt.ArrayLike, *, separation: float = 1.5, min_share: float = 0.05,
    anchor: float | None = None, anchor_fraction: float = ANCHOR_FRACTION, iters: int = 100,
) -> Mixture:
    """Gaussian mixtures of 1 to 4 components on 1-D ``scores`` (several EM starts each, the
    number chosen by BIC), the components split into a bad and a good group (module
    docstring)."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 4 or float(np.std(x)) < 1e-12:
        centre = float(np.mean(x)) if len(x) else 0.0
        return Mixture(centre, centre, 1.0, 1.0, 0.5, False)
    if len(x) > FIT_SAMPLE:  # frame scores: a seeded sample fits as well, in bounded time
        x = np.random.default_rng(len(x)).choice(x, FIT_SAMPLE, replace=False)
    n = len(x)
    fits = [_em(x, k, iters) for k in range(1, min(MAX_COMPONENTS, n // 4) + 1)]
    bic = [-2.0 * ll + BIC_PENALTY * (3 * len(w) - 1) * math.log(n) for ll, w, _, _ in fits]
    best = int(np.argmin(bic))
    _, w, mu, var = fits[best]
    good = _good_side(mu, w, var, n, min_share=min_share, separation=separation,
                      anchor=anchor, anchor_fraction=anchor_fraction)
    comps = tuple(Component(float(a), float(b), math.sqrt(float(c)), bool(g))
                  for a, b, c, g in zip(w, mu, var, good))
    if good.all() or best == 0:
        m = float(np.mean(x))
        return Mixture(m, m, math.sqrt(float(np.var(x))), math.sqrt(float(np.var(x))), 0.0,
                       False, bic[0] - bic[best], components=comps)
    logp = np.log(w) - 0.5 * np.log(var) - 0.5 * (x[:, None] - mu) ** 2 / var
    resp = np.exp(logp - np.logaddexp.reduce(logp, axis=1, keepdims=True))
    r_hi, r_lo = resp[:, good].sum(axis=1), resp[:, ~good].sum(axis=1)
    lo, hi = (float((r * x).sum() / r.sum()) for r in (r_lo, r_hi))
    var_lo, var_hi = (float((r * (x - m) ** 2).sum() / r.sum()) for r, m in
                      ((r_lo, lo), (r_hi, hi)))
    share = float(r_lo.mean())
    mix = Mixture(lo, hi, math.sqrt(var_lo), math.sqrt(var_hi), share, False,
                  bic[0] - bic[best], inner_lo=_side_sigma(x, r_lo, lo, x > lo, var_lo),
                  inner_hi=_side_sigma(x, r_hi, hi, x < hi, var_hi), components=comps)
    accepted = (mix.separation >= separation and mix.bic_gain > 0
                and min(share, 1 - share) >= min_share
                and share * n >= MIN_BAD and mix.dip <= MAX_DIP)
    return dataclasses.replace(mix, accepted=bool(accepted))


@dataclass(frozen=True)
class Calibration:
    """The accepted splits of ``fit_calibration``, outermost first (none: every score is
    good); ``first`` is the first fit, accepted or not (diagnostics); ``signal_p`` the
    no-signal test's p-value (NaN: not tested) and ``refused`` whether it vetoed a split the
    mixture accepted."""

    first: Mixture
    splits: tuple[Mixture, ...] = ()
    signal_p: float = math.nan
    refused: bool = False

    @property
    def accepted(self) -> bool:
        return bool(self.splits)

    @property
    def mu_hi(self) -> float:
        """The centre of the good group (the innermost split's upper component)."""
        return (self.splits[-1] if self.splits else self.first).mu_hi

    def posterior_good(self, x: npt.ArrayLike) -> Array:
        arr = np.asarray(x, np.float64)
        p: Array = np.ones_like(arr)
        for mix in self.splits:
            p = p * mix.posterior_good(arr)
        return p

    def to_json(self) -> dict[str, Any]:
        p = self.signal_p if math.isfinite(self.signal_p) else None
        return {**self.first.to_json(), 'splits': [m.to_json() for m in self.splits],
                'signal_p': p, 'refused': self.refused}


def fit_calibration(
    scores: npt.ArrayLike, *, separation: float = 1.5, min_share: float = 0.05,
    anchor: float | None = None, anchor_fraction: float = ANCHOR_FRACTION, max_splits: int = 3,
    signal_p: float = math.nan, alpha: float = 0.01,
) -> Calibration:
    """``fit_mixture`` applied recursively to the upper component's scores, unless
    ``signal_p`` (``episode_noise_p`` of the windows behind ``scores``) exceeds ``alpha``: then
    no split at all (module docstring)."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    first = fit_mixture(x, separation=separation, min_share=min_share, anchor=anchor,
                        anchor_fraction=anchor_fraction)
    if first.accepted and signal_p > alpha:
        return Calibration(first, (), signal_p, refused=True)
    splits: list[Mixture] = []
    mix = first
    while mix.accepted:
        splits.append(mix)
        upper = x[mix.posterior_good(x) > 0.5]
        if len(splits) >= max_splits or len(upper) < 4 or len(upper) == len(x):
            break
        x = upper
        mix = fit_mixture(x, separation=separation, min_share=min_share, anchor=anchor,
                          anchor_fraction=anchor_fraction)
    return Calibration(first, tuple(splits), signal_p)


def episode_noise_p(
    values: npt.ArrayLike, episode: npt.ArrayLike, order: npt.ArrayLike, *, block: int,
    permutations: int = 999, seed: int = 0,
) -> float:
    """P-value of "the episodes' scores differ no more than their own noise" (module
    docstring): ``values`` per window, ``episode`` its episode, ``order`` its position in it
    (the frame). Blocks are ``block`` consecutive windows of one episode (an episode shorter
    than two blocks is one); the statistic is the block means' one-way F, compared with its
    value under ``permutations`` random deals of the blocks to episodes. NaN when it cannot be
    tested (fewer than two episodes, or no episode with two blocks)."""
    v = np.asarray(values, np.float64)
    ep = np.asarray(episode, np.int64)
    keep = np.isfinite(v)
    v, ep, pos = v[keep], ep[keep], np.asarray(order, np.float64)[keep]
    sort = np.lexsort((pos, ep))
    v, ep = v[sort], ep[sort]
    _, ep, n = np.unique(ep, return_inverse=True, return_counts=True)
    rank = np.arange(len(v)) - np.concatenate([[0], np.cumsum(n)[:-1]])[ep]
    blocks = np.maximum(1, n // max(1, block))
    first = np.concatenate([[0], np.cumsum(blocks)[:-1]])
    block_of = first[ep] + rank * blocks[ep] // n[ep]  # like np.array_split per episode
    means = np.bincount(block_of, v) / np.bincount(block_of)
    group = np.repeat(np.arange(len(n)), blocks)
    if len(n) < 2 or len(means) <= len(n):
        return math.nan
    stat = _block_f(means, group, len(n))
    if not math.isfinite(stat):
        return 1.0 if math.isnan(stat) else 1.0 / (permutations + 1)
    rng = np.random.default_rng((seed, 4242))
    hits = sum(_block_f(means, rng.permutation(group), len(n)) >= stat
               for _ in range(permutations))
    return (1 + hits) / (permutations + 1)


def _block_f(means: Array, group: npt.NDArray[np.int64], groups: int) -> float:
    """One-way F of ``means`` grouped by ``group``: between-group over within-group mean
    squares (inf when the groups are constant but differ, NaN when everything is equal)."""
    count = np.bincount(group, minlength=groups)
    centre = np.bincount(group, means, minlength=groups) / np.maximum(count, 1)
    between = float((count * (centre - means.mean()) ** 2).sum()) / (groups - 1)
    within = float(((means - centre[group]) ** 2).sum()) / (len(means) - groups)
    if within <= 0.0:
        return math.inf if between > 0.0 else math.nan
    return between / within


def auroc(good: Sequence[float] | Array, bad: Sequence[float] | Array) -> float:
    """P(score of a good episode > score of a bad one), ties counted half."""
    g = np.asarray(good, np.float64)
    b = np.asarray(bad, np.float64)
    if not len(g) or not len(b):
        return float('nan')
    diff = g[:, None] - b[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def auroc_length_controlled(
    scores: npt.ArrayLike, lengths: npt.ArrayLike, good: npt.ArrayLike, bad: npt.ArrayLike,
) -> float:
    """AUROC of the score's residual after a least-squares fit on log(length) over the
    episodes compared: a score that only prefers short episodes drops to 0.5."""
    s = np.asarray(scores, np.float64)
    ln = np.log(np.asarray(lengths, np.float64))
    sel = np.asarray(good, bool) | np.asarray(bad, bool)
    if sel.sum() < 3 or np.std(ln[sel]) < 1e-12:
        return auroc(s[np.asarray(good, bool)], s[np.asarray(bad, bool)])
    a = np.stack([ln[sel], np.ones(int(sel.sum()))], axis=1)
    coef, *_ = np.linalg.lstsq(a, s[sel], rcond=None)
    res = s - (coef[0] * ln + coef[1])
    return auroc(res[np.asarray(good, bool)], res[np.asarray(bad, bool)])
