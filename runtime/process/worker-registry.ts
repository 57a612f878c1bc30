/**
 * The driver's registry of workers: registration and pids, the worker actors, heartbeats, and
 * the detection of lost workers (a dead child process at once, anything else by missed
 * heartbeats). A missed heartbeat is not persisted; the `worker.lost` it leads to is.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { foldStep, workerEvents } from '../../actors/index.ts';
import type { ClusterManager, WorkerConfig } from '../../adapters/cluster-manager.ts';
import type { ActorHost, HostedActor } from '../log/actor-host.ts';
import { decode, encode } from '../transport/codec.ts';
import { JournalConflictError, ProcessExitedError, toErrorData } from '../transport/errors.ts';
import type { ProcessNode } from './process-node.ts';
import type { Subjects } from '../transport/subjects.ts';

export interface WorkerInfo {
  pid: number;
  host: string;
  ospid: number;
  state: string;
  manager: string;
  /** Tasks running now, from the last heartbeat. */
  running: number;
  lastHeartbeat: number;
}

interface Entry {
  pid: number;
  actor: HostedActor;
  config: WorkerConfig;
  manager: ClusterManager;
  host: string;
  ospid: number;
  lastHb: number;
  running: number;
  stopping: boolean;
  ended: boolean;
  /** Calls sent by this driver and not yet answered (for least-loaded placement). */
  inflight: number;
  /** A heartbeat arrived from this worker (adopted workers start unheard). */
  heard?: boolean;
  /** An ended worker that came back was told to exit. */
  exitAsked?: boolean;
  /**
   * Registered by another driver of the cluster (`colony up` and a driver attached to it): this
   * one learnt of it from its ready message, counts it live, and writes its events only through
   * a fresh restore (the registering driver is the actor's usual writer).
   */
  followed?: boolean;
  exited: Promise<void>;
  markExited: () => void;
}

interface Expected {
  config: WorkerConfig;
  manager: ClusterManager;
  remaining: number;
  onReady: (pid: number) => void;
}

export interface RegistryOptions {
  /** Heartbeat period. @default 500 */
  hbMs: number;
  /** A worker silent this long is lost. @default 5000 */
  hbTimeoutMs: number;
  /** How long workers wait for a vanished driver. */
  graceMs: number;
}

