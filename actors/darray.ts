/**
 * The darray actor: one distributed array, written by the process that constructed it.
 *
 * unborn -> live (every chunk placed) -> freed | lost
 * unborn -> failed (an init threw, or an owner was missing)
 *
 * Placement is in `darray.created` (pid and block per chunk); the halo-read totals of the
 * array's lifetime are in `darray.freed`. One event per construction and one per free keeps a
 * Life run at a handful of events per generation.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';
import type { ErrorData } from './remote-ref.ts';

export interface DarrayContext {
  dims: number[];
  dist: number[];
  procs: number[];
  type: string;
  creator: number;
  createdAt: number | null;
  endedAt: number | null;
  /** Reads served by the chunks to other processes, over the array's lifetime. */
  reads: number;
  readElements: number;
  writes: number;
  error: ErrorData | null;
}

export type DarrayCreated = ActorEvent<'darray.created', { dims: number[]; dist: number[]; procs: number[]; type: string; creator: number; chunks: { pid: number; I: [number, number][] }[] }>;
export type DarrayFailed = ActorEvent<'darray.failed', { dims: number[]; procs: number[]; creator: number; error: ErrorData }>;
export type DarrayFreed = ActorEvent<'darray.freed', { by: number; reads: number; readElements: number; writes: number }>;
export type DarrayLost = ActorEvent<'darray.lost', { pid: number; reason: string }>;
export type DarrayEvent = DarrayCreated | DarrayFailed | DarrayFreed | DarrayLost;

/** Event creators, one per persisted type. */
export const darrayEvents = {
  created: (at: number, data: DarrayCreated['data']) => actorEvent('darray.created', at, data) as DarrayCreated,
  failed: (at: number, data: DarrayFailed['data']) => actorEvent('darray.failed', at, data) as DarrayFailed,
  freed: (at: number, data: DarrayFreed['data']) => actorEvent('darray.freed', at, data) as DarrayFreed,
  lost: (at: number, pid: number, reason: string) => actorEvent('darray.lost', at, { pid, reason }) as DarrayLost,
};

export const darrayMachine = setup({
  types: {} as { context: DarrayContext; events: DarrayEvent },
}).createMachine({
  id: 'darray',
  initial: 'unborn',
  context: {
    dims: [], dist: [], procs: [], type: '', creator: 0, createdAt: null, endedAt: null,
    reads: 0, readElements: 0, writes: 0, error: null,
  },
  states: {
    unborn: {
      on: {
        'darray.created': {
          target: 'live',
          actions: assign(({ event }) => ({
            dims: event.data.dims, dist: event.data.dist, procs: event.data.procs, type: event.data.type,
            creator: event.data.creator, createdAt: event.at,
          })),
        },
        'darray.failed': {
          target: 'failed',
          actions: assign(({ event }) => ({
            dims: event.data.dims, procs: event.data.procs, creator: event.data.creator, error: event.data.error, endedAt: event.at,
          })),
        },
      },
    },
    live: {
      on: {
        'darray.freed': {
          target: 'freed',
          actions: assign(({ event }) => ({ reads: event.data.reads, readElements: event.data.readElements, writes: event.data.writes, endedAt: event.at })),
        },
        'darray.lost': { target: 'lost', actions: assign(({ event }) => ({ endedAt: event.at })) },
      },
    },
    failed: { type: 'final' },
    freed: { type: 'final' },
    lost: { type: 'final' },
  },
});
