/**
 * The adapter actor: one per cluster-manager instance (an SGEManager, a SlurmManager, an
 * SSHManager...). It records what the manager asked of its scheduler and what the scheduler did.
 *
 * idle -> submitting -> queued -> running -> exited | failed
 *
 * A manager may have many scheduler jobs at once (several addprocs, a pool that grows), so the
 * state is the aggregate of its live units (one unit is one worker slot: a job, an array task,
 * an ssh session, an instance): `running` while any unit runs, else `queued` while any waits in
 * the scheduler's queue, else `submitting` while a submission is under way, else the way the last
 * unit ended. A new submission from `exited` or `failed` starts the cycle again; `closed` is final.
 *
 * Only live units stay in the context (so snapshots stay small); the events keep the history,
 * with the scheduler's job ids, exit codes and stderr.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';

/** One worker slot of a scheduler job, while it lives. */
export interface AdapterUnit {
  /** The scheduler's id of the job (`5`). */
  jobId: string;
  /** The unit's own id, as the scheduler's cancel command takes it (`5.2`, `7_1`, `i-0abc`, `host#3`). */
  unit: string;
  /** The launch (one addprocs call) it belongs to. */
  launch: string;
  state: 'queued' | 'running';
  queuedAt: number | null;
  startedAt: number | null;
  host: string | null;
}

export interface AdapterError {
  message: string;
  code: number | null;
  stderr: string;
  at: number;
}

export interface AdapterContext {
  /** The manager's short name: `sge`, `slurm`, `ssh`... */
  manager: string;
  /** Live units by unit id. */
  units: Record<string, AdapterUnit>;
  /** Workers still to be placed per launch (submitted but not yet queued or started). */
  pending: Record<string, number>;
  launches: number;
  started: number;
  exited: number;
  failed: number;
  lastError: AdapterError | null;
}

export type AdapterRequested = ActorEvent<'adapter.requested', { manager: string; launch: string; count: number; command: string[] }>;
export type AdapterQueued = ActorEvent<'adapter.queued', { launch: string; jobId: string; units: string[] }>;
export type AdapterStarted = ActorEvent<'adapter.started', { unit: string; jobId: string; launch: string; host: string | null }>;
export type AdapterExited = ActorEvent<'adapter.exited', { unit: string; jobId: string; code: number | null; reason: string }>;
export type AdapterFailed = ActorEvent<'adapter.failed', {
  /** Set when a submission failed (nothing was queued for the rest of the launch). */
  launch: string | null;
  /** Set when a live unit failed. */
  unit: string | null;
  jobId: string | null;
  message: string;
  code: number | null;
  stderr: string;
}>;
export type AdapterClosed = ActorEvent<'adapter.closed', { reason: string }>;
export type AdapterEvent = AdapterRequested | AdapterQueued | AdapterStarted | AdapterExited | AdapterFailed | AdapterClosed;

/** Event creators, one per persisted type. `at` comes from the caller. */
export const adapterEvents = {
  requested: (at: number, data: AdapterRequested['data']) => actorEvent('adapter.requested', at, data) as AdapterRequested,
  queued: (at: number, data: AdapterQueued['data']) => actorEvent('adapter.queued', at, data) as AdapterQueued,
  started: (at: number, data: AdapterStarted['data']) => actorEvent('adapter.started', at, data) as AdapterStarted,
  exited: (at: number, data: AdapterExited['data']) => actorEvent('adapter.exited', at, data) as AdapterExited,
  failed: (at: number, data: AdapterFailed['data']) => actorEvent('adapter.failed', at, data) as AdapterFailed,
  closed: (at: number, reason: string) => actorEvent('adapter.closed', at, { reason }) as AdapterClosed,
};

// ------------------------------------------------------------------ pure helpers

type Live = Pick<AdapterContext, 'units' | 'pending'>;

