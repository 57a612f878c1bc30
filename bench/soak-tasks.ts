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

/** After a full collection, in MB: the V8 heap in use (what is live) and the process's RSS. */
export function afterGc(): { heap: number; rss: number } {
  fullGc();
  const m = process.memoryUsage();
  return { heap: Math.round((m.heapUsed / 2 ** 20) * 10) / 10, rss: Math.round((m.rss / 2 ** 20) * 10) / 10 };
}

/** {@link afterGc} on the worker that runs it. */
export const workerAfterGc = task(import.meta.url, function workerAfterGc(): { heap: number; rss: number } {
  return afterGc();
});
