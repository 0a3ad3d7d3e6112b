import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { evaluateGate } from '../../src/gate/evaluate.js';
import { artifactUri, buildSarif, renderSarif } from '../../src/gate/sarif.js';
import { defaultGateConfig } from '../../src/gate/thresholds.js';
import type { FormatRisk, Report, TensorReport } from '../../src/report/types.js';

/*
 * A structural check of the SARIF 2.1.0 shape (OASIS schema sarif-schema-2.1.0.json), written
 * out for the objects unitscale emits: required properties, types, enums, and — since the schema
 * closes its objects with additionalProperties: false — no property outside the schema's list.
 */
type Json = unknown;
const errors: string[] = [];
function fail(where: string, what: string) {
  errors.push(`${where}: ${what}`);
}
function obj(v: Json, where: string, allowed: string[], required: string[] = []): v is Record<string, Json> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    fail(where, 'not an object');
    return false;
  }
  for (const k of Object.keys(v)) if (!allowed.includes(k)) fail(where, `property "${k}" not allowed`);
  for (const k of required) if (!(k in v)) fail(where, `missing required "${k}"`);
  return true;
}
function str(v: Json, where: string) {
  if (typeof v !== 'string') fail(where, 'not a string');
}
function int(v: Json, where: string, min = -Infinity) {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) fail(where, `not an integer ≥ ${min}`);
}
function arr(v: Json, where: string): v is Json[] {
  if (!Array.isArray(v)) {
    fail(where, 'not an array');
    return false;
  }
  return true;
}
function uriReference(v: Json, where: string) {
  str(v, where);
  if (typeof v === 'string' && (/\s/.test(v) || v.includes('\\'))) fail(where, `not a URI reference: ${v}`);
}
function propertyBag(v: Json, where: string) {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(where, 'not an object');
  const tags = (v as Record<string, Json>).tags;
  if (tags !== undefined && arr(tags, `${where}.tags`)) {
    tags.forEach((t, i) => str(t, `${where}.tags[${i}]`));
    if (new Set(tags).size !== tags.length) fail(`${where}.tags`, 'not unique');
  }
}
function multiformat(v: Json, where: string) {
  if (obj(v, where, ['text', 'markdown', 'properties'], ['text'])) {
    str(v.text, `${where}.text`);
    if (v.markdown !== undefined) str(v.markdown, `${where}.markdown`);
  }
}
function message(v: Json, where: string) {
  if (obj(v, where, ['text', 'markdown', 'id', 'arguments', 'properties'])) {
    if (v.text === undefined && v.id === undefined) fail(where, 'needs text or id');
    if (v.text !== undefined) str(v.text, `${where}.text`);
  }
}
const LEVELS = ['none', 'note', 'warning', 'error'];

