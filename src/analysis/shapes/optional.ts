/**
 * Optional values (opset 15+; https://onnx.ai/onnx/operators/onnx__Optional.html): an optional
 * is typed as the tensor (or sequence) it may hold, so Optional and OptionalGetElement pass that
 * type through; whether it holds one is a runtime fact (OptionalHasElement: a bool scalar).
 */
import { DataType } from '../../onnx/dtype.js';
import { readSequenceType, readType } from './declared.js';
import { constValue, hasInput, sameAs, type ShapeRule, type ShapeTable, tensor } from './types.js';

/** Optional([input]): the input's type, else the `type` attribute's (an empty optional). */
const optional: ShapeRule = {
  shape: (ctx) => [hasInput(ctx, 0) ? sameAs(ctx, 0) : readType(ctx.attrs.raw('type')?.tp)],
  sequences: (ctx) => [hasInput(ctx, 0) ? ctx.inputSequences[0] ?? null : readSequenceType(ctx.attrs.raw('type')?.tp)],
};

/** OptionalHasElement([input]): a bool scalar; false when the input is omitted (opset 18). */
const optionalHasElement: ShapeRule = {
  shape: () => [tensor(DataType.BOOL, [])],
  fold: (ctx) => (hasInput(ctx, 0) ? null : [constValue(DataType.BOOL, [], [0])]),
};

/** OptionalGetElement(input): the element (a plain tensor or sequence passes through, opset 18). */
const optionalGetElement: ShapeRule = {
  shape: (ctx) => [sameAs(ctx, 0)],
  sequences: (ctx) => [ctx.inputSequences[0] ?? null],
};

export const shapes: ShapeTable = {
  Optional: optional,
  OptionalHasElement: optionalHasElement,
  OptionalGetElement: optionalGetElement,
};
