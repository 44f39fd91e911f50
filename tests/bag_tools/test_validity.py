"""Nothing lands silently invalid (issue 29, item 3): a stream invalid at more than
``WARN_INVALID_SHARE`` of a bag's grid steps is a warning naming it, its clock and its span;
``max_invalid`` makes it a failure of that bag."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from armbags import T0, arm_content, arm_profile
from bagfactory import write_bag

from bag_tools.dataset import Dataset
from bag_tools.episodes import bag_to_episodes
from bag_tools.errors import InvalidStreamError
from bag_tools.ingest import BagStatus, ingest
from bag_tools.profile import RobotProfile
from bag_tools.validity import WARN_INVALID_SHARE


def _short_odometry_bag(tmp: Path) -> Path:
    """A 3 s arm bag whose odometry stops after 0.9 s (21 of the 31 grid steps are after it)."""
    c = arm_content(duration_s=3.0, camera=False)
    for i in range(10):
        c.odometry('/odom', T0 + i * 100_000_000, [0.1 * i, 0, 0], [0, 0, 0, 1], [0.1, 0, 0],
                   [0, 0, 0])
    return write_bag(c, tmp / 'short_odom', 'mcap')


def _odom_profile() -> RobotProfile:
    return RobotProfile.from_dict(arm_profile(
        cameras={}, image_size=None,
        extra_state=[{'topic': '/odom', 'type': 'nav_msgs/msg/Odometry', 'name': 'odom'}]))


def test_a_mostly_invalid_stream_is_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    bag = _short_odometry_bag(tmp_path)
    with caplog.at_level(logging.WARNING, logger='bag_tools.validity'):
        (ep,) = bag_to_episodes(bag, _odom_profile())
    odom = next(r for r in ep.sync_report['topics'] if r['role'] == 'extra:odom')
    assert odom['invalid'] / len(ep.timestamp) > 0.6
    lines = [r.getMessage() for r in caplog.records if r.name == 'bag_tools.validity']
    assert len(lines) == 1, lines  # the state and the action are valid throughout: no warning
    assert str(bag) in lines[0]
    assert 'stream extra:odom (topic /odom, clock header)' in lines[0]
    assert 'its samples span 0.00..0.90 s, the grid 0.00..3.00 s' in lines[0]
    assert '68% of 31 grid steps' in lines[0]
    assert WARN_INVALID_SHARE < 0.7


def test_max_invalid_fails_the_bag_in_one_line(tmp_path: Path) -> None:
    bag = _short_odometry_bag(tmp_path)
    with pytest.raises(InvalidStreamError) as err:
        bag_to_episodes(bag, _odom_profile(), max_invalid=0.5)
    text = str(err.value)
    assert '\n' not in text
    assert text.startswith(f'{bag}: over max_invalid 0.5: stream extra:odom (topic /odom')
    assert bag_to_episodes(bag, _odom_profile(), max_invalid=0.8)  # under the bound: lands
    with pytest.raises(InvalidStreamError, match=r'max_invalid 1\.5 is not a share'):
        bag_to_episodes(bag, _odom_profile(), max_invalid=1.5)


def test_max_invalid_in_ingest_writes_nothing_of_that_bag(tmp_path: Path) -> None:
    bad = _short_odometry_bag(tmp_path)
    c = arm_content(duration_s=3.0, camera=False)
    for i in range(31):
        c.odometry('/odom', T0 + i * 100_000_000, [0.1 * i, 0, 0], [0, 0, 0, 1], [0.1, 0, 0],
                   [0, 0, 0])
    good = write_bag(c, tmp_path / 'full_odom', 'mcap')
    result = ingest([bad, good], _odom_profile(), tmp_path / 'ds', max_invalid=0.5)
    by_path = {Path(b.path).name: b for b in result.bags}
    assert by_path['full_odom'].status is BagStatus.OK
    failed = by_path['short_odom']
    assert failed.status is BagStatus.FAILED
    assert failed.reason.startswith(f'{bad}: over max_invalid 0.5: stream extra:odom')
    ds = Dataset.open(tmp_path / 'ds')
    assert [Path(ep.meta['source']).name for ep in ds.episodes()] == ['full_odom']
    assert [p.name.split('-')[0] for p in (tmp_path / 'ds' / 'episodes').iterdir()] == [
        'full_odom']
