"""The training loop: weighted per-sample loss, AdamW + warm-up/cosine, EMA, AMP, DDP, checkpoints.

Per step (the ``SampleWeighter`` contract of ``ptr_core.weighting.base``)::

    out, wout = model(batch, step)         # policy.forward_train + weighter, one DDP container
    loss = weighted_mean(out.loss, wout.weights, distributed) + wout.aux_loss
    loss.backward(); clip; optimizer.step(); ema.update(); weighter.after_step(batch, out, step)

Exactness: the data order is a function of ``(seed, step)`` (``MixtureSampler``), per-sample noise
comes from the loader, and checkpoints carry the optimizer, EMA, weighter, RNGs and the step, so a
run killed at any point and resumed from its last checkpoint ends bit-identical on CPU. Under
``torchrun`` every rank takes its own residue class of the global sample stream and the weighted
loss is normalized by the global Σw, so the update equals the one-process update on the global
batch. Everything here is device-agnostic: CUDA, bf16 autocast and ``torch.compile`` are switched
by the config, not by code paths.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import Sampler

from bag_tools.errors import BagToolsError
from bag_tools.lock import writer_lock
from ptr_core import batch as K
from ptr_core.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_matching,
    load_training_state,
    save_checkpoint,
    write_file_atomic,
)
from ptr_core.configuration import TrainConfig, to_dict
from ptr_core.data import DataBundle, MixtureSampler, Vocabulary, build_data, make_loader
from ptr_core.devices import Distributed, autocast, resolve_device, setup_distributed
from ptr_core.errors import ConfigError, PtrError
from ptr_core.policies.output import PolicyOutput
from ptr_core.policies.policy import ActionPolicy, build_policy
from ptr_core.preprocess import finish_images
from ptr_core.run_dir import (
    MetricsWriter,
    check_resumed_inputs,
    checkpoint_dirs,
    latest_checkpoint,
    prune_checkpoints,
    record_run_inputs,
    run_inputs,
    step_dir,
)
from ptr_core.threads import use_threads
from ptr_core.weighting import build_weighter
from ptr_core.weighting.base import SampleWeighter, WeightOutput, weighted_mean

__all__ = ['EMA', 'TrainModule', 'TrainResult', 'lr_factor', 'train']

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, Mapping[str, float] | None], None]


class EMA(nn.Module):
    """Exponential moving average of a module's parameters (buffers are copied).

    ``decay_t = min(decay, (1 + t) / (10 + t))`` so the average follows quickly early on.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(module)
        self.module.requires_grad_(False)
        self.module.eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - d)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(  # type: ignore[override]
        self, state: Mapping[str, Any], strict: bool = True
    ) -> Any:
        return self.module.load_state_dict(state, strict=strict)


class TrainModule(nn.Module):
    """Policy and weighter in one module, so DDP syncs the scorer's gradients too."""

    def __init__(self, policy: ActionPolicy, weighter: SampleWeighter) -> None:
        super().__init__()
        self.policy = policy
        self.weighter = weighter

    def forward(  # type: ignore[override]
        self, batch: dict[str, Tensor], step: int
    ) -> tuple[PolicyOutput, WeightOutput]:
        out = self.policy.forward_train(batch)
        wout = self.weighter(batch, out, step)
        data_weight = batch.get(K.SAMPLE_WEIGHT)  # the data's own loss weights, if it has any
        if data_weight is not None:
            wout = dataclasses.replace(wout, weights=wout.weights * data_weight.to(
                wout.weights.dtype))
        return out, wout


@dataclass
class TrainResult:
    out_dir: Path
    final: Path | None  # the final checkpoint (rank 0), None on other ranks
    step: int
    metrics: dict[str, float] = field(default_factory=dict)  # last logged metrics


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [
        {'params': decay, 'weight_decay': config.optim.weight_decay, 'base_lr': config.optim.lr},
        {'params': no_decay, 'weight_decay': 0.0, 'base_lr': config.optim.lr},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g['params']], lr=config.optim.lr, betas=config.optim.betas
    )


