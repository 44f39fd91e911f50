"""The documentation's shape (issue 25, item 5): the README is a front page, history lives in
``CHANGELOG.md`` and ``docs/results/`` (one file per dated run), ``docs/benchmark.md`` is
reference without dated result sections, and every relative markdown link resolves to a file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README_MAX_LINES = 150
DATE = re.compile(r'20\d\d-\d\d-\d\d')
HEADING = re.compile(r'^#{1,6}\s')
# [text](target) and ![alt](target); the target ends at whitespace or the closing bracket
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
FENCE = re.compile(r'^\s*(```|~~~)')


def markdown_files() -> list[Path]:
    files = [REPO / 'README.md', REPO / 'CHANGELOG.md']
    files += sorted((REPO / 'docs').glob('*.md'))
    files += sorted((REPO / 'docs' / 'results').glob('*.md'))
    return [f for f in files if f.is_file()]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def relative_links(path: Path) -> list[tuple[int, str]]:
    links = []
    for number, line in prose_lines(path.read_text(encoding='utf-8')):
        line = re.sub(r'`[^`]*`', '', line)  # inline code is not a link
        for target in LINK.findall(line):
            if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.IGNORECASE) or target.startswith('#'):
                continue  # http:, mailto:, an anchor in the same file
            links.append((number, target))
    return links


def test_readme_is_a_front_page() -> None:
    lines = (REPO / 'README.md').read_text(encoding='utf-8').splitlines()
    assert len(lines) <= README_MAX_LINES, f'README.md has {len(lines)} lines'


def test_changelog_exists() -> None:
    changelog = REPO / 'CHANGELOG.md'
    assert changelog.is_file()
    assert changelog.read_text(encoding='utf-8').strip()


def test_benchmark_doc_has_no_dated_sections() -> None:
    text = (REPO / 'docs' / 'benchmark.md').read_text(encoding='utf-8')
    dated = [f'{n}: {line}' for n, line in prose_lines(text)
             if HEADING.match(line) and DATE.search(line)]
    assert not dated, 'dated headings belong in docs/results/:\n' + '\n'.join(dated)


@pytest.mark.parametrize('path', markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for number, target in relative_links(path):
        file_part = target.split('#', 1)[0].split('?', 1)[0]
        if not file_part:
            continue
        if not (path.parent / file_part).exists():
            broken.append(f'{path.relative_to(REPO)}:{number}: {target}')
    assert not broken, 'links to missing files:\n' + '\n'.join(broken)
