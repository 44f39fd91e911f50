"""A two-camera (+ depth) arm dataset ingested from real MCAP bags, and a trust file for it:
shared by the LeRobot export and report tests (a plain module, like armbags)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from armbags import T0, arm_content, arm_profile
from bagfactory import compressed_depth_png, write_bag

from bag_tools.dataset import Dataset
from bag_tools.ingest import ingest
from bag_tools.profile import RobotProfile
from bag_tools.trust import (
    EpisodeTrust,
    dataset_content_hash,
    make_trust_file,
    write_trust,
)

H, W = 24, 32
#: (bag name, ptr.source tag, seconds, episode trust)
EPISODES = (('a', 'expert', 3.0, 0.9), ('b', 'teleop', 2.5, 0.3), ('c', 'teleop', 2.0, 0.7))


def top_frame(k: int) -> np.ndarray:
    """A smooth moving pattern (gradients survive 4:2:0 video well; the values move with k)."""
    y, x = np.mgrid[0:48, 0:64].astype(np.float64)
    img = np.stack([128 + 90 * np.sin(x / 9 + k / 4), 128 + 90 * np.cos(y / 7 - k / 5),
                    np.full_like(x, 40 + 5 * (k % 20))], axis=-1)
    return np.clip(img, 0, 255).astype(np.uint8)


def camera_bag(tmp: Path, name: str, source: str, seconds: float) -> Path:
    c = arm_content(duration_s=seconds, tags={'ptr.source': source, 'ptr.task': f'reach {name}'})
    for k in range(int(seconds * 10) + 1):
        t = T0 + k * 100_000_000
        c.image('/top/image_raw', t, top_frame(k), 'rgb8')
        depth = (500 + 10 * k + np.arange(48 * 64).reshape(48, 64) % 300).astype(np.uint16)
        c.compressed_image('/depth/compressed', t, compressed_depth_png(depth),
                           fmt='16UC1; compressedDepth')
    return write_bag(c, tmp / name, 'mcap')


def camera_profile() -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(
        cameras={'wrist': {'topic': '/cam/image_raw/compressed'},
                 'top': {'topic': '/top/image_raw'},
                 'depth': {'topic': '/depth/compressed', 'depth': True}},
        image_size=[H, W]), source='two-cam')


def camera_dataset(tmp: Path, episodes: int = 2) -> Path:
    """``tmp/ds``: one episode per bag of ``EPISODES[:episodes]``."""
    bags = [camera_bag(tmp, n, s, sec) for n, s, sec, _ in EPISODES[:episodes]]
    result = ingest(bags, camera_profile(), tmp / 'ds')
    assert result.ok, [b.reason for b in result.bags]
    return tmp / 'ds'


def trust_for(dataset: Path) -> Path:
    """``<dataset>.trust.json`` with EPISODES' trust (by tag order) and a ramp per frame."""
    ds = Dataset.open(dataset)
    digest = dataset_content_hash(ds)
    by_task = {f'reach {n}': t for n, _, _, t in EPISODES}
    eps = [EpisodeTrust(dataset_hash=digest, episode_id=e['id'], trust=by_task[e['task']],
                        score=float(i), fold=i % 2,
                        frame_trust=np.linspace(0.2, 1.0, e['length']), signals={'s': 1.0})
           for i, e in enumerate(ds.manifest['episodes'])]
    tf = make_trust_file({'w_min': 0.1}, [(ds, eps)])
    return write_trust(dataset.parent / 'ds.trust.json', tf)
