/**
 * Seeded mutations of ONNX model files for the robustness fuzzer (scripts/fuzz.ts).
 *
 * Two families:
 *  - wire-level: bit flips, byte overwrites, truncation, spliced chunks, corrupted varints and
 *    length prefixes (found by walking the protobuf wire format, optionally fixing up the
 *    lengths of the enclosing messages so that the damage reaches deeper decoders);
 *  - model-level: decode, change the meaning, re-encode: huge or negative dims, tensors whose
 *    declared size is absent, wrong data types, cyclic graphs, dangling inputs, values produced
 *    twice, and external-data references that escape the model's folder (`..`, absolute
 *    paths, symlinks) or overrun their file.
 *
 * A case is a function of (corpus, seed, index) only, so any case can be replayed alone.
 * Cases whose model must be refused carry `mustFail`: loading them successfully is a failure.
 */
import { dtypeBits } from '../onnx/dtype.js';
import { decodeModelProto, encodeModelProto } from '../onnx/proto.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../onnx/proto-types.js';

// ---------------------------------------------------------------------------------------------
// Randomness

export interface Rng {
  /** Uniform on [0, 1). */
  next(): number;
  /** Integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** Mulberry32 seeded from (seed, stream): independent, reproducible streams per case. */
export function makeRng(seed: number, stream = 0): Rng {
  let s = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream >>> 0) + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  };
}

// ---------------------------------------------------------------------------------------------
// Corpus and cases

export interface SideFile {
  /** Path relative to the model's folder. */
  path: string;
  data: Uint8Array;
}

export interface CorpusEntry {
  /** Short label (relative path). */
  name: string;
  bytes: Uint8Array;
  /** External-data files the model refers to, relative to its folder. */
  side: SideFile[];
}

export interface FuzzCase {
  index: number;
  kind: string;
  source: string;
  /** What exactly was done, for the failure report. */
  detail: string;
  /** The model file's path relative to the case folder. */
  model: string;
  files: SideFile[];
  /** Symbolic links to create: path relative to the case folder → target (absolute or relative). */
  symlinks: { path: string; target: string }[];
  /** Loading this model must give a clean error: success is a failure (a hostile model accepted). */
  mustFail: boolean;
}

/** Where cases may point outside their own folder (the runner creates these files). */
export interface FuzzEnv {
  /** Absolute path of a real file outside every case folder. */
  outsideFile: string;
  /** The same file relative to a case folder (e.g. '../outside/secret.bin'). */
  outsideRelative: string;
}

type Mutator = (src: CorpusEntry, r: Rng, env: FuzzEnv) => Omit<FuzzCase, 'index' | 'kind' | 'source'>;

function plain(model: Uint8Array, side: SideFile[], detail: string, mustFail = false): Omit<FuzzCase, 'index' | 'kind' | 'source'> {
  return { detail, model: 'model.onnx', files: [{ path: 'model.onnx', data: model }, ...side], symlinks: [], mustFail };
}

// ---------------------------------------------------------------------------------------------
// Wire format

export interface WireField {
  /** Start of the tag. */
  tagStart: number;
  field: number;
  wire: number;
  /** For wire type 2: start of the length varint. */
  lenStart: number;
  valStart: number;
  valEnd: number;
  /** Index (in the list) of the enclosing length-delimited field, or -1. */
  parent: number;
}

function readVarint(buf: Uint8Array, pos: number, end: number): { value: number; next: number } | null {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (pos + i >= end) return null;
    const b = buf[pos + i]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { value, next: pos + i + 1 };
  }
  return null;
}

/**
 * Every field of a protobuf message, recursing into length-delimited fields that parse
 * cleanly as messages (strings, bytes and packed arrays usually do not). Bounded by `limit`.
 */
