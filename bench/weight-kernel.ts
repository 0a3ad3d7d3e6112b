/**
 * Speed of WeightKernel.run() (src/formats/weight-kernel.ts): ns per float32 element for the
 * moments plus e4m3, e5m2, fp16 and bf16 in one pass, against RiskAccumulator.add() on the same
 * data. Best of N passes (the machine may be shared: the best pass is the least disturbed one).
 *
 *   npx tsx bench/weight-kernel.ts [--elements 64M] [--runs 5] [--formats e4m3,e5m2,fp16,bf16]
 *
 * Data: weights N(0, 0.02²) (path 'fast': nothing overflows, blocks skip the counts they cannot
 * need), and a wide mix with values past every format's max (path 'full': blocks clip, count
 * overflows and, past 2·max, take a − q in float64).
 *
 * Times are the process's CPU time (process.cpuUsage), so that time slices lost to other jobs on a
 * shared machine do not count; the best pass is still the least disturbed one.
 */
import { parseFormat } from '../src/formats/format.js';
import { RiskAccumulator } from '../src/formats/risk.js';
import { WeightKernel } from '../src/formats/weight-kernel.js';
import { gaussian, mulberry32 } from '../test/helpers/random.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const parseCount = (s: string): number => Number(s.replace(/[mM]$/, '')) * (/[mM]$/.test(s) ? 1 << 20 : 1);
const N = parseCount(opt('--elements') ?? '64M');
const RUNS = Math.max(1, Number(opt('--runs') ?? 5));
const formats = (opt('--formats') ?? 'e4m3,e5m2,fp16,bf16').split(',').map((n) => parseFormat(n));

function data(kind: 'weights' | 'wide'): Float32Array {
  const rng = mulberry32(kind === 'weights' ? 1 : 2);
  const x = new Float32Array(N);
  for (let i = 0; i < N; i++) x[i] = kind === 'weights' ? 0.02 * gaussian(rng) : gaussian(rng) * 10 ** (rng() * 12 - 6);
  return x;
}

/** Best time per element (ns) of `pass` over N elements. */
function best(pass: () => void, runs: number): number {
  let t = Infinity;
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    pass();
    const c = process.cpuUsage(c0);
    t = Math.min(t, ((c.user + c.system) * 1000) / N);
  }
  return t;
}

const kernel = WeightKernel.create(formats);
if (!kernel) {
  console.log(`WeightKernel unavailable for ${formats.map((f) => f.name).join(', ')} on this host`);
  process.exit(0);
}
const cap = kernel.capacity;
const input = new Float32Array(kernel.inputBytes.buffer, kernel.inputBytes.byteOffset, cap);

const rows: string[][] = [];
for (const kind of ['weights', 'wide'] as const) {
  const x = data(kind);
  // run() alone: the data already in the input buffer, as after fs.readSync into inputBytes.
  input.set(x.subarray(0, cap));
  const runOnly = (): void => {
    for (let done = 0; done < N; done += cap) kernel.run(Math.min(cap, N - done));
  };
  const addAll = (): void => kernel.add(x);
  const acc = (): void => {
    const a = new RiskAccumulator(formats);
    for (let s = 0; s < N; s += cap) a.add(x.subarray(s, Math.min(N, s + cap)));
  };
  runOnly(); // warm-up (tier-up to the optimising compiler)
  kernel.reset();
  const before = { ...kernel.paths };
  const tRun = best(runOnly, RUNS);
  const path = kernel.paths.full > before.full ? 'full' : 'fast';
  const tAdd = best(addAll, RUNS);
  const tAcc = best(acc, Math.min(RUNS, 2));
  rows.push([kind, path, tRun.toFixed(2), tAdd.toFixed(2), tAcc.toFixed(2), (tAcc / tRun).toFixed(1)]);
}

const head = ['data', 'kernel path', 'run() ns/el', 'add() ns/el', 'RiskAccumulator ns/el', 'speed-up'];
console.log(`${N} float32 elements, formats ${formats.map((f) => f.name).join(', ')}, best of ${RUNS} (process CPU time)\n`);
console.log(`| ${head.join(' | ')} |`);
console.log(`|${head.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
