(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('report-data').textContent);
  const COLORS = ['#2e6fd8', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2',
                  '#17becf', '#bcbd22', '#7f7f7f'];
  // n lines: the ten named colours, or n hues evenly around the wheel when there are more
  const color = (i, n) => n <= COLORS.length ? COLORS[i]
    : 'hsl(' + Math.round(360 * i / n) + ', 70%, ' + (i % 2 ? 35 : 50) + '%)';
  let drawn = 0;
  const $ = (sel) => document.querySelector(sel);
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const fmt = (v, d) => (v === null || v === undefined) ? '' :
    (typeof v === 'number' ? v.toFixed(d === undefined ? 3 : d) : String(v));

  // A cleared 2-D context at the canvas's CSS size, sharp on high-DPI screens.
  function sized(canvas) {
    const ctx = canvas.getContext('2d');
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || 320, h = canvas.clientHeight || 200;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    return {ctx, w, h};
  }

  function lines(canvas, xs, series, opts) {
    const o = opts || {};
    const {ctx, w, h} = sized(canvas);
    const pad = {l: 44, r: 8, t: 8, b: 20};
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const v of s) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (o.ymin !== undefined) lo = Math.min(lo, o.ymin);
    if (o.ymax !== undefined) hi = Math.max(hi, o.ymax);
    if (!isFinite(lo)) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    const x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 1;
    const X = (x) => pad.l + (x - x0) / ((x1 - x0) || 1) * (w - pad.l - pad.r);
    const Y = (y) => h - pad.b - (y - lo) / (hi - lo) * (h - pad.t - pad.b);
    ctx.strokeStyle = '#e4e7ec'; ctx.fillStyle = '#667085'; ctx.font = '10px sans-serif';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = lo + (hi - lo) * i / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, Y(y)); ctx.lineTo(w - pad.r, Y(y)); ctx.stroke();
      ctx.fillText(y.toPrecision(3), 2, Y(y) + 3);
    }
    ctx.fillText(fmt(x0, 1), pad.l, h - 6);
    const last = fmt(x1, 1) + (o.xlabel ? ' ' + o.xlabel : '');
    ctx.fillText(last, w - pad.r - ctx.measureText(last).width, h - 6);
    series.forEach((s, i) => {
      ctx.strokeStyle = (o.colors && o.colors[i]) || color(i, series.length);
      ctx.lineWidth = 1.3; ctx.beginPath();
      let pen = false;
      s.forEach((v, j) => {
        if (v === null) { pen = false; return; }
        if (pen) ctx.lineTo(X(xs[j]), Y(v)); else ctx.moveTo(X(xs[j]), Y(v));
        pen = true;
      });
      ctx.stroke();
    });
    drawn += 1;
    canvas.dataset.drawn = '1';
  }

  function bars(canvas, labels, values, opts) {
    const o = opts || {};
    const {ctx, w, h} = sized(canvas);
    const pad = {l: 36, r: 8, t: 8, b: o.rotate ? 8 : 34};
    const hi = Math.max(o.ymax || 0, ...values.map((v) => v || 0)) || 1;
    const bw = (w - pad.l - pad.r) / Math.max(values.length, 1);
    ctx.font = '10px sans-serif'; ctx.fillStyle = '#667085'; ctx.strokeStyle = '#e4e7ec';
    for (let i = 0; i <= 4; i++) {
      const y = h - pad.b - (h - pad.t - pad.b) * i / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText((hi * i / 4).toFixed(2), 2, y + 3);
    }
    values.forEach((v, i) => {
      const bh = (v || 0) / hi * (h - pad.t - pad.b);
      ctx.fillStyle = (o.color && o.color(v, i)) || '#2e6fd8';
      ctx.fillRect(pad.l + i * bw + 1, h - pad.b - bh, Math.max(bw - 2, 1), bh);
      if (!o.rotate) {
        ctx.fillStyle = '#1d2330';
        const lab = String(labels[i]).slice(0, Math.max(3, Math.floor(bw / 6)));
        ctx.fillText(lab, pad.l + i * bw + 2, h - pad.b + 12);
      }
    });
    drawn += 1;
    canvas.dataset.drawn = '1';
  }

  // -- header -------------------------------------------------------------------------------
  const eps = D.episodes;
  const byKey = Object.fromEntries(eps.map((e) => [e.key, e]));
  const cards = $('#cards');
  const add = (label, value) => { const c = el('div', {class: 'card'}); c.append(el('b', {}, value)); c.append(el('span', {class: 'muted'}, label)); cards.append(c); };
  add('episodes', eps.length);
  add('frames', eps.reduce((a, e) => a + e.frames, 0));
  add('robots', [...new Set(eps.map((e) => e.robot))].length);
  add('sources', D.sources.length);
  add('tasks', [...new Set(eps.map((e) => e.task))].length);
  if (D.trust) add('trust file', D.trust.file.split('/').pop());

  // -- look at these first -----------------------------------------------------------------
  const look = $('#look-list');
  if (!D.look_first.length) look.append(el('li', {class: 'muted'}, 'nothing stands out: no low trust, no late samples, no invalid steps'));
  for (const f of D.look_first) {
    const li = el('li');
    const a = el('a', {'data-key': f.key}, f.id);
    a.addEventListener('click', () => select(f.key, true));
    li.append(a, document.createTextNode(' \u2014 ' + f.reasons.join('; ')));
    look.append(li);
  }

  // -- trust per source and per episode -----------------------------------------------------
  const hasTrust = eps.some((e) => e.trust !== null);
  const trustColor = (v) => v === null ? '#cccccc' : (v < 0.5 ? '#c4320a' : (v < 0.8 ? '#f79009' : '#12b76a'));
  if (hasTrust) {
    bars($('#trust-source'), D.sources.map((s) => s.source + ' (' + s.episodes + ')'), D.sources.map((s) => s.trust_mean), {ymax: 1, color: trustColor});
    const sorted = eps.filter((e) => e.trust !== null).sort((a, b) => a.trust - b.trust);
    bars($('#trust-episodes'), sorted.map((e) => e.id), sorted.map((e) => e.trust), {ymax: 1, rotate: true, color: trustColor});
  } else {
    $('#trust-episodes-box').style.display = 'none';
    $('#trust-episodes-box').parentElement.style.gridTemplateColumns = 'minmax(0, 1fr)';
    $('#trust-source-title').textContent = 'Episodes per source (no trust file given: ptr report --trust FILE)';
    bars($('#trust-source'), D.sources.map((s) => s.source), D.sources.map((s) => s.episodes), {});
  }
  const st = $('#source-table tbody');
  for (const s of D.sources) {
    const tr = el('tr');
    tr.append(el('td', {}, s.source), el('td', {class: 'num'}, s.episodes), el('td', {class: 'num'}, s.frames),
              el('td', {class: 'num'}, fmt(s.trust_mean)), el('td', {class: 'num'}, fmt(s.trust_min)), el('td', {class: 'num'}, fmt(s.trust_max)));
    st.append(tr);
  }

  // -- the episode table --------------------------------------------------------------------
  const COLS = [
    ['id', 'episode', false], ['robot', 'robot', false], ['task', 'task', false],
    ['source', 'source', false], ['trust', 'trust', true], ['frames', 'frames', true],
    ['duration_s', 'duration s', true], ['worst_sync_s', 'worst sync ms', true],
    ['held', 'held', true], ['dropped', 'dropped', true], ['invalid', 'invalid', true],
  ];
  const thead = $('#episodes thead tr'), tbody = $('#episodes tbody');
  let sortCol = null, sortDir = 1;
  for (const [key, label, num] of COLS) {
    const th = el('th', {'data-col': key, class: num ? 'num' : ''}, label);
    th.addEventListener('click', () => { sortDir = sortCol === key ? -sortDir : 1; sortCol = key; render(); });
    thead.append(th);
  }
  const robotSel = $('#robot-filter');
  for (const r of [...new Set(eps.map((e) => e.robot))].sort()) robotSel.append(el('option', {value: r}, r));
  const text = $('#text-filter');
  text.addEventListener('input', render); robotSel.addEventListener('change', render);
  const flagged = new Set(D.look_first.map((f) => f.key));
  function cell(e, key) {
    if (key === 'worst_sync_s') return fmt(1e3 * e.worst_sync_s, 1);
    if (key === 'duration_s') return fmt(e.duration_s, 2);
    if (key === 'trust') return fmt(e.trust, 3);
    return e[key];
  }
  function render() {
    const q = text.value.trim().toLowerCase(), robot = robotSel.value;
    let rows = eps.filter((e) => (!robot || e.robot === robot) &&
      (!q || [e.id, e.robot, e.task, e.source, JSON.stringify(e.tags)].join(' ').toLowerCase().includes(q)));
    if (sortCol) {
      rows = rows.slice().sort((a, b) => {
        const x = a[sortCol], y = b[sortCol];
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * sortDir;
      });
    }
    for (const th of thead.children) th.className = (th.dataset.col === sortCol ? (sortDir > 0 ? 'asc' : 'desc') : '') + (COLS.find((c) => c[0] === th.dataset.col)[2] ? ' num' : '');
    tbody.replaceChildren();
    for (const e of rows) {
      const tr = el('tr', {'data-key': e.key});
      if (e.key === current) tr.classList.add('sel');
      for (const [key, , num] of COLS) {
        const td = el('td', {class: num ? 'num' : '', 'data-col': key}, cell(e, key));
        if (key === 'trust' && e.trust !== null && e.trust < 0.5) td.classList.add('bad');
        if (key === 'worst_sync_s' && e.late_topics.length) td.classList.add('bad');
        if (key === 'invalid' && e.invalid > 0) td.classList.add('warn');
        if (key === 'id' && flagged.has(e.key)) td.classList.add('warn');
        tr.append(td);
      }
      tr.addEventListener('click', () => select(e.key, false));
      tbody.append(tr);
    }
    $('#shown').textContent = rows.length + ' of ' + eps.length + ' episodes';
  }

  // -- one episode's detail -----------------------------------------------------------------
  let current = null;
  function plotBox(parent, title, data, opts) {
    const box = el('div', {class: 'plotbox'});
    box.append(el('h3', {}, title));
    const c = el('canvas', {class: 'plot'});
    box.append(c);
    const leg = el('div', {class: 'legend'});
    data.names.forEach((n, i) => { const s = el('span', {}, '\u25A0 ' + n); s.style.color = color(i, data.names.length); leg.append(s); });
    box.append(leg);
    parent.append(box);
    lines(c, data.t, data.series, Object.assign({xlabel: 's'}, opts || {}));
  }
  function select(key, scroll) {
    current = key;
    for (const tr of tbody.children) tr.classList.toggle('sel', tr.dataset.key === key);
    const e = byKey[key], d = D.details[key];
    const box = $('#detail');
    box.replaceChildren();
    box.append(el('h2', {}, 'Episode ' + e.id));
    box.append(el('div', {class: 'muted'}, [e.robot, e.task, e.source || 'untagged', e.frames + ' frames', fmt(e.duration_s, 2) + ' s', e.trust === null ? 'no trust' : 'trust ' + fmt(e.trust, 3)].join(' \u00b7 ')));
    if (!d) { box.append(el('p', {class: 'muted'}, 'details are kept for the first episodes and the flagged ones only')); return; }
    if (d.source_path) box.append(el('div', {class: 'muted'}, 'source: ' + d.source_path));
    for (const [role, uri] of Object.entries(d.thumbs)) {
      const s = el('div', {class: 'strip'});
      s.append(el('div', {}, 'camera ' + role));
      if (uri) { const img = el('img', {src: uri, alt: 'camera ' + role}); s.append(img); }
      else s.append(el('span', {class: 'bad'}, 'no valid frame'));
      box.append(s);
    }
    const grid = el('div', {class: 'grid3'});
    box.append(grid);
    plotBox(grid, 'state (' + d.state.names.length + ' dims)', d.state);
    plotBox(grid, 'action (' + d.action.names.length + ' dims)', d.action);
    if (d.frame_trust) plotBox(grid, 'trust per frame', d.frame_trust, {ymin: 0, ymax: 1});
    const t = el('table');
    const head = el('tr');
    for (const h of ['topic', 'role', 'clock', 'messages', 'rate Hz', 'max gap s', 'max |dt| ms', 'held', 'dropped', 'invalid']) head.append(el('th', {}, h));
    t.append(el('thead')); t.firstChild.append(head);
    const tb = el('tbody');
    for (const s of d.sync) {
      const tr = el('tr');
      tr.append(el('td', {}, s.topic), el('td', {}, s.role), el('td', {}, s.clock), el('td', {class: 'num'}, s.messages),
                el('td', {class: 'num'}, fmt(s.rate_hz, 2)), el('td', {class: 'num'}, fmt(s.max_gap_s, 3)),
                el('td', {class: 'num'}, fmt(1e3 * s.max_offset_s, 1)), el('td', {class: 'num'}, s.held),
                el('td', {class: 'num'}, s.dropped), el('td', {class: 'num'}, s.invalid));
      tb.append(tr);
    }
    t.append(tb);
    box.append(el('h3', {}, 'sync report'), t);
    if (scroll) box.scrollIntoView({behavior: 'smooth'});
    document.body.dataset.rendered = String(drawn);
  }

  // -- training curves ----------------------------------------------------------------------
  if (D.training) {
    const tr = D.training, sec = $('#training');
    sec.style.display = '';
    $('#training-run').textContent = tr.run + ' \u00b7 ' + tr.steps + ' logged steps';
    const grid = $('#curves');
    const names = Object.keys(tr.curves);
    // the curves that say most about a run first; every metric stays in the diagnostics
    const main = ['loss', 'aux_loss', 'val/action_mse', 'lr', 'grad_norm',
                  'weighter/ess_ratio', 'weighter/nce_acc', 'weighter/w_at_min_share',
                  'weighter/w_at_max_share'];
    const order = main.filter((n) => names.includes(n));
    for (const n of order) {
      const pts = tr.curves[n];
      plotBox(grid, n, {t: pts.map((p) => p[0]), names: [n], series: [pts.map((p) => p[1])]}, {xlabel: 'step'});
    }
    const bySource = names.filter((n) => n.includes('/source/'));
    if (bySource.length) {
      const t = pts0(bySource);
      plotBox(grid, 'mean weight per source', {t: t, names: bySource.map((n) => n.split('/').pop()), series: bySource.map((n) => tr.curves[n].map((p) => p[1]))}, {xlabel: 'step'});
    }
    function pts0(ns) { return tr.curves[ns[0]].map((p) => p[0]); }
    const dt = $('#diagnostics tbody');
    const rows = Object.entries(tr.config).map(([k, v]) => [k, JSON.stringify(v)]);
    for (const [k, v] of Object.entries(tr.final)) rows.push(['final ' + k, Number(v).toPrecision(4)]);
    if (tr.result) for (const [k, v] of Object.entries(tr.result)) if (typeof v !== 'object') rows.push(['result ' + k, String(v)]);
    for (const [k, v] of rows) { const r = el('tr'); r.append(el('td', {}, k), el('td', {}, v)); dt.append(r); }
  }

  // -- the policy node's cadence log --------------------------------------------------------
  function cadence(C) {
    const sec = $('#cadence');
    sec.style.display = '';
    const rows = C.rows;
    const shown = rows.length < C.windows ? ' (the newest ' + rows.length + ' shown)' : '';
    $('#cadence-file').textContent = C.file + ' \u00b7 ' + C.windows + ' windows' + shown +
      ' \u00b7 ' + C.runs.map((r) => r.node + ' from ' + r.started.replace('T', ' ').slice(0, 19) + ' UTC at ' + r.rate_hz + ' Hz, ' +
        (r.horizon_ms === null ? 'forward commands' : 'horizon ' + fmt(r.horizon_ms, 0) + ' ms') +
        ', ' + r.windows + ' windows of ' + r.window_s + ' s').join('; ');
    add('cadence windows flagged', C.flagged + ' / ' + rows.length);
    const flags = $('#cadence-flags');
    const bad = rows.map((r, i) => [r, i]).filter(([r]) => r.flags.length);
    if (!bad.length) flags.append(el('li', {class: 'muted'}, 'no window flagged: no gap longer than the executed horizon, no overrun'));
    for (const [r, i] of bad.slice(0, 12)) {
      const li = el('li');
      const a = el('a', {'data-row': String(i)}, r.start.replace('T', ' ').slice(0, 19));
      a.addEventListener('click', () => { const tr = $('#cadence-table tbody').children[i]; tr.classList.add('sel'); tr.scrollIntoView({block: 'center'}); });
      li.append(a, document.createTextNode(' \u2014 ' + r.flags.join('; ')));
      flags.append(li);
    }
    if (bad.length > 12) flags.append(el('li', {class: 'muted'}, (bad.length - 12) + ' more flagged windows in the table'));
    // x: minutes the node ran, its runs back to back (hours off between runs take no room);
    // a new run breaks the lines
    const xs = [], pick = {};
    const KEYS = ['jitter_p99', 'max_gap', 'horizon_ms', 'inference_mean', 'inference_max', 'obs_age_mean', 'obs_age_max'];
    for (const k of KEYS) pick[k] = [];
    let ran = 0;
    rows.forEach((r, i) => {
      if (i && r.run !== rows[i - 1].run) { xs.push(ran / 60); for (const k of KEYS) pick[k].push(null); }
      xs.push(ran / 60);
      for (const k of KEYS) pick[k].push(r[k]);
      ran += r.duration_s;
    });
    const grid = $('#cadence-plots');
    const plot = (title, names, keys) => plotBox(grid, title, {t: xs, names: names, series: keys.map((k) => pick[k])}, {xlabel: 'min running', ymin: 0});
    plot('publish period jitter p99 and longest gap (ms)', ['jitter p99', 'longest gap', 'executed horizon'], ['jitter_p99', 'max_gap', 'horizon_ms']);
    plot('inference (ms)', ['mean', 'max'], ['inference_mean', 'inference_max']);
    plot('observation age (ms)', ['mean', 'max'], ['obs_age_mean', 'obs_age_max']);
    const COLS = [['start', 'start'], ['ticks', 'ticks'], ['obs_age_mean', 'obs age mean'], ['obs_age_max', 'max'],
      ['inference_mean', 'inference mean'], ['inference_max', 'max'], ['period_mean', 'period mean'], ['period_max', 'max'],
      ['jitter_p99', 'jitter p99'], ['max_gap', 'longest gap'], ['overruns', 'overruns'], ['flags', 'flags']];
    const head = $('#cadence-table thead tr');
    for (const [key, label] of COLS) head.append(el('th', {'data-col': key, class: key === 'start' || key === 'flags' ? '' : 'num'}, label));
    const body = $('#cadence-table tbody');
    for (const r of rows) {
      const tr = el('tr', {'data-run': r.run});
      if (r.flags.length) tr.dataset.flagged = '1';
      for (const [key] of COLS) {
        let v = r[key];
        if (key === 'start') v = r.start.replace('T', ' ').slice(0, 19) + (r.complete ? '' : ' (ended early)');
        else if (key === 'flags') v = r.flags.join('; ');
        else if (typeof v === 'number' && key !== 'ticks' && key !== 'overruns') v = fmt(v, 1);
        const td = el('td', {'data-col': key, class: key === 'start' || key === 'flags' ? '' : 'num'}, v);
        if (key === 'max_gap' && r.horizon_ms !== null && r.max_gap !== null && r.max_gap > r.horizon_ms) td.classList.add('bad');
        if (key === 'overruns' && r.overruns > 0) td.classList.add('bad');
        if (key === 'flags' || (key === 'start' && r.flags.length)) td.classList.add('warn');
        tr.append(td);
      }
      body.append(tr);
    }
  }
  if (D.cadence) cadence(D.cadence);

  render();
  const first = D.look_first.length ? D.look_first[0].key : (eps.length ? eps[0].key : null);
  if (first) select(first, false);
  document.body.dataset.rendered = String(drawn);
})();
