"""Test-wide setup: keep ROS 2 discovery on this machine, find the shared bags.

The DDS settings are applied here, once, before any test imports rclpy, and are inherited by every
node process a test starts: discovery stays on 127.0.0.1 and each pytest run gets its own domain.
"""

from __future__ import annotations

import logging
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


_OUR_PACKAGES = ('bag_tools', 'ptr_core', 'ptr_ros', 'ptr_sim', 'ptr_cli')


@pytest.fixture(autouse=True)
def _our_loggers_propagate() -> None:
    """Our library loggers reach ``caplog`` even when ROS 2's launch stack is installed.

    Importing ``launch`` (the launch_pytest plugin does, at start-up) makes every logger created
    afterwards a ``LaunchLogger`` with ``propagate = False``, so warnings of modules imported later
    never reach the root logger that ``caplog`` listens on.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.split('.')[0] in _OUR_PACKAGES:
            logger.propagate = True
