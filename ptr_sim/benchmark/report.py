"""Stage 5, output: ``results.md`` and the plots (``success.png``, ``weights_by_source.png``,
``diagnostics.png``, ``trust.png``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ptr_sim.benchmark.cells import _json, _metrics

log = logging.getLogger('ptr_sim.benchmark')


def _fmt(mean: float, std: float) -> str:
    return 'n/a' if np.isnan(mean) else f'{mean:.2f} ± {std:.2f}'


def _split(summary: dict[str, Any]) -> str:
    """Which goals a table's numbers are on: ``dev`` (for choosing) or ``test`` (to report)."""
    return str(summary.get('split') or (summary.get('config') or {}).get('split') or 'dev')


def _protocol(summary: dict[str, Any]) -> list[str]:
    """The report's title and what its numbers are: which goals, which recording rule."""
    cfg, split = summary['config'], _split(summary)
    return [
        f'# ptr benchmark `{cfg["name"]}` — **{split}** goals', '',
        f'Every success rate below is on the **{split}** split of the held-out goals ('
        + ('for choosing methods and defaults; not a reported result'
           if split == 'dev' else 'the reported numbers; nothing was chosen on them')
        + '); each seed has its own recording and base. '
        + ('Every episode recorded to a fixed horizon of '
           f'{cfg.get("record_max_steps")} steps (length carries nothing).'
           if cfg.get('fixed_horizon', False) else
           'Episodes end 10 steps after success: length carries success.'), '']


def markdown(summary: dict[str, Any]) -> str:
    cfg = summary['config']
    methods = [m['name'] for m in cfg['methods']]
    split = _split(summary)
    lines = [
        *_protocol(summary),
        f'Target tasks {", ".join(cfg["tasks"])}; mix {cfg["mix"]} per task '
        f'({summary["degraded_share"]:.0%} degraded or low-attribution); base pretrained on '
        f'{", ".join(cfg["pretrain_tasks"]) or "nothing"}; {cfg["posttrain_steps"]} post-training '
        f'steps; {len(cfg["seeds"])} seeds; {cfg["eval_episodes"]} held-out goals per cell; '
        f'{"image" if cfg["images"] else "state"} observations.'
        + ''.join(f' Mixed data `{name}`: {mix}.'
                  for name, mix in (cfg.get('mixes') or {}).items())
        + (f' Clean (`control`): {cfg["control_mix"]}.' if cfg.get('control_mix') else ''),
        '',
        f'## Success rate (mean ± std over seeds; {split} goals)', '',
        '| task | data | head | ' + ' | '.join(methods) + ' |',
        '|---|---|---|' + '---|' * len(methods),
    ]
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    n_seeds = len(cfg['seeds'])
    for t in summary['table']:
        partial = f' (n={t["seeds"]})' if t['seeds'] < n_seeds else ''
        rows.setdefault((t['task'], t['data'], t['head']), {})[t['method']] = _fmt(
            t['success_mean'], t['success_std']) + partial
    for (task, data, head), by in rows.items():
        lines.append(f'| {task} | {data} | {head} | '
                     + ' | '.join(by.get(m, '—') for m in methods) + ' |')
    wt = summary['weights_by_source']
    if wt:
        sources = sorted({s for by in wt.values() for s in by})
        lines += ['', '## Mean weight per source (mixed data, second half of training)', '',
                  '| method | ' + ' | '.join(sources) + ' |', '|---|' + '---|' * len(sources)]
        for m, by in wt.items():
            lines.append(f'| {m} | ' + ' | '.join(
                _fmt(*by[s]) if s in by else '—' for s in sources) + ' |')
    acc = [t for t in summary['table'] if not np.isnan(t['nce_acc'])]
    if acc:
        lines += ['', '## PTR diagnostics', '',
                  '| task | data | head | method | identification acc | samples/s |',
                  '|---|---|---|---|---|---|']
        for t in acc:
            lines.append(f'| {t["task"]} | {t["data"]} | {t["head"]} | {t["method"]} | '
                         f'{t["nce_acc"]:.2f} | {t["samples_per_s"]:.0f} |')
    if summary['verdicts']:
        lines += ['', '## PTR vs uniform (margin > 1 std over seeds?)', '']
        for v in summary['verdicts']:
            lines.append(f'- {v["task"]} {v.get("data", "mix")} {v["head"]} {v["method"]}: '
                         f'{v["margin"]:+.2f} '
                         f'(std {v["std"]:.2f}) → '
                         f'{"beats uniform" if v["beats_uniform"] else "no clear win"}')
    lines += _markdown_trust(summary)
    timings = summary.get('timings') or {}
    if timings:
        lines += ['', 'Wall time: ' + ', '.join(f'{k[:-2]} {v / 60:.1f} min'
                                                 for k, v in timings.items())]
    return '\n'.join(lines) + '\n'


