/**
 * Errors. Those that cross the wire travel as plain data ({@link ErrorData}) and are rebuilt here
 * by name; never rely on `instanceof` across processes, check `err.name` instead.
 */
import type { ErrorData } from '../../actors/index.ts';

/** Base class: sets `name` from the subclass and keeps `cause`. */
export class ColonyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A task threw on worker `pid`. `stack` is the remote stack. */
export class RemoteException extends ColonyError {
  readonly pid: number;
  readonly remoteName: string;
  readonly remoteStack: string;
  constructor(pid: number, name: string, message: string, stack = '') {
    super(`on worker ${pid}: ${name}: ${message}`);
    this.name = 'RemoteException';
    this.pid = pid;
    this.remoteName = name;
    this.remoteStack = stack;
    // `stack` shows the remote stack first: that is where the bug is.
    this.stack = `RemoteException ${this.message}\n--- remote stack (pid ${pid}) ---\n${stack}`;
  }
}

/** The process that owned a value, or ran a call, has exited or was lost. */
export class ProcessExitedError extends ColonyError {
  readonly pid: number;
  constructor(pid: number, detail = '') {
    super(`worker ${pid} exited${detail ? `: ${detail}` : ''}`);
    this.pid = pid;
  }
}

/** A call named a task that the worker has not loaded. */
export class TaskNotFoundError extends ColonyError {
  readonly module: string;
  readonly exportName: string;
  readonly pid: number;
  constructor(module: string, exportName: string, pid: number) {
    super(
      `task '${exportName}' from ${module} is not loaded on worker ${pid}. ` +
        `Load its module on every worker first: await cluster.everywhere(new URL('${module}')) ` +
        `(tasks must be exported from a module wrapped in task(import.meta.url, fn)).`,
    );
    this.module = module;
    this.exportName = exportName;
    this.pid = pid;
  }
}

/** A cluster manager could not start workers. Carries the scheduler's exit code and stderr. */
export class LaunchError extends ColonyError {
  readonly code: number | null;
  readonly stderr: string;
  readonly manager: string;
  constructor(manager: string, message: string, opts: { code?: number | null; stderr?: string; cause?: unknown } = {}) {
    super(`${manager}: ${message}${opts.stderr ? `\n${opts.stderr.trim()}` : ''}`, { cause: opts.cause });
    this.manager = manager;
    this.code = opts.code ?? null;
    this.stderr = opts.stderr ?? '';
  }
}

/** A task was interrupted by `cluster.interrupt()`. */
export class InterruptException extends ColonyError {
  readonly pid: number;
  constructor(pid: number) {
    super(`task on worker ${pid} was interrupted`);
    this.pid = pid;
  }
}

/** An option or argument is invalid; names the field. */
export class InvalidArgumentError extends ColonyError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

/** A call or fetch did not finish in time. */
export class TimeoutError extends ColonyError {}

/** A persisted transition was refused: a stale writer, or an event the machine does not accept. */
export class JournalConflictError extends ColonyError {}

/** An append was lost: reported at the next flush point, never dropped silently. */
export class JournalAppendError extends ColonyError {}

/** The replayed state differs from the recorded `to` of an event. */
export class DeterminismViolationError extends ColonyError {
  readonly kind: string;
  readonly id: string;
  readonly seq: number;
  readonly type: string;
  readonly recorded: string;
  readonly replayed: string;
  constructor(d: { kind: string; id: string; seq: number; type: string; recorded: string; replayed: string; accepted: boolean }) {
    super(
      `${d.kind}/${d.id} event #${d.seq} '${d.type}': recorded state '${d.recorded}' but replay gives '${d.replayed}'` +
        (d.accepted ? '' : ' (the machine does not accept this event in that state)'),
    );
    Object.assign(this, { kind: d.kind, id: d.id, seq: d.seq, type: d.type, recorded: d.recorded, replayed: d.replayed });
    this.kind = d.kind; this.id = d.id; this.seq = d.seq; this.type = d.type; this.recorded = d.recorded; this.replayed = d.replayed;
  }
}

/** Turns any thrown value into wire data. */
export function toErrorData(err: unknown, pid?: number): ErrorData {
  if (err && typeof err === 'object' && 'name' in err && 'message' in err) {
    const e = err as Error & { pid?: number; module?: string; exportName?: string; remoteStack?: string; remoteName?: string };
    const data: ErrorData & Record<string, unknown> = {
      name: e.name === 'RemoteException' && e.remoteName ? e.remoteName : String(e.name),
      message: e.name === 'RemoteException' ? e.message.replace(/^on worker \d+: [^:]+: /, '') : String(e.message),
      stack: e.remoteStack ?? e.stack ?? '',
      pid: e.pid ?? pid,
    };
    if (e.module) data.module = e.module;
    if (e.exportName) data.exportName = e.exportName;
    return data;
  }
  return { name: 'Error', message: String(err), stack: '', pid };
}

/**
 * Rebuilds the error a caller sees from wire data: framework errors keep their class, anything a
 * task threw becomes a {@link RemoteException}.
 */
export function fromErrorData(d: ErrorData & { module?: string; exportName?: string }, pid: number): Error {
  const at = d.pid ?? pid;
  switch (d.name) {
    case 'ProcessExitedError': return new ProcessExitedError(at, d.message.replace(/^worker \d+ exited:? ?/, ''));
    case 'TaskNotFoundError': return new TaskNotFoundError(d.module ?? '?', d.exportName ?? '?', at);
    case 'InterruptException': return new InterruptException(at);
    case 'TimeoutError': return new TimeoutError(d.message);
    default: return new RemoteException(at, d.name, d.message, d.stack ?? '');
  }
}
