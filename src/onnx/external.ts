/**
 * External data (ONNX IR ≥ 6): a tensor's bytes live in a file next to the model, named by
 * `location` relative to the model's folder, at `offset`, `length` bytes long.
 *
 * The location is untrusted input (CVE-2024-27318/27319 in the onnx package were path
 * traversals here): it must name a regular file inside the model's folder, reached without
 * absolute paths, `..` escapes, or symbolic links that leave the folder.
 */
import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { ModelError } from '../errors.js';
import { q } from './quote.js';
import type { StringStringEntryProto } from './proto-types.js';

export interface ExternalRef {
  /** The location string as written in the model. */
  location: string;
  /** Resolved absolute path, checked to lie inside the model's folder. */
  file: string;
  offset: number;
  /** Byte length; resolved from the file size when the model leaves it out. */
  length: number;
}

export function parseExternalEntries(entries: StringStringEntryProto[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of entries) if (e.key) out[e.key] = e.value ?? '';
  return out;
}

function parseNonNegativeInt(s: string | undefined, what: string, tensor: string): number | undefined {
  if (s === undefined || s === '') return undefined;
  if (!/^\d+$/.test(s)) throw new ModelError(`tensor ${q(tensor)}: external data ${what} ${q(s)} is not a non-negative integer`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new ModelError(`tensor ${q(tensor)}: external data ${what} ${q(s)} is too large`);
  return n;
}

/** Resolve and validate an external-data reference; throws ModelError with one line. */
export function resolveExternal(
  entries: StringStringEntryProto[],
  modelDir: string | null,
  tensorName: string,
  expectedBytes: number | null,
): ExternalRef {
  const kv = parseExternalEntries(entries);
  const location = kv.location;
  if (!location) throw new ModelError(`tensor ${q(tensorName)}: external data has no location`);
  if (modelDir === null) throw new ModelError(`tensor ${q(tensorName)}: external data ${q(location)} but the model was not loaded from a file`);
  if (path.isAbsolute(location) || /^[a-zA-Z]:[\\/]/.test(location) || location.startsWith('\\')) {
    throw new ModelError(`tensor ${q(tensorName)}: external data location ${q(location)} is an absolute path (refused)`);
  }
  const parts = location.split(/[\\/]+/);
  if (parts.includes('..')) {
    throw new ModelError(`tensor ${q(tensorName)}: external data location ${q(location)} escapes the model folder (refused)`);
  }
  const dirReal = realpathSync(modelDir);
  const joined = path.join(dirReal, ...parts);
  let real: string;
  try {
    real = realpathSync(joined);
  } catch {
    throw new ModelError(`tensor ${q(tensorName)}: external data file ${q(location)} not found next to the model`);
  }
  const rel = path.relative(dirReal, real);
  if (rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new ModelError(`tensor ${q(tensorName)}: external data ${q(location)} links outside the model folder (refused)`);
  }
  const st = statSync(real);
  if (!st.isFile()) throw new ModelError(`tensor ${q(tensorName)}: external data ${q(location)} is not a regular file`);
  const offset = parseNonNegativeInt(kv.offset, 'offset', tensorName) ?? 0;
  const declared = parseNonNegativeInt(kv.length, 'length', tensorName);
  const length = declared ?? (expectedBytes ?? st.size - offset);
  if (offset > st.size || offset + length > st.size) {
    throw new ModelError(
      `tensor ${q(tensorName)}: external data ${q(location)} range [${offset}, ${offset + length}) overruns the file (${st.size} bytes)`,
    );
  }
  if (expectedBytes !== null && length !== expectedBytes) {
    throw new ModelError(`tensor ${q(tensorName)}: external data length ${length} does not match its shape (${expectedBytes} bytes)`);
  }
  return { location, file: real, offset, length };
}

/** The file may have changed since the model was loaded: fs errors become one-line ModelErrors. */
function fsGuard<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof ModelError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message?.split('\n')[0] ?? 'error';
    throw new ModelError(`external data file ${q(file)} cannot read (${code})`);
  }
}

/** Read [offset, offset+length) of a file into a new buffer. */
export function readRange(file: string, offset: number, length: number): Uint8Array {
  const buf = Buffer.allocUnsafe(length);
  const fd = fsGuard(file, () => openSync(file, 'r'));
  try {
    let done = 0;
    while (done < length) {
      const n = fsGuard(file, () => readSync(fd, buf, done, length - done, offset + done));
      if (n === 0) throw new ModelError(`external data file ${q(file)} ended early`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf;
}

/** Stream a byte range in chunks of at most `chunkBytes` (reusing one buffer). */
export function* readRangeChunks(file: string, offset: number, length: number, chunkBytes: number): Generator<Uint8Array> {
  const fd = fsGuard(file, () => openSync(file, 'r'));
  try {
    const size = fsGuard(file, () => fstatSync(fd).size);
    if (offset + length > size) throw new ModelError(`external data file ${q(file)} is shorter than declared`);
    const buf = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(length, 1)));
    let done = 0;
    while (done < length) {
      const want = Math.min(buf.length, length - done);
      let got = 0;
      while (got < want) {
        const n = fsGuard(file, () => readSync(fd, buf, got, want - got, offset + done + got));
        if (n === 0) throw new ModelError(`external data file ${q(file)} ended early`);
        got += n;
      }
      yield buf.subarray(0, want);
      done += want;
    }
  } finally {
    closeSync(fd);
  }
}
