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
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ptr_core.weighting.trust.config import TrustConfig
from ptr_core.weighting.trust.features import WindowFeatures

__all__ = [
    'ConsequenceScorer',
    'fit_regressor',
    'fit_scorer',
    'make_candidates',
    'nearest_state_neighbours',
    'regression_error',
    'score_windows',
]


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


def nearest_state_neighbours(feats: WindowFeatures, k: int, *, block: int = 2048) -> Tensor:
    """``[N, k]`` rows of the nearest windows by current state, from other episodes only."""
    n = feats.n
    k = max(1, min(k, n - 1))
    out = torch.empty(n, k, dtype=torch.long)
    x = feats.state
    for start in range(0, n, block):
        d = torch.cdist(x[start: start + block], x)  # [b, N]
        same = feats.episode[start: start + block, None] == feats.episode[None, :]
        d = d.masked_fill(same, math.inf)
        out[start: start + block] = d.topk(k, dim=1, largest=False).indices
    return out


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


def fit_scorer(
    feats: WindowFeatures, train_rows: Tensor, neighbours: Tensor, config: TrustConfig, *,
    seed: int, weights: Tensor | None = None,
) -> ConsequenceScorer:
    """Train one scorer copy on ``train_rows`` (InfoNCE, the recorded chunk at index 0).

    ``weights`` (one per window of ``feats``): training windows are drawn with these
    probabilities (a refinement round learns the consequence model from the episodes the last
    round trusted); negatives still come from every training window."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = ConsequenceScorer(feats.h.shape[1], feats.consequence.shape[1],
                              feats.action.shape[1], config.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    rows_all = train_rows[feats.has_next[train_rows]]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    target = torch.zeros(config.batch_size, dtype=torch.long)
    model.train()
    batches = _batches(rows_all, config, gen) if weights is None else \
        _weighted_batches(rows_all, weights[rows_all], config, gen)
    for rows in batches:
        cands = make_candidates(feats, rows, neighbours, config, gen, pool=rows_all)
        logits = model(feats.h[rows], feats.consequence[rows], cands)
        loss = nn.functional.cross_entropy(logits, target[: len(rows)])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
    model.eval()
    return model


def _batches(rows: Tensor, config: TrustConfig, gen: torch.Generator) -> Iterator[Tensor]:
    """``config.steps`` mini-batches of ``rows``, reshuffled after every pass."""
    done = 0
    while done < config.steps:
        order = rows[torch.randperm(len(rows), generator=gen)]
        for start in range(0, len(order), config.batch_size):
            if done >= config.steps:
                return
            yield order[start: start + config.batch_size]
            done += 1


def _weighted_batches(rows: Tensor, weights: Tensor, config: TrustConfig,
                      gen: torch.Generator) -> Iterator[Tensor]:
    """``config.steps`` mini-batches of ``rows`` drawn with probability ∝ ``weights``."""
    p = weights.double().clamp_min(0)
    p = p / p.sum() if float(p.sum()) > 0 else torch.full_like(p, 1.0 / len(p))
    size = min(config.batch_size, len(rows))
    for _ in range(config.steps):
        yield rows[torch.multinomial(p, size, replacement=True, generator=gen)]


@torch.no_grad()
def score_windows(
    model: ConsequenceScorer, feats: WindowFeatures, rows: Tensor, neighbours: Tensor,
    config: TrustConfig, *, seed: int,
) -> Tensor:
    """``T = log p(recorded) + log C`` per row of ``rows``, mean over ``score_draws`` draws."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(rows))
    for _ in range(config.score_draws):
        for start in range(0, len(rows), 4 * config.batch_size):
            part = rows[start: start + 4 * config.batch_size]
            cands = make_candidates(feats, part, neighbours, config, gen)
            logp = model(feats.h[part], feats.consequence[part], cands).log_softmax(dim=1)
            total[start: start + len(part)] += logp[:, 0]
    return total / config.score_draws + math.log(config.candidates)


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
) -> nn.Module:
    """A 2-layer MLP ``x → y`` trained with masked MSE (the probes: BC loss, inverse dynamics)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _MLP(x.shape[1], y.shape[1], config.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    m = mask.to(y.dtype)
    for i in _batches(torch.arange(len(x)), config, gen):
        err = ((model(x[i]) - y[i]) ** 2 * m[i]).sum() / m[i].sum().clamp_min(1.0)
        opt.zero_grad(set_to_none=True)
        err.backward()  # type: ignore[no-untyped-call]
        opt.step()
    model.eval()
    return model


@torch.no_grad()
def regression_error(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Per-row masked mean squared error ``[N]``."""
    m = mask.to(y.dtype)
    pred: Tensor = model(x)
    return ((pred - y) ** 2 * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
