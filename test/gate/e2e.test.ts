/**
 * End to end on real ONNX files with planted problems (scripts/make-planted-fixtures.ts):
 * load → analyzeModel → gate → exit code, SARIF, HTML.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { applyGateOptions, resolveGateSettings, type GateCliOptions } from '../../src/cli/gate-options.js';
import { ExitCode, ModelError } from '../../src/errors.js';
import { parseFormat } from '../../src/formats/format.js';
import { evaluateGate } from '../../src/gate/evaluate.js';
import { loadModel, modelFromBytes } from '../../src/onnx/load.js';
import { encodeModelProto } from '../../src/onnx/proto.js';
import type { Report } from '../../src/report/types.js';
import { plantedOverflowModel, plantedUnderflowModel } from '../../scripts/make-planted-fixtures.js';
import { Sink } from '../helpers/sink.js';

const PLANTED = fileURLToPath(new URL('../../fixtures/planted/', import.meta.url));
const OVERFLOW = path.join(PLANTED, 'overflow-e4m3.onnx');
const UNDERFLOW = path.join(PLANTED, 'underflow-fp16.onnx');

const analyze = (file: string, formats: string[]): Report => analyzeModel(loadModel(file), { formats: formats.map((f) => parseFormat(f)) });


let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'unitscale-e2e-'));
  writeFileSync(path.join(dir, '.git'), ''); // stop config discovery here
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The CLI's gate step, as `unitscale analyze MODEL --formats … <flags>` runs it. */
async function gate(file: string, formats: string[], opts: GateCliOptions, env: NodeJS.ProcessEnv = {}) {
  const settings = resolveGateSettings({ config: false, ...opts }, file, dir);
  const report = analyze(file, formats);
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await applyGateOptions(report, { config: false, ...opts }, file, { settings, stdout, stderr, env, cwd: dir });
  return { code, report, stdout: stdout.text, stderr: stderr.text };
}

describe('planted fixtures', () => {
  it('are what the script builds (regenerate with `npx tsx scripts/make-planted-fixtures.ts`)', () => {
    expect(Buffer.compare(readFileSync(OVERFLOW), Buffer.from(encodeModelProto(plantedOverflowModel())))).toBe(0);
    expect(Buffer.compare(readFileSync(UNDERFLOW), Buffer.from(encodeModelProto(plantedUnderflowModel())))).toBe(0);
  });
});

