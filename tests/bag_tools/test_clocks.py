"""Clocks are decided per stream (issue 29, item 2): on a nav2 recording on simulation time one
header-less topic (``geometry_msgs/Twist`` on ``/cmd_vel``) no longer drags the header-stamped
streams (joint states, odometry, TF) onto log time; it is carried onto their clock instead."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from armbags import T0, arm_content, arm_profile, frame_pixels
from bagfactory import encode_jpeg, write_bag, write_video
from navbags import RTF, SIM0, base_x, held_sim_seconds, nav2_bag, wheel_profile

from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import IngestError
from bag_tools.profile import RobotProfile


def _frame(k: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = (12 * k) % 240
    img[..., 1] = 90
    return img


@pytest.mark.parametrize('fmt', ['mcap', 'sqlite3'])
def test_a_headerless_cmd_vel_leaves_tf_and_joints_on_sim_time(
    tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture,
) -> None:
    bag = nav2_bag(tmp_path, fmt=fmt)
    with caplog.at_level(logging.WARNING):
        (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(wheel_profile()))
    clocks = {r['role']: r['clock'] for r in ep.sync_report['topics']}
    assert clocks == {'state': 'header', 'extra:base': 'header', 'action:cmd': 'log->header'}
    assert ep.sync_report['clock'] == ['header', 'log->header']
    assert all(r['invalid'] == 0 for r in ep.sync_report['topics'])
    assert ep.state_valid.all()
    assert not [r for r in caplog.records if r.name == 'bag_tools.validity']
    # the grid runs on the sim clock: 4 wall s at RTF 0.8 is 3.2 sim s
    assert ep.timestamp[0] == SIM0
    assert len(ep.timestamp) == 33
    sim_s = (ep.timestamp - SIM0) / 1e9
    np.testing.assert_allclose(ep.state[:, 2], [base_x(t) for t in sim_s], rtol=1e-6, atol=1e-7)
    # each grid step holds the command sent at or before it, in sim time
    np.testing.assert_allclose(ep.action[:, 2], held_sim_seconds(ep.timestamp), rtol=1e-6)


def test_a_video_on_a_sim_time_bag_lines_up_with_the_state(tmp_path: Path) -> None:
    bag = nav2_bag(tmp_path)
    write_video(bag / 'front.mp4', [_frame(k) for k in range(61)])  # 4 wall s at 15 fps
    profile = RobotProfile.from_dict(wheel_profile(
        cameras={'front': {'file': 'front.mp4'}}, image_size=[24, 32]))
    (ep,) = bag_to_episodes(bag, profile)
    row = next(r for r in ep.sync_report['topics'] if r['role'] == 'camera:front')
    assert row['clock'] == 'log->header'  # container times from the bag start: log time
    assert row['invalid'] == 0
    assert ep.image_valid['front'].all()
    # frame k was shown at wall k / 15 s, that is sim k / 15 * RTF s
    sim_s = (ep.timestamp - SIM0) / 1e9
    k = np.floor(sim_s / RTF * 15 + 1e-6).astype(int)
    red = ep.images['front'][:, :, :, 0].mean(axis=(1, 2))
    np.testing.assert_allclose(red, (12 * k) % 240, atol=6)


def test_a_stream_that_starts_after_the_state_ends_is_named(tmp_path: Path) -> None:
    bag = nav2_bag(tmp_path)
    write_video(bag / 'front.mp4', [_frame(k) for k in range(61)])
    profile = RobotProfile.from_dict(wheel_profile(
        cameras={'front': {'file': 'front.mp4', 'offset_s': 30.0}}, image_size=[24, 32]))
    with pytest.raises(IngestError) as err:
        bag_to_episodes(bag, profile)
    # 30 wall s after the start; past the state's last stamp the offset is held, not scaled
    assert str(err.value).endswith('; video:front.mp4 (clock log->header) starts 26.0 s after '
                                   'the state ends')


def test_a_camera_stamped_on_its_own_clock_uses_log_time_alone(tmp_path: Path) -> None:
    """A driver stamping with its boot clock (5 s after power-on) used to send every topic to
    log time; now only that camera is on log time, the joint states keep their stamps."""
    c = arm_content(duration_s=3.0, camera=False)
    for k in range(46):
        t = round(k / 15 * 1e9)
        c.compressed_image('/cam/image_raw/compressed', T0 + t + 4_000_000,
                           encode_jpeg(frame_pixels(k)), stamp_ns=5_000_000_000 + t)
    bag = write_bag(c, tmp_path / 'boot', 'mcap')
    (ep,) = bag_to_episodes(bag, RobotProfile.from_dict(arm_profile()))
    clocks = {r['role']: r['clock'] for r in ep.sync_report['topics']}
    assert clocks == {'state': 'header', 'action': 'header', 'camera:wrist': 'log'}
    assert ep.image_valid['wrist'].all()
    assert ep.state_valid.all()
