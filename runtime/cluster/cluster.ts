/**
 * Cluster: the driver's API (pid 1). It starts or attaches to NATS, hosts the worker registry,
 * and offers Julia's calls: addprocs, remotecall, fetch, spawn, everywhere...
 *
 * @example
 * const cluster = await Cluster.start({ workers: 2 });
 * await cluster.everywhere(new URL('../tasks.ts', import.meta.url));
 * const r = cluster.remotecall(countHeads, 2, 1e8);
 * console.log(await r.fetch());
 * await cluster.close();
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { NatsConnection } from '@nats-io/transport-node';
import { refEvents } from '../../actors/index.ts';
import { COLONY_BIN } from '../../adapters/cluster-manager.ts';
import type { ClusterManager, LaunchParams, WorkerConfig } from '../../adapters/cluster-manager.ts';
import { LocalManager } from '../../adapters/local-manager.ts';
import { ActorHost } from '../log/actor-host.ts';
import type { ActorHostOptions } from '../log/actor-host.ts';
import { DEFAULT_STATE_DIR, alive, clusterDir, readState, removeState, writeCredentials, writeState } from '../transport/cluster-files.ts';
import { closeForGood, connectNats } from '../transport/connection.ts';
import type { NatsUnreachableError } from '../transport/connection.ts';
import { failRequests } from '../transport/requester.ts';
import { darrayConstructors } from '../arrays/darray.ts';
import type { DArrayConstructors } from '../arrays/darray.ts';
import type { TypedArrayConstructor } from '../arrays/darray-layout.ts';
import { ColonyError, InvalidArgumentError, LaunchError, fromErrorData } from '../transport/errors.ts';
import { EventLog } from '../log/event-log.ts';
import { Journal } from '../log/journal.ts';
import { openRefs } from '../log/resume-report.ts';
import type { ResumeReport } from '../log/resume-report.ts';
import type { RetentionOptions } from '../log/journal.ts';
import { randomSecret } from '../transport/nats-server.ts';
import { SupervisedNatsServer } from '../transport/supervised-nats-server.ts';
import { ProcessNode } from '../process/process-node.ts';
import { pmap } from '../parallel/pmap.ts';
import type { PmapOptions } from '../parallel/pmap.ts';
import { pfor, preduce } from '../parallel/preduce.ts';
import type { LoopOptions, LoopRange, Reducer } from '../parallel/preduce.ts';
import { RemoteRef } from '../process/remote-ref.ts';
import { createSharedArray } from '../arrays/shared-array.ts';
import type { SharedArrayOptions } from '../arrays/shared-array.ts';
import { checkClusterName } from '../transport/subjects.ts';
import { importModule } from '../process/import-module.ts';
import { isTask } from '../process/task.ts';
import type { Task } from '../process/task.ts';
import { DEFAULT_GRACE_MS } from '../process/worker-main.ts';
import { hostCapabilities } from '../process/capability.ts';
import { arrays } from '../arrays/index.ts';
import { parallel } from '../parallel/index.ts';

/** What the driver hosts: its node runs builtin tasks too (a pmap with no workers runs on pid 1). */
const CAPABILITIES = [parallel, arrays];
import { WorkerRegistry } from '../process/worker-registry.ts';
import { WorkDemand } from '../process/work-demand.ts';
import { Pool, poolFromSite } from '../pool/index.ts';
import type { PoolOptions } from '../pool/index.ts';
import type { WorkerInfo } from '../process/worker-registry.ts';

