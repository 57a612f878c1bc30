/**
 * Parallel loops: `cluster.preduce(reducer, f, range)` is Julia's `@parallel (reducer) for`, and
 * `cluster.pfor(f, range)` is `@parallel for` without a reducer.
 *
 * The range is cut into one contiguous slice per worker. Each worker runs its slice in a plain
 * loop, `f(i)` a direct JS call per iteration, and reduces as it goes, so the whole loop costs one
 * message per worker. The driver reduces the partial results in slice order, so a reducer needs
 * to be associative, not commutative.
 */
import type { ClusterContext } from '../process/context.ts';
import { InvalidArgumentError, ProcessExitedError, TaskNotFoundError } from '../transport/errors.ts';
import { myid } from '../process/myid.ts';
import { functionError } from '../transport/codec.ts';
import { checkWorkers } from './pmap.ts';
import type { RemoteRef } from '../process/remote-ref.ts';
import { builtinTask, isTask, lookupTask, parseTaskKey } from '../process/task.ts';
import type { Task } from '../process/task.ts';

/** `'+'`, `'*'`, `'min'`, `'max'`, or a task of two arguments that returns their combination. */
export type Reducer<V = unknown> = '+' | '*' | 'min' | 'max' | Task<[V, V], V | Promise<V>>;

/**
 * What a parallel loop runs over: a count `n` (iterations `0..n-1`), a `[start, end)` pair of
 * integers, or the items themselves. A plain array of exactly two integers is a `[start, end)`
 * pair; to loop over two numbers as items, pass them in another iterable (a typed array, a Set).
 */
export type LoopRange<T = number> = number | readonly [number, number] | readonly T[] | Iterable<T>;

/** Options of {@link Cluster.preduce} and {@link Cluster.pfor}. */
export interface LoopOptions {
  /** The pids to run on. @default cluster.workers() */
  workers?: number[];
  /**
   * Read-only data sent with each worker's slice (once per worker) and passed to `f` as its
   * last argument: `f(i, shared)`. Variables a Julia loop body reads are broadcast the same way.
   */
  shared?: unknown;
  /** preduce only: how many times a slice runs again on another worker when its worker dies. @default 0 */
  retries?: number;
}

type Op = '+' | '*' | 'min' | 'max';
/** A slice on the wire: a range `[a, b)` or items. */
type Slice = { a: number; b: number } | { items: unknown[] };
/** A worker's partial result: `n` iterations folded into `v`. */
interface Partial {
  n: number;
  v?: unknown;
}


const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as PromiseLike<unknown>).then === 'function';

const less = (a: unknown, b: unknown) => (a as number) < (b as number);
/** `min`/`max` keep the first of equals and let NaN through, like Julia's. */
const pickMin = (acc: unknown, v: unknown) => (less(v, acc) || v !== v ? v : acc);
const pickMax = (acc: unknown, v: unknown) => (less(acc, v) || v !== v ? v : acc);

function combiner(op: string): (a: unknown, b: unknown) => unknown {
  switch (op) {
    case '+': return (a, b) => (a as number) + (b as number);
    case '*': return (a, b) => (a as number) * (b as number);
    case 'min': return pickMin;
    case 'max': return pickMax;
    default: return taskFn(op);
  }
}

function taskFn(key: string): (...a: unknown[]) => unknown {
  const fn = lookupTask(key);
  if (!fn) {
    const { module, name } = parseTaskKey(key);
    throw new TaskNotFoundError(module, name, myid());
  }
  return fn;
}

// The range loops are written out per operator: the loop body is then one direct call of `f`
// and one arithmetic op, which V8 inlines and optimizes like a hand-written loop. Each folds from
// the left, starting at `acc`, exactly as a serial loop does.
function sumFrom(f: (i: number, s: unknown) => number, acc: number, a: number, b: number, s: unknown): number {
  for (let i = a; i < b; i++) acc += f(i, s);
  return acc;
}
function prodFrom(f: (i: number, s: unknown) => number, acc: number, a: number, b: number, s: unknown): number {
  for (let i = a; i < b; i++) acc *= f(i, s);
  return acc;
}
function foldFrom(f: (x: unknown, s: unknown) => unknown, comb: (x: unknown, y: unknown) => unknown, at: (k: number) => unknown, acc: unknown, from: number, to: number, s: unknown): unknown {
  for (let k = from; k < to; k++) acc = comb(acc, f(at(k), s));
  return acc;
}

