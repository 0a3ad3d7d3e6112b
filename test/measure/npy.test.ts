import { deflateRawSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { NpyError, parseNpy, parseNpz, readZip } from '../../src/measure/npy.js';
import { DataType } from '../../src/onnx/dtype.js';

/** An .npy file (format 1.0, or 2.0 with a 4-byte header length). */
function npyBytes(descr: string, shape: number[], data: Uint8Array, opts: { version?: 1 | 2; fortran?: boolean } = {}): Uint8Array {
  const v = opts.version ?? 1;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${shapeText}, }`;
  const pre = v === 1 ? 10 : 12;
  const total = Math.ceil((pre + header.length + 1) / 64) * 64;
  header = header.padEnd(total - pre - 1, ' ') + '\n';
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, v, 0]);
  const dv = new DataView(out.buffer);
  if (v === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), pre);
  out.set(data, pre + header.length);
  return out;
}

/** A minimal zip (stored or deflated members) built by hand. */
function zipBytes(members: { name: string; data: Uint8Array; deflate: boolean }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const m of members) {
    const name = new TextEncoder().encode(m.name);
    const body = m.deflate ? deflateRawSync(m.data) : m.data;
    const local = new Uint8Array(30 + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, m.deflate ? 8 : 0, true);
    lv.setUint32(18, body.length, true);
    lv.setUint32(22, m.data.length, true);
    lv.setUint16(26, name.length, true);
    local.set(name, 30);
    const c = new Uint8Array(46 + name.length);
    const cv = new DataView(c.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, m.deflate ? 8 : 0, true);
    cv.setUint32(20, body.length, true);
    cv.setUint32(24, m.data.length, true);
    cv.setUint16(28, name.length, true);
    cv.setUint32(42, offset, true);
    c.set(name, 46);
    central.push(c);
    parts.push(local, body);
    offset += local.length + body.length;
  }
  const cdSize = central.reduce((a, c) => a + c.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, members.length, true);
  ev.setUint16(10, members.length, true);
  ev.setUint32(12, cdSize, true);
  ev.setUint32(16, offset, true);
  const all = [...parts, ...central, end];
  const out = new Uint8Array(all.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of all) (out.set(p, o), (o += p.length));
  return out;
}

// np.savez_compressed(b, x=np.array([[1.5,-2.0],[0.25,3.0]], np.float32), ids=np.array([[1,2,3]], np.int64))
const NUMPY_COMPRESSED_NPZ =
  'UEsDBC0AAAAIAAAAIQCkmzzO//////////8FABQAeC5ucHkBABAAkAAAAAAAAABVAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loG6TZqKuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6CkaaOgq1CmQDLgaGA/YMQIKBocGOgcHBAQBQSwMELQAAAAgAAAAhAJXuRtz//////////wcAFABpZHMubnB5AQAQAJgAAAAAAAAATwAAAAAAAACb7BfqGxDJyFDGUK2eklqcXKRupaBuk2mhrqOgnpZfVFKUmBefX5SSChJ3S8wpTgWKF2ckFqQC+RqGOgrGmjoKtQpkAy5GBghggtLMUBoAUEsBAi0DLQAAAAgAAAAhAKSbPM5VAAAAkAAAAAUAAAAAAAAAAAAAAIABAAAAAHgubnB5UEsBAi0DLQAAAAgAAAAhAJXuRtxPAAAAmAAAAAcAAAAAAAAAAAAAAIABjAAAAGlkcy5ucHlQSwUGAAAAAAIAAgBoAAAAFAEAAAAA';

describe('.npy', () => {
  it('reads each supported dtype with its shape and exact bytes', () => {
    const cases: [string, number, Uint8Array][] = [
      ['<f4', DataType.FLOAT, new Uint8Array(new Float32Array([1, -2, 3.5]).buffer)],
      ['<f8', DataType.DOUBLE, new Uint8Array(new Float64Array([1e-300, 2, 3]).buffer)],
      ['<i8', DataType.INT64, new Uint8Array(new BigInt64Array([1n, -2n, 2n ** 60n]).buffer)],
      ['<i4', DataType.INT32, new Uint8Array(new Int32Array([7, 8, -9]).buffer)],
      ['|b1', DataType.BOOL, new Uint8Array([1, 0, 1])],
      ['<f2', DataType.FLOAT16, new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800]).buffer)],
    ];
    for (const [descr, dtype, data] of cases) {
      for (const version of [1, 2] as const) {
        const a = parseNpy(npyBytes(descr, [3], data, { version }));
        expect(a.dtype).toBe(dtype);
        expect(a.shape).toEqual([3]);
        expect(Array.from(a.bytes)).toEqual(Array.from(data));
      }
    }
    expect(parseNpy(npyBytes('<f4', [2, 1, 2], new Uint8Array(16))).shape).toEqual([2, 1, 2]);
    expect(parseNpy(npyBytes('<f4', [], new Uint8Array(4))).shape).toEqual([]);
  });

  it('rejects what it cannot read with a one-line reason', () => {
    expect(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))).toThrow(/bad magic/);
    expect(() => parseNpy(npyBytes('>f4', [1], new Uint8Array(4)))).toThrow(/unsupported .npy dtype '>f4'/);
    expect(() => parseNpy(npyBytes('<f4', [2], new Uint8Array(4), { fortran: true }))).toThrow(NpyError);
    expect(() => parseNpy(npyBytes('<f4', [4], new Uint8Array(8)))).toThrow(/needs 16/);
  });
});

describe('.npz', () => {
  it('reads a numpy savez_compressed archive (deflated, zip64 local headers)', () => {
    const z = parseNpz(Buffer.from(NUMPY_COMPRESSED_NPZ, 'base64'));
    expect([...z.keys()]).toEqual(['x', 'ids']);
    const x = z.get('x')!;
    expect(x.dtype).toBe(DataType.FLOAT);
    expect(x.shape).toEqual([2, 2]);
    expect(Array.from(new Float32Array(x.bytes.buffer))).toEqual([1.5, -2, 0.25, 3]);
    const ids = z.get('ids')!;
    expect(Array.from(new BigInt64Array(ids.bytes.buffer))).toEqual([1n, 2n, 3n]);
  });

  it('reads stored and deflated members of a plain zip', () => {
    const a = npyBytes('<f4', [2], new Uint8Array(new Float32Array([1, 2]).buffer));
    const b = npyBytes('<i8', [1], new Uint8Array(new BigInt64Array([5n]).buffer));
    const z = parseNpz(zipBytes([{ name: 'a.npy', data: a, deflate: false }, { name: 'b.npy', data: b, deflate: true }]));
    expect(Array.from(new Float32Array(z.get('a')!.bytes.buffer))).toEqual([1, 2]);
    expect(Array.from(new BigInt64Array(z.get('b')!.bytes.buffer))).toEqual([5n]);
    expect(readZip(zipBytes([{ name: 'n', data: new Uint8Array([9]), deflate: true }]))[0]!.data[0]).toBe(9);
  });

  it('rejects a file that is not a zip', () => {
    expect(() => parseNpz(new Uint8Array(100))).toThrow(/not a zip/);
  });
});
