/** Test helpers that wait on conditions instead of sleeping. */
import { readFileSync } from 'node:fs';

/** Options of {@link waitFor}. */
export interface WaitForOptions {
  /** @default 10000 */
  timeoutMs?: number;
  /** Pause between probes. @default 20 */
  intervalMs?: number;
  /** Says what was awaited, for the timeout error. */
  message?: string;
}

/**
 * Calls `probe` until it returns a truthy value and resolves with that value. Errors thrown by
 * the probe count as "not yet"; the last one is quoted if the wait times out.
 *
 * @example
 * ```ts
 * const info = await waitFor(() => jsm.streams.info(name), { message: 'stream created' });
 * ```
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 20;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const what = opts.message ? `: ${opts.message}` : '';
      const last =
        lastError === undefined
          ? ''
          : `; last probe error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
      throw new Error(`waitFor timed out after ${timeoutMs} ms${what}${last}`, { cause: lastError });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Whether `pid` is a live process. A zombie (exited, not yet reaped) counts as dead, which
 * `kill(pid, 0)` alone would not tell.
 */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name in parentheses may itself contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && procMounted()) return false;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function procMounted(): boolean {
  try {
    readFileSync('/proc/self/stat');
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `pid` is gone (or a zombie). @param timeoutMs @default 10000 */
export async function waitForExit(pid: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => !processAlive(pid), { timeoutMs, message: `process ${pid} to exit` });
}