/** The rest of a slice once `f` or the reducer turned out to be async. */
async function foldAsync(f: (x: unknown, s: unknown) => unknown, comb: (x: unknown, y: unknown) => unknown, at: (k: number) => unknown, acc: unknown, from: number, to: number, s: unknown): Promise<unknown> {
  acc = await acc;
  for (let k = from; k < to; k++) acc = await comb(acc, await f(at(k), s));
  return acc;
}

/**
 * Reduces one slice on this process: `f(i)` for each `i` of the slice (or each item), folded with
 * `op` from the left. A sync `f` runs in a tight loop; an async `f` or reducer (detected from the
 * first results) is awaited item by item.
 */
export const reduceSlice = builtinTask('loops', function colonyReduceSlice(fKey: string, op: string, slice: Slice, shared: { v: unknown } | null): Partial | Promise<Partial> {
  const f = taskFn(fKey);
  const comb = combiner(op);
  const s = shared?.v;
  const isItems = 'items' in slice;
  const at: (k: number) => unknown = isItems ? (k) => slice.items[k] : (k) => k;
  const [from, to] = isItems ? [0, slice.items.length] : [slice.a, slice.b];
  const n = to - from;
  if (n <= 0) return { n: 0 };
  const done = (v: unknown): Partial => ({ n, v });
  let acc = f(at(from), s);
  if (isThenable(acc)) return foldAsync(f, comb, at, acc, from + 1, to, s).then(done);
  if (n === 1) return done(acc);
  // The first combination tells whether the reducer is async.
  acc = comb(acc, f(at(from + 1), s));
  if (isThenable(acc)) return foldAsync(f, comb, at, acc, from + 2, to, s).then(done);
  if (!isItems && typeof acc === 'number' && (op === '+' || op === '*')) {
    const g = f as (i: number, s: unknown) => number;
    return done(op === '+' ? sumFrom(g, acc, from + 2, to, s) : prodFrom(g, acc, from + 2, to, s));
  }
  return done(foldFrom(f, comb, at, acc, from + 2, to, s));
});

/** Runs `f(i)` for each `i` of one slice on this process (`@parallel for` without a reducer). */
export const forSlice = builtinTask('loops', function colonyForSlice(fKey: string, slice: Slice, shared: { v: unknown } | null): null | Promise<null> {
  const f = taskFn(fKey);
  const s = shared?.v;
  const at: (k: number) => unknown = 'items' in slice ? (k) => slice.items[k] : (k) => k;
  const [from, to] = 'items' in slice ? [0, slice.items.length] : [slice.a, slice.b];
  for (let k = from; k < to; k++) {
    const r = f(at(k), s);
    if (isThenable(r)) {
      return (async () => {
        await r;
        for (let j = k + 1; j < to; j++) await f(at(j), s);
        return null;
      })();
    }
  }
  return null;
});

// ------------------------------------------------------------------------ driver side

/** The range as a span `[a, b)` or an items array. */
function parseRange<T>(range: LoopRange<T>): { a: number; b: number } | { items: T[] } {
  if (typeof range === 'number') {
    if (!Number.isSafeInteger(range) || range < 0) throw new InvalidArgumentError('range', `a count must be a whole number >= 0, got ${range}`);
    return { a: 0, b: range };
  }
  if (Array.isArray(range)) {
    if (range.length === 2 && Number.isSafeInteger(range[0]) && Number.isSafeInteger(range[1])) {
      const [a, b] = range as [number, number];
      if (b < a) throw new InvalidArgumentError('range', `[start, end) needs start <= end, got [${a}, ${b})`);
      return { a, b };
    }
    return { items: range as T[] };
  }
  if (range !== null && typeof range === 'object' && typeof (range as Iterable<T>)[Symbol.iterator] === 'function') {
    return { items: Array.from(range as Iterable<T>) };
  }
  throw new InvalidArgumentError('range', `expected a count, a [start, end) pair or an iterable of items, got ${typeof range}`);
}

/** Cuts a range into `w` contiguous slices, dropping empty ones; each keeps its position. */
function slices<T>(r: { a: number; b: number } | { items: T[] }, w: number): Slice[] {
  const len = 'items' in r ? r.items.length : r.b - r.a;
  const out: Slice[] = [];
  for (let i = 0; i < w; i++) {
    const lo = Math.floor((i * len) / w);
    const hi = Math.floor(((i + 1) * len) / w);
    if (hi <= lo) continue;
    out.push('items' in r ? { items: r.items.slice(lo, hi) } : { a: r.a + lo, b: r.a + hi });
  }
  return out;
}

