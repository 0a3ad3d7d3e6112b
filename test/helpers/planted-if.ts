/**
 * A planted overflow inside an If branch, for the analyze report and the gate:
 *
 *   x [8, 16] ~ N(0, 1), c: the condition (a graph input, or a constant true / false)
 *   If 'gate_if'
 *     then_branch: hot = x · w_hot (w_hot [16, 4] stored in the branch, std 40: rms ≈ 160, so
 *                  ≈ 0.5 % of |hot| > 448 = E4M3's max); y_t = hot · 2^-8 (its output)
 *     else_branch: hot = x[:, :4] · 0.5 (its output; the same name as the then branch's `hot`)
 *   main: y = If(c); hot = 2·y (a third `hot`, in the main graph: the graph output)
 *
 * Only the then branch's `hot` overflows E4M3; nothing overflows FP16.
 */
import { GraphBuilder } from '../../src/onnx/builder.js';
import { DataType } from '../../src/onnx/dtype.js';
import type { ModelProto } from '../../src/onnx/proto-types.js';
import { gaussians } from './mc.js';

const F = DataType.FLOAT;

export function plantedIfOverflow(cond: 'input' | 'true' | 'false' = 'input'): ModelProto {
  const gb = new GraphBuilder('planted_if_overflow', { opset: 18 });
  const x = gb.input('x', F, [8, 16]);
  const c = cond === 'input' ? gb.input('c', DataType.BOOL, []) : gb.constant(DataType.BOOL, [], [cond === 'true' ? 1 : 0], { name: 'c' });
  const thenB = gb.subgraph('then');
  const w = thenB.initializer('w_hot', [16, 4], Float32Array.from(gaussians(16 * 4, 0, 40, 7)));
  const hot = thenB.node('MatMul', [x, w], { name: 'matmul_hot', outputs: ['hot'] });
  thenB.output(thenB.node('Mul', [hot, thenB.scalar(2 ** -8)], { name: 'rescale', outputs: ['y_t'] }), F, [8, 4]);
  const elseB = gb.subgraph('else');
  const sl = elseB.node('Slice', [x, elseB.ints([0]), elseB.ints([4]), elseB.ints([1])], { outputs: ['x_cut'] });
  elseB.output(elseB.node('Mul', [sl, elseB.scalar(0.5)], { name: 'halve', outputs: ['hot'] }), F, [8, 4]);
  const y = gb.node('If', [c], { name: 'gate_if', attrs: { then_branch: thenB, else_branch: elseB }, outputs: ['y'] });
  gb.output(gb.node('Mul', [y, gb.scalar(2)], { name: 'double', outputs: ['hot'] }), F, [8, 4]);
  return gb.toModelProto();
}
