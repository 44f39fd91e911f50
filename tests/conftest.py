"""Test-wide setup: keep ROS 2 discovery on this machine, find the shared bags.

The DDS settings are applied here, once, before any test imports rclpy, and are inherited by every
node process a test starts: discovery stays on 127.0.0.1 and each pytest run gets its own domain.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_LOCALHOST_ONLY'] = '1'
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
os.environ.setdefault('MUJOCO_GL', 'egl')

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the clone; PTR_SHARED_DATA points elsewhere (e.g. a clone in /tmp).
SHARED_DATA = Path(os.environ.get('PTR_SHARED_DATA', REPO.parent / 'shared' / 'data'))
BAGS = SHARED_DATA / 'bags'


@pytest.fixture(scope='session')
def shared_bags() -> Path:
    """``../shared/data/bags``; tests that need it skip where it is absent."""
    if not BAGS.is_dir():
        pytest.skip(f'shared test bags not found at {BAGS}')
    return BAGS


@pytest.fixture(scope='session')
def repo_root() -> Path:
    return REPO
