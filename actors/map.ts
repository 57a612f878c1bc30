/**
 * The map actor: one `pmap` run.
 *
 * idle -> running -> finished | failed
 *
 * A map over the cluster's whole pool (no `workers` option) takes in workers that join while it
 * runs: each is a `map.worker.joined` event.
 * Progress is persisted in batches (`map.progressed` at most every few hundred ms), not per
 * item, so a map of a million tiny items stays a handful of events. Retried items are recorded
 * one event per re-sent batch.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';
import type { ErrorData } from './remote-ref.ts';

export interface MapContext {
  /** Key of the mapped task (`module#name`). */
  task: string;
  /** Number of items. */
  total: number;
  /** The pids the map runs on. */
  workers: number[];
  /** The batch size asked for; `'auto'` adapts it while the map runs. */
  batchSize: number | 'auto';
  /** How often an item may run again after its worker died. */
  retries: number;
  /** Items finished (with a value, or with an error turned into one by `onError`). */
  done: number;
  /** Items sent again after their worker was lost. */
  retried: number;
  /** Workers lost while the map ran. */
  lost: number[];
  startedAt: number | null;
  endedAt: number | null;
  error: ErrorData | null;
}

export type MapStarted = ActorEvent<'map.started', { task: string; items: number; workers: number[]; batchSize: number | 'auto'; retries: number }>;
export type MapProgressed = ActorEvent<'map.progressed', { done: number }>;
/** `items` are indexes into the mapped collection; one event per re-sent batch. */
export type MapItemRetried = ActorEvent<'map.item.retried', { items: number[]; lostPid: number; newPid: number; attempt: number }>;
/** A worker that became ready while the map ran, and now takes items too. */
export type MapWorkerJoined = ActorEvent<'map.worker.joined', { pid: number }>;
export type MapFinished = ActorEvent<'map.finished', { done: number }>;
export type MapFailed = ActorEvent<'map.failed', { error: ErrorData; done: number }>;
export type MapEvent = MapStarted | MapProgressed | MapItemRetried | MapWorkerJoined | MapFinished | MapFailed;

/** Event creators, one per persisted type. */
export const mapEvents = {
  started: (at: number, data: MapStarted['data']) => actorEvent('map.started', at, data) as MapStarted,
  progressed: (at: number, done: number) => actorEvent('map.progressed', at, { done }) as MapProgressed,
  itemRetried: (at: number, data: MapItemRetried['data']) => actorEvent('map.item.retried', at, data) as MapItemRetried,
  workerJoined: (at: number, pid: number) => actorEvent('map.worker.joined', at, { pid }) as MapWorkerJoined,
  finished: (at: number, done: number) => actorEvent('map.finished', at, { done }) as MapFinished,
  failed: (at: number, error: ErrorData, done: number) => actorEvent('map.failed', at, { error, done }) as MapFailed,
};

export const mapMachine = setup({
  types: {} as { context: MapContext; events: MapEvent },
  actions: {
    start: assign(({ event }) => {
      if (event.type !== 'map.started') return {};
      const d = event.data;
      return { task: d.task, total: d.items, workers: [...d.workers], batchSize: d.batchSize, retries: d.retries, startedAt: event.at };
    }),
    // Progress only moves forward, whatever order a writer reports it in.
    progress: assign(({ context, event }) => {
      if (event.type !== 'map.progressed' && event.type !== 'map.finished' && event.type !== 'map.failed') return {};
      return { done: Math.max(context.done, event.data.done) };
    }),
    retry: assign(({ context, event }) => {
      if (event.type !== 'map.item.retried') return {};
      const lost = context.lost.includes(event.data.lostPid) ? context.lost : [...context.lost, event.data.lostPid];
      return { retried: context.retried + event.data.items.length, lost };
    }),
    join: assign(({ context, event }) => {
      if (event.type !== 'map.worker.joined' || context.workers.includes(event.data.pid)) return {};
      return { workers: [...context.workers, event.data.pid] };
    }),
    end: assign(({ event }) => ({
      endedAt: event.at,
      error: event.type === 'map.failed' ? event.data.error : null,
    })),
  },
}).createMachine({
  id: 'map',
  initial: 'idle',
  context: {
    task: '', total: 0, workers: [], batchSize: 'auto', retries: 0,
    done: 0, retried: 0, lost: [], startedAt: null, endedAt: null, error: null,
  },
  states: {
    idle: {
      on: { 'map.started': { target: 'running', actions: 'start' } },
    },
    running: {
      on: {
        'map.progressed': { actions: 'progress' },
        'map.item.retried': { actions: 'retry' },
        'map.worker.joined': { actions: 'join' },
        'map.finished': { target: 'finished', actions: ['progress', 'end'] },
        'map.failed': { target: 'failed', actions: ['progress', 'end'] },
      },
    },
    finished: { type: 'final' },
    failed: { type: 'final' },
  },
});
