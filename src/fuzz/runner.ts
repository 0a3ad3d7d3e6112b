/**
 * The fuzz runner: makes seeded cases from the corpus (src/fuzz/mutate.ts), writes each to its
 * own folder, and has a pool of worker processes (src/fuzz/worker.ts) push it through the real
 * CLI path (load → topological order → decode every tensor → analysis). Each case has a time
 * limit and a memory cap, enforced by killing the worker, which is then replaced. Outcomes:
 *   ok       the model loaded and was analysed
 *   error    a clean UnitscaleError: documented exit code, one-line message
 *   FAILURE  any other exception, a timeout, a crash, the memory cap, a multi-line or
 *            undocumented error, or a hostile case (`mustFail`) that loaded without complaint
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, truncateSync, writeFileSync, cpSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseExternalEntries } from '../onnx/external.js';
import { decodeModelProto } from '../onnx/proto.js';
import type { GraphProto, TensorProto } from '../onnx/proto-types.js';
import { type CorpusEntry, type FuzzCase, type FuzzEnv, makeCase, MUTATOR_KINDS, seedCase, type SideFile } from './mutate.js';
import type { CaseRequest, CaseResponse } from './worker.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '..', '..');

export type Outcome = 'ok' | 'error' | 'FAILURE';

export interface CaseOutcome {
  index: number;
  kind: string;
  source: string;
  detail: string;
  outcome: Outcome;
  /** For failures: exception, timeout, crash, memory, accepted-hostile, bad-error. */
  reason?: string;
  stage?: string;
  exitCode?: number;
  message?: string;
  ms: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  workers?: number;
  /** Per-case time limit (ms). */
  timeoutMs?: number;
  /** Per-worker resident-memory cap (MiB). */
  memoryMb?: number;
  /** Corpus roots (files or folders searched for *.onnx); default: shared corpus + fixtures. */
  corpus?: string[];
  /** Run each corpus model unmodified first (default true). */
  seeds?: boolean;
  /** Run the analysis stage when src/analysis/analyze.ts exists (default true). */
  analyze?: boolean;
  kinds?: string[];
  /** Copy failing cases here for replay. */
  keepFailures?: string;
  /** Harness self-test cases (misbehaving workers) appended to the run. */
  selftest?: boolean;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  outcomes: CaseOutcome[];
  failures: CaseOutcome[];
  corpusSize: number;
  analyzer: boolean;
  seconds: number;
}

/** Default corpus roots: the shared ONNX backend data and validation models, and fixtures/. */
export function defaultCorpusRoots(): string[] {
  const shared = [path.join(REPO_ROOT, '..', 'shared'), '/work/shared'].find((p) => existsSync(p));
  const roots = [path.join(REPO_ROOT, 'fixtures')];
  if (shared) roots.unshift(path.join(shared, 'onnx-backend-data'), path.join(shared, 'validation'));
  return roots.filter((p) => existsSync(p));
}

function findOnnx(root: string): string[] {
  const st = statSync(root);
  if (st.isFile()) return root.endsWith('.onnx') ? [root] : [];
  const out: string[] = [];
  for (const e of readdirSync(root, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...findOnnx(p));
    else if (e.isFile() && e.name.endsWith('.onnx')) out.push(p);
  }
  return out;
}

function externalLocations(bytes: Uint8Array): string[] {
  const out = new Set<string>();
  const visit = (g: GraphProto | null | undefined) => {
    if (!g) return;
    const tensors: TensorProto[] = [...(g.initializer ?? [])];
    for (const n of g.node ?? []) for (const a of n.attribute ?? []) {
      if (a.t) tensors.push(a.t);
      visit(a.g);
      for (const s of a.graphs ?? []) visit(s);
    }
    for (const t of tensors) if (t.data_location === 1) {
      const loc = parseExternalEntries(t.external_data ?? []).location;
      if (loc) out.add(loc);
    }
  };
  visit(decodeModelProto(bytes).graph);
  return [...out];
}

