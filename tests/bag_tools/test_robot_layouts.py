"""The bags real robots record: two-arm leader/follower rigs with video beside the bag,
controller state (Humble and Jazzy field sets), multi-point trajectories, mobile bases (Odometry,
PoseWithCovarianceStamped, TF, cmd_vel). Values are checked against hand-computed grids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bagfactory import BagContent, write_bag, write_video

from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import BagToolsError, IngestError, ProfileError
from bag_tools.profile import RobotProfile

T0 = 1_700_000_000_000_000_000
J7 = [f'joint{i}' for i in range(1, 8)]
SLOPE = {'left': np.linspace(0.1, 0.7, 7), 'right': -np.linspace(0.1, 0.7, 7)}
BASE = {'left': np.arange(7.0), 'right': 10.0 + np.arange(7.0)}
LEAD = {'left': 100.0, 'right': 200.0}  # lead message i of arm a: LEAD[a] + i + 0.01 * joint


def ns(t_s: float) -> int:
    return T0 + round(t_s * 1e9)


def follow(arm: str, t_s: float) -> np.ndarray:
    return BASE[arm] + SLOPE[arm] * t_s


def lead(arm: str, i: int) -> np.ndarray:
    return LEAD[arm] + i + 0.01 * np.arange(7)


def frame(k: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = (12 * k) % 240
    img[..., 1] = 200 - (9 * k) % 150
    img[..., 2] = 90
    return img


def two_arm_bag(tmp_path: Path, *, fmt: str = 'mcap', padded: bool = True) -> Path:
    """Followers at 50 Hz from t=0, leaders at 50 Hz from t=0.01 s (padded CDR), the same
    joint names on both arms, a 15 fps H.264 video beside the bag, 3 s."""
    c = BagContent()
    for arm in ('left', 'right'):
        for i in range(151):
            t = i / 50
            c.joint_state(f'/robot/arm_{arm}_follow/joint_states', ns(t), J7, follow(arm, t))
            c.joint_state(f'/robot/arm_{arm}_lead/joint_states', ns(t + 0.01), J7, lead(arm, i))
        if padded:
            c.trailing[f'/robot/arm_{arm}_lead/joint_states'] = b'\0\0\0\0\0'
    for k in range(46):
        c.add('/robot/left_camera/color/camera_info', 'std_msgs/msg/Empty', ns(k / 15),
              lambda ts: ts.types['std_msgs/msg/Empty']())
    bag = write_bag(c, tmp_path / 'rig', fmt)
    write_video(bag / 'robot.left_camera.color.image_raw.mp4', [frame(k) for k in range(46)])
    return bag


def two_arm_profile(**camera: Any) -> dict[str, Any]:
    arms = {
        arm: {
            'joints': J7,
            'state_topic': f'/robot/arm_{arm}_follow/joint_states',
            'action': {'source': 'command', 'topic': f'/robot/arm_{arm}_lead/joint_states'},
            'joint_limits': {'lower': [-50.0] * 7, 'upper': [300.0] * 7},
        } for arm in ('left', 'right')
    }
    return {
        'robot': 'airbot', 'arms': arms, 'rate_hz': 10.0, 'image_size': [24, 32],
        'cameras': {'left': {'file': 'robot.left_camera.color.image_raw.mp4', **camera}},
        'min_episode_steps': 8,
    }


def test_two_arm_profile_flattens_groups_in_order() -> None:
    p = RobotProfile.from_dict(two_arm_profile(), source='rig.yaml')
    assert p.state_names[:2] == ['left/joint1', 'left/joint2']
    assert p.state_names[7:9] == ['right/joint1', 'right/joint2']
    assert p.action_names == [f'{a}/{j}' for a in ('left', 'right') for j in J7]
    assert p.joint_upper == (300.0,) * 14
    assert [g.name for g in p.groups] == ['left', 'right']
    assert RobotProfile.from_dict(p.to_dict(), source='copy') == p


def test_two_arm_rig_with_video_ingests_to_hand_computed_grid(tmp_path: Path) -> None:
    bag = two_arm_bag(tmp_path)
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(two_arm_profile(), source='rig'))
    # start: every stream has begun -> the leaders' first message at 0.01 s; grid at 10 Hz
    t = 0.01 + 0.1 * np.arange(len(ep.timestamp))
    assert ep.timestamp[0] == ns(0.01)
    assert len(ep.timestamp) == 30  # 0.01 ... 2.91 (the followers end at 3.0 s)
    assert ep.state.shape == (30, 14)
    assert ep.action.shape == (30, 14)
    want_state = np.concatenate([follow('left', t[:, None]), follow('right', t[:, None])], 1)
    np.testing.assert_allclose(ep.state, want_state.astype(np.float32), rtol=1e-6)
    # action: the latest leader message at or before t_k: message i = 5k (at 0.01 + 0.02 i)
    k = np.arange(30)
    want_action = np.concatenate([np.stack([lead(a, 5 * kk) for kk in k]) for a in
                                  ('left', 'right')], 1)
    np.testing.assert_array_equal(ep.action, want_action.astype(np.float32))
    assert ep.state_valid.all()
    assert ep.action_valid.all()
    # camera: container timing from the bag start (offset 0): frame floor(15 t)
    img = ep.images['left']
    assert img.shape == (30, 24, 32, 3)
    assert ep.image_valid['left'].all()
    want_k = np.floor(15 * t + 1e-9).astype(int)
    got_red = img[:, :, :, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(got_red, (12 * want_k) % 240, atol=4)
    video = ep.sync_report['videos']['left']
    assert video['timing'] == 'container'
    assert video['offset_s'] == 0.0
    assert video['frames'] == 46


def test_video_offset_sidecar_and_stamps_topic(tmp_path: Path) -> None:
    bag = two_arm_bag(tmp_path, padded=False)
    # an offset of 0.2 s: frame k at 0.2 + k / 15
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(two_arm_profile(offset_s=0.2),
                                                        source='rig'))
    assert ep.timestamp[0] == ns(0.2)  # the video starts last
    t = 0.2 + 0.1 * np.arange(len(ep.timestamp))
    want_k = np.minimum(np.floor(15 * (t - 0.2) + 1e-9).astype(int), 45)
    np.testing.assert_allclose(ep.images['left'][:, :, :, 0].mean(axis=(1, 2)),
                               (12 * want_k) % 240, atol=4)
    assert ep.sync_report['videos']['left']['offset_s'] == 0.2
    # a sidecar wins over the container: frame k at 0.05 + k / 10 s
    sidecar = bag / 'robot.left_camera.color.image_raw.mp4.stamps'
    sidecar.write_text(''.join(f'{ns(0.05 + k / 10)}\n' for k in range(46)))
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(two_arm_profile(), source='rig'))
    assert ep.timestamp[0] == ns(0.05)
    k = np.arange(len(ep.timestamp))
    np.testing.assert_allclose(ep.images['left'][:, :, :, 0].mean(axis=(1, 2)),
                               (12 * k) % 240, atol=4)
    assert ep.sync_report['videos']['left']['timing'] == 'sidecar'
    sidecar.unlink()
    # a stamps topic: the k-th camera_info message times the k-th frame (k / 15 s)
    prof = two_arm_profile(stamps_topic='/robot/left_camera/color/camera_info')
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(prof, source='rig'))
    t = 0.01 + 0.1 * np.arange(len(ep.timestamp))
    want_k = np.floor(15 * t + 1e-9).astype(int)
    np.testing.assert_allclose(ep.images['left'][:, :, :, 0].mean(axis=(1, 2)),
                               (12 * want_k) % 240, atol=4)
    assert ep.sync_report['videos']['left']['timing'] == 'stamps_topic'


def test_missing_video_and_other_problems_in_one_line(tmp_path: Path) -> None:
    bag = two_arm_bag(tmp_path, padded=False)
    d = two_arm_profile()
    d['cameras']['left']['file'] = 'nope.mp4'
    d['arms']['right']['state_topic'] = '/robot/arm_right_folow/joint_states'
    with pytest.raises(IngestError) as info:
        bag_to_episodes(bag, RobotProfile.from_dict(d, source='rig'))
    text = str(info.value)
    assert '\n' not in text
    assert '2 problems' in text
    assert 'nope.mp4 (profile key cameras.left.file) is not beside the bag' in text
    assert ('topic /robot/arm_right_folow/joint_states: not in the bag (profile key '
            'arms.right.state_topic') in text


def test_wrong_joint_name_blamed_on_joints_not_on_action(tmp_path: Path) -> None:
    bag = two_arm_bag(tmp_path, padded=False)
    d = two_arm_profile()
    d['arms']['left']['joints'] = [*J7[:6], 'joint_7']
    with pytest.raises(IngestError) as info:
        bag_to_episodes(bag, RobotProfile.from_dict(d, source='rig'))
    text = str(info.value)
    assert text.count('problems') == 0, text  # one problem: the joints entry
    assert ("topic /robot/arm_left_follow/joint_states: no JointState message names joints "
            "['joint_7'] (profile key arms.left.joints; the messages name") in text
    assert 'arm_left_lead' not in text


@pytest.mark.parametrize(('change', 'key', 'problem'), [
    ({'joints': J7}, 'joints', 'per arm group'),
    ({'arms': {}}, 'arms', 'at least one arm group'),
    ({'arms': {'left arm': {}}}, 'arms.left arm', 'identifier'),
    ({'arms': {'left': {'joints': J7}}}, 'arms.left.state_topic', 'missing'),
])
def test_arm_profile_errors(change: dict[str, Any], key: str, problem: str) -> None:
    d = {**two_arm_profile(), **change}
    with pytest.raises(ProfileError, match=rf'^rig.yaml: key {key}: .*{problem}'):
        RobotProfile.from_dict(d, source='rig.yaml')


# -- controller state ----------------------------------------------------------------------

def controller_bag(tmp_path: Path, distro: str, *, humble_deprecated_empty: bool = False
                   ) -> Path:
    """/arm_right_controller/state at 50 Hz, 7 joints (names shuffled): actual = BASE + SLOPE t,
    desired = 100 + i. Humble fills desired/actual (and, like many controllers, reference/
    feedback too); Jazzy only reference/feedback."""
    c = BagContent()
    names = J7[::-1]
    for i in range(151):
        t = i / 50
        actual = follow('left', t)[::-1]
        desired = lead('left', i)[::-1]
        if distro == 'jazzy' or humble_deprecated_empty:
            pts = {'feedback': actual, 'reference': desired}
        else:
            pts = {'actual': actual, 'desired': desired}
        c.controller_state('/arm_right_controller/state', ns(t), names, pts)
    return write_bag(c, tmp_path / f'tiago_{distro}', 'mcap', distro=distro)


def controller_profile(**action: Any) -> dict[str, Any]:
    return {
        'robot': 'tiago_arm', 'joints': J7, 'state_topic': '/arm_right_controller/state',
        'action': {'source': 'command', 'topic': '/arm_right_controller/state', **action},
        'rate_hz': 10.0, 'joint_limits': {'lower': [-50.0] * 7, 'upper': [300.0] * 7},
        'min_episode_steps': 8,
    }


@pytest.mark.parametrize(('distro', 'empty'), [('humble', False), ('humble', True),
                                               ('jazzy', False)])
def test_controller_state_is_state_actual_and_action_desired(
    tmp_path: Path, distro: str, empty: bool
) -> None:
    bag = controller_bag(tmp_path, distro, humble_deprecated_empty=empty)
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(controller_profile(), source='tiago'))
    n = len(ep.timestamp)
    assert n == 31
    assert ep.timestamp[0] == T0
    t = 0.1 * np.arange(n)
    np.testing.assert_allclose(ep.state, follow('left', t[:, None]).astype(np.float32),
                               rtol=1e-6)
    want = np.stack([lead('left', 5 * k) for k in range(n)])
    np.testing.assert_array_equal(ep.action, want.astype(np.float32))


def test_controller_state_named_empty_field_is_refused(tmp_path: Path) -> None:
    bag = controller_bag(tmp_path, 'humble', humble_deprecated_empty=True)
    with pytest.raises(IngestError) as info:
        bag_to_episodes(bag, RobotProfile.from_dict(controller_profile(field='desired'),
                                                    source='tiago'))
    text = str(info.value)
    assert 'topic /arm_right_controller/state: JointTrajectoryControllerState field desired ' \
           'is empty' in text
    assert 'try reference or auto' in text
    assert '\n' not in text
    bag = controller_bag(tmp_path, 'jazzy')
    with pytest.raises(IngestError, match='field desired is not in this distro'):
        bag_to_episodes(bag, RobotProfile.from_dict(controller_profile(field='desired'),
                                                    source='tiago'))


def test_multi_point_trajectory_uses_the_point_nearest_the_grid_time(tmp_path: Path) -> None:
    """A trajectory every 0.5 s with points at +0, +0.1, ..., +0.4 s: value 1000 m + 10 p."""
    c = BagContent()
    for i in range(31):
        c.joint_state('/joint_states', ns(i / 10), ['a'], [0.1 * i])
    for m in range(6):
        c.trajectory_points('/cmd', ns(0.5 * m), ['a'],
                            [(0.1 * p, [1000.0 * m + 10 * p]) for p in range(5)])
    bag = write_bag(c, tmp_path / 'traj', 'mcap')
    prof = RobotProfile.from_dict({
        'robot': 'one', 'joints': ['a'], 'state_topic': '/joint_states',
        'action': {'source': 'command', 'topic': '/cmd'}, 'rate_hz': 20.0,
        'joint_limits': {'lower': [-1.0], 'upper': [9.0]}, 'min_episode_steps': 8}, source='t')
    (ep,) = bag_to_episodes(bag, prof)
    t = 0.05 * np.arange(len(ep.timestamp))
    m = np.minimum(np.floor(t / 0.5 + 1e-9), 5)  # the last trajectory (2.5 s) stays
    p = np.clip(np.round((t - 0.5 * m) / 0.1 + 1e-9), 0, 4)  # nearest point (ties: earlier)
    p = np.where(np.isclose((t - 0.5 * m) / 0.1 % 1, 0.5), np.floor((t - 0.5 * m) / 0.1), p)
    np.testing.assert_array_equal(ep.action[:, 0], (1000 * m + 10 * p).astype(np.float32))


# -- mobile base ------------------------------------------------------------------------------

def yaw_quat(yaw: float) -> list[float]:
    return [0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))]


def test_odometry_pose_covariance_tf_and_cmd_vel(tmp_path: Path) -> None:
    """Base at x = 0.5 t, yaw = 0.2 t (odom and TF odom->base_link at 20 Hz), a static
    base_link->arm_mount (+0.1 x, +0.3 z), map->odom static identity-ish (+1 y), AMCL pose at
    5 Hz, cmd_vel at 10 Hz (linear.x = i)."""
    c = BagContent()
    for i in range(61):
        t = i / 20
        c.joint_state('/joint_states', ns(t), ['a'], [t])
        c.odometry('/odom', ns(t), [0.5 * t, 0, 0], yaw_quat(0.2 * t), [0.5, 0, 0], [0, 0, 0.2])
        c.tf('/tf', ns(t), [('odom', 'base_link', [0.5 * t, 0, 0], yaw_quat(0.2 * t))])
    c.tf('/tf_static', ns(0), [('base_link', 'arm_mount', [0.1, 0, 0.3], [0, 0, 0, 1]),
                               ('map', 'odom', [0, 1.0, 0], [0, 0, 0, 1])])
    for i in range(16):
        c.pose_covariance('/amcl_pose', ns(i / 5), [0.5 * i / 5, 1.0, 0], yaw_quat(0.04 * i))
    for i in range(31):
        c.twist('/cmd_vel', ns(i / 10), [float(i), 0, 0], [0, 0, -float(i)])
    bag = write_bag(c, tmp_path / 'base', 'mcap')
    prof = RobotProfile.from_dict({
        'robot': 'mobile', 'joints': ['a'], 'state_topic': '/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0,
        'joint_limits': {'lower': [-1.0], 'upper': [9.0]}, 'min_episode_steps': 8,
        'extra_state': [
            {'topic': '/odom', 'type': 'nav_msgs/msg/Odometry', 'name': 'odom'},
            {'topic': '/amcl_pose', 'type': 'geometry_msgs/PoseWithCovarianceStamped',
             'name': 'amcl'},
            {'type': 'tf2_msgs/msg/TFMessage', 'parent': 'map', 'child': 'arm_mount',
             'name': 'mount'},
        ],
        'extra_action': [{'topic': '/cmd_vel', 'type': 'geometry_msgs/Twist', 'name': 'base'}],
    }, source='base')
    assert prof.state_names[1] == 'odom.pose.position.x'
    assert prof.state_names[14] == 'amcl.position.x'
    assert prof.state_names[21:24] == ['mount.position.x', 'mount.position.y',
                                       'mount.position.z']
    assert prof.action_names == ['a', 'base.linear.x', 'base.linear.y', 'base.linear.z',
                                 'base.angular.x', 'base.angular.y', 'base.angular.z']
    (ep,) = bag_to_episodes(bag, prof)
    n = len(ep.timestamp)
    assert n == 31  # 0 .. 3.0 s: every stream spans the bag
    t = 0.1 * np.arange(n)
    s = ep.state.astype(np.float64)
    np.testing.assert_allclose(s[:, 1], 0.5 * t, atol=1e-6)  # odom x
    np.testing.assert_allclose(s[:, 7], np.cos(0.1 * t), atol=1e-6)  # odom q.w = cos(yaw / 2)
    np.testing.assert_allclose(s[:, 8], 0.5, atol=1e-6)  # twist linear.x
    np.testing.assert_allclose(s[:, 14], 0.5 * t, atol=1e-6)  # amcl x
    np.testing.assert_allclose(s[:, 15], 1.0, atol=1e-6)
    # TF: map->odom (+1 y) * odom->base_link (x 0.5 t, yaw 0.2 t) * base_link->mount
    yaw = 0.2 * t
    np.testing.assert_allclose(s[:, 21], 0.5 * t + 0.1 * np.cos(yaw), atol=1e-5)
    np.testing.assert_allclose(s[:, 22], 1.0 + 0.1 * np.sin(yaw), atol=1e-5)
    np.testing.assert_allclose(s[:, 23], 0.3, atol=1e-6)
    np.testing.assert_allclose(s[:, 26], np.sin(yaw / 2), atol=1e-5)
    # cmd_vel held: message i at i / 10 = t_k -> i = k
    np.testing.assert_array_equal(ep.action[:, 1], np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(ep.action[:, 6], -np.arange(n, dtype=np.float32))
    np.testing.assert_allclose(ep.action[:-1, 0], t[1:], atol=1e-6)


def test_tf_without_a_path_names_the_frames(tmp_path: Path) -> None:
    c = BagContent()
    for i in range(31):
        c.joint_state('/joint_states', ns(i / 10), ['a'], [0.0])
        c.tf('/tf', ns(i / 10), [('odom', 'base_link', [0, 0, 0], [0, 0, 0, 1])])
    bag = write_bag(c, tmp_path / 'tf', 'mcap')
    prof = RobotProfile.from_dict({
        'robot': 'm', 'joints': ['a'], 'state_topic': '/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0,
        'joint_limits': {'lower': [-1.0], 'upper': [1.0]}, 'min_episode_steps': 8,
        'extra_state': [{'type': 'tf2_msgs/TFMessage', 'parent': 'map', 'child': 'base_link'}],
    }, source='m')
    with pytest.raises(BagToolsError, match=r"topic /tf: no TF path from 'map' to 'base_link' "
                       r'\(frames: base_link, odom\)'):
        bag_to_episodes(bag, prof)


# -- the shipped example profiles on replicas of the bags they are for ------------------------

def test_shipped_two_arm_profile_ingests_its_rig(tmp_path: Path, repo_root: Path) -> None:
    from bag_tools.profile import load_profile

    prof = load_profile(repo_root / 'config/robots/airbot_bimanual.yaml')
    assert len(prof.state_names) == 14
    assert prof.action_names[7] == 'right/joint1'
    (ep,) = bag_to_episodes(two_arm_bag(tmp_path), prof)
    assert ep.state.shape[1] == 14
    assert ep.action.shape[1] == 14
    assert ep.images['left'].shape[1:] == (96, 128, 3)
    t = 0.01 + 0.05 * np.arange(len(ep.timestamp))
    np.testing.assert_allclose(ep.state[:, 7:], follow('right', t[:, None]).astype(np.float32),
                               rtol=1e-6)


def test_shipped_controller_profile_ingests_humble_and_jazzy(tmp_path: Path,
                                                             repo_root: Path) -> None:
    from bag_tools.profile import load_profile

    prof = load_profile(repo_root / 'config/robots/tiago_arm_controller.yaml')
    names = list(prof.joints)
    for distro in ('humble', 'jazzy'):
        c = BagContent()
        for i in range(101):
            pts = {'actual' if distro == 'humble' else 'feedback': [0.1 * i] * 7,
                   'desired' if distro == 'humble' else 'reference': [0.2 * i] * 7}
            c.controller_state('/arm_right_controller/state', ns(i / 50), names, pts)
        (ep,) = bag_to_episodes(write_bag(c, tmp_path / distro, 'mcap', distro=distro), prof)
        k = np.arange(len(ep.timestamp))
        np.testing.assert_allclose(ep.state[:, 0], 0.5 * k, rtol=1e-6)  # i = 5 k
        np.testing.assert_allclose(ep.action[:, 3], 1.0 * k, rtol=1e-6)


@pytest.mark.parametrize(('codec', 'name'), [('libsvtav1', 'cam.mkv'), ('mpeg4', 'cam.mp4')])
def test_video_codecs(tmp_path: Path, codec: str, name: str) -> None:
    """AV1 in Matroska and MPEG-4 Part 2 decode like H.264: frame floor(15 t) at each step."""
    bag = two_arm_bag(tmp_path, padded=False)
    write_video(bag / name, [frame(k) for k in range(46)], codec=codec)
    d = two_arm_profile()
    d['cameras']['left']['file'] = name
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(d, source='rig'))
    t = 0.01 + 0.1 * np.arange(len(ep.timestamp))
    want_k = np.floor(15 * t + 1e-9).astype(int)
    np.testing.assert_allclose(ep.images['left'][:, :, :, 0].mean(axis=(1, 2)),
                               (12 * want_k) % 240, atol=6)


def test_a_video_inside_the_bag_folder_is_part_of_its_content(tmp_path: Path) -> None:
    from bag_tools.reader import bag_content_hash

    bag = two_arm_bag(tmp_path, padded=False)
    before = bag_content_hash(bag)
    write_video(bag / 'robot.left_camera.color.image_raw.mp4', [frame(k + 1) for k in range(46)])
    assert bag_content_hash(bag) != before  # a re-recorded video is a new bag


_RAW_SVT = """
import os, sys, av, numpy as np
before = os.sched_getscheduler(0)
with av.open(sys.argv[1], 'w') as out:
    s = out.add_stream('libsvtav1', rate=15)
    s.width, s.height, s.pix_fmt = 64, 64, 'yuv420p'
    for k in range(4):
        f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 20 * k, np.uint8), format='rgb24')
        for p in s.encode(f):
            out.mux(p)
    for p in s.encode():
        out.mux(p)
