/**
 * The pool's policy and its decision function: pure, no clock, no I/O.
 *
 * `decide(inputs, policy)` is the SWAMP rule with the guards a batch queue needs: spawn when the
 * ready work outnumbers the idle workers plus the workers already on their way (queued), unless
 * the pool is at `max`, has `maxQueued` jobs waiting, spawned less than `spawnIntervalMs` ago or
 * is paused; retire idle workers beyond the ready work once idle for `idleMs`, down to `min`;
 * cancel queued workers when no work waits for them.
 * Every input is in the pool's events (see actors/pool.ts `poolInputs`), so a replay of the log
 * reaches the same decisions, and another policy can be run over the same recorded demand.
 */

export interface PoolPolicy {
  /** Workers the pool keeps even when idle. */
  min: number;
  /** Workers (running plus queued) the pool never goes past. */
  max: number;
  /** At most one submit per interval ("not spawned recently"). */
  spawnIntervalMs: number;
  /** Workers per submit (SWAMP: one at a time). */
  spawnCount: number;
  /** Scheduler jobs waiting in the queue, at most (the anti-storm backlog). */
  maxQueued: number;
  /** Retire a worker idle this long, down to `min`. */
  idleMs: number;
  /** The job's walltime; null: never drain for it. */
  walltimeMs: number | null;
  /** Stop feeding a worker this long before its walltime; it finishes what it runs and retires. */
  drainMarginMs: number;
  /** Consecutive failed launches, then the pool pauses with the scheduler's reason. */
  pauseAfterFailures: number;
}

export const DEFAULT_POLICY: PoolPolicy = {
  min: 0,
  max: 4,
  spawnIntervalMs: 30_000,
  spawnCount: 1,
  maxQueued: 2,
  idleMs: 300_000,
  walltimeMs: null,
  drainMarginMs: 60_000,
  pauseAfterFailures: 3,
};

/** A draining worker is retired only once idle this long after its draining was published. */
export const DRAIN_SETTLE_MS = 1000;

/** Where a policy came from, for errors: `colony.yaml line 7` names the line of each field. */
export type FieldWhere = (field: string) => string;

/** A bad policy field: names the field (and, from a site file, its line). */
export class PolicyError extends Error {
  constructor(readonly field: string, readonly detail: string) {
    super(`policy${field ? `.${field}` : ''}: ${detail}`);
    this.name = 'PolicyError';
  }
}

const INTS: (keyof PoolPolicy)[] = ['min', 'max', 'spawnCount', 'maxQueued', 'pauseAfterFailures'];

/**
 * Checks a policy and fills in the defaults. Refuses unknown keys, non-numbers, negative
 * intervals, `max < min`, `spawnCount`, `maxQueued`, `max` or `pauseAfterFailures` below 1.
 */
export function checkPolicy(raw: unknown, where: FieldWhere = () => '', defaults: Partial<PoolPolicy> = {}): PoolPolicy {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new PolicyError('', `expected an object of policy fields${where('')}`);
  const p: PoolPolicy = { ...DEFAULT_POLICY, ...defaults };
  const known = new Set(Object.keys(DEFAULT_POLICY));
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (v === undefined) continue;
    if (!known.has(k)) throw new PolicyError(k, `unknown policy field '${k}'${where(k)}; known: ${[...known].join(', ')}`);
    if (k === 'walltimeMs' && v === null) {
      p.walltimeMs = null;
      continue;
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new PolicyError(k, `must be a number, got ${JSON.stringify(v)}${where(k)}`);
    if (v < 0) throw new PolicyError(k, `must not be negative, got ${v}${where(k)}`);
    if (INTS.includes(k as keyof PoolPolicy) && !Number.isInteger(v)) throw new PolicyError(k, `must be a whole number, got ${v}${where(k)}`);
    (p as unknown as Record<string, number>)[k] = v;
  }
  for (const k of ['max', 'spawnCount', 'maxQueued', 'pauseAfterFailures'] as const) {
    if (p[k] < 1) throw new PolicyError(k, `must be at least 1, got ${p[k]}${where(k)}`);
  }
  if (p.max < p.min) throw new PolicyError('max', `max (${p.max}) must not be below min (${p.min})${where('max')}`);
  if (p.walltimeMs !== null && p.walltimeMs <= p.drainMarginMs) {
    throw new PolicyError('drainMarginMs', `drainMarginMs (${p.drainMarginMs}) must be below walltimeMs (${p.walltimeMs})${where('drainMarginMs')}`);
  }
  return p;
}

