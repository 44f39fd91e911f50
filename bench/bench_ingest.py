"""Ingest throughput against the bare cost of reading the same bag (prints one table).

Two bags, one run, both ratios side by side:

* a state-only two-arm leader/follower bag (4 JointState topics at 50 Hz, 7 joints each) whose
  messages carry 5 trailing padding bytes, as a real teleop rig records them: ingest vs a bare
  rosbags read + deserialize of the same topics (told the cut; plain rosbags refuses them);
  goal >= 0.8x;
* a camera bag (below): ingest vs bare read + deserialize + JPEG decode; goal >= 0.7x.

The camera bag is an MCAP bag with two 640x480 JPEG cameras at 30 Hz and a 100 Hz joint state;
measured on this machine:

* bare:   iterate + deserialize every message with rosbags and ``cv2.imdecode`` every JPEG, in
          one process (the floor any ingester pays);
* ingest: ``bag_tools.ingest.ingest`` with one worker at the camera rate (every frame used) and
          at 10 Hz (the ingester decodes only the frames a grid step uses);
* scaling: ``ingest`` of K copies of the bag with 1, 2, 4, ... worker processes.

frames/s counts camera frames (both cameras) in the bag; MB/s is bag bytes per second. Each
row is the best of --repeat runs; bare and ingest runs alternate. "cpu s" is CPU time: this
process's, plus the workers' for multi-worker rows. On a busy machine wall time says little
about scaling, but equal CPU totals for 1 and N workers mean the work splits without overhead:
with N free cores the wall time drops ~N-fold (bags permitting).
Goal: ingest >= 0.7x the bare rate per process, near-linear speed-up with workers.

    .venv/bin/python bench/bench_ingest.py [--seconds 20] [--copies 4] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'tests' / 'bag_tools'))

from bagfactory import BagContent, encode_jpeg, write_bag  # noqa: E402

from bag_tools.ingest import ingest  # noqa: E402
from bag_tools.profile import RobotProfile  # noqa: E402
from bag_tools.reader import open_bag  # noqa: E402

T0 = 1_700_000_000_000_000_000
JOINTS = [f'joint_{i}' for i in range(7)]


def scene(k: int, cam: int) -> np.ndarray:
    """A 640x480 frame with gradients, texture and a moving block (JPEG ~40-70 kB)."""
    y, x = np.mgrid[0:480, 0:640]
    img = np.empty((480, 640, 3), np.uint8)
    img[..., 0] = (x // 2 + 3 * k) % 256
    img[..., 1] = (y // 2 + 40 * cam) % 256
    img[..., 2] = ((x ^ y) + k) % 256
    cx, cy = 100 + (7 * k) % 400, 120 + (5 * k) % 200
    img[cy:cy + 80, cx:cx + 80] = (250, 30, 30)
    return img


def make_bag(path: Path, seconds: float) -> Path:
    c = BagContent(custom_data={'ptr.source': 'bench'})
    for i in range(int(seconds * 100)):
        t = T0 + i * 10_000_000
        c.joint_state('/joint_states', t, JOINTS, np.sin(np.arange(7) + i / 100.0))
    for i in range(int(seconds * 50)):
        c.trajectory('/arm/joint_trajectory', T0 + i * 20_000_000, JOINTS,
                     np.cos(np.arange(7) + i / 50.0))
    for k in range(int(seconds * 30)):
        t = T0 + round(k * 1e9 / 30)
        for cam, topic in enumerate(('/cam_left/image_raw/compressed',
                                     '/cam_right/image_raw/compressed')):
            c.compressed_image(topic, t + 1000 * cam, encode_jpeg(scene(k, cam), quality=90))
    return write_bag(c, path, 'mcap')


ARMS = ('left', 'right')
PAD = b'\0' * 5


def make_state_bag(path: Path, seconds: float) -> Path:
    """Two arms, leader and follower each, 50 Hz, the same 7 joint names, padded CDR."""
    c = BagContent()
    for arm in ARMS:
        for role in ('lead', 'follow'):
            topic = f'/robot/arm_{arm}_{role}/joint_states'
            c.trailing[topic] = PAD
            for i in range(int(seconds * 50)):
                t = T0 + i * 20_000_000 + (3_000_000 if role == 'lead' else 0)
                c.joint_state(topic, t, JOINTS, np.sin(np.arange(7) + i / 50.0))
    return write_bag(c, path, 'mcap')


def state_profile(rate_hz: float) -> RobotProfile:
    arms = {arm: {
        'joints': JOINTS, 'state_topic': f'/robot/arm_{arm}_follow/joint_states',
        'action': {'source': 'command', 'topic': f'/robot/arm_{arm}_lead/joint_states'},
        'joint_limits': {'lower': [-3.0] * 7, 'upper': [3.0] * 7}} for arm in ARMS}
    return RobotProfile.from_dict({'robot': 'bench_rig', 'arms': arms, 'rate_hz': rate_hz},
                                  source='bench')


def bare_padded(path: Path) -> tuple[float, float, int]:
    """Plain rosbags: read + deserialize every message, cutting the known padding."""
    from rosbags.highlevel import AnyReader

    n = 0
    cpu = time.process_time()
    start = time.perf_counter()
    with AnyReader([path]) as reader:
        store = reader.typestore
        for conn, _, data in reader.messages():
            store.deserialize_cdr(data[:-len(PAD)], conn.msgtype)
            n += 1
    return time.perf_counter() - start, time.process_time() - cpu, n


def profile(rate_hz: float) -> RobotProfile:
    return RobotProfile.from_dict({
        'robot': 'bench_arm', 'joints': JOINTS, 'state_topic': '/joint_states',
        'action': {'source': 'command', 'topic': '/arm/joint_trajectory'},
        'cameras': {'left': {'topic': '/cam_left/image_raw/compressed'},
                    'right': {'topic': '/cam_right/image_raw/compressed'}},
        'image_size': [96, 96], 'rate_hz': rate_hz,
        'joint_limits': {'lower': [-3.0] * 7, 'upper': [3.0] * 7},
    }, source='bench')


def bag_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob('*') if p.is_file())


def bare(path: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds to read + deserialize everything and decode every JPEG; frames."""
    frames = 0
    cpu = time.process_time()
    start = time.perf_counter()
    with open_bag(path) as bag:
        for raw in bag.raw_messages():
            msg = bag.deserialize(raw)
            if raw.msgtype == 'sensor_msgs/msg/CompressedImage':
                img = cv2.imdecode(msg.data, cv2.IMREAD_COLOR)
                assert img is not None
                frames += 1
    return time.perf_counter() - start, time.process_time() - cpu, frames


