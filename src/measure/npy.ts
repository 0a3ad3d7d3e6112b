/**
 * Reading NumPy `.npy` arrays and `.npz` archives (a zip of .npy files), without dependencies.
 *
 * .npy (format versions 1–3): the magic "\x93NUMPY", a version byte pair, a little-endian header
 * length (2 bytes in v1, 4 in v2/v3), then a Python-dict header such as
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces, then the data.
 *
 * .npz: an ordinary zip. We read the central directory (end record → entries), honour the zip64
 * extra field (numpy writes its members with force_zip64, so local headers carry 0xFFFFFFFF
 * sizes), and take each member either stored (method 0) or deflated (method 8, node:zlib).
 */
import { inflateRawSync } from 'node:zlib';
import { DataType } from '../onnx/dtype.js';

export class NpyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NpyError';
  }
}

export interface NpyArray {
  /** ONNX TensorProto.DataType of the elements. */
  dtype: number;
  shape: number[];
  /** The element bytes, little-endian, C order, in a fresh (aligned) buffer. */
  bytes: Uint8Array;
}

/** numpy descr → (ONNX type, item size). Only little-endian (or byte-sized) types. */
const DESCR: Record<string, [number, number]> = {
  '<f4': [DataType.FLOAT, 4],
  '<f8': [DataType.DOUBLE, 8],
  '<f2': [DataType.FLOAT16, 2],
  '<i8': [DataType.INT64, 8],
  '<i4': [DataType.INT32, 4],
  '<i2': [DataType.INT16, 2],
  '|i1': [DataType.INT8, 1],
  '|u1': [DataType.UINT8, 1],
  '<u2': [DataType.UINT16, 2],
  '<u4': [DataType.UINT32, 4],
  '<u8': [DataType.UINT64, 8],
  '|b1': [DataType.BOOL, 1],
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function parseNpy(buf: Uint8Array): NpyArray {
  if (buf.length < 10 || MAGIC.some((b, i) => buf[i] !== b)) throw new NpyError('not a .npy file (bad magic)');
  const major = buf[6]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw new NpyError('truncated .npy header');
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else {
    throw new NpyError(`unsupported .npy format version ${major}`);
  }
  if (start + headerLen > buf.length) throw new NpyError('truncated .npy header');
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(buf.subarray(start, start + headerLen));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw new NpyError('malformed .npy header');
  // '=' and '<' mean the same on the little-endian machines numpy files come from in practice.
  const norm = descr.replace(/^=/, '<').replace(/^<([bui]1)$/, '|$1');
  const info = DESCR[norm];
  if (!info) throw new NpyError(`unsupported .npy dtype '${descr}' (supported: ${Object.keys(DESCR).join(', ')})`);
  if (fortran === 'True') throw new NpyError('Fortran-order .npy arrays are not supported (save with C order)');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isSafeInteger(n) || n < 0) throw new NpyError(`bad .npy shape (${shapeText})`);
      return n;
    });
  const count = shape.reduce((a, b) => a * b, 1);
  const dataStart = start + headerLen;
  const need = count * info[1];
  if (buf.length - dataStart < need) throw new NpyError(`.npy data holds ${buf.length - dataStart} bytes, shape (${shape.join(', ')}) needs ${need}`);
  const bytes = new Uint8Array(need);
  bytes.set(buf.subarray(dataStart, dataStart + need));
  return { dtype: info[0], shape, bytes };
}

export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;

/** All members of a zip archive, decompressed. */
export function readZip(buf: Uint8Array): ZipEntry[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (dv.getUint32(i, true) === SIG_EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new NpyError('not a zip archive (no end of central directory)');
  let entries = dv.getUint16(eocd + 10, true);
  let cdOffset = dv.getUint32(eocd + 16, true);
  if ((entries === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && dv.getUint32(eocd - 20, true) === SIG_EOCD64_LOCATOR) {
    const rec = Number(dv.getBigUint64(eocd - 20 + 8, true));
    if (rec + 56 > buf.length || dv.getUint32(rec, true) !== SIG_EOCD64) throw new NpyError('corrupt zip64 end record');
    entries = Number(dv.getBigUint64(rec + 32, true));
    cdOffset = Number(dv.getBigUint64(rec + 48, true));
  }
  const out: ZipEntry[] = [];
  let p = cdOffset;
  for (let k = 0; k < entries; k++) {
    if (p + 46 > buf.length || dv.getUint32(p, true) !== SIG_CENTRAL) throw new NpyError('corrupt zip central directory');
    const flags = dv.getUint16(p + 8, true);
    const method = dv.getUint16(p + 10, true);
    let compSize = dv.getUint32(p + 20, true);
    let size = dv.getUint32(p + 24, true);
    const nameLen = dv.getUint16(p + 28, true);
    const extraLen = dv.getUint16(p + 30, true);
    const commentLen = dv.getUint16(p + 32, true);
    let localOffset = dv.getUint32(p + 42, true);
    const name = new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(buf.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 0xFFFFFFFF fields, in the order size, compressed size, offset.
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = dv.getUint16(e, true);
      const len = dv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (size === 0xffffffff) (size = Number(dv.getBigUint64(q, true))), (q += 8);
        if (compSize === 0xffffffff) (compSize = Number(dv.getBigUint64(q, true))), (q += 8);
        if (localOffset === 0xffffffff) localOffset = Number(dv.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    p = eEnd + commentLen;
    if (flags & 1) throw new NpyError(`zip member '${name}' is encrypted`);
    if (localOffset + 30 > buf.length || dv.getUint32(localOffset, true) !== SIG_LOCAL) throw new NpyError(`corrupt zip local header for '${name}'`);
    const dataStart = localOffset + 30 + dv.getUint16(localOffset + 26, true) + dv.getUint16(localOffset + 28, true);
    if (dataStart + compSize > buf.length) throw new NpyError(`zip member '${name}' is truncated`);
    const raw = buf.subarray(dataStart, dataStart + compSize);
    let data: Uint8Array;
    if (method === 0) data = raw;
    else if (method === 8) {
      try {
        data = inflateRawSync(raw);
      } catch {
        throw new NpyError(`zip member '${name}' does not inflate`);
      }
    } else throw new NpyError(`zip member '${name}' uses compression method ${method} (only stored and deflated are supported)`);
    if (data.length !== size) throw new NpyError(`zip member '${name}' has ${data.length} bytes, the directory says ${size}`);
    out.push({ name, data });
  }
  return out;
}

/** The arrays of an .npz archive, keyed by name (the member name without ".npy"). */
export function parseNpz(buf: Uint8Array): Map<string, NpyArray> {
  const out = new Map<string, NpyArray>();
  for (const { name, data } of readZip(buf)) {
    if (name.endsWith('/')) continue;
    const key = name.replace(/\.npy$/, '');
    try {
      out.set(key, parseNpy(data));
    } catch (e) {
      throw new NpyError(`member '${name}': ${(e as Error).message}`);
    }
  }
  return out;
}
