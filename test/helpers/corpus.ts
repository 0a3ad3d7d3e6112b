/** The real-model corpora the tests run on (written by others: ONNX backend data, PyTorch exports, npm models). */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export const REPO = path.resolve(new URL('../..', import.meta.url).pathname);
export const SHARED = path.resolve(REPO, '..', 'shared');
export const hasShared = existsSync(path.join(SHARED, 'validation'));

function* walk(dir: string): Generator<string> {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir).sort()) {
    const p = path.join(dir, f);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (p.endsWith('.onnx')) yield p;
  }
}

export function sharedModels(): string[] {
  return [...walk(path.join(SHARED, 'onnx-backend-data')), ...walk(path.join(SHARED, 'validation'))];
}

export function npmModels(): string[] {
  const nm = path.join(REPO, 'node_modules');
  return [
    ...walk(path.join(nm, '@gutenye', 'ocr-models', 'assets')),
    ...walk(path.join(nm, '@ricky0123', 'vad-web', 'dist')),
    ...walk(path.join(nm, '@jjhbw', 'silero-vad', 'weights')),
  ];
}

/** ONNX's node test suite from Debian's libonnx-testdata (installed by .ci/run), when present. */
export const DEBIAN_NODE_TESTS = '/usr/share/libonnx-testdata/data/node';
export function debianNodeTests(): string[] {
  return [...walk(DEBIAN_NODE_TESTS)];
}

export function fixtureModels(): string[] {
  return [...walk(path.join(REPO, 'fixtures'))];
}

export function allModels(): string[] {
  return [...sharedModels(), ...npmModels(), ...fixtureModels()];
}

export function rel(p: string): string {
  return path.relative(REPO, p);
}
