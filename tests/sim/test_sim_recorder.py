"""record-sim: real MCAP bags from Meta-World, sources that behave as their tags say."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bag_tools.profile import load_profile
from bag_tools.reader import open_bag
from ptr_core.errors import PtrError
from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.recorder import plan_episodes, record, write_bag
from ptr_sim.setups import SETUPS, flat_state, get_setup
from ptr_sim.sources import SOURCES, Rollout, Source, SourceBehavior, behavior, parse_mix, rollout

TASK = 'pick-place-v3'


@pytest.fixture(scope='module')
def env() -> MetaWorldEnv:
    return MetaWorldEnv(TASK, image_size=32)


def _commands(bag: Path, topic: str) -> np.ndarray:
    with open_bag(bag) as reader:
        return np.stack([np.asarray(reader.deserialize(raw).data)
                         for raw in reader.raw_messages([topic])])


def _replay_expert(env: MetaWorldEnv, ro: Rollout) -> np.ndarray:
    """The expert's action at each recorded observation (the expert is a function of obs)."""
    out = []
    for obs in ro.obs[:-1]:
        env.obs = obs
        out.append(env.expert_action())
    return np.asarray(out)


def test_every_registered_source_resolves_and_round_trips() -> None:
    """One registry (``SOURCES``): each entry is a ``SourceBehavior`` of that name, and a tag
    built from it parses back to itself."""
    for name in SOURCES:
        kind = behavior(name)
        assert issubclass(kind, SourceBehavior)
        assert kind.name == name
        # a kind with a value shows one in its usage: 'slow_<speed> (e.g. slow_0.5)'
        tag = kind.usage.split('e.g. ')[1].rstrip(')') if kind.param else name
        assert tag.startswith(name)
        assert Source.parse(tag).tag == tag


def test_source_tags_parse_and_reject() -> None:
    assert Source.parse('noisy_0.30').tag == 'noisy_0.3'
    assert Source.parse('delayed_4') == Source('delayed', 4)
    assert Source.parse('delayed_4').tag == 'delayed_4'
    assert Source.parse('shuffled_labels').low_attribution
    assert not Source.parse('recovery').low_attribution
    with pytest.raises(PtrError, match='unknown source'):
        Source.parse('noisy')
    with pytest.raises(PtrError, match='delay must be at least 1'):
        Source.parse('delayed_0')
    assert parse_mix('expert:3, noisy_0.5:2,expert:1') == {'expert': 4, 'noisy_0.5': 2}
    with pytest.raises(PtrError, match='expected <source>:<episodes>'):
        parse_mix('expert=3')


def test_profiles_match_setups() -> None:
    for setup in SETUPS.values():
        profile = load_profile(setup.profile)
        assert profile.robot == setup.robot
        assert profile.joints == setup.joints
        assert profile.state_topic == setup.state_topic
        assert profile.action.topic == setup.command_topic
        assert {c.role: c.topic for c in profile.cameras} == {
            c.role: c.topic for c in setup.cameras}
        assert [(e.name, e.topic) for e in profile.extra_state] == list(setup.poses)
        assert profile.rate_hz == 80.0
    # The two setups differ in cameras and in state layout, like two rigs of one lab.
    a, b = (load_profile(get_setup(s).profile) for s in 'ab')
    assert a.camera_roles != b.camera_roles
    assert a.state_names != b.state_names


def test_plan_seeds_are_distinct_and_never_evaluation_goals() -> None:
    reqs = plan_episodes(['pick-place-v3', 'push-v3'], ['a', 'b'], {'expert': 5, 'delayed_2': 3})
    seeds = [r.seed for r in reqs]
    assert len(set(seeds)) == len(seeds) == 16
    assert max(seeds) < EVAL_SEED_OFFSET
    assert {r.setup for r in reqs} == {'a', 'b'}


def test_delayed_labels_are_executed_actions_shifted(env: MetaWorldEnv) -> None:
    ro = rollout(env, get_setup('a'), Source.parse('delayed_3'), 11, render=False)
    assert ro.success
    assert np.array_equal(ro.recorded[3:], ro.executed[:-3])
    assert np.array_equal(ro.recorded[:3], np.repeat(ro.executed[:1], 3, axis=0))
    assert np.allclose(ro.executed, _replay_expert(env, ro))


def test_noisy_executes_noise_and_records_it(env: MetaWorldEnv) -> None:
    ro = rollout(env, get_setup('a'), Source.parse('noisy_0.3'), 12, render=False)
    assert np.array_equal(ro.recorded, ro.executed)
    noise = ro.executed - _replay_expert(env, ro)
    assert 0.15 < noise.std() < 0.35  # sigma 0.3, a little less after clipping to [-1, 1]


