"""``ingest``: round trips through all containers, bad input, resume, parallel workers, robots."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from armbags import JOINTS, T0, arm_content, arm_profile, frame_pixels, joint_value, snapshot
from bagfactory import BagContent, compressed_depth_png, write_all, write_bag

from bag_tools.dataset import TEMP_MARKER, Dataset, write_episode
from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import DatasetError
from bag_tools.ingest import BagStatus, ingest, land_episode
from bag_tools.lock import LOCK_NAME
from bag_tools.profile import RobotProfile
from ptr_core.layout import unified_layout

ARRAYS = ('timestamp', 'state', 'action', 'state_valid', 'action_valid')


def prof(**overrides: Any) -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(**overrides), source='test-profile')


def same_episode(a: Any, b: Any) -> None:
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert sorted(a.images) == sorted(b.images)
    for role in a.images:
        np.testing.assert_array_equal(a.images[role], b.images[role])
        np.testing.assert_array_equal(a.image_valid[role], b.image_valid[role])


def test_three_containers_give_identical_episodes(tmp_path: Path) -> None:
    tags = {'ptr.source': 'noisy_0.1', 'ptr.success': 'false', 'ptr.task': 'reach the cube'}
    paths = write_all(arm_content(tags=tags), tmp_path / 'bags')
    bare_mcap = next(paths['mcap'].glob('*.mcap'))  # the storage file alone, no metadata.yaml
    bags = [paths['ros1'], paths['sqlite3'], paths['mcap'], bare_mcap]
    seen = []
    result = ingest(bags, prof(), tmp_path / 'ds', workers=1, progress=seen.append)
    assert [b.status for b in result.bags] == [BagStatus.OK] * 4, result.bags
    assert len(seen) == 4
    ds = Dataset.open(tmp_path / 'ds')
    by_source = {e['source']: ds.episode(e['id']) for e in ds.manifest['episodes']}
    eps = [by_source[str(p)] for p in bags]
    for other in eps[1:]:
        same_episode(eps[0], other)
    ep = eps[0]
    # 3 s at 10 Hz from the first message: 31 steps of the known motion
    assert ep.length == 31
    t = (ep.timestamp - T0) / 1e9
    np.testing.assert_allclose(ep.state, [joint_value(x) for x in t], atol=1e-6)
    i = np.floor(t * 20 + 1e-9)  # commands at 20 Hz, held; names were [j2, j1, j3]
    np.testing.assert_array_equal(ep.action, np.stack([i, 10 + i, -i], axis=1))
    k = np.floor(t * 15 + 1e-9).astype(int)  # 15 Hz camera, latest frame at or before
    got = ep.images['wrist'][:, 5, 7].astype(int)
    want = np.array([frame_pixels(j)[0, 0] for j in k], int)
    assert np.abs(got - want).max() <= 4  # JPEG
    assert ep.images['wrist'].shape == (31, 12, 16, 3)
    assert ep.image_valid['wrist'].all()
    assert ep.state_valid.all()
    assert ep.action_valid.all()
    # custom_data tags: rosbag2 folders carry them; ROS 1 and a bare storage file do not
    assert [e.tags for e in eps] == [{}, tags, tags, {}]
    assert ep.task == 'reach'
    assert eps[1].task == 'reach the cube'  # the ptr.task tag wins over the profile's text
    robot = ds.manifest['robots']['arm3']
    assert robot['state_names'] == JOINTS
    assert robot['action_names'] == JOINTS
    assert RobotProfile.from_dict(robot['profile'], source='manifest') == prof()
    stats = ds.manifest['stats']['arm3']['state']
    assert stats['count'] == 4 * 31
    assert set(stats) == {'count', 'min', 'max', 'mean', 'std', 'p01', 'p99'}


def test_bad_bags_fail_with_one_line_and_others_carry_on(tmp_path: Path) -> None:
    bags = tmp_path / 'bags'
    good = write_bag(arm_content(), bags / 'good', 'mcap')
    no_cam = write_bag(arm_content(camera=False), bags / 'no_cam', 'sqlite3')
    trunc1 = write_bag(arm_content(), bags / 'trunc', 'ros1')
    trunc1.write_bytes(trunc1.read_bytes()[: trunc1.stat().st_size // 2])
    trunc_mcap_dir = write_bag(arm_content(), bags / 'trunc_mcap', 'mcap')
    trunc_mcap = next(trunc_mcap_dir.glob('*.mcap'))
    trunc_mcap.write_bytes(trunc_mcap.read_bytes()[:-3000])
    custom = arm_content()
    custom.messages = [m for m in custom.messages if m.topic != '/joint_states']
    for i in range(40):
        custom.raw('/joint_states', 'acme_msgs/msg/ArmState', T0 + i * 50_000_000, bytes(16))
    custom_bag = write_bag(custom, bags / 'custom', 'sqlite3')
    yuv = arm_content(camera=False)
    for i in range(40):
        yuv.image('/cam/image_raw/compressed', T0 + i * 66_000_000, np.zeros((4, 4, 2), np.uint8),
                  'yuv422')
    yuv_bag = write_bag(yuv, bags / 'yuv', 'ros1')
    nameless = arm_content()
    for m in list(nameless.messages):
        if m.topic == '/joint_states':
            nameless.messages.remove(m)
            nameless.joint_state('/joint_states', m.log_ns, [], [0.0, 0.0, 0.0])
    nameless_bag = write_bag(nameless, bags / 'nameless', 'mcap')
    short = write_bag(arm_content(duration_s=0.5), bags / 'short', 'sqlite3')
    placeholder = arm_content(camera=False)
    for i in range(40):
        placeholder.compressed_image('/cam/image_raw/compressed', T0 + i * 66_000_000,
                                     bytes([0, 1, 2]))
    placeholder_bag = write_bag(placeholder, bags / 'placeholder', 'mcap')
    not_a_bag = bags / 'notes.txt'
    not_a_bag.write_text('hello')

    order = [good, no_cam, trunc1, trunc_mcap, custom_bag, yuv_bag, nameless_bag, short,
             placeholder_bag, not_a_bag]
    result = ingest(order, prof(), tmp_path / 'ds', workers=1)
    status = {Path(b.path).name: (b.status, b.reason) for b in result.bags}
    assert status[good.name][0] is BagStatus.OK
    expected = {
        no_cam: r'topic /cam/image_raw/compressed: not in the bag \(profile key cameras.wrist',
        trunc1: r'(cannot open bag|corrupt or truncated)',
        trunc_mcap: r'truncated or corrupt bag .*; ingest the readable part with --salvage',
        custom_bag: r'topic /joint_states: type acme_msgs/msg/ArmState has no definition',
        yuv_bag: r"topic /cam/image_raw/compressed: unknown image encoding 'yuv422'",
        nameless_bag: r'topic /joint_states: JointState without joint names',
        short: r'topic /joint_states: too short: 6 grid steps at 10 Hz '
               r'< min_episode_steps 8',
        placeholder_bag: r"topic /cam/image_raw/compressed: CompressedImage format 'jpeg': "
                         r'payload of 3 bytes is neither JPEG nor PNG',
        not_a_bag: r'not a bag',
    }
    for path, pattern in expected.items():
        st, reason = status[path.name]
        assert st is BagStatus.FAILED, path
        assert str(path) in reason
        assert '\n' not in reason
        assert re.search(pattern, reason), reason
    ds = Dataset.open(tmp_path / 'ds')  # still a valid dataset holding only the good bag
    assert len(ds) == 1
    assert ds.episodes()[0].meta['source'] == str(good)
    assert not [p for p in (tmp_path / 'ds/episodes').iterdir() if p.name.startswith('.tmp')]
    assert ds.manifest['stats']['arm3']['state']['count'] == 31


def test_cdr_trailing_padding_is_tolerated(tmp_path: Path) -> None:
    plain = write_bag(arm_content(), tmp_path / 'plain', 'sqlite3')
    padded_content = arm_content()
    padded_content.trailing = {'/joint_states': bytes(4), '/cam/image_raw/compressed': bytes(8),
                               '/arm/joint_trajectory': bytes(5)}
    padded = write_bag(padded_content, tmp_path / 'padded', 'mcap')
    (a,) = bag_to_episodes(plain, prof())
    (b,) = bag_to_episodes(padded, prof())
    same_episode(a, b)


def test_resume_skips_done_bags_and_refreshes_stats(tmp_path: Path) -> None:
    a = write_bag(arm_content(duration_s=2.0), tmp_path / 'a', 'mcap')
    b = write_bag(arm_content(duration_s=3.0, cmd_hz=10.0), tmp_path / 'b', 'mcap')
    out = tmp_path / 'ds'
    ingest([a], prof(), out)
    first = Dataset.open(out).manifest['stats']['arm3']
    again = ingest([a, b], prof(), out)
    assert [x.status for x in again.bags] == [BagStatus.SKIPPED, BagStatus.OK]
    assert 'already ingested' in again.bags[0].reason
    m = Dataset.open(out).manifest
    assert m['stats']['arm3']['state']['count'] == 21 + 31
    assert first['state']['max'][0] == pytest.approx(0.2)  # j1 = 0.1 rad/s * 2 s
    assert m['stats']['arm3']['state']['max'][0] == pytest.approx(0.3)
    assert [e['id'] for e in m['episodes']] == sorted(e['id'] for e in m['episodes'])


def test_half_ingested_bag_is_redone(tmp_path: Path) -> None:
    """A crash between two episodes of one bag: the survivor is dropped and the bag redone."""
    c = arm_content(duration_s=4.0, camera=False)
    c.empty('/episode', T0 + 2_000_000_000)
    bag = write_bag(c, tmp_path / 'split', 'sqlite3')
    p = prof(cameras={}, image_size=None, episodes={'marker_topic': '/episode'})
    out = tmp_path / 'ds'
    ingest([bag], p, out)
    full = snapshot(out)
    assert len(Dataset.open(out)) == 2
    ds = Dataset.open(out)
    _, second = ds.episode_ids
    ds.manifest['episodes'] = ds.manifest['episodes'][:1]  # as if killed before the 2nd landed
    ds.save_manifest()
    shutil.rmtree(out / 'episodes' / second)
    res = ingest([bag], p, out)
    assert res.bags[0].status is BagStatus.OK
    assert snapshot(out) == full


def test_parallel_workers_match_serial(tmp_path: Path) -> None:
    bags = [write_bag(arm_content(duration_s=d), tmp_path / f'b{i}', fmt)
            for i, (d, fmt) in enumerate([(2.0, 'mcap'), (2.5, 'ros1'), (3.0, 'sqlite3')])]
    ingest(bags, prof(), tmp_path / 'serial', workers=1)
    res = ingest(bags, prof(), tmp_path / 'parallel', workers=2)
    assert [b.status for b in res.bags] == [BagStatus.OK] * 3
    assert [b.path for b in res.bags] == [str(b) for b in bags]  # reported in input order
    assert snapshot(tmp_path / 'serial') == snapshot(tmp_path / 'parallel')


def test_two_robots_in_one_dataset(tmp_path: Path) -> None:
    arm_bag = write_bag(arm_content(), tmp_path / 'arm', 'mcap')
    c = arm_content(camera=False)
    other = write_bag(c, tmp_path / 'other', 'ros1')
    base = RobotProfile.from_dict({
        'robot': 'base2', 'joints': ['j1', 'j2'], 'state_topic': '/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0,
        'joint_limits': {'lower': [-1, -1], 'upper': [1, 1]},
        'extra_state': [], 'min_episode_steps': 8,
    }, source='base2')
    out = tmp_path / 'ds'
    assert ingest([arm_bag], prof(), out).ok
    assert ingest([other], base, out).ok
    ds = Dataset.open(out)
    assert sorted(e['robot'] for e in ds.manifest['episodes']) == ['arm3', 'base2']
    layout = unified_layout([ds.manifest])
    assert layout.robots == ('arm3', 'base2')
    assert layout.state_dim == 3
    assert layout.action_dim == 3
    assert layout.state_mask['base2'].tolist() == [True, True, False]
    assert layout.camera_roles == ('wrist',)
    assert layout.camera_mask['base2'].tolist() == [False]
    assert layout.camera_mask['arm3'].tolist() == [True]
    assert set(ds.manifest['stats']) == {'arm3', 'base2'}
    # the same robot name with another shape is refused before any bag is read
    with pytest.raises(DatasetError, match=r"robot 'base2' is already in the dataset with a "
                                        r'different state_names'):
        ingest([other], RobotProfile.from_dict({**base.to_dict(), 'joints': ['j1'],
                                                'joint_limits': {'lower': [0], 'upper': [1]}},
                                               source='x'), out)
    other_cam = RobotProfile.from_dict(arm_profile(robot='arm3b', image_size=[24, 24]), source='b')
    with pytest.raises(DatasetError, match=r'share one image size, these differ '
                                        r'\(arm3 \[12, 16\], arm3b \[24, 24\]\)'):
        ingest([arm_bag], other_cam, out)


def test_leftovers_of_a_dead_writer_are_cleaned(tmp_path: Path) -> None:
    """A kill between writing and renaming leaves marked temps; the next ingest drops them,
    and only them (a look-alike without our marker is someone else's)."""
    out = tmp_path / 'ds'
    assert ingest([write_bag(arm_content(), tmp_path / 'a', 'mcap')], prof(), out).ok
    dead = 999_999_999  # above Linux's pid_max: never a live process
    marker = json.dumps({'pid': dead, 'writer': 'ptr'})
    for temp in (out / f'.tmp-manifest-{dead}', out / 'episodes' / f'.tmp-x-{dead}'):
        temp.mkdir()
        (temp / '.ptr-temp').write_text(marker)
        (temp / 'state.npy').write_bytes(b'partial')
    (out / 'episodes' / f'.tmp-user-{dead}').mkdir()  # no marker: not ours
    # killed while writing the marker (an empty or cut-short one): ours, the pid in the name
    for name, text in ((f'.tmp-y-{dead}', ''), (f'.tmp-z-{dead}', '{"pid": 99')):
        (out / 'episodes' / name).mkdir()
        (out / 'episodes' / name / '.ptr-temp').write_text(text)
        (out / 'episodes' / name / 'state.npy').write_bytes(b'partial')
    bag = write_bag(arm_content(duration_s=2.0), tmp_path / 'b', 'mcap')
    assert ingest([bag], prof(), out).ok
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME, 'episodes', 'manifest.json']
    assert sorted(p.name for p in (out / 'episodes').iterdir() if p.name.startswith('.')) == [
        f'.tmp-user-{dead}']
    assert len(Dataset.open(out)) == 2


