/**
 * The pool controller: runs a `pool` actor (actors/pool.ts) and does what it decides.
 *
 * Every `tickMs` it gathers the demand the drivers publish on `colony.<c>.pool.demand`, records
 * it when it changed (`pool.demand`), drains workers whose walltime nears, retires drained ones,
 * and asks the pure `decide()` what to do: spawn through the manager (`addprocs`, in the
 * background: a queued job never blocks the tick), retire idle workers (they drain first, so a
 * driver that just sent them work is told before they go), or hold. A decision is recorded when
 * its action or reason changes. The pool publishes its state and draining workers on
 * `colony.<c>.pool.info`, answers `colony.<c>.pool.status` and takes `pause`, `resume` and
 * `close` on `colony.<c>.pool.ctl.<id>`.
 */
import { randomBytes } from 'node:crypto';
import type { Subscription } from '@nats-io/transport-node';
import { PolicyError, checkPolicy, drained, liveWorkers, poolDecision, poolEvents, poolInputs, sameDecision, walltimeDue } from '../../actors/index.ts';
import type { ActorEvent, PoolContext, PoolDecision, PoolPolicy, RetireReason } from '../../actors/index.ts';
import type { ClusterManager } from '../../adapters/cluster-manager.ts';
import type { HostedActor } from '../log/actor-host.ts';
import type { ClusterContext, Launches } from '../process/context.ts';
import type { DemandReport, PoolInfo, WorkDemand } from '../process/work-demand.ts';
import { decode, encode } from '../transport/codec.ts';
import { InvalidArgumentError } from '../transport/errors.ts';

/** What a pool needs of the cluster. */
export type PoolHost = Pick<ClusterContext, 'name' | 'nc' | 'journal' | 'node' | 'registry'> & Launches & { readonly demand: WorkDemand };

export interface PoolOptions {
  /** The pool's id, one subject token. @default `<manager>-<8 hex digits>` */
  id?: string;
  /** How often the pool looks at demand and decides. @default spawnIntervalMs / 2, between 20 and 200 */
  tickMs?: number;
  /** Close the manager when the pool closes (a manager the pool made from the site file). */
  ownsManager?: boolean;
}

/** `pool.status()`. */
export interface PoolStatus {
  id: string;
  state: string;
  manager: string;
  /** How many pool workers there are (draining ones included). */
  workers: number;
  /** Their pids. */
  pids: number[];
  /** The pids of those that drain. */
  draining: number[];
  queued: number;
  ready: number;
  idle: number;
  failures: number;
  /** Why the pool is paused, else the reason of its last decision. */
  reason: string | null;
  lastDecision: (PoolDecision & { at: number }) | null;
  policy: PoolPolicy;
}

/** A driver not heard of for this long has no demand any more. */
const DRIVER_STALE_MS = 2000;
const INFO_EVERY_MS = 1000;
const ID = /^[A-Za-z0-9_-]+$/;

/** Checks a policy, turning its errors into InvalidArgumentErrors that name the field. */
export function parsePolicy(raw: unknown, where?: (field: string) => string, defaults: Partial<PoolPolicy> = {}): PoolPolicy {
  try {
    return checkPolicy(raw, where, defaults);
  } catch (e) {
    if (e instanceof PolicyError) throw new InvalidArgumentError(`policy${e.field ? `.${e.field}` : ''}`, e.detail);
    throw e;
  }
}

/** The manager's own walltime, in ms, when it has one (SGE `walltime`, Slurm `time`). */
function managerWalltimeMs(m: ClusterManager): number | null {
  const o = (m as { opts?: Record<string, unknown>; options?: Record<string, unknown> }).opts ?? (m as { options?: Record<string, unknown> }).options;
  const w = o?.walltime ?? o?.time;
  if (typeof w === 'number' && w > 0) return w * 1000;
  if (typeof w === 'string' && /^\d+(:\d\d){0,2}$/.test(w)) return w.split(':').reduce((s, p) => s * 60 + Number(p), 0) * 1000;
  return null;
}

