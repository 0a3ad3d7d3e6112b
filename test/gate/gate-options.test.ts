import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { addGateOptions, applyGateOptions, resolveGateSettings, type GateCliOptions } from '../../src/cli/gate-options.js';
import { annotationLine, annotationLines, escapeData, escapeProperty } from '../../src/gate/annotations.js';
import type { Violation } from '../../src/gate/evaluate.js';
import { ExitCode, UnitscaleError, UsageError } from '../../src/errors.js';
import type { FormatRisk, Report, TensorReport } from '../../src/report/types.js';
import { Sink } from '../helpers/sink.js';

const risk = (overflow = 0, underflow = 0, sqnrDb: number | null = 31): FormatRisk => ({ overflow, underflow, subnormal: 0, sqnrDb });
function tensor(name: string, r: Record<string, FormatRisk>, extra: Partial<TensorReport> = {}): TensorReport {
  return { name, kind: 'activation', op: 'MatMul', node: 'mm', dtype: 'float32', shape: [1], mean: 0, rms: 1, absmax: 4, risk: r, confidence: 'high', order: 0, ...extra };
}
function report(tensors: TensorReport[]): Report {
  return {
    tool: { name: 'unitscale', version: '0.1.0' },
    model: { path: 'm.onnx', irVersion: 8, opsets: { '': 17 } },
    mode: 'predicted',
    formats: ['e4m3'],
    tensors,
    summary: { tensors: tensors.length, formats: {} },
  };
}
const planted = report([tensor('hot', { e4m3: risk(0.2) }), tensor('small', { e4m3: risk(0, 0.002) }), tensor('ok', { e4m3: risk() })]);


let dir: string;
let model: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'unitscale-gate-'));
  mkdirSync(path.join(dir, '.git'));
  model = path.join(dir, 'model.onnx');
  writeFileSync(model, 'not really a model');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function run(opts: GateCliOptions, rep: Report = planted, env: NodeJS.ProcessEnv = {}) {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await applyGateOptions(rep, opts, model, { stdout, stderr, env, cwd: dir });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

describe('addGateOptions', () => {
  function parse(args: string[]): GateCliOptions {
    const cmd = addGateOptions(new Command('analyze').argument('<model>').exitOverride());
    cmd.parse(['model.onnx', ...args], { from: 'user' });
    return cmd.opts<GateCliOptions>();
  }

  it('adds the documented flags under their camelCase names', () => {
    const o = parse(['--fail-on', 'overflow,regression', '--max-overflow', '1e-6', '--max-underflow', '1e-3', '--min-sqnr', '20', '--config', 'c.json', '--baseline', 'prev.json', '--sarif', 'out.sarif', '--report', 'r.html']);
    expect(o).toEqual({ failOn: 'overflow,regression', maxOverflow: '1e-6', maxUnderflow: '1e-3', minSqnr: '20', config: 'c.json', baseline: 'prev.json', sarif: 'out.sarif', report: 'r.html' });
  });

  it('leaves unset flags undefined (so the config file can fill them) and maps --no-config to false', () => {
    expect(parse([])).toEqual({});
    expect(parse(['--no-config'])).toEqual({ config: false });
  });
});

describe('applyGateOptions: exit codes', () => {
  it('0 without gate flags, and silent', async () => {
    const r = await run({});
    expect(r.code).toBe(ExitCode.OK);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('');
  });

  it('1 when a risk exceeds the thresholds (the issue example)', async () => {
    const r = await run({ failOn: 'overflow', maxOverflow: '1e-6', maxUnderflow: '1e-3' });
    expect(r.code).toBe(ExitCode.RISK);
    expect(r.stderr).toMatch(/^unitscale gate: FAIL — 1 error\(s\), 1 warning\(s\)/);
    expect(r.stderr).toMatch(/error {3}overflow {6}e4m3 {5}hot \(MatMul mm\): 20% of the elements overflow e4m3/);
    expect(r.stderr).toMatch(/warning underflow/);
  });

  it('0 when within thresholds, with a one-line verdict', async () => {
    const r = await run({ failOn: 'overflow', maxOverflow: '0.5' });
    expect(r.code).toBe(ExitCode.OK);
    expect(r.stderr).toBe('unitscale gate: ok — nothing above the thresholds (3 tensor×format checks)\n');
  });

  it('2 (UsageError) for bad flags', async () => {
    await expect(run({ failOn: 'overflw' })).rejects.toThrow(UsageError);
    await expect(run({ maxOverflow: 'x' })).rejects.toMatchObject({ exitCode: ExitCode.USAGE });
    await expect(run({ failOn: 'regression' })).rejects.toThrow(/needs a baseline/);
    await expect(run({ baseline: 'missing.json' })).rejects.toThrow('--baseline missing.json: no such file');
    writeFileSync(path.join(dir, 'bad.json'), '{"tensors": 3}');
    await expect(run({ baseline: 'bad.json' })).rejects.toThrow(/not a unitscale JSON report/);
  });

  it('reads thresholds and the allow-list from the config file next to the model', async () => {
    writeFileSync(path.join(dir, 'unitscale.config.json'), JSON.stringify({ failOn: ['overflow'], ignore: ['hot'] }));
    expect((await run({})).code).toBe(0);
    expect((await run({ config: false, failOn: 'overflow' })).code).toBe(1);
  });

  it('--fail-on regression with a baseline: fails on what got worse only', async () => {
    const prev = report([tensor('hot', { e4m3: risk(0.2) }), tensor('small', { e4m3: risk() }), tensor('ok', { e4m3: risk() })]);
    writeFileSync(path.join(dir, 'prev.json'), JSON.stringify(prev));
    const same = await run({ failOn: 'regression', baseline: 'prev.json' }, prev);
    expect(same.code).toBe(0);
    const worse = report([tensor('hot', { e4m3: risk(0.2) }), tensor('small', { e4m3: risk(0, 0.5) }), tensor('ok', { e4m3: risk() })]);
    const r = await run({ failOn: 'regression', baseline: 'prev.json' }, worse);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/1 regression\(s\) against prev\.json/);
    expect(r.stderr).toMatch(/error {3}new-risk {6}e4m3 {5}small: new underflow risk in e4m3: 50% underflow \(was 0\)/);
  });
});

