/**
 * The WebAssembly kernels of fast-wasm.ts (RiskAccumulator lanes, fused statistics) and of
 * weight-stats.ts (moments, run in worker threads) are built with the shared encoder
 * src/wasm/assembler.ts. Their results are checked against the JavaScript loops elsewhere
 * (test/formats/fast-risk.test.ts, test/measure/stats-fused.test.ts, test/onnx/weight-stats.test.ts);
 * here: that the modules validate, have the expected interface, and are byte for byte the modules
 * the kernels' earlier private encoders produced (so their results are unchanged by construction).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { moduleBytes } from '../../src/formats/fast-wasm.js';
import { simdKernel } from '../../src/onnx/weight-stats.js';

interface ModuleDescriptor {
  name: string;
  kind: string;
}
const wasm = (globalThis as unknown as {
  WebAssembly: {
    validate(b: Uint8Array): boolean;
    Module: { new (b: Uint8Array): object; exports(m: object): ModuleDescriptor[]; imports(m: object): (ModuleDescriptor & { module: string })[] };
  };
}).WebAssembly;

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('kernels built with the shared assembler', () => {
  it('fast-wasm: validates and exports its memory and the tally functions', () => {
    const bytes = moduleBytes();
    expect(wasm.validate(bytes)).toBe(true);
    const m = new wasm.Module(bytes);
    expect(wasm.Module.imports(m)).toEqual([]);
    expect(wasm.Module.exports(m)).toEqual([
      { name: 'memory', kind: 'memory' },
      { name: 'tally1', kind: 'function' },
      { name: 'tally2', kind: 'function' },
      { name: 'tallyStats1', kind: 'function' },
      { name: 'tallyStats2', kind: 'function' },
    ]);
  });

  it('weight-stats: validates, imports memory e.m and exports s', () => {
    const bytes = simdKernel();
    expect(bytes).not.toBeNull(); // Node 20 has WebAssembly SIMD
    expect(wasm.validate(bytes!)).toBe(true);
    const m = new wasm.Module(bytes!);
    expect(wasm.Module.imports(m)).toEqual([{ module: 'e', name: 'm', kind: 'memory' }]);
    expect(wasm.Module.exports(m)).toEqual([{ name: 's', kind: 'function' }]);
  });

  // The digests of the modules as the private encoders emitted them before the move to the
  // assembler. A deliberate change to a kernel changes its digest: check its results against
  // the tests named above, then update the digest here.
  it('emits the same bytes as the private encoders did', () => {
    expect(moduleBytes().length).toBe(2489);
    expect(sha256(moduleBytes())).toBe('73e86c375a527a11fde3bd5d7597c83c4c06c1de6863caabb3064863fbab46d7');
    expect(sha256(simdKernel()!)).toBe('2aa09431469ccb1e38d39399bd9a1476998923963fd409354384fe09936c13ae');
  });
});