export class Pool {
  private readonly demand = new Map<string, DemandReport & { seen: number }>();
  private readonly launches = new Map<string, AbortController>();
  private readonly retiring = new Set<number>();
  private readonly subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastInfo = '';
  private lastInfoAt = 0;
  private launchSeq = 0;
  private closing: Promise<void> | null = null;
  private readonly work = new Set<Promise<unknown>>();

  private constructor(
    private readonly host: PoolHost,
    readonly manager: ClusterManager,
    private readonly actor: HostedActor,
    private readonly opts: Required<Pick<PoolOptions, 'tickMs'>> & PoolOptions,
  ) {}

  /** Starts a pool over `manager` with `policy` (checked; bad fields are refused by name). */
  static async start(host: PoolHost, manager: ClusterManager, policy: unknown, opts: PoolOptions = {}): Promise<Pool> {
    if (!manager || typeof manager.launch !== 'function') throw new InvalidArgumentError('manager', 'expected a ClusterManager');
    const wt = managerWalltimeMs(manager);
    const p = parsePolicy(policy, undefined, wt !== null ? { walltimeMs: wt } : {});
    const id = opts.id ?? `${manager.name}-${randomBytes(4).toString('hex')}`;
    if (!ID.test(id)) throw new InvalidArgumentError('id', `pool id '${id}' must match ${ID}`);
    if (await host.journal.last('pool', id)) throw new InvalidArgumentError('id', `a pool with id '${id}' exists already in this cluster`);
    const actor = host.node.host.create('pool', id);
    const adapter = (manager as { id?: unknown }).id;
    actor.send(poolEvents.started(Date.now(), { manager: manager.name, adapter: typeof adapter === 'string' ? adapter : null, policy: p }));
    await actor.durable();
    // Ticks often enough that a short spawnIntervalMs is kept to, at most 5 a second.
    const pool = new Pool(host, manager, actor, { tickMs: Math.min(200, Math.max(20, p.spawnIntervalMs / 2)), ...opts });
    pool.listen();
    pool.tick();
    return pool;
  }

  get id(): string {
    return this.actor.id;
  }

  /** `running`, `paused` or `closed`. */
  get state(): string {
    return this.actor.done ? 'closed' : this.actor.state;
  }

  private get ctx(): PoolContext {
    return this.actor.context as unknown as PoolContext;
  }

  status(): PoolStatus {
    const c = this.ctx;
    const i = poolInputs(c, Date.now());
    return {
      id: this.id, state: this.state, manager: c.manager,
      workers: i.running,
      pids: Object.keys(c.workers).map(Number).sort((a, b) => a - b),
      draining: Object.values(c.workers).filter((w) => w.draining).map((w) => w.pid),
      queued: i.queued, ready: i.ready, idle: i.idle, failures: c.failures,
      reason: c.paused?.reason ?? c.lastDecision?.reason ?? null,
      lastDecision: c.lastDecision, policy: c.policy,
    };
  }

  /** Stops submitting (workers keep running and idle ones still retire). */
  async pause(reason = 'paused by hand'): Promise<void> {
    if (this.state === 'running') this.record(poolEvents.paused(Date.now(), { reason }));
    this.tick();
    await this.actor.durable();
  }

  /** Submits again (the count of failures starts from 0). */
  async resume(): Promise<void> {
    if (this.state === 'paused') this.record(poolEvents.resumed(Date.now()));
    this.tick();
    await this.actor.durable();
  }

  /** Cancels queued launches, retires every pool worker and ends the actor. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      for (const [launch, ac] of this.launches) {
        this.record(poolEvents.launchCancelled(Date.now(), { launch, reason: 'closed' }));
        ac.abort();
      }
      const pids = Object.keys(this.ctx.workers).map(Number);
      for (const pid of pids) this.retire(pid, 'closed');
      await Promise.allSettled([...this.work]);
      if (!this.actor.done) this.record(poolEvents.closed(Date.now()));
      this.publishInfo(true);
      for (const s of this.subs) s.unsubscribe();
      await this.actor.durable();
      if (this.opts.ownsManager) await (this.manager as { close?: () => Promise<void> }).close?.();
    })();
    return this.closing;
  }

  /** Resolves when every event so far is stored. */
  durable(): Promise<void> {
    return this.actor.durable();
  }