def _to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validate(
    policy: ActionPolicy,
    bundle: DataBundle,
    *,
    batch_size: int,
    batches: int,
    device: torch.device,
    seed: int = 0,
    steps: int | None = None,
) -> dict[str, float]:
    """Action MSE (normalized units, valid entries) of sampled chunks on held-out windows."""
    val = bundle.val
    if val is None or len(val) == 0:
        return {}
    n = min(len(val), batch_size * batches)
    picks = np.linspace(0, len(val) - 1, n).astype(np.int64)
    gen = torch.Generator(device='cpu').manual_seed(seed)
    was_training = policy.training
    policy.eval()
    sq, count, loss_sum = 0.0, 0.0, 0.0
    for start in range(0, n, batch_size):
        samples = [val[val.flat_index(int(i))] for i in picks[start: start + batch_size]]
        batch = _to_device({k: torch.stack([s[k] for s in samples]) for k in samples[0]}, device)
        pred = policy.sample_actions(batch, steps, generator=gen)
        mask = batch[K.ACTION_MASK].float()
        sq += float(((pred.float() - batch[K.ACTION]) ** 2 * mask).sum())
        count += float(mask.sum())
        loss_sum += float(policy.per_sample_loss(batch).sum())
    policy.train(was_training)
    return {'val/action_mse': sq / max(count, 1.0), 'val/loss': loss_sum / n}


def _build_bundle(
    config: TrainConfig, resumed: Checkpoint | None, pretrained: Checkpoint | None
) -> DataBundle:
    """The run's data. Resume: the checkpoint's preprocessing and vocabularies. ``--init``: the
    pretrained checkpoint's layout and normalization when the new data fits them (same robots
    or a subset, same To and mode) so the pretrained weights keep their meaning; else the new
    data's own (and ``load_matching`` decides what fits)."""
    chunk = config.policy.chunk_length
    if resumed is not None:
        return build_data(
            config.data, chunk_length=chunk, seed=config.seed, preprocessor=resumed.preprocessor,
            vocab=Vocabulary.from_json(resumed.vocab), robots=resumed.robots,
        )
    if pretrained is not None:
        pre = pretrained.preprocessor
        if (pre.obs_horizon == config.data.obs_horizon
                and pre.normalizer.mode == config.data.normalization):
            try:
                bundle = build_data(config.data, chunk_length=chunk, seed=config.seed,
                                    preprocessor=pre, robots=pretrained.robots)
            except PtrError as err:
                log.info('--init: the new data does not fit the checkpoint layout (%s); using '
                         "the data's own layout and normalization", err)
            else:
                log.info('--init: keeping the checkpoint layout %s and its normalization',
                         list(pre.layout.robots))
                return bundle
    return build_data(config.data, chunk_length=chunk, seed=config.seed)


def _infinite(loader: Any) -> Iterator[dict[str, Tensor]]:
    while True:
        yield from loader