describe('applyGateOptions: files', () => {
  it('writes SARIF and HTML atomically, leaving no temporary files', async () => {
    const r = await run({ failOn: 'overflow', sarif: 'out/scan.sarif', report: 'report.html' }).catch((e) => e);
    // the folder does not exist: a write error, not a crash
    expect(r).toBeInstanceOf(UnitscaleError);
    expect((r as UnitscaleError).exitCode).toBe(ExitCode.WRITE);
    mkdirSync(path.join(dir, 'out'));
    const ok = await run({ failOn: 'overflow', sarif: path.join(dir, 'out/scan.sarif'), report: path.join(dir, 'report.html') });
    expect(ok.code).toBe(1);
    const sarif = JSON.parse(readFileSync(path.join(dir, 'out/scan.sarif'), 'utf8'));
    expect(sarif.version).toBe('2.1.0');
    expect(sarif.runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri).toBe('model.onnx');
    const html = readFileSync(path.join(dir, 'report.html'), 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync(path.join(dir, 'out'))).toEqual(['scan.sarif']);
  });

  it('refuses to overwrite the model', async () => {
    await expect(run({ report: model })).rejects.toThrow(/refusing to overwrite the input/);
    expect(readFileSync(model, 'utf8')).toBe('not really a model');
  });

  it('puts the baseline beside the report in the HTML', async () => {
    writeFileSync(path.join(dir, 'prev.json'), JSON.stringify(planted));
    await run({ baseline: 'prev.json', report: path.join(dir, 'r.html') });
    const html = readFileSync(path.join(dir, 'r.html'), 'utf8');
    expect(html).toContain('"label":"baseline (predicted)"');
  });

  it('resolveGateSettings is the early check the command runs before long work', () => {
    expect(() => resolveGateSettings({ minSqnr: 'loud' }, model, dir)).toThrow(/^--min-sqnr/);
    expect(existsSync(path.join(dir, 'unitscale.config.json'))).toBe(false);
  });
});

describe('GitHub Actions annotations', () => {
  it('prints ::error / ::warning lines on stdout only when GITHUB_ACTIONS=true', async () => {
    const off = await run({ failOn: 'overflow', maxUnderflow: '1e-3' });
    expect(off.stdout).toBe('');
    const on = await run({ failOn: 'overflow', maxUnderflow: '1e-3' }, planted, { GITHUB_ACTIONS: 'true' });
    expect(on.stdout.trimEnd().split('\n')).toEqual([
      '::error file=model.onnx,title=unitscale overflow (e4m3)::hot (MatMul mm): 20%25 of the elements overflow e4m3 (|x| > 448); allowed 1.0e-6', // % is escaped as %25
      '::warning file=model.onnx,title=unitscale underflow (e4m3)::small (MatMul mm): 0.2%25 of the non-zero elements underflow to 0 in e4m3; allowed 0.1%25',
    ]);
  });

  it('go to stderr when stdout carries the JSON report (--json)', async () => {
    const r = await run({ failOn: 'overflow', json: true }, planted, { GITHUB_ACTIONS: 'true' });
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^::error file=model\.onnx,title=unitscale overflow \(e4m3\)::hot/m);
  });

  it('escapes untrusted names so that they cannot start a command of their own', () => {
    expect(escapeData('50% a\r\nb')).toBe('50%25 a%0D%0Ab');
    expect(escapeProperty('a:b,c%')).toBe('a%3Ab%2Cc%25');
    const v: Violation = {
      rule: 'overflow', category: 'overflow', level: 'error', format: 'e4m3', tensor: 'x\n::error::pwned', kind: 'activation',
      node: null, op: 'Add', order: null, value: 1, threshold: 0, headroomBits: null, message: 'x\n::error::pwned overflows',
    };
    const line = annotationLine(v, 'dir/we,ird:name.onnx', '/');
    expect(line).toBe('::error file=dir/we%2Cird%3Aname.onnx,title=unitscale overflow (e4m3)::x%0A::error::pwned overflows');
    expect(line.split('\n')).toHaveLength(1);
  });

  it('caps the number of lines per level and says how many were left out', () => {
    const v = (i: number, level: 'error' | 'warning'): Violation => ({
      rule: 'overflow', category: 'overflow', level, format: 'e4m3', tensor: `t${i}`, kind: 'activation', node: null, op: null, order: i, value: 1, threshold: 0, headroomBits: null, message: `t${i}`,
    });
    const lines = annotationLines([...Array.from({ length: 5 }, (_, i) => v(i, 'error')), v(9, 'warning')], 'm.onnx', { limit: 2, cwd: '/' });
    expect(lines).toHaveLength(4);
    expect(lines[3]).toBe('::notice file=m.onnx,title=unitscale::3 more finding(s) not annotated (3 error, 0 warning); see the SARIF or HTML report');
  });
});
