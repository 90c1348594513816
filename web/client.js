/*
 * The page's script (web/page.html), for the browser: plain ES2020, no
 * modules, Chart.js as the global `Chart` (inlined beside it). It folds run
 * events (coordinator/run-events.ts) into a state and draws it: from
 * BOOT.events for a report, from the server-sent events at BOOT.eventsUrl for
 * the live dashboard (history first, then live; an `hello` event starts a
 * fresh state, as after a coordinator restart).
 *
 * For tests and tools: `window.bertfleetView.counts` and the body's data-
 * attributes (data-loss-points, data-steps, data-rendered) say how many
 * points each chart holds; each canvas has data-points.
 */
(function () {
  'use strict';
  var COLORS = ['#2f6fdb', '#d9480f', '#2b8a3e', '#862e9c', '#0b7285', '#c2255c', '#5c940d', '#e67700', '#495057'];
  var PHASE_LEVELS = ['starting', 'pretrain', 'finetune', 'evaluate', 'done'];
  var CLASSIFY_SPLITS = ['validation', 'test'];
  var PRETRAIN_SPLIT = 'pretrain held-out';

  var state = fresh();
  var charts = {};
  var renderTimer = null;

  function fresh() {
    return {
      run: null, t0: null, lastAt: null, steps: { pretrain: new Map(), finetune: new Map() },
      phases: [], members: [], timings: new Map(), evaluations: new Map(), log: [], end: null,
    };
  }

  function ingest(e) {
    if (typeof e.at === 'number') {
      if (state.t0 === null || e.at < state.t0) state.t0 = e.at;
      state.lastAt = state.lastAt === null ? e.at : Math.max(state.lastAt, e.at);
    }
    switch (e.type) {
      case 'run': state.run = e; break;
      case 'step':
        if (!state.steps[e.phase]) state.steps[e.phase] = new Map();
        state.steps[e.phase].set(e.step, e);
        break;
      case 'phase': state.phases.push(e); state.log.push(e); break;
      case 'member': state.members.push(e); state.log.push(e); break;
      case 'checkpoint': state.log.push(e); break;
      case 'worker-timings':
        if (!state.timings.has(e.workerId)) state.timings.set(e.workerId, []);
        state.timings.get(e.workerId).push(e);
        break;
      case 'evaluation': state.evaluations.set(e.split, e.metrics); break;
      case 'finished': case 'failed': case 'stopped': state.end = e; state.log.push(e); break;
      default: break;
    }
  }

  // ---- formatting

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; });
  }
  function pct(x) { return typeof x === 'number' ? (100 * x).toFixed(1) + '%' : 'n/a'; }
  function num(x, d) { return typeof x === 'number' && isFinite(x) ? x.toFixed(d) : 'n/a'; }
  function secs(at) { return state.t0 === null || typeof at !== 'number' ? null : (at - state.t0) / 1000; }
  function finite(y) { return typeof y === 'number' && isFinite(y); }

  // ---- charts

  function lineChart(id, xTitle, yTitle, extraScales) {
    var scales = {
      x: { type: 'linear', title: { display: true, text: xTitle }, ticks: { precision: 0 } },
      y: { title: { display: true, text: yTitle } },
    };
    for (var k in extraScales || {}) scales[k] = extraScales[k];
    return new Chart(document.getElementById(id), {
      type: 'line',
      data: { datasets: [] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false, spanGaps: true,
        interaction: { mode: 'nearest', intersect: false },
        plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
        scales: scales,
      },
    });
  }

  function setSeries(id, series) {
    var chart = charts[id];
    var points = 0;
    chart.data.datasets = series.map(function (s, i) {
      points += s.data.length;
      var color = s.color || COLORS[i % COLORS.length];
      return {
        label: s.label, data: s.data, borderColor: color, backgroundColor: color, borderWidth: 1.5,
        borderDash: s.dash || [], pointRadius: s.data.length > 80 ? 0 : 2, stepped: s.stepped || false,
        yAxisID: s.axis || 'y',
      };
    });
    chart.update('none');
    chart.canvas.dataset.points = String(points);
    return points;
  }

  function stepSeries(phase, field) {
    var out = [];
    var m = state.steps[phase];
    if (!m) return out;
    var keys = Array.from(m.keys()).sort(function (a, b) { return a - b; });
    for (var i = 0; i < keys.length; i++) {
      var e = m.get(keys[i]);
      if (finite(e[field])) out.push({ x: e.step, y: e[field] });
    }
    return out;
  }

  function makeCharts() {
    charts['loss-pretrain'] = lineChart('loss-pretrain', 'step', 'loss');
    charts['loss-finetune'] = lineChart('loss-finetune', 'step', 'loss');
    charts['acc-pretrain'] = lineChart('acc-pretrain', 'step', 'accuracy');
    charts['acc-finetune'] = lineChart('acc-finetune', 'step', 'accuracy');
    charts['throughput'] = lineChart('throughput', 'step', 'sequences / s');
    charts['workers'] = lineChart('workers', 'seconds since the run started', 'mean step time (ms)');
    charts['timeline'] = lineChart('timeline', 'seconds since the run started', 'workers', {
      y: { title: { display: true, text: 'workers' }, beginAtZero: true, ticks: { precision: 0 } },
      phase: {
        type: 'linear', axis: 'y', position: 'right', min: 0, max: PHASE_LEVELS.length - 1, title: { display: true, text: 'phase' },
        ticks: { stepSize: 1, callback: function (v) { return PHASE_LEVELS[v] || ''; } }, grid: { drawOnChartArea: false },
      },
    });
    charts['final-chart'] = new Chart(document.getElementById('final-chart'), {
      type: 'bar',
      data: { labels: [], datasets: [] },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        scales: { y: { min: 0, max: 1, title: { display: true, text: 'share of examples' } } },
        plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
      },
    });
  }

  // ---- sections

  function renderCurves(counts) {
    var lossP = setSeries('loss-pretrain', [
      { label: 'loss (MLM + NSP)', data: stepSeries('pretrain', 'loss') },
      { label: 'MLM loss', data: stepSeries('pretrain', 'mlmLoss'), dash: [4, 3] },
      { label: 'NSP loss', data: stepSeries('pretrain', 'nspLoss'), dash: [2, 2] },
    ]);
    var lossF = setSeries('loss-finetune', [{ label: 'classification loss', data: stepSeries('finetune', 'loss') }]);
    setSeries('acc-pretrain', [
      { label: 'MLM accuracy', data: stepSeries('pretrain', 'mlmAccuracy') },
      { label: 'NSP accuracy', data: stepSeries('pretrain', 'nspAccuracy') },
    ]);
    counts.accuracyPoints = stepSeries('finetune', 'accuracy').length;
    setSeries('acc-finetune', [{ label: 'accuracy', data: stepSeries('finetune', 'accuracy') }]);
    counts.lossPoints = stepSeries('pretrain', 'loss').length + stepSeries('finetune', 'loss').length;
    counts.lossSeriesPoints = lossP + lossF;
    counts.steps = state.steps.pretrain.size + state.steps.finetune.size;
    var tp = [
      { label: 'pretraining', data: stepSeries('pretrain', 'seqPerSec') },
      { label: 'finetuning', data: stepSeries('finetune', 'seqPerSec') },
    ];
    counts.throughputPoints = setSeries('throughput', tp);
    document.getElementById('throughput-note').textContent = counts.throughputPoints === 0 && counts.steps > 0
      ? 'Step times were not recorded for this run (rebuilt from steps.jsonl alone).' : '';
  }

  function renderWorkers(counts) {
    var series = [];
    var ids = Array.from(state.timings.keys()).sort();
    ids.forEach(function (id) {
      series.push({ label: id, data: state.timings.get(id).map(function (t) { return { x: secs(t.at), y: t.stepMs }; }) });
    });
    counts.workerPoints = setSeries('workers', series);
    var note = [];
    var workers = BOOT.summary && BOOT.summary.workers;
    if (workers) {
      Object.keys(workers).sort().forEach(function (id) {
        var w = workers[id];
        note.push(id + ': ' + w.microBatches + ' micro-batches, ' + num(w.msPerMicroBatch, 1) + ' ms each, mean step ' + num(w.meanStepMs, 1) + ' ms' + (w.straggler ? ' (straggler)' : ''));
      });
    }
    if (ids.length === 0) note.unshift(state.run && state.run.mode === 'train' ? 'In-process run: no worker reports.' : 'No worker timings reported yet.');
    document.getElementById('workers-note').textContent = note.join(' · ');
  }

  function renderTimeline(counts) {
    var end = state.lastAt;
    var members = state.members.map(function (m) { return { x: secs(m.at), y: m.members }; });
    var phases = state.phases.map(function (p) { return { x: secs(p.at), y: Math.max(0, PHASE_LEVELS.indexOf(p.phase)) }; });
    if (end !== null && members.length > 0) members.push({ x: secs(end), y: members[members.length - 1].y });
    if (end !== null && phases.length > 0) phases.push({ x: secs(end), y: phases[phases.length - 1].y });
    counts.timelinePoints = setSeries('timeline', [
      { label: 'workers in the run', data: members, stepped: true },
      { label: 'phase', data: phases, stepped: true, axis: 'phase', dash: [5, 3] },
    ]);
    document.getElementById('timeline-note').textContent = state.phases.length === 0 && counts.steps > 0
      ? 'Not recorded for this run (rebuilt from steps.jsonl alone).' : '';
    var items = state.log.slice(-200).map(function (e) {
      var t = secs(e.at);
      var when = t === null ? '' : t.toFixed(1) + ' s: ';
      if (e.type === 'member') {
        return when + 'worker ' + esc(e.workerId) + ' ' + e.change + (e.rejoined ? ' again' : '') + (e.reason ? ' (' + esc(e.reason) + (e.detail ? ': ' + esc(e.detail) : '') + ')' : '') + ', ' + e.members + ' in the run';
      }
      if (e.type === 'phase') return when + 'phase ' + esc(e.phase) + ' from step ' + e.step;
      if (e.type === 'checkpoint') return when + 'checkpoint ' + esc(e.phase) + ' step ' + e.step;
      return when + 'run ' + e.type + (e.error ? ': ' + esc(e.error) : '');
    });
    document.getElementById('timeline-log').innerHTML = items.map(function (s) { return '<li>' + s + '</li>'; }).join('');
  }

  /** Classification metrics by split: the live evaluations, else the report's metrics.json. */
  function classification() {
    var out = {};
    var m = BOOT.metrics;
    CLASSIFY_SPLITS.forEach(function (s) {
      var v = state.evaluations.get(s) || (m && m.finetuning && m.finetuning[s]);
      if (v && typeof v.accuracy === 'number') out[s] = v;
    });
    return out;
  }

  function pretraining() {
    var v = state.evaluations.get(PRETRAIN_SPLIT) || (BOOT.metrics && BOOT.metrics.pretraining);
    return v && typeof v.mlmAccuracy === 'number' ? v : null;
  }

  function renderFinal(counts) {
    var splits = classification();
    var names = Object.keys(splits);
    var body = document.getElementById('final-body');
    var box = document.getElementById('final-chart-box');
    counts.finalSplits = names.length;
    if (names.length === 0) return;
    body.className = '';
    var rows = names.map(function (s) {
      var v = splits[s];
      var base = v.majorityBaseline;
      return '<tr><td>' + esc(s) + '</td><td>' + v.examples + '</td><td>' + pct(v.accuracy) + '</td><td>' +
        (base ? pct(base.accuracy) + ' (always "' + esc(base.label) + '")' : 'n/a') + '</td><td>' + num(v.macro && v.macro.f1, 3) + '</td><td>' +
        (v.collapsedTo ? '<span class="warn">every prediction is "' + esc(v.collapsedTo) + '"</span>' : '') + '</td></tr>';
    });
    var pre = pretraining();
    body.innerHTML = '<table><tr><th>split</th><th>examples</th><th>accuracy</th><th>majority baseline</th><th>macro F1</th><th></th></tr>' +
      rows.join('') + '</table>' +
      (pre ? '<p class="note">Pretraining held-out: MLM accuracy ' + pct(pre.mlmAccuracy) + ', perplexity ' + num(pre.perplexity, 2) + ', NSP accuracy ' + pct(pre.nspAccuracy) + '.</p>' : '');
    var chart = charts['final-chart'];
    if (box.hidden) {
      box.hidden = false;
      chart.resize();
    }
    chart.data.labels = names;
    chart.data.datasets = [
      { label: 'accuracy', data: names.map(function (s) { return splits[s].accuracy; }), backgroundColor: COLORS[0] },
      { label: 'majority baseline', data: names.map(function (s) { return splits[s].majorityBaseline ? splits[s].majorityBaseline.accuracy : null; }), backgroundColor: COLORS[8] },
      { label: 'macro F1', data: names.map(function (s) { return splits[s].macro ? splits[s].macro.f1 : null; }), backgroundColor: COLORS[2] },
    ];
    chart.update('none');
    chart.canvas.dataset.points = String(names.length * 3);
  }

  function matrixTable(v) {
    var labels = (v.perClass || []).map(function (c) { return c.label; });
    var cm = v.confusionMatrix || [];
    var max = 1;
    cm.forEach(function (row) { row.forEach(function (n) { max = Math.max(max, n); }); });
    var head = '<tr><th>true \\ predicted</th>' + labels.map(function (l) { return '<th>' + esc(l) + '</th>'; }).join('') + '</tr>';
    var rows = cm.map(function (row, i) {
      return '<tr><th>' + esc(labels[i] !== undefined ? labels[i] : i) + '</th>' + row.map(function (n, j) {
        var a = (0.08 + 0.6 * n / max).toFixed(2);
        var hue = i === j ? '27,127,59' : '179,38,30';
        return '<td style="background: rgba(' + hue + ',' + (n === 0 ? 0 : a) + ')">' + n + '</td>';
      }).join('') + '</tr>';
    });
    var per = (v.perClass || []).map(function (c) {
      return '<tr><td>' + esc(c.label) + '</td><td>' + num(c.precision, 3) + '</td><td>' + num(c.recall, 3) + '</td><td>' + num(c.f1, 3) + '</td><td>' + c.support + '</td></tr>';
    });
    return '<table class="matrix">' + head + rows.join('') + '</table>' +
      '<table style="margin-top:8px"><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>' + per.join('') + '</table>';
  }

  function renderEvaluation(counts) {
    var splits = classification();
    var names = Object.keys(splits);
    var el = document.getElementById('evaluation');
    counts.matrices = names.length;
    if (names.length === 0) return;
    el.innerHTML = names.map(function (s) {
      var v = splits[s];
      return '<div><h2>' + esc(s) + ': accuracy ' + pct(v.accuracy) + ', loss ' + num(v.loss, 4) + '</h2>' + matrixTable(v) + '</div>';
    }).join('');
  }

  function renderHeader() {
    var status = document.getElementById('status');
    var facts = document.getElementById('facts');
    var r = state.run;
    if (r) {
      facts.textContent = [r.mode === 'train' ? 'bertfleet train (in-process)' : 'distributed: ' + r.workers + ' workers expected',
        'model ' + r.model, 'seed ' + r.seed, 'output ' + r.output, r.resumed ? 'resumed' : ''].filter(Boolean).join(' · ');
    } else if (BOOT.output) {
      facts.textContent = 'output ' + BOOT.output;
    }
    var last = null;
    ['finetune', 'pretrain'].forEach(function (p) {
      if (last === null && state.steps[p] && state.steps[p].size > 0) last = Array.from(state.steps[p].values()).pop();
    });
    var where = last ? last.phase + ' step ' + last.step + '/' + last.total : 'no step yet';
    if (state.end) {
      status.className = state.end.type === 'finished' ? 'live' : 'failed';
      status.textContent = 'run ' + state.end.type + (state.end.error ? ': ' + state.end.error : '') + (state.end.type === 'finished' ? '' : ' at ' + where);
    } else if (BOOT.mode === 'report') {
      status.className = 'failed';
      status.textContent = 'run did not finish (last: ' + where + ')';
    } else if (connection === 'open') {
      status.className = 'live';
      status.textContent = 'live: ' + where;
    } else {
      status.className = 'gone';
      status.textContent = connection === 'connecting' ? 'connecting…' : 'disconnected from the coordinator (retrying): ' + where;
    }
    if (BOOT.mode === 'report') status.textContent += ' · report made ' + BOOT.generatedAt;
  }

  function render() {
    renderTimer = null;
    var counts = {};
    renderCurves(counts);
    renderWorkers(counts);
    renderTimeline(counts);
    renderFinal(counts);
    renderEvaluation(counts);
    renderHeader();
    var b = document.body.dataset;
    b.lossPoints = String(counts.lossPoints);
    b.steps = String(counts.steps);
    b.rendered = String(Number(b.rendered || 0) + 1);
    window.bertfleetView = { counts: counts, state: state };
  }

  function schedule() {
    if (renderTimer === null) renderTimer = setTimeout(render, 150);
  }

  var connection = 'connecting';

  function live(url) {
    var es = new EventSource(url);
    es.addEventListener('hello', function () {
      state = fresh();
      connection = 'open';
      schedule();
    });
    es.onmessage = function (m) {
      ingest(JSON.parse(m.data));
      schedule();
    };
    es.onerror = function () {
      if (state.end) {
        es.close();
        connection = 'closed';
      } else {
        connection = 'lost';
      }
      schedule();
    };
  }

  makeCharts();
  if (BOOT.mode === 'report') {
    (BOOT.events || []).forEach(ingest);
    render();
    (BOOT.notes || []).forEach(function (n) {
      var p = document.createElement('p');
      p.className = 'note';
      p.textContent = n;
      document.querySelector('header').appendChild(p);
    });
  } else {
    render();
    live(BOOT.eventsUrl);
  }
})();
