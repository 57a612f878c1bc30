/**
 * The worker actor: one per process with pid >= 2.
 *
 * unregistered -> registered -> ready -> stopping -> exited
 *                      \___________\________\_____-> lost
 *
 * Busy and idle are not persisted: they change on every call and travel in heartbeats.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';

export interface WorkerContext {
  pid: number;
  host: string;
  ospid: number;
  launchToken: string;
  manager: string;
  registeredAt: number | null;
  readyAt: number | null;
  endedAt: number | null;
  exitCode: number | null;
  reason: string | null;
  interrupts: number;
}

export type WorkerRegistered = ActorEvent<'worker.registered', { pid: number; host: string; ospid: number; launchToken: string; manager: string }>;
export type WorkerReady = ActorEvent<'worker.ready', { modules: number }>;
export type WorkerInterrupted = ActorEvent<'worker.interrupted', Record<string, never>>;
export type WorkerStopping = ActorEvent<'worker.stopping', { reason: string }>;
export type WorkerExited = ActorEvent<'worker.exited', { code: number | null; signal?: string | null }>;
export type WorkerLost = ActorEvent<'worker.lost', { reason: string }>;
export type WorkerEvent = WorkerRegistered | WorkerReady | WorkerInterrupted | WorkerStopping | WorkerExited | WorkerLost;

/** Event creators, one per persisted type. */
export const workerEvents = {
  registered: (at: number, data: WorkerRegistered['data']) => actorEvent('worker.registered', at, data) as WorkerRegistered,
  ready: (at: number, modules: number) => actorEvent('worker.ready', at, { modules }) as WorkerReady,
  interrupted: (at: number) => actorEvent('worker.interrupted', at, {}) as WorkerInterrupted,
  stopping: (at: number, reason: string) => actorEvent('worker.stopping', at, { reason }) as WorkerStopping,
  exited: (at: number, code: number | null, signal: string | null = null) => actorEvent('worker.exited', at, { code, signal }) as WorkerExited,
  lost: (at: number, reason: string) => actorEvent('worker.lost', at, { reason }) as WorkerLost,
};

export const workerMachine = setup({
  types: {} as { context: WorkerContext; events: WorkerEvent },
  actions: {
    ended: assign(({ event }) => {
      if (event.type === 'worker.exited') return { endedAt: event.at, exitCode: event.data.code };
      if (event.type === 'worker.lost') return { endedAt: event.at, reason: event.data.reason };
      return {};
    }),
  },
}).createMachine({
  id: 'worker',
  initial: 'unregistered',
  context: {
    pid: 0, host: '', ospid: 0, launchToken: '', manager: '',
    registeredAt: null, readyAt: null, endedAt: null, exitCode: null, reason: null, interrupts: 0,
  },
  states: {
    unregistered: {
      on: {
        'worker.registered': {
          target: 'registered',
          actions: assign(({ event }) => ({ ...event.data, registeredAt: event.at })),
        },
      },
    },
    registered: {
      on: {
        'worker.ready': { target: 'ready', actions: assign(({ event }) => ({ readyAt: event.at })) },
        'worker.stopping': { target: 'stopping', actions: assign(({ event }) => ({ reason: event.data.reason })) },
        'worker.exited': { target: 'exited', actions: 'ended' },
        'worker.lost': { target: 'lost', actions: 'ended' },
      },
    },
    ready: {
      on: {
        'worker.interrupted': { actions: assign(({ context }) => ({ interrupts: context.interrupts + 1 })) },
        'worker.stopping': { target: 'stopping', actions: assign(({ event }) => ({ reason: event.data.reason })) },
        'worker.exited': { target: 'exited', actions: 'ended' },
        'worker.lost': { target: 'lost', actions: 'ended' },
      },
    },
    stopping: {
      on: {
        'worker.exited': { target: 'exited', actions: 'ended' },
        'worker.lost': { target: 'lost', actions: 'ended' },
      },
    },
    exited: { type: 'final' },
    lost: { type: 'final' },
  },
});
