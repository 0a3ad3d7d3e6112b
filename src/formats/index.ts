/** Public API of the formats module: format definitions, casting, and per-format risk. */
export {
  FormatError,
  formatForOnnxType,
  listFormats,
  makeFormat,
  parseFormat,
  type Format,
  type MakeFormatOptions,
  type SpecialConvention,
} from './format.js';
export { decode, encode, quantise, quantiseArray } from './quantise.js';
export {
  RiskAccumulator,
  footroomBits,
  headroomBits,
  predictRisk,
  type Distribution,
  type MeasuredRisk,
  type Risk,
} from './risk.js';
