/**
 * The host side of the project's WebAssembly kernels: the part of the JS API they use (the
 * project's TypeScript libs do not declare it), and whether kernels can run here at all — they
 * read and write typed arrays over their memory, so they need a little-endian host.
 */
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

export const WASM: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The exports of a module built from `bytes`, or null where it cannot run here. */
export function instantiate(bytes: Uint8Array, imports: object = {}): Record<string, unknown> | null {
  if (!WASM || !LITTLE_ENDIAN) return null;
  try {
    if (!WASM.validate(bytes)) return null;
    return new WASM.Instance(new WASM.Module(bytes), imports).exports;
  } catch {
    return null;
  }
}
