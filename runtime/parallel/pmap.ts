/**
 * `cluster.pmap(f, items, opts)`: Julia's pmap with dynamic scheduling, batching, retries on
 * lost workers, per-item timeouts, cancellation and read-only shared data.
 *
 * Driver side, one feeder per worker takes the next batch of items when its worker finishes one,
 * as in the manual's "Scheduling" section. A feeder keeps up to two batches in flight so a
 * worker never waits a round trip for work, and drops to one near the end so no worker sits on
 * queued work while another is idle. With the default `batchSize: 'auto'` the batch grows until
 * one batch computes for about {@link AUTO_TARGET_BATCH_MS}, but never past 1/4 of a worker's
 * share of what is left (guided self-scheduling), so the tail stays balanced.
 *
 * Worker side, a builtin task runs one batch: a plain JS loop over the items, under a SIGINT
 * guard so `cluster.interrupt()` stops it, with a per-item time limit when `timeoutMs` is set.
 *
 * Each run is a `map` actor, persisted under `colony.<c>.evt.map.<id>`.
 */
import { randomBytes } from 'node:crypto';
import vm from 'node:vm';
import { mapEvents } from '../../actors/index.ts';
import type { ActorEvent, ErrorData } from '../../actors/index.ts';
import type { HostedActor } from '../log/actor-host.ts';
import type { ClusterContext } from '../process/context.ts';
import { encode, functionError } from '../transport/codec.ts';
import { InterruptException, InvalidArgumentError, ProcessExitedError, TaskNotFoundError, TimeoutError, fromErrorData, toErrorData } from '../transport/errors.ts';
import { myid } from '../process/myid.ts';
import type { Reply } from '../process/process-node.ts';
import type { RemoteRef } from '../process/remote-ref.ts';
import { builtinTask, isTask, lookupTask, parseTaskKey } from '../process/task.ts';
import type { Task } from '../process/task.ts';

/** Options of {@link Cluster.pmap}. `E` is what `onError` turns a failed item into. */
export interface PmapOptions<T = unknown, E = unknown> {
  /**
   * Items per message. `'auto'` starts at 1, then sizes batches from the measured time per item
   * (about {@link AUTO_TARGET_BATCH_MS} of work each, at most {@link AUTO_MAX_BATCH} items and
   * 512 KiB), and shrinks them towards the end so the last batches stay small.
   * @default 'auto'
   */
  batchSize?: number | 'auto';
  /**
   * How many times an item runs again, on another worker, when its worker dies (or its call
   * fails with `ProcessExitedError`). Each re-sent batch is a `map.item.retried` event.
   * @default 0
   */
  retries?: number;
  /**
   * Turns a failed item into a value instead of rejecting the whole map. `err.name` says what
   * happened: `RemoteException` (the task threw; `remoteName` is the original name),
   * `TimeoutError`, `ProcessExitedError`, `InterruptException`, `TaskNotFoundError`.
   */
  onError?: (err: Error, item: T) => E | Promise<E>;
  /** Cancels the map: it rejects with `signal.reason` and queued batches are dropped on the workers. */
  signal?: AbortSignal;
  /**
   * Bounds each item, on the worker. An item over the limit fails with a `TimeoutError` (handled
   * like any failure: `onError` or a rejected map). A synchronous item is stopped where it is,
   * an async one is abandoned. Costs about 0.1-0.2 ms per item.
   * @default no limit
   */
  timeoutMs?: number;
  /**
   * The pids to run on, like Julia's `WorkerPool`. Without it the map runs on the whole pool,
   * `cluster.workers()`, and takes in workers that join while it runs (an elastic pool growing
   * under a batch scheduler): each starts taking items as soon as it is ready, recorded as a
   * `map.worker.joined` event. A given list is kept as it is.
   * @default cluster.workers(), growing
   */
  workers?: number[];
  /** Called as items finish, with the count so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /**
   * Read-only data every item needs. It is sent once per worker (put into a RemoteRef owned by
   * that worker) rather than once per item, and passed to `f` as its last argument:
   * `f(item, shared)`. Freed when the map ends.
   */
  shared?: unknown;
  /** The map actor's id (a NATS token, unique in the cluster). @default a random id */
  id?: string;
}