/** Options of {@link Cluster.start} and {@link Cluster.connect}. */
export interface ClusterOptions {
  /** Cluster name, used in subjects and stream names. @default 'default' */
  name?: string;
  /** URL of an external NATS server. Without it, start() runs an embedded nats-server. */
  nats?: string;
  /** Credentials for an external server. */
  user?: string;
  password?: string;
  /** Where an embedded cluster keeps its store, credential and state file. @default '.colony' */
  stateDir?: string;
  /** Keep the log of an earlier embedded run with the same name instead of starting afresh. @default false */
  keepLog?: boolean;
  /** Heartbeat period. @default 500 */
  heartbeatMs?: number;
  /** A worker silent this long is lost. @default 5000 */
  heartbeatTimeoutMs?: number;
  /** Workers exit after this long without a driver. @default 30000 */
  graceMs?: number;
  /** A launched worker that has not registered this long after its start fails the launch. @default 60000 */
  workerStartTimeoutMs?: number;
  /** Stream retention. */
  retention?: RetentionOptions;
  /** KV snapshot cadence per actor kind. */
  snapshotEvery?: ActorHostOptions['snapshotEvery'];
  /**
   * How long an event append rides out a JetStream leader election or a reconnect before it is
   * reported lost (JournalAppendError); workers get it when they register. @default 30000
   */
  electionWindowMs?: number;
  /** Where LocalManager workers' output goes. @default 'inherit' */
  workerOutput?: 'inherit' | 'ignore';
  /**
   * Serve the web dashboard from this process and print its URL (`true`: 127.0.0.1:8787, or a
   * free port when that one is busy). See docs/dashboard.md. @default false
   */
  dashboard?: boolean | { port?: number; host?: string };
}

export interface StartOptions extends ClusterOptions {
  /** Local workers to add at once (`julia -p n`); `'auto'` is one per core. @default 0 */
  workers?: number | 'auto';
}

export interface AddprocsOptions {
  count?: number | 'auto';
  /** Cancels the launch: queued jobs leave the scheduler and the call rejects with a LaunchError. */
  signal?: AbortSignal;
}

const DEFAULTS = { hbMs: 500, hbTimeoutMs: 5000, startTimeoutMs: 60_000 };

export class Cluster {
  readonly name: string;
  readonly url: string;
  /** Live and stored events of this cluster. */
  readonly events: EventLog;
  /**
   * Distributed arrays (row-major, 0-based `[start, end)` ranges): `zeros`, `ones`, `rand`,
   * `randn`, `fill`, `distribute` and `create` (Julia's dzeros, dones, drand, drandn, dfill,
   * distribute and `DArray(init, dims, procs, dist)`).
   *
   * @example
   * const d = await cluster.darray.zeros(Float64Array, [100, 100], { procs: [2, 3, 4, 5], dist: [1, 4] });
   */
  readonly darray: DArrayConstructors = darrayConstructors(this);
  private readonly local: LocalManager;
  /** addprocs calls under way: close() aborts them, so their managers cancel queued jobs. */
  private readonly launches = new Set<AbortController>();
  private closed = false;
  private closing: Promise<void> | null = null;
  /** Set when the embedded server died and could not come back: everything fails with it. */
  private unreachable: NatsUnreachableError | null = null;
  private readonly startedWorkers: boolean;
  private dashboard: { url: string; close(): Promise<void> } | null = null;
  /** The dashboard's URL when `dashboard` was asked for, else null. */
  get dashboardUrl(): string | null {
    return this.dashboard?.url ?? null;
  }
  /** Pools this driver runs: close() closes them first. */
  private readonly pools = new Set<Pool>();
  /** @internal demand for pool workers, and the pools' draining workers */
  readonly demand: WorkDemand;

  private constructor(
    readonly nc: NatsConnection,
    readonly journal: Journal,
    /** @internal */ readonly node: ProcessNode,
    /** @internal */ readonly registry: WorkerRegistry,
    private readonly server: SupervisedNatsServer | null,
    private readonly endpoint: { url: string; user?: string; password?: string },
    private readonly opts: ClusterOptions,
    private readonly stateDir: string | null,
    owns: boolean,
    demand: WorkDemand,
  ) {
    this.name = journal.name;
    this.url = endpoint.url;
    this.events = new EventLog(nc, journal);
    this.local = new LocalManager({ output: opts.workerOutput });
    this.startedWorkers = owns;
    this.demand = demand;
    registry.onEnded = (pid, lost) => {
      if (lost) this.markRefsLost(pid);
    };
    if (server) {
      server.handlers = {
        restarted: (s) => {
          if (stateDir && !this.closed) void writeState(stateDir, this.stateFile(s.pid)).catch(() => undefined);
        },
        gaveUp: (err) => this.serverLost(err),
      };
      if (server.gaveUp) this.serverLost(server.gaveUp);
    }
  }