export function loadCorpus(roots: string[]): CorpusEntry[] {
  const files = [...new Set(roots.flatMap(findOnnx))];
  const entries: CorpusEntry[] = [];
  for (const f of files) {
    const bytes = new Uint8Array(readFileSync(f));
    let side: SideFile[] = [];
    try {
      side = externalLocations(bytes).map((loc) => ({ path: loc, data: new Uint8Array(readFileSync(path.join(path.dirname(f), loc))) }));
    } catch {
      /* an undecodable seed is still a seed for byte-level mutations */
    }
    const name = path.relative(REPO_ROOT, f).startsWith('..') ? f.replace(/^.*\/shared\//, 'shared/') : path.relative(REPO_ROOT, f);
    entries.push({ name, bytes, side });
  }
  return entries;
}

interface Worker {
  child: ChildProcess;
  ready: Promise<{ analyzer: boolean; analyzerError?: string }>;
  stderr: string;
}

const WORKER = path.join(HERE, `worker${path.extname(fileURLToPath(import.meta.url))}`);

function spawnWorker(memoryMb: number): Worker {
  const execArgv = [`--max-old-space-size=${memoryMb}`];
  if (WORKER.endsWith('.ts')) execArgv.unshift('--import', pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href);
  const child = fork(WORKER, [], { execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'json' });
  const w: Worker = { child, stderr: '', ready: Promise.resolve({ analyzer: false }) };
  child.stderr!.on('data', (d: Buffer) => {
    w.stderr = (w.stderr + d.toString()).slice(-2000);
  });
  w.ready = new Promise((resolve, reject) => {
    const onMsg = (m: { type?: string; analyzer?: boolean; analyzerError?: string }) => {
      if (m?.type === 'ready') {
        child.off('message', onMsg);
        resolve({ analyzer: !!m.analyzer, analyzerError: m.analyzerError });
      }
    };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`fuzz worker exited during start-up (${code}): ${w.stderr.trim().split('\n').pop()}`)));
  });
  return w;
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function writeCase(dir: string, c: FuzzCase): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of c.files) {
    const p = path.join(dir, f.path);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, f.data);
  }
  for (const s of c.symlinks) symlinkSync(s.target, path.join(dir, s.path));
  return path.join(dir, c.model);
}

