/**
 * Worker side of the weight pass (weight-pass.ts): reduces byte ranges of float32 external data,
 * read straight from the file into the kernel's input buffer (no other copy, no decode), and
 * answers each with its RangeResult. Jobs arrive as lists; results go back one by one, in order.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { WeightKernel } from '../formats/weight-kernel.js';
import type { Format } from '../formats/format.js';
import { SliceKernel } from './slice-kernel.js';
import { ELEMENT_BYTES, rawOffset, RangeReducer, widen, type ElementKind, type RangeResult, type SliceLayout } from './weight-range.js';

export interface RangeJob {
  id: number;
  file: string;
  /** Element type, and byte offset and length in the file (whole elements). */
  kind: ElementKind;
  offset: number;
  length: number;
  /** Index of the range's first element in its tensor. */
  first: number;
  layouts: SliceLayout[];
  distinct: boolean;
}

export type ToWorker =
  /** First message: where results go, and the counter to bump (and notify) after each. */
  | { kind: 'port'; port: MessagePort; signal: Int32Array }
  | { kind: 'jobs'; jobs: RangeJob[] }
  | { kind: 'close' };
export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'result'; id: number; bytes: number; result: RangeResult }
  | { kind: 'failed'; id: number; message: string };

/** Reduce one range from its file (shared with the main thread's fallback). */
export function reduceRange(kernel: WeightKernel, slicer: SliceKernel | null, job: RangeJob, fd: number): RangeResult {
  const width = ELEMENT_BYTES[job.kind];
  const reducer = new RangeReducer(kernel, slicer, job.layouts, job.first, job.length / width, job.distinct);
  const bytes = kernel.inputBytes;
  const view = new Float32Array(bytes.buffer, bytes.byteOffset, kernel.capacity);
  let done = 0;
  while (done < job.length) {
    const want = Math.min(job.length - done, kernel.capacity * width);
    const n = want / width;
    const at = rawOffset(job.kind, n);
    let got = 0;
    while (got < want) {
      const r = readSync(fd, bytes, at + got, want - got, job.offset + done + got);
      if (r === 0) throw new Error(`unexpected end of file at byte ${job.offset + done + got}`);
      got += r;
    }
    widen(bytes, job.kind, n);
    reducer.run(view, n);
    done += want;
  }
  return reducer.result();
}

const parent = parentPort;
const data = (workerData as { data?: { formats?: Format[] } } | null)?.data;
if (parent && data?.formats) {
  const kernel = WeightKernel.create(data.formats);
  const slicer = SliceKernel.create();
  const fds = new Map<string, number>();
  const fdOf = (file: string): number => {
    let fd = fds.get(file);
    if (fd === undefined) fds.set(file, (fd = openSync(file, 'r')));
    return fd;
  };
  let out: MessagePort | null = null;
  let signal: Int32Array | null = null;
  const send = (m: FromWorker, transfer: ArrayBuffer[] = []): void => {
    out!.postMessage(m, transfer);
    Atomics.add(signal!, 0, 1);
    Atomics.notify(signal!, 0);
  };
  parent.on('message', (m: ToWorker) => {
    if (m.kind === 'port') {
      out = m.port;
      signal = m.signal;
      send({ kind: 'ready' });
      return;
    }
    if (m.kind === 'close') {
      for (const fd of fds.values()) closeSync(fd);
      parent.close();
      return;
    }
    for (const job of m.jobs) {
      try {
        if (!kernel) throw new Error('the WebAssembly kernel is not available in this worker');
        const result = reduceRange(kernel, slicer, job, fdOf(job.file));
        send({ kind: 'result', id: job.id, bytes: job.length, result }, result.slices.flatMap((p) => [p.S.buffer, p.A.buffer, p.Q.buffer]) as ArrayBuffer[]);
      } catch (e) {
        send({ kind: 'failed', id: job.id, message: (e as { code?: string }).code ?? String((e as Error).message ?? e).split('\n')[0] });
      }
    }
  });
}
