"""The report page: one static HTML file, CSS and JS inline, images as data URIs, no network.

The page's skeleton, style and script live in ``assets/`` (``body.html``, ``report.css``,
``report.js``) and are inlined into every page. The collected data
(``ptr_cli.report_page.collect``) is embedded as JSON in a ``<script type="application/json">``
block; the script builds the table (sort by any column, filter by text and robot), draws the
plots on ``<canvas>`` and shows an episode's detail when its row is clicked. When everything
is drawn it sets ``document.body.dataset.rendered`` to the number of canvases drawn (what the
browser test reads). The head's ``GENERATOR_TAG`` marks the page as ptr's own
(``write_report`` replaces nothing else).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

__all__ = ['GENERATOR_TAG', 'render_page']

#: Marks a page as ptr's, near its start: ``ptr report`` replaces only an index.html holding it.
GENERATOR_TAG = '<meta name="generator" content="ptr report">'

_ASSETS = Path(__file__).resolve().parent / 'assets'


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding='utf-8')


def render_page(data: dict[str, Any], *, title: str, subtitle: str = '') -> str:
    """The whole page as one string (no external resource of any kind)."""
    blob = json.dumps(data, separators=(',', ':'), allow_nan=False)
    blob = blob.replace('</', '<\\/')  # never close the script element from inside the data
    body = _asset('body.html').format(title=html.escape(title), subtitle=html.escape(subtitle))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{GENERATOR_TAG}'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f'<title>{html.escape(title)}</title><style>{_asset("report.css")}</style></head>'
        f'<body>{body}<script type="application/json" id="report-data">{blob}</script>'
        f'<script>{_asset("report.js")}</script></body></html>\n'
    )