export function scanWire(buf: Uint8Array, limit = 20000): WireField[] {
  const out: WireField[] = [];
  const parse = (start: number, end: number, parent: number, depth: number): boolean => {
    let pos = start;
    while (pos < end) {
      if (out.length >= limit) return true;
      const tag = readVarint(buf, pos, end);
      if (!tag || tag.value < 8 || tag.value > 0xffffffff) return false;
      const field = Math.floor(tag.value / 8);
      const wire = tag.value % 8;
      let f: WireField;
      if (wire === 0) {
        const v = readVarint(buf, tag.next, end);
        if (!v) return false;
        f = { tagStart: pos, field, wire, lenStart: -1, valStart: tag.next, valEnd: v.next, parent };
      } else if (wire === 1 || wire === 5) {
        const n = wire === 1 ? 8 : 4;
        if (tag.next + n > end) return false;
        f = { tagStart: pos, field, wire, lenStart: -1, valStart: tag.next, valEnd: tag.next + n, parent };
      } else if (wire === 2) {
        const len = readVarint(buf, tag.next, end);
        if (!len || len.next + len.value > end) return false;
        f = { tagStart: pos, field, wire, lenStart: tag.next, valStart: len.next, valEnd: len.next + len.value, parent };
      } else {
        return false;
      }
      const idx = out.length;
      out.push(f);
      if (wire === 2 && depth < 12 && f.valEnd > f.valStart && f.valEnd - f.valStart < 1 << 16) {
        const mark = out.length;
        if (!parse(f.valStart, f.valEnd, idx, depth + 1)) out.length = mark;
      }
      pos = f.valEnd;
    }
    return pos === end;
  };
  parse(0, buf.length, -1, 0);
  return out;
}

/** Protobuf varint bytes of a non-negative integer (or of a negative int64, ten bytes). */
export function encodeVarint(v: number | bigint): Uint8Array {
  let x = BigInt(v);
  if (x < 0n) x += 1n << 64n;
  const bytes: number[] = [];
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) b |= 0x80;
    bytes.push(b);
  } while (x > 0n);
  return Uint8Array.from(bytes);
}

function splice(buf: Uint8Array, start: number, end: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(buf.length - (end - start) + insert.length);
  out.set(buf.subarray(0, start), 0);
  out.set(insert, start);
  out.set(buf.subarray(end), start + insert.length);
  return out;
}

/**
 * Replace bytes [start, end) of `buf` — inside field `fields[at]` — and repair the length
 * prefixes of every enclosing message so the file still parses as far as the change.
 */
function spliceWithFixup(buf: Uint8Array, fields: WireField[], at: number, start: number, end: number, insert: Uint8Array): Uint8Array {
  let out = splice(buf, start, end, insert);
  let delta = insert.length - (end - start);
  for (let p = at; p >= 0; p = fields[p]!.parent) {
    const f = fields[p]!;
    if (f.wire !== 2 || f.lenStart < 0 || f.lenStart >= start) continue;
    const newLen = f.valEnd - f.valStart + delta;
    const enc = encodeVarint(newLen);
    const oldSize = f.valStart - f.lenStart;
    out = splice(out, f.lenStart, f.valStart, enc);
    delta += enc.length - oldSize;
  }
  return out;
}

const INTERESTING_VARINTS: (number | bigint)[] = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 1,
  (1n << 63n) - 1n, 1n << 63n, -1, -2, -(2 ** 31), 1n << 64n,
];

// ---------------------------------------------------------------------------------------------
// Wire-level mutators

const bitflip: Mutator = (src, r) => {
  const out = src.bytes.slice();
  const n = 1 + r.int(8);
  const where: number[] = [];
  for (let i = 0; i < n; i++) {
    const pos = r.int(out.length);
    out[pos] = out[pos]! ^ (1 << r.int(8));
    where.push(pos);
  }
  return plain(out, src.side, `flipped bits at ${where.join(',')}`);
};

const byteSet: Mutator = (src, r) => {
  const out = src.bytes.slice();
  const n = 1 + r.int(16);
  const v = r.pick([0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe]);
  const pos = r.int(out.length);
  for (let i = 0; i < n && pos + i < out.length; i++) out[pos + i] = v;
  return plain(out, src.side, `set ${n} bytes at ${pos} to 0x${v.toString(16)}`);
};

const truncate: Mutator = (src, r) => {
  const cut = r.chance(0.3) ? r.int(Math.min(64, src.bytes.length)) : r.int(src.bytes.length);
  return plain(src.bytes.slice(0, cut), src.side, `truncated to ${cut} of ${src.bytes.length} bytes`);
};

