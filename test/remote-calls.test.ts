import { existsSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteRef, myid } from '../runtime/index.ts';
import { add, echo, fetchRef, gated, makeArray, refInfo, slow, whoami } from './fixtures/tasks.ts';
import { startCluster, tempDir } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

describe('remote calls', () => {
  let tc: TestCluster;
  let gates: string;

  beforeAll(async () => {
    tc = await startCluster({ workers: 2, tasks: true });
    gates = await tempDir('colony-gates-');
  });
  afterAll(async () => {
    await tc?.close();
    if (gates) await rm(gates, { recursive: true, force: true });
  });

  let n = 0;
  /** A fresh gate file for a `gated` task; open it with `open()`. */
  const gate = () => {
    const path = join(gates, `g${++n}`);
    return {
      path,
      started: () => waitFor(() => existsSync(`${path}.started`), { message: `task behind ${path} started` }),
      open: (text = 'open') => writeFileSync(path, text),
    };
  };

  it('remotecall - returns at once with a RemoteRef whose id stays the same until it is fetched', async () => {
    const { cluster } = tc;
    const g = gate();
    const r = cluster.remotecall(gated, 2, g.path);
    expect(r).toBeInstanceOf(RemoteRef);
    expect(r.where).toBe(2);
    const id = r.id;
    expect(id).toMatch(/^2-/);
    await g.started();
    expect(await r.isReady()).toBe(false);
    g.open('done');
    await r.wait();
    expect(await r.isReady()).toBe(true);
    expect(await r.fetch()).toBe('done');
    expect(r.id).toBe(id);
    // fetch is repeatable, like Julia's Future
    expect(await r.fetch()).toBe('done');
  });

  it('remotecall - fetch waits for a result that is not ready yet', async () => {
    const { cluster } = tc;
    const g = gate();
    const r = cluster.remotecall(gated, 3, g.path);
    const fetched = r.fetch();
    await g.started();
    g.open('late value');
    expect(await fetched).toBe('late value');
  });

  it('remotecallFetch - gives the value in one call', async () => {
    const { cluster } = tc;
    expect(await cluster.remotecallFetch(add, 2, 1, 2)).toBe(3);
    expect(await cluster.remotecallFetch(echo, 3, { a: [1, 'two', null] })).toEqual({ a: [1, 'two', null] });
  });

  it('myid - is 1 in the driver and the pid on each worker', async () => {
    const { cluster } = tc;
    expect(myid()).toBe(1);
    for (const pid of cluster.workers()) expect(await cluster.remotecallFetch(whoami, pid)).toBe(pid);
  });

  it('remotecallWait - resolves once the task is done and keeps the result on the worker', async () => {
    const { cluster } = tc;
    const r = await cluster.remotecallWait(slow, 3, 50);
    expect(r).toBeInstanceOf(RemoteRef);
    expect(r.where).toBe(3);
    expect(await r.isReady()).toBe(true);
    expect(await r.fetch()).toBe(3);
  });

  it('spawnat - runs on the given worker', async () => {
    const { cluster } = tc;
    const r = cluster.spawnat(3, whoami);
    expect(r.where).toBe(3);
    expect(await r.fetch()).toBe(3);
    const r2 = cluster.spawnat(2, add, 40, 2);
    expect(await r2.fetch()).toBe(42);
  });

  it('spawn - runs where a RemoteRef argument lives and fetches it there', async () => {
    const { cluster } = tc;
    for (const owner of [2, 3]) {
      const data = cluster.remotecall(makeArray, owner, 4);
      const s = cluster.spawn(refInfo, data);
      expect(s.where).toBe(owner);
      expect(await s.fetch()).toMatchObject({ isHandle: true, id: data.id, where: owner, me: owner });
      const f = cluster.spawn(fetchRef, data);
      expect(f.where).toBe(owner);
      expect(Array.from(await f.fetch())).toEqual([0, 0.5, 1, 1.5]);
    }
  });

  it('spawn - a RemoteRef inside an array argument also decides where the call runs', async () => {
    const { cluster } = tc;
    const data = cluster.remotecall(echo, 3, 'x');
    const s = cluster.spawn(echo, [data]);
    expect(s.where).toBe(3);
  });

  it('spawn - without RemoteRef arguments goes to the least-loaded worker', async () => {
    const { cluster } = tc;
    const g = gate();
    const busy = cluster.remotecall(gated, 2, g.path);
    await g.started();
    try {
      const s = cluster.spawn(whoami);
      expect(s.where).toBe(3);
      expect(await s.fetch()).toBe(3);
    } finally {
      g.open();
    }
    await busy.wait();

    const g3 = gate();
    const busy3 = cluster.remotecall(gated, 3, g3.path);
    await g3.started();
    try {
      const s = cluster.spawn(whoami);
      expect(s.where).toBe(2);
      expect(await s.fetch()).toBe(2);
    } finally {
      g3.open();
    }
    await busy3.wait();
  });

  it('spawn - a worker that has just finished its task counts as idle, not as busy', async () => {
    const { cluster } = tc;
    // Worker 3 runs a task long enough for a heartbeat to report it running, then finishes.
    const g3 = gate();
    const done3 = cluster.remotecall(gated, 3, g3.path);
    await waitFor(() => cluster.workerInfo().find((w) => w.pid === 3)!.running === 1, { message: 'a heartbeat of worker 3 saying it runs a task' });
    g3.open();
    await done3.wait();
    // Now worker 2 is busy and worker 3 idle (whatever its last heartbeat said).
    const g2 = gate();
    const busy2 = cluster.remotecall(gated, 2, g2.path);
    await g2.started();
    try {
      expect(cluster.spawn(whoami).where).toBe(3);
    } finally {
      g2.open();
    }
    await busy2.wait();
  });

  it('spawn - spreads a batch of calls over the workers', async () => {
    const { cluster } = tc;
    const refs = Array.from({ length: 8 }, () => cluster.spawn(slow, 100));
    const where = refs.map((r) => r.where);
    expect(new Set(where)).toEqual(new Set([2, 3]));
    expect((await Promise.all(refs.map((r) => r.fetch()))).sort()).toEqual(where.sort());
  });

  it('remotecall - many calls in flight at once all come back with the right values', async () => {
    const { cluster } = tc;
    const refs = Array.from({ length: 200 }, (_, i) => cluster.remotecall(add, 2 + (i % 2), i, 1));
    const values = await Promise.all(refs.map((r) => r.fetch()));
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(new Set(refs.map((r) => r.id)).size).toBe(200);
  });

  it('remotecall - a call that is not a task, or a pid that is not a worker, is refused at once', () => {
    const { cluster } = tc;
    const plain = (x: number) => x;
    expect(() => cluster.remotecall(plain as never, 2, 1)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', message: expect.stringMatching(/task/) }));
    expect(() => cluster.remotecall(whoami, 99)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError', message: expect.stringMatching(/99/) }));
    expect(() => cluster.remotecall(whoami, 0)).toThrow(expect.objectContaining({ name: 'InvalidArgumentError' }));
  });
});
