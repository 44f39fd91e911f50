"""Fixtures for the node tests: a trained sim-arm checkpoint, node processes, a probe node.

Each node process is stopped (SIGINT, then SIGKILL) in the fixture's teardown and its log is
printed when the test failed. Each test uses its own topic and node names (``names``), so a
slow teardown never leaks messages into the next test.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rosharness import REPO, NodeProcess, Probe, SimRun

_ids = itertools.count()
NO_RCLPY = 'rclpy not installed (pip install .[ros], or source ROS 2)'


@pytest.fixture(scope='session')
def sim_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """Bags of the sim arm -> ingested dataset -> a debug checkpoint (flow head, seconds)."""
    pytest.importorskip('torch')
    import simdata

    root = tmp_path_factory.mktemp('sim_run')
    bags = simdata.write_bags(root / 'bags')
    dataset = simdata.build_dataset(root, bags)
    checkpoint = simdata.train_checkpoint(REPO, dataset, root / 'run')
    return SimRun(bags, dataset, checkpoint)


@pytest.fixture(scope='session')
def pose_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """Like ``sim_run`` with JPEG CompressedImage frames and a PoseStamped extra state."""
    pytest.importorskip('torch')
    import simdata

    root = tmp_path_factory.mktemp('pose_run')
    bags = simdata.write_bags(root / 'bags', compressed=True, pose=True)
    dataset = simdata.build_dataset(root, bags, compressed=True, pose=True)
    checkpoint = simdata.train_checkpoint(REPO, dataset, root / 'run')
    return SimRun(bags, dataset, checkpoint)


@pytest.fixture(scope='session')
def gripper_run(tmp_path_factory: pytest.TempPathFactory) -> SimRun:
    """Like ``sim_run`` with the gripper's JointState on its own topic as an extra state."""
    pytest.importorskip('torch')
    import simdata

    root = tmp_path_factory.mktemp('gripper_run')
    bags = simdata.write_bags(root / 'bags', gripper=True)
    dataset = simdata.build_dataset(root, bags, gripper=True)
    checkpoint = simdata.train_checkpoint(REPO, dataset, root / 'run')
    return SimRun(bags, dataset, checkpoint)


@pytest.fixture
def launch_node(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., NodeProcess]]:
    """``launch_node(module, params, name)`` starts a node process; all are stopped after."""
    started: list[NodeProcess] = []

    def start(module: str, params: dict[str, Any], name: str) -> NodeProcess:
        node = NodeProcess(module, params, tmp_path / f'{name}.log', name)
        started.append(node)
        return node

    yield start
    failed = getattr(request.node, 'rep_call', None)
    for node in reversed(started):
        node.stop()
    if failed is not None and failed.failed:
        for node in started:
            print(f'----- {node.log.name} -----\n{node.output()[-4000:]}')


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == 'call':
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture
def names() -> dict[str, str]:
    """Unique topic/node names for one test."""
    n = f'{os.getpid()}_{next(_ids)}'
    return {
        'policy': f'policy_{n}', 'sim': f'sim_{n}',
        'joint_states': f'/t{n}/joint_states', 'camera': f'/t{n}/camera/front/image_raw',
        'trajectory': f'/t{n}/joint_trajectory', 'forward': f'/t{n}/commands',
    }


@pytest.fixture
def probe() -> Iterator[Probe]:
    pytest.importorskip('rclpy', reason=NO_RCLPY)
    p = Probe(f'probe_{os.getpid()}_{next(_ids)}')
    try:
        yield p
    finally:
        p.close()
