"""The trust file: round trip, atomic write, stale trust refused with the file named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bag_tools.dataset import Dataset, EpisodeData, RobotEntry, write_episode
from bag_tools.errors import BagToolsError
from bag_tools.profile import RobotProfile
from bag_tools.robots import robot_entry
from bag_tools.trust import (
    SCHEMA,
    EpisodeTrust,
    TrustError,
    TrustFile,
    dataset_content_hash,
    default_trust_path,
    make_trust_file,
    read_trust,
    write_trust,
)


def _robot() -> RobotEntry:
    return robot_entry(RobotProfile.from_dict({
        'robot': 'arm', 'joints': ['x', 'y'], 'state_topic': '/joint_states',
        'action': {'source': 'next_state'}, 'rate_hz': 10.0,
        'joint_limits': {'lower': [-1, -1], 'upper': [1, 1]}}, source='arm'))


def _episode(episode_id: str, length: int, seed: int) -> EpisodeData:
    rng = np.random.default_rng(seed)
    return EpisodeData(
        id=episode_id, robot='arm', timestamp=np.arange(length, dtype=np.int64) * 100_000_000,
        state=rng.normal(size=(length, 2)).astype(np.float32),
        action=rng.normal(size=(length, 2)).astype(np.float32),
        state_valid=np.ones(length, bool), action_valid=np.ones(length, bool),
        task='reach', source=f'{episode_id}.mcap', content_hash=f'hash-{episode_id}',
    )


def _dataset(root: Path, lengths: dict[str, int]) -> Dataset:
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    eps = [_episode(k, n, i) for i, (k, n) in enumerate(sorted(lengths.items()))]
    for ep in eps:
        write_episode(root, ep)
    ds.add_episodes(eps, robots={'arm': _robot()})
    return ds


def _trust_for(ds: Dataset, w_min: float = 0.05) -> TrustFile:
    digest = dataset_content_hash(ds)
    eps = []
    for i, entry in enumerate(ds.manifest['episodes']):
        n = entry['length']
        trust = w_min if i % 2 else 1.0
        frames = np.full(n, trust)
        frames[: n // 3] = 0.5  # a partial stretch
        eps.append(EpisodeTrust(
            dataset_hash=digest, episode_id=entry['id'], trust=trust, score=0.3 - i, fold=i % 2,
            frame_trust=frames, signals={'attribution': 0.3 - i, 'length': float(n)},
        ))
    return make_trust_file({'w_min': w_min, 'folds': 2, 'init': 'base.pt'}, [(ds, eps)])


def test_round_trip(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / 'data', {'e0': 12, 'e1': 9, 'e2': 20})
    trust = _trust_for(ds)
    path = write_trust(default_trust_path(ds.root), trust)
    assert path == (tmp_path / 'data.trust.json').resolve()
    assert not any(p.name.endswith('.tmp') for p in tmp_path.iterdir())
    raw = json.loads(path.read_text())
    assert raw['schema'] == SCHEMA
    assert raw['datasets'][0]['content_hash'] == dataset_content_hash(ds)
    assert raw['datasets'][0]['episodes'] == 3

    back = read_trust(path)
    assert back.scorer == trust.scorer
    assert back.created == trust.created
    assert back.source == str(path)
    got = back.for_dataset(Dataset.open(ds.root))
    assert sorted(got) == ['e0', 'e1', 'e2']
    for ep in trust.episodes:
        value, frames = got[ep.episode_id]
        assert value == pytest.approx(ep.trust)
        np.testing.assert_allclose(frames, ep.frame_trust, atol=1e-6)
    assert got['e1'][0] == pytest.approx(0.05)
    assert len(got['e2'][1]) == 20
    assert back.episodes[1].signals == {'attribution': pytest.approx(-0.7), 'length': 9.0}


def test_hash_depends_on_content_not_order(tmp_path: Path) -> None:
    a = _dataset(tmp_path / 'a', {'e0': 12, 'e1': 9})
    b = _dataset(tmp_path / 'b', {'e1': 9, 'e0': 12})
    assert dataset_content_hash(a) == dataset_content_hash(b)
    c = _dataset(tmp_path / 'c', {'e0': 12, 'e1': 10})
    assert dataset_content_hash(a) != dataset_content_hash(c)


def test_stale_trust_refused_naming_the_file(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / 'data', {'e0': 12, 'e1': 9})
    path = write_trust(tmp_path / 'data.trust.json', _trust_for(ds))
    # the dataset gains an episode after scoring
    extra = _episode('e2', 15, 7)
    write_episode(ds.root, extra)
    ds.add_episodes([extra], robots={'arm': _robot()})
    with pytest.raises(BagToolsError, match=rf'{path}.*stale.*ptr score'):
        read_trust(path).for_dataset(Dataset.open(ds.root))


def test_missing_episode_refused(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / 'data', {'e0': 12, 'e1': 9})
    full = _trust_for(ds)
    partial = TrustFile(scorer=full.scorer, datasets=full.datasets, episodes=full.episodes[:1])
    path = write_trust(tmp_path / 't.json', partial)
    with pytest.raises(TrustError, match=rf"{path}: has no trust for episode 'e1'"):
        read_trust(path).for_dataset(ds)


def test_invalid_values_rejected(tmp_path: Path) -> None:
    ds = _dataset(tmp_path / 'data', {'e0': 5})
    digest = dataset_content_hash(ds)
    with pytest.raises(TrustError, match='outside'):
        EpisodeTrust(digest, 'e0', trust=1.5, score=0.0, fold=0, frame_trust=np.ones(5))
    with pytest.raises(TrustError, match='frame_trust'):
        EpisodeTrust(digest, 'e0', trust=1.0, score=0.0, fold=0, frame_trust=np.full(5, -1.0))
    low = EpisodeTrust(digest, 'e0', trust=0.01, score=0.0, fold=0, frame_trust=np.ones(5))
    with pytest.raises(TrustError, match='w_min'):
        make_trust_file({'w_min': 0.1}, [(ds, [low])])


def test_unreadable_files_named(tmp_path: Path) -> None:
    missing = tmp_path / 'none.trust.json'
    with pytest.raises(TrustError, match=rf'{missing}: no such trust file'):
        read_trust(missing)
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'schema': 'ptr.trust/0'}))
    with pytest.raises(TrustError, match=rf"{other}: schema 'ptr.trust/0'"):
        read_trust(other)
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps({'schema': SCHEMA, 'datasets': []}))
    with pytest.raises(TrustError, match=rf'{broken}: malformed'):
        read_trust(broken)
