/**
 * Names and strings from a model file are untrusted: quoted into an error message they could
 * break it over lines (a newline in a node name) or make it huge. `q` quotes one for a
 * one-line message: control characters escaped, long ones clipped.
 */
const MAX_SHOWN = 200;

export function q(value: unknown): string {
  return `'${clean(value)}'`;
}

/** The same without the quotes (op types, short identifiers). */
export function clean(value: unknown): string {
  let s = String(value);
  if (s.length > MAX_SHOWN) s = `${s.slice(0, MAX_SHOWN)}…`;
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
