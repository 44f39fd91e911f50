"""``PTRWeighter``: Posterior-Transition Reweighting as a ``SampleWeighter`` named ``ptr``.

Per step (PTR_SPEC.md; shapes: ``B`` local batch, ``G`` global batch over DDP ranks)::

    y   = normalize(g(o_{t+Δ}))                 # EMA target encoder, no grad        [B, D]
    a   = W_h LN(h),  b = MLP_a(e)               # transition scorer halves            [B, D]
    future mode:  d_ij = cos(a_i + b_i, y_j)/τ   # own future among in-batch (all ranks)
                                                 # and queue futures (random + hard)
    action mode:  d_ij = cos(a_i + b_j, y_i)/τ   # own action among the batch's actions,
                                                 # context and observed future held fixed
    T   = log softmax(d_i)[own] + log |Y_i|      # 0: uniform; > 0: identifiable
    T'  = T smoothed per episode (EMA), minus the batch mean (centre)      (knobs)
    w   = 1 + α (clip(exp(T'/β), w_min, w_max) − 1);  w = 1 without a future or in warm-up
    aux = λ_id · (−mean log p) + λ_rank · mean softplus(d(a_i+b_π(i)) − d(a_i+b_i))

``after_step`` updates the EMA target encoder, pushes this step's targets into the queue,
commits the per-episode score EMAs and runs the adaptive controller. All state that must survive
a resume is in registered buffers; under DDP every rank computes it from the same gathered data,
so it is identical on every rank.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ptr_core.errors import ConfigError, PtrError
from ptr_core.weighting.base import PolicyOutput, SampleWeighter, WeightOutput
from ptr_core.weighting.ptr.candidates import (
    _current_state,
    _future_valid,
    _ids,
    _self_and_episode_mask,
    future_candidates,
)
from ptr_core.weighting.ptr.config import PTRConfig
from ptr_core.weighting.ptr.controller import AdaptiveController
from ptr_core.weighting.ptr.diagnostics import BoundWarning, StepStats, step_metrics
from ptr_core.weighting.ptr.distributed import _gather, _gather_with_grad, _world
from ptr_core.weighting.ptr.queue import TargetQueue
from ptr_core.weighting.ptr.scorer import (
    Posterior,
    TransitionScorer,
    action_logits,
    normalize,
    ptr_score,
    ptr_weight,
    rank_loss,
)
from ptr_core.weighting.ptr.target import FUTURE_PREFIX, target_pass

__all__ = ['FUTURE_PREFIX', 'PTRWeighter', 'ScoredBatch']

log = logging.getLogger(__name__)


@dataclass
class ScoredBatch:
    """The scorer's view of one batch (local rows), before weights are formed."""

    score: Tensor  # T [B], detached
    log_p: Tensor  # [B], with graph (for L_id)
    rank: Tensor  # per-sample rank loss [B], with graph
    post: Posterior
    target: Tensor  # unit targets y [B, D]
    valid: Tensor  # bool [B]
    pred: Tensor | None = None  # per-sample MSE of the context predictor (target 'residual')


@dataclass
class _Pending:
    """What ``forward`` computed for ``after_step`` to commit."""

    step: int
    push: tuple[Tensor, Tensor] | None  # targets and states for the queue
    robot: Tensor
    task: Tensor
    episode: Tensor
    frame: Tensor
    episode_slots: Tensor | None
    episode_values: Tensor | None
    metrics: dict[str, float]


