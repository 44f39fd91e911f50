"""The repo root is the ROS 2 package ``ptr``: metadata, and a real ``colcon build``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_package_xml_is_format_3_ament_python() -> None:
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'ptr'
    assert root.findtext('export/build_type') == 'ament_python'
    execs = {e.text for e in root.findall('exec_depend')}
    assert {'rclpy', 'sensor_msgs', 'trajectory_msgs', 'std_srvs', 'diagnostic_msgs'} <= execs
    assert any(t.text == 'python3-pytest' for t in root.findall('test_depend'))


def test_ros2_ws_src_points_at_repo_root() -> None:
    link = REPO / 'ros2_ws' / 'src' / 'ptr'
    assert link.is_symlink()
    assert link.resolve() == REPO


@pytest.mark.skipif(shutil.which('colcon', path=str(Path(sys.executable).parent)) is None,
                    reason='colcon not installed (pip install colcon-core colcon-ros '
                    'colcon-python-setup-py)')
def test_colcon_build_installs_package(tmp_path: Path) -> None:
    # Same as `cd ros2_ws && colcon build`, in a scratch workspace so tests never touch ros2_ws.
    ws = tmp_path / 'ws'
    (ws / 'src').mkdir(parents=True)
    (ws / 'src' / 'ptr').symlink_to(REPO)
    colcon = str(Path(sys.executable).parent / 'colcon')
    env = {**os.environ, 'PATH': f'{Path(sys.executable).parent}:{os.environ["PATH"]}'}
    proc = subprocess.run(
        [colcon, 'build', '--base-paths', 'src'], cwd=ws, env=env, capture_output=True,
        text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    share = ws / 'install' / 'ptr' / 'share'
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'ptr').is_file()
    assert (share / 'ptr' / 'package.xml').read_text() == (REPO / 'package.xml').read_text()
    launch = sorted(p.name for p in (share / 'ptr' / 'launch').glob('*.launch.py'))
    assert launch == sorted(p.name for p in (REPO / 'launch').glob('*.launch.py'))
    assert 'train.launch.py' in launch
    assert 'policy.launch.py' in launch
    robots = sorted(p.name for p in (share / 'ptr' / 'config' / 'robots').glob('*.yaml'))
    assert robots == sorted(p.name for p in (REPO / 'config' / 'robots').glob('*.yaml'))
    assert robots
    lib = ws / 'install' / 'ptr' / 'lib' / 'ptr'
    for exe in ('ptr', 'policy_node', 'sim_arm_node', 'metaworld_arm_node'):
        assert os.access(lib / exe, os.X_OK), f'{exe} missing from lib/ptr'
    site = next((ws / 'install' / 'ptr' / 'lib').glob('python3*/site-packages'))
    for pkg in ('bag_tools', 'ptr_core', 'ptr_ros'):
        assert (site / pkg / '__init__.py').is_file()
