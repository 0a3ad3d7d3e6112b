/**
 * Writes the small committed test models under fixtures/ (run: `npm run fixtures`, or
 * `tsx scripts/make-fixtures.ts --out DIR`). Deterministic: the same bytes on every run and
 * machine (weights come from a seeded integer PRNG, uniform in ±1/√fan_in as PyTorch's default
 * Linear/Conv init; no clocks, no transcendental functions in the weights), which
 * test/fixtures.test.ts checks by regenerating into a temporary folder.
 *
 *   mlp.onnx               x[batch,64] → MatMul+Add → Relu → MatMul+Add → [batch,10]
 *   cnn-block.onnx         x[batch,3,32,32] → Conv → BatchNormalization → Relu → MaxPool →
 *                          GlobalAveragePool → Flatten → Gemm → [batch,10]
 *   transformer-block.onnx pre-LN decoder block on x[batch,seq,64] (seq ≤ 256): causal
 *                          multi-head attention (4 heads) and a tanh-GELU MLP, as exporters
 *                          write them
 *   external/model.onnx    a two-layer MLP whose weights live in external/weights.bin
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { attr, GraphBuilder } from '../src/onnx/builder.js';
import { DataType } from '../src/onnx/dtype.js';

const { FLOAT } = DataType;
/** float32 lowest: what PyTorch exporters fill masked attention positions with. */
export const FLOAT32_LOWEST = -3.4028234663852886e38;

/** Mulberry32 over a 32-bit state: a tiny, well-mixed, platform-independent PRNG. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform(-bound, bound) values. */
export function uniform(rng: () => number, n: number, bound: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng() * 2 - 1) * bound;
  return out;
}

/** Linear weights stored [in, out] for MatMul, with bias; both ±1/√in as nn.Linear. */
function linear(b: GraphBuilder, rng: () => number, name: string, x: string, fanIn: number, fanOut: number): string {
  const bound = 1 / Math.sqrt(fanIn);
  const w = b.initializer(`${name}.weight`, [fanIn, fanOut], uniform(rng, fanIn * fanOut, bound));
  const bias = b.initializer(`${name}.bias`, [fanOut], uniform(rng, fanOut, bound));
  return b.scope(name, () => b.node('Add', [b.node('MatMul', [x, w]), bias]));
}

export function buildMlp(): GraphBuilder {
  const rng = prng(1001);
  const b = new GraphBuilder('mlp', { opset: 18 });
  const x = b.input('x', FLOAT, ['batch', 64]);
  const h = b.node('Relu', [linear(b, rng, 'fc1', x, 64, 128)]);
  const y = linear(b, rng, 'fc2', h, 128, 10);
  b.output(y, FLOAT, ['batch', 10]);
  return b;
}

export function buildCnnBlock(): GraphBuilder {
  const rng = prng(2002);
  const b = new GraphBuilder('cnn_block', { opset: 18 });
  const x = b.input('x', FLOAT, ['batch', 3, 32, 32]);
  const cin = 3;
  const cout = 16;
  const bound = 1 / Math.sqrt(cin * 3 * 3);
  const w = b.initializer('conv.weight', [cout, cin, 3, 3], uniform(rng, cout * cin * 9, bound));
  const cb = b.initializer('conv.bias', [cout], uniform(rng, cout, bound));
  const conv = b.node('Conv', [x, w, cb], { attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [1, 1], dilations: [1, 1], group: 1 } });
  // BatchNorm statistics as after some training: gamma near 1, small beta and mean, var in [0.5, 1.5].
  const gamma = b.initializer('bn.weight', [cout], uniform(rng, cout, 0.2).map((v) => 1 + v));
  const beta = b.initializer('bn.bias', [cout], uniform(rng, cout, 0.1));
  const mean = b.initializer('bn.running_mean', [cout], uniform(rng, cout, 0.1));
  const variance = b.initializer('bn.running_var', [cout], uniform(rng, cout, 0.5).map((v) => 1 + v));
  const bn = b.node('BatchNormalization', [conv, gamma, beta, mean, variance], { attrs: { epsilon: attr.float(1e-5), momentum: attr.float(0.9) } });
  const relu = b.node('Relu', [bn]);
  const pool = b.node('MaxPool', [relu], { attrs: { kernel_shape: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0] } });
  const gap = b.node('GlobalAveragePool', [pool]);
  const flat = b.node('Flatten', [gap], { attrs: { axis: 1 } });
  const fb = 1 / Math.sqrt(cout);
  const fw = b.initializer('fc.weight', [10, cout], uniform(rng, 10 * cout, fb));
  const fbias = b.initializer('fc.bias', [10], uniform(rng, 10, fb));
  const y = b.node('Gemm', [flat, fw, fbias], { attrs: { alpha: attr.float(1), beta: attr.float(1), transB: 1 } });
  b.output(y, FLOAT, ['batch', 10]);
  return b;
}

export interface TransformerConfig {
  dModel: number;
  heads: number;
  ffn: number;
  maxSeq: number;
}

/** Causal mask [1,1,T,T]: 0 on and below the diagonal, float32 lowest above it. */
export function causalMask(t: number): Float32Array {
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) for (let j = i + 1; j < t; j++) m[i * t + j] = FLOAT32_LOWEST;
  return m;
}