  // ------------------------------------------------------------------ NATS

  private listen(): void {
    const { nc, journal } = this.host;
    const s = journal.subjects;
    this.subs.push(
      nc.subscribe(s.poolDemand, {
        callback: (_e, m) => {
          try {
            const r = decode<DemandReport>(m.data);
            if (typeof r.driver === 'string') this.demand.set(r.driver, { ...r, seen: Date.now() });
          } catch {
            /* not a demand report */
          }
        },
      }),
      nc.subscribe(s.poolStatus, { callback: (_e, m) => { m.respond(encode({ info: this.info(), status: this.status() })); } }),
      nc.subscribe(s.poolCtl(this.id), {
        callback: (_e, m) => {
          void (async () => {
            try {
              const req = decode<{ op: string; reason?: string }>(m.data);
              if (req.op === 'pause') await this.pause(req.reason ?? 'paused by hand');
              else if (req.op === 'resume') await this.resume();
              else if (req.op === 'close') await this.close();
              else if (req.op !== 'status') throw new Error(`unknown op '${req.op}'`);
              m.respond(encode({ ok: true, status: this.status() }));
            } catch (e) {
              m.respond(encode({ ok: false, error: (e as Error).message }));
            }
          })();
        },
      }),
    );
  }

  private info(): PoolInfo {
    const c = this.ctx;
    return {
      id: this.id, state: this.state, manager: c.manager,
      draining: Object.values(c.workers).filter((w) => w.draining).map((w) => w.pid).sort((a, b) => a - b),
      workers: Object.keys(c.workers).map(Number).sort((a, b) => a - b),
      at: Date.now(),
    };
  }

  private publishInfo(force = false): void {
    const info = this.info();
    const key = `${info.state}|${info.draining.join(',')}|${info.workers.join(',')}`;
    const now = Date.now();
    if (!force && key === this.lastInfo && now - this.lastInfoAt < INFO_EVERY_MS) return;
    this.lastInfo = key;
    this.lastInfoAt = now;
    this.host.demand.heard(info);
    if (!this.host.nc.isClosed()) this.host.nc.publish(this.host.journal.subjects.poolInfo, encode(info));
  }

  // ------------------------------------------------------------------ the loop

