"""``ros2 launch ptr train.launch.py bags:=... profile:=...`` under launch_pytest.

Against ``ptr`` colcon-built into a scratch workspace (``ptr_install``): ingests two bags, trains
the debug config for a few steps and exits 0 by itself with the final checkpoint written; a bag
that fails to ingest stops the launch with exit 1 and one error line before training starts,
and so does a training that fails; ``gpus:=2`` trains under ``torchrun`` with two gloo
processes on the CPU.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from launchharness import LAUNCH_MISSING, ColconInstall, reap_children, wait_for_exit

launch_pytest = pytest.importorskip('launch_pytest', reason=LAUNCH_MISSING)

import launch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

import simdata  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEBUG = REPO / 'config' / 'train' / 'debug.yaml'
TRAIN_S = 600.0  # generous: the machine is shared and loaded
FEW_STEPS = 'extra_args:=--set steps=4 --set val_every=0'


@pytest.fixture(scope='module')
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('train_launch')
    simdata.write_bags(root / 'bags', episodes=2)
    (root / 'sim_arm.yaml').write_text(yaml.safe_dump(simdata.profile_dict()))
    (root / 'corrupt.mcap').write_bytes(b'not an mcap file' * 64)
    return root


def ros2_launch(install: ColconInstall, cwd: Path, *args: str) -> launch.actions.ExecuteProcess:
    return launch.actions.ExecuteProcess(
        cmd=['ros2', 'launch', 'ptr', 'train.launch.py', f'config:={DEBUG}', 'device:=cpu',
             *args],
        cwd=str(cwd), additional_env=install.env, output='screen', cached_output=True)


def bags_of(workdir: Path) -> str:
    return ','.join(str(p) for p in sorted((workdir / 'bags').iterdir()))


@pytest.fixture
def train(ptr_install: ColconInstall, workdir: Path) -> launch.actions.ExecuteProcess:
    return ros2_launch(ptr_install, workdir, f'bags:={bags_of(workdir)}',
                       f'profile:={workdir / "sim_arm.yaml"}', f'output:={workdir / "run"}',
                       'gpus:=1', FEW_STEPS)


@launch_pytest.fixture
def train_launch(train: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([train, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=train_launch)
def test_ingests_then_trains_then_exits(train, launch_context, workdir):  # type: ignore[no-untyped-def]
    # The launch stops itself: wait for `ros2 launch` to exit (not only for "training
    # finished", after which it still needs a moment), so the test never interrupts it.
    assert wait_for_exit(launch_context, train, TRAIN_S), 'ros2 launch did not exit by itself'
    yield
    output = train.get_stdout()
    assert reap_children(output) == [], 'a ptr step outlived ros2 launch'
    assert train.return_code == 0, output[-3000:]
    assert 'training finished' in output
    assert output.index('[ptr_ingest-1]') < output.index('[ptr_train-2]')
    assert (workdir / 'run' / 'dataset' / 'manifest.json').is_file()
    final = workdir / 'run' / 'final'
    assert (final / 'model.safetensors').is_file()
    assert (final / 'robots.json').is_file()


@pytest.fixture
def bad_ingest(ptr_install: ColconInstall, workdir: Path) -> launch.actions.ExecuteProcess:
    return ros2_launch(ptr_install, workdir, f'bags:={workdir / "corrupt.mcap"}',
                       f'profile:={workdir / "sim_arm.yaml"}', f'output:={workdir / "bad"}')


@launch_pytest.fixture
def bad_ingest_launch(bad_ingest: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([bad_ingest, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=bad_ingest_launch)
def test_failed_ingest_stops_the_launch(bad_ingest, launch_context, workdir):  # type: ignore[no-untyped-def]
    assert wait_for_exit(launch_context, bad_ingest, TRAIN_S), 'ros2 launch did not exit'
    yield
    output = bad_ingest.get_stdout()
    assert bad_ingest.return_code == 1, output[-3000:]
    errors = [line for line in output.splitlines() if 'ptr ingest failed' in line]
    assert len(errors) == 1, output[-3000:]  # one line, no traceback
    assert errors[0].startswith('[ERROR] [launch]: ')
    assert errors[0].endswith('ptr ingest failed (exit 1); not training')
    assert 'corrupt.mcap' in output  # ptr ingest names the bad file
    assert 'ptr_train' not in output
    assert 'Traceback' not in output
    assert not (workdir / 'bad' / 'final').exists()


@pytest.fixture
def ddp(ptr_install: ColconInstall, workdir: Path) -> launch.actions.ExecuteProcess:
    return ros2_launch(ptr_install, workdir, f'bags:={bags_of(workdir)}',
                       f'profile:={workdir / "sim_arm.yaml"}', f'output:={workdir / "ddp"}',
                       'gpus:=2', FEW_STEPS)


@launch_pytest.fixture
def ddp_launch(ddp: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([ddp, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=ddp_launch)
def test_two_gpus_train_under_torchrun(ddp, launch_context, workdir):  # type: ignore[no-untyped-def]
    """``gpus:=2`` on the CPU: torchrun starts two ranks that train together over gloo."""
    assert wait_for_exit(launch_context, ddp, TRAIN_S), 'ros2 launch did not exit by itself'
    yield
    output = ddp.get_stdout()
    assert reap_children(output) == [], 'a ptr step outlived ros2 launch'
    assert ddp.return_code == 0, output[-3000:]
    plan = next(line for line in output.splitlines() if 'train command:' in line)
    assert ' -m torch.distributed.run --standalone --nproc_per_node=2 -m ptr_cli.main train ' in (
        plan)
    state = json.loads((workdir / 'ddp' / 'final' / 'training_state' / 'state.json').read_text())
    assert state['world_size'] == 2


@pytest.fixture
def bad_train(ptr_install: ColconInstall, workdir: Path) -> launch.actions.ExecuteProcess:
    return ros2_launch(ptr_install, workdir, f'datasets:={workdir / "no_such_dataset"}',
                       f'output:={workdir / "bad_train"}', FEW_STEPS)


@launch_pytest.fixture
def bad_train_launch(bad_train: launch.actions.ExecuteProcess) -> launch.LaunchDescription:
    return launch.LaunchDescription([bad_train, launch_pytest.actions.ReadyToTest()])


@pytest.mark.launch(fixture=bad_train_launch)
def test_failed_training_exits_nonzero(bad_train, launch_context, workdir):  # type: ignore[no-untyped-def]
    assert wait_for_exit(launch_context, bad_train, TRAIN_S), 'ros2 launch did not exit'
    yield
    output = bad_train.get_stdout()
    assert bad_train.return_code == 1, output[-3000:]
    errors = [line for line in output.splitlines() if 'ptr train failed' in line]
    assert len(errors) == 1, output[-3000:]
    assert errors[0].startswith('[ERROR] [launch]: ')
    assert 'no final checkpoint' in errors[0]
    assert 'no_such_dataset' in output  # ptr train names the missing dataset
    assert 'training finished' not in output
    assert 'Traceback' not in output
