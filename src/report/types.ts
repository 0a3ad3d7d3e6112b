/**
 * The JSON report contract shared by `analyze` ("mode": "predicted") and `measure`
 * ("mode": "measured"). Scripts depend on it: extend, never break. The README documents it.
 */

export interface FormatRisk {
  /** Share of elements with |x| > the format's max finite value. */
  overflow: number;
  /** Share of elements with x ≠ 0 that the format rounds to 0 (flush to zero). */
  underflow: number;
  /** Share of elements with x ≠ 0 that land on a subnormal (reduced relative precision). */
  subnormal: number;
  /** 10·log10(Σx² / Σ(x − q(x))²), q = round-to-nearest-even after clipping to ±max. null = exact (∞). */
  sqnrDb: number | null;
}

export type TensorKind = 'input' | 'weight' | 'activation' | 'output' | 'gradient';

export interface TensorReport {
  /** ONNX value name (for gradients: the name of the value this is the gradient of). */
  name: string;
  kind: TensorKind;
  /** Producer op type; "initializer" / "input" for those. */
  op: string | null;
  /** Producer node name. */
  node: string | null;
  dtype: string;
  shape: (number | string | null)[] | null;
  mean: number | null;
  rms: number | null;
  /** Predicted bound (analyze) or measured max |x| (measure); null when unknown. */
  absmax: number | null;
  risk: Record<string, FormatRisk>;
  /** Extensions (all optional): */
  /** Distribution shape used for the prediction (gaussian, rectified, bounded, …). */
  distribution?: string;
  /** How far to trust a prediction: exact (read from the weights), high, medium, low, unknown. */
  confidence?: 'exact' | 'high' | 'medium' | 'low' | 'unknown';
  /** Why a tensor is special (e.g. "mask filled with float32 min"), or why it is unknown. */
  note?: string;
  /**
   * Share of elements at an attention-mask fill value (≤ -1e4, e.g. float32's lowest): they
   * overflow by design. The gate does not count that overflow unless `checkMasks` is set.
   */
  maskFill?: number;
  /**
   * Where a value inside a control-flow subgraph lives: "<node name>/<attribute>" of the If,
   * Loop or Scan node holding the subgraph, nested with '/' from the main graph down (e.g.
   * "If_3/then_branch", "If_25/else_branch/If_30/then_branch"). Absent for main-graph values.
   * Names are kept as in the model, so two tensors may share a name; (scope, name) is unique.
   * Analyze lists the values of the subgraphs it analysed (the taken If branch; both when the
   * condition is not known without data; Loop/Scan bodies: one iteration, said in `note`).
   */
  scope?: string;
  /** Topological position of the producer (for plots along the graph; a subgraph value: its outermost If/Loop/Scan node's). */
  order?: number;
  /** For gradients: the kind of the value the gradient belongs to. */
  gradientOf?: 'weight' | 'activation' | 'input';
  /** Measured extras (measure mode). */
  measured?: {
    std: number;
    min: number;
    max: number;
    absP50: number;
    absP99: number;
    absP999: number;
    fracZero: number;
    count: number;
    nonFinite: number;
    /** log2|x| histogram: bins of width 1 from `log2Min`; counts. */
    log2Hist?: { log2Min: number; counts: number[] };
  };
  /** measure --compare: the prediction beside the measurement. */
  predicted?: { mean: number | null; rms: number | null; absmax: number | null; log2Error: number | null };
}

export interface FormatSummary {
  format: string;
  tensorsOverflowing: number;
  tensorsUnderflowing: number;
  /** Smallest log2(max / absmax) over tensors (negative = overflow). */
  worstHeadroomBits: number | null;
  /** Its name; a subgraph value's prefixed with its scope ("If_3/then_branch/t_out"). */
  worstTensor: string | null;
  medianSqnrDb: number | null;
}

export interface Report {
  tool: { name: 'unitscale'; version: string };
  model: { path: string; irVersion: number; opsets: Record<string, number> };
  mode: 'predicted' | 'measured' | 'compare';
  formats: string[];
  tensors: TensorReport[];
  summary: {
    tensors: number;
    formats: Record<string, FormatSummary>;
    /** Op types without a rule (their outputs are 'unknown'). */
    unsupportedOps?: string[];
    [key: string]: unknown;
  };
}
