/**
 * GitHub Actions workflow-command annotations (`::error file=…,title=…::message`), printed when
 * GITHUB_ACTIONS=true so findings show on the run's summary and the pull request.
 *
 * Escaping follows the runner's rules: in the message `%`, CR and LF are percent-encoded; in
 * property values also `:` and `,`. Tensor names are untrusted, so every piece goes through them
 * (a name holding a newline cannot start a command of its own).
 */
import path from 'node:path';
import type { Violation } from './evaluate.js';

export function escapeData(s: string): string {
  return s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

export function escapeProperty(s: string): string {
  return escapeData(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
}

/** The file as annotations want it: relative to the working directory (the checkout), forward slashes. */
export function annotationFile(modelPath: string, cwd: string = process.cwd()): string {
  const abs = path.resolve(cwd, modelPath);
  const rel = path.relative(cwd, abs);
  return (rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : abs).split(path.sep).join('/');
}

export function annotationLine(v: Violation, modelPath: string, cwd?: string): string {
  const title = `unitscale ${v.rule} (${v.format})`;
  return `::${v.level} file=${escapeProperty(annotationFile(modelPath, cwd))},title=${escapeProperty(title)}::${escapeData(v.message)}`;
}

export interface AnnotationOptions {
  cwd?: string;
  /** At most this many lines per level (GitHub shows 10 per level and step; default 50). */
  limit?: number;
}

/** The annotation lines for a gate result (errors first), with a notice when some were left out. */
export function annotationLines(violations: readonly Violation[], modelPath: string, opts: AnnotationOptions = {}): string[] {
  const limit = opts.limit ?? 50;
  const lines: string[] = [];
  const left = { error: 0, warning: 0 };
  const shown = { error: 0, warning: 0 };
  for (const v of violations) {
    if (shown[v.level] >= limit) {
      left[v.level]++;
      continue;
    }
    shown[v.level]++;
    lines.push(annotationLine(v, modelPath, opts.cwd));
  }
  const more = left.error + left.warning;
  if (more > 0) {
    lines.push(
      `::notice file=${escapeProperty(annotationFile(modelPath, opts.cwd))},title=unitscale::${escapeData(
        `${more} more finding(s) not annotated (${left.error} error, ${left.warning} warning); see the SARIF or HTML report`,
      )}`,
    );
  }
  return lines;
}

export function isGithubActions(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.GITHUB_ACTIONS === 'true';
}
