/**
 * The CLI shell: parse flags, call the stages, render, and map every failure to a one-line
 * message and a documented exit code (src/errors.ts). Nothing here computes statistics.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, UnitscaleError } from '../errors.js';
import { registerAnalyze } from './commands/analyze.js';
import { registerInspect } from './commands/inspect.js';
import { registerMeasure } from './commands/measure.js';
import { registerRewrite } from './commands/rewrite.js';
import { VERSION } from '../version.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('unitscale')
    .description('Predict, measure and fix the scale of every tensor of an ONNX model for FP8/FP16')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerInspect(program);
  registerAnalyze(program);
  registerMeasure(program);
  registerRewrite(program);
  for (const c of program.commands) c.exitOverride();
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (e) {
    return reportError(e);
  }
}

export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    // --help and --version end through here with exit code 0.
    if (e.exitCode === 0 || e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return ExitCode.OK;
    return ExitCode.USAGE;
  }
  if (e instanceof UnitscaleError) {
    process.stderr.write(`unitscale: ${e.message.split('\n')[0]}\n`);
    return e.exitCode;
  }
  const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
  process.stderr.write(`unitscale: internal error: ${msg} (set UNITSCALE_DEBUG=1 for details)\n`);
  if (process.env.UNITSCALE_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
  return ExitCode.INTERNAL;
}
