/**
 * AdapterManager: what every non-local manager shares. It runs the `adapter` actor of the
 * instance, keeps one record per worker slot (a "unit": a job, an array task, an ssh session,
 * an instance), and turns the unit lifecycle into Julia's launch/manage contract:
 *
 * - `launch` submits and returns at once to the event loop; `launched(config)` is called for a
 *   unit only when it runs, so a queued job never blocks the driver nor eats the start timeout;
 *   the promise settles when every unit has registered, or with a LaunchError carrying the
 *   scheduler's exit code and stderr when one ends before it registered.
 * - `manage(finalize)` retires the unit: it may end by itself (its worker was asked to exit),
 *   and is cancelled at the scheduler when it has not after `exitGraceMs`. `kill` cancels at once.
 * - An aborted launch (the driver gave up) cancels every unit that has not registered.
 *
 * Subclasses implement `start` (submit; report units with `addUnits`), `cancel`, and report
 * `unitStarted` / `unitEnded` from whatever tells them (a poll, a process exit, an announce).
 */
import { adapterEvents } from '../actors/index.ts';
import type { AdapterEvent } from '../actors/index.ts';
import { InvalidArgumentError, LaunchError } from '../runtime/transport/errors.ts';
import { AdapterSession, ADAPTER_ID, newAdapterId } from './adapter-actor.ts';
import type { AnnounceReply, Announcement } from './adapter-actor.ts';
import type { ClusterManager, LaunchParams, ManageOp, WorkerConfig } from './cluster-manager.ts';

/** Options every adapter takes. */
export interface AdapterManagerOptions {
  /** The adapter actor's id, one subject token. @default `<name>-<8 hex digits>` */
  id?: string;
  /**
   * After a worker is removed, how long its job may take to end by itself before the manager
   * cancels it at the scheduler.
   * @default 10000
   */
  exitGraceMs?: number;
}

/** @default for {@link AdapterManagerOptions.exitGraceMs} */
export const DEFAULT_EXIT_GRACE_MS = 10_000;

/** How a unit ended, as far as the manager can tell. */
export interface UnitEnd {
  /** Exit code, when the scheduler or process reports one. */
  code: number | null;
  /** `completed`, `cancelled`, `removed`, `error`... */
  reason: string;
  /** The job's stderr, or the scheduler's explanation. */
  stderr?: string;
  /** An end that is a failure even for a registered worker (a scheduler error state). */
  failed?: boolean;
}

/** One worker slot. */
export interface Unit {
  /** The id the scheduler's cancel takes: `5` or `5.2` (SGE), `7_1` (Slurm), `i-0abc` (EC2), `host#1` (ssh). */
  id: string;
  jobId: string;
  /** 1-based index inside an array job; null for a job of one. */
  task: number | null;
  token: string;
  launch: Launch;
  state: 'queued' | 'running' | 'ended';
  config: WorkerConfig | null;
  pid: number | null;
  registered: boolean;
  cancelled: boolean;
  finalizing: boolean;
  host: string | null;
  retireTimer?: NodeJS.Timeout;
}

/** One `launch` call. */
export interface Launch {
  key: string;
  params: LaunchParams;
  count: number;
  tokens: string[];
  units: Unit[];
  settled: boolean;
  failed: boolean;
  /** Every unit has started (or ended): onLaunchStarted ran. */
  allStarted: boolean;
  launched: (c: WorkerConfig) => void;
  signal: AbortSignal;
  /** Subclass data: a job directory, child processes... */
  data: Record<string, unknown>;
  resolve(): void;
  reject(e: Error): void;
}

export abstract class AdapterManager implements ClusterManager {
  abstract readonly name: string;
  /** The adapter actor's id. */
  readonly id: string;
  protected readonly exitGraceMs: number;
  protected readonly units = new Map<string, Unit>();
  protected readonly byToken = new Map<string, Unit>();
  protected readonly launches = new Set<Launch>();
  /** Tokens of launches whose submission is under way, with waiters for their units. */
  private readonly submitting = new Map<string, Launch>();
  private readonly placedWaiters = new Map<Launch, (() => void)[]>();
  private readonly endWaiters = new Map<Unit, (() => void)[]>();
  private sessionP: Promise<AdapterSession> | null = null;
  private session: AdapterSession | null = null;
  private launchSeq = 0;

