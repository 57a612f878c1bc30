/**
 * The dashboard's data: the model folded from the stored log, then kept live from the event
 * subjects, heartbeats and task spans; the changes go to the pages as deltas every
 * {@link DELTA_MS}. It only subscribes and reads: it never publishes or appends.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Envelope } from '../../actors/events.ts';
import type { Journal } from '../log/journal.ts';
import { decode } from '../transport/codec.ts';
import { subjects } from '../transport/subjects.ts';
import { applyEvent, applyHeartbeat, applySpans, emptyModel, matchesFilter } from './dashboard-model.ts';
import type { Delta, Heartbeat, Model, SpanBatch } from './dashboard-model.ts';

/** Deltas go out at most this often. */
export const DELTA_MS = 250;
/** Events kept in the server's tail. */
export const LOG_MAX = 5000;
/** At most this many events of actors the model does not fold (refs, chunks...) per delta. */
const DELTA_OTHER_MAX = 400;
const FOLDED = new Set(['worker', 'map', 'pool', 'job', 'adapter']);

/** Where the data comes from: a cluster's NATS (running, or its stored log), or envelopes read from a file. */
export type FeedSource =
  | { name: string; offline: boolean; nc: NatsConnection; journal: Journal }
  | { name: string; envelopes: Envelope[] };

export class DashboardFeed {
  readonly model: Model;
  private readonly listeners = new Set<(d: Delta) => void>();
  private events: Envelope[] = [];
  private hbs = new Map<number, Heartbeat>();
  private spans: SpanBatch[] = [];
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Live events that came while the history was being read. */
  private early: Envelope[] | null = [];

  private constructor(private readonly source: FeedSource) {
    this.model = emptyModel(source.name, 'envelopes' in source ? true : source.offline);
  }

  /** Reads the history and, for a running cluster, follows it live. */
  static async open(source: FeedSource): Promise<DashboardFeed> {
    const feed = new DashboardFeed(source);
    await feed.start();
    return feed;
  }

  private async start(): Promise<void> {
    const src = this.source;
    if ('envelopes' in src) {
      for (const e of src.envelopes) applyEvent(this.model, e, LOG_MAX);
      this.early = null;
      return;
    }
    const s = subjects(src.name);
    if (!src.offline) {
      // Subscribe first so nothing falls between the history and the live events.
      this.subs.push(
        src.nc.subscribe(s.evtFilter('>'), { callback: (_e, m) => this.onEvent(m.data) }),
        src.nc.subscribe(s.hb('*'), { callback: (_e, m) => this.onHeartbeat(m.data) }),
        src.nc.subscribe(s.span('*'), { callback: (_e, m) => this.onSpans(m.data) }),
      );
    }
    for await (const batch of src.journal.batches('>')) for (const e of batch) applyEvent(this.model, e, LOG_MAX);
    const early = this.early ?? [];
    this.early = null;
    for (const e of early) this.take(e);
    if (!src.offline) {
      this.timer = setInterval(() => this.flush(), DELTA_MS);
      this.timer.unref();
    }
  }

  private onEvent(data: Uint8Array): void {
    let e: Envelope;
    try {
      e = decode<Envelope>(data);
    } catch {
      return;
    }
    if (!e || typeof e.kind !== 'string' || typeof e.id !== 'string') return;
    if (this.early) this.early.push(e);
    else this.take(e);
  }

  private take(e: Envelope): void {
    if (applyEvent(this.model, e, LOG_MAX)) this.events.push(e);
  }

  private onHeartbeat(data: Uint8Array): void {
    try {
      const hb = decode<Heartbeat>(data);
      if (typeof hb?.pid !== 'number') return;
      applyHeartbeat(this.model, hb, Date.now());
      this.hbs.set(hb.pid, hb);
    } catch {
      /* not a heartbeat */
    }
  }

  private onSpans(data: Uint8Array): void {
    try {
      const b = decode<SpanBatch>(data);
      if (typeof b?.pid !== 'number' || !Array.isArray(b.spans)) return;
      applySpans(this.model, b);
      this.spans.push(b);
    } catch {
      /* not a span batch */
    }
  }

  /**
   * Sends what changed since the last delta to every page. A page that opens right after gets a
   * snapshot that holds all of it, and only later changes as deltas: nothing counts twice.
   */
  flush(): void {
    if (!this.events.length && !this.hbs.size && !this.spans.length) return;
    let events = this.events;
    let dropped = 0;
    const others = events.length - events.reduce((n, e) => n + (FOLDED.has(e.kind) ? 1 : 0), 0);
    if (others > DELTA_OTHER_MAX) {
      // Keep every event the views fold, and the latest of the rest.
      let skip = others - DELTA_OTHER_MAX;
      dropped = skip;
      events = events.filter((e) => FOLDED.has(e.kind) || skip-- <= 0);
    }
    const delta: Delta = { now: Date.now(), events, hbs: [...this.hbs.values()], spans: this.spans, dropped };
    this.events = [];
    this.hbs = new Map();
    this.spans = [];
    for (const fn of this.listeners) fn(delta);
  }

  /** Calls `fn` with each delta; returns the function that stops it. */
  onDelta(fn: (d: Delta) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get live(): boolean {
    return !this.model.offline;
  }

  /** The latest `limit` events in the tail that match `filter` (`worker.*`, `ref.>`...). */
  tail(filter: string, limit: number): Envelope[] {
    const out: Envelope[] = [];
    const log = this.model.log;
    for (let i = log.length - 1; i >= 0 && out.length < limit; i--) if (matchesFilter(log[i]!, filter)) out.push(log[i]!);
    return out.reverse();
  }

  /** Every stored event of one actor, in order (for replay). */
  async actorEvents(kind: string, id: string): Promise<Envelope[]> {
    const src = this.source;
    if ('envelopes' in src) return src.envelopes.filter((e) => e.kind === kind && e.id === id);
    return src.journal.read(`${kind}.${id}`);
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    this.listeners.clear();
  }
}
