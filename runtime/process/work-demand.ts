/**
 * A driver's side of elastic pools: it tells the pools how much work waits, and learns from
 * them which workers drain.
 *
 * - Demand: each running pmap (and each call waiting for a worker) is a source of ready work.
 *   While there is any, or while this driver has calls in flight, the sum and the busy workers
 *   go out on the core subject `colony.<c>.pool.demand` every `periodMs` (and at once on a
 *   change), so a pool in another process (`colony up --pool`) serves this driver too.
 * - Pools: every pool publishes its state and its draining workers on `colony.<c>.pool.info`
 *   (and answers `colony.<c>.pool.status`). With a live pool, work waits for pool workers
 *   instead of failing for lack of workers or running on the driver, and draining workers get
 *   no new work.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { decode, encode } from '../transport/codec.ts';
import type { Subjects } from '../transport/subjects.ts';
import type { WorkerRegistry } from './worker-registry.ts';

/** What a pool says about itself on `pool.info` and in status replies. */
export interface PoolInfo {
  id: string;
  state: string;
  manager: string;
  /** Pool workers that get no new work. */
  draining: number[];
  /** Pool workers. */
  workers: number[];
  at: number;
}

/** One driver's demand message. */
export interface DemandReport {
  driver: string;
  ready: number;
  busy: number[];
  at: number;
}

/** A pool not heard of for this long is gone. */
const POOL_STALE_MS = 3500;

export class WorkDemand {
  private readonly sources = new Set<() => number>();
  private readonly pools = new Map<string, { info: PoolInfo; seen: number }>();
  private readonly poolListeners = new Set<() => void>();
  private sub: Subscription | null = null;
  private timer: NodeJS.Timeout | null = null;
  private last = '';

  constructor(
    private readonly nc: NatsConnection,
    private readonly s: Subjects,
    private readonly registry: WorkerRegistry,
    readonly driver: string,
    private readonly periodMs = 250,
  ) {}

  /** Listens to the pools and asks the ones running now for their state. */
  async start(): Promise<void> {
    this.sub = this.nc.subscribe(this.s.poolInfo, {
      callback: (_e, m) => {
        try {
          this.heard(decode<PoolInfo>(m.data));
        } catch {
          /* not a pool info */
        }
      },
    });
    try {
      // With no pool, the server answers "no responders" at once.
      const m = await this.nc.request(this.s.poolStatus, encode({}), { timeout: 500 });
      const r = decode<{ pools?: PoolInfo[]; info?: PoolInfo }>(m.data);
      for (const p of r.pools ?? (r.info ? [r.info] : [])) this.heard(p);
    } catch {
      /* no pool yet */
    }
    this.timer = setInterval(() => this.publish(false), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sub?.unsubscribe();
    this.sub = null;
  }

  /** Records a pool's info (the pool's own process calls this too, so it never waits on NATS). */
  heard(info: PoolInfo): void {
    if (!info || typeof info.id !== 'string') return;
    if (info.state === 'closed') this.pools.delete(info.id);
    else this.pools.set(info.id, { info, seen: Date.now() });
    for (const fn of this.poolListeners) fn();
  }

  /** Calls `fn` whenever a pool's info arrives. Returns the function that stops it. */
  onPool(fn: () => void): () => void {
    this.poolListeners.add(fn);
    return () => this.poolListeners.delete(fn);
  }

  private livePools(): PoolInfo[] {
    const now = Date.now();
    const out: PoolInfo[] = [];
    for (const [id, p] of this.pools) {
      if (now - p.seen > POOL_STALE_MS) this.pools.delete(id);
      else out.push(p.info);
    }
    return out;
  }

  /** Whether a pool (running or paused) serves this cluster: work then waits for its workers. */
  hasPool(): boolean {
    return this.livePools().length > 0;
  }

  /** Whether `pid` drains (a pool retires it soon): it gets no new work. */
  isDraining(pid: number): boolean {
    for (const p of this.livePools()) if (p.draining.includes(pid)) return true;
    return false;
  }

  /** Live workers that take new work. */
  usable(): number[] {
    return this.registry.live().filter((p) => !this.isDraining(p));
  }

  /** Adds a source of ready work (a pmap's unsent items). Returns the function that removes it. */
  add(ready: () => number): () => void {
    this.sources.add(ready);
    this.publish(true);
    return () => {
      this.sources.delete(ready);
      this.publish(true);
    };
  }

  /** The ready work of this driver now. */
  ready(): number {
    let n = 0;
    for (const f of this.sources) n += Math.max(0, f());
    return n;
  }

  /**
   * Sends the demand when it changed (`changed`), or as a keepalive every period while there is
   * any. Nothing goes out while this driver has neither ready work nor calls in flight.
   */
  publish(changed: boolean): void {
    if (this.nc.isClosed()) return;
    const ready = this.ready();
    const busy = this.registry.busy();
    const key = `${ready}|${busy.join(',')}`;
    const now = Date.now();
    const idle = ready === 0 && busy.length === 0;
    if (key === this.last && (idle || changed)) return;
    this.last = key;
    const report: DemandReport = { driver: this.driver, ready, busy, at: now };
    try {
      this.nc.publish(this.s.poolDemand, encode(report));
    } catch {
      /* closing */
    }
  }

  /**
   * Resolves with a worker that takes new work, counting as one ready call while it waits
   * (a remotecall placed while a pool grows). Rejects when `signal` aborts or no pool is left.
   */
  async waitForWorker(signal?: AbortSignal): Promise<number> {
    const pick = () => {
      const u = this.usable();
      if (!u.length) return undefined;
      const least = this.registry.leastLoaded();
      return least !== undefined && u.includes(least) ? least : u[0];
    };
    const now = pick();
    if (now !== undefined) return now;
    return new Promise<number>((resolve, reject) => {
      let remove = () => undefined as unknown;
      const done = (f: () => void) => {
        unwatch();
        clearInterval(t);
        remove();
        signal?.removeEventListener('abort', onAbort);
        f();
      };
      const check = () => {
        const p = pick();
        if (p !== undefined) done(() => resolve(p));
        else if (!this.hasPool()) done(() => reject(new Error('no pool serves this cluster any more and no worker is left')));
      };
      const onAbort = () => done(() => reject(signal!.reason));
      const unwatch = this.registry.watchReady(() => check());
      const t = setInterval(check, 200);
      t.unref();
      remove = this.add(() => 1);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}
