/** `unitscale rewrite` through its command function: flags, report, file safety. */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { ExitCode, UnitscaleError, UsageError } from '../../src/errors.js';
import { loadModel } from '../../src/onnx/load.js';
import { registerRewrite, runRewriteCommand, type RewriteReport } from '../../src/cli/commands/rewrite.js';
import { hasShared, SHARED } from '../helpers/corpus.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'unitscale-cli-rewrite-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const CONV = path.join(SHARED, 'onnx-backend-data', 'pytorch-converted', 'test_Conv2d', 'model.onnx');
const GPT2 = path.join(SHARED, 'validation', 'gpt2_tiny.onnx');

describe.skipIf(!hasShared)('unitscale rewrite (command)', () => {
  it('registers with commander and parses its flags', async () => {
    const program = new Command().exitOverride();
    registerRewrite(program);
    const cmd = program.commands.find((c) => c.name() === 'rewrite')!;
    expect(cmd.options.map((o) => o.long)).toEqual(
      expect.arrayContaining(['--output', '--format', '--weights-fp8', '--keep-io-types', '--ops', '--weights-only', '--scales', '--inputs', '--dry-run', '--json', '--force', '--verify']),
    );
  });

  it('--dry-run --json: reports every change and writes nothing', async () => {
    const json = await runRewriteCommand(GPT2, { dryRun: true, json: true, format: 'e4m3' });
    const r = JSON.parse(json) as RewriteReport;
    expect(r.output).toBeNull();
    expect(r.format).toBe('e4m3');
    expect(r.opset).toEqual({ before: 18, after: 19 });
    expect(r.summary['quantize']).toBe(26);
    for (const c of r.changes) {
      expect(typeof c.node).toBe('string');
      expect(typeof c.action).toBe('string');
      expect(c.reason.length).toBeGreaterThan(0);
    }
    expect(existsSync(GPT2.replace(/\.onnx$/, '.us.e4m3.onnx'))).toBe(false);
  });

  it('writes the model, renders a table, and --verify checks it in ONNX Runtime', async () => {
    const out = path.join(tmp, 'conv.us.onnx');
    const text = await runRewriteCommand(CONV, { output: out, verify: true });
    expect(text).toContain('restore-output');
    expect(text).toMatch(/verify .*max relative error 0\.00e\+0/);
    loadModel(out).graph.topologicalOrder();
  });

  it('never overwrites the input without --force', async () => {
    const copy = path.join(tmp, 'model.onnx');
    copyFileSync(CONV, copy);
    const before = readFileSync(copy);
    const err = await runRewriteCommand(copy, { output: copy }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnitscaleError);
    expect((err as UnitscaleError).exitCode).toBe(ExitCode.WRITE);
    expect(readFileSync(copy).equals(before)).toBe(true);
    await runRewriteCommand(copy, { output: copy, force: true });
    expect(readFileSync(copy).equals(before)).toBe(false);
  });

  it('--scales measured --inputs uses the recorded inputs', async () => {
    const r = JSON.parse(await runRewriteCommand(GPT2, { dryRun: true, json: true, scales: 'measured', inputs: GPT2.replace(/\.onnx$/, '.inputs') })) as RewriteReport;
    expect(r.scales).toContain('measured');
    expect(r.changes.filter((c) => c.action === 'scale-input').every((c) => c.reason.startsWith('measured'))).toBe(true);
  });

  it('rejects bad flag combinations with usage errors', async () => {
    await expect(runRewriteCommand(CONV, { dryRun: true, format: 'int8' })).rejects.toThrow(UsageError);
    await expect(runRewriteCommand(CONV, { dryRun: true, weightsFp8: true })).rejects.toThrow(/--weights-fp8 needs/);
    await expect(runRewriteCommand(CONV, { dryRun: true, keepIoTypes: true, format: 'e4m3' })).rejects.toThrow(/--keep-io-types needs/);
    await expect(runRewriteCommand(CONV, { dryRun: true, ops: 'Relu' })).rejects.toThrow(UsageError);
    await expect(runRewriteCommand(CONV, { dryRun: true, inputs: '/nowhere' })).rejects.toThrow(/--scales measured/);
  });
});
