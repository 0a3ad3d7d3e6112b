/**
 * Writing files atomically: the bytes go to a temporary file in the destination folder,
 * which is then renamed over the destination, so a reader never sees a half-written model
 * and a crash leaves the old file intact. The input model is never overwritten unless the
 * caller passes `force`.
 */
import { closeSync, existsSync, fsyncSync, openSync, realpathSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { ExitCode, UnitscaleError } from '../errors.js';
import { encodeModelProto } from './proto.js';
import type { ModelProto } from './proto-types.js';

export interface WriteOptions {
  /** Paths that must not be overwritten (the input model). */
  protect?: string[];
  /** Allow overwriting a protected path. */
  force?: boolean;
}

function samePath(a: string, b: string): boolean {
  const norm = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  return norm(a) === norm(b);
}

export function writeFileAtomic(dest: string, data: Uint8Array | string, opts: WriteOptions = {}): void {
  for (const p of opts.protect ?? []) {
    if (!opts.force && existsSync(dest) && samePath(dest, p)) {
      throw new UnitscaleError(`refusing to overwrite the input ${p} (pass --force to allow)`, ExitCode.WRITE);
    }
  }
  const dir = path.dirname(path.resolve(dest));
  const tmp = path.join(dir, `.${path.basename(dest)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx');
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, dest);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    if (e instanceof UnitscaleError) throw e;
    throw new UnitscaleError(`cannot write ${dest}: ${(e as Error).message.split('\n')[0]}`, ExitCode.WRITE);
  }
}

export function saveModel(proto: ModelProto, dest: string, opts: WriteOptions = {}): void {
  writeFileAtomic(dest, encodeModelProto(proto), opts);
}
