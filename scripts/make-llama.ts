/**
 * A Llama-shaped ONNX model with random weights, for load and analysis benchmarks:
 *
 *   tsx scripts/make-llama.ts --params 125M|1B|tiny --out DIR [--seed N]
 *
 * writes DIR/model.onnx and its external data DIR/model.onnx.data. The weights are generated
 * and written chunk by chunk (GraphBuilder lazy initializers), so memory stays small whatever
 * the size: the 1B model (4.4 GB of float32) is written in ~4 MiB pieces.
 *
 * The graph follows what exporters emit for Hugging Face's LlamaForCausalLM, minus rotary
 * embeddings: token embedding (Gather) → N × [RMSNorm → grouped-query causal attention →
 * residual → RMSNorm → SwiGLU MLP → residual] → RMSNorm → lm_head. RMSNorm is decomposed as
 * x / sqrt(mean(x²) + ε) · w (Pow, ReduceMean, Add, Sqrt, Div, Mul); SiLU as x·sigmoid(x);
 * the causal mask is built once from the sequence length (ConstantOfShape filled with float32
 * lowest, Trilu keeping the part above the diagonal).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { attr, float32ToFloat16Bits, GraphBuilder, lazyFloat32, type LazyTensorSource } from '../src/onnx/builder.js';
import { DataType } from '../src/onnx/dtype.js';

const { FLOAT, FLOAT16, INT64 } = DataType;
const FLOAT32_LOWEST = -3.4028234663852886e38;
const FLOAT16_LOWEST = -65504;

/** Element type of the whole model (weights, activations, constants): exporters' fp32 or fp16. */
export type LlamaDtype = 'float32' | 'float16';

/** A float32 source re-encoded as float16 (round to nearest even), chunk by chunk. */
function asFloat16(src: LazyTensorSource): LazyTensorSource {
  return {
    byteLength: src.byteLength / 2,
    *chunks() {
      for (const c of src.chunks()) {
        const f = new Float32Array(c.buffer, c.byteOffset, c.byteLength / 4);
        const h = new Uint16Array(f.length);
        for (let i = 0; i < f.length; i++) h[i] = float32ToFloat16Bits(f[i]!);
        yield new Uint8Array(h.buffer);
      }
    },
  };
}

export interface LlamaConfig {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  eps: number;
}

export const LLAMA_PRESETS: Record<string, LlamaConfig> = {
  /** For tests: runs in onnxruntime in milliseconds. */
  tiny: { vocab: 256, hidden: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, eps: 1e-5 },
  /** ≈125M parameters (GPT-2-small sized, Llama layout). */
  '125M': { vocab: 32000, hidden: 768, layers: 12, heads: 12, kvHeads: 4, ffn: 2048, eps: 1e-5 },
  /** ≈1.1B parameters (TinyLlama-1.1B's shapes). */
  '1B': { vocab: 32000, hidden: 2048, layers: 22, heads: 32, kvHeads: 4, ffn: 5632, eps: 1e-5 },
  /** ≈6.7B parameters (Llama-2-7B's shapes). */
  '7B': { vocab: 32000, hidden: 4096, layers: 32, heads: 32, kvHeads: 32, ffn: 11008, eps: 1e-6 },
};

export function llamaParams(c: LlamaConfig): number {
  const hd = c.hidden / c.heads;
  const attn = 2 * c.hidden * c.hidden + 2 * c.hidden * c.kvHeads * hd;
  const mlp = 3 * c.hidden * c.ffn;
  return 2 * c.vocab * c.hidden + c.layers * (attn + mlp + 2 * c.hidden) + c.hidden;
}

/**
 * Uniform(-bound, bound) float32 values from a Mulberry32 stream seeded per tensor, produced
 * chunk by chunk in order; `offset` shifts the values (norm weights near 1).
 */
function randomTensor(count: number, seed: number, bound: number, offset = 0) {
  let s = seed >>> 0;
  return lazyFloat32(count, (out) => {
    for (let i = 0; i < out.length; i++) {
      s = (s + 0x6d2b79f5) | 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      out[i] = offset + ((((t ^ (t >>> 14)) >>> 0) / 2147483648) - 1) * bound;
    }
  });
}