def test_low_attribution_labels_are_not_what_ran(env: MetaWorldEnv) -> None:
    rnd = rollout(env, get_setup('a'), Source.parse('random_labels'), 13, render=False)
    assert np.allclose(rnd.executed, _replay_expert(env, rnd))
    assert np.abs(rnd.recorded).max() <= 1.0
    assert abs(np.corrcoef(rnd.recorded[:, 0], rnd.executed[:, 0])[0, 1]) < 0.5
    shuf = rollout(env, get_setup('a'), Source.parse('shuffled_labels'), 13, render=False)
    assert np.allclose(shuf.executed, rnd.executed)  # same goal, same expert
    assert not np.allclose(shuf.recorded, shuf.executed)
    assert np.abs(shuf.recorded).max() <= 1.0


def test_recovery_pushes_then_recovers(env: MetaWorldEnv) -> None:
    ro = rollout(env, get_setup('a'), Source.parse('recovery'), 14, render=False)
    assert np.array_equal(ro.recorded, ro.executed)
    expert = _replay_expert(env, ro)
    pushed = ~np.isclose(ro.executed, expert).all(axis=1)
    assert 8 <= pushed.sum() <= 28
    assert np.allclose(np.linalg.norm(ro.executed[pushed, :3], axis=1), 1.0)
    assert not pushed[-5:].any()  # the expert is in charge at the end


def test_bag_holds_topics_tags_and_labels(env: MetaWorldEnv, tmp_path: Path) -> None:
    setup = get_setup('b')
    ro = rollout(env, setup, Source.parse('delayed_2'), 21, max_steps=30, camera_stride=4)
    bag = write_bag(ro, setup, tmp_path / 'ep')
    assert list(bag.glob('*.mcap'))
    with open_bag(bag) as reader:
        tags = reader.custom_data()
        topics = reader.topics()
        joint = [reader.deserialize(r) for r in reader.raw_messages([setup.state_topic])]
        image = next(reader.deserialize(r)
                     for r in reader.raw_messages([setup.cameras[0].topic]))
        poses = [reader.deserialize(r) for r in reader.raw_messages(['/mocap/object_pose'])]
        task = [reader.deserialize(r).data for r in reader.raw_messages(['/task'])]
    assert tags['ptr.source'] == 'delayed_2'
    assert tags['ptr.success'] == 'false'  # 30 steps are too few to place the puck
    assert tags['ptr.task'] == TASK
    assert tags['ptr.setup'] == 'b'
    assert tags['ptr.low_attribution'] == 'true'
    assert topics[setup.state_topic].msgcount == 31
    assert topics[setup.command_topic].msgcount == 30
    assert topics[setup.cameras[0].topic].msgcount == 8  # steps 0, 4, ..., 28
    assert task == [TASK]
    assert list(joint[0].name) == list(setup.joints)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in joint]
    assert set(np.diff(stamps)) == {12_500_000}
    assert np.allclose(poses[5].pose.position.x, ro.obs[5][4])
    rgb = cv2.imdecode(np.asarray(image.data), cv2.IMREAD_COLOR)
    assert rgb.shape == (32, 32, 3)
    assert np.allclose(_commands(bag, setup.command_topic), ro.recorded)
    # the flattened state in the profile's order, as ingestion will build it
    state = flat_state(setup, ro.obs[0], ro.fingers[0])
    assert state.shape == (len(load_profile(setup.profile).state_names),)
    assert np.allclose(state[2:5], ro.obs[0][:3])
    a = get_setup('a')
    state_a = flat_state(a, ro.obs[0], ro.fingers[0])
    assert state_a.shape == (len(load_profile(a.profile).state_names),) == (10,)


def test_record_writes_one_bag_per_episode(tmp_path: Path) -> None:
    reqs = plan_episodes([TASK], ['a', 'b'], {'expert': 1, 'random_labels': 1})
    eps = record(reqs, tmp_path, render=False, max_steps=80)
    assert [e.setup for e in eps] == ['a', 'b']
    assert all(e.success for e in eps)
    assert eps[0].path.parent.name == 'setup_a'
    with open_bag(eps[1].path) as reader:
        assert reader.custom_data()['ptr.source'] == 'random_labels'
        assert '/side_cam/image/compressed' not in reader.topics()


