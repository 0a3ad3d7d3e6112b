/**
 * Worker side of `StatsPool` (stats-pool.ts): keeps one `TensorStats` per tensor sent to it,
 * adds the chunks it receives in order and answers `finish` with the tensor's result. The same
 * code as on the main thread, so a tensor's statistics do not depend on where they ran.
 */
import { parentPort } from 'node:worker_threads';
import type { Format } from '../formats/index.js';
import { TensorStats, type MeasuredStats } from './stats.js';

export type ToWorker =
  | { kind: 'add'; id: number; exactLimit: number; data: Float32Array | Float64Array }
  | { kind: 'finish'; id: number };

export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'result'; id: number; stats: MeasuredStats }
  | { kind: 'failed'; id: number; message: string };

const port = parentPort;
if (port) {
  let formats: Format[] | null = null;
  const open = new Map<number, TensorStats>();
  port.on('message', (m: ToWorker | { kind: 'init'; formats: Format[] }) => {
    if (m.kind === 'init') {
      formats = m.formats;
      port.postMessage({ kind: 'ready' } satisfies FromWorker);
      return;
    }
    try {
      if (m.kind === 'add') {
        let st = open.get(m.id);
        if (!st) open.set(m.id, (st = new TensorStats(formats!, { exactLimit: m.exactLimit, borrow: true })));
        st.add(m.data);
      } else {
        const st = open.get(m.id) ?? new TensorStats(formats!);
        open.delete(m.id);
        port.postMessage({ kind: 'result', id: m.id, stats: st.result() } satisfies FromWorker);
      }
    } catch (e) {
      open.delete(m.id);
      port.postMessage({ kind: 'failed', id: m.id, message: e instanceof Error ? e.message : String(e) } satisfies FromWorker);
    }
  });
}
