import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildHtmlPayload, escapeHtml, renderHtmlReport, scriptSafeJson } from '../../src/report/html.js';
import type { FormatRisk, Report, TensorReport } from '../../src/report/types.js';

const EVIL = '</script><img src=x onerror="document.title=1"><!--';

const risk = (overflow = 0, underflow = 0, sqnrDb: number | null = 31): FormatRisk => ({ overflow, underflow, subnormal: 0.01, sqnrDb });
function tensor(name: string, order: number, rms: number, extra: Partial<TensorReport> = {}): TensorReport {
  return {
    name, kind: 'activation', op: 'MatMul', node: `${name}/node`, dtype: 'float32', shape: [1, 'seq', 64], mean: 0, rms, absmax: rms * 4,
    risk: { e4m3: risk(rms > 100 ? 0.2 : 0, rms < 0.01 ? 0.3 : 0), fp16: risk(0, 0, 70) }, confidence: 'high', order, ...extra,
  };
}

function makeReport(mode: Report['mode'], scale = 1, withPred = false): Report {
  const tensors: TensorReport[] = [
    tensor('x', 0, 1, { kind: 'input', op: 'input', node: null }),
    tensor('w', 1, 0.05, { kind: 'weight', op: 'initializer', node: null }),
    tensor(EVIL, 1, 8 * scale),
    tensor('hot', 2, 300 * scale),
    tensor('tiny', 3, 0.001 * scale, { confidence: 'unknown', note: 'no rule for MyOp' }),
    tensor('y', 4, 1 * scale, { kind: 'output' }),
    tensor('hot', 2, 1e-6, { kind: 'gradient', gradientOf: 'activation' }),
    tensor('x', 0, 1e-5, { kind: 'gradient', gradientOf: 'input' }),
  ];
  if (withPred) for (const t of tensors) t.predicted = { mean: 0, rms: (t.rms ?? 1) * 0.8, absmax: null, log2Error: Math.log2(1 / 0.8) };
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: `models/${EVIL}.onnx`, irVersion: 8, opsets: { '': 17 } },
    mode,
    formats: ['e4m3', 'fp16'],
    tensors,
    summary: {
      tensors: tensors.length,
      formats: {
        e4m3: { format: 'e4m3', tensorsOverflowing: 1, tensorsUnderflowing: 1, worstHeadroomBits: -1.4, worstTensor: 'hot', medianSqnrDb: 31 },
        fp16: { format: 'fp16', tensorsOverflowing: 0, tensorsUnderflowing: 0, worstHeadroomBits: 5.7, worstTensor: 'hot', medianSqnrDb: 70 },
      },
      unsupportedOps: ['MyOp'],
    },
  };
}

function dataBlock(html: string): unknown {
  const m = /<script id="unitscale-data" type="application\/json">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!);
}

function pageScript(html: string): string {
  const scripts = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)];
  expect(scripts).toHaveLength(1);
  return scripts[0]![1]!;
}