def test_same_bag_twice_loses_nothing(tmp_path: Path) -> None:
    """Identical copies (same name, other folder) in one run: one is ingested, once."""
    first = write_bag(arm_content(), tmp_path / 'x' / 'run', 'mcap')
    copy = tmp_path / 'y' / 'run'
    shutil.copytree(first, copy)
    for workers in (1, 2):
        out = tmp_path / f'ds{workers}'
        res = ingest([first, copy], prof(), out, workers=workers)
        statuses = [b.status for b in res.bags]
        assert statuses.count(BagStatus.OK) == 1, res.bags
        other = next(b for b in res.bags if b.status is not BagStatus.OK)
        assert other.reason in ('same content as another bag in this run',) or (
            'already exists' in other.reason), other
        ds = Dataset.open(out)
        assert len(ds) == 1
        ep = ds.episodes()[0]
        assert ep.length == 31
        assert ep.state_valid.all()


def test_a_run_where_every_bag_fails_leaves_no_robot(tmp_path: Path) -> None:
    bad = write_bag(arm_content(camera=False), tmp_path / 'nocam', 'mcap')
    out = tmp_path / 'ds'
    res = ingest([bad], prof(), out)
    assert not res.ok
    assert not out.exists()  # nothing landed: nothing created
    assert ingest([write_bag(arm_content(), tmp_path / 'good', 'mcap')], prof(), out).ok
    assert list(Dataset.open(out).manifest['robots']) == ['arm3']