/** Auto batching aims at batches that compute for about this long. */
export const AUTO_TARGET_BATCH_MS = 50;
/** Auto batching never sends more items than this in one message. */
export const AUTO_MAX_BATCH = 10_000;
/** Auto batching keeps a batch's encoded items under this many bytes (estimated from samples). */
export const AUTO_MAX_BATCH_BYTES = 512 * 1024;
/** At most one `map.progressed` event per this many milliseconds. */
export const PROGRESS_EVENT_MS = 250;
/** Each feeder takes at most `1 / GUIDED_SHARE` of its worker's share of the items left. */
const GUIDED_SHARE = 4;

// ------------------------------------------------------------------------ worker side

/** What a worker answers for one batch. `e` lists the items that threw, by position in the batch. */
export interface BatchReply {
  v: unknown[];
  e?: [number, ErrorData][];
  /** Time spent computing the items. */
  ms: number;
  cancelled?: boolean;
}

/** Per-batch options on the wire: `t` timeout per item, `s` the shared value's ref. */
interface BatchOpts {
  t?: number;
  s?: RemoteRef;
}

/** Builtins live in a location-free module name, so every process agrees on their keys. */
/** Maps cancelled on this process, with when; queued batches of these are dropped. */
const cancelled = new Map<string, number>();
const CANCEL_KEEP_MS = 10 * 60_000;

const loopScript = new vm.Script('globalThis.__colonyPmapLoop()');
const itemScript = new vm.Script('globalThis.__colonyPmapItem()');
type Hooks = { __colonyPmapLoop?: () => unknown; __colonyPmapItem?: () => unknown };

const isThenable = (v: unknown): v is PromiseLike<unknown> =>
  v !== null && (typeof v === 'object' || typeof v === 'function') && typeof (v as PromiseLike<unknown>).then === 'function';

/** Runs `fn` inside a vm script, so SIGINT (cluster.interrupt) or `timeout` can stop it mid-loop. */
function runScript<T>(script: vm.Script, hook: keyof Hooks, fn: () => T, timeout?: number): T {
  const g = globalThis as Hooks;
  const prev = g[hook];
  g[hook] = fn;
  try {
    return script.runInThisContext(timeout ? { breakOnSigint: true, timeout } : { breakOnSigint: true }) as T;
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') throw new InterruptException(myid());
    throw e;
  } finally {
    g[hook] = prev;
  }
}

function isInterrupt(e: unknown): boolean {
  return (e as Error)?.name === 'InterruptException';
}

/**
 * Runs one batch of a map on this process: `f(item)` (or `f(item, shared)`) for each item in a
 * plain loop. An item that throws is reported in `e` and the loop goes on.
 */
export const pmapBatch = builtinTask('pmap', async function colonyPmapBatch(mapId: string, fKey: string, items: unknown[], opts: BatchOpts): Promise<BatchReply> {
  // Let a cancel that queued up behind this batch (while the worker was busy) arrive first.
  await new Promise((r) => setImmediate(r));
  if (cancelled.has(mapId)) return { v: [], ms: 0, cancelled: true };
  const fn = lookupTask(fKey);
  if (!fn) {
    const { module, name } = parseTaskKey(fKey);
    throw new TaskNotFoundError(module, name, myid());
  }
  const withShared = opts.s !== undefined;
  const shared = withShared ? await opts.s!.fetch() : undefined;
  const timeout = opts.t;
  const n = items.length;
  const out = new Array<unknown>(n);
  const errs: [number, ErrorData][] = [];
  const fail = (k: number, e: unknown) => {
    if (isInterrupt(e)) throw e;
    errs.push([k, toErrorData(e, myid())]);
  };
  const t0 = performance.now();
  let k = 0;
  // The pending promise of an async item, and when it started.
  let pending: { p: PromiseLike<unknown>; at: number } | null = null;

  const loop = () => {
    for (; k < n; k++) {
      let v: unknown;
      const at = timeout ? performance.now() : 0;
      try {
        if (timeout) v = runScript(itemScript, '__colonyPmapItem', withShared ? () => fn(items[k], shared) : () => fn(items[k]), timeout);
        else v = withShared ? fn(items[k], shared) : fn(items[k]);
      } catch (e) {
        if ((e as { code?: string }).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') fail(k, itemTimeout(timeout!));
        else fail(k, e);
        continue;
      }
      if (isThenable(v)) {
        pending = { p: v, at };
        return;
      }
      out[k] = v;
    }
  };

  while (k < n) {
    runScript(loopScript, '__colonyPmapLoop', loop);
    if (!pending) break;
    const { p, at } = pending as { p: PromiseLike<unknown>; at: number };
    pending = null;
    try {
      out[k] = timeout ? await withTimeout(p, timeout - (performance.now() - at), timeout) : await p;
    } catch (e) {
      fail(k, e);
    }
    k++;
    if (cancelled.has(mapId)) return { v: [], ms: performance.now() - t0, cancelled: true };
  }
  const reply: BatchReply = { v: out, ms: performance.now() - t0 };
  if (errs.length) reply.e = errs;
  return reply;
});

/** Drops the queued batches of a map on this process. */
export const pmapCancel = builtinTask('pmap', function colonyPmapCancel(mapId: string): boolean {
  const now = Date.now();
  for (const [id, at] of cancelled) if (now - at > CANCEL_KEEP_MS) cancelled.delete(id);
  cancelled.set(mapId, now);
  return true;
});

function itemTimeout(ms: number): TimeoutError {
  const e = new TimeoutError(`the item took longer than timeoutMs (${ms} ms)`);
  (e as TimeoutError & { pid: number }).pid = myid();
  return e;
}

function withTimeout<T>(p: PromiseLike<T>, leftMs: number, limit: number): Promise<T> {
  if (leftMs <= 0) return Promise.reject(itemTimeout(limit));
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(itemTimeout(limit)), leftMs);
    p.then(
      (v) => { clearTimeout(t); resolve(v); },
      (e) => { clearTimeout(t); reject(e); },
    );
  });
}

