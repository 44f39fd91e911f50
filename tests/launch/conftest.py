"""Fixtures for the launch tests: ``ptr`` built with colcon once per test session.

``ptr_install`` runs ``colcon build`` of this checkout into a scratch workspace (a few seconds)
and yields the environment of ``. install/setup.sh``; the launch tests start ``ros2 launch`` and
``ros2 run`` with it. Without the ROS 2 launch stack (no ROS install sourced and no
``../shared/vendor/ros2_launch`` for scripts/env.sh to install) they skip, saying so; where
scripts/env.sh did install it (``PTR_LAUNCH_REQUIRED=1``) a missing stack fails instead.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

from launchharness import REPO, ColconInstall, build_ptr, launch_stack_missing

# A pytest started as a background job of a non-interactive shell (`cmd &` in a script, some CI
# runners) inherits SIGINT ignored, and so would `ros2 launch`: launch reacts to SIGINT through
# Python's own handler (signal.set_wakeup_fd), which Python does not install for an ignored
# signal, so the SIGINT that launch_pytest sends on shutdown would go unnoticed. A handled
# signal is reset to the default in exec'd children, so handling it here fixes that for them.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope='session')
def ptr_install(tmp_path_factory: pytest.TempPathFactory) -> ColconInstall:
    """``ptr`` colcon-built into a session workspace; skips where the launch stack is absent."""
    missing = launch_stack_missing()
    if missing and os.environ.get('PTR_LAUNCH_REQUIRED') == '1':
        pytest.fail(f'{missing}, yet scripts/env.sh installed it (PTR_LAUNCH_REQUIRED=1)')
    if missing:
        pytest.skip(missing)
    try:
        return build_ptr(tmp_path_factory.mktemp('colcon_ws'))
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope='session')
def sim_checkpoint(tmp_path_factory: pytest.TempPathFactory, ptr_install: ColconInstall) -> Path:
    """A debug checkpoint of the sim arm (bags written here -> ingest -> 30 steps, seconds)."""
    import simdata

    root = tmp_path_factory.mktemp('sim_checkpoint')
    bags = simdata.write_bags(root / 'bags')
    dataset = simdata.build_dataset(root, bags)
    return simdata.train_checkpoint(REPO, dataset, root / 'run')
