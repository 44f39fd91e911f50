"""``TrustConfig``: every option of the trust scorer (resolved into the trust file)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ptr_core.configuration import check
from ptr_core.weighting.trust.calibrate import ANCHOR_FRACTION

__all__ = ['SECOND_SIGNALS', 'SIGNALS', 'TrustConfig']

SECOND_SIGNALS = ('none', 'bc_loss', 'progress')
SIGNALS = ('attribution', 'inverse_dynamics', 'length', 'smoothness', 'bc_loss', 'progress')


def _check(cond: bool, key: str, value: Any, want: str) -> None:
    """``ptr_core.configuration``'s check, the key under ``trust.``."""
    check(cond, f'trust.{key}', value, want)


@dataclass(frozen=True)
class TrustConfig:
    """Options of ``ptr score`` (``--set key=value`` on the CLI)."""

    folds: int = 3  # K scorer copies; episode i is scored by the copy of fold(i)
    in_sample: bool = False  # ablation: one scorer trained and scored on every episode
    steps: int = 200  # updates per scorer copy and probe, to 51,200 windows (training_steps)
    # scoring rounds: round r > 1 refits every copy with its training windows drawn by the
    # previous round's out-of-fold trust (the consequence model is learned from the episodes
    # that look good, so mislabeled ones stop shaping it); 1 = a single fit
    rounds: int = 3
    refine_steps: int = 0  # updates of each copy in rounds > 1 (0: ``steps``)
    # rounds > 1 draw no episode closer to chance than ``anchor_fraction`` of the way to the
    # good group (the calibration's line), and, below 1, only this top share by score. 0.5
    # (the default until 2026-12-07) assumed at least half of the episodes good: with 10 %
    # experts the refits learnt from 40 % bad ones; the line assumes no share
    refine_keep: float = 1.0
    batch_size: int = 256
    hidden: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # candidates per window: the recorded chunk + these negatives (all in action space)
    shifted: int = 4  # the same episode's chunk shifted by +-k steps, k from ``shifts``
    shifts: tuple[int, ...] = (2, 3, 4, 6, 8, 12)
    neighbours: int = 4  # actions of the nearest-state windows of other episodes
    knn: int = 16  # neighbours kept per window
    perturbed: int = 2  # the recorded chunk + N(0, sigma^2), sigma from ``perturb_sigma``
    perturb_sigma: tuple[float, ...] = (0.2, 0.5)
    random: int = 5  # other windows' chunks
    score_draws: int = 4  # candidate draws averaged when scoring
    consequence: str = 'steps'  # steps: per-step state change + encoder delta; delta: only the
    #                             change of the encoder's target feature over the chunk
    # what label consistency cannot see (operators whose labels are right but who act poorly),
    # multiplied into the attribution's P(good): bc_loss (default): the out-of-fold loss of a
    # behaviour-cloning probe, disagreement with the set's consensus policy | progress: the
    # rate of progress toward the episode's own end state | none: attribution alone. The
    # default was chosen on dev data and goals only (docs/ptr.md, "second signal")
    second_signal: str = 'bc_loss'
    signal: str = 'attribution'  # what drives the trust; the others are baselines (benchmark)
    # also fit the baseline probes (inverse dynamics, bc_loss) and store their episode signals
    # for AUROC tables (the benchmark); off, only the probes the trust needs run
    baselines: bool = False
    # trust floor: 0 — an episode the mixture calls bad is not drawn. A floor of 0.02 still drew
    # ~2% of the windows from a 50%-bad set, which broke every rollout of the diffusion head on
    # drawer-open (oracle trust with the floor 0.05, without it 0.48 = the experts alone); on
    # pick-place and push, seed 0, 0 beat 0.02 in all 8 cells (docs/benchmark.md). The
    # conservative part is the mixture's acceptance: no distinct bad group, every trust is 1
    w_min: float = 0.0
    separation: float = 1.5  # mixture accepted when Ashman's D >= this (and BIC, anchor)
    min_share: float = 0.05  # ... and the smaller component holds at least this share
    # ... and, for the attribution score (chance level 0), a bad component's centre lies
    # within this fraction of the way from chance to the good group's: closer to chance than
    # to the good episodes. 0.25 kept a milder bad group (0.31 of the way after the first
    # round, pick-place, diffusion base) at trust 1; 0.5 cut a good second style scoring 0.65
    # against 1.4 in 89 % of synthetic sets; 0.4 splits the first and keeps the second
    # (calibrate.ANCHOR_FRACTION: docs/results/2026-12-06-trust-calibration.md). The centre
    # must lie under the line by a standard error (calibrate.CENTRE_SE), and the other
    # acceptance rules are calibrate's constants, chosen on bench/bench_calibration.py's dev sets
    anchor_fraction: float = ANCHOR_FRACTION
    # ... and the episodes' scores differ more than their own noise: the permutation p-value
    # of the between-episode F on block means of L windows (calibrate.episode_noise_p) is at
    # most this. Otherwise no split, every trust 1, and a WARNING: 12 expert episodes on a
    # 40-step base lost 5 to a "bad group" of noise (p 0.80), and a scorer that learned nothing
    # (2 steps) splits at chance; sets with a distinct bad group: p 0.001 (calibrate docstring)
    signal_alpha: float = 0.01
    smooth: int = 0  # frame-score moving-average width (0: the chunk length L)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.folds >= 2, 'folds', self.folds, 'an integer >= 2')
        for name in ('steps', 'batch_size', 'hidden', 'score_draws', 'knn', 'rounds'):
            _check(getattr(self, name) >= 1, name, getattr(self, name), 'an integer >= 1')
        for name in ('shifted', 'neighbours', 'perturbed', 'random', 'smooth', 'refine_steps'):
            _check(getattr(self, name) >= 0, name, getattr(self, name), 'an integer >= 0')
        _check(self.shifted + self.neighbours + self.perturbed + self.random >= 1, 'negatives',
               0, 'at least one negative (shifted/neighbours/perturbed/random)')
        _check(all(k >= 1 for k in self.shifts) and len(self.shifts) > 0, 'shifts', self.shifts,
               'a non-empty list of integers >= 1')
        _check(all(s > 0 for s in self.perturb_sigma) and len(self.perturb_sigma) > 0,
               'perturb_sigma', self.perturb_sigma, 'a non-empty list of numbers > 0')
        _check(self.lr > 0, 'lr', self.lr, 'a number > 0')
        _check(self.weight_decay >= 0, 'weight_decay', self.weight_decay, '>= 0')
        _check(self.consequence in ('steps', 'delta'), 'consequence', self.consequence,
               'steps | delta')
        _check(self.second_signal in SECOND_SIGNALS, 'second_signal', self.second_signal,
               ' | '.join(SECOND_SIGNALS))
        _check(self.signal in SIGNALS, 'signal', self.signal, ' | '.join(SIGNALS))
        _check(0.0 <= self.w_min < 1.0, 'w_min', self.w_min, 'in [0, 1)')
        _check(0.0 < self.refine_keep <= 1.0, 'refine_keep', self.refine_keep, 'in (0, 1]')
        _check(self.separation >= 0, 'separation', self.separation, '>= 0')
        _check(0.0 <= self.min_share < 0.5, 'min_share', self.min_share, 'in [0, 0.5)')
        _check(0.0 < self.anchor_fraction < 1.0, 'anchor_fraction', self.anchor_fraction,
               'in (0, 1)')
        _check(0.0 < self.signal_alpha <= 1.0, 'signal_alpha', self.signal_alpha, 'in (0, 1]')

    @property
    def candidates(self) -> int:
        return 1 + self.shifted + self.neighbours + self.perturbed + self.random

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TrustConfig:
        """Build from ``ptr score --set`` values or a benchmark's ``score:`` (the one config
        parser, ``ptr_core.configuration.from_dict``): unknown keys and wrong types (a bool
        where a number goes) raise ``ConfigError`` naming the key."""
        from ptr_core.configuration import from_dict

        return from_dict(cls, data, prefix='trust.')
