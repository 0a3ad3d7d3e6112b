/**
 * Exit codes are part of the CLI contract (README "Exit codes"); scripts branch on them.
 * Every failure the user can cause is a UnitscaleError carrying one of these codes and a
 * one-line message; anything else reaching the top level is a bug (INTERNAL).
 */
export const ExitCode = {
  OK: 0,
  /** A risk exceeded a gate threshold (analyze/measure with --fail-on). */
  RISK: 1,
  /** Bad flags or arguments. */
  USAGE: 2,
  /** The model (or its external data) cannot be read or is malformed. */
  BAD_MODEL: 3,
  /** An input tensor file is unreadable or does not match the model. */
  BAD_INPUT: 4,
  /** ONNX Runtime could not run the model. */
  RUNTIME: 5,
  /** An output file could not be written. */
  WRITE: 6,
  /** A bug in unitscale itself. */
  INTERNAL: 70,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export class UnitscaleError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
  ) {
    super(message);
    this.name = 'UnitscaleError';
  }
}

export class ModelError extends UnitscaleError {
  constructor(message: string) {
    super(message, ExitCode.BAD_MODEL);
    this.name = 'ModelError';
  }
}

export class UsageError extends UnitscaleError {
  constructor(message: string) {
    super(message, ExitCode.USAGE);
    this.name = 'UsageError';
  }
}

export class InputError extends UnitscaleError {
  constructor(message: string) {
    super(message, ExitCode.BAD_INPUT);
    this.name = 'InputError';
  }
}
