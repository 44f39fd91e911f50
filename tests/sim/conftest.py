"""Skip the simulator tests where the ``sim`` extra (Meta-World, MuJoCo) is not installed."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault('MUJOCO_GL', 'egl')


@pytest.fixture(scope='session', autouse=True)
def _metaworld() -> None:
    pytest.importorskip('metaworld', reason='needs the sim extra: pip install -e .[sim]')
    pytest.importorskip('mujoco', reason='needs the sim extra: pip install -e .[sim]')
