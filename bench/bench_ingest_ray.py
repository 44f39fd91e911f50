"""Fleet ingest: bags/s of the local process pool vs Ray tasks on the same bags (one table).

K distinct camera bags (two 640x480 JPEG cameras at 30 Hz, 100 Hz joint states, as in
bench_ingest.py) are ingested at 30 Hz by:

* local -j 1 and -j 2: ``ingest(..., workers=N)`` (this process, or a pool of N processes);
* ray, 2 CPUs, cold: ``ray_runner(workers=2)``, a local Ray instance started and stopped by
  the run (what ``ptr ingest --ray -j 2`` costs on one machine, start-up included);
* ray, 2 CPUs, warm: the same with an instance already running and its workers warm (what a
  long-lived cluster costs per run).

Every run must give the same dataset (its content hash is checked against the local -j 1
one). Each row is the best of --repeat runs; the runs of the rows alternate, so a load change
on a shared machine hits them alike. On one machine Ray cannot beat the pool (same CPUs, plus
its scheduler); the point is that it costs little, and that the same code spreads over a
cluster (docs/ingest.md).

    .venv/bin/python bench/bench_ingest_ray.py [--bags 8] [--seconds 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ['RAY_USAGE_STATS_ENABLED'] = '0'  # before anything imports ray
os.environ['RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] = '0'  # bag_tools.fleet.LOOPBACK_ONLY: 127.0.0.1

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'bench'))
sys.path.insert(0, str(REPO / 'tests' / 'bag_tools'))

import numpy as np  # noqa: E402
from bagfactory import BagContent, encode_jpeg, write_bag  # noqa: E402
from bench_ingest import JOINTS, T0, profile, scene  # noqa: E402

from bag_tools.dataset import Dataset  # noqa: E402
from bag_tools.fleet import ray_runner  # noqa: E402
from bag_tools.ingest import Runner, ingest  # noqa: E402
from bag_tools.trust import dataset_content_hash  # noqa: E402


def make_bag(path: Path, seconds: float, index: int) -> Path:
    """bench_ingest's camera bag, its joint motion shifted by ``index`` (a distinct hash)."""
    c = BagContent(custom_data={'ptr.source': f'bench{index}'})
    for i in range(int(seconds * 100)):
        c.joint_state('/joint_states', T0 + i * 10_000_000, JOINTS,
                      np.sin(np.arange(7) + i / 100.0 + index))
    for i in range(int(seconds * 50)):
        c.trajectory('/arm/joint_trajectory', T0 + i * 20_000_000, JOINTS,
                     np.cos(np.arange(7) + i / 50.0 + index))
    for k in range(int(seconds * 30)):
        t = T0 + round(k * 1e9 / 30)
        for cam, topic in enumerate(('/cam_left/image_raw/compressed',
                                     '/cam_right/image_raw/compressed')):
            c.compressed_image(topic, t + 1000 * cam,
                               encode_jpeg(scene(k + index, cam), quality=90))
    return write_bag(c, path, 'mcap')


def timed(bags: list[Path], out: Path, workers: int, runner: Runner | None) -> tuple[float, str]:
    """Wall seconds of one ingest into a fresh ``out``, and the dataset's content hash."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = ingest(bags, profile(30.0), out, workers=workers, runner=runner)
    elapsed = time.perf_counter() - start
    assert result.ok, [b.reason for b in result.bags if b.reason]
    digest = dataset_content_hash(Dataset.open(out))
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--bags', type=int, default=8, help='distinct bags per run')
    ap.add_argument('--seconds', type=float, default=4.0, help='length of each bag')
    ap.add_argument('--repeat', type=int, default=2, help='runs per row (best is shown)')
    ap.add_argument('--work', type=Path, default=None, help='scratch directory')
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix='bench_ingest_ray_'))
    bags = [make_bag(work / f'bag_{i}', args.seconds, i) for i in range(args.bags)]
    size_mb = sum(p.stat().st_size for b in bags for p in b.rglob('*') if p.is_file()) / 1e6

    import ray

    rows: dict[str, Callable[[], tuple[float, str]]] = {
        'local -j 1': lambda: timed(bags, work / 'out', 1, None),
        'local -j 2 (process pool)': lambda: timed(bags, work / 'out', 2, None),
        'ray, 2 CPUs, cold (starts Ray)': lambda: timed(bags, work / 'out', 2, ray_runner()),
    }
    runs: dict[str, list[tuple[float, str]]] = {name: [] for name in rows}
    warm = 'ray, 2 CPUs, warm (running)'
    runs[warm] = []
    for _ in range(args.repeat):
        for name, run in rows.items():
            runs[name].append(run())
        ray.init(_node_ip_address='127.0.0.1', include_dashboard=False, num_cpus=2,
                 logging_level='WARNING')
        try:
            timed(bags, work / 'out', 2, ray_runner())  # the workers import bag_tools once
            runs[warm].append(timed(bags, work / 'out', 2, ray_runner()))
        finally:
            ray.shutdown()

    reference = runs['local -j 1'][0][1]
    print(f'{args.bags} bags of {args.seconds:g} s (2 x 640x480 JPEG @ 30 Hz + JointState @ '
          f'100 Hz), {size_mb:.1f} MB in all; cpus: {os.cpu_count()}; ray {ray.__version__}')
    print(f'{"run":<32} {"seconds":>8} {"bags/s":>7} {"MB/s":>6} {"x local -j 2":>12} '
          f'{"same dataset":>12}')
    t_pool = min(t for t, _ in runs['local -j 2 (process pool)'])
    for name, got in runs.items():
        t = min(s for s, _ in got)
        same = all(d == reference for _, d in got)
        print(f'{name:<32} {t:>8.2f} {args.bags / t:>7.2f} {size_mb / t:>6.1f} '
              f'{t_pool / t:>12.2f} {"yes" if same else "NO":>12}')
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
