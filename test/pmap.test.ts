import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fold, foldStep, initialSnapshot, mapEvents, mapMachine, persistable, restoreSnapshot } from '../actors/index.ts';
import type { Envelope } from '../actors/index.ts';
import { Cluster, progressBar } from '../runtime/index.ts';
import { busy, failOdd, lasting, lookup, marked, markedAsync, PMAP_TASKS_URL, slowIdent, square, tagged } from './fixtures/pmap-tasks.ts';
import { uniqueName } from './helpers/nats.ts';
import { processAlive, waitFor } from './helpers/wait.ts';

/** A real cluster (2 workers unless told) in a fresh temp dir, with the pmap tasks loaded. */
async function startCluster(workers = 2): Promise<{ cluster: Cluster; close: () => Promise<void> }> {
  const stateDir = await mkdtemp(join(tmpdir(), 'colony-pmap-'));
  const cluster = await Cluster.start({ workers, stateDir, workerOutput: 'ignore', graceMs: 10_000 });
  await cluster.everywhere(PMAP_TASKS_URL);
  return {
    cluster,
    close: async () => {
      await cluster.close();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

async function markerDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'colony-pmap-marks-'));
}

const started = (dir: string) => readdirSync(dir).filter((f) => f.startsWith('started-')).length;

describe('map actor', () => {
  const t = 1_700_000_000_000;
  const started = mapEvents.started(t, { task: 'file:///t.ts#f', items: 10, workers: [2, 3], batchSize: 'auto', retries: 1 });

  const envelopes = (events: ReturnType<typeof mapEvents.progressed>[] | unknown[]): Envelope[] => {
    let snap = initialSnapshot(mapMachine);
    return (events as Parameters<typeof foldStep>[2][]).map((ev, i) => {
      const step = foldStep(mapMachine, snap, ev);
      snap = step.snapshot;
      return { v: 1, kind: 'map', id: 'm1', seq: i + 1, at: ev.at, type: ev.type, from: i === 0 ? null : step.from, to: step.to, data: ev.data as Record<string, unknown> };
    });
  };

  it('map actor - folds started, progress, retries and finished into its state', () => {
    const events = [
      started,
      mapEvents.progressed(t + 1, 4),
      mapEvents.itemRetried(t + 2, { items: [5, 6], lostPid: 2, newPid: 3, attempt: 1 }),
      mapEvents.progressed(t + 3, 8),
      mapEvents.finished(t + 4, 10),
    ];
    const { snapshot, mismatch, timeline } = fold(mapMachine, envelopes(events));
    expect(mismatch).toBeNull();
    expect(timeline.map((s) => s.to)).toEqual(['running', 'running', 'running', 'running', 'finished']);
    expect(snapshot.status).toBe('done');
    expect(snapshot.context).toMatchObject({ total: 10, workers: [2, 3], done: 10, retried: 2, lost: [2], startedAt: t, endedAt: t + 4, error: null });
  });

  it('map actor - a worker that joins mid-map is added to its workers, once', () => {
    const events = [started, mapEvents.workerJoined(t + 1, 4), mapEvents.workerJoined(t + 2, 4), mapEvents.finished(t + 3, 10)];
    const { snapshot, mismatch } = fold(mapMachine, envelopes(events));
    expect(mismatch).toBeNull();
    expect(snapshot.context.workers).toEqual([2, 3, 4]);
  });

  it('map actor - a failed map keeps its error; nothing follows a final state', () => {
    let snap = initialSnapshot(mapMachine);
    snap = foldStep(mapMachine, snap, started).snapshot;
    const failed = foldStep(mapMachine, snap, mapEvents.failed(t + 9, { name: 'AbortError', message: 'aborted' }, 3));
    expect(failed.to).toBe('failed');
    expect(failed.snapshot.context).toMatchObject({ done: 3, error: { name: 'AbortError' } });
    expect(foldStep(mapMachine, failed.snapshot, mapEvents.progressed(t + 10, 5)).accepted).toBe(false);
    expect(foldStep(mapMachine, initialSnapshot(mapMachine), mapEvents.finished(t, 0)).accepted).toBe(false);
  });

  it('map actor - progress never goes back, and a snapshot survives a JSON round trip', () => {
    let snap = initialSnapshot(mapMachine);
    for (const ev of [started, mapEvents.progressed(t + 1, 7), mapEvents.progressed(t + 2, 5)]) snap = foldStep(mapMachine, snap, ev).snapshot;
    expect(snap.context.done).toBe(7);
    const restored = restoreSnapshot(mapMachine, JSON.parse(JSON.stringify(persistable(snap))));
    expect(restored.value).toBe('running');
    expect(restored.context).toEqual(snap.context);
    const next = foldStep(mapMachine, restored, mapEvents.finished(t + 3, 10));
    expect(next.to).toBe('finished');
    expect(next.snapshot.context.done).toBe(10);
  });
});

