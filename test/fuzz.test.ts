/**
 * The mutation fuzzer, CI-sized: a few hundred seeded cases through the real CLI path in worker
 * processes; no case may end in anything but success or a clean UnitscaleError. The full run is
 * `npm run fuzz -- --cases 10000 --seed S`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { encodeVarint, makeCase, MUTATOR_KINDS, scanWire } from '../src/fuzz/mutate.js';
import { defaultCorpusRoots, formatTable, loadCorpus, runFuzz, type FuzzReport } from '../src/fuzz/runner.js';
import { decodeModelProto } from '../src/onnx/proto.js';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = { outsideFile: '/nonexistent/outside/secret.bin', outsideRelative: '../../outside/secret.bin' };

function describeFailures(r: FuzzReport): string {
  return r.failures.map((f) => `case ${f.index} [${f.kind}] ${f.source}: ${f.detail} → ${f.reason} at ${f.stage}: ${f.message}`).join('\n');
}

describe('fuzz mutations', () => {
  const corpus = loadCorpus([path.join(ROOT, 'fixtures')]);

  it('are a pure function of (seed, index)', () => {
    for (let i = 0; i < 60; i++) {
      const a = makeCase(corpus, 99, i, env);
      const b = makeCase(corpus, 99, i, env);
      expect(a.kind).toBe(b.kind);
      expect(a.detail).toBe(b.detail);
      expect(a.files.map((f) => Buffer.from(f.data).toString('base64'))).toEqual(b.files.map((f) => Buffer.from(f.data).toString('base64')));
    }
    // and different seeds give different runs
    const kinds = (s: number) => Array.from({ length: 20 }, (_, i) => makeCase(corpus, s, i, env).kind).join();
    expect(kinds(1)).not.toBe(kinds(2));
  });

  it('walk the protobuf wire format and encode varints as protobuf does', () => {
    const mlp = corpus.find((c) => c.name.endsWith('mlp.onnx'))!;
    const fields = scanWire(mlp.bytes);
    // ModelProto fields 1 (ir_version), 2 (producer_name), 7 (graph), 8 (opset_import) at top level
    expect(new Set(fields.filter((f) => f.parent === -1).map((f) => f.field))).toEqual(new Set([1, 2, 3, 7, 8]));
    // nested: graph → node → op_type
    expect(fields.some((f) => f.parent >= 0 && fields[f.parent]!.field === 7 && f.field === 1)).toBe(true);
    expect(Array.from(encodeVarint(300))).toEqual([0xac, 0x02]);
    expect(encodeVarint(-1)).toHaveLength(10);
    expect(encodeVarint(0)).toEqual(Uint8Array.from([0]));
  });

  it('with fixed-up lengths still decode as far as the change', () => {
    let decodable = 0;
    for (let i = 0; i < 200; i++) {
      const c = makeCase(corpus, 5, i, env, ['field-delete']);
      try {
        decodeModelProto(c.files[0]!.data);
        decodable++;
      } catch {
        /* a deleted field can leave a truncated message behind */
      }
    }
    expect(decodable).toBeGreaterThan(150);
  });
});

describe('fuzz runner', () => {
  it('CI run: 300 cases through load → order → decode, no failures', async () => {
    const report = await runFuzz({ cases: 300, seed: 20240611, analyze: false, timeoutMs: 15_000 });
    console.log(formatTable(report));
    expect(report.corpusSize).toBeGreaterThan(3);
    expect(report.failures, describeFailures(report)).toEqual([]);
    const kinds = new Set(report.outcomes.map((o) => o.kind));
    for (const k of MUTATOR_KINDS) expect(kinds, k).toContain(k);
    expect(report.outcomes.filter((o) => o.outcome === 'ok').length).toBeGreaterThan(50);
    expect(report.outcomes.filter((o) => o.outcome === 'error').length).toBeGreaterThan(100);
    expect(report.outcomes.every((o) => o.outcome !== 'error' || o.exitCode === 3)).toBe(true);
    expect(report.seconds).toBeLessThan(60);
  }, 120_000);

  it('classifies misbehaving cases: foreign exception, hang, crash, memory cap', async () => {
    const report = await runFuzz({
      cases: 0,
      seed: 1,
      seeds: false,
      selftest: true,
      timeoutMs: 3000,
      memoryMb: 400,
      corpus: [path.join(ROOT, 'fixtures', 'mlp.onnx')],
    });
    const reasons = Object.fromEntries(report.outcomes.map((o) => [o.kind, o.reason]));
    expect(reasons).toEqual({
      'selftest-throw': 'exception',
      'selftest-hang': 'timeout',
      'selftest-crash': 'crash',
      'selftest-oom': expect.stringMatching(/^(memory|crash)$/),
    });
    expect(report.failures).toHaveLength(4);
  }, 60_000);

  const hasAnalysis = existsSync(path.join(ROOT, 'src', 'analysis', 'analyze.ts'));
  it.skipIf(!hasAnalysis)('with the analysis stage: every case ends in a result or a clean error', async () => {
    // Small models only: the analysis of the large Model-Zoo graphs takes seconds per case.
    const roots = defaultCorpusRoots().flatMap((r) =>
      r.endsWith('onnx-backend-data') ? ['pytorch-converted', 'pytorch-operator', 'simple'].map((d) => path.join(r, d)) : r.endsWith('validation') ? [] : [r],
    );
    const report = await runFuzz({ cases: 150, seed: 777, corpus: roots.filter((r) => existsSync(r)), timeoutMs: 30_000 });
    console.log(formatTable(report));
    const loaderFailures = report.failures.filter((f) => f.stage !== 'analyze');
    expect(loaderFailures, describeFailures({ ...report, failures: loaderFailures })).toEqual([]);
    const analysisFailures = report.failures.filter((f) => f.stage === 'analyze');
    expect(analysisFailures, describeFailures({ ...report, failures: analysisFailures })).toEqual([]);
  }, 300_000);
});
