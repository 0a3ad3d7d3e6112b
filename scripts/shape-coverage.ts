// Shape-inference coverage on a folder of models (default: Debian's libonnx-testdata node tests):
// how many declared graph-output shapes the inference reproduces, and which ops have no rule.
// An output the rules do not reproduce is either WRONG (a different rank or a different concrete
// dim: a bug) or only less known (an unknown/symbolic dim where the file declares a number,
// e.g. a Reshape whose target shape is a runtime input). `--list` prints them all.
// `npx tsx scripts/shape-coverage.ts [dir] [--list]`
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readSequenceType } from '../src/analysis/shapes/declared.js';
import { inferShapes } from '../src/analysis/shapes/infer.js';
import { loadModel } from '../src/onnx/load.js';

const root = process.argv.slice(2).find((a) => !a.startsWith('--')) ?? '/usr/share/libonnx-testdata/data/node';
function* walk(d: string): Generator<string> {
  for (const f of readdirSync(d).sort()) {
    const p = path.join(d, f);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (p.endsWith('.onnx')) yield p;
  }
}
if (!existsSync(root)) {
  console.error(`no ${root}`);
  process.exit(2);
}
let models = 0, outputs = 0, matched = 0, errors = 0, seqOutputs = 0, seqMatched = 0;
const unsupported = new Map<string, number>();
const mismatched: string[] = [];
const wrong: string[] = [];
for (const file of walk(root)) {
  models++;
  try {
    const model = loadModel(file);
    const r = inferShapes(model, { useDeclared: false });
    for (const [op, n] of r.unsupported) unsupported.set(op, (unsupported.get(op) ?? 0) + n);
    for (const o of model.graph.proto.output ?? []) {
      // Sequence outputs, counted apart: the element type the sequence declares.
      const seq = readSequenceType(o.type);
      if (!seq?.elem?.shape) continue;
      seqOutputs++;
      const got = r.sequences.get(o.name ?? '')?.elem;
      const want = seq.elem.shape;
      if (got?.shape && got.shape.length === want.length && want.every((d, i) => d === null || got.shape![i] === d)) seqMatched++;
      else mismatched.push(`${path.relative(root, file)}:${o.name} (sequence) declared elements ${JSON.stringify(want)} inferred ${JSON.stringify(got?.shape ?? null)}`);
    }
    for (const o of model.graph.outputs) {
      const declared = model.graph.declaredTypes.get(o.name ?? '');
      if (!declared?.shape) continue;
      outputs++;
      const got = r.types.get(o.name ?? '');
      const ok = got?.shape && got.shape.length === declared.shape.length &&
        declared.shape.every((d, i) => typeof d !== 'number' || got.shape![i] === d);
      const where = `${path.relative(root, file)}:${o.name}`;
      const fmt = (s: readonly unknown[] | null | undefined) => (s ? `[${s.map((d) => (d === null ? '?' : String(d))).join(',')}]` : '?');
      const contradicts = got?.shape && (got.shape.length !== declared.shape.length ||
        declared.shape.some((d, i) => typeof d === 'number' && typeof got.shape![i] === 'number' && got.shape![i] !== d));
      if (ok) matched++;
      else if (contradicts) wrong.push(`${where} declared ${fmt(declared.shape)} inferred ${fmt(got.shape)}`);
      else mismatched.push(`${where} declared ${fmt(declared.shape)} inferred ${fmt(got?.shape)}`);
    }
  } catch (e) {
    errors++;
    mismatched.push(`${path.relative(root, file)}: ${(e as Error).message.split('\n')[0]}`);
  }
}
console.log(`${models} models, ${outputs} declared output shapes, ${matched} inferred equal by the rules alone (${((100 * matched) / Math.max(1, outputs)).toFixed(1)}%), ${errors} models raised an error`);
console.log(`sequence outputs: ${seqMatched} of ${seqOutputs} declared element shapes inferred equal (symbols included)`);
console.log(`ops without a shape rule: ${[...unsupported].map(([k, v]) => `${k}×${v}`).join(', ') || 'none'}`);
console.log(`wrong (contradict the declared shape): ${wrong.length}${wrong.length ? '\n  ' + wrong.join('\n  ') : ''}`);
if (process.argv.includes('--list')) console.log(`less known than declared (or errors):\n  ${mismatched.join('\n  ')}`);