describe('renderHtmlReport', () => {
  const html = renderHtmlReport(makeReport('compare', 1, true));

  it('is one self-contained file: no external script, style, font, image or fetch', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link\b/i);
    expect(html).not.toMatch(/@import|url\(\s*['"]?https?:/i);
    expect(html).not.toMatch(/\bfetch\(|XMLHttpRequest|import\(/);
    const urls = [...html.matchAll(/https?:\/\/[^\s'"<>)]+/g)].map((m) => m[0]);
    expect(new Set(urls)).toEqual(new Set(['http://www.w3.org/2000/svg'])); // a namespace name, never fetched
    expect(html).toContain("Content-Security-Policy\" content=\"default-src 'none'");
  });

  it('escapes untrusted names: they never become markup', () => {
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<!--');
    expect(html.match(/<\/script>/g)).toHaveLength(2); // the data block's and the page script's own
    expect(html).toContain(`<title>unitscale — models/${escapeHtml(EVIL)}.onnx</title>`);
    const data = dataBlock(html) as { reports: { tensors: { name: string }[] }[] };
    expect(data.reports[0]!.tensors.map((t) => t.name)).toContain(EVIL);
  });

  it('script-safe JSON round-trips awkward strings', () => {
    const tricky = { s: '</script>&<!-- \u2028 \u2029 "q" \\ ' };
    const text = scriptSafeJson(tricky);
    expect(text).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(text)).toEqual(tricky);
  });

  it('ships a page script that compiles', () => {
    expect(() => new Script(pageScript(html))).not.toThrow();
  });

  it('carries what the plots need: order, rms, absmax, predictions, format ranges', () => {
    const p = buildHtmlPayload([makeReport('compare', 1, true)]);
    expect(p.formats).toEqual([
      { name: 'e4m3', max: 448, minNormal: 2 ** -6, minSubnormal: 2 ** -9 },
      { name: 'fp16', max: 65504, minNormal: 2 ** -14, minSubnormal: 2 ** -24 },
    ]);
    const hot = p.reports[0]!.tensors.find((t) => t.name === 'hot' && t.kind === 'activation')!;
    expect(hot).toMatchObject({ order: 2, rms: 300, absmax: 1200, predRms: 240, shape: '[1, seq, 64]' });
    expect(hot.risk.e4m3).toEqual([0.2, 0, 0.01, 31]);
  });

  it('keeps same-named values of different If branches apart (their scope leads the name)', () => {
    const r = makeReport('predicted');
    r.tensors.push(tensor('hot', 5, 2, { scope: 'If_3/then_branch' }), tensor('hot', 5, 3, { scope: 'If_3/else_branch' }));
    const names = buildHtmlPayload([r]).reports[0]!.tensors.map((t) => t.name);
    expect(names).toContain('If_3/then_branch › hot');
    expect(names).toContain('If_3/else_branch › hot');
    expect(names.filter((n) => n === 'hot')).toHaveLength(2); // the main graph's value and its gradient
  });

  it('labels several reports, numbering repeated modes', () => {
    expect(buildHtmlPayload([makeReport('predicted'), makeReport('measured')]).reports.map((r) => r.label)).toEqual(['predicted', 'measured']);
    expect(buildHtmlPayload([makeReport('predicted'), makeReport('predicted')]).reports.map((r) => r.label)).toEqual(['predicted #1', 'predicted #2']);
    expect(buildHtmlPayload([makeReport('predicted')], { labels: ['current'] }).reports[0]!.label).toBe('current');
    expect(() => renderHtmlReport([])).toThrow(/no report/);
  });

  it('survives non-finite and missing numbers', () => {
    const r = makeReport('measured');
    r.tensors[0]!.rms = Number.NaN;
    r.tensors[1]!.absmax = Number.POSITIVE_INFINITY;
    r.tensors[2]!.shape = null;
    delete r.tensors[3]!.order;
    const p = buildHtmlPayload([r]);
    expect(p.reports[0]!.tensors.slice(0, 4).map((t) => [t.rms, t.absmax, t.shape, t.order])).toEqual([
      [null, 4, '[1, seq, 64]', 0],
      [0.05, null, '[1, seq, 64]', 1],
      [8, 32, '?', 1],
      [300, 1200, '[1, seq, 64]', null],
    ]);
  });
});

const CHROMIUM = '/usr/bin/chromium';

describe.skipIf(!existsSync(CHROMIUM))('HTML report in headless Chromium', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'unitscale-html-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--window-size=1400,1000'];

  function chromium(args: string[]): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      execFile(CHROMIUM, [...FLAGS, `--user-data-dir=${path.join(dir, 'profile')}`, ...args], { timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err && !stdout) reject(new Error(`chromium failed: ${err.message}\n${stderr.slice(-2000)}`));
        else resolve({ stdout, stderr });
      });
    });
  }

  function page(name: string, html: string): string {
    const file = path.join(dir, name);
    writeFileSync(file, html);
    return pathToFileURL(file).href;
  }

  const count = (dom: string, re: RegExp) => (dom.match(re) ?? []).length;

  it('runs its script without errors and draws the plots, heatmap and table', async () => {
    const url = page('compare.html', renderHtmlReport(makeReport('compare', 1, true)));
    const { stdout: dom, stderr } = await chromium(['--enable-logging=stderr', '--v=0', '--dump-dom', url]);
    expect(stderr).not.toMatch(/Uncaught|SyntaxError|TypeError|ReferenceError/);
    expect(dom).toMatch(/<body[^>]*data-ready="1"/);
    // forward: 6 tensors × 2 series (measured + prediction); backward: 2 gradients × 2 series
    expect(dom).toMatch(/<svg[^>]*data-points="12"[^>]*class="forward"/);
    expect(dom).toMatch(/<svg[^>]*data-points="4"[^>]*class="backward"/);
    expect(dom).toMatch(/<body[^>]*data-points="16"/);
    expect(dom).toMatch(/<text[^>]*>measured<\/text>/); // a compare report: the measurement…
    expect(dom).toMatch(/<text[^>]*>predicted<\/text>/); // …and its prediction, on the same plot
    expect(count(dom, /<g class="band" data-format="(e4m3|fp16)"/g)).toBe(4); // 2 formats × 2 plots
    expect(count(dom, /<rect [^>]*class="cell"/g)).toBe(8 * 2); // tensors × formats
    expect(count(dom, /<tr>/g)).toBeGreaterThanOrEqual(8 + 1);
    // the hostile name is text (or an attribute value), never an element
    expect(dom.replace(/="[^"]*"/g, '=""')).not.toMatch(/<img/i);
    expect(dom).toContain('&lt;/script&gt;&lt;img src=x onerror="document.title=1"&gt;&lt;!--');
  });

  it('sorts the table (a linked view #sort=rms:desc runs the same code as a header click)', async () => {
    const url = page('sorted.html', renderHtmlReport(makeReport('measured')));
    const { stdout: dom } = await chromium(['--dump-dom', `${url}#sort=rms:desc&filter=`]);
    const tbody = /<table id="tensors">[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(dom)![1]!;
    const rms = [...tbody.matchAll(/<tr[^>]*>(?:<td[^>]*>[\s\S]*?<\/td>){8}<td[^>]*>([^<]*)<\/td>/g)].map((m) => Number(m[1]));
    expect(rms).toHaveLength(8);
    expect(rms).toEqual([...rms].sort((a, b) => b - a));
    expect(dom).toMatch(/<th[^>]*aria-sort="descending"[^>]*>rms<\/th>/);
    const filtered = (await chromium(['--dump-dom', `${url}#filter=tiny`])).stdout;
    expect(filtered).toContain('1 of 8 tensors');
  });

  it('overlays a predicted and a measured report on one plot', async () => {
    const url = page('two.html', renderHtmlReport([makeReport('predicted', 0.5), makeReport('measured')]));
    const { stdout: dom } = await chromium(['--dump-dom', url]);
    expect(dom).toMatch(/<svg[^>]*data-points="12"[^>]*class="forward"/);
    expect(dom).toMatch(/<text[^>]*>predicted<\/text>/);
    expect(dom).toMatch(/<text[^>]*>measured<\/text>/);
    expect(dom).toContain('rms (predicted)'); // measured rows, with the prediction as a column
    expect(count(dom, /<rect [^>]*class="cell"/g)).toBe(8 * 2 * 2);
  });

  it('draws far outliers as labelled triangles at the edge instead of squashing the plot', async () => {
    const r = makeReport('predicted');
    r.tensors.push(tensor('mask_fill', 5, 3.4e38, { op: 'Where' }));
    const { stdout: dom } = await chromium(['--dump-dom', page('outlier.html', renderHtmlReport(r))]);
    expect(count(dom, /class="pt off-scale"/g)).toBe(1);
    expect(dom).toContain('>2\u00b9\u00b2\u2078<'); // 2^128 as a label
    expect(dom).toMatch(/<svg[^>]*data-points="7"[^>]*class="forward"/);
  });

  it('takes a screenshot', async () => {
    const url = page('shot.html', renderHtmlReport(makeReport('compare', 1, true)));
    const png = path.join(dir, 'out.png');
    await chromium([`--screenshot=${png}`, url]);
    expect(statSync(png).size).toBeGreaterThan(10_000);
    expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
  });
});
