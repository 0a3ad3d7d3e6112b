/**
 * Ops without a family: Dropout, Einsum, StringNormalizer, TfIdfVectorizer, random generators,
 * EyeLike, Compress, Unique, ReverseSequence, GridSample, Det, NonMaxSuppression, and Gradient (ai.onnx.preview.training,
 * registered by index.ts under its domain).
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim, TensorType } from '../../onnx/model.js';
import { broadcastShapes, dimProduct, dtypeOf, fail, normAxis, type ShapeRule, type ShapeTable, sameAs, type ShapeContext, shapeOf, tensor, unifyDim } from './types.js';

/** Dropout: output like the input; mask bool from opset 10 (the input's dtype before). */
const dropout: ShapeRule = {
  shape: (ctx) => {
    const maskType = ctx.opset >= 10 ? DataType.BOOL : dtypeOf(ctx, 0);
    return [sameAs(ctx, 0), tensor(maskType, shapeOf(ctx, 0))];
  },
};

// ---------------------------------------------------------------------------------------
// Einsum (https://onnx.ai/onnx/operators/onnx__Einsum.html)

interface EinsumTerm {
  letters: string[];
  /** Index in `letters` where "..." sits, or -1. */
  ellipsisAt: number;
}

function parseTerm(ctx: ShapeContext, s: string): EinsumTerm {
  const t = s.trim();
  const at = t.indexOf('...');
  const plain = at < 0 ? t : t.slice(0, at) + t.slice(at + 3);
  if (!/^[A-Za-z]*$/.test(plain)) fail(ctx, `bad equation term '${s}'`);
  return { letters: [...plain], ellipsisAt: at < 0 ? -1 : at };
}

/**
 * Letters name dims (all occurrences must agree); "..." stands for the same number of dims in
 * every term (or none), broadcast together.
 * Without "->" the output is the ellipsis dims then the letters used once, alphabetically.
 */
function einsumShape(ctx: ShapeContext): Dim[] | null {
  const eq = ctx.attrs.string('equation', '').replace(/\s+/g, '');
  const [lhs, rhs] = eq.split('->') as [string, string | undefined];
  const terms = lhs.split(',').map((s) => parseTerm(ctx, s));
  const shapes = terms.map((_, i) => shapeOf(ctx, i));
  if (shapes.some((s) => s === null)) return null;
  const dims = new Map<string, Dim>();
  const ellipses: Dim[][] = [];
  let ellFirst: { term: number; rank: number } | null = null;
  terms.forEach((term, i) => {
    const shape = shapes[i]!;
    const ellRank = shape.length - term.letters.length;
    if (ellRank < 0 || (ellRank > 0 && term.ellipsisAt < 0)) fail(ctx, `term ${i} has ${term.letters.length} letters for rank ${shape.length}`);
    // Every "..." stands for the same number of dims (ONNX spec). One that stands for none is
    // accepted beside others, as ONNX Runtime does: it broadcasts trivially.
    if (ellRank > 0) {
      if (ellFirst && ellFirst.rank !== ellRank) fail(ctx, `ellipsis of term ${i} stands for ${ellRank} dims, of term ${ellFirst.term} for ${ellFirst.rank}`);
      ellFirst ??= { term: i, rank: ellRank };
    }
    const before = term.ellipsisAt < 0 ? term.letters.length : term.ellipsisAt;
    term.letters.forEach((l, k) => {
      const d = shape[k < before ? k : k + ellRank]!;
      const prev = dims.has(l) ? dims.get(l)! : null;
      // A letter may also broadcast (size 1 against n) in practice; only clash on two non-1 sizes.
      const u = prev === 1 ? d : d === 1 && dims.has(l) ? prev : unifyDim(prev, d);
      if (u === undefined) fail(ctx, `letter '${l}' is both ${prev} and ${d}`);
      dims.set(l, u);
    });
    if (term.ellipsisAt >= 0) ellipses.push(shape.slice(before, before + ellRank));
  });
  const ell = broadcastShapes(ellipses, ctx) ?? [];
  let out: EinsumTerm;
  if (rhs !== undefined) out = parseTerm(ctx, rhs);
  else {
    const countOf = new Map<string, number>();
    for (const t of terms) for (const l of t.letters) countOf.set(l, (countOf.get(l) ?? 0) + 1);
    const once = [...countOf].filter(([, n]) => n === 1).map(([l]) => l);
    out = { letters: once.sort(), ellipsisAt: ellipses.length > 0 ? 0 : -1 };
  }
  const result: Dim[] = out.letters.map((l) => {
    if (!dims.has(l)) fail(ctx, `output letter '${l}' is not in any input`);
    return dims.get(l)!;
  });
  if (out.ellipsisAt >= 0) result.splice(out.ellipsisAt, 0, ...ell);
  return result;
}

// ---------------------------------------------------------------------------------------