// ------------------------------------------------------------------------ driver side

/** An error from the wire as the user sees it: a TimeoutError stays one. */
function itemError(d: ErrorData, pid: number): Error {
  if (d.name === 'TimeoutError') return Object.assign(new TimeoutError(d.message), { pid: d.pid ?? pid });
  return fromErrorData(d, pid);
}

interface Feeder {
  pid: number;
  alive: boolean;
  inflight: number;
  shared: RemoteRef | null;
}

interface Batch {
  idx: number[];
  /** Times these items were sent before. */
  attempt: number;
}

interface RetryBatch extends Batch {
  lostPid: number;
}

const TOKEN = /^[A-Za-z0-9_-]+$/;

/** Validated options with their defaults. */
interface Parsed<T, R> {
  batchSize: number | 'auto';
  retries: number;
  onError?: (err: Error, item: T) => R | Promise<R>;
  signal?: AbortSignal;
  timeoutMs?: number;
  workers: number[];
  /** No `workers` option: workers that join the cluster during the map take items too. */
  elastic: boolean;
  /** Elastic, with a pool serving the cluster: the map waits for pool workers rather than fail or run here. */
  pooled: boolean;
  onProgress?: (done: number, total: number) => void;
  hasShared: boolean;
  shared: unknown;
  id: string;
}

function parseOptions<T, R>(cluster: ClusterContext, opts: PmapOptions<T, R>): Parsed<T, R> {
  if (opts === null || typeof opts !== 'object') throw new InvalidArgumentError('opts', 'expected an options object');
  const b = opts.batchSize ?? 'auto';
  if (b !== 'auto' && !(Number.isInteger(b) && b >= 1)) throw new InvalidArgumentError('batchSize', `must be a whole number >= 1 or 'auto', got ${String(b)}`);
  const retries = opts.retries ?? 0;
  if (!(Number.isInteger(retries) && retries >= 0)) throw new InvalidArgumentError('retries', `must be a whole number >= 0, got ${String(retries)}`);
  if (opts.timeoutMs !== undefined && !(typeof opts.timeoutMs === 'number' && opts.timeoutMs > 0 && Number.isFinite(opts.timeoutMs))) {
    throw new InvalidArgumentError('timeoutMs', `must be a number of milliseconds > 0, got ${String(opts.timeoutMs)}`);
  }
  for (const k of ['onError', 'onProgress'] as const) {
    if (opts[k] !== undefined && typeof opts[k] !== 'function') throw new InvalidArgumentError(k, 'must be a function');
  }
  if (opts.signal !== undefined && !(opts.signal && typeof opts.signal.aborted === 'boolean' && typeof opts.signal.addEventListener === 'function')) {
    throw new InvalidArgumentError('signal', 'must be an AbortSignal');
  }
  const pooled = opts.workers === undefined && cluster.demand?.hasPool() === true;
  const workers = opts.workers !== undefined ? checkWorkers(cluster, opts.workers) : pooled ? cluster.demand!.usable() : cluster.workers();
  const id = opts.id ?? randomBytes(6).toString('hex');
  if (typeof id !== 'string' || !TOKEN.test(id)) throw new InvalidArgumentError('id', `must match ${TOKEN}, got ${String(id)}`);
  return {
    batchSize: b, retries, onError: opts.onError, signal: opts.signal, timeoutMs: opts.timeoutMs, workers, elastic: opts.workers === undefined, pooled,
    onProgress: opts.onProgress, hasShared: 'shared' in opts, shared: opts.shared, id,
  };
}

