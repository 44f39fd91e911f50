"""Does an episode's trust depend on which unrelated episodes share its set? (issue 26, item 6)

Setup: the bags a benchmark recorded for one set (``--bags``: a folder of ``setup_<s>/``
folders, each bag tagged with its source) and the base its trust arm scores with (``--base``).
Set A is every bag whose source is not in ``--add``; set A+B is all of them. Both are ingested
(with ``--profiles``' ``metaworld_<s>.yaml``) and scored by ``ptr score``'s defaults; A is scored
a second time with another scorer seed. An episode of A then has three trusts: alone (seed s),
alone (seed s + 1) and beside B (seed s). Printed, per source of A and over all of A's episodes:

- ``alone`` / ``beside B``: mean trust;
- ``|d| seed``: mean and largest change of an episode's trust between the two seeds alone (what
  scoring alone varies);
- ``|d| set``: the same between alone and beside B (seed s), and the share of A's episodes whose
  trust moves by more than ``--moved`` (default 0.2) -- coupling beyond the seed's own spread
  is what the issue asks to measure.

Usage (a dev recording of the ``minority`` preset, its uniform warm start as the base)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/bench_trust_coupling.py \\
        --bags runs/dev_minority_push/bags/seed0/push-v3/mix \\
        --profiles runs/dev_minority_push/profiles \\
        --base runs/dev_minority_push/runs/warm/push-v3/mix/flow/seed0/final \\
        --add delayed_2,gain_1.5,flipped_axis,gripper_sign,shuffled_labels
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _bag_sources(bags: Path) -> dict[Path, str]:
    """Every bag under ``bags/setup_<s>/`` and the source it is tagged with."""
    from bag_tools.reader import open_bag

    found: dict[Path, str] = {}
    for setup in sorted(bags.glob('setup_*')):
        for bag in sorted(p for p in setup.iterdir() if p.is_dir()):
            with open_bag(bag) as reader:
                found[bag] = reader.custom_data()['ptr.source']
    if not found:
        raise SystemExit(f'{bags}: no setup_<s>/ bag folders')
    return found


def _ingest(bags: list[Path], profiles: Path, out: Path) -> Path:
    """``bags`` (linked into one folder per setup) ingested into the dataset ``out``."""
    from bag_tools.ingest import ingest
    from bag_tools.profile import load_profile

    by_setup: dict[str, list[Path]] = defaultdict(list)
    for bag in bags:
        by_setup[bag.parent.name].append(bag)
    for setup, members in sorted(by_setup.items()):
        folder = out.parent / f'{out.name}_bags' / setup
        folder.mkdir(parents=True)
        for bag in members:
            (folder / bag.name).symlink_to(bag.resolve(), target_is_directory=True)
        profile = load_profile(profiles / f'metaworld_{setup.removeprefix("setup_")}.yaml')
        res = ingest([folder], profile, out)
        if not res.ok:
            raise SystemExit(f'{folder}: ingest failed')
    return out


def _trust_by_bag(data: Path, base: str, seed: int) -> dict[str, float]:
    """Each episode's trust, keyed by the bag it came from."""
    from bag_tools.dataset import Dataset
    from ptr_core.weighting.trust import TrustConfig, score_datasets

    res = score_datasets([data], init=base, config=TrustConfig(seed=seed))
    bag_of = {ep.id: Path(ep.meta['source']).name for ep in Dataset.open(data).episodes()}
    return {bag_of[e.episode_id]: e.trust for e in res.trust.episodes}


def _row(name: str, alone: np.ndarray, alone2: np.ndarray, beside: np.ndarray,
         moved: float) -> str:
    seed_d, set_d = np.abs(alone2 - alone), np.abs(beside - alone)
    return (f'{name:<16} {len(alone):>4} {alone.mean():>6.2f} {beside.mean():>9.2f} '
            f'{seed_d.mean():>6.2f}/{seed_d.max():<5.2f} {set_d.mean():>6.2f}/{set_d.max():<5.2f}'
            f' {np.mean(set_d > moved):>7.0%} {np.mean(seed_d > moved):>7.0%}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bags', type=Path, required=True)
    parser.add_argument('--profiles', type=Path, required=True)
    parser.add_argument('--base', required=True, help='the base checkpoint to score with')
    parser.add_argument('--add', required=True, help='sources that form B (comma-separated)')
    parser.add_argument('--seed', type=int, default=0, help='scorer seed (and seed + 1)')
    parser.add_argument('--moved', type=float, default=0.2)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    added = {s.strip() for s in args.add.split(',') if s.strip()}
    sources = _bag_sources(args.bags)
    in_a = [bag for bag, src in sources.items() if src not in added]
    with tempfile.TemporaryDirectory(prefix='ptr-coupling-') as tmp:
        a = _ingest(in_a, args.profiles, Path(tmp) / 'a')
        ab = _ingest(list(sources), args.profiles, Path(tmp) / 'ab')
        alone = _trust_by_bag(a, args.base, args.seed)
        alone2 = _trust_by_bag(a, args.base, args.seed + 1)
        beside = _trust_by_bag(ab, args.base, args.seed)
    print(f'trust of set A ({len(in_a)} episodes) alone and beside B ({len(sources) - len(in_a)}'
          f' episodes: {", ".join(sorted(added))}); base {args.base}; scorer seed {args.seed}')
    print(f'{"source":<16} {"eps":>4} {"alone":>6} {"beside B":>9} {"|d| seed":>12} '
          f'{"|d| set":>12} {"set>" + str(args.moved):>7} {"seed>" + str(args.moved):>7}')
    print('-' * 80)
    groups: dict[str, list[str]] = defaultdict(list)
    for bag in in_a:
        groups[sources[bag]].append(bag.name)
    every: list[str] = []
    for src, names in sorted(groups.items()):
        every += names
        print(_row(src, *(np.array([t[n] for n in names]) for t in (alone, alone2, beside)),
                   args.moved))
    print('-' * 80)
    print(_row('all of A', *(np.array([t[n] for n in every]) for t in (alone, alone2, beside)),
               args.moved))


if __name__ == '__main__':
    main()
