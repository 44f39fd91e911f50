"""Trust from images: ``ptr score`` on a cameras-only dataset (issue 27, item 3).

The data: an arm of two joints and a gripper, ``s[t+1] = clip(s[t] + 0.3 a[t])``, moved by
smooth random commands; its state is the joints and the gripper only (no tracker pose of
anything). Two cameras see it: ``front`` a bright square where the hand is and a fixed target
marker, ``wrist`` the same scene shifted with the hand (so the target moves across it). ``expert``
episodes record the commands that moved the arm, ``shuffled`` the same commands in a shuffled
order, ``delayed_3`` the command of three steps earlier. Seeded: the same set on every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from bag_tools.dataset import Dataset, EpisodeData, write_episode
from ptr_core.synthetic import robot_entry
from ptr_core.weighting.trust import TrustConfig, score_datasets

KINDS = ('expert', 'expert', 'shuffled', 'expert', 'expert', 'delayed_3')
SIZE = 24
CAMERAS = ('front', 'wrist')


def render(state: npt.NDArray[np.float32], target: npt.NDArray[np.float32],
           ) -> dict[str, npt.NDArray[np.uint8]]:
    """``front``: the hand (green, brighter when the gripper closes) and the target (red) on a
    fixed view; ``wrist``: the target seen from the hand."""
    n = len(state)
    front = np.zeros((n, SIZE, SIZE, 3), np.uint8)
    wrist = np.zeros((n, SIZE, SIZE, 3), np.uint8)

    def px(v: float) -> int:
        return int(np.clip((v + 2.0) / 4.0, 0.0, 1.0) * (SIZE - 1))

    ty, tx = px(target[0]), px(target[1])
    for t, s in enumerate(state):
        front[t, max(0, ty - 2): ty + 3, max(0, tx - 2): tx + 3, 0] = 220
        hy, hx = px(s[0]), px(s[1])
        front[t, max(0, hy - 2): hy + 3, max(0, hx - 2): hx + 3, 1] = 120 + int(100 * s[2])
        wy, wx = px(target[0] - s[0]), px(target[1] - s[1])
        wrist[t, max(0, wy - 3): wy + 4, max(0, wx - 3): wx + 4, 0] = 220
        wrist[t, :, :, 2] = int(60 + 60 * s[2])
    return {'front': front, 'wrist': wrist}


def write_camera_dataset(root: Path, *, episodes: int = 24, length: int = 40,
                         seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    ds = Dataset.create_or_open(root, rate_hz=10.0)
    written = []
    for i in range(episodes):
        kind = KINDS[i % len(KINDS)]
        s = np.concatenate([rng.uniform(-1, 1, 2), [0.0]]).astype(np.float32)
        target = rng.uniform(-1.5, 1.5, 2).astype(np.float32)
        cmd = rng.uniform(-1, 1, 3)
        states, executed = [], []
        for _ in range(length):
            cmd = 0.6 * cmd + 0.4 * rng.uniform(-1, 1, 3)  # smooth, like an operator's
            a = cmd.astype(np.float32)
            states.append(s.copy())
            executed.append(a)
            s = np.clip(s + 0.3 * a, [-2, -2, 0], [2, 2, 1]).astype(np.float32)
        ex = np.stack(executed)
        if kind == 'shuffled':
            rec = ex[rng.permutation(length)]
        elif kind == 'delayed_3':
            rec = np.concatenate([np.repeat(ex[:1], 3, 0), ex[:-3]])
        else:
            rec = ex
        state = np.stack(states)
        ep = EpisodeData(
            id=f'ep{i:03d}', robot='arm', timestamp=np.arange(length, dtype=np.int64) * 10**8,
            state=state, action=rec, state_valid=np.ones(length, bool),
            action_valid=np.ones(length, bool), images=render(state, target),
            image_valid={c: np.ones(length, bool) for c in CAMERAS}, task='touch',
            source='synthetic', content_hash=f'cameras-{seed}-{i}', tags={'ptr.source': kind},
        )
        write_episode(root, ep)
        written.append(ep)
    entry = robot_entry('arm', state_dim=3, action_dim=3, cameras=CAMERAS,
                        image_size=(SIZE, SIZE))
    ds.add_episodes(written, robots={'arm': entry})
    return root


@pytest.fixture(scope='module')
def camera_set(
    tmp_path_factory: pytest.TempPathFactory, train_base: Callable[..., Path],
) -> tuple[Path, Path]:
    """(dataset, base): the base is a few uniform steps of an image policy; only its frozen
    encoder (a conv trunk per camera) is read."""

    root = tmp_path_factory.mktemp('cameras')
    data = write_camera_dataset(root / 'data')
    return data, train_base(data, root / 'base', 'data.image_shift=0',
                            'policy.encoder.channels=[8,16]',
                            'policy.encoder.image_feature_dim=16')


def test_the_consequence_holds_the_joint_steps_and_the_visual_embeddings_change(
    camera_set: tuple[Path, Path],
) -> None:
    import torch

    from ptr_core.data import open_datasets
    from ptr_core.inference import load_policy
    from ptr_core.weighting.trust.features import extract_features

    data, base = camera_set
    policy, ckpt = load_policy(base)
    L = policy.chunk_length
    feats = extract_features(policy, ckpt.preprocessor, open_datasets([data]), chunk_length=L,
                             delta=ckpt.config.data.delta(L))
    visual = policy.encoder.target_dim
    assert policy.encoder.roles == CAMERAS  # the target feature is the cameras' trunk
    assert feats.consequence.shape == (feats.n, L * 3 + visual)  # L joint steps + the images
    joints, images = feats.consequence[:, : L * 3], feats.consequence[:, L * 3:]
    assert float(joints.std()) > 0.5  # standardized per dimension, not empty
    assert float(images.std()) > 0.5
    # the visual part says how the hand moved: it is not a function of the joint steps alone
    fit = torch.linalg.lstsq(torch.cat([joints, torch.ones(feats.n, 1)], 1), images).solution
    resid = images - torch.cat([joints, torch.ones(feats.n, 1)], 1) @ fit
    assert float(resid.var() / images.var()) > 0.05


def test_corrupted_labels_rank_below_the_clean_episodes_from_cameras_and_joints(
    camera_set: tuple[Path, Path],
) -> None:
    data, base = camera_set
    config = TrustConfig(folds=2, steps=150, hidden=64, batch_size=128, score_draws=2,
                         rounds=1)
    res = score_datasets([data], init=base, config=config)
    table = res.aurocs()['attribution']
    assert table['shuffled'] >= 0.9, table
    assert table['delayed_3'] >= 0.9, table
    by = {s: np.mean([e.trust for e, src in zip(res.trust.episodes, res.sources) if src == s])
          for s in set(res.sources)}
    assert by['expert'] > max(by['shuffled'], by['delayed_3']), by
