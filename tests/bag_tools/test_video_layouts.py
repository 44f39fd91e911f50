"""Camera videos where real recorders put them (issue 29, items 3 and 5): one profile for bags
``0.mcap, 50.mcap, 100.mcap`` whose videos sit in ``0/, 50/, 100/`` (``{bag_stem}`` in
``file:``); a video far shorter than its bag, a one-frame video and a one-message
``stamps_topic`` are warned about (or fail under ``max_invalid``); a file that is not a video
is refused in one line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from armbags import T0, arm_content, arm_profile
from bagfactory import encode_jpeg, write_bag, write_video

from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import ImageDecodeError, IngestError, InvalidStreamError, ProfileError
from bag_tools.profile import RobotProfile


def _frame(value: int) -> np.ndarray:
    img = np.zeros((48, 64, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 90
    return img


def _bare_mcap(tmp: Path, stem: str, seconds: float = 3.0) -> Path:
    """``tmp/bags/<stem>.mcap``: a bare MCAP file (as ``ros2 bag record -s mcap`` splits and
    some fleets keep them), the arm bag without a camera topic."""
    folder = write_bag(arm_content(duration_s=seconds, camera=False), tmp / 'raw' / stem, 'mcap')
    out = tmp / 'bags' / f'{stem}.mcap'
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(next(folder.glob('*.mcap')), out)
    return out


def _video_profile(file: str, **camera: Any) -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(
        cameras={'left': {'file': file, **camera}}, image_size=[24, 32]), source='video.yaml')


def test_one_profile_reads_each_bags_video_from_its_own_folder(tmp_path: Path) -> None:
    stems = {'0': 40, '50': 120, '100': 200}  # each bag's video has its own colour
    bags = {}
    for stem, red in stems.items():
        bags[stem] = _bare_mcap(tmp_path, stem)
        write_video(tmp_path / 'bags' / stem / 'left.mp4', [_frame(red)] * 46)  # 3 s at 15 fps
    profile = _video_profile('{bag_stem}/left.mp4')
    for stem, red in stems.items():
        (ep,) = bag_to_episodes(bags[stem], profile)
        assert ep.image_valid['left'].all()
        np.testing.assert_allclose(ep.images['left'][..., 0].mean(), red, atol=4)
        assert ep.sync_report['videos']['left']['file'] == str(
            tmp_path / 'bags' / stem / 'left.mp4')
    (tmp_path / 'bags' / '100' / 'left.mp4').unlink()
    with pytest.raises(IngestError) as err:
        bag_to_episodes(bags['100'], profile)
    assert ("video 100/left.mp4 (profile key cameras.left.file '{bag_stem}/left.mp4') is not "
            'beside the bag') in str(err.value)


@pytest.mark.parametrize(('file', 'problem'), [
    ('{bag}/left.mp4', 'unknown placeholder {bag}'),
    ('{bag_stem/left.mp4', "expected '}' before end of string"),
])
def test_a_bad_template_names_the_key(file: str, problem: str) -> None:
    with pytest.raises(ProfileError) as err:
        _video_profile(file)
    assert str(err.value).startswith('video.yaml: key cameras.left.file: ')
    assert problem in str(err.value)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == 'bag_tools.validity']


def test_a_video_far_shorter_than_its_bag_is_warned_about_or_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bag = write_bag(arm_content(duration_s=3.0, camera=False), tmp_path / 'short', 'mcap')
    write_video(bag / 'left.mp4', [_frame(80)] * 8)  # 0.5 s of a 3 s bag
    profile = _video_profile('left.mp4')
    with caplog.at_level(logging.WARNING):
        (ep,) = bag_to_episodes(bag, profile)
    assert ep.image_valid['left'].sum() == 7  # 0.0 .. 0.6 s: to the last frame + 0.2 s
    (line,) = _warnings(caplog)
    assert 'stream camera:left (topic video:left.mp4, clock log) invalid at 77% of 31' in line
    assert 'its samples span 0.00..0.47 s, the grid 0.00..3.00 s' in line
    with pytest.raises(InvalidStreamError, match=r'over max_invalid 0\.5: stream camera:left'):
        bag_to_episodes(bag, profile, max_invalid=0.5)


def test_a_one_frame_video_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bag = write_bag(arm_content(duration_s=3.0, camera=False), tmp_path / 'one', 'mcap')
    write_video(bag / 'left.mp4', [_frame(80)])
    with caplog.at_level(logging.WARNING):
        bag_to_episodes(bag, _video_profile('left.mp4'))
    (line,) = _warnings(caplog)
    assert 'stream camera:left' in line
    assert 'invalid at 90% of 31 grid steps: its samples span 0.00..0.00 s' in line


def test_a_one_message_stamps_topic_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    c = arm_content(duration_s=3.0, camera=False)
    c.empty('/left/camera_info', T0 + 1_000_000_000)  # one message, at 1 s: the grid's start
    bag = write_bag(c, tmp_path / 'stamps', 'mcap')
    write_video(bag / 'left.mp4', [_frame(80)] * 46)
    with caplog.at_level(logging.WARNING):
        (ep,) = bag_to_episodes(bag, _video_profile('left.mp4', stamps_topic='/left/camera_info'))
    assert ep.image_valid['left'].sum() == 3  # the one frame, held 0.2 s, of 21 steps
    lines = _warnings(caplog)
    assert any('stream camera:left (topic /left/camera_info, clock log)' in ln for ln in lines)
    with pytest.raises(InvalidStreamError, match='stream camera:left'):
        bag_to_episodes(bag, _video_profile('left.mp4', stamps_topic='/left/camera_info'),
                        max_invalid=0.5)


def test_a_jpeg_renamed_mp4_is_refused_in_one_line(tmp_path: Path) -> None:
    bag = write_bag(arm_content(duration_s=3.0, camera=False), tmp_path / 'jpeg', 'mcap')
    (bag / 'left.mp4').write_bytes(encode_jpeg(_frame(80)))
    with pytest.raises(ImageDecodeError) as err:
        bag_to_episodes(bag, _video_profile('left.mp4'))
    text = str(err.value)
    assert '\n' not in text
    assert text.startswith(f'{bag}: camera left: {bag / "left.mp4"}: not a video')