  constructor(name: string, opts: AdapterManagerOptions = {}) {
    this.id = opts.id ?? newAdapterId(name);
    if (!ADAPTER_ID.test(this.id)) throw new InvalidArgumentError('id', `adapter id '${this.id}' must match ${ADAPTER_ID}`);
    this.exitGraceMs = opts.exitGraceMs ?? DEFAULT_EXIT_GRACE_MS;
  }

  // ------------------------------------------------------------------ what subclasses implement

  /** Starts the launch's workers: submit, then `addUnits` (queued) or `unitStarted` (running). */
  protected abstract start(launch: Launch): Promise<void>;
  /** Cancels units at the scheduler; cancelling one that is already gone is not an error. */
  protected abstract cancel(units: Unit[]): Promise<void>;
  /** The argv recorded in `adapter.requested` (never with credentials). */
  protected abstract describe(launch: Launch): string[];

  /** Fields a subclass adds to a unit's WorkerConfig when it starts. */
  protected configFor(_unit: Unit): Partial<WorkerConfig> {
    return {};
  }

  /**
   * Fields set on the config just after `launched()` returned: the driver then watches them
   * once the worker registers, but not before. A `process` given here lets the manager, not the
   * driver, report an exit before registration, with the process's stderr.
   */
  protected configAfterLaunch(_unit: Unit): Partial<WorkerConfig> {
    return {};
  }