def _markdown_trust(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    paired = summary.get('paired') or []
    if paired:
        own = any(np.isfinite(p.get('experts', np.nan)) for p in paired)
        lines += ['', f'## Paired difference vs uniform (same seeds and {_split(summary)} goals;'
                  f' 95% CI {paired[0].get("interval", "over goals")})', '',
                  'clean: uniform on the expert-only control recording; '
                  + ("own experts: uniform on the mixed set's own expert episodes alone; "
                     if own else '') + 'gap closed: (method − uniform) / (clean end − uniform).',
                  '', '| task | data | head | method | goals | uniform | method | difference '
                  '[95% CI] | clean | gap closed |' + (' own experts | gap closed |' if own
                                                       else ''),
                  '|---|---|---|---|---|---|---|---|---|---|' + ('---|---|' if own else '')]

        def num(v: float, fmt: str) -> str:
            return 'n/a' if np.isnan(v) else format(v, fmt)

        for p in paired:
            lines.append(
                f'| {p["task"]} | {p["data"]} | {p["head"]} | {p["method"]} | {p["pairs"]} | '
                f'{p["uniform"]:.2f} | {p["method_mean"]:.2f} | {p["diff"]:+.2f} '
                f'[{p["ci_low"]:+.2f}, {p["ci_high"]:+.2f}] | {num(p["clean"], ".2f")} | '
                f'{num(p["gap_closed"], ".0%")} |'
                + (f' {num(p.get("experts", np.nan), ".2f")} | '
                   f'{num(p.get("gap_closed_experts", np.nan), ".0%")} |' if own else ''))
    contrast = summary.get('contrasts') or []
    if contrast:
        ref = contrast[0]['reference']
        lines += ['', f'## Each other arm vs `{ref}` (same seeds and {_split(summary)} goals; '
                  f'95% CI {contrast[0].get("interval", "over goals")})', '',
                  f'| task | data | head | method | goals | {ref} | method | difference '
                  '[95% CI] |', '|---|---|---|---|---|---|---|---|']
        for c in contrast:
            lines.append(
                f'| {c["task"]} | {c["data"]} | {c["head"]} | {c["method"]} | {c["pairs"]} | '
                f'{c["reference_mean"]:.2f} | {c["method_mean"]:.2f} | {c["diff"]:+.2f} '
                f'[{c["ci_low"]:+.2f}, {c["ci_high"]:+.2f}] |')
    for t in summary.get('trust') or []:
        sources = sorted({s for row in t['auroc'].values() for s in row})
        lines += ['', f'## Episode AUROC, expert vs source: {t["task"]} {t["data"]} {t["head"]} '
                  f'{t["method"]} ({t["seeds"]} seed(s); length-controlled in brackets)', '',
                  '| signal | ' + ' | '.join(sources) + ' |', '|---|' + '---|' * len(sources)]
        for sig, row in t['auroc'].items():
            ctrl = t['auroc_length'].get(sig, {})
            lines.append(f'| {sig} | ' + ' | '.join(
                (f'{row[s]:.2f} [{ctrl[s]:.2f}]' if s in ctrl else f'{row[s]:.2f}')
                if s in row else '—' for s in sources) + ' |')
        lines.append('')
        lines.append('Mean trust per source: ' + ', '.join(
            f'{k} {v:.2f}' for k, v in sorted(t['trust_by_source'].items()))
            + '; scoring pass / post-training time (CPU time where measured): '
            f'{t["scoring_over_training"]:.2f}'
            + ('' if np.isnan(t.get('scoring_without_baselines', np.nan)) else
               f' ({t["scoring_without_baselines"]:.2f} without the baseline probes, which '
               'only the AUROC table needs)'))
    return lines


def write_report(summary: dict[str, Any], out: Path) -> None:
    _json(out / 'results.json', summary)
    (out / 'results.md').write_text(markdown(summary))
    try:
        _plots(summary, out)
    except Exception as err:  # plots are a convenience; the table is the result
        log.warning('plots failed: %s', err)


def _plots(summary: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use('Agg')

    _success_plot(summary, out)
    _weights_plot(summary, out)
    _trust_plot(summary, out)
    _diagnostics_plot(summary, out)


def _success_plot(summary: dict[str, Any], out: Path) -> None:
    """``success.png``: success per method for every (task, data, head), mean ± std over seeds."""
    import matplotlib.pyplot as plt

    cfg = summary['config']
    methods = [m['name'] for m in cfg['methods']]
    groups = sorted({(t['task'], t['data'], t['head']) for t in summary['table']})
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(groups) * len(methods) / 2), 4))
    width = 0.8 / len(methods)
    for j, m in enumerate(methods):
        vals = []
        for g in groups:
            t = next((t for t in summary['table'] if (t['task'], t['data'], t['head']) == g
                      and t['method'] == m), None)
            vals.append((t['success_mean'], t['success_std']) if t else (np.nan, 0.0))
        ax.bar(np.arange(len(groups)) + j * width, [v[0] for v in vals], width,
               yerr=[v[1] for v in vals], capsize=3, label=m)
    ax.set_xticks(np.arange(len(groups)) + width * (len(methods) - 1) / 2)
    ax.set_xticklabels([f'{t}\n{d}/{h}' for t, d, h in groups], fontsize=8)
    ax.set_ylabel('success rate (held-out goals)')
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f'ptr benchmark {cfg["name"]}: success per method (mean ± std over seeds)')
    fig.tight_layout()
    fig.savefig(out / 'success.png', dpi=120)
    plt.close(fig)


