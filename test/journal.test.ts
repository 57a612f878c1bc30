import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refEvents, workerEvents } from '../actors/index.ts';
import type { Envelope } from '../actors/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import { decode, encode } from '../runtime/transport/codec.ts';
import { Journal } from '../runtime/log/journal.ts';
import type { StoredSnapshot } from '../runtime/log/journal.ts';
import { startCluster } from './helpers/cluster.ts';
import { startNats, uniqueName } from './helpers/nats.ts';
import type { TestNats } from './helpers/nats.ts';
import { rejection } from './helpers/settle.ts';

const registered = (pid: number) => workerEvents.registered(Date.now(), { pid, host: 'h', ospid: 1000 + pid, launchToken: `t${pid}`, manager: 'local' });

describe('journal', () => {
  let nats: TestNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('Cluster.start - creates the event stream COLONY_<name>_EVENTS and the state bucket colony_<name>_state', async () => {
    const name = uniqueName('j');
    await using tc = await startCluster({ nats: nats.url, name, workers: 1 });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(`COLONY_${name}_EVENTS`);
    expect(info.config.subjects).toEqual([`colony.${name}.evt.>`]);
    expect(info.config.storage).toBe('file');
    expect(info.config.allow_direct).toBe(true);
    expect(info.config.duplicate_window).toBeGreaterThan(0);
    expect(info.state.messages).toBeGreaterThanOrEqual(2);

    await tc.cluster.flush();
    const kv = await new Kvm(nc).open(`colony_${name}_state`);
    const status = await kv.status();
    expect(status.bucket).toBe(`colony_${name}_state`);
    // The worker's latest state is there for a fast status and restore.
    const entry = await kv.get('worker.2');
    const snap = decode<StoredSnapshot>(entry!.value);
    expect(snap).toMatchObject({ kind: 'worker', id: '2', value: 'ready', seq: 2, type: 'worker.ready' });
    expect(tc.cluster.journal.subjects.eventsStream).toBe(`COLONY_${name}_EVENTS`);
  });

  it('append - an append that expects a stale last sequence is rejected with JournalConflictError', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const env: Envelope = { v: 1, kind: 'worker', id: '2', seq: 1, at: Date.now(), type: 'worker.registered', from: null, to: 'registered', data: {} };
    const first = await journal.append(env, 0, 'writer-a');
    expect(first).toBeGreaterThan(0);
    // A second writer that believes the actor is still new.
    const err = await rejection(journal.append({ ...env, data: { other: true } }, 0, 'writer-b'));
    expect(err.name).toBe('JournalConflictError');
    expect(err.message).toContain('worker/2');
    // The writer that knows the last sequence goes on.
    const second = await journal.append({ ...env, seq: 2, type: 'worker.ready', from: 'registered', to: 'ready' }, first, 'writer-a');
    expect(second).toBeGreaterThan(first);
    expect((await journal.read('worker.2')).map((e) => e.seq)).toEqual([1, 2]);
  });

  it('ActorHost - a second host writing the same actor is refused; the log keeps one history', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const a = new ActorHost(journal, 'host-a');
    const b = new ActorHost(journal, 'host-b');
    const mine = a.create('worker', '2');
    mine.send(registered(2));
    await mine.durable();
    const theirs = b.create('worker', '2');
    theirs.send(registered(2));
    const err = await rejection(theirs.durable());
    expect(err.name).toBe('JournalConflictError');
    // The stale actor stays failed: later sends are refused too.
    expect(() => theirs.send(workerEvents.ready(Date.now(), 0))).toThrow(expect.objectContaining({ name: 'JournalConflictError' }));
    mine.send(workerEvents.ready(Date.now(), 0));
    await mine.durable();
    const stored = await journal.read('worker.2');
    expect(stored.map((e) => e.type)).toEqual(['worker.registered', 'worker.ready']);
    // The refused append is reported at the next flush point, and only once.
    expect((await rejection(journal.flush())).name).toBe('JournalAppendError');
    await journal.flush();
  });

  it('ActorHost - an event the machine does not accept is refused before anything is stored', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const host = new ActorHost(journal, 'h');
    const ref = host.create('ref', '2-abc-1');
    expect(ref.accepts(refEvents.ready(Date.now(), 0))).toBe(false);
    expect(() => ref.send(refEvents.ready(Date.now(), 0))).toThrow(expect.objectContaining({ name: 'JournalConflictError' }));
    expect(await journal.read('ref.>')).toEqual([]);
  });

  it('append - a publish with a msgID already stored lands once, and a second writer using it is refused', async () => {
    const name = uniqueName('j');
    const journal = await Journal.open(nc, name);
    const env: Envelope = { v: 1, kind: 'ref', id: '2-abc-1', seq: 1, at: Date.now(), type: 'ref.created', from: null, to: 'empty', data: { owner: 2, creator: 1, task: null } };
    await journal.append(env, 0, 'w');
    // Appending the same event again is not a retry of ours: the duplicate is reported, not hidden.
    await expect(journal.append(env, 0, 'w')).rejects.toMatchObject({ name: 'JournalConflictError' });
    expect(await journal.read('ref.>')).toHaveLength(1);

    // The same through the raw client: the server flags the duplicate.
    const js = jetstream(nc);
    const subject = `colony.${name}.evt.ref.2-abc-2`;
    const a1 = await js.publish(subject, encode({ ...env, id: '2-abc-2' }), { msgID: 'same-id' });
    const a2 = await js.publish(subject, encode({ ...env, id: '2-abc-2' }), { msgID: 'same-id' });
    expect(a1.duplicate).toBe(false);
    expect(a2.duplicate).toBe(true);
    expect(a2.seq).toBe(a1.seq);
    expect(await journal.read('ref.2-abc-2')).toHaveLength(1);
  });

  it('ActorHost - pipelined appends of many actors all land, each actor in order', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const host = new ActorHost(journal, 'h');
    const actors = Array.from({ length: 20 }, (_, i) => host.create('worker', String(i + 2)));
    for (const [i, a] of actors.entries()) {
      a.send(registered(i + 2));
      a.send(workerEvents.ready(Date.now(), 0));
    }
    for (let k = 0; k < 20; k++) for (const a of actors) a.send(workerEvents.interrupted(Date.now()));
    expect(journal.pending).toBeGreaterThan(0);
    await journal.flush();
    expect(journal.pending).toBe(0);
    const all = await journal.read('worker.*');
    expect(all).toHaveLength(20 * 22);
    for (const a of actors) {
      const mine = all.filter((e) => e.id === a.id);
      expect(mine.map((e) => e.seq)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1));
      expect(mine[0]!.type).toBe('worker.registered');
      expect(mine.slice(2).every((e) => e.type === 'worker.interrupted' && e.from === 'ready' && e.to === 'ready')).toBe(true);
    }
  });

  it('ActorHost.restore - rebuilds an actor from its snapshot plus later events, or from events alone, and it carries on', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const host = new ActorHost(journal, 'h1', { snapshotEvery: { worker: 2 } });
    const w = host.create('worker', '7');
    w.send(registered(7));
    w.send(workerEvents.ready(Date.now(), 1)); // snapshot here (every 2 events)
    w.send(workerEvents.interrupted(Date.now()));
    await w.durable();
    const snap = await journal.snapshot('worker', '7');
    expect(snap).toMatchObject({ value: 'ready', seq: 2 });

    const other = new ActorHost(journal, 'h2');
    for (const useSnapshot of [true, false]) {
      const r = await other.restore('worker', '7', { useSnapshot });
      expect(r.state).toBe('ready');
      expect(r.seq).toBe(3);
      expect(r.streamSeq).toBe(w.streamSeq);
      expect(r.context).toMatchObject({ pid: 7, ospid: 1007, interrupts: 1 });
    }
    // The restored actor is the single writer now: its next append chains after the last one.
    const r = await other.restore('worker', '7');
    r.send(workerEvents.stopping(Date.now(), 'test'));
    await r.durable();
    // ...and the old host's copy is stale.
    w.send(workerEvents.interrupted(Date.now()));
    expect((await rejection(w.durable())).name).toBe('JournalConflictError');
    await journal.flush().catch(() => undefined);
    expect((await journal.read('worker.7')).map((e) => e.type)).toEqual(['worker.registered', 'worker.ready', 'worker.interrupted', 'worker.stopping']);
  });

  it('ActorHost.restore - a recorded state that replay does not reproduce is a DeterminismViolationError naming the event', async () => {
    const journal = await Journal.open(nc, uniqueName('j'));
    const base = { v: 1, kind: 'ref' as const, id: '3-x-1', at: Date.now() };
    const s1 = await journal.append({ ...base, seq: 1, type: 'ref.created', from: null, to: 'running', data: { owner: 3, creator: 1, task: 'm#f' } }, 0, 'w');
    // Recorded as 'failed', but ref.ready leads to 'ready'.
    await journal.append({ ...base, seq: 2, type: 'ref.ready', from: 'running', to: 'failed', data: { bytes: 0 } }, s1, 'w');
    const host = new ActorHost(journal, 'h');
    const err = await rejection(host.restore('ref', '3-x-1'));
    expect(err.name).toBe('DeterminismViolationError');
    expect(err).toMatchObject({ kind: 'ref', id: '3-x-1', seq: 2, type: 'ref.ready', recorded: 'failed', replayed: 'ready' });
    expect(err.message).toContain('ref.ready');
    const lenient = await host.restore('ref', '3-x-1', { verify: false });
    expect(lenient.state).toBe('running');
  });
});
