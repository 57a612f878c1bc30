/**
 * Tasks for `npm run bench`, loaded on every worker with `cluster.everywhere()`.
 */
import { task } from 'colony';
import type { RemoteRef } from 'colony';

/** The trivial task of the latency scenarios: returns its argument. */
export const echo = task(import.meta.url, function echo<T>(x: T): T {
  return x;
});

/** A Float64Array of `n` elements holding 0, 1, 2, ... (made on the worker for the transfer back). */
export const iota = task(import.meta.url, function iota(n: number): Float64Array {
  const a = new Float64Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return a;
});

/** What `iota(n)` sums to; exact in a double for n < 2^26. */
export function iotaSum(n: number): number {
  return (n * (n - 1)) / 2;
}

/** Length and sum of a Float64Array held in a ref on this worker (checks a transfer). */
export const checksum = task(import.meta.url, async function checksum(r: RemoteRef<Float64Array>): Promise<{ type: string; length: number; sum: number }> {
  const a = await r.fetch();
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]!;
  return { type: a.constructor.name, length: a.length, sum };
});