  private stateFile(natsPid: number | null) {
    return { name: this.name, url: this.endpoint.url, driverPid: process.pid, natsPid, startedAt: this.startedAt };
  }

  private readonly startedAt = new Date().toISOString();

  /**
   * The embedded server is gone for good: every call, ref, map and flush pending fails now with
   * `err`, and the cluster closes (its workers are stopped), so the program can end normally.
   * During a close() already under way, that close goes on without waiting for NATS.
   */
  private serverLost(err: NatsUnreachableError): void {
    if (this.unreachable) return;
    this.unreachable = err;
    this.markLost(err);
    this.registry.stop();
    failRequests(this.nc, err);
    void closeForGood(this.nc).then(() => this.close()).catch(() => undefined);
  }

  /** Starts a cluster: an embedded NATS unless `nats` is given, plus `workers` local workers. */
  static async start(opts: StartOptions = {}): Promise<Cluster> {
    const name = checkClusterName(opts.name ?? 'default');
    let server: SupervisedNatsServer | null = null;
    let endpoint: { url: string; user?: string; password?: string };
    let stateDir: string | null = null;
    if (!opts.nats) {
      stateDir = clusterDir(opts.stateDir ?? DEFAULT_STATE_DIR, name);
      const prev = await readState(opts.stateDir ?? DEFAULT_STATE_DIR, name);
      if (prev && alive(prev.driverPid) && prev.driverPid !== process.pid && alive(prev.natsPid)) {
        throw new ColonyError(`cluster '${name}' already runs from ${stateDir} (driver pid ${prev.driverPid}); close it or pick another name`);
      }
      // The server of a driver that was killed outright is still running on the store: stop it.
      if (prev && !alive(prev.driverPid) && prev.natsPid) await stopStaleServer(prev.natsPid);
      if (!opts.keepLog) await rm(join(stateDir, 'nats'), { recursive: true, force: true });
      await mkdir(join(stateDir, 'nats'), { recursive: true, mode: 0o700 });
      const creds = { user: 'colony', password: randomSecret() };
      await writeCredentials(stateDir, creds);
      server = await SupervisedNatsServer.start({ storeDir: join(stateDir, 'nats'), user: creds.user, password: creds.password });
      endpoint = { url: server.url, ...creds };
    } else {
      endpoint = { url: opts.nats, user: opts.user, password: opts.password };
    }
    try {
      const cluster = await Cluster.open(name, endpoint, server, stateDir, opts, true);
      if (stateDir) {
        await writeState(stateDir, cluster.stateFile(server?.pid ?? null));
      }
      closeOnSignals(cluster);
      await cluster.startDashboard();
      const n = opts.workers === 'auto' ? availableParallelism() : (opts.workers ?? 0);
      if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('workers', `must be a whole number >= 0 or 'auto', got ${opts.workers}`);
      if (n > 0) {
        try {
          await cluster.addprocs(n);
        } catch (e) {
          await cluster.close();
          throw e;
        }
      }
      return cluster;
    } catch (e) {
      await server?.stop();
      throw e;
    }
  }

  /**
   * Attaches to a running cluster on an external NATS: rebuilds the registry from the log and
   * the heartbeats. Workers keep running when this driver closes.
   */
  static async connect(opts: ClusterOptions & { nats: string }): Promise<Cluster> {
    const t0 = performance.now();
    const name = checkClusterName(opts.name ?? 'default');
    const cluster = await Cluster.open(name, { url: opts.nats, user: opts.user, password: opts.password }, null, null, opts, false);
    try {
      const [adopted, refs] = await Promise.all([cluster.registry.adopt(), openRefs(cluster.journal)]);
      const silent = await cluster.registry.settleAdopted(adopted);
      const live = new Set(cluster.registry.live());
      const report: ResumeReport = { workers: [...live], silentWorkers: silent, finished: [], running: [], lost: [], ms: 0 };
      for (const r of refs) {
        if (r.owner !== 1) cluster.node.adoptRef(r.id);
        if (r.state === 'ready' || r.state === 'failed') report.finished.push(r);
        else if (live.has(r.owner)) report.running.push(r);
        else report.lost.push(r);
      }
      report.ms = performance.now() - t0;
      cluster.resumed = report;
      await cluster.startDashboard();
      return cluster;
    } catch (e) {
      await cluster.close();
      throw e;
    }
  }

