/** Parallel loops: pmap, preduce and pfor, and their progress bar. */
import type { Capability } from '../process/capability.ts';
import { pmapBatch, pmapCancel } from './pmap.ts';
import { forSlice, reduceSlice } from './preduce.ts';

export { checkWorkers, pmap } from './pmap.ts';
export type { PmapOptions } from './pmap.ts';
export { pfor, preduce } from './preduce.ts';
export type { LoopOptions, LoopRange, Reducer } from './preduce.ts';
export { progressBar } from './progress-bar.ts';
export type { ProgressBarOptions } from './progress-bar.ts';

/** The worker side of parallel loops: the batch runner and the slice loops. */
export const parallel: Capability = { name: 'parallel', tasks: [pmapBatch, pmapCancel, reduceSlice, forSlice] };
