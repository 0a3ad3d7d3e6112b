/**
 * Exact statistics of every initializer (count, mean, RMS, absmax, non-finite count), read
 * in bounded chunks so that memory stays small whatever the model's size.
 *
 * Fast path: float32 / float16 / bfloat16 tensors in external data are cut into ranges of at
 * most `rangeBytes` and handed to a pool of worker threads, each reading its ranges straight
 * from the file into one reused buffer and reducing them in place (no float64 copy). Partial
 * sums are merged per tensor in range order, so the result does not depend on the number of
 * threads or on scheduling. Everything else (inline data, other types) goes through
 * `TensorData.chunks()` on the calling thread.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { ModelError } from '../errors.js';
import { I32, ModuleBuilder, V128 } from '../wasm/assembler.js';
import { DataType } from './dtype.js';
import { q } from './quote.js';
import type { Model } from './model.js';
import type { TensorData } from './tensor.js';

export interface WeightStats {
  name: string;
  dtype: string;
  count: number;
  /** Mean, RMS and absmax of the finite values (NaN when there are none). */
  mean: number;
  rms: number;
  absmax: number;
  /** NaN and ±inf values. */
  nonFinite: number;
}

export interface WeightStatsOptions {
  /** Worker threads for external float data (default: available cores, at most 8; 0 = none). */
  threads?: number;
  /** Largest byte range one job reads (default 32 MiB). */
  rangeBytes?: number;
  /** Read buffer per thread (default 1 MiB: still in the core's cache when it is reduced). */
  chunkBytes?: number;
  /** Use the WebAssembly SIMD kernel for float32 where available (default true). */
  simd?: boolean;
}

interface Partial {
  count: number;
  sum: number;
  sumsq: number;
  absmax: number;
  nonFinite: number;
}

const empty = (): Partial => ({ count: 0, sum: 0, sumsq: 0, absmax: 0, nonFinite: 0 });

function merge(a: Partial, b: Partial): void {
  a.count += b.count;
  a.sum += b.sum;
  a.sumsq += b.sumsq;
  if (b.absmax > a.absmax) a.absmax = b.absmax;
  a.nonFinite += b.nonFinite;
}

function finish(t: TensorData, p: Partial): WeightStats {
  const finite = p.count - p.nonFinite;
  return {
    name: t.name,
    dtype: t.dtypeName,
    count: p.count,
    mean: finite > 0 ? p.sum / finite : NaN,
    rms: finite > 0 ? Math.sqrt(p.sumsq / finite) : NaN,
    absmax: finite > 0 ? p.absmax : NaN,
    nonFinite: p.nonFinite,
  };
}

/** Reduce float64 chunks (the generic path): the same two-speed scheme as the worker's. */
function reduceChunks(t: TensorData, chunkBytes: number): Partial {
  const p = empty();
  for (const c of t.chunks(chunkBytes)) {
    const n = c.length;
    let s0 = 0;
    let s1 = 0;
    let q0 = 0;
    let q1 = 0;
    let hi = -Infinity;
    let lo = Infinity;
    let i = 0;
    for (; i + 1 < n; i += 2) {
      const a = c[i]!;
      const b = c[i + 1]!;
      s0 += a;
      s1 += b;
      q0 += a * a;
      q1 += b * b;
      hi = Math.max(hi, a, b);
      lo = Math.min(lo, a, b);
    }
    if (i < n) {
      const a = c[i]!;
      s0 += a;
      q0 += a * a;
      hi = Math.max(hi, a);
      lo = Math.min(lo, a);
    }
    p.count += n;
    const s = s0 + s1;
    const q = q0 + q1;
    if (Number.isFinite(s) && Number.isFinite(q) && Number.isFinite(hi) && Number.isFinite(lo)) {
      p.sum += s;
      p.sumsq += q;
      p.absmax = Math.max(p.absmax, hi, -lo);
      continue;
    }
    for (let k = 0; k < n; k++) {
      // NaN or ±inf in this chunk: count them out value by value
      const v = c[k]!;
      const a = Math.abs(v);
      if (a <= Number.MAX_VALUE) {
        p.sum += v;
        p.sumsq += v * v;
        p.absmax = Math.max(p.absmax, a);
      } else p.nonFinite++;
    }
  }
  return p;
}

/** Statistics of one tensor on the calling thread (any type, inline or external). */
export function tensorStats(t: TensorData, chunkBytes = 1 << 22): WeightStats {
  return finish(t, reduceChunks(t, chunkBytes));
}

