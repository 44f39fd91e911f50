"""``BenchmarkConfig``: what ``ptr benchmark`` records, trains and evaluates (YAML presets in
``ptr_sim/configs/``: ``quick``, ``full``, ``gpu``, ``tiny`` for the demo's test setting)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bag_tools.fileio import read_yaml
from ptr_core.configuration import HEADS, apply_overrides, from_dict
from ptr_core.errors import ConfigError
from ptr_core.weighting import WEIGHTERS
from ptr_sim.evaluate import SPLITS
from ptr_sim.setups import SETUPS
from ptr_sim.sources import Source

#: What a method may be: a weighter of ``ptr_core.weighting``, or ``trust`` (scored by ``ptr
#: score`` on the cell's base, then ``data.trust``: drawn by trust; ``oracle:`` the tags').
METHOD_KINDS = (*WEIGHTERS, 'trust')
#: The untrained checks a trust method may take its trust from (``baseline:``; what each is:
#: ``ptr_sim.benchmark.baselines``).
BASELINES = ('length', 'lag_correlation', 'random')

__all__ = ['PRESET_DIR', 'BenchmarkConfig', 'MethodSpec', 'load_benchmark_config']

PRESET_DIR = Path(__file__).resolve().parent / 'configs'


@dataclass(frozen=True)
class MethodSpec:
    """One post-training method: a weighter name and its options."""

    name: str  # the label in tables and plots
    weighter: str  # uniform | ptr | trust (options: apply, level, score: {ptr score options},
    #                base: uniform = score on the same seed's uniform checkpoint, else the base)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchmarkConfig:
    name: str = 'custom'
    tasks: tuple[str, ...] = ('pick-place-v3', 'push-v3')  # target tasks (post-training)
    pretrain_tasks: tuple[str, ...] = ('reach-v3', 'push-wall-v3', 'pick-place-wall-v3')
    pretrain_episodes: int = 20  # expert episodes per pretraining task
    mix: dict[str, int] = field(default_factory=lambda: {'expert': 20})  # per target task
    control_mix: dict[str, int] = field(default_factory=dict)  # expert-only control ({} = off)
    # also train uniform on each mixed set's own expert episodes (data ``<data>.experts``, the
    # same bags re-ingested): the clean end of the gap that set's bad episodes open, free of
    # which goals a separate expert recording (``control_mix``) happened to draw
    experts_alone: bool = False
    # more mixed data sets per target task, each run with every method like ``mix`` (e.g.
    # ``lowattr: {expert: 40, random_labels: 14, ...}``); the data name is the key
    mixes: dict[str, dict[str, int]] = field(default_factory=dict)
    control_methods: tuple[str, ...] = ('uniform', 'ptr_action')
    control_heads: tuple[str, ...] = ('flow',)
    setups: tuple[str, ...] = ('a', 'b')
    heads: tuple[str, ...] = ('flow', 'diffusion')
    methods: tuple[MethodSpec, ...] = (MethodSpec('uniform', 'uniform'),)
    seeds: tuple[int, ...] = (0,)
    train_config: str = 'config/train/debug.yaml'  # base training preset (resolved from repo)
    train_overrides: tuple[str, ...] = ()  # --set style overrides for every run
    pretrain_steps: int = 1000
    posttrain_steps: int = 1000
    # > 0: one uniform warm start of this many steps on each (task, data, head, seed)'s own data
    # (from the pretrained base, if any), shared by every method of it as their base and as the
    # trust scorer's encoder — pretraining done once per run when no other tasks' data exist
    warm_start_steps: int = 0
    images: bool = False  # image policies (slow on a CPU) instead of state-only
    image_size: int = 96
    record_max_steps: int = 150
    # every episode recorded to ``record_max_steps`` (the source keeps acting after success: the
    # expert holds the object at the goal), so length says nothing about success; false: each
    # episode ends 10 steps after its first success (the recordings before issue 26)
    fixed_horizon: bool = True
    # which held-out goals the cells are evaluated on: ``dev`` for every choice of method or
    # default, ``test`` only for reported tables (disjoint goal seeds: ptr_sim.evaluate)
    split: str = 'dev'
    eval_episodes: int = 50  # per cell (task x head x method x seed), split over the setups
    eval_max_steps: int = 150
    execute: int = 4  # actions executed per predicted chunk
    workers: int = 1  # parallel training/evaluation processes
    threads: int = 1  # torch threads per process
    # where every training run and every trust scoring runs: cpu | cuda | cuda:N | auto (CUDA
    # when present); '' leaves training to train_config/train_overrides and scores on the CPU
    device: str = ''

    def __post_init__(self) -> None:
        def need(cond: bool, key: str, want: str) -> None:
            if not cond:
                msg = f'benchmark {key}: {getattr(self, key)!r} is not {want}'
                raise ConfigError(msg)

        need(bool(self.tasks), 'tasks', 'a non-empty list of Meta-World tasks')
        need(all(s in SETUPS for s in self.setups) and bool(self.setups), 'setups',
             f'a non-empty list of {sorted(SETUPS)}')
        need(self.images or not any(SETUPS[s].cameras_only for s in self.setups), 'setups',
             'cameras-only setups (c) with images: false (their state has no object or goal)')
        need(all(h in HEADS for h in self.heads) and bool(self.heads), 'heads',
             f'a list of {" | ".join(HEADS)}')
        need(bool(self.methods), 'methods', 'a non-empty list')
        need(len({m.name for m in self.methods}) == len(self.methods), 'methods',
             'a list with distinct names')
        need(all(m.weighter in METHOD_KINDS for m in self.methods), 'methods',
             f'weighters {" | ".join(METHOD_KINDS)}')
        need(all(_oracle_floor_ok(m) for m in self.methods), 'methods',
             'oracle: a trust floor in [0, 1) on a trust method')
        need(all(_baseline_ok(m) and (m.options.get('keep') != 'matched'
                                          or any(n.name == 'trust' for n in self.methods))
                 for m in self.methods), 'methods',
             f'baseline: one of {" | ".join(BASELINES)} on a trust method (keep: a share in '
             "(0, 1] or 'matched', with a trust arm named trust)")
        names = {m.name for m in self.methods}
        need(all(m.weighter != 'trust' or (self.pretrain_tasks and self.pretrain_episodes)
                 or self.warm_start_steps > 0
                 or (m.options.get('base') == 'uniform' and 'uniform' in names)
                 for m in self.methods), 'methods',
             'trust methods with a pretrained base (pretrain_tasks, pretrain_episodes), a '
             "warm start (warm_start_steps) or base: uniform (the uniform cell's checkpoint; "
             'needs the uniform method)')
        need(bool(self.mix) and all(n >= 0 for n in self.mix.values()), 'mix',
             'a mapping source -> episodes')
        need(all(name not in ('mix', 'control') and '.' not in name and bool(m)
                 and all(n >= 0 for n in m.values()) for name, m in self.mixes.items()), 'mixes',
             "a mapping name -> {source: episodes} (names other than 'mix' and 'control', "
             "without a '.')")
        for tag in [*self.mix, *self.control_mix, *(t for m in self.mixes.values() for t in m)]:
            Source.parse(tag)
        known = {m.name for m in self.methods}
        need(not self.control_mix or all(m in known for m in self.control_methods),
             'control_methods', f'a subset of the methods {sorted(known)}')
        need(bool(self.seeds), 'seeds', 'a non-empty list')
        need(self.split in SPLITS, 'split', ' | '.join(SPLITS))
        need(self.device in ('', 'cpu', 'cuda', 'auto') or self.device.startswith('cuda:'),
             'device', "cpu | cuda | cuda:N | auto (or '': the train config's)")
        for key in ('pretrain_steps', 'posttrain_steps', 'eval_episodes', 'eval_max_steps',
                    'execute', 'workers', 'threads', 'record_max_steps'):
            need(getattr(self, key) >= 1, key, 'an integer >= 1')
        need(self.pretrain_episodes >= 0, 'pretrain_episodes', 'an integer >= 0')
        need(self.warm_start_steps >= 0, 'warm_start_steps', 'an integer >= 0')
        need(not self.experts_alone or 'uniform' in names, 'experts_alone',
             'true only with a uniform method (the experts-alone cells train uniform)')
        need(not self.experts_alone or all(m.get('expert', 0) > 0
                                           for m in self.mixed_data.values()),
             'experts_alone', 'true only when every mixed set has expert episodes')

    @property
    def degraded_share(self) -> float:
        """Share of non-expert episodes in the target mix."""
        return self.share_of('mix')

    @property
    def mixed_data(self) -> dict[str, dict[str, int]]:
        """Every mixed data set per target task by its data name: ``mix`` first, then
        ``mixes``."""
        return {'mix': self.mix, **self.mixes}

    def share_of(self, data: str, kinds: Sequence[str] | None = None) -> float:
        """Share of the non-expert episodes (or of the ``kinds`` sources) in a mixed set."""
        mix = self.mixed_data[data]
        total = sum(mix.values())
        if not total:
            return 0.0
        if kinds is None:
            return 1.0 - mix.get('expert', 0) / total
        return sum(n for k, n in mix.items() if k in kinds) / total

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _parse(data: Mapping[str, Any], source: str) -> BenchmarkConfig:
    """A preset's mapping as a ``BenchmarkConfig`` through the one config parser
    (``ptr_core.configuration.from_dict``); ``methods`` is written as ``name: {weighter,
    options}``. Errors name ``source`` and the key."""
    data = dict(data)
    methods = data.get('methods')
    if methods is not None:
        if not isinstance(methods, Mapping) or not all(
                isinstance(spec, Mapping) for spec in methods.values()):
            msg = f'{source}: methods: expected a mapping name -> {{weighter, options}}'
            raise ConfigError(msg)
        data['methods'] = [{'name': str(name), **spec} for name, spec in methods.items()]
    for key in ('mix', 'control_mix', 'mixes'):
        if data.get(key) is None and key in data:
            data[key] = {}
    try:
        return from_dict(BenchmarkConfig, data)
    except (ConfigError, ValueError) as err:
        msg = f'{source}: {err}'
        raise ConfigError(msg) from err


def load_benchmark_config(
    preset_or_path: str | Path, overrides: Sequence[str] = ()
) -> BenchmarkConfig:
    """A preset name (``quick``, ``full``, ``gpu``, ``tiny``) or a YAML path, plus overrides."""
    path = Path(preset_or_path)
    if not path.suffix:
        path = PRESET_DIR / f'{preset_or_path}.yaml'
    if not path.is_file():
        presets = sorted(p.stem for p in PRESET_DIR.glob('*.yaml'))
        msg = f'{path}: no such benchmark config; presets: {presets}'
        raise ConfigError(msg)
    data = read_yaml(path, 'benchmark config', want=None, empty={}, error=ConfigError)
    if not isinstance(data, dict):
        msg = f'{path}: expected a mapping at the top level'
        raise ConfigError(msg)
    apply_overrides(data, overrides)
    return _parse(data, str(path))


def _baseline_ok(method: MethodSpec) -> bool:
    """A method's ``baseline`` option (an untrained check's trust: ptr_sim.benchmark.
    baselines), when present, names a check on a trust method; its ``keep`` is in (0, 1] or
    ``matched`` (the ``trust`` arm's frames; checked where the arms are known)."""
    opts = method.options
    if 'baseline' not in opts:
        return 'keep' not in opts
    keep = opts.get('keep', 0.5)
    if keep == 'matched':
        return method.weighter == 'trust' and opts['baseline'] in BASELINES
    return (method.weighter == 'trust' and opts['baseline'] in BASELINES
            and 'oracle' not in opts and isinstance(keep, (int, float))
            and not isinstance(keep, bool) and 0.0 < float(keep) <= 1.0)


def _oracle_floor_ok(method: MethodSpec) -> bool:
    """A method's ``oracle`` option (the benchmark's source-tag trust), when present, is a
    number in [0, 1) on a trust method."""
    if 'oracle' not in method.options:
        return True
    floor = method.options['oracle']
    return (method.weighter == 'trust' and isinstance(floor, (int, float))
            and not isinstance(floor, bool) and 0.0 <= float(floor) < 1.0)