def test_ingested_episode_is_the_rollout(env: MetaWorldEnv, tmp_path: Path) -> None:
    """Through ``ptr ingest``: state in the profile's layout is ``flat_state`` (what the
    evaluation harness feeds a policy), actions are the recorded labels, tags are copied."""
    from bag_tools.dataset import Dataset
    from bag_tools.ingest import ingest

    reqs = plan_episodes([TASK], ['a', 'b'], {'delayed_3': 2})
    record(reqs, tmp_path / 'bags', max_steps=40, image_size=32)
    for s in 'ab':
        res = ingest([tmp_path / 'bags' / f'setup_{s}'], load_profile(get_setup(s).profile),
                     tmp_path / 'ds')
        assert res.ok
    ds = Dataset.open(tmp_path / 'ds')
    assert sorted(ds.manifest['robots']) == ['sawyer_mw_a', 'sawyer_mw_b']
    for ep in ds.episodes():
        req = next(r for r in reqs if str(r.seed) == ep.tags['ptr.seed'])
        assert ep.tags['ptr.source'] == 'delayed_3'
        assert ep.task == TASK
        setup = get_setup(req.setup)
        ro = rollout(env, setup, Source.parse(req.source), req.seed, max_steps=40, render=False)
        state = np.stack([flat_state(setup, o, f) for o, f in zip(ro.obs, ro.fingers)])
        assert np.allclose(ep.state[: len(state)], state, atol=1e-6)
        assert np.allclose(ep.action[: ro.length], ro.recorded, atol=1e-6)
        assert set(ep.images) == {c.role for c in setup.cameras}


def test_a_fixed_horizon_records_past_success(env: MetaWorldEnv) -> None:
    """``settle_steps=None``: every episode runs to ``max_steps`` (the expert holds at the goal),
    so length says nothing about success; the default still stops 10 steps after it."""
    short = rollout(env, get_setup('a'), Source.parse('expert'), 21, render=False)
    fixed = rollout(env, get_setup('a'), Source.parse('expert'), 21, render=False,
                    settle_steps=None)
    assert short.success
    assert fixed.success
    assert short.success_step is not None
    assert short.length == short.success_step + 10 < 150
    assert fixed.length == 150
    assert np.array_equal(fixed.executed[:short.length], short.executed)
    # after success the expert holds: the hand comes to rest with the object at the goal
    rest = fixed.obs[-40:, :3]
    assert np.linalg.norm(rest - rest[-1], axis=1).max() < 0.005
    assert np.linalg.norm(fixed.obs[-1, 4:7] - fixed.obs[-1, 36:39]) < 0.07


def _xyz_off_expert(env: MetaWorldEnv, ro: Rollout) -> np.ndarray:
    """Steps whose executed xyz is not the expert's (at the recorded observation)."""
    return ~np.isclose(ro.executed[:, :3], _replay_expert(env, ro)[:, :3]).all(axis=1)


def test_graded_operators_execute_what_their_tags_say(env: MetaWorldEnv) -> None:
    setup = get_setup('a')
    slow = rollout(env, setup, Source.parse('slow_0.5'), 31, render=False, settle_steps=None)
    expert = _replay_expert(env, slow)
    assert np.allclose(slow.executed[:, :3], 0.5 * expert[:, :3])
    assert np.allclose(slow.executed[:, 3], expert[:, 3])
    hes = rollout(env, setup, Source.parse('hesitant'), 32, render=False, settle_steps=None)
    still = (hes.executed[:, :3] == 0).all(axis=1)
    assert 12 <= still.sum() <= 60  # 2-4 pauses of 6-15 steps
    assert not _xyz_off_expert(env, hes)[~still].any()  # the expert between the pauses
    jerky = rollout(env, setup, Source.parse('jerky_0.5'), 33, render=False, settle_steps=None)
    jitter = jerky.executed[:, :3] - _replay_expert(env, jerky)[:, :3]
    free = (np.abs(jerky.executed[:, :3]) < 1.0).all(axis=1)  # steps clipping left alone
    pairs = free[:-1] & free[1:] & (np.arange(len(free) - 1) % 5 != 4)  # same direction
    assert (np.sum(jitter[:-1] * jitter[1:], axis=1)[pairs] < 0).all()  # the sign flips
    assert np.allclose(np.linalg.norm(jitter[free], axis=1), 0.5)
    detour = rollout(env, setup, Source.parse('detour'), 34, render=False, settle_steps=None)
    off = np.flatnonzero(_xyz_off_expert(env, detour))
    assert len(off) >= 25
    assert off[-1] - off[0] < 50
    push = detour.executed[off, :3] - _replay_expert(env, detour)[off, :3]
    assert np.allclose(push[:, 2], 0.0, atol=1e-9)  # sideways only
    for ro in (slow, hes, jerky, detour):
        assert np.array_equal(ro.recorded, ro.executed)  # correctly labelled
        assert not ro.source.low_attribution