// The worker is plain CommonJS run with `eval` (and no inherited flags such as --input-type),
// so it needs no TypeScript loader (tsx, vitest) and no build step.
// Kinds: 1 = float32, 2 = float16, 3 = bfloat16.
const WORKER_SOURCE = String.raw`
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
// With the SIMD kernel, chunks are read straight into its memory at DATA (the first bytes
// hold its results); without it, into a plain buffer.
const DATA = 128;
let kernel = null, mem = null;
if (workerData.wasm && WebAssembly.validate(workerData.wasm)) {
  mem = new WebAssembly.Memory({ initial: Math.ceil((workerData.chunkBytes + DATA) / 65536) });
  kernel = new WebAssembly.Instance(new WebAssembly.Module(workerData.wasm), { e: { m: mem } }).exports.s;
}
const buf = mem ? Buffer.from(mem.buffer, DATA, workerData.chunkBytes) : Buffer.allocUnsafeSlow(workerData.chunkBytes);
const f32 = new Float32Array(buf.buffer, buf.byteOffset, buf.length >> 2);
const u16 = new Uint16Array(buf.buffer, buf.byteOffset, buf.length >> 1);
const sums = mem && new Float64Array(mem.buffer, 0, 8);
const ext = mem && new Float32Array(mem.buffer, 64, 8);
function reduceF32Simd(n) {
  const whole = n - (n % 16);
  kernel(DATA, whole);
  let s = sums[0] + sums[1] + sums[2] + sums[3], q = sums[4] + sums[5] + sums[6] + sums[7];
  let hi = Math.max(ext[0], ext[1], ext[2], ext[3]), lo = Math.min(ext[4], ext[5], ext[6], ext[7]);
  for (let i = whole; i < n; i++) { const a = f32[i]; s += a; q += a * a; hi = Math.max(hi, a); lo = Math.min(lo, a); }
  settle(n, s, q, hi, lo, getF32);
}
let half = null, bf = null;
function halfTable() {
  if (half) return half;
  half = new Float32Array(65536);
  for (let c = 0; c < 65536; c++) {
    const s = c & 0x8000 ? -1 : 1, e = (c >> 10) & 31, m = c & 1023;
    half[c] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return half;
}
function bfTable() {
  if (bf) return bf;
  bf = new Float32Array(65536);
  const u = new Uint32Array(bf.buffer);
  for (let c = 0; c < 65536; c++) u[c] = c << 16;
  return bf;
}
// Small hot functions, optimised once and reused for every chunk. The fast loop keeps four
// independent sums (no single add-latency chain) and tracks max and min with Math.max/min
// (branch-free; a branch on the sign of the data mispredicts half the time). NaN or ±inf make
// its results non-finite; then the chunk is counted again by the careful loop.
const acc = { s: 0, q: 0, m: 0, nf: 0 };
function careful(n, get) {
  let s = 0, q = 0, m = acc.m, nf = 0;
  for (let i = 0; i < n; i++) {
    const v = get(i);
    const a = Math.abs(v);
    if (a <= 3.4028234663852886e38) { s += v; q += v * v; m = Math.max(m, a); } else nf++;
  }
  acc.s += s; acc.q += q; acc.m = m; acc.nf += nf;
}
function settle(n, s, q, hi, lo, get) {
  if (Number.isFinite(s) && Number.isFinite(q) && Number.isFinite(hi) && Number.isFinite(lo)) {
    acc.s += s; acc.q += q; acc.m = Math.max(acc.m, hi, -lo);
  } else if (n > 0) careful(n, get);
}
const getF32 = (i) => f32[i];
function reduceF32(n) {
  const f = f32;
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, q0 = 0, q1 = 0, q2 = 0, q3 = 0, hi = -Infinity, lo = Infinity;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    const a = f[i], b = f[i + 1], c = f[i + 2], d = f[i + 3];
    s0 += a; s1 += b; s2 += c; s3 += d;
    q0 += a * a; q1 += b * b; q2 += c * c; q3 += d * d;
    hi = Math.max(hi, a, b, c, d); lo = Math.min(lo, a, b, c, d);
  }
  for (; i < n; i++) { const a = f[i]; s0 += a; q0 += a * a; hi = Math.max(hi, a); lo = Math.min(lo, a); }
  settle(n, (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3), hi, lo, getF32);
}
function reduceTable(n, table) {
  const u = u16;
  let s0 = 0, s1 = 0, q0 = 0, q1 = 0, hi = -Infinity, lo = Infinity;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const a = table[u[i]], b = table[u[i + 1]];
    s0 += a; s1 += b; q0 += a * a; q1 += b * b;
    hi = Math.max(hi, a, b); lo = Math.min(lo, a, b);
  }
  for (; i < n; i++) { const a = table[u[i]]; s0 += a; q0 += a * a; hi = Math.max(hi, a); lo = Math.min(lo, a); }
  settle(n, s0 + s1, q0 + q1, hi, lo, (k) => table[u[k]]);
}
const fds = new Map();
function fdOf(file) {
  let fd = fds.get(file);
  if (fd === undefined) { fd = fs.openSync(file, 'r'); fds.set(file, fd); }
  return fd;
}
parentPort.on('message', (job) => {
  if (job === null) { for (const fd of fds.values()) fs.closeSync(fd); parentPort.close(); return; }
  try {
    const fd = fdOf(job.file);
    const width = job.kind === 1 ? 4 : 2;
    const table = job.kind === 2 ? halfTable() : job.kind === 3 ? bfTable() : null;
    acc.s = 0; acc.q = 0; acc.m = 0; acc.nf = 0;
    let count = 0;
    let pos = job.offset;
    const end = job.offset + job.length;
    while (pos < end) {
      const want = Math.min(buf.length, end - pos);
      let got = 0;
      while (got < want) {
        const n = fs.readSync(fd, buf, got, want - got, pos + got);
        if (n === 0) throw new Error('ended early');
        got += n;
      }
      const n = got / width;
      if (job.kind === 1) (kernel ? reduceF32Simd : reduceF32)(n); else reduceTable(n, table);
      count += n;
      pos += got;
    }
    parentPort.postMessage({ id: job.id, count, sum: acc.s, sumsq: acc.q, absmax: acc.m, nonFinite: acc.nf });
  } catch (e) {
    parentPort.postMessage({ id: job.id, error: (e && e.code) || String(e && e.message || e).split('\n')[0] });
  }
});
`;