function checkTask(f: unknown, field: string): asserts f is Task {
  if (!isTask(f)) {
    throw new InvalidArgumentError(field, 'expected a task: export const f = task(import.meta.url, function f(i) {...}) in a module loaded with cluster.everywhere()');
  }
}

function parseLoop(cluster: ClusterContext, opts: LoopOptions): { workers: number[]; shared: { v: unknown } | null; retries: number } {
  if (opts === null || typeof opts !== 'object') throw new InvalidArgumentError('opts', 'expected an options object');
  const retries = opts.retries ?? 0;
  if (!(Number.isInteger(retries) && retries >= 0)) throw new InvalidArgumentError('retries', `must be a whole number >= 0, got ${String(retries)}`);
  return {
    workers: opts.workers === undefined ? cluster.workers() : checkWorkers(cluster, opts.workers),
    shared: 'shared' in opts ? { v: opts.shared } : null,
    retries,
  };
}

/**
 * `@parallel (reducer) for i in range f(i) end`.
 * @internal the implementation of {@link Cluster.preduce}
 */
export async function preduce<V>(cluster: ClusterContext, reducer: Reducer<V>, f: Task, range: LoopRange<unknown>, opts: LoopOptions = {}): Promise<V> {
  const isOp = reducer === '+' || reducer === '*' || reducer === 'min' || reducer === 'max';
  if (!isOp && !isTask(reducer)) throw new InvalidArgumentError('reducer', `must be '+', '*', 'min', 'max' or a task of two arguments, got ${typeof reducer === 'string' ? `'${reducer}'` : typeof reducer}`);
  checkTask(f, 'f');
  const r = parseRange(range);
  const o = parseLoop(cluster, opts);
  const op = isOp ? (reducer as Op) : (reducer as Task).key;
  const comb = isOp ? combiner(op) : (reducer as Task<[unknown, unknown], unknown>);
  const pooled = opts.workers === undefined && cluster.demand?.hasPool() === true;
  const partials = pooled
    ? await pooledSlices(cluster, r, (slice, pid) => cluster.remotecallFetch(reduceSlice, pid, f.key, op, slice, o.shared), o.retries)
    : await fixedSlices(cluster, r, o, f, op);
  let acc: { v: unknown } | null = null;
  for (const p of partials) {
    if (p.n === 0) continue;
    acc = acc ? { v: await comb(acc.v, p.v) } : { v: p.v };
  }
  if (acc) return acc.v as V;
  if (reducer === '+') return 0 as V;
  if (reducer === '*') return 1 as V;
  throw new InvalidArgumentError('range', `is empty: a ${isOp ? `'${reducer}'` : 'custom'} reduction of no items has no value`);
}

/** Slices per usable worker when a pool serves the loop: joining workers take the unstarted ones. */
const POOLED_SLICES_PER_WORKER = 4;
const POOLED_MIN_SLICES = 8;

/**
 * With a pool: the range is cut into more slices than workers, and each worker that takes new
 * work (pool and hand-started ones, not draining ones) runs one slice at a time; workers that
 * join meanwhile take the unstarted slices, and the loop waits for the pool rather than run on
 * the driver. The unstarted slices are the loop's ready work. Results stay in slice order.
 */