/** Checks a `workers` option: distinct pids of live workers (or 1, the driver). */
export function checkWorkers(cluster: ClusterContext, workers: unknown): number[] {
  if (!Array.isArray(workers) || workers.length === 0) throw new InvalidArgumentError('workers', 'must be a non-empty array of pids');
  const live = new Set(cluster.procs());
  for (const p of workers) {
    if (!live.has(p)) throw new InvalidArgumentError('workers', `no live process ${String(p)}; workers are ${cluster.workers().join(', ')}`);
  }
  return [...new Set(workers as number[])];
}

/** An encoding error of a batch's arguments, its place named from the map's items (`items[12].cb`). */
function unsendable(e: unknown, idx: number[]): unknown {
  const path = (e as { path?: (string | number)[] }).path;
  if (!path || path[0] !== 'args' || path[1] !== 2 || typeof path[2] !== 'number') return e;
  return functionError(['items', idx[path[2]] ?? path[2], ...path.slice(3)]);
}

/** An encoding error of the `shared` value (sent with put: `value.cb`), named from the option (`shared.cb`). */
function sharedError(e: unknown): unknown {
  const path = (e as { path?: (string | number)[] }).path;
  return path?.[0] === 'value' ? functionError(['shared', ...path.slice(1)]) : e;
}

/** The encoded size of the largest of a few sample items, to keep auto batches small on the wire. */
function sampleBytes(items: unknown[]): number {
  const n = items.length;
  let max = 1;
  for (const i of new Set([0, n >> 1, n - 1])) {
    if (i < 0 || i >= n) continue;
    try {
      max = Math.max(max, encode(items[i]).length);
    } catch {
      /* the real send reports it */
    }
  }
  return max;
}

/**
 * One pmap run: the feeders, the queue of items to (re)send and the map actor.
 * @internal used by {@link Cluster.pmap}
 */
class MapRun<T, R> {
  private readonly n: number;
  private readonly results: R[];
  private readonly feeders: Feeder[];
  /** The pids that have (or are getting) a feeder. */
  private readonly known: Set<number>;
  private readonly retryQueue: RetryBatch[] = [];
  private retryItems = 0;
  private next = 0;
  private done = 0;
  private est: number | null = null;
  private readonly byteCap: number;
  private settled = false;
  private actor!: HostedActor;
  private appendError: Error | null = null;
  private lastProgressEvent = 0;
  private lastProgressDone = 0;
  private lastLost: Error | null = null;
  private resolve!: (v: R[]) => void;
  private reject!: (e: unknown) => void;
  private readonly onAbort = () => this.fail(this.o.signal!.reason ?? new DOMException('This operation was aborted', 'AbortError'));

  constructor(
    private readonly cluster: ClusterContext,
    private readonly f: Task,
    private readonly items: T[],
    private readonly o: Parsed<T, R>,
  ) {
    this.n = items.length;
    this.results = new Array<R>(this.n);
    this.feeders = o.workers.map((pid) => ({ pid, alive: true, inflight: 0, shared: null }));
    this.known = new Set(o.workers);
    this.byteCap = Math.max(1, Math.floor(AUTO_MAX_BATCH_BYTES / sampleBytes(items)));
  }