print(before, os.sched_getscheduler(0))
"""


def test_av1_encoding_leaves_the_thread_scheduling_alone(tmp_path: Path) -> None:
    """SVT-AV1 switches the thread that opens it to real-time SCHED_FIFO when it may (root) and
    never back; VideoEncoder (what `ptr export --vcodec libsvtav1` uses) restores it."""
    import os
    import subprocess
    import sys

    from bag_tools.lerobot.video import VideoEncoder, thread_scheduling

    raw = subprocess.run([sys.executable, '-c', _RAW_SVT, str(tmp_path / 'raw.mkv')],
                         capture_output=True, text=True, check=True, timeout=120)
    before, after = raw.stdout.split()[-2:]
    if before == after:
        pytest.skip(f'SVT-AV1 does not switch to real-time here (policy {before}: not root)')
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    enc = VideoEncoder(tmp_path / 'enc.mp4', fps=15, width=64, height=64, codec='libsvtav1')
    for k in range(4):
        enc.add(np.full((64, 64, 3), 20 * k, np.uint8))
    enc.close()
    assert (os.sched_getscheduler(0), os.sched_getparam(0)) == (policy, param)
    assert thread_scheduling() == (policy, param.sched_priority)  # glibc's copy too
    assert (tmp_path / 'enc.mp4').stat().st_size > 0
