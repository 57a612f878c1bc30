/**
 * Tasks of the soak scenarios (bench/soak.ts), loaded on every worker with `cluster.everywhere()`.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { task } from 'colony';

let collect: (() => void) | null = null;

/** A full garbage collection, without starting node with --expose-gc. */
export function fullGc(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/** The V8 heap in use after a full collection, in MB: what is live, garbage aside. */
export function liveHeapMb(): number {
  fullGc();
  return Math.round((process.memoryUsage().heapUsed / 2 ** 20) * 10) / 10;
}

/** {@link liveHeapMb} on the worker that runs it. */
export const workerLiveHeapMb = task(import.meta.url, function workerLiveHeapMb(): number {
  return liveHeapMb();
});
