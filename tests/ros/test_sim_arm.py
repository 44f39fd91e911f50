"""The kinematic arm, its renderer, and the ROS message helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ptr_core.errors import PtrError
from ptr_ros.sim_arm import SimArm, render_arm

NO_RCLPY = 'rclpy not installed (pip install .[ros], or source ROS 2)'


def arm(**kw: object) -> SimArm:
    return SimArm(['a', 'b', 'c'], lower=[-1, -1, -1], upper=[1, 1, 1], **kw)  # type: ignore[arg-type]


def test_forward_command_is_followed_under_the_velocity_limit() -> None:
    sim = arm(max_velocity=1.0)
    sim.set_target([0.5, -0.2, 2.0])  # 2.0 is past the limit
    sim.step(0.0, 0.1)
    np.testing.assert_allclose(sim.position, [0.1, -0.1, 0.1])
    for i in range(20):
        sim.step(0.1 * i, 0.1)
    np.testing.assert_allclose(sim.position, [0.5, -0.2, 1.0])
    assert sim.commands_received == 1


def test_trajectory_is_interpolated_from_the_current_position() -> None:
    sim = arm(max_velocity=100.0)
    sim.set_trajectory(10.0, [1.0, 2.0], [[0.4, 0.0, 0.0], [0.8, -0.4, 0.0]])
    np.testing.assert_allclose(sim.setpoint(10.5), [0.2, 0.0, 0.0])
    np.testing.assert_allclose(sim.setpoint(11.5), [0.6, -0.2, 0.0])
    np.testing.assert_allclose(sim.setpoint(20.0), [0.8, -0.4, 0.0])  # holds the last point
    sim.step(11.0, 0.01)
    np.testing.assert_allclose(sim.position, [0.4, 0.0, 0.0])


def test_bad_commands_are_refused() -> None:
    sim = arm()
    with pytest.raises(PtrError, match='2 values for 3 joints'):
        sim.set_target([0.0, 0.0])
    with pytest.raises(PtrError, match='increasing'):
        sim.set_trajectory(0.0, [1.0, 1.0], np.zeros((2, 3)))
    with pytest.raises(PtrError, match='does not fit'):
        sim.set_trajectory(0.0, [1.0], np.zeros((1, 2)))
    with pytest.raises(PtrError, match='limits'):
        SimArm(['a', 'b'], lower=[0.0], upper=[1.0, 1.0])


def test_render_is_deterministic_and_shows_the_configuration() -> None:
    a = render_arm([0.0, 0.0, 0.0], (48, 64))
    b = render_arm([0.0, 0.0, 0.0], (48, 64))
    c = render_arm([0.8, -0.5, 0.3], (48, 64))
    assert a.shape == (48, 64, 3)
    assert a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).sum() > 1000
    # Straight up: the arm's pixels are in the middle columns.
    bright = np.argwhere(a.max(axis=2) > 100)
    assert abs(bright[:, 1].mean() - 32) < 4


def test_rendered_images_survive_jpeg_roughly() -> None:
    img = render_arm([0.3, 0.3, 0.3], (96, 128))
    ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 4


@pytest.mark.ros
def test_image_dims_reads_headers_without_decoding() -> None:
    pytest.importorskip('rclpy', reason=NO_RCLPY)
    from sensor_msgs.msg import CompressedImage, Image

    from ptr_ros.conversions import image_dims

    img = render_arm([0.0, 0.0, 0.0], (30, 40))
    raw = Image(height=30, width=40, encoding='rgb8', step=120, data=img.tobytes())
    assert image_dims(raw) == (30, 40)
    for ext in ('.jpg', '.png'):
        ok, buf = cv2.imencode(ext, img)
        assert ok
        msg = CompressedImage(format='rgb8; jpeg compressed bgr8', data=buf.tobytes())
        assert image_dims(msg) == (30, 40)
    assert image_dims(CompressedImage(format='jpeg', data=b'not an image')) is None


@pytest.mark.ros
def test_command_messages() -> None:
    pytest.importorskip('rclpy', reason=NO_RCLPY)
    from ptr_ros.conversions import forward_command, message_class, trajectory_command

    traj = trajectory_command(['a', 'b'], np.array([[0.1, 0.2], [0.3, 0.4]]), 1 / 30)
    assert list(traj.joint_names) == ['a', 'b']
    assert [list(p.positions) for p in traj.points] == [[0.1, 0.2], [0.3, 0.4]]
    times = [p.time_from_start.sec + p.time_from_start.nanosec * 1e-9 for p in traj.points]
    np.testing.assert_allclose(times, [1 / 30, 2 / 30], atol=1e-9)
    fwd = forward_command(['a', 'b'], np.array([0.5, -0.5]))
    assert list(fwd.data) == [0.5, -0.5]
    assert fwd.layout.dim[0].size == 2
    assert message_class('geometry_msgs/PoseStamped').__name__ == 'PoseStamped'
    with pytest.raises(PtrError, match='not installed'):
        message_class('no_such_msgs/msg/Thing')


def test_end_effector_matches_the_drawn_chain() -> None:
    from ptr_ros.sim_arm import end_effector

    xyz, pitch = end_effector([0.0, 0.0, 0.0])
    np.testing.assert_allclose(xyz, [0.0, 0.0, 0.9], atol=1e-12)
    assert pitch == pytest.approx(np.pi / 2)
    xyz, _ = end_effector([np.pi / 2, 0.0, 0.0])  # bent flat to one side
    np.testing.assert_allclose(xyz, [0.9, 0.0, 0.0], atol=1e-12)


@pytest.mark.ros
def test_node_with_a_missing_profile_exits_2_with_one_line(tmp_path: Path) -> None:
    pytest.importorskip('rclpy', reason=NO_RCLPY)
    missing = tmp_path / 'no_such_profile.yaml'
    proc = subprocess.run(
        [sys.executable, '-m', 'ptr_ros.sim_arm_node', '--ros-args', '-p', f'profile:={missing}'],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert str(missing) in lines[0]
