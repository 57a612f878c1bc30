/**
 * Remotely callable functions. A task is a module export wrapped by `task(import.meta.url, fn)`:
 * the pair (module URL, function name) names it on every process that loaded the module.
 *
 * @example
 * // tasks.ts
 * export const countHeads = task(import.meta.url, function countHeads(n: number) {
 *   let c = 0; for (let i = 0; i < n; i++) c += Math.random() < 0.5 ? 1 : 0; return c;
 * });
 */
import { InvalidArgumentError } from '../transport/errors.ts';

/** A callable function with a cluster-wide name. Calling it directly runs it locally. */
export interface Task<A extends unknown[] = any[], R = unknown> {
  (...args: A): R;
  /** The module URL that defines the task. */
  readonly module: string;
  /** The function's name. */
  readonly taskName: string;
  /** `module#name`, the key workers look the task up by. */
  readonly key: string;
}

const registry = new Map<string, (...args: unknown[]) => unknown>();

const FN = Symbol('colony.taskFn');

/** Wraps `fn` as a task of module `moduleUrl` (pass `import.meta.url`). */
export function task<A extends unknown[], R>(moduleUrl: string, fn: (...args: A) => R): Task<A, R> {
  const t = makeTask(moduleUrl, fn);
  registry.set(t.key, fn as (...args: unknown[]) => unknown);
  return t;
}

/**
 * A task of the runtime itself (pmap's batch runner, an array's chunk init), named
 * `colony:<scope>#<name>` so the key is the same whichever copy of the runtime (sources or
 * dist/) a process runs. It is not callable remotely until {@link registerTasks} registers it:
 * each capability lists its tasks, and the process that hosts the capability registers them.
 */
export function builtinTask<A extends unknown[], R>(scope: string, fn: (...args: A) => R): Task<A, R> {
  return makeTask(`colony:${scope}`, fn);
}

/** Makes `tasks` (from {@link builtinTask}) callable in this process. */
export function registerTasks(tasks: readonly Task[]): void {
  for (const t of tasks) registry.set(t.key, (t as unknown as { [FN]: (...args: unknown[]) => unknown })[FN]);
}

function makeTask<A extends unknown[], R>(moduleUrl: string, fn: (...args: A) => R): Task<A, R> {
  if (typeof moduleUrl !== 'string' || !/^[a-z][a-z0-9+.-]*:/i.test(moduleUrl)) {
    throw new InvalidArgumentError('moduleUrl', `task() needs the module URL first: task(import.meta.url, fn); got ${String(moduleUrl)}`);
  }
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'task() wraps a function');
  if (!fn.name) throw new InvalidArgumentError('fn', 'a task function needs a name: task(import.meta.url, function myTask(...) {...})');
  const key = `${moduleUrl}#${fn.name}`;
  const wrapped = ((...args: A) => fn(...args)) as Task<A, R>;
  Object.defineProperties(wrapped, {
    module: { value: moduleUrl, enumerable: true },
    taskName: { value: fn.name, enumerable: true },
    key: { value: key, enumerable: true },
    name: { value: fn.name },
    [FN]: { value: fn },
  });
  return wrapped;
}

/** The function registered under `key` in this process, if its module was loaded. */
export function lookupTask(key: string): ((...args: unknown[]) => unknown) | undefined {
  return registry.get(key);
}

/** Splits a task key into module and name. */
export function parseTaskKey(key: string): { module: string; name: string } {
  const i = key.lastIndexOf('#');
  return { module: key.slice(0, i), name: key.slice(i + 1) };
}

export function isTask(f: unknown): f is Task {
  return typeof f === 'function' && typeof (f as Task).key === 'string' && typeof (f as Task).module === 'string';
}
