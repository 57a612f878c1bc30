/** Distributed arrays (DArray, chunk actors) and shared-memory arrays (SharedArray). */
import type { Capability } from '../process/capability.ts';
import { attachArrays } from './chunk-store.ts';
import { darrayBlock, darrayFill, darrayMapInit, darrayPlace, darrayRand, darrayRandn, darrayReduceChunk } from './darray.ts';
import { sharedCreate, sharedHostKey, sharedInit, sharedRelease } from './shared-array.ts';

export { DArray, darrayConstructors } from './darray.ts';
export type { ArrayReducer, ChunkInfo, CreateOptions, DArrayConstructors, DArrayOptions, ElementOf } from './darray.ts';
export type { Range, Ranges, TypedArray, TypedArrayConstructor } from './darray-layout.ts';
export { SharedArray, createSharedArray } from './shared-array.ts';
export type { SharedArrayOptions } from './shared-array.ts';
export { localindexes, localpart, sdata } from './local-part.ts';

/** The worker side of arrays: chunk init, fill, map and reduce tasks, shared-memory set-up, and the chunk store. */
export const arrays: Capability = {
  name: 'arrays',
  tasks: [
    darrayPlace, darrayFill, darrayRand, darrayRandn, darrayBlock, darrayMapInit, darrayReduceChunk,
    sharedHostKey, sharedCreate, sharedInit, sharedRelease,
  ],
  attach: attachArrays,
};