describe('progressBar', () => {
  const sink = (isTTY: boolean) => {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream };
  };

  it('progressBar - redraws one line on a terminal and ends it at 100%', () => {
    const { out, stream } = sink(true);
    const bar = progressBar({ label: 'svd', stream, width: 10, intervalMs: 0 });
    bar(0, 4);
    bar(2, 4);
    bar(4, 4);
    bar(4, 4);
    expect(out.length).toBe(3);
    expect(out[1]).toMatch(/^\rsvd \[#####-----\]  50% 2\/4/);
    expect(out[2]).toMatch(/^\rsvd \[##########\] 100% 4\/4.*\n$/);
  });

  it('progressBar - writes only the final line when the stream is not a terminal', () => {
    const { out, stream } = sink(false);
    const bar = progressBar({ stream });
    for (let i = 1; i <= 100; i++) bar(i, 100);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^pmap \[#+\] 100% 100\/100/);
  });
});

describe('pmap', () => {
  let cluster: Cluster;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ cluster, close } = await startCluster());
  });
  afterAll(async () => {
    await close?.();
  });

  it('pmap - results come back in item order, spread over the workers', async () => {
    const items = Array.from({ length: 1000 }, (_, i) => i);
    const out = await cluster.pmap(tagged, items);
    expect(out.map(([x]) => x)).toEqual(items);
    expect(new Set(out.map(([, pid]) => pid))).toEqual(new Set([2, 3]));
    expect(await cluster.pmap(square, new Set([3, 4, 5]))).toEqual([9, 16, 25]);
    expect(await cluster.pmap(square, [])).toEqual([]);
  });

  it('pmap - 20,000 tiny items with default options, in order', async () => {
    const items = Array.from({ length: 20_000 }, (_, i) => i);
    const out = await cluster.pmap(square, items);
    expect(out.length).toBe(20_000);
    expect(out.every((v, i) => v === i * i)).toBe(true);
  });

  it('pmap - a fixed batchSize keeps the order and is recorded in map.started', async () => {
    const id = uniqueName('m');
    const items = Array.from({ length: 50 }, (_, i) => i);
    expect(await cluster.pmap(square, items, { batchSize: 7, id })).toEqual(items.map((i) => i * i));
    const [first] = await cluster.events.history(`map.${id}`);
    expect(first).toMatchObject({ type: 'map.started', data: { items: 50, batchSize: 7, workers: [2, 3] } });
    await expect(cluster.pmap(square, items, { id })).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'id' });
  });

  it('pmap - unbalanced work is balanced: each worker gets a fair share of the heavy items', async () => {
    // Heavy items at even positions of the first half: a static split by blocks or by
    // round-robin would give one worker all of them.
    const costs = Array.from({ length: 24 }, (_, i) => (i < 8 && i % 2 === 0 ? 60 : 3));
    const out = await cluster.pmap(busy, costs);
    const total = costs.reduce((a, b) => a + b, 0);
    const share = new Map<number, number>();
    out.forEach((r, i) => share.set(r.pid, (share.get(r.pid) ?? 0) + costs[i]!));
    expect([...share.keys()].sort()).toEqual([2, 3]);
    for (const [, work] of share) expect(work / total).toBeGreaterThanOrEqual(0.25);
    const heavy = new Map<number, number>();
    out.forEach((r, i) => costs[i] === 60 && heavy.set(r.pid, (heavy.get(r.pid) ?? 0) + 1));
    expect(Math.min(...[2, 3].map((p) => heavy.get(p) ?? 0))).toBeGreaterThanOrEqual(1);
  });

  it('pmap - onError turns a failed item into a value; without it the map rejects with the item error', async () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    const out = await cluster.pmap(failOdd, items, { onError: (err, item) => `${err.name}:${(err as { remoteName?: string }).remoteName}:${item}` });
    expect(out).toEqual(items.map((i) => (i % 2 ? `RemoteException:RangeError:${i}` : i)));
    const id = uniqueName('m');
    await expect(cluster.pmap(failOdd, items, { id })).rejects.toMatchObject({ name: 'RemoteException', remoteName: 'RangeError', message: expect.stringMatching(/odd item/) });
    const events = await cluster.events.history(`map.${id}`);
    expect(events.at(-1)).toMatchObject({ type: 'map.failed', data: { error: { name: 'RangeError' } } });
  });

  it('pmap - onProgress counts up to the total', async () => {
    const seen: [number, number][] = [];
    await cluster.pmap(square, Array.from({ length: 300 }, (_, i) => i), { onProgress: (d, n) => seen.push([d, n]) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.at(-1)).toEqual([300, 300]);
    for (let i = 1; i < seen.length; i++) expect(seen[i]![0]).toBeGreaterThan(seen[i - 1]![0]);
  });

  it('pmap - workers picks a subset, like a WorkerPool', async () => {
    const out = await cluster.pmap(tagged, Array.from({ length: 100 }, (_, i) => i), { workers: [3] });
    expect(new Set(out.map(([, pid]) => pid))).toEqual(new Set([3]));
    await expect(cluster.pmap(tagged, [1], { workers: [42] })).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'workers' });
  });

  it('pmap - shared data goes to each worker once and reaches f as its last argument', async () => {
    const table = Array.from({ length: 1000 }, (_, i) => i * 10);
    const items = Array.from({ length: 400 }, (_, i) => i);
    const out = await cluster.pmap(lookup, items, { shared: table, batchSize: 3 });
    expect(out.map((r) => r.v)).toEqual(items.map((x) => table[x % table.length]! + x));
    // One copy per worker: every batch on a worker saw the very same object.
    expect(new Set(out.map((r) => r.seen))).toEqual(new Set([1]));
    expect(new Set(out.map((r) => r.pid))).toEqual(new Set([2, 3]));
  });

  it('pmap - an aborted signal cancels the map and drops its queued batches', async () => {
    const dir = await markerDir();
    try {
      const items = Array.from({ length: 40 }, (_, i) => ({ i, ms: 150, dir }));
      const ac = new AbortController();
      const id = uniqueName('m');
      const run = cluster.pmap(markedAsync, items, { signal: ac.signal, id, batchSize: 1 });
      await waitFor(() => started(dir) >= 2, { message: 'two items started' });
      ac.abort();
      await expect(run).rejects.toMatchObject({ name: 'AbortError' });
      // A call to each worker queues behind whatever this map left there.
      await Promise.all(cluster.workers().map((p) => cluster.remotecallFetch(square, p, 1)));
      expect(started(dir)).toBeLessThan(10);
      const events = await cluster.events.history(`map.${id}`);
      expect(events.at(-1)).toMatchObject({ type: 'map.failed', data: { error: { name: 'AbortError' } } });
      await expect(cluster.pmap(square, [1], { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pmap - timeoutMs bounds each item, sync or async, with a TimeoutError', async () => {
    const items = [{ sync: 5 }, { sync: 30_000 }, { async: 5 }, { never: true }, { sync: 1 }];
    const t0 = Date.now();
    const out = await cluster.pmap(lasting, items, { timeoutMs: 400, onError: (err) => `${err.name}` });
    expect(out).toEqual(['spun 5', 'TimeoutError', 'waited 5', 'TimeoutError', 'spun 1']);
    // The 30 s spin was stopped on its worker, not left to finish.
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await cluster.pmap(square, [2, 3], { timeoutMs: 1000 })).toEqual([4, 9]);
    await expect(cluster.pmap(lasting, [{ never: true }], { timeoutMs: 100 })).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('pmap - cluster.interrupt stops a running item, which fails with an InterruptException', async () => {
    const dir = await markerDir();
    try {
      const run = cluster.pmap(marked, [{ i: 0, ms: 30_000, dir }], { workers: [2], onError: (err) => err.name });
      await waitFor(() => started(dir) === 1, { message: 'the item started' });
      await cluster.interrupt(2);
      expect(await run).toEqual(['InterruptException']);
      // The worker is free again.
      expect(await cluster.pmap(square, [7], { workers: [2] })).toEqual([49]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pmap - bad options are refused with the field name', async () => {
    await expect(cluster.pmap(square, [1], { batchSize: 0 })).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'batchSize' });
    await expect(cluster.pmap(square, [1], { retries: -1 })).rejects.toMatchObject({ field: 'retries' });
    await expect(cluster.pmap(square, [1], { timeoutMs: 0 })).rejects.toMatchObject({ field: 'timeoutMs' });
    await expect(cluster.pmap(((x: number) => x) as never, [1])).rejects.toMatchObject({ field: 'f' });
  });

  it('pmap - its run is an actor: map events are in history("map.>")', async () => {
    const id = uniqueName('m');
    await cluster.pmap(square, Array.from({ length: 100 }, (_, i) => i), { id });
    const all = await cluster.events.history('map.>');
    const mine = all.filter((e) => e.id === id);
    expect(mine[0]).toMatchObject({ kind: 'map', type: 'map.started', from: null, to: 'running', data: { items: 100, workers: [2, 3], batchSize: 'auto', task: square.key } });
    expect(mine.at(-1)).toMatchObject({ type: 'map.finished', to: 'finished', data: { done: 100 } });
    expect(fold(mapMachine, mine).mismatch).toBeNull();
  });
});

describe('pmap with a worker that dies', () => {
  let cluster: Cluster;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ cluster, close } = await startCluster());
  });
  afterAll(async () => {
    await close?.();
  });

  it('pmap - retries the items of a worker killed mid-map on another worker', async () => {
    const dir = await markerDir();
    try {
      const items = Array.from({ length: 40 }, (_, i) => ({ i, ms: 40, dir }));
      const id = uniqueName('m');
      const run = cluster.pmap(marked, items, { retries: 2, id, batchSize: 1 });
      // Kill worker 2 once it has run a few items (it is busy with another now).
      await waitFor(() => readdirSync(dir).filter((f) => f.startsWith('started-')).length >= 6, { message: 'six items started' });
      const victim = cluster.workerInfo().find((w) => w.pid === 2)!;
      process.kill(victim.ospid, 'SIGKILL');
      const out = await run;
      expect(out.map((r) => r.i)).toEqual(items.map((x) => x.i));
      expect(processAlive(victim.ospid)).toBe(false);
      const events = await cluster.events.history(`map.${id}`);
      const retried = events.filter((e) => e.type === 'map.item.retried');
      expect(retried.length).toBeGreaterThanOrEqual(1);
      expect(retried[0]!.data).toMatchObject({ lostPid: 2, newPid: 3, attempt: 1 });
      // Items that ran again ended on worker 3.
      for (const e of retried) for (const i of e.data.items as number[]) expect(out[i]!.pid).toBe(3);
      expect(events.at(-1)).toMatchObject({ type: 'map.finished', data: { done: 40 } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pmap - fails clearly when every worker of the map is gone', async () => {
    // Worker 2 died in the previous test; now lose worker 3 too.
    await waitFor(() => cluster.workers().join() === '3', { message: 'only worker 3 left' });
    const dir = await markerDir();
    try {
      const items = Array.from({ length: 20 }, (_, i) => ({ i, ms: 40, dir }));
      const run = cluster.pmap(marked, items, { retries: 3, workers: [3] });
      await waitFor(() => started(dir) >= 2, { message: 'two items started' });
      process.kill(cluster.workerInfo().find((w) => w.pid === 3)!.ospid, 'SIGKILL');
      await expect(run).rejects.toMatchObject({ name: 'ProcessExitedError', message: expect.stringMatching(/every worker of pmap/) });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(existsSync(dir)).toBe(false);
  });
});

describe('pmap on a growing pool', () => {
  let cluster: Cluster;
  let close: () => Promise<void>;

  beforeAll(async () => {
    ({ cluster, close } = await startCluster(1));
  });
  afterAll(async () => {
    await close?.();
  });

  it('pmap - a worker added mid-map gets the shared data and takes items; a map given workers keeps to them', async () => {
    const dir = await markerDir();
    try {
      const items = Array.from({ length: 80 }, (_, i) => i);
      const id = uniqueName('m');
      const run = cluster.pmap(slowIdent, items, { shared: { dir, ms: 40 }, id });
      const fixedId = uniqueName('m');
      const fixed = cluster.pmap(slowIdent, items.slice(0, 30), { shared: { dir, ms: 40 }, workers: [2], id: fixedId });
      await waitFor(() => existsSync(join(dir, 'started-2')), { message: 'the map started on worker 2' });
      const [added] = await cluster.addprocs(1);
      expect(added).toBe(3);
      expect(await run).toEqual(items);
      expect(await fixed).toEqual(items.slice(0, 30));
      // The new worker ran items of the map, with the shared value put there for it.
      expect(existsSync(join(dir, 'started-3'))).toBe(true);
      const events = await cluster.events.history(`map.${id}`);
      expect(events.filter((e) => e.type === 'map.worker.joined').map((e) => e.data)).toEqual([{ pid: 3 }]);
      expect(events.at(-1)).toMatchObject({ type: 'map.finished', data: { done: 80 } });
      const fixedEvents = await cluster.events.history(`map.${fixedId}`);
      expect(fixedEvents.map((e) => e.type)).not.toContain('map.worker.joined');
      expect(fixedEvents.at(-1)).toMatchObject({ type: 'map.finished', data: { done: 30 } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