def test_raw_and_depth_cameras_through_every_container(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    c = BagContent()
    for i in range(21):
        c.joint_state('/joint_states', T0 + 100_000_000 * i, JOINTS, [i, i, i])
    depth = [rng.integers(0, 65535, (6, 8), dtype=np.uint16) for _ in range(21)]
    color = [rng.integers(0, 255, (6, 8, 3), dtype=np.uint8) for _ in range(21)]
    for i in range(21):
        t = T0 + 100_000_000 * i
        c.image('/color', t, color[i][..., ::-1].copy(), 'bgr8', pad=4)
        c.compressed_image('/depth', t, compressed_depth_png(depth[i]),
                           fmt='16UC1; compressedDepth png')
        c.image('/metres', t, depth[i].astype(np.float32)[..., None] / 1000.0, '32FC1',
                big_endian=bool(i % 2))
    p = prof(action={'source': 'next_state'}, image_size=[6, 8], cameras={
        'color': {'topic': '/color'}, 'depth': {'topic': '/depth', 'depth': True},
        'metres': {'topic': '/metres', 'depth': True}})
    paths = write_all(c, tmp_path / 'bags')
    eps = {fmt: bag_to_episodes(path, p)[0] for fmt, path in paths.items()}
    ep = eps['ros1']
    for other in eps.values():
        same_episode(ep, other)
    np.testing.assert_array_equal(ep.images['color'], np.stack(color))
    np.testing.assert_array_equal(ep.images['depth'][..., 0], np.stack(depth))
    np.testing.assert_array_equal(ep.images['metres'][..., 0], np.stack(depth))
    assert ep.images['depth'].dtype == np.uint16


def test_a_retried_unit_keeps_what_its_killed_try_renamed(tmp_path: Path) -> None:
    """land_episode: the same episode (id, source, content hash) already in place is kept, its
    leftover temp marker dropped; an episode of another source under that id is refused."""
    bag = write_bag(arm_content(), tmp_path / 'b', 'mcap')
    (ep,) = bag_to_episodes(bag, prof())
    out = tmp_path / 'ds'
    final = write_episode(out, ep)
    (final / TEMP_MARKER).write_text('{"pid": 1, "writer": "ptr"}')  # killed before unmarking
    before = snapshot(final)
    land_episode(out, ep)
    assert not (final / TEMP_MARKER).exists()
    del before[TEMP_MARKER]
    assert snapshot(final) == before
    ep.source = str(tmp_path / 'elsewhere' / 'b')  # same id and content, another bag
    with pytest.raises(DatasetError, match='episode already exists'):
        land_episode(out, ep)