/** The context after `event`, or null when the event does not fit it. */
export function applyAdapterEvent(c: AdapterContext, event: AdapterEvent): AdapterContext | null {
  switch (event.type) {
    case 'adapter.requested': {
      const d = event.data;
      if (d.launch in c.pending || !(d.count >= 1)) return null;
      return { ...c, manager: d.manager, launches: c.launches + 1, pending: { ...c.pending, [d.launch]: d.count } };
    }
    case 'adapter.queued': {
      const d = event.data;
      if (!(d.launch in c.pending) || d.units.length === 0 || d.units.some((u) => u in c.units)) return null;
      const units = { ...c.units };
      for (const u of d.units) {
        units[u] = { jobId: d.jobId, unit: u, launch: d.launch, state: 'queued', queuedAt: event.at, startedAt: null, host: null };
      }
      return { ...c, units, pending: placed(c.pending, d.launch, d.units.length) };
    }
    case 'adapter.started': {
      const d = event.data;
      const u = c.units[d.unit];
      if (u) {
        if (u.state !== 'queued') return null;
        return { ...c, started: c.started + 1, units: { ...c.units, [d.unit]: { ...u, state: 'running', startedAt: event.at, host: d.host } } };
      }
      // A unit with no queue (an ssh session, a bpsh process) starts straight from its launch.
      if (!(d.launch in c.pending)) return null;
      const unit: AdapterUnit = { jobId: d.jobId, unit: d.unit, launch: d.launch, state: 'running', queuedAt: null, startedAt: event.at, host: d.host };
      return { ...c, started: c.started + 1, units: { ...c.units, [d.unit]: unit }, pending: placed(c.pending, d.launch, 1) };
    }
    case 'adapter.exited': {
      if (!(event.data.unit in c.units)) return null;
      const { [event.data.unit]: _gone, ...units } = c.units;
      return { ...c, units, exited: c.exited + 1 };
    }
    case 'adapter.failed': {
      const d = event.data;
      const lastError: AdapterError = { message: d.message, code: d.code, stderr: d.stderr, at: event.at };
      if (d.unit !== null) {
        if (!(d.unit in c.units)) return null;
        const { [d.unit]: _gone, ...units } = c.units;
        return { ...c, units, failed: c.failed + 1, lastError };
      }
      if (d.launch === null || !(d.launch in c.pending)) return null;
      const { [d.launch]: _gone, ...pending } = c.pending;
      return { ...c, pending, failed: c.failed + 1, lastError };
    }
    case 'adapter.closed':
      return c;
  }
}

function placed(pending: Record<string, number>, launch: string, n: number): Record<string, number> {
  const left = (pending[launch] ?? 0) - n;
  if (left > 0) return { ...pending, [launch]: left };
  const { [launch]: _done, ...rest } = pending;
  return rest;
}

/** The aggregate state of live units, or null when nothing is live. */
export function liveState(c: Live): 'running' | 'queued' | 'submitting' | null {
  const units = Object.values(c.units);
  if (units.some((u) => u.state === 'running')) return 'running';
  if (units.length > 0) return 'queued';
  if (Object.keys(c.pending).length > 0) return 'submitting';
  return null;
}

/** Where the machine goes after `event`: the live aggregate, or how the last unit ended. */
export function adapterTarget(c: AdapterContext, event: AdapterEvent): string | null {
  const next = applyAdapterEvent(c, event);
  if (!next) return null;
  if (event.type === 'adapter.closed') return 'closed';
  return liveState(next) ?? (event.type === 'adapter.failed' ? 'failed' : 'exited');
}

type Target = 'submitting' | 'queued' | 'running' | 'exited' | 'failed';

const to = (target: Target) => ({ target: `#adapter.${target}`, guard: { type: 'goesTo', params: { target } }, actions: 'apply' }) as const;

const transitions = [to('running'), to('queued'), to('submitting'), to('exited'), to('failed')];

export const adapterMachine = setup({
  types: {} as { context: AdapterContext; events: AdapterEvent },
  guards: {
    goesTo: ({ context, event }, params: { target: Target }) => adapterTarget(context, event) === params.target,
  },
  actions: {
    apply: assign(({ context, event }) => applyAdapterEvent(context, event) ?? context),
  },
}).createMachine({
  id: 'adapter',
  initial: 'idle',
  context: { manager: '', units: {}, pending: {}, launches: 0, started: 0, exited: 0, failed: 0, lastError: null },
  on: {
    'adapter.requested': transitions,
    'adapter.queued': transitions,
    'adapter.started': transitions,
    'adapter.exited': transitions,
    'adapter.failed': transitions,
    'adapter.closed': { target: '#adapter.closed' },
  },
  states: {
    idle: {},
    submitting: {},
    queued: {},
    running: {},
    exited: {},
    failed: {},
    closed: { type: 'final' },
  },
});
