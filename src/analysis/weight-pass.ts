/**
 * The weight pass: every float32, float16 and bfloat16 initializer read once, before propagation, in parallel, with
 * bounded memory — its exact moments, per-format risk, distinct values and the fan-in sums the
 * rules declared (`OpRule.reads`) — and handed to weights.ts's caches, so that propagation itself
 * reads no weight again. This is what keeps `analyze` on a multi-gigabyte model close to the
 * speed of reading its files (bench/load-stats.ts).
 *
 * External data is cut into ranges of `rangeBytes`; worker threads read each range straight from
 * the file into the kernel's buffer and reduce it there. Inline tensors are reduced on the main
 * thread meanwhile. Ranges are fixed by size alone and merged in order, so the result is the same
 * with any number of threads. Memory: one kernel buffer per thread plus the fan-in sums.
 *
 * Anything the pass does not cover (other element types, no WebAssembly SIMD) is left to the
 * lazy, single-threaded path of weights.ts, which gives the same statistics.
 */
import { availableParallelism } from 'node:os';
import { closeSync, openSync } from 'node:fs';
import { ModelError } from '../errors.js';
import type { Format } from '../formats/format.js';
import { summaryRisk, WeightKernel } from '../formats/weight-kernel.js';
import { DataType } from '../onnx/dtype.js';
import type { Graph, Model } from '../onnx/model.js';
import { q } from '../onnx/quote.js';
import type { TensorData } from '../onnx/tensor.js';
import { startModuleWorker } from '../workers/module-worker.js';
import { registry } from './registry.js';
import { SliceKernel } from './slice-kernel.js';
import { ELEMENT_BYTES, mergeRanges, rawOffset, RangeReducer, sliceLayout, widen, type ElementKind, type RangeResult, type SliceLayout } from './weight-range.js';
import { reduceRange, type FromWorker, type RangeJob, type ToWorker } from './weight-worker.js';
import { seedSliceSums, seedTensorStats, summariseSlices, type TensorStats } from './weights.js';

export interface WeightPassOptions {
  /** Worker threads for external data (default: available cores, at most 8; 0: main thread only). */
  threads?: number;
  /** Largest range one job reduces (default 32 MiB). */
  rangeBytes?: number;
  /** External bytes below which no worker is started (default 64 MiB: a worker costs ~30 ms). */
  parallelBytes?: number;
  /** Called as bytes are reduced: (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface WeightPassResult {
  /** Tensors read by the pass (the rest, if any, are read lazily). */
  tensors: number;
  bytes: number;
  threads: number;
}

/** Largest slice count kept per fan-in reduction (beyond it the rule reads lazily). */
const MAX_SLICES = 1 << 22;
/** Jobs in flight per worker: one running, one waiting, so no worker idles on the main thread. */
const IN_FLIGHT = 2;

/** ONNX element types the pass reads (others are left to the lazy path). */
const KINDS: Record<number, ElementKind> = { [DataType.FLOAT]: 'f32', [DataType.FLOAT16]: 'f16', [DataType.BFLOAT16]: 'bf16' };

interface Item {
  t: TensorData;
  kind: ElementKind;
  /** Bytes per range. */
  step: number;
  layouts: SliceLayout[];
  ranges: RangeResult[];
}

/** The fan-in reductions the rules will ask of each stored tensor (OpRule.reads). */
function declaredReads(model: Model): Map<TensorData, Set<string>> {
  const out = new Map<TensorData, Set<string>>();
  const visit = (g: Graph): void => {
    for (const node of g.nodes) {
      const rule = registry.get(`${node.domain}:${node.opType}`) ?? registry.get(node.opType);
      if (rule?.reads) {
        const stored = (i: number): number[] | null => {
          const name = node.inputs[i];
          return name ? (g.constant(name)?.dims ?? null) : null;
        };
        for (const r of rule.reads(node, node.attrs, stored)) {
          const t = g.constant(node.inputs[r.input]!);
          if (!t) continue;
          let set = out.get(t);
          if (!set) out.set(t, (set = new Set()));
          set.add(`${r.from}:${r.to}`);
        }
      }
      for (const s of node.subgraphs) visit(s.graph);
    }
  };
  visit(model.graph);
  return out;
}

