import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DArray } from '../runtime/index.ts';
import type { Ranges } from '../runtime/index.ts';
import { chunkEvents, chunkMachine, darrayEvents, darrayMachine, fold, persistable, restoreSnapshot } from '../actors/index.ts';
import type { Envelope } from '../actors/index.ts';
import { copyBlock, cutsOf, defaultDist, layoutOf } from '../runtime/arrays/darray-layout.ts';
import {
  ARRAY_TASKS_URL, copyPlusInit, doubleLocal, iotaBlock, iotaInit, maxOf, ownedPart, plusOne, readBlock, wrongSizeInit,
} from './fixtures/array-tasks.ts';
import { startCluster } from './helpers/cluster.ts';
import type { TestCluster } from './helpers/cluster.ts';
import { waitFor } from './helpers/wait.ts';

const all = (a: ArrayLike<number | bigint>, v: number | bigint) => Array.prototype.every.call(a, (x: number | bigint) => x === v);

describe('array layout and machines (pure)', () => {
  it('defaultDist - the largest prime factors go to the largest dimensions, ties to the first', () => {
    expect(defaultDist([100, 100, 10], 4)).toEqual([2, 2, 1]);
    expect(defaultDist([100, 100], 4)).toEqual([2, 2]);
    expect(defaultDist([1000], 3)).toEqual([3]);
    expect(defaultDist([100, 100, 10], 6)).toEqual([3, 2, 1]);
    expect(defaultDist([3, 10], 8)).toEqual([2, 4]);
    expect(defaultDist([2, 2], 7)).toEqual([1, 1]); // a factor bigger than every dimension is dropped
    expect(cutsOf(10, 3)).toEqual([0, 3, 6, 10]);
    expect(layoutOf([4, 6], [2, 3]).chunks[4]).toEqual([[2, 4], [2, 4]]);
  });

  it('copyBlock - copies an N-d block between arrays holding different blocks, row-major', () => {
    const dims = [5, 6, 7];
    const at = (I: Ranges) => iotaBlock(I, dims);
    const srcAt: Ranges = [[1, 5], [0, 6], [2, 7]];
    const dstAt: Ranges = [[0, 3], [1, 6], [0, 7]];
    const block: Ranges = [[1, 3], [1, 6], [2, 7]];
    const dst = new Float64Array(at(dstAt).length).fill(-1);
    copyBlock(at(srcAt), srcAt, dst, dstAt, block);
    const want = at(dstAt);
    const inBlock = iotaBlock(block, dims);
    expect(Array.from(dst).filter((x) => x >= 0)).toEqual(Array.from(inBlock));
    expect(Array.from(dst).every((x, i) => x === -1 || x === want[i])).toBe(true);
  });

  it('chunk and darray machines - fold their events; snapshots survive JSON', () => {
    const env = (kind: 'chunk' | 'darray', seq: number, e: { type: string; at: number; data: object }, to: string): Envelope => ({
      v: 1, kind, id: 'a-0', seq, at: e.at, type: e.type, from: null, to, data: e.data as Record<string, unknown>,
    });
    const counts = { reads: 3, readElements: 30, writes: 1, readers: { 2: 3 } };
    const chunk = fold(chunkMachine, [
      env('chunk', 1, chunkEvents.placed(1, { array: 'a', index: 0, pid: 2, host: 'h', I: [[0, 2]], type: 'Uint8Array', bytes: 2 }), 'live'),
      env('chunk', 2, chunkEvents.readsCounted(2, counts), 'live'),
      env('chunk', 3, chunkEvents.freed(3, 1, counts), 'freed'),
    ]);
    expect(chunk.mismatch).toBeNull();
    expect(chunk.snapshot.value).toBe('freed');
    expect(chunk.snapshot.context).toMatchObject({ pid: 2, reads: 3, endedBy: 1, placedAt: 1, endedAt: 3 });
    const back = restoreSnapshot(chunkMachine, JSON.parse(JSON.stringify(persistable(chunk.snapshot))));
    expect(back.context).toEqual(chunk.snapshot.context);
    const darray = fold(darrayMachine, [
      env('darray', 1, darrayEvents.created(1, { dims: [2], dist: [1], procs: [2], type: 'Uint8Array', creator: 1, chunks: [{ pid: 2, I: [[0, 2]] }] }), 'live'),
      env('darray', 2, darrayEvents.freed(2, { by: 1, reads: 3, readElements: 30, writes: 1 }), 'freed'),
    ]);
    expect(darray.mismatch).toBeNull();
    expect(darray.snapshot.context).toMatchObject({ dims: [2], reads: 3, endedAt: 2 });
    expect(fold(darrayMachine, [env('darray', 1, darrayEvents.freed(1, { by: 1, reads: 0, readElements: 0, writes: 0 }), 'freed')]).mismatch).not.toBeNull();
  });
});

