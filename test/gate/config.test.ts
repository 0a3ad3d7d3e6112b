import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findConfig, loadConfig, mergeGateConfig, resolveFormats, validateConfig } from '../../src/gate/config.js';
import { thresholdsFor } from '../../src/gate/thresholds.js';
import { resolveGateSettings } from '../../src/cli/gate-options.js';
import { ExitCode, UsageError } from '../../src/errors.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'unitscale-config-'));
  mkdirSync(path.join(root, '.git')); // the walk stops at the project root
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function write(rel: string, value: unknown): string {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

function usageMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    expect((e as UsageError).exitCode).toBe(ExitCode.USAGE);
    const msg = (e as Error).message;
    expect(msg).not.toContain('\n');
    return msg;
  }
  throw new Error('expected a UsageError');
}

describe('finding the config', () => {
  it('walks up from the model folder to unitscale.config.json', () => {
    const cfg = write('unitscale.config.json', { failOn: ['overflow'] });
    write('models/sub/m.onnx', 'x');
    expect(findConfig('models/sub/m.onnx', root)).toBe(cfg);
  });

  it('prefers the nearest file, and reads the unitscale key of a package.json', () => {
    write('unitscale.config.json', { failOn: ['overflow'] });
    const pkg = write('models/package.json', { name: 'm', unitscale: { failOn: 'underflow' } });
    expect(findConfig(path.join(root, 'models/m.onnx'), root)).toBe(pkg);
    expect(loadConfig(undefined, path.join(root, 'models/m.onnx'), root).config.failOn).toEqual(['underflow']);
  });

  it('skips a package.json without the key', () => {
    const cfg = write('unitscale.config.json', { maxOverflow: 0 });
    write('models/package.json', { name: 'm' });
    expect(findConfig(path.join(root, 'models/m.onnx'), root)).toBe(cfg);
  });

  it('falls back to the working directory when the model lies elsewhere', () => {
    const other = mkdtempSync(path.join(tmpdir(), 'unitscale-model-'));
    try {
      mkdirSync(path.join(other, '.git'));
      const cfg = write('unitscale.config.json', { maxOverflow: 0 });
      expect(findConfig(path.join(other, 'm.onnx'), root)).toBe(cfg);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('stops at the project root (.git)', () => {
    const inner = path.join(root, 'proj');
    mkdirSync(path.join(inner, '.git'), { recursive: true });
    write('unitscale.config.json', { maxOverflow: 0 }); // above the project: not ours
    expect(findConfig(path.join(inner, 'm.onnx'), inner)).toBeNull();
  });

  it('--config names a file (relative to the working directory); --no-config reads none', () => {
    write('unitscale.config.json', { failOn: ['overflow'] });
    const other = write('ci/strict.json', { failOn: ['any'] });
    expect(loadConfig('ci/strict.json', 'm.onnx', root)).toEqual({ path: other, config: { failOn: ['overflow', 'underflow', 'sqnr', 'regression'] } });
    expect(loadConfig(false, 'm.onnx', root)).toEqual({ path: null, config: {} });
    expect(usageMessage(() => loadConfig('nope.json', 'm.onnx', root))).toBe('--config nope.json: no such file');
  });
});

describe('validating the config', () => {
  const v = (raw: unknown) => validateConfig(raw, 'unitscale.config.json', root);

  it('accepts the documented shape and normalises names', () => {
    const cfg = v({
      formats: ['fp8', 'half'],
      failOn: 'overflow,regression',
      maxOverflow: 1e-6,
      minSqnr: null,
      thresholds: { float8e5m2: { maxUnderflow: 0.01 }, '*': { maxUnderflow: 0.001 } },
      ignore: ['*mask*', { op: 'Softmax' }, { tensor: 'logits', formats: ['fp8'], reason: 'saturating cast' }],
      inputs: { pixel_values: { distribution: 'uniform', min: 0, max: 1 } },
      dims: { batch: 1, sequence: 128 },
      shapes: { ids: [1, 16] },
      baseline: 'base/prev.json',
      regression: { headroomBits: 0.5 },
      includeUnknown: true,
    });
    expect(cfg.formats).toEqual(['e4m3', 'fp16']);
    expect(cfg.failOn).toEqual(['overflow', 'regression']);
    expect(cfg.thresholds).toEqual({ e5m2: { maxUnderflow: 0.01 }, '*': { maxUnderflow: 0.001 } });
    expect(cfg.ignore![2]).toEqual({ tensor: 'logits', formats: ['e4m3'], reason: 'saturating cast' });
    expect(cfg.baseline).toBe(path.join(root, 'base/prev.json'));
    expect(cfg.minSqnr).toBeNull();
  });

  it('rejects mistakes with one-line usage errors naming the key', () => {
    expect(usageMessage(() => v({ maxOverlow: 1e-6 }))).toMatch(/unknown key "maxOverlow" \(did you mean "maxOverflow"\?\)/);
    expect(usageMessage(() => v({ maxOverflow: 2 }))).toMatch(/maxOverflow: expected a fraction between 0 and 1/);
    expect(usageMessage(() => v({ maxOverflow: '1e-6' }))).toMatch(/maxOverflow: expected a fraction/);
    expect(usageMessage(() => v({ formats: ['e4m4x'] }))).toMatch(/formats: unknown format 'e4m4x'/);
    expect(usageMessage(() => v({ failOn: ['overflow', 'nan'] }))).toMatch(/failOn: unknown value 'nan'/);
    expect(usageMessage(() => v({ ignore: [{ op: 'Softmax', opType: 'x' }] }))).toMatch(/ignore\[0\]: unknown key "opType"/);
    expect(usageMessage(() => v({ ignore: [{ reason: 'x' }] }))).toMatch(/ignore\[0\]: an ignore entry must name/);
    expect(usageMessage(() => v({ ignore: [{ kind: 'bias' }] }))).toMatch(/kind: expected one of input, weight/);
    expect(usageMessage(() => v({ dims: { batch: 0 } }))).toMatch(/dims\.batch: expected a positive integer/);
    expect(usageMessage(() => v({ inputs: { x: { min: 2, max: 1 } } }))).toMatch(/inputs\.x: min 2 is above max 1/);
    expect(usageMessage(() => v({ thresholds: { e4m3: { maxOverflow: -1 } } }))).toMatch(/thresholds\.e4m3\.maxOverflow/);
    expect(usageMessage(() => v([1, 2]))).toMatch(/expected a JSON object/);
  });

  it('accepts input specs as analyze --input strings or objects, and checks them', () => {
    const cfg = v({ inputs: { a: 'normal:0,2', b: 'ids', c: { distribution: 'Gaussian', mean: 1, std: 0.5 }, d: { values: [0, 1] } } });
    expect(cfg.inputs).toEqual({ a: 'normal:0,2', b: 'ids', c: { distribution: 'Gaussian', mean: 1, std: 0.5 }, d: { values: [0, 1] } });
    expect(usageMessage(() => v({ inputs: { a: 'normal:0' } }))).toMatch(/inputs\.a: 'normal' needs 2 numbers/);
    expect(usageMessage(() => v({ inputs: { a: 'zipf' } }))).toMatch(/inputs\.a: unknown distribution 'zipf'/);
    expect(usageMessage(() => v({ inputs: { a: { distribution: 'zipf' } } }))).toMatch(/inputs\.a\.distribution: expected one of normal/);
    expect(usageMessage(() => v({ inputs: { a: { std: -1 } } }))).toMatch(/inputs\.a\.std: expected a number ≥ 0/);
  });

  it('reports broken JSON as a usage error on one line', () => {
    const file = write('unitscale.config.json', '{ "failOn": [overflow] }');
    expect(usageMessage(() => loadConfig(undefined, path.join(root, 'm.onnx'), root))).toMatch(new RegExp(`^config ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON`));
  });
});

describe('precedence: CLI flag > config file > defaults', () => {
  it('defaults alone', () => {
    const g = mergeGateConfig({}, {});
    expect(g.failOn).toEqual([]);
    expect(thresholdsFor(g, 'e4m3')).toEqual({ maxOverflow: 1e-6, maxUnderflow: 1e-2, minSqnr: 19.8 });
  });

  it('the config file beats the defaults', () => {
    const g = mergeGateConfig({ failOn: ['underflow'], maxOverflow: 1e-3, thresholds: { e4m3: { maxUnderflow: 0.2 } } }, {});
    expect(g.failOn).toEqual(['underflow']);
    expect(thresholdsFor(g, 'e4m3')).toEqual({ maxOverflow: 1e-3, maxUnderflow: 0.2, minSqnr: 19.8 });
    expect(thresholdsFor(g, 'fp16').maxUnderflow).toBe(1e-2);
  });

  it('a CLI flag beats the config file, per-format values included', () => {
    const g = mergeGateConfig(
      { failOn: ['underflow'], maxOverflow: 1e-3, thresholds: { e4m3: { maxOverflow: 0.5, maxUnderflow: 0.2 } } },
      { failOn: 'overflow', maxOverflow: '1e-6', minSqnr: '10' },
    );
    expect(g.failOn).toEqual(['overflow']);
    expect(thresholdsFor(g, 'e4m3')).toEqual({ maxOverflow: 1e-6, maxUnderflow: 0.2, minSqnr: 10 });
    expect(thresholdsFor(g, 'fp16')).toEqual({ maxOverflow: 1e-6, maxUnderflow: 1e-2, minSqnr: 10 });
  });

  it('through resolveGateSettings, reading a real file', () => {
    write('unitscale.config.json', { failOn: ['underflow'], maxUnderflow: 0.05, formats: ['e5m2'], dims: { batch: 2 } });
    const model = path.join(root, 'm.onnx');
    const fromFile = resolveGateSettings({}, model, root);
    expect(fromFile.gate.failOn).toEqual(['underflow']);
    expect(thresholdsFor(fromFile.gate, 'e5m2').maxUnderflow).toBe(0.05);
    expect(fromFile.formats).toEqual(['e5m2']);
    expect(fromFile.dims).toEqual({ batch: 2 });
    expect(fromFile.active).toBe(true);
    const fromCli = resolveGateSettings({ failOn: 'overflow', maxUnderflow: '0.5' }, model, root);
    expect(fromCli.gate.failOn).toEqual(['overflow']);
    expect(thresholdsFor(fromCli.gate, 'e5m2').maxUnderflow).toBe(0.5);
    const none = resolveGateSettings({ config: false }, model, root);
    expect(none.gate.failOn).toEqual([]);
    expect(none.active).toBe(false);
  });

  it('formats: --formats > config > fallback', () => {
    expect(resolveFormats(undefined, {}, ['e4m3', 'fp16'])).toEqual(['e4m3', 'fp16']);
    expect(resolveFormats(undefined, { formats: ['e5m2'] }, ['e4m3'])).toEqual(['e5m2']);
    expect(resolveFormats('fp8,bf16', { formats: ['e5m2'] }, ['e4m3'])).toEqual(['e4m3', 'bf16']);
    expect(usageMessage(() => resolveFormats(['nope'], {}, []))).toMatch(/^--formats: unknown format 'nope'/);
  });

  it('flags are validated as usage errors', () => {
    expect(usageMessage(() => mergeGateConfig({}, { maxOverflow: 'lots' }))).toMatch(/^--max-overflow: expected a fraction between 0 and 1/);
    expect(usageMessage(() => mergeGateConfig({}, { maxUnderflow: '1.5' }))).toMatch(/^--max-underflow/);
    expect(usageMessage(() => mergeGateConfig({}, { minSqnr: 'x' }))).toMatch(/^--min-sqnr: expected a number of dB/);
    expect(usageMessage(() => mergeGateConfig({}, { failOn: 'overflow,bogus' }))).toMatch(/^--fail-on: unknown value 'bogus'/);
    expect(usageMessage(() => mergeGateConfig({}, { failOn: 'regression' }))).toMatch(/--fail-on regression needs a baseline/);
  });
});
