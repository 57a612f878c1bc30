/**
 * Appends ride out a server that goes away (issue 14, item 1): retried with the same msgID for
 * the election window, in each actor's order, stored once; a try whose ack was lost is recognised
 * as ours, not as a conflict; after the window the append is a JournalAppendError at flush().
 * A real single-node JetStream server, stopped and restarted on the same port and store.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { afterEach, describe, expect, it } from 'vitest';
import { workerEvents } from '../actors/index.ts';
import type { Envelope } from '../actors/index.ts';
import { ActorHost } from '../runtime/log/actor-host.ts';
import { Journal } from '../runtime/log/journal.ts';
import { connectNats } from '../runtime/transport/connection.ts';
import { NatsServer } from '../runtime/transport/nats-server.ts';
import { uniqueName } from './helpers/nats.ts';
import { rejection } from './helpers/settle.ts';
import { waitFor, waitForExit } from './helpers/wait.ts';

const registered = (pid: number) => workerEvents.registered(Date.now(), { pid, host: 'h', ospid: 1000 + pid, launchToken: `t${pid}`, manager: 'local' });

/** A server that can die and come back on the same port and store. */
class Restartable {
  server!: NatsServer;
  private constructor(readonly dir: string) {}

  static async start(): Promise<Restartable> {
    const r = new Restartable(await mkdtemp(join(tmpdir(), 'colony-election-')));
    r.server = await NatsServer.start({ storeDir: r.dir });
    return r;
  }

  get url(): string {
    return this.server.url;
  }

  /** SIGKILL: no goodbye to the clients. */
  async kill(): Promise<void> {
    process.kill(this.server.pid, 'SIGKILL');
    await waitForExit(this.server.pid);
  }

