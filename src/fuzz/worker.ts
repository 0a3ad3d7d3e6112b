/**
 * Fuzz worker: a child process that runs cases sent by the runner (src/fuzz/runner.ts) over
 * IPC, one at a time, and answers how each ended. The runner enforces the time and memory
 * limits by killing this process; anything thrown here is classified, never rethrown.
 */
import { ExitCode, UnitscaleError } from '../errors.js';
import { exerciseModel, loadAnalyzer, type Stage } from './exercise.js';

export interface CaseRequest {
  type: 'case';
  id: number;
  file: string;
  analyze: boolean;
  /** Harness self-test: misbehave on purpose. */
  selftest?: 'throw' | 'hang' | 'crash' | 'oom';
}

export interface CaseResponse {
  type: 'result';
  id: number;
  outcome: 'ok' | 'error' | 'failure';
  stage: Stage;
  exitCode?: number;
  errorName?: string;
  message?: string;
}

const documented = new Set<number>(Object.values(ExitCode).filter((c) => c !== ExitCode.OK && c !== ExitCode.INTERNAL));

async function runCase(req: CaseRequest): Promise<CaseResponse> {
  let stage: Stage = 'load';
  try {
    if (req.selftest === 'throw') throw new TypeError('selftest: not a UnitscaleError');
    if (req.selftest === 'hang') for (;;);
    if (req.selftest === 'crash') process.exit(134);
    if (req.selftest === 'oom') {
      const hog: Uint8Array[] = [];
      for (;;) hog.push(new Uint8Array(64 << 20).fill(1));
    }
    await exerciseModel(
      req.file,
      (s) => {
        stage = s;
        // tell the runner, so that a timeout or a crash can say in which stage it happened
        process.send!({ type: 'stage', id: req.id, stage: s });
      },
      { analyze: req.analyze },
    );
    return { type: 'result', id: req.id, outcome: 'ok', stage: 'done' };
  } catch (e) {
    if (e instanceof UnitscaleError) {
      const clean = documented.has(e.exitCode) && !/[\r\n]/.test(e.message) && e.message.length > 0;
      return { type: 'result', id: req.id, outcome: clean ? 'error' : 'failure', stage, exitCode: e.exitCode, errorName: e.name, message: e.message };
    }
    const err = e as Error;
    const where = (err?.stack ?? '').split('\n').slice(1, 4).map((l) => l.trim()).join(' < ');
    return {
      type: 'result',
      id: req.id,
      outcome: 'failure',
      stage,
      errorName: err?.name ?? typeof e,
      message: `${String(err?.message ?? e).split('\n')[0]!.slice(0, 300)}${where ? ` @ ${where}` : ''}`,
    };
  }
}

process.on('message', (msg: CaseRequest) => {
  if (msg?.type !== 'case') return;
  void runCase(msg).then((res) => process.send!(res));
});

void loadAnalyzer()
  .then((a) => process.send!({ type: 'ready', analyzer: a !== null }))
  .catch((e: Error) => process.send!({ type: 'ready', analyzer: false, analyzerError: String(e?.message ?? e).split('\n')[0] }));