describe('overflow-e4m3.onnx: a MatMul whose weight makes its output overflow E4M3', () => {
  it('predicts the planted overflow on `hot` only', () => {
    const r = analyze(OVERFLOW, ['e4m3']);
    const over = r.tensors.filter((t) => (t.risk.e4m3?.overflow ?? 0) > 1e-6).map((t) => t.name);
    expect(over).toEqual(['hot']);
    const hot = r.tensors.find((t) => t.name === 'hot')!;
    expect(hot.rms!).toBeGreaterThan(250); // √64·40 = 320 in expectation
    expect(hot.risk.e4m3!.overflow).toBeGreaterThan(0.05);
  });

  it('`--formats e4m3 --fail-on overflow --max-overflow 1e-6 --max-underflow 1e-3` exits 1, naming the tensor', async () => {
    const r = await gate(OVERFLOW, ['e4m3'], { failOn: 'overflow', maxOverflow: '1e-6', maxUnderflow: '1e-3' });
    expect(r.code).toBe(ExitCode.RISK);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('  error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/overflow +e4m3 +hot \(MatMul matmul_hot\): \d+% of the elements overflow e4m3 \(\|x\| > 448\)/);
  });

  it('exits 0 in FP16, where nothing overflows', async () => {
    expect((await gate(OVERFLOW, ['fp16'], { failOn: 'overflow', maxOverflow: '1e-6' })).code).toBe(ExitCode.OK);
  });

  it('exits 0 when the tensor is allowed by the config allow-list', async () => {
    const cfg = path.join(dir, 'allow.json');
    writeFileSync(cfg, JSON.stringify({ failOn: ['overflow'], ignore: [{ op: 'MatMul', formats: ['e4m3'] }] }));
    expect((await gate(OVERFLOW, ['e4m3'], { config: cfg })).code).toBe(ExitCode.OK);
    writeFileSync(cfg, JSON.stringify({ failOn: ['overflow'], ignore: ['h?t'] }));
    expect((await gate(OVERFLOW, ['e4m3'], { config: cfg })).code).toBe(ExitCode.OK);
    writeFileSync(cfg, JSON.stringify({ failOn: ['overflow'], ignore: ['*mask*'] }));
    expect((await gate(OVERFLOW, ['e4m3'], { config: cfg })).code).toBe(ExitCode.RISK);
  });

  it('the same model with a sane weight scale passes', () => {
    const clean = analyzeModel(modelFromBytes(encodeModelProto(plantedOverflowModel(0.125)), null), { formats: [parseFormat('e4m3')] });
    const r = evaluateGate(clean, { ...resolveGateSettings({ config: false, failOn: 'overflow' }, null, dir).gate });
    expect(r.exitCode).toBe(0);
  });

  it('writes SARIF and an HTML report for the run, and annotates on GitHub Actions', async () => {
    const sarifFile = path.join(dir, 'out.sarif');
    const htmlFile = path.join(dir, 'report.html');
    const r = await gate(OVERFLOW, ['e4m3'], { failOn: 'overflow', sarif: sarifFile, report: htmlFile }, { GITHUB_ACTIONS: 'true' });
    expect(r.code).toBe(1);
    const sarif = JSON.parse(readFileSync(sarifFile, 'utf8'));
    const res = sarif.runs[0].results.find((x: { ruleId: string; level: string }) => x.ruleId === 'overflow' && x.level === 'error');
    expect(res.locations[0].logicalLocations[0]).toEqual({ name: 'hot', kind: 'variable', fullyQualifiedName: 'matmul_hot/hot' });
    expect(res.locations[0].physicalLocation.artifactLocation.uri).toMatch(/fixtures\/planted\/overflow-e4m3\.onnx$/);
    expect(readFileSync(htmlFile, 'utf8')).toContain('"name":"hot"');
    expect(r.stdout).toMatch(/^::error file=[^,]*overflow-e4m3\.onnx,title=unitscale overflow \(e4m3\)::hot \(MatMul matmul_hot\)/m);
  });
});

describe('underflow-fp16.onnx: an activation that underflows FP16', () => {
  it('predicts the planted underflow on `tiny` only', () => {
    const r = analyze(UNDERFLOW, ['fp16']);
    expect(r.tensors.filter((t) => (t.risk.fp16?.underflow ?? 0) > 1e-3).map((t) => t.name)).toEqual(['tiny']);
    expect(r.tensors.find((t) => t.name === 'tiny')!.risk.fp16!.underflow).toBeGreaterThan(0.5);
  });

  it('--fail-on underflow exits 1; --fail-on overflow exits 0 (the underflow stays a warning)', async () => {
    const u = await gate(UNDERFLOW, ['fp16'], { failOn: 'underflow', maxUnderflow: '1e-3' });
    expect(u.code).toBe(1);
    expect(u.stderr).toMatch(/error {3}underflow +fp16 +tiny \(Mul down_2\): \d+% of the non-zero elements underflow to 0 in fp16/);
    const o = await gate(UNDERFLOW, ['fp16'], { failOn: 'overflow' });
    expect(o.code).toBe(0);
    expect(o.stderr).toMatch(/warning underflow +fp16 +tiny/);
  });
});

describe('--baseline on real analyses', () => {
  it('a re-export that plants the overflow is a regression; the same export is not', async () => {
    const before = analyzeModel(modelFromBytes(encodeModelProto(plantedOverflowModel(0.125)), null), { formats: [parseFormat('e4m3')] });
    const baselineFile = path.join(dir, 'previous.json');
    writeFileSync(baselineFile, JSON.stringify(before));
    const worse = await gate(OVERFLOW, ['e4m3'], { failOn: 'regression', baseline: baselineFile });
    expect(worse.code).toBe(1);
    const regressions = worse.stderr.split('\n').filter((l) => l.startsWith('  error'));
    expect(regressions.some((l) => /new-risk +e4m3 +hot: new overflow risk in e4m3/.test(l))).toBe(true);
    expect(regressions.every((l) => /new-risk|headroom-loss|sqnr-loss/.test(l))).toBe(true);

    writeFileSync(baselineFile, JSON.stringify(analyze(OVERFLOW, ['e4m3'])));
    const same = await gate(OVERFLOW, ['e4m3'], { failOn: 'regression', baseline: baselineFile });
    expect(same.code).toBe(0); // still overflowing, but no worse than before
    expect(same.stderr).toMatch(/warning overflow +e4m3 +hot/);
  });
});

describe('exit code 3: a model that cannot be read', () => {
  it('is a ModelError before any gate runs', () => {
    const bad = path.join(dir, 'bad.onnx');
    writeFileSync(bad, Buffer.from([0xff, 0xff, 0xff, 0x0f, 0x08]));
    expect(() => loadModel(bad)).toThrow(ModelError);
    try {
      loadModel(bad);
    } catch (e) {
      expect((e as ModelError).exitCode).toBe(ExitCode.BAD_MODEL);
    }
  });
});
