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

/**
 * The worker side of parallel loops: the batch runner and the slice loops. On the timeline a
 * batch shows as the mapped task with its map id and item count, a slice as the looped task.
 */
export const parallel: Capability = {
  name: 'parallel',
  tasks: [pmapBatch, pmapCancel, reduceSlice, forSlice],
  spanLabels: [
    [pmapBatch, {
      task: (a) => a[1] as string,
      map: (a) => a[0] as string,
      items: (a) => (a[2] as unknown[]).length,
      failed: (r) => (r as { e?: unknown[] } | undefined)?.e?.length ?? 0,
    }],
    [reduceSlice, { task: (a) => a[0] as string, items: (a) => sliceLength(a[2]) }],
    [forSlice, { task: (a) => a[0] as string, items: (a) => sliceLength(a[1]) }],
  ],
};

function sliceLength(s: unknown): number {
  const x = s as { items?: unknown[]; a?: number; b?: number };
  return x.items ? x.items.length : (x.b ?? 0) - (x.a ?? 0);
}