const chunkSplice: Mutator = (src, r) => {
  const b = src.bytes;
  const a = r.int(b.length);
  const len = 1 + r.int(Math.min(256, b.length - a));
  const op = r.int(3);
  if (op === 0) return plain(splice(b, a, a + len, new Uint8Array()), src.side, `deleted ${len} bytes at ${a}`);
  if (op === 1) {
    const to = r.int(b.length);
    return plain(splice(b, to, to, b.slice(a, a + len)), src.side, `copied ${len} bytes from ${a} to ${to}`);
  }
  const junk = Uint8Array.from({ length: len }, () => r.int(256));
  const to = r.chance(0.5) ? b.length : r.int(b.length);
  return plain(splice(b, to, to, junk), src.side, `inserted ${len} random bytes at ${to}`);
};

const varint: Mutator = (src, r) => {
  const all = scanWire(src.bytes);
  const fields = all.map((f, i) => ({ f, i })).filter(({ f }) => f.wire === 0);
  if (fields.length === 0) return bitflip(src, r, undefined as never);
  const { f, i } = r.pick(fields);
  const mode = r.int(3);
  if (mode === 0) {
    // unterminated varint: ten bytes with the continuation bit set
    const bad = new Uint8Array(10).fill(0xff);
    return plain(splice(src.bytes, f.valStart, f.valEnd, bad), src.side, `field ${f.field} at ${f.tagStart}: unterminated varint`);
  }
  const v = r.pick(INTERESTING_VARINTS);
  const enc = encodeVarint(v);
  const out = mode === 1 ? spliceWithFixup(src.bytes, all, i, f.valStart, f.valEnd, enc) : splice(src.bytes, f.valStart, f.valEnd, enc);
  return plain(out, src.side, `field ${f.field} at ${f.tagStart}: varint → ${String(v)}${mode === 1 ? ' (lengths fixed up)' : ''}`);
};

const lengthPrefix: Mutator = (src, r) => {
  const fields = scanWire(src.bytes).filter((f) => f.wire === 2);
  if (fields.length === 0) return truncate(src, r, undefined as never);
  const f = r.pick(fields);
  const len = f.valEnd - f.valStart;
  const v = r.pick<number | bigint>([0, 1, len - 1, len + 1, len * 2 + 7, src.bytes.length, 2 ** 31 - 1, 2 ** 32 + len, 2 ** 53, -1, len >>> 1]);
  const enc = encodeVarint(typeof v === 'number' ? Math.max(-1, v) : v);
  return plain(splice(src.bytes, f.lenStart, f.valStart, enc), src.side, `field ${f.field} at ${f.tagStart}: length ${len} → ${String(v)}`);
};

const wireType: Mutator = (src, r) => {
  const fields = scanWire(src.bytes);
  if (fields.length === 0) return bitflip(src, r, undefined as never);
  const f = r.pick(fields);
  const wire = r.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f.wire));
  const tag = encodeVarint(f.field * 8 + wire);
  const tagEnd = f.wire === 2 ? f.lenStart : f.valStart;
  return plain(splice(src.bytes, f.tagStart, tagEnd, tag), src.side, `field ${f.field} at ${f.tagStart}: wire type ${f.wire} → ${wire}`);
};

const fieldDelete: Mutator = (src, r) => {
  const all = scanWire(src.bytes);
  if (all.length === 0) return truncate(src, r, undefined as never);
  const i = r.int(all.length);
  const f = all[i]!;
  const out = spliceWithFixup(src.bytes, all, f.parent, f.tagStart, f.valEnd, new Uint8Array());
  return plain(out, src.side, `deleted field ${f.field} at ${f.tagStart} (lengths fixed up)`);
};

// ---------------------------------------------------------------------------------------------
// Model-level mutators

function decode(src: CorpusEntry): ModelProto {
  return decodeModelProto(src.bytes);
}

function encode(m: ModelProto): Uint8Array {
  return encodeModelProto(m);
}

/** Every graph of a model (main graph and nested subgraphs). */
function graphsOf(m: ModelProto): GraphProto[] {
  const out: GraphProto[] = [];
  const visit = (g: GraphProto | null | undefined) => {
    if (!g) return;
    out.push(g);
    for (const n of g.node ?? []) for (const a of n.attribute ?? []) {
      visit(a.g);
      for (const s of a.graphs ?? []) visit(s);
    }
  };
  visit(m.graph);
  return out;
}