interface Job {
  id: number;
  tensor: number;
  file: string;
  offset: number;
  length: number;
  kind: number;
}

function kindOf(dtype: number): number {
  if (dtype === DataType.FLOAT) return 1;
  if (dtype === DataType.FLOAT16) return 2;
  if (dtype === DataType.BFLOAT16) return 3;
  return 0;
}

// --- the SIMD kernel -------------------------------------------------------------------------
// A WebAssembly function s(p, n), built with src/wasm/assembler.ts on this thread and handed to
// the workers as bytes: over n float32 at byte address p (n a multiple of 16), the lane sums and
// sums of squares in float64 (f64x2.promote_low_f32x4 of each half) and the lane max / min;
// stored at address 0 as s0 s1 q0 q1 (f64x2 each) and hi lo (f32x4), in the memory imported as
// e.m. Four vectors a step with their own accumulators, so no add waits on the previous one.
// ~3× the plain JavaScript loop; NaN and ±inf propagate into the results, which sends the
// chunk to the careful loop.

let kernelBytes: Uint8Array | null | undefined;

/** The kernel's module bytes, or null where WebAssembly SIMD is not available. */
export function simdKernel(): Uint8Array | null {
  if (kernelBytes !== undefined) return kernelBytes;
  const U = 4;
  const HIGH_HALF = [8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
  const m = new ModuleBuilder();
  m.importMemory('e', 'm', 1);
  m.func('s', [I32, I32], [], (c) => {
    // params 0 p, 1 n; then end, and per unrolled step u nine v128: v a b s0 s1 q0 q1 hi lo
    const end = c.local(I32);
    const L = Array.from({ length: U }, () => ({
      v: c.local(V128),
      a: c.local(V128),
      b: c.local(V128),
      s0: c.local(V128),
      s1: c.local(V128),
      q0: c.local(V128),
      q1: c.local(V128),
      hi: c.local(V128),
      lo: c.local(V128),
    }));
    c.localGet(0).localGet(1).i32Const(2).op('i32.shl').op('i32.add').localSet(end); // end = p + 4n
    for (const l of L) {
      c.f32Const(-Infinity).op('f32x4.splat').localSet(l.hi);
      c.f32Const(Infinity).op('f32x4.splat').localSet(l.lo);
    }
    c.block().loop().localGet(0).localGet(end).op('i32.ge_u').brIf(1); // br_if p >= end
    L.forEach((l, u) => c.localGet(0).mem('v128.load', 16 * u).localSet(l.v));
    for (const { v, a, b, s0, s1, q0, q1, hi, lo } of L) {
      c.localGet(v).op('f64x2.promote_low_f32x4').localSet(a);
      c.localGet(v).localGet(v).i8x16Shuffle(HIGH_HALF).op('f64x2.promote_low_f32x4').localSet(b);
      c.localGet(s0).localGet(a).op('f64x2.add').localSet(s0);
      c.localGet(s1).localGet(b).op('f64x2.add').localSet(s1);
      c.localGet(q0).localGet(a).localGet(a).op('f64x2.mul').op('f64x2.add').localSet(q0);
      c.localGet(q1).localGet(b).localGet(b).op('f64x2.mul').op('f64x2.add').localSet(q1);
      c.localGet(hi).localGet(v).op('f32x4.max').localSet(hi);
      c.localGet(lo).localGet(v).op('f32x4.min').localSet(lo);
    }
    c.localGet(0).i32Const(16 * U).op('i32.add').localSet(0).br(0).end().end(); // p += 64; br loop
    const results = ['s0', 's1', 'q0', 'q1', 'hi', 'lo'] as const;
    for (const l of L.slice(1)) {
      for (const r of results) c.localGet(L[0]![r]).localGet(l[r]).op(r === 'hi' ? 'f32x4.max' : r === 'lo' ? 'f32x4.min' : 'f64x2.add').localSet(L[0]![r]);
    }
    results.forEach((r, i) => c.i32Const(0).localGet(L[0]![r]).mem('v128.store', 16 * i));
  });
  const bytes = m.bytes();
  const wasm = (globalThis as { WebAssembly?: { validate(b: Uint8Array): boolean } }).WebAssembly;
  kernelBytes = wasm?.validate(bytes) ? bytes : null;
  return kernelBytes;
}

/** Run jobs on a pool of threads; resolves with each job's partial, indexed by job id. */
async function runPool(jobs: Job[], threads: number, chunkBytes: number, simd: boolean): Promise<Partial[]> {
  const results: Partial[] = new Array(jobs.length);
  if (jobs.length === 0) return results;
  let next = 0;
  const workers = Array.from({ length: Math.min(threads, jobs.length) }, () => new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { chunkBytes, wasm: simd ? simdKernel() : null } }));
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            const feed = () => {
              if (next < jobs.length) w.postMessage(jobs[next++]);
              else {
                w.postMessage(null);
                resolve();
              }
            };
            w.on('message', (r: Partial & { id: number; error?: string }) => {
              if (r.error !== undefined) {
                const j = jobs[r.id]!;
                reject(new ModelError(`external data file ${q(j.file)} cannot read (${r.error})`));
                return;
              }
              results[r.id] = r;
              feed();
            });
            w.on('error', reject);
            feed();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}