/** What the pool decides on; all of it is derived from the pool's events. */
export interface PoolInputs {
  /** The time of the decision (an event's `at`). */
  at: number;
  /** Paused, and why; null while running. */
  paused: string | null;
  /** Items and calls a worker could start now, summed over every driver. */
  ready: number;
  /** Live workers (pool and hand-started) that run nothing and are not draining. */
  idle: number;
  /** Workers the pool asked for that have not joined yet. */
  queued: number;
  /** Pool workers that joined and have not retired (draining ones included). */
  running: number;
  /** Pool workers draining. */
  draining: number;
  /** When the pool last submitted; null: never. */
  lastSpawnAt: number | null;
  /** Consecutive failed launches. */
  failures: number;
  /** Idle pool workers that are not draining, with how long each has been idle. */
  idlePool: { pid: number; idleMs: number }[];
}

export interface PoolDecision {
  action: 'spawn' | 'retire' | 'hold';
  /** Workers to submit (spawn), or queued workers to cancel (retire without pids). */
  count?: number;
  /** Workers to retire. */
  pids?: number[];
  /** What a person reads: why. */
  reason: string;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The pool's decision: pure, a function of its inputs and the policy only. */
export function decide(i: PoolInputs, p: PoolPolicy): PoolDecision {
  const cap = i.running + i.queued;
  const head = `${plural(i.ready, 'item')} ready, ${i.idle} idle, ${i.queued} queued, ${i.running} running`;
  const spawnBlock = (): string | null => {
    if (i.paused !== null) return `paused (${i.paused})`;
    if (cap >= p.max) return `${cap} workers = max ${p.max}`;
    if (i.queued >= p.maxQueued) return `${i.queued} queued = maxQueued ${p.maxQueued}`;
    if (i.lastSpawnAt !== null && i.at - i.lastSpawnAt < p.spawnIntervalMs) return `spawned less than spawnIntervalMs ${p.spawnIntervalMs} ago`;
    return null;
  };
  // Below min: fill up, with the same guards against a storm.
  if (cap < p.min) {
    const block = spawnBlock();
    if (block) return { action: 'hold', reason: `${head}; below min ${p.min} but ${block}: hold` };
    const count = Math.min(p.spawnCount, p.min - cap, p.maxQueued - i.queued);
    return { action: 'spawn', count, reason: `${head}; ${cap} workers < min ${p.min}: spawn ${count}` };
  }
  // Idle workers beyond the ready work, idle for idleMs, go (down to min).
  const excess = i.idle - i.ready;
  const keepable = i.running - i.draining - p.min;
  if (excess > 0 && keepable > 0) {
    const long = i.idlePool.filter((w) => w.idleMs >= p.idleMs).sort((a, b) => b.idleMs - a.idleMs || a.pid - b.pid);
    const n = Math.min(long.length, excess, keepable);
    if (n > 0) {
      const pids = long.slice(0, n).map((w) => w.pid).sort((a, b) => a - b);
      return { action: 'retire', pids, reason: `${head}; ${plural(n, 'worker')} (${pids.join(', ')}) idle >= idleMs ${p.idleMs}: retire` };
    }
  }
  // Jobs still queued when no work waits for them: cancel them (down to min), newest first.
  if (i.ready === 0 && i.queued > 0 && cap > p.min) {
    const n = Math.min(i.queued, cap - p.min);
    return { action: 'retire', count: n, reason: `${head}; no ready work for ${plural(n, 'queued worker')}: cancel ${n}` };
  }
  // The SWAMP rule: more ready work than free workers (the queued ones count as on their way).
  if (i.ready > i.idle + i.queued) {
    const block = spawnBlock();
    if (block) return { action: 'hold', reason: `${head}; ${block}: hold` };
    const count = Math.min(p.spawnCount, p.max - cap, p.maxQueued - i.queued, i.ready - i.idle - i.queued);
    return { action: 'spawn', count, reason: `${head}; ready > idle + queued: spawn ${count}` };
  }
  if (i.ready === 0) return { action: 'hold', reason: `${head}; no ready work: hold` };
  return { action: 'hold', reason: `${head}; idle and queued workers cover the ready work: hold` };
}

/** Whether two decisions are the same (action, count, pids and reason). */
export function sameDecision(a: PoolDecision | null, b: PoolDecision | null): boolean {
  if (!a || !b) return a === b;
  return a.action === b.action && a.reason === b.reason && (a.count ?? null) === (b.count ?? null)
    && (a.pids ?? []).join(',') === (b.pids ?? []).join(',');
}
