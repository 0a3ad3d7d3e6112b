/**
 * Sequence ops (https://onnx.ai/onnx/operators/ SequenceConstruct & co). A sequence's type is
 * its elements' types one by one while the length is known (positions folded), else the type
 * its elements share. Outputs that are sequences come from `sequences`; tensor outputs
 * (SequenceAt, SequenceLength, ConcatFromSequence) from `shape` as usual.
 */
import { DataType } from '../../onnx/dtype.js';
import type { Dim, TensorType } from '../../onnx/model.js';
import {
  constValue,
  dimAdd,
  dtypeOf,
  hasInput,
  intsInput,
  joinTypes,
  normAxis,
  type ShapeRule,
  type ShapeTable,
  type SequenceType,
  type ShapeContext,
  shapeOf,
  tensor,
  unifyDim,
} from './types.js';

/** A sequence rule: tensor outputs from `shape`, sequence outputs from `sequences`. */
type SequenceRule = ShapeRule & { sequences: NonNullable<ShapeRule['sequences']> };

function seqOf(items: (TensorType | null)[] | null, elem: TensorType | null): SequenceType {
  if (items && items.length > 0) elem = items.reduce<TensorType | null>((a, t) => joinTypes(a, t), items[0]!);
  return { sequence: true, items, elem };
}

const none = (ctx: ShapeContext) => ctx.node.outputs.map(() => null);

function position(ctx: ShapeContext, i: number, length: number, insert: boolean): number | null | undefined {
  if (!hasInput(ctx, i)) return undefined;
  const p = intsInput(ctx, i)?.[0];
  if (p === undefined) return null;
  const k = p < 0 ? p + length : p;
  return k >= 0 && k <= (insert ? length : length - 1) ? k : null;
}

const sequenceEmpty: SequenceRule = {
  shape: none,
  sequences: (ctx) => [seqOf([], tensor(ctx.attrs.int('dtype', DataType.FLOAT), null))],
};

const sequenceConstruct: SequenceRule = {
  shape: none,
  sequences: (ctx) => [seqOf([...ctx.inputTypes], null)],
};

/** SequenceInsert(seq, t[, pos]): at pos, or appended. */
const sequenceInsert: SequenceRule = {
  shape: none,
  sequences: (ctx) => {
    const s = ctx.inputSequences[0];
    const t = ctx.inputTypes[1] ?? null;
    if (!s) return [seqOf(null, t)];
    const elem = s.items && s.items.length === 0 ? t : joinTypes(s.elem, t);
    if (!s.items) return [seqOf(null, elem)];
    const at = position(ctx, 2, s.items.length, true);
    if (at === null) return [seqOf(null, elem)];
    const items = [...s.items];
    items.splice(at ?? items.length, 0, t);
    return [seqOf(items, elem)];
  },
};

/** SequenceErase(seq[, pos]): at pos, or the last. */
const sequenceErase: SequenceRule = {
  shape: none,
  sequences: (ctx) => {
    const s = ctx.inputSequences[0];
    if (!s) return [null];
    if (!s.items || s.items.length === 0) return [seqOf(null, s.elem)];
    const at = position(ctx, 1, s.items.length, false);
    if (at === null) return [seqOf(null, s.elem)];
    const items = [...s.items];
    items.splice(at ?? items.length - 1, 1);
    return [seqOf(items, s.elem)];
  },
};

const sequenceAt: ShapeRule = {
  shape: (ctx) => {
    const s = ctx.inputSequences[0];
    if (!s) return [null];
    if (s.items) {
      const at = position(ctx, 1, s.items.length, false);
      if (typeof at === 'number') return [s.items[at] ?? null];
    }
    return [s.elem];
  },
};

const sequenceLength: ShapeRule = {
  shape: () => [tensor(DataType.INT64, [])],
  fold: (ctx) => {
    const items = ctx.inputSequences[0]?.items;
    return items ? [constValue(DataType.INT64, [], [items.length])] : null;
  },
};

