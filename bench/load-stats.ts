/**
 * Load-and-statistics benchmark on big Llama-shaped models (scripts/make-llama.ts):
 *
 *   tsx bench/load-stats.ts [--models 125M,1B] [--dir /tmp/unitscale-bench] [--runs 3]
 *                           [--analyze-runs 1] [--no-analyze]
 *
 * For each model, each contender runs as its own child process, 3 times; the table shows the
 * median wall time (process start to exit) and the peak resident memory (GNU time's %M).
 * unitscale runs as compiled JavaScript (src/ built with tsconfig.build.json into bench/out/dist),
 * as the installed CLI does:
 *   - unitscale, TensorData.chunks(): every initializer's mean/RMS/absmax, one thread
 *   - unitscale, weightStats(): the same through src/onnx/weight-stats.ts (worker threads)
 *   - unitscale analyze: the CLI command, as users run it (weight pass on all cores, then the
 *     propagation; --serial-analyze adds the old single-threaded analyzeModel() for comparison)
 *   - python: Debian's python3-onnx + numpy, onnx.load (with external data) then numpy
 *     mean / RMS / absmax per initializer (/usr/bin/python3, not the PATH one)
 *   - read floor: `cat` of the model files to /dev/null
 * The page cache cannot be dropped here, so every run follows a warm read of the files
 * (`cat` once) and all numbers are warm-cache numbers.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..');

// ---------------------------------------------------------------------------------------------
// Child: plain JavaScript over the compiled library (as the installed CLI runs it, with no
// TypeScript loader in the timing). argv: DIST MODE MODEL, MODE = chunks | threads | cli | analyze-serial.

const CHILD = String.raw`
import { pathToFileURL } from 'node:url';
const [dist, mode, file] = process.argv.slice(1);
const lib = (p) => import(pathToFileURL(dist + '/' + p).href);
const { loadModel } = await lib('onnx/load.js');
const model = loadModel(file);
const tensors = [...model.graph.allGraphs()].flatMap((g) => [...g.initializers.values()]);
let n = 0, checksum = 0;
if (mode === 'chunks') {
  const { tensorStats } = await lib('onnx/weight-stats.js');
  for (const t of tensors) { const s = tensorStats(t); if (t.isFloat) { n++; checksum += s.rms; } }
} else if (mode === 'threads') {
  const { weightStats } = await lib('onnx/weight-stats.js');
  const stats = await weightStats(model);
  stats.forEach((s, i) => { if (tensors[i].isFloat) { n++; checksum += s.rms; } });
} else if (mode === 'analyze-serial') {
  const { analyzeModel } = await lib('analysis/analyze.js');
  const report = analyzeModel(model);
  n = report.tensors?.length ?? 0;
} else if (mode === 'cli') {
  const { main } = await lib('cli/main.js');
  const out = process.stdout.write.bind(process.stdout);
  process.stdout.write = () => true; // the table is not the point here
  const code = await main(['analyze', file, '--top', '5']);
  process.stdout.write = out;
  if (code !== 0) process.exit(code);
  n = -1;
}
console.log(JSON.stringify({ tensors: n, checksum }));
`;

/** Compile src/ (tsconfig.build.json) into base/dist, with onnx.proto where proto.js looks for it. */
function buildLibrary(base: string): string {
  const dist = path.join(base, 'dist');
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // Other modules may have type errors while being written: tsc still emits; only the files used here matter.
  spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', dist], { stdio: 'ignore' });
  if (!existsSync(path.join(dist, 'onnx', 'load.js'))) throw new Error(`building the library into ${dist} failed`);
  mkdirSync(path.join(base, 'src', 'onnx'), { recursive: true });
  copyFileSync(path.join(ROOT, 'src', 'onnx', 'onnx.proto'), path.join(base, 'src', 'onnx', 'onnx.proto'));
  copyFileSync(path.join(ROOT, 'package.json'), path.join(base, 'package.json')); // src/version.ts reads it
  return dist;
}

// ---------------------------------------------------------------------------------------------
// Parent mode

const PYTHON = String.raw`
import sys, resource, numpy as np, onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])  # reads the external data too
n, checksum = 0, 0.0
for t in m.graph.initializer:
    a = numpy_helper.to_array(t)
    if a.dtype.kind != 'f':
        continue
    mean = float(a.mean())
    rms = float(np.sqrt(np.mean(np.square(a))))
    absmax = float(np.max(np.abs(a)))
    n += 1
    checksum += rms
print('{"tensors": %d, "checksum": %r}' % (n, checksum))
`;

interface Timing {
  wall: number;
  /** user + system CPU seconds (less sensitive than wall time to other load on the machine). */
  cpu: number;
  rssMiB: number;
  out: string;
}

