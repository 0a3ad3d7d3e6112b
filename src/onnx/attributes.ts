/** Typed access to a node's attributes (AttributeProto is a tagged union in disguise). */
import { toNumber } from './proto.js';
import { AttributeType, type AttributeProto, type GraphProto, type TensorProto } from './proto-types.js';

const utf8 = new TextDecoder();

/**
 * protobufjs puts every field's default on the message prototype (an absent `i` reads as 0),
 * so "is this field set?" must look at own properties only.
 */
function isSet<K extends keyof AttributeProto>(a: AttributeProto, key: K): boolean {
  return Object.hasOwn(a, key) && a[key] !== undefined && a[key] !== null;
}

export class Attributes {
  private readonly byName = new Map<string, AttributeProto>();

  constructor(list: AttributeProto[] = []) {
    for (const a of list) if (a.name) this.byName.set(a.name, a);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  raw(name: string): AttributeProto | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  int(name: string): number | undefined;
  int(name: string, fallback: number): number;
  int(name: string, fallback?: number): number | undefined {
    const a = this.byName.get(name);
    return a && isSet(a, 'i') ? toNumber(a.i!) : fallback;
  }

  float(name: string): number | undefined;
  float(name: string, fallback: number): number;
  float(name: string, fallback?: number): number | undefined {
    const a = this.byName.get(name);
    return a && isSet(a, 'f') ? a.f! : fallback;
  }

  string(name: string): string | undefined;
  string(name: string, fallback: string): string;
  string(name: string, fallback?: string): string | undefined {
    const a = this.byName.get(name);
    return a && isSet(a, 's') ? utf8.decode(a.s!) : fallback;
  }

  ints(name: string): number[] | undefined {
    const a = this.byName.get(name);
    if (!a) return undefined;
    if (a.type === AttributeType.INT && isSet(a, 'i')) return [toNumber(a.i!)];
    return (a.ints ?? []).map((v) => toNumber(v));
  }

  floats(name: string): number[] | undefined {
    const a = this.byName.get(name);
    return a ? [...(a.floats ?? [])] : undefined;
  }

  strings(name: string): string[] | undefined {
    const a = this.byName.get(name);
    return a ? (a.strings ?? []).map((s) => utf8.decode(s)) : undefined;
  }

  tensor(name: string): TensorProto | undefined {
    return this.byName.get(name)?.t ?? undefined;
  }

  graph(name: string): GraphProto | undefined {
    return this.byName.get(name)?.g ?? undefined;
  }

  /** Every subgraph held by these attributes (If branches, Loop/Scan bodies). */
  graphs(): { name: string; graph: GraphProto }[] {
    const out: { name: string; graph: GraphProto }[] = [];
    for (const [name, a] of this.byName) {
      if (a.g) out.push({ name, graph: a.g });
      for (const g of a.graphs ?? []) out.push({ name, graph: g });
    }
    return out;
  }
}
