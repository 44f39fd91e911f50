"""Digests of a run folder (``ptr benchmark``, ``ptr train``, ``ptr score`` outputs) that ignore
what legitimately differs between two runs of the same code on the same inputs: the folder's own
path, timestamps and speed figures. Two folders with equal digests hold the same weights
(``*.safetensors`` bit for bit), the same trust files, metrics and results.

    python bench/digest.py RUN_A RUN_B     # a table of every file that differs (exit 1 if any)
    python bench/digest.py RUN_A           # one digest per file

Used to show that a refactor changes no behaviour (issue 25): run the same preset before and
after, in two clean worktrees, and compare.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

#: Keys whose values are clocks, speeds or paths of the run, not results.
#: (Also every key ending in ``_s``: seconds.) ``fingerprint``/``init_hash`` hash the run's
#: settings and config.json, which hold its path; ``git_revision`` is the commit that ran.
VOLATILE = {'created', 'init_hash', 'fingerprint', 'git_revision', 'started', 'finished',
            'score_cpu_ratio', 'cpu_ratio', 'scoring_over_training', 'scoring_without_baselines'}
#: Files that are figures or prose built from the above (compared through their JSON sources).
SKIP_SUFFIXES = {'.png', '.md', '.log', '.html', '.lock'}


def _clean(obj: Any, root: str) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v, root) for k, v in obj.items()
                if k not in VOLATILE and not k.endswith(('_s', '_time', '_seconds'))}
    if isinstance(obj, list):
        return [_clean(v, root) for v in obj]
    if isinstance(obj, str):
        return obj.replace(root, '<run>')
    return obj


def file_digest(path: Path, root: Path) -> str | None:
    if path.suffix in SKIP_SUFFIXES or path.name.startswith('.'):
        return None
    data = path.read_bytes()
    if path.suffix in ('.json', '.jsonl'):
        text = data.decode()
        rows = [json.loads(line) for line in text.splitlines() if line.strip()] \
            if path.suffix == '.jsonl' else [json.loads(text)]
        if path.name == 'checksums.json':  # hashes of config.json, which holds the run's path
            rows = [{k: v for k, v in r.items() if 'config' not in k} for r in rows]
        data = json.dumps(_clean(rows, str(root)), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def digests(root: Path) -> dict[str, str]:
    out = {}
    for path in sorted(root.rglob('*')):
        if path.is_file():
            d = file_digest(path, root.resolve())
            if d is not None:
                out[path.relative_to(root).as_posix()] = d
    return out


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    a = digests(Path(argv[0]))
    if len(argv) == 1:
        for name, d in a.items():
            print(f'{d}  {name}')
        return 0
    b = digests(Path(argv[1]))
    names = sorted(set(a) | set(b))
    differ = [n for n in names if a.get(n) != b.get(n)]
    print(f'| files compared | equal | differ |\n|---|---|---|\n'
          f'| {len(names)} | {len(names) - len(differ)} | {len(differ)} |')
    for n in differ:
        print(f'  differs: {n}  {a.get(n, "-")} vs {b.get(n, "-")}')
    return 1 if differ else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