function timed(cmd: string, args: string[], timeoutMs: number): Timing {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S %M', cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 1 << 26 });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}): ${(r.stderr ?? '').slice(-500)}`);
  const lines = r.stderr.trim().split('\n');
  const [user, sys, rss] = lines[lines.length - 1]!.split(' ').map(Number);
  return { wall, cpu: user! + sys!, rssMiB: rss! / 1024, out: r.stdout.trim() };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

interface Row {
  model: string;
  tool: string;
  wall: number;
  cpu: number;
  rssMiB: number;
  out: string;
}

async function parent(): Promise<void> {
  const argv = process.argv.slice(2);
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const presets = (get('models') ?? '125M,1B').split(',');
  const base = path.resolve(get('dir') ?? '/tmp/unitscale-bench');
  const runs = Number(get('runs') ?? 3);
  // The old serial analysis takes minutes on the 1B model: fewer runs by default.
  const analyzeRuns = Number(get('analyze-runs') ?? 1);
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
  const rows: Row[] = [];
  mkdirSync(base, { recursive: true });
  // inside the repository (bench/out/ is git-ignored), so that node_modules resolves
  const dist = buildLibrary(path.join(ROOT, 'bench', 'out'));
  const withAnalyze = !argv.includes('--no-analyze') && existsSync(path.join(dist, 'analysis', 'analyze.js'));

  for (const preset of presets) {
    const dir = path.join(base, `llama-${preset}`);
    const model = path.join(dir, 'model.onnx');
    if (!existsSync(model) || !existsSync(`${model}.data`)) {
      console.error(`generating ${dir} …`);
      execFileSync(process.execPath, ['--import', tsx, path.join(ROOT, 'scripts/make-llama.ts'), '--params', preset, '--out', dir], { stdio: 'inherit' });
    }
    const files = [model, `${model}.data`];
    const gib = files.reduce((a, f) => a + statSync(f).size, 0) / 2 ** 30;
    const node = (mode: string): [string, string[]] => [process.execPath, ['--input-type=module', '-e', CHILD, dist, mode, model]];
    const tools: [string, [string, string[]]][] = [
      ['read floor: cat', ['/bin/sh', ['-c', `cat ${files.map((f) => `'${f}'`).join(' ')} > /dev/null`]]],
      ['unitscale: TensorData.chunks(), 1 thread', node('chunks')],
      ['unitscale: weightStats(), worker threads', node('threads')],
      ['python3: onnx.load + numpy', ['/usr/bin/python3', ['-c', PYTHON, model]]],
    ];
    if (withAnalyze) tools.push(['unitscale analyze (CLI, full analysis)', node('cli')]);
    if (withAnalyze && argv.includes('--serial-analyze')) tools.push(['unitscale: analyzeModel() without the weight pass', node('analyze-serial')]);
    for (const [tool, [cmd, args]] of tools) {
      const times: Timing[] = [];
      const n = tool.includes('without the weight pass') ? analyzeRuns : runs;
      try {
        for (let r = 0; r < n; r++) {
          execFileSync('/bin/sh', ['-c', `cat ${files.map((f) => `'${f}'`).join(' ')} > /dev/null`]); // warm the page cache
          times.push(timed(cmd, args, 30 * 60_000));
        }
      } catch (e) {
        console.error(`${preset} ${tool}: FAILED ${(e as Error).message.split('\n').slice(-12).join(' | ').slice(0, 600)}`);
        rows.push({ model: `${preset} (${gib.toFixed(2)} GiB)`, tool: `${tool} — failed`, wall: NaN, cpu: NaN, rssMiB: NaN, out: '{}' });
        continue;
      }
      const row = { model: `${preset} (${gib.toFixed(2)} GiB)`, tool: n === runs ? tool : `${tool} [${n} run${n > 1 ? 's' : ''}]`, wall: median(times.map((t) => t.wall)), cpu: median(times.map((t) => t.cpu)), rssMiB: median(times.map((t) => t.rssMiB)), out: times[0]!.out };
      rows.push(row);
      console.error(`${row.model} ${tool}: ${times.map((t) => t.wall.toFixed(2)).join(' ')} s (cpu ${row.cpu.toFixed(2)} s), ${row.rssMiB.toFixed(0)} MiB ${row.out}`);
    }
  }

  console.log(`\nwarm page cache, median of ${runs} runs, ${presets.join(' and ')} models from scripts/make-llama.ts; ${process.version}, ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'cpu'} × ${(await import('node:os')).availableParallelism()}\n`);
  console.log(`load average while running: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
  console.log('| model | contender | wall (s) | CPU (s) | peak RSS (MiB) | python ÷ this (wall) | this ÷ read floor (wall) |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const py = rows.find((x) => x.model === r.model && x.tool.startsWith('python3'))!;
    const floor = rows.find((x) => x.model === r.model && x.tool.startsWith('read floor'))!;
    console.log(`| ${r.model} | ${r.tool} | ${r.wall.toFixed(2)} | ${r.cpu.toFixed(2)} | ${r.rssMiB.toFixed(0)} | ${(py.wall / r.wall).toFixed(2)}× | ${(r.wall / floor.wall).toFixed(2)}× |`);
  }
  // the statistics agree: the python checksum (Σ rms over float tensors) against unitscale's
  for (const preset of presets) {
    const mine = rows.find((r) => r.model.startsWith(`${preset} `) && r.tool.includes('weightStats'));
    const py = rows.find((r) => r.model.startsWith(`${preset} `) && r.tool.startsWith('python3'));
    if (mine && py) {
      const a = JSON.parse(mine.out) as { checksum: number };
      const b = JSON.parse(py.out) as { checksum: number };
      console.log(`\n${preset}: Σ RMS over initializers — unitscale ${a.checksum.toPrecision(10)}, python ${b.checksum.toPrecision(10)} (relative difference ${(Math.abs(a.checksum - b.checksum) / b.checksum).toExponential(1)})`);
    }
  }
}

void parent();
