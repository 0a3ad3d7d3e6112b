/**
 * Start a worker thread from one of the project's own modules, both as built JavaScript (the
 * installed CLI: `dist/…/x.js` is imported as is) and from the TypeScript sources (tsx, vitest:
 * the worker registers tsx's loader, found next to this package, before importing `x.ts`).
 * Returns null where neither works (then callers do the work on their own thread).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

const BOOT = `
const { workerData } = require('node:worker_threads');
(async () => {
  if (workerData.boot.tsx) (await import(workerData.boot.tsx)).register();
  await import(workerData.boot.url);
})().catch((e) => setImmediate(() => { throw e; }));
`;

/**
 * `sibling`: the module's path relative to `from` (the caller's import.meta.url), without
 * extension, e.g. './weight-worker'.
 */
export function startModuleWorker(from: string, sibling: string, data: unknown = null): Worker | null {
  if (!from.startsWith('file:')) return null;
  const ts = from.endsWith('.ts');
  const url = new URL(`${sibling}.${ts ? 'ts' : 'js'}`, from).href;
  if (!existsSync(fileURLToPath(url))) return null;
  let tsx: string | null = null;
  if (ts) {
    try {
      const api = createRequire(from).resolve('tsx/package.json').replace(/package\.json$/, 'dist/esm/api/index.mjs');
      if (!existsSync(api)) return null;
      tsx = pathToFileURL(api).href;
    } catch {
      return null;
    }
  }
  try {
    // execArgv: [] so that flags meant for the main program (--cpu-prof, --import …) stay there.
    return new Worker(BOOT, { eval: true, execArgv: [], workerData: { boot: { url, tsx }, data } });
  } catch {
    return null;
  }
}