  async run(): Promise<R[]> {
    const o = this.o;
    o.signal?.throwIfAborted();
    const result = new Promise<R[]>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.actor = this.cluster.node.host.create('map', o.id);
    this.record(mapEvents.started(Date.now(), { task: this.f.key, items: this.n, workers: o.workers, batchSize: o.batchSize, retries: o.retries }));
    o.signal?.addEventListener('abort', this.onAbort, { once: true });
    const unwatch = o.elastic ? this.watchJoins() : () => undefined;
    // Items not sent yet are ready work: a pool grows for them (see runtime/process/work-demand.ts).
    const undemand = o.elastic && this.cluster.demand ? this.cluster.demand.add(() => (this.settled ? 0 : this.remaining())) : () => undefined;
    try {
      try {
        if (o.hasShared) await this.putShared();
        if (this.n === 0) this.finish();
        else this.pumpAll();
        this.checkStuck();
      } catch (e) {
        this.fail(e);
      }
      return await result;
    } finally {
      unwatch();
      undemand();
      if (this.stuckTimer) clearTimeout(this.stuckTimer);
      o.signal?.removeEventListener('abort', this.onAbort);
      for (const fd of this.feeders) if (fd.shared) void fd.shared.free().catch(() => undefined);
    }
  }

  /** The shared value goes to each worker once, into a ref that worker owns. */
  private async putShared(): Promise<void> {
    await Promise.all(this.feeders.map(async (fd) => {
      const ref = this.cluster.remoteRef(fd.pid);
      try {
        await ref.put(this.o.shared);
        fd.shared = ref;
      } catch (e) {
        if ((e as Error).name !== 'ProcessExitedError') throw sharedError(e);
        fd.alive = false;
        this.lastLost = e as Error;
      }
    }));
    // With a pool, the map may start with no worker: pool workers get the shared value as they join.
    if (!this.feeders.some((fd) => fd.alive) && !this.o.pooled) throw this.allLost();
  }

  /**
   * Takes in the workers that become ready from now on, and those that did since the options
   * were read. Returns the function that stops it.
   */
  private watchJoins(): () => void {
    const unwatch = this.cluster.registry.watchReady((pid) => this.join(pid));
    for (const pid of this.cluster.workers()) this.join(pid);
    return unwatch;
  }

  /** A worker that joined the cluster while this map runs: it gets the shared value, then items. */
  private join(pid: number): void {
    if (this.settled || pid === this.cluster.node.pid || this.known.has(pid)) return;
    this.known.add(pid);
    void this.addFeeder(pid).catch((e) => this.fail(e));
  }

  private async addFeeder(pid: number): Promise<void> {
    const fd: Feeder = { pid, alive: true, inflight: 0, shared: null };
    if (this.o.hasShared) {
      const ref = this.cluster.remoteRef(pid);
      try {
        await ref.put(this.o.shared);
      } catch (e) {
        if ((e as Error).name === 'ProcessExitedError') return;
        throw sharedError(e);
      }
      fd.shared = ref;
      if (this.settled) {
        void ref.free().catch(() => undefined);
        return;
      }
    }
    this.feeders.push(fd);
    this.record(mapEvents.workerJoined(Date.now(), pid));
    this.pump(fd);
  }

  // ---------------------------------------------------------------- scheduling

  private alive(): number {
    let a = 0;
    for (const fd of this.feeders) if (fd.alive) a++;
    return a;
  }

  private remaining(): number {
    return this.n - this.next + this.retryItems;
  }

  private batchLen(): number {
    if (this.o.batchSize !== 'auto') return this.o.batchSize;
    const guided = Math.ceil((this.n - this.next) / (Math.max(1, this.alive()) * GUIDED_SHARE));
    const byTime = this.est === null ? 1 : Math.ceil(AUTO_TARGET_BATCH_MS / Math.max(this.est, 1e-6));
    return Math.max(1, Math.min(byTime, guided, AUTO_MAX_BATCH, this.byteCap));
  }

  /** Two batches in flight while plenty is left, one near the end. */
  private depth(): number {
    const b = this.o.batchSize === 'auto' ? Math.max(1, this.batchLen()) : this.o.batchSize;
    return this.remaining() >= 2 * this.alive() * b ? 2 : 1;
  }

  private pumpAll(): void {
    for (const fd of this.feeders) this.pump(fd);
  }

  private pump(fd: Feeder): void {
    while (!this.settled && fd.alive && fd.inflight < this.depth()) {
      // A pool drains this worker (its walltime nears, or it retires): it finishes what it has.
      if (this.o.pooled && this.cluster.demand!.isDraining(fd.pid)) return;
      if (fd.pid !== this.cluster.node.pid && !this.cluster.registry.has(fd.pid)) {
        this.feederLost(fd, new ProcessExitedError(fd.pid, 'it left the cluster'));
        return;
      }
      const batch = this.take(fd);
      if (!batch) return;
      this.send(fd, batch);
    }
  }

