/** Reading a model file: bytes → decoded protobuf → typed Model, with one-line errors. */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ModelError, UnitscaleError } from '../errors.js';
import { Model } from './model.js';
import { decodeModelProto } from './proto.js';

/** protobuf cannot encode a message over 2 GiB; larger weights must be external data. */
const MAX_PROTO_BYTES = 2 ** 31;

export function loadModel(file: string): Model {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new ModelError(`${file}: not a regular file`);
    size = st.size;
  } catch (e) {
    if (e instanceof UnitscaleError) throw e;
    throw new ModelError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (size === 0) throw new ModelError(`${file}: empty file`);
  if (size > MAX_PROTO_BYTES) throw new ModelError(`${file}: ${size} bytes is larger than a protobuf can be (2 GiB); weights belong in external data`);
  const bytes = readFileSync(file);
  return modelFromBytes(bytes, file);
}

export function modelFromBytes(bytes: Uint8Array, file: string | null): Model {
  const label = file ?? '<memory>';
  let proto;
  try {
    proto = decodeModelProto(bytes);
  } catch (e) {
    throw new ModelError(`${label}: not a valid ONNX protobuf (${shortReason(e)})`);
  }
  try {
    return new Model(proto, file, file ? path.dirname(path.resolve(file)) : null);
  } catch (e) {
    if (e instanceof UnitscaleError) throw new ModelError(`${label}: ${e.message}`);
    throw new ModelError(`${label}: malformed model (${shortReason(e)})`);
  }
}

function shortReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.slice(0, 200);
}
