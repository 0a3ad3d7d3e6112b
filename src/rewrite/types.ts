/** The change report every rewrite pass appends to (table and `--json`). */

export type RewritePass = 'unit-scale' | 'qdq' | 'fp16' | 'opset';

export type ChangeAction =
  /** A weight stored divided by its scale. */
  | 'scale-weight'
  /** A Mul inserted on an operand so that it enters the op with RMS ≈ 1. */
  | 'scale-input'
  /** A Mul inserted after the op that restores the original scale of its output. */
  | 'restore-output'
  /** The bias (Conv B) or its coefficient (Gemm beta) divided by the operands' scales. */
  | 'scale-bias'
  /** QuantizeLinear/DequantizeLinear pair on an operand. */
  | 'quantize'
  /** A weight stored as an FP8 initializer plus DequantizeLinear. */
  | 'fp8-weight'
  /** Opset raised (and IR version with it). */
  | 'upgrade-opset'
  /** A node rewritten to keep its semantics under the new opset. */
  | 'convert-node'
  /** An initializer or constant converted to the low-precision type. */
  | 'convert-constant'
  /** Values outside the format's range clamped to its largest finite magnitude. */
  | 'saturate'
  /** A Cast inserted at a precision boundary. */
  | 'cast'
  /** An op kept in float32 inside an fp16/bf16 graph. */
  | 'keep-fp32'
  /** A Cast node's target type changed. */
  | 'retype-cast'
  /** Something the pass could have changed but did not. */
  | 'skip';

export interface Change {
  pass: RewritePass;
  /** The node concerned (the original node's name; for inserted nodes, the new node's name). */
  node: string;
  /** Its op type. */
  op: string;
  action: ChangeAction;
  /** The tensor concerned, when there is one. */
  value: string | null;
  /** What was inserted or changed, in a few words (e.g. "Mul × 0.125 → x_us"). */
  inserted: string | null;
  /** The constant used (multiplier, scale, saturation bound), when there is one. */
  constant: number | null;
  /** Why. */
  reason: string;
}