function toTensorStats(t: TensorData, item: Item, formats: Format[]): { stats: TensorStats; slices: ReturnType<typeof mergeRanges>['slices'] } {
  const m = mergeRanges(item.ranges, item.layouts);
  const s = m.summary;
  const n = s.count - s.nonFinite;
  return {
    stats: {
      count: t.count,
      finite: n,
      nonFinite: s.nonFinite,
      mean: n > 0 ? s.sum / n : 0,
      meanSquare: n > 0 ? s.sumSq / n : 0,
      absmax: n > 0 ? s.absmax : 0,
      min: n > 0 ? s.min : 0,
      max: n > 0 ? s.max : 0,
      fracZero: n > 0 ? s.zeros / n : 0,
      distinct: n > 0 ? m.distinct : null,
      risk: summaryRisk(s, formats),
    },
    slices: m.slices,
  };
}

/** Read every float32 initializer once and seed weights.ts's caches (see the file comment). */
export async function readWeights(model: Model, formats: Format[], opts: WeightPassOptions = {}): Promise<WeightPassResult> {
  const kernel = WeightKernel.create(formats);
  if (!kernel) return { tensors: 0, bytes: 0, threads: 0 };
  const slicer = SliceKernel.create();
  const reads = declaredReads(model);
  const rangeBytes = Math.max(1 << 12, Math.floor((opts.rangeBytes ?? 32 << 20) / 4) * 4);

  const items: Item[] = [];
  const seen = new Set<TensorData>();
  const jobs: { job: RangeJob; item: Item; index: number }[] = [];
  const local: Item[] = [];
  let total = 0;
  for (const g of model.graph.allGraphs()) {
    for (const t of g.initializers.values()) {
      const kind = KINDS[t.dtype];
      if (seen.has(t) || !kind || t.count === 0) continue;
      seen.add(t);
      const layouts = [...(reads.get(t) ?? [])]
        .map((k) => k.split(':').map(Number) as [number, number])
        .filter(([from, to]) => from >= 0 && to <= t.dims.length && from < to)
        .map(([from, to]) => sliceLayout(t.dims, from, to))
        .filter((l) => l.slices <= MAX_SLICES);
      const width = ELEMENT_BYTES[kind];
      const step = Math.floor(rangeBytes / 4) * width; // the same elements per range whatever the type
      const nRanges = Math.ceil((t.count * width) / step);
      const item: Item = { t, kind, step, layouts, ranges: new Array(nRanges) };
      items.push(item);
      total += t.count * width;
      if (!t.external) {
        local.push(item);
        continue;
      }
      const { file, offset } = t.external;
      for (let r = 0; r < nRanges; r++) {
        const start = r * step;
        const length = Math.min(step, t.count * width - start);
        jobs.push({ job: { id: jobs.length, kind, file, offset: offset + start, length, first: start / width, layouts, distinct: true }, item, index: r });
      }
    }
  }

  let done = 0;
  const progress = (bytes: number): void => {
    done += bytes;
    opts.onProgress?.(done, total);
  };
  const externalBytes = jobs.reduce((a, j) => a + j.job.length, 0);
  const wanted = opts.threads ?? Math.min(8, availableParallelism());
  const nWorkers = externalBytes >= (opts.parallelBytes ?? 64 << 20) ? Math.min(wanted, jobs.length) : 0;
  const workers = await startWorkers(nWorkers, formats);

  // Workers take the external ranges; the main thread reduces inline tensors meanwhile.
  const remote = workers.length > 0 ? runOnWorkers(workers, jobs, progress) : null;
  for (const item of local) reduceInline(kernel, slicer, item, progress);
  if (remote) await remote;
  else reduceOnMainThread(kernel, slicer, jobs, progress);

  for (const item of items) {
    const { stats, slices } = toTensorStats(item.t, item, formats);
    seedTensorStats(item.t, formats, stats);
    item.layouts.forEach((l, k) => seedSliceSums(item.t, l.from, l.to, summariseSlices(slices[k]!.S, slices[k]!.A, slices[k]!.Q)));
    item.ranges = [];
  }
  return { tensors: items.length, bytes: total, threads: workers.length };
}

