"""A small arm with a camera, written into bags, and dataset helpers: shared by the ingestion
tests (a plain module, not a conftest, so that `from armbags import ...` is unambiguous)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from bagfactory import BagContent, encode_jpeg

T0 = 1_700_000_000_000_000_000  # bag start, ns
JOINTS = ['j1', 'j2', 'j3']
SLOPE = np.array([0.1, -0.2, 0.3])  # rad/s: joint j at time t is OFFSET[j] + SLOPE[j] * t
OFFSET = np.array([0.0, 1.0, -1.0])


def joint_value(t_s: float) -> np.ndarray:
    return OFFSET + SLOPE * t_s


def frame_pixels(k: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A flat-colored frame whose color encodes ``k`` (survives JPEG within a few levels)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (10 * k) % 250
    img[..., 1] = 200 - (7 * k) % 150
    img[..., 2] = 60
    return img


def arm_content(
    *, duration_s: float = 3.0, js_hz: float = 50.0, cam_hz: float = 15.0, cmd_hz: float = 20.0,
    camera: bool = True, tags: dict[str, str] | None = None,
) -> BagContent:
    """Joint states (names in a different order than the profile, plus a gripper joint),
    JointTrajectory commands and a JPEG camera, all on exact periodic stamps."""
    c = BagContent(custom_data=dict(tags or {}))
    names = ['gripper', 'j3', 'j1', 'j2']
    for i in range(int(duration_s * js_hz) + 1):
        t = i / js_hz
        v = joint_value(t)
        c.joint_state('/joint_states', T0 + round(t * 1e9), names, [0.5, v[2], v[0], v[1]])
    for i in range(int(duration_s * cmd_hz) + 1):
        t = i / cmd_hz
        c.trajectory('/arm/joint_trajectory', T0 + round(t * 1e9), ['j2', 'j1', 'j3'],
                     [10.0 + i, float(i), -float(i)])
    if camera:
        for k in range(int(duration_s * cam_hz) + 1):
            t = k / cam_hz
            c.compressed_image('/cam/image_raw/compressed', T0 + round(t * 1e9),
                               encode_jpeg(frame_pixels(k)))
    return c


def arm_profile(**overrides: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        'robot': 'arm3',
        'joints': list(JOINTS),
        'state_topic': '/joint_states',
        'action': {'source': 'command', 'topic': '/arm/joint_trajectory'},
        'cameras': {'wrist': {'topic': '/cam/image_raw/compressed'}},
        'image_size': [12, 16],
        'rate_hz': 10.0,
        'joint_limits': {'lower': [-3.0] * 3, 'upper': [3.0] * 3},
        'task': 'reach',
        'min_episode_steps': 8,
    }
    d.update(overrides)
    return d


def snapshot(root: Path) -> dict[str, Any]:
    """Everything in a dataset directory: JSON parsed, arrays as bytes (not the writer lock
    file: it names the last writer's pid and start time)."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob('*')):
        if p.is_file() and p.name != '.ptr-writer.lock':
            rel = str(p.relative_to(root))
            out[rel] = json.loads(p.read_text()) if p.suffix == '.json' else p.read_bytes()
    return out
