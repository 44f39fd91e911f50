"""Known-answer time alignment: messages at hand-picked stamps → exact grid values.

Covers jittered rates, out-of-order header stamps, a dropped camera frame gap, held commands on
log time next to header-stamped topics, log-time fallback, and episode splits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bagfactory import BagContent, encode_png, write_all, write_bag

from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import IngestError
from bag_tools.profile import RobotProfile

T0 = 1_600_000_000_000_000_000
MS = 1_000_000


def profile(**overrides: Any) -> RobotProfile:
    d: dict[str, Any] = {
        'robot': 'toy', 'joints': ['a', 'b'], 'state_topic': '/js',
        'action': {'source': 'command', 'topic': '/cmd'},
        'cameras': {'cam': {'topic': '/cam'}}, 'image_size': [4, 4], 'rate_hz': 10.0,
        'joint_limits': {'lower': [-9, -9], 'upper': [9, 9]}, 'image_tolerance_s': 0.05,
        'min_episode_steps': 2,
    }
    d.update(overrides)
    return RobotProfile.from_dict(d, source='test')


def frame(k: int) -> np.ndarray:
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0] = 40 * (k + 1)
    img[0, 0] = (k, k, k)
    return img


def known_answer_bag() -> BagContent:
    c = BagContent()
    # (log ms, header stamp ms, a): stamps jitter, and the 60 ms message arrives before the 40 ms
    states = [(1, 0, 0.0), (41, 60, 1.0), (61, 40, 0.4), (101, 100, 2.0), (171, 170, 2.7),
              (231, 230, 2.0), (301, 300, 5.0)]
    for log_ms, stamp_ms, a in states:
        c.joint_state('/js', T0 + log_ms * MS, ['b', 'a'], [-a, a], stamp_ns=T0 + stamp_ms * MS)
    for log_ms, v in [(0, 1.0), (90, 2.0), (210, 3.0)]:  # no header: log time
        c.float_array('/cmd', T0 + log_ms * MS, [v, 10 * v])
    # camera at 50, 100, 140, then a dropped-frame gap until 300
    for k, stamp_ms in enumerate([50, 100, 140, 300]):
        c.compressed_image('/cam', T0 + (stamp_ms + 2) * MS, encode_png(frame(k)), fmt='png',
                           stamp_ns=T0 + stamp_ms * MS)
    return c


@pytest.mark.parametrize('fmt', ['ros1', 'sqlite3', 'mcap'])
def test_known_answer_grid(tmp_path: Path, fmt: str) -> None:
    path = write_bag(known_answer_bag(), tmp_path / 'toy', fmt)
    prof = profile(action={'source': 'command', 'topic': '/cmd', 'names': ['a', 'b']})
    (ep,) = bag_to_episodes(path, prof)
    # every stream has started at 50 ms (the camera); the state ends at 300 ms
    assert ((ep.timestamp - T0) // MS).tolist() == [50, 150, 250]
    a = ep.state[:, 0].astype(np.float64)
    # 50: between stamps 40 (0.4) and 60 (1.0) -- only right after sorting by header stamp
    np.testing.assert_allclose(a, [0.7, 2.0 + 50 / 70 * 0.7, 2.0 + 20 / 70 * 3.0], rtol=1e-6)
    np.testing.assert_array_equal(ep.state[:, 1], -ep.state[:, 0])  # names were ['b', 'a']
    assert ep.state_valid.all()
    # commands held, on log time: 0 -> [1, 10], 90 -> [2, 20], 210 -> [3, 30]
    assert ep.action.tolist() == [[1, 10], [2, 20], [3, 30]]
    assert ep.action_valid.all()
    # camera: 50 -> frame 0, 150 -> frame 2 (10 ms old), 250 -> newest is 110 ms old: invalid
    assert ep.image_valid['cam'].tolist() == [True, True, False]
    np.testing.assert_array_equal(ep.images['cam'][0], frame(0))
    np.testing.assert_array_equal(ep.images['cam'][1], frame(2))
    assert not ep.images['cam'][2].any()
    topics = {r['topic']: r for r in ep.sync_report['topics']}
    assert topics['/js']['clock'] == 'header'
    assert topics['/js']['out_of_order'] == 1
    # nearest state sample: 50 -> 10 ms (40, 60), 150 -> 20 ms (170), 250 -> 20 ms (230)
    assert topics['/js']['max_offset_s'] == pytest.approx(0.02)
    assert topics['/cmd']['clock'] == 'log'
    assert topics['/cam']['clock'] == 'header'
    assert topics['/cam']['dropped'] == 1  # the 100 ms frame no step used
    assert topics['/cam']['invalid'] == 1
    assert topics['/cam']['max_offset_s'] == pytest.approx(0.01)
    assert topics['/cam']['max_gap_s'] == pytest.approx(0.05)  # 50..140 inside the episode span
    assert ep.sync_report['clock'] == ['header', 'log']


def test_jittered_rates_interpolate_exactly(tmp_path: Path) -> None:
    """50 Hz joint states with +-4 ms jitter of a linear motion: the grid gets the exact line."""
    rng = np.random.default_rng(0)
    c = BagContent()
    for i in range(101):
        t_ms = 20 * i + (int(rng.integers(-4, 5)) if 0 < i < 100 else 0)
        a = 0.5 + 0.002 * t_ms
        c.joint_state('/js', T0 + t_ms * MS, ['a', 'b'], [a, 3 * a])
    for i in range(21):
        c.float_array('/cmd', T0 + 100 * i * MS, [i, i])
    path = write_bag(c, tmp_path / 'jit', 'mcap')
    (ep,) = bag_to_episodes(path, profile(cameras={}, image_size=None))
    t_ms = (ep.timestamp - T0) / MS
    assert t_ms.tolist() == [100.0 * k for k in range(21)]
    np.testing.assert_allclose(ep.state[:, 0], 0.5 + 0.002 * t_ms, atol=1e-6)
    np.testing.assert_allclose(ep.state[:, 1], 3 * (0.5 + 0.002 * t_ms), atol=1e-6)
    assert ep.action[:, 0].tolist() == list(range(21))
    rep = ep.sync_report['topics'][0]
    assert rep['rate_hz'] == pytest.approx(50.0, abs=0.01)
    assert rep['max_gap_s'] <= 0.028


def test_zero_header_stamps_fall_back_to_log_time(tmp_path: Path) -> None:
    c = BagContent()
    for i in range(30):
        c.joint_state('/js', T0 + 50 * i * MS, ['a', 'b'], [i, -i], stamp_ns=0)
    path = write_bag(c, tmp_path / 'zero', 'sqlite3')
    (ep,) = bag_to_episodes(path, profile(action={'source': 'next_state'}, cameras={},
                                          image_size=None))
    assert ep.sync_report['topics'][0]['clock'] == 'log'
    assert ep.state[:, 0].tolist() == [2.0 * k for k in range(15)]
    # next_state: action[t] = state[t + 1]; the last step has no next state
    assert ep.action[:-1, 0].tolist() == ep.state[1:, 0].tolist()
    assert ep.action_valid.tolist() == [True] * 14 + [False]


def test_gap_and_marker_split_episodes(tmp_path: Path) -> None:
    c = BagContent()
    times = [*range(0, 2000, 50), *range(4000, 6000, 50)]  # a 2 s gap
    for t in times:
        c.joint_state('/js', T0 + t * MS, ['a', 'b'], [t / 1000, 0.0])
    c.empty('/episode', T0 + 5000 * MS)
    c.custom_data['ptr.source'] = 'expert'
    c.custom_data['ptr.success'] = 'true'
    paths = write_all(c, tmp_path)
    prof = profile(action={'source': 'next_state'}, cameras={}, image_size=None,
                   episodes={'marker_topic': '/episode', 'max_gap_s': 1.0})
    for fmt, path in paths.items():
        eps = bag_to_episodes(path, prof)
        starts = [int((e.timestamp[0] - T0) // MS) for e in eps]
        assert starts == [0, 4000, 5000], fmt
        assert [e.length for e in eps] == [20, 10, 10]
        assert [e.part for e in eps] == [(0, 3), (1, 3), (2, 3)]
        assert len({e.id for e in eps}) == 3
        expected = {} if fmt == 'ros1' else {'ptr.source': 'expert', 'ptr.success': 'true'}
        assert all(e.tags == expected for e in eps)
    # a segment shorter than min_episode_steps is dropped; none long enough: one clear error
    with pytest.raises(IngestError, match=r'/js: too short: 20 grid steps'):
        bag_to_episodes(paths['mcap'], profile(
            action={'source': 'next_state'}, cameras={}, image_size=None, min_episode_steps=21))


def test_arm_and_gripper_published_separately_on_one_topic(tmp_path: Path) -> None:
    """Two drivers on /js: arm joints at 50 Hz, the gripper alone at 20 Hz (with jitter)."""
    c = BagContent()
    for i in range(51):
        c.joint_state('/js', T0 + 20 * i * MS, ['a'], [0.01 * i])  # a = t / 2 (t in s)
    for t_ms in [5, 48, 101, 152, 199, 251, 300, 352, 401, 449, 500, 551, 603, 650, 702, 748,
                 801, 850, 899, 951, 1001]:
        c.joint_state('/js', T0 + t_ms * MS, ['b'], [t_ms / 1000.0])  # b = t
    c.joint_state('/js', T0 + 30 * MS, ['head_pan'], [9.0])  # names neither: ignored
    path = write_bag(c, tmp_path / 'split', 'ros1')
    (ep,) = bag_to_episodes(path, profile(action={'source': 'next_state'}, cameras={},
                                          image_size=None))
    t = (ep.timestamp - T0) / 1e9
    assert t[0] == pytest.approx(0.005)  # both joints named from 5 ms on
    np.testing.assert_allclose(ep.state[:, 0], t / 2, atol=1e-6)
    np.testing.assert_allclose(ep.state[:, 1], t, atol=1e-6)
    assert ep.state_valid.all()
    assert ep.sync_report['ignored_state_messages'] == 1
    with pytest.raises(IngestError, match=r"/js: no JointState message names joints \['c'\]"):
        bag_to_episodes(path, profile(joints=['a', 'c'], action={'source': 'next_state'},
                                      cameras={}, image_size=None))


def test_extra_joint_state_topic(tmp_path: Path) -> None:
    c = BagContent()
    for i in range(30):
        c.joint_state('/js', T0 + 50 * i * MS, ['a', 'b'], [i, -i])
        c.joint_state('/gripper/js', T0 + 50 * i * MS + MS, ['finger'], [0.001 * i])
    c.wrench('/ft', T0, [1, 2, 3], [4, 5, 6])
    c.wrench('/ft', T0 + 2 * 10**9, [3, 2, 1], [6, 5, 4])
    prof = profile(action={'source': 'next_state'}, cameras={}, image_size=None, extra_state=[
        {'topic': '/gripper/js', 'type': 'sensor_msgs/msg/JointState', 'joints': ['finger']},
        {'topic': '/ft', 'type': 'geometry_msgs/WrenchStamped', 'name': 'ft'},
    ])
    assert prof.state_names == ['a', 'b', 'finger', 'ft.force.x', 'ft.force.y', 'ft.force.z',
                                'ft.torque.x', 'ft.torque.y', 'ft.torque.z']
    (ep,) = bag_to_episodes(write_bag(c, tmp_path / 'g', 'mcap'), prof)
    assert ep.state.shape == (15, 9)  # from 1 ms (first gripper message) to 1.45 s at 10 Hz
    t = (ep.timestamp - T0) / 1e9
    np.testing.assert_allclose(ep.state[:, 2], (t - 0.001) / 50, atol=1e-6)
    np.testing.assert_allclose(ep.state[:, 3], 1 + t, atol=1e-6)  # force.x 1 -> 3 over 2 s
    assert ep.state_valid.all()


def test_pose_quaternions_take_the_shorter_arc_and_tasks_follow_the_topic(
    tmp_path: Path,
) -> None:
    c = BagContent()
    for i in range(41):
        c.joint_state('/js', T0 + 50 * i * MS, ['a', 'b'], [i, i])
    c.float_array('/cmd', T0, [1.0, 2.0])
    theta = 0.2
    # the tracker flips the quaternion's sign between samples: the same rotations as +q
    c.pose('/obj', T0, [0, 0, 0], [0, 0, 0, 1])
    c.pose('/obj', T0 + 200 * MS, [1, 2, 3], [0, 0, -np.sin(theta / 2), -np.cos(theta / 2)])
    c.pose('/obj', T0 + 2000 * MS, [1, 2, 3], [0, 0, np.sin(theta / 2), np.cos(theta / 2)])
    c.string('/task', T0, 'stack the red block')
    c.empty('/episode', T0 + 1000 * MS)
    c.string('/task', T0 + 1000 * MS, 'open the drawer')
    prof = profile(cameras={}, image_size=None, task='fallback', task_topic='/task',
                   action={'source': 'command', 'topic': '/cmd', 'names': ['a', 'b']},
                   extra_state=[{'topic': '/obj', 'type': 'geometry_msgs/PoseStamped'}],
                   episodes={'marker_topic': '/episode'})
    first, second = bag_to_episodes(write_bag(c, tmp_path / 'pose', 'sqlite3'), prof)
    assert first.task == 'stack the red block'
    assert second.task == 'open the drawer'
    mid = first.state[1]  # t = 100 ms, halfway between the first two poses
    np.testing.assert_allclose(mid[2:5], [0.5, 1.0, 1.5], atol=1e-6)
    np.testing.assert_allclose(mid[5:9], [0, 0, np.sin(theta / 4), np.cos(theta / 4)],
                               atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first.state[:, 5:9], axis=1), 1.0, atol=1e-6)
    assert prof.state_names[2:5] == ['obj.position.x', 'obj.position.y', 'obj.position.z']
