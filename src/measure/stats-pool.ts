/**
 * Statistics of captured tensors on two threads: the main thread and one worker (when the
 * machine has a second core and the work is worth a worker's start-up). Each tensor is assigned,
 * at its first chunk, to whichever side has been given fewer bytes so far, and stays there for
 * all its runs; its `TensorStats` sees its chunks in order on that side, so its result is the one
 * a single thread would give. Chunks bound for the worker are transferred (or copied when their
 * buffer cannot be detached). A worker that cannot start leaves all the work on the main thread.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ExitCode, UnitscaleError } from '../errors.js';
import type { Format } from '../formats/index.js';
import { TensorStats, type MeasuredStats } from './stats.js';
import type { FromWorker, ToWorker } from './stats-worker.js';

export type OnStats = (name: string, stats: MeasuredStats) => void;

/**
 * How the worker module is loaded. Built code (.js) is imported as is; from TypeScript sources
 * (tsx, vitest) the worker registers tsx's loader first, found next to this package.
 */
function workerModule(): { url: string; tsx: string | null } | null {
  const self = import.meta.url;
  if (!self.startsWith('file:')) return null;
  const ts = self.endsWith('.ts');
  const url = new URL(`./stats-worker.${ts ? 'ts' : 'js'}`, self).href;
  if (!existsSync(fileURLToPath(url))) return null;
  if (!ts) return { url, tsx: null };
  try {
    const api = createRequire(self).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs');
    return existsSync(api) ? { url, tsx: pathToFileURL(api).href } : null;
  } catch {
    return null;
  }
}

const BOOT = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.tsx) (await import(workerData.tsx)).register();
  await import(workerData.url);
})().catch((e) => setImmediate(() => { throw e; }));
`;

export class StatsPool {
  private worker: Worker | null = null;
  private ready = false;
  private failure: Error | null = null;
  private mainBytes = 0;
  private workerBytes = 0;
  private nextId = 0;
  /** Tensors on the main thread, and tensors in the worker (by id), by name. */
  private readonly local = new Map<string, TensorStats>();
  private readonly remote = new Map<string, number>();
  private readonly awaiting = new Map<number, string>();
  private drained: (() => void) | null = null;
  private failed: ((e: Error) => void) | null = null;

  /** `useWorker`: start a worker if the machine has a second core (it is used once ready). */
  constructor(
    private readonly formats: Format[],
    private readonly onStats: OnStats,
    useWorker: boolean,
  ) {
    if (useWorker && availableParallelism() > 1) this.startWorker();
  }

  private startWorker(): void {
    const mod = workerModule();
    if (!mod) return;
    try {
      const w = new Worker(BOOT, { eval: true, workerData: mod });
      this.worker = w;
      w.on('message', (m: FromWorker) => this.onMessage(m));
      w.on('error', (e) => this.onFailure(e));
      w.on('exit', (code) => this.onFailure(new Error(`statistics worker exited (code ${code})`)));
      w.postMessage({ kind: 'init', formats: this.formats });
    } catch {
      this.worker = null;
    }
  }

  private onMessage(m: FromWorker): void {
    if (m.kind === 'ready') {
      this.ready = true;
      return;
    }
    const name = this.awaiting.get(m.id);
    if (name === undefined) return;
    this.awaiting.delete(m.id);
    if (m.kind === 'failed') return this.onFailure(new Error(m.message));
    this.onStats(name, m.stats);
    if (this.awaiting.size === 0) this.drained?.();
  }

  private onFailure(e: Error): void {
    if (!this.worker) return;
    this.worker = null;
    this.ready = false;
    // Work already handed over is lost with the worker: fail loudly (never a silent gap).
    if (this.awaiting.size > 0 || this.remote.size > 0) {
      this.failure = new UnitscaleError(`statistics worker failed: ${e.message}`, ExitCode.RUNTIME);
      this.failed?.(this.failure);
    }
  }

  /**
   * Add a chunk of tensor `name` (`exactLimit` applies when its accumulator is created). The
   * chunk is kept by reference until the tensor is finished: the caller must not modify it.
   */
  add(name: string, data: Float32Array | Float64Array, exactLimit: number): void {
    if (this.failure) throw this.failure;
    const st = this.local.get(name);
    if (st) {
      st.add(data);
      this.mainBytes += data.byteLength;
      return;
    }
    let id = this.remote.get(name);
    if (id === undefined) {
      if (this.worker && this.ready && this.workerBytes < this.mainBytes) {
        this.remote.set(name, (id = this.nextId++));
      } else {
        const fresh = new TensorStats(this.formats, { exactLimit, borrow: true });
        this.local.set(name, fresh);
        fresh.add(data);
        this.mainBytes += data.byteLength;
        return;
      }
    }
    this.workerBytes += data.byteLength;
    this.post({ kind: 'add', id, exactLimit, data }, data);
  }

  private post(m: ToWorker & { kind: 'add' }, data: Float32Array | Float64Array): void {
    const whole = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && !(data.buffer instanceof SharedArrayBuffer);
    if (whole) {
      try {
        this.worker!.postMessage(m, [data.buffer as ArrayBuffer]);
        return;
      } catch {
        // Not detachable (memory owned elsewhere): send a copy.
      }
    }
    const copy = data.slice();
    this.worker!.postMessage({ ...m, data: copy }, [copy.buffer as ArrayBuffer]);
  }

  /** The tensor has all its chunks: its statistics go to `onStats` (now, or when the worker answers). */
  finish(name: string): void {
    const st = this.local.get(name);
    if (st) {
      this.local.delete(name);
      this.onStats(name, st.result());
      return;
    }
    const id = this.remote.get(name);
    if (id === undefined) return;
    this.remote.delete(name);
    this.awaiting.set(id, name);
    this.worker?.postMessage({ kind: 'finish', id } satisfies ToWorker);
  }

  /** Resolves when every finished tensor's statistics have been delivered. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.awaiting.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.drained = resolve;
      this.failed = reject;
    });
  }

  /** Stop the worker (idempotent). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) {
      w.removeAllListeners('exit');
      await w.terminate();
    }
  }
}
