"""The evaluation harness: held-out goals, success counted from the simulator."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ptr_sim.env import EVAL_SEED_OFFSET, MetaWorldEnv
from ptr_sim.evaluate import ExpertPolicy, eval_seeds, evaluate


class _Still:
    """Never moves: must never succeed at pick-place."""

    def reset(self, n: int) -> None:
        self.calls = 0

    def __call__(self, state: npt.NDArray[np.float32], images: dict[str, npt.NDArray[np.uint8]],
                 active: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
        self.calls += 1
        assert state.shape == (len(active), 19)  # setup b: 5 joints + 2 poses
        return np.zeros((len(state), 4))


def test_expert_solves_held_out_goals_and_standing_still_does_not() -> None:
    res = evaluate('pick-place-v3', ExpertPolicy([]), episodes=6, batch=3, max_steps=120)
    assert res.success_rate >= 5 / 6
    assert all(s >= EVAL_SEED_OFFSET for s in res.seeds)
    assert all(n < 120 for n, ok in zip(res.steps, res.success) if ok)
    still = _Still()
    res = evaluate('pick-place-v3', still, setup='b', episodes=3, max_steps=30)
    assert res.success_rate == 0.0
    assert still.calls == 30
    assert res.to_json()['episodes'] == 3


def test_eval_seeds_give_distinct_goals_per_seed() -> None:
    assert eval_seeds(3, 0) != eval_seeds(3, 1)
    env = MetaWorldEnv('push-v3')
    goals = {tuple(np.round(env.reset(s)[36:39], 5)) for s in eval_seeds(4)}
    assert len(goals) == 4
    assert np.allclose(env.reset(eval_seeds(1)[0]), env.reset(eval_seeds(1)[0]))
