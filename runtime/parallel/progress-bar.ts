/**
 * A terminal progress bar for `pmap`'s `onProgress`.
 *
 * @example
 * await cluster.pmap(f, items, { onProgress: progressBar({ label: 'svd' }) });
 * // svd [##############----------------]  47% 9400/20000  12.3k/s
 */

export interface ProgressBarOptions {
  /** Text before the bar. @default 'pmap' */
  label?: string;
  /** Where to draw. @default process.stderr */
  stream?: NodeJS.WriteStream;
  /** Characters in the bar. @default 30 */
  width?: number;
  /** Least time between redraws, in milliseconds. @default 100 */
  intervalMs?: number;
}

function rate(perS: number): string {
  if (!Number.isFinite(perS)) return '';
  return perS >= 1000 ? `${(perS / 1000).toFixed(1)}k/s` : `${perS.toFixed(perS >= 10 ? 0 : 1)}/s`;
}

/**
 * Returns an `onProgress(done, total)` callback that draws a bar. On a terminal it redraws one
 * line at most every `intervalMs`; elsewhere (a log file, CI) it writes one line at the end.
 */
export function progressBar(opts: ProgressBarOptions = {}): (done: number, total: number) => void {
  const stream = opts.stream ?? process.stderr;
  const label = opts.label ?? 'pmap';
  const width = opts.width ?? 30;
  const interval = opts.intervalMs ?? 100;
  const tty = Boolean(stream.isTTY);
  let t0 = 0;
  let last = -Infinity;
  let ended = false;
  return (done: number, total: number) => {
    const now = performance.now();
    if (!t0) t0 = now;
    const end = done >= total;
    if (ended || (!end && (!tty || now - last < interval))) return;
    last = now;
    const frac = total > 0 ? Math.min(1, done / total) : 1;
    const fill = Math.round(frac * width);
    const line = `${label} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${String(Math.floor(frac * 100)).padStart(3)}% ${done}/${total}  ${rate(done / ((now - t0) / 1000))}`;
    if (end) ended = true;
    stream.write(tty ? `\r${line}${end ? '\n' : ''}` : `${line}\n`);
  };
}