  async restart(): Promise<void> {
    this.server = await NatsServer.start({ storeDir: this.dir, port: this.server.port });
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Resolves at the connection's next status event of `type`. */
function nextStatus(nc: NatsConnection, type: string): Promise<void> {
  return (async () => {
    for await (const st of nc.status()) if (st.type === type) return;
  })();
}

/** Each actor's events: seqs 1..n, once each. */
function seqsByActor(events: Envelope[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const e of events) {
    const k = `${e.kind}/${e.id}`;
    out.set(k, [...(out.get(k) ?? []), e.seq]);
  }
  return out;
}

describe('journal appends across a server outage', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  async function setup(electionWindowMs?: number) {
    const srv = await Restartable.start();
    cleanup.push(() => srv.stop());
    const nc = await connectNats({ url: srv.url }, 'election-test');
    cleanup.push(() => nc.close());
    const journal = await Journal.open(nc, uniqueName('j'), {}, { electionWindowMs });
    return { srv, nc, journal };
  }

  it('appends sent while the server is down wait, then land once each, in every actor\'s order', async () => {
    const { srv, nc, journal } = await setup();
    const host = new ActorHost(journal, 'w1');
    const actors = Array.from({ length: 10 }, (_, i) => host.create('worker', String(i + 2)));
    for (const [i, a] of actors.entries()) {
      a.send(registered(i + 2));
      a.send(workerEvents.ready(Date.now(), 0));
    }
    await journal.flush();

    const down = nextStatus(nc, 'disconnect');
    await srv.kill();
    await down;
    // Sent with no server: they queue behind each actor's previous append.
    for (let k = 0; k < 5; k++) for (const a of actors) a.send(workerEvents.interrupted(Date.now()));
    const flushed = journal.flush();
    let settled = false;
    void flushed.then(() => (settled = true), () => (settled = true));
    // Not reported lost while the window lasts: the appends are being retried.
    const before = journal.retries;
    await waitFor(() => journal.retries >= before + 3, { timeoutMs: 20_000, message: 'appends retried while the server is down' });
    expect(settled).toBe(false);
    expect(journal.pending).toBeGreaterThan(0);

    await srv.restart();
    await flushed;
    const events = await journal.read('worker.*');
    for (const [actor, seqs] of seqsByActor(events)) expect({ actor, seqs }).toEqual({ actor, seqs: [1, 2, 3, 4, 5, 6, 7] });
    expect(events).toHaveLength(10 * 7);
    // The actors carry on after it.
    for (const a of actors) a.send(workerEvents.interrupted(Date.now()));
    await journal.flush();
    expect(await journal.read('worker.*')).toHaveLength(10 * 8);
  });

  it('a try that was stored but whose ack was lost is recognised by its msgID: stored once, no conflict', async () => {
    const { nc, journal } = await setup();
    const host = new ActorHost(journal, 'w1');
    const actors = Array.from({ length: 300 }, (_, i) => host.create('worker', String(i + 2)));
    // Hundreds of appends in flight when the connection drops: the acks of those the server
    // stored already go to the old connection, and are lost; the retries come back as duplicates.
    for (let round = 0; round < 20 && journal.recovered.duplicate === 0; round++) {
      for (const [i, a] of actors.entries()) {
        if (round === 0) a.send(registered(i + 2));
        a.send(round === 0 ? workerEvents.ready(Date.now(), 0) : workerEvents.interrupted(Date.now()));
      }
      await nc.flush();
      await nc.reconnect();
      await journal.flush();
    }
    expect(journal.recovered.duplicate).toBeGreaterThan(0);
    const events = await journal.read('worker.*');
    for (const a of actors) expect(events.filter((e) => e.id === a.id).map((e) => e.seq)).toEqual(Array.from({ length: a.seq }, (_, i) => i + 1));
  });

  it('a retry after the server forgot the msgID (expected sequence moved on) is matched with the last message\'s msgID', async () => {
    const { srv, journal } = await setup();
    const jsm = await jetstreamManager(journal.nc);
    // A short duplicate window: after a restart the server no longer dedups the first try.
    await jsm.streams.update(journal.subjects.eventsStream, { duplicate_window: 200 * 1_000_000 });
    const host = new ActorHost(journal, 'w1');
    const actors = Array.from({ length: 300 }, (_, i) => host.create('worker', String(i + 2)));
    for (const [i, a] of actors.entries()) {
      a.send(registered(i + 2));
      a.send(workerEvents.ready(Date.now(), 0));
    }
    await journal.flush();
    for (let round = 0; round < 20 && journal.recovered.lastMessage === 0; round++) {
      // The appends wait in the socket of a frozen server; it wakes up, stores some, and is
      // killed before their acks go out. Restarted after the duplicate window, it no longer
      // knows their msgIDs, and their retries find the expected sequence moved on.
      process.kill(srv.server.pid, 'SIGSTOP');
      for (const a of actors) a.send(workerEvents.interrupted(Date.now()));
      await new Promise((r) => setTimeout(r, 50));
      process.kill(srv.server.pid, 'SIGCONT');
      await new Promise((r) => setTimeout(r, round % 5));
      await srv.kill();
      // Down for longer than the stream's 200 ms duplicate window (a server-side clock, so a wait).
      await new Promise((r) => setTimeout(r, 300));
      await srv.restart();
      await journal.flush();
    }
    expect(journal.recovered.lastMessage).toBeGreaterThan(0);
    const events = await journal.read('worker.*');
    for (const a of actors) expect(events.filter((e) => e.id === a.id).map((e) => e.seq)).toEqual(Array.from({ length: a.seq }, (_, i) => i + 1));
  });

  it('after the election window an append is reported lost: JournalAppendError at flush(), and at the actor', async () => {
    const { srv, nc, journal } = await setup(1500);
    const host = new ActorHost(journal, 'w1');
    const a = host.create('worker', '2');
    a.send(registered(2));
    await journal.flush();
    const down = nextStatus(nc, 'disconnect');
    await srv.kill();
    await down;
    const t0 = Date.now();
    a.send(workerEvents.ready(Date.now(), 0));
    // Nobody awaits the actor: the failure must not be an unhandled rejection.
    const err = await rejection(journal.flush());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(err.name).toBe('JournalAppendError');
    expect(err.message).toMatch(/worker\/2: append of event #2 'worker.ready' failed: .*retried for 2 s \(electionWindowMs\)/);
    expect((await rejection(a.durable())).name).toBe('JournalAppendError');
    expect(() => a.send(workerEvents.interrupted(Date.now()))).toThrow(expect.objectContaining({ name: 'JournalAppendError' }));
    await srv.restart();
    await waitFor(() => journal.read('worker.2').then((e) => e.length === 1), { message: 'the log has only the first event' });
  });

  it('electionWindowMs must be a number of milliseconds', async () => {
    const srv = await Restartable.start();
    cleanup.push(() => srv.stop());
    const nc = await connectNats({ url: srv.url }, 'election-test');
    cleanup.push(() => nc.close());
    const err = await rejection(Journal.open(nc, uniqueName('j'), {}, { electionWindowMs: -1 }));
    expect(err).toMatchObject({ name: 'InvalidArgumentError', field: 'electionWindowMs' });
  });
});