export class WorkerRegistry {
  private readonly entries = new Map<number, Entry>();
  private readonly expected = new Map<string, Expected>();
  /** `manage(..., 'finalize')` calls still running: close() waits for them. */
  private readonly finalizing = new Set<Promise<unknown>>();
  private readonly joinManager: ClusterManager;
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;
  private nextPid = 2;
  readonly modules: string[] = [];
  /** Called when a worker is lost or exits, after its actor is updated. */
  onEnded: (pid: number, lost: boolean) => void = () => undefined;
  private readonly readyListeners = new Set<(pid: number) => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly s: Subjects,
    private readonly host: ActorHost,
    private readonly node: ProcessNode,
    readonly opts: RegistryOptions,
  ) {
    this.joinManager = { name: 'join', launch: async () => undefined, manage: async () => undefined };
  }

  /** Starts serving registrations and heartbeats; pids continue after the highest in the log. */
  async start(): Promise<void> {
    for (const k of await this.host.journal.stateKeys('worker.*')) this.nextPid = Math.max(this.nextPid, Number(k.slice(7)) + 1);
    this.subs.push(
      // One driver of the cluster answers each registration (several may be attached); the others
      // learn of the worker from its ready message.
      this.nc.subscribe(this.s.register, { queue: 'registrar', callback: (_e, m) => void this.onRegister(m) }),
      this.nc.subscribe(this.s.ready, { callback: (_e, m) => void this.onWorkerReady(m) }),
      this.nc.subscribe(this.s.hb('*'), { callback: (_e, m) => this.onHeartbeat(m) }),
    );
    const beat = () => {
      try {
        this.nc.publish(this.s.hb(1), encode({ pid: 1, at: Date.now() }));
      } catch {
        return; // the connection is closed: the cluster is going
      }
      this.checkHeartbeats();
    };
    beat();
    this.timer = setInterval(beat, this.opts.hbMs);
    this.timer.unref();
    void this.watchConnection();
  }

  /**
   * While this process's own connection is down, no heartbeat can arrive from anyone: the
   * silence says nothing about the workers. Loss detection waits, and starts with a fresh
   * heartbeat timeout once the connection is back (workers reconnect about as fast).
   */
  private async watchConnection(): Promise<void> {
    try {
      for await (const st of this.nc.status()) {
        if (this.timer === null) return;
        if (st.type === 'disconnect') this.disconnected = true;
        else if (st.type === 'reconnect') {
          this.disconnected = false;
          const now = Date.now();
          for (const e of this.entries.values()) e.lastHb = Math.max(e.lastHb, now);
        }
      }
    } catch {
      /* the connection closed */
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
  }

  /**
   * Adopts the workers of a driver that died: every worker whose actor is not final is restored
   * from the log (snapshot plus tail) and counted live until its heartbeats say otherwise.
   */
  async adopt(): Promise<number[]> {
    const pids: number[] = [];
    for (const k of await this.host.journal.stateKeys('worker.*')) pids.push(Number(k.slice(7)));
    const adopted: number[] = [];
    await Promise.all(pids.sort((a, b) => a - b).map(async (pid) => {
      const actor = await this.host.restore('worker', String(pid), { verify: false });
      if (actor.done || this.entries.has(pid)) return;
      const c = actor.context as { host: string; ospid: number; launchToken: string };
      let markExited!: () => void;
      const exited = new Promise<void>((r) => (markExited = r));
      this.entries.set(pid, {
        pid, actor, config: { launchToken: c.launchToken, host: c.host, ospid: c.ospid }, manager: this.joinManager,
        host: c.host, ospid: c.ospid, lastHb: Date.now(), running: 0, stopping: actor.state === 'stopping', ended: false,
        inflight: 0, heard: false, exited, markExited,
      });
      adopted.push(pid);
    }));
    return adopted.sort((a, b) => a - b);
  }

  /**
   * Waits until every adopted worker has sent a heartbeat, for at most two heartbeat periods.
   * Those still silent stay out of `live()`; the heartbeat check declares them lost later.
   */
  async settleAdopted(pids: number[]): Promise<number[]> {
    const silent = () => pids.filter((p) => {
      const e = this.entries.get(p);
      return e && !e.ended && e.heard === false;
    });
    const deadline = Date.now() + 2 * this.opts.hbMs + 200;
    while (silent().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return silent();
  }

  /** Waits for `count` registrations with the config's token. */
  expect(config: WorkerConfig, manager: ClusterManager, count: number, onReady: (pid: number) => void): void {
    this.expected.set(config.launchToken, { config, manager, remaining: count, onReady });
  }

  /** Stops waiting for a launch (it failed or timed out). */
  unexpect(token: string): void {
    this.expected.delete(token);
  }

  /** Launch tokens given up on: a worker that still registers with one is removed at once. */
  private readonly abandoned = new Set<string>();

  /**
   * Gives up on a launch (it failed or was cancelled): a job that started anyway must not stay
   * as a worker nobody asked for, so a late registration with `token` is removed when ready.
   */
  abandon(token: string): void {
    this.expected.delete(token);
    this.abandoned.add(token);
    if (this.abandoned.size > 10_000) this.abandoned.delete(this.abandoned.values().next().value!);
  }

  /** Live, ready workers, in pid order. */
  live(): number[] {
    return [...this.entries.values()].filter((e) => !e.ended && !e.stopping && e.heard !== false && (e.followed || e.actor.state === 'ready')).map((e) => e.pid).sort((a, b) => a - b);
  }

  has(pid: number): boolean {
    const e = this.entries.get(pid);
    return !!e && !e.ended;
  }

  info(): WorkerInfo[] {
    return [...this.entries.values()].map((e) => ({
      pid: e.pid, host: e.host, ospid: e.ospid, state: e.actor.state, manager: e.manager.name, running: e.running, lastHeartbeat: e.lastHb,
    }));
  }

  entry(pid: number): { config: WorkerConfig; manager: ClusterManager } | undefined {
    return this.entries.get(pid);
  }

  /** The ready worker with the fewest calls in flight (running tasks break ties). */
  leastLoaded(): number | undefined {
    let best: Entry | undefined;
    for (const pid of this.live()) {
      const e = this.entries.get(pid)!;
      // Calls in flight are exact; the heartbeat's running count can be a period old and counts
      // this driver's own calls again, so it only breaks ties.
      if (!best || e.inflight < best.inflight || (e.inflight === best.inflight && e.running < best.running)) best = e;
    }
    return best?.pid;
  }

  /** Workers with calls of this driver in flight (the pool counts them busy). */
  busy(): number[] {
    const out: number[] = [];
    for (const e of this.entries.values()) if (!e.ended && e.inflight > 0) out.push(e.pid);
    return out.sort((a, b) => a - b);
  }

  /** Counts a call sent to `pid` until `done` resolves. */
  track<T>(pid: number, done: Promise<T>): Promise<T> {
    const e = this.entries.get(pid);
    if (!e) return done;
    e.inflight++;
    const dec = () => { e.inflight--; };
    done.then(dec, dec);
    return done;
  }

  // ------------------------------------------------------------ registration

  private async onRegister(msg: Msg): Promise<void> {
    try {
      const req = decode<{ token: string; host: string; ospid: number }>(msg.data);
      const exp = this.expected.get(req.token);
      const manager = exp?.manager ?? this.joinManager;
      const config: WorkerConfig = exp?.config ?? { launchToken: req.token, host: req.host, ospid: req.ospid };
      let entry: Entry | null = null;
      while (!entry) {
        const pid = this.nextPid++;
        let actor: HostedActor;
        try {
          actor = await this.host.createFirst('worker', String(pid), workerEvents.registered(Date.now(), { pid, host: req.host, ospid: req.ospid, launchToken: req.token, manager: manager.name }));
        } catch (e) {
          // Another driver of this cluster took the pid: take the next one.
          if (e instanceof JournalConflictError) continue;
          throw e;
        }
        let markExited!: () => void;
        const exited = new Promise<void>((r) => (markExited = r));
        entry = { pid, actor, config, manager, host: req.host, ospid: req.ospid, lastHb: Date.now(), running: 0, stopping: false, ended: false, inflight: 0, exited, markExited };
      }
      this.entries.set(entry.pid, entry);
      this.watchProcess(entry);
      msg.respond(encode({ pid: entry.pid, modules: this.modules, hbMs: this.opts.hbMs, graceMs: this.opts.graceMs, snapshotEvery: this.host.snapshotPolicy(), electionWindowMs: this.host.journal.electionWindowMs }));
    } catch (e) {
      try {
        msg.respond(encode({ err: toErrorData(e, 1) }));
      } catch {
        /* the connection closed */
      }
    }
  }

  private async onWorkerReady(msg: Msg): Promise<void> {
    try {
      await this.workerReady(msg);
    } catch (err) {
      // A connection that closed under a registration: the worker retries or goes.
      console.error(`colony: a worker's ready message failed: ${(err as Error).message}`);
    }
  }

  private async workerReady(msg: Msg): Promise<void> {
    const req = decode<{ pid: number; loadErrors: { url: string; error: string }[]; loaded?: string[] }>(msg.data);
    if (!this.entries.has(req.pid)) {
      await this.follow(req.pid, req.loaded ?? []).catch((err) => console.error(`colony: worker ${req.pid}: ${(err as Error).message}`));
      return;
    }
    const e = this.entries.get(req.pid);
    if (!e || e.ended || e.followed) return;
    if (this.abandoned.has(e.config.launchToken)) {
      msg.respond(encode({ done: true }));
      await this.remove(e.pid).catch(() => undefined);
      return;
    }
    for (const le of req.loadErrors ?? []) console.error(`colony: worker ${req.pid} could not load ${le.url}: ${le.error}`);
    // Modules loaded everywhere while this worker was starting up did not reach it: load them now.
    for (const url of this.modules.filter((m) => !(req.loaded ?? []).includes(m))) {
      await this.load(e.pid, url).catch((err) => console.error(`colony: ${(err as Error).message}`));
    }
    record(e.actor, workerEvents.ready(Date.now(), this.modules.length));
    e.lastHb = Date.now();
    msg.respond(encode({ done: true }));
    await e.manager.manage(e.pid, e.config, 'register').catch((err) => console.error(`colony: ${e.manager.name}.manage(register) failed: ${err}`));
    const exp = this.expected.get(e.config.launchToken);
    if (exp) {
      if (--exp.remaining <= 0) this.expected.delete(e.config.launchToken);
      exp.onReady(e.pid);
    }
    for (const fn of this.readyListeners) fn(e.pid);
  }

  /**
   * A worker another driver registered: restore its actor, load this driver's modules on it,
   * finish a launch of this driver's that waits for its token, and count it live.
   */
  private async follow(pid: number, loaded: string[]): Promise<void> {
    const actor = await this.host.restore('worker', String(pid), { verify: false });
    if (actor.done || this.entries.has(pid)) return;
    const c = actor.context as { host: string; ospid: number; launchToken: string };
    // The driver that gave up on this launch removes it (it is the registering one or follows).
    if (this.abandoned.has(c.launchToken)) {
      this.nc.publish(this.s.ctl(pid), encode({ op: 'exit' }));
      return;
    }
    const exp = this.expected.get(c.launchToken);
    let markExited!: () => void;
    const exited = new Promise<void>((r) => (markExited = r));
    const e: Entry = {
      pid, actor, config: exp?.config ?? { launchToken: c.launchToken, host: c.host, ospid: c.ospid }, manager: exp?.manager ?? this.joinManager,
      host: c.host, ospid: c.ospid, lastHb: Date.now(), running: 0, stopping: false, ended: false, inflight: 0, followed: true, exited, markExited,
    };
    for (const url of this.modules.filter((m) => !loaded.includes(m))) await this.load(pid, url);
    this.entries.set(pid, e);
    if (exp) {
      await e.manager.manage(pid, e.config, 'register').catch((err) => console.error(`colony: ${e.manager.name}.manage(register) failed: ${err}`));
      if (--exp.remaining <= 0) this.expected.delete(c.launchToken);
      exp.onReady(pid);
    }
    for (const fn of this.readyListeners) fn(pid);
  }

  /**
   * Appends the end of a worker (stopping, exited, lost) through a fresh restore, in order: with
   * several drivers attached, another one may have written it first (it removed the worker, or
   * saw it go); its version stands and this one is dropped.
   */
  private appendWorker(e: Entry, ev: Parameters<HostedActor['send']>[0]): void {
    // This driver's view moves at once (info(), live()); the log gets the event below.
    const step = foldStep(e.actor.machine, e.actor.snapshot, ev);
    if (step.accepted) e.actor.snapshot = step.snapshot;
    const prev = this.foreign.get(e.pid) ?? Promise.resolve();
    // Counted as in flight, so history() and flush() wait for it as for any append of this
    // process; a lost append is still reported by flush() (the actor's append is tracked).
    const next = this.host.journal.track(prev.then(() => this.host.appendForeign('worker', String(e.pid), ev)).catch(() => undefined));
    this.foreign.set(e.pid, next);
  }

  private readonly foreign = new Map<number, Promise<unknown>>();

  /**
   * Calls `fn` with the pid of every worker that becomes ready from now on (any manager,
   * hand-started ones too). Returns the function that stops the calls.
   */
  watchReady(fn: (pid: number) => void): () => void {
    this.readyListeners.add(fn);
    return () => this.readyListeners.delete(fn);
  }

  private onHeartbeat(msg: Msg): void {
    const pid = Number(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    const e = this.entries.get(pid);
    if (!e) return;
    e.lastHb = Date.now();
    e.heard = true;
    // A worker declared lost that comes back (a paused or partitioned host) no longer belongs to
    // the cluster: its values were recorded as lost. Tell it to go rather than leave an orphan.
    if (e.ended && !e.exitAsked) {
      e.exitAsked = true;
      this.nc.publish(this.s.ctl(pid), encode({ op: 'exit' }));
    }
    try {
      e.running = decode<{ running: number }>(msg.data).running ?? 0;
    } catch {
      /* ignore a malformed heartbeat */
    }
  }

  private lastCheck = Date.now();
  /** This process's connection is down (see watchConnection). */
  private disconnected = false;

  private checkHeartbeats(): void {
    const now = Date.now();
    const gap = now - this.lastCheck;
    this.lastCheck = now;
    if (this.disconnected) return;
    // This process was blocked (a long synchronous stretch): the heartbeats that arrived meanwhile
    // are still queued behind this timer. Count the silence from now rather than blame the workers.
    if (gap > 2 * this.opts.hbMs + 250) {
      for (const e of this.entries.values()) e.lastHb = Math.max(e.lastHb, now);
      return;
    }
    for (const e of this.entries.values()) {
      if (!e.ended && now - e.lastHb > this.opts.hbTimeoutMs) {
        this.ended(e, true, `no heartbeat for ${Math.round((now - e.lastHb) / 100) / 10} s`);
      }
    }
  }

  private watchProcess(e: Entry): void {
    const child = e.config.process;
    if (!child) return;
    const onExit = (code: number | null, signal: string | null) => {
      if (e.ended) return;
      if (e.stopping) this.ended(e, false, '', code, signal);
      else this.ended(e, true, `process exited unexpectedly (${signal ? `signal ${signal}` : `code ${code}`})`);
    };
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
    else child.once('exit', onExit);
  }

  private ended(e: Entry, lost: boolean, reason: string, code: number | null = null, signal: string | null = null): void {
    if (e.ended) return;
    e.ended = true;
    const ev = lost ? workerEvents.lost(Date.now(), reason) : workerEvents.exited(Date.now(), code, signal);
    this.appendWorker(e, ev);
    this.node.requester.failPid(e.pid, new ProcessExitedError(e.pid, reason || 'exited'));
    e.markExited();
    const fin = e.manager.manage(e.pid, e.config, 'finalize').catch(() => undefined);
    this.finalizing.add(fin);
    void fin.then(() => this.finalizing.delete(fin));
    this.onEnded(e.pid, lost);
  }

  /**
   * Removes a worker: deregister, ask it to exit, and wait until it has (forcing it with the
   * manager's `kill` when it does not answer).
   */
  async remove(pid: number, timeoutMs = 10_000): Promise<void> {
    const e = this.entries.get(pid);
    if (!e || e.ended) return;
    if (!e.stopping) {
      e.stopping = true;
      this.appendWorker(e, workerEvents.stopping(Date.now(), 'rmprocs'));
      await e.manager.manage(pid, e.config, 'deregister').catch(() => undefined);
      try {
        await this.nc.request(this.s.ctl(pid), encode({ op: 'exit' }), { timeout: 2000 });
      } catch {
        await e.manager.kill?.(pid, e.config).catch(() => undefined);
      }
    }
    // Without a child process to watch, the worker's answer is the sign it is going.
    if (!e.config.process) this.ended(e, false, '', 0, null);
    const t = setTimeout(() => {
      void (async () => {
        await e.manager.kill?.(pid, e.config).catch(() => undefined);
        this.ended(e, false, '', null, 'killed');
      })();
    }, timeoutMs);
    await e.exited;
    clearTimeout(t);
  }

  /** Sends an interrupt to the worker's control thread. */
  async interrupt(pid: number): Promise<void> {
    const e = this.entries.get(pid);
    if (!e || e.ended) return;
    const ev = workerEvents.interrupted(Date.now());
    if (e.actor.accepts(ev)) record(e.actor, ev);
    await this.nc.request(this.s.ctl(pid), encode({ op: 'interrupt' }), { timeout: 5000 });
    await e.manager.manage(pid, e.config, 'interrupt').catch(() => undefined);
  }

  /** Loads a module on one worker. */
  async load(pid: number, url: string): Promise<void> {
    const m = await this.nc.request(this.s.ctl(pid), encode({ op: 'load', url }), { timeout: 60_000 });
    const r = decode<{ err?: { message: string } }>(m.data);
    if (r.err) throw new Error(`worker ${pid} could not load ${url}: ${r.err.message}`);
  }

  /** Waits (up to `timeoutMs`) for the managers' finalize calls still running. */
  async finalized(timeoutMs = 30_000): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.finalizing]), new Promise((r) => (t = setTimeout(r, timeoutMs)))]);
    clearTimeout(t);
  }

  /** Waits until every actor's events are stored. */
  async durable(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.actor.durable().catch(() => undefined)));
    await Promise.all([...this.foreign.values()]);
  }
}

/**
 * Sends an event to a worker actor from a callback (a heartbeat check, a process exit). If an
 * earlier append of the actor was lost, that failure is already recorded and reported by the
 * next flush, so it must not escape from here as well.
 */
function record(actor: HostedActor, ev: Parameters<HostedActor['send']>[0]): void {
  try {
    actor.send(ev);
  } catch {
    /* reported by durable() and flush() */
  }
}
