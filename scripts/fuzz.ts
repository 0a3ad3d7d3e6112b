/**
 * Robustness fuzzer: `npm run fuzz -- --cases N --seed S` mutates the corpus models (shared
 * ONNX backend data, validation models, fixtures) and runs each case through the real CLI path
 * in a worker process with a time limit and a memory cap. Prints a table of outcomes per
 * mutation kind and exits 1 when any case is a FAILURE (an exception other than a clean
 * UnitscaleError, a timeout, a crash, the memory cap, or a hostile model accepted).
 *
 * Options: --workers W (default 2)  --timeout MS (10000)  --memory MIB (1536)  --no-seeds
 *          --no-analyze  --kinds k1,k2  --keep DIR (copy failing cases there)
 *          --corpus p1,p2 (files or folders of *.onnx; default shared corpus + fixtures)
 *          --only I (replay case I in this process, keeping it on disk, with the full stack)
 */
import { mkdirSync, mkdtempSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exerciseModel } from '../src/fuzz/exercise.js';
import { makeCase, MUTATOR_KINDS } from '../src/fuzz/mutate.js';
import { defaultCorpusRoots, formatTable, loadCorpus, runFuzz } from '../src/fuzz/runner.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
function intArg(name: string, fallback: number): number {
  const v = arg(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`fuzz: --${name} needs a non-negative integer, got '${v}'`);
    process.exit(2);
  }
  return n;
}

const seed = intArg('seed', 1);
const kinds = arg('kinds')?.split(',');
for (const k of kinds ?? []) {
  if (!MUTATOR_KINDS.includes(k)) {
    console.error(`fuzz: unknown kind '${k}' (known: ${MUTATOR_KINDS.join(', ')})`);
    process.exit(2);
  }
}

const corpusRoots = arg('corpus')?.split(',').map((p) => path.resolve(p)) ?? defaultCorpusRoots();

async function replay(index: number): Promise<void> {
  const corpus = loadCorpus(corpusRoots);
  const root = mkdtempSync(path.join(tmpdir(), `unitscale-fuzz-case-${index}-`));
  mkdirSync(path.join(root, 'outside'));
  const outsideFile = path.join(root, 'outside', 'secret.bin');
  writeFileSync(outsideFile, '');
  truncateSync(outsideFile, 64 << 20);
  const c = makeCase(corpus, seed, index, { outsideFile, outsideRelative: '../../outside/secret.bin' }, kinds);
  const dir = path.join(root, 'cases', 'case');
  mkdirSync(dir, { recursive: true });
  for (const f of c.files) {
    mkdirSync(path.dirname(path.join(dir, f.path)), { recursive: true });
    writeFileSync(path.join(dir, f.path), f.data);
  }
  for (const s of c.symlinks) symlinkSync(s.target, path.join(dir, s.path));
  console.log(`case ${index} (seed ${seed}): ${c.kind} on ${c.source}: ${c.detail}${c.mustFail ? ' [must fail]' : ''}`);
  console.log(`files in ${dir}`);
  let stage = '';
  try {
    const r = await exerciseModel(path.join(dir, c.model), (s) => (stage = s), { analyze: !flag('no-analyze') });
    console.log(`ok: ${JSON.stringify(r)}`);
  } catch (e) {
    console.log(`threw at stage ${stage}:`);
    console.log(e);
  }
}

async function main(): Promise<void> {
  const only = arg('only');
  if (only !== undefined) return replay(Number(only));
  const report = await runFuzz({
    cases: intArg('cases', 1000),
    seed,
    workers: intArg('workers', 2),
    timeoutMs: intArg('timeout', 10_000),
    memoryMb: intArg('memory', 1536),
    seeds: !flag('no-seeds'),
    analyze: !flag('no-analyze'),
    kinds,
    corpus: corpusRoots,
    keepFailures: arg('keep'),
    log: (l) => console.error(l),
  });
  console.log(
    `fuzz: seed ${seed}, ${report.outcomes.length} cases (${report.corpusSize} corpus models), analysis ${report.analyzer ? 'on' : 'absent'}, ${report.seconds.toFixed(1)} s\n`,
  );
  console.log(formatTable(report));
  if (report.failures.length) {
    console.log(`\n${report.failures.length} FAILURE(s):`);
    for (const f of report.failures.slice(0, 50)) {
      console.log(`- case ${f.index} [${f.kind}] ${f.source}: ${f.detail}\n    ${f.reason} at ${f.stage ?? '?'}: ${f.message}\n    replay: npm run fuzz -- --seed ${seed}${arg('corpus') ? ` --corpus ${arg('corpus')}` : ''} --only ${f.index}`);
    }
    process.exitCode = 1;
  }
}

void main();
