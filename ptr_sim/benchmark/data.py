"""Stages 1-2: record the Meta-World sets (``record-sim``'s code) and ingest them, resumably
(a marker per finished set says what was recorded)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from ptr_sim.benchmark.cells import Say
from ptr_sim.benchmark_config import BenchmarkConfig
from ptr_sim.recorder import plan_episodes, record, write_profile


def _record_and_ingest(
    cfg: BenchmarkConfig, name: str, tasks: Sequence[str], mix: dict[str, int], seed: int,
    out: Path, say: Say,
) -> Path:
    """Record ``mix`` of ``tasks`` into ``out/bags/<name>``, ingest it into ``out/data/<name>``."""
    data = out / 'data' / name
    marker = data / '.complete'
    plan = json.dumps({'tasks': list(tasks), 'mix': dict(mix), 'seed': seed,
                       'setups': list(cfg.setups), 'image_size': cfg.image_size,
                       'record_max_steps': cfg.record_max_steps, 'images': cfg.images,
                       'fixed_horizon': cfg.fixed_horizon},
                      sort_keys=True, default=str)
    if _marker_matches(marker, plan, say):
        return data
    bags = out / 'bags' / name
    shutil.rmtree(bags, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    reqs = plan_episodes(tasks, cfg.setups, {k: v for k, v in mix.items() if v > 0}, seed=seed)
    t0 = time.monotonic()
    eps = record(reqs, bags, image_size=cfg.image_size, max_steps=cfg.record_max_steps,
                 render=cfg.images, settle_steps=None if cfg.fixed_horizon else 10)
    ok = sum(e.success for e in eps)
    say(f'  recorded {name}: {len(eps)} episodes ({ok} successful) in '
        f'{time.monotonic() - t0:.0f} s')
    _ingest_setups(cfg, bags, data, out)
    marker.write_text(plan + '\n')
    return data


def _marker_matches(marker: Path, plan: str, say: Say) -> bool:
    """Whether a finished stage's ``.complete`` marker holds ``plan`` (what it was made from);
    a marker from other settings is said and the stage redone."""
    if not marker.exists():
        return False
    if marker.read_text().strip() == plan:
        return True
    say(f'  {marker.parent} was made with other settings: recording it again')
    return False


def _ingest_setups(cfg: BenchmarkConfig, bags: Path, data: Path, out: Path) -> None:
    """Ingest ``bags/setup_<s>`` of every setup into ``data`` with that setup's profile."""
    from bag_tools.ingest import ingest
    from bag_tools.profile import load_profile

    for setup in cfg.setups:
        folder = bags / f'setup_{setup}'
        if not folder.is_dir():
            continue
        profile = write_profile(setup, out / 'profiles' / f'metaworld_{setup}.yaml',
                                cameras=cfg.images)
        res = ingest([folder], load_profile(profile), data)
        if not res.ok:
            failed = [b.reason for b in res.bags if b.reason]
            msg = f'ingest of {folder} failed: {failed[:1]}'
            raise RuntimeError(msg)


def _experts_subset(cfg: BenchmarkConfig, name: str, out: Path, say: Say) -> Path:
    """``data/<name>.experts``: the expert bags of the recorded set ``name``, copied and
    ingested alone (the same episodes, byte for byte, without the others)."""
    data = out / 'data' / f'{name}.experts'
    marker = data / '.complete'
    source = out / 'data' / name / '.complete'
    source_plan = source.read_text().strip() if source.exists() else ''
    plan = json.dumps({'experts_of': name, 'plan': source_plan}, sort_keys=True)
    if _marker_matches(marker, plan, say):
        return data
    src, bags = out / 'bags' / name, out / 'bags' / f'{name}.experts'
    shutil.rmtree(bags, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    n = 0
    for folder in sorted(src.glob('setup_*/*__expert__*')):
        shutil.copytree(folder, bags / folder.parent.name / folder.name)
        n += 1
    if not n:
        msg = f'{src}: no expert episodes to train on alone (experts_alone)'
        raise RuntimeError(msg)
    _ingest_setups(cfg, bags, data, out)
    say(f'  {name}.experts: its {n} expert episodes alone')
    marker.write_text(plan + '\n')
    return data
