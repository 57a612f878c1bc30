/**
 * The pool actor: one elastic pool of workers over one cluster manager (`pool.<id>`).
 *
 * idle -> running <-> paused -> closed
 *
 * Everything the pool decides on is in its events: the demand it sees (`pool.demand`: ready
 * work summed over the drivers, live and busy workers), its launches, joins, drains, retirements
 * and failures. `pool.decided` is accepted only when `decide()` over the context at the event's
 * time gives the recorded decision, so replaying the log checks every decision again.
 * The scheduler's submit-to-start latency is in the adapter actor's events (`pool.started`
 * names it): `adapter.queued` and `adapter.started` carry their times.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';
import { DRAIN_SETTLE_MS, decide, sameDecision } from './pool-policy.ts';
import type { PoolDecision, PoolInputs, PoolPolicy } from './pool-policy.ts';

export interface PoolWorker {
  pid: number;
  launch: string;
  joinedAt: number;
  /** Draining: no new work; retired once idle. */
  draining: { at: number; reason: string } | null;
}

export interface PoolContext {
  manager: string;
  /** The adapter actor of the manager (its events carry the scheduler's job ids and times). */
  adapter: string | null;
  policy: PoolPolicy;
  /** Pool workers by pid. */
  workers: Record<string, PoolWorker>;
  /** Launches not fully joined: workers still expected, and when they were asked for. */
  pending: Record<string, { count: number; at: number }>;
  lastSpawnAt: number | null;
  /** Consecutive failed launches. */
  failures: number;
  /** The last demand recorded. */
  demand: { ready: number; workers: number[]; busy: number[]; at: number };
  /** Since when each live worker runs nothing (absent: busy). */
  idleSince: Record<string, number>;
  paused: { reason: string; at: number } | null;
  lastDecision: (PoolDecision & { at: number }) | null;
  lastError: { code: number | null; stderr: string; message: string; at: number } | null;
  spawned: number;
  joined: number;
  retired: number;
  startedAt: number | null;
}

export type RetireReason = 'idle' | 'walltime' | 'shrink' | 'closed' | 'lost';

export type PoolStarted = ActorEvent<'pool.started', { manager: string; adapter: string | null; policy: PoolPolicy }>;
export type PoolDemand = ActorEvent<'pool.demand', { ready: number; workers: number[]; busy: number[] }>;
export type PoolDecided = ActorEvent<'pool.decided', PoolDecision & { ready: number; idle: number; queued: number; running: number }>;
export type PoolSpawned = ActorEvent<'pool.spawned', { launch: string; count: number }>;
export type PoolWorkerJoined = ActorEvent<'pool.worker.joined', { pid: number; launch: string }>;
export type PoolWorkerDraining = ActorEvent<'pool.worker.draining', { pid: number; reason: RetireReason }>;
export type PoolWorkerRetired = ActorEvent<'pool.worker.retired', { pid: number; reason: RetireReason }>;
export type PoolLaunchFailed = ActorEvent<'pool.launch.failed', { launch: string; code: number | null; stderr: string; message: string }>;
export type PoolLaunchCancelled = ActorEvent<'pool.launch.cancelled', { launch: string; reason: string }>;
export type PoolPaused = ActorEvent<'pool.paused', { reason: string; code?: number | null; stderr?: string }>;
export type PoolResumed = ActorEvent<'pool.resumed', Record<string, never>>;
export type PoolClosed = ActorEvent<'pool.closed', Record<string, never>>;
export type PoolEvent =
  | PoolStarted | PoolDemand | PoolDecided | PoolSpawned | PoolWorkerJoined | PoolWorkerDraining | PoolWorkerRetired
  | PoolLaunchFailed | PoolLaunchCancelled | PoolPaused | PoolResumed | PoolClosed;

/** Event creators, one per persisted type. `at` comes from the caller. */
export const poolEvents = {
  started: (at: number, data: PoolStarted['data']) => actorEvent('pool.started', at, data) as PoolStarted,
  demand: (at: number, data: PoolDemand['data']) => actorEvent('pool.demand', at, data) as PoolDemand,
  decided: (at: number, data: PoolDecided['data']) => actorEvent('pool.decided', at, data) as PoolDecided,
  spawned: (at: number, data: PoolSpawned['data']) => actorEvent('pool.spawned', at, data) as PoolSpawned,
  workerJoined: (at: number, data: PoolWorkerJoined['data']) => actorEvent('pool.worker.joined', at, data) as PoolWorkerJoined,
  workerDraining: (at: number, data: PoolWorkerDraining['data']) => actorEvent('pool.worker.draining', at, data) as PoolWorkerDraining,
  workerRetired: (at: number, data: PoolWorkerRetired['data']) => actorEvent('pool.worker.retired', at, data) as PoolWorkerRetired,
  launchFailed: (at: number, data: PoolLaunchFailed['data']) => actorEvent('pool.launch.failed', at, data) as PoolLaunchFailed,
  launchCancelled: (at: number, data: PoolLaunchCancelled['data']) => actorEvent('pool.launch.cancelled', at, data) as PoolLaunchCancelled,
  paused: (at: number, data: PoolPaused['data']) => actorEvent('pool.paused', at, data) as PoolPaused,
  resumed: (at: number) => actorEvent('pool.resumed', at, {}) as PoolResumed,
  closed: (at: number) => actorEvent('pool.closed', at, {}) as PoolClosed,
};