/** Statistics of the given tensors (default: every initializer of every graph of `model`). */
export async function weightStats(model: Model, opts: WeightStatsOptions = {}, tensors?: TensorData[]): Promise<WeightStats[]> {
  const list = tensors ?? [...model.graph.allGraphs()].flatMap((g) => [...g.initializers.values()]);
  const threads = opts.threads ?? Math.min(8, availableParallelism());
  const rangeBytes = Math.max(1 << 16, opts.rangeBytes ?? 32 << 20);
  const chunkBytes = Math.max(1 << 12, Math.min(opts.chunkBytes ?? 1 << 20, rangeBytes)) & ~63;
  const partials: Partial[] = list.map(empty);
  const jobs: Job[] = [];
  const local: number[] = [];
  list.forEach((t, i) => {
    const kind = threads > 0 && t.external ? kindOf(t.dtype) : 0;
    if (!kind) return local.push(i);
    const { file, offset, length } = t.external!;
    const step = Math.floor(rangeBytes / 4) * 4;
    for (let o = 0; o < length; o += step) jobs.push({ id: jobs.length, tensor: i, file, offset: offset + o, length: Math.min(step, length - o), kind });
  });
  // Inline and other tensors first, on this thread (it must be free to feed the pool after).
  for (const i of local) {
    const t = list[i]!;
    if (t.dtype !== DataType.STRING) partials[i] = reduceChunks(t, chunkBytes);
  }
  const results = await runPool(jobs, threads, chunkBytes, opts.simd ?? true);
  for (const j of jobs) merge(partials[j.tensor]!, results[j.id]!);
  return list.map((t, i) => finish(t, partials[i]!));
}

export function describeStats(s: WeightStats): string {
  return `${s.name} ${s.dtype}[${s.count}] mean ${s.mean.toPrecision(4)} rms ${s.rms.toPrecision(4)} absmax ${s.absmax.toPrecision(4)}${s.nonFinite ? ` (${s.nonFinite} non-finite)` : ''}`;
}
