"""The report page's node cadence section (``ptr report --cadence FILE``): a cadence log written
by the node's own writer (two runs, a window with a planted long gap, one with overruns), its
rows and flags in the page data, the command line, and the section in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser import Chromium, chromium_binary, report_data

from ptr_cli.main import main
from ptr_cli.report_page import build_report, write_report
from ptr_ros.cadence import CadenceLog, CadenceReport

NEEDS_CHROMIUM = pytest.mark.skipif(
    chromium_binary() is None,
    reason='chromium is not installed (apt-get install -y chromium; scripts/env.sh tries)')
T = 0.1  # 10 Hz
HORIZON_S = 0.4  # 4 trajectory points
GAP_WINDOW, OVERRUN_WINDOW = 2, 4  # of the first run's 6 windows


def _run(path: Path, t0: float, windows: int, *, plant: bool) -> None:
    """One node run of ``windows`` minutes at 10 Hz, ended mid-window (as on shutdown)."""
    rep = CadenceReport(T, 60.0, log=CadenceLog(path, period_s=T, window_s=60.0,
                                                 horizon_s=HORIZON_S, checkpoint='runs/a/final',
                                                 node='/policy_node'))
    for k in range(windows * 600 + 300):
        t = t0 + k * T
        rep.add('tick_late_ms', 0.0005, t)
        rep.add('obs_age_ms', 0.030 + 0.001 * (k % 7), t)
        if k % 4 == 0:
            rep.add('inference_ms', 0.040 + 0.002 * (k % 5), t)
        if plant and k == OVERRUN_WINDOW * 600 + 50:
            rep.overrun(2, t)
        if plant and k // 600 == GAP_WINDOW and 100 < k % 600 <= 108:
            continue  # 9 periods without a command: a 900 ms gap
        rep.publish(t + 0.003)
    rep.close()


@pytest.fixture(scope='module')
def cadence_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('node') / 'cadence.jsonl'
    now = time.monotonic()
    _run(path, now - 4 * 3600, 6, plant=True)  # hours ago ...
    _run(path, now - 3600, 2, plant=False)  # ... then a second run, appended
    return path


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp('run')
    with (run / 'metrics.jsonl').open('w') as f:
        for step in range(10, 60, 10):
            f.write(json.dumps({'step': step, 'loss': 1.0 / step}) + '\n')
    return run


def test_rows_flags_and_runs(run_dir: Path, cadence_log: Path) -> None:
    c = report_data(build_report(run=run_dir, cadence=cadence_log))['cadence']
    assert c['file'] == str(cadence_log)
    assert c['windows'] == len(c['rows']) == 7 + 3  # each run: whole minutes + the one it ended
    assert [r['windows'] for r in c['runs']] == [7, 3]
    assert c['runs'][0]['horizon_ms'] == pytest.approx(400.0, rel=1e-6)
    flagged = {i: r['flags'] for i, r in enumerate(c['rows']) if r['flags']}
    assert sorted(flagged) == [GAP_WINDOW, OVERRUN_WINDOW]
    (gap,) = flagged[GAP_WINDOW]
    assert gap.startswith('longest gap 900 ms > executed horizon 400 ms')
    assert flagged[OVERRUN_WINDOW] == [
        '2 overrun(s): control ticks skipped, the control thread woke a period late']
    assert c['flagged'] == 2
    normal = c['rows'][0]
    assert normal['ticks'] == pytest.approx(600, abs=1)  # the roll: a float sum
    assert normal['period_mean'] == pytest.approx(100.0, rel=1e-3)
    assert normal['max_gap'] == pytest.approx(100.0, rel=1e-3)
    assert normal['inference_max'] == pytest.approx(48.0, rel=1e-3)
    assert [r['complete'] for r in c['rows']] == [True] * 6 + [False] + [True] * 2 + [False]


def test_cli_adds_the_section_and_a_bad_log_is_one_line(
    run_dir: Path, cadence_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / 'page'
    assert main(['report', str(run_dir), '--cadence', str(cadence_log), '--out', str(out)]) == 0
    assert report_data((out / 'index.html').read_text())['cadence']['windows'] == 10
    other = tmp_path / 'metrics.jsonl'
    other.write_text('{"step": 1, "loss": 0.5}\n')
    capsys.readouterr()
    assert main(['report', str(run_dir), '--cadence', str(other), '--out', str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert f'{other}: line 1: schema None' in err
    assert len(err.splitlines()) == 1


def test_the_page_reads_the_log_without_rclpy_or_torch() -> None:
    code = ('import sys, ptr_cli.report_page; '
            'print(sorted(m for m in ("rclpy", "torch") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert out.strip() == '[]'


@NEEDS_CHROMIUM
def test_cadence_section_in_chromium(run_dir: Path, cadence_log: Path, tmp_path: Path) -> None:
    file = write_report(tmp_path / 'report', run=run_dir, cadence=cadence_log)
    with Chromium() as browser:
        page = browser.open(file, width=1280, height=900)
        try:
            assert page.evaluate('getComputedStyle(document.getElementById("cadence")).display'
                                 ) != 'none'
            assert page.evaluate('document.querySelectorAll("#cadence-table tbody tr").length'
                                 ) == 10
            heads = page.evaluate('[...document.querySelectorAll("#cadence-table th")]'
                                  '.map(th => th.textContent)')
            assert heads[:2] == ['start', 'ticks']
            assert 'longest gap' in heads
            rows = page.evaluate("""[...document.querySelectorAll("#cadence-table tbody tr")]
                .map(tr => tr.dataset.flagged === '1')""")
            assert [i for i, f in enumerate(rows) if f] == [GAP_WINDOW, OVERRUN_WINDOW]
            gap = page.evaluate(f"""document.querySelectorAll("#cadence-table tbody tr")
                [{GAP_WINDOW}].querySelector('td[data-col="max_gap"]')""" + '.className')
            assert 'bad' in gap
            assert page.evaluate('document.querySelectorAll("#cadence-flags li a").length') == 2
            assert 'executed horizon 400 ms' in page.evaluate(
                'document.getElementById("cadence-flags").textContent')
            # jitter and gap, inference, observation age: drawn, with ink on them
            ink = page.evaluate("""[...document.querySelectorAll("#cadence-plots canvas")]
                .map(c => { if (!c.dataset.drawn) return 0;
                  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
                  return n; })""")
            assert len(ink) == 3
            assert min(ink) > 200, ink
            page.evaluate('document.querySelector("#cadence-flags li a").click()')
            assert page.evaluate('document.querySelectorAll("#cadence-table tr.sel").length') == 1
            page.screenshot(tmp_path / 'cadence.png')
            assert page.console_errors == [], page.console_errors
            assert all(u.startswith(('file:', 'data:')) for u in page.requests), page.requests
        finally:
            page.close()
