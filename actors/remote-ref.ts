/**
 * The remote-ref actor: the lifecycle of one value owned by one process.
 *
 * unborn -> running (a call computes it) -> ready | failed
 * unborn -> empty   (RemoteRef(pid), waits for put) -> ready
 * any live state -> freed | lost (its owner died)
 *
 * The owner is the single writer; only `ref.lost` is written by whoever sees the owner die.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';

/** An error as it crosses the wire: plain data, never an instance to check with instanceof. */
export interface ErrorData {
  name: string;
  message: string;
  stack?: string;
  pid?: number;
}

export interface RefContext {
  owner: number;
  creator: number;
  task: string | null;
  createdAt: number | null;
  settledAt: number | null;
  error: ErrorData | null;
}

export type RefCreated = ActorEvent<'ref.created', { owner: number; creator: number; task: string | null }>;
export type RefReady = ActorEvent<'ref.ready', { bytes: number }>;
export type RefPut = ActorEvent<'ref.put', { bytes: number; from: number }>;
export type RefFailed = ActorEvent<'ref.failed', { error: ErrorData }>;
export type RefFreed = ActorEvent<'ref.freed', { by: number }>;
export type RefLost = ActorEvent<'ref.lost', { pid: number; reason: string }>;
export type RefEvent = RefCreated | RefReady | RefPut | RefFailed | RefFreed | RefLost;

export const refEvents = {
  created: (at: number, data: RefCreated['data']) => actorEvent('ref.created', at, data) as RefCreated,
  ready: (at: number, bytes: number) => actorEvent('ref.ready', at, { bytes }) as RefReady,
  put: (at: number, bytes: number, from: number) => actorEvent('ref.put', at, { bytes, from }) as RefPut,
  failed: (at: number, error: ErrorData) => actorEvent('ref.failed', at, { error }) as RefFailed,
  freed: (at: number, by: number) => actorEvent('ref.freed', at, { by }) as RefFreed,
  lost: (at: number, pid: number, reason: string) => actorEvent('ref.lost', at, { pid, reason }) as RefLost,
};

const toFreed = { target: 'freed', actions: 'settle' } as const;
const toLost = { target: 'lost', actions: 'settle' } as const;

export const refMachine = setup({
  types: {} as { context: RefContext; events: RefEvent },
  actions: {
    settle: assign(({ event }) => ({ settledAt: event.at })),
  },
  guards: {
    hasTask: ({ event }) => event.type === 'ref.created' && event.data.task !== null,
  },
}).createMachine({
  id: 'ref',
  initial: 'unborn',
  context: { owner: 0, creator: 0, task: null, createdAt: null, settledAt: null, error: null },
  states: {
    unborn: {
      on: {
        'ref.created': [
          { guard: 'hasTask', target: 'running', actions: assign(({ event }) => ({ ...event.data, createdAt: event.at })) },
          { target: 'empty', actions: assign(({ event }) => ({ ...event.data, createdAt: event.at })) },
        ],
      },
    },
    running: {
      on: {
        'ref.ready': { target: 'ready', actions: 'settle' },
        'ref.failed': { target: 'failed', actions: assign(({ event }) => ({ settledAt: event.at, error: event.data.error })) },
        'ref.freed': toFreed,
        'ref.lost': toLost,
      },
    },
    empty: {
      on: {
        'ref.put': { target: 'ready', actions: 'settle' },
        'ref.freed': toFreed,
        'ref.lost': toLost,
      },
    },
    ready: { on: { 'ref.freed': toFreed, 'ref.lost': toLost } },
    failed: { on: { 'ref.freed': toFreed, 'ref.lost': toLost } },
    freed: { type: 'final' },
    lost: { type: 'final' },
  },
});