function allInitializers(m: ModelProto): TensorProto[] {
  return graphsOf(m).flatMap((g) => g.initializer ?? []);
}

function rawInitializers(m: ModelProto): TensorProto[] {
  return allInitializers(m).filter((t) => t.raw_data && t.raw_data.length > 0 && t.data_location !== 1);
}

/** A tensor of the main graph to play with (adds one when the model has none). */
function someTensor(m: ModelProto, r: Rng): TensorProto {
  const raws = rawInitializers(m);
  if (raws.length) return r.pick(raws);
  const inits = allInitializers(m);
  if (inits.length) return r.pick(inits);
  const t: TensorProto = { name: 'fuzz_extra', data_type: 1, dims: [4], raw_data: new Uint8Array(16) };
  const g = m.graph ?? (m.graph = {});
  (g.initializer ?? (g.initializer = [])).push(t);
  return t;
}

const ABSURD_DIMS: (number | string)[] = [-1, -2, -(2 ** 31), 2 ** 31, 2 ** 32, 2 ** 40, 2 ** 53, '9223372036854775807', '-9223372036854775808', 2 ** 62];

const tensorDims: Mutator = (src, r) => {
  const m = decode(src);
  const t = someTensor(m, r);
  const before = JSON.stringify((t.dims ?? []).map(String));
  const dims = (t.dims ?? []).slice() as (number | string)[];
  const mode = r.int(4);
  if (mode === 0 || dims.length === 0) dims.push(r.pick(ABSURD_DIMS));
  else if (mode === 1) dims[r.int(dims.length)] = r.pick(ABSURD_DIMS);
  else if (mode === 2) dims[r.int(dims.length)] = (dims[r.int(dims.length)] as number) + 1;
  else dims.length = r.int(dims.length);
  t.dims = dims as number[];
  // any change of the element count makes the stored data the wrong size
  return plain(encode(m), src.side, `tensor '${t.name}': dims ${before} → ${JSON.stringify(dims.map(String))}`);
};

const declaredAbsent: Mutator = (src, r) => {
  const m = decode(src);
  const t = someTensor(m, r);
  delete t.raw_data;
  t.float_data = [];
  t.int32_data = [];
  t.int64_data = [];
  t.data_type = 1;
  t.data_location = 0;
  t.external_data = [];
  t.dims = r.pick([[2 ** 20, 2 ** 20], [2 ** 30], [65536, 65536, 16], [2 ** 26, 2 ** 26, 2]]);
  return plain(encode(m), src.side, `tensor '${t.name}': ${JSON.stringify(t.dims)} float declared, no data`, true);
};

const dataType: Mutator = (src, r) => {
  const m = decode(src);
  const t = someTensor(m, r);
  const was = t.data_type;
  t.data_type = r.pick([0, 2, 3, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27, 99, -1, 2 ** 31 - 1]);
  return plain(encode(m), src.side, `tensor '${t.name}': data_type ${was} → ${t.data_type}`);
};

const rawSize: Mutator = (src, r) => {
  const m = decode(src);
  const raws = rawInitializers(m);
  if (!raws.length) return tensorDims(src, r, undefined as never);
  const t = r.pick(raws);
  const raw = t.raw_data!;
  const n = r.pick([0, 1, raw.length - 1, raw.length + 1, raw.length >> 1, raw.length * 2]);
  const grown = new Uint8Array(Math.max(0, n));
  grown.set(raw.subarray(0, Math.min(raw.length, grown.length)));
  t.raw_data = grown;
  const sized = dtypeBits(t.data_type ?? 0) > 0;
  return plain(encode(m), src.side, `tensor '${t.name}': raw_data ${raw.length} → ${grown.length} bytes`, sized && grown.length !== raw.length && grown.length > 0);
};

/** The main graph's nodes that have at least one output. */
function nodesWithOutputs(g: GraphProto): NodeProto[] {
  return (g.node ?? []).filter((n) => (n.output ?? []).some((o) => o));
}

