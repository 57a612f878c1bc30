/**
 * `cluster.events`: the log for people. `subscribe` streams live envelopes, `history` reads the
 * stored ones in order. A filter is a subject tail under `colony.<c>.evt.`: `worker.*`, `ref.>`,
 * `worker.2`, `>`.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Envelope } from '../../actors/index.ts';
import { decode } from '../transport/codec.ts';
import { checkEventFilter } from '../transport/subjects.ts';
import type { Journal } from './journal.ts';

export interface HistoryOptions {
  /** A stream sequence number to start at, or a time. */
  since?: number | Date;
}

export class EventLog {
  constructor(private readonly nc: NatsConnection, private readonly journal: Journal) {}

  /**
   * Live envelopes from now on, as an async iterable. Break out of the loop to stop. A bad filter
   * is an InvalidArgumentError, thrown here.
   */
  subscribe(filter = '>'): AsyncIterable<Envelope> & { stop(): void } {
    checkEventFilter(filter);
    const sub = this.nc.subscribe(this.journal.subjects.evtFilter(filter));
    const iterable = {
      stop: () => sub.unsubscribe(),
      async *[Symbol.asyncIterator]() {
        try {
          for await (const m of sub) {
            const seq = Number(m.headers?.get('Nats-Sequence') || 0);
            yield { ...decode<Envelope>(m.data), ...(seq ? { streamSeq: seq } : {}) };
          }
        } finally {
          sub.unsubscribe();
        }
      },
    };
    return iterable;
  }

  /**
   * Stored envelopes matching `filter`, in order. This process's own appends still in flight are
   * waited for first, so its history includes what it has just done. A bad filter is an
   * InvalidArgumentError that lists the valid forms.
   */
  async history(filter = '>', opts: HistoryOptions = {}): Promise<Envelope[]> {
    checkEventFilter(filter);
    await this.journal.settle();
    const since = opts.since;
    return this.journal.read(filter, typeof since === 'number' ? { fromSeq: since } : since instanceof Date ? { since } : {});
  }
}
