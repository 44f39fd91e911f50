"""Summaries of datasets (what ``ptr inspect DATASET`` and the end of ``ptr ingest`` print)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bag_tools.dataset import Dataset, Episode

__all__ = ['format_dataset', 'format_sync', 'summarize_dataset', 'worst_sync']


def worst_sync(episodes: Iterable[Episode]) -> dict[str, dict[str, Any]]:
    """Per stream, the worst sync figures over ``episodes`` (max gap/offset, sums of counts).

    Keyed by topic; a topic read as two streams (state and action of one controller-state
    topic) is two rows, ``<topic> (<role>)``."""
    worst: dict[tuple[str, str], dict[str, Any]] = {}
    clocks: dict[tuple[str, str], set[str]] = {}
    for ep in episodes:
        for rep in ep.sync_report.get('topics', []):
            key = (rep['topic'], rep['role'])
            w = worst.setdefault(key, {
                'role': rep['role'], 'clock': '', 'min_rate_hz': float('inf'),
                'max_gap_s': 0.0, 'max_offset_s': 0.0, 'held': 0, 'dropped': 0,
                'invalid': 0, 'out_of_order': 0,
            })
            clocks.setdefault(key, set()).add(rep['clock'])
            w['min_rate_hz'] = min(w['min_rate_hz'], rep['rate_hz'])
            for k in ('max_gap_s', 'max_offset_s'):
                w[k] = max(w[k], rep[k])
            for k in ('held', 'dropped', 'invalid', 'out_of_order'):
                w[k] += rep[k]
    roles: dict[str, int] = {}
    for topic, _ in worst:
        roles[topic] = roles.get(topic, 0) + 1
    out: dict[str, dict[str, Any]] = {}
    for (topic, role), w in worst.items():
        w['clock'] = '+'.join(sorted(clocks[(topic, role)]))
        if w['min_rate_hz'] == float('inf'):
            w['min_rate_hz'] = 0.0
        out[topic if roles[topic] == 1 else f'{topic} ({role})'] = w
    return out


def summarize_dataset(path: str | Path) -> dict[str, Any]:
    """Episodes and frames per robot, cameras, statistics and the worst sync figures."""
    ds = Dataset.open(path)
    m = ds.manifest
    robots: dict[str, Any] = {}
    for name, entry in m['robots'].items():
        eps = [e for e in m['episodes'] if e['robot'] == name]
        episodes = [ds.episode(e['id']) for e in eps]
        sources: dict[str, int] = {}
        for e in eps:
            tag = str(e['tags'].get('ptr.source', ''))
            if tag:
                sources[tag] = sources.get(tag, 0) + 1
        robots[name] = {
            'episodes': len(eps),
            'frames': sum(e['length'] for e in eps),
            'bags': len({e['content_hash'] for e in eps}),
            'state_dim': len(entry['state_names']),
            'action_dim': len(entry['action_names']),
            'state_names': entry['state_names'],
            'action_names': entry['action_names'],
            'cameras': {
                role: {'channels': entry['image_channels'][role],
                       'dtype': entry['image_dtypes'][role]}
                for role in entry['camera_roles']
            },
            'image_size': entry['image_size'],
            'sources': sources,
            'stats': m['stats'].get(name, {}),
            'sync': worst_sync(episodes),
        }
    return {
        'path': str(path),
        'schema_version': m['schema_version'],
        'rate_hz': m['rate_hz'],
        'episodes': len(m['episodes']),
        'frames': sum(e['length'] for e in m['episodes']),
        'tasks': list(m['tasks']),
        'robots': robots,
    }


def _fmt(values: list[float], n: int = 4) -> str:
    shown = ' '.join(f'{v:+.3f}' for v in values[:n])
    return f'[{shown}{" ..." if len(values) > n else ""}]'


def format_sync(sync: Mapping[str, Mapping[str, Any]], indent: str = '  ') -> list[str]:
    """The worst-sync table, one row per topic."""
    if not sync:
        return []
    width = max(len(t) for t in sync)
    rw = max(4, *(len(w['role']) for w in sync.values()))
    cw = max(10, *(len(w['clock']) for w in sync.values()))
    lines = [f'{indent}{"topic":<{width}}  {"role":<{rw}} {"clock":<{cw}} {"rate Hz":>8} '
             f'{"max gap s":>9} {"max |dt| s":>10} {"held":>6} {"dropped":>7} {"invalid":>7}']
    for topic, w in sync.items():
        lines.append(
            f'{indent}{topic:<{width}}  {w["role"]:<{rw}} {w["clock"]:<{cw}} '
            f'{w["min_rate_hz"]:>8.2f} {w["max_gap_s"]:>9.3f} {w["max_offset_s"]:>10.3f} '
            f'{w["held"]:>6} {w["dropped"]:>7} {w["invalid"]:>7}'
        )
    return lines


def format_dataset(summary: Mapping[str, Any]) -> str:
    """``summarize_dataset``'s result as a one-screen text."""
    lines = [
        f'{summary["path"]}  (ptr dataset v{summary["schema_version"]}, '
        f'{summary["rate_hz"]:g} Hz)',
        f'  episodes: {summary["episodes"]}   frames: {summary["frames"]}   '
        f'tasks: {len(summary["tasks"])}',
    ]
    for name, r in summary['robots'].items():
        cams = ', '.join(
            f'{role} ({c["channels"]}ch {c["dtype"]})' for role, c in r['cameras'].items()
        ) or 'none'
        lines.append(f'  robot {name}: {r["episodes"]} episodes from {r["bags"]} bags, '
                     f'{r["frames"]} frames, state {r["state_dim"]}, action {r["action_dim"]}')
        size = 'x'.join(str(v) for v in r['image_size'])
        lines.append(f'    cameras: {cams}' + (f' at {size}' if r['cameras'] else ''))
        if r['sources']:
            tags = ', '.join(f'{k}: {v}' for k, v in sorted(r['sources'].items()))
            lines.append(f'    sources: {tags}')
        for feature, st in r['stats'].items():
            lines.append(f'    {feature:<6} mean {_fmt(st["mean"])} std {_fmt(st["std"])} '
                         f'p01 {_fmt(st["p01"])} p99 {_fmt(st["p99"])}')
        if r['sync']:
            lines.append('    worst sync over its episodes:')
            lines += format_sync(r['sync'], indent='      ')
    return '\n'.join(lines)
