"""Training windows over memory-mapped datasets, a resumable mixture sampler and the loader.

A window at step ``t`` of an episode (glossary in ``ptr_core.batch``):

- observation history ``o[t-To+1 .. t]`` (state and every camera; before the episode start the
  first frame repeats), built by ``Preprocessor.observation`` — the same code the node uses;
- action chunk ``a[t .. t+L-1]``, zero-padded past the episode end with ``action_mask`` False;
- the post-action observation ``o[t+Δ]`` with ``future_valid`` (False past the end);
- robot, task, dataset, episode and source ids; per-sample noise for the head.

Several datasets mix with configured ratios. The ``MixtureSampler`` maps the global sample number
``g`` (``g = step · batch + position``) to a window with a counter-based generator, so the data
order is a pure function of ``(seed, step)``: resume restarts at ``step`` and every DDP rank takes
its own residue class of ``g`` without communication.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from bag_tools.dataset import (
    Dataset,
    Episode,
    FeatureStats,
    Manifest,
    RobotEntry,
)
from bag_tools.errors import BagToolsError
from ptr_core import batch as K
from ptr_core.configuration import DataConfig
from ptr_core.errors import ConfigError, PtrError
from ptr_core.layout import unified_layout
from ptr_core.preprocess import Normalizer, Preprocessor, merge_stats

__all__ = [
    'SOURCE_TAG',
    'DataBundle',
    'MixtureSampler',
    'Vocabulary',
    'WindowDataset',
    'WindowIndex',
    'build_data',
    'build_preprocessor',
    'build_vocabulary',
    'index_windows',
    'make_loader',
    'open_datasets',
    'split_episodes',
]

log = logging.getLogger(__name__)

SOURCE_TAG = 'ptr.source'  # episode tag holding a quality/source label (-> SOURCE_ID)
_BLOCK = 4096  # samples per sampler block (one generator per block)


@dataclass(frozen=True)
class Vocabulary:
    """Task and source-tag names; the ids in a batch index these lists."""

    tasks: tuple[str, ...]
    sources: tuple[str, ...]

    def task_id(self, task: str) -> int:
        return self.tasks.index(task) if task in self.tasks else -1

    def source_id(self, tags: Mapping[str, Any]) -> int:
        value = tags.get(SOURCE_TAG)
        return self.sources.index(str(value)) if value is not None and str(value) in self.sources \
            else -1

    def to_json(self) -> dict[str, Any]:
        return {'tasks': list(self.tasks), 'sources': list(self.sources)}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Vocabulary:
        return cls(tuple(obj['tasks']), tuple(obj['sources']))


def open_datasets(paths: Sequence[str | Path]) -> list[Dataset]:
    out = []
    for path in paths:
        try:
            ds = Dataset.open(path)
        except BagToolsError as err:
            raise PtrError(str(err)) from err
        if len(ds) == 0:
            msg = f'{path}: dataset has no episodes'
            raise PtrError(msg)
        out.append(ds)
    return out


def split_episodes(ids: Sequence[str], val_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic train/val split by a hash of the episode id (at least one train episode)."""
    n_val = min(round(len(ids) * val_fraction), len(ids) - 1) if len(ids) > 1 else 0
    ranked = sorted(ids, key=lambda i: (zlib.crc32(i.encode()), i))
    val = set(ranked[:n_val])
    return [i for i in ids if i not in val], [i for i in ids if i in val]


@dataclass
class _EpisodeRef:
    episode: Episode
    robot: str
    dataset_id: int
    episode_index: int
    task_id: int
    source_id: int