/** ConcatFromSequence: Concat of the elements along axis, or Stack with new_axis=1. */
const concatFromSequence: ShapeRule = {
  shape: (ctx) => {
    const s = ctx.inputSequences[0];
    if (!s?.elem) return [null];
    const dtype = s.elem.dtype;
    const newAxis = ctx.attrs.int('new_axis', 0) === 1;
    const shapes = s.items ? s.items.map((t) => t?.shape ?? null) : null;
    const rank = (shapes?.find((x) => x) ?? s.elem.shape)?.length;
    if (rank === undefined) return [tensor(dtype, null)];
    const axis = normAxis(ctx, ctx.attrs.int('axis', 0), newAxis ? rank + 1 : rank);
    const base = s.elem.shape ?? new Array<Dim>(rank).fill(null);
    if (newAxis) {
      const out = [...base];
      out.splice(axis, 0, shapes ? shapes.length : null);
      return [tensor(dtype, out)];
    }
    const out = base.map((d, i) => {
      if (i !== axis) return shapes ? shapes.reduce<Dim>((a, x) => (x ? unifyDim(a, x[i]!) ?? null : a), d) : d;
      return shapes && shapes.every((x) => x) ? shapes.reduce<Dim>((a, x) => dimAdd(a, x![i]!), 0) : null;
    });
    return [tensor(dtype, out)];
  },
};

/**
 * SplitToSequence(x[, split]): pieces along axis — of the given sizes, of `split` each when it
 * is a scalar (the last one smaller), or of size 1 without split (then keepdims=0 drops the axis).
 */
const splitToSequence: SequenceRule = {
  shape: none,
  sequences: (ctx) => {
    const x = shapeOf(ctx, 0);
    const dtype = dtypeOf(ctx, 0);
    if (!x) return [seqOf(null, tensor(dtype, null))];
    const axis = normAxis(ctx, ctx.attrs.int('axis', 0), x.length);
    const d = x[axis]!;
    const piece = (size: Dim, drop: boolean) => tensor(dtype, drop ? x.filter((_, i) => i !== axis) : x.map((e, i) => (i === axis ? size : e)));
    if (!hasInput(ctx, 1)) {
      const drop = ctx.attrs.int('keepdims', 1) === 0;
      const t = piece(1, drop);
      return [seqOf(typeof d === 'number' ? new Array<TensorType>(d).fill(t) : null, t)];
    }
    const split = intsInput(ctx, 1);
    const scalar = shapeOf(ctx, 1)?.length === 0;
    if (!split) return [seqOf(null, piece(null, false))];
    if (!scalar) return [seqOf(split.map((n) => piece(n, false)), null)];
    const size = split[0]!;
    if (typeof d !== 'number') return [seqOf(null, piece(null, false))];
    const sizes = Array.from({ length: Math.ceil(d / size) }, (_, i) => Math.min(size, d - i * size));
    return [seqOf(sizes.map((n) => piece(n, false)), null)];
  },
};

/** Sequences known element by element are mapped one body inference per element up to this length. */
const MAP_ITEMS_CAP = 64;

/**
 * SequenceMap(input_sequence[, additional_inputs…]): the body runs once per position, taking
 * that element of each sequence input and each tensor input whole; each body output makes one
 * output sequence of the same length. Inferred per element while the length is known (and
 * small), else once on the elements' shared types.
 */
const sequenceMap: SequenceRule = {
  shape: none,
  sequences: (ctx) => {
    const seqs = ctx.inputSequences;
    const formals = (k: number | null): (TensorType | null)[] =>
      ctx.node.inputs.map((_, i) => {
        const s = seqs[i];
        if (!s) return ctx.inputTypes[i] ?? null;
        return k !== null && s.items ? s.items[k] ?? null : s.elem;
      });
    const run = (k: number | null) => (ctx.inferSubgraph ? ctx.inferSubgraph('body', formals(k)) : []);
    const length = seqs.find((s) => s?.items)?.items?.length ?? null;
    if (length !== null && length > 0 && length <= MAP_ITEMS_CAP) {
      const per = Array.from({ length }, (_, k) => run(k));
      return ctx.node.outputs.map((_, j) => seqOf(per.map((o) => o[j] ?? null), null));
    }
    const out = run(null);
    return ctx.node.outputs.map((_, j) => seqOf(length === 0 ? [] : null, out[j] ?? null));
  },
};

export const shapes: ShapeTable = {
  SequenceMap: sequenceMap,
  SequenceEmpty: sequenceEmpty,
  SequenceConstruct: sequenceConstruct,
  SequenceInsert: sequenceInsert,
  SequenceErase: sequenceErase,
  SequenceAt: sequenceAt,
  SequenceLength: sequenceLength,
  ConcatFromSequence: concatFromSequence,
  SplitToSequence: splitToSequence,
};
