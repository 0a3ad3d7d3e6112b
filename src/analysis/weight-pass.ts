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
import { MessageChannel, receiveMessageOnPort, type MessagePort, type Worker } from 'node:worker_threads';
import { closeSync, openSync } from 'node:fs';
import { ModelError } from '../errors.js';
import type { Format } from '../formats/format.js';
import { summaryRisk, WeightKernel } from '../formats/weight-kernel.js';
import { DataType } from '../onnx/dtype.js';
import type { Graph, Model, Node } from '../onnx/model.js';
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
  /** Ranges still to come. */
  remaining: number;
  seeded: boolean;
  error: ModelError | null;
  /** Its ranges of external data, in order. */
  jobs: Job[];
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

interface Job {
  job: RangeJob;
  item: Item;
  index: number;
}

interface PassWorker {
  w: Worker;
  /** Results arrive here, read synchronously with receiveMessageOnPort. */
  port: MessagePort;
  inFlight: number;
}

/** With jobs in flight, this long without a single result means a worker is gone. */
const STALL_MS = 120_000;

/**
 * A running weight pass. Started before propagation; propagation blocks (`waitFor`, through
 * weights.ts's `setWeightSource`) only on weights not read yet, and asks for them first — so
 * the propagation overlaps the reading. Everything after `start` is synchronous on the main
 * thread: results come back on MessagePorts read with `receiveMessageOnPort`, and the main
 * thread sleeps in `Atomics.wait` on a shared counter the workers bump after each result.
 */
export class WeightPass {
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  private readonly queue: Job[] = [];
  private done = 0;
  private seededCount = 0;

  private constructor(
    private readonly formats: Format[],
    private readonly kernel: WeightKernel,
    private readonly slicer: SliceKernel | null,
    private readonly items: Map<TensorData, Item>,
    private readonly total: number,
    private workers: PassWorker[],
    private readonly onProgress: ((done: number, total: number) => void) | undefined,
  ) {}

  static async start(model: Model, formats: Format[], opts: WeightPassOptions = {}): Promise<WeightPass | null> {
    const kernel = WeightKernel.create(formats);
    if (!kernel) return null;
    const reads = declaredReads(model);
    const rangeBytes = Math.max(1 << 12, Math.floor((opts.rangeBytes ?? 32 << 20) / 4) * 4);
    const items = new Map<TensorData, Item>();
    let total = 0;
    for (const t of firstUseOrder(model)) {
      const kind = KINDS[t.dtype];
      if (items.has(t) || !kind || t.count === 0) continue;
      const layouts = [...(reads.get(t) ?? [])]
        .map((k) => k.split(':').map(Number) as [number, number])
        .filter(([from, to]) => from >= 0 && to <= t.dims.length && from < to)
        .map(([from, to]) => sliceLayout(t.dims, from, to))
        .filter((l) => l.slices <= MAX_SLICES);
      const width = ELEMENT_BYTES[kind];
      const step = Math.floor(rangeBytes / 4) * width; // the same elements per range whatever the type
      const nRanges = Math.ceil((t.count * width) / step);
      items.set(t, { t, kind, step, layouts, ranges: new Array(nRanges), remaining: nRanges, seeded: false, error: null, jobs: [] });
      total += t.count * width;
    }
    const pass = new WeightPass(formats, kernel, SliceKernel.create(), items, total, [], opts.onProgress);
    for (const item of items.values()) {
      if (!item.t.external) continue;
      const { file, offset } = item.t.external;
      const width = ELEMENT_BYTES[item.kind];
      for (let r = 0; r < item.ranges.length; r++) {
        const start = r * item.step;
        const length = Math.min(item.step, item.t.count * width - start);
        const job: Job = { job: { id: 0, kind: item.kind, file, offset: offset + start, length, first: start / width, layouts: item.layouts, distinct: true }, item, index: r };
        item.jobs.push(job);
        pass.queue.push(job);
      }
    }
    pass.queue.forEach((j, i) => (j.job.id = i));
    const externalBytes = pass.queue.reduce((a, j) => a + j.job.length, 0);
    const wanted = opts.threads ?? Math.min(8, availableParallelism());
    const n = externalBytes >= (opts.parallelBytes ?? 64 << 20) ? Math.min(wanted, pass.queue.length) : 0;
    pass.workers = await startWorkers(n, formats, pass.signal);
    pass.jobsById = [...pass.queue];
    for (const w of pass.workers) pass.dispatch(w);
    return pass;
  }