class WindowDataset(TorchDataset[dict[str, Tensor]]):
    """Windows of one split over several datasets; indexed by ``(dataset, window, g)`` tuples.

    ``windows[d]`` is an int64 array ``[N_d, 2]`` of (episode ref, t). Per-sample randomness
    (noise, noise level, image shift) comes from ``np.random.default_rng((seed, g))``.
    """

    def __init__(
        self,
        refs: list[_EpisodeRef],
        windows: list[npt.NDArray[np.int64]],
        preprocessor: Preprocessor,
        *,
        chunk_length: int,
        delta: int,
        seed: int,
        image_shift: int = 0,
        defer_uint8: bool = False,
        sample_weights: list[npt.NDArray[np.float64]] | None = None,
    ) -> None:
        self.refs = refs
        self.sample_weights = sample_weights  # per window (data.trust_apply: loss), or None
        self.windows = windows
        self.pre = preprocessor
        self.chunk_length = chunk_length
        self.delta = delta
        self.seed = seed
        self.image_shift = image_shift
        # uint8 images stay uint8 through the workers (4x less IPC / pinned copy); the trainer
        # applies preprocess.finish_images on the device. Off by default: samples are final.
        self.defer_uint8 = defer_uint8

    @property
    def sizes(self) -> list[int]:
        return [len(w) for w in self.windows]

    def __len__(self) -> int:
        return sum(self.sizes)

    def flat_index(self, i: int) -> tuple[int, int, int]:
        """The i-th window in order (for evaluation passes), as a ``(d, w, g)`` key."""
        for d, n in enumerate(self.sizes):
            if i < n:
                return d, i, i
            i -= n
        raise IndexError(i)

    def __getitem__(self, key: tuple[int, int, int]) -> dict[str, Tensor]:  # type: ignore[override]
        d, w, g = key
        ref_i, t = (int(v) for v in self.windows[d][w])
        out = self.sample(ref_i, t, g)
        if self.sample_weights is not None:
            out[K.SAMPLE_WEIGHT] = torch.tensor(self.sample_weights[d][w], dtype=torch.float32)
        return out

    def sample(self, ref_i: int, t: int, g: int) -> dict[str, Tensor]:
        ref = self.refs[ref_i]
        ep, robot = ref.episode, ref.robot
        to, L, n = self.pre.obs_horizon, self.chunk_length, ep.length
        lo = max(0, t - to + 1)
        images = {role: ep.images[role][lo: t + 1] for role in ep.images}
        out = self.pre.observation(ep.state[lo: t + 1], images, robot,
                                   defer_uint8=self.defer_uint8)

        hi = min(n, t + L)
        out[K.ACTION] = torch.zeros(L, self.pre.layout.action_dim)
        out[K.ACTION][: hi - t] = self.pre.action(ep.action[t:hi], robot)
        steps_valid = np.zeros(L, bool)
        steps_valid[: hi - t] = np.asarray(ep.action_valid[t:hi], bool)
        dims = self.pre.layout.action_mask[robot]
        out[K.ACTION_MASK] = torch.from_numpy(steps_valid[:, None] & dims[None, :])

        tf = t + self.delta
        valid = tf < n and bool(ep.state_valid[tf])
        tf = min(tf, n - 1)
        future = self.pre.future(ep.state[tf], {r: ep.images[r][tf] for r in ep.images}, robot,
                                 defer_uint8=self.defer_uint8)
        out.update(future)
        out[K.FUTURE_VALID] = torch.tensor(valid)

        out[K.TASK_ID] = torch.tensor(ref.task_id, dtype=torch.long)
        out[K.DATASET_ID] = torch.tensor(ref.dataset_id, dtype=torch.long)
        out[K.EPISODE_ID] = torch.tensor(ref.episode_index, dtype=torch.long)
        out[K.FRAME_INDEX] = torch.tensor(t, dtype=torch.long)
        out[K.SOURCE_ID] = torch.tensor(ref.source_id, dtype=torch.long)
        out[K.SAMPLE_INDEX] = torch.tensor(g, dtype=torch.long)

        rng = np.random.default_rng((self.seed, g))
        out[K.NOISE] = torch.from_numpy(
            rng.standard_normal((L, self.pre.layout.action_dim), dtype=np.float32)
        )
        out[K.NOISE_LEVEL] = torch.tensor(rng.random(dtype=np.float32))
        if self.image_shift > 0:
            for role in self.pre.layout.camera_roles:
                key = K.obs_image_key(role)
                out[key] = _random_shift(out[key], self.image_shift, rng)
        return out


def _random_shift(frames: Tensor, pad: int, rng: np.random.Generator) -> Tensor:
    """Random-crop augmentation: replicate-pad by ``pad`` and crop back at a random offset
    (one offset for the whole history of a camera). Done by index clamping, so any dtype."""
    _, _, h, w = frames.shape
    dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, size=2))
    rows = (torch.arange(h) + dy - pad).clamp_(0, h - 1)
    cols = (torch.arange(w) + dx - pad).clamp_(0, w - 1)
    return frames.index_select(2, rows).index_select(3, cols).contiguous()