const cycle: Mutator = (src, r) => {
  const m = decode(src);
  const g = m.graph;
  const nodes = g ? nodesWithOutputs(g) : [];
  if (!g || nodes.length === 0) return dangling(src, r, undefined as never);
  const producer = new Map<string, NodeProto>();
  for (const n of nodes) for (const o of n.output ?? []) if (o) producer.set(o, n);
  // Prefer a real edge a → b, closed into a two-node cycle; else a self-loop.
  const edges: [NodeProto, NodeProto][] = [];
  for (const b of g.node ?? []) for (const i of b.input ?? []) {
    const a = producer.get(i);
    if (a && a !== b && (b.output ?? []).some((o) => o)) edges.push([a, b]);
  }
  let detail: string;
  if (edges.length && r.chance(0.7)) {
    const [a, b] = r.pick(edges);
    const back = (b.output ?? []).find((o) => o)!;
    a.input = [...(a.input ?? []), back];
    detail = `cycle ${a.name || a.op_type} → ${b.name || b.op_type} → back`;
  } else {
    const n = r.pick(nodes);
    n.input = [...(n.input ?? []), (n.output ?? []).find((o) => o)!];
    detail = `self-loop on ${n.name || n.op_type}`;
  }
  return plain(encode(m), src.side, detail, true);
};

const dangling: Mutator = (src, r) => {
  const m = decode(src);
  const g = m.graph ?? (m.graph = {});
  const nodes = g.node ?? (g.node = []);
  if (nodes.length === 0) nodes.push({ op_type: 'Relu', input: [], output: ['fuzz_out'] });
  const n = r.pick(nodes);
  const ghost = `fuzz_ghost_${r.int(1000)}`;
  const inputs = [...(n.input ?? [])];
  if (inputs.length && r.chance(0.7)) inputs[r.int(inputs.length)] = ghost;
  else inputs.push(ghost);
  n.input = inputs;
  return plain(encode(m), src.side, `node ${n.name || n.op_type} reads '${ghost}'`, true);
};

const producedTwice: Mutator = (src, r) => {
  const m = decode(src);
  const nodes = m.graph ? nodesWithOutputs(m.graph) : [];
  if (nodes.length < 2) return dangling(src, r, undefined as never);
  const a = r.pick(nodes);
  let b = r.pick(nodes);
  if (a === b) b = nodes[(nodes.indexOf(a) + 1) % nodes.length]!;
  const o = (a.output ?? []).find((x) => x)!;
  b.output = [o, ...(b.output ?? []).slice(1)];
  return plain(encode(m), src.side, `'${o}' produced by ${a.name || a.op_type} and ${b.name || b.op_type}`, true);
};

const shapeDecl: Mutator = (src, r) => {
  const m = decode(src);
  const g = m.graph;
  const vis = g ? [...(g.input ?? []), ...(g.output ?? []), ...(g.value_info ?? [])] : [];
  const withShape = vis.filter((v) => v.type?.tensor_type?.shape);
  if (!withShape.length) return tensorDims(src, r, undefined as never);
  const v = r.pick(withShape);
  const dims = v.type!.tensor_type!.shape!.dim ?? [];
  const d = r.pick<number | string>([-1, 0, 2 ** 40, '9223372036854775807', -(2 ** 31)]);
  if (dims.length && r.chance(0.7)) dims[r.int(dims.length)] = { dim_value: d as number };
  else dims.push({ dim_value: d as number });
  v.type!.tensor_type!.shape!.dim = dims;
  if (r.chance(0.3)) v.type!.tensor_type!.elem_type = r.pick([0, 8, 99, -5]);
  return plain(encode(m), src.side, `value '${v.name}': declared dim ${String(d)}`);
};