  /** After `connect()`: what the log says about the previous driver's calls. */
  resumed: ResumeReport | null = null;

  private static async open(
    name: string,
    endpoint: { url: string; user?: string; password?: string },
    server: SupervisedNatsServer | null,
    stateDir: string | null,
    opts: ClusterOptions,
    owns: boolean,
  ): Promise<Cluster> {
    const nc = await connectNats(endpoint, `colony-driver-${name}`);
    try {
      const journal = await Journal.open(nc, name, opts.retention, { electionWindowMs: opts.electionWindowMs });
      const nonce = randomBytes(4).toString('hex');
      const host = new ActorHost(journal, `d${nonce}`, { snapshotEvery: opts.snapshotEvery });
      const node = new ProcessNode({ nc, name, pid: 1, host, nonce });
      const registry = new WorkerRegistry(nc, journal.subjects, host, node, {
        hbMs: opts.heartbeatMs ?? DEFAULTS.hbMs,
        hbTimeoutMs: opts.heartbeatTimeoutMs ?? DEFAULTS.hbTimeoutMs,
        graceMs: opts.graceMs ?? DEFAULT_GRACE_MS,
      });
      await hostCapabilities(CAPABILITIES);
      node.serve();
      await registry.start();
      const demand = new WorkDemand(nc, journal.subjects, registry, `d${nonce}`);
      await demand.start();
      return new Cluster(nc, journal, node, registry, server, endpoint, opts, stateDir, owns, demand);
    } catch (e) {
      await nc.close();
      throw e;
    }
  }

  // ------------------------------------------------------------------ processes

  /** Worker pids (Julia's `workers()`); `[1]` when there are none. */
  workers(): number[] {
    const w = this.registry.live();
    return w.length ? w : [1];
  }

  /** All processes, the driver included. */
  procs(): number[] {
    return [1, ...this.registry.live()];
  }

  nprocs(): number {
    return this.registry.live().length + 1;
  }

  nworkers(): number {
    const n = this.registry.live().length;
    return n === 0 ? 1 : n;
  }

  /** Workers with host, state and load. */
  workerInfo(): WorkerInfo[] {
    return this.registry.info();
  }

