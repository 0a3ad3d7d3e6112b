/**
 * The per-format risk of `measure`, fused with the first statistics pass: the same exact,
 * streaming computation as `RiskAccumulator` (src/formats/risk.ts) — Neumaier-compensated Σx²
 * and Σ(x − q(x))² in element order, counts of overflow / underflow / subnormal — through the
 * same kernels (fast-risk.ts, and the WebAssembly SIMD kernel of fast-wasm.ts), so the results
 * are bit-for-bit `RiskAccumulator`'s. What it adds: on float32 chunks the SIMD kernel's
 * `runLanesStats` variant also returns the chunk's Σx, min, max, mask-fill count and |x|
 * histogram (stats.ts), so those cost no pass of their own.
 *
 * Formats the magic-constant kernels do not cover (no rounding table) go to a
 * `RiskAccumulator` of their own, whose results are taken as they are.
 */
import { RiskAccumulator, type Format } from '../formats/index.js';
import { addSignalF32, addSignalF64, HI_WORD, roundingTable, tallyF32, tallyF64, type SignalState, type Tally } from '../formats/fast-risk.js';
import { kernel, MAX_PAIRS, runLanesStats, SIGNAL_TABLE, type ChunkStats, type Lane } from '../formats/fast-wasm.js';
import type { FormatRisk } from '../report/types.js';

/** Below this many elements the JavaScript loops are used (same results as the kernel). */
const WASM_MIN_LENGTH = 64;

export type Kernel = NonNullable<ReturnType<typeof kernel>>;

export class FusedRisk {
  private readonly state: SignalState = { count: 0, nonFinite: 0, nan: 0, zeros: 0, signal: 0, signalComp: 0 };
  /** Formats with float32 and float64 rounding tables, in order. */
  private readonly tallies: Tally[] = [];
  private readonly t32: Float64Array[] = [];
  private readonly t64: Float64Array[] = [];
  private lanes: Lane[] | null = null;
  /** The other formats. */
  private readonly slow: RiskAccumulator | null;

  constructor(private readonly formats: Format[]) {
    const slow: Format[] = [];
    for (const f of formats) {
      const a = roundingTable(f, 'f32');
      const b = roundingTable(f, 'f64');
      if (a && b) {
        this.tallies.push({ format: f, overflow: 0, underflow: 0, subnormal: 0, noise: 0, noiseComp: 0 });
        this.t32.push(a);
        this.t64.push(b);
      } else slow.push(f);
    }
    this.slow = slow.length > 0 ? new RiskAccumulator(slow) : null;
  }

  /**
   * Add a float32 chunk. Returns the chunk's statistics when the SIMD kernel ran (its |x|
   * histogram is then in `kernel.hist`, to be read and zeroed by the caller), else null.
   */
  addF32(values: Float32Array): { stats: ChunkStats; kernel: Kernel } | null {
    this.slow?.add(values);
    const k = values.length >= WASM_MIN_LENGTH && this.tallies.length + 1 <= 2 * MAX_PAIRS ? kernel() : null;
    if (!k) {
      addSignalF32(this.state, values);
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
      this.tallies.forEach((t, i) => tallyF32(t, values, bits, this.t32[i]!));
      return null;
    }
    const s = this.state;
    const lanes = (this.lanes ??= [newLane(SIGNAL_TABLE, Infinity, 0), ...this.tallies.map((t, i) => newLane(this.t32[i]!, t.format.max, t.format.minNormal))]);
    lanes[0]!.noise = s.signal;
    lanes[0]!.noiseComp = s.signalComp;
    this.tallies.forEach((t, i) => {
      const lane = lanes[i + 1]!;
      lane.noise = t.noise;
      lane.noiseComp = t.noiseComp;
      lane.over = lane.zero = lane.low = 0;
    });
    const stats = runLanesStats(k, values, lanes);
    const { finite, zeros } = stats;
    s.signal = lanes[0]!.noise;
    s.signalComp = lanes[0]!.noiseComp;
    s.count += finite;
    s.zeros += zeros;
    s.nonFinite += values.length - finite;
    this.tallies.forEach((t, i) => {
      const lane = lanes[i + 1]!;
      t.noise = lane.noise;
      t.noiseComp = lane.noiseComp;
      t.overflow += lane.over;
      t.underflow += lane.zero - zeros;
      t.subnormal += lane.low - lane.zero;
    });
    return { stats, kernel: k };
  }

  addF64(values: Float64Array): void {
    this.slow?.add(values);
    addSignalF64(this.state, values);
    const words = new Uint32Array(values.buffer, values.byteOffset, 2 * values.length);
    this.tallies.forEach((t, i) => tallyF64(t, values, words, HI_WORD, this.t64[i]!));
  }

  /** Per format name, in the report's shape (∞ SQNR → null), as `RiskAccumulator.result()` gives. */
  result(): Record<string, FormatRisk> {
    const s = this.state;
    const n = s.count;
    const share = (k: number): number => (n === 0 ? 0 : k / n);
    const mine = new Map<Format, FormatRisk>();
    for (const t of this.tallies) {
      const db = sqnrDb(s.signal + s.signalComp, t.noise + t.noiseComp);
      mine.set(t.format, { overflow: share(t.overflow), underflow: share(t.underflow), subnormal: share(t.subnormal), sqnrDb: Number.isFinite(db) ? db : null });
    }
    const slow = this.slow?.result().formats;
    const out: Record<string, FormatRisk> = {};
    for (const f of this.formats) {
      const m = mine.get(f);
      if (m) out[f.name] = m;
      else {
        const r = slow?.[f.name];
        if (r) out[f.name] = { overflow: r.overflow, underflow: r.underflow, subnormal: r.subnormal, sqnrDb: Number.isFinite(r.sqnrDb) ? r.sqnrDb : null };
      }
    }
    return out;
  }
}

/** As risk.ts: +Inf when exact, -Inf when only noise. */
function sqnrDb(signal: number, noise: number): number {
  if (noise === 0) return Infinity;
  if (signal === 0) return -Infinity;
  return 10 * Math.log10(signal / noise);
}

function newLane(table: Float64Array, max: number, minNormal: number): Lane {
  return { table, max, minNormal, noise: 0, noiseComp: 0, over: 0, zero: 0, low: 0 };
}
