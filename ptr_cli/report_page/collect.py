"""What the report page shows, gathered from datasets, a trust file and a training run.

Everything here is plain data (JSON-ready dicts); ``ptr_cli.report_page.page`` renders it.
A policy node's cadence log is read with ``ptr_ros.cadence`` (rclpy-free, no torch).
Arrays are downsampled for plotting (at most ``MAX_POINTS`` per series) and thumbnails are small
JPEGs as data URIs, so a page for hundreds of episodes stays a few MB.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from bag_tools.dataset import MANIFEST, Dataset, Episode
from bag_tools.errors import BagToolsError
from ptr_ros.cadence import CadenceWindow, read_cadence_log

__all__ = [
    'MAX_POINTS',
    'ReportError',
    'collect_cadence',
    'collect_datasets',
    'collect_training',
    'find_run',
    'look_first',
]

MAX_POINTS = 160  # per plotted series
THUMBS = 6  # frames per camera strip
THUMB_HEIGHT = 64  # px
LOW_TRUST = 0.5  # an episode below this trust is listed under "look at these first"
MAX_CADENCE_WINDOWS = 5000  # the newest windows of a cadence log shown (a week of minutes: 10k)


class ReportError(BagToolsError):
    """A report input (dataset, trust file, run folder) cannot be read."""


def _pick(n: int, k: int) -> npt.NDArray[np.int64]:
    return np.unique(np.linspace(0, max(n - 1, 0), min(n, k)).round().astype(np.int64))


def _series(values: npt.NDArray[Any], names: Sequence[str], rate_hz: float) -> dict[str, Any]:
    idx = _pick(len(values), MAX_POINTS)
    v = np.asarray(values, np.float64)[idx]
    v = np.where(np.isfinite(v), v, np.nan)
    return {
        't': [round(float(i) / rate_hz, 4) for i in idx],
        'names': list(names),
        'series': [[None if math.isnan(x) else round(float(x), 5) for x in v[:, d]]
                   for d in range(v.shape[1])],
    }


def _thumb_strip(frames: npt.NDArray[Any], valid: npt.NDArray[np.bool_]) -> str | None:
    """``THUMBS`` evenly spaced frames side by side, as a JPEG data URI (None: no valid frame)."""
    ok = np.flatnonzero(np.asarray(valid, bool))
    if len(ok) == 0:
        return None
    picks = ok[_pick(len(ok), THUMBS)]
    tiles = []
    for i in picks:
        img = np.asarray(frames[int(i)])
        if img.dtype == np.uint16:  # depth, mm: scale to the frame's range, then a color map
            d = img[..., 0].astype(np.float64)
            top = float(d.max()) or 1.0
            img = cv2.applyColorMap((d / top * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        else:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
        h, w = img.shape[:2]
        scale = THUMB_HEIGHT / h
        tiles.append(cv2.resize(img, (max(1, round(w * scale)), THUMB_HEIGHT),
                                interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_NEAREST))
        tiles.append(np.full((THUMB_HEIGHT, 2, 3), 255, np.uint8))
    ok_enc, buf = cv2.imencode('.jpg', np.concatenate(tiles[:-1], axis=1),
                               [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok_enc:
        return None
    return 'data:image/jpeg;base64,' + base64.b64encode(buf.tobytes()).decode('ascii')


def _sync_limit_s(role: str, rate_hz: float) -> float:
    """The offset a healthy topic stays under: half a step for interpolated streams (state,
    extra observations: a sample brackets every grid time), one step for held ones (every
    command -- ``action``, an arm group's ``action:<group>``, an ``extra_action`` -- and
    cameras: the latest sample is up to a period old)."""
    held = role.split(':', 1)[0] in ('action', 'camera')
    return (1.0 if held else 0.5) / rate_hz + 1e-6


def _sync_figures(ep: Episode, rate_hz: float) -> dict[str, Any]:
    topics = ep.sync_report.get('topics', [])
    worst = max(topics, key=lambda t: t['max_offset_s'], default=None)
    late = [t for t in topics if t['max_offset_s'] > _sync_limit_s(t['role'], rate_hz)]
    return {
        'worst_sync_s': float(worst['max_offset_s']) if worst else 0.0,
        'worst_topic': str(worst['topic']) if worst else '',
        'late_topics': [f'{t["topic"]} {1e3 * t["max_offset_s"]:.0f} ms' for t in late],
        'held': sum(int(t['held']) for t in topics),
        'dropped': sum(int(t['dropped']) for t in topics),
        'invalid': sum(int(t['invalid']) for t in topics),
        'topics': [{k: t[k] for k in ('topic', 'role', 'clock', 'messages', 'rate_hz',
                                      'max_gap_s', 'max_offset_s', 'held', 'dropped',
                                      'invalid')} for t in topics],
    }


def _trust_for(ds: Dataset, trust: Any) -> dict[str, tuple[float, npt.NDArray[np.float64]]]:
    if trust is None:
        return {}
    weights: dict[str, tuple[float, npt.NDArray[np.float64]]] = trust.for_dataset(ds)
    return weights


def collect_datasets(
    paths: Sequence[str | Path], *, trust: Any = None, max_details: int = 200,
) -> dict[str, Any]:
    """Episode rows, per-episode details (plots, thumbnails, sync) and per-source trust.

    ``trust`` is a ``bag_tools.trust.TrustFile``; it must match every dataset's content (a
    stale file is refused by ``TrustFile.for_dataset``). Details are kept for the first
    ``max_details`` episodes and for every episode listed under "look at these first".
    """
    datasets, rows, details = [], [], {}
    for n, path in enumerate(paths):
        if not (Path(path) / MANIFEST).is_file():
            msg = f'{path}: not a ptr dataset (no {MANIFEST}) and not a training run'
            raise ReportError(msg)
        ds = Dataset.open(path)
        weights = _trust_for(ds, trust)
        rate = float(ds.manifest['rate_hz'])
        datasets.append({
            'path': str(path), 'rate_hz': rate, 'episodes': len(ds),
            'frames': sum(e['length'] for e in ds.manifest['episodes']),
            'robots': sorted(ds.manifest['robots']), 'tasks': list(ds.manifest['tasks']),
        })
        for entry in ds.manifest['episodes']:
            ep = ds.episode(entry['id'])
            sync = _sync_figures(ep, rate)
            w = weights.get(ep.id)
            row = _episode_row(n, ep, rate, sync, w)
            rows.append(row)
            details[row['key']] = (ds, ep, sync, w)
    flagged = look_first(rows)
    keep = {r['key'] for r in rows[:max_details]} | {f['key'] for f in flagged}
    out_details = {key: _episode_detail(*details[key]) for key in keep}
    return {'datasets': datasets, 'episodes': rows, 'details': out_details,
            'sources': per_source(rows), 'look_first': flagged,
            'trust': None if trust is None else {
                'file': trust.source, 'created': trust.created,
                'w_min': trust.scorer.get('w_min')}}


def _episode_row(
    n: int, ep: Episode, rate: float, sync: dict[str, Any],
    w: tuple[float, npt.NDArray[np.float64]] | None,
) -> dict[str, Any]:
    """The episode's row of the table (``n``: its dataset's index)."""
    return {
        'key': f'{n}:{ep.id}', 'dataset': n, 'id': ep.id, 'robot': ep.robot, 'task': ep.task,
        'source': str(ep.tags.get('ptr.source', '')),
        'tags': {k: v for k, v in ep.tags.items() if k != 'ptr.source'},
        'frames': ep.length, 'duration_s': round(ep.length / rate, 3),
        'rate_hz': rate,
        'worst_sync_s': sync['worst_sync_s'], 'worst_topic': sync['worst_topic'],
        'late_topics': sync['late_topics'],
        'held': sync['held'], 'dropped': sync['dropped'], 'invalid': sync['invalid'],
        'trust': None if w is None else round(float(w[0]), 4),
    }


def _episode_detail(
    ds: Dataset, ep: Episode, sync: dict[str, Any],
    w: tuple[float, npt.NDArray[np.float64]] | None,
) -> dict[str, Any]:
    """The episode's detail panel: state/action/trust plots, thumbnails and sync table."""
    robot = ds.manifest['robots'][ep.robot]
    rate = float(ds.manifest['rate_hz'])
    return {
        'state': _series(ep.state, robot['state_names'], rate),
        'action': _series(ep.action, robot['action_names'], rate),
        'frame_trust': None if w is None else _series(
            np.asarray(w[1], np.float64)[:, None], ['trust'], rate),
        'thumbs': {role: _thumb_strip(ep.images[role], ep.image_valid[role])
                   for role in sorted(ep.images)},
        'sync': sync['topics'],
        'source_path': str(ep.meta.get('source', '')),
    }