  /**
   * Adds workers: `addprocs(4)` starts local ones; `addprocs(manager, { count })` any manager's.
   * Resolves with the new pids once every one has registered.
   */
  async addprocs(a: number | ClusterManager, opts: AddprocsOptions = {}): Promise<number[]> {
    this.checkOpen();
    const manager = typeof a === 'number' ? this.local : a;
    const raw = typeof a === 'number' ? a : (opts.count ?? 1);
    const count = raw === 'auto' ? availableParallelism() : raw;
    if (!Number.isInteger(count) || count < 1) throw new InvalidArgumentError('count', `must be a whole number >= 1 or 'auto', got ${raw}`);
    if (!manager || typeof manager.launch !== 'function') throw new InvalidArgumentError('manager', 'expected a number or a ClusterManager');
    const startTimeout = this.opts.workerStartTimeoutMs ?? DEFAULTS.startTimeoutMs;
    const pids: number[] = [];
    const ac = new AbortController();
    this.launches.add(ac);
    const tokens: string[] = [];
    let failed: Error | null = null;
    let settle!: () => void;
    const allReady = new Promise<void>((r) => (settle = r));
    const timers: NodeJS.Timeout[] = [];
    const fail = (e: Error) => {
      failed ??= e;
      ac.abort();
      settle();
    };
    ac.signal.addEventListener('abort', () => fail(new LaunchError(manager.name, opts.signal?.aborted ? 'the launch was cancelled' : 'the cluster was closed while workers were launching')), { once: true });
    if (opts.signal?.aborted) ac.abort();
    opts.signal?.addEventListener('abort', () => ac.abort(), { once: true });
    const params: LaunchParams = {
      cluster: this.name,
      nats: this.endpoint.url,
      env: {
        ...(this.endpoint.user ? { COLONY_NATS_USER: this.endpoint.user } : {}),
        ...(this.endpoint.password ? { COLONY_NATS_PASSWORD: this.endpoint.password } : {}),
      },
      count,
      exename: process.execPath,
      exeflags: [],
      graceMs: this.opts.graceMs ?? DEFAULT_GRACE_MS,
      newToken: () => {
        const t = `${this.node.nonce}-${randomBytes(6).toString('hex')}`;
        tokens.push(t);
        return t;
      },
      workerArgv: (token) => [
        process.execPath, COLONY_BIN, 'worker', '--nats', this.endpoint.url, '--name', this.name, '--token', token,
        '--grace', String(this.opts.graceMs ?? DEFAULT_GRACE_MS),
      ],
    };
    // Workers the manager said it started; once launch() has returned, no more will come.
    let promised = 0;
    let handedOff = false;
    const checkDone = () => {
      if (pids.length >= count || (handedOff && pids.length >= promised)) settle();
    };
    const launched = (config: WorkerConfig) => {
      const n = config.count === 'auto' ? availableParallelism() : (config.count ?? 1);
      promised += n;
      let got = 0;
      this.registry.expect(config, manager, n, (pid) => {
        pids.push(pid);
        got++;
        checkDone();
      });
      // The start timeout counts from the moment the job runs, never from submission.
      const t = setTimeout(() => {
        if (got < n) fail(new LaunchError(manager.name, `${n - got} worker(s) of launch ${config.launchToken} did not register within ${startTimeout} ms`));
      }, startTimeout);
      t.unref();
      timers.push(t);
      config.process?.once('exit', (code, signal) => {
        if (got < n) {
          const stderr = (manager as { stderrOf?: (c: WorkerConfig) => string }).stderrOf?.(config) ?? '';
          fail(new LaunchError(manager.name, `worker process exited before it registered (${signal ? `signal ${signal}` : `code ${code}`})`, { code, stderr }));
        }
      });
    };
    try {
      await manager.launch(params, launched, ac.signal);
      handedOff = true;
      if (promised === 0) fail(new LaunchError(manager.name, `launch() returned without starting any of the ${count} worker(s) asked for`));
      else checkDone();
    } catch (e) {
      fail(e instanceof LaunchError ? e : new LaunchError(manager.name, (e as Error).message, { cause: e, code: (e as { code?: number }).code, stderr: (e as { stderr?: string }).stderr }));
    }
    await allReady;
    this.launches.delete(ac);
    for (const t of timers) clearTimeout(t);
    for (const t of tokens) {
      if (failed) this.registry.abandon(t);
      else this.registry.unexpect(t);
    }
    if (failed) {
      await Promise.all(pids.map((p) => this.registry.remove(p).catch(() => undefined)));
      throw failed;
    }
    return pids.sort((x, y) => x - y);
  }

  /**
   * An elastic pool over `manager` (or the site file's `pools.<name>`): it grows through the
   * manager while work waits and retires idle workers. See docs/pools.md.
   *
   * @example
   * const pool = await cluster.pool(new SGEManager({ queue: 'all.q' }), { min: 0, max: 16, maxQueued: 2 });
   */
  async pool(manager: ClusterManager | string, policy: Record<string, unknown> = {}, opts: PoolOptions & { config?: string } = {}): Promise<Pool> {
    this.checkOpen();
    const pool = typeof manager === 'string'
      ? await poolFromSite(this, manager, policy, opts)
      : await Pool.start(this, manager, policy, opts);
    this.pools.add(pool);
    return pool;
  }