  private jobsById: Job[] = [];

  get threads(): number {
    return this.workers.length;
  }

  private progress(bytes: number): void {
    this.done += bytes;
    this.onProgress?.(this.done, this.total);
  }

  private dispatch(pw: PassWorker): void {
    while (pw.inFlight < IN_FLIGHT && this.queue.length) {
      const j = this.queue.shift()!;
      if (j.item.error) continue;
      pw.inFlight++;
      pw.w.postMessage({ kind: 'jobs', jobs: [j.job] } satisfies ToWorker);
    }
  }

  /** Take every result waiting on the ports; true if there was any. */
  private drain(): boolean {
    let any = false;
    for (const pw of this.workers) {
      for (let m = receiveMessageOnPort(pw.port); m; m = receiveMessageOnPort(pw.port)) {
        any = true;
        const msg = m.message as FromWorker;
        if (msg.kind === 'ready') continue;
        const j = this.jobsById[msg.id]!;
        pw.inFlight--;
        if (msg.kind === 'failed') {
          j.item.error ??= new ModelError(`external data file ${q(j.job.file)} cannot be read (${msg.message})`);
        } else {
          j.item.ranges[j.index] = msg.result;
          j.item.remaining--;
          this.progress(msg.bytes);
          if (j.item.remaining === 0) this.seed(j.item);
        }
        this.dispatch(pw);
      }
    }
    return any;
  }

  /** Wait (sleeping) until `ready()` or an error; throws when the workers stall. */
  private pumpUntil(ready: () => boolean): void {
    let last = Date.now();
    while (!ready()) {
      const seen = Atomics.load(this.signal, 0);
      if (this.drain()) {
        last = Date.now();
        continue;
      }
      if (!this.workers.some((w) => w.inFlight > 0)) throw new Error('weight pass: nothing in flight and the wait is not over');
      Atomics.wait(this.signal, 0, seen, 1000);
      if (Date.now() - last > STALL_MS) throw new ModelError(`reading the weights stalled (no worker answered for ${STALL_MS / 1000} s)`);
    }
  }

  private seed(item: Item): void {
    const { stats, slices } = toTensorStats(item.t, item, this.formats);
    seedTensorStats(item.t, this.formats, stats);
    item.layouts.forEach((l, k) => seedSliceSums(item.t, l.from, l.to, summariseSlices(slices[k]!.S, slices[k]!.A, slices[k]!.Q)));
    item.ranges = [];
    item.seeded = true;
    this.seededCount++;
  }

  /** Reduce an item on this thread (inline data, or external data when there are no workers). */
  private reduceHere(item: Item): void {
    if (!item.t.external) reduceInline(this.kernel, this.slicer, item, (n) => this.progress(n));
    else {
      reduceOnMainThread(this.kernel, this.slicer, item.jobs, (n) => this.progress(n));
      this.queue.splice(0, this.queue.length, ...this.queue.filter((j) => j.item !== item));
    }
    this.seed(item);
  }

