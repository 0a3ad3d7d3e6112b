/**
 * What the analysis assumes about the graph inputs (no data is read):
 *  - float inputs: N(0, 1), the unit scale (PRIMER §2);
 *  - integer inputs used as Gather indices: ids, uniform over the table's rows, so the looked-up
 *    rows have the table's own moments (the Gather rule reads them) — no scale of their own;
 *  - integer/bool inputs named like an attention mask: all ones (nothing masked);
 *  - other integer/bool inputs: no scale.
 * Overridable per input: `--input name=normal:MEAN,STD | uniform:LO,HI | ids | ones | const:V`.
 */
import { UsageError } from '../errors.js';
import { DataType, dtypeName, isFloatType } from '../onnx/dtype.js';
import type { Model, TensorType } from '../onnx/model.js';
import type { Scale } from './scale.js';

export type InputSpec =
  | { kind: 'normal'; mean: number; std: number }
  | { kind: 'uniform'; lo: number; hi: number }
  | { kind: 'ids' }
  | { kind: 'ones' }
  | { kind: 'const'; value: number };

const nums = (s: string, n: number, what: string): number[] => {
  const parts = s.split(',').map((x) => x.trim());
  const v = parts.map(Number);
  if (parts.length !== n || v.some((x) => !Number.isFinite(x))) throw new UsageError(`--input: '${what}' needs ${n} number${n > 1 ? 's' : ''}, got '${s}'`);
  return v;
};

/** Parse one spec: normal:MEAN,STD | uniform:LO,HI | ids | ones | const:V. */
export function parseInputSpec(spec: string): InputSpec {
  const s = spec.trim();
  const [head, rest = ''] = s.split(/:(.*)/s) as [string, string?];
  switch (head.toLowerCase()) {
    case 'normal': {
      const [mean, std] = nums(rest, 2, 'normal');
      if (std! < 0) throw new UsageError(`--input: normal std must be >= 0, got ${std}`);
      return { kind: 'normal', mean: mean!, std: std! };
    }
    case 'uniform': {
      const [lo, hi] = nums(rest, 2, 'uniform');
      if (!(hi! >= lo!)) throw new UsageError(`--input: uniform needs LO <= HI, got ${lo},${hi}`);
      return { kind: 'uniform', lo: lo!, hi: hi! };
    }
    case 'ids':
      if (rest) throw new UsageError(`--input: 'ids' takes no value`);
      return { kind: 'ids' };
    case 'ones':
      if (rest) throw new UsageError(`--input: 'ones' takes no value`);
      return { kind: 'ones' };
    case 'const': {
      const [v] = nums(rest, 1, 'const');
      return { kind: 'const', value: v! };
    }
    default:
      throw new UsageError(`--input: unknown distribution '${head}' (use normal:MEAN,STD, uniform:LO,HI, ids, ones or const:V)`);
  }
}

/** Parse `name=spec` flags into a map. */
export function parseInputFlags(flags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    const i = f.indexOf('=');
    if (i <= 0) throw new UsageError(`--input expects name=spec, got '${f}'`);
    out[f.slice(0, i)] = f.slice(i + 1);
  }
  return out;
}

function point(v: number, confidence: Scale['confidence'], note: string): Scale {
  return { mean: v, meanSquare: v * v, dist: { kind: 'discrete', values: [v], weights: [1] }, absmax: Math.abs(v), confidence, note };
}

/** The Scale an input spec means (null: no scale of its own, e.g. ids). */
export function specScale(spec: InputSpec, note: string): Scale | null {
  switch (spec.kind) {
    case 'normal':
      return {
        mean: spec.mean,
        meanSquare: spec.mean * spec.mean + spec.std * spec.std,
        dist: spec.std > 0 ? { kind: 'gaussian', mean: spec.mean, std: spec.std } : { kind: 'discrete', values: [spec.mean], weights: [1] },
        absmax: spec.std === 0 ? Math.abs(spec.mean) : null,
        confidence: 'high',
        note,
      };
    case 'uniform':
      return {
        mean: (spec.lo + spec.hi) / 2,
        meanSquare: (spec.lo * spec.lo + spec.lo * spec.hi + spec.hi * spec.hi) / 3,
        dist: spec.hi > spec.lo ? { kind: 'uniform', lo: spec.lo, hi: spec.hi } : { kind: 'discrete', values: [spec.lo], weights: [1] },
        absmax: Math.max(Math.abs(spec.lo), Math.abs(spec.hi)),
        confidence: 'high',
        note,
      };
    case 'ones':
      return point(1, 'high', note);
    case 'const':
      return point(spec.value, 'high', note);
    case 'ids':
      return null;
  }
}

