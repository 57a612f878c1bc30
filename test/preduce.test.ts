import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, RemoteRef } from '../runtime/index.ts';
import type { Reducer, Task } from '../runtime/index.ts';
import { concat, flip, halfLater, letter, PMAP_TASKS_URL, scaled, slowIdent, touch, twoEvery7, wobble } from './fixtures/pmap-tasks.ts';
import { waitFor } from './helpers/wait.ts';

/** What a serial loop gives: fold `f` over the range from the left. */
function serial<V>(reducer: Reducer<V>, f: (x: never) => V, xs: unknown[]): V {
  const op = (a: V, b: V): V => {
    switch (reducer) {
      case '+': return ((a as number) + (b as number)) as V;
      case '*': return ((a as number) * (b as number)) as V;
      case 'min': return (b < a ? b : a);
      case 'max': return (b > a ? b : a);
      default: return (reducer as Task<[V, V], V>)(a, b);
    }
  };
  let acc = f(xs[0] as never);
  for (let k = 1; k < xs.length; k++) acc = op(acc, f(xs[k] as never));
  return acc;
}

const span = (a: number, b: number) => Array.from({ length: b - a }, (_, k) => a + k);

describe('preduce and pfor', () => {
  let cluster: Cluster;
  let stateDir: string;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'colony-preduce-'));
    cluster = await Cluster.start({ workers: 2, stateDir, workerOutput: 'ignore', graceMs: 10_000 });
    await cluster.everywhere(PMAP_TASKS_URL);
  });
  afterAll(async () => {
    await cluster?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const numeric: [Reducer<number>, Task<[number], number>][] = [
    ['+', wobble],
    ['*', twoEvery7],
    ['min', wobble],
    ['max', wobble],
  ];

  for (const [reducer, f] of numeric) {
    it(`preduce - '${reducer}' matches a serial loop for a count, a [start, end) pair and items`, async () => {
      expect(await cluster.preduce(reducer, f, 301)).toBe(serial(reducer, f, span(0, 301)));
      expect(await cluster.preduce(reducer, f, [17, 250])).toBe(serial(reducer, f, span(17, 250)));
      const items = [5, 900, -3, 44, 1012, 7, 7, 63, 128, 0, 999];
      expect(await cluster.preduce(reducer, f, items)).toBe(serial(reducer, f, items));
      // Fewer iterations than workers, and one.
      expect(await cluster.preduce(reducer, f, 1)).toBe(f(0));
      expect(await cluster.preduce(reducer, f, [40, 41])).toBe(f(40));
    });
  }

  it('preduce - a custom task reducer is applied in range order (it need not commute)', async () => {
    expect(await cluster.preduce(concat, letter, 100)).toBe(serial(concat, letter, span(0, 100)));
    expect(await cluster.preduce(concat, letter, [30, 77])).toBe(serial(concat, letter, span(30, 77)));
    const items = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5];
    expect(await cluster.preduce(concat, letter, items)).toBe(serial(concat, letter, items));
  });

  it('preduce - items in any iterable, an async f, shared data and a subset of workers', async () => {
    expect(await cluster.preduce('+', wobble, new Set([1, 2]))).toBe(wobble(1) + wobble(2));
    expect(await cluster.preduce('+', halfLater, 10)).toBe(span(0, 10).reduce((a, i) => a + i / 2, 0));
    expect(await cluster.preduce('+', scaled, 10, { shared: 3, workers: [3] })).toBe(3 * 45);
    expect(await cluster.preduce('max', scaled, [2, 9], { shared: -1 })).toBe(-2);
  });

  it('preduce - an empty range: 0 for +, 1 for *, an error for min, max and custom reducers', async () => {
    expect(await cluster.preduce('+', wobble, 0)).toBe(0);
    expect(await cluster.preduce('*', wobble, [5, 5])).toBe(1);
    await expect(cluster.preduce('min', wobble, [])).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'range' });
    await expect(cluster.preduce(concat, letter, 0)).rejects.toMatchObject({ field: 'range' });
  });

  it('preduce - bad arguments are refused with the field name', async () => {
    await expect(cluster.preduce('-' as never, wobble, 10)).rejects.toMatchObject({ name: 'InvalidArgumentError', field: 'reducer' });
    await expect(cluster.preduce('+', wobble, -1)).rejects.toMatchObject({ field: 'range' });
    await expect(cluster.preduce('+', wobble, [9, 3])).rejects.toMatchObject({ field: 'range' });
    await expect(cluster.preduce('+', ((i: number) => i) as never, 10)).rejects.toMatchObject({ field: 'f' });
  });

  it("preduce - the manual's count_heads: @parallel (+) for i=1:200000000 int(randbool()) end", async () => {
    const n = 200_000_000;
    const heads = await cluster.preduce('+', flip, n);
    // Binomial(n, 1/2): mean n/2, standard deviation sqrt(n)/2 (about 7071); allow 8 of them.
    expect(Number.isInteger(heads)).toBe(true);
    expect(Math.abs(heads - n / 2)).toBeLessThan(8 * Math.sqrt(n) / 2);
  });

  it('pfor - returns at once with one RemoteRef per worker; waiting on them is @sync', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'colony-pfor-'));
    try {
      const refs = cluster.pfor(touch, [0, 20], { shared: dir });
      expect(refs.length).toBe(2);
      for (const r of refs) expect(r).toBeInstanceOf(RemoteRef);
      expect(new Set(refs.map((r) => r.where))).toEqual(new Set([2, 3]));
      await Promise.all(refs.map((r) => r.wait()));
      for (let i = 0; i < 20; i++) expect(existsSync(join(dir, `done-${i}`))).toBe(true);
      expect(await refs[0]!.fetch()).toBeNull();
      // Fewer items than workers: one slice.
      expect(cluster.pfor(touch, [20, 21], { shared: dir }).length).toBe(1);
      await waitFor(() => existsSync(join(dir, 'done-20')), { message: 'the one-item pfor ran' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('preduce with a worker that dies', () => {
  it('preduce - with retries, the slice of a killed worker runs again on another one', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'colony-preduce-kill-'));
    const dir = await mkdtemp(join(tmpdir(), 'colony-preduce-marks-'));
    const cluster = await Cluster.start({ workers: 2, stateDir, workerOutput: 'ignore', graceMs: 10_000 });
    try {
      await cluster.everywhere(PMAP_TASKS_URL);
      const run = cluster.preduce('+', slowIdent, 400, { shared: { dir, ms: 2 }, retries: 1 });
      await waitFor(() => existsSync(join(dir, 'started-2')), { message: 'worker 2 started its slice' });
      process.kill(cluster.workerInfo().find((w) => w.pid === 2)!.ospid, 'SIGKILL');
      expect(await run).toBe((400 * 399) / 2);
      // The survivor alone runs a whole range (a repeated pid counts once).
      await expect(cluster.preduce('+', slowIdent, 10, { shared: { dir, ms: 0 }, workers: [3, 3] })).resolves.toBe(45);
    } finally {
      await cluster.close();
      await rm(stateDir, { recursive: true, force: true });
      await rm(dir, { recursive: true, force: true });
    }
  });
});