  private tick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.closing || this.actor.done) return;
    try {
      this.step(Date.now());
    } catch (e) {
      console.error(`colony: pool ${this.id}: ${(e as Error).message}`);
    }
    this.timer = setTimeout(() => this.tick(), this.opts.tickMs);
    this.timer.unref();
  }

  private step(now: number): void {
    const { registry } = this.host;
    let c = this.ctx;
    // Pool workers that left without being retired (lost, or their job ended).
    for (const pid of Object.keys(c.workers).map(Number)) {
      if (!this.retiring.has(pid) && !registry.has(pid)) this.record(poolEvents.workerRetired(now, { pid, reason: 'lost' }));
    }
    this.observeDemand(now);
    c = this.ctx;
    for (const pid of walltimeDue(c, now)) this.record(poolEvents.workerDraining(now, { pid, reason: 'walltime' }));
    this.publishInfo();
    for (const { pid, reason } of drained(this.ctx, now)) this.retire(pid, reason);
    c = this.ctx;
    const d = poolDecision(c, now);
    if (!sameDecision(c.lastDecision, d)) {
      const i = poolInputs(c, now);
      this.record(poolEvents.decided(now, { ...d, ready: i.ready, idle: i.idle, queued: i.queued, running: i.running }));
    }
    if (d.action === 'spawn' && this.state === 'running') this.spawn(now, d.count ?? 1);
    else if (d.action === 'retire' && d.pids) {
      for (const pid of d.pids) this.record(poolEvents.workerDraining(now, { pid, reason: 'idle' }));
      this.publishInfo(true);
    } else if (d.action === 'retire') this.cancelQueued(now, d.count ?? 0);
  }

  /** Cancels the newest queued launches, `count` workers' worth: their jobs leave the queue. */
  private cancelQueued(now: number, count: number): void {
    const pending = Object.entries(this.ctx.pending).sort((a, b) => b[1].at - a[1].at);
    for (const [launch, { count: n }] of pending) {
      if (count <= 0) break;
      const ac = this.launches.get(launch);
      if (!ac) continue;
      this.record(poolEvents.launchCancelled(now, { launch, reason: 'shrink: no ready work' }));
      this.launches.delete(launch);
      ac.abort();
      count -= n;
    }
  }

  /** Sums the drivers' demand and records it when it changed. */
  private observeDemand(now: number): void {
    let ready = 0;
    const busy = new Set<number>();
    for (const [driver, r] of this.demand) {
      if (now - r.seen > DRIVER_STALE_MS) {
        this.demand.delete(driver);
        continue;
      }
      ready += r.ready;
      for (const p of r.busy) busy.add(p);
    }
    const workers = this.host.registry.live();
    const live = new Set([...workers, ...liveWorkers(this.ctx)]);
    const b = [...busy].filter((p) => live.has(p)).sort((x, y) => x - y);
    const d = this.ctx.demand;
    if (d.ready === ready && d.workers.join(',') === workers.join(',') && d.busy.join(',') === b.join(',')) return;
    this.record(poolEvents.demand(now, { ready, workers, busy: b }));
  }

  private spawn(now: number, count: number): void {
    const launch = `${this.id}/${++this.launchSeq}`;
    if (!this.record(poolEvents.spawned(now, { launch, count }))) return;
    const ac = new AbortController();
    this.launches.set(launch, ac);
    const p = this.host.addprocs(this.manager, { count, signal: ac.signal }).then(
      (pids) => {
        this.launches.delete(launch);
        for (const pid of pids) this.record(poolEvents.workerJoined(Date.now(), { pid, launch }));
        if (this.closing || this.actor.done) void this.host.rmprocs(pids).catch(() => undefined);
        this.tick();
      },
      (e: Error & { code?: number | null; stderr?: string }) => {
        this.launches.delete(launch);
        if (ac.signal.aborted) return;
        const code = typeof e.code === 'number' ? e.code : null;
        const stderr = typeof e.stderr === 'string' ? e.stderr : '';
        this.record(poolEvents.launchFailed(Date.now(), { launch, code, stderr, message: e.message }));
        const c = this.ctx;
        if (this.state === 'running' && c.failures >= c.policy.pauseAfterFailures) {
          const why = stderr.trim() || e.message;
          this.record(poolEvents.paused(Date.now(), {
            reason: `${c.failures} launches failed in a row (pauseAfterFailures ${c.policy.pauseAfterFailures}); last${code !== null ? ` exit code ${code}` : ''}: ${why}`,
            code, stderr,
          }));
          this.publishInfo(true);
        }
        this.tick();
      },
    );
    this.track(p);
  }

  private retire(pid: number, reason: RetireReason): void {
    if (this.retiring.has(pid)) return;
    this.retiring.add(pid);
    this.record(poolEvents.workerRetired(Date.now(), { pid, reason }));
    this.track(this.host.rmprocs([pid]).catch((e) => console.error(`colony: pool ${this.id}: retiring worker ${pid}: ${(e as Error).message}`)));
  }

  private track(p: Promise<unknown>): void {
    this.work.add(p);
    void p.finally(() => this.work.delete(p));
  }

  /** Sends an event the machine accepts; an event it refuses is a bug, reported, not thrown. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private record(ev: ActorEvent<string, any>): boolean {
    if (this.actor.done) return false;
    if (!this.actor.accepts(ev)) {
      console.error(`colony: pool ${this.id}: '${ev.type}' refused in state '${this.actor.state}'`);
      return false;
    }
    this.actor.send(ev);
    return true;
  }
}
