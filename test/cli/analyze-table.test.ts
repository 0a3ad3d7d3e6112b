/** The analyze table shows where a subgraph value lives, compactly, without hiding its name. */
import { describe, expect, it } from 'vitest';
import { analyzeModel } from '../../src/analysis/analyze.js';
import { renderAnalyzeReport, tensorLabel } from '../../src/cli/render/analyze-table.js';
import { parseFormat } from '../../src/formats/index.js';
import { Model } from '../../src/onnx/model.js';
import { plantedIfOverflow } from '../helpers/planted-if.js';

describe('tensorLabel', () => {
  it('main-graph names as before; a scope as a prefix that gives way before the name', () => {
    expect(tensorLabel({ name: 'hot', kind: 'activation' })).toBe('hot');
    expect(tensorLabel({ name: 'w', kind: 'gradient' })).toBe('∂w');
    expect(tensorLabel({ name: 'x'.repeat(50), kind: 'activation' })).toBe(`${'x'.repeat(39)}…`);
    expect(tensorLabel({ name: 'hot', kind: 'activation', scope: 'If_3/then_branch' })).toBe('If_3/then_branch › hot');
    const deep = tensorLabel({ name: 'result.35', kind: 'activation', scope: 'If_25/then_branch/If_177/then_branch' });
    expect(deep).toHaveLength(40);
    expect(deep.startsWith('…')).toBe(true);
    expect(deep.endsWith('If_177/then_branch › result.35')).toBe(true);
    const long = tensorLabel({ name: 'n'.repeat(38), kind: 'activation', scope: 'If_3/then_branch' });
    expect(long).toHaveLength(40);
    expect(long.startsWith('… › n')).toBe(true);
  });
});

describe('renderAnalyzeReport', () => {
  it('lists branch values with their scope and says how many there are', () => {
    const r = analyzeModel(new Model(plantedIfOverflow('input'), null, null), { formats: [parseFormat('e4m3')] });
    const text = renderAnalyzeReport(r);
    expect(text).toMatch(/11 of 11 tensors \(7 inside If\/Loop\/Scan subgraphs\), riskiest first:/);
    const rows = text.split('\n').filter((l) => l.startsWith('│'));
    // The riskiest row is the planted overflow, in the then branch.
    expect(rows[1]).toMatch(/│ gate_if\/then_branch › hot +│ MatMul +│.*OVF/);
    expect(text).toMatch(/gate_if\/then_branch\/hot/); // worst tensor in the summary
  });
});