def _weights_plot(summary: dict[str, Any], out: Path) -> None:
    """``weights_by_source.png``: the mean sample weight each method gave each source tag."""
    import matplotlib.pyplot as plt

    wt = summary['weights_by_source']
    if not wt:
        return
    sources = sorted({s for by in wt.values() for s in by})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sources)), 4))
    width = 0.8 / len(wt)
    for j, (m, by) in enumerate(wt.items()):
        ax.bar(np.arange(len(sources)) + j * width,
               [by.get(s, (np.nan, 0))[0] for s in sources], width,
               yerr=[by.get(s, (np.nan, 0))[1] for s in sources], capsize=3, label=m)
    ax.axhline(1.0, color='grey', lw=0.8, ls='--')
    ax.set_xticks(np.arange(len(sources)) + width * (len(wt) - 1) / 2)
    ax.set_xticklabels(sources, rotation=20, fontsize=8)
    ax.set_ylabel('mean sample weight')
    ax.legend(fontsize=8)
    ax.set_title('where PTR put its weight (per source tag)')
    fig.tight_layout()
    fig.savefig(out / 'weights_by_source.png', dpi=120)
    plt.close(fig)


def _diagnostics_plot(summary: dict[str, Any], out: Path) -> None:
    """``diagnostics.png``: mean weight per source and the weighter diagnostics over training,
    for the PTR arms of the first (task, head, seed) on the mixed data."""
    import matplotlib.pyplot as plt

    ptr_cells = [c for c in summary['cells']
                 if c['data'] == 'mix' and c.get('weights_by_source')]
    if not ptr_cells:
        return
    first = ptr_cells[0]
    chosen = [c for c in ptr_cells if (c['task'], c['head'], c['seed']) ==
              (first['task'], first['head'], first['seed'])]
    fig, axes = plt.subplots(2, len(chosen), figsize=(5 * len(chosen), 6), squeeze=False)
    for j, c in enumerate(chosen):
        rows = _metrics(Path(c['checkpoint']).parent)
        steps = [r['step'] for r in rows]
        for key in sorted({k for r in rows for k in r
                           if k.startswith('weighter/w_mean/source/')}):
            axes[0, j].plot(steps, [r.get(key, np.nan) for r in rows],
                            label=key.rsplit('/', 1)[-1])
        axes[0, j].set_title(f'{c["method"]}: mean w per source')
        axes[0, j].legend(fontsize=7)
        for key in ('nce_acc', 'w_at_max_share', 'w_at_min_share', 'ess_ratio'):
            axes[1, j].plot(steps, [r.get(f'weighter/{key}', np.nan) for r in rows],
                            label=key)
        axes[1, j].set_xlabel('step')
        axes[1, j].legend(fontsize=7)
    fig.suptitle(f'PTR diagnostics over training ({first["task"]}, {first["head"]}, '
                 f'seed {first["seed"]})')
    fig.tight_layout()
    fig.savefig(out / 'diagnostics.png', dpi=110)
    plt.close(fig)


def _trust_plot(summary: dict[str, Any], out: Path) -> None:
    """``trust_by_episode.png``: every episode's trust, coloured by its source (first trust
    cell of each task on the mixed data)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    firsts: dict[str, dict[str, Any]] = {}
    for c in summary['cells']:
        if c['data'] == 'mix' and c.get('trust_file'):
            firsts.setdefault(c['task'], c)
    if not firsts:
        return
    fig, axes = plt.subplots(len(firsts), 1, figsize=(10, 3.2 * len(firsts)), squeeze=False)
    for ax, (task, c) in zip(axes[:, 0], sorted(firsts.items())):
        report = Path(c['trust_file']).with_name('report.json')
        if not report.exists():
            continue
        eps = json.loads(report.read_text())['episodes']
        eps = sorted(eps, key=lambda e: (e['source'] != 'expert', e['source']))
        sources = sorted({e['source'] for e in eps})
        colours = {s: plt.get_cmap('tab10')(i) for i, s in enumerate(sources)}
        ax.bar(range(len(eps)), [e['trust'] for e in eps],
               color=[colours[e['source']] for e in eps])
        handles = [Patch(color=col, label=name) for name, col in colours.items()]
        ax.set_ylim(0, 1.05)
        ax.set_ylabel('trust')
        ax.set_title(f'{task}: trust per episode, grouped by source ({c["method"]}, '
                     f'seed {c["seed"]})')
        ax.legend(handles=handles, fontsize=7, ncol=len(sources), loc='upper right',
                  bbox_to_anchor=(1.0, -0.08))
    fig.tight_layout()
    fig.savefig(out / 'trust_by_episode.png', dpi=110)
    plt.close(fig)
