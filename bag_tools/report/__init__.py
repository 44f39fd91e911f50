"""The dataset report page: one self-contained static HTML file (``ptr report``).

``write_report(out_dir, datasets=[...], trust=..., run=...)`` writes ``out_dir/index.html``:
an episode table that sorts and filters, thumbnails per camera, state/action plots per episode,
trust per episode and per source, the episodes to look at first and, for a training run, its
curves and diagnostics. No torch: datasets are read with numpy, runs from their JSON files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bag_tools.report.collect import ReportError, collect_datasets, collect_training, find_run
from bag_tools.report.page import render_page

__all__ = ['REPORT_FILE', 'ReportError', 'build_report', 'find_run', 'write_report']

REPORT_FILE = 'index.html'

log = logging.getLogger(__name__)


def build_report(
    datasets: Sequence[str | Path] = (),
    *,
    trust: str | Path | None = None,
    run: str | Path | None = None,
    max_details: int = 200,
) -> str:
    """The page's HTML for ``datasets`` (and/or a training ``run``; its datasets are added
    when they exist and none are given, and the trust file it trained with when ``trust`` is
    not given and that file still matches the datasets)."""
    training = collect_training(run) if run is not None else None
    paths = list(datasets)
    if not paths and training is not None:
        paths = [p for p in training['datasets'] if (Path(p) / 'manifest.json').is_file()]
    from bag_tools.trust import TrustError, read_trust

    tf: Any = read_trust(trust) if trust is not None else None
    data: dict[str, Any] | None = None
    auto = training.get('trust_file') if training is not None and tf is None else None
    if auto and Path(auto).is_file():  # the trust file the run trained with
        try:
            data = collect_datasets(paths, trust=read_trust(auto), max_details=max_details)
        except TrustError as err:
            log.warning('%s; the report shows no trust', err)
    if data is None:
        data = collect_datasets(paths, trust=tf, max_details=max_details)
    data['training'] = training
    names = ', '.join(str(p) for p in paths) or 'no dataset'
    title = f'ptr report: {Path(str(run)).name if run is not None else names}'
    now = datetime.now(timezone.utc).isoformat(timespec='seconds')
    return render_page(data, title=title, subtitle=f'{names} \u00b7 generated {now}')


def write_report(out_dir: str | Path, datasets: Sequence[str | Path] = (), **kwargs: Any) -> Path:
    """Write ``out_dir/index.html`` atomically and return its path."""
    page = build_report(datasets, **kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    file = out / REPORT_FILE
    tmp = out / f'.{REPORT_FILE}.{os.getpid()}.tmp'
    tmp.write_text(page, encoding='utf-8')
    os.replace(tmp, file)
    return file
