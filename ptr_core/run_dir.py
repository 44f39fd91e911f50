"""A training run's directory: its periodic checkpoints, its metrics and ``run.json``.

Layout::

    RUN/
      checkpoints/step_<N>/  periodic checkpoints (ptr_core.checkpoint), the last ``keep_last``
      final/                 the checkpoint at the end
      metrics.jsonl          one JSON row per logged step, appended whole or not at all
      tensorboard/           the same metrics, when TensorBoard is installed
      run.json               what the run trains on, and every change a resume made
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ptr_core.checkpoint import append_line, file_sha256, read_json_file, write_file_atomic
from ptr_core.configuration import TrainConfig
from ptr_core.errors import CheckpointError, ConfigError, PtrError

__all__ = [
    'MetricsWriter',
    'check_resumed_inputs',
    'checkpoint_dirs',
    'latest_checkpoint',
    'prune_checkpoints',
    'record_run_inputs',
    'run_inputs',
    'step_dir',
]

log = logging.getLogger(__name__)

STEP_PREFIX = 'step_'


# -- run directories ------------------------------------------------------------------------

def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete periodic checkpoints of a run, oldest first."""
    root = Path(run_dir) / 'checkpoints'
    if not root.is_dir():
        return []
    dirs = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX)
            and (p / 'config.json').is_file()]
    return sorted(dirs, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def step_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / 'checkpoints' / f'{STEP_PREFIX}{step:08d}'


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# -- what a run trains on -------------------------------------------------------------------
#
# ``run.json`` in a run directory records what the run was started with (its datasets, its
# weighter, its trust file and that file's sha256), what it trains on now, and every change a
# ``--resume --allow-change`` made, so that a resumed run cannot silently train on other data or
# with another method than its first part.

RUN_RECORD = 'run.json'
RUN_FORMAT = 'ptr-run/1'
_INPUT_KEYS = ('datasets', 'weighter', 'trust')


def run_inputs(config: TrainConfig, *, hash_trust: bool = True) -> dict[str, Any]:
    """The inputs of a run as ``run.json`` records them: datasets (resolved paths, weights),
    weighter (name, options but the file) and trust file (resolved path, sha256) or None."""
    trust = None
    if config.data.trust is not None:
        path = Path(config.data.trust).resolve()
        digest = file_sha256(path) if hash_trust and path.is_file() else None
        trust = {'file': str(path), 'sha256': digest, 'apply': config.data.trust_apply,
                 'level': config.data.trust_level}
    inputs = {
        'datasets': [{'path': str(Path(s.path).resolve()), 'weight': s.weight}
                     for s in config.data.datasets],
        'weighter': {'name': config.weighter.name, 'options': dict(config.weighter.options)},
        'trust': trust,
    }
    return json.loads(json.dumps(inputs))  # type: ignore[no-any-return]  # plain JSON values


def record_run_inputs(run_dir: str | Path, inputs: Mapping[str, Any]) -> None:
    """Start ``run_dir``'s ``run.json``: a new run was started with ``inputs``."""
    _write_run_record(Path(run_dir), {'format': RUN_FORMAT, 'started_with': dict(inputs),
                                      'current': dict(inputs), 'changes': []})


def check_resumed_inputs(
    run_dir: str | Path,
    inputs: Mapping[str, Any],
    *,
    previous: Mapping[str, Any],
    step: int,
    allow_change: bool,
    write: bool,
) -> None:
    """Refuse to resume ``run_dir`` at ``step`` with other ``inputs`` than it trained on so far
    (``run.json``'s; ``previous`` for a run directory without one) unless ``allow_change``: then
    the change is appended to ``run.json`` (when ``write``) instead of replacing the record."""
    run_dir = Path(run_dir)
    record = _read_run_record(run_dir)
    missing = record is None
    if record is None:
        record = {'format': RUN_FORMAT, 'started_with': dict(previous),
                  'current': dict(previous), 'changes': []}
    changed = _changed_inputs(record['current'], inputs)
    if changed and not allow_change:
        msg = (f'{run_dir}: --resume would change the run: {"; ".join(changed.values())}; '
               f'pass --allow-change to continue with the change (recorded in {RUN_RECORD})')
        raise ConfigError(msg)
    if changed:
        log.warning('%s: resumed with a change at step %d: %s', run_dir, step,
                    '; '.join(changed.values()))
        record['changes'].append({
            'step': step, 'time': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            'changed': {k: {'old': record['current'].get(k), 'new': inputs[k]} for k in changed},
        })
    updated = record['current'] != inputs  # a change, or a trust sha256 learnt
    record['current'] = dict(inputs)
    if write and (missing or updated):
        _write_run_record(run_dir, record)


def _changed_inputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, str]:
    """Per changed key of ``_INPUT_KEYS``: 'what: old -> new' (a trust file whose recorded
    sha256 is unknown compares by path only)."""
    changed: dict[str, str] = {}
    old = _as_data_trust(old)
    if old.get('datasets') != new['datasets']:
        changed['datasets'] = (f'datasets {_datasets_text(old.get("datasets"))} -> '
                               f'{_datasets_text(new["datasets"])}')
    if old.get('weighter') != new['weighter']:
        changed['weighter'] = (f'weighter {_weighter_text(old.get("weighter"))} -> '
                               f'{_weighter_text(new["weighter"])}')
    was, now = old.get('trust'), new['trust']
    if (was is None) != (now is None) or (was and now and was.get('file') != now['file']):
        changed['trust'] = (f'trust file {was["file"] if was else "none"} -> '
                            f'{now["file"] if now else "none"}')
    elif was and now and was.get('sha256') not in (None, now['sha256']):
        changed['trust'] = (f'trust file {now["file"]} content sha256 {was["sha256"][:12]} -> '
                            f'{str(now["sha256"])[:12]}')
    elif was and now and (was.get('apply', 'sampling'), was.get('level', 'episode')) != (
            now['apply'], now['level']):
        changed['trust'] = (f'trust applied by {was.get("apply", "sampling")}/'
                            f'{was.get("level", "episode")} -> {now["apply"]}/{now["level"]}')
    return changed