describe('distributed arrays', () => {
  let tc: TestCluster;
  let w: number[];

  beforeAll(async () => {
    tc = await startCluster({ workers: 4 });
    await tc.cluster.everywhere(ARRAY_TASKS_URL);
    w = tc.cluster.workers();
  });
  afterAll(async () => {
    await tc?.close();
  });

  /** Every index of `dims` covered exactly once by the owners' localindexes. */
  async function ownership(d: DArray): Promise<{ pid: number; I: Ranges; length: number; sum: number }[]> {
    return Promise.all([...new Set(d.procs)].map((p) => tc.cluster.remotecallFetch(ownedPart, p, d)));
  }

  it('zeros, ones, fill - every element holds the value; the default placement follows the manual', async () => {
    const { cluster } = tc;
    const z = await cluster.darray.zeros(Float64Array, [100, 100, 10]);
    expect(z.dims).toEqual([100, 100, 10]);
    expect(z.procs).toEqual(w);
    expect(z.dist).toEqual(defaultDist([100, 100, 10], 4));
    expect(z.dist).toEqual([2, 2, 1]);
    expect(z.type).toBe('Float64Array');
    expect(z.chunks.map((c) => c.I)).toEqual([
      [[0, 50], [0, 50], [0, 10]], [[0, 50], [50, 100], [0, 10]], [[50, 100], [0, 50], [0, 10]], [[50, 100], [50, 100], [0, 10]],
    ]);
    const za = await z.toArray();
    expect(za).toBeInstanceOf(Float64Array);
    expect(za.length).toBe(100_000);
    expect(all(za, 0)).toBe(true);

    const o = await cluster.darray.ones(Float32Array, [7, 3]);
    // Fewer procs than workers when a dimension is small: min(nworkers, max(dims)).
    expect(o.procs.length).toBeLessThanOrEqual(4);
    expect(all(await o.toArray(), 1)).toBe(true);

    const f = await cluster.darray.fill(Int32Array, 7, [30, 30], { procs: [w[1]!, w[2]!] });
    expect(f.procs).toEqual([w[1], w[2]]);
    expect(f.dist).toEqual([2, 1]);
    const fa = await f.toArray();
    expect(fa).toBeInstanceOf(Int32Array);
    expect(all(fa, 7)).toBe(true);

    const big = await cluster.darray.fill(BigInt64Array, 5n, [4, 4], { procs: [w[0]!] });
    expect(all(await big.toArray(), 5n)).toBe(true);
    for (const d of [z, o, f, big]) await d.free();
  });

  it('rand, randn - uniform in [0, 1) (whole range for integers) and standard normal', async () => {
    const { cluster } = tc;
    const r = await cluster.darray.rand(Float64Array, [200, 50]);
    const ra = await r.toArray();
    expect(ra.every((x) => x >= 0 && x < 1)).toBe(true);
    expect(new Set(ra).size).toBeGreaterThan(9000);

    const ri = await cluster.darray.rand(Int32Array, [1000]);
    const ria = await ri.toArray();
    expect(ria.some((x) => x < 0) && ria.some((x) => x > 2 ** 30)).toBe(true);

    const n = await cluster.darray.randn(Float64Array, [100_000]);
    const na = await n.toArray();
    const mean = na.reduce((s, x) => s + x, 0) / na.length;
    const sd = Math.sqrt(na.reduce((s, x) => s + (x - mean) ** 2, 0) / na.length);
    expect(Math.abs(mean)).toBeLessThan(0.02);
    expect(Math.abs(sd - 1)).toBeLessThan(0.02);
    await expect(cluster.darray.randn(Int32Array, [10])).rejects.toThrow(/Float64Array or Float32Array/);
    for (const d of [r, ri, n]) await d.free();
  });

  it('distribute, toArray - every typed array type round-trips, row-major', async () => {
    const { cluster } = tc;
    const types = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array];
    for (const T of types) {
      const src = new T(6 * 10);
      for (let i = 0; i < src.length; i++) src[i] = (i * 7) % 100;
      const d = await cluster.darray.distribute(src, [6, 10], { dist: [2, 2] });
      expect(d.type).toBe(T.name);
      const back = await d.toArray();
      expect(back).toBeInstanceOf(T);
      expect(Array.from(back)).toEqual(Array.from(src));
      // Row-major: element [i, j] is at i * cols + j.
      expect((await d.get([[4, 5], [3, 4]]))[0]).toBe(src[4 * 10 + 3]);
      await d.free();
    }
    for (const T of [BigInt64Array, BigUint64Array]) {
      const src = new T(24);
      for (let i = 0; i < 24; i++) src[i] = BigInt(i) * 1_000_000_000_000n;
      const d = await cluster.darray.distribute(src, [2, 3, 4]);
      expect(Array.from(await d.toArray())).toEqual(Array.from(src));
      await d.free();
    }
    // A plain array becomes Float64Array; the caller's array is not shared with the chunks.
    const plain = [1, 2, 3, 4, 5, 6];
    const p = await cluster.darray.distribute<Float64Array>(plain, [3, 2], { procs: [w[0]!, w[1]!, w[2]!] });
    expect(p.type).toBe('Float64Array');
    expect(Array.from(await p.toArray())).toEqual(plain);
    await expect(cluster.darray.distribute(new Float64Array(10), [3, 3])).rejects.toThrow(/hold 9 elements, the array has 10/);
    await p.free();
  });

  it('distribute, toArray, get - big blocks (over 1 MB a chunk) come back whole, through /dev/shm on one host', async () => {
    const { cluster } = tc;
    const dims = [1280, 512];
    const src = new Float64Array(dims[0]! * dims[1]!);
    for (let i = 0; i < src.length; i++) src[i] = i;
    for (const dist of [[2, 1], [2, 2]]) {
      const d = await cluster.darray.distribute(src, dims, { dist });
      const back = await d.toArray();
      expect(back.length).toBe(src.length);
      expect(back.every((x, i) => x === i)).toBe(true);
      const r: Ranges = [[100, 900], [0, 400]];
      const block = await d.get(r);
      expect(block.every((x, k) => x === (100 + Math.floor(k / 400)) * 512 + (k % 400))).toBe(true);
      await d.free();
    }
    // toArray of 4 MB or more is written by the owners into a shared-memory file of the driver,
    // which is mapped and its name removed at once: nothing is left in /dev/shm.
    expect(readdirSync('/dev/shm').filter((f) => f.startsWith(`colony-${process.pid}-into`))).toEqual([]);
  });

  it('create - init(I, ...args) runs on each owner with its block; args may hold DArray handles', async () => {
    const { cluster } = tc;
    const dims = [9, 8];
    const d = await cluster.darray.create(iotaInit, dims, { args: [dims] });
    expect(d.type).toBe('Float64Array');
    expect(Array.from(await d.toArray())).toEqual(Array.from(iotaBlock([[0, 9], [0, 8]], dims)));
    const owned = await ownership(d);
    for (const o of owned) {
      const k = d.procs.indexOf(o.pid);
      expect(o.I).toEqual(d.chunks[k]!.I);
    }
    // The init of a second array reads the first through its handle.
    const e = await cluster.darray.create(copyPlusInit, dims, { args: [d, 100], dist: [1, 4], procs: [w[3]!, w[2]!, w[1]!, w[0]!] });
    expect(Array.from(await e.toArray())).toEqual(Array.from(iotaBlock([[0, 9], [0, 8]], dims), (x) => x + 100));
    await e.free();
    await d.free();
  });

  it('get - blocks across chunk borders come from every owner they touch', async () => {
    const { cluster } = tc;
    const dims = [10, 12];
    const d = await cluster.darray.create(iotaInit, dims, { args: [dims], dist: [2, 2] });
    const cases: Ranges[] = [
      [[3, 7], [4, 9]], // all four chunks
      [[0, 10], [5, 7]], // two chunks, a column band
      [[4, 6], [0, 12]], // two chunks, a row band
      [[0, 5], [0, 6]], // exactly one chunk
      [[9, 10], [11, 12]], // the last element
      [[0, 10], [0, 12]],
    ];
    for (const r of cases) expect(Array.from(await d.get(r))).toEqual(Array.from(iotaBlock(r, dims)));
    // A number means [i, i + 1); an empty range gives an empty array.
    expect(Array.from(await d.get([5, [5, 7]]))).toEqual([65, 66]);
    expect((await d.get([[3, 3], [0, 12]])).length).toBe(0);
    // Several blocks in one go, and the same read from a worker (its own chunk read locally).
    const many = await d.getMany([[[4, 6], [5, 7]], [[0, 1], [0, 12]]]);
    expect(Array.from(many[0]!)).toEqual([53, 54, 65, 66]);
    expect(Array.from(many[1]!)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(Array.from(await cluster.remotecallFetch(readBlock, d.procs[0]!, d, [[3, 7], [4, 9]]))).toEqual(Array.from(iotaBlock([[3, 7], [4, 9]], dims)));
    await expect(d.get([[0, 11], [0, 1]])).rejects.toThrow(/outside \[0, 10\)/);
    await expect(d.get([[0, 1]])).rejects.toThrow(/2 \[start, end\) pairs/);
    await d.free();
  });

  it('3-D with dist [1, 4, 1] - the manual\'s dzeros((100,100), workers()[1:4], [1,4]) in three dimensions', async () => {
    const { cluster } = tc;
    const dims = [20, 100, 10];
    const d = await cluster.darray.create(iotaInit, dims, { procs: w.slice(0, 4), dist: [1, 4, 1], args: [dims] });
    expect(d.chunks.map((c) => c.I)).toEqual([0, 1, 2, 3].map((k) => [[0, 20], [25 * k, 25 * (k + 1)], [0, 10]]));
    expect(d.chunks.map((c) => c.pid)).toEqual(w.slice(0, 4));
    const owned = await ownership(d);
    expect(owned.map((o) => o.length)).toEqual([5000, 5000, 5000, 5000]);
    const r: Ranges = [[5, 9], [20, 80], [3, 6]];
    expect(Array.from(await d.get(r))).toEqual(Array.from(iotaBlock(r, dims)));
    expect(Array.from(await d.toArray())).toEqual(Array.from(iotaBlock([[0, 20], [0, 100], [0, 10]], dims)));
    await expect(cluster.darray.zeros(Float64Array, dims, { procs: w.slice(0, 3), dist: [1, 4, 1] })).rejects.toThrow(/product of dist \[1, 4, 1\] is 4, but there are 3 procs/);
    await d.free();
  });

  it('localindexes - the owners\' blocks cover the array exactly once', async () => {
    const { cluster } = tc;
    const shapes: { dims: number[]; dist?: number[]; procs?: number[] }[] = [
      { dims: [7, 5, 3], dist: [2, 1, 2] },
      { dims: [3, 10], dist: [4, 1] }, // more blocks than rows: one chunk is empty
      { dims: [101] },
      { dims: [13, 17] },
      { dims: [6, 6], dist: [1, 2], procs: [w[3]!, w[0]!] },
    ];
    for (const s of shapes) {
      const d = await cluster.darray.create(iotaInit, s.dims, { dist: s.dist, procs: s.procs, args: [s.dims] });
      const n = s.dims.reduce((a, b) => a * b, 1);
      const seen = new Uint8Array(n);
      for (const o of await ownership(d)) {
        const block = iotaBlock(o.I, s.dims);
        expect(o.length).toBe(block.length);
        for (const k of block) seen[k]!++;
        expect(o.sum).toBe(block.reduce((a, b) => a + b, 0));
      }
      expect(seen.every((c) => c === 1)).toBe(true);
      await d.free();
    }
  });

  it('localpart - a task on the owner changes its chunk in place, without a message', async () => {
    const { cluster } = tc;
    const dims = [8, 8];
    const d = await cluster.darray.create(iotaInit, dims, { args: [dims] });
    const lengths = await Promise.all(d.procs.map((p) => cluster.remotecallFetch(doubleLocal, p, d)));
    expect(lengths.reduce((a, b) => a + b, 0)).toBe(64);
    expect(Array.from(await d.toArray())).toEqual(Array.from({ length: 64 }, (_, i) => 2 * i));
    // No chunk served a read for those in-place changes: the reads counted are the toArray's.
    await d.free();
    await tc.cluster.flush();
    const freed = await waitFor(async () => (await cluster.events.history(`darray.${d.id}`)).find((e) => e.type === 'darray.freed'));
    expect(freed.data).toMatchObject({ reads: d.procs.length, writes: 0 });
  });

  it('map, reduce - run where the chunks live', async () => {
    const { cluster } = tc;
    const dims = [10, 10];
    const d = await cluster.darray.create(iotaInit, dims, { args: [dims] });
    const m = await d.map(plusOne);
    expect(m).toBeInstanceOf(DArray);
    expect(m.procs).toEqual(d.procs);
    expect(m.dist).toEqual(d.dist);
    expect(Array.from(await m.toArray())).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(await d.reduce('+')).toBe(4950);
    expect(await m.reduce('max')).toBe(100);
    expect(await m.reduce('min')).toBe(1);
    expect(await d.reduce(maxOf)).toBe(99);
    const asInt = await d.map(plusOne, { type: Int16Array });
    expect((await asInt.toArray()) instanceof Int16Array).toBe(true);
    const big = await cluster.darray.fill(BigInt64Array, 3n, [5]);
    expect(await big.reduce('+')).toBe(15n);
    for (const x of [d, m, asInt, big]) await x.free();
  });

  it('set - writes a block across chunk borders', async () => {
    const { cluster } = tc;
    const d = await cluster.darray.zeros(Int32Array, [6, 6], { dist: [2, 2] });
    await d.set([[2, 5], [1, 4]], [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const a = await d.toArray();
    const expected = new Int32Array(36);
    [[2, 1, 1], [2, 2, 2], [2, 3, 3], [3, 1, 4], [3, 2, 5], [3, 3, 6], [4, 1, 7], [4, 2, 8], [4, 3, 9]].forEach(([i, j, v]) => (expected[i! * 6 + j!] = v!));
    expect(Array.from(a)).toEqual(Array.from(expected));
    await expect(d.set([[0, 2], [0, 2]], [1, 2, 3])).rejects.toThrow(/expected 4 elements/);
    await d.free();
  });

  it('events - chunk placement and halo-read counts are persisted as chunk and darray events', async () => {
    const { cluster } = tc;
    const dims = [8, 6];
    const d = await cluster.darray.create(iotaInit, dims, { args: [dims], procs: [w[0]!, w[1]!], dist: [2, 1] });
    // Two reads of chunk 1 from the driver, one read of chunk 0 by chunk 1's owner.
    await d.get([[4, 8], [0, 6]]);
    await d.get([[3, 5], [0, 6]]);
    await cluster.remotecallFetch(readBlock, w[1]!, d, [[3, 5], [0, 6]]);
    await d.free();
    await cluster.flush();
    const chunks = await waitFor(async () => {
      const h = (await cluster.events.history('chunk.>')).filter((e) => e.id.startsWith(`${d.id}-`));
      return h.filter((e) => e.type === 'chunk.freed').length === 2 ? h : null;
    }, { message: 'both chunks freed in the log' });
    const placed = chunks.filter((e) => e.type === 'chunk.placed');
    expect(placed.map((e) => [e.data.index, e.data.pid, e.data.I]).sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual([
      [0, w[0], [[0, 4], [0, 6]]],
      [1, w[1], [[4, 8], [0, 6]]],
    ]);
    const freed = Object.fromEntries(chunks.filter((e) => e.type === 'chunk.freed').map((e) => [e.id, e.data]));
    expect(freed[`${d.id}-0`]).toMatchObject({ reads: 2, readElements: 12, readers: { 1: 1, [w[1]!]: 1 } });
    expect(freed[`${d.id}-1`]).toMatchObject({ reads: 2, readElements: 30, readers: { 1: 2 } });
    const darray = await cluster.events.history(`darray.${d.id}`);
    expect(darray.map((e) => e.type)).toEqual(['darray.created', 'darray.freed']);
    expect(darray[0]!.data).toMatchObject({ dims, dist: [2, 1], procs: [w[0], w[1]], type: 'Float64Array', creator: 1 });
    expect(darray[1]!.data).toMatchObject({ reads: 4, readElements: 42 });
    for (const e of [...chunks, ...darray]) expect(e.to).not.toBe('');
  });

  it('free - the chunks are gone; reads fail with a clear error', async () => {
    const { cluster } = tc;
    const d = await cluster.darray.ones(Float64Array, [4, 4], { procs: [w[2]!, w[3]!] });
    await d.free();
    await d.free(); // a second free is a no-op
    await expect(d.get([[0, 1], [0, 1]])).rejects.toThrow(/was freed/);
    // A handle elsewhere (here: in a task on a worker) finds the chunk gone.
    await expect(cluster.remotecallFetch(readBlock, w[0]!, d, [[3, 4], [0, 1]])).rejects.toThrow(/freed|not served/);
  });

  it('create - an init that returns the wrong size fails clearly and leaves no chunk behind', async () => {
    const { cluster } = tc;
    await expect(cluster.darray.create(wrongSizeInit, [4, 4], { procs: [w[0]!, w[1]!] })).rejects.toThrow(/returned 9 elements for block \[\[0,2\],\[0,4\]\]; expected 8/);
    const failed = await waitFor(async () => (await cluster.events.history('darray.>')).filter((e) => e.type === 'darray.failed'));
    expect(failed.length).toBeGreaterThan(0);
    await expect(cluster.darray.zeros(Float64Array, [4], { procs: [99] })).rejects.toThrow(/no process 99/);
    await expect(cluster.darray.zeros('Float128Array' as never, [4])).rejects.toThrow(/expected a typed array type/);
  });
});
