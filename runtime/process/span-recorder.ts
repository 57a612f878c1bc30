/**
 * Task spans: each task a process runs (a remote call, one pmap batch) becomes one span, kept in
 * an array and published in batches on `colony.<c>.span.<pid>` (core NATS, not persisted) for the
 * dashboard's timeline. Nobody may be listening; NATS cannot tell, so spans are always batched
 * and published, and a span costs one small tuple.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '../transport/codec.ts';
import type { Span, SpanBatch } from './span.ts';

export type { Span, SpanBatch };

/** Spans wait at most this long before they are published. */
export const SPAN_FLUSH_MS = 200;
/** A batch is published at once when it holds this many spans. */
export const SPAN_BATCH_MAX = 1000;

/**
 * How the calls of a builtin task show on the timeline: the user task it runs, the map it belongs
 * to, its item count and how many of them failed. Each returns a primitive: no object per call.
 */
export interface SpanLabel {
  task(args: unknown[]): string;
  map?(args: unknown[]): string | null;
  items?(args: unknown[]): number;
  failed?(result: unknown): number;
}

const labels = new Map<string, SpanLabel>();

/** Registers how the spans of the builtin task `key` are labelled (see Capability.spanLabels). */
export function labelSpans(key: string, label: SpanLabel): void {
  labels.set(key, label);
}

export class SpanRecorder {
  private buf: Span[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly origin = performance.timeOrigin;

  constructor(private readonly nc: NatsConnection, private readonly subject: string, private readonly pid: number) {}

  /**
   * Records a task that ran from `t0` to `t1` (`performance.now()` values). `error` is what it
   * threw, `result` what it returned.
   */
  record(key: string, args: unknown[], t0: number, t1: number, error: unknown, result: unknown): void {
    const label = labels.get(key);
    const o = this.origin;
    const err = error === undefined ? null : String((error as Error | null)?.name ?? 'Error');
    if (label === undefined) {
      this.buf.push([key, o + t0, o + t1, err, null, 1, err === null ? 0 : 1]);
    } else {
      const items = label.items ? label.items(args) : 1;
      const failed = err !== null ? items : label.failed ? label.failed(result) : 0;
      this.buf.push([label.task(args), o + t0, o + t1, err, label.map ? label.map(args) : null, items, failed]);
    }
    if (this.buf.length >= SPAN_BATCH_MAX) this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(this.onTimer, SPAN_FLUSH_MS);
      this.timer.unref();
    }
  }

  private readonly onTimer = () => {
    this.timer = null;
    this.flush();
  };

  /** Publishes the spans recorded so far (no-op when there are none or the connection closed). */
  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.buf.length === 0) return;
    const spans = this.buf;
    this.buf = [];
    if (this.nc.isClosed()) return;
    try {
      this.nc.publish(this.subject, encode({ v: 1, pid: this.pid, spans } satisfies SpanBatch));
    } catch {
      // A closing connection: spans are best effort, never worth failing a task for.
    }
  }
}