// ------------------------------------------------------------------ pure helpers

const busySet = (c: PoolContext) => new Set(c.demand.busy);

/** Every live worker the pool knows of: the last demand's, plus pool workers that joined since. */
export function liveWorkers(c: PoolContext): number[] {
  const s = new Set(c.demand.workers);
  for (const k of Object.keys(c.workers)) s.add(Number(k));
  return [...s].sort((a, b) => a - b);
}

/** The decision inputs at time `at`, from the context alone. */
export function poolInputs(c: PoolContext, at: number): PoolInputs {
  const busy = busySet(c);
  let idle = 0;
  const idlePool: PoolInputs['idlePool'] = [];
  for (const pid of liveWorkers(c)) {
    const w = c.workers[pid];
    if (busy.has(pid) || w?.draining) continue;
    idle++;
    if (w) idlePool.push({ pid, idleMs: at - (c.idleSince[pid] ?? at) });
  }
  const workers = Object.values(c.workers);
  return {
    at,
    paused: c.paused?.reason ?? null,
    ready: c.demand.ready,
    idle,
    queued: Object.values(c.pending).reduce((n, l) => n + l.count, 0),
    running: workers.length,
    draining: workers.filter((w) => w.draining).length,
    lastSpawnAt: c.lastSpawnAt,
    failures: c.failures,
    idlePool,
  };
}

/** The decision the pool makes at `at`. */
export function poolDecision(c: PoolContext, at: number): PoolDecision {
  return decide(poolInputs(c, at), c.policy);
}

/** Pool workers whose walltime is near at `at`: they get no new work. */
export function walltimeDue(c: PoolContext, at: number): number[] {
  const wt = c.policy.walltimeMs;
  if (wt === null) return [];
  return Object.values(c.workers).filter((w) => !w.draining && at >= w.joinedAt + wt - c.policy.drainMarginMs).map((w) => w.pid);
}

/** Draining workers that run nothing, and have not since their draining settled: retire them. */
export function drained(c: PoolContext, at: number): { pid: number; reason: RetireReason }[] {
  const busy = busySet(c);
  return Object.values(c.workers)
    .filter((w) => w.draining && !busy.has(w.pid) && at - w.draining.at >= DRAIN_SETTLE_MS && (c.idleSince[w.pid] ?? Infinity) <= at - DRAIN_SETTLE_MS / 2)
    .map((w) => ({ pid: w.pid, reason: w.draining!.reason as RetireReason }));
}

function withDemand(c: PoolContext, d: PoolDemand['data'], at: number): Partial<PoolContext> {
  const busy = new Set(d.busy);
  const idleSince: Record<string, number> = {};
  const live = new Set([...d.workers, ...Object.keys(c.workers).map(Number)]);
  for (const pid of live) if (!busy.has(pid)) idleSince[pid] = c.idleSince[pid] ?? at;
  return { demand: { ready: d.ready, workers: [...d.workers], busy: [...d.busy], at }, idleSince };
}

function without<T>(r: Record<string, T>, key: string | number): Record<string, T> {
  const { [key]: _gone, ...rest } = r;
  return rest;
}

