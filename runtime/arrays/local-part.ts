/**
 * `localpart`, `localindexes` and `sdata`: what a task running on an owner sees of an array.
 *
 * @example
 * // tasks.ts: double this worker's chunk in place
 * export const double = task(import.meta.url, function double(d: DArray<Float64Array>) {
 *   const a = localpart(d);
 *   for (let i = 0; i < a.length; i++) a[i] *= 2;
 *   return localindexes(d);
 * });
 * await Promise.all(d.procs.map((p) => cluster.remotecallFetch(double, p, d)));
 */
import { chunkStore } from './chunk-store.ts';
import { DArray } from './darray.ts';
import type { Range, Ranges, TypedArray } from './darray-layout.ts';
import { InvalidArgumentError } from '../transport/errors.ts';
import { myid } from '../process/myid.ts';
import { SharedArray, sharedData, sharedLocalIndexes } from './shared-array.ts';

/**
 * The chunk of `d` this process owns: the stored elements themselves (row-major over
 * `localindexes(d)`), so writes change the array. Empty if this process owns no chunk of `d`.
 * If it owns several, the first.
 */
export function localpart<T extends TypedArray>(d: DArray<T>): T {
  if (!(d instanceof DArray)) throw new InvalidArgumentError('d', 'localpart takes a DArray');
  const k = d.procs.indexOf(myid());
  if (k < 0) return new d.elementType(0);
  const chunk = chunkStore.get(d.id, k);
  if (!chunk) throw new InvalidArgumentError('d', `chunk ${k} of DArray ${d.id} is not held by pid ${myid()} (the array was freed, or this is not its owner process)`);
  return chunk.data as T;
}

/**
 * For a DArray: the block this process owns, one `[start, end)` per dimension (empty ranges if
 * none). For a SharedArray: this process's `[start, end)` slice of the linear indexes (disjoint
 * across the participating pids; empty if this process does not take part).
 */
export function localindexes(a: DArray): Ranges;
export function localindexes(a: SharedArray): Range;
export function localindexes(a: DArray | SharedArray): Ranges | Range {
  if (a instanceof SharedArray) return sharedLocalIndexes(a);
  if (!(a instanceof DArray)) throw new InvalidArgumentError('a', 'localindexes takes a DArray or a SharedArray');
  const k = a.procs.indexOf(myid());
  if (k < 0) return a.dims.map(() => [0, 0] as Range);
  return a.chunks[k]!.I.map(([s, e]) => [s, e] as Range);
}

/** The typed array behind a SharedArray, in shared memory; any other value is returned as it is. */
export function sdata<T extends TypedArray>(S: SharedArray<T>): T;
export function sdata<V>(a: V): V;
export function sdata(a: unknown): unknown {
  return a instanceof SharedArray ? sharedData(a) : a;
}
