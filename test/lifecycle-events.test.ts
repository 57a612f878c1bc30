import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Envelope } from '../runtime/index.ts';
import { decode } from '../runtime/transport/codec.ts';
import { echo, whoami } from './fixtures/tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { waitFor } from './helpers/wait.ts';

const FIELDS = ['v', 'kind', 'id', 'seq', 'at', 'type', 'from', 'to', 'data'];

/** Checks the envelope contract on a list read in stream order. */
function checkEnvelopes(list: Envelope[], kind: string): void {
  let lastStreamSeq = 0;
  const byActor = new Map<string, Envelope[]>();
  for (const env of list) {
    for (const f of FIELDS) expect(env, `${env.kind}/${env.id} #${env.seq} has '${f}'`).toHaveProperty(f);
    expect(env.v).toBe(1);
    expect(env.kind).toBe(kind);
    expect(typeof env.id).toBe('string');
    expect(env.type.startsWith(`${kind}.`)).toBe(true);
    expect(typeof env.at).toBe('number');
    expect(typeof env.data).toBe('object');
    expect(env.streamSeq ?? 0).toBeGreaterThan(lastStreamSeq);
    lastStreamSeq = env.streamSeq!;
    byActor.set(env.id, [...(byActor.get(env.id) ?? []), env]);
  }
  for (const [id, events] of byActor) {
    events.forEach((env, i) => {
      expect(env.seq, `${kind}/${id} seq`).toBe(i + 1);
      if (i === 0) expect(env.from, `${kind}/${id} first from`).toBeNull();
      else {
        expect(env.from, `${kind}/${id} #${env.seq} from`).toBe(events[i - 1]!.to);
        expect(env.at).toBeGreaterThanOrEqual(events[i - 1]!.at);
      }
    });
  }
}

describe('lifecycle events', () => {
  let nats: TestNats;
  let tc: TestCluster;
  let nc: NatsConnection;
  let name: string;
  let t0: number;

  beforeAll(async () => {
    nats = await startNats();
    name = uniqueName('life');
    t0 = Date.now();
    tc = await startCluster({ nats: nats.url, name, workers: 2, tasks: true });
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await tc?.close();
    await nats?.stop();
  });

  it("history('worker.*') - gives each worker's registration and readiness as envelopes, in order", async () => {
    await tc.cluster.flush();
    const list = await tc.cluster.events.history('worker.*');
    checkEnvelopes(list, 'worker');
    const w2 = list.filter((e) => e.id === '2');
    expect(w2.map((e) => [e.type, e.from, e.to])).toEqual([
      ['worker.registered', null, 'registered'],
      ['worker.ready', 'registered', 'ready'],
    ]);
    const ospid = tc.cluster.workerInfo().find((w) => w.pid === 2)!.ospid;
    expect(w2[0]!.data).toMatchObject({ pid: 2, ospid, manager: 'local' });
    for (const e of list) {
      expect(e.at).toBeGreaterThanOrEqual(t0);
      expect(e.at).toBeLessThanOrEqual(Date.now());
    }
    expect(new Set(list.map((e) => e.id))).toEqual(new Set(['2', '3']));
  });

  it("history('ref.>') - gives the lifecycle of every ref: created, ready, put, freed", async () => {
    const { cluster } = tc;
    const computed = cluster.remotecall(echo, 3, 'x');
    await computed.fetch();
    const filled = cluster.remoteRef<string>(2);
    await filled.put('y');
    await filled.free();
    const list = await cluster.events.history('ref.>');
    checkEnvelopes(list, 'ref');
    const of = (id: string) => list.filter((e) => e.id === id).map((e) => [e.type, e.from, e.to]);
    expect(of(computed.id)).toEqual([
      ['ref.created', null, 'running'],
      ['ref.ready', 'running', 'ready'],
    ]);
    expect(of(filled.id)).toEqual([
      ['ref.created', null, 'empty'],
      ['ref.put', 'empty', 'ready'],
      ['ref.freed', 'ready', 'freed'],
    ]);
    const created = list.find((e) => e.id === computed.id)!;
    expect(created.data).toMatchObject({ owner: 3, creator: 1, task: echo.key });
  });

  it('subjects - events are stored under colony.<c>.evt.worker.<pid> and colony.<c>.evt.ref.<id>', async () => {
    const { cluster } = tc;
    const seen: string[] = [];
    const sub = nc.subscribe(`colony.${name}.evt.>`, { callback: (_e, m) => { seen.push(m.subject); } });
    await nc.flush();
    const r = cluster.remotecall(whoami, 2);
    await r.fetch();
    await waitFor(() => seen.includes(`colony.${name}.evt.ref.${r.id}`), { message: 'the ref event subject' });
    sub.unsubscribe();

    const jsm = await jetstreamManager(nc);
    const stored = await jsm.streams.getMessage(`COLONY_${name}_EVENTS`, { last_by_subj: `colony.${name}.evt.worker.3` });
    expect(stored!.subject).toBe(`colony.${name}.evt.worker.3`);
    expect(decode<Envelope>(stored!.data)).toMatchObject({ kind: 'worker', id: '3', type: 'worker.ready', to: 'ready' });
    const refMsg = await jsm.streams.getMessage(`COLONY_${name}_EVENTS`, { last_by_subj: `colony.${name}.evt.ref.${r.id}` });
    expect(decode<Envelope>(refMsg!.data)).toMatchObject({ kind: 'ref', id: r.id, type: 'ref.ready' });
  });

  it("history(filter) - one actor's events, and only those since a stream sequence or a time", async () => {
    const { cluster } = tc;
    await cluster.flush();
    const one = await cluster.events.history('worker.3');
    expect(one.map((e) => e.type)).toEqual(['worker.registered', 'worker.ready']);
    const all = await cluster.events.history('>');
    expect(all.length).toBeGreaterThan(one.length);
    const cut = all[Math.floor(all.length / 2)]!;
    const since = await cluster.events.history('>', { since: cut.streamSeq! });
    expect(since[0]!.streamSeq).toBe(cut.streamSeq);
    expect(since).toHaveLength(all.length - all.indexOf(cut));
    const later = new Date(Date.now() + 1000);
    expect(await cluster.events.history('>', { since: later })).toEqual([]);
    expect(await cluster.events.history('worker.99')).toEqual([]);
  });

  it("subscribe('worker.*') - sees the live events of a worker added now, until it is removed", async () => {
    const { cluster } = tc;
    const live = cluster.events.subscribe('worker.*');
    const got: Envelope[] = [];
    const reading = (async () => {
      for await (const env of live) got.push(env);
    })();
    try {
      const [pid] = await cluster.addprocs(1);
      await waitFor(() => got.some((e) => e.id === String(pid) && e.type === 'worker.ready'), { message: 'worker.ready seen live' });
      await cluster.rmprocs(pid!);
      await waitFor(() => got.some((e) => e.id === String(pid) && e.type === 'worker.exited'), { message: 'worker.exited seen live' });
      const mine = got.filter((e) => e.id === String(pid));
      expect(mine.map((e) => e.type)).toEqual(['worker.registered', 'worker.ready', 'worker.stopping', 'worker.exited']);
      expect(mine.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      for (const f of FIELDS) expect(mine[0]).toHaveProperty(f);
      // Only worker events pass the filter.
      expect(got.every((e) => e.kind === 'worker')).toBe(true);
    } finally {
      live.stop();
      await reading;
    }
  });
});
