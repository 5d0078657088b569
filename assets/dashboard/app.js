/*
 * semiseg's dashboard and report page (plain browser JavaScript, no build step). Charts are drawn by
 * Chart.js (and its box-plot plugin in the report), which the page gets from the semiseg package itself:
 * served by `semiseg dashboard`, inlined by `semiseg report`. Nothing is fetched from elsewhere.
 *
 * Live mode (<body data-mode="live">): an EventSource on /events gets a snapshot of every run's log
 * events, then the events appended to each log.jsonl as training writes them. Report mode: the same
 * events, embedded in <script type="application/json" id="semiseg-data">.
 */
(function () {
  'use strict';
  /* global Chart */
  var PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
  var DASHES = [[], [6, 3], [2, 2], [8, 3, 2, 3], [1, 3]];
  var mode = document.body.getAttribute('data-mode') || 'report';
  var state = { runs: [], classNames: null, connected: false };
  var charts = {};
  var pending = false;

  function colorOf(i) {
    return PALETTE[i % PALETTE.length];
  }

  function emptyRun(info) {
    return {
      name: info.name,
      dir: info.dir || '',
      status: info.status || 'ok',
      recipe: '',
      method: '',
      stages: [],
      loss: [],
      parts: {},
      lr: [],
      secPerIt: [],
      val: {},
      validations: 0,
      last: null,
      prev: null,
      done: null,
      best: null,
      overlays: info.overlays || null,
    };
  }

  function clearSeries(run) {
    run.loss = [];
    run.parts = {};
    run.lr = [];
    run.secPerIt = [];
    run.val = {};
    run.validations = 0;
    run.last = null;
    run.prev = null;
    run.done = null;
    run.best = null;
  }

  /** Global iteration: a stage's iterations follow the previous stages' (BCP: pre-training, then self-training). */
  function globalIteration(run, stage, it) {
    var offset = 0;
    for (var k = 0; k < run.stages.length; k++) {
      if (run.stages[k].name === stage) return offset + it;
      offset += run.stages[k].iterations;
    }
    return offset + it;
  }

  function apply(run, e) {
    var x;
    switch (e.type) {
      case 'start':
        if (!e.resumedAt) clearSeries(run);
        run.recipe = e.recipe || '';
        run.method = e.method || '';
        run.stages = Array.isArray(e.stages) ? e.stages : [];
        run.prev = null;
        break;
      case 'iteration':
        x = globalIteration(run, e.stage, e.iteration);
        if (typeof e.loss === 'number') run.loss.push({ x: x, y: e.loss });
        if (typeof e.lr === 'number') run.lr.push({ x: x, y: e.lr });
        if (e.parts && typeof e.parts === 'object') {
          Object.keys(e.parts).forEach(function (k) {
            if (typeof e.parts[k] !== 'number') return;
            (run.parts[k] = run.parts[k] || []).push({ x: x, y: e.parts[k] });
          });
        }
        if (run.prev && x > run.prev.x && e.elapsedSeconds > run.prev.elapsed) {
          run.secPerIt.push({ x: x, y: (e.elapsedSeconds - run.prev.elapsed) / (x - run.prev.x) });
        }
        run.prev = { x: x, elapsed: e.elapsedSeconds };
        run.last = e;
        break;
      case 'validation': {
        x = globalIteration(run, e.stage, e.iteration);
        var v = (run.val[e.stage] = run.val[e.stage] || { mean: [], perClass: [] });
        v.mean.push({ x: x, y: 100 * e.dice });
        (e.perClass || []).forEach(function (d, c) {
          (v.perClass[c] = v.perClass[c] || []).push({ x: x, y: 100 * d });
        });
        run.validations++;
        if (!run.best || e.dice > run.best.dice) run.best = { dice: e.dice, stage: e.stage, iteration: e.iteration };
        break;
      }
      case 'done':
        run.done = e;
        break;
      default:
        break;
    }
  }

  function className(c) {
    var names = state.classNames;
    return names && names[c] ? names[c] : 'class ' + (c + 1);
  }

  function lineDataset(label, data, color, dash, width) {
    return {
      label: label,
      data: data,
      borderColor: color,
      backgroundColor: color,
      borderDash: dash || [],
      borderWidth: width || 1.5,
      pointRadius: data.length > 60 ? 0 : 2,
      tension: 0,
      fill: false,
    };
  }

  function datasets(kind) {
    var out = [];
    state.runs.forEach(function (run, i) {
      var color = colorOf(i);
      var prefix = state.runs.length > 1 ? run.name + ' · ' : '';
      if (kind === 'loss') out.push(lineDataset(prefix + 'loss', run.loss, color));
      else if (kind === 'lr') out.push(lineDataset(prefix + 'lr', run.lr, color));
      else if (kind === 'time') out.push(lineDataset(prefix + 's / iteration', run.secPerIt, color));
      else if (kind === 'parts') {
        Object.keys(run.parts).forEach(function (k, j) {
          out.push(lineDataset(prefix + k, run.parts[k], color, DASHES[j % DASHES.length]));
        });
      } else if (kind === 'dice') {
        Object.keys(run.val).forEach(function (stage) {
          var v = run.val[stage];
          var sp = run.stages.length > 1 ? ' (' + stage + ')' : '';
          out.push(lineDataset(prefix + 'mean' + sp, v.mean, color, stage === 'pretrain' ? [4, 2] : [], 2.5));
          v.perClass.forEach(function (series, c) {
            var d = lineDataset(prefix + className(c) + sp, series, color, DASHES[(c + 1) % DASHES.length], 1);
            d.perClass = true;
            out.push(d);
          });
        });
      }
    });
    return out;
  }

  var CHARTS = [
    { id: 'loss', title: 'Loss', y: 'loss', log: false },
    { id: 'parts', title: 'Loss parts', y: 'value', log: false },
    { id: 'dice', title: 'Validation Dice % (mean and per class)', y: 'Dice %', log: false },
    { id: 'lr', title: 'Learning rate', y: 'lr', log: false },
    { id: 'time', title: 'Seconds per iteration', y: 's', log: false },
  ];

  function makeChart(spec) {
    var canvas = document.getElementById('chart-' + spec.id);
    if (!canvas) return null;
    return new Chart(canvas, {
      type: 'line',
      data: { datasets: datasets(spec.id) },
      options: {
        animation: false,
        parsing: false,
        normalized: true,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'nearest', intersect: false },
        plugins: {
          legend: {
            position: 'bottom',
            labels: {
              boxWidth: 12,
              font: { size: 11 },
              // the Dice chart's legend names the means; the thin per-class lines are explained below it
              filter: function (item, data) {
                return spec.id !== 'dice' || !data.datasets[item.datasetIndex].perClass;
              },
            },
          },
          decimation: { enabled: true, algorithm: 'lttb', samples: 800 },
          title: { display: false },
        },
        scales: {
          x: { type: 'linear', title: { display: true, text: 'iteration' } },
          y: { type: 'linear', title: { display: true, text: spec.y } },
        },
      },
    });
  }

  function fmt(x, digits) {
    return typeof x === 'number' && isFinite(x) ? x.toFixed(digits) : '–';
  }

  function duration(s) {
    if (typeof s !== 'number' || !isFinite(s)) return '–';
    s = Math.round(s);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + 'h' + String(m).padStart(2, '0') + 'm' : m + 'm' + String(s % 60).padStart(2, '0') + 's';
  }

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function renderRuns() {
    var body = document.getElementById('runs-body');
    if (!body) return;
    body.textContent = '';
    state.runs.forEach(function (run, i) {
      var tr = document.createElement('tr');
      var sw = text('td', '■ ' + run.name);
      sw.style.color = colorOf(i);
      tr.appendChild(sw);
      var l = run.last;
      var status = run.status === 'missing' ? 'no log yet' : run.status === 'empty' && !l ? 'empty log' : run.done ? 'done' : l ? 'training' : 'started';
      var last = run.secPerIt.length ? run.secPerIt[run.secPerIt.length - 1].y : NaN;
      [
        run.recipe ? run.recipe + ' (' + run.method + ')' : '–',
        status,
        l ? l.stage + ' ' + l.iteration + ' / ' + l.iterations : '–',
        l ? fmt(l.loss, 4) : '–',
        run.best ? fmt(100 * run.best.dice, 2) + ' (' + run.best.stage + ' ' + run.best.iteration + ')' : '–',
        fmt(last, 3),
        run.done ? 'took ' + duration(run.done.seconds) : l ? duration(l.etaSeconds) : '–',
      ].forEach(function (v) {
        tr.appendChild(text('td', v));
      });
      body.appendChild(tr);
    });
  }

  function renderOverlays() {
    var box = document.getElementById('overlays');
    if (!box || mode !== 'live') return;
    box.textContent = '';
    state.runs.forEach(function (run, i) {
      var o = run.overlays;
      var fig = document.createElement('figure');
      fig.className = 'overlay-run';
      var cap = o ? run.name + ': ' + o.volume + ', ' + o.stage + ' iteration ' + o.iteration + ', Dice ' + fmt(100 * o.dice, 2) + ' %' : run.name + ': no validation pictures yet';
      fig.appendChild(text('figcaption', cap));
      if (o) {
        o.files.forEach(function (f) {
          var img = document.createElement('img');
          img.className = 'overlay';
          img.alt = run.name + ' ' + f;
          img.src = 'runs/' + i + '/overlays/' + encodeURIComponent(f) + '?v=' + encodeURIComponent(o.stage + '-' + o.iteration);
          fig.appendChild(img);
        });
      }
      box.appendChild(fig);
    });
  }

  function render() {
    pending = false;
    CHARTS.forEach(function (spec) {
      if (!charts[spec.id]) {
        charts[spec.id] = makeChart(spec);
        return;
      }
      charts[spec.id].data.datasets = datasets(spec.id);
      charts[spec.id].update('none');
    });
    renderRuns();
    renderOverlays();
    var st = document.getElementById('status');
    if (st && mode === 'live') st.textContent = state.connected ? 'live · updated ' + new Date().toLocaleTimeString() : 'reconnecting…';
    document.body.setAttribute('data-ready', '1');
  }

  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(render);
  }

  function load(snapshot) {
    state.runs = snapshot.runs.map(function (info) {
      var run = emptyRun(info);
      (info.events || []).forEach(function (e) {
        apply(run, e);
      });
      return run;
    });
    if (snapshot.classNames) state.classNames = snapshot.classNames;
    schedule();
  }

  function boxplot() {
    var canvas = document.getElementById('chart-boxplot');
    var data = window.semisegReport;
    if (!canvas || !data || !data.boxes) return;
    charts.boxplot = new Chart(canvas, {
      type: 'boxplot',
      data: {
        labels: data.boxes.map(function (b) {
          return b.label;
        }),
        datasets: [
          {
            label: 'per-case Dice % (mean over classes)',
            data: data.boxes.map(function (b) {
              return b.values;
            }),
            backgroundColor: 'rgba(31,119,180,0.25)',
            borderColor: '#1f77b4',
            borderWidth: 1.5,
            outlierBackgroundColor: '#d62728',
            itemRadius: 2,
            itemStyle: 'circle',
            itemBackgroundColor: 'rgba(0,0,0,0.45)',
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
        scales: { y: { title: { display: true, text: 'Dice %' } } },
      },
    });
  }

  window.semiseg = {
    charts: charts,
    state: state,
    validations: function (i) {
      return state.runs[i] ? state.runs[i].validations : 0;
    },
  };

  if (mode === 'live') {
    var source = new EventSource('events');
    source.addEventListener('snapshot', function (m) {
      state.connected = true;
      load(JSON.parse(m.data));
    });
    source.addEventListener('append', function (m) {
      var d = JSON.parse(m.data);
      var run = state.runs[d.run];
      if (!run) return;
      run.status = 'ok';
      d.events.forEach(function (e) {
        apply(run, e);
      });
      schedule();
    });
    source.addEventListener('overlays', function (m) {
      var d = JSON.parse(m.data);
      if (state.runs[d.run]) state.runs[d.run].overlays = d.index;
      schedule();
    });
    source.onerror = function () {
      state.connected = false;
      schedule();
    };
  } else {
    var el = document.getElementById('semiseg-data');
    var data = el ? JSON.parse(el.textContent) : { runs: [] };
    window.semisegReport = data;
    load(data);
    boxplot();
  }
})();
