/**
 * The chunk actor: one block of a distributed array, owned by the process that holds its data.
 *
 * unplaced -> live (placed on its owner) -> freed | lost
 *
 * Reads are counted, not logged one by one: the counts travel in `chunk.reads.counted` (at most
 * one every few seconds while the chunk is read) and in the final `chunk.freed`.
 */
import { assign, setup } from 'xstate';
import type { ActorEvent } from './events.ts';
import { actorEvent } from './events.ts';

/** Read and write counts of a chunk, cumulative since it was placed. */
export type ChunkCounts = {
  /** Reads served to other processes (halo reads, `get`, `toArray`). */
  reads: number;
  /** Elements those reads returned. */
  readElements: number;
  /** Writes received from other processes. */
  writes: number;
  /** Remote reads by reader pid. */
  readers: Record<string, number>;
};

export interface ChunkContext extends ChunkCounts {
  array: string;
  index: number;
  pid: number;
  host: string;
  /** The chunk's block: one `[start, end)` per dimension. */
  I: [number, number][];
  type: string;
  bytes: number;
  placedAt: number | null;
  endedAt: number | null;
  endedBy: number | null;
  reason: string | null;
}

export type ChunkPlaced = ActorEvent<'chunk.placed', { array: string; index: number; pid: number; host: string; I: [number, number][]; type: string; bytes: number }>;
export type ChunkReadsCounted = ActorEvent<'chunk.reads.counted', ChunkCounts>;
export type ChunkFreed = ActorEvent<'chunk.freed', ChunkCounts & { by: number }>;
export type ChunkLost = ActorEvent<'chunk.lost', { reason: string }>;
export type ChunkEvent = ChunkPlaced | ChunkReadsCounted | ChunkFreed | ChunkLost;

/** Event creators, one per persisted type. */
export const chunkEvents = {
  placed: (at: number, data: ChunkPlaced['data']) => actorEvent('chunk.placed', at, data) as ChunkPlaced,
  readsCounted: (at: number, counts: ChunkCounts) => actorEvent('chunk.reads.counted', at, counts) as ChunkReadsCounted,
  freed: (at: number, by: number, counts: ChunkCounts) => actorEvent('chunk.freed', at, { by, ...counts }) as ChunkFreed,
  lost: (at: number, reason: string) => actorEvent('chunk.lost', at, { reason }) as ChunkLost,
};

const counts = (d: ChunkCounts) => ({ reads: d.reads, readElements: d.readElements, writes: d.writes, readers: d.readers });

export const chunkMachine = setup({
  types: {} as { context: ChunkContext; events: ChunkEvent },
}).createMachine({
  id: 'chunk',
  initial: 'unplaced',
  context: {
    array: '', index: 0, pid: 0, host: '', I: [], type: '', bytes: 0,
    placedAt: null, endedAt: null, endedBy: null, reason: null,
    reads: 0, readElements: 0, writes: 0, readers: {},
  },
  states: {
    unplaced: {
      on: {
        'chunk.placed': { target: 'live', actions: assign(({ event }) => ({ ...event.data, placedAt: event.at })) },
      },
    },
    live: {
      on: {
        'chunk.reads.counted': { actions: assign(({ event }) => counts(event.data)) },
        'chunk.freed': { target: 'freed', actions: assign(({ event }) => ({ ...counts(event.data), endedAt: event.at, endedBy: event.data.by })) },
        'chunk.lost': { target: 'lost', actions: assign(({ event }) => ({ endedAt: event.at, reason: event.data.reason })) },
      },
    },
    freed: { type: 'final' },
    lost: { type: 'final' },
  },
});
