import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { describe, expect, it, vi } from 'vitest';
import { parseOptions, registerMeasure, runMeasureCommand } from '../../src/cli/commands/measure.js';
import { ExitCode, UsageError } from '../../src/errors.js';
import type { Report } from '../../src/report/types.js';

const GPT2 = '/work/shared/validation/gpt2_tiny.onnx';

describe('unitscale measure (command)', () => {
  it('registers its options', () => {
    const p = new Command('unitscale');
    registerMeasure(p);
    const cmd = p.commands.find((c) => c.name() === 'measure')!;
    const flags = cmd.options.map((o) => o.long);
    for (const f of ['--formats', '--inputs', '--runs', '--seed', '--dim', '--shape', '--json', '--top', '--batch-outputs', '--compare']) expect(flags).toContain(f);
  });

  it('parses flags into measure options', () => {
    const o = parseOptions({ formats: 'e4m3, fp16', dim: ['batch=2', 'seq=8'], shape: ['x=1,3,224,224', 's='], runs: '3', seed: '9', batchOutputs: '50' });
    expect(o.formats.map((f) => f.name)).toEqual(['e4m3', 'fp16']);
    expect(o.dims).toEqual({ batch: 2, seq: 8 });
    expect(o.shapes).toEqual({ x: [1, 3, 224, 224], s: [] });
    expect([o.runs, o.seed, o.batchOutputs]).toEqual([3, 9, 50]);
  });

  it('bad flags are usage errors', () => {
    const bad = [{ formats: 'e9m9x' }, { dim: ['batch'] }, { shape: ['x=1,a'] }, { runs: '0' }, { seed: '-1' }, { batchOutputs: 'many' }, { inputs: 'in', runs: '2' }];
    for (const o of bad) {
      let err: unknown;
      try {
        parseOptions(o);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(o)).toBeInstanceOf(UsageError);
      expect((err as UsageError).exitCode).toBe(ExitCode.USAGE);
    }
  });

  it('--json prints the report; the default prints tables', async () => {
    const json = await runMeasureCommand(GPT2, { json: true, formats: 'e4m3,fp16' });
    const r = JSON.parse(json) as Report;
    expect(r.mode).toBe('measured');
    expect(r.formats).toEqual(['e4m3', 'fp16']);
    expect(r.tensors.length).toBeGreaterThan(100);
    const text = await runMeasureCommand(GPT2, { top: '5' });
    expect(text).toMatch(/Riskiest 5 of \d+ tensors/);
    expect(text).toMatch(/mask fill value/);
  });

  it('--compare: merges the static prediction when the analyser exists, else a usage error', async () => {
    const run = runMeasureCommand(GPT2, { json: true, compare: true, formats: 'fp16' });
    if (!existsSync('src/analysis/analyze.ts')) {
      await expect(run).rejects.toBeInstanceOf(UsageError);
      return;
    }
    const r = JSON.parse(await run) as Report;
    expect(r.mode).toBe('compare');
    expect(r.tensors.some((t) => t.predicted)).toBe(true);
  });

  it('the command wires the gate: --fail-on overflow --check-masks exits 1 on gpt2 (the float32-min mask)', async () => {
    const p = new Command('unitscale').exitOverride();
    registerMeasure(p);
    const out: string[] = [];
    const err: string[] = [];
    const so = vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    const se = vi.spyOn(process.stderr, 'write').mockImplementation((s) => (err.push(String(s)), true));
    const before = process.exitCode;
    try {
      await p.parseAsync(['measure', GPT2, '--json', '--formats', 'fp16', '--fail-on', 'overflow', '--check-masks', '--no-config'], { from: 'user' });
      expect(process.exitCode).toBe(1);
    } finally {
      so.mockRestore();
      se.mockRestore();
      process.exitCode = before;
    }
    expect((JSON.parse(out.join('')) as Report).mode).toBe('measured');
    expect(err.join('')).toMatch(/unitscale gate: FAIL/);
  });
});
