/**
 * `--report report.html`: one self-contained HTML file (inline CSS, JS and SVG; no network, no
 * CDN) with the picture unit scaling is known for:
 *
 * - log2 RMS of every tensor along the graph's topological order (`order`), forward and — when
 *   the report has gradient entries — backward, with each format's representable range drawn as
 *   a band (log2 min subnormal … log2 max; the normal range darker). A whisker rises from the RMS
 *   to the absmax. Predicted and measured share the plot when both exist (a "compare" report
 *   whose tensors carry `predicted`, or several reports);
 * - a risk heatmap: tensors (along the same order) × formats, colour = worst of the overflow and
 *   underflow fractions;
 * - a sortable, filterable table of every tensor (click a header to sort).
 *
 * Safety: tensor names are untrusted. The data travels as JSON in a `<script type=
 * "application/json">` block with `<`, `>`, `&`, U+2028 and U+2029 escaped, and the page builds
 * every element with textContent / setAttribute, never innerHTML, so no name can become markup.
 */
import { parseFormat } from '../formats/format.js';
import type { Report, TensorReport } from './types.js';

export interface HtmlReportOptions {
  /** Page title (default: the model path). */
  title?: string;
  /** One label per report (default: its mode, numbered when repeated). */
  labels?: string[];
}

interface PayloadFormat {
  name: string;
  max: number;
  minNormal: number;
  minSubnormal: number;
}

/** Per tensor: [overflow, underflow, subnormal, sqnrDb] per format. */
type PayloadRisk = Record<string, [number, number, number, number | null]>;

interface PayloadTensor {
  name: string;
  kind: string;
  gradientOf: string | null;
  op: string | null;
  node: string | null;
  dtype: string;
  shape: string;
  order: number | null;
  mean: number | null;
  rms: number | null;
  absmax: number | null;
  confidence: string | null;
  distribution: string | null;
  note: string | null;
  risk: PayloadRisk;
  predRms: number | null;
  predAbsmax: number | null;
  log2Error: number | null;
}

interface PayloadReport {
  label: string;
  mode: string;
  path: string;
  version: string;
  formats: string[];
  tensors: PayloadTensor[];
  summary: Report['summary']['formats'];
  unsupportedOps: string[];
}

interface Payload {
  title: string;
  formats: PayloadFormat[];
  reports: PayloadReport[];
}

function num(x: unknown): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

function str(x: unknown): string | null {
  return typeof x === 'string' ? x : x === null || x === undefined ? null : String(x);
}

function shapeText(shape: TensorReport['shape']): string {
  if (!Array.isArray(shape)) return '?';
  return `[${shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

function tensorPayload(t: TensorReport): PayloadTensor {
  const risk: PayloadRisk = {};
  for (const [f, r] of Object.entries(t.risk ?? {})) {
    if (!r) continue;
    risk[f] = [num(r.overflow) ?? 0, num(r.underflow) ?? 0, num(r.subnormal) ?? 0, num(r.sqnrDb)];
  }
  return {
    // A value inside an If/Loop/Scan body is shown (and keyed) with its scope: branches may
    // reuse names.
    name: t.scope ? `${t.scope} › ${String(t.name)}` : String(t.name),
    kind: String(t.kind),
    gradientOf: str(t.gradientOf),
    op: str(t.op),
    node: str(t.node),
    dtype: String(t.dtype ?? ''),
    shape: shapeText(t.shape),
    order: num(t.order),
    mean: num(t.mean),
    rms: num(t.rms),
    absmax: num(t.absmax),
    confidence: str(t.confidence),
    distribution: str(t.distribution),
    note: str(t.note),
    risk,
    predRms: num(t.predicted?.rms),
    predAbsmax: num(t.predicted?.absmax),
    log2Error: num(t.predicted?.log2Error),
  };
}

function formatPayload(name: string): PayloadFormat | null {
  try {
    const f = parseFormat(name);
    return { name, max: f.max, minNormal: f.minNormal, minSubnormal: f.minSubnormal };
  } catch {
    return null;
  }
}

export function buildHtmlPayload(reports: Report[], opts: HtmlReportOptions = {}): Payload {
  const modeCount = new Map<string, number>();
  for (const r of reports) modeCount.set(r.mode, (modeCount.get(r.mode) ?? 0) + 1);
  const seen = new Map<string, number>();
  const out: PayloadReport[] = reports.map((r, i) => {
    const n = (seen.get(r.mode) ?? 0) + 1;
    seen.set(r.mode, n);
    const label = opts.labels?.[i] ?? ((modeCount.get(r.mode) ?? 0) > 1 ? `${r.mode} #${n}` : r.mode);
    return {
      label,
      mode: r.mode,
      path: r.model?.path ?? '',
      version: r.tool?.version ?? '',
      formats: [...(r.formats ?? [])],
      tensors: (r.tensors ?? []).map(tensorPayload),
      summary: r.summary?.formats ?? {},
      unsupportedOps: r.summary?.unsupportedOps ?? [],
    };
  });
  const formatNames: string[] = [];
  for (const r of reports) {
    for (const f of [...(r.formats ?? []), ...r.tensors.flatMap((t) => Object.keys(t.risk ?? {}))]) {
      if (!formatNames.includes(f)) formatNames.push(f);
    }
  }
  return {
    title: opts.title ?? `unitscale — ${reports[0]?.model?.path ?? 'report'}`,
    formats: formatNames.map(formatPayload).filter((f): f is PayloadFormat => f !== null),
    reports: out,
  };
}