  /** Called once every unit of a launch has started (or ended). */
  protected onLaunchStarted(_launch: Launch): void {}
  /** Called once every unit of a launch has ended. */
  protected onLaunchEnded(_launch: Launch): void {}
  /** Called when the manager has nothing live: stop polling. */
  protected onIdle(): void {
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  // ------------------------------------------------------------------ polling

  private pollTimer: NodeJS.Timeout | null = null;
  private polling = false;

  /**
   * Asks the scheduler about the live units (managers that poll override it; it must catch its
   * own errors). Never runs twice at once.
   */
  protected async pollUnits(_live: Unit[]): Promise<void> {}

  /** Poll periods while a unit is queued or ending (`busy`), and otherwise (`idle`). */
  protected pollPeriods(): { busy: number; idle: number } {
    return { busy: 1000, idle: 10_000 };
  }

  /** Polls after `ms` (0: now, replacing a later poll already planned). */
  protected schedulePoll(ms: number): void {
    if (this.pollTimer) {
      if (ms > 0) return;
      clearTimeout(this.pollTimer);
    }
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      void this.poll();
    }, ms);
    // Bookkeeping only: a pending launch keeps the process alive through its NATS connection.
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling) return;
    const live = [...this.units.values()].filter((u) => u.state !== 'ended');
    if (!live.length) return;
    this.polling = true;
    try {
      await this.pollUnits(live);
    } finally {
      this.polling = false;
    }
    const stillLive = [...this.units.values()].filter((u) => u.state !== 'ended');
    if (!stillLive.length) return;
    const busy = stillLive.some((u) => u.state === 'queued' || u.finalizing || u.cancelled);
    const periods = this.pollPeriods();
    this.schedulePoll(busy ? periods.busy : periods.idle);
  }
  /** Called when a unit's worker was finalized and its job should end soon (poll faster). */
  protected onRetire(_unit: Unit): void {}

  // ------------------------------------------------------------------ ClusterManager

  async launch(params: LaunchParams, launched: (c: WorkerConfig) => void, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const done = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    // Settled before `await done` is reached when a job fails fast; handled there.
    done.catch(() => undefined);
    const launch: Launch = {
      key: `${++this.launchSeq}`,
      params, count: params.count, tokens: [], units: [], settled: false, failed: false, allStarted: false, launched, signal, data: {},
      resolve, reject,
    };
    // Counted as live before the session opens, so that an idle close cannot race it.
    this.launches.add(launch);
    const onAbort = () => this.abortLaunch(launch);
    try {
      await this.openSession(params);
      for (let i = 0; i < params.count; i++) {
        const token = params.newToken();
        launch.tokens.push(token);
        // A fast scheduler may start the job before its submit command has returned.
        this.submitting.set(token, launch);
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.record(adapterEvents.requested(Date.now(), { manager: this.name, launch: this.launchId(launch), count: launch.count, command: this.describe(launch) }));
      try {
        await this.start(launch);
      } catch (e) {
        const err = this.toLaunchError(e);
        if (launch.units.length < launch.count) {
          this.record(adapterEvents.failed(Date.now(), {
            launch: this.launchId(launch), unit: null, jobId: null, message: err.message, code: err.code, stderr: err.stderr,
          }));
        }
        this.failLaunch(launch, err);
      }
      this.placed(launch);
      if (signal.aborted) this.abortLaunch(launch);
      await done;
    } finally {
      this.placed(launch);
      signal.removeEventListener('abort', onAbort);
      this.launches.delete(launch);
      this.maybeIdle();
    }
  }

  async manage(pid: number, config: WorkerConfig, op: ManageOp): Promise<void> {
    const unit = this.byToken.get(config.launchToken);
    if (!unit) return;
    switch (op) {
      case 'register':
        unit.pid = pid;
        unit.registered = true;
        this.checkLaunch(unit.launch);
        return;
      case 'finalize':
        // Resolves once the unit has ended (by itself, or cancelled after exitGraceMs).
        await this.retire(unit);
        return;
      // 'deregister': the registry asks the worker to exit over NATS; its job then ends by itself.
      // 'interrupt': travels over NATS to the worker's control thread.
      default:
        return;
    }
  }

  async kill(_pid: number, config: WorkerConfig): Promise<void> {
    const unit = this.byToken.get(config.launchToken);
    if (unit && unit.state !== 'ended') await this.cancelUnits([unit]);
  }

  /**
   * Cancels every unit still live and closes the adapter's connection (recording `adapter.closed`).
   * The cluster does not call this; call it when a manager is done with for good.
   */
  async close(): Promise<void> {
    for (const l of this.launches) this.abortLaunch(l);
    await this.cancelUnits([...this.units.values()].filter((u) => u.state !== 'ended'));
    const s = this.session;
    if (s) {
      s.record(adapterEvents.closed(Date.now(), 'closed'));
      this.session = null;
      this.sessionP = null;
      await s.close();
    }
    this.onIdle();
  }

  /** The adapter actor's state, or null when no session is open. */
  get state(): string | null {
    return this.session?.state ?? null;
  }

  /** Units that have not ended, for status and tests. */
  liveUnits(): { id: string; jobId: string; state: string; pid: number | null; host: string | null }[] {
    return [...this.units.values()].filter((u) => u.state !== 'ended').map((u) => ({ id: u.id, jobId: u.jobId, state: u.state, pid: u.pid, host: u.host }));
  }

  // ------------------------------------------------------------------ for subclasses

  /** Launch ids are unique per adapter: `<adapter id>/<n>`. */
  protected launchId(launch: Launch): string {
    return `${this.id}/${launch.key}`;
  }

  /** Records units submitted to a queue (one per token, in order, unless a unit names its token). */
  protected addUnits(launch: Launch, jobId: string, ids: { id: string; task: number | null; token?: string }[]): Unit[] {
    const first = launch.units.length;
    const units = ids.map(({ id, task, token }, i) => this.newUnit(launch, jobId, id, task, token ?? launch.tokens[first + i]!, 'queued'));
    this.record(adapterEvents.queued(Date.now(), { launch: this.launchId(launch), jobId, units: units.map((u) => u.id) }));
    if (launch.settled) void this.cancelUnits(units);
    return units;
  }

  /**
   * Records a unit that runs from the start (no queue): an ssh session, a bpsh process.
   * `prepare` runs before the unit's config is built (see `configFor`).
   */
  protected addRunningUnit(launch: Launch, jobId: string, id: string, token: string, host: string | null, prepare?: (u: Unit) => void): Unit {
    const unit = this.newUnit(launch, jobId, id, null, token, 'queued');
    prepare?.(unit);
    this.unitStarted(unit, host);
    return unit;
  }

  /** A submission failed after `start` returned (a remote command that never ran). */
  protected failSubmission(launch: Launch, err: LaunchError): void {
    if (launch.settled) return;
    this.record(adapterEvents.failed(Date.now(), {
      launch: this.launchId(launch), unit: null, jobId: null, message: err.message, code: err.code, stderr: err.stderr,
    }));
    this.failLaunch(launch, err);
  }

  private newUnit(launch: Launch, jobId: string, id: string, task: number | null, token: string, state: Unit['state']): Unit {
    const unit: Unit = { id, jobId, task, token, launch, state, config: null, pid: null, registered: false, cancelled: false, finalizing: false, host: null };
    launch.units.push(unit);
    this.units.set(id, unit);
    this.byToken.set(token, unit);
    return unit;
  }

  /** A unit runs: record it and hand its config to the driver (which starts the start timeout). */
  protected unitStarted(unit: Unit, host: string | null): boolean {
    if (unit.state !== 'queued') return false;
    unit.state = 'running';
    unit.host = host;
    this.record(adapterEvents.started(Date.now(), { unit: unit.id, jobId: unit.jobId, launch: this.launchId(unit.launch), host }));
    const launch = unit.launch;
    if (launch.settled || unit.cancelled) {
      void this.cancelUnits([unit]);
      return false;
    }
    unit.config = {
      launchToken: unit.token,
      schedulerJobId: unit.id,
      host: host ?? undefined,
      count: 1,
      exename: launch.params.exename,
      exeflags: launch.params.exeflags,
      userdata: { adapter: this.id, jobId: unit.jobId, unit: unit.id, task: unit.task },
      ...this.configFor(unit),
    };
    launch.launched(unit.config);
    Object.assign(unit.config, this.configAfterLaunch(unit));
    this.checkStarted(launch);
    return true;
  }

  /** A unit has ended. Before registration that fails its launch, with the job's stderr. */
  protected unitEnded(unit: Unit, end: UnitEnd): void {
    if (unit.state === 'ended') return;
    unit.state = 'ended';
    if (unit.retireTimer) clearTimeout(unit.retireTimer);
    for (const w of this.endWaiters.get(unit) ?? []) w();
    this.endWaiters.delete(unit);
    const launch = unit.launch;
    const early = !unit.registered && !unit.cancelled && !launch.settled;
    if (end.failed || early) {
      const message = early
        ? `job ${unit.id} ended before its worker registered (${end.reason}${end.code !== null ? `, exit code ${end.code}` : ''})`
        : `job ${unit.id} failed (${end.reason})`;
      this.record(adapterEvents.failed(Date.now(), { launch: null, unit: unit.id, jobId: unit.jobId, message, code: end.code, stderr: end.stderr ?? '' }));
      if (early) this.failLaunch(launch, new LaunchError(this.name, message, { code: end.code, stderr: end.stderr ?? '' }));
    } else {
      this.record(adapterEvents.exited(Date.now(), { unit: unit.id, jobId: unit.jobId, code: end.code, reason: unit.cancelled && end.reason === 'completed' ? 'cancelled' : end.reason }));
    }
    this.checkStarted(launch);
    if (launch.units.every((u) => u.state === 'ended') && (launch.settled || launch.units.length === launch.count)) {
      for (const u of launch.units) {
        this.units.delete(u.id);
        this.byToken.delete(u.token);
      }
      this.onLaunchEnded(launch);
    }
    this.maybeIdle();
  }

  /** Cancels units (marking them so that their end is not a failure). */
  protected async cancelUnits(units: Unit[]): Promise<void> {
    const live = units.filter((u) => u.state !== 'ended');
    if (!live.length) return;
    for (const u of live) u.cancelled = true;
    try {
      await this.cancel(live);
    } catch (e) {
      console.error(`colony: ${this.name}: cancelling ${live.map((u) => u.id).join(', ')} failed: ${(e as Error).message}`);
    }
  }

  /** The launch's submission is over: announcements of its jobs can be answered. */
  private placed(launch: Launch): void {
    for (const t of launch.tokens) this.submitting.delete(t);
    for (const w of this.placedWaiters.get(launch) ?? []) w();
    this.placedWaiters.delete(launch);
  }

  /** Answers a job that announces itself: start it only if its launch still wants it. */
  protected async onAnnounce(a: Announcement): Promise<AnnounceReply> {
    const early = this.submitting.get(a.token);
    if (early && !this.byToken.has(a.token)) {
      await new Promise<void>((r) => {
        const list = this.placedWaiters.get(early) ?? [];
        list.push(r);
        this.placedWaiters.set(early, list);
      });
    }
    const unit = this.byToken.get(a.token);
    if (!unit) return { go: false, reason: 'unknown launch token' };
    if (unit.state === 'running' && unit.config) return { go: true };
    if (unit.state !== 'queued') return { go: false, reason: `unit ${unit.id} is ${unit.state}` };
    return this.unitStarted(unit, a.host) ? { go: true } : { go: false, reason: 'the launch was cancelled' };
  }

  protected toLaunchError(e: unknown): LaunchError {
    if (e instanceof LaunchError) return e;
    const x = e as Error & { code?: unknown; stderr?: unknown };
    return new LaunchError(this.name, x.message, { cause: e, code: typeof x.code === 'number' ? x.code : null, stderr: typeof x.stderr === 'string' ? x.stderr : '' });
  }

  // ------------------------------------------------------------------ internals

  private record(event: AdapterEvent): void {
    try {
      this.session?.record(event);
    } catch (e) {
      // A lost append must not stop the launch; the journal reports it at its next flush.
      console.error(`colony: ${this.name}: recording ${event.type} failed: ${(e as Error).message}`);
    }
  }

  private retire(unit: Unit): Promise<void> {
    if (unit.state === 'ended') return Promise.resolve();
    if (!unit.finalizing) {
      unit.finalizing = true;
      // The worker was asked to exit and its job normally ends by itself; cancel what lingers.
      unit.retireTimer = setTimeout(() => void this.cancelUnits([unit]), this.exitGraceMs);
      unit.retireTimer.unref();
      this.onRetire(unit);
    }
    return new Promise((r) => {
      const list = this.endWaiters.get(unit) ?? [];
      list.push(r);
      this.endWaiters.set(unit, list);
    });
  }

  private checkStarted(launch: Launch): void {
    if (launch.allStarted || launch.units.length !== launch.count || launch.units.some((u) => u.state === 'queued')) return;
    launch.allStarted = true;
    this.onLaunchStarted(launch);
  }

  private checkLaunch(launch: Launch): void {
    if (launch.settled) return;
    if (launch.units.length === launch.count && launch.units.every((u) => u.registered)) {
      launch.settled = true;
      launch.resolve();
    }
  }

  private failLaunch(launch: Launch, err: Error): void {
    if (launch.settled) return;
    launch.settled = true;
    launch.failed = true;
    launch.reject(err);
    void this.cancelUnits(launch.units.filter((u) => !u.registered));
  }

  private abortLaunch(launch: Launch): void {
    if (launch.settled) return;
    launch.settled = true;
    launch.resolve();
    void this.cancelUnits(launch.units.filter((u) => !u.registered));
  }

  private async openSession(params: LaunchParams): Promise<AdapterSession> {
    if (this.session && (this.session.cluster !== params.cluster || this.session.url !== params.nats)) {
      throw new InvalidArgumentError('manager', `${this.name} manager ${this.id} already serves cluster '${this.session.cluster}'; use one manager instance per cluster`);
    }
    this.sessionP ??= AdapterSession.open(params, this.id, (a) => this.onAnnounce(a), () => this.onSessionLost(), () => this.onDisconnect()).then(
      (s) => (this.session = s),
      (e) => {
        this.sessionP = null;
        throw e;
      },
    );
    return this.sessionP;
  }

  private onDisconnect(): void {
    // The driver closed the cluster (and its embedded server) after removing its workers: their
    // jobs end by themselves and nothing is left to record. Do not keep the process alive for a
    // reconnect that will not come.
    if (this.launches.size > 0) return;
    for (const u of this.units.values()) if (u.state !== 'ended' && !u.finalizing && !u.cancelled) return;
    const s = this.session;
    if (!s) return;
    this.session = null;
    this.sessionP = null;
    void s.close();
  }

  private onSessionLost(): void {
    // The cluster's NATS is gone for good (the driver closed it): nothing can register any more.
    this.session = null;
    this.sessionP = null;
    for (const l of this.launches) this.failLaunch(l, new LaunchError(this.name, 'lost the connection to the cluster'));
    void this.cancelUnits([...this.units.values()].filter((u) => u.state !== 'ended'));
  }

  private maybeIdle(): void {
    if (this.launches.size > 0) return;
    for (const u of this.units.values()) if (u.state !== 'ended') return;
    this.onIdle();
    const s = this.session;
    if (s) {
      this.session = null;
      this.sessionP = null;
      void s.close();
    }
  }
}
