"""``PTRConfig``: every knob of Posterior-Transition Reweighting, validated on construction.

Defaults are the measured-best setting of PTR_SPEC.md ("What we measured"): the ``action``
score, centred, smoothed per episode, β = 0.5, clip [0.05, 4], plus one measured deviation: the
target is the *change* of the encoded observation, ``g(o_{t+Δ}) − g(o_t)`` (``target: delta``).
Our heads' action summary ``e`` is FiLM-conditioned on the context, so with the plain future as
target the action score identifies the candidate by its context and saturates (docs/ptr.md).
``PAPER_DEFAULTS`` holds the paper's own setting (``future`` score and target, no centring,
β = 1.5, clip [0.25, 4]); the two YAML presets ``config/train/ptr.yaml`` and
``config/train/ptr_paper.yaml`` are these two dictionaries.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptr_core.errors import ConfigError

__all__ = ['HARD_NEGATIVES', 'PAPER_DEFAULTS', 'SCORE_MODES', 'SMOOTHING', 'TARGETS', 'PTRConfig']

SCORE_MODES = ('action', 'future')
SMOOTHING = ('none', 'episode')
TARGETS = ('future', 'delta', 'residual')
HARD_NEGATIVES = ('nearest_state', 'task_robot', 'none')


@dataclass(frozen=True)
class PTRConfig:
    """All options of the ``ptr`` weighter (keys of ``weighter.options`` in a train config)."""

    # -- score and weight (PTR_SPEC steps 5-6) ---------------------------------------------
    score_mode: str = 'action'  # 'future': the paper's; 'action': candidate actions, fixed context
    center: bool = True  # subtract the (global) batch mean of T before the exponent
    smoothing: str = 'episode'  # 'none' | 'episode': EMA of T per episode id
    smoothing_decay: float = 0.9  # EMA decay of an episode's score per update
    max_episodes: int = 65536  # size of the per-episode table (ids wrap modulo this)
    beta: float = 0.5  # initial β of exp(T / β); the controller moves it within [beta_min, max]
    w_min: float = 0.05
    w_max: float = 4.0
    alpha: float = 1.0  # w = 1 + α (clip(...) - 1); 0: uniform post-training, scorer idle
    warmup_steps: int = 3000  # NCE warm-up: w ≡ 1 while the scorer trains
    # -- scorer and logits (step 4) ----------------------------------------------------------
    tau: float = 0.12  # initial temperature of the cosine logits
    logit_clamp: float = 20.0
    scorer_hidden: int = 256  # width of MLP_a
    detach: bool = False  # detach h and e: scorer gradients do not reach the backbone
    # -- target encoder (step 2) -------------------------------------------------------------
    target: str = 'delta'  # 'future' (paper) | 'delta' | 'residual'; see docs/ptr.md
    ema_decay: float = 0.999
    frozen_target: bool = False  # ablation: g is a frozen copy of the encoder at bind time
    target_size: int = 0  # > 0: g reads frames box-filtered down to about this side (cheaper)
    # -- candidate pool (step 3) -------------------------------------------------------------
    queue_size: int = 1024
    queue_draws: int = 64  # per sample, from the queue (future mode)
    hard_negatives: str = 'nearest_state'  # 'nearest_state' | 'task_robot' | 'none'
    r_hard_max: float = 0.5  # r_hard = r_hard_max · clip((acc - 0.10) / 0.40, 0, 1)
    r_hard_min: float = 0.0  # floor of r_hard (and its start value): > 0 forces hard draws
    mask_same_episode: bool = False
    mask_window: int = 0  # ±steps for same-episode masking; 0 = the chunk length L
    # -- losses (step 8) ---------------------------------------------------------------------
    lambda_id: float = 0.05
    lambda_rank: float = 0.25
    lambda_pred: float = 1.0  # target 'residual': weight of the context predictor's MSE
    # -- adaptive controller (step 9) --------------------------------------------------------
    controller: bool = True
    controller_every: int = 50  # steps between controller updates (= the trainer's log_every)
    controller_ema: float = 0.98
    acc_low: float = 0.05
    acc_high: float = 0.35
    margin_high: float = 0.10
    tau_min: float = 0.03
    tau_max: float = 0.20
    tau_up: float = 1.01
    tau_down: float = 0.995
    beta_min: float = 0.5
    beta_max: float = 3.0
    beta_up: float = 1.002
    beta_down: float = 0.999
    # -- misc --------------------------------------------------------------------------------
    seed: int = 0  # seeds the per-step draws (queue, rank permutation): resume is exact
    bound_warn_share: float = 0.9  # warn when one clip bound holds more than this share

    def __post_init__(self) -> None:
        for name, choices in (
            ('score_mode', SCORE_MODES), ('smoothing', SMOOTHING),
            ('hard_negatives', HARD_NEGATIVES), ('target', TARGETS),
        ):
            if getattr(self, name) not in choices:
                msg = f'weighter option {name}: {getattr(self, name)!r} is not one of {choices}'
                raise ConfigError(msg)
        positive = ('beta', 'w_max', 'tau', 'logit_clamp', 'tau_min', 'tau_max', 'beta_min',
                    'beta_max', 'tau_up', 'tau_down', 'beta_up', 'beta_down')
        for name in positive:
            if not getattr(self, name) > 0:
                msg = f'weighter option {name}: must be > 0, got {getattr(self, name)!r}'
                raise ConfigError(msg)
        if not 0 <= self.w_min <= 1 <= self.w_max:
            msg = f'weighter options w_min/w_max: need 0 <= w_min <= 1 <= w_max, got ' \
                  f'{self.w_min!r}/{self.w_max!r}'
            raise ConfigError(msg)
        if not 0 <= self.alpha <= 1:
            msg = f'weighter option alpha: must be in [0, 1], got {self.alpha!r}'
            raise ConfigError(msg)
        for name in ('smoothing_decay', 'ema_decay', 'controller_ema'):
            if not 0 <= getattr(self, name) < 1:
                msg = f'weighter option {name}: must be in [0, 1), got {getattr(self, name)!r}'
                raise ConfigError(msg)
        if not 0 <= self.r_hard_min <= self.r_hard_max <= 0.5:
            msg = (f'weighter options r_hard_min/r_hard_max: need 0 <= min <= max <= 0.5, got '
                   f'{self.r_hard_min!r}/{self.r_hard_max!r}')
            raise ConfigError(msg)
        for name in ('warmup_steps', 'queue_size', 'queue_draws', 'mask_window', 'seed',
                     'target_size'):
            if getattr(self, name) < 0:
                msg = f'weighter option {name}: must be >= 0, got {getattr(self, name)!r}'
                raise ConfigError(msg)
        for name in ('max_episodes', 'scorer_hidden', 'controller_every'):
            if getattr(self, name) < 1:
                msg = f'weighter option {name}: must be >= 1, got {getattr(self, name)!r}'
                raise ConfigError(msg)
        if self.queue_draws > self.queue_size:
            msg = f'weighter option queue_draws: {self.queue_draws} exceeds queue_size ' \
                  f'{self.queue_size}'
            raise ConfigError(msg)
        if self.tau_min > self.tau_max or self.beta_min > self.beta_max:
            msg = 'weighter options tau_min/tau_max or beta_min/beta_max: min exceeds max'
            raise ConfigError(msg)
        if self.lambda_id < 0 or self.lambda_rank < 0 or self.lambda_pred < 0:
            msg = 'weighter options lambda_id/lambda_rank/lambda_pred: must be >= 0'
            raise ConfigError(msg)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> PTRConfig:
        """Build from ``weighter.options`` (the one config parser,
        ``ptr_core.configuration.from_dict``): unknown keys and wrong types raise
        ``ConfigError`` naming the key."""
        from ptr_core.configuration import from_dict

        return from_dict(cls, dict(options or {}), prefix='weighter.options.')

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def kl_bound(self) -> float:
        """``log(w_max / w_min)``: the bound on KL(q‖p) of the reweighted distribution."""
        return math.inf if self.w_min == 0 else math.log(self.w_max / self.w_min)


PAPER_DEFAULTS: dict[str, Any] = {
    'score_mode': 'future',
    'target': 'future',
    'center': False,
    'smoothing': 'none',
    'beta': 1.5,
    'w_min': 0.25,
    'w_max': 4.0,
}
