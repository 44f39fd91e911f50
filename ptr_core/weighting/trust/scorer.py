"""The consequence scorer: does the recorded action chunk explain what happened next?

``ConsequenceScorer`` reads the frozen context ``h``, the observed consequence ``y`` and ``C``
candidate chunks ``a_c`` (the recorded one first)::

    logit_c = MLP(ctx(h) + cons(y) + act(a_c))        # [N, C]
    T       = log softmax(logit)_0 + log C            # > 0: the recorded chunk is identified

Negatives live in action space and are hard by construction (``make_candidates``): the same
episode's chunk shifted by ±k steps (a delayed label is exactly such a shift), the chunks of the
nearest-state windows of *other* episodes (what an expert does in that state), small Gaussian
perturbations of the recorded chunk, and random other chunks.

``fit_scorer`` trains one copy on a set of windows; ``score_windows`` returns ``T`` per window
averaged over ``score_draws`` fixed candidate draws. ``fit_regressor``/``regression_error`` are
the small MLP probes behind the second signal (out-of-fold behaviour-cloning loss) and the
inverse-dynamics baseline.

Scale: every model trains and scores on ``feats.device`` (``ptr score --device``) while the
windows stay on the CPU, where the seeded candidate draws are made, so CPU results do not depend
on the device code. The nearest-state search never holds ``N × N`` distances
(``nearest_state_neighbours``: exact in blocks, an inverted-file index on a CPU above
``EXACT_WINDOWS``), and the updates per copy grow with the data (``training_steps``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ptr_core.weighting.trust.config import TrustConfig
from ptr_core.weighting.trust.features import WindowFeatures

__all__ = [
    'ConsequenceScorer',
    'approximate_neighbours',
    'exact_neighbours',
    'fit_regressor',
    'fit_scorer',
    'make_candidates',
    'nearest_state_neighbours',
    'regression_error',
    'score_windows',
    'training_steps',
]

# The nearest-state search compares QUERY_BLOCK windows with KEY_BLOCK windows at a time
# (float32 distances: 128 MiB per block, whatever N).
QUERY_BLOCK = 2048
KEY_BLOCK = 16384
# Above EXACT_WINDOWS windows, a CPU search uses the inverted-file index: each window searches
# the IVF_PROBES lists nearest its own (k-means on KMEANS_SAMPLE states per list).
EXACT_WINDOWS = 65_536
IVF_PROBES = 16
KMEANS_SAMPLE = 32
# Training steps grow with the data: ``steps`` covers up to STEP_WINDOWS training windows (200
# steps of 256: what the defaults were tuned on, every set of the benchmark's presets), a
# larger set gets proportionally more (one pass over its windows at the defaults), at most
# MAX_STEPS (the time bound: 500k windows take 1300 steps per copy).
STEP_WINDOWS = 51_200
MAX_STEPS = 10_000

log = logging.getLogger(__name__)


class ConsequenceScorer(nn.Module):
    def __init__(self, h_dim: int, y_dim: int, a_dim: int, hidden: int) -> None:
        super().__init__()
        self.ctx = nn.Sequential(nn.LayerNorm(h_dim), nn.Linear(h_dim, hidden))
        self.cons = nn.Sequential(nn.Linear(y_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.act = nn.Sequential(nn.Linear(a_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.head = nn.Sequential(nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                  nn.Linear(hidden, 1))

    def forward(self, h: Tensor, y: Tensor, cands: Tensor) -> Tensor:  # type: ignore[override]
        """``h [N, Dh]``, ``y [N, Dy]``, ``cands [N, C, A]`` → logits ``[N, C]``."""
        z = self.ctx(h) + self.cons(y)
        out: Tensor = self.head(z[:, None, :] + self.act(cands)).squeeze(-1)
        return out


def nearest_state_neighbours(
    feats: WindowFeatures, k: int, *, device: torch.device | None = None,
) -> Tensor:
    """``[N, k]`` rows of the nearest windows by current state, from other episodes only
    (returned on the CPU, where the candidate draws index them), searched on ``device``
    (default: ``feats.device``).

    The rule: exact (``exact_neighbours``) on a CUDA device and for up to ``EXACT_WINDOWS``
    windows; on the CPU above that, the inverted-file index (``approximate_neighbours``,
    recall@16 measured by ``bench/bench_score.py``): the exact search is ``O(N²)`` (1.5 CPU-h
    at 500k windows, measured on 40k), the index ``O(N^1.5)``."""
    dev = feats.device if device is None else torch.device(device)
    k = max(1, min(k, feats.n - 1))
    if dev.type == 'cuda' or feats.n <= EXACT_WINDOWS:
        return exact_neighbours(feats, k, device=dev)
    return approximate_neighbours(feats, k, device=dev)


def exact_neighbours(
    feats: WindowFeatures, k: int, *, device: torch.device | None = None,
    queries: Tensor | None = None, block: int = QUERY_BLOCK, key_block: int = KEY_BLOCK,
) -> Tensor:
    """``[Q, k]`` exact nearest other-episode windows of ``queries`` (default: every window).

    Blocked: ``block`` queries against ``key_block`` keys at a time, each block's top ``k``
    merged into a running top ``k``, so the memory is ``O(block · key_block)`` whatever ``N``
    (never ``N × N``); the time is ``O(Q · N · Ds)``."""
    dev = feats.device if device is None else torch.device(device)
    n = feats.n
    queries = torch.arange(n) if queries is None else queries
    k = max(1, min(k, n - 1))
    out = torch.empty(len(queries), k, dtype=torch.long)
    x, episode = feats.state.to(dev), feats.episode.to(dev)
    for start in range(0, len(queries), block):
        rows = queries[start: start + block].to(dev)
        q, q_ep = x[rows], episode[rows, None]
        best_d: Tensor | None = None
        best_i = torch.empty(0, dtype=torch.long, device=dev)
        for key in range(0, n, key_block):
            d = torch.cdist(q, x[key: key + key_block])  # [b, key_block]
            d.masked_fill_(q_ep == episode[None, key: key + key_block], math.inf)
            top = d.topk(min(k, d.shape[1]), dim=1, largest=False)
            if best_d is None:  # one key block (every set up to key_block windows): as is
                best_d, best_i = top.values, top.indices
                continue
            both_d = torch.cat([best_d, top.values], dim=1)
            both_i = torch.cat([best_i, top.indices + key], dim=1)
            merged = both_d.topk(k, dim=1, largest=False)
            best_d, best_i = merged.values, both_i.gather(1, merged.indices)
        out[start: start + block] = best_i.cpu()
    return out


def approximate_neighbours(
    feats: WindowFeatures, k: int, *, device: torch.device | None = None,
    probes: int = IVF_PROBES, seed: int = 0,
) -> Tensor:
    """``[N, k]`` approximate nearest other-episode windows: an inverted-file index.

    The states are clustered into ``√N`` lists (k-means on a seeded sample); the windows of
    each list search the windows of the ``probes`` lists whose centres are nearest their own
    list's centre (``O(N^1.5 · probes)`` distances, memory one list's block). A window whose
    probed lists hold fewer than ``k`` windows of other episodes is searched exactly."""
    dev = feats.device if device is None else torch.device(device)
    x, episode = feats.state.to(dev), feats.episode.to(dev)
    n = feats.n
    centres = _kmeans(x, max(1, round(math.sqrt(n))), seed=seed)
    assign = _nearest_centre(x, centres)
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=len(centres)).cpu()
    starts = torch.cumsum(counts, 0) - counts
    members = [order[int(a): int(a) + int(c)] for a, c in zip(starts, counts)]
    probe = torch.cdist(centres, centres).topk(min(probes, len(centres)), dim=1,
                                               largest=False).indices.cpu()
    out = torch.empty(n, k, dtype=torch.long)
    redo = []
    for c, rows in enumerate(members):
        if not len(rows):
            continue
        keys = torch.cat([members[int(p)] for p in probe[c]])
        d = torch.cdist(x[rows], x[keys])
        d.masked_fill_(episode[rows, None] == episode[None, keys], math.inf)
        if len(keys) < k:
            redo.append(rows)
            continue
        top = d.topk(k, dim=1, largest=False)
        out[rows.cpu()] = keys[top.indices].cpu()
        short = ~torch.isfinite(top.values[:, -1])
        if bool(short.any()):
            redo.append(rows[short])
    if redo:
        again = torch.cat(redo).cpu()
        out[again] = exact_neighbours(feats, k, device=dev, queries=again)
    return out


def _kmeans(x: Tensor, lists: int, *, seed: int, iters: int = 10) -> Tensor:
    """``[lists, Ds]`` k-means centres of a seeded sample of ``x`` (``KMEANS_SAMPLE`` points
    per list); an emptied list restarts at a sampled point."""
    gen = torch.Generator().manual_seed(seed)
    sample = x[torch.randperm(len(x), generator=gen)[: KMEANS_SAMPLE * lists].to(x.device)]
    centres = sample[torch.randperm(len(sample), generator=gen)[:lists].to(x.device)].clone()
    for _ in range(iters):
        assign = _nearest_centre(sample, centres)
        sums = torch.zeros_like(centres).index_add_(0, assign, sample)
        counts = torch.bincount(assign, minlength=len(centres)).to(x.dtype)
        empty = counts == 0
        centres = torch.where(empty[:, None], centres, sums / counts.clamp_min(1)[:, None])
        if bool(empty.any()):
            fresh = torch.randint(len(sample), (int(empty.sum()),), generator=gen)
            centres[empty] = sample[fresh.to(x.device)]
    return centres


def _nearest_centre(x: Tensor, centres: Tensor, block: int = KEY_BLOCK) -> Tensor:
    """``[N]`` index of each row's nearest centre (blocked over the rows)."""
    return torch.cat([torch.cdist(x[i: i + block], centres).argmin(dim=1)
                      for i in range(0, len(x), block)])


