/**
 * Progress for long work on stderr: one line redrawn with `\r` while stderr is a terminal,
 * nothing at all otherwise (CI logs, pipes, files stay clean). No dependency.
 *
 *   const p = createProgress('measuring', sets.length);
 *   for (…) { …; p.tick(); }
 *   p.done();
 */

export interface Progress {
  /** Advance by n (default 1). */
  tick(n?: number): void;
  /** Clear the line (the caller prints its own result). Safe to call twice. */
  done(): void;
}

export interface ProgressOptions {
  /** Where to draw (default process.stderr). */
  stream?: NodeJS.WriteStream | { isTTY?: boolean; columns?: number; write(s: string): unknown };
  /** Least time between redraws in ms (default 100). */
  intervalMs?: number;
  /** Clock (tests). */
  now?: () => number;
  /** How counts are printed (default: as integers). */
  format?: (n: number) => string;
}

const SILENT: Progress = { tick() {}, done() {} };

function bar(fraction: number, width: number): string {
  const full = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function createProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (!stream.isTTY) return SILENT;
  const now = opts.now ?? Date.now;
  const interval = opts.intervalMs ?? 100;
  const fmt = opts.format ?? String;
  const start = now();
  let count = 0;
  let last = -Infinity;
  let lastLen = 0;
  let finished = false;

  const draw = () => {
    const cols = Math.max(20, (stream.columns || 80) - 1);
    const known = Number.isFinite(total) && total > 0;
    const pct = known ? Math.min(100, Math.floor((100 * count) / total)) : null;
    let text = known
      ? `${label} ${bar(count / total, 20)} ${fmt(count)}/${fmt(total)} ${pct}% ${elapsed(now() - start)}`
      : `${label} ${fmt(count)} ${elapsed(now() - start)}`;
    if (text.length > cols) text = text.slice(0, cols);
    const pad = lastLen > text.length ? ' '.repeat(lastLen - text.length) : '';
    stream.write(`\r${text}${pad}`);
    lastLen = text.length;
  };

  return {
    tick(n = 1) {
      if (finished) return;
      count += n;
      const t = now();
      if (t - last >= interval || count >= total) {
        last = t;
        draw();
      }
    },
    done() {
      if (finished) return;
      finished = true;
      if (lastLen > 0) stream.write(`\r${' '.repeat(lastLen)}\r`);
    },
  };
}

const mib = (n: number): string => (n >= 1 << 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : `${(n / 2 ** 20).toFixed(0)} MiB`);

/**
 * The weight pass's bar ('reading weights [####....] 1.20 GiB/4.10 GiB 29% 1s'), created at the
 * first report so that small models, read in a blink, draw nothing.
 */
export function weightProgress(opts: ProgressOptions = {}): { update: (done: number, total: number) => void; done: () => void } {
  let p: Progress | null = null;
  let shown = 0;
  return {
    update(done, total) {
      if (!p) {
        if (total < 256 << 20) return;
        p = createProgress('reading weights', total, { ...opts, format: mib });
      }
      p.tick(done - shown);
      shown = done;
    },
    done() {
      p?.done();
    },
  };
}
