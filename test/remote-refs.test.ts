import { existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteRef } from '../runtime/index.ts';
import type { Envelope } from '../runtime/index.ts';
import { echo, fetchAndMutate, fetchRef, fetchRefAfterGate, makeArray, refInfo, sumRef } from './fixtures/tasks.ts';
import { startCluster, tempDir } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

const gc = (globalThis as { gc?: () => void }).gc;

describe('remote refs', () => {
  let tc: TestCluster;
  let gates: string;

  beforeAll(async () => {
    [tc, gates] = await Promise.all([startCluster({ workers: 2, tasks: true }), tempDir('colony-gates-')]);
  });
  afterAll(async () => {
    await tc?.close();
    if (gates) await rm(gates, { recursive: true, force: true });
  });

  const types = async (id: string) => (await tc.cluster.events.history(`ref.${id}`)).map((e) => e.type);

  it('RemoteRef(pid).put - a value put on a worker is fetched by the driver and by a task on another worker', async () => {
    const { cluster } = tc;
    const rr = cluster.remoteRef<{ greeting: string; n: number[] }>(2);
    expect(rr.where).toBe(2);
    expect(await rr.isReady()).toBe(false);
    await rr.put({ greeting: 'hello', n: [1, 2, 3] });
    expect(await rr.isReady()).toBe(true);
    expect(await rr.fetch()).toEqual({ greeting: 'hello', n: [1, 2, 3] });
    expect(await cluster.remotecallFetch(fetchRef, 3, rr)).toEqual({ greeting: 'hello', n: [1, 2, 3] });
    expect(await types(rr.id)).toEqual(['ref.created', 'ref.put']);
  });

  it('RemoteRef(pid).put - a fetch that waits on an empty ref gets the value once it is put', async () => {
    const { cluster } = tc;
    const rr = cluster.remoteRef<string>(3);
    const pending = cluster.remotecall(fetchRef, 2, rr);
    // The waiting fetch has reached the owner once the ref exists there.
    await waitFor(async () => (await types(rr.id)).includes('ref.created'), { message: 'the empty ref exists on worker 3' });
    expect(await pending.isReady()).toBe(false);
    await rr.put('arrived');
    expect(await pending.fetch()).toBe('arrived');
  });

  it('RemoteRef() - a ref owned by the driver is filled there and fetched by a worker', async () => {
    const { cluster } = tc;
    const rr = cluster.remoteRef<number[]>();
    expect(rr.where).toBe(1);
    await rr.put([4, 5, 6]);
    expect(await rr.fetch()).toEqual([4, 5, 6]);
    expect(await cluster.remotecallFetch(fetchRef, 2, rr)).toEqual([4, 5, 6]);
    expect(await cluster.remotecallFetch(fetchRef, 3, rr)).toEqual([4, 5, 6]);
  });

  it('put - on a ref that already holds a value fails and keeps the first value', async () => {
    const { cluster } = tc;
    const rr = cluster.remoteRef<string>(2);
    await rr.put('first');
    await expect(rr.put('second')).rejects.toThrow(/already holds a value/);
    expect(await rr.fetch()).toBe('first');

    const local = cluster.remoteRef<string>();
    await local.put('first');
    await expect(local.put('second')).rejects.toThrow(/already holds a value/);

    // A ref computed by a call is full too.
    const computed = cluster.remotecall(echo, 3, 'computed');
    await computed.wait();
    await expect(computed.put('other')).rejects.toThrow(/already holds a value/);
    expect(await computed.fetch()).toBe('computed');
  });

  it('cluster.ref(id) - rebuilds a handle from an id alone', async () => {
    const { cluster } = tc;
    const r = cluster.remotecall(echo, 3, 'by id');
    const id = r.id;
    const again = cluster.ref<string>(id);
    expect(again).toBeInstanceOf(RemoteRef);
    expect(again.id).toBe(id);
    expect(again.where).toBe(3);
    expect(await again.fetch()).toBe('by id');
    expect(String(again)).toContain(id);
    expect(JSON.parse(JSON.stringify(again))).toEqual({ id, where: 3 });
    expect(() => cluster.ref('not-a-ref')).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }));
  });

  it('refs as arguments - a task receives a handle, not the value, and fetches it itself', async () => {
    const { cluster } = tc;
    const data = cluster.remotecall(makeArray, 2, 3);
    const info = await cluster.remotecallFetch(refInfo, 3, data);
    expect(info).toEqual({ isHandle: true, id: data.id, where: 2, me: 3 });
    expect(Array.from(await cluster.remotecallFetch(fetchRef, 3, data))).toEqual([0, 0.5, 1]);
    // Refs nested in objects and arrays travel as handles too.
    const nested = await cluster.remotecallFetch(echo, 3, { list: [data], inner: { data } });
    expect(nested.list[0]).toBeInstanceOf(RemoteRef);
    expect(nested.list[0]!.id).toBe(data.id);
    expect(nested.inner.data.id).toBe(data.id);
  });

  it('refs as arguments - fetching on the owner gives the stored value itself, elsewhere a copy', async () => {
    const { cluster } = tc;
    const data = cluster.remotecall(makeArray, 2, 3);
    await data.wait();
    // On worker 3, fetch copies: changing the copy leaves the value on worker 2 alone.
    expect(await cluster.remotecallFetch(fetchAndMutate, 3, data, 99)).toBe(3);
    expect(Array.from(await cluster.remotecallFetch(fetchRef, 2, data))).toEqual([0, 0.5, 1]);
    // On the owner, fetch is a no-op: the task gets the stored array itself.
    expect(await cluster.remotecallFetch(fetchAndMutate, 2, data, 42)).toBe(2);
    expect(Array.from(await cluster.remotecallFetch(fetchRef, 2, data))).toEqual([42, 0.5, 1]);
    expect(Array.from(await data.fetch())).toEqual([42, 0.5, 1]);
  });

  it('refs as arguments - a worker sums an array held by another worker', async () => {
    const { cluster } = tc;
    const data = cluster.remotecall(makeArray, 3, 1000);
    const r = cluster.spawnat(2, sumRef, data);
    expect(await r.fetch()).toEqual({ me: 2, sum: (999 * 1000) / 2 / 2 });
  });

  it('free - releases the value on its owner; fetching it afterwards fails', async () => {
    const { cluster } = tc;
    const r = cluster.remotecall(echo, 2, 'to be freed');
    expect(await r.fetch()).toBe('to be freed');
    const id = r.id;
    await r.free();
    await expect(cluster.ref(id).fetch()).rejects.toThrow(/freed/);
    await expect(r.fetch()).rejects.toThrow(/freed/);
    await expect(r.isReady()).rejects.toThrow(/freed/);
    await expect(cluster.remotecallFetch(fetchRef, 3, cluster.ref(id))).rejects.toThrow(/freed/);
    const history = await cluster.events.history(`ref.${id}`);
    expect(history.map((e) => e.type)).toEqual(['ref.created', 'ref.ready', 'ref.freed']);
    expect(history.at(-1)!.data).toMatchObject({ by: 1 });
  });

  it('free - a ref owned by the driver can be freed too', async () => {
    const { cluster } = tc;
    const rr = cluster.remoteRef<string>();
    await rr.put('mine');
    await rr.free();
    await expect(rr.fetch()).rejects.toThrow(/freed/);
    expect(await types(rr.id)).toEqual(['ref.created', 'ref.put', 'ref.freed']);
  });

  // Needs `node --expose-gc`: vitest.config.ts passes it to the test processes (execArgv).
  it.skipIf(!gc)('free - a ref whose handles the driver dropped is freed automatically after garbage collection', async () => {
    const { cluster } = tc;
    // Make refs in a scope of their own, so no handle stays reachable after it returns.
    const ids = await (async () => {
      const refs = Array.from({ length: 3 }, (_, i) => cluster.remotecall(echo, 2 + (i % 2), i));
      await Promise.all(refs.map((r) => r.wait()));
      return refs.map((r) => r.id);
    })();
    const freed = (env: Envelope) => env.type === 'ref.freed';
    await waitFor(
      async () => {
        gc!();
        await new Promise((r) => setImmediate(r));
        const events = await Promise.all(ids.map((id) => cluster.events.history(`ref.${id}`)));
        return events.every((h) => h.some(freed));
      },
      { timeoutMs: 20_000, intervalMs: 100, message: 'ref.freed for every dropped handle' },
    );
  });

  it.skipIf(!gc)('free - a ref the driver dropped stays alive while a task that got it as an argument still runs', async () => {
    const { cluster } = tc;
    const gate = join(gates, 'in-use');
    // `data` is only reachable from the running call; `canary` from nothing.
    const { user, canaryId, dataId } = await (async () => {
      const data = cluster.remotecall(makeArray, 2, 3);
      const canary = cluster.remotecall(echo, 2, 'canary');
      await Promise.all([data.wait(), canary.wait()]);
      return { user: cluster.remotecall(fetchRefAfterGate, 3, gate, data), canaryId: canary.id, dataId: data.id };
    })();
    await waitFor(() => existsSync(`${gate}.started`), { message: 'the task holding the ref started' });
    // Once the canary is freed, the collector has run and the finalizers have fired.
    await waitFor(
      async () => {
        gc!();
        await new Promise((r) => setImmediate(r));
        return (await cluster.events.history(`ref.${canaryId}`)).some((e) => e.type === 'ref.freed');
      },
      { timeoutMs: 20_000, intervalMs: 100, message: 'the dropped canary ref was freed' },
    );
    writeFileSync(gate, '');
    expect(Array.from(await user.fetch())).toEqual([0, 0.5, 1]);
    expect((await cluster.events.history(`ref.${dataId}`)).map((e) => e.type)).not.toContain('ref.freed');
  });
});