const attributes: Mutator = (src, r) => {
  const m = decode(src);
  const nodes = graphsOf(m).flatMap((g) => g.node ?? []).filter((n) => (n.attribute ?? []).length);
  if (!nodes.length) return shapeDecl(src, r, undefined as never);
  const n = r.pick(nodes);
  const a = r.pick(n.attribute!);
  const mode = r.int(5);
  if (mode === 0) a.ints = [r.pick<number>([-1, 0, 2 ** 31, -(2 ** 40), 2 ** 53]), ...(a.ints ?? [])];
  else if (mode === 1) a.i = r.pick<number>([-1, 0, 2 ** 31, -(2 ** 40), 2 ** 53]);
  else if (mode === 2) a.type = r.int(16);
  else if (mode === 3) a.f = r.pick([NaN, Infinity, -Infinity, 0, 1e38]);
  else n.attribute = n.attribute!.filter((x) => x !== a);
  return plain(encode(m), src.side, `node ${n.name || n.op_type}: attribute '${a.name}' mode ${mode}`);
};

const opsetMut: Mutator = (src, r) => {
  const m = decode(src);
  const v = r.pick<number | string>([0, -1, 1, 7, 99, 2 ** 31, '9223372036854775807']);
  m.opset_import = r.chance(0.2) ? [] : [{ domain: r.pick(['', 'ai.onnx', 'com.microsoft', 'x']), version: v as number }];
  if (r.chance(0.3)) m.ir_version = r.pick([0, -1, 1, 99]);
  return plain(encode(m), src.side, `opset → ${String(v)}`);
};

// --- external data ---

/** Side file the external-data mutations write (never a name a corpus model uses). */
const FUZZ_BIN = 'fuzz-data.bin';

/** Move one tensor's bytes to a side file; returns the (mutable) tensor and its bytes. */
function externalise(m: ModelProto, r: Rng, file: string): { t: TensorProto; data: Uint8Array } {
  const raws = rawInitializers(m);
  let t: TensorProto;
  if (raws.length) t = r.pick(raws);
  else {
    t = { name: 'fuzz_ext', data_type: 1, dims: [8], raw_data: new Uint8Array(32) };
    const g = m.graph ?? (m.graph = {});
    (g.initializer ?? (g.initializer = [])).push(t);
  }
  const data = t.raw_data!;
  delete t.raw_data;
  t.data_location = 1;
  t.external_data = [
    { key: 'location', value: file },
    { key: 'offset', value: '0' },
    { key: 'length', value: String(data.length) },
  ];
  return { t, data };
}

function setEntry(t: TensorProto, key: string, value: string | null): void {
  const rest = (t.external_data ?? []).filter((e) => e.key !== key);
  t.external_data = value === null ? rest : [...rest, { key, value }];
}

const externalValid: Mutator = (src, r) => {
  const m = decode(src);
  const { t, data } = externalise(m, r, FUZZ_BIN);
  return plain(encode(m), [...src.side, { path: FUZZ_BIN, data }], `tensor '${t.name}' moved to ${FUZZ_BIN} (valid)`);
};