  private take(fd: Feeder): Batch | null {
    const r = this.retryQueue.shift();
    if (r) {
      this.retryItems -= r.idx.length;
      this.record(mapEvents.itemRetried(Date.now(), { items: r.idx, lostPid: r.lostPid, newPid: fd.pid, attempt: r.attempt }));
      return r;
    }
    if (this.next >= this.n) return null;
    const len = Math.min(this.batchLen(), this.n - this.next);
    const idx = new Array<number>(len);
    for (let i = 0; i < len; i++) idx[i] = this.next + i;
    this.next += len;
    return { idx, attempt: 0 };
  }

  private send(fd: Feeder, batch: Batch): void {
    const opts: BatchOpts = {};
    if (this.o.timeoutMs) opts.t = this.o.timeoutMs;
    if (fd.shared) opts.s = fd.shared;
    const items = batch.idx.map((i) => this.items[i]);
    const { node, registry } = this.cluster;
    let sent: Promise<Reply>;
    try {
      sent = node.call(fd.pid, pmapBatch.key, [this.o.id, this.f.key, items, opts]);
    } catch (e) {
      // An item that cannot be sent (a function inside) fails the map, naming the item.
      this.fail(unsendable(e, batch.idx));
      return;
    }
    fd.inflight++;
    const call = registry.track(fd.pid, sent);
    call.then(
      (reply) => this.onReply(fd, batch, reply),
      (err) => {
        // NATS is gone for good (the embedded server could not come back): no worker can be
        // reached, so the whole map fails with that, whatever onError would make of an item.
        if ((err as Error)?.name === 'NatsUnreachableError') {
          fd.inflight--;
          this.fail(err);
        } else {
          this.onReply(fd, batch, { err: toErrorData(err, fd.pid) });
        }
      },
    );
  }

  // ---------------------------------------------------------------- results

  private onReply(fd: Feeder, batch: Batch, reply: Reply): void {
    fd.inflight--;
    if (this.settled) return;
    try {
      if (reply.err) {
        if (reply.err.name === 'ProcessExitedError') {
          this.lastLost = itemError(reply.err, fd.pid);
          this.feederLost(fd, this.lastLost);
          this.requeue(batch, batch.idx, fd.pid, this.lastLost);
        } else {
          const err = itemError(reply.err, fd.pid);
          for (const i of batch.idx) this.itemFailed(i, err);
        }
      } else {
        const r = reply.ok as BatchReply;
        if (r.cancelled) return;
        const per = r.ms / batch.idx.length;
        this.est = this.est === null ? per : (this.est + per) / 2;
        const errs = r.e ? new Map(r.e) : null;
        let lost: number[] | null = null;
        for (let k = 0; k < batch.idx.length; k++) {
          const i = batch.idx[k]!;
          const e = errs?.get(k);
          if (!e) {
            this.results[i] = r.v[k] as R;
            this.done++;
          } else if (e.name === 'ProcessExitedError' && this.o.retries > batch.attempt) {
            (lost ??= []).push(i);
          } else {
            this.itemFailed(i, itemError(e, fd.pid));
          }
        }
        if (lost) this.requeue(batch, lost, fd.pid, itemError(errs!.get(batch.idx.indexOf(lost[0]!))!, fd.pid));
      }
      this.progressed();
    } catch (e) {
      this.fail(e);
      return;
    }
    if (this.settled) return;
    if (this.retryQueue.length) this.pumpAll();
    else this.pump(fd);
    this.checkStuck();
  }

  /** Items whose worker died run again elsewhere, or fail once their retries are used up. */
  private requeue(batch: Batch, idx: number[], lostPid: number, err: Error): void {
    if (batch.attempt < this.o.retries) {
      this.retryQueue.push({ idx, attempt: batch.attempt + 1, lostPid });
      this.retryItems += idx.length;
    } else {
      for (const i of idx) this.itemFailed(i, err);
    }
  }

  private itemFailed(i: number, err: Error): void {
    const onError = this.o.onError;
    if (!onError) throw err;
    const v = onError(err, this.items[i]!);
    if (isThenable(v)) {
      // The item counts as done once its replacement value is there.
      Promise.resolve(v).then(
        (x) => {
          if (this.settled) return;
          this.results[i] = x as R;
          this.done++;
          try {
            this.progressed();
          } catch (e) {
            this.fail(e);
          }
        },
        (e) => this.fail(e),
      );
      return;
    }
    this.results[i] = v as R;
    this.done++;
  }