function reduceInline(kernel: WeightKernel, slicer: SliceKernel | null, item: Item, progress: (n: number) => void): void {
  const raw = item.t.rawBytes();
  const width = ELEMENT_BYTES[item.kind];
  const bytes = kernel.inputBytes;
  const view = new Float32Array(bytes.buffer, bytes.byteOffset, kernel.capacity);
  for (let r = 0; r < item.ranges.length; r++) {
    const start = r * item.step;
    const end = Math.min(raw.length, start + item.step);
    const reducer = new RangeReducer(kernel, slicer, item.layouts, start / width, (end - start) / width, true);
    for (let b = start; b < end; b += kernel.capacity * width) {
      const e = Math.min(end, b + kernel.capacity * width);
      const n = (e - b) / width;
      bytes.set(raw.subarray(b, e), rawOffset(item.kind, n));
      widen(bytes, item.kind, n);
      reducer.run(view, n);
    }
    item.ranges[r] = reducer.result();
    progress(end - start);
  }
}

function reduceOnMainThread(kernel: WeightKernel, slicer: SliceKernel | null, jobs: { job: RangeJob; item: Item; index: number }[], progress: (n: number) => void): void {
  const fds = new Map<string, number>();
  try {
    for (const { job, item, index } of jobs) {
      let fd = fds.get(job.file);
      if (fd === undefined) {
        try {
          fds.set(job.file, (fd = openSync(job.file, 'r')));
        } catch (e) {
          throw new ModelError(`external data file ${q(job.file)} cannot be read (${(e as { code?: string }).code ?? (e as Error).message})`);
        }
      }
      try {
        item.ranges[index] = reduceRange(kernel, slicer, job, fd);
      } catch (e) {
        throw new ModelError(`external data file ${q(job.file)} cannot be read (${(e as Error).message})`);
      }
      progress(job.length);
    }
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

type PassWorker = NonNullable<ReturnType<typeof startModuleWorker>>;

/** Start n workers and wait until each has its kernel (a worker that fails is left out). */
async function startWorkers(n: number, formats: Format[]): Promise<PassWorker[]> {
  const started = await Promise.all(
    Array.from({ length: n }, async () => {
      const w = startModuleWorker(import.meta.url, './weight-worker', { formats });
      if (!w) return null;
      let onMessage!: (m: FromWorker) => void;
      let onFail!: () => void;
      const ok = await new Promise<boolean>((resolve) => {
        onMessage = (m) => resolve(m.kind === 'ready');
        onFail = () => resolve(false);
        w.on('message', onMessage).on('error', onFail).on('exit', onFail);
      });
      w.off('message', onMessage).off('error', onFail).off('exit', onFail);
      if (!ok) {
        await w.terminate();
        return null;
      }
      return w;
    }),
  );
  return started.filter((w): w is PassWorker => w !== null);
}

/** Feed the jobs to the workers, IN_FLIGHT at a time each, and collect results into their items. */
async function runOnWorkers(workers: PassWorker[], jobs: { job: RangeJob; item: Item; index: number }[], progress: (n: number) => void): Promise<void> {
  let next = 0;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let pending = 0;
            const feed = (): void => {
              const batch: RangeJob[] = [];
              while (pending + batch.length < IN_FLIGHT && next < jobs.length) batch.push(jobs[next++]!.job);
              pending += batch.length;
              if (batch.length) w.postMessage({ kind: 'jobs', jobs: batch } satisfies ToWorker);
              if (pending === 0) resolve();
            };
            w.on('message', (m: FromWorker) => {
              if (m.kind === 'failed') {
                const j = jobs[m.id]!.job;
                reject(new ModelError(`external data file ${q(j.file)} cannot be read (${m.message})`));
                return;
              }
              if (m.kind !== 'result') return;
              const j = jobs[m.id]!;
              j.item.ranges[j.index] = m.result;
              pending--;
              progress(m.bytes);
              feed();
            });
            w.on('error', reject);
            w.on('exit', (code) => reject(new Error(`weight worker exited (code ${code})`)));
            feed();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