def test_structural_defects_drop_miss_and_misplace(env: MetaWorldEnv) -> None:
    setup = get_setup('a')
    rel = rollout(env, setup, Source.parse('early_release'), 41, render=False,
                  settle_steps=None)
    let_go = np.flatnonzero((rel.executed == [0.0, 0.0, 0.0, -1.0]).all(axis=1))
    assert len(let_go) == 8
    assert let_go[-1] - let_go[0] == 7
    moved = np.linalg.norm(rel.obs[:, 4:7] - rel.obs[0, 4:7], axis=1)
    assert moved[let_go[0]] > 0.03  # after the object was on its way
    assert rel.executed[let_go[-1] + 1:, 3].max() > 0.5  # and the gripper closes again
    miss = rollout(env, setup, Source.parse('grasp_miss'), 42, render=False, settle_steps=None)
    assert not miss.success
    assert np.linalg.norm(miss.obs[-1, 4:7] - miss.obs[0, 4:7]) < 0.03  # never picked up
    wrong = rollout(env, setup, Source.parse('wrong_target'), 43, render=False,
                    settle_steps=None)
    assert not wrong.success
    carried = np.linalg.norm(wrong.obs[-1, 4:7] - wrong.obs[0, 4:7])
    assert carried > 0.05  # picked and carried (the right motion) ...
    assert np.linalg.norm(wrong.obs[-1, 4:7] - wrong.obs[-1, 36:39]) > 0.07  # ... elsewhere
    for ro in (rel, miss, wrong):
        assert np.array_equal(ro.recorded, ro.executed)


def test_a_partial_episode_is_good_but_for_one_stretch(env: MetaWorldEnv) -> None:
    ro = rollout(env, get_setup('a'), Source.parse('partial'), 51, render=False,
                 settle_steps=None)
    off = np.flatnonzero(_xyz_off_expert(env, ro))
    assert len(off) >= 15
    assert 19 <= off[-1] - off[0] <= 29
    assert 10 <= off[0] <= 40
    assert np.array_equal(ro.recorded, ro.executed)


def test_near_right_labels_are_almost_what_ran(env: MetaWorldEnv) -> None:
    setup = get_setup('a')
    gain = rollout(env, setup, Source.parse('gain_1.5'), 61, render=False)
    assert np.allclose(gain.recorded[:, :3], np.clip(1.5 * gain.executed[:, :3], -1, 1))
    assert np.array_equal(gain.recorded[:, 3], gain.executed[:, 3])
    flip = rollout(env, setup, Source.parse('flipped_axis'), 62, render=False)
    same = np.isclose(flip.recorded, flip.executed).all(axis=0)
    negated = np.isclose(flip.recorded, -flip.executed).all(axis=0)
    assert same[3]
    assert same[:3].sum() == 2
    assert negated[:3].sum() == 1
    grip = rollout(env, setup, Source.parse('gripper_sign'), 63, render=False)
    assert np.array_equal(grip.recorded[:, 3], -grip.executed[:, 3])
    assert np.array_equal(grip.recorded[:, :3], grip.executed[:, :3])
    for ro in (gain, flip, grip):
        assert ro.source.low_attribution
        assert np.allclose(ro.executed, _replay_expert(env, ro))  # the expert ran
    with pytest.raises(PtrError, match='gain'):
        Source.parse('gain_1')
    with pytest.raises(PtrError, match='speed'):
        Source.parse('slow_1.5')


def test_record_sim_runs_to_a_fixed_horizon_unless_told(tmp_path: Path) -> None:
    """``ptr record-sim`` records as the benchmark does: to --max-steps past success;
    --stop-after-success N ends each episode N steps after it (the older recordings)."""
    from ptr_cli.main import main

    counts = {}
    for name, extra in (('fixed', []), ('stop', ['--stop-after-success', '5'])):
        out = tmp_path / name
        assert main(['record-sim', '--out', str(out), '--tasks', TASK, '--setups', 'a',
                     '--mix', 'expert:1', '--no-images', '--max-steps', '120', *extra]) == 0
        (bag,) = (out / 'setup_a').iterdir()
        with open_bag(bag) as reader:
            assert reader.custom_data()['ptr.success'] == 'true'
            counts[name] = reader.topics()[get_setup('a').command_topic].msgcount
    assert counts['fixed'] == 120
    assert counts['stop'] < 120
    assert main(['record-sim', '--out', str(tmp_path / 'x'), '--stop-after-success', '-1']) == 2
    assert not (tmp_path / 'x').exists()
