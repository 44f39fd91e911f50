"""Report and summary fixes (issue 29, item 6) on datasets ingested from bags made here: arm
groups' held commands are judged by the one-step rule, a 14-line legend names every line in a
colour of its own, a video's row says its real clock, and one topic read as state and action is
two summary rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bagfactory import BagContent, write_bag, write_video
from browser import Chromium, chromium_binary, report_data

from bag_tools.dataset_summary import format_sync, summarize_dataset
from bag_tools.ingest import BagStatus, ingest
from bag_tools.profile import RobotProfile
from ptr_cli.report_page import build_report, write_report

T0 = 1_700_000_000_000_000_000
J7 = [f'joint{i}' for i in range(1, 8)]
CMD_HZ = 25.0  # commands every 40 ms on a 20 Hz grid: up to 40 ms old, within one 50 ms step


def _rig(tmp: Path) -> Path:
    """Two 7-joint arms (JointState at 50 Hz), each commanded by Float64MultiArray at 25 Hz
    starting 13 ms in (so a held command is up to 40 ms old), and a 30 fps video beside it."""
    c = BagContent()
    for arm, sign in (('left', 1.0), ('right', -1.0)):
        for i in range(151):
            t = i / 50
            c.joint_state(f'/{arm}/joint_states', T0 + round(t * 1e9), J7,
                          [sign * (j + 0.1 * t) for j in range(7)])
        for i in range(int(3.0 * CMD_HZ)):
            t = 0.013 + i / CMD_HZ
            c.float_array(f'/{arm}/command', T0 + round(t * 1e9), [sign * i] * 7)
    bag = write_bag(c, tmp / 'rig', 'mcap')
    frame = np.full((48, 64, 3), (40, 90, 140), np.uint8)
    write_video(bag / 'front.mp4', [frame] * 91, fps=30)
    return bag


def _rig_profile() -> RobotProfile:
    def arm(name: str) -> dict[str, Any]:
        return {'joints': J7, 'state_topic': f'/{name}/joint_states',
                'action': {'source': 'command', 'topic': f'/{name}/command'},
                'joint_limits': {'lower': [-9.0] * 7, 'upper': [9.0] * 7}}

    return RobotProfile.from_dict({
        'robot': 'rig', 'arms': {'left': arm('left'), 'right': arm('right')},
        'cameras': {'front': {'file': 'front.mp4'}}, 'image_size': [24, 32],
        'rate_hz': 20.0, 'min_episode_steps': 8})


@pytest.fixture(scope='module')
def rig(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp('rig')
    result = ingest([_rig(tmp)], _rig_profile(), tmp / 'ds')
    assert result.bags[0].status is BagStatus.OK, result.bags[0].reason
    return tmp / 'ds'


def test_arm_group_commands_are_not_late_within_one_step(rig: Path) -> None:
    (row,) = report_data(build_report([rig]))['episodes']
    sync = summarize_dataset(rig)['robots']['rig']['sync']
    # held commands are up to 40 ms old: over the half step (25 ms), within the step (50 ms)
    assert 0.025 < sync['/left/command']['max_offset_s'] < 0.05
    assert sync['/left/command']['role'] == 'action:left'
    assert row['late_topics'] == []


def test_the_video_row_says_its_clock(rig: Path) -> None:
    sync = summarize_dataset(rig)['robots']['rig']['sync']
    assert sync['video:front.mp4']['clock'] == 'log'
    assert sync['/left/joint_states']['clock'] == 'header'
    assert sync['/left/command']['clock'] == 'log'  # Float64MultiArray has no header


@pytest.mark.skipif(chromium_binary() is None, reason='chromium is not installed')
def test_a_14_line_legend_names_every_line_in_its_own_colour(rig: Path, tmp_path: Path) -> None:
    file = write_report(tmp_path / 'report', [rig])
    with Chromium() as browser:
        page = browser.open(file, width=1280, height=900)
        try:
            legends = page.evaluate("""[...document.querySelectorAll('#detail .legend')].map(
                (l) => ({names: [...l.children].map((s) => s.textContent),
                         colors: [...l.children].map((s) => getComputedStyle(s).color),
                         clipped: l.scrollHeight > l.clientHeight + 1
                                  || [...l.children].some((s) => s.offsetParent === null)}))""")
            assert page.console_errors == []
        finally:
            page.close()
    state, action = legends[:2]
    assert state['names'] == [f'\u25a0 {arm}/{j}' for arm in ('left', 'right') for j in J7]
    assert len(action['names']) == 14
    for legend in (state, action):
        assert len(set(legend['colors'])) == 14
        assert not legend['clipped']


def test_one_topic_for_state_and_action_is_two_summary_rows(tmp_path: Path) -> None:
    c = BagContent()
    names = ['a', 'b']
    for i in range(61):
        t = T0 + i * 50_000_000
        c.controller_state('/arm_controller/state', t, names,
                           {'actual': [0.1 * i, -0.1 * i], 'desired': [0.1 * i + 1, 0.0]})
    bag = write_bag(c, tmp_path / 'jtc', 'mcap')
    profile = RobotProfile.from_dict({
        'robot': 'jtc', 'joints': names, 'state_topic': '/arm_controller/state',
        'action': {'source': 'command', 'topic': '/arm_controller/state'},
        'joint_limits': {'lower': [-9.0, -9.0], 'upper': [9.0, 9.0]},
        'rate_hz': 10.0, 'min_episode_steps': 8})
    assert ingest([bag], profile, tmp_path / 'ds').ok
    sync = summarize_dataset(tmp_path / 'ds')['robots']['jtc']['sync']
    assert set(sync) == {'/arm_controller/state (state)', '/arm_controller/state (action)'}
    lines = format_sync(sync)
    assert len(lines) == 3  # the header and two rows
    assert lines[1].split()[:3] == ['/arm_controller/state', '(state)', 'state']
