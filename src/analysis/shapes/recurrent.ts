/**
 * Recurrent layers: RNN, GRU, LSTM (https://onnx.ai/onnx/operators/onnx__LSTM.html).
 * With layout 0, X is [seq, batch, input], Y is [seq, num_directions, batch, hidden] and
 * Y_h / Y_c are [num_directions, batch, hidden]; layout 1 (opset 14) puts batch first:
 * X [batch, seq, input], Y [batch, seq, num_directions, hidden], Y_h [batch, num_directions, hidden].
 */
import type { Dim, TensorType } from '../../onnx/model.js';
import { dimDiv, dtypeOf, type ShapeRule, type ShapeTable, type ShapeContext, shapeOf, tensor } from './types.js';

/** gates: how many weight blocks W stacks per direction (RNN 1, GRU 3, LSTM 4). */
function recurrent(gates: number): ShapeRule {
  return {
    shape: (ctx: ShapeContext): (TensorType | null)[] => {
      const x = shapeOf(ctx, 0);
      const w = shapeOf(ctx, 1);
      const r = shapeOf(ctx, 2);
      const dtype = dtypeOf(ctx, 0);
      const layout = ctx.attrs.int('layout', 0);
      const dirs: Dim = ctx.attrs.string('direction', 'forward') === 'bidirectional' ? 2 : 1;
      const hidden: Dim = ctx.attrs.int('hidden_size') ?? r?.[2] ?? (w ? dimDiv(w[1]!, gates) : null);
      const [seq, batch] = x ? (layout === 0 ? [x[0]!, x[1]!] : [x[1]!, x[0]!]) : [null, null];
      const y = layout === 0 ? [seq, dirs, batch, hidden] : [batch, seq, dirs, hidden];
      const state = layout === 0 ? [dirs, batch, hidden] : [batch, dirs, hidden];
      return [tensor(dtype, y), tensor(dtype, state), tensor(dtype, state)];
    },
  };
}

export const shapes: ShapeTable = {
  RNN: recurrent(1),
  GRU: recurrent(3),
  LSTM: recurrent(4),
};