def per_source(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Episodes, frames and trust (mean/min/max) per ``ptr.source`` tag."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r['source'] or '(untagged)', []).append(r)
    out = []
    for source, rs in sorted(groups.items()):
        trust = [r['trust'] for r in rs if r['trust'] is not None]
        out.append({
            'source': source, 'episodes': len(rs), 'frames': sum(r['frames'] for r in rs),
            'trust_mean': round(float(np.mean(trust)), 4) if trust else None,
            'trust_min': round(float(np.min(trust)), 4) if trust else None,
            'trust_max': round(float(np.max(trust)), 4) if trust else None,
        })
    return out


def look_first(rows: Sequence[Mapping[str, Any]], *, limit: int = 12) -> list[dict[str, Any]]:
    """Episodes worth a look: low trust (below ``LOW_TRUST`` or the lowest tenth), a topic
    whose sync offset exceeds its limit (``_sync_limit_s``), invalid steps. Most reasons
    first, then lowest trust."""
    trusts = sorted(r['trust'] for r in rows if r['trust'] is not None)
    cut = trusts[max(0, len(trusts) // 10 - 1)] if len(trusts) >= 10 else -1.0
    out = []
    for r in rows:
        reasons = []
        if r['trust'] is not None and (r['trust'] < LOW_TRUST or r['trust'] <= cut):
            reasons.append(f'low trust {r["trust"]:.2f}')
        if r['late_topics']:
            reasons.append(f'late samples: {", ".join(r["late_topics"])} (step '
                           f'{1e3 / r["rate_hz"]:.0f} ms)')
        if r['invalid']:
            reasons.append(f'{r["invalid"]} invalid step(s)')
        if reasons:
            out.append({'key': r['key'], 'id': r['id'], 'reasons': reasons,
                        'trust': r['trust']})
    out.sort(key=lambda f: (-len(f['reasons']),
                            f['trust'] if f['trust'] is not None else 2.0))
    return out[:limit]


# -- training runs -----------------------------------------------------------------------------

def find_run(path: str | Path) -> Path | None:
    """The run folder (holding ``metrics.jsonl``) of a checkpoint or run path, else None."""
    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if (cand / 'metrics.jsonl').is_file():
            return cand
    return None


def collect_training(path: str | Path) -> dict[str, Any]:
    """Training curves (every numeric metric of ``metrics.jsonl``, downsampled), the final
    values, the checkpoint's config summary and a benchmark ``result.json`` when present."""
    run = find_run(path)
    if run is None:
        msg = f'{path}: no metrics.jsonl here or in its parent folders; not a training run'
        raise ReportError(msg)
    records = []
    for n, line in enumerate((run / 'metrics.jsonl').read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except (ValueError, RecursionError) as err:
                msg = f'{run / "metrics.jsonl"}: line {n}: not valid JSON: {err}'
                raise ReportError(msg) from err
    curves: dict[str, list[list[float]]] = {}
    for rec in records:
        step = rec.get('step')
        for k, v in rec.items():
            if k != 'step' and isinstance(v, (int, float)) and math.isfinite(v):
                curves.setdefault(k, []).append([float(step or 0), float(v)])
    for k, pts in curves.items():
        curves[k] = [pts[int(i)] for i in _pick(len(pts), MAX_POINTS * 2)]
    final = {k: pts[-1][1] for k, pts in curves.items()}
    config: dict[str, Any] = {}
    ckpt = Path(path)
    for cand in (ckpt / 'config.json', run / 'final' / 'config.json', run / 'config.json'):
        if cand.is_file():
            try:
                config = json.loads(cand.read_text())
            except (OSError, ValueError, RecursionError):
                continue
            break
    result = None
    if (run / 'result.json').is_file():
        try:
            result = json.loads((run / 'result.json').read_text())
        except (OSError, ValueError, RecursionError):
            result = None
    train_cfg = config.get('train_config', config)
    datasets = [d['path'] for d in (train_cfg.get('data') or {}).get('datasets', [])
                if isinstance(d, Mapping) and 'path' in d]
    summary = {k: config[k] for k in ('step', 'head', 'weighter', 'git_revision')
               if k in config}
    weighter = config.get('weighter') or train_cfg.get('weighter') or {}
    trust = (weighter.get('options') or {}).get('file') if isinstance(weighter, Mapping) else None
    return {'run': str(run), 'checkpoint': str(path), 'curves': curves, 'final': final,
            'steps': len(records), 'config': summary, 'result': result, 'datasets': datasets,
            'trust_file': str(trust) if trust else None}


# -- the policy node's cadence log -------------------------------------------------------------

def collect_cadence(path: str | Path) -> dict[str, Any]:
    """The windows of a cadence log (``policy_node``'s ``cadence_log``, the newest
    ``MAX_CADENCE_WINDOWS``) as table rows, each with its flags, and one summary per node run."""
    windows = read_cadence_log(path)
    rows = [_cadence_row(w) for w in windows[-MAX_CADENCE_WINDOWS:]]
    runs: dict[str, dict[str, Any]] = {}
    for w, r in zip(windows[-MAX_CADENCE_WINDOWS:], rows):
        run = runs.setdefault(w['run'], {
            'run': w['run'], 'node': w['node'], 'checkpoint': w['checkpoint'],
            'started': w['run_started'], 'rate_hz': w['rate_hz'], 'horizon_ms': w['horizon_ms'],
            'window_s': w['window_s'], 'windows': 0, 'flagged': 0})
        run['windows'] += 1
        run['flagged'] += bool(r['flags'])
    return {'file': str(path), 'windows': len(windows), 'rows': rows,
            'runs': list(runs.values()), 'flagged': sum(bool(r['flags']) for r in rows)}


def _cadence_row(w: CadenceWindow) -> dict[str, Any]:
    """One window's row: start, ticks, the means and worsts, jitter, gap, overruns, flags."""
    gap, horizon = w['max_gap_ms'], w['horizon_ms']
    flags = []
    if gap is not None and horizon is not None and gap > horizon:
        flags.append(f'longest gap {gap:.0f} ms > executed horizon {horizon:.0f} ms: the '
                     'controller reached its last point and held')
    if w['overruns']:
        flags.append(f'{w["overruns"]} overrun(s): control ticks skipped, the control thread '
                     'woke a period late')
    return {
        'run': w['run'], 'start': w['start'], 't': w['start_unix'],
        'duration_s': w['duration_s'], 'complete': w['complete'], 'ticks': w['ticks'],
        'commands': w['commands'],
        'obs_age_mean': w['obs_age_ms']['mean'], 'obs_age_max': w['obs_age_ms']['max'],
        'inference_mean': w['inference_ms']['mean'], 'inference_max': w['inference_ms']['max'],
        'period_mean': w['period_ms']['mean'], 'period_max': w['period_ms']['max'],
        'jitter_p99': w['period_jitter_p99_ms'], 'max_gap': gap, 'horizon_ms': horizon,
        'overruns': w['overruns'], 'flags': flags,
    }
