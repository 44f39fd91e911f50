"""The report page: one self-contained static HTML file (``ptr report``).

``write_report(out_dir, datasets=[...], trust=..., run=...)`` writes ``out_dir/index.html``:
an episode table that sorts and filters, thumbnails per camera, state/action plots per episode,
trust per episode and per source, the episodes to look at first and, for a training run, its
curves and diagnostics; with ``cadence=``, a policy node's cadence log (``ptr_ros.cadence``).
No torch: datasets are read with numpy, runs and cadence logs from their JSON files.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bag_tools.fileio import read_head
from ptr_cli.report_page.collect import (
    ReportError,
    collect_cadence,
    collect_datasets,
    collect_training,
    find_run,
)
from ptr_cli.report_page.page import GENERATOR_TAG, render_page

__all__ = ['REPORT_FILE', 'ReportError', 'build_report', 'find_run', 'write_report']

REPORT_FILE = 'index.html'

log = logging.getLogger(__name__)


def build_report(
    datasets: Sequence[str | Path] = (),
    *,
    trust: str | Path | None = None,
    run: str | Path | None = None,
    cadence: str | Path | None = None,
    max_details: int = 200,
) -> str:
    """The page's HTML for ``datasets`` (and/or a training ``run``; its datasets are added
    when they exist and none are given, and the trust file it trained with when ``trust`` is
    not given and that file still matches the datasets), with the ``cadence`` log's section."""
    training = collect_training(run) if run is not None else None
    timing = collect_cadence(cadence) if cadence is not None else None  # read before the rest
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
    data['cadence'] = timing
    names = ', '.join(str(p) for p in paths) or 'no dataset'
    title = f'ptr report: {Path(str(run)).name if run is not None else names}'
    now = datetime.now(timezone.utc).isoformat(timespec='seconds')
    return render_page(data, title=title, subtitle=f'{names} \u00b7 generated {now}')


def write_report(out_dir: str | Path, datasets: Sequence[str | Path] = (), **kwargs: Any) -> Path:
    """Write ``out_dir/index.html`` atomically and return its path.

    Replaces only an ``index.html`` that ptr wrote (its ``GENERATOR_TAG``); anything else there
    (another page, a symlink) and an ``out_dir`` that is a file are refused before the page is
    built. A failed write (disk full, read-only) is one ``ReportError`` naming the file, with
    the temp file removed; temps of killed reports (their pid runs no more) are removed.
    """
    out = Path(out_dir)
    file = out / REPORT_FILE
    _check_target(out, file)
    page = build_report(datasets, **kwargs)
    made = [p for p in (out, *out.parents) if not p.exists()]  # removed again on failure
    try:
        out.mkdir(parents=True, exist_ok=True)
        _drop_dead_temps(out)
        _check_target(out, file)  # again: the page may take a while to build
        tmp = _write_temp(out, page)
        try:
            os.replace(tmp, file)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except BaseException as err:
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        if isinstance(err, OSError):
            raise _failure(file, err) from err
        raise
    return file


def _failure(file: Path, err: OSError) -> ReportError:
    where = f' ({err.filename})' if err.filename and str(err.filename) != str(file) else ''
    msg = f'{file}: cannot write{where}: {err.strerror or err}'
    return ReportError(msg)


def _ours(file: Path) -> bool:
    """Whether ``file`` is a regular file (not a symlink) that ``ptr report`` wrote."""
    head = read_head(file)
    return head is not None and GENERATOR_TAG.encode() in head


def _check_target(out: Path, file: Path) -> None:
    """Refuse an ``out`` that is not a folder, and an index.html in it that is not ours."""
    if out.is_symlink() and not out.exists():
        msg = f'{out}: is a dangling symlink (to {os.readlink(out)}); --out is a folder'
        raise ReportError(msg)
    if out.exists() and not out.is_dir():
        msg = f'{out}: is a file; --out is the folder to write {REPORT_FILE} into'
        raise ReportError(msg)
    if (file.exists() or file.is_symlink()) and not _ours(file):
        what = 'a symlink' if file.is_symlink() else 'not a page ptr report wrote'
        msg = (f'{file}: is {what}; ptr report replaces only its own {REPORT_FILE}: remove it '
               'or choose another --out')
        raise ReportError(msg)


def _write_temp(out: Path, page: str) -> Path:
    """The page in ``out/.index.html.<pid>.tmp``, created new (never through a symlink)."""
    tmp = out / f'.{REPORT_FILE}.{os.getpid()}.tmp'
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0)
    fd = os.open(tmp, flags, 0o644)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(page)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _drop_dead_temps(out: Path) -> None:
    """Remove ``.index.html.<pid>.tmp`` files of reports that were killed: their pid runs no
    more and they are empty or our page (never anything else)."""
    from bag_tools.lifetime import pid_alive

    for tmp in out.glob(f'.{REPORT_FILE}.*.tmp'):
        pid = tmp.name[len(REPORT_FILE) + 2:-4]
        if not pid.isdigit() or (pid_alive(int(pid)) and int(pid) != os.getpid()):
            continue
        if not tmp.is_symlink() and tmp.is_file() and (tmp.stat().st_size == 0 or _ours(tmp)):
            tmp.unlink(missing_ok=True)