export function buildLlama(c: LlamaConfig, seed = 1, dtype: LlamaDtype = 'float32'): GraphBuilder {
  const F = dtype === 'float16' ? FLOAT16 : FLOAT;
  if (c.hidden % c.heads || c.heads % c.kvHeads) throw new Error('hidden must divide into heads, heads into kv heads');
  const hd = c.hidden / c.heads;
  const groups = c.heads / c.kvHeads;
  const b = new GraphBuilder('llama', { opset: 18, docString: `Llama-shaped model, random weights: ${JSON.stringify(c)}` });
  let tensorIndex = 0;
  const weight = (name: string, dims: number[], bound: number, offset = 0) =>
    b.lazyInitializer(name, F, dims, (dtype === 'float16' ? asFloat16 : (x: LazyTensorSource) => x)(randomTensor(dims.reduce((x, y) => x * y, 1), Math.imul(seed, 1000003) + ++tensorIndex * 7919, bound, offset)));
  const linear = (name: string, x: string, fanIn: number, fanOut: number) =>
    b.node('MatMul', [x, weight(`${name}.weight`, [fanIn, fanOut], 1 / Math.sqrt(fanIn))], { name });

  const ids = b.input('input_ids', INT64, ['batch', 'seq']);
  const embed = weight('model.embed_tokens.weight', [c.vocab, c.hidden], 0.02 * Math.sqrt(3));
  let x = b.node('Gather', [embed, ids], { name: 'model.embed_tokens', attrs: { axis: 0 } });

  // Shared constants, as exporters hoist them.
  const two = b.scalar(2, 'pow_exponent', F);
  const eps = b.scalar(c.eps, 'rms_eps', F);
  const lastAxis = b.ints([-1], 'reduce_axes');
  const scale = b.scalar(1 / Math.sqrt(hd), 'attn_scale', F);
  const qShape = b.ints([0, 0, c.heads, hd], 'q_shape');
  const kvShape = b.ints([0, 0, c.kvHeads, hd], 'kv_shape');
  const repeat = b.ints([1, 1, groups, 1, 1], 'repeat_kv');
  const groupedShape = b.ints([0, c.heads, -1, hd], 'grouped_shape');
  const mergeShape = b.ints([0, 0, c.hidden], 'merge_shape');
  const two_axis = b.ints([2], 'unsqueeze_axis');

  // Causal mask [seq, seq]: 0 on and below the diagonal, float32 lowest above (broadcasts over b, h).
  const seqLen = b.node('Shape', [ids], { name: 'mask/seq', attrs: { start: 1, end: 2 } });
  const maskShape = b.node('Concat', [seqLen, seqLen], { name: 'mask/shape', attrs: { axis: 0 } });
  const filled = b.node('ConstantOfShape', [maskShape], {
    name: 'mask/fill',
    attrs: {
      value:
        dtype === 'float16'
          ? attr.tensor({ name: 'lowest', data_type: FLOAT16, dims: [1], int32_data: [float32ToFloat16Bits(FLOAT16_LOWEST)] })
          : attr.tensor({ name: 'lowest', data_type: FLOAT, dims: [1], float_data: [FLOAT32_LOWEST] }),
    },
  });
  const mask = b.node('Trilu', [filled, b.constant(INT64, [], [1], { name: 'mask_k' })], { name: 'mask/triu', attrs: { upper: 1 } });

  const rmsNorm = (name: string, v: string) =>
    b.scope(name, () => {
      const w = weight(`${name}.weight`, [c.hidden], 0.1, 1);
      const variance = b.node('ReduceMean', [b.node('Pow', [v, two]), lastAxis], { attrs: { keepdims: 1 } });
      const denom = b.node('Sqrt', [b.node('Add', [variance, eps])]);
      return b.node('Mul', [b.node('Div', [v, denom]), w]);
    });

  for (let l = 0; l < c.layers; l++) {
    const p = `model.layers.${l}`;
    const h = rmsNorm(`${p}.input_layernorm`, x);
    const q = linear(`${p}.self_attn.q_proj`, h, c.hidden, c.hidden);
    const k = linear(`${p}.self_attn.k_proj`, h, c.hidden, c.kvHeads * hd);
    const v = linear(`${p}.self_attn.v_proj`, h, c.hidden, c.kvHeads * hd);
    const attnOut = b.scope(`${p}.self_attn`, () => {
      const qh = b.node('Transpose', [b.node('Reshape', [q, qShape])], { attrs: { perm: [0, 2, 1, 3] } }); // [b,H,s,hd]
      const heads = (t: string) => {
        const th = b.node('Transpose', [b.node('Reshape', [t, kvShape])], { attrs: { perm: [0, 2, 1, 3] } }); // [b,KV,s,hd]
        if (groups === 1) return th;
        // repeat_kv: [b,KV,s,hd] → [b,KV,1,s,hd] → expand [b,KV,G,s,hd] → [b,H,s,hd]
        const expanded = b.node('Expand', [b.node('Unsqueeze', [th, two_axis]), repeat]);
        return b.node('Reshape', [expanded, groupedShape]);
      };
      const kh = heads(k);
      const vh = heads(v);
      const scores = b.node('Mul', [b.node('MatMul', [qh, b.node('Transpose', [kh], { attrs: { perm: [0, 1, 3, 2] } })]), scale]);
      const probs = b.node('Softmax', [b.node('Add', [scores, mask])], { attrs: { axis: -1 } });
      const ctx = b.node('Transpose', [b.node('MatMul', [probs, vh])], { attrs: { perm: [0, 2, 1, 3] } });
      return b.node('Reshape', [ctx, mergeShape]);
    });
    const o = linear(`${p}.self_attn.o_proj`, attnOut, c.hidden, c.hidden);
    x = b.node('Add', [x, o], { name: `${p}.attn_residual` });
    const h2 = rmsNorm(`${p}.post_attention_layernorm`, x);
    const gate = linear(`${p}.mlp.gate_proj`, h2, c.hidden, c.ffn);
    const up = linear(`${p}.mlp.up_proj`, h2, c.hidden, c.ffn);
    const act = b.scope(`${p}.mlp`, () => b.node('Mul', [b.node('Mul', [gate, b.node('Sigmoid', [gate])]), up]));
    const down = linear(`${p}.mlp.down_proj`, act, c.ffn, c.hidden);
    x = b.node('Add', [x, down], { name: `${p}.mlp_residual` });
  }
  const final = rmsNorm('model.norm', x);
  const lmHead = weight('lm_head.weight', [c.hidden, c.vocab], 1 / Math.sqrt(c.hidden));
  const logits = b.node('MatMul', [final, lmHead], { name: 'lm_head', outputs: ['logits'] });
  b.output(logits, F, ['batch', 'seq', c.vocab]);
  return b;
}