  /** Block until `t` is read and its statistics seeded (no-op for tensors the pass does not cover). */
  waitFor(t: TensorData): void {
    const item = this.items.get(t);
    if (!item || item.seeded) return;
    if (item.error) throw item.error;
    if (!item.t.external || this.workers.length === 0) {
      try {
        this.reduceHere(item);
      } catch (e) {
        item.error = e instanceof ModelError ? e : new ModelError(String((e as Error).message ?? e));
        throw item.error;
      }
      return;
    }
    // Its ranges not yet handed out go first.
    const mine = this.queue.filter((j) => j.item === item);
    if (mine.length) {
      const rest = this.queue.filter((j) => j.item !== item);
      this.queue.splice(0, this.queue.length, ...mine, ...rest);
      for (const w of this.workers) this.dispatch(w);
    }
    this.pumpUntil(() => item.seeded || item.error !== null);
    if (item.error) throw item.error;
  }

  /** Read everything not read yet; throws the first read error (in first-use order). */
  finish(): WeightPassResult {
    for (const item of this.items.values()) {
      if (item.seeded || item.error || (item.t.external && this.workers.length > 0)) continue;
      try {
        this.reduceHere(item);
      } catch (e) {
        item.error = e instanceof ModelError ? e : new ModelError(String((e as Error).message ?? e));
      }
    }
    if (this.workers.length) this.pumpUntil(() => [...this.items.values()].every((i) => i.seeded || (i.error && !this.workers.some((w) => w.inFlight > 0))));
    for (const item of this.items.values()) if (item.error) throw item.error;
    return { tensors: this.items.size, bytes: this.total, threads: this.workers.length };
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    await Promise.all(
      ws.map(async (pw) => {
        pw.port.close();
        await pw.w.terminate();
      }),
    );
  }
}

/** Float initializers in the order the graph first uses them (then any unused ones). */
function firstUseOrder(model: Model): TensorData[] {
  const out: TensorData[] = [];
  const visit = (g: Graph): void => {
    let order: Node[];
    try {
      order = g.topologicalOrder();
    } catch {
      order = g.nodes;
    }
    for (const node of order) {
      for (const name of node.inputs) {
        const t = name ? g.initializers.get(name) : undefined;
        if (t) out.push(t);
      }
      for (const s of node.subgraphs) visit(s.graph);
    }
    out.push(...g.initializers.values());
  };
  visit(model.graph);
  return out;
}

/** Read every weight once and seed weights.ts's caches (see the file comment). */
export async function readWeights(model: Model, formats: Format[], opts: WeightPassOptions = {}): Promise<WeightPassResult> {
  const pass = await WeightPass.start(model, formats, opts);
  if (!pass) return { tensors: 0, bytes: 0, threads: 0 };
  try {
    return pass.finish();
  } finally {
    await pass.close();
  }
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

function reduceOnMainThread(kernel: WeightKernel, slicer: SliceKernel | null, jobs: Job[], progress: (n: number) => void): void {
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

/** Start n workers, each with a result port and the shared signal; wait until each is ready. */
async function startWorkers(n: number, formats: Format[], signal: Int32Array): Promise<PassWorker[]> {
  const started = await Promise.all(
    Array.from({ length: n }, async (): Promise<PassWorker | null> => {
      const w = startModuleWorker(import.meta.url, './weight-worker', { formats });
      if (!w) return null;
      const { port1, port2 } = new MessageChannel();
      let onMessage!: (m: FromWorker) => void;
      let onFail!: () => void;
      const ok = await new Promise<boolean>((resolve) => {
        onMessage = (m) => resolve(m.kind === 'ready');
        onFail = () => resolve(false);
        port1.on('message', onMessage);
        w.on('error', onFail).on('exit', onFail);
        w.postMessage({ kind: 'port', port: port2, signal } satisfies ToWorker, [port2]);
      });
      port1.off('message', onMessage);
      w.off('error', onFail).off('exit', onFail);
      // A worker that dies later is found by the stall check; keep its 'error' from being fatal.
      w.on('error', () => {});
      if (!ok) {
        port1.close();
        await w.terminate();
        return null;
      }
      return { w, port: port1, inFlight: 0 };
    }),
  );
  return started.filter((w): w is PassWorker => w !== null);
}