  /** Removes workers: each is deregistered, asked to exit and finalized. */
  async rmprocs(pids: number | number[]): Promise<void> {
    const list = Array.isArray(pids) ? pids : [pids];
    for (const p of list) {
      if (p === 1) throw new InvalidArgumentError('pids', 'pid 1 is the driver and cannot be removed');
      // A worker that has already exited was a worker: removing it again is a no-op.
      if (!Number.isInteger(p) || !this.registry.entry(p)) {
        throw new InvalidArgumentError('pids', `${String(p)} is not a worker of this cluster; its workers are ${this.registry.live().join(', ') || 'none'}`);
      }
    }
    await Promise.all(list.map((p) => this.registry.remove(p)));
  }

  /** Interrupts the running task on each worker (all workers when omitted). */
  async interrupt(pids?: number | number[]): Promise<void> {
    const list = pids === undefined ? this.registry.live() : Array.isArray(pids) ? pids : [pids];
    await Promise.all(list.map((p) => this.registry.interrupt(p)));
  }

  /**
   * Loads a module on every process, now and on every worker that joins later (`@everywhere`).
   * Its `task()` exports become callable everywhere.
   */
  async everywhere(module: string | URL): Promise<void> {
    this.checkOpen();
    const url = module instanceof URL ? module.href : /^[a-z][a-z0-9+.-]*:/i.test(module) ? module : pathToFileURL(resolvePath(module)).href;
    await importModule(url);
    if (!this.registry.modules.includes(url)) this.registry.modules.push(url);
    await Promise.all(this.registry.live().map((p) => this.registry.load(p, url)));
  }

  // ------------------------------------------------------------------ calls

  /** Runs `f(...args)` on `pid` and returns at once with a ref to the result (`remotecall`). */
  remotecall<A extends unknown[], R>(f: Task<A, R>, pid: number, ...args: A): RemoteRef<Awaited<R>> {
    this.checkCall(f, pid);
    const id = this.node.newRefId(pid);
    // Sent before the handle exists: arguments that cannot be sent throw here, leaving no ref.
    const sent = this.node.call(pid, f.key, args, id);
    const ref = this.node.refHandle(id) as RemoteRef<Awaited<R>>;
    const done = this.registry.track(pid, sent);
    ref.launch = done.then((r) => {
      if (r.err) throw fromErrorData(r.err, pid);
    });
    ref.launch.catch(() => undefined);
    return ref;
  }

  /** `fetch(remotecall(...))` in one round trip: nothing is stored on the worker. */
  async remotecallFetch<A extends unknown[], R>(f: Task<A, R>, pid: number, ...args: A): Promise<Awaited<R>> {
    this.checkCall(f, pid);
    const reply = await this.registry.track(pid, this.node.call(pid, f.key, args));
    if (reply.err) throw fromErrorData(reply.err, pid);
    return reply.ok as Awaited<R>;
  }

  /** Runs `f` on `pid` and waits for it to finish, keeping the result there. */
  async remotecallWait<A extends unknown[], R>(f: Task<A, R>, pid: number, ...args: A): Promise<RemoteRef<Awaited<R>>> {
    const ref = this.remotecall(f, pid, ...args);
    await ref.wait();
    return ref;
  }

  /** `@spawnat pid f(args...)`. */
  spawnat<A extends unknown[], R>(pid: number, f: Task<A, R>, ...args: A): RemoteRef<Awaited<R>> {
    return this.remotecall(f, pid, ...args);
  }

  /** `@spawn`: runs where a RemoteRef argument lives, else on the least-loaded worker. */
  spawn<A extends unknown[], R>(f: Task<A, R>, ...args: A): RemoteRef<Awaited<R>> {
    return this.remotecall(f, this.placeFor(args), ...args);
  }