def timed_ingest(
    bags: list[Path], rate_hz: float, workers: int, work: Path,
    prof: RobotProfile | None = None,
) -> tuple[float, float]:
    """Wall and CPU seconds (this process's plus, when workers > 1, the workers')."""
    out = work / f'ds_{rate_hz:g}_{workers}_{len(bags)}'
    shutil.rmtree(out, ignore_errors=True)
    cpu = time.process_time()
    start = time.perf_counter()
    result = ingest(bags, prof or profile(rate_hz), out, workers=workers)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if workers > 1:  # the bags ran in the workers; this process indexed them
        cpu += sum(b.cpu_s for b in result.bags)
    assert result.ok, [b.reason for b in result.bags]
    shutil.rmtree(out, ignore_errors=True)
    return elapsed, cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--seconds', type=float, default=20.0, help='camera bag length')
    ap.add_argument('--state-seconds', type=float, default=120.0,
                    help='state-only padded bag length')
    ap.add_argument('--copies', type=int, default=4, help='bags for the scaling rows')
    ap.add_argument('--workers', default='1,2,4', help='worker counts for the scaling rows')
    ap.add_argument('--repeat', type=int, default=2, help='runs per row (best is shown)')
    ap.add_argument('--work', type=Path, default=None, help='scratch directory')
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix='bench_ingest_'))
    work.mkdir(parents=True, exist_ok=True)
    state_bag = make_state_bag(work / 'state_bag', args.state_seconds)
    bare_padded(state_bag)  # warm the page cache
    # bare and ingest alternate, so a load change on a shared machine hits both alike
    runs, ingests = [], []
    for _ in range(args.repeat):
        runs.append(bare_padded(state_bag))
        ingests.append(timed_ingest([state_bag], 30.0, 1, work, state_profile(30.0)))
    t_sb, c_sb = best([(r[0], r[1]) for r in runs])
    n_state = runs[0][2]
    t_si, c_si = best(ingests)
    bag = make_bag(work / 'bench_bag', args.seconds)
    size_mb = bag_bytes(bag) / 1e6
    bare(bag)  # warm the page cache
    runs = []
    at: dict[float, list[tuple[float, float]]] = {30.0: [], 10.0: []}
    for _ in range(args.repeat):  # alternating, as above
        runs.append(bare(bag))
        for rate, got in at.items():
            got.append(timed_ingest([bag], rate, 1, work))
    t_bare, c_bare = best([(r[0], r[1]) for r in runs])
    frames = runs[0][2]
    rows: list[tuple[str, int, int, float, float | None, int, float]] = [
        ('bare read+deserialize+imdecode', 1, 1, t_bare, c_bare, frames, size_mb)]
    for rate, got in at.items():
        t, c = best(got)
        rows.append((f'ingest @ {rate:g} Hz', 1, 1, t, c, frames, size_mb))
    copies = []
    for i in range(args.copies):
        dst = work / f'copy_{i}'
        if not dst.exists():
            shutil.copytree(bag, dst)
        copies.append(dst)
    for workers in (int(w) for w in args.workers.split(',')):
        t, c = best([timed_ingest(copies, 30.0, workers, work) for _ in range(args.repeat)])
        rows.append((f'ingest @ 30 Hz, {len(copies)} bags', workers, len(copies), t, c,
                     frames * len(copies), size_mb * len(copies)))

    print(f'bag: {args.seconds:g} s, 2 x 640x480 JPEG @ 30 Hz + JointState @ 100 Hz, '
          f'{size_mb:.1f} MB, {frames} camera frames; cpus: {os.cpu_count()}')
    print(f'{"run":<32} {"workers":>7} {"bags":>4} {"seconds":>8} {"cpu s":>6} '
          f'{"frames/s":>9} {"MB/s":>7} {"x bare":>7} {"x bare cpu":>10}')
    base_fps = frames / t_bare
    one_worker = None
    for name, workers, nbags, t, c, nframes, mb in rows:
        fps = nframes / t
        cpu = f'{c:>6.2f}' if c is not None else f'{"-":>6}'
        cpu_ratio = f'{c_bare * nframes / frames / c:>10.2f}' if c else f'{"-":>10}'
        print(f'{name:<32} {workers:>7} {nbags:>4} {t:>8.2f} {cpu} {fps:>9.1f} '
              f'{mb / t:>7.1f} {fps / base_fps:>7.2f} {cpu_ratio}')
        if nbags > 1 and workers == 1:
            one_worker = t
    print()
    print(f'state-only bag: {args.state_seconds:g} s, 2 arms x (leader + follower) JointState '
          f'@ 50 Hz, 5 padding bytes per message, {n_state} messages')
    print(f'{"run":<44} {"seconds":>8} {"cpu s":>6} {"msgs/s":>9} {"x bare":>7} '
          f'{"x bare cpu":>10}')
    print(f'{"bare rosbags read+deserialize (cut known)":<44} {t_sb:>8.2f} {c_sb:>6.2f} '
          f'{n_state / t_sb:>9.0f} {1.0:>7.2f} {1.0:>10.2f}')
    print(f'{"ingest @ 30 Hz (two-arm profile)":<44} {t_si:>8.2f} {c_si:>6.2f} '
          f'{n_state / t_si:>9.0f} {t_sb / t_si:>7.2f} {c_sb / c_si:>10.2f}')
    t_cam = next(r[3] for r in rows if r[0] == 'ingest @ 30 Hz')
    print()
    print('goals, one run:')
    c_cam = next(r[4] for r in rows if r[0] == 'ingest @ 30 Hz') or 1.0
    print(f'  state-only padded bag: ingest {t_sb / t_si:.2f}x the bare read, CPU '
          f'{c_sb / c_si:.2f}x (goal >= 0.8x)')
    print(f'  camera bag: ingest @ 30 Hz {t_bare / t_cam:.2f}x the bare read+JPEG decode, CPU '
          f'{c_bare / c_cam:.2f}x (goal >= 0.7x)')
    if one_worker is not None:
        speedups = ', '.join(f'{w} workers {one_worker / t:.2f}x'
                             for _, w, n, t, _, _, _ in rows if n > 1)
        print(f'speed-up over 1 worker: {speedups}')
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
