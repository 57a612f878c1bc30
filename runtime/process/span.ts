/** The wire shape of task spans on `colony.<c>.span.<pid>` (see span-recorder.ts); plain types, no I/O. */

/**
 * One span: `[task, start, end, error, map, items, failed]`. Times are epoch milliseconds with
 * fractions; `error` is the thrown error's name or null; `map` the pmap run it belongs to;
 * `items` how many items the call ran (1 for a plain call) and `failed` how many of them threw.
 */
export type Span = [task: string, start: number, end: number, error: string | null, map: string | null, items: number, failed: number];

/** What one message on `colony.<c>.span.<pid>` holds. */
export interface SpanBatch {
  v: 1;
  pid: number;
  spans: Span[];
}