/** Default spec of a graph input from its type and how it is used. */
export function defaultInputSpec(model: Model, name: string, type: TensorType | null): InputSpec | null {
  const dtype = type?.dtype ?? DataType.UNDEFINED;
  if (isFloatType(dtype) || dtype === DataType.UNDEFINED) return { kind: 'normal', mean: 0, std: 1 };
  if (feedsGatherIndices(model, name)) return { kind: 'ids' };
  if (/mask/i.test(name)) return { kind: 'ones' };
  return null;
}

/** Layout ops that keep integer ids ids. */
const PASS = new Set(['Reshape', 'Unsqueeze', 'Squeeze', 'Flatten', 'Identity', 'Cast', 'Expand', 'Slice', 'Transpose']);

/** Does the value reach the indices of a Gather (possibly through reshapes)? */
function feedsGatherIndices(model: Model, name: string, depth = 0): boolean {
  if (depth > 8) return false;
  for (const n of model.graph.consumers.get(name) ?? []) {
    if ((n.opType === 'Gather' || n.opType === 'GatherND' || n.opType === 'GatherElements') && n.inputs[1] === name) return true;
    if (PASS.has(n.opType) && n.inputs[0] === name && n.outputs[0] && feedsGatherIndices(model, n.outputs[0], depth + 1)) return true;
  }
  return false;
}

export interface InputAssumption {
  name: string;
  spec: InputSpec | null;
  source: 'default' | 'user';
}

/**
 * Scales of every graph input: the user's `--input` specs, else the defaults. Throws UsageError
 * for a spec naming no input or one that does not fit the input's type.
 */
export function inputScales(
  model: Model,
  types: Map<string, TensorType>,
  overrides: Record<string, string> = {},
): { scales: Map<string, Scale | null>; assumptions: InputAssumption[] } {
  const names = model.graph.inputs.map((v) => v.name ?? '');
  for (const k of Object.keys(overrides)) {
    if (!names.includes(k)) throw new UsageError(`--input: the model has no input '${k}' (inputs: ${names.join(', ') || 'none'})`);
  }
  const scales = new Map<string, Scale | null>();
  const assumptions: InputAssumption[] = [];
  for (const name of names) {
    const type = types.get(name) ?? model.graph.declaredTypes.get(name) ?? null;
    const user = overrides[name];
    let spec: InputSpec | null;
    if (user !== undefined) {
      spec = parseInputSpec(user);
      const isFloat = type ? isFloatType(type.dtype) : true;
      if (isFloat && spec.kind === 'ids') throw new UsageError(`--input ${name}=ids: '${name}' is ${dtypeName(type!.dtype)}, ids are integer indices`);
      if (!isFloat && (spec.kind === 'normal' || spec.kind === 'uniform') && type!.dtype !== DataType.BOOL) {
        // An integer input with a continuous law: allowed (cast to float later), kept as given.
      }
    } else spec = defaultInputSpec(model, name, type);
    const src = user !== undefined ? 'user' : 'default';
    assumptions.push({ name, spec, source: src });
    const note = user !== undefined ? `input: ${user}` : spec ? `assumed input: ${describeSpec(spec)} (override with --input ${name}=…)` : '';
    scales.set(name, spec ? specScale(spec, note) : null);
  }
  return { scales, assumptions };
}

export function describeSpec(s: InputSpec): string {
  switch (s.kind) {
    case 'normal':
      return `normal:${s.mean},${s.std}`;
    case 'uniform':
      return `uniform:${s.lo},${s.hi}`;
    case 'const':
      return `const:${s.value}`;
    default:
      return s.kind;
  }
}
