/**
 * The gate sees values inside If branches: a planted overflow in a then branch
 * (test/helpers/planted-if.ts) fails `--fail-on overflow`, names the branch, and can be allowed
 * by a scoped glob; baselines and SARIF keep equal names in different scopes apart.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { applyGateOptions, resolveGateSettings, type GateCliOptions } from '../../src/cli/gate-options.js';
import { ExitCode } from '../../src/errors.js';
import { parseFormat } from '../../src/formats/format.js';
import { diffBaseline, tensorKey } from '../../src/gate/baseline.js';
import { evaluateGate } from '../../src/gate/evaluate.js';
import { buildSarif } from '../../src/gate/sarif.js';
import { defaultGateConfig } from '../../src/gate/thresholds.js';
import { loadModel } from '../../src/onnx/load.js';
import { encodeModelProto } from '../../src/onnx/proto.js';
import type { Report } from '../../src/report/types.js';
import { plantedIfOverflow } from '../helpers/planted-if.js';
import { Sink } from '../helpers/sink.js';


let dir: string;
const files: Record<string, string> = {};
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'unitscale-subgraph-gate-'));
  writeFileSync(path.join(dir, '.git'), ''); // stop config discovery here
  for (const c of ['input', 'false'] as const) {
    files[c] = path.join(dir, `planted-if-${c}.onnx`);
    writeFileSync(files[c], encodeModelProto(plantedIfOverflow(c)));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const analyze = (file: string, formats: string[]): Report => analyzeModel(loadModel(file), { formats: formats.map((f) => parseFormat(f)) });

/** The CLI's gate step, as `unitscale analyze MODEL --formats … <flags>` runs it. */
async function gate(file: string, formats: string[], opts: GateCliOptions) {
  const settings = resolveGateSettings({ config: false, ...opts }, file, dir);
  const report = analyze(file, formats);
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await applyGateOptions(report, { config: false, ...opts }, file, { settings, stdout, stderr, env: {}, cwd: dir });
  return { code, report, stdout: stdout.text, stderr: stderr.text };
}

describe('a planted overflow inside an If branch', () => {
  it('`--formats e4m3 --fail-on overflow` exits 1, naming the tensor and its branch', async () => {
    const r = await gate(files.input!, ['e4m3'], { failOn: 'overflow', maxOverflow: '1e-6' });
    expect(r.code).toBe(ExitCode.RISK);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('  error'));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/overflow +e4m3 +hot \(MatMul matmul_hot\) in gate_if\/then_branch: [\d.]+% of the elements overflow e4m3/);
  });

  it('exits 0 in FP16, and when the branch never runs (constant false condition)', async () => {
    expect((await gate(files.input!, ['fp16'], { failOn: 'overflow', maxOverflow: '1e-6' })).code).toBe(ExitCode.OK);
    expect((await gate(files.false!, ['e4m3'], { failOn: 'overflow', maxOverflow: '1e-6' })).code).toBe(ExitCode.OK);
  });

  it('an allow-list glob on "<scope>/<name>" covers it; the bare name of the main graph’s `hot` does not', () => {
    const report = analyze(files.input!, ['e4m3']);
    const cfg = { ...defaultGateConfig(), failOn: ['overflow' as const] };
    const all = evaluateGate(report, cfg);
    const v = all.violations.find((x) => x.rule === 'overflow')!;
    expect(v).toMatchObject({ tensor: 'hot', scope: 'gate_if/then_branch', node: 'matmul_hot', level: 'error' });
    expect(all.exitCode).toBe(1);
    expect(evaluateGate(report, { ...cfg, ignore: ['gate_if/then_branch/*'] }).exitCode).toBe(0);
    expect(evaluateGate(report, { ...cfg, ignore: [{ tensor: 'gate_if/*/hot', categories: ['overflow'] }] }).exitCode).toBe(0);
    expect(evaluateGate(report, { ...cfg, ignore: [{ node: 'matmul_hot' }] }).exitCode).toBe(0);
    // A bare name still matches a scoped tensor of that name (the name is kept as in the model).
    expect(evaluateGate(report, { ...cfg, ignore: ['hot'] }).exitCode).toBe(0);
    expect(evaluateGate(report, { ...cfg, ignore: ['y'] }).exitCode).toBe(1);

    const sarif = buildSarif(report, all, files.input!, { cwd: dir });
    const loc = sarif.runs[0]!.results.find((x) => x.ruleId === 'overflow')!.locations[0]!.logicalLocations[0]!;
    expect(loc.fullyQualifiedName).toBe('gate_if/then_branch/matmul_hot/hot');
  });

  it('baselines match tensors by scope and name: three `hot`s, three keys, no regression against itself', () => {
    const report = analyze(files.input!, ['e4m3', 'fp16']);
    const hots = report.tensors.filter((t) => t.name === 'hot');
    expect(hots).toHaveLength(3);
    expect(new Set(hots.map(tensorKey)).size).toBe(3);
    expect(tensorKey({ name: 'hot', kind: 'activation' })).toBe('fwd\u0000hot'); // main-graph keys as before
    expect(diffBaseline(report, report)).toEqual([]);
    // A baseline without the branch values (an older unitscale): the branch's overflow is new.
    const before: Report = { ...report, tensors: report.tensors.filter((t) => !t.scope) };
    const regs = diffBaseline(report, before);
    expect(regs.some((g) => g.type === 'new-risk' && g.scope === 'gate_if/then_branch' && g.tensor === 'hot' && g.format === 'e4m3')).toBe(true);
    expect(regs.every((g) => g.scope)).toBe(true);
  });
});
