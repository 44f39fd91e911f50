"""Training configuration: frozen dataclasses loaded from YAML and validated on load.

A config file is plain YAML (``yaml.safe_load``; nothing is evaluated). Every key must be a field
of the dataclass below it; an unknown key is a ``ConfigError`` that names it. ``--set a.b=value``
overrides are parsed as YAML scalars/lists and applied before validation; a program passes values
it already holds (paths) as ``(key, value)`` pairs, applied as they are, never through YAML
text. The resolved config is
saved (``to_dict``) beside every checkpoint with ``SCHEMA_VERSION``.

Shape glossary: ``To`` = ``data.obs_horizon``, ``L`` = ``policy.chunk_length`` (the shape of
the policy's output: the data is cut into windows of it), ``Δ`` = ``data.future_offset``
(``None`` means ``Δ = L``: the frame just after the chunk).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, Union

import yaml

from bag_tools.fileio import read_yaml
from ptr_core.errors import ConfigError

__all__ = [
    'SCHEMA_VERSION',
    'DataConfig',
    'DatasetSpec',
    'EncoderConfig',
    'OptimConfig',
    'Override',
    'PolicyConfig',
    'TrainConfig',
    'WeighterConfig',
    'apply_overrides',
    'check',
    'from_dict',
    'load_config',
    'to_dict',
]

SCHEMA_VERSION = 1

NORMALIZATION_MODES = ('minmax', 'minmax_p', 'meanstd')
TRUST_LEVELS = ('episode', 'frame')
TRUST_APPLY = ('sampling', 'loss')
#: The one registry of action heads: name -> ``'module:Class'`` (an ``ActionPolicy`` subclass,
#: built by ``ptr_core.policies.build_policy``). A new head is its module plus one line here.
HEADS: dict[str, str] = {
    'diffusion': 'ptr_core.policies.policy:DiffusionPolicy',
    'flow': 'ptr_core.policies.policy:FlowPolicy',
}
TRUNKS = ('conv', 'resnet18')
AMP_MODES = ('auto', 'bf16', 'none')


def check(cond: bool, key: str, value: Any, want: str) -> None:
    """Raise ``ConfigError`` ``<key>: <value> is invalid; expected <want>`` unless ``cond``:
    every config's value check (training, trust, benchmark)."""
    if not cond:
        msg = f'{key}: {value!r} is invalid; expected {want}'
        raise ConfigError(msg)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset directory and its share of the training mix."""

    path: str
    weight: float = 1.0

    def __post_init__(self) -> None:
        check(bool(self.path), 'data.datasets[].path', self.path, 'a dataset directory')
        check(self.weight > 0, 'data.datasets[].weight', self.weight, 'a number > 0')


@dataclass(frozen=True)
class DataConfig:
    datasets: tuple[DatasetSpec, ...] = ()
    obs_horizon: int = 2  # To
    future_offset: int | None = None  # Δ; None = L (policy.chunk_length)
    normalization: str = 'minmax_p'  # minmax_p: p01/p99 -> [-1, 1]; minmax: min/max; meanstd
    image_shift: int = 4  # random-shift crop augmentation (pixels, replicate pad); 0 = off
    depth_max: float = 10000.0  # uint16 depth (mm) / depth_max -> [0, 1]
    val_fraction: float = 0.1  # share of each dataset's episodes held out for validation
    num_workers: int = 0
    prefetch_factor: int = 4
    persistent_workers: bool = True
    pin_memory: bool = True  # only used on CUDA
    # Trust scored before training (``ptr score``; ``ptr train --trust FILE`` sets ``trust``):
    trust: str | None = None  # the trust file; None: every window is drawn uniformly
    trust_level: str = 'episode'  # episode: its trust per window | frame: min(episode, frame)
    trust_apply: str = 'sampling'  # sampling: drawn by trust, each weighs 1 | loss: loss x trust

    def __post_init__(self) -> None:
        check(self.obs_horizon >= 1, 'data.obs_horizon', self.obs_horizon, 'an integer >= 1')
        check(
            self.future_offset is None or self.future_offset >= 1,
            'data.future_offset', self.future_offset, 'null (= chunk_length) or an integer >= 1',
        )
        check(
            self.normalization in NORMALIZATION_MODES,
            'data.normalization', self.normalization, ' | '.join(NORMALIZATION_MODES),
        )
        check(self.image_shift >= 0, 'data.image_shift', self.image_shift, 'an integer >= 0')
        check(self.depth_max > 0, 'data.depth_max', self.depth_max, 'a number > 0')
        check(
            0.0 <= self.val_fraction < 1.0, 'data.val_fraction', self.val_fraction, 'in [0, 1)'
        )
        check(self.num_workers >= 0, 'data.num_workers', self.num_workers, 'an integer >= 0')
        check(self.prefetch_factor >= 1, 'data.prefetch_factor', self.prefetch_factor, '>= 1')
        check(self.trust is None or bool(self.trust), 'data.trust', self.trust,
               'a trust file (ptr score) or null')
        check(self.trust_level in TRUST_LEVELS, 'data.trust_level', self.trust_level,
               ' | '.join(TRUST_LEVELS))
        check(self.trust_apply in TRUST_APPLY, 'data.trust_apply', self.trust_apply,
               ' | '.join(TRUST_APPLY))

    def delta(self, chunk_length: int) -> int:
        """Δ for a policy of chunk length ``chunk_length`` (L)."""
        return chunk_length if self.future_offset is None else self.future_offset


@dataclass(frozen=True)
class EncoderConfig:
    trunk: str = 'conv'  # conv | resnet18 (needs torchvision; weights only from a local file)
    channels: tuple[int, ...] = (32, 64, 128)  # conv trunk widths, one stride-2 stage each
    resnet_weights: str | None = None  # local safetensors file for the resnet18 trunk
    image_feature_dim: int = 64  # per-camera projection after pooling
    state_hidden: int = 128
    robot_embed_dim: int = 16
    context_dim: int = 256  # h
    groups: int = 8  # GroupNorm groups

    def __post_init__(self) -> None:
        check(self.trunk in TRUNKS, 'policy.encoder.trunk', self.trunk, ' | '.join(TRUNKS))
        check(
            len(self.channels) >= 1 and all(c > 0 and c % self.groups == 0
                                            for c in self.channels),
            'policy.encoder.channels', self.channels,
            f'a non-empty list of widths divisible by groups={self.groups}',
        )
        for name in ('image_feature_dim', 'state_hidden', 'robot_embed_dim', 'context_dim'):
            value = getattr(self, name)
            check(value >= 1, f'policy.encoder.{name}', value, 'an integer >= 1')


@dataclass(frozen=True)
class PolicyConfig:
    head: str = 'diffusion'  # diffusion (DDPM/DDIM) | flow (flow matching, Euler)
    chunk_length: int = 16  # L: actions per sampled chunk, the shape of the policy's output
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    unet_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    groups: int = 8
    time_embed_dim: int = 64
    train_timesteps: int = 100  # diffusion: K of the DDPM cosine schedule
    inference_steps: int = 10  # DDIM / Euler steps when sample_actions gets none
    clip_sample: float = 1.5  # diffusion: clamp of the predicted x0 (normalized units); 0 = off

    def __post_init__(self) -> None:
        check(self.head in HEADS, 'policy.head', self.head, ' | '.join(HEADS))
        check(self.chunk_length >= 1, 'policy.chunk_length', self.chunk_length,
              'an integer >= 1')
        check(
            len(self.unet_dims) >= 1 and all(d % self.groups == 0 for d in self.unet_dims),
            'policy.unet_dims', self.unet_dims, f'widths divisible by groups={self.groups}',
        )
        check(self.kernel_size % 2 == 1, 'policy.kernel_size', self.kernel_size, 'odd')
        check(self.train_timesteps >= 2, 'policy.train_timesteps', self.train_timesteps, '>= 2')
        check(self.inference_steps >= 1, 'policy.inference_steps', self.inference_steps, '>= 1')
        check(self.clip_sample >= 0, 'policy.clip_sample', self.clip_sample, '>= 0')


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.95, 0.999)
    warmup_steps: int = 500
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0  # 0 = off

    def __post_init__(self) -> None:
        check(self.lr > 0, 'optim.lr', self.lr, 'a number > 0')
        check(self.weight_decay >= 0, 'optim.weight_decay', self.weight_decay, '>= 0')
        check(self.warmup_steps >= 0, 'optim.warmup_steps', self.warmup_steps, '>= 0')
        check(0 <= self.min_lr_ratio <= 1, 'optim.min_lr_ratio', self.min_lr_ratio, 'in [0,1]')
        check(self.grad_clip >= 0, 'optim.grad_clip', self.grad_clip, '>= 0')


@dataclass(frozen=True)
class WeighterConfig:
    name: str = 'uniform'  # a name in ptr_core.weighting.WEIGHTERS (uniform, ptr)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    weighter: WeighterConfig = field(default_factory=WeighterConfig)
    out_dir: str = 'runs/train'
    steps: int = 1000
    batch_size: int = 64  # global batch (split over DDP ranks)
    seed: int = 0
    device: str = 'auto'  # auto | cpu | cuda | cuda:N
    amp: str = 'auto'  # auto (bf16 on CUDA) | bf16 | none
    compile: bool = False  # torch.compile the policy + weighter
    threads: int = 0  # torch CPU threads; 0: half the cores (ptr_core.threads: fast when busy)
    ema_decay: float = 0.999  # EMA of the policy weights (with a 1+t/10+t warm-up)
    log_every: int = 50
    val_every: int = 500  # 0 = no validation pass
    val_batches: int = 4
    save_every: int = 1000  # periodic checkpoints; the final one is always written
    keep_last: int = 3
    reinit_mismatched: bool = False  # --init: re-initialize tensors whose shapes differ

    def __post_init__(self) -> None:
        check(self.steps >= 1, 'steps', self.steps, 'an integer >= 1')
        check(self.batch_size >= 1, 'batch_size', self.batch_size, 'an integer >= 1')
        check(self.amp in AMP_MODES, 'amp', self.amp, ' | '.join(AMP_MODES))
        check(0 <= self.ema_decay < 1, 'ema_decay', self.ema_decay, 'in [0, 1)')
        check(self.log_every >= 1, 'log_every', self.log_every, 'an integer >= 1')
        check(self.val_every >= 0, 'val_every', self.val_every, 'an integer >= 0')
        check(self.save_every >= 1, 'save_every', self.save_every, 'an integer >= 1')
        check(self.keep_last >= 1, 'keep_last', self.keep_last, 'an integer >= 1')
        check(self.threads >= 0, 'threads', self.threads, 'an integer >= 0 (0: half the cores)')


# -- dict <-> dataclass ---------------------------------------------------------------------

T = TypeVar('T')


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if dataclasses.is_dataclass(tp):
        if tp is DatasetSpec and isinstance(value, str):
            value = {'path': value}
        if not isinstance(value, Mapping):
            msg = f'{key}: expected a mapping, got {value!r}'
            raise ConfigError(msg)
        return from_dict(tp, value, prefix=f'{key}.')  # type: ignore[arg-type]
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            msg = f'{key}: expected a list, got {value!r}'
            raise ConfigError(msg)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f'{key}[{i}]') for i, v in enumerate(value))
        if len(value) != len(args):
            msg = f'{key}: expected {len(args)} values, got {value!r}'
            raise ConfigError(msg)
        return tuple(_convert(a, v, f'{key}[{i}]') for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            msg = f'{key}: expected a mapping, got {value!r}'
            raise ConfigError(msg)
        values: Any = args[1] if len(args) == 2 else Any
        return {k: _convert(values, v, f'{key}.{k}') for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            msg = f'{key}: expected true or false, got {value!r}'
            raise ConfigError(msg)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f'{key}: expected an integer, got {value!r}'
            raise ConfigError(msg)
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads '3e-4' (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            msg = f'{key}: expected a number, got {value!r}'
            raise ConfigError(msg)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            msg = f'{key}: expected a string, got {value!r}'
            raise ConfigError(msg)
        return value
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], *, prefix: str = '') -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ``ConfigError``."""
    if not isinstance(data, Mapping):
        msg = f'{prefix.rstrip(".") or "config"}: expected a mapping, got {data!r}'
        raise ConfigError(msg)
    if cls is TrainConfig:
        data = migrate_chunk_length(migrate_trust_weighter(data))
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        msg = f'unknown config key {prefix + unknown[0]!r} (known: {", ".join(sorted(names))})'
        raise ConfigError(msg)
    kwargs = {k: _convert(hints[k], v, f'{prefix}{k}') for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        msg = f'{prefix.rstrip(".") or "config"}: {err}'
        raise ConfigError(msg) from err


def migrate_trust_weighter(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A config (or a checkpoint's) written when trust was a weighter -- ``weighter: {name:
    trust, options: {file, apply, level}}`` -- as it reads now: ``data.trust``,
    ``data.trust_apply``, ``data.trust_level`` and the uniform weighter (what that weighter
    applied: sampling by trust with weights of one, or loss weights)."""
    weighter = data.get('weighter')
    if not isinstance(weighter, Mapping) or weighter.get('name') != 'trust':
        return data
    options = weighter.get('options') or {}
    if not isinstance(options, Mapping):
        msg = f'weighter.options: expected a mapping, got {options!r}'
        raise ConfigError(msg)
    unknown = sorted(set(options) - {'file', 'apply', 'level'})
    if unknown:
        msg = (f'weighter.options: unknown key {unknown[0]!r} for the trust weighter '
               '(allowed: apply, file, level; now data.trust, data.trust_apply, '
               'data.trust_level)')
        raise ConfigError(msg)
    moved = {f'trust{"_" + k if k != "file" else ""}': v for k, v in options.items()
             if not (k == 'file' and v in ('', None))}  # '': the file was to come from --trust
    section = data.get('data') or {}
    if not isinstance(section, Mapping):
        msg = f'data: expected a mapping, got {section!r}'
        raise ConfigError(msg)
    return {**data, 'data': {**section, **moved}, 'weighter': {'name': 'uniform', 'options': {}}}


def migrate_chunk_length(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A config (or a checkpoint's) written when the chunk length was ``data.chunk_length`` as
    it reads now: ``policy.chunk_length`` (the policy owns it). Both set is refused."""
    section = data.get('data')
    if not isinstance(section, Mapping) or 'chunk_length' not in section:
        return data
    policy = data.get('policy') or {}
    if not isinstance(policy, Mapping):
        msg = f'policy: expected a mapping, got {policy!r}'
        raise ConfigError(msg)
    if 'chunk_length' in policy:
        msg = ('data.chunk_length and policy.chunk_length: both set; data.chunk_length is the '
               'old name of policy.chunk_length, keep only policy.chunk_length')
        raise ConfigError(msg)
    rest = {k: v for k, v in section.items() if k != 'chunk_length'}
    return {**data, 'data': rest, 'policy': {**policy, 'chunk_length': section['chunk_length']}}


def to_dict(config: Any) -> dict[str, Any]:
    """The resolved config as plain JSON/YAML-able data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))  # type: ignore[no-any-return]


#: An override: ``'a.b.c=value'`` (the value parsed as YAML, as ``--set`` gives it) or
#: ``('a.b.c', value)`` (the value used as it is: a path stays the string it is).
Override: TypeAlias = str | tuple[str, Any]


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """Apply overrides (``'a.b.c=value'``, value parsed as YAML, or ``('a.b.c', value)``) to a
    nested dict, in place."""
    for item in overrides:
        if isinstance(item, tuple):
            key, value = item[0], copy.deepcopy(item[1])  # the caller's objects stay its own
        else:
            key, value = _parse_override(item)
        node = data
        parts = key.split('.')
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                msg = f'--set {key}: {part!r} is not a section'
                raise ConfigError(msg)
            node = child
        node[parts[-1]] = value
    return data


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition('=')
    if not sep or not key:
        msg = f'--set {item!r}: expected key=value, e.g. optim.lr=3e-4'
        raise ConfigError(msg)
    try:
        return key, yaml.safe_load(raw) if raw else ''
    except yaml.YAMLError as err:
        msg = f'--set {key}: value {raw!r} is not valid YAML'
        raise ConfigError(msg) from err


def load_config(
    path: str | Path | None = None, overrides: Sequence[Override] = ()
) -> TrainConfig:
    """Load a training config YAML (or the defaults when ``path`` is None) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = read_yaml(path, 'training config', empty={}, error=ConfigError)
    apply_overrides(data, overrides)
    try:
        return from_dict(TrainConfig, data)
    except ConfigError as err:
        if path is None:
            raise
        msg = f'{path}: {err}'
        raise ConfigError(msg) from err
