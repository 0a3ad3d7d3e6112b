// Shape-inference coverage on a folder of models (default: Debian's libonnx-testdata node tests):
// how many declared graph-output shapes the inference reproduces, and which ops have no rule.
// `npx tsx scripts/shape-coverage.ts [dir]`
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { inferShapes } from '../src/analysis/shapes/infer.js';
import { loadModel } from '../src/onnx/load.js';

const root = process.argv[2] ?? '/usr/share/libonnx-testdata/data/node';
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
let models = 0, outputs = 0, matched = 0, errors = 0;
const unsupported = new Map<string, number>();
const mismatched: string[] = [];
for (const file of walk(root)) {
  models++;
  try {
    const model = loadModel(file);
    const r = inferShapes(model, { useDeclared: false });
    for (const [op, n] of r.unsupported) unsupported.set(op, (unsupported.get(op) ?? 0) + n);
    for (const o of model.graph.outputs) {
      const declared = model.graph.declaredTypes.get(o.name ?? '');
      if (!declared?.shape) continue;
      outputs++;
      const got = r.types.get(o.name ?? '');
      const ok = got?.shape && got.shape.length === declared.shape.length &&
        declared.shape.every((d, i) => typeof d !== 'number' || got.shape![i] === d);
      if (ok) matched++;
      else mismatched.push(`${path.relative(root, file)}:${o.name}`);
    }
  } catch (e) {
    errors++;
    mismatched.push(`${path.relative(root, file)}: ${(e as Error).message.split('\n')[0]}`);
  }
}
console.log(`${models} models, ${outputs} declared output shapes, ${matched} inferred equal by the rules alone (${((100 * matched) / Math.max(1, outputs)).toFixed(1)}%), ${errors} models raised an error`);
console.log(`ops without a shape rule: ${[...unsupported].map(([k, v]) => `${k}×${v}`).join(', ') || 'none'}`);
if (process.argv.includes('--list')) console.log(mismatched.join('\n'));
