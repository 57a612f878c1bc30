/**
 * Reading the log back (Journal.read / iterate / batches): every stored envelope once, in stream
 * order, with its stream sequence, across several pull batches; and no consumer left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Envelope } from '../actors/index.ts';
import { Journal } from '../runtime/log/journal.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { waitFor } from './helpers/wait.ts';

const ACTORS = 50;
// Several pull batches (4096) more than a reader buffers ahead.
const EVENTS = 20_000;

let nats: TestNats;
let nc: NatsConnection;
let journal: Journal;
const written: Envelope[] = [];

beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
  journal = await Journal.open(nc, uniqueName('read'));
  // One append chain per actor (each needs its previous stream sequence), all actors at once.
  const chains = new Map<string, Promise<number>>();
  for (let i = 0; i < EVENTS; i++) {
    const id = `2-r-${i % ACTORS}`;
    const seq = Math.floor(i / ACTORS) + 1;
    // Data of every shape the log holds: plain records and values only codec.decode reads.
    const data = i % 7 === 0 ? { at: new Date(i), big: 2n ** 70n, name: 'héllo' } : { n: i, list: [i, -i, 1.5], task: i % 2 ? null : 't#1' };
    const env = { v: 1, kind: 'ref', id, seq, at: 1_700_000_000_000 + i, type: 'ref.put', from: seq === 1 ? null : 'a', to: 'a', data } as Envelope;
    written.push(env);
    chains.set(id, (chains.get(id) ?? Promise.resolve(0)).then((last) => journal.append(env, last, 'w1')).then((s) => (env.streamSeq = s)));
  }
  await Promise.all(chains.values());
  written.sort((a, b) => a.streamSeq! - b.streamSeq!);
});

afterAll(async () => {
  await nc?.close();
  await nats?.stop();
});

async function consumers(): Promise<number> {
  let n = 0;
  for await (const _ of journal.jsm.consumers.list(journal.subjects.eventsStream)) n++;
  return n;
}

describe('reading the event log', () => {
  it('read gives every envelope once, in stream order, equal to what was appended', async () => {
    const all = await journal.read('>');
    expect(all).toHaveLength(EVENTS);
    expect(all.map((e) => e.streamSeq)).toEqual(written.map((e) => e.streamSeq));
    expect(all).toEqual(written);
  });

  it('a filter, a start sequence and a start time select what they say', async () => {
    const one = await journal.read('ref.2-r-7');
    expect(one).toEqual(written.filter((e) => e.id === '2-r-7'));
    const from = written[16_000]!.streamSeq!;
    expect(await journal.read('>', { fromSeq: from })).toEqual(written.slice(16_000));
    expect(await journal.read('ref.2-r-7', { fromSeq: from })).toEqual(written.slice(16_000).filter((e) => e.id === '2-r-7'));
    expect(await journal.read('ref.nobody')).toEqual([]);
    expect(await journal.read('>', { since: new Date(Date.now() + 60_000) })).toEqual([]);
  });

  it('iterate and batches agree with read; a reader that stops early leaves no consumer', async () => {
    const seen: Envelope[] = [];
    for await (const e of journal.iterate('>')) seen.push(e);
    expect(seen).toEqual(written);
    let batches = 0;
    let n = 0;
    for await (const b of journal.batches('>')) {
      batches++;
      n += b.length;
    }
    expect(n).toBe(EVENTS);
    expect(batches).toBeGreaterThan(1);
    for await (const e of journal.iterate('>')) if (e.seq > 3) break;
    await waitFor(async () => (await consumers()) === 0, { message: 'every read consumer deleted' });
  });

  it('a read whose consumer is deleted under it goes on from where it was, nothing lost or repeated', async () => {
    const seen: Envelope[] = [];
    let deleted = false;
    for await (const b of journal.batches('>')) {
      seen.push(...b);
      if (!deleted) {
        deleted = true;
        for await (const c of journal.jsm.consumers.list(journal.subjects.eventsStream)) await journal.jsm.consumers.delete(journal.subjects.eventsStream, c.name);
      }
    }
    expect(seen.map((e) => e.streamSeq)).toEqual(written.map((e) => e.streamSeq));
    expect(seen).toEqual(written);
  });
});
