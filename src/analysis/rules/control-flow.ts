/**
 * Control flow (If, Loop, Scan). Their outputs are produced by subgraphs, which the engine
 * propagates on request (RuleContext.subgraph: the subgraph's formal inputs at given scales, the
 * enclosing scopes' values visible, its inner values kept for the report):
 *
 * - If with a condition known at analysis time (a constant, or folded from shapes): the taken
 *   branch, as it is. Otherwise both branches run through the rules and each output is the
 *   equal-weight mixture of the two (moments averaged, laws mixed): without data, which branch
 *   runs is unknown. Confidence at most 'medium'. A branch that cannot be analysed (often one
 *   impossible for these shapes) leaves the other, at 'low'.
 * - Loop: one iteration of the body with the loop-carried values at their initial scales
 *   (a fixpoint would need the trip count and a contraction the body need not have); the final
 *   carried values and the scan outputs (each iteration's slice, stacked) take the scales of that
 *   iteration's outputs. Confidence 'low', with a note.
 * - Scan (opset ≥ 9; opset 8 has a leading sequence_lens): the same, the body seeing one slice of
 *   each scan input (a slice has the input's element distribution).
 *
 * Without the hook (a rule test building a bare context) every float output is unknown.
 */
import type { Scale } from '../scale.js';
import { unknownScale } from '../scale.js';
import { capped, constantScalar, mixtureScale, outputIsFloat } from './shape-ops.js';
import type { OpRule, RuleContext, RuleTable } from './types.js';

function unknownOutputs(ctx: RuleContext, why: string): (Scale | null)[] {
  return ctx.node.outputs.map((_, i) => (outputIsFloat(ctx, i) ? unknownScale(`${ctx.node.opType}: ${why}`) : null));
}

/** Run a subgraph through the hook; null (with the reason) when it cannot be analysed. */
function run(ctx: RuleContext, attribute: string, inputs: (Scale | null)[]): { outs: (Scale | null)[] } | { error: string } {
  try {
    return { outs: ctx.subgraph!(attribute, inputs) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const known = (s: Scale | null | undefined): s is Scale => !!s && s.confidence !== 'unknown';

/** Nested branches repeat their notes: keep each once. */
function tidy(s: Scale): Scale {
  if (!s.note) return s;
  const parts = [...new Set(s.note.split('; ').filter(Boolean))];
  return { ...s, note: parts.join('; ') };
}

const ifRule: OpRule = {
  forward: (ctx) => ifForward(ctx).map((s) => (s ? tidy(s) : s)),
};

function ifForward(ctx: RuleContext): (Scale | null)[] {
  const cond = constantScalar(ctx, 0);
  if (!ctx.subgraph) {
    const which = cond === undefined ? 'condition not constant' : `condition is constant: the ${cond ? 'then' : 'else'} branch runs`;
    return unknownOutputs(ctx, `subgraph outputs not analysed here (${which})`);
  }
  if (cond !== undefined) {
    const which = cond ? 'then_branch' : 'else_branch';
    const r = run(ctx, which, []);
    if ('error' in r) return unknownOutputs(ctx, `the taken ${which} cannot be analysed (${r.error})`);
    return ctx.node.outputs.map((_, i) => {
      if (!outputIsFloat(ctx, i)) return null;
      const s = r.outs[i];
      return s ? { ...s, note: s.note ? `${s.note}; If: condition known, ${which} runs` : `If: condition known, ${which} runs` } : unknownScale(`If: ${which} output ${i} has no scale`);
    });
  }
  const t = run(ctx, 'then_branch', []);
  const e = run(ctx, 'else_branch', []);
  return ctx.node.outputs.map((_, i) => {
    if (!outputIsFloat(ctx, i)) return null;
    const a = 'outs' in t ? t.outs[i] : null;
    const b = 'outs' in e ? e.outs[i] : null;
    if (known(a) && known(b)) {
      return capped(
        mixtureScale(
          [
            { weight: 0.5, scale: a },
            { weight: 0.5, scale: b },
          ],
          'If: condition not known without data: equal mixture of the then and else branches',
        ),
        'medium',
      );
    }
    const why = (r: typeof t): string => ('error' in r ? r.error : 'no scale for this output');
    if (known(a)) return capped(a, 'low', `If: condition not known; only the then branch could be analysed (else: ${why(e)})`);
    if (known(b)) return capped(b, 'low', `If: condition not known; only the else branch could be analysed (then: ${why(t)})`);
    return unknownScale('If: neither branch could be analysed');
  });
}

const ONE_ITERATION = 'one iteration analysed, loop-carried values at their initial scales';

const loopRule: OpRule = {
  forward: (ctx) => {
    if (!ctx.subgraph) return unknownOutputs(ctx, 'subgraph outputs not analysed here');
    // Body inputs: (iteration number, condition, carried…); outputs: (condition, carried…, scans…).
    const carried = ctx.inputs.slice(2);
    const r = run(ctx, 'body', [null, null, ...carried]);
    if ('error' in r) return unknownOutputs(ctx, `the body cannot be analysed (${r.error})`);
    return ctx.node.outputs.map((_, i) => {
      if (!outputIsFloat(ctx, i)) return null;
      const s = r.outs[1 + i];
      return s ? tidy(capped(s, 'low', `Loop: ${ONE_ITERATION}`)) : unknownScale(`Loop: body output ${1 + i} has no scale`);
    });
  },
};

const scanRule: OpRule = {
  forward: (ctx) => {
    if (!ctx.subgraph) return unknownOutputs(ctx, 'subgraph outputs not analysed here');
    // Opset 8 has a leading sequence_lens input (and batch axes); from 9 on, states then scan inputs.
    const first = ctx.opset < 9 ? 1 : 0;
    const inputs = ctx.inputs.slice(first).map((s) => (s ? { ...s, exactRisk: undefined } : null));
    const r = run(ctx, 'body', inputs);
    if ('error' in r) return unknownOutputs(ctx, `the body cannot be analysed (${r.error})`);
    return ctx.node.outputs.map((_, i) => {
      if (!outputIsFloat(ctx, i)) return null;
      const s = r.outs[i];
      return s ? tidy(capped(s, 'low', `Scan: ${ONE_ITERATION}`)) : unknownScale(`Scan: body output ${i} has no scale`);
    });
  },
};

export const rules: RuleTable = {
  If: ifRule,
  Loop: loopRule,
  Scan: scanRule,
};
