"""``ros2 launch ptr train.launch.py bags:=... profile:=...`` under launch_pytest.

Ingests two bags, trains the debug config for a few steps, and shuts itself down with the final
checkpoint written. Runs under ``colcon test`` where launch_pytest exists; skipped elsewhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

NO_LAUNCH = 'launch_pytest not installed (runs under colcon test on a ROS 2 machine)'
launch_pytest = pytest.importorskip('launch_pytest', reason=NO_LAUNCH)

from launch_pytest.tools import process as process_tools  # noqa: E402

import launch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

import simdata  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('train_launch')
    simdata.write_bags(root / 'bags', episodes=2)
    (root / 'sim_arm.yaml').write_text(yaml.safe_dump(simdata.profile_dict()))
    return root


@pytest.fixture
def ros2_launch(workdir: Path) -> launch.actions.ExecuteProcess:
    bags = ','.join(str(p) for p in sorted((workdir / 'bags').iterdir()))
    return launch.actions.ExecuteProcess(
        cmd=['ros2', 'launch', 'ptr', 'train.launch.py',
             f'config:={REPO / "config" / "train" / "debug.yaml"}', f'bags:={bags}',
             f'profile:={workdir / "sim_arm.yaml"}', f'output:={workdir / "run"}',
             'device:=cpu', 'gpus:=1', 'extra_args:=--set steps=4 --set val_every=0'],
        output='screen', cached_output=True)


@launch_pytest.fixture
def launch_description(ros2_launch: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([ros2_launch, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=launch_description)
def test_ingests_then_trains_then_exits(ros2_launch, launch_context, workdir):  # type: ignore[no-untyped-def]
    assert process_tools.wait_for_output_sync(
        launch_context, ros2_launch, lambda out: 'training finished' in out, timeout=600)
    yield
    assert ros2_launch.return_code == 0
    assert (workdir / 'run' / 'dataset' / 'manifest.json').is_file()
    final = workdir / 'run' / 'final'
    assert (final / 'model.safetensors').is_file()
    assert (final / 'robots.json').is_file()