def train(
    config: TrainConfig,
    *,
    init: str | Path | None = None,
    resume: bool = False,
    allow_change: bool = False,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train a policy as ``config`` says; returns where the final checkpoint is.

    ``init``: a pretrained checkpoint to post-train from (weights only; tensors whose shapes do
    not fit are an error unless ``config.reinit_mismatched``). ``resume``: continue the run in
    ``config.out_dir`` from its latest checkpoint, exactly; a resume with other datasets, another
    weighter or another trust file (path or content) than the run's ``run.json`` records is
    refused unless ``allow_change``, which records the change there. ``progress(step, metrics)``
    is called after every step (``metrics`` at logging steps, else None) — the CLI draws its
    bar with it. One writer per run directory: rank 0 holds its writer lock throughout, and a
    second ``train`` into the same ``out_dir`` fails at once.
    """
    use_threads(config.threads)
    dinfo = setup_distributed(config.device)
    try:
        out_dir = Path(config.out_dir)
        if out_dir.exists() and not out_dir.is_dir():
            msg = f'out_dir: {out_dir} is a file, not a run directory; choose another --out'
            raise ConfigError(msg)
        with contextlib.ExitStack() as stack:
            if dinfo.main:
                try:
                    stack.enter_context(writer_lock(out_dir, 'ptr train'))
                except BagToolsError as err:
                    raise PtrError(str(err)) from err
            return _train(config, dinfo, init=init, resume=resume, allow_change=allow_change,
                          progress=progress)
    finally:
        if dinfo.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    dinfo: Distributed,
    *,
    init: str | Path | None,
    resume: bool,
    allow_change: bool,
    progress: ProgressFn | None,
) -> TrainResult:
    run = _setup_run(config, dinfo, init=init, resume=resume)
    _record_inputs(run, allow_change=allow_change)
    sampler = _make_sampler(run)
    loader = make_loader(run.bundle.train, sampler, batch_size=run.per_rank, config=config.data,
                         device=run.device)
    if dinfo.main:
        write_file_atomic(run.out_dir / 'config.json', json.dumps(to_dict(run.config), indent=1))
    metrics = _loop(run, loader, progress)

    final = None
    if dinfo.main:
        run.save(step_dir(run.out_dir, run.step))
        prune_checkpoints(run.out_dir, config.keep_last)
        final = run.save(run.out_dir / 'final')
        log.info('final checkpoint: %s', final)
    if dinfo.enabled:
        dist.barrier()
    return TrainResult(out_dir=run.out_dir, final=final, step=run.step, metrics=metrics)


@dataclass
class _Run:
    """What one training run holds: built by ``_setup_run``, advanced by ``_optimizer_step``."""

    config: TrainConfig
    dinfo: Distributed
    device: torch.device
    out_dir: Path
    bundle: DataBundle
    policy: ActionPolicy
    weighter: SampleWeighter
    ema: EMA
    module: TrainModule
    model: nn.Module  # ``module``, wrapped in DDP and/or torch.compile as configured
    optimizer: torch.optim.AdamW
    step: int = 0
    resumed_config: TrainConfig | None = None  # the config of the checkpoint resumed from

    @property
    def per_rank(self) -> int:
        return self.config.batch_size // self.dinfo.world

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def save(self, path: Path) -> Path:
        return save_checkpoint(
            path, policy=self.policy, ema=self.ema, weighter=self.weighter,
            preprocessor=self.bundle.preprocessor, robots=self.bundle.robots,
            vocab=self.bundle.vocab.to_json(), config=self.config, step=self.step,
            optimizer=self.optimizer,
            extra_state={'batch_size': self.config.batch_size, 'seed': self.config.seed,
                         'world_size': self.dinfo.world},
        )


def _setup_run(
    config: TrainConfig, dinfo: Distributed, *, init: str | Path | None, resume: bool
) -> _Run:
    """Device, data, policy, weighter, EMA and optimizer; restored from the latest checkpoint
    when resuming, initialized from ``init`` when post-training."""
    device = resolve_device(config.device, dinfo.local_rank)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest convs
    if config.batch_size % dinfo.world:
        msg = f'batch_size: {config.batch_size} is not divisible by the {dinfo.world} ranks'
        raise ConfigError(msg)
    out_dir = Path(config.out_dir)
    _seed_everything(config.seed)

    resumed = _resume_checkpoint(config, out_dir, resume)
    pretrained = load_checkpoint(init) if init is not None and resumed is None else None
    bundle = _build_bundle(config, resumed, pretrained)
    bundle.train.defer_uint8 = True  # images cross the worker boundary as uint8
    policy = build_policy(config.policy, bundle.preprocessor).to(device)
    if pretrained is not None:
        load_matching(policy, pretrained.ema if pretrained.ema is not None else pretrained.model,
                      reinit_mismatched=config.reinit_mismatched, source=str(init))
    weighter = _make_weighter(config, policy, bundle, device)
    # Saved configs hold every effective option, not only the ones the YAML named.
    config = dataclasses.replace(config, weighter=dataclasses.replace(
        config.weighter, options=weighter.resolved_options() or dict(config.weighter.options)))
    ema = EMA(policy, config.ema_decay)
    module = TrainModule(policy, weighter)
    optimizer = _make_optimizer(module, config)
    run = _Run(config, dinfo, device, out_dir, bundle, policy, weighter, ema, module,
               model=module, optimizer=optimizer)
    if resumed is not None:
        run.step = _restore(run, resumed)
        run.resumed_config = resumed.config
    run.model = _wrap_model(module, config, dinfo, device)
    return run


def _record_inputs(run: _Run, *, allow_change: bool) -> None:
    """Record what a new run trains on in its ``run.json``; refuse a resume that changes it
    unless ``allow_change`` (then the change is recorded). Rank 0 writes."""
    inputs = run_inputs(run.config)
    if run.resumed_config is None:
        if run.dinfo.main:
            record_run_inputs(run.out_dir, inputs)
        return
    check_resumed_inputs(
        run.out_dir, inputs, previous=run_inputs(run.resumed_config, hash_trust=False),
        step=run.step, allow_change=allow_change, write=run.dinfo.main,
    )


def _resume_checkpoint(config: TrainConfig, out_dir: Path, resume: bool) -> Checkpoint | None:
    """The checkpoint a ``--resume`` run continues from (None: start at step 0); refuses to
    write into a run directory that already holds checkpoints without ``--resume``."""
    start_ckpt = None
    if resume:
        start_ckpt = latest_checkpoint(out_dir)
        if start_ckpt is None:
            log.warning('%s: no checkpoint to resume from; starting from step 0', out_dir)
    elif checkpoint_dirs(out_dir):
        msg = (f'out_dir: {out_dir} already holds checkpoints; pass --resume to continue it or '
               f'choose another out_dir')
        raise ConfigError(msg)
    resumed = load_checkpoint(start_ckpt) if start_ckpt is not None else None
    if resumed is not None and resumed.config.policy != config.policy:
        msg = f'{start_ckpt}: the policy config differs from the checkpoint; cannot resume'
        raise ConfigError(msg)
    return resumed


def _make_weighter(
    config: TrainConfig, policy: ActionPolicy, bundle: DataBundle, device: torch.device
) -> SampleWeighter:
    weighter = build_weighter(config.weighter.name, config.weighter.options)
    weighter.bind(policy)
    weighter.set_group_names(robots=bundle.preprocessor.layout.robots,
                             sources=bundle.vocab.sources)
    return weighter.to(device)


def _restore(run: _Run, resumed: Checkpoint) -> int:
    """Load weights, EMA, weighter and optimizer state from ``resumed``; returns its step."""
    run.policy.load_state_dict(resumed.model)
    if resumed.ema is not None:
        run.ema.load_state_dict(resumed.ema)
    if resumed.weighter is not None:
        run.weighter.load_state_dict(resumed.weighter)
    info = load_training_state(resumed.path, run.optimizer)
    step = int(info['step'])
    log.info('resumed %s at step %d', resumed.path, step)
    for key in ('batch_size', 'seed'):
        if key in info and info[key] != getattr(run.config, key):
            log.warning('resume: %s changed from %s to %s; the data order no longer '
                        'continues the interrupted run exactly', key, info[key],
                        getattr(run.config, key))
    return step


def _wrap_model(
    module: TrainModule, config: TrainConfig, dinfo: Distributed, device: torch.device
) -> nn.Module:
    """``module`` in DDP (under torchrun) and ``torch.compile`` (when configured)."""
    model: nn.Module = module
    if dinfo.enabled:
        from torch.nn.parallel import DistributedDataParallel

        scorer_trainable = any(p.requires_grad for p in module.weighter.parameters())
        with warnings.catch_warnings():  # broadcast_buffers: renamed in new torch, kept for 2.1
            warnings.simplefilter('ignore', FutureWarning)
            model = DistributedDataParallel(
                module, device_ids=[device.index] if device.type == 'cuda' else None,
                broadcast_buffers=False, find_unused_parameters=scorer_trainable,
            )
    if config.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model


def _make_sampler(run: _Run) -> Sampler[tuple[int, int, int]]:
    """This rank's stream of ``(dataset, window, g)`` keys, starting at the run's step."""
    return MixtureSampler(
        run.bundle.train.sizes, run.bundle.weights, batch_size=run.config.batch_size,
        seed=run.config.seed, rank=run.dinfo.rank, world=run.dinfo.world, start_step=run.step,
        window_weights=run.bundle.window_weights,
    )


def _optimizer_step(
    run: _Run, batch: dict[str, Tensor], params: list[nn.Parameter]
) -> tuple[Tensor, WeightOutput, Tensor]:
    """One weighted update; returns (weighted action loss, weighter output, grad norm)."""
    config = run.config
    factor = lr_factor(run.step, warmup=config.optim.warmup_steps, total=config.steps,
                       min_ratio=config.optim.min_lr_ratio)
    for group in run.optimizer.param_groups:
        group['lr'] = group['base_lr'] * factor
    with autocast(config, run.device):
        out, wout = run.model(batch, run.step)
        loss_act = weighted_mean(out.loss.float(), wout.weights, distributed=run.dinfo.enabled)
        loss = loss_act + wout.aux_loss.float()
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    grad_norm = (torch.nn.utils.clip_grad_norm_(params, config.optim.grad_clip)
                 if config.optim.grad_clip > 0 else torch.zeros(()))
    run.optimizer.step()
    run.ema.update(run.policy, run.step)
    run.weighter.after_step(batch, out, run.step)
    run.step += 1
    return loss_act, wout, grad_norm


class _Window:
    """Loss sums and wall time since the last logged step."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.aux = torch.zeros((), device=device)
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, loss_act: Tensor, aux_loss: Tensor) -> None:
        self.loss += loss_act.detach()
        self.aux += aux_loss.detach().float()
        self.steps += 1

    def metrics(self, run: _Run, wout: WeightOutput, grad_norm: Tensor) -> dict[str, float]:
        """The window's mean losses (averaged over ranks) and rates; then starts a new one."""
        elapsed = time.perf_counter() - self.start
        stats = torch.stack([self.loss, self.aux]) / self.steps
        if run.dinfo.enabled:
            dist.all_reduce(stats)
            stats /= run.dinfo.world
        metrics = {
            'loss': float(stats[0]),
            'aux_loss': float(stats[1]),
            'lr': run.optimizer.param_groups[0]['lr'],
            'grad_norm': float(grad_norm),
            'samples_per_s': self.steps * run.config.batch_size / max(elapsed, 1e-9),
            **{f'weighter/{k}': float(v) for k, v in wout.metrics.items()},
        }
        self.loss, self.aux = torch.zeros_like(self.loss), torch.zeros_like(self.aux)
        self.steps, self.start = 0, time.perf_counter()
        return metrics


