/**
 * SARIF 2.1.0 (OASIS Static Analysis Results Interchange Format) for code-scanning upload.
 *
 * One run; one rule per finding kind; one result per (tensor, format, rule). A model is a binary
 * file, so a result's location is the file (physicalLocation.artifactLocation.uri, relative to
 * the working directory when inside it, which is the repository root in CI) plus the tensor as
 * a logical location `node/tensor`. partialFingerprints identify a finding across runs, since
 * code scanning cannot fingerprint lines of a binary file itself.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Report } from '../report/types.js';
import type { GateResult, RuleId, Violation } from './evaluate.js';

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json';
export const INFORMATION_URI = 'https://www.npmjs.com/package/unitscale';

interface RuleInfo {
  name: string;
  short: string;
  help: string;
}

export const SARIF_RULES: Record<RuleId, RuleInfo> = {
  overflow: {
    name: 'TensorOverflow',
    short: 'Tensor values exceed the largest finite value of a low-precision format',
    help:
      'A share of the elements is larger in magnitude than the format can hold: they saturate (FN formats with saturate=1) or become Inf/NaN. ' +
      'Scale the tensor down (unit scaling: divide a matmul output by sqrt(fan-in)), keep this op in a wider format, or allow it in the config (ignore).',
  },
  underflow: {
    name: 'TensorUnderflow',
    short: 'Non-zero tensor values round to zero in a low-precision format',
    help:
      'A share of the non-zero elements is below half the smallest subnormal of the format and is flushed to zero. ' +
      'Scale the tensor up (e.g. a loss scale for gradients), keep it in a wider format, or allow it in the config (ignore).',
  },
  'low-sqnr': {
    name: 'LowSqnr',
    short: 'Signal-to-quantisation-noise ratio below the threshold',
    help:
      'SQNR = 10·log10(Σx² / Σ(x − q(x))²). A low value means the cast loses more precision than the format should: ' +
      'usually the tensor sits off-centre in the format range (many subnormals or clipped values).',
  },
  'new-risk': {
    name: 'NewRisk',
    short: 'A tensor exceeds a threshold that it did not exceed in the baseline report',
    help: 'Compared with the baseline (--baseline), this tensor is newly at risk in a format. Look at what changed in the export around its producer.',
  },
  'headroom-loss': {
    name: 'HeadroomLoss',
    short: 'A tensor lost headroom below the format maximum since the baseline',
    help:
      'Headroom = log2(format max / bound), bound = absmax or 6·RMS. It shrank by more than the tolerance (regression.headroomBits) ' +
      'and is below the margin (regression.marginBits): the tensor is growing towards overflow.',
  },
  'sqnr-loss': {
    name: 'SqnrLoss',
    short: 'A tensor lost SQNR since the baseline',
    help: 'The SQNR in this format dropped by more than the tolerance (regression.sqnrDb) compared with the baseline report.',
  },
};

const RULE_IDS = Object.keys(SARIF_RULES) as RuleId[];

export interface SarifLog {
  $schema: string;
  version: '2.1.0';
  runs: SarifRun[];
}

export interface SarifRun {
  tool: {
    driver: {
      name: string;
      version: string;
      semanticVersion: string;
      informationUri: string;
      rules: {
        id: string;
        name: string;
        shortDescription: { text: string };
        fullDescription: { text: string };
        help: { text: string; markdown: string };
        defaultConfiguration: { level: 'error' | 'warning' | 'note' };
        properties: { tags: string[] };
      }[];
    };
  };
  artifacts: { location: { uri: string }; mimeType?: string }[];
  results: SarifResult[];
  properties?: Record<string, unknown>;
}

export interface SarifResult {
  ruleId: string;
  ruleIndex: number;
  level: 'error' | 'warning' | 'note';
  message: { text: string };
  locations: {
    physicalLocation: { artifactLocation: { uri: string; index: number } };
    logicalLocations: { name: string; kind: string; fullyQualifiedName: string }[];
  }[];
  partialFingerprints: Record<string, string>;
  properties: Record<string, unknown>;
}

/** The model path as a SARIF URI: relative to `cwd` with forward slashes, or a file:// URI outside it. */
export function artifactUri(modelPath: string, cwd: string = process.cwd()): string {
  const abs = path.resolve(cwd, modelPath);
  const rel = path.relative(cwd, abs);
  if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) {
    return rel.split(path.sep).map(encodeURIComponent).join('/');
  }
  const posix = abs.split(path.sep).map(encodeURIComponent).join('/');
  return `file://${posix.startsWith('/') ? '' : '/'}${posix}`;
}

function fingerprint(v: Violation): string {
  // A subgraph value's scope is appended (main-graph fingerprints stay as they were).
  const scope = v.scope ? `\u0000${v.scope}` : '';
  return createHash('sha256').update(`${v.rule}\u0000${v.format}\u0000${v.kind === 'gradient' ? 'grad' : 'fwd'}\u0000${v.tensor}${scope}`).digest('hex').slice(0, 32);
}

export interface SarifOptions {
  cwd?: string;
}

export function buildSarif(report: Report, result: Pick<GateResult, 'violations'>, modelPath: string, opts: SarifOptions = {}): SarifLog {
  const uri = artifactUri(modelPath, opts.cwd);
  const rules = RULE_IDS.map((id) => {
    const r = SARIF_RULES[id];
    return {
      id,
      name: r.name,
      shortDescription: { text: r.short },
      fullDescription: { text: r.help },
      help: { text: r.help, markdown: `**${r.short}.** ${r.help}` },
      defaultConfiguration: { level: 'warning' as const },
      properties: { tags: ['numerics', 'low-precision', id.includes('loss') || id === 'new-risk' ? 'regression' : 'risk'] },
    };
  });
  const results: SarifResult[] = result.violations.map((v) => ({
    ruleId: v.rule,
    ruleIndex: RULE_IDS.indexOf(v.rule),
    level: v.level,
    message: { text: v.message },
    locations: [
      {
        physicalLocation: { artifactLocation: { uri, index: 0 } },
        logicalLocations: [
          {
            name: v.tensor,
            kind: 'variable',
            fullyQualifiedName: `${v.scope ? `${v.scope}/` : ''}${v.node ? `${v.node}/${v.tensor}` : v.tensor}`,
          },
        ],
      },
    ],
    partialFingerprints: { 'unitscaleFinding/v1': fingerprint(v) },
    properties: {
      format: v.format,
      category: v.category,
      tensorKind: v.kind,
      op: v.op,
      value: v.value,
      threshold: v.threshold,
      headroomBits: v.headroomBits,
    },
  }));
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'unitscale',
            version: report.tool.version,
            semanticVersion: report.tool.version,
            informationUri: INFORMATION_URI,
            rules,
          },
        },
        artifacts: [{ location: { uri }, mimeType: 'application/octet-stream' }],
        results,
        properties: { mode: report.mode, formats: report.formats },
      },
    ],
  };
}

export function renderSarif(report: Report, result: Pick<GateResult, 'violations'>, modelPath: string, opts: SarifOptions = {}): string {
  return `${JSON.stringify(buildSarif(report, result, modelPath, opts), null, 2)}\n`;
}