export function writeLlama(preset: string, outDir: string, seed = 1, dtype: LlamaDtype = 'float32') {
  const config = LLAMA_PRESETS[preset];
  if (!config) throw new Error(`unknown --params '${preset}' (known: ${Object.keys(LLAMA_PRESETS).join(', ')})`);
  const b = buildLlama(config, seed, dtype);
  const res = b.save(path.join(outDir, 'model.onnx'), { externalDataFile: 'model.onnx.data', sizeThreshold: 1024, align: 4096 });
  return { config, params: llamaParams(config), ...res };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (isMain) {
  const args = process.argv.slice(2);
  const get = (k: string) => {
    const i = args.indexOf(`--${k}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const preset = get('params') ?? '125M';
  const out = get('out');
  if (!out) {
    console.error('usage: tsx scripts/make-llama.ts --params 125M|1B|7B|tiny --out DIR [--seed N] [--dtype float32|float16]');
    process.exit(2);
  }
  const t0 = Date.now();
  const dtype = get('dtype') ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'float16') {
    console.error(`--dtype ${dtype}: expected float32 or float16`);
    process.exit(2);
  }
  const r = writeLlama(preset, path.resolve(out), Number(get('seed') ?? 1), dtype);
  const mb = (n: number) => (n / 2 ** 20).toFixed(1);
  console.log(
    `${preset}: ${(r.params / 1e6).toFixed(1)}M parameters, ${r.externalTensors} external tensors; model.onnx ${mb(r.modelBytes)} MiB + model.onnx.data ${mb(r.externalBytes)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s (peak RSS ${mb(process.resourceUsage().maxRSS * 1024)} MiB)`,
  );
}