  private feederLost(fd: Feeder, err: Error): void {
    if (!fd.alive) return;
    fd.alive = false;
    this.lastLost = err;
  }

  private stuckTimer: NodeJS.Timeout | null = null;

  /** Fails the map when work is left and no worker is; with a pool, waits for its workers. */
  private checkStuck(): void {
    if (this.settled || this.done >= this.n) return;
    if (this.o.pooled) {
      const working = this.feeders.some((fd) => fd.inflight > 0 || (fd.alive && !this.cluster.demand!.isDraining(fd.pid)));
      if (working) return;
      if (this.cluster.demand!.hasPool()) {
        // Work waits for the pool's workers; look again while it grows.
        this.stuckTimer ??= setTimeout(() => {
          this.stuckTimer = null;
          this.pumpAll();
          this.checkStuck();
        }, 500);
        return;
      }
    }
    if (this.feeders.some((fd) => fd.alive || fd.inflight > 0)) return;
    if (this.remaining() > 0) this.fail(this.allLost());
  }

  private allLost(): Error {
    const pid = (this.lastLost as { pid?: number } | null)?.pid ?? this.o.workers.at(-1) ?? 1;
    return new ProcessExitedError(pid, `every worker of pmap ${this.o.id} (${this.o.workers.join(', ')}) is gone; ${this.n - this.done} of ${this.n} items unfinished`);
  }

  private progressed(): void {
    if (this.done === this.lastProgressDone) return;
    this.lastProgressDone = this.done;
    this.o.onProgress?.(this.done, this.n);
    if (this.done >= this.n) {
      this.finish();
      return;
    }
    const now = Date.now();
    if (now - this.lastProgressEvent >= PROGRESS_EVENT_MS) {
      this.lastProgressEvent = now;
      this.record(mapEvents.progressed(now, this.done));
    }
  }

  // ---------------------------------------------------------------- ending

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    this.record(mapEvents.finished(Date.now(), this.done));
    // The end of a pmap is a flush point: its history is stored before the results are handed out.
    this.actor.durable().then(
      () => (this.appendError ? this.reject(this.appendError) : this.resolve(this.results)),
      (e) => this.reject(e),
    );
  }

  private fail(err: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.record(mapEvents.failed(Date.now(), toErrorData(err, 1), this.done));
    // Queued batches of this map are dropped on the workers still busy with it.
    for (const fd of this.feeders) {
      if (fd.alive && fd.inflight > 0) void this.cluster.node.call(fd.pid, pmapCancel.key, [this.o.id]).catch(() => undefined);
    }
    // With NATS gone for good the map's last events cannot be stored: say so now, not after
    // the journal has given up on them.
    if ((err as Error)?.name === 'NatsUnreachableError') this.reject(err);
    else this.actor.durable().then(() => this.reject(err), () => this.reject(err));
  }

  private record(ev: ActorEvent): void {
    try {
      this.actor.send(ev);
    } catch (e) {
      this.appendError ??= e as Error;
    }
  }
}

/**
 * `pmap(f, items)`: `f(item)` for every item, on the workers, results in item order.
 * @internal the implementation of {@link Cluster.pmap}
 */
export async function pmap<T, R>(cluster: ClusterContext, f: Task, items: Iterable<T> | ArrayLike<T>, opts: PmapOptions<T, R> = {}): Promise<R[]> {
  if (!isTask(f)) {
    throw new InvalidArgumentError('f', 'expected a task: export const f = task(import.meta.url, function f(item) {...}) in a module loaded with cluster.everywhere()');
  }
  if (items === null || items === undefined || (typeof (items as Iterable<T>)[Symbol.iterator] !== 'function' && typeof (items as ArrayLike<T>).length !== 'number')) {
    throw new InvalidArgumentError('items', 'must be an array or another iterable');
  }
  const list = Array.isArray(items) ? items : Array.from(items as Iterable<T>);
  const parsed = parseOptions(cluster, opts);
  // A map actor's first event needs an unused subject; say so now rather than after the work.
  if (opts.id !== undefined && (await cluster.journal.last('map', opts.id))) {
    throw new InvalidArgumentError('id', `a map with id '${opts.id}' exists already; map ids are unique in a cluster`);
  }
  return new MapRun<T, R>(cluster, f, list, parsed).run();
}
