/** Flag parsing shared by `unitscale analyze` and `unitscale measure`: formats, --dim and --shape. */

import { UsageError } from '../errors.js';
import { FormatError, parseFormat, type Format } from '../formats/index.js';

/** Comma-split format names → Formats; bad or missing formats are UsageErrors. */
export function parseFormatNames(names: string[]): Format[] {
  const formats: Format[] = names
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      try {
        return parseFormat(s);
      } catch (e) {
        if (e instanceof FormatError) throw new UsageError(`--formats: ${e.message}`);
        throw e;
      }
    });
  if (formats.length === 0) throw new UsageError('--formats: give at least one format');
  return formats;
}

/** `--dim name=value` flags over base (the config's dims). */
export function parseDimFlags(flags: string[] | undefined, base: Record<string, number> | undefined): Record<string, number> {
  const dims: Record<string, number> = { ...(base ?? {}) };
  for (const d of flags ?? []) {
    const m = /^([^=]+)=(\d+)$/.exec(d.trim());
    if (!m) throw new UsageError(`--dim ${d}: expected name=value with a whole number`);
    dims[m[1]!.trim()] = Number(m[2]);
  }
  return dims;
}

/** `--shape name=d0,d1,...` flags over base (the config's shapes). */
export function parseShapeFlags(flags: string[] | undefined, base: Record<string, number[]> | undefined): Record<string, number[]> {
  const shapes: Record<string, number[]> = { ...(base ?? {}) };
  for (const s of flags ?? []) {
    const m = /^([^=]+)=([\d,\s]*)$/.exec(s.trim());
    if (!m) throw new UsageError(`--shape ${s}: expected name=d0,d1,... with whole numbers`);
    const ds = m[2]!.trim() === '' ? [] : m[2]!.split(',').map((x) => x.trim());
    if (ds.some((x) => !/^\d+$/.test(x))) throw new UsageError(`--shape ${s}: dims must be whole numbers`);
    shapes[m[1]!.trim()] = ds.map(Number);
  }
  return shapes;
}
