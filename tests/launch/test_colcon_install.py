"""``ptr`` from its colcon install tree: packages, data, ``ros2 run ptr ...`` and the ``ptr`` CLI.

The install (``ptr_install``, built once per session) must hold every top-level package and its
data, and ``ros2 run`` must start both nodes from ``lib/ptr`` as on a robot: the sim arm
publishes, the policy reports ``disabled``, drives the arm once enabled, and both exit 0 on
Ctrl-C (SIGINT to the process group, as a terminal sends it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from launchharness import REPO, ColconInstall

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'ros'))

from rosharness import Probe, wait_for

PACKAGES = ('bag_tools', 'ptr_core', 'ptr_ros', 'ptr_sim', 'ptr_cli')
EXECUTABLES = ('ptr', 'policy_node', 'sim_arm_node', 'metaworld_arm_node')
START_S = 240.0  # node processes importing torch on a loaded 2-core machine


def run(install: ColconInstall, cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, env=install.environ(), capture_output=True,
                          text=True, timeout=300, check=False)


def test_install_tree_holds_every_package_and_its_data(ptr_install: ColconInstall) -> None:
    prefix = ptr_install.prefix / 'ptr'
    site = next(prefix.glob('lib/python3*/site-packages'))
    for package in PACKAGES:
        assert (site / package / '__init__.py').is_file(), f'{package} not installed'
    presets = sorted(p.name for p in (REPO / 'ptr_sim' / 'configs').glob('*.yaml'))
    assert presets
    assert sorted(p.name for p in (site / 'ptr_sim' / 'configs').glob('*.yaml')) == presets
    share = prefix / 'share' / 'ptr'
    for name in ('policy.launch.py', 'train.launch.py'):
        assert (share / 'launch' / name).is_file()
    for name in ('policy.yaml', 'sim_arm.yaml', 'train/debug.yaml'):
        assert (share / 'config' / name).is_file()
    for name in EXECUTABLES:
        assert os.access(prefix / 'lib' / 'ptr' / name, os.X_OK), f'lib/ptr/{name}'


def test_ros2_finds_the_package_and_its_executables(ptr_install: ColconInstall,
                                                    tmp_path: Path) -> None:
    proc = run(ptr_install, tmp_path, 'ros2', 'pkg', 'executables', 'ptr')
    assert proc.returncode == 0, proc.stderr
    assert sorted(line.split()[1] for line in proc.stdout.splitlines()) == sorted(EXECUTABLES)
    shown = run(ptr_install, tmp_path, 'ros2', 'launch', 'ptr', 'policy.launch.py',
                '--show-args')
    assert shown.returncode == 0, shown.stderr
    assert "'checkpoint':" in shown.stdout
    assert "'sim':" in shown.stdout


def test_ptr_cli_runs_from_the_install(ptr_install: ColconInstall, tmp_path: Path) -> None:
    proc = run(ptr_install, tmp_path, 'ros2', 'run', 'ptr', 'ptr', '--help')
    assert proc.returncode == 0, proc.stderr
    for command in ('ingest', 'train', 'inspect'):
        assert command in proc.stdout
    where = run(ptr_install, tmp_path, sys.executable, '-c',
                'import ptr_cli.main, ptr_sim; print(ptr_sim.__file__)')
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(ptr_install.prefix)  # not the checkout


class RosRun:
    """``ros2 run ptr <executable> ...`` in its own process group, output to a log file."""

    def __init__(self, install: ColconInstall, log: Path, *args: str) -> None:
        self.log = log
        self._out = log.open('w')
        env = {**install.environ(), 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}
        self.proc = subprocess.Popen(['ros2', 'run', 'ptr', *args], cwd=log.parent, env=env,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def interrupt(self, timeout: float = 60.0) -> int | None:
        """Ctrl-C: SIGINT to the process group; the exit code (None: had to be killed)."""
        code = None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                code = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        else:
            code = self.proc.returncode
        self._out.close()
        return code

    def output(self) -> str:
        return self.log.read_text(errors='replace')


def test_ros2_run_starts_both_nodes(ptr_install: ColconInstall, sim_checkpoint: Path,
                                    tmp_path: Path) -> None:
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import JointState
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    sim = RosRun(ptr_install, tmp_path / 'sim_arm.log', 'sim_arm_node', '--ros-args',
                 '-p', f'profile:={sim_checkpoint}')
    policy = RosRun(ptr_install, tmp_path / 'policy.log', 'policy_node', '--ros-args',
                    '-p', f'checkpoint:={sim_checkpoint}', '-p', 'device:=cpu')
    probe = Probe('ros2_run_probe')
    codes: dict[str, int | None] = {}
    try:
        probe.record('command', JointTrajectory, '/joint_trajectory_controller/joint_trajectory')
        probe.record('joint_states', JointState, '/joint_states')
        probe.record('diagnostics', DiagnosticArray, '/diagnostics')

        def disabled() -> bool:
            diag = probe.latest_diagnostics('policy_node')
            return diag is not None and diag['state'] == 'disabled'

        wait_for(lambda: len(probe.recorded.get('joint_states')) > 5, START_S,
                 'joint states from `ros2 run ptr sim_arm_node`')
        wait_for(disabled, START_S, '`ros2 run ptr policy_node` reporting disabled')
        assert probe.recorded.get('command') == []
        assert probe.call(SetBool, '/policy_node/enable', SetBool.Request(data=True)).success
        wait_for(lambda: len(probe.recorded.get('command')) >= 5, 120, 'commands after enable')
    finally:
        probe.close()
        codes = {'policy_node': policy.interrupt(), 'sim_arm_node': sim.interrupt()}
    for name, node in (('policy_node', policy), ('sim_arm_node', sim)):
        assert codes[name] == 0, f'{name} exit {codes[name]}:\n{node.output()[-3000:]}'
        assert 'Traceback' not in node.output()
