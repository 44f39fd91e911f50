"""The error experience of ``ptr ingest`` / ``ptr inspect`` (real subprocesses, real bags)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import yaml
from armbags import T0, arm_content, arm_profile
from bagfactory import BagContent, write_bag

from bag_tools.episodes import bag_to_episodes
from bag_tools.inspect import summarize_bag
from bag_tools.profile import RobotProfile

PTR = [str(Path(sys.executable).with_name('ptr'))]


def ptr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PTR, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def profile_file(tmp_path: Path, **overrides: object) -> Path:
    path = tmp_path / 'arm3.yaml'
    path.write_text(yaml.safe_dump(arm_profile(**overrides)))
    return path


def test_each_bag_failure_is_one_line(tmp_path: Path) -> None:
    good = write_bag(arm_content(), tmp_path / 'good', 'mcap')
    bad = write_bag(arm_content(camera=False), tmp_path / 'nocam', 'mcap')
    proc = ptr('ingest', str(good), str(bad), '-p', str(profile_file(tmp_path)), '-o',
               str(tmp_path / 'ds'), '-j', '1')
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert out.count(f'{bad}: topic /cam/image_raw/compressed: not in the bag') == 1, out
    assert '1 bag(s) ingested, 0 skipped, 1 failed' in proc.stdout


def test_typo_in_a_bag_path_is_a_usage_error(tmp_path: Path) -> None:
    good = write_bag(arm_content(), tmp_path / 'good', 'mcap')
    out = tmp_path / 'ds'
    proc = ptr('ingest', str(good), str(tmp_path / 'godo'), '-p', str(profile_file(tmp_path)),
               '-o', str(out))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f'ptr ingest: error: {tmp_path / "godo"}: no such file or ' \
                                  'directory'
    assert not out.exists()
    shown = ptr('inspect', str(tmp_path / 'godo'))
    assert shown.returncode == 2
    assert 'no such file or directory' in shown.stderr


def test_all_problems_of_a_profile_in_one_run(tmp_path: Path) -> None:
    bag = write_bag(arm_content(), tmp_path / 'b', 'mcap')
    prof = profile_file(tmp_path, state_topic='/joint_state',
                        cameras={'wrist': {'topic': '/cam/image'}})
    proc = ptr('ingest', str(bag), '-p', str(prof), '-o', str(tmp_path / 'ds'), '-j', '1')
    assert proc.returncode == 1
    line = next(ln for ln in proc.stderr.splitlines() if '2 problems' in ln)
    assert 'topic /joint_state: not in the bag (profile key state_topic' in line
    assert 'topic /cam/image: not in the bag (profile key cameras.wrist.topic' in line


def test_a_wrong_joint_name_is_not_blamed_on_the_action_topic(tmp_path: Path) -> None:
    bag = write_bag(arm_content(camera=False), tmp_path / 'b', 'mcap')
    prof = profile_file(tmp_path, joints=['j1', 'j2', 'j_3'], cameras={}, image_size=None)
    proc = ptr('ingest', str(bag), '-p', str(prof), '-o', str(tmp_path / 'ds'), '-j', '1')
    assert proc.returncode == 1
    assert ("topic /joint_states: no JointState message names joints ['j_3'] (profile key "
            "joints; the messages name ['gripper', 'j3', 'j1', 'j2'])") in proc.stderr
    assert '/arm/joint_trajectory' not in proc.stderr


def test_inspect_takes_a_folder_of_independent_bags(tmp_path: Path) -> None:
    folder = tmp_path / 'session'
    write_bag(arm_content(camera=False), folder / 'a', 'mcap')
    write_bag(arm_content(camera=False, duration_s=2.0), folder / 'b', 'ros1')
    for mcap in (folder / 'a').glob('*.mcap'):  # a bare .mcap beside the others
        mcap.rename(folder / 'bare.mcap')
    (folder / 'a' / 'metadata.yaml').unlink()
    (folder / 'a').rmdir()
    proc = ptr('inspect', '--json', str(folder))
    assert proc.returncode == 0, proc.stderr
    summaries = json.loads(proc.stdout)
    assert sorted(Path(s['path']).name for s in summaries) == ['b.bag', 'bare.mcap']
    assert 'reindex' not in proc.stderr


def test_inspect_json_into_a_closed_pipe(tmp_path: Path) -> None:
    c = BagContent()
    for k in range(600):  # > 64 kB of JSON: the pipe fills and head closes it
        c.string(f'/topic_with_a_long_name_{k:04d}', T0 + k, 'x')
    bag = write_bag(c, tmp_path / 'many', 'mcap')
    cmd = f'{PTR[0]} inspect --json {bag} {bag} | head -c 100 > /dev/null'
    proc = subprocess.run(['bash', '-c', f'set -o pipefail; {cmd}'], capture_output=True,
                          text=True, timeout=120, check=False)
    assert 'Traceback' not in proc.stderr
    assert 'BrokenPipe' not in proc.stderr
    assert proc.stderr == ''


def test_a_topic_with_two_types_lists_both(tmp_path: Path) -> None:
    c = BagContent()
    c.string('/mixed', T0, 'a')
    c.empty('/mixed', T0 + 1)
    c.string('/mixed', T0 + 2, 'b')
    bag = write_bag(c, tmp_path / 'mixed', 'ros1')
    (t,) = summarize_bag(bag)['topics']
    assert t['types'] == ['std_msgs/msg/String', 'std_msgs/msg/Empty']
    assert t['count'] == 3
    proc = ptr('inspect', str(bag))
    assert 'std_msgs/msg/String + std_msgs/msg/Empty' in proc.stdout


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def warnings_of(bag: Path, prof: RobotProfile) -> str:
    handler = _Lines()
    logger = logging.getLogger('bag_tools.episodes')
    logger.addHandler(handler)
    try:
        bag_to_episodes(bag, prof)
    finally:
        logger.removeHandler(handler)
    return '\n'.join(handler.lines)


def test_a_grid_faster_than_a_source_warns(tmp_path: Path) -> None:
    bag = write_bag(arm_content(camera=False, js_hz=50.0, cmd_hz=20.0), tmp_path / 'b', 'mcap')
    fast = arm_profile(cameras={}, image_size=None, rate_hz=200.0)
    text = warnings_of(bag, RobotProfile.from_dict(fast, source='p'))
    assert 'topic /joint_states (state) runs at 50.0 Hz, slower than the 200 Hz grid' in text
    assert 'topic /arm/joint_trajectory (action) runs at 20.0 Hz' in text
    slow = arm_profile(cameras={}, image_size=None, rate_hz=10.0)
    assert warnings_of(bag, RobotProfile.from_dict(slow, source='p')) == ''
