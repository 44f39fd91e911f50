"""Truncated bags (a recorder that crashed): the readable part, only with --salvage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from armbags import T0, arm_profile, joint_value
from bagfactory import BagContent, encode_jpeg, write_bag

from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import BagOpenError
from bag_tools.profile import RobotProfile
from bag_tools.salvage import scan_mcap

PTR = [str(Path(sys.executable).with_name('ptr'))]


def noisy_bag(tmp_path: Path) -> Path:
    """20 s: joint states at 50 Hz, commands at 20 Hz, a noisy 160x120 JPEG camera at 15 Hz
    (~3 MB, so rosbags writes several 1 MiB chunks). Returns the bare .mcap file."""
    rng = np.random.default_rng(0)
    c = BagContent()
    for i in range(1001):
        t = i / 50
        c.joint_state('/joint_states', T0 + round(t * 1e9), ['j1', 'j2', 'j3'], joint_value(t))
    for i in range(401):
        c.trajectory('/arm/joint_trajectory', T0 + round(i / 20 * 1e9), ['j1', 'j2', 'j3'],
                     [float(i)] * 3)
    for k in range(301):
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        c.compressed_image('/cam/image_raw/compressed', T0 + round(k / 15 * 1e9),
                           encode_jpeg(img, quality=90))
    bag = write_bag(c, tmp_path / 'rec', 'mcap')
    (mcap,) = bag.glob('*.mcap')
    return mcap


def cut(mcap: Path, share: float, dst: Path) -> Path:
    data = mcap.read_bytes()
    dst.write_bytes(data[:int(len(data) * share)])
    return dst


def profile() -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(min_episode_steps=8), source='p')


def test_truncated_mcap_is_refused_saying_what_salvage_would_read(tmp_path: Path) -> None:
    whole = noisy_bag(tmp_path)
    broken = cut(whole, 0.7, tmp_path / 'crashed.mcap')
    found = scan_mcap(broken)
    assert found.chunks >= 1
    assert 0 < len(found.messages) < 1703
    with pytest.raises(BagOpenError) as info:
        bag_to_episodes(broken, profile())
    text = str(info.value)
    assert text.startswith(f'{broken}: truncated or corrupt bag (')
    assert f'read {len(found.messages)} messages in {found.chunks} chunk(s)' in text
    assert text.endswith('ingest the readable part with --salvage')


def test_salvaged_part_equals_the_whole_bag_up_to_the_damage(tmp_path: Path) -> None:
    whole = noisy_bag(tmp_path)
    broken = cut(whole, 0.7, tmp_path / 'crashed.mcap')
    (full,) = bag_to_episodes(whole, profile())
    (part,) = bag_to_episodes(broken, profile(), salvage=True)
    n = len(part.timestamp)
    assert 16 < n < len(full.timestamp)
    np.testing.assert_array_equal(part.timestamp, full.timestamp[:n])
    np.testing.assert_array_equal(part.state, full.state[:n])
    np.testing.assert_array_equal(part.action, full.action[:n])
    np.testing.assert_array_equal(part.images['wrist'], full.images['wrist'][:n])
    t = (part.timestamp - T0) / 1e9
    np.testing.assert_allclose(part.state, np.stack([joint_value(x) for x in t]), rtol=1e-6)
    assert 'lost everything after byte' in part.sync_report['salvaged']


def test_ptr_ingest_salvage_flag(tmp_path: Path) -> None:
    broken = cut(noisy_bag(tmp_path), 0.7, tmp_path / 'crashed.mcap')
    prof = tmp_path / 'arm.yaml'
    prof.write_text(yaml.safe_dump(arm_profile(min_episode_steps=8)))
    refused = subprocess.run([*PTR, 'ingest', str(broken), '-p', str(prof), '-o',
                              str(tmp_path / 'a'), '--no-progress'], capture_output=True,
                             text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert refused.stderr.count('--salvage') == 1
    ok = subprocess.run([*PTR, 'ingest', str(broken), '-p', str(prof), '-o', str(tmp_path / 'b'),
                         '--no-progress', '--salvage'], capture_output=True, text=True,
                        timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert '1 bag(s) ingested' in ok.stdout
    assert ok.stderr.count('truncated bag salvaged: read ') == 1


def unindexed_ros1(bag: Path, dst: Path, keep: float = 1.0) -> Path:
    """A ROS 1 bag as a crashed recorder leaves it: header index_pos 0, no index section;
    ``keep`` < 1 also cuts into the chunks."""
    import struct

    data = bytearray(bag.read_bytes())
    at = data.index(b'index_pos=') + len(b'index_pos=')
    (index_pos,) = struct.unpack_from('<Q', data, at)
    data[at:at + 8] = struct.pack('<Q', 0)
    dst.write_bytes(bytes(data[:int(index_pos * keep)]))
    return dst


def test_ros1_bag_without_its_index(tmp_path: Path) -> None:
    from armbags import arm_content

    whole = write_bag(arm_content(duration_s=4.0), tmp_path / 'rec', 'ros1')
    broken = unindexed_ros1(whole, tmp_path / 'crashed.bag')
    with pytest.raises(BagOpenError, match=r'not indexed.*every record is whole, only the index '
                       r'is missing; ingest the readable part with --salvage'):
        bag_to_episodes(broken, profile())
    (full,) = bag_to_episodes(whole, profile())
    (got,) = bag_to_episodes(broken, profile(), salvage=True)
    np.testing.assert_array_equal(got.timestamp, full.timestamp)
    np.testing.assert_array_equal(got.state, full.state)
    np.testing.assert_array_equal(got.images['wrist'], full.images['wrist'])


def test_ros1_bag_cut_inside_its_chunks(tmp_path: Path) -> None:
    c = BagContent()
    for i in range(2001):  # 40 s of joint states, commands and filler: several chunks
        t = i / 50
        c.joint_state('/joint_states', T0 + round(t * 1e9), ['j1', 'j2', 'j3'], joint_value(t))
        c.trajectory('/arm/joint_trajectory', T0 + round(t * 1e9), ['j1', 'j2', 'j3'],
                     [float(i)] * 3)
        c.string('/filler', T0 + round(t * 1e9), 'x' * 1500)
    whole = write_bag(c, tmp_path / 'rec', 'ros1')
    broken = unindexed_ros1(whole, tmp_path / 'crashed.bag', keep=0.6)
    prof = RobotProfile.from_dict(arm_profile(cameras={}, image_size=None), source='p')
    (full,) = bag_to_episodes(whole, prof)
    (got,) = bag_to_episodes(broken, prof, salvage=True)
    n = len(got.timestamp)
    assert 16 < n < len(full.timestamp)
    np.testing.assert_array_equal(got.state, full.state[:n])
    assert 'lost everything after byte' in got.sync_report['salvaged']
