/**
 * A self-contained HTML report of a load run: one file that opens in a browser from disk, with no server and no
 * network. It inlines uPlot (its minified build and CSS, read from the installed `uplot` package) and the result's
 * JSON, and draws four charts against seconds since the load started:
 *
 *   latency   p95 (solid) and p99 (dashed) per version, ms
 *   errors    error ratio per version, %
 *   traffic   achieved and offered rate, rps
 *   flag      the flag's value read from Redis, and the gate's p95 per version from its latest verdict, ms
 *
 * Steps, the regression and the rollback are drawn as vertical lines on every chart. When the charts are drawn the
 * page sets `data-charts-rendered` on <html> to their count (tests read it).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { LoadResult } from './result.ts';
import { resultTables, type Table } from './table.ts';

const require = createRequire(import.meta.url);

/** uPlot's script and stylesheet, read once. */
function uplotAssets(): { js: string; css: string } {
  return {
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A JSON.stringify replacer: NaN and Infinity become null (JSON has neither). */
export const finiteOrNull = (_key: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? null : v);

/** JSON for a `<script type="application/json">` block: NaN and Infinity become null, `<` cannot close the tag. */
export function embeddedJson(value: unknown): string {
  return JSON.stringify(value, finiteOrNull).replace(/</g, '\\u003c');
}

function htmlTable(id: string, { header, rows }: Table): string {
  const cells = (tag: string, row: readonly string[]): string => `<tr>${row.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('')}</tr>`;
  return `<table id="${id}">${cells('th', header)}${rows.map((r) => cells('td', r)).join('')}</table>`;
}

function tables(result: LoadResult): string {
  const { steps, versions } = resultTables(result);
  const none = '<p>No response named a version (see <code>versions</code> in the profile).</p>';
  return htmlTable('steps', steps) + (versions.rows.length > 0 ? htmlTable('versions', versions) : none);
}

// The page's own script: builds the uPlot series from the embedded result. Plain ES2020, no template literals
// with `${` inside this TypeScript string.
const PAGE_SCRIPT = String.raw`
(function () {
  var result = JSON.parse(document.getElementById('result').textContent);
  var t = result.timeline.map(function (p) { return p.tS; });
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2', '#17becf'];
  var names = [];
  result.timeline.forEach(function (p) { Object.keys(p.versions).forEach(function (v) { if (v !== 'all' && names.indexOf(v) < 0) names.push(v); }); });
  names.sort();
  names.push('all');
  var colour = function (v) { return v === 'all' ? '#555' : palette[names.indexOf(v) % palette.length]; };
  var field = function (v, f) { return result.timeline.map(function (p) { var x = p.versions[v]; return x && x[f] !== null && x[f] !== undefined ? x[f] : null; }); };
  var markers = result.events.filter(function (e) { return e.kind !== 'stop'; });
  var markerColour = { step: 'rgba(0,0,0,0.18)', regression: '#ff7f0e', rollback: '#d62728' };
  var markerPlugin = {
    hooks: {
      draw: [function (u) {
        var ctx = u.ctx;
        ctx.save();
        markers.forEach(function (e) {
          var x = u.valToPos(e.tS, 'x', true);
          if (!(x >= u.bbox.left && x <= u.bbox.left + u.bbox.width)) return;
          ctx.strokeStyle = markerColour[e.kind];
          ctx.lineWidth = e.kind === 'step' ? 1 : 2 * devicePixelRatio;
          ctx.setLineDash(e.kind === 'step' ? [4, 4] : []);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          if (e.kind !== 'step') {
            ctx.fillStyle = markerColour[e.kind];
            ctx.font = (11 * devicePixelRatio) + 'px sans-serif';
            ctx.fillText(e.kind, x + 4, u.bbox.top + 12 * devicePixelRatio);
          }
        });
        ctx.restore();
      }]
    }
  };
  var width = function () { return Math.min(1100, document.body.clientWidth - 20); };
  var charts = [];
  var fromZero = { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } };
  var chart = function (id, title, yLabel, series, data, yAxes) {
    var el = document.getElementById(id);
    var opts = {
      title: title, width: width(), height: 280, plugins: [markerPlugin],
      scales: { x: { time: false }, y: fromZero, flag: fromZero, ms: fromZero },
      axes: [{ label: 'seconds since the load started' }].concat(yAxes || [{ label: yLabel }]),
      series: [{ label: 's' }].concat(series)
    };
    charts.push(new uPlot(opts, [t].concat(data), el));
  };

  var latSeries = [], latData = [];
  names.forEach(function (v) {
    latSeries.push({ label: v + ' p95', stroke: colour(v), width: v === 'all' ? 1 : 2, spanGaps: true });
    latData.push(field(v, 'p95Ms'));
    latSeries.push({ label: v + ' p99', stroke: colour(v), dash: [6, 4], width: 1, spanGaps: true });
    latData.push(field(v, 'p99Ms'));
  });
  chart('chart-latency', 'Latency per version (p95 solid, p99 dashed)', 'ms', latSeries, latData);

  chart('chart-errors', 'Error ratio per version (5xx and failed requests)', '%',
    names.map(function (v) { return { label: v, stroke: colour(v), width: v === 'all' ? 1 : 2, spanGaps: true }; }),
    names.map(function (v) { return field(v, 'errorRatio').map(function (r) { return r === null ? null : r * 100; }); }));

  chart('chart-traffic', 'Throughput', 'rps',
    [{ label: 'achieved', stroke: '#1f77b4', width: 2 }, { label: 'offered', stroke: '#999', dash: [6, 4], width: 1 }],
    [result.timeline.map(function (p) { return p.achievedRps; }), result.timeline.map(function (p) { return p.offeredRps; })]);

  var flagNote = document.getElementById('flag-note');
  if (result.flag || result.timeline.some(function (p) { return p.gate; })) {
    var num = function (s) { var n = Number(s); return s === null || s === undefined || !isFinite(n) ? null : n; };
    var gate = function (side) { return result.timeline.map(function (p) { return p.gate && p.gate[side] && p.gate[side].p95Ms !== null ? p.gate[side].p95Ms : null; }); };
    var gateName = function (side) { var p = result.timeline.find(function (q) { return q.gate && q.gate[side]; }); return p ? p.gate[side].version : side; };
    chart('chart-flag', 'Flag in Redis and the gate\'s view (p95 of the judged window)', null,
      [{ label: 'flag' + (result.flag ? ' ' + result.flag.key : ''), stroke: '#000', width: 2, paths: uPlot.paths.stepped({ align: 1 }), scale: 'flag' },
       { label: 'gate p95 ' + gateName('baseline'), stroke: colour(gateName('baseline')), width: 1, scale: 'ms' },
       { label: 'gate p95 ' + gateName('canary'), stroke: colour(gateName('canary')), width: 1, scale: 'ms' }],
      [result.timeline.map(function (p) { return num(p.flag); }), gate('baseline'), gate('canary')],
      [{ scale: 'flag', label: 'flag value' }, { scale: 'ms', side: 1, label: 'gate p95 ms', grid: { show: false } }]);
    flagNote.textContent = result.rollback ? 'Rolled back at ' + result.rollback.tS + ' s (flag = ' + result.rollback.flag + ').' : 'No rollback during the run.';
  } else {
    flagNote.textContent = 'No flag watched: add monitor.redis (and monitor.sidecars for the gate\'s view) to the profile.';
  }
  document.documentElement.setAttribute('data-charts-rendered', String(charts.length));
})();
`;

/**
 * The report as one HTML document.
 * @param result a run's result (as runProfile returns it, or as read back from result.json)
 */
export function htmlReport(result: LoadResult): string {
  const { js, css } = uplotAssets();
  const title = `canary-gate load: ${result.profile.name}`;
  const rollback = result.rollback ? ` Rollback at ${result.rollback.tS} s.` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${escapeHtml(title)}</title>
<style>${css}</style>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.chart { margin: 1em 0; }
.legend-markers span { margin-right: 1.5em; }
</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(result.profile.description)}</p>
<p>Target ${escapeHtml(result.target)}, started ${escapeHtml(result.startedAt)}, ran ${result.elapsedS} s (${escapeHtml(result.stopReason)}).${escapeHtml(rollback)}
Latency is the client's, from sending a request to the end of its response; errors are 5xx responses and failed requests.</p>
${tables(result)}
<p class="legend-markers">Vertical lines: <span style="color:#888">dashed grey: a new step</span><span style="color:#ff7f0e">orange: regression injected</span><span style="color:#d62728">red: rollback (flag written)</span></p>
<div class="chart" id="chart-latency"></div>
<div class="chart" id="chart-errors"></div>
<div class="chart" id="chart-traffic"></div>
<div class="chart" id="chart-flag"></div>
<p id="flag-note"></p>
<script type="application/json" id="result">${embeddedJson(result)}</script>
<script>${js.replace(/<\/script/gi, '<\\/script')}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
