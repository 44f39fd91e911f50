"""``ptr inspect`` on the real and third-party bags in ../shared/data/bags."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bag_tools.errors import BagOpenError, MissingTypeError
from bag_tools.inspect import summarize_bag

PTR = [sys.executable, '-m', 'ptr_cli.main']
R2 = 'rosbag2_resources/rosbag2_py/test/resources'
TRIO = 'third_party_synthetic/deepen_grade'


def run_ptr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PTR, *args], capture_output=True, text=True, timeout=120,
                          check=False)


def topics(summary: dict) -> dict[str, dict]:
    return {t['topic']: t for t in summary['topics']}


def test_pr2_ros1_bag_joint_states(shared_bags: Path) -> None:
    proc = run_ptr('inspect', '--json', str(shared_bags / 'real/pr2_pr1012_sensors.bag'))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    js = topics(summary)['/joint_states']
    assert js['type'] == 'sensor_msgs/msg/JointState'
    assert js['count'] == 1325
    assert js['rate_hz'] == pytest.approx(98, abs=1.5)
    assert js['header_stamps'] is True
    assert summary['duration_s'] == pytest.approx(13.45, abs=0.05)
    tf = topics(summary)['/tf']
    assert tf['type'] == 'tf/msg/tfMessage'
    assert tf['count'] == 3734  # ten connections of /tf merged into one row
    assert tf['header_stamps'] is False
    assert topics(summary)['/pressure/l_gripper_motor']['type'] == 'pr2_msgs/msg/PressureState'


def test_pr2_table_output(shared_bags: Path) -> None:
    proc = run_ptr('inspect', str(shared_bags / 'real/pr2_pr1012_sensors.bag'))
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if '/joint_states' in line)
    assert row.split() == ['/joint_states', 'sensor_msgs/msg/JointState', '1325', '98.55', 'yes']


@pytest.mark.parametrize('name', ['talker', 'convert_a'])
def test_sqlite3_and_mcap_pairs_agree(shared_bags: Path, name: str) -> None:
    mcap = summarize_bag(shared_bags / R2 / 'mcap' / name)
    if name == 'convert_a':
        # The sqlite3 twin stores test_msgs types without definitions: a clear refusal.
        with pytest.raises(MissingTypeError, match=r'topic a_empty: type test_msgs/msg/Empty'):
            summarize_bag(shared_bags / R2 / 'sqlite3' / name)
        assert {t['topic'] for t in mcap['topics']} == {'a_empty', 'b_basictypes'}
        return
    db3 = summarize_bag(shared_bags / R2 / 'sqlite3' / name)
    pick = ('type', 'count', 'header_stamps')
    assert {k: {f: v[f] for f in pick} for k, v in topics(db3).items()} == {
        k: {f: v[f] for f in pick} for k, v in topics(mcap).items()
    }
    assert topics(db3)['/topic']['count'] == 10
    assert topics(db3)['/rosout']['count'] == 10
    assert topics(db3)['/topic']['rate_hz'] == pytest.approx(2.0, abs=0.05)


def test_split_bag_reads_all_five_files(shared_bags: Path) -> None:
    for storage in ('sqlite3', 'mcap'):
        summary = summarize_bag(shared_bags / R2 / storage / 'wbag')
        assert summary['messages'] == 6074
        assert sorted(topics(summary)) == ['AAA', 'BBB', 'CCC', 'DDD', 'EEE', 'FFF', 'GGG', 'HHH']
        assert topics(summary)['AAA']['count'] == 804


def test_empty_bag(shared_bags: Path) -> None:
    summary = summarize_bag(shared_bags / 'rosbag2_resources/ros2bag/test/resources/empty_bag')
    assert summary['messages'] == 0
    assert summary['duration_s'] == 0.0
    assert {t['count'] for t in summary['topics']} == {0}


def test_third_party_trio_same_joint_topics(shared_bags: Path) -> None:
    paths = [shared_bags / TRIO / 'sample_ros1.bag', shared_bags / TRIO / 'sample_ros2',
             shared_bags / TRIO / 'sample.mcap']
    proc = run_ptr('inspect', '--json', *map(str, paths))
    assert proc.returncode == 0, proc.stderr
    ros1, db3, mcap = json.loads(proc.stdout)
    for summary in (ros1, db3, mcap):
        t = topics(summary)
        for topic in ('/joint_states', '/joint_command', '/gripper/joint_states'):
            assert t[topic]['type'] == 'sensor_msgs/msg/JointState'
            assert t[topic]['count'] == 200
            assert t[topic]['rate_hz'] == pytest.approx(20.0, abs=0.2)
        assert summary['duration_s'] == pytest.approx(9.95, abs=0.01)
    assert '/camera/image_raw' not in topics(db3)  # the db3 has no image topic
    assert topics(ros1)['/camera/image_raw']['count'] == 100
    assert topics(mcap)['/camera/image_raw']['type'] == 'sensor_msgs/msg/CompressedImage'
    assert topics(ros1)['/joint_states']['header_stamps'] is True


def test_not_a_bag_is_one_line_error(tmp_path: Path) -> None:
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    proc = run_ptr('inspect', str(text))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f'ptr inspect: error: {text}: not a bag (expected .bag, .db3, ' \
        '.mcap or a rosbag2 folder)'
    missing = run_ptr('inspect', str(tmp_path / 'nope.mcap'))
    assert missing.returncode == 2
    assert 'no such file or directory' in missing.stderr
    assert 'Traceback' not in missing.stderr


@pytest.mark.parametrize('name', ['sample_ros1.bag', 'sample.mcap'])
def test_truncated_bag_is_one_line_error(shared_bags: Path, tmp_path: Path, name: str) -> None:
    src = shared_bags / TRIO / name
    cut = tmp_path / name
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    proc = run_ptr('inspect', str(cut))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f'ptr inspect: error: {cut}: ')
    assert 'Traceback' not in proc.stderr
    with pytest.raises(BagOpenError):
        summarize_bag(cut)


def test_garbage_with_bag_suffix(tmp_path: Path) -> None:
    fake = tmp_path / 'fake.db3'
    fake.write_bytes(b'\x00not sqlite at all' * 100)
    with pytest.raises(BagOpenError, match=r'fake\.db3: '):
        summarize_bag(fake)


def test_missing_type_definitions(shared_bags: Path) -> None:
    bag = shared_bags / 'rosbag2_resources/rosbag2_tests/resources/sqlite3/' \
        'bag_with_topics_and_service_events'
    proc = run_ptr('inspect', str(bag))
    assert proc.returncode == 2
    assert 'type test_msgs/srv/BasicTypes_Event has no definition' in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_folder_without_metadata(shared_bags: Path, tmp_path: Path) -> None:
    src = shared_bags / R2 / 'mcap/reindex_test_bags/multiple_files'
    dst = tmp_path / 'multiple_files'
    shutil.copytree(src, dst)
    with pytest.raises(BagOpenError, match=r'without metadata\.yaml \(3 storage files\)'):
        summarize_bag(dst)