function validateSarif(log: Json): string[] {
  errors.length = 0;
  if (!obj(log, 'log', ['$schema', 'version', 'runs', 'inlineExternalProperties', 'properties'], ['version', 'runs'])) return errors;
  uriReference(log.$schema, '$schema');
  if (log.version !== '2.1.0') fail('version', 'must be "2.1.0"');
  if (!arr(log.runs, 'runs')) return errors;
  log.runs.forEach((run, ri) => {
    const w = `runs[${ri}]`;
    const RUN_KEYS = ['tool', 'invocations', 'conversion', 'language', 'versionControlProvenance', 'originalUriBaseIds', 'artifacts', 'logicalLocations', 'graphs', 'results', 'automationDetails', 'runAggregates', 'baselineGuid', 'redactionTokens', 'defaultEncoding', 'defaultSourceLanguage', 'newlineSequences', 'columnKind', 'externalPropertyFileReferences', 'threadFlowLocations', 'taxonomies', 'addresses', 'translations', 'policies', 'webRequests', 'webResponses', 'specialLocations', 'properties'];
    if (!obj(run, w, RUN_KEYS, ['tool'])) return;
    if (run.properties !== undefined) propertyBag(run.properties, `${w}.properties`);
    let ruleIds: string[] = [];
    if (obj(run.tool, `${w}.tool`, ['driver', 'extensions', 'properties'], ['driver'])) {
      const d = run.tool.driver;
      const DRIVER_KEYS = ['guid', 'name', 'organization', 'product', 'productSuite', 'shortDescription', 'fullDescription', 'fullName', 'version', 'semanticVersion', 'dottedQuadFileVersion', 'releaseDateUtc', 'downloadUri', 'informationUri', 'globalMessageStrings', 'notifications', 'rules', 'taxa', 'locations', 'language', 'contents', 'isComprehensive', 'localizedDataSemanticVersion', 'minimumRequiredLocalizedDataSemanticVersion', 'associatedComponent', 'translationMetadata', 'supportedTaxonomies', 'properties'];
      if (obj(d, `${w}.tool.driver`, DRIVER_KEYS, ['name'])) {
        str(d.name, 'driver.name');
        str(d.version, 'driver.version');
        uriReference(d.informationUri, 'driver.informationUri');
        if (typeof d.informationUri === 'string' && !/^https?:\/\//.test(d.informationUri)) fail('driver.informationUri', 'not an absolute URI');
        if (arr(d.rules, 'driver.rules')) {
          d.rules.forEach((r, i) => {
            const rw = `driver.rules[${i}]`;
            const RULE_KEYS = ['id', 'deprecatedIds', 'guid', 'deprecatedGuids', 'name', 'deprecatedNames', 'shortDescription', 'fullDescription', 'messageStrings', 'defaultConfiguration', 'helpUri', 'help', 'relationships', 'properties'];
            if (!obj(r, rw, RULE_KEYS, ['id'])) return;
            str(r.id, `${rw}.id`);
            ruleIds.push(r.id as string);
            if (r.name !== undefined) str(r.name, `${rw}.name`);
            multiformat(r.shortDescription, `${rw}.shortDescription`);
            if (r.fullDescription !== undefined) multiformat(r.fullDescription, `${rw}.fullDescription`);
            multiformat(r.help, `${rw}.help`);
            if (r.defaultConfiguration !== undefined && obj(r.defaultConfiguration, `${rw}.defaultConfiguration`, ['enabled', 'level', 'rank', 'parameters', 'properties'])) {
              if (!LEVELS.includes(r.defaultConfiguration.level as string)) fail(`${rw}.defaultConfiguration.level`, 'bad level');
            }
            if (r.properties !== undefined) propertyBag(r.properties, `${rw}.properties`);
          });
          if (new Set(ruleIds).size !== ruleIds.length) fail('driver.rules', 'duplicate ids');
        }
      }
    }
    if (run.artifacts !== undefined && arr(run.artifacts, `${w}.artifacts`)) {
      run.artifacts.forEach((a, i) => {
        const aw = `${w}.artifacts[${i}]`;
        if (!obj(a, aw, ['description', 'location', 'parentIndex', 'offset', 'length', 'roles', 'mimeType', 'contents', 'encoding', 'sourceLanguage', 'hashes', 'lastModifiedTimeUtc', 'properties'])) return;
        if (obj(a.location, `${aw}.location`, ['uri', 'uriBaseId', 'index', 'description', 'properties'])) uriReference(a.location.uri, `${aw}.location.uri`);
        if (a.mimeType !== undefined && !/[^/]+\/.+/.test(String(a.mimeType))) fail(`${aw}.mimeType`, 'bad MIME type');
      });
    }
    if (!arr(run.results, `${w}.results`)) return;
    run.results.forEach((res, i) => {
      const rw = `${w}.results[${i}]`;
      const RESULT_KEYS = ['ruleId', 'ruleIndex', 'rule', 'kind', 'level', 'message', 'analysisTarget', 'locations', 'guid', 'correlationGuid', 'occurrenceCount', 'partialFingerprints', 'fingerprints', 'stacks', 'codeFlows', 'graphs', 'graphTraversals', 'relatedLocations', 'suppressions', 'baselineState', 'rank', 'attachments', 'hostedViewerUri', 'workItemUris', 'provenance', 'fixes', 'taxa', 'webRequest', 'webResponse', 'properties'];
      if (!obj(res, rw, RESULT_KEYS, ['message'])) return;
      message(res.message, `${rw}.message`);
      str(res.ruleId, `${rw}.ruleId`);
      int(res.ruleIndex, `${rw}.ruleIndex`, -1);
      if (ruleIds[res.ruleIndex as number] !== res.ruleId) fail(`${rw}.ruleIndex`, 'does not point at the rule of ruleId');
      if (!LEVELS.includes(res.level as string)) fail(`${rw}.level`, 'bad level');
      if (res.partialFingerprints !== undefined && obj(res.partialFingerprints, `${rw}.partialFingerprints`, Object.keys(res.partialFingerprints as object))) {
        for (const [k, v] of Object.entries(res.partialFingerprints)) str(v, `${rw}.partialFingerprints.${k}`);
      }
      if (res.properties !== undefined) propertyBag(res.properties, `${rw}.properties`);
      if (!arr(res.locations, `${rw}.locations`)) return;
      res.locations.forEach((loc, li) => {
        const lw = `${rw}.locations[${li}]`;
        if (!obj(loc, lw, ['id', 'physicalLocation', 'logicalLocations', 'message', 'annotations', 'relationships', 'properties'])) return;
        if (obj(loc.physicalLocation, `${lw}.physicalLocation`, ['address', 'artifactLocation', 'region', 'contextRegion', 'properties'])) {
          const pl = loc.physicalLocation;
          if (pl.artifactLocation === undefined && pl.address === undefined) fail(`${lw}.physicalLocation`, 'needs artifactLocation or address');
          if (obj(pl.artifactLocation, `${lw}.physicalLocation.artifactLocation`, ['uri', 'uriBaseId', 'index', 'description', 'properties'])) {
            uriReference(pl.artifactLocation.uri, `${lw}.artifactLocation.uri`);
            if (pl.artifactLocation.index !== undefined) int(pl.artifactLocation.index, `${lw}.artifactLocation.index`, -1);
          }
        }
        if (loc.logicalLocations !== undefined && arr(loc.logicalLocations, `${lw}.logicalLocations`)) {
          loc.logicalLocations.forEach((ll, k) => {
            const llw = `${lw}.logicalLocations[${k}]`;
            if (!obj(ll, llw, ['name', 'index', 'fullyQualifiedName', 'decoratedName', 'parentIndex', 'kind', 'properties'])) return;
            str(ll.name, `${llw}.name`);
            str(ll.kind, `${llw}.kind`);
            str(ll.fullyQualifiedName, `${llw}.fullyQualifiedName`);
          });
        }
      });
    });
  });
  return [...errors];
}

const risk = (overflow = 0, underflow = 0, sqnrDb: number | null = 31): FormatRisk => ({ overflow, underflow, subnormal: 0, sqnrDb });
function tensor(name: string, r: Record<string, FormatRisk>, extra: Partial<TensorReport> = {}): TensorReport {
  return { name, kind: 'activation', op: 'MatMul', node: 'mm', dtype: 'float32', shape: [1], mean: 0, rms: 1, absmax: 4, risk: r, confidence: 'high', ...extra };
}
const report: Report = {
  tool: { name: 'unitscale', version: '0.1.0' },
  model: { path: 'models/m.onnx', irVersion: 8, opsets: { '': 17 } },
  mode: 'predicted',
  formats: ['e4m3', 'fp16'],
  tensors: [
    tensor('hot "x" <y>', { e4m3: risk(0.2), fp16: risk(0, 0, 70) }),
    tensor('w', { e4m3: risk(0, 0.4), fp16: risk(0, 0, 70) }, { kind: 'weight', op: 'initializer', node: null }),
    tensor('ok', { e4m3: risk(), fp16: risk(0, 0, 70) }),
  ],
  summary: { tensors: 3, formats: {} },
};

describe('SARIF', () => {
  const result = evaluateGate(report, { ...defaultGateConfig(), failOn: ['overflow'] });
  const cwd = path.resolve('/repo');
  const log = buildSarif(report, result, 'models/m.onnx', { cwd });

  it('validates against the 2.1.0 shape', () => {
    expect(validateSarif(log)).toEqual([]);
    expect(validateSarif(JSON.parse(renderSarif(report, result, 'models/m.onnx', { cwd })))).toEqual([]);
  });

  it('the validator itself catches mistakes', () => {
    const broken = JSON.parse(JSON.stringify(log));
    broken.version = '2.0.0';
    broken.runs[0].results[0].ruleIndex = 99;
    broken.runs[0].results[0].locations[0].physicalLocation.artifactLocation.uri = 'C:\\x y';
    broken.runs[0].tool.driver.extra = 1;
    delete broken.runs[0].results[1].message;
    expect(validateSarif(broken)).toEqual([
      'version: must be "2.1.0"',
      'runs[0].tool.driver: property "extra" not allowed',
      'runs[0].results[0].ruleIndex: does not point at the rule of ruleId',
      'runs[0].results[0].locations[0].artifactLocation.uri: not a URI reference: C:\\x y',
      'runs[0].results[1]: missing required "message"',
      'runs[0].results[1].message: not an object',
    ]);
  });

  it('carries the tool, the rules and one result per finding', () => {
    const run = log.runs[0]!;
    expect(log.$schema).toMatch(/sarif.*2\.1\.0.*\.json$/);
    expect(run.tool.driver).toMatchObject({ name: 'unitscale', version: '0.1.0' });
    expect(run.tool.driver.rules.map((r) => r.id)).toEqual(['overflow', 'underflow', 'low-sqnr', 'new-risk', 'headroom-loss', 'sqnr-loss']);
    for (const r of run.tool.driver.rules) {
      expect(r.shortDescription.text.length).toBeGreaterThan(10);
      expect(r.help.text.length).toBeGreaterThan(10);
    }
    expect(run.results.map((r) => [r.ruleId, r.level])).toEqual([
      ['overflow', 'error'],
      ['underflow', 'warning'],
    ]);
  });

  it('locates results in the model file and the tensor', () => {
    const [first, second] = log.runs[0]!.results;
    expect(first!.locations[0]!.physicalLocation.artifactLocation.uri).toBe('models/m.onnx');
    expect(first!.locations[0]!.logicalLocations).toEqual([{ name: 'hot "x" <y>', kind: 'variable', fullyQualifiedName: 'mm/hot "x" <y>' }]);
    expect(second!.locations[0]!.logicalLocations[0]!.fullyQualifiedName).toBe('w');
    expect(first!.message.text).toContain('hot "x" <y> (MatMul mm): 20% of the elements overflow e4m3');
    expect(first!.properties).toMatchObject({ format: 'e4m3', value: 0.2, threshold: 1e-6 });
  });

  it('gives stable fingerprints that differ per finding', () => {
    const again = buildSarif(report, result, 'models/m.onnx', { cwd });
    const fp = (l: typeof log) => l.runs[0]!.results.map((r) => r.partialFingerprints['unitscaleFinding/v1']);
    expect(fp(again)).toEqual(fp(log));
    expect(new Set(fp(log)).size).toBe(2);
  });

  it('writes URIs relative to the working directory, file:// outside it, percent-encoded', () => {
    expect(artifactUri('/repo/models/a b.onnx', '/repo')).toBe('models/a%20b.onnx');
    expect(artifactUri('/elsewhere/m.onnx', '/repo')).toBe('file:///elsewhere/m.onnx');
  });

  it('an empty result set is still a valid log', () => {
    const empty = buildSarif(report, { violations: [] }, 'm.onnx', { cwd });
    expect(validateSarif(empty)).toEqual([]);
    expect(empty.runs[0]!.results).toEqual([]);
  });
});