/** StringNormalizer: [C] or [1, C]; removing stopwords makes C data-dependent. */
const stringNormalizer: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    if (!x) return [tensor(DataType.STRING, null)];
    const stops = ctx.attrs.strings('stopwords') ?? [];
    return [tensor(DataType.STRING, stops.length > 0 ? x.map((d, i) => (i === x.length - 1 ? null : d)) : x)];
  },
};

/** RandomNormal/RandomUniform: shape and dtype (default float) from attributes. */
const randomFromAttrs: ShapeRule = {
  shape: (ctx) => [tensor(ctx.attrs.int('dtype', DataType.FLOAT), ctx.attrs.ints('shape') ?? null)],
};

/** RandomXLike, EyeLike, Bernoulli: the input's shape; dtype attribute else the input's. */
const likeInput: ShapeRule = {
  shape: (ctx) => [tensor(ctx.attrs.int('dtype', dtypeOf(ctx, 0)), shapeOf(ctx, 0))],
};

/** Gradient: one output per name in `xs`, shaped like that value. */
const gradient: ShapeRule = {
  shape: (ctx) => {
    const xs = ctx.attrs.strings('xs') ?? [];
    return xs.map((name): TensorType | null => {
      const i = ctx.node.inputs.indexOf(name);
      return i >= 0 ? sameAs(ctx, i) : null;
    });
  },
};

/** Compress: the kept count depends on the condition's values. */
const compress: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const axis = ctx.attrs.int('axis');
    if (!x || axis === undefined) return [tensor(dtypeOf(ctx, 0), [null])];
    const a = axis < 0 ? axis + x.length : axis;
    return [tensor(dtypeOf(ctx, 0), x.map((d, i) => (i === a ? null : d)))];
  },
};

/** GridSample: [N, C, grid's spatial dims…]. */
const gridSample: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const g = shapeOf(ctx, 1);
    if (!x || !g) return [tensor(dtypeOf(ctx, 0), null)];
    return [tensor(dtypeOf(ctx, 0), [x[0]!, x[1]!, ...g.slice(1, -1)])];
  },
};

/** Det: the batch dims of [..., M, M]. */
const det: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    return [tensor(dtypeOf(ctx, 0), x ? x.slice(0, -2) : null)];
  },
};

/**
 * Unique: how many values are unique depends on the data. Without axis: Y is 1-D [n] and the
 * inverse indices have one entry per input element; with axis: that dim becomes unknown and
 * the inverse indices have one entry per slice along it.
 */
const unique: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const axisAttr = ctx.attrs.int('axis');
    const dtype = dtypeOf(ctx, 0);
    let y: Dim[] | null = [null];
    let inverse: Dim[] = [null];
    if (x && axisAttr === undefined) inverse = [dimProduct(x)];
    if (x && axisAttr !== undefined) {
      const axis = normAxis(ctx, axisAttr, x.length);
      y = x.map((d, i) => (i === axis ? null : d));
      inverse = [x[axis]!];
    }
    return [tensor(dtype, y), tensor(DataType.INT64, [null]), tensor(DataType.INT64, inverse), tensor(DataType.INT64, [null])];
  },
};

/**
 * TfIdfVectorizer: n-gram counts of each row, [C] → [max(ngram_indexes) + 1] and
 * [N, C] → [N, max(ngram_indexes) + 1], float.
 */
const tfIdfVectorizer: ShapeRule = {
  shape: (ctx) => {
    const x = shapeOf(ctx, 0);
    const indexes = ctx.attrs.ints('ngram_indexes');
    const width: Dim = indexes && indexes.length > 0 ? Math.max(...indexes) + 1 : null;
    if (!x) return [tensor(DataType.FLOAT, null)];
    if (x.length !== 1 && x.length !== 2) fail(ctx, `input of rank ${x.length}; expected [C] or [N, C]`);
    return [tensor(DataType.FLOAT, x.length === 1 ? [width] : [x[0]!, width])];
  },
};

/**
 * NonMaxSuppression(boxes [B, n, 4], scores [B, classes, n], …): selected_indices
 * [num_selected, 3] (batch, class, box) in int64; how many are selected depends on the data.
 */
const nonMaxSuppression: ShapeRule = {
  shape: () => [tensor(DataType.INT64, [null, 3])],
};

export const shapes: ShapeTable = {
  TfIdfVectorizer: tfIdfVectorizer,
  NonMaxSuppression: nonMaxSuppression,
  Dropout: dropout,
  Einsum: { shape: (ctx) => [tensor(dtypeOf(ctx, 0), einsumShape(ctx))] },
  StringNormalizer: stringNormalizer,
  RandomNormal: randomFromAttrs,
  RandomUniform: randomFromAttrs,
  RandomNormalLike: likeInput,
  RandomUniformLike: likeInput,
  EyeLike: likeInput,
  Bernoulli: likeInput,
  Compress: compress,
  GridSample: gridSample,
  Det: det,
  Unique: unique,
  ReverseSequence: { shape: (ctx) => [sameAs(ctx, 0)] },
};

/** Rules of the ai.onnx.preview.training domain. */
export const trainingShapes: ShapeTable = { Gradient: gradient };