def _as_data_trust(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """Inputs recorded when trust was a weighter (``weighter: trust`` with apply/level) as
    they read now: the uniform weighter and the trust's apply/level beside its file."""
    weighter = inputs.get('weighter')
    if not isinstance(weighter, dict) or weighter.get('name') != 'trust':
        return inputs
    options = weighter.get('options') or {}
    trust = inputs.get('trust')
    if isinstance(trust, dict):
        trust = {**trust, 'apply': options.get('apply', 'sampling'),
                 'level': options.get('level', 'episode')}
    return {**inputs, 'weighter': {'name': 'uniform', 'options': {}}, 'trust': trust}


def _datasets_text(datasets: Any) -> str:
    if not isinstance(datasets, list):
        return repr(datasets)
    return '[' + ', '.join(
        repr(d.get('path')) + ('' if d.get('weight') == 1.0 else f' (weight {d.get("weight")})')
        for d in datasets if isinstance(d, dict)) + ']'


def _weighter_text(weighter: Any) -> str:
    if not isinstance(weighter, dict):
        return repr(weighter)
    options = weighter.get('options') or {}
    return f'{weighter.get("name")}' + (f' {json.dumps(options, sort_keys=True)}' if options
                                        else '')


def _read_run_record(run_dir: Path) -> dict[str, Any] | None:
    file = run_dir / RUN_RECORD
    if not file.exists():
        return None
    record = read_json_file(file)
    if (not isinstance(record, dict) or record.get('format') != RUN_FORMAT
            or not isinstance(record.get('current'), dict)
            or not isinstance(record.get('changes'), list)):
        msg = (f'{file}: not a {RUN_FORMAT} record of what the run trains on; restore it or '
               f'remove it to resume without the check')
        raise CheckpointError(msg)
    return record


def _write_run_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    write_file_atomic(run_dir / RUN_RECORD, json.dumps(record, indent=1) + '\n')


class MetricsWriter:
    """JSONL metrics (always) and TensorBoard (when installed), rank 0 only. Every row is
    appended whole or not at all (``append_line``)."""

    def __init__(self, out_dir: Path, enabled: bool, *, start_step: int = 0) -> None:
        self.enabled = enabled
        self.file = out_dir / 'metrics.jsonl'
        self.tb: Any = None
        if not enabled:
            return
        if self.file.exists():
            self._keep_until(start_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / 'tensorboard'))
        except ImportError:
            log.debug('tensorboard not installed; metrics go to %s only', self.file)

    def _keep_until(self, step: int) -> None:
        """A resumed run: drop the rows a killed run logged past its checkpoint, and a row it
        was killed writing."""
        try:
            lines = self.file.read_text(errors='replace').splitlines()
        except OSError as err:
            msg = f'{self.file}: cannot read: {err.strerror or err}'
            raise PtrError(msg) from err
        kept = []
        for line in lines:
            try:
                row = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(row, dict) and isinstance(row.get('step'), int) and row['step'] <= step:
                kept.append(line)
        write_file_atomic(self.file, ''.join(f'{x}\n' for x in kept))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        append_line(self.file, json.dumps({'step': step, **metrics}))
        if self.tb is not None:
            for k, v in metrics.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