export function buildTransformerBlock(cfg: TransformerConfig = { dModel: 64, heads: 4, ffn: 256, maxSeq: 256 }): GraphBuilder {
  const rng = prng(3003);
  const { dModel: d, heads: h, ffn, maxSeq } = cfg;
  const dh = d / h;
  const b = new GraphBuilder('transformer_block', { opset: 18 });
  const x = b.input('x', FLOAT, ['batch', 'seq', d]);

  const layerNorm = (name: string, v: string) => {
    const gamma = b.initializer(`${name}.weight`, [d], uniform(rng, d, 0.1).map((g) => 1 + g));
    const beta = b.initializer(`${name}.bias`, [d], uniform(rng, d, 0.05));
    return b.scope(name, () => b.node('LayerNormalization', [v, gamma, beta], { attrs: { axis: -1, epsilon: attr.float(1e-5) } }));
  };

  // --- attention ---
  const h1 = layerNorm('ln_1', x);
  const q = linear(b, rng, 'attn.q_proj', h1, d, d);
  const k = linear(b, rng, 'attn.k_proj', h1, d, d);
  const v = linear(b, rng, 'attn.v_proj', h1, d, d);
  const attn = b.scope('attn', () => {
    const headShape = b.ints([0, 0, h, dh], 'head_shape');
    const split = (t: string) => b.node('Reshape', [t, headShape]);
    const qh = b.node('Transpose', [split(q)], { attrs: { perm: [0, 2, 1, 3] } }); // [b,h,s,dh]
    const kt = b.node('Transpose', [split(k)], { attrs: { perm: [0, 2, 3, 1] } }); // [b,h,dh,s]
    const vh = b.node('Transpose', [split(v)], { attrs: { perm: [0, 2, 1, 3] } }); // [b,h,s,dh]
    const scores = b.node('MatMul', [qh, kt]); // [b,h,s,s]
    const scaled = b.node('Mul', [scores, b.scalar(1 / Math.sqrt(dh), 'scale')]);
    // The mask buffer covers maxSeq positions; slice its top-left [seq, seq] corner.
    const maskBuf = b.initializer('attn.causal_mask', [1, 1, maxSeq, maxSeq], causalMask(maxSeq));
    const seq = b.node('Shape', [x], { attrs: { start: 1, end: 2 } }); // [1]
    const ends = b.node('Concat', [seq, seq], { attrs: { axis: 0 } });
    const mask = b.node('Slice', [maskBuf, b.ints([0, 0], 'mask_starts'), ends, b.ints([2, 3], 'mask_axes')]);
    const masked = b.node('Add', [scaled, mask]);
    const probs = b.node('Softmax', [masked], { attrs: { axis: -1 } });
    const ctx = b.node('MatMul', [probs, vh]); // [b,h,s,dh]
    const merged = b.node('Transpose', [ctx], { attrs: { perm: [0, 2, 1, 3] } }); // [b,s,h,dh]
    return b.node('Reshape', [merged, b.ints([0, 0, d], 'merge_shape')]);
  });
  const o = linear(b, rng, 'attn.o_proj', attn, d, d);
  const r1 = b.node('Add', [x, o], { name: 'residual_1' });

  // --- MLP with tanh-GELU decomposed as exporters emit it ---
  const h2 = layerNorm('ln_2', r1);
  const u = linear(b, rng, 'mlp.fc_in', h2, d, ffn);
  const gelu = b.scope('mlp.gelu', () => {
    const cube = b.node('Pow', [u, b.scalar(3, 'three')]);
    const inner = b.node('Add', [u, b.node('Mul', [cube, b.scalar(0.044715, 'c')])]);
    const t = b.node('Tanh', [b.node('Mul', [inner, b.scalar(Math.sqrt(2 / Math.PI), 'sqrt_2_over_pi')])]);
    const onePlus = b.node('Add', [t, b.scalar(1, 'one')]);
    return b.node('Mul', [b.node('Mul', [u, b.scalar(0.5, 'half')]), onePlus]);
  });
  const m = linear(b, rng, 'mlp.fc_out', gelu, ffn, d);
  const y = b.node('Add', [r1, m], { name: 'residual_2' });
  b.output(y, FLOAT, ['batch', 'seq', d]);
  return b;
}

export function buildExternal(): GraphBuilder {
  const rng = prng(4004);
  const b = new GraphBuilder('external_mlp', { opset: 18 });
  const x = b.input('x', FLOAT, ['batch', 32]);
  const h = b.node('Relu', [linear(b, rng, 'fc1', x, 32, 64)]);
  const y = linear(b, rng, 'fc2', h, 64, 16);
  b.output(y, FLOAT, ['batch', 16]);
  return b;
}

/** Every fixture file, relative to the output folder. */
export const FIXTURE_FILES = ['mlp.onnx', 'cnn-block.onnx', 'transformer-block.onnx', 'external/model.onnx', 'external/weights.bin'];

export function makeFixtures(outDir: string): string[] {
  mkdirSync(outDir, { recursive: true });
  buildMlp().save(path.join(outDir, 'mlp.onnx'));
  buildCnnBlock().save(path.join(outDir, 'cnn-block.onnx'));
  buildTransformerBlock().save(path.join(outDir, 'transformer-block.onnx'));
  // Weights (≥ 1 KiB) to external/weights.bin; biases stay inline.
  buildExternal().save(path.join(outDir, 'external', 'model.onnx'), { externalDataFile: 'weights.bin', sizeThreshold: 1024, align: 64 });
  return FIXTURE_FILES.map((f) => path.join(outDir, f));
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--out');
  const out = i >= 0 && args[i + 1] ? path.resolve(args[i + 1]!) : path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
  for (const f of makeFixtures(out)) console.log(path.relative(process.cwd(), f) || f);
}