class PTRWeighter(SampleWeighter):
    """Posterior-Transition Reweighting; see the module docstring and docs/ptr.md."""

    name = 'ptr'
    episode_score: Tensor
    episode_seen: Tensor

    def __init__(self, config: PTRConfig | None = None) -> None:
        super().__init__()
        self.config = config or PTRConfig()
        self.controller = AdaptiveController(self.config)
        n = self.config.max_episodes if self.config.smoothing == 'episode' else 1
        self.register_buffer('episode_score', torch.zeros(n))
        self.register_buffer('episode_seen', torch.zeros(n, dtype=torch.bool))
        self.scorer: TransitionScorer | None = None
        self.predictor: nn.Module | None = None
        self.target_encoder: nn.Module | None = None
        self.queue: TargetQueue | None = None
        self.robot_names: tuple[str, ...] = ()
        self.source_names: tuple[str, ...] = ()
        self.chunk_length = 1  # L, the bound policy's (``bind``)
        self._online: list[nn.Module] = []  # the policy's encoder, deliberately not a submodule
        self._pending: _Pending | None = None
        self._warn = BoundWarning(self.config.bound_warn_share)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> PTRWeighter:
        return cls(PTRConfig.from_options(options))

    # -- binding -------------------------------------------------------------------------
    def bind(self, policy: nn.Module) -> None:
        """Copy the policy's encoder as the target encoder and size the scorer and queue.

        Reads ``policy.encoder`` (with ``target_feature(batch, 'future.')``) and the widths of
        h (``context_dim`` of the policy or its encoder), e (``action_summary_dim`` of the
        policy or ``summary_dim`` of ``policy.net``), y (``encoder.target_dim``) and the state.
        """
        encoder = getattr(policy, 'encoder', None)
        if not isinstance(encoder, nn.Module) or not hasattr(encoder, 'target_feature'):
            msg = 'weighter ptr: the policy has no encoder with target_feature(batch, prefix)'
            raise ConfigError(msg)
        net = getattr(policy, 'net', None)
        first = getattr(getattr(encoder, 'state_mlp', None), '0', None)
        self.chunk_length = _dim((policy,), ('chunk_length',))  # L: the policy owns it
        dims = {
            'h_dim': _dim((policy, encoder), ('context_dim', 'h_dim')),
            'e_dim': _dim((policy, net), ('action_summary_dim', 'summary_dim', 'e_dim')),
            'target_dim': _dim((encoder,), ('target_dim', 'feature_dim')),
            'state_dim': _dim((policy, encoder, first), ('state_dim', 'in_features'), default=1),
        }
        self.bind_modules(encoder, **dims)
        layout = getattr(policy, 'layout', None)
        robots = getattr(layout, 'robots', None)
        if robots:
            self.robot_names = tuple(str(r) for r in robots)

    def bind_modules(
        self, encoder: nn.Module, *, h_dim: int, e_dim: int, target_dim: int, state_dim: int
    ) -> None:
        """``bind`` with explicit widths (used by ``bind`` and by tests with small modules)."""
        c = self.config
        try:
            device = next(encoder.parameters()).device
        except StopIteration:
            device = torch.device('cpu')
        # A private RNG stream: building the scorer must not shift the run's global RNG, so
        # that alpha = 0 reproduces a uniform run bit for bit.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            self.scorer = TransitionScorer(h_dim, e_dim, target_dim, hidden=c.scorer_hidden)
            self.predictor = None
            if c.target == 'residual':
                self.predictor = nn.Sequential(
                    nn.LayerNorm(h_dim), nn.Linear(h_dim, c.scorer_hidden), nn.GELU(),
                    nn.Linear(c.scorer_hidden, target_dim),
                )
        self.queue = TargetQueue(c.queue_size, target_dim, state_dim)
        target = copy.deepcopy(encoder)
        target.requires_grad_(False)
        target.eval()
        self.target_encoder = target
        self._online = [encoder]
        self.to(device)

    def set_group_names(
        self, *, robots: Sequence[str] = (), sources: Sequence[str] = ()
    ) -> None:
        """Names for the ``w_mean/robot/<name>`` and ``w_mean/source/<tag>`` diagnostics."""
        self.robot_names = tuple(robots)
        self.source_names = tuple(sources)

    def train(self, mode: bool = True) -> PTRWeighter:
        super().train(mode)
        if self.target_encoder is not None:
            self.target_encoder.eval()  # g is a fixed function between EMA updates
        return self

    # -- the step ------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self, batch: dict[str, Tensor], out: PolicyOutput, step: int
    ) -> WeightOutput:
        c = self.config
        if c.alpha == 0:
            # Plain uniform post-training, exactly: no score, no scorer loss, no gradient.
            self._pending = None
            ones = torch.ones(out.loss.shape[0], device=out.loss.device)
            return WeightOutput(weights=ones, aux_loss=ones.new_zeros(()),
                                metrics={'alpha': 0.0, 'w_mean': 1.0})
        tau, beta, r_hard = (float(x) for x in torch.stack(
            [self.controller.tau, self.controller.beta, self.controller.r_hard]).tolist())
        scored = self.score(batch, out, step=step, tau=tau, r_hard=r_hard)
        world, rank = _world()
        n_local = scored.score.shape[0]
        ids = _ids(batch, n_local, scored.score.device)
        # Everything below is over the global batch so the weights equal a one-process run.
        g_flt, g_ids = _gather(_score_columns(scored)), _gather(ids)
        valid = g_flt[:, 3] > 0.5
        weights, clip_arg, slots, values = self._weights(g_flt[:, 0], valid, g_ids[:, 4], beta)
        warmup = step < c.warmup_steps
        if warmup:
            weights = torch.ones_like(weights)
        aux = _aux_loss(c, scored, valid, world)
        metrics = self._metrics(g_flt, g_ids, weights, clip_arg, tau=tau, beta=beta,
                                r_hard=r_hard, warmup=warmup)
        if not warmup and rank == 0:  # every rank holds the same global metrics
            self._warn(metrics, step)
        self._pending = self._pending_commit(batch, scored, step, g_ids, valid, slots, values,
                                             metrics)
        local = weights[rank * n_local:(rank + 1) * n_local]
        return WeightOutput(weights=local.detach().float(), aux_loss=aux,
                            metrics=metrics)

    def _weights(
        self, score: Tensor, valid: Tensor, episode: Tensor, beta: float,
    ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """The global batch's weights (1 without a future), ``T'/β`` (clip diagnostics) and
        the per-episode EMA update to commit: smoothing, centring, then the weight map."""
        c = self.config
        effective, slots, values = self._smooth(score, valid, episode)
        if c.center:
            n_valid = valid.sum().clamp_min(1)
            effective = effective - torch.where(valid, effective, 0.0).sum() / n_valid
        clip_arg = effective / beta
        weights = ptr_weight(effective, beta, c.w_min, c.w_max, c.alpha)
        weights = torch.where(valid, weights, torch.ones_like(weights))
        return weights, clip_arg, slots, values

    def _metrics(
        self, g_flt: Tensor, g_ids: Tensor, weights: Tensor, clip_arg: Tensor, *, tau: float,
        beta: float, r_hard: float, warmup: bool,
    ) -> dict[str, float]:
        """The step's diagnostics over the global batch (``_score_columns``, ``_ids``)."""
        c = self.config
        score, log_p, rank_l, valid_f, correct, margin, n_cand = g_flt.unbind(1)
        valid = valid_f > 0.5
        robot, _, dataset, source, _, _ = g_ids.unbind(1)
        stats = StepStats(
            score=score, weights=weights,
            at_min=clip_arg <= (math.log(c.w_min) if c.w_min > 0 else -math.inf),
            at_max=clip_arg >= math.log(c.w_max),
            valid=valid, correct=correct > 0.5, margin=margin, n_candidates=n_cand,
            robot=robot, dataset=dataset, source=source,
        )
        vsum = valid_f.sum().clamp_min(1)
        return step_metrics(
            stats, tau=tau, beta=beta, r_hard=r_hard,
            loss_id=-(log_p * valid_f).sum() / vsum, loss_rank=(rank_l * valid_f).sum() / vsum,
            warmup=warmup, robot_names=self.robot_names, source_names=self.source_names,
        )

    def _pending_commit(
        self, batch: dict[str, Tensor], scored: ScoredBatch, step: int, g_ids: Tensor,
        valid: Tensor, slots: Tensor | None, values: Tensor | None, metrics: dict[str, float],
    ) -> _Pending:
        """What ``after_step`` commits: the valid samples' queue push and the EMA update."""
        c = self.config
        robot, task, _, _, episode, frame = g_ids.unbind(1)
        keep = valid
        push: tuple[Tensor, Tensor] | None = None
        if c.score_mode == 'future' and c.queue_draws > 0:  # only the future score reads it
            n_local = scored.score.shape[0]
            state = _current_state(batch, n_local, scored.score.device)
            push = (_gather(scored.target)[keep], _gather(state)[keep])
        return _Pending(
            step=step, push=push, robot=robot[keep], task=task[keep], episode=episode[keep],
            frame=frame[keep], episode_slots=slots, episode_values=values, metrics=metrics,
        )

    def score(
        self, batch: dict[str, Tensor], out: PolicyOutput, *, step: int, tau: float | None = None,
        r_hard: float | None = None,
    ) -> ScoredBatch:
        """T, log p and the rank loss of each local sample (no weights, no state change)."""
        c = self.config
        if self.scorer is None or self.target_encoder is None or self.queue is None:
            msg = 'weighter ptr: call bind(policy) before the first step'
            raise PtrError(msg)
        tau = float(self.controller.tau) if tau is None else tau
        r_hard = float(self.controller.r_hard) if r_hard is None else r_hard
        h, e = out.h, out.e
        if c.detach:
            h, e = h.detach(), e.detach()
        n = h.shape[0]
        device = h.device
        valid = _future_valid(batch, n, device)
        a, b, y, pred_loss = self._halves(batch, h, e)
        world, rank = _world()
        ids = _ids(batch, n, device)
        g_ids = _gather(ids)
        n_global = n * world
        own = rank * n + torch.arange(n, device=device)
        gen = _generator(c.seed, step, device)
        b_all = _gather_with_grad(b)  # action candidates and the rank-loss partners
        window = self._window(batch) if c.mask_same_episode else None

        if c.score_mode == 'action':
            logits = action_logits(a, b_all, y, tau, c.logit_clamp)  # [B, G]
            pos = logits.gather(1, own[:, None])[:, 0]
            masked = _self_and_episode_mask(own, n_global, ids[:, 4], ids[:, 5], g_ids[:, 4],
                                            g_ids[:, 5], window)
            negs = logits.masked_fill(masked, -math.inf)
        else:
            pos, negs = future_candidates(c, self.queue, a + b, y, valid, batch, ids, g_ids, own,
                                                r_hard=r_hard, window=window, gen=gen, tau=tau)
        post = Posterior(pos, negs)
        score = ptr_score(post.log_p, post.n_candidates).detach()
        rank_l = _rank_term(a, b_all, y, pos, own, n_global, tau=tau, clamp=c.logit_clamp,
                            seed=c.seed, step=step)
        return ScoredBatch(score=score, log_p=post.log_p, rank=rank_l, post=post, target=y,
                           valid=valid, pred=pred_loss)

    def _halves(
        self, batch: dict[str, Tensor], h: Tensor, e: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """The scorer's context and action halves ``a``, ``b``, the unit targets ``y`` (target
        ``residual``: minus the context predictor's guess) and the predictor's loss."""
        assert self.scorer is not None
        with torch.no_grad():
            y = normalize(self._target(batch).float())
        pred_loss: Tensor | None = None
        with torch.autocast(h.device.type, enabled=False):
            a = self.scorer.context(h.float())
            b = self.scorer.action(e.float())
            if self.predictor is not None:
                # residual target: what the context alone does not predict of the future
                guess = self.predictor(h.detach().float())
                pred_loss = ((guess - y) ** 2).sum(-1)
                y = normalize(y - guess.detach())
        return a, b, y, pred_loss

    def _target(self, batch: dict[str, Tensor]) -> Tensor:
        assert self.target_encoder is not None
        return target_pass(self.target_encoder, batch, target=self.config.target,
                           size=self.config.target_size)

    def _window(self, batch: dict[str, Tensor]) -> int:
        """Frames around a sample masked as negatives: ``mask_window``, else the chunk length
        L (the policy's, read at ``bind``)."""
        return self.config.mask_window if self.config.mask_window > 0 else self.chunk_length

    def _smooth(
        self, score: Tensor, valid: Tensor, episode: Tensor
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Per-episode EMA of T: the value each sample uses and the table update to commit."""
        if self.config.smoothing != 'episode':
            return score, None, None
        return smooth_per_episode(score, valid, episode, self.episode_score, self.episode_seen,
                                  self.config.smoothing_decay)

    @torch.no_grad()
    def after_step(self, batch: dict[str, Tensor], out: PolicyOutput, step: int) -> None:
        c = self.config
        if not c.frozen_target and self.target_encoder is not None and self._online:
            _ema_update(self.target_encoder, self._online[0], c.ema_decay)
        pending, self._pending = self._pending, None
        if pending is None or pending.step != step:
            return
        if self.queue is not None and pending.push is not None:
            target, state = pending.push
            self.queue.push(target, state, pending.robot, pending.task, pending.episode,
                            pending.frame)
        if pending.episode_slots is not None and pending.episode_values is not None:
            self.episode_score[pending.episode_slots] = pending.episode_values
            self.episode_seen[pending.episode_slots] = True
        if c.controller:
            m = pending.metrics
            self.controller.observe(m['nce_acc'], m['nce_margin'], m['T_mean'],
                                    m['valid_ratio'])
            if (step + 1) % c.controller_every == 0:
                self.controller.adapt()


def action_logits_rowwise(
    a: Tensor, b: Tensor, y: Tensor, tau: Tensor | float, clamp: float
) -> Tensor:
    """``cos(a_i + b_i, y_i) / τ`` for matched rows (``[B]``)."""
    cos = (normalize(a + b) * y).sum(-1)
    return (cos / tau).clamp(-clamp, clamp)


def smooth_per_episode(
    score: Tensor, valid: Tensor, episode: Tensor, table_score: Tensor, table_seen: Tensor,
    decay: float,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """The EMA of T per episode slot (``episode mod len(table)``): the value each sample uses,
    and the slots and values to commit (None when no valid sample has an episode)."""
    size = table_score.shape[0]
    slot = episode.long() % size
    keep = valid & (episode >= 0)
    if not bool(keep.any()):
        return score, None, None
    uniq, inverse = torch.unique(slot[keep], return_inverse=True)
    sums = torch.zeros(len(uniq), device=score.device).index_add_(0, inverse, score[keep])
    counts = torch.zeros(len(uniq), device=score.device).index_add_(
        0, inverse, torch.ones_like(score[keep]))
    batch_mean = sums / counts
    old = table_score[uniq]
    seen = table_seen[uniq]
    new = torch.where(seen, decay * old + (1.0 - decay) * batch_mean, batch_mean)
    table = torch.zeros(size, device=score.device)
    table[uniq] = new
    effective = torch.where(keep, table[slot], score)
    return effective, uniq, new


# -- helpers ------------------------------------------------------------------------------


def _score_columns(scored: ScoredBatch) -> Tensor:
    """``[B, 7]`` float: T, log p, rank loss, valid, correct, margin, |Y| (detached)."""
    return torch.stack([
        scored.score, scored.log_p.detach(), scored.rank.detach(), scored.valid.float(),
        scored.post.correct.float(), scored.post.margin.detach(),
        scored.post.n_candidates.float(),
    ], dim=1).float()


def _aux_loss(c: PTRConfig, scored: ScoredBatch, valid: Tensor, world: int) -> Tensor:
    """Scorer losses: local sums over the global valid count (× world: DDP averages grads)."""
    n_valid_global = valid.sum().clamp_min(1).to(scored.log_p.dtype)
    vf = scored.valid.to(scored.log_p.dtype)
    loss_id = -(scored.log_p * vf).sum() / n_valid_global * world
    loss_rank = (scored.rank * vf).sum() / n_valid_global * world
    aux = c.lambda_id * loss_id + c.lambda_rank * loss_rank
    if scored.pred is not None:
        aux = aux + c.lambda_pred * (scored.pred * vf).sum() / n_valid_global * world
    return aux


def _rank_term(
    a: Tensor, b_all: Tensor, y: Tensor, pos: Tensor, own: Tensor, n_global: int, *,
    tau: float, clamp: float, seed: int, step: int,
) -> Tensor:
    """Per-sample L_rank: the matched target scored with a batch-permuted (derangement)
    action summary."""
    if n_global > 1:
        shift = int(torch.randint(1, n_global, (1,), generator=_cpu_generator(seed, step)))
        partner = b_all[(own + shift) % n_global]
        d_neg = action_logits_rowwise(a, partner, y, tau, clamp)
        return rank_loss(pos, d_neg)
    return pos * 0.0


def _dim(objs: Sequence[object], names: Sequence[str], default: int | None = None) -> int:
    for obj in objs:
        for name in names:
            value = getattr(obj, name, None)
            if isinstance(value, int) and value > 0:
                return value
    if default is not None:
        return default
    owner = type(objs[0]).__name__
    msg = f'weighter ptr: {owner} has none of the width attributes {list(names)}'
    raise ConfigError(msg)


def _generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + step) % (2**63))
    return gen


def _cpu_generator(seed: int, step: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed((seed * 1_000_003 + step + 7919) % (2**63))
    return gen


@torch.no_grad()
def _ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    """``θ_g ← μ θ_g + (1 − μ) θ`` for parameters; buffers are copied."""
    t_params: list[Tensor] = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        msg = 'weighter ptr: the target encoder no longer matches the policy encoder'
        raise PtrError(msg)
    if t_params:
        torch._foreach_lerp_(t_params, [p.to(t.dtype) for p, t in zip(o_params, t_params)],
                             1.0 - decay)
    for t_buf, o_buf in zip(target.buffers(), online.buffers()):
        t_buf.copy_(o_buf)