  /**
   * `pmap(f, items)`: `f(item)` for every item on the workers, results in item order. Dynamic
   * scheduling with adaptive batches; see {@link PmapOptions} for batching, retries, onError,
   * cancellation, timeouts, worker subsets, progress and `shared` data (`f(item, shared)`).
   *
   * @example
   * const sv = await cluster.pmap(svdvals, matrices, { retries: 1, onProgress: progressBar() });
   */
  pmap<T, R, E = never>(f: Task<[item: T], R>, items: Iterable<T> | ArrayLike<T>, opts?: PmapOptions<T, E>): Promise<(Awaited<R> | E)[]>;
  pmap<T, S, R, E = never>(f: Task<[item: T, shared: S], R>, items: Iterable<T> | ArrayLike<T>, opts: PmapOptions<T, E> & { shared: S }): Promise<(Awaited<R> | E)[]>;
  pmap<T>(f: Task, items: Iterable<T> | ArrayLike<T>, opts: PmapOptions<T, unknown> = {}): Promise<unknown[]> {
    this.checkOpen();
    return pmap<T, unknown>(this, f, items, opts);
  }

  /**
   * `@parallel (reducer) for i in range f(i) end`: one slice of the range per worker, reduced
   * there in a loop, the partials reduced here. `range` is `n`, `[start, end)` or the items.
   *
   * @example
   * const heads = await cluster.preduce('+', flip, 200_000_000);
   */
  preduce<T = number, V = unknown>(reducer: Reducer<V>, f: Task<[item: T, ...shared: any[]], V | Promise<V>>, range: LoopRange<T>, opts?: LoopOptions): Promise<V>;
  preduce<V>(reducer: Reducer<V>, f: Task, range: LoopRange<unknown>, opts: LoopOptions = {}): Promise<V> {
    this.checkOpen();
    return preduce<V>(this, reducer, f, range, opts);
  }

  /** `@parallel for` without a reducer: returns at once with one ref per worker slice; awaiting them is `@sync`. */
  pfor<T = number>(f: Task<[item: T, ...shared: any[]], unknown>, range: LoopRange<T>, opts: LoopOptions = {}): RemoteRef<null>[] {
    this.checkOpen();
    return pfor(this, f, range, opts);
  }

  /**
   * `SharedArray(T, dims; pids, init)`: an array in shared memory, mapped by every pid (all on one
   * host). `init(S)` is a task run on each pid; `sdata(S)` and `localindexes(S)` work inside it.
   *
   * @example
   * const S = await cluster.sharedArray(Int32Array, [3, 4], { init: fillMine });
   */
  sharedArray<C extends TypedArrayConstructor>(type: C, dims: number | number[], opts?: SharedArrayOptions) {
    this.checkOpen();
    return createSharedArray(this, type, dims, opts);
  }

  /** An empty ref owned by `pid`, to `put` a value into (`RemoteRef(pid)`). */
  remoteRef<T = unknown>(pid: number = 1): RemoteRef<T> {
    this.checkPid(pid);
    return this.node.refHandle(this.node.newRefId(pid, true)) as RemoteRef<T>;
  }

  /** A handle to an existing ref, from its id. */
  ref<T = unknown>(id: string): RemoteRef<T> {
    return this.node.refHandle(id) as RemoteRef<T>;
  }

