"""Scores to trust: a two-component mixture posterior, and the AUROCs that check it.

``fit_mixture(scores)`` fits two Gaussians, each with its own variance, by EM: good
demonstrations form a tight group, bad ones a broad one (each degradation its own severity), so
a shared variance would let the good component swallow the milder bad episodes. The posterior of
the upper component is made monotone in the score (clamped at the vertex of its quadratic
log-odds). The mixture is *accepted* only when the data show a distinct bad group: the
components are separated (Ashman's ``D = |mu_hi - mu_lo| / sqrt((s_lo² + s_hi²) / 2) >=
separation``, each spread ``s`` measured on the side of its component that faces the other: see
``Mixture.separation``), the two-component fit beats one Gaussian by BIC,
the smaller component holds at least ``min_share`` of the episodes and, for a score with a
natural chance level (``anchor``: 0 for the attribution score ``T``), the low component sits
within ``anchor_fraction`` of the way from chance to the high one (``ptr score``'s default:
half — closer to chance than to the good group). Otherwise every episode keeps trust 1: a
skewed but unimodal spread of good demonstrations (expert-only data) is not reweighted.

``fit_calibration`` applies the split recursively: once a mixture is accepted, the episodes its
upper component claims are fitted again, and so on while a split is accepted (at most
``max_splits``). Bad demonstrations come in severities — random labels far below chance,
shuffled or delayed labels near it — and one two-component fit separates only the most extreme
group, leaving the milder one inside the "good" component (measured: AUROC 0.98-0.99 for
shuffled and delayed labels, yet trust 1.0). The anchor test keeps a split of the good
demonstrations themselves from being accepted: their scores sit well above chance.
``P(good)`` is the product of the accepted splits' posteriors.

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
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ['Calibration', 'Mixture', 'auroc', 'auroc_length_controlled', 'episode_noise_p',
           'fit_calibration', 'fit_mixture']

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Mixture:
    mu_lo: float
    mu_hi: float
    sigma_lo: float
    sigma_hi: float
    share_lo: float  # weight of the low ("bad") component
    accepted: bool
    bic_gain: float = 0.0  # BIC(one Gaussian) - BIC(mixture); > 0 favours the mixture
    # Each component's spread on its side that faces the other (None: its sigma).
    inner_lo: float | None = None
    inner_hi: float | None = None

    @property
    def separation(self) -> float:
        """Ashman's D, the mean gap over the root mean variance (> 2: clearly bimodal), with
        each component's spread taken on the side facing the other component.

        The bad component is a mixture of severities: random labels far below chance, shuffled
        or delayed ones near it. Its full sigma is set by the far group, and the better the
        scorer pushes that group down, the wider the component and the smaller the plain D —
        measured: D 1.58-1.87 for clearly separate groups on push and pick-place, against a
        threshold of 1.5. How far the bad component reaches toward the good one is what
        decides whether the two overlap, so that is the spread D uses here."""
        s_lo = self.sigma_lo if self.inner_lo is None else self.inner_lo
        s_hi = self.sigma_hi if self.inner_hi is None else self.inner_hi
        pooled = math.sqrt(0.5 * (s_lo**2 + s_hi**2))
        return (self.mu_hi - self.mu_lo) / max(pooled, 1e-12)

    def _log_odds(self, x: Array) -> Array:
        a = math.log(1 - self.share_lo) - math.log(self.sigma_hi) \
            - 0.5 * ((x - self.mu_hi) / self.sigma_hi) ** 2
        b = math.log(self.share_lo) - math.log(self.sigma_lo) \
            - 0.5 * ((x - self.mu_lo) / self.sigma_lo) ** 2
        out: Array = a - b
        return out

    def posterior_good(self, x: npt.ArrayLike) -> Array:
        """P(upper component | x), made monotone in x; 1 everywhere when not accepted.

        With unequal variances the log-odds are quadratic in x: past its vertex the broader
        component would win again (a very high score called bad, or a very low one good), so x
        is clamped at the vertex on that side."""
        arr = np.asarray(x, np.float64)
        if not self.accepted:
            return np.ones_like(arr)
        inv_lo, inv_hi = 1.0 / self.sigma_lo**2, 1.0 / self.sigma_hi**2
        if abs(inv_lo - inv_hi) > 1e-12:
            vertex = (self.mu_lo * inv_lo - self.mu_hi * inv_hi) / (inv_lo - inv_hi)
            arr = np.minimum(arr, vertex) if self.sigma_lo > self.sigma_hi else \
                np.maximum(arr, vertex)
        z = np.clip(self._log_odds(arr), -50, 50)
        out: Array = 1.0 / (1.0 + np.exp(-z))
        return out

    def to_json(self) -> dict[str, float | bool]:
        return {'mu_lo': self.mu_lo, 'mu_hi': self.mu_hi, 'sigma_lo': self.sigma_lo,
                'sigma_hi': self.sigma_hi, 'share_lo': self.share_lo,
                'inner_lo': self.sigma_lo if self.inner_lo is None else self.inner_lo,
                'inner_hi': self.sigma_hi if self.inner_hi is None else self.inner_hi,
                'separation': self.separation, 'bic_gain': self.bic_gain,
                'accepted': self.accepted}


def _normal_logpdf(x: Array, mu: float, var: float) -> Array:
    out: Array = -0.5 * ((x - mu) ** 2 / var + math.log(2 * math.pi * var))
    return out


def _p_hi(x: Array, lo: float, var_lo: float, hi: float, var_hi: float, share: float) -> Array:
    """EM's responsibilities: P(upper component | x), ``share`` the lower one's weight."""
    a = math.log(share) + _normal_logpdf(x, lo, var_lo)
    b = math.log(1 - share) + _normal_logpdf(x, hi, var_hi)
    out: Array = 1.0 / (1.0 + np.exp(np.clip(a - b, -50, 50)))
    return out


def _side_sigma(x: Array, resp: Array, mu: float, side: npt.NDArray[np.bool_],
                var: float) -> float:
    """The root mean square distance from ``mu`` of the points on one ``side`` of it, weighted
    by the component's responsibilities (its full sigma when that side holds no weight)."""
    w = resp * side
    total = float(w.sum())
    if total < 1.0:
        return math.sqrt(var)
    return math.sqrt(float((w * (x - mu) ** 2).sum()) / total)