class MixtureSampler(Sampler[tuple[int, int, int]]):
    """Infinite stream of ``(dataset, window, g)`` for one rank, mixing datasets by ``weights``.

    The global stream assigns sample number ``g`` to rank ``g % world``; a step's global batch
    is ``g ∈ [step·B, (step+1)·B)``. ``start_step`` resumes exactly where a run stopped.
    ``window_weights`` (per dataset, one weight per window, or None for uniform: every window
    weighs 1): a window is drawn with its uniform probability times its weight (trust
    sampling; same cost per draw), so a dataset's share is its ``weights`` entry times its mean
    window weight — the same distribution that per-sample loss weights give in expectation, and
    a dataset trusted nowhere is not drawn at all.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float],
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        start_step: int = 0,
        window_weights: Sequence[npt.NDArray[np.float64] | None] | None = None,
    ) -> None:
        keep = [i for i, n in enumerate(sizes) if n > 0]
        if not keep:
            msg = 'no training windows: every dataset is empty after the validation split'
            raise PtrError(msg)
        self.ids = np.asarray(keep, np.int64)
        self.sizes = np.asarray([sizes[i] for i in keep], np.int64)
        p = np.asarray([weights[i] for i in keep], np.float64)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world = world
        self.start_step = start_step
        self._block: tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        self._cdf: list[npt.NDArray[np.float64] | None] = [None] * len(keep)
        for j, i in enumerate(keep):
            w = None if window_weights is None else window_weights[i]
            if w is None:
                continue
            w = np.asarray(w, np.float64)
            if len(w) != sizes[i] or not np.all(np.isfinite(w)) or not np.all(w >= 0):
                msg = f'dataset {i}: window weights must be {sizes[i]} finite non-negative values'
                raise PtrError(msg)
            p[j] *= float(w.mean())
            if w.sum() > 0:
                self._cdf[j] = np.cumsum(w) / w.sum()
        if not p.sum() > 0:
            msg = ('window weights: every window of every dataset weighs 0 (trust 0 everywhere): '
                   'nothing to draw')
            raise PtrError(msg)
        self.p = p / p.sum()

    def _draw(self, g: int) -> tuple[int, int]:
        b = g // _BLOCK
        if self._block is None or self._block[0] != b:
            rng = np.random.default_rng((self.seed, 7919, b))
            which = rng.choice(len(self.ids), size=_BLOCK, p=self.p)
            u = rng.random(_BLOCK)
            win = np.minimum((u * self.sizes[which]).astype(np.int64), self.sizes[which] - 1)
            for j, cdf in enumerate(self._cdf):
                if cdf is not None:
                    sel = which == j
                    win[sel] = np.minimum(np.searchsorted(cdf, u[sel], side='right'),
                                          len(cdf) - 1)
            self._block = (b, self.ids[which], win)
        i = g % _BLOCK
        return int(self._block[1][i]), int(self._block[2][i])

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        g = self.start_step * self.batch_size + self.rank
        while True:
            d, w = self._draw(g)
            yield d, w, g
            g += self.world


@dataclass
class DataBundle:
    """The training data of a run: preprocessing, vocabularies and the two splits."""

    preprocessor: Preprocessor
    vocab: Vocabulary
    robots: dict[str, RobotEntry]
    train: WindowDataset
    val: WindowDataset | None
    weights: list[float] = field(default_factory=list)
    # per dataset, each training window's draw weight (data.trust, trust_apply: sampling); None:
    # uniform draws. MixtureSampler takes it.
    window_weights: list[npt.NDArray[np.float64]] | None = None


def _windows(ep: Episode) -> npt.NDArray[np.int64]:
    ok = np.asarray(ep.action_valid, bool) & np.asarray(ep.state_valid, bool)
    return np.flatnonzero(ok).astype(np.int64)


def build_data(
    config: DataConfig,
    *,
    chunk_length: int,
    seed: int,
    preprocessor: Preprocessor | None = None,
    vocab: Vocabulary | None = None,
    robots: Mapping[str, RobotEntry] | None = None,
) -> DataBundle:
    """Open ``config.datasets``, split episodes, and index every window (its action chunk
    ``chunk_length`` steps: the policy's ``policy.chunk_length``).

    ``preprocessor``/``vocab``/``robots`` come from a checkpoint when evaluating or post-training
    with its normalization; by default they are computed from the datasets' manifests.
    """
    if not config.datasets:
        msg = 'data.datasets is empty; add a dataset (e.g. --set data.datasets=[PATH])'
        raise ConfigError(msg)
    datasets = open_datasets([spec.path for spec in config.datasets])
    manifests = [ds.manifest for ds in datasets]
    all_robots: dict[str, RobotEntry] = dict(robots or {})
    for m in manifests:
        for name, entry in m['robots'].items():
            all_robots.setdefault(name, entry)
    if preprocessor is None:
        preprocessor = build_preprocessor(config, manifests, all_robots)
    if vocab is None:
        vocab = build_vocabulary(manifests)
    index = index_windows(datasets, preprocessor, vocab, val_fraction=config.val_fraction)

    def make(windows: list[npt.NDArray[np.int64]], shift: int) -> WindowDataset:
        return WindowDataset(
            index.refs, windows, preprocessor, chunk_length=chunk_length,
            delta=config.delta(chunk_length), seed=seed, image_shift=shift,
        )

    train = make(index.train, config.image_shift)
    val = make(index.val, 0) if sum(len(w) for w in index.val) else None
    log.info('data: %d train windows, %d val windows over %d dataset(s)', len(train),
             0 if val is None else len(val), len(datasets))
    bundle = DataBundle(preprocessor, vocab, all_robots, train, val,
                        [spec.weight for spec in config.datasets])
    if config.trust is not None:  # trust scored before training: a property of the data
        from ptr_core.weighting.trust.windows import window_trust

        trust = window_trust(config.trust, [spec.path for spec in config.datasets], train.refs,
                             train.windows, level=config.trust_level)
        if config.trust_apply == 'sampling':
            bundle.window_weights = trust
        else:
            train.sample_weights = trust
    return bundle


def build_preprocessor(
    config: DataConfig, manifests: Sequence[Manifest],
    robots: Mapping[str, RobotEntry],
) -> Preprocessor:
    """The unified layout of ``manifests`` and a normalizer from their merged statistics."""
    layout = unified_layout(manifests)
    stats: dict[str, dict[str, FeatureStats]] = {}
    for robot in layout.robots:
        stats[robot] = {}
        for feat in ('state', 'action'):
            parts = [m['stats'][robot][feat] for m in manifests
                     if feat in m['stats'].get(robot, {})]
            if parts:
                stats[robot][feat] = merge_stats(parts)
    normalizer = Normalizer.from_stats(config.normalization, stats, robots)
    return Preprocessor.build(
        layout, normalizer, robots, obs_horizon=config.obs_horizon, depth_max=config.depth_max,
    )


def build_vocabulary(manifests: Sequence[Manifest]) -> Vocabulary:
    """Every task text and source tag of the episodes in ``manifests``, sorted."""
    tasks = sorted({e['task'] for m in manifests for e in m['episodes']})
    sources = sorted({str(e['tags'][SOURCE_TAG]) for m in manifests for e in m['episodes']
                      if SOURCE_TAG in e.get('tags', {})})
    return Vocabulary(tuple(tasks), tuple(sources))


@dataclass
class WindowIndex:
    """Every episode of a run (``refs``) and, per dataset, the ``[N_d, 2]`` (ref, t) windows of
    each split."""

    refs: list[_EpisodeRef]
    train: list[npt.NDArray[np.int64]]
    val: list[npt.NDArray[np.int64]]


def index_windows(
    datasets: Sequence[Dataset], preprocessor: Preprocessor, vocab: Vocabulary, *,
    val_fraction: float,
) -> WindowIndex:
    """Split each dataset's episodes into train/val and list every valid window of each."""
    index = WindowIndex([], [], [])
    for d, ds in enumerate(datasets):
        unknown = set(ds.manifest['robots']) - set(preprocessor.layout.robots)
        if unknown:
            msg = (f"{ds.root}: robots {sorted(unknown)} are not in the policy's layout "
                   f'{list(preprocessor.layout.robots)}')
            raise PtrError(msg)
        train_ids, val_ids = split_episodes(ds.episode_ids, val_fraction)
        entries = {e['id']: e for e in ds.manifest['episodes']}
        for windows, ids in ((index.train, train_ids), (index.val, val_ids)):
            chunks: list[npt.NDArray[np.int64]] = []
            for eid in ids:
                try:
                    ep = ds.episode(eid)
                except BagToolsError as err:
                    raise PtrError(str(err)) from err
                index.refs.append(_EpisodeRef(
                    ep, ep.robot, d, len(index.refs), vocab.task_id(entries[eid]['task']),
                    vocab.source_id(entries[eid].get('tags', {})),
                ))
                ts = _windows(ep)
                chunks.append(np.stack([np.full_like(ts, len(index.refs) - 1), ts], axis=1))
            windows.append(np.concatenate(chunks) if chunks else np.zeros((0, 2), np.int64))
    return index


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(
    dataset: WindowDataset,
    sampler: Sampler[Any],
    *,
    batch_size: int,
    config: DataConfig,
    device: torch.device,
) -> DataLoader[dict[str, Tensor]]:
    """A ``DataLoader`` that keeps an accelerator fed: workers, pinned memory, prefetching."""
    workers = config.num_workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=config.pin_memory and device.type == 'cuda',
        persistent_workers=config.persistent_workers and workers > 0,
        prefetch_factor=config.prefetch_factor if workers > 0 else None,
        worker_init_fn=_worker_init if workers > 0 else None,
        drop_last=True,
    )