  /** Where `spawn` runs a call with these arguments. */
  placeFor(args: unknown[]): number {
    for (const a of args) {
      const refs = a instanceof RemoteRef ? [a] : Array.isArray(a) ? a.filter((x) => x instanceof RemoteRef) : [];
      for (const r of refs) if (r.where !== 1 && this.registry.has(r.where)) return r.where;
    }
    return this.registry.leastLoaded() ?? 1;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Makes every event so far durable; throws if an append was lost. */
  async flush(): Promise<void> {
    try {
      // Appends cannot be stored once the server is gone for good: do not wait for their retries.
      await Promise.race([this.registry.durable().then(() => this.journal.flush()), this.lost]);
    } catch (e) {
      // Appends lost with the server: say so as the server's loss, the cause of them all.
      throw this.unreachable ?? e;
    }
    if (this.unreachable) throw this.unreachable;
  }

  private markLost!: (err: Error) => void;
  /** Rejects with the NatsUnreachableError once the embedded server is gone for good. */
  private readonly lost: Promise<never> = (() => {
    const p = new Promise<never>((_, reject) => (this.markLost = reject));
    p.catch(() => undefined); // awaited only by flushes under way
    return p;
  })();

  /** Stops what start() started (workers, embedded NATS) and flushes the log. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    started.delete(this);
    // From here on the embedded server is going down with the cluster: no restart.
    this.server?.release();
    try {
      await Promise.all([...this.pools].map((p) => p.close().catch((e) => console.error(`colony: pool ${p.id}: ${(e as Error).message}`))));
      for (const ac of this.launches) ac.abort();
      if (this.startedWorkers) await Promise.all(this.registry.info().map((w) => this.registry.remove(w.pid).catch(() => undefined)));
      await this.registry.finalized();
      const flushed = this.registry.durable().then(() => this.journal.flush());
      await Promise.race([flushed, this.lost]).catch((e) => {
        if (e !== this.unreachable) console.error(`colony: ${(e as Error).message}`);
      });
    } finally {
      await this.dashboard?.close().catch(() => undefined);
      this.demand.stop();
      this.registry.stop();
      await this.node.stop();
      await this.nc.drain().catch(() => undefined);
      await this.server?.stop();
      if (this.stateDir) await removeState(this.stateDir);
    }
  }

  /** Starts the dashboard (loaded only when asked for) and prints where it is. */
  private async startDashboard(): Promise<void> {
    const want = this.opts.dashboard;
    if (!want) return;
    try {
      const { startDashboard } = await import('../dashboard/index.ts');
      this.dashboard = await startDashboard({ name: this.name, offline: false, nc: this.nc, journal: this.journal }, want === true ? {} : want);
    } catch (e) {
      await this.close();
      throw e;
    }
    process.stderr.write(`colony: dashboard of cluster '${this.name}' on ${this.dashboard.url}\n`);
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private markRefsLost(pid: number): void {
    for (const id of this.node.refsOwnedBy(pid)) {
      void this.journal.track(this.node.host.appendForeign('ref', id, refEvents.lost(Date.now(), pid, 'owner lost'))).catch(() => undefined);
    }
  }

  private checkOpen(): void {
    if (this.unreachable) throw this.unreachable;
    if (this.closed) throw new ColonyError('this cluster is closed');
  }

  private checkPid(pid: number): void {
    if (!Number.isInteger(pid) || pid < 1) throw new InvalidArgumentError('pid', `must be a process id (1, 2, ...), got ${pid}`);
    if (pid !== 1 && !this.registry.has(pid)) throw new InvalidArgumentError('pid', `no worker ${pid}; workers are ${this.workers().join(', ')}`);
  }

  private checkCall(f: unknown, pid: number): void {
    this.checkOpen();
    if (!isTask(f)) {
      throw new InvalidArgumentError('f', 'expected a task: export const f = task(import.meta.url, function f(...) {...}) in a module loaded with cluster.everywhere()');
    }
    this.checkPid(pid);
  }
}

/** Clusters started in this process and not closed yet. */
const started = new Set<Cluster>();
let signalsHooked = false;

/**
 * Ctrl-C or a service manager's SIGTERM closes every started cluster (its workers and embedded
 * NATS) before the process goes. A program with its own handler for the signal keeps control of
 * exiting; the clusters are closed either way.
 */
function closeOnSignals(cluster: Cluster): void {
  started.add(cluster);
  if (signalsHooked) return;
  signalsHooked = true;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const handler = () => {
      const others = process.listeners(sig).filter((l) => l !== handler).length;
      const closing = Promise.all([...started].map((c) => c.close().catch(() => undefined)));
      const timer = setTimeout(() => process.exit(code), 10_000);
      void closing.then(() => {
        clearTimeout(timer);
        if (others === 0) process.exit(code);
      });
    };
    process.on(sig, handler);
  }
}

/** Stops a nats-server left behind by a driver that was killed, if that pid is still one. */
async function stopStaleServer(pid: number): Promise<void> {
  let cmd = '';
  try {
    cmd = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch {
    return;
  }
  if (!cmd.includes('nats-server')) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
}