/** One case in a worker, under the limits; resolves with the classified outcome. */
function runInWorker(w: Worker, c: FuzzCase, file: string, opts: Required<Pick<FuzzOptions, 'timeoutMs' | 'memoryMb' | 'analyze'>>, selftest?: CaseRequest['selftest']): Promise<CaseOutcome> {
  const started = Date.now();
  const base = { index: c.index, kind: c.kind, source: c.source, detail: c.detail };
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: Omit<CaseOutcome, 'index' | 'kind' | 'source' | 'detail' | 'ms'>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
      w.child.off('message', onMsg);
      w.child.off('exit', onExit);
      resolve({ ...base, ...o, ms: Date.now() - started });
    };
    let stage = 'start';
    const onMsg = (m: CaseResponse | { type: 'stage'; id: number; stage: string }) => {
      if (m?.type === 'stage' && m.id === c.index) stage = m.stage;
      if (m?.type !== 'result' || m.id !== c.index) return;
      if (m.outcome === 'ok') {
        if (c.mustFail) finish({ outcome: 'FAILURE', reason: 'accepted-hostile', stage: m.stage, message: 'a hostile model loaded without error' });
        else finish({ outcome: 'ok', stage: m.stage });
      } else if (m.outcome === 'error') finish({ outcome: 'error', stage: m.stage, exitCode: m.exitCode, message: m.message });
      else finish({ outcome: 'FAILURE', reason: m.exitCode !== undefined ? 'bad-error' : 'exception', stage: m.stage, exitCode: m.exitCode, message: `${m.errorName}: ${m.message}` });
    };
    const onExit = (code: number | null, signal: string | null) => {
      finish({ outcome: 'FAILURE', reason: 'crash', stage, message: `worker died (${signal ?? code}): ${w.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}` });
    };
    const kill = (reason: string, message: string) => {
      finish({ outcome: 'FAILURE', reason, stage, message });
      w.child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill('timeout', `no answer in ${opts.timeoutMs} ms`), opts.timeoutMs);
    const poll = setInterval(() => {
      const rss = rssMb(w.child.pid!);
      if (rss > opts.memoryMb) kill('memory', `resident memory ${rss.toFixed(0)} MiB over the ${opts.memoryMb} MiB cap`);
    }, 50);
    w.child.on('message', onMsg);
    w.child.once('exit', onExit);
    const req: CaseRequest = { type: 'case', id: c.index, file, analyze: opts.analyze, selftest };
    w.child.send(req);
  });
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const t0 = Date.now();
  const log = options.log ?? (() => {});
  const timeoutMs = options.timeoutMs ?? 10_000;
  const memoryMb = options.memoryMb ?? 1536;
  const analyze = options.analyze ?? true;
  const nWorkers = Math.max(1, options.workers ?? 2);
  const corpus = loadCorpus(options.corpus ?? defaultCorpusRoots());
  if (corpus.length === 0) throw new Error('fuzz: empty corpus');
  const kinds = options.kinds ?? MUTATOR_KINDS;

  const root = mkdtempSync(path.join(tmpdir(), 'unitscale-fuzz-'));
  const outsideDir = path.join(root, 'outside');
  mkdirSync(outsideDir);
  const outsideFile = path.join(outsideDir, 'secret.bin');
  writeFileSync(outsideFile, '');
  truncateSync(outsideFile, 64 << 20); // sparse: big enough for any corpus tensor
  const env: FuzzEnv = { outsideFile, outsideRelative: '../../outside/secret.bin' };

  type Job = { c: () => FuzzCase; selftest?: CaseRequest['selftest'] };
  const jobs: Job[] = [];
  if (options.seeds ?? true) corpus.forEach((src, i) => jobs.push({ c: () => seedCase(src, -1 - i) }));
  for (let i = 0; i < options.cases; i++) jobs.push({ c: () => makeCase(corpus, options.seed, i, env, kinds) });
  if (options.selftest) {
    const fake = (kind: string, i: number) => (): FuzzCase => ({ ...seedCase(corpus[0]!, -100000 - i), kind, detail: 'harness self-test' });
    (['throw', 'hang', 'crash', 'oom'] as const).forEach((s, i) => jobs.push({ c: fake(`selftest-${s}`, i), selftest: s }));
  }

  const outcomes: CaseOutcome[] = [];
  let next = 0;
  let analyzer = false;
  let lastLog = Date.now();
  const workers: Worker[] = [];
  const limits = { timeoutMs, memoryMb, analyze };

  const lane = async (slot: number) => {
    let w = spawnWorker(memoryMb);
    workers[slot] = w;
    const info = await w.ready;
    analyzer ||= info.analyzer && analyze;
    if (info.analyzerError) log(`analysis module failed to import: ${info.analyzerError}`);
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const c = job.c();
      const dir = path.join(root, 'cases', `w${slot}`);
      const file = writeCase(dir, c);
      const o = await runInWorker(w, c, file, limits, job.selftest);
      outcomes.push(o);
      if (o.outcome === 'FAILURE' && options.keepFailures) {
        const keep = path.join(options.keepFailures, `case-${o.index}`);
        rmSync(keep, { recursive: true, force: true });
        mkdirSync(path.dirname(keep), { recursive: true });
        cpSync(dir, keep, { recursive: true, verbatimSymlinks: true });
      }
      if (w.child.exitCode !== null || w.child.signalCode !== null || o.reason === 'timeout' || o.reason === 'memory' || o.reason === 'crash') {
        w.child.kill('SIGKILL');
        w = spawnWorker(memoryMb);
        workers[slot] = w;
        await w.ready;
      }
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        log(`… ${outcomes.length}/${jobs.length} cases, ${outcomes.filter((x) => x.outcome === 'FAILURE').length} failures`);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: nWorkers }, (_, i) => lane(i)));
  } finally {
    for (const w of workers) w?.child.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  }
  outcomes.sort((a, b) => a.index - b.index);
  return {
    seed: options.seed,
    outcomes,
    failures: outcomes.filter((o) => o.outcome === 'FAILURE'),
    corpusSize: corpus.length,
    analyzer,
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Markdown table of outcomes by mutation kind. */
export function formatTable(report: FuzzReport): string {
  const kinds = [...new Set(report.outcomes.map((o) => o.kind))].sort((a, b) => (a === 'seed' ? -1 : b === 'seed' ? 1 : a.localeCompare(b)));
  const rows: string[][] = [];
  const total = { n: 0, ok: 0, err: 0, fail: 0 };
  const codes = (os: CaseOutcome[]) => {
    const by = new Map<number, number>();
    for (const o of os) if (o.outcome === 'error') by.set(o.exitCode!, (by.get(o.exitCode!) ?? 0) + 1);
    return [...by].sort((a, b) => a[0] - b[0]).map(([c, n]) => `${c}:${n}`).join(' ') || '-';
  };
  for (const k of kinds) {
    const os = report.outcomes.filter((o) => o.kind === k);
    const ok = os.filter((o) => o.outcome === 'ok').length;
    const err = os.filter((o) => o.outcome === 'error').length;
    const fail = os.length - ok - err;
    total.n += os.length;
    total.ok += ok;
    total.err += err;
    total.fail += fail;
    rows.push([k, String(os.length), String(ok), String(err), codes(os), String(fail)]);
  }
  rows.push(['**total**', String(total.n), String(total.ok), String(total.err), codes(report.outcomes), `**${total.fail}**`]);
  const head = ['mutation', 'cases', 'ok', 'clean error', 'exit codes', 'FAILURE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `|${widths.map((w, i) => (i === 0 ? `-${'-'.repeat(w)}-` : `-${'-'.repeat(w - 1)}:-`)).join('|')}|`, ...rows.map(line)].join('\n');
}
