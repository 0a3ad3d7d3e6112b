import { describe, expect, it } from 'vitest';
import {
  FormatError,
  formatForOnnxType,
  listFormats,
  makeFormat,
  parseFormat,
} from '../../src/formats/index.js';

/** PRIMER §1 table, transcribed independently of the derivation in format.ts. */
const PRIMER_TABLE: {
  name: string; onnx: number | null; e: number; m: number; bias: number;
  max: number; minNormal: number; minSubnormal: number; inf: boolean;
}[] = [
  { name: 'fp32', onnx: 1, e: 8, m: 23, bias: 127, max: 3.4028234663852886e38, minNormal: 2 ** -126, minSubnormal: 2 ** -149, inf: true },
  { name: 'tf32', onnx: null, e: 8, m: 10, bias: 127, max: (2 - 2 ** -10) * 2 ** 127, minNormal: 2 ** -126, minSubnormal: 2 ** -136, inf: true },
  { name: 'bf16', onnx: 16, e: 8, m: 7, bias: 127, max: 3.3895313892515355e38, minNormal: 2 ** -126, minSubnormal: 2 ** -133, inf: true },
  { name: 'fp16', onnx: 10, e: 5, m: 10, bias: 15, max: 65504, minNormal: 2 ** -14, minSubnormal: 2 ** -24, inf: true },
  { name: 'e4m3', onnx: 17, e: 4, m: 3, bias: 7, max: 448, minNormal: 2 ** -6, minSubnormal: 2 ** -9, inf: false },
  { name: 'e4m3fnuz', onnx: 18, e: 4, m: 3, bias: 8, max: 240, minNormal: 2 ** -7, minSubnormal: 2 ** -10, inf: false },
  { name: 'e5m2', onnx: 19, e: 5, m: 2, bias: 15, max: 57344, minNormal: 2 ** -14, minSubnormal: 2 ** -16, inf: true },
  { name: 'e5m2fnuz', onnx: 20, e: 5, m: 2, bias: 16, max: 57344, minNormal: 2 ** -15, minSubnormal: 2 ** -17, inf: false },
  { name: 'e2m3', onnx: null, e: 2, m: 3, bias: 1, max: 7.5, minNormal: 1, minSubnormal: 0.125, inf: false },
  { name: 'e3m2', onnx: null, e: 3, m: 2, bias: 3, max: 28, minNormal: 0.25, minSubnormal: 0.0625, inf: false },
  { name: 'e2m1', onnx: 23, e: 2, m: 1, bias: 1, max: 6, minNormal: 1, minSubnormal: 0.5, inf: false },
];

describe('built-in formats match PRIMER §1', () => {
  it.each(PRIMER_TABLE)('$name', (row) => {
    const f = parseFormat(row.name);
    expect(f.name).toBe(row.name);
    expect([f.expBits, f.manBits, f.bias]).toEqual([row.e, row.m, row.bias]);
    expect(f.max).toBe(row.max);
    expect(f.minNormal).toBe(row.minNormal);
    expect(f.minSubnormal).toBe(row.minSubnormal);
    expect(f.hasInf).toBe(row.inf);
    expect(f.onnxType).toBe(row.onnx);
    expect(f.bits).toBe(1 + row.e + row.m);
    if (row.onnx !== null) expect(formatForOnnxType(row.onnx)).toBe(f);
  });

  it('fp32 max is float32 max', () => {
    expect(parseFormat('fp32').max).toBe(Math.fround(3.4028235e38));
  });

  it('lists exactly the built-ins', () => {
    expect(listFormats().map((f) => f.name)).toEqual(PRIMER_TABLE.map((r) => r.name));
  });

  it('conventions', () => {
    expect(parseFormat('e4m3').convention).toBe('fn');
    expect(parseFormat('e5m2').convention).toBe('ieee');
    expect(parseFormat('e4m3fnuz').convention).toBe('fnuz');
    expect(parseFormat('e2m1').convention).toBe('finite');
  });
});

describe('parseFormat', () => {
  it.each([
    ['FP16', 'fp16'], ['float16', 'fp16'], ['half', 'fp16'], ['Half', 'fp16'],
    ['bfloat16', 'bf16'], ['BF16', 'bf16'], ['float32', 'fp32'], ['float', 'fp32'],
    ['fp8', 'e4m3'], ['e4m3fn', 'e4m3'], ['E4M3FN', 'e4m3'], ['float8e4m3fn', 'e4m3'], ['float8_e4m3fn', 'e4m3'],
    ['FLOAT8E4M3FNUZ', 'e4m3fnuz'], ['float8_e5m2', 'e5m2'], ['float8e5m2fnuz', 'e5m2fnuz'],
    ['fp4', 'e2m1'], ['float4_e2m1fn', 'e2m1'], ['float6_e2m3fn', 'e2m3'], ['float6_e3m2fn', 'e3m2'],
    ['tf32', 'tf32'],
  ])('%s → %s', (alias, name) => {
    expect(parseFormat(alias).name).toBe(name);
  });

  it('custom eXmY is IEEE-style and derived by the same rules', () => {
    const f = parseFormat('e3m4');
    expect(f.convention).toBe('ieee');
    expect(f.bias).toBe(3);
    expect(f.max).toBe(2 ** 3 * (2 - 2 ** -4)); // top field 7 reserved: 2^(6-3)·1.9375 = 15.5
    expect(f.minNormal).toBe(2 ** -2);
    expect(f.minSubnormal).toBe(2 ** -6);
    expect(f.onnxType).toBeNull();
  });

  it('custom eXmYfn and eXmYfnuz', () => {
    const fn = parseFormat('e6m1fn');
    expect(fn.convention).toBe('fn');
    expect(fn.bias).toBe(31);
    expect(fn.max).toBe(2 ** (63 - 31) * 1); // mantissa 1 is NaN, largest mantissa 0
    const uz = parseFormat('e3m4fnuz');
    expect(uz.bias).toBe(4);
    expect(uz.max).toBe(2 ** 3 * (2 - 2 ** -4));
  });

  it('a custom format equal to a built-in has the same numbers', () => {
    const a = parseFormat('e5m10');
    const b = makeFormat(5, 10);
    expect([b.max, b.minNormal, b.minSubnormal]).toEqual([a.max, a.minNormal, a.minSubnormal]);
    expect(parseFormat('e4m3fnuz').max).toBe(makeFormat(4, 3, { convention: 'fnuz' }).max);
  });

  it('round-trips every made name', () => {
    for (const f of [makeFormat(3, 3, { convention: 'finite' }), makeFormat(6, 2, { convention: 'fn' }), makeFormat(7, 5)]) {
      const g = parseFormat(f.name);
      expect(g).toEqual(f);
    }
  });

  it.each(['fp9', 'e4', 'float8', 'e0m3', 'e12m3', 'e5m60', 'e1m2', ''])('rejects %j with a FormatError', (bad) => {
    expect(() => parseFormat(bad)).toThrow(FormatError);
  });

  it('the error is one line and lists valid names', () => {
    try {
      parseFormat('fp9');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FormatError);
      const msg = (err as Error).message;
      expect(msg).not.toContain('\n');
      for (const n of ['fp16', 'bf16', 'e4m3', 'e5m2', 'e2m1', 'eXmY']) expect(msg).toContain(n);
    }
  });

  it('formatForOnnxType is null for non-float types', () => {
    for (const t of [0, 2, 3, 6, 7, 9, 11, 21, 22]) expect(formatForOnnxType(t)).toBeNull();
  });
});