export const poolMachine = setup({
  types: {} as { context: PoolContext; events: PoolEvent },
  guards: {
    decisionHolds: ({ context, event }) => event.type === 'pool.decided' && sameDecision(event.data, poolDecision(context, event.at)),
    pendingLaunch: ({ context, event }) => 'launch' in event.data && (event.data as { launch: string }).launch in context.pending,
    newLaunch: ({ context, event }) => event.type === 'pool.spawned' && !(event.data.launch in context.pending) && event.data.count >= 1,
    poolWorker: ({ context, event }) => 'pid' in event.data && String((event.data as { pid: number }).pid) in context.workers,
  },
  actions: {
    start: assign(({ event }) => {
      if (event.type !== 'pool.started') return {};
      return { manager: event.data.manager, adapter: event.data.adapter, policy: { ...event.data.policy }, startedAt: event.at };
    }),
    demand: assign(({ context, event }) => (event.type === 'pool.demand' ? withDemand(context, event.data, event.at) : {})),
    decided: assign(({ event }) => {
      if (event.type !== 'pool.decided') return {};
      const { action, count, pids, reason } = event.data;
      return { lastDecision: { action, ...(count !== undefined ? { count } : {}), ...(pids !== undefined ? { pids: [...pids] } : {}), reason, at: event.at } };
    }),
    spawned: assign(({ context, event }) => {
      if (event.type !== 'pool.spawned') return {};
      return { pending: { ...context.pending, [event.data.launch]: { count: event.data.count, at: event.at } }, lastSpawnAt: event.at, spawned: context.spawned + event.data.count };
    }),
    joined: assign(({ context, event }) => {
      if (event.type !== 'pool.worker.joined') return {};
      const { pid, launch } = event.data;
      const p = context.pending[launch]!;
      const pending = p.count > 1 ? { ...context.pending, [launch]: { ...p, count: p.count - 1 } } : without(context.pending, launch);
      const busy = busySet(context).has(pid);
      return {
        pending,
        workers: { ...context.workers, [pid]: { pid, launch, joinedAt: event.at, draining: null } },
        idleSince: busy ? context.idleSince : { ...context.idleSince, [pid]: context.idleSince[pid] ?? event.at },
        failures: 0,
        joined: context.joined + 1,
      };
    }),
    draining: assign(({ context, event }) => {
      if (event.type !== 'pool.worker.draining') return {};
      const w = context.workers[event.data.pid]!;
      return { workers: { ...context.workers, [w.pid]: { ...w, draining: { at: event.at, reason: event.data.reason } } } };
    }),
    retired: assign(({ context, event }) => {
      if (event.type !== 'pool.worker.retired') return {};
      return { workers: without(context.workers, event.data.pid), idleSince: without(context.idleSince, event.data.pid), retired: context.retired + 1 };
    }),
    failed: assign(({ context, event }) => {
      if (event.type !== 'pool.launch.failed') return {};
      const { code, stderr, message } = event.data;
      return { pending: without(context.pending, event.data.launch), failures: context.failures + 1, lastError: { code, stderr, message, at: event.at } };
    }),
    cancelled: assign(({ context, event }) => (event.type === 'pool.launch.cancelled' ? { pending: without(context.pending, event.data.launch) } : {})),
    pause: assign(({ event }) => (event.type === 'pool.paused' ? { paused: { reason: event.data.reason, at: event.at } } : {})),
    resume: assign(() => ({ paused: null, failures: 0 })),
  },
}).createMachine({
  id: 'pool',
  initial: 'idle',
  context: {
    manager: '', adapter: null, policy: {
      min: 0, max: 1, spawnIntervalMs: 0, spawnCount: 1, maxQueued: 1, idleMs: 0, walltimeMs: null, drainMarginMs: 0, pauseAfterFailures: 1,
    },
    workers: {}, pending: {}, lastSpawnAt: null, failures: 0, demand: { ready: 0, workers: [], busy: [], at: 0 }, idleSince: {},
    paused: null, lastDecision: null, lastError: null, spawned: 0, joined: 0, retired: 0, startedAt: null,
  },
  states: {
    idle: {
      on: { 'pool.started': { target: 'running', actions: 'start' } },
    },
    running: {
      on: {
        'pool.spawned': { guard: 'newLaunch', actions: 'spawned' },
        'pool.paused': { target: 'paused', actions: 'pause' },
      },
    },
    paused: {
      on: {
        'pool.resumed': { target: 'running', actions: 'resume' },
        'pool.paused': { actions: 'pause' },
      },
    },
    closed: { type: 'final' },
  },
  // Shared by running and paused (a paused pool still hears demand, joins and retires).
  on: {
    'pool.demand': { actions: 'demand' },
    'pool.decided': { guard: 'decisionHolds', actions: 'decided' },
    'pool.worker.joined': { guard: 'pendingLaunch', actions: 'joined' },
    'pool.worker.draining': { guard: 'poolWorker', actions: 'draining' },
    'pool.worker.retired': { guard: 'poolWorker', actions: 'retired' },
    'pool.launch.failed': { guard: 'pendingLaunch', actions: 'failed' },
    'pool.launch.cancelled': { guard: 'pendingLaunch', actions: 'cancelled' },
    'pool.closed': { target: '.closed' },
  },
});
