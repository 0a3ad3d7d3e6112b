import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../../src/onnx/load.js';
import { decodeModelProto, encodeModelProto, toPlainObject } from '../../src/onnx/proto.js';
import { saveModel } from '../../src/onnx/save.js';
import { allModels, debianNodeTests, hasShared, rel } from '../helpers/corpus.js';

const models = allModels();

describe.skipIf(!hasShared)('lossless load → save on every corpus model', () => {
  it('has a corpus', () => {
    expect(models.length).toBeGreaterThan(150);
  });
  it.each(models.map((m) => [rel(m), m]))('%s', (_label, file) => {
    const bytes = readFileSync(file);
    const model = loadModel(file);
    model.graph.topologicalOrder();
    const again = decodeModelProto(encodeModelProto(model.proto));
    expect(toPlainObject('ModelProto', again)).toEqual(toPlainObject('ModelProto', decodeModelProto(bytes)));
  });
});

const nodeTests = debianNodeTests();
describe.skipIf(nodeTests.length === 0)('lossless round trip on ONNX node tests (libonnx-testdata)', () => {
  it(`all ${nodeTests.length} models load, sort and round-trip`, () => {
    const failures: string[] = [];
    for (const file of nodeTests) {
      try {
        const bytes = readFileSync(file);
        const model = loadModel(file);
        for (const g of model.graph.allGraphs()) g.topologicalOrder();
        const again = decodeModelProto(encodeModelProto(model.proto));
        expect(toPlainObject('ModelProto', again)).toEqual(toPlainObject('ModelProto', decodeModelProto(bytes)));
      } catch (e) {
        failures.push(`${file}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    expect(failures).toEqual([]);
  });
});

describe('saveModel', () => {
  it('writes atomically, reloads equal, and refuses to overwrite the input', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'us-save-'));
    try {
      const src = path.join(dir, 'in.onnx');
      const fixture = models.find((m) => m.endsWith('test_Linear/model.onnx')) ?? models[0]!;
      writeFileSync(src, readFileSync(fixture));
      const model = loadModel(src);
      const out = path.join(dir, 'out.onnx');
      saveModel(model.proto, out, { protect: [src] });
      expect(toPlainObject('ModelProto', loadModel(out).proto)).toEqual(toPlainObject('ModelProto', model.proto));
      expect(() => saveModel(model.proto, src, { protect: [src] })).toThrow(/refusing to overwrite/);
      saveModel(model.proto, src, { protect: [src], force: true });
      expect(existsSync(src)).toBe(true);
      // no temporary files left behind
      expect(readFileSync(out).length).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('round-trip comparison is sensitive', () => {
  it('sees a changed attribute and keeps node metadata of IR-10 dynamo exports', () => {
    const file = models.find((m) => m.endsWith('gpt2_tiny.onnx'));
    if (!file) return;
    const model = loadModel(file);
    const before = toPlainObject('ModelProto', model.proto);
    const metaCount = (model.proto.graph?.node ?? []).reduce((a, n) => a + (n.metadata_props?.length ?? 0), 0);
    expect(metaCount).toBeGreaterThan(100);
    const again = decodeModelProto(encodeModelProto(model.proto));
    expect((again.graph?.node ?? []).reduce((a, n) => a + (n.metadata_props?.length ?? 0), 0)).toBe(metaCount);
    again.graph!.node![0]!.name = 'changed';
    expect(toPlainObject('ModelProto', again)).not.toEqual(before);
  });
});
