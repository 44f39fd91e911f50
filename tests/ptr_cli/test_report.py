"""The report page: its content from a real (bag-ingested) dataset and trust file, and the page
itself in headless Chromium (rows, sorting, filtering, plots drawn, no console error, no
network), with a screenshot."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser import Chromium, chromium_binary, report_data
from camerabags import EPISODES, camera_dataset, trust_for

from bag_tools.dataset import Dataset
from bag_tools.trust import TrustError
from ptr_cli.main import main
from ptr_cli.report_page import build_report, write_report

FIRST_TRUST = 'document.querySelector(\'#episodes tbody tr td[data-col="trust"]\').textContent'
NEEDS_CHROMIUM = pytest.mark.skipif(
    chromium_binary() is None,
    reason='chromium is not installed (apt-get install -y chromium; scripts/env.sh tries)')


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return camera_dataset(tmp_path_factory.mktemp('bags'), episodes=3)


@pytest.fixture(scope='module')
def trust_file(dataset: Path) -> Path:
    return trust_for(dataset)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory: pytest.TempPathFactory, dataset: Path, trust_file: Path) -> Path:
    """A training run folder as ``ptr train`` leaves it: metrics.jsonl (the trainer's format,
    one JSON object per logged step) and final/config.json naming the dataset."""
    run = tmp_path_factory.mktemp('run')
    with (run / 'metrics.jsonl').open('w') as f:
        for step in range(10, 110, 10):
            f.write(json.dumps({'step': step, 'loss': 1.0 / step, 'lr': 1e-3,
                                'weighter/ess_ratio': 0.9,
                                'weighter/w_mean/source/expert': 1.2,
                                'weighter/w_mean/source/teleop': 0.8}) + '\n')
    (run / 'final').mkdir()
    (run / 'final' / 'config.json').write_text(json.dumps({
        'step': 100, 'head': 'flow',
        'weighter': {'name': 'trust', 'options': {'file': str(trust_file)}},
        'train_config': {'data': {'datasets': [{'path': str(dataset), 'weight': 1.0}]}}}))
    return run / 'final'


def test_page_content(dataset: Path, trust_file: Path) -> None:
    page = build_report([dataset], trust=trust_file)
    assert 'http://' not in page
    assert 'https://' not in page
    data = report_data(page)
    ds = Dataset.open(dataset)
    assert len(data['episodes']) == len(ds) == 3
    trust = json.loads(trust_file.read_text())
    want = {e['episode_id']: e['trust'] for e in trust['episodes']}
    assert {e['id']: e['trust'] for e in data['episodes']} == pytest.approx(want)
    sources = {s['source']: s for s in data['sources']}
    assert sources['expert']['episodes'] == 1
    assert sources['teleop']['episodes'] == 2
    teleop = [t for _, s, _, t in EPISODES if s == 'teleop']
    assert sources['teleop']['trust_mean'] == pytest.approx(np.mean(teleop))
    assert sources['teleop']['trust_min'] == pytest.approx(min(teleop))
    # the low-trust teleop episode is the first to look at
    low = next(e for e in data['episodes'] if e['trust'] < 0.5)
    assert data['look_first'][0]['key'] == low['key']
    assert 'low trust 0.30' in data['look_first'][0]['reasons'][0]
    detail = data['details'][low['key']]
    assert set(detail['thumbs']) == {'depth', 'top', 'wrist'}
    for uri in detail['thumbs'].values():
        raw = base64.b64decode(uri.split(',', 1)[1])
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape[0] == 64
        assert img.shape[1] > 6 * 64  # six frames side by side
    assert detail['state']['names'] == ds.manifest['robots']['arm3']['state_names']
    assert len(detail['state']['series']) == 3
    assert detail['frame_trust']['series'][0][0] == pytest.approx(0.2)


def test_run_brings_its_datasets_and_trust(run_dir: Path, dataset: Path) -> None:
    data = report_data(build_report(run=run_dir))
    assert data['datasets'][0]['path'] == str(dataset)
    assert sorted(e['trust'] for e in data['episodes']) == [0.3, 0.7, 0.9]
    assert data['training']['steps'] == 10
    assert data['training']['final']['loss'] == pytest.approx(0.01)


def test_stale_trust_is_refused(dataset: Path, trust_file: Path, tmp_path: Path) -> None:
    stale = json.loads(trust_file.read_text())
    stale['datasets'][0]['content_hash'] = 'e' * 64
    for e in stale['episodes']:
        e['dataset_hash'] = 'e' * 64
    (tmp_path / 't.json').write_text(json.dumps(stale))
    with pytest.raises(TrustError, match='stale'):
        build_report([dataset], trust=tmp_path / 't.json')


def test_cli(dataset: Path, trust_file: Path, tmp_path: Path,
             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(['report', str(dataset), '--trust', str(trust_file), '--out', str(tmp_path)])
    assert code == 0
    assert str(tmp_path / 'index.html') in capsys.readouterr().out
    code = main(['report', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'x')])
    assert code == 2
    assert 'neither a ptr dataset' in capsys.readouterr().err


@NEEDS_CHROMIUM
def test_page_in_chromium(dataset: Path, trust_file: Path, run_dir: Path,
                          tmp_path: Path) -> None:
    file = write_report(tmp_path / 'report', run=run_dir)  # its datasets and trust file
    n = len(Dataset.open(dataset))
    with Chromium() as browser:
        page = browser.open(file, width=1280, height=900)
        try:
            assert page.evaluate('document.querySelectorAll("#episodes tbody tr").length') == n
            # 2 trust charts + state, action, frame trust of the selected episode + 3 curves
            # (loss, lr, ess_ratio) + weight per source
            drawn = int(page.evaluate('document.body.dataset.rendered'))
            assert drawn >= 9
            blank = page.evaluate("""[...document.querySelectorAll("canvas")]
                .filter(c => c.dataset.drawn).map(c => {
                  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                  let ink = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) ink++;
                  return ink; }).filter(ink => ink < 200).length""")
            assert blank == 0  # every drawn canvas has lines or bars on it
            assert page.evaluate('document.querySelectorAll("#detail img").length') == 3
            assert page.evaluate(
                'document.querySelectorAll("#detail img")[0].naturalWidth') > 6 * 60
            # sort by trust (click the header): the lowest first
            page.evaluate('document.querySelector(\'th[data-col="trust"]\').click()')
            first = page.evaluate(FIRST_TRUST)
            assert float(first) == pytest.approx(0.3)
            page.evaluate('document.querySelector(\'th[data-col="trust"]\').click()')
            first = page.evaluate(FIRST_TRUST)
            assert float(first) == pytest.approx(0.9)
            # filter by text
            page.evaluate("""(() => { const f = document.getElementById("text-filter");
                f.value = "teleop"; f.dispatchEvent(new Event("input")); })()""")
            assert page.evaluate('document.querySelectorAll("#episodes tbody tr").length') == 2
            # a row click shows that episode
            page.evaluate('document.querySelector("#episodes tbody tr").click()')
            title = page.evaluate('document.querySelector("#detail h2").textContent')
            row_id = page.evaluate('document.querySelector("#episodes tbody tr td").textContent')
            assert title == f'Episode {row_id}'
            assert page.evaluate('document.querySelectorAll("#curves canvas").length') == 4
            shot = page.screenshot(tmp_path / 'report.png')
            assert shot.stat().st_size > 10_000
            if os.environ.get('PTR_REPORT_SCREENSHOT'):
                page.screenshot(Path(os.environ['PTR_REPORT_SCREENSHOT']))
            assert page.console_errors == []
            assert all(u.startswith(('file:', 'data:')) for u in page.requests), page.requests
        finally:
            page.close()