/** JSON that is safe inside a <script> element (no `</script>`, no `<!--`, no line separators). */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** The whole page as one string. Several reports (predicted and measured, current and baseline) share the plots. */
export function renderHtmlReport(reports: Report[] | Report, opts: HtmlReportOptions = {}): string {
  const list = Array.isArray(reports) ? reports : [reports];
  if (list.length === 0) throw new Error('renderHtmlReport: no report');
  const payload = buildHtmlPayload(list, opts);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>${escapeHtml(payload.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header><h1 id="title">${escapeHtml(payload.title)}</h1><div id="meta"></div></header>
<main>
<section id="summary-section"><h2>Summary</h2><div id="summary"></div></section>
<section id="plot-section"><h2>Scale along the graph</h2>
<p class="hint">log<sub>2</sub> RMS of every tensor by topological position. Bands: what each format can represent (light: subnormals from the smallest subnormal; dark: the normal range up to the largest finite value). Whiskers reach from RMS to absmax. Hover a point for details; click it to find its row.</p>
<div id="controls"></div>
<div id="plot-forward" class="plot"></div>
<div id="plot-backward" class="plot"></div>
</section>
<section id="heatmap-section"><h2>Risk per format</h2>
<p class="hint">One cell per tensor (same order as above) and format: colour = the worse of the overflow and underflow fractions.</p>
<div id="heatmap"></div></section>
<section id="table-section"><h2>Tensors</h2>
<p class="hint">Click a header to sort. A view can be linked: <code>#sort=rms:desc&amp;filter=attn</code> after the file name.</p>
<div class="tools"><input id="filter" type="search" placeholder="filter by name, op, node, kind…" aria-label="filter"><span id="count"></span></div>
<div class="table-wrap"><table id="tensors"><thead></thead><tbody></tbody></table></div>
</section>
</main>
<noscript><p>This report draws its plots and table with JavaScript; the data is in the script block below.</p></noscript>
<script id="unitscale-data" type="application/json">${scriptSafeJson(payload)}</script>
<script>${CLIENT_JS}</script>
</body>
</html>
`;
}

const CSS = `
:root{--fg:#1d2330;--muted:#5b6475;--line:#d8dde6;--bg:#fff;--panel:#f6f8fb;--accent:#1f6feb}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 24px 8px;border-bottom:1px solid var(--line);background:var(--panel)}
h1{font-size:18px;margin:0 0 4px;word-break:break-all}
h2{font-size:15px;margin:18px 0 6px}
main{padding:0 24px 32px}
#meta{color:var(--muted);font-size:13px}
.hint{color:var(--muted);font-size:12.5px;margin:2px 0 8px;max-width:1100px}
.plot svg,#heatmap svg{display:block}
.plot{margin:4px 0 10px;border:1px solid var(--line);border-radius:6px;background:#fff}
#controls{display:flex;flex-wrap:wrap;gap:6px 16px;align-items:center;font-size:13px;margin-bottom:6px}
#controls label{cursor:pointer;user-select:none;white-space:nowrap}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.group-title{color:var(--muted);font-weight:600}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{border-bottom:1px solid var(--line);padding:3px 6px;text-align:left;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.name{max-width:420px;overflow:hidden;text-overflow:ellipsis}
td.note{white-space:normal;min-width:200px;color:var(--muted)}
thead th{position:sticky;top:0;background:var(--panel);cursor:pointer;user-select:none}
thead th:hover{color:var(--accent)}
thead th[aria-sort=ascending]::after{content:" \\25B2";font-size:9px}
thead th[aria-sort=descending]::after{content:" \\25BC";font-size:9px}
tr.hl td{background:#fff3c4}
.table-wrap{max-height:640px;overflow:auto;border:1px solid var(--line);border-radius:6px}
.tools{display:flex;gap:12px;align-items:center;margin:4px 0 8px}
#filter{padding:5px 8px;width:340px;border:1px solid var(--line);border-radius:5px;font:inherit}
#count{color:var(--muted);font-size:12.5px}
#summary table{width:auto}
#heatmap{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:6px 0}
.axis text{font-size:11px;fill:#5b6475}
.axis line,.axis path{stroke:#9aa3b2}
.grid line{stroke:#eef1f5}
.empty{color:var(--muted);padding:12px}
`;

/*
 * The page script. Plain ES2017 kept free of backticks and dollar-brace so it can live in this
 * template string; it builds every node with createElement/textContent (names are untrusted).
 */
const CLIENT_JS = `
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var data = JSON.parse(document.getElementById('unitscale-data').textContent);
  var SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#6b6b6b', '#d62728', '#9467bd', '#8c564b'];
  var BAND_COLORS = ['#2ca02c', '#9467bd', '#17becf', '#e377c2', '#bcbd22', '#8c564b', '#ff7f0e'];
  var KIND_SHAPES = { activation: 'circle', output: 'diamond', input: 'diamond', weight: 'square', gradient: 'circle' };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k) && attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function log2(x) { return Math.log(x) / Math.LN2; }
  function fmt(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return '';
    if (x === 0) return '0';
    var a = Math.abs(x);
    if (a >= 1e5 || a < 1e-3) return x.toExponential(digits === undefined ? 2 : digits);
    return String(Number(x.toPrecision(digits === undefined ? 4 : digits + 1)));
  }
  function frac(x) {
    if (x === null || x === undefined) return '';
    if (x === 0) return '0';
    if (x >= 0.1) return (x * 100).toFixed(0) + '%';
    if (x >= 0.001) return (x * 100).toFixed(1) + '%';
    return x.toExponential(1);
  }
  var SUP = { '-': '\\u207b', '0': '\\u2070', '1': '\\u00b9', '2': '\\u00b2', '3': '\\u00b3', '4': '\\u2074', '5': '\\u2075', '6': '\\u2076', '7': '\\u2077', '8': '\\u2078', '9': '\\u2079' };
  function pow2Label(k) { return '2' + String(k).split('').map(function (c) { return SUP[c] || c; }).join(''); }

  // ---------------------------------------------------------------- series
  var reports = data.reports;
  var hasMeasured = reports.some(function (r) { return r.mode !== 'predicted'; });
  var series = [];
  var OTHER_COLORS = [SERIES_COLORS[0], SERIES_COLORS[2], SERIES_COLORS[3], SERIES_COLORS[4], SERIES_COLORS[5]];
  var nextColor = 0;
  reports.forEach(function (r) {
    // A prediction beside a measurement is drawn hollow in orange; everything else gets its own solid colour.
    var hollow = r.mode === 'predicted' && hasMeasured;
    var color = hollow ? SERIES_COLORS[1] : OTHER_COLORS[nextColor++ % OTHER_COLORS.length];
    var anyPred = r.tensors.some(function (t) { return t.predRms !== null; });
    var one = reports.length === 1;
    // A compare report is a measurement carrying its prediction: two series.
    var mainLabel = anyPred && r.mode === 'compare' ? (one ? 'measured' : 'measured (' + r.label + ')') : r.label;
    series.push({ label: mainLabel, color: color, hollow: hollow, report: r, pick: function (t) { return { rms: t.rms, absmax: t.absmax }; } });
    if (anyPred) {
      series.push({ label: one ? 'predicted' : 'predicted (' + r.label + ')', color: SERIES_COLORS[1], hollow: true, report: r, fromPrediction: true,
        pick: function (t) { return { rms: t.predRms, absmax: t.predAbsmax }; } });
    }
  });
  var anyOrder = reports.some(function (r) { return r.tensors.some(function (t) { return t.order !== null; }); });
  function xOf(t, idx) { return anyOrder ? t.order : idx; }

  // ---------------------------------------------------------------- header + summary
  var meta = document.getElementById('meta');
  meta.textContent = reports.map(function (r) {
    return r.label + ': ' + r.path + ' (' + r.tensors.length + ' tensors, unitscale ' + r.version + ')';
  }).join(' \\u00b7 ') + ' \\u00b7 formats: ' + data.formats.map(function (f) { return f.name; }).join(', ');

  (function summary() {
    var host = document.getElementById('summary');
    var t = el('table');
    var head = el('tr');
    ['report', 'format', 'max', 'min normal', 'min subnormal', 'tensors overflowing', 'tensors underflowing', 'worst headroom (bits)', 'worst tensor', 'median SQNR (dB)']
      .forEach(function (h, i) { head.appendChild(el('th', i >= 2 && i !== 8 ? { class: 'num' } : null, h)); });
    var thead = el('thead'); thead.appendChild(head); t.appendChild(thead);
    var body = el('tbody');
    var fm = {}; data.formats.forEach(function (f) { fm[f.name] = f; });
    reports.forEach(function (r) {
      Object.keys(r.summary || {}).forEach(function (name) {
        var s = r.summary[name]; var f = fm[name] || {};
        var tr = el('tr');
        [r.label, name, fmt(f.max, 6), fmt(f.minNormal, 4), fmt(f.minSubnormal, 4), s.tensorsOverflowing, s.tensorsUnderflowing,
          s.worstHeadroomBits === null ? '' : s.worstHeadroomBits.toFixed(1), s.worstTensor || '', s.medianSqnrDb === null ? '' : s.medianSqnrDb.toFixed(1)]
          .forEach(function (v, i) { tr.appendChild(el('td', i >= 2 && i !== 8 ? { class: 'num' } : { class: i === 8 ? 'name' : '' }, v)); });
        body.appendChild(tr);
      });
      if (r.unsupportedOps && r.unsupportedOps.length) {
        var tr2 = el('tr'); var td = el('td', { colspan: '10', class: 'note' }, r.label + ': ops without a rule (their outputs are unknown): ' + r.unsupportedOps.join(', '));
        tr2.appendChild(td); body.appendChild(tr2);
      }
    });
    t.appendChild(body);
    if (body.childNodes.length) host.appendChild(t); else host.appendChild(el('div', { class: 'empty' }, 'No per-format summary in this report.'));
  })();

  // ---------------------------------------------------------------- controls
  var state = { bands: {}, kinds: { activation: true, output: true, input: true, weight: true, gradient: true }, series: {} };
  data.formats.forEach(function (f, i) { f.color = BAND_COLORS[i % BAND_COLORS.length]; state.bands[f.name] = data.formats.length <= 3 || i < 3; });
  series.forEach(function (s, i) { state.series[i] = true; });
  var controls = document.getElementById('controls');
  function checkbox(group, key, label, color, checked) {
    var lab = el('label');
    var box = el('input', { type: 'checkbox' });
    box.checked = checked;
    box.addEventListener('change', function () { state[group][key] = box.checked; drawPlots(); });
    lab.appendChild(box);
    if (color) { var sw = el('span', { class: 'swatch' }); sw.style.background = color; lab.appendChild(sw); }
    lab.appendChild(document.createTextNode(label));
    controls.appendChild(lab);
  }
  controls.appendChild(el('span', { class: 'group-title' }, 'Formats:'));
  data.formats.forEach(function (f) { checkbox('bands', f.name, f.name, f.color, state.bands[f.name]); });
  controls.appendChild(el('span', { class: 'group-title' }, 'Series:'));
  series.forEach(function (s, i) { checkbox('series', i, s.label, s.color, true); });
  controls.appendChild(el('span', { class: 'group-title' }, 'Kinds:'));
  ['activation', 'output', 'input', 'weight'].forEach(function (k) { checkbox('kinds', k, k, null, true); });

  // ---------------------------------------------------------------- plots
  function niceStep(span, target) {
    var raw = span / target; var p = Math.pow(10, Math.floor(Math.log(raw) / Math.LN10)); var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function marker(shape, x, y, r, s, tensor) {
    var e;
    if (shape === 'square') e = svg('rect', { x: x - r * 0.8, y: y - r * 0.8, width: r * 1.6, height: r * 1.6 });
    else if (shape === 'diamond') e = svg('path', { d: 'M' + x + ' ' + (y - r * 1.2) + 'L' + (x + r * 1.2) + ' ' + y + 'L' + x + ' ' + (y + r * 1.2) + 'L' + (x - r * 1.2) + ' ' + y + 'Z' });
    else e = svg('circle', { cx: x, cy: y, r: r });
    e.setAttribute('fill', s.hollow ? '#fff' : s.color);
    e.setAttribute('stroke', s.color);
    e.setAttribute('stroke-width', s.hollow ? 1.5 : 0.8);
    e.setAttribute('class', 'pt');
    e.style.cursor = 'pointer';
    return e;
  }
  function tip(t, s, v) {
    var lines = [t.kind === 'gradient' ? 'gradient of ' + t.name : t.name, (t.op || '') + (t.node ? ' \\u00b7 ' + t.node : '') + ' \\u00b7 ' + t.kind + ' ' + t.dtype + ' ' + t.shape,
      s.label + ': rms ' + fmt(v.rms) + ' (log2 ' + (v.rms > 0 ? log2(v.rms).toFixed(2) : '\\u2013') + '), absmax ' + fmt(v.absmax)];
    if (t.confidence) lines.push('confidence ' + t.confidence + (t.distribution ? ', ' + t.distribution : ''));
    if (!s.fromPrediction) Object.keys(t.risk).forEach(function (f) {
      var r = t.risk[f]; lines.push(f + ': overflow ' + frac(r[0]) + ', underflow ' + frac(r[1]) + ', subnormal ' + frac(r[2]) + ', SQNR ' + (r[3] === null ? 'exact' : r[3].toFixed(1) + ' dB'));
    });
    if (t.log2Error !== null) lines.push('prediction error: ' + t.log2Error.toFixed(2) + ' bits');
    if (t.note) lines.push(t.note);
    return lines.join('\\n');
  }

  function drawPlot(hostId, backward) {
    var host = document.getElementById(hostId);
    while (host.firstChild) host.removeChild(host.firstChild);
    var W = Math.max(640, Math.min(1600, (document.documentElement.clientWidth || 1200) - 60)), H = backward ? 300 : 380;
    var M = { l: 56, r: 70, t: 26, b: 40 };
    var pts = [];
    series.forEach(function (s, si) {
      if (!state.series[si]) return;
      s.report.tensors.forEach(function (t, idx) {
        var isGrad = t.kind === 'gradient';
        if (isGrad !== backward) return;
        if (!backward && !state.kinds[t.kind]) return;
        var v = s.pick(t); var x = xOf(t, idx);
        if (x === null || v.rms === null || !(v.rms > 0)) return;
        // Weights (and their gradients) without a position of their own are only in the table.
        if ((t.kind === 'weight' || t.gradientOf === 'weight') && anyOrder && x < 0) return;
        pts.push({ s: s, t: t, x: x, y: log2(v.rms), ya: v.absmax !== null && v.absmax > 0 ? log2(v.absmax) : null, v: v });
      });
    });
    var title = backward ? 'Backward (gradients, at the position of their value; the backward pass runs right to left)' : 'Forward';
    if (!pts.length) {
      host.appendChild(el('div', { class: 'empty' }, backward ? 'No gradient entries in this report (the analysis adds them when asked to predict the backward pass).' : 'No tensor with a known RMS to plot.'));
      return 0;
    }
    var xs = pts.map(function (p) { return p.x; });
    var xmin = Math.min.apply(null, xs), xmax = Math.max.apply(null, xs);
    if (xmax === xmin) { xmin -= 1; xmax += 1; }
    var xpad = Math.max(0.4, (xmax - xmin) * 0.01); xmin -= xpad; xmax += xpad; // keep edge markers whole
    // y range: all of log2 RMS (and the absmax whiskers) and the narrow formats' bands, except
    // outliers cut off by an empty gap of more than 16 bits (at most 10% of the points on each
    // side: a mask filled with -3.4e38): those are drawn as triangles at the edge, labelled, so
    // they do not squash everything else into a line.
    var ys = pts.map(function (p) { return p.y; }).sort(function (a, b) { return a - b; });
    var maxOut = Math.max(1, Math.floor(ys.length * 0.1)), lo = 0, hi = ys.length - 1, gi;
    for (gi = ys.length - 1; gi > 0 && ys.length - gi <= maxOut; gi--) if (ys[gi] - ys[gi - 1] > 16) hi = gi - 1;
    for (gi = 0; gi < hi && gi + 1 <= maxOut; gi++) if (ys[gi + 1] - ys[gi] > 16) lo = gi + 1;
    var ylo = ys[lo], yhi = ys[hi];
    pts.forEach(function (p) { if (p.ya !== null && p.y <= yhi && p.ya > yhi && p.ya - yhi < 8) yhi = p.ya; });
    data.formats.forEach(function (f) {
      if (!state.bands[f.name]) return;
      var a = log2(f.minSubnormal), b = log2(f.max);
      if (b - a <= 80) { ylo = Math.min(ylo, a); yhi = Math.max(yhi, b); }
    });
    ylo = Math.floor(ylo) - 1; yhi = Math.ceil(yhi) + 1;
    var sx = function (x) { return M.l + (x - xmin) / (xmax - xmin) * (W - M.l - M.r); };
    var sy = function (y) { return M.t + (yhi - y) / (yhi - ylo) * (H - M.t - M.b); };
    var root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, width: '100%', role: 'img', 'aria-label': title, 'data-points': pts.length, class: backward ? 'backward' : 'forward' });
    root.appendChild(svg('text', { x: M.l, y: 16, 'font-size': 13, 'font-weight': 600, fill: '#1d2330' }, title));
    var clipId = 'clip-' + hostId;
    var defs = svg('defs'); var cp = svg('clipPath', { id: clipId });
    cp.appendChild(svg('rect', { x: M.l, y: M.t, width: W - M.l - M.r, height: H - M.t - M.b })); defs.appendChild(cp); root.appendChild(defs);
    // grid + y axis
    var step = Math.max(1, Math.round(niceStep(yhi - ylo, 10)));
    var grid = svg('g', { class: 'grid' }); var axis = svg('g', { class: 'axis' });
    for (var k = Math.ceil(ylo / step) * step; k <= yhi; k += step) {
      grid.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: sy(k), y2: sy(k) }));
      axis.appendChild(svg('text', { x: M.l - 6, y: sy(k) + 4, 'text-anchor': 'end' }, pow2Label(k)));
    }
    var xstep = Math.max(1, niceStep(xmax - xmin, 12));
    for (var xv = Math.ceil(xmin / xstep) * xstep; xv <= xmax; xv += xstep) {
      axis.appendChild(svg('line', { x1: sx(xv), x2: sx(xv), y1: H - M.b, y2: H - M.b + 4 }));
      axis.appendChild(svg('text', { x: sx(xv), y: H - M.b + 16, 'text-anchor': 'middle' }, Math.round(xv)));
    }
    axis.appendChild(svg('text', { x: (M.l + W - M.r) / 2, y: H - 6, 'text-anchor': 'middle' }, anyOrder ? 'topological position of the producer (order)' : 'tensor index'));
    var yl = svg('text', { x: 14, y: (M.t + H - M.b) / 2, 'text-anchor': 'middle', transform: 'rotate(-90 14 ' + ((M.t + H - M.b) / 2) + ')' }, 'RMS (log\\u2082 scale)');
    axis.appendChild(yl);
    axis.appendChild(svg('path', { d: 'M' + M.l + ' ' + M.t + 'V' + (H - M.b) + 'H' + (W - M.r), fill: 'none' }));
    root.appendChild(grid);
    // format bands
    var bands = svg('g', { class: 'bands', 'clip-path': 'url(#' + clipId + ')' });
    var labels = svg('g', { class: 'band-labels' });
    var bandLabels = [];
    data.formats.forEach(function (f) {
      if (!state.bands[f.name]) return;
      var top = sy(log2(f.max)), mid = sy(log2(f.minNormal)), bot = sy(log2(f.minSubnormal));
      var g = svg('g', { class: 'band', 'data-format': f.name });
      g.appendChild(svg('rect', { x: M.l, width: W - M.l - M.r, y: Math.min(top, bot), height: Math.abs(bot - top), fill: f.color, 'fill-opacity': 0.07 }));
      g.appendChild(svg('rect', { x: M.l, width: W - M.l - M.r, y: Math.min(top, mid), height: Math.abs(mid - top), fill: f.color, 'fill-opacity': 0.14 }));
      g.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: top, y2: top, stroke: f.color, 'stroke-width': 1.2, 'stroke-dasharray': '5 3' }));
      g.appendChild(svg('line', { x1: M.l, x2: W - M.r, y1: bot, y2: bot, stroke: f.color, 'stroke-width': 0.8, 'stroke-dasharray': '2 3' }));
      var t = svg('title', null, f.name + ': max ' + fmt(f.max, 6) + ' (2^' + log2(f.max).toFixed(2) + '), min normal ' + fmt(f.minNormal) + ', min subnormal ' + fmt(f.minSubnormal));
      g.appendChild(t);
      bands.appendChild(g);
      if (top >= M.t - 1 && top <= H - M.b + 1) bandLabels.push({ y: top + 4, text: f.name + ' max', color: f.color, bold: true });
      if (bot >= M.t - 1 && bot <= H - M.b + 1) bandLabels.push({ y: bot + 4, text: f.name + ' min', color: f.color, bold: false });
    });
    // Labels at the right edge, pushed apart so that formats with close limits stay legible.
    bandLabels.sort(function (a, b) { return a.y - b.y; });
    for (var li = 1; li < bandLabels.length; li++) bandLabels[li].y = Math.max(bandLabels[li].y, bandLabels[li - 1].y + 12);
    var overflowBottom = bandLabels.length ? bandLabels[bandLabels.length - 1].y - (H - M.b + 4) : 0;
    if (overflowBottom > 0) bandLabels.forEach(function (l) { l.y -= overflowBottom; });
    bandLabels.forEach(function (l) {
      labels.appendChild(svg('text', { x: W - M.r + 4, y: l.y, 'font-size': 10.5, fill: l.color, 'font-weight': l.bold ? 600 : 400 }, l.text));
    });
    root.appendChild(bands);
    root.appendChild(axis);
    root.appendChild(labels);
    // lines, whiskers, points
    var plot = svg('g', { 'clip-path': 'url(#' + clipId + ')' });
    series.forEach(function (s, si) {
      var mine = pts.filter(function (p) { return p.s === s && p.t.kind !== 'weight'; }).sort(function (a, b) { return a.x - b.x; });
      if (mine.length > 1) {
        plot.appendChild(svg('polyline', { points: mine.map(function (p) { return sx(p.x).toFixed(1) + ',' + sy(Math.max(ylo, Math.min(yhi, p.y))).toFixed(1); }).join(' '),
          fill: 'none', stroke: s.color, 'stroke-opacity': 0.35, 'stroke-width': 1, 'stroke-dasharray': s.hollow ? '4 3' : null }));
      }
    });
    var r = pts.length > 2000 ? 2 : pts.length > 400 ? 2.8 : 3.6;
    pts.forEach(function (p) {
      if (p.ya !== null && p.ya > p.y) plot.appendChild(svg('line', { x1: sx(p.x), x2: sx(p.x), y1: sy(p.y), y2: sy(p.ya), stroke: p.s.color, 'stroke-opacity': 0.3 }));
    });
    pts.forEach(function (p) {
      var m;
      if (p.y > yhi || p.y < ylo) {
        var up = p.y > yhi; var ex = sx(p.x), ey = up ? M.t + 6 : H - M.b - 6;
        m = svg('path', { d: up ? 'M' + ex + ' ' + (ey - 6) + 'L' + (ex + 5) + ' ' + (ey + 3) + 'L' + (ex - 5) + ' ' + (ey + 3) + 'Z' : 'M' + ex + ' ' + (ey + 6) + 'L' + (ex + 5) + ' ' + (ey - 3) + 'L' + (ex - 5) + ' ' + (ey - 3) + 'Z',
          fill: p.s.hollow ? '#fff' : p.s.color, stroke: p.s.color, 'stroke-width': 1.2, class: 'pt off-scale' });
        m.style.cursor = 'pointer';
        plot.appendChild(svg('text', { x: ex + 7, y: up ? ey + 3 : ey + 1, 'font-size': 10, fill: p.s.color }, pow2Label(Math.round(p.y))));
      } else {
        m = marker(KIND_SHAPES[p.t.kind] || 'circle', sx(p.x), sy(p.y), p.t.kind === 'weight' ? r * 0.8 : r, p.s, p.t);
      }
      m.appendChild(svg('title', null, tip(p.t, p.s, p.v)));
      m.addEventListener('click', function () { focusRow(p.t); });
      plot.appendChild(m);
    });
    root.appendChild(plot);
    // legend
    var lg = svg('g', { class: 'legend' }); var lx = W - M.r;
    series.slice().reverse().forEach(function (s) {
      if (!pts.some(function (p) { return p.s === s; })) return;
      var tw = s.label.length * 6.2;
      lx -= tw;
      lg.appendChild(svg('text', { x: lx, y: 16, 'font-size': 11, fill: '#1d2330' }, s.label));
      lg.appendChild(svg('circle', { cx: lx - 8, cy: 12, r: 4, fill: s.hollow ? '#fff' : s.color, stroke: s.color, 'stroke-width': 1.5 }));
      lx -= 26;
    });
    root.appendChild(lg);
    host.appendChild(root);
    return pts.length;
  }
  function drawPlots() {
    var n = drawPlot('plot-forward', false);
    var m = drawPlot('plot-backward', true);
    document.body.dataset.points = String(n + m);
  }

  // ---------------------------------------------------------------- heatmap
  function heatColor(v, unknown) {
    if (unknown) return '#d9dce1';
    if (!(v > 0)) return '#e3f1e4';
    if (v < 1e-6) return '#f3f6d8'; // negligible
    var u = (Math.min(0, Math.log(v) / Math.LN10) + 6) / 6; // 1e-6 → 0, 1 → 1
    var stops = [[255, 236, 160], [253, 190, 90], [240, 110, 50], [200, 30, 30], [110, 0, 25]];
    var pos = u * (stops.length - 1); var i = Math.min(stops.length - 2, Math.floor(pos)); var t = pos - i;
    var c = stops[i].map(function (a, j) { return Math.round(a + (stops[i + 1][j] - a) * t); });
    return 'rgb(' + c.join(',') + ')';
  }
  (function heatmap() {
    var host = document.getElementById('heatmap');
    var rows = [];
    reports.forEach(function (r) {
      var ts = r.tensors.map(function (t, i) { return { t: t, x: xOf(t, i), i: i }; })
        .sort(function (a, b) { return (a.t.kind === 'gradient') - (b.t.kind === 'gradient') || (a.x === null) - (b.x === null) || (a.x - b.x) || a.i - b.i; });
      r.formats.forEach(function (f) { rows.push({ label: f + (reports.length > 1 ? ' \\u00b7 ' + r.label : ''), format: f, tensors: ts }); });
    });
    if (!rows.length || !rows[0].tensors.length) { host.appendChild(el('div', { class: 'empty' }, 'No per-format risk in this report.')); return; }
    var n = Math.max.apply(null, rows.map(function (r) { return r.tensors.length; }));
    var LW = 150, cw = Math.max(2, Math.min(14, Math.floor(1150 / n))), ch = 18, W = LW + n * cw + 20, H = rows.length * (ch + 3) + 52;
    var root = svg('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, class: 'heatmap', role: 'img', 'aria-label': 'risk heatmap' });
    rows.forEach(function (row, ri) {
      var y = 4 + ri * (ch + 3);
      root.appendChild(svg('text', { x: LW - 8, y: y + ch - 5, 'text-anchor': 'end', 'font-size': 12, fill: '#1d2330' }, row.label));
      row.tensors.forEach(function (e, ci) {
        var risk = e.t.risk[row.format];
        var worst = risk ? Math.max(risk[0], risk[1]) : null;
        var cell = svg('rect', { x: LW + ci * cw, y: y, width: Math.max(1, cw - (cw > 4 ? 1 : 0)), height: ch, fill: heatColor(worst, !risk || e.t.confidence === 'unknown'), class: 'cell' });
        cell.appendChild(svg('title', null, (e.t.kind === 'gradient' ? 'gradient of ' : '') + e.t.name + ' \\u00b7 ' + row.format + (risk ? ': overflow ' + frac(risk[0]) + ', underflow ' + frac(risk[1]) + ', SQNR ' + (risk[3] === null ? 'exact' : risk[3].toFixed(1) + ' dB') : ': not computed') + (e.t.confidence === 'unknown' ? ' (unknown prediction)' : '')));
        cell.addEventListener('click', function () { focusRow(e.t); });
        cell.style.cursor = 'pointer';
        root.appendChild(cell);
      });
    });
    // colour legend
    var ly = rows.length * (ch + 3) + 16;
    var legend = [['0', 0], ['<1e-6', 1e-7], ['1e-5', 1e-5], ['1e-4', 1e-4], ['1e-3', 1e-3], ['1%', 0.01], ['10%', 0.1], ['100%', 1]];
    root.appendChild(svg('text', { x: LW - 8, y: ly + 11, 'text-anchor': 'end', 'font-size': 11, fill: '#5b6475' }, 'worst fraction'));
    legend.forEach(function (l, i) {
      root.appendChild(svg('rect', { x: LW + i * 46, y: ly, width: 44, height: 12, fill: heatColor(l[1], false) }));
      root.appendChild(svg('text', { x: LW + i * 46 + 22, y: ly + 25, 'text-anchor': 'middle', 'font-size': 10, fill: '#5b6475' }, l[0]));
    });
    root.appendChild(svg('rect', { x: LW + legend.length * 46 + 12, y: ly, width: 44, height: 12, fill: heatColor(0, true) }));
    root.appendChild(svg('text', { x: LW + legend.length * 46 + 34, y: ly + 25, 'text-anchor': 'middle', 'font-size': 10, fill: '#5b6475' }, 'unknown'));
    host.appendChild(root);
  })();

  // ---------------------------------------------------------------- table
  var primaryIdx = 0;
  reports.forEach(function (r, i) { if (r.mode !== 'predicted' && reports[primaryIdx].mode === 'predicted') primaryIdx = i; });
  var primary = reports[primaryIdx];
  var others = reports.filter(function (r, i) { return i !== primaryIdx; });
  function key(t) { return (t.kind === 'gradient' ? 'g:' : 'f:') + t.name; }
  var otherMaps = others.map(function (r) { var m = {}; r.tensors.forEach(function (t) { m[key(t)] = t; }); return m; });
  var anyPredCol = primary.tensors.some(function (t) { return t.predRms !== null; });
  var cols = [
    { h: 'order', num: true, v: function (t) { return t.order; } },
    { h: 'name', cls: 'name', v: function (t) { return (t.kind === 'gradient' ? '\\u2207 ' : '') + t.name; } },
    { h: 'kind', v: function (t) { return t.kind; } },
    { h: 'op', v: function (t) { return t.op; } },
    { h: 'node', cls: 'name', v: function (t) { return t.node; } },
    { h: 'dtype', v: function (t) { return t.dtype; } },
    { h: 'shape', v: function (t) { return t.shape; } },
    { h: 'mean', num: true, v: function (t) { return t.mean; }, f: fmt },
    { h: 'rms', num: true, v: function (t) { return t.rms; }, f: fmt },
    { h: 'log2 rms', num: true, v: function (t) { return t.rms > 0 ? log2(t.rms) : null; }, f: function (x) { return x === null ? '' : x.toFixed(2); } },
    { h: 'absmax', num: true, v: function (t) { return t.absmax; }, f: fmt },
    { h: 'confidence', v: function (t) { return t.confidence; } }
  ];
  if (anyPredCol) {
    cols.push({ h: 'predicted rms', num: true, v: function (t) { return t.predRms; }, f: fmt });
    cols.push({ h: 'log2 error', num: true, v: function (t) { return t.log2Error; }, f: function (x) { return x === null ? '' : x.toFixed(2); } });
  }
  others.forEach(function (r, oi) {
    cols.push({ h: 'rms (' + r.label + ')', num: true, v: function (t) { var o = otherMaps[oi][key(t)]; return o ? o.rms : null; }, f: fmt });
  });
  primary.formats.forEach(function (f) {
    cols.push({ h: f + ' overflow', num: true, risk: true, v: function (t) { return t.risk[f] ? t.risk[f][0] : null; }, f: frac });
    cols.push({ h: f + ' underflow', num: true, risk: true, v: function (t) { return t.risk[f] ? t.risk[f][1] : null; }, f: frac });
    cols.push({ h: f + ' subnormal', num: true, v: function (t) { return t.risk[f] ? t.risk[f][2] : null; }, f: frac });
    cols.push({ h: f + ' SQNR dB', num: true, v: function (t) { return t.risk[f] ? (t.risk[f][3] === null ? Infinity : t.risk[f][3]) : null; },
      f: function (x) { return x === null ? '' : x === Infinity ? 'exact' : x.toFixed(1); } });
  });
  cols.push({ h: 'note', cls: 'note', v: function (t) { return t.note; } });

  var table = document.getElementById('tensors');
  var thead = table.tHead; var tbody = table.tBodies[0];
  var sortCol = 0, sortDir = 1, filterText = '';
  var hr = el('tr');
  cols.forEach(function (c, ci) {
    var th = el('th', { class: c.num ? 'num' : '', scope: 'col', title: 'sort by ' + c.h }, c.h);
    th.addEventListener('click', function () { if (sortCol === ci) sortDir = -sortDir; else { sortCol = ci; sortDir = c.num ? -1 : 1; } renderRows(); });
    hr.appendChild(th);
  });
  thead.appendChild(hr);
  var rowsData = primary.tensors.map(function (t, i) { return { t: t, i: i, vals: cols.map(function (c) { return c.v(t); }) }; });
  function cmp(a, b) {
    var x = a.vals[sortCol], y = b.vals[sortCol];
    var xn = x === null || x === undefined || x === '', yn = y === null || y === undefined || y === '';
    if (xn || yn) return xn && yn ? a.i - b.i : xn ? 1 : -1;
    if (typeof x === 'number' && typeof y === 'number') return (x - y) * sortDir || a.i - b.i;
    return String(x).localeCompare(String(y)) * sortDir || a.i - b.i;
  }
  var rowEls = {};
  function renderRows() {
    Array.prototype.forEach.call(thead.rows[0].cells, function (th, ci) {
      if (ci === sortCol) th.setAttribute('aria-sort', sortDir > 0 ? 'ascending' : 'descending'); else th.removeAttribute('aria-sort');
    });
    var f = filterText.toLowerCase();
    var list = rowsData.filter(function (r) {
      if (!f) return true;
      var t = r.t; return [t.name, t.op, t.node, t.kind, t.note].some(function (s) { return s && String(s).toLowerCase().indexOf(f) >= 0; });
    }).sort(cmp);
    var frag = document.createDocumentFragment();
    rowEls = {};
    list.forEach(function (r) {
      var tr = el('tr');
      cols.forEach(function (c, ci) {
        var v = r.vals[ci];
        var td = el('td', { class: (c.num ? 'num ' : '') + (c.cls || '') }, v === null || v === undefined ? '' : (c.f ? c.f(v) : v));
        if (c.cls === 'name' && v) td.setAttribute('title', String(v));
        if (c.risk && typeof v === 'number' && v > 0) td.style.background = heatColor(v, false);
        tr.appendChild(td);
      });
      rowEls[key(r.t)] = tr;
      frag.appendChild(tr);
    });
    while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
    tbody.appendChild(frag);
    document.getElementById('count').textContent = list.length + ' of ' + rowsData.length + ' tensors' + (reports.length > 1 ? ' (rows: ' + primary.label + ')' : '');
  }
  function focusRow(t) {
    var tr = rowEls[key(t)];
    if (!tr) { filterText = ''; document.getElementById('filter').value = ''; renderRows(); tr = rowEls[key(t)]; }
    if (!tr) return;
    Array.prototype.forEach.call(tbody.querySelectorAll('tr.hl'), function (x) { x.classList.remove('hl'); });
    tr.classList.add('hl');
    tr.scrollIntoView({ block: 'center' });
  }
  document.getElementById('filter').addEventListener('input', function (e) { filterText = e.target.value; renderRows(); });
  // A view can be linked: report.html#sort=rms:desc&filter=attn
  (function fromHash() {
    var params = {};
    String(location.hash || '').replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('='); if (i > 0) { try { params[kv.slice(0, i)] = decodeURIComponent(kv.slice(i + 1)); } catch (e) { /* ignore a bad escape */ } }
    });
    if (params.sort) {
      var parts = params.sort.split(':'); var name = parts[0].toLowerCase();
      cols.forEach(function (c, ci) { if (c.h.toLowerCase() === name) { sortCol = ci; sortDir = parts[1] === 'desc' ? -1 : 1; } });
    }
    if (params.filter) { filterText = params.filter; document.getElementById('filter').value = params.filter; }
  })();
  renderRows();
  drawPlots();
  var resizeTimer = null;
  window.addEventListener('resize', function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawPlots, 150); });
  document.body.dataset.ready = '1';
})();
`;
