/** Test helpers for promises that must settle: reject with a given error, or settle in bounded time. */

/** Awaits `p`, which must reject, and returns what it rejected with (to check `name` and fields). */
export async function rejection(p: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    return e as Error & Record<string, unknown>;
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/**
 * Resolves or rejects as `p` does, or rejects once `ms` have passed with a message saying what
 * never happened. A bound on a wait, not a sleep: it returns as soon as `p` settles.
 */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, bound]);
  } finally {
    clearTimeout(timer);
  }
}