def make_candidates(
    feats: WindowFeatures, rows: Tensor, neighbours: Tensor, config: TrustConfig,
    gen: torch.Generator, pool: Tensor | None = None,
) -> Tensor:
    """``[B, C, L·Da]``: the recorded chunk of each row, then its negatives."""
    b = len(rows)
    pos = feats.action[rows]
    parts = [pos[:, None]]
    if config.shifted:
        shifts = torch.as_tensor(config.shifts)
        k = shifts[torch.randint(len(shifts), (b, config.shifted), generator=gen)]
        sign = torch.randint(0, 2, (b, config.shifted), generator=gen) * 2 - 1
        frame = feats.frame[rows][:, None]
        length = feats.row_length[rows][:, None]
        target = frame + sign * k
        # stay inside the episode: flip the sign where the shift would leave it
        flip = (target < 0) | (target > length - 1)
        target = torch.where(flip, frame - sign * k, target)
        parts.append(feats.chunks_at(rows[:, None].expand(-1, config.shifted), target))
    if config.neighbours:
        pick = torch.randint(neighbours.shape[1], (b, config.neighbours), generator=gen)
        nb = neighbours[rows][torch.arange(b)[:, None], pick]
        parts.append(_masked_like(feats, feats.action[nb], rows))
    if config.perturbed:
        sig = torch.as_tensor(config.perturb_sigma)
        s = sig[torch.randint(len(sig), (b, config.perturbed), generator=gen)]
        noise = torch.randn(b, config.perturbed, pos.shape[1], generator=gen) * s[..., None]
        parts.append(_masked_like(feats, pos[:, None] + noise, rows))
    if config.random:
        src = pool if pool is not None else torch.arange(feats.n)
        other = src[torch.randint(len(src), (b, config.random), generator=gen)]
        parts.append(_masked_like(feats, feats.action[other], rows))
    return torch.cat(parts, dim=1)


