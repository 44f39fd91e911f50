"""One Meta-World task as a plain simulator: fresh goals per seed, the scripted expert, cameras.

``MetaWorldEnv(task)`` wraps ``metaworld.MT1(task)``: ``reset(seed)`` draws a new object/goal
placement from ``seed`` (the same seed gives the same placement; the recorder and the evaluation
harness use disjoint seed ranges, so evaluation goals are held out), ``step(action)`` applies a
4-D action clipped to [-1, 1], and ``render(camera)`` draws one camera at the configured size
with MuJoCo's offscreen renderer (``MUJOCO_GL=egl`` headless; shadows off for speed).
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from ptr_core.errors import PtrError

__all__ = ['EVAL_SEED_OFFSET', 'MetaWorldEnv', 'SimError', 'check_task', 'import_metaworld']

log = logging.getLogger(__name__)

#: Evaluation goals come from seeds at and above this; recordings use seeds below it.
EVAL_SEED_OFFSET = 1_000_000_000


class SimError(PtrError):
    """The simulator is missing, or a task/camera name is wrong."""


def import_metaworld() -> Any:
    """Import Meta-World (the ``sim`` extra) with a one-line error when it is absent."""
    os.environ.setdefault('MUJOCO_GL', 'egl')
    logging.getLogger('OpenGL').setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            import metaworld
            import metaworld.policies
    except ImportError as err:
        msg = (
            f'Meta-World is not installed ({err}); install the sim extra: '
            "pip install -e '.[sim]' (metaworld==3.1.1, mujoco==3.3.0)"
        )
        raise SimError(msg) from err
    return metaworld


_MT1: dict[str, Any] = {}
_OPEN: weakref.WeakSet[MetaWorldEnv] = weakref.WeakSet()
_HOOKED = False


def _close_renderers() -> None:
    # Free GL contexts while the EGL display is still up. Registered after MuJoCo's EGL module
    # is imported, so this runs before MuJoCo's own exit hook (atexit is last-in, first-out).
    for env in list(_OPEN):
        env.close()


def _benchmark(task: str) -> Any:
    """``metaworld.MT1(task)``, built once per process (it takes most of a second)."""
    if task not in _MT1:
        mw = import_metaworld()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            _MT1[task] = mw.MT1(task, seed=0)
    return _MT1[task]


def check_task(task: str) -> None:
    mw = import_metaworld()
    if task not in mw.policies.ENV_POLICY_MAP:
        known = ', '.join(sorted(mw.policies.ENV_POLICY_MAP))
        msg = f'unknown Meta-World task {task!r} (known: {known})'
        raise SimError(msg)


class MetaWorldEnv:
    """One task; ``reset(seed)`` gives a fresh goal, ``expert_action`` the scripted expert."""

    def __init__(self, task: str, *, image_size: int = 96) -> None:
        check_task(task)
        mw = import_metaworld()
        self.task = task
        mt1 = _benchmark(task)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            self.env = mt1.train_classes[task]()
            self.env.set_task(mt1.train_tasks[0])
        # Fresh placement per reset, drawn from env.seed(s) (setting _last_rand_vec by hand can
        # hang reset()).
        self.env._freeze_rand_vec = False
        self.env.seeded_rand_vec = True
        self.env.model.vis.quality.shadowsize = 0
        self.expert = mw.policies.ENV_POLICY_MAP[task]()
        self.image_size = int(image_size)
        self._renderer: Any = None
        self.obs: npt.NDArray[np.float64] = np.zeros(39)
        self.success = False

    @property
    def dt(self) -> float:
        return float(self.env.dt)

    def reset(self, seed: int) -> npt.NDArray[np.float64]:
        self.env.seed(int(seed))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            obs, _ = self.env.reset()
        self.obs = np.asarray(obs, dtype=np.float64)
        self.success = False
        return self.obs

    def step(self, action: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], bool]:
        """Apply ``action`` (clipped to [-1, 1]); return the observation and success so far."""
        act = np.clip(np.asarray(action, dtype=np.float64).reshape(4), -1.0, 1.0)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            obs, _, _, _, info = self.env.step(act)
        self.obs = np.asarray(obs, dtype=np.float64)
        self.success = self.success or bool(info.get('success', 0.0))
        return self.obs, self.success

    def expert_action(
        self, obs: npt.NDArray[np.float64] | None = None
    ) -> npt.NDArray[np.float64]:
        """The scripted expert's action for the current observation, or for ``obs`` (what it
        would do if it saw that: a source that misreads the object or the goal)."""
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            act = self.expert.get_action(self.obs if obs is None else obs)
        return np.clip(np.asarray(act, dtype=np.float64), -1.0, 1.0)

    def fingers(self) -> npt.NDArray[np.float64]:
        """``[r_close, l_close]``: the finger slide joints (metres)."""
        data = self.env.data
        return np.array([data.joint('r_close').qpos[0], data.joint('l_close').qpos[0]])

    def render(self, camera: str, *, rotate180: bool = False) -> npt.NDArray[np.uint8]:
        """RGB ``uint8 [S, S, 3]`` from the named MuJoCo camera."""
        import mujoco

        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.env.model, self.image_size, self.image_size)
            _OPEN.add(self)
            global _HOOKED
            if not _HOOKED:
                atexit.register(_close_renderers)
                _HOOKED = True
        try:
            self._renderer.update_scene(self.env.data, camera=camera)
        except ValueError as err:
            msg = f'{self.task}: no camera {camera!r} in the Meta-World scene: {err}'
            raise SimError(msg) from err
        img = np.asarray(self._renderer.render(), dtype=np.uint8)
        if rotate180:
            img = img[::-1, ::-1]
        return np.ascontiguousarray(img)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