async function pooledSlices(
  cluster: ClusterContext,
  r: { a: number; b: number } | { items: unknown[] },
  run: (slice: Slice, pid: number) => Promise<Partial>,
  retries: number,
): Promise<Partial[]> {
  const demand = cluster.demand!;
  const parts = slices(r, Math.max(POOLED_MIN_SLICES, POOLED_SLICES_PER_WORKER * demand.usable().length));
  const out = new Array<Partial>(parts.length);
  const starts = sliceStarts(parts);
  const queue = parts.map((_, i) => ({ i, attempt: 0 }));
  const busy = new Set<number>();
  let running = 0;
  let settled = false;
  return new Promise<Partial[]>((resolve, reject) => {
    const stop = (f: () => void) => {
      if (settled) return;
      settled = true;
      unwatch();
      undemand();
      clearInterval(timer);
      f();
    };
    const pump = () => {
      if (settled) return;
      for (const pid of demand.usable()) {
        if (!queue.length) break;
        if (busy.has(pid)) continue;
        const job = queue.shift()!;
        busy.add(pid);
        running++;
        run(parts[job.i]!, pid).then(
          (p) => {
            out[job.i] = p;
            busy.delete(pid);
            running--;
            if (!queue.length && running === 0) stop(() => resolve(out));
            else pump();
          },
          (e: Error) => {
            busy.delete(pid);
            running--;
            if (e.name === 'ProcessExitedError' && job.attempt < retries) {
              queue.unshift({ i: job.i, attempt: job.attempt + 1 });
              pump();
            } else stop(() => reject(loopPlace(e, 2, starts.get(parts[job.i]!) ?? 0)));
          },
        );
      }
      if (queue.length && running === 0 && !demand.usable().length && !demand.hasPool()) {
        stop(() => reject(new ProcessExitedError(1, `no pool serves the cluster any more and no worker is left; ${queue.length} of ${parts.length} slices not run`)));
      }
    };
    const unwatch = cluster.registry.watchReady(() => pump());
    const undemand = demand.add(() => (settled ? 0 : queue.length));
    const timer = setInterval(pump, 250);
    if (!parts.length) stop(() => resolve(out));
    else pump();
  });
}

async function fixedSlices(cluster: ClusterContext, r: { a: number; b: number } | { items: unknown[] }, o: ReturnType<typeof parseLoop>, f: Task, op: string): Promise<Partial[]> {
  const parts = slices(r, o.workers.length);
  const live = [...o.workers];
  let turn = 0;

  const starts = sliceStarts(parts);
  const runSlice = async (slice: Slice, pid: number, attempt: number): Promise<Partial> => {
    try {
      return await cluster.remotecallFetch(reduceSlice, pid, f.key, op, slice, o.shared);
    } catch (e) {
      if ((e as Error).name !== 'ProcessExitedError' || attempt >= o.retries) throw loopPlace(e, 2, starts.get(slice) ?? 0);
      // Its worker died: the slice runs again on the next worker still alive.
      const i = live.indexOf(pid);
      if (i >= 0) live.splice(i, 1);
      const next = live.filter((p) => p === cluster.node.pid || cluster.registry.has(p));
      if (!next.length) throw new ProcessExitedError(pid, `every worker of this preduce (${o.workers.join(', ')}) is gone`);
      return runSlice(slice, next[turn++ % next.length]!, attempt + 1);
    }
  };
  return Promise.all(parts.map((s, i) => runSlice(s, o.workers[i]!, 0)));
}

/**
 * `@parallel for i in range f(i) end`: returns at once, one RemoteRef per worker slice. Waiting
 * for them all (`await Promise.all(refs.map((r) => r.wait()))`) is Julia's `@sync`.
 * @internal the implementation of {@link Cluster.pfor}
 */
export function pfor(cluster: ClusterContext, f: Task, range: LoopRange<unknown>, opts: LoopOptions = {}): RemoteRef<null>[] {
  checkTask(f, 'f');
  const r = parseRange(range);
  const o = parseLoop(cluster, opts);
  // A pool's draining workers get no new slice.
  const usable = opts.workers === undefined && cluster.demand?.hasPool() ? cluster.demand.usable() : [];
  const workers = usable.length ? usable : o.workers;
  const parts = slices(r, workers.length);
  const starts = sliceStarts(parts);
  return parts.map((s, i) => {
    try {
      return cluster.remotecall(forSlice, workers[i]!, f.key, s, o.shared) as RemoteRef<null>;
    } catch (e) {
      throw loopPlace(e, 1, starts.get(s) ?? 0);
    }
  });
}

/** Where each slice of items starts in the loop's range. */
function sliceStarts(parts: Slice[]): Map<Slice, number> {
  const out = new Map<Slice, number>();
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += 'items' in p ? p.items.length : 0;
  }
  return out;
}

/**
 * A value that cannot be sent, its place named from the loop's arguments rather than the slice
 * call's: `range[12].cb` (an item), `shared.fn`. `sliceArg` is the slice's index in the call.
 */
function loopPlace(e: unknown, sliceArg: number, start: number): unknown {
  const path = (e as { path?: (string | number)[] }).path;
  if (!path || path[0] !== 'args') return e;
  if (path[1] === sliceArg + 1 && path[2] === 'v') return functionError(['shared', ...path.slice(3)]);
  if (path[1] === sliceArg && path[2] === 'items' && typeof path[3] === 'number') return functionError(['range', start + path[3], ...path.slice(4)]);
  return e;
}