def _masked_like(feats: WindowFeatures, chunks: Tensor, rows: Tensor) -> Tensor:
    """Apply each row's own step/dim mask to its candidate chunks ``[B, M, L·Da]`` so that
    padding never tells the recorded chunk apart."""
    return chunks * feats.chunk_mask[rows][:, None, :].to(chunks.dtype)


def training_steps(config: TrustConfig, windows: int) -> int:
    """Updates of one scorer copy (or probe) trained on ``windows`` windows: ``config.steps``
    up to ``STEP_WINDOWS`` windows, proportionally more above (at most ``MAX_STEPS``; never
    fewer than ``config.steps``)."""
    grown = math.ceil(config.steps * windows / STEP_WINDOWS)
    return max(config.steps, min(grown, MAX_STEPS))


def fit_scorer(
    feats: WindowFeatures, train_rows: Tensor, neighbours: Tensor, config: TrustConfig, *,
    seed: int, weights: Tensor | None = None,
) -> ConsequenceScorer:
    """Train one scorer copy on ``train_rows`` (InfoNCE, the recorded chunk at index 0) for
    ``training_steps`` updates, on ``feats.device`` (the windows stay on the CPU, where the
    seeded candidate draws are made; each batch moves to the device).

    ``weights`` (one per window of ``feats``): training windows are drawn with these
    probabilities (a refinement round learns the consequence model from the episodes the last
    round trusted); negatives still come from every training window."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = feats.device
    model = ConsequenceScorer(feats.h.shape[1], feats.consequence.shape[1],
                              feats.action.shape[1], config.hidden).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rows_all = train_rows[feats.has_next[train_rows]]
    steps = training_steps(config, len(rows_all))
    if steps > config.steps:
        log.info('trust scorer: %d steps for %d training windows (steps %d up to %d windows)',
                 steps, len(rows_all), config.steps, STEP_WINDOWS)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    target = torch.zeros(config.batch_size, dtype=torch.long, device=dev)
    model.train()
    batches = _batches(rows_all, config, gen, steps=steps) if weights is None else \
        _weighted_batches(rows_all, weights[rows_all], config, gen, steps=steps)
    for rows in batches:
        cands = make_candidates(feats, rows, neighbours, config, gen, pool=rows_all)
        logits = model(feats.h[rows].to(dev), feats.consequence[rows].to(dev), cands.to(dev))
        loss = nn.functional.cross_entropy(logits, target[: len(rows)])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
    model.eval()
    return model


def _batches(rows: Tensor, config: TrustConfig, gen: torch.Generator, *,
             steps: int | None = None) -> Iterator[Tensor]:
    """``steps`` (default ``config.steps``) mini-batches of ``rows``, reshuffled after every
    pass."""
    steps = config.steps if steps is None else steps
    done = 0
    while done < steps:
        order = rows[torch.randperm(len(rows), generator=gen)]
        for start in range(0, len(order), config.batch_size):
            if done >= steps:
                return
            yield order[start: start + config.batch_size]
            done += 1


def _weighted_batches(rows: Tensor, weights: Tensor, config: TrustConfig,
                      gen: torch.Generator, *, steps: int | None = None) -> Iterator[Tensor]:
    """``steps`` (default ``config.steps``) mini-batches of ``rows`` drawn with probability
    ∝ ``weights``."""
    steps = config.steps if steps is None else steps
    p = weights.double().clamp_min(0)
    p = p / p.sum() if float(p.sum()) > 0 else torch.full_like(p, 1.0 / len(p))
    size = min(config.batch_size, len(rows))
    for _ in range(steps):
        yield rows[torch.multinomial(p, size, replacement=True, generator=gen)]


@torch.no_grad()
def score_windows(
    model: ConsequenceScorer, feats: WindowFeatures, rows: Tensor, neighbours: Tensor,
    config: TrustConfig, *, seed: int,
) -> Tensor:
    """``T = log p(recorded) + log C`` per row of ``rows``, mean over ``score_draws`` draws
    (computed on ``feats.device``, returned on the CPU)."""
    gen = torch.Generator().manual_seed(seed)
    dev = feats.device
    total = torch.zeros(len(rows), device=dev)
    for _ in range(config.score_draws):
        for start in range(0, len(rows), 4 * config.batch_size):
            part = rows[start: start + 4 * config.batch_size]
            cands = make_candidates(feats, part, neighbours, config, gen)
            logp = model(feats.h[part].to(dev), feats.consequence[part].to(dev),
                         cands.to(dev)).log_softmax(dim=1)
            total[start: start + len(part)] += logp[:, 0]
    return (total / config.score_draws + math.log(config.candidates)).cpu()


class _MLP(nn.Module):
    def __init__(self, d_in: int, d_out: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, d_out))

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        out: Tensor = self.net(x)
        return out


def fit_regressor(
    x: Tensor, y: Tensor, mask: Tensor, config: TrustConfig, *, seed: int,
    device: torch.device | None = None,
) -> nn.Module:
    """A 2-layer MLP ``x → y`` trained with masked MSE (the probes: BC loss, inverse dynamics)
    for ``training_steps`` updates on ``device`` (default: ``x``'s)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    dev = x.device if device is None else device
    model = _MLP(x.shape[1], y.shape[1], config.hidden).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    m = mask.to(y.dtype)
    steps = training_steps(config, len(x))
    for i in _batches(torch.arange(len(x)), config, gen, steps=steps):
        xi, yi, mi = x[i].to(dev), y[i].to(dev), m[i].to(dev)
        err = ((model(xi) - yi) ** 2 * mi).sum() / mi.sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        err.backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def regression_error(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor, *,
                     device: torch.device | None = None, block: int = 65536) -> Tensor:
    """Per-row masked mean squared error ``[N]`` (computed on ``device`` in blocks of rows,
    returned on the CPU)."""
    dev = x.device if device is None else device
    out = []
    for start in range(0, len(x), block):
        xi, yi = x[start: start + block].to(dev), y[start: start + block].to(dev)
        m = mask[start: start + block].to(dev, yi.dtype)
        pred: Tensor = model(xi)
        out.append((((pred - yi) ** 2 * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)).cpu())
    return torch.cat(out) if out else torch.zeros(0)