const externalEscape: Mutator = (src, r, env) => {
  const m = decode(src);
  const mode = r.int(6);
  const loc = [
    env.outsideRelative,
    env.outsideFile,
    `sub/../${env.outsideRelative}`,
    env.outsideRelative.replace(/\//g, '\\'),
    'link.bin',
    'linkdir/secret.bin',
  ][mode]!;
  const { t } = externalise(m, r, loc);
  setEntry(t, 'length', null);
  // The outside file is big enough for any tensor here, so only the path check can refuse it.
  const symlinks =
    mode === 4
      ? [{ path: 'link.bin', target: env.outsideFile }]
      : mode === 5
        ? [{ path: 'linkdir', target: env.outsideFile.slice(0, env.outsideFile.lastIndexOf('/')) }]
        : [];
  return { detail: `tensor '${t.name}': external location '${loc}'${symlinks.length ? ' (symlink out)' : ''}`, model: 'model.onnx', files: [{ path: 'model.onnx', data: encode(m) }, ...src.side], symlinks, mustFail: true };
};

const externalOverrun: Mutator = (src, r) => {
  const m = decode(src);
  const { t, data } = externalise(m, r, FUZZ_BIN);
  const mode = r.int(6);
  let file = data;
  let detail: string;
  if (mode === 0) {
    setEntry(t, 'offset', String(1 + r.int(64)));
    detail = 'offset past the data';
  } else if (mode === 1) {
    setEntry(t, 'length', String(data.length + 1 + r.int(1 << 20)));
    detail = 'length past the file';
  } else if (mode === 2) {
    file = data.subarray(0, r.int(Math.max(1, data.length)));
    detail = `file cut to ${file.length} of ${data.length}`;
  } else if (mode === 3) {
    setEntry(t, 'offset', r.pick(['-1', '1e3', 'abc', '18446744073709551616', '9007199254740993']));
    detail = 'malformed offset';
  } else if (mode === 4) {
    setEntry(t, 'length', r.pick(['-8', '0x10', '99999999999999999999', ' 4']));
    detail = 'malformed length';
  } else {
    setEntry(t, 'offset', String(2 ** 52));
    detail = 'offset 2^52';
  }
  const files = [{ path: 'model.onnx', data: encode(m) }, ...src.side, { path: FUZZ_BIN, data: file }];
  return { detail: `tensor '${t.name}': ${detail}`, model: 'model.onnx', files, symlinks: [], mustFail: !(mode === 2 && file.length === data.length) };
};

const externalAbsurd: Mutator = (src, r) => {
  const m = decode(src);
  const { t, data } = externalise(m, r, FUZZ_BIN);
  t.dims = r.pick([[2 ** 20, 2 ** 20], [2 ** 31], [2 ** 26, 2 ** 26, 4]]);
  setEntry(t, 'length', r.chance(0.5) ? null : String(2 ** 42));
  return { detail: `tensor '${t.name}': external ${JSON.stringify(t.dims)} declared, ${data.length} bytes on disk`, model: 'model.onnx', files: [{ path: 'model.onnx', data: encode(m) }, ...src.side, { path: FUZZ_BIN, data }], symlinks: [], mustFail: true };
};

const externalMissing: Mutator = (src, r) => {
  const m = decode(src);
  const { t } = externalise(m, r, r.pick(['fuzz-missing.bin', 'missing/w.bin', '', '.', 'model.onnx/x', 'a\0b']));
  const loc = (t.external_data ?? []).find((e) => e.key === 'location')?.value ?? '';
  if (loc === '' && r.chance(0.5)) setEntry(t, 'location', null);
  return plain(encode(m), src.side, `tensor '${t.name}': external location '${loc}' absent`, true);
};

export const MUTATORS: Record<string, Mutator> = {
  bitflip,
  'byte-set': byteSet,
  truncate,
  splice: chunkSplice,
  varint,
  length: lengthPrefix,
  'wire-type': wireType,
  'field-delete': fieldDelete,
  'tensor-dims': tensorDims,
  'declared-absent': declaredAbsent,
  'data-type': dataType,
  'raw-size': rawSize,
  cycle,
  dangling,
  'produced-twice': producedTwice,
  'shape-decl': shapeDecl,
  attribute: attributes,
  opset: opsetMut,
  'ext-valid': externalValid,
  'ext-escape': externalEscape,
  'ext-overrun': externalOverrun,
  'ext-absurd': externalAbsurd,
  'ext-missing': externalMissing,
};

export const MUTATOR_KINDS = Object.keys(MUTATORS);

/** Case `index` of a run with `seed`: a pure function of its arguments. */
export function makeCase(corpus: readonly CorpusEntry[], seed: number, index: number, env: FuzzEnv, kinds: readonly string[] = MUTATOR_KINDS): FuzzCase {
  const r = makeRng(seed, index);
  const src = r.pick(corpus);
  const kind = r.pick(kinds);
  const mutator = MUTATORS[kind];
  if (!mutator) throw new Error(`unknown mutation kind '${kind}'`);
  let body: Omit<FuzzCase, 'index' | 'kind' | 'source'>;
  try {
    body = mutator(src, r, env);
  } catch (e) {
    // The seed itself could not be decoded/re-encoded for a model-level change: fall back to bytes.
    body = bitflip(src, r, env);
    body.detail = `(${kind} not applicable: ${(e as Error).message.split('\n')[0]}) ${body.detail}`;
  }
  return { index, kind, source: src.name, ...body };
}

/** The unmutated seed as a case (every corpus model must load cleanly or fail cleanly). */
export function seedCase(src: CorpusEntry, index: number): FuzzCase {
  return { index, kind: 'seed', source: src.name, ...plain(src.bytes, src.side, 'unmodified') };
}