def _loop(run: _Run, loader: Any, progress: ProgressFn | None) -> dict[str, float]:
    """Step until ``config.steps``: log, validate the EMA policy and save as configured.
    Returns the last logged metrics."""
    config, main = run.config, run.dinfo.main
    writer = MetricsWriter(run.out_dir, main, start_step=run.step)
    params = run.params
    window = _Window(run.device)
    metrics: dict[str, float] = {}
    run.model.train()
    batches = _infinite(loader)
    try:
        while run.step < config.steps:
            batch = finish_images(_to_device(next(batches), run.device))
            loss_act, wout, grad_norm = _optimizer_step(run, batch, params)
            window.add(loss_act, wout.aux_loss)
            step, logged = run.step, None
            val_now = bool(config.val_every) and (step % config.val_every == 0
                                                  or step == config.steps)
            if step % config.log_every == 0 or step == config.steps or val_now:
                metrics = window.metrics(run, wout, grad_norm)
                if val_now and main:
                    metrics.update(validate(
                        cast(ActionPolicy, run.ema.module), run.bundle, batch_size=run.per_rank,
                        batches=config.val_batches, device=run.device, seed=config.seed,
                    ))
                    window.start = time.perf_counter()
                writer.write(step, metrics)
                logged = metrics
            if main and step % config.save_every == 0 and step < config.steps:
                run.save(step_dir(run.out_dir, step))
                prune_checkpoints(run.out_dir, config.keep_last)
            if progress is not None:
                progress(step, logged)
    finally:
        writer.close()
    return metrics


def policy_from_checkpoint(path: str | Path, *, use_ema: bool = True) -> ActionPolicy:
    """Rebuild the policy stored in a checkpoint (EMA weights by default), on the CPU."""
    from ptr_core.inference import load_policy

    return load_policy(path, use_ema=use_ema)[0]