def fit_mixture(
    scores: npt.ArrayLike, *, separation: float = 1.5, min_share: float = 0.05,
    anchor: float | None = None, anchor_fraction: float = 0.5, iters: int = 300,
) -> Mixture:
    """EM for two Gaussians on 1-D ``scores`` (see the module docstring)."""
    x = np.asarray(scores, np.float64)
    x = x[np.isfinite(x)]
    if len(x) < 4 or float(np.std(x)) < 1e-12:
        mu = float(np.mean(x)) if len(x) else 0.0
        return Mixture(mu, mu, 1.0, 1.0, 0.5, False)
    total = float(np.var(x))
    floor = 1e-4 * total + 1e-12
    lo, hi = (float(v) for v in np.quantile(x, [0.2, 0.8]))
    var_lo = var_hi = total / 4 + floor
    share = 0.5
    for _ in range(iters):
        r = _p_hi(x, lo, var_lo, hi, var_hi, share)
        n_hi = float(r.sum())
        n_lo = len(x) - n_hi
        if n_hi < 1.0 or n_lo < 1.0:
            break
        new_lo = float(((1 - r) * x).sum() / n_lo)
        new_hi = float((r * x).sum() / n_hi)
        var_lo = max(float(((1 - r) * (x - new_lo) ** 2).sum() / n_lo), floor)
        var_hi = max(float((r * (x - new_hi) ** 2).sum() / n_hi), floor)
        share = min(max(n_lo / len(x), 1e-4), 1 - 1e-4)
        done = abs(new_lo - lo) + abs(new_hi - hi) < 1e-10
        lo, hi = new_lo, new_hi
        if done:
            break
    if lo > hi:
        lo, hi, var_lo, var_hi, share = hi, lo, var_hi, var_lo, 1 - share
    n = len(x)
    ll_one = float(np.sum(_normal_logpdf(x, float(np.mean(x)), total)))
    ll_two = float(np.sum(np.logaddexp(math.log(share) + _normal_logpdf(x, lo, var_lo),
                                       math.log(1 - share) + _normal_logpdf(x, hi, var_hi))))
    bic_gain = 2.0 * (ll_two - ll_one) - 3.0 * math.log(n)  # three extra parameters
    r = _p_hi(x, lo, var_lo, hi, var_hi, share)  # at the final parameters
    mix = Mixture(lo, hi, math.sqrt(var_lo), math.sqrt(var_hi), share, False, bic_gain,
                  inner_lo=_side_sigma(x, 1 - r, lo, x > lo, var_lo),
                  inner_hi=_side_sigma(x, r, hi, x < hi, var_hi))
    accepted = (mix.separation >= separation and bic_gain > 0
                and min(share, 1 - share) >= min_share
                and (anchor is None or lo - anchor < anchor_fraction * (hi - anchor)))
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
    anchor: float | None = None, anchor_fraction: float = 0.5, max_splits: int = 3,
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
